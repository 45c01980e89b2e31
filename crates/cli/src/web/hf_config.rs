//! A pasted Hugging Face `config.json` object → a model description for the estimator.
//!
//! A thin adapter over the formats crate's config.json reader (`model_from_config_json`, the
//! same mapping `vramplan inspect` applies to a config.json on disk: Llama-style decoders, MoE,
//! latent attention, sliding windows, plain-MLP families, quantization_config). This file only
//! names the pasted model, refuses the layouts the reader would size wrongly (vision towers, Mamba
//! layers), and turns the reader's errors into `config.<field>` API errors.

use super::error::ApiError;
use serde_json::{Map, Value};
use vramplan_core::ModelDesc;
use vramplan_formats::FormatError;

type Cfg = Map<String, Value>;

/// Keys of layouts the reader has no field for (it would size them wrongly, not refuse them):
/// a vision tower is not counted, and Mamba layers' recurrent state is not a KV cache.
const NOT_DESCRIBED: &[(&str, &str)] = &[
    (
        "vision_config",
        "a vision-language config: its vision tower would not be counted",
    ),
    (
        "mamba_d_state",
        "Mamba layers: their recurrent state would not be counted",
    ),
    (
        "ssm_cfg",
        "Mamba layers: their recurrent state would not be counted",
    ),
    (
        "state_size",
        "Mamba layers: their recurrent state would not be counted",
    ),
];

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
    if let Some((key, why)) = NOT_DESCRIBED
        .iter()
        .find(|(key, _)| cfg.get(*key).is_some_and(|v| !v.is_null()))
    {
        return Err(ApiError::bad(
            Some(&format!("config.{key}")),
            format!(
                "{label}: {why}; pick the model from the catalogue (GET /api/v1/models) instead"
            ),
        ));
    }
    // A Map of Values always serializes; the body limit already bounds its size.
    let bytes = serde_json::to_vec(cfg)
        .map_err(|e| ApiError::bad(Some("config"), format!("config: {e}")))?;
    let model = vramplan_formats::model_from_config_json(&bytes, &label).map_err(to_api_error)?;
    let mut desc = model.desc;
    desc.source = "config.json pasted into the calculator".into();
    Ok(desc)
}

/// The reader's error, on the `config.<field>` it names (the whole `config` when none).
fn to_api_error(e: FormatError) -> ApiError {
    let message = e.to_string();
    let field = match &e {
        FormatError::MissingField { field, .. } | FormatError::WrongFieldType { field, .. }
            if field != "(top level)" =>
        {
            format!("config.{field}")
        }
        // A field beyond its limit (limits.rs): "field 'num_hidden_layers'".
        FormatError::OverLimit { what, .. } => match what
            .strip_prefix("field '")
            .and_then(|w| w.strip_suffix('\''))
        {
            Some(f) => format!("config.{f}"),
            None => "config".to_string(),
        },
        FormatError::Malformed { .. } => match validation_field(&message) {
            Some(key) => format!("config.{key}"),
            None => "config".to_string(),
        },
        _ => "config".to_string(),
    };
    ApiError::bad(Some(&field), message)
}

/// The config.json key behind a `ModelDesc::validate` complaint (the formats crate reports those
/// as malformed): the KV heads when named (they are the value checked against the query heads),
/// else the first key the message names.
fn validation_field(message: &str) -> Option<&'static str> {
    if message.contains("num_kv_heads") {
        return Some("num_key_value_heads");
    }
    const KEYS: &[(&str, &str)] = &[
        ("num_attention_heads", "num_attention_heads"),
        ("num_layers", "num_hidden_layers"),
        ("hidden_size", "hidden_size"),
        ("head_dim", "head_dim"),
        ("intermediate_size", "intermediate_size"),
        ("vocab_size", "vocab_size"),
        ("max_context", "max_position_embeddings"),
        ("sliding_window", "sliding_window"),
    ];
    KEYS.iter()
        .filter_map(|(word, key)| message.find(word).map(|p| (p, *key)))
        .min_by_key(|(p, _)| *p)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use vramplan_core::model::WindowPattern;

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
        let mut c = llama_8b();
        c.as_object_mut().unwrap().remove("vocab_size");
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
    fn layouts_the_reader_would_mis_size_are_refused() {
        let mut c = llama_8b();
        c["vision_config"] = json!({"hidden_size": 1024});
        assert_eq!(field_of(c).as_deref(), Some("config.vision_config"));
        let mut c = llama_8b();
        c["mamba_d_state"] = json!(16);
        assert_eq!(field_of(c).as_deref(), Some("config.mamba_d_state"));
    }

    #[test]
    fn sliding_windows() {
        let mut c = llama_8b();
        c["model_type"] = json!("mistral");
        c["sliding_window"] = json!(4096);
        let window = |c: &Value| model_from_config(&cfg(c.clone())).unwrap().sliding_window;
        assert_eq!(window(&c).unwrap().pattern, WindowPattern::All);
        c["use_sliding_window"] = json!(false);
        assert!(window(&c).is_none());
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
        let sw = window(&c).unwrap();
        assert_eq!(
            (sw.pattern, sw.global_every),
            (WindowPattern::GlobalEvery, 4)
        );
    }
}
