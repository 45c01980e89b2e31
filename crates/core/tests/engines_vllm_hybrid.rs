//! vLLM's hybrid KV-cache manager (engine/vllm/hybrid.rs), DeepSeek-V3.2's indexer cache and
//! the window layers' in-flight reserve, against values worked out by hand from the cited
//! source (docs/reference/vllm_releases.md §5, §8).

use vramplan_core::engine::vllm::{self, MambaCacheMode, MambaDtype, Release, VllmArgs};
use vramplan_core::{catalogue, Config, Estimate, KvDtype, ModelDesc, Parallelism, WeightFormat};

fn args(version: &str) -> VllmArgs {
    let mut a = VllmArgs::new(Release::parse(version).unwrap());
    a.utilization_given = true;
    a
}

fn config(len: u64, tp: u64) -> Config {
    let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, len, 1);
    c.utilization = 0.9;
    c.parallel = Parallelism { tp, pp: 1, dp: 1 };
    c
}

fn run(model: &str, len: u64, tp: u64, a: &VllmArgs) -> Estimate {
    let cat = catalogue();
    vllm::estimate(
        cat.model(model).unwrap(),
        cat.gpu("h100").unwrap(),
        config(len, tp),
        a,
    )
    .unwrap()
}

fn setting(e: &Estimate, name: &str) -> String {
    e.engine_settings
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.value.clone())
        .unwrap_or_default()
}

fn concurrency(blocks: u64, per_request: u64) -> f64 {
    // Printed with two decimals ("%.2fx"); the estimate keeps them floored.
    (blocks as f64 / per_request as f64 * 100.0).floor() / 100.0
}

#[test]
fn qwen3_next_80b_tp4_on_h100_at_019() {
    // Qwen3-Next-80B-A3B: 48 layers, 12 full attention (2 KV heads × 256) and 36 gated delta
    // nets (16 key heads, 32 value heads, 128 × 128, conv kernel 4), bf16, TP 4.
    // Attention page per token: FullAttentionSpec(block 1): 2 × max(1, 2/4) heads × 256 × 2 B
    //   = 1,024 B.
    // State (mamba_utils.py gated_delta_net_state_shape): conv (4 − 1, (2·16·128 + 32·128)/4 =
    //   2,048) × 2 B = 12,288 B; temporal (32/4, 128, 128) × 2 B = 262,144 B; 274,432 B.
    // Block (HybridAttentionMambaModelConfig, mode none): 16 × ceil(274,432 / (16 × 1,024)) =
    //   16 × 17 = 272 tokens; attention page 272 × 1,024 = 278,528 B; the state padded to it.
    // Groups (_get_kv_cache_groups_uniform_page_size): 12 full, 36 state; 36 ≥ 1.5 × 12 so
    //   groups of 12: 1 full + 3 state groups, 12 tensors; a block costs 12 × 278,528 B.
    // "GPU KV cache size" (0.19) = blocks // 4 × 272; one request of 32,768 tokens holds
    //   ceil(32,768 / 272) = 121 attention blocks + 3 state blocks = 124.
    let e = run("Qwen/Qwen3-Next-80B-A3B-Instruct", 32768, 4, &args("0.19"));
    assert_eq!(e.block_size, Some(272));
    let blocks = e.kv_cache_blocks.unwrap();
    assert!(blocks > 1000, "{blocks}");
    assert_eq!(e.kv_pool_bytes, Some(blocks * 12 * 278_528));
    assert_eq!(e.kv_cache_tokens, Some(blocks / 4 * 272));
    assert_eq!(e.engine_max_concurrency, Some(concurrency(blocks, 124)));
    assert_eq!(setting(&e, "mamba_cache_mode"), "none");
    assert!(setting(&e, "mamba_state_page").starts_with("274,432 B"));
    // One request's KV: 124 blocks × 12 × 278,528 B.
    assert_eq!(e.kv_cache_bytes, 124 * 12 * 278_528);

    // 0.21+: the tokens line is int(max concurrency × max_model_len).
    let e = run("Qwen/Qwen3-Next-80B-A3B-Instruct", 32768, 4, &args("0.21"));
    let blocks = e.kv_cache_blocks.unwrap();
    assert_eq!(
        e.kv_cache_tokens,
        Some((blocks as f64 / 124.0 * 32768.0) as u64)
    );

    // 0.26: prefix caching on for hybrid models; gated delta nets have no "all" mode
    // (SupportsMambaPrefixCaching), so "align": two state pages per sequence, the same block.
    let e = run("Qwen/Qwen3-Next-80B-A3B-Instruct", 32768, 4, &args("0.26"));
    assert_eq!(setting(&e, "mamba_cache_mode"), "align");
    assert_eq!(e.block_size, Some(272));
    let blocks = e.kv_cache_blocks.unwrap();
    assert_eq!(
        e.engine_max_concurrency,
        Some(concurrency(blocks, 121 + 3 * 2))
    );
}

#[test]
fn qwen3_next_with_its_mtp_layer() {
    // --speculative-config '{"method": "mtp", "num_speculative_tokens": 1}': the conv state
    // keeps one more column (kernel − 1 + 1 = 4): 4 × 2,048 × 2 = 16,384 B + 262,144 B =
    // 278,528 B, exactly 272 × 1,024 (no padding); each sequence holds 1 + 1 state pages
    // (num_speculative_blocks). The MTP layer is a 13th full-attention layer: groups of 13
    // (36 ≥ 1.5 × 13), 1 full + 3 state groups, 13 tensors; a request of 32,768 tokens holds
    // 121 + 3 × 2 = 127 blocks.
    let cat = catalogue();
    let m = cat.model("Qwen/Qwen3-Next-80B-A3B-Instruct").unwrap();
    let mut a = args("0.19");
    a.speculative = Some(
        vllm::parse_speculative(r#"{"method": "mtp", "num_speculative_tokens": 1}"#, m).unwrap(),
    );
    let e = run("Qwen/Qwen3-Next-80B-A3B-Instruct", 32768, 4, &a);
    assert_eq!(e.block_size, Some(272));
    assert!(setting(&e, "mamba_state_page").starts_with("278,528 B"));
    let blocks = e.kv_cache_blocks.unwrap();
    assert_eq!(e.kv_pool_bytes, Some(blocks * 13 * 278_528));
    assert_eq!(e.engine_max_concurrency, Some(concurrency(blocks, 127)));
}

#[test]
fn nemotron_h_block_size_by_release_and_flags() {
    // NVIDIA-Nemotron-Nano-9B-v2: 56 layers (27 Mamba-2, 4 attention, 25 MLP-only), Mamba-2
    // 128 heads × 80, state 128, 8 groups, conv 4; attention 8 KV heads × 128; TP 1.
    // Attention page per token: 2 × 8 × 128 × 2 B = 4,096 B.
    // conv (4 − 1, 128·80 + 2·8·128 = 12,288) × 2 B = 73,728 B; temporal (128, 80, 128) =
    // 1,310,720 elements.
    let m = "nvidia/NVIDIA-Nemotron-Nano-9B-v2";
    // 0.12: the SSM state in the model dtype: 73,728 + 2,621,440 = 2,695,168 B;
    // 16 × ceil(2,695,168 / 65,536) = 16 × 42 = 672.
    let e = run(m, 32768, 1, &args("0.12"));
    assert_eq!(e.block_size, Some(672));
    assert!(setting(&e, "mamba_state_page").starts_with("2,695,168 B"));
    // 0.13+: NemotronHForCausalLMConfig takes the config's mamba_ssm_cache_dtype (float32 in
    // the transformers class defaults): 73,728 + 5,242,880 = 5,316,608 B; 16 × 82 = 1,312.
    let e = run(m, 32768, 1, &args("0.19"));
    assert_eq!(e.block_size, Some(1312));
    // Groups: 4 attention, 27 state → groups of 4: 1 + 7 groups, 4 tensors; one request
    // holds ceil(32,768 / 1,312) = 25 + 7 blocks.
    let blocks = e.kv_cache_blocks.unwrap();
    assert_eq!(e.kv_pool_bytes, Some(blocks * 4 * 1312 * 4096));
    assert_eq!(e.kv_cache_tokens, Some(blocks / 8 * 1312));
    assert_eq!(e.engine_max_concurrency, Some(concurrency(blocks, 25 + 7)));
    // --mamba-ssm-cache-dtype float16 brings it back to 672.
    let mut a = args("0.19");
    a.hybrid.mamba_ssm_cache_dtype = MambaDtype::Float16;
    assert_eq!(run(m, 32768, 1, &a).block_size, Some(672));
    // Prefix caching (--enable-prefix-caching at 0.19, the default from 0.26): mode "all",
    // block = lcm(chunk 128, 16) × ceil(ceil(5,316,608 / 4,096) / 128) = 128 × 11 = 1,408;
    // a request holds ceil(32,768 / 1,408) = 24 blocks in each of the 8 groups.
    let mut a = args("0.19");
    a.hybrid.prefix_caching = Some(true);
    let e = run(m, 32768, 1, &a);
    assert_eq!(setting(&e, "mamba_cache_mode"), "all");
    assert_eq!(e.block_size, Some(1408));
    let e = run(m, 32768, 1, &args("0.26"));
    assert_eq!(e.block_size, Some(1408));
    let blocks = e.kv_cache_blocks.unwrap();
    assert_eq!(e.engine_max_concurrency, Some(concurrency(blocks, 24 * 8)));
    // --mamba-cache-mode align at 0.26: two pages per sequence, the "none" block size.
    let mut a = args("0.26");
    a.hybrid.mamba_cache_mode = Some(MambaCacheMode::Align);
    let e = run(m, 32768, 1, &a);
    assert_eq!(e.block_size, Some(1312));
    let blocks = e.kv_cache_blocks.unwrap();
    assert_eq!(
        e.engine_max_concurrency,
        Some(concurrency(blocks, 25 + 7 * 2))
    );
    // The flag does not exist before 0.16.
    let cat = catalogue();
    let mut a = args("0.14");
    a.hybrid.mamba_cache_mode = Some(MambaCacheMode::Align);
    let err = vllm::estimate(
        cat.model(m).unwrap(),
        cat.gpu("h100").unwrap(),
        config(32768, 1),
        &a,
    )
    .unwrap_err();
    assert!(err.contains("--mamba-cache-mode"), "{err}");
}

#[test]
fn jamba_mamba1_state_sharded_over_tp() {
    // Jamba-v0.1: 32 layers, attention every 8th from 4 (4 layers, 8 KV heads × 128), Mamba
    // d_inner 2 × 4,096 = 8,192, state 16, conv 4; TP 2.
    // mamba1_state_shape: conv (3, 8,192/2) × 2 B = 24,576 B; temporal (4,096, 16) × 2 B =
    // 131,072 B; 155,648 B. Attention per token 2 × 4 × 128 × 2 = 2,048 B; block 16 ×
    // ceil(155,648 / 32,768) = 80. Groups of 4: 1 + 7, 4 tensors.
    let e = run("ai21labs/Jamba-v0.1", 16384, 2, &args("0.19"));
    assert_eq!(e.block_size, Some(80));
    assert!(setting(&e, "mamba_state_page").starts_with("155,648 B"));
    let blocks = e.kv_cache_blocks.unwrap();
    assert_eq!(e.kv_pool_bytes, Some(blocks * 4 * 80 * 2048));
    // ceil(16,384 / 80) = 205 attention blocks + 7 state blocks.
    assert_eq!(e.engine_max_concurrency, Some(concurrency(blocks, 205 + 7)));
}

#[test]
fn deepseek_v32_indexer_cache_joins_the_mla_page() {
    // MLA row 512 + 64 = 576 values (bf16: 1,152 B); the indexer's key cache 128 fp8 values +
    // 128/128 fp32 scales = 132 B (deepseek_v2.py DeepseekV32IndexerCache); block 64.
    let cat = catalogue();
    let m: &ModelDesc = cat.model("deepseek-ai/DeepSeek-V3.2-Exp").unwrap();
    assert_eq!(vllm::page_bytes(m, KvDtype::Bf16, 8, 64), 64 * (1152 + 132));
    // fp8: FlashMLA-sparse's fp8_ds_mla row of 656 B (512 fp8 + 4 fp32 scales + 64 bf16).
    assert_eq!(vllm::page_bytes(m, KvDtype::Fp8, 8, 64), 64 * (656 + 132));
    // The estimate's per-token figure is vLLM's: 61 layers × 1,284 B = 78,324 B.
    let mut c = config(32768, 8);
    c.weights = m.native_format();
    let e = vllm::estimate(m, cat.gpu("h200").unwrap(), c, &args("0.19")).unwrap();
    assert_eq!(e.kv_bytes_per_token, 61 * 1284);
    let blocks = e.kv_cache_blocks.unwrap();
    assert!(blocks > 1000, "{blocks}");
    assert_eq!(e.kv_pool_bytes, Some(blocks * 61 * 64 * 1284));
    // DeepSeek-V3 (no indexer) keeps the plain latent row.
    let v3 = cat.model("deepseek-ai/DeepSeek-V3").unwrap();
    assert_eq!(vllm::page_bytes(v3, KvDtype::Bf16, 8, 64), 64 * 1152);
}

#[test]
fn sliding_window_reserve_follows_the_batches_in_flight() {
    // gpt-oss-20b: 24 layers, 12 sliding (window 128) and 12 full, block 16; at 32,768 tokens
    // and --max-num-batched-tokens 8,192 a request holds 2,048 full blocks and
    // (0.25) ceil(min(127 + 8,192, 32,768) / 16) + 1 = 521 window blocks;
    // (0.26, async scheduling on Model Runner V1 without PP: 2 batches in flight)
    // ceil(min(127 + 16,384, 32,768) / 16) + 1 = 1,033.
    let cat = catalogue();
    let m = cat.model("openai/gpt-oss-20b").unwrap();
    for (version, per_request) in [("0.25", 2048 + 521), ("0.26", 2048 + 1033)] {
        let mut a = args(version);
        a.max_num_batched_tokens = Some(8192);
        let mut c = config(32768, 1);
        c.weights = WeightFormat::Mxfp4;
        let e = vllm::estimate(m, cat.gpu("h100").unwrap(), c, &a).unwrap();
        let blocks = e.kv_cache_blocks.unwrap();
        assert_eq!(
            e.engine_max_concurrency,
            Some(concurrency(blocks, per_request)),
            "{version}"
        );
    }
}

#[test]
fn attention_free_mamba_keeps_one_state_page_per_sequence() {
    // A Falcon-Mamba-shaped model (64 Mamba layers, d_inner 8,192, state 16, conv 4), no
    // attention: no page unification (not is_hybrid), no prefix caching by default even on
    // 0.26 (is_prefix_caching_supported: False for "attention_free"). State page: conv
    // (3, 8,192) × 2 B + (8,192, 16) × 2 B = 311,296 B; one group of 64 layers; each request
    // holds one block; the state groups' block size is max_model_len, so the tokens line is
    // blocks × 8,192.
    let hf = serde_json::json!({
        "architectures": ["FalconMambaForCausalLM"], "model_type": "falcon_mamba",
        "hidden_size": 4096, "num_hidden_layers": 64, "state_size": 16, "conv_kernel": 4,
        "expand": 2, "intermediate_size": 8192, "vocab_size": 65024, "time_step_rank": 256,
        "use_bias": false, "use_conv_bias": true, "layer_norm_epsilon": 1e-5,
        "torch_dtype": "bfloat16", "tie_word_embeddings": false, "mixer_rms_eps": 1e-6,
        "max_position_embeddings": 8192
    });
    let m = vramplan_core::arch::describe(&hf).unwrap();
    let cat = catalogue();
    for version in ["0.19", "0.26"] {
        let e = vllm::estimate(
            &m,
            cat.gpu("h100").unwrap(),
            config(8192, 1),
            &args(version),
        )
        .unwrap();
        assert_eq!(setting(&e, "mamba_cache_mode"), "none", "{version}");
        let blocks = e.kv_cache_blocks.unwrap();
        assert_eq!(e.kv_pool_bytes, Some(blocks * 64 * 311_296));
        assert_eq!(e.kv_cache_tokens, Some(blocks * 8192));
        assert_eq!(e.engine_max_concurrency, Some(concurrency(blocks, 1)));
    }
}

#[test]
fn granite_4_micro_is_hybrid_by_class_until_0_11_1() {
    // ibm-granite/granite-4.0-micro: GraniteMoeHybridForCausalLM, 40 layers, every layer_types
    // entry "attention" (8 KV heads × 64). vLLM 0.11.0's ModelConfig.is_hybrid is the class's,
    // so HybridAttentionMambaModelConfig sizes the Mamba-2 state its config describes, though no
    // layer keeps one: conv (4 − 1) × (2 × 2,560 + 2 × 1 × 256 = 5,632) = 16,896 elements,
    // temporal 128 heads × 40 × 256 = 1,310,720 elements, × 2 B (bf16) = 2,655,232 B. Attention
    // page per token 2 × 8 × 64 × 2 B = 2,048 B; block 16 × ceil(2,655,232 / 32,768) = 16 × 82
    // = 1,312 tokens (vllm.jsonl:48 logs 463,136 tokens = 353 × 1,312). No state group: the
    // pool is 40 tensors of 1,312 × 2,048 B per block, and the tokens line is blocks × 1,312.
    let m = "ibm-granite/granite-4.0-micro";
    let desc = catalogue().model(m).unwrap();
    assert!(!desc.has_recurrent_layers());
    assert!(
        desc.unused_state
            .as_ref()
            .unwrap()
            .layer_types_all_attention
    );
    let e = run(m, 131072, 1, &args("0.11.0"));
    assert_eq!(e.block_size, Some(1312));
    let blocks = e.kv_cache_blocks.unwrap();
    assert_eq!(e.kv_pool_bytes, Some(blocks * 40 * 1312 * 2048));
    assert_eq!(e.kv_cache_tokens, Some(blocks * 1312));
    assert_eq!(setting(&e, "mamba_state_page"), "");
    assert_eq!(setting(&e, "hybrid_detection"), "model_class");
    // 0.11.1 (vllm-project/vllm#28563): layer_types all "attention" is not hybrid: block 16.
    let e = run(m, 131072, 1, &args("0.11.1"));
    assert_eq!(e.block_size, Some(16));
    assert_eq!(setting(&e, "hybrid_detection"), "layer_types");
    let e = run(m, 131072, 1, &args("0.19"));
    assert_eq!(e.block_size, Some(16));
}
