//! config.json, safetensors index and ollama manifest parsing on arbitrary bytes; the bytes as
//! each quantization file beside config.json (hf_quant_config.json, quantize_config.json,
//! quant_config.json) merged into a small config and through the mapping.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vramplan_formats::{detect, hf_config, safetensors, stores};

fuzz_target!(|data: &[u8]| {
    match hf_config::parse_config(data, "config.json") {
        // The config.json mapping on whatever object parsed: a description or a one-line refusal.
        Ok(c) => match vramplan_core::arch::describe(&c) {
            Ok(d) => {
                let _ = d.params();
                let _ = d.layer_summary();
            }
            Err(e) => assert!(!e.message.contains('\n'), "multi-line error: {e}"),
        },
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
    if let Err(e) = safetensors::parse_index(data, Path::new("/nonexistent-dir"), "index.json") {
        assert!(!e.to_string().contains('\n'));
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = detect::classify_json(&value);
        let r = stores::parse_ollama_manifest(
            &value,
            Path::new("/nonexistent-dir"),
            Path::new("/nonexistent-dir/manifests/x"),
            "x",
        );
        if let Err(e) = r {
            assert!(!e.to_string().contains('\n'));
        }
    }
    for name in vramplan_formats::layout::QUANT_CONFIGS {
        let mut config = serde_json::json!({
            "model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
            "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100,
            "max_position_embeddings": 512
        });
        match hf_config::merge_quant_config(&mut config, name, data, name) {
            Ok(_) => match vramplan_core::arch::describe(&config) {
                Ok(d) => {
                    let _ = d.native_format();
                    let _ = d.params();
                }
                Err(e) => assert!(!e.message.contains('\n'), "multi-line error: {e}"),
            },
            Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = stores::parse_ollama_name(s);
    }
});
