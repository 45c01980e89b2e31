//! llama.cpp's per-architecture defaults for sliding-window keys a GGUF leaves out
//! (src/models/<arch>.cpp `load_arch_hparams` at ggml-org/llama.cpp@0c1e57098, as data in
//! crates/core/data/gguf/keys.toml `[loader.*]`), on headers built byte by byte and read through
//! the GGUF → config.json translation and the one config.json mapping.

mod common;

use common::GgufBuilder;
use vramplan_core::ModelDesc;
use vramplan_formats::gguf;

fn describe(arch: &str, n_layers: u32, extra: &[(&str, u32)]) -> ModelDesc {
    let mut b = GgufBuilder::new(3);
    b.kv_str("general.architecture", arch)
        .kv_u32(&format!("{arch}.block_count"), n_layers)
        .kv_u32(&format!("{arch}.embedding_length"), 1024)
        .kv_u32(&format!("{arch}.attention.head_count"), 8)
        .kv_u32(&format!("{arch}.attention.head_count_kv"), 4)
        .kv_u32(&format!("{arch}.context_length"), 32768)
        .kv_u32(&format!("{arch}.feed_forward_length"), 2048)
        .kv_str_array("tokenizer.ggml.tokens", &["a", "b"]);
    for (k, v) in extra {
        b.kv_u32(&format!("{arch}.{k}"), *v);
    }
    let bytes = b.build();
    let src = vramplan_formats::MemorySource::new("t.gguf", &bytes);
    let h = gguf::read_header(&src, &mut vramplan_formats::TensorList::new(), 0).unwrap();
    let config = gguf::model_config(&h, Some(true), "t.gguf")
        .unwrap()
        .unwrap();
    vramplan_core::arch::describe(&config).unwrap_or_else(|e| panic!("{arch}: {e}"))
}

/// The layer pattern (F full, S sliding, C chunked) and the window lengths with their layers.
fn pattern(m: &ModelDesc) -> (String, Vec<(u64, u64)>) {
    let s = m.layer_summary();
    (
        s.pattern,
        s.windows.iter().map(|w| (w.tokens, w.layers)).collect(),
    )
}

#[test]
fn gemma2_without_a_window_key_gets_4096_and_period_2() {
    // gemma2.cpp: `hparams.n_swa = 4096; // default value of gemma 2`, load_swa_pattern(ml, 2).
    // The harness records this: data/calibration/llamacpp_truth gemma2_nowindowkey.
    let m = describe("gemma2", 12, &[]);
    assert_eq!(pattern(&m), ("SFSFSFSFSFSF".into(), vec![(4096, 6)]));
    let m = describe("gemma2", 12, &[("attention.sliding_window", 1024)]);
    assert_eq!(pattern(&m).1, vec![(1024, 6)]);
}

#[test]
fn gemma3_without_a_pattern_key_is_five_local_to_one_global() {
    // gemma3.cpp: with a window, load_swa_pattern(ml, 6).
    let m = describe("gemma3", 12, &[("attention.sliding_window", 1024)]);
    assert_eq!(pattern(&m), ("SSSSSFSSSSSF".into(), vec![(1024, 10)]));
    // The file's own period wins.
    let m = describe(
        "gemma3",
        12,
        &[
            ("attention.sliding_window", 1024),
            ("attention.sliding_window_pattern", 4),
        ],
    );
    assert_eq!(pattern(&m).0, "SSSFSSSFSSSF");
    // No window: full attention (transformers' class default of 4096 does not apply).
    assert_eq!(pattern(&describe("gemma3", 12, &[])).0, "FFFFFFFFFFFF");
}

#[test]
fn llama4_is_chunked_by_8192_unless_the_window_is_0() {
    // llama4.cpp: n_attn_chunk = 8192, load_swa_pattern(ml, 4): layers 3, 7, 11 global.
    let m = describe("llama4", 12, &[]);
    assert_eq!(pattern(&m), ("CCCFCCCFCCCF".into(), vec![(8192, 9)]));
    let off = describe("llama4", 12, &[("attention.sliding_window", 0)]);
    assert_eq!(pattern(&off), ("FFFFFFFFFFFF".into(), vec![]));
}

#[test]
fn phi3_window_is_ignored() {
    // phi3.cpp: "Phi SWA is currently disabled".
    let m = describe("phi3", 4, &[("attention.sliding_window", 2047)]);
    assert_eq!(pattern(&m), ("FFFF".into(), vec![]));
}

#[test]
fn gemma3n_keeps_kv_in_its_first_20_layers() {
    // gemma3n.cpp: n_layer_kv_from_start = 20; the others read an earlier layer's cache.
    let m = describe("gemma3n", 22, &[("attention.sliding_window", 512)]);
    assert_eq!(vramplan_core::engine::llamacpp::layers_with_own_kv(&m), 20);
    assert_eq!(&m.layer_summary().pattern[..5], "SSSSF");
}
