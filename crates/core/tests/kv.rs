//! KV bytes per token checked by hand for each attention kind, on catalogue models.

use vramplan_core::kv::{kv_bytes_per_token, KvLayout};
use vramplan_core::{catalogue, KvDtype, ModelDesc};

fn model(id: &str) -> &'static ModelDesc {
    catalogue().model(id).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn mha_llama_2_7b() {
    // 2 (K,V) × 32 layers × 32 heads × 128 dims × 2 bytes = 524,288 B.
    assert_eq!(
        kv_bytes_per_token(model("meta-llama/Llama-2-7b-hf"), KvDtype::F16),
        524_288
    );
}

#[test]
fn gqa_llama_3_1_8b_and_dtypes() {
    let m = model("meta-llama/Llama-3.1-8B-Instruct");
    // 2 × 32 layers × 8 KV heads × 128 × 2 B = 131,072 B (vLLM PR #17122: 158,656 tokens = 19.37 GiB).
    assert_eq!(kv_bytes_per_token(m, KvDtype::Bf16), 131_072);
    assert_eq!(kv_bytes_per_token(m, KvDtype::Fp8), 65_536);
    // q8_0: rows of 1024 elements = 32 blocks × 34 B = 1088 B; × 2 × 32 layers = 69,632 B.
    assert_eq!(
        kv_bytes_per_token(m, KvDtype::parse("q8_0").unwrap()),
        69_632
    );
    // q4_0: 32 blocks × 18 B = 576 B per row; × 64 rows = 36,864 B.
    assert_eq!(
        kv_bytes_per_token(m, KvDtype::parse("q4_0").unwrap()),
        36_864
    );
}

#[test]
fn mqa_falcon_7b() {
    // 2 × 32 layers × 1 KV head × 64 dims × 2 B = 8,192 B; the naive 2·2·32·4544 = 581,632 is 71× more.
    let m = model("tiiuae/falcon-7b");
    assert_eq!(kv_bytes_per_token(m, KvDtype::F16), 8_192);
    assert_eq!(vramplan_core::kv::naive_kv_bytes_per_token(m), 581_632);
}

#[test]
fn mla_deepseek_v3() {
    // 61 layers × (512 latent + 64 rope) × 2 B = 70,272 B (docs/reference/papers.md §4.2).
    assert_eq!(
        kv_bytes_per_token(model("deepseek-ai/DeepSeek-V3"), KvDtype::Bf16),
        70_272
    );
}

#[test]
fn sliding_window_mistral_v0_1_and_gemma_2() {
    let m = model("mistralai/Mistral-7B-v0.1");
    let all = KvLayout::new(m, KvDtype::F16, 1, 0..m.num_layers);
    // Per token 2 × 32 × 8 × 128 × 2 = 131,072 B; every layer capped at 4096 tokens, so a
    // 32k sequence holds 4096 × 131,072 = 536,870,912 B, the same as a 4096-token one.
    assert_eq!(all.bytes_per_token(), 131_072);
    assert_eq!(all.bytes_per_sequence(32_768), 536_870_912);
    assert_eq!(all.bytes_per_sequence(4096), 536_870_912);
    assert_eq!(all.bytes_per_sequence(1000), 131_072_000);

    // Gemma 2 9B: 42 layers, 8 KV heads × 256 dims; 21 local (window 4096) + 21 global.
    // Per layer-token 2 × 8 × 256 × 2 = 8,192 B. At 8192 tokens: 21 × 8192 × 8192 + 21 × 4096 × 8192
    // = 1,409,286,144 + 704,643,072 = 2,113,929,216 B.
    let g = model("google/gemma-2-9b");
    let l = KvLayout::new(g, KvDtype::Bf16, 1, 0..g.num_layers);
    assert_eq!(l.bytes_per_sequence(8192), 2_113_929_216);
}

#[test]
fn hybrid_jamba_attention_layers_plus_constant_state() {
    let m = model("ai21labs/Jamba-v0.1");
    let l = KvLayout::new(m, KvDtype::Bf16, 1, 0..m.num_layers);
    // 32 layers, one attention layer in 8 (period 8, offset 4) → 4 attention layers:
    // 4 × 2 × 8 KV heads × 128 × 2 B = 16,384 B per token.
    assert_eq!(l.bytes_per_token(), 16_384);
    // 28 Mamba layers, d_inner = 2 × 4096 = 8192, as transformers' cache holds them (checked
    // against the oracle's jamba record): conv state [8192, d_conv 4] in bf16 = 65,536 B + SSM
    // state [8192, d_state 16] in fp32 = 524,288 B → 589,824 B each → 16,515,072 B per sequence,
    // independent of context.
    assert_eq!(l.state_layers, 28);
    assert_eq!(l.bytes_per_sequence(1) - 16_384, 16_515_072);
    assert_eq!(
        l.bytes_per_sequence(1000) - l.bytes_per_sequence(1),
        999 * 16_384
    );
}

#[test]
fn a_null_sliding_window_is_full_attention_not_the_class_default() {
    // Mistral-Nemo's config.json says "sliding_window": null: transformers keeps None, so all 40
    // layers cache the whole context. MistralConfig's default window (4096) applies only when the
    // key is absent. KV per token: 2 × 40 layers × 8 KV heads × 128 × 2 B = 163,840 B.
    let nemo = model("mistralai/Mistral-Nemo-Instruct-2407");
    let s = nemo.layer_summary();
    assert_eq!(s.kinds.get("full_attention"), Some(&40), "{:?}", s.kinds);
    assert!(s.windows.is_empty(), "{:?}", s.windows);
    assert_eq!(kv_bytes_per_token(nemo, KvDtype::F16), 163_840);
    // The same config without the key takes the class default: 40 sliding layers of 4096.
    let mut config: serde_json::Value = serde_json::from_str(
        r#"{"architectures": ["MistralForCausalLM"], "model_type": "mistral", "head_dim": 128,
            "hidden_size": 5120, "intermediate_size": 14336, "max_position_embeddings": 1024000,
            "num_attention_heads": 32, "num_hidden_layers": 40, "num_key_value_heads": 8,
            "sliding_window": null, "torch_dtype": "bfloat16", "vocab_size": 131072}"#,
    )
    .unwrap();
    let full = vramplan_core::arch::describe(&config).unwrap();
    assert_eq!(full.layer_summary().kinds.get("full_attention"), Some(&40));
    config.as_object_mut().unwrap().remove("sliding_window");
    let windowed = vramplan_core::arch::describe(&config).unwrap();
    assert_eq!(
        windowed.layer_summary().kinds.get("sliding_attention"),
        Some(&40)
    );
}
