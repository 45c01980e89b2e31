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
