//! llama.cpp's per-architecture defaults for sliding-window keys a GGUF leaves out
//! (src/models/<arch>.cpp `load_arch_hparams` at ggml-org/llama.cpp@0c1e57098), on headers
//! built byte by byte.

mod common;

use common::GgufBuilder;
use vramplan_formats::gguf;

fn config(arch: &str, extra: &[(&str, u32)]) -> vramplan_formats::ModelConfig {
    let mut b = GgufBuilder::new(3);
    b.kv_str("general.architecture", arch)
        .kv_u32(&format!("{arch}.block_count"), 12)
        .kv_u32(&format!("{arch}.embedding_length"), 1024)
        .kv_u32(&format!("{arch}.attention.head_count"), 8)
        .kv_u32(&format!("{arch}.attention.head_count_kv"), 4)
        .kv_u32(&format!("{arch}.context_length"), 32768)
        .kv_str_array("tokenizer.ggml.tokens", &["a", "b"]);
    for (k, v) in extra {
        b.kv_u32(&format!("{arch}.{k}"), *v);
    }
    let bytes = b.build();
    let src = vramplan_formats::MemorySource::new("t.gguf", &bytes);
    let h = gguf::read_header(&src, &mut vramplan_formats::TensorList::new(), 0).unwrap();
    gguf::model_config(&h, Some(true), "t.gguf")
        .unwrap()
        .unwrap()
}

#[test]
fn gemma2_without_a_window_key_gets_4096_and_period_2() {
    // gemma2.cpp: `hparams.n_swa = 4096; // default value of gemma 2`, load_swa_pattern(ml, 2).
    // The harness records this: data/calibration/llamacpp_truth gemma2_nowindowkey.
    let c = config("gemma2", &[]);
    assert_eq!(
        (c.sliding_window, c.sliding_window_pattern),
        (Some(4096), Some(2))
    );
    let c = config("gemma2", &[("attention.sliding_window", 1024)]);
    assert_eq!(c.sliding_window, Some(1024));
}

#[test]
fn gemma3_without_a_pattern_key_is_five_local_to_one_global() {
    // gemma3.cpp: with a window, load_swa_pattern(ml, 6).
    let c = config("gemma3", &[("attention.sliding_window", 1024)]);
    assert_eq!(c.sliding_window_pattern, Some(6));
    // The file's own pattern wins.
    let c = config(
        "gemma3",
        &[
            ("attention.sliding_window", 1024),
            ("attention.sliding_window_pattern", 4),
        ],
    );
    assert_eq!(c.sliding_window_pattern, Some(4));
    // No window: full attention.
    assert_eq!(config("gemma3", &[]).sliding_window_pattern, None);
}

#[test]
fn llama4_is_chunked_by_8192_unless_the_window_is_0() {
    // llama4.cpp: n_swa = 8192, load_swa_pattern(ml, 4): layers 3, 7, 11 global.
    let c = config("llama4", &[]);
    assert_eq!(c.sliding_window, Some(8192));
    let global: Vec<usize> = c
        .layer_types
        .iter()
        .enumerate()
        .filter(|(_, t)| *t == "full_attention")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(global, vec![3, 7, 11]);
    let off = config("llama4", &[("attention.sliding_window", 0)]);
    assert!(off.layer_types.is_empty() && off.sliding_window == Some(0));
}

#[test]
fn phi3_window_is_ignored() {
    // phi3.cpp: "Phi SWA is currently disabled".
    let c = config("phi3", &[("attention.sliding_window", 2047)]);
    assert_eq!(c.sliding_window, None);
}
