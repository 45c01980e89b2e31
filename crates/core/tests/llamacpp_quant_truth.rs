//! GGUF quant mixes by name against llama.cpp's own quantizer: every record of
//! data/calibration/llamacpp_truth/quantize.jsonl is a file `llama_model_quantize` wrote
//! (ggml-org/llama.cpp@0c1e57098, scripts/llamacpp_truth/quantize.py) from an f16 random-weight
//! file of a dense (llama), MoE (qwen3moe, mixtral: 8 experts) or MLA (deepseek2) architecture.
//! The port of the rules must give every tensor the type llama.cpp picked, and so the same
//! tensor bytes; the file's bytes are its header (data offset) plus those tensors, each padded
//! to 32.

use std::path::PathBuf;

use serde_json::Value;
use vramplan_core::engine::llamacpp::quant_mix::{
    choose_types, tensor_data_bytes, Ftype, GgufTensor, QuantModel,
};
use vramplan_core::ggml::GgmlType;

fn records(file: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/calibration/llamacpp_truth")
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("unsigned")
}

/// The quantizer's view of a harness model, from its GGUF metadata (models.jsonl).
fn quant_model(m: &Value) -> QuantModel {
    let h = &m["hparams"];
    let n_head = u(&h["attention.head_count"]);
    let n_head_kv = u(&h["attention.head_count_kv"]);
    QuantModel {
        arch: m["arch"].as_str().unwrap().to_string(),
        n_expert: h.get("expert_count").map_or(0, u),
        n_gqa: n_head / n_head_kv,
        n_layer: u(&h["block_count"]),
        is_70b: false,
    }
}

#[test]
fn every_tensor_at_the_type_llamacpp_picked() {
    let models = records("models.jsonl");
    let quantized = records("quantize.jsonl");
    let mut files = 0;
    let mut archs = std::collections::BTreeSet::new();
    for q in &quantized {
        let name = q["model_name"].as_str().unwrap();
        let ft = Ftype::parse(q["ftype"].as_str().unwrap()).expect("file type");
        let model = models
            .iter()
            .find(|m| m["model_name"] == name)
            .expect("model");
        let src: Vec<GgufTensor> = q["source_tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| GgufTensor {
                name: t["name"].as_str().unwrap().into(),
                ne: t["ne"].as_array().unwrap().iter().map(u).collect(),
                ty: GgmlType::by_name(t["type"].as_str().unwrap()).unwrap(),
            })
            .collect();
        let imatrix = q["imatrix"].is_string();
        let chosen = choose_types(ft, &quant_model(model), &src, imatrix);
        if q["ok"] != true {
            assert!(chosen.is_err(), "{name} {}: llama.cpp refused", ft.name);
            continue;
        }
        let chosen = chosen.unwrap_or_else(|e| panic!("{name} {}: {e}", ft.name));
        // The quantizer writes tensors in its own visiting order: match them by name.
        let written: std::collections::HashMap<&str, &str> = q["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap(), t["type"].as_str().unwrap()))
            .collect();
        assert_eq!(written.len(), src.len(), "{name}: tensor count");
        for (s, ty) in src.iter().zip(&chosen) {
            assert_eq!(
                Some(&ty.name),
                written.get(s.name.as_str()),
                "{name} {} imatrix={imatrix}: {}",
                ft.name,
                s.name
            );
        }
        // File bytes = header (up to the data offset) + each tensor padded to 32.
        let data = tensor_data_bytes(&src, &chosen);
        assert_eq!(
            u(&q["data_offset_bytes"]) + data,
            u(&q["file_size_bytes"]),
            "{name} {}",
            ft.name
        );
        files += 1;
        archs.insert(model["arch"].as_str().unwrap().to_string());
    }
    // Dense, MoE and MLA, Q2_K..Q6_K with _S/_M/_L, IQ4_XS, Q4_0, Q8_0 each.
    assert!(files >= 40, "{files} files");
    for a in ["llama", "qwen3moe", "deepseek2"] {
        assert!(archs.contains(a), "{a} missing from {archs:?}");
    }
}

/// Descriptions of the harness's dense, MoE and MLA models from the config.json each stands for
/// (scripts/llamacpp_truth/archs.py), through the one config.json mapping.
fn described(name: &str) -> vramplan_core::model::ModelDesc {
    let base = serde_json::json!({
        "num_hidden_layers": 4, "hidden_size": 1024, "vocab_size": 8192,
        "max_position_embeddings": 32768, "torch_dtype": "float16", "tie_word_embeddings": false,
    });
    let extra = match name {
        "llama" => serde_json::json!({"model_type": "llama", "num_attention_heads": 16,
            "num_key_value_heads": 4, "head_dim": 64, "intermediate_size": 2816}),
        "mixtral" => serde_json::json!({"model_type": "mixtral", "num_attention_heads": 16,
            "num_key_value_heads": 4, "head_dim": 64, "intermediate_size": 2816,
            "num_local_experts": 8, "num_experts_per_tok": 2}),
        "qwen3moe" => serde_json::json!({"model_type": "qwen3_moe", "num_attention_heads": 16,
            "num_key_value_heads": 4, "head_dim": 128, "intermediate_size": 3072,
            "num_experts": 16, "num_experts_per_tok": 4, "moe_intermediate_size": 512,
            "decoder_sparse_step": 1, "mlp_only_layers": []}),
        // DeepSeek-V2's layout (no e_score_correction_bias, as the harness file has none).
        "deepseek2" => serde_json::json!({"model_type": "deepseek_v2", "num_attention_heads": 8,
            "num_key_value_heads": 8, "intermediate_size": 2816,
            "kv_lora_rank": 512, "q_lora_rank": 512, "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128, "v_head_dim": 128,
            "n_routed_experts": 16, "num_experts_per_tok": 4, "moe_intermediate_size": 512,
            "n_shared_experts": 1, "first_k_dense_replace": 1, "moe_layer_freq": 1}),
        other => panic!("{other}"),
    };
    let mut v = base;
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    let mut d = vramplan_core::arch::describe(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
    d.id = name.to_string();
    d
}

#[test]
fn sizes_by_quant_name_equal_the_quantizers_files() {
    // A description's GGUF layout (names and shapes) is the file's, and `-q <type>` sizes it
    // at the quantizer's bytes: for a dense, two MoE and an MLA model, every file type.
    use vramplan_core::engine::llamacpp::{gguf_layout, TypeMix};
    let models = records("models.jsonl");
    let mut checked = 0;
    for q in records("quantize.jsonl") {
        let name = q["model_name"].as_str().unwrap();
        if q["imatrix"].is_string() {
            continue;
        }
        let desc = described(name);
        let layout: std::collections::BTreeMap<String, Vec<u64>> = gguf_layout::gguf_tensors(&desc)
            .into_iter()
            .map(|(_, t)| (t.name, t.ne))
            .collect();
        let file: std::collections::BTreeMap<String, Vec<u64>> =
            models.iter().find(|m| m["model_name"] == name).unwrap()["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap().to_string(),
                        t["ne"].as_array().unwrap().iter().map(u).collect(),
                    )
                })
                .collect();
        assert_eq!(layout, file, "{name}: the description's GGUF tensors");
        let mix = TypeMix::parse_file_type(q["ftype"].as_str().unwrap()).unwrap();
        let sized: u64 = mix
            .file_tensors(&desc)
            .unwrap()
            .unwrap()
            .iter()
            .map(|(_, t, ty)| t.bytes_as(*ty))
            .sum();
        assert_eq!(sized, u(&q["tensor_bytes"]), "{name} {}", q["ftype"]);
        checked += 1;
    }
    assert!(checked >= 48, "{checked}");
}
