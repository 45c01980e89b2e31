//! A pasted Hugging Face `config.json` object → a model description for the estimator.
//!
//! Reads the common fields of Llama-style decoders (gated MLP, RMSNorm, rotary positions: Llama,
//! Mistral, Mixtral, Qwen2/3, Phi-3, Granite, ...). Layouts this short mapping cannot describe
//! exactly (latent attention, Mamba layers, vision towers, MoE with shared experts, plain-MLP
//! families) are refused with the field that shows them, rather than estimated wrongly; those
//! models are in the catalogue. Field meanings: transformers' `LlamaConfig` docstring; the
//! catalogue's data/SCHEMA.md maps each config.json key to the model description.

use super::error::ApiError;
use serde_json::{Map, Value};
use vramplan_core::model::{MlpKind, Moe, NormKind, QuantSpec, SlidingWindow, WindowPattern};
use vramplan_core::ModelDesc;

/// Families whose blocks are not Llama-shaped (plain GELU MLP, LayerNorm with biases, learned
/// positions or parallel attention): a pasted config of theirs would be mis-sized.
const NOT_LLAMA_SHAPED: &[&str] = &[
    "gpt2",
    "gpt_neox",
    "gptj",
    "opt",
    "falcon",
    "bloom",
    "phi",
    "gpt_bigcode",
    "mpt",
    "starcoder2",
    "bert",
    "t5",
];

type Cfg = Map<String, Value>;

fn field(name: &str) -> String {
    format!("config.{name}")
}

/// The first of `names` present (and not null) as a non-negative integer.
fn uint(cfg: &Cfg, names: &[&str]) -> Result<Option<u64>, ApiError> {
    for name in names {
        match cfg.get(*name) {
            None | Some(Value::Null) => continue,
            Some(Value::Number(n)) if n.is_u64() => return Ok(n.as_u64()),
            Some(v) => {
                return Err(ApiError::bad(
                    Some(&field(name)),
                    format!("config.json field {name} must be a whole number ≥ 0, got {v}"),
                ))
            }
        }
    }
    Ok(None)
}

fn required(cfg: &Cfg, names: &[&str]) -> Result<u64, ApiError> {
    uint(cfg, names)?.ok_or_else(|| {
        ApiError::bad(
            Some(&field(names[0])),
            format!(
                "config.json field {} is missing: this does not look like a Hugging Face model config.json (it needs num_hidden_layers, hidden_size, num_attention_heads, intermediate_size, vocab_size and max_position_embeddings)",
                names[0]
            ),
        )
    })
}

fn boolean(cfg: &Cfg, name: &str) -> Result<Option<bool>, ApiError> {
    match cfg.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(ApiError::bad(
            Some(&field(name)),
            format!("config.json field {name} must be true or false, got {v}"),
        )),
    }
}

fn text<'a>(cfg: &'a Cfg, name: &str) -> Result<Option<&'a str>, ApiError> {
    match cfg.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(ApiError::bad(
            Some(&field(name)),
            format!("config.json field {name} must be a string, got {v}"),
        )),
    }
}

fn refuse(name: &str, why: &str) -> ApiError {
    ApiError::bad(
        Some(&field(name)),
        format!("{why}; a pasted config.json covers Llama-style decoders only: pick the model from the catalogue (GET /api/v1/models) instead"),
    )
}

/// The model description of a pasted config.json. Errors name the `config.<field>` at fault.
pub fn model_from_config(cfg: &Cfg) -> Result<ModelDesc, ApiError> {
    // Check that it is a config at all before looking at what kind.
    let num_layers = required(cfg, &["num_hidden_layers"])?;
    let hidden_size = required(cfg, &["hidden_size"])?;
    let heads = required(cfg, &["num_attention_heads"])?;
    let model_type = text(cfg, "model_type")?.unwrap_or("").to_ascii_lowercase();
    if NOT_LLAMA_SHAPED.contains(&model_type.as_str()) {
        return Err(refuse(
            "model_type",
            &format!(
                "model_type '{}' is not Llama-shaped (plain MLP or LayerNorm blocks)",
                super::request::clip(&model_type)
            ),
        ));
    }
    for (key, why) in [
        (
            "text_config",
            "a vision-language config (text_config): its vision tower would not be counted",
        ),
        (
            "vision_config",
            "a vision-language config (vision_config): its vision tower would not be counted",
        ),
        ("kv_lora_rank", "multi-head latent attention (kv_lora_rank)"),
        (
            "n_routed_experts",
            "DeepSeek-style routed and shared experts (n_routed_experts)",
        ),
        (
            "moe_intermediate_size",
            "experts of their own width (moe_intermediate_size)",
        ),
        (
            "shared_expert_intermediate_size",
            "shared experts (shared_expert_intermediate_size)",
        ),
        ("num_experts", "Qwen-style experts (num_experts)"),
        ("mamba_d_state", "Mamba layers (mamba_d_state)"),
        ("ssm_cfg", "Mamba layers (ssm_cfg)"),
        ("state_size", "Mamba layers (state_size)"),
    ] {
        if cfg
            .get(key)
            .is_some_and(|v| !v.is_null() && v != &Value::from(0))
        {
            return Err(refuse(key, why));
        }
    }
    let kv_heads = uint(cfg, &["num_key_value_heads"])?.unwrap_or(heads); // LlamaConfig: None → num_attention_heads
    let head_dim = match uint(cfg, &["head_dim"])? {
        Some(d) => d,
        None => {
            if heads == 0 || hidden_size % heads != 0 {
                return Err(ApiError::bad(
                    Some(&field("head_dim")),
                    format!("config.json has no head_dim and hidden_size {hidden_size} is not a multiple of num_attention_heads {heads}"),
                ));
            }
            hidden_size / heads
        }
    };
    let intermediate_size = required(cfg, &["intermediate_size"])?;
    let vocab_size = required(cfg, &["vocab_size"])?;
    let max_context = required(cfg, &["max_position_embeddings"])?;
    // Absent means the Llama/Mistral/Qwen config classes' default, False.
    let tie_embeddings = boolean(cfg, "tie_word_embeddings")?.unwrap_or(false);
    let dtype = match text(cfg, "torch_dtype")?.or(text(cfg, "dtype")?) {
        None => "bf16".to_string(),
        Some(d) => match d.to_ascii_lowercase().as_str() {
            "bfloat16" | "bf16" => "bf16".into(),
            "float16" | "fp16" | "half" => "fp16".into(),
            "float32" | "fp32" | "float" => "fp32".into(),
            other => {
                return Err(ApiError::bad(
                    Some(&field("torch_dtype")),
                    format!(
                        "config.json torch_dtype '{}' is not bfloat16, float16 or float32",
                        super::request::clip(other)
                    ),
                ))
            }
        },
    };
    let attention_bias = boolean(cfg, "attention_bias")?.unwrap_or(false);
    let moe = match uint(cfg, &["num_local_experts"])? {
        None | Some(0) => None,
        Some(experts) => Some(Moe {
            num_experts: experts,
            experts_per_token: required(cfg, &["num_experts_per_tok"])?,
            // Mixtral: every layer's MLP is the routed experts, each of intermediate_size.
            expert_intermediate_size: intermediate_size,
            shared_experts: 0,
            shared_expert_intermediate_size: 0,
            shared_expert_gate: false,
            dense_leading_layers: 0,
            layer_step: None,
            layer_offset: 0,
            router_bias: false,
            expert_bias: false,
            dense_intermediate_size: None,
        }),
    };
    let sliding_window = sliding_window(cfg, &model_type, num_layers)?;
    let quantization = quantization(cfg)?;
    let id = match text(cfg, "_name_or_path")? {
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
    let model = ModelDesc {
        id,
        aliases: vec![],
        family: "pasted".into(),
        source: "config.json pasted into the calculator".into(),
        base: None,
        quantization,
        published_params: None,
        published_params_source: None,
        nominal_params: None,
        max_context,
        dtype,
        num_layers,
        hidden_size,
        num_attention_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        intermediate_size,
        vocab_size,
        tie_embeddings,
        mlp: MlpKind::Gated,
        norm: NormKind::Rms,
        norms_per_layer: 2,
        // Qwen3 has per-head q/k RMSNorm weights; Qwen2 always has q/k/v biases.
        qk_norm: model_type.starts_with("qwen3"),
        qkv_bias: attention_bias || model_type.starts_with("qwen2"),
        o_bias: attention_bias,
        mlp_bias: boolean(cfg, "mlp_bias")?.unwrap_or(false),
        lm_head_bias: false,
        learned_positions: 0,
        embedding_norm: false,
        final_norm: true,
        embed_proj_dim: 0,
        extra_params: 0,
        extra_params_note: None,
        notes: None,
        moe,
        mla: None,
        sliding_window,
        ssm: None,
        vision: None,
        measured: None,
    };
    model.validate().map_err(|e| {
        let f = validation_field(&e);
        ApiError::bad(Some(&field(f)), e)
    })?;
    Ok(model)
}

/// The config.json key behind a `ModelDesc::validate` complaint: the KV heads when named (they
/// are the value checked against the query heads), else the first key the message names.
fn validation_field(message: &str) -> &'static str {
    if message.contains("num_kv_heads") {
        return "num_key_value_heads";
    }
    const KEYS: &[(&str, &str)] = &[
        ("num_kv_heads", "num_key_value_heads"),
        ("num_attention_heads", "num_attention_heads"),
        ("num_layers", "num_hidden_layers"),
        ("hidden_size", "hidden_size"),
        ("head_dim", "head_dim"),
        ("intermediate_size", "intermediate_size"),
        ("vocab_size", "vocab_size"),
        ("max_context", "max_position_embeddings"),
        ("MoE", "num_local_experts"),
        ("sliding_window", "sliding_window"),
    ];
    KEYS.iter()
        .filter_map(|(word, key)| message.find(word).map(|p| (p, *key)))
        .min_by_key(|(p, _)| *p)
        .map(|(_, k)| k)
        .unwrap_or("num_hidden_layers")
}

/// Which layers keep only a window of tokens. `layer_types` (newer transformers) is read when
/// present; else Gemma 2 alternates, Gemma 3 uses `sliding_window_pattern`, Qwen2 honours
/// `use_sliding_window`, and a plain `sliding_window` (Mistral 7B v0.1) applies to every layer.
fn sliding_window(
    cfg: &Cfg,
    model_type: &str,
    num_layers: u64,
) -> Result<Option<SlidingWindow>, ApiError> {
    let Some(window) = uint(cfg, &["sliding_window"])? else {
        return Ok(None);
    };
    if window == 0 || boolean(cfg, "use_sliding_window")? == Some(false) {
        return Ok(None);
    }
    let sw = |pattern, global_every| {
        Ok(Some(SlidingWindow {
            window,
            pattern,
            global_every,
        }))
    };
    if let Some(types) = cfg.get("layer_types").filter(|v| !v.is_null()) {
        let bad = || {
            ApiError::bad(Some(&field("layer_types")), "config.json layer_types must be a list of \"sliding_attention\" / \"full_attention\", one per layer")
        };
        let list = types.as_array().ok_or_else(bad)?;
        if list.len() as u64 != num_layers {
            return Err(bad());
        }
        let mut global = Vec::new();
        for (i, t) in list.iter().enumerate() {
            match t.as_str() {
                Some("sliding_attention") => {}
                Some("full_attention") => global.push(i as u64),
                _ => return Err(bad()),
            }
        }
        if global.is_empty() {
            return sw(WindowPattern::All, 0);
        }
        if global.len() as u64 == num_layers {
            return Ok(None);
        }
        // Layer i global when (i + 1) % n == 0; n = 2 is the alternating pattern.
        let n = global[0] + 1;
        let expected: Vec<u64> = (0..num_layers).filter(|i| (i + 1) % n == 0).collect();
        if global != expected {
            return Err(ApiError::bad(
                Some(&field("layer_types")),
                "config.json layer_types mixes sliding and full layers in a pattern other than every n-th layer full",
            ));
        }
        return if n == 2 {
            sw(WindowPattern::Alternate, 0)
        } else {
            sw(WindowPattern::GlobalEvery, n)
        };
    }
    match model_type {
        "gemma2" => sw(WindowPattern::Alternate, 0),
        t if t.starts_with("gemma3") => sw(
            WindowPattern::GlobalEvery,
            uint(cfg, &["sliding_window_pattern"])?.unwrap_or(6),
        ),
        _ => sw(WindowPattern::All, 0),
    }
}

/// `quantization_config` of a pre-quantized checkpoint, for the weights' default format.
fn quantization(cfg: &Cfg) -> Result<Option<QuantSpec>, ApiError> {
    let Some(q) = cfg.get("quantization_config").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Value::Object(q) = q else {
        return Err(ApiError::bad(
            Some(&field("quantization_config")),
            "config.json quantization_config must be an object",
        ));
    };
    let method = text(q, "quant_method")
        .map_err(|_| {
            ApiError::bad(
                Some(&field("quantization_config.quant_method")),
                "quant_method must be a string",
            )
        })?
        .unwrap_or("")
        .to_ascii_lowercase();
    let bits = uint(q, &["bits", "w_bit"])
        .ok()
        .flatten()
        .map(|b| b.min(8) as u32);
    // GPTQ's group_size -1 (one group per row) has no fixed group; it is left to the default.
    let group_size = uint(q, &["group_size", "q_group_size"])
        .ok()
        .flatten()
        .map(|g| g.min(u32::MAX as u64) as u32);
    let method = match method.as_str() {
        "awq" | "gptq" | "fp8" | "mxfp4" => method,
        "bitsandbytes" => {
            if boolean(q, "load_in_8bit").ok().flatten() == Some(true) {
                "bnb-int8".into()
            } else {
                "bnb-nf4".into()
            }
        }
        other => {
            return Err(ApiError::bad(
                Some(&field("quantization_config.quant_method")),
                format!(
                    "quant_method '{}' is not read from a pasted config; give the precision in the quant field instead",
                    super::request::clip(other)
                ),
            ))
        }
    };
    Ok(Some(QuantSpec {
        method,
        bits,
        group_size,
        source: None,
        notes: None,
    }))
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
    }

    #[test]
    fn not_a_config_names_the_missing_field() {
        let e = model_from_config(&cfg(json!({"version": "1.0", "truncation": null}))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("config.num_hidden_layers"));
        let mut c = llama_8b();
        c.as_object_mut().unwrap().remove("vocab_size");
        assert_eq!(
            model_from_config(&cfg(c)).unwrap_err().field.as_deref(),
            Some("config.vocab_size")
        );
    }

    #[test]
    fn wrong_types_and_impossible_values_are_refused() {
        let mut c = llama_8b();
        c["hidden_size"] = json!("4096");
        assert_eq!(
            model_from_config(&cfg(c)).unwrap_err().field.as_deref(),
            Some("config.hidden_size")
        );
        let mut c = llama_8b();
        c["num_key_value_heads"] = json!(5);
        assert_eq!(
            model_from_config(&cfg(c)).unwrap_err().field.as_deref(),
            Some("config.num_key_value_heads")
        );
        let mut c = llama_8b();
        c["num_hidden_layers"] = json!(u64::MAX);
        assert_eq!(
            model_from_config(&cfg(c)).unwrap_err().field.as_deref(),
            Some("config.num_hidden_layers")
        );
        let mut c = llama_8b();
        c["kv_lora_rank"] = json!(512);
        assert_eq!(
            model_from_config(&cfg(c)).unwrap_err().field.as_deref(),
            Some("config.kv_lora_rank")
        );
    }

    #[test]
    fn sliding_windows() {
        let mut c = llama_8b();
        c["sliding_window"] = json!(4096);
        assert_eq!(
            model_from_config(&cfg(c.clone()))
                .unwrap()
                .sliding_window
                .unwrap()
                .pattern,
            WindowPattern::All
        );
        c["use_sliding_window"] = json!(false);
        assert!(model_from_config(&cfg(c.clone()))
            .unwrap()
            .sliding_window
            .is_none());
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
        let sw = model_from_config(&cfg(c)).unwrap().sliding_window.unwrap();
        assert_eq!(
            (sw.pattern, sw.global_every),
            (WindowPattern::GlobalEvery, 4)
        );
    }
}
