//! vLLM profile against hand-computed values and the 0.19 H100 logs
//! (data/calibration/vllm.jsonl). Values in comments are worked out by hand.

use vramplan_core::engine::vllm::{self, Release, VllmArgs};
use vramplan_core::units::GIB;
use vramplan_core::{catalogue, Config, KvDtype, Parallelism, WeightFormat};

fn args(version: &str) -> VllmArgs {
    let mut a = VllmArgs::new(Release::parse(version).unwrap());
    a.utilization_given = true;
    a
}

fn h100_config(len: u64, tp: u64, pp: u64) -> Config {
    let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, len, 1);
    c.utilization = 0.95;
    c.parallel = Parallelism { tp, pp, dp: 1 };
    c
}

fn within(predicted: f64, observed: f64, tolerance: f64) -> bool {
    ((predicted - observed) / observed).abs() <= tolerance
}

#[test]
fn qwen25_7b_blocks_tokens_and_concurrency() {
    // Log (0.19, util 0.95, 8192): 68,500 blocks, 1,096,000 tokens, 133.79x. One block of
    // Qwen2.5-7B (28 layers × 2 × 16 × 4 heads × 128 × 2 B) = 917,504 B; 1,096,000 tokens =
    // 68,500 × 16; 68,500 / ceil(8192 / 16) = 68,500 / 512 = 133.79.
    let cat = catalogue();
    let m = cat.model("qwen2.5-7b-instruct").unwrap();
    let e = vllm::estimate(
        m,
        cat.gpu("h100").unwrap(),
        h100_config(8192, 1, 1),
        &args("0.19.0"),
    )
    .unwrap();
    let blocks = e.kv_cache_blocks.unwrap();
    assert!(within(blocks as f64, 68_500.0, 0.01), "{blocks}");
    assert_eq!(e.kv_cache_tokens.unwrap(), blocks * 16);
    assert_eq!(e.kv_pool_bytes.unwrap(), blocks * 917_504);
    assert!((e.engine_max_concurrency.unwrap() - blocks as f64 / 512.0).abs() < 0.01);
    // Weights logged 14.25 GiB; activation 2.21 GiB; non-torch 0.24 GiB.
    assert!(within(e.weights_bytes as f64 / GIB as f64, 14.25, 0.01));
    assert!(within(e.activation_bytes as f64 / GIB as f64, 2.21, 0.15));
}

#[test]
fn max_concurrency_rounds_requests_up_to_blocks() {
    // At 16,384 tokens the log says 66.89x for 1,095,968 tokens (68,498 blocks): 68,498 / 1024.
    // A length that is not a multiple of 16 rounds up: 1000 tokens need ceil(1000/16) = 63
    // blocks, not 62.5.
    let cat = catalogue();
    let m = cat.model("qwen2.5-7b-instruct").unwrap();
    let e = vllm::estimate(
        m,
        cat.gpu("h100").unwrap(),
        h100_config(1000, 1, 1),
        &args("0.19.0"),
    )
    .unwrap();
    let blocks = e.kv_cache_blocks.unwrap() as f64;
    assert!(
        (e.engine_max_concurrency.unwrap() - (blocks / 63.0 * 100.0).floor() / 100.0).abs() < 1e-9
    );
}

#[test]
fn tensor_parallel_replicates_kv_heads_beyond_their_count() {
    // Qwen2.5-7B has 4 KV heads: TP 4 holds 1 per rank (page 2 × 16 × 1 × 128 × 2 = 8,192 B);
    // TP 8 still holds 1 (replicated), so blocks per GiB do not grow from 4 to 8.
    let m = catalogue().model("qwen2.5-7b").unwrap();
    assert_eq!(vllm::page_bytes(m, KvDtype::Bf16, 4, 16), 8_192);
    assert_eq!(vllm::page_bytes(m, KvDtype::Bf16, 8, 16), 8_192);
    // Logged at TP 4: 315,205 blocks per rank (5,043,280 tokens).
    let cat = catalogue();
    let e = vllm::estimate(
        cat.model("qwen2.5-7b-instruct").unwrap(),
        cat.gpu("h100").unwrap(),
        h100_config(8192, 4, 1),
        &args("0.19.0"),
    )
    .unwrap();
    assert!(within(e.kv_cache_blocks.unwrap() as f64, 315_205.0, 0.02));
}

#[test]
fn pipeline_stages_take_the_fewest_blocks() {
    // Llama-3.1-8B, PP 2: 16 layers per stage (vLLM get_pp_indices). The first stage logs
    // 66.54 GiB available; the engine keeps the minimum over stages: 67,207 blocks of
    // 16 layers × 65,536 B = 1 MiB.
    let cat = catalogue();
    let m = cat.model("llama-3.1-8b-instruct").unwrap();
    let e = vllm::estimate(
        m,
        cat.gpu("h100").unwrap(),
        h100_config(8192, 1, 2),
        &args("0.19.0"),
    )
    .unwrap();
    assert_eq!(e.stages.len(), 2);
    assert_eq!(e.stages[0].layers, 16);
    assert!(within(
        e.stages[0].kv_available_bytes as f64 / GIB as f64,
        66.54,
        0.02
    ));
    assert!(within(e.kv_cache_blocks.unwrap() as f64, 67_207.0, 0.02));
    let min_stage = e.stages.iter().map(|s| s.kv_available_bytes).min().unwrap();
    assert_eq!(e.kv_cache_blocks.unwrap(), min_stage as u64 / (1 << 20));
}

#[test]
fn cuda_graphs_are_charged_from_020() {
    // 0.19 does not subtract them; 0.20 subtracts 0.35 GiB + 17 MiB × 32 layers = 0.88 GiB,
    // unless --enforce-eager.
    let cat = catalogue();
    let m = cat.model("llama-3.1-8b").unwrap();
    let gpu = cat.gpu("h100").unwrap();
    let e19 = vllm::estimate(m, gpu, h100_config(8192, 1, 1), &args("0.19")).unwrap();
    let e20 = vllm::estimate(m, gpu, h100_config(8192, 1, 1), &args("0.20")).unwrap();
    assert_eq!(e19.cuda_graph_bytes, Some(0));
    assert_eq!(
        e20.cuda_graph_bytes,
        Some(35 * GIB / 100 + 17 * 32 * (1 << 20))
    );
    assert!(e20.kv_cache_blocks.unwrap() < e19.kv_cache_blocks.unwrap());
    let mut eager = args("0.20");
    eager.enforce_eager = true;
    assert_eq!(
        vllm::estimate(m, gpu, h100_config(8192, 1, 1), &eager)
            .unwrap()
            .cuda_graph_bytes,
        Some(0)
    );
}

#[test]
fn default_utilization_follows_the_release() {
    let cat = catalogue();
    let m = cat.model("llama-3.1-8b").unwrap();
    let gpu = cat.gpu("h100").unwrap();
    let c = h100_config(8192, 1, 1);
    let e = vllm::estimate(m, gpu, c, &VllmArgs::new(Release::parse("0.20").unwrap())).unwrap();
    assert_eq!(e.utilization, 0.92);
    let e = vllm::estimate(m, gpu, c, &VllmArgs::new(Release::parse("0.19").unwrap())).unwrap();
    assert_eq!(e.utilization, 0.90);
}

#[test]
fn falcon_on_an_a10g_at_full_utilization_does_not_start() {
    // A10G: 22.06 GiB as CUDA reports it; the process already holds 0.51 GiB at start-up, so
    // utilization 1.0 asks for more than is free and vLLM stops; 0.97 is the largest share that
    // starts (21.55 / 22.06 = 0.977).
    let cat = catalogue();
    let m = cat.model("falcon-7b").unwrap();
    let gpu = cat.gpu("a10g").unwrap();
    let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 1000, 1);
    c.utilization = 1.0;
    let e = vllm::estimate(m, gpu, c, &args("0.19")).unwrap();
    let err = e.startup_error.expect("util 1.0 cannot start");
    assert_eq!(err.fix, "--gpu-memory-utilization 0.97");
    c.utilization = 0.97;
    assert!(vllm::estimate(m, gpu, c, &args("0.19"))
        .unwrap()
        .startup_error
        .is_none());
}

#[test]
fn sliding_window_groups_multiply_concurrency() {
    // Gemma-2-2B (26 layers, 13 sliding 4096 + 13 full, page 65,536 B): the log shows 83,770
    // blocks, 670,160 tokens (= 83,770 // 2 groups × 16) and 81.73x (83,770 / 1,025).
    let cat = catalogue();
    let m = cat.model("gemma-2-2b-it").unwrap();
    let e = vllm::estimate(
        m,
        cat.gpu("h100").unwrap(),
        h100_config(8192, 1, 1),
        &args("0.19.0"),
    )
    .unwrap();
    let blocks = e.kv_cache_blocks.unwrap();
    assert!(within(blocks as f64, 83_770.0, 0.03), "{blocks}");
    assert_eq!(e.kv_cache_tokens.unwrap(), blocks / 2 * 16);
    assert!(
        (e.engine_max_concurrency.unwrap() - (blocks as f64 / 1025.0 * 100.0).floor() / 100.0)
            .abs()
            < 1e-9
    );
}

#[test]
fn qwen3_14b_release_sweep() {
    // llm-d-planner's version sweep (vllm.jsonl:50, :51): Qwen3-14B bf16 on one H100, util 0.95,
    // max_model_len 8192. Logged "Available KV cache memory" 41.94 GiB on 0.15, 45.34 GiB on
    // 0.17; activation peaks 5.64 and 2.23 GiB. By hand, budget 0.95 × 85,028,896,768 B =
    // 80,777,451,929 B; weights 14,768,307,200 params × 2 B + rotary 40,960 × 128 × 2 B =
    // 29,547,069,440 B (27.52 GiB); non-torch 133 MiB. Sampler: 1024 × 151,936 = 155,582,464
    // logits; hidden states 8192 × 5120 × 2 = 83,886,080 B; residue 48 MiB.
    //  0.15 (sort, 38 B): 5,912,133,632 + 83,886,080 + 50,331,648 = 6,046,351,360 B (5.631 GiB)
    //  0.17 (Triton, 14 B + 132 × 151,936 × 4 B): 2,178,154,496 + 80,222,208 + 83,886,080 +
    //       50,331,648 = 2,392,594,432 B (2.228 GiB)
    // KV: 80,777,451,929 − 29,547,069,440 − 139,460,608 − peak = 45,044,570,529 B (41.95 GiB) on
    // 0.15 and 48,698,327,449 B (45.35 GiB) on 0.17; pages 40 layers × 65,536 B: 17,183 and
    // 18,577 blocks (logged 17,178 and 18,572).
    let cat = catalogue();
    let m = cat.model("qwen3-14b").unwrap();
    let h100 = cat.gpu("h100").unwrap();
    let run = |v: &str| vllm::estimate(m, h100, h100_config(8192, 1, 1), &args(v)).unwrap();
    let gib = |b: u64| b as f64 / GIB as f64;
    let (e15, e16, e17, e18) = (run("0.15"), run("0.16"), run("0.17"), run("0.18"));
    assert_eq!(e15.activation_bytes, 6_046_351_360);
    assert_eq!(e17.activation_bytes, 2_392_594_432);
    assert!(within(gib(e15.activation_bytes), 5.64, 0.005));
    assert!(within(gib(e17.activation_bytes), 2.23, 0.005));
    assert!(within(e15.kv_cache_blocks.unwrap() as f64, 17_178.0, 0.001));
    assert!(within(e17.kv_cache_blocks.unwrap() as f64, 18_572.0, 0.001));
    assert!(within(
        e15.kv_cache_tokens.unwrap() as f64,
        274_848.0,
        0.001
    ));
    assert!(within(
        e17.kv_cache_tokens.unwrap() as f64,
        297_152.0,
        0.001
    ));
    // 0.16 samples like 0.15 (sort); 0.18 like 0.17 but with the graph profile inside the
    // profiling context: 123 MiB more non-torch memory, 123 MiB / 2,621,440 B = 49 fewer blocks.
    assert_eq!(e16.kv_cache_blocks, e15.kv_cache_blocks);
    assert_eq!(e18.activation_bytes, e17.activation_bytes);
    assert_eq!(
        e18.non_torch_bytes.unwrap() - e17.non_torch_bytes.unwrap(),
        123 << 20
    );
    assert_eq!(
        e17.kv_cache_blocks.unwrap() - e18.kv_cache_blocks.unwrap(),
        49
    );
}

#[test]
fn non_torch_memory_follows_the_interconnect() {
    // Llama-3.1-8B at TP 2, vLLM 0.19 (graph profile residue 123 MiB, base 133 MiB):
    //  H100 SXM (NVSwitch, capability 9.0: NCCL NVLS): 133 + 123 + 1894 = 2150 MiB;
    //  L40S (PCIe), A100 SXM (NVSwitch without NVLS): 133 + 123 + 82 = 338 MiB.
    // 0.10 (baseline before the distributed init, no graph profile): A100 TP 2 with custom
    // all-reduce: 133 + 82 + 16 = 231 MiB; L40S TP 4 (custom all-reduce off beyond two PCIe
    // GPUs): 133 + 82 = 215 MiB.
    let cat = catalogue();
    let m = cat.model("llama-3.1-8b").unwrap();
    let nt = |gpu: &str, v: &str, tp: u64| {
        let mut c = h100_config(2048, tp, 1);
        c.utilization = 0.9;
        vllm::estimate(m, cat.gpu(gpu).unwrap(), c, &args(v))
            .unwrap()
            .non_torch_bytes
            .unwrap()
            >> 20
    };
    assert_eq!(nt("h100", "0.19", 2), 2150);
    assert_eq!(nt("l40s", "0.19", 2), 338);
    assert_eq!(nt("a100-80gb", "0.19", 2), 338);
    assert_eq!(nt("a100-80gb", "0.10", 2), 231);
    assert_eq!(nt("l40s", "0.10", 4), 215);
    // One GPU: 133 MiB (0.17), 256 MiB (0.19), 133 MiB again from 0.27.
    assert_eq!(nt("h100", "0.17", 1), 133);
    assert_eq!(nt("h100", "0.19", 1), 256);
    assert_eq!(nt("h100", "0.27", 1), 133);
}

#[test]
fn lora_and_eagle_change_weights_and_blocks_as_built() {
    let cat = catalogue();
    let m = cat.model("llama-3.1-8b").unwrap();
    let h100 = cat.gpu("h100").unwrap();
    let base = vllm::estimate(m, h100, h100_config(8192, 1, 1), &args("0.19")).unwrap();
    // LoRA: 80 MiB of slots (weights.rs lora_slots_by_hand), counted in "Model loading took".
    let mut a = args("0.19");
    a.lora = Some(vllm::Lora::default());
    let lora = vllm::estimate(m, h100, h100_config(8192, 1, 1), &a).unwrap();
    assert_eq!(lora.weights_bytes - base.weights_bytes, 83_886_080);
    // EAGLE: one more decoder layer of weights (436,224,000 B) + fc 2 × 4096² × 2 B, one more
    // KV layer (33 instead of 32 per block), and the rejection sampler's 1024 × 128,256 × 2 B
    // target logits in the profile.
    let mut a = args("0.19");
    a.speculative = Some(vllm::Speculative {
        method: vllm::SpeculativeMethod::Eagle { eagle3: false },
        num_speculative_tokens: 3,
    });
    let eagle = vllm::estimate(m, h100, h100_config(8192, 1, 1), &a).unwrap();
    assert_eq!(
        eagle.weights_bytes - base.weights_bytes,
        436_224_000 + 2 * 4096 * 4096 * 2
    );
    assert_eq!(
        eagle.activation_bytes - base.activation_bytes,
        1024 * 128_256 * 2
    );
    assert_eq!(
        eagle.kv_pool_bytes.unwrap(),
        eagle.kv_cache_blocks.unwrap() * 65_536 * 33
    );
}

#[test]
fn the_sampler_warm_up_runs_out_of_memory_with_its_own_message() {
    // Gemma-2-9B (vocabulary 256,000) on an L4 with vLLM 0.11 and --max-num-seqs 1024: the sort
    // path holds 1024 × 256,000 × 38 B = 9.96 GB besides 17.2 GiB of weights on a 21.95 GiB card.
    let cat = catalogue();
    let m = cat.model("gemma-2-9b-it").unwrap();
    let mut a = args("0.11");
    a.max_num_seqs = Some(1024);
    let mut c = h100_config(4096, 1, 1);
    c.utilization = 0.9;
    let e = vllm::estimate(m, cat.gpu("l4").unwrap(), c, &a).unwrap();
    let err = e.startup_error.unwrap();
    assert!(
        err.message
            .contains("CUDA out of memory occurred when warming up sampler with 1024"),
        "{}",
        err.message
    );
    // The fix names a --max-num-seqs that fits, and with it the warm-up passes.
    let n: u64 = err
        .fix
        .strip_prefix("--max-num-seqs ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(n < 1024);
    a.max_num_seqs = Some(n);
    let e = vllm::estimate(m, cat.gpu("l4").unwrap(), c, &a).unwrap();
    assert!(!e
        .startup_error
        .is_some_and(|s| s.message.contains("warming up sampler")));
}

#[test]
fn extensible_kv_cache_of_034_by_hand() {
    // Llama-3.1-8B on an H100 with vLLM 0.34 defaults (utilization 1.0, extensible KV cache,
    // Model Runner V2). available = min(total − non-KV, total − 522 MiB − non-KV − margin) −
    // peak = total − 522 MiB − weights − non-torch − graphs − max(1 GiB, 0.75 × peak) − peak.
    let cat = catalogue();
    let m = cat.model("llama-3.1-8b").unwrap();
    let h100 = cat.gpu("h100").unwrap();
    let mut a = args("0.34");
    a.utilization_given = false;
    let e = vllm::estimate(m, h100, h100_config(8192, 1, 1), &a).unwrap();
    assert_eq!(e.utilization, 1.0);
    assert!(e.startup_error.is_none());
    let peak = e.activation_bytes;
    let margin = GIB.max((peak as f64 * 0.75) as u64);
    let available = 85_028_896_768
        - (522 << 20)
        - e.weights_bytes
        - e.non_torch_bytes.unwrap()
        - e.cuda_graph_bytes.unwrap()
        - margin
        - peak;
    assert_eq!(e.kv_cache_blocks.unwrap(), available / (65_536 * 32));
    // Setting it off returns to the profiling-run sizing at 0.92.
    a.extensible_kv_cache = Some(false);
    let e = vllm::estimate(m, h100, h100_config(8192, 1, 1), &a).unwrap();
    assert_eq!(e.utilization, 0.92);
}

#[test]
fn model_runner_v2_follows_each_release_default() {
    use vramplan_core::engine::vllm::uses_model_runner_v2;
    let cat = catalogue();
    let r = |v: &str| vllm::Release::parse(v).unwrap().rules();
    let qwen3 = cat.model("qwen3-8b").unwrap();
    let llama = cat.model("llama-3.1-8b").unwrap();
    let mixtral = cat.model("mixtral-8x7b").unwrap();
    let bf16 = WeightFormat::Bf16;
    assert!(!uses_model_runner_v2(qwen3, bf16, r("0.21")));
    assert!(uses_model_runner_v2(qwen3, bf16, r("0.22")));
    assert!(!uses_model_runner_v2(
        qwen3,
        WeightFormat::Fp8 { block: 0 },
        r("0.22")
    ));
    assert!(!uses_model_runner_v2(llama, bf16, r("0.22")));
    assert!(uses_model_runner_v2(llama, bf16, r("0.23")));
    assert!(!uses_model_runner_v2(mixtral, bf16, r("0.29")));
    assert!(uses_model_runner_v2(mixtral, bf16, r("0.30")));
}

#[test]
fn gpt_oss_weights_follow_the_moe_backend() {
    // A 0.11 install has no triton_kernels, so Hopper runs Marlin (rule mxfp4_triton), and
    // "Model loading took" counts the tensors alive after process_weights_after_loading
    // (vllm@v0.11.0: gpu_model_runner.py load_model, DeviceMemoryProfiler, platforms/cuda.py
    // get_current_memory_usage). gpt-oss-20b, every tensor by hand (vllm@v0.11.0 gpt_oss.py,
    // quantization/mxfp4.py create_weights, utils/marlin_utils_fp4.py
    // prepare_moe_fp4_layer_for_marlin, which keeps every padded size):
    //   embedding + untied head: 2 × 201,088 × 2880 × 2 B           = 2,316,533,760
    //   final norm: 2880 × 2                                         =         5,760
    //   per layer: norms 2 × 2880 × 2 = 11,520; qkv (4096 + 2 × 512) × 2880 × 2 = 29,491,200
    //     + bias 10,240; o 4096 × 2880 × 2 = 23,592,960 + bias 5,760; sinks 64 × 2 = 128;
    //     router 32 × 2880 × 2 = 184,320 + bias 64; experts on Marlin (I 2880 → 2944, H 2880
    //     → 3072) 32 × 14,431,744 = 461,815,808 (weights.rs test: w13 9,043,968 + scales
    //     565,248 + w2 4,521,984 + scales 282,624 + biases 17,920 per expert)
    //     = 515,112,000 per layer × 24                             = 12,362,688,000
    //   rotary cos/sin cache, fp32: 131,072 × 64 × 4                 =    33,554,432
    //   total 14,712,781,952 B = 13.70 GiB. The same on an A100 (Marlin below capability 9).
    // vllm.jsonl:52 (13.47 GiB, attributed to the 0.11.0 image) is a Triton-layout figure, not a
    // Marlin one: see gpt_oss_120b_matches_marlin_and_triton_logs below and
    // docs/reference/vllm_releases.md §6.
    let cat = catalogue();
    let m = cat.model("gpt-oss-20b").unwrap();
    let mut c = Config::new(WeightFormat::Mxfp4, KvDtype::Bf16, 16000, 1);
    c.utilization = 0.9;
    let h100 = cat.gpu("h100").unwrap();
    let e = vllm::estimate(m, h100, c, &args("0.11")).unwrap();
    assert_eq!(e.weights_bytes, 14_712_781_952);
    let a100 = vllm::estimate(m, cat.gpu("a100-80gb").unwrap(), c, &args("0.11")).unwrap();
    assert_eq!(a100.weights_bytes, e.weights_bytes);
    // 0.12 builds triton_kernels in: Triton on Hopper, fp32 biases (24 × 552,960 B over the
    // generic layout) and the loaded scales kept beside the swizzled ones (24 × 32 × 777,600 B).
    // 0.34 backs both by one storage.
    let t12 = vllm::estimate(m, h100, c, &args("0.12")).unwrap();
    assert_eq!(
        e.weights_bytes - t12.weights_bytes,
        24 * (38_248_448 - 552_960 - 32 * 777_600)
    );
    let t34 = vllm::estimate(m, h100, c, &args("0.34")).unwrap();
    assert_eq!(t12.weights_bytes - t34.weights_bytes, 24 * 32 * 777_600);
}

#[test]
fn gpt_oss_120b_matches_marlin_and_triton_logs() {
    // Two real start-up logs of gpt-oss-120b on one H100 80GB, TP 1:
    //  - Marlin ("marlin_utils_fp4.py:196 ... leveraging the Marlin kernel", August 2025, vLLM
    //    0.10.1): "Model loading took 65.9651 GiB", then "Available KV cache memory: -2.14 GiB"
    //    at the default 0.9 (vllm-project/vllm issue 23278). Marlin layout: 128 experts × 36
    //    layers × (14,431,744 − 13,236,480) B = 5,507,776,512 B over the checkpoint's
    //    60.80 GiB = 65.93 GiB (−0.06%); 0.9 × 79.19 − 65.93 − 7.38 − 0.13 = −2.17 GiB.
    //  - Triton ("mxfp4.py:165 Using Triton backend", vLLM 0.14.1): "Model loading took 64.38 GiB"
    //    (vllm-project/vllm issue 33155), the figure llm-d's table (vllm.jsonl:52's source) gives
    //    for gpt-oss-120b. Triton layout with the loaded scales kept: 64.21 GiB (−0.26%; the rows
    //    triton_kernels' Hopper swizzle pads are not counted).
    let cat = catalogue();
    let m = cat.model("gpt-oss-120b").unwrap();
    let h100 = cat.gpu("h100").unwrap();
    let mut c = Config::new(WeightFormat::Mxfp4, KvDtype::Bf16, 16000, 1);
    c.utilization = 0.9;
    let marlin = vllm::estimate(m, h100, c, &args("0.10.1")).unwrap();
    let w = marlin.weights_bytes as f64 / GIB as f64;
    assert!(within(w, 65.9651, 0.001), "{w}");
    assert!(!marlin.fits);
    c.utilization = 0.95;
    let triton = vllm::estimate(m, h100, c, &args("0.14.1")).unwrap();
    let w = triton.weights_bytes as f64 / GIB as f64;
    assert!(within(w, 64.38, 0.005), "{w}");
    // The two layouts differ by the Marlin padding minus the Triton extras, per expert:
    // (14,431,744 − 13,236,480) − (17,280 + 777,600) = 400,384 B × 4608 experts.
    assert_eq!(marlin.weights_bytes - triton.weights_bytes, 4608 * 400_384);
}
