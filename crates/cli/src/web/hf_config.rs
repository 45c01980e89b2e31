//! A pasted Hugging Face `config.json` object → a model description for the estimator.
//!
//! A thin adapter over the one config.json mapping (`vramplan_core::arch::describe`, the same
//! one the catalogue, files on disk and GGUF headers go through: every layer kind, hybrid and
//! multimodal configs included). This file only names the pasted model and turns the mapping's
//! refusals into `config.<field>` API errors.

use super::error::ApiError;
use serde_json::{Map, Value};
use vramplan_core::arch::ArchError;
use vramplan_core::ModelDesc;

type Cfg = Map<String, Value>;

/// The model description of a pasted config.json. Errors name the `config.<field>` at fault.
pub fn model_from_config(cfg: &Cfg) -> Result<ModelDesc, ApiError> {
    let label = match cfg.get("_name_or_path").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() => {
            format!("pasted config.json ({})", super::request::clip(n.trim()))
        }
        _ => match cfg
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
        {
            Some(a) => format!("pasted config.json ({})", super::request::clip(a)),
            None => "pasted config.json".to_string(),
        },
    };
    // The body limit already bounds the object's size.
    let value = Value::Object(cfg.clone());
    let mut desc = vramplan_core::arch::describe(&value).map_err(|e| to_api_error(&label, e))?;
    desc.id = label;
    desc.family = desc.top_model_type.clone();
    desc.source = "config.json pasted into the calculator".into();
    Ok(desc)
}

/// The mapping's refusal, on the `config.<field>` it names (the whole `config` when none).
fn to_api_error(label: &str, e: ArchError) -> ApiError {
    let field = match &e.field {
        // "text_config.head_dim (default of Gemma3TextConfig)" names the field before the space.
        Some(f) if f != "(top level)" => {
            format!("config.{}", f.split(' ').next().unwrap_or(f))
        }
        _ => "config".to_string(),
    };
    ApiError::bad(Some(&field), format!("{label}: {}", e.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> Cfg {
        v.as_object().unwrap().clone()
    }

    /// Llama-3.1-8B's config.json fields (meta-llama/Llama-3.1-8B-Instruct, as in data/models/llama.toml).
    fn llama_8b() -> Value {
        json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
            "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
            "max_position_embeddings": 131072, "tie_word_embeddings": false, "torch_dtype": "bfloat16"
        })
    }

    fn field_of(v: Value) -> Option<String> {
        model_from_config(&cfg(v)).unwrap_err().field
    }

    #[test]
    fn llama_config_matches_the_catalogue_entry() {
        let pasted = model_from_config(&cfg(llama_8b())).unwrap();
        let entry = vramplan_core::catalogue()
            .model("meta-llama/Llama-3.1-8B-Instruct")
            .unwrap();
        assert_eq!(pasted.params(), entry.params());
        // 8,030,261,248: the published safetensors total for Llama 3.1 8B.
        assert_eq!(pasted.params(), 8_030_261_248);
        assert_eq!(pasted.head_dim, 128); // 4096 / 32
        assert_eq!(pasted.id, "pasted config.json (LlamaForCausalLM)");
    }

    #[test]
    fn not_a_config_names_the_missing_field() {
        let e = model_from_config(&cfg(json!({"version": "1.0", "truncation": null}))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("config.num_hidden_layers"));
        assert!(e.error.contains("missing required field"), "{}", e.error);
        // transformers fills a missing field from the config class's default (LlamaConfig:
        // vocab_size 32000); a model_type without a class has none, so it is missing.
        let mut c = llama_8b();
        c.as_object_mut().unwrap().remove("vocab_size");
        assert_eq!(
            model_from_config(&cfg(c.clone())).unwrap().vocab_size,
            32_000
        );
        c["model_type"] = json!("no_such_model");
        assert_eq!(field_of(c).as_deref(), Some("config.vocab_size"));
    }

    #[test]
    fn wrong_types_and_impossible_values_are_refused() {
        let mut c = llama_8b();
        c["hidden_size"] = json!("4096");
        assert_eq!(field_of(c).as_deref(), Some("config.hidden_size"));
        let mut c = llama_8b();
        c["num_key_value_heads"] = json!(5); // 32 query heads are not a multiple of 5
        assert_eq!(field_of(c).as_deref(), Some("config.num_key_value_heads"));
        let mut c = llama_8b();
        c["num_hidden_layers"] = json!(u64::MAX);
        assert_eq!(field_of(c).as_deref(), Some("config.num_hidden_layers"));
        let mut c = llama_8b();
        c["kv_lora_rank"] = json!("512");
        assert_eq!(field_of(c).as_deref(), Some("config.kv_lora_rank"));
    }

    #[test]
    fn latent_attention_is_estimated_not_refused() {
        // DeepSeek-V2-Lite-shaped MLA fields: the KV cache holds kv_lora_rank + qk_rope_head_dim
        // values per layer and token (512 + 64), not heads × head_dim.
        let mut c = llama_8b();
        for (k, v) in [
            ("kv_lora_rank", 512),
            ("qk_rope_head_dim", 64),
            ("qk_nope_head_dim", 128),
            ("v_head_dim", 128),
        ] {
            c[k] = json!(v);
        }
        let mla = model_from_config(&cfg(c)).unwrap().mla.unwrap();
        assert_eq!((mla.kv_lora_rank, mla.qk_rope_head_dim), (512, 64));
        // Incomplete MLA fields name the one missing.
        let mut c = llama_8b();
        c["kv_lora_rank"] = json!(512);
        assert_eq!(field_of(c).as_deref(), Some("config.qk_rope_head_dim"));
    }

    #[test]
    fn hybrid_and_multimodal_configs_are_described_not_refused() {
        // A Qwen3-Next-shaped hybrid: 3 Gated DeltaNet layers for each full-attention one. Only
        // the 12 full-attention layers cache K and V: 12 × 2 × 2 KV heads × 256 × 2 B (bf16).
        let next = json!({
            "model_type": "qwen3_next", "num_hidden_layers": 48, "hidden_size": 2048,
            "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
            "intermediate_size": 5120, "vocab_size": 151936, "max_position_embeddings": 262144,
            "full_attention_interval": 4, "linear_conv_kernel_dim": 4,
            "linear_key_head_dim": 128, "linear_num_key_heads": 16,
            "linear_value_head_dim": 128, "linear_num_value_heads": 32,
            "num_experts": 512, "num_experts_per_tok": 10, "moe_intermediate_size": 512,
            "shared_expert_intermediate_size": 512, "torch_dtype": "bfloat16"
        });
        let d = model_from_config(&cfg(next)).unwrap();
        let s = d.layer_summary();
        assert_eq!(s.kinds["full_attention"], 12);
        assert_eq!(s.kinds["gated_deltanet"], 36);
        assert_eq!(
            vramplan_core::kv::kv_bytes_per_token(&d, vramplan_core::KvDtype::Bf16),
            12 * 2 * 2 * 256 * 2
        );
        // Per sequence, each linear layer keeps a conv state [2·16·128 + 32·128 = 8192, 4] in
        // bf16 and a recurrent state [32, 128, 128] in fp32, as transformers' cache does:
        // 32,768 × 2 B + 524,288 × 4 B = 2,162,688 B; × 36 layers.
        assert_eq!(s.state_bytes_per_sequence, 36 * 2_162_688);
        // A vision tower is counted, apart from the text model.
        let mut c = llama_8b();
        c["vision_config"] = json!({"model_type": "siglip_vision_model", "hidden_size": 1152,
            "intermediate_size": 4304, "num_hidden_layers": 27, "patch_size": 14, "image_size": 896});
        let d = model_from_config(&cfg(c)).unwrap();
        assert!(d.params() > d.text_params() + 400_000_000);
        assert_eq!(d.text_params(), 8_030_261_248);
    }

    #[test]
    fn sliding_windows() {
        use vramplan_core::layer::Span;
        let spans = |c: &Value| -> Vec<Span> {
            model_from_config(&cfg(c.clone()))
                .unwrap()
                .layers()
                .map(|l| l.attention.as_ref().unwrap().span)
                .collect()
        };
        let mut c = llama_8b();
        c["model_type"] = json!("mistral");
        c["sliding_window"] = json!(4096);
        // Mistral: every layer sliding (transformers' cache default when sliding_window is set).
        assert!(spans(&c).iter().all(|s| *s == Span::Window(4096)));
        c["use_sliding_window"] = json!(false);
        assert!(spans(&c).iter().all(|s| *s == Span::Full));
        c["use_sliding_window"] = json!(true);
        let types: Vec<&str> = (0..32)
            .map(|i| {
                if (i + 1) % 4 == 0 {
                    "full_attention"
                } else {
                    "sliding_attention"
                }
            })
            .collect();
        c["layer_types"] = json!(types);
        let s = spans(&c);
        assert_eq!(s.iter().filter(|s| **s == Span::Full).count(), 8);
        assert_eq!(s[3], Span::Full);
        assert_eq!(s[0], Span::Window(4096));
        // An unknown layer kind is refused, naming the field.
        c["layer_types"][5] = json!("telepathic_attention");
        let e = model_from_config(&cfg(c)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("config.layer_types"));
        assert!(e.error.contains("telepathic_attention"), "{}", e.error);
    }
}
