//! `quantization_config` of a pre-quantized checkpoint → the storage it ships in.
//!
//! Methods as transformers names them (`quant_method`): awq, gptq, fp8 (with
//! `weight_block_size`), compressed-tensors (the scheme in `config_groups.*.weights`:
//! 4-bit → w4a16, 8-bit float → fp8, 8-bit int → w8a8), bitsandbytes (load_in_8bit → bnb-int8,
//! else nf4), mxfp4, and NVIDIA ModelOpt's (below).
//!
//! ModelOpt ≤ 0.29 writes its quantization to `hf_quant_config.json` beside config.json
//! (`{"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "FP8", ...}}`), which vLLM
//! takes whole as the `quantization_config` when config.json has none
//! (vllm/transformers_utils/config.py, `get_config`: "ModelOpt 0.29.0 and before saves the
//! quantization config in a separate hf_quant_config.json"); ModelOpt ≥ 0.31 writes
//! `quant_method: "modelopt"` and `quant_algo` into config.json's `quantization_config`. The
//! readers (vramplan-formats) put the side file where config.json's would be, so both shapes
//! reach this one mapping. `quant_algo` FP8 → fp8 (per-tensor scales), W4A16_AWQ → w4a16 at its
//! `group_size`, NVFP4 → nvfp4 (4-bit E2M1 with an FP8 scale per 16 weights, ModelOpt's
//! `group_size` 16), priced through ggml's NVFP4 type of the same layout, with a warning.

use super::fields::Scope;
use super::ArchError;
use crate::model::QuantSpec;

/// Widest quantized weight a `bits` may name: 1-bit (BitNet) to 16-bit (compressed-tensors'
/// unquantized groups); 32 leaves room and stays a plain integer width.
pub const MAX_QUANT_BITS: u64 = 32;
/// Largest quantization group (`group_size`): a group lies within one row, so at most the
/// widest row (`limits::MAX_INTERMEDIATE_SIZE`); -1 means one group per output channel (GPTQ).
pub const MAX_QUANT_GROUP: u64 = crate::limits::MAX_INTERMEDIATE_SIZE;

/// A quantized weight's bit width: 1 to [`MAX_QUANT_BITS`], refused naming its field otherwise
/// (a `bits` of 2^40 must not be read as 4-bit GPTQ).
fn quant_bits(s: &Scope, names: &[&str]) -> Result<Option<u64>, ArchError> {
    match s.find(names) {
        None => Ok(None),
        Some(f) => match super::fields::as_u64(f.value) {
            None => Err(s.wrong(&f, "a non-negative integer")),
            Some(b) if (1..=MAX_QUANT_BITS).contains(&b) => Ok(Some(b)),
            Some(_) => Err(s.wrong(&f, &format!("a bit width from 1 to {MAX_QUANT_BITS}"))),
        },
    }
}

/// A quantization group size: -1 (one group per output channel: `None`) or 1 to
/// [`MAX_QUANT_GROUP`], refused naming its field otherwise.
fn quant_group(s: &Scope, names: &[&str]) -> Result<Option<u64>, ArchError> {
    match s.find(names) {
        None => Ok(None),
        // GPTQ writes -1 for per-channel scales.
        Some(f) if f.value.as_i64() == Some(-1) => Ok(None),
        Some(f) if f.value.as_i64().is_none() && f.value.as_u64().is_none() => {
            Err(s.wrong(&f, "an integer"))
        }
        Some(f) => match super::fields::as_u64(f.value) {
            Some(g) if (1..=MAX_QUANT_GROUP).contains(&g) => Ok(Some(g)),
            _ => Err(s.wrong(
                &f,
                &format!("-1 (per channel) or a group size from 1 to {MAX_QUANT_GROUP}"),
            )),
        },
    }
}

/// Quantization methods the weight formats know (`ModelDesc::native_format`); any other is
/// warned about, since weights computed from the config would be priced at its dtype.
const KNOWN_METHODS: &[&str] = &[
    "awq", "gptq", "fp8", "w8a8", "int8", "w4a16", "mxfp4", "bnb-nf4", "nf4", "bnb-int8",
];

/// ModelOpt's `quant_algo` → (method, bits, default group) in the names above; `None` for the
/// algorithms with no weight format here.
fn modelopt_method(algo: &str) -> Option<(&'static str, Option<u64>, Option<u64>)> {
    match algo {
        // Per-tensor (FP8) or per-channel (FP8_PER_CHANNEL_PER_TOKEN) scales: one scale per
        // tensor or row, as `fp8` without a block.
        "FP8" | "FP8_PER_CHANNEL_PER_TOKEN" => Some(("fp8", Some(8), None)),
        // int4 weights with a scale per group of 128 (ModelOpt's default `group_size`).
        "W4A16_AWQ" => Some(("w4a16", Some(4), Some(128))),
        _ => None,
    }
}

pub(crate) fn quant_spec(
    top: &Scope,
    text: &Scope,
    warnings: &mut Vec<String>,
) -> Result<Option<QuantSpec>, ArchError> {
    let (scope, key) = if top.object("quantization_config")?.is_some() {
        (top, "quantization_config")
    } else if text.object("quantization_config")?.is_some() {
        (text, "quantization_config")
    } else if top.object("quantization")?.is_some() {
        (top, "quantization")
    } else {
        return Ok(None);
    };
    let Some(obj) = scope.object(key)? else {
        return Ok(None);
    };
    let q = Scope::new(obj, &format!("{}{key}.", scope.path), None);
    let mut method = q
        .string(&["quant_method"])?
        .unwrap_or_default()
        .to_ascii_lowercase();
    // ModelOpt: the algorithm in `quant_algo`, inline (≥ 0.31) or under `quantization` in
    // hf_quant_config.json (≤ 0.29, whose `producer.name` is "modelopt").
    let producer = match q.object("producer")? {
        Some(p) => Scope::new(p, &format!("{}producer.", q.path), None).string(&["name"])?,
        None => None,
    };
    let modelopt_scope = if producer.as_deref() == Some("modelopt") {
        q.object("quantization")?
            .map(|inner| Scope::new(inner, &format!("{}quantization.", q.path), None))
    } else if method == "modelopt" || method == "modelopt_fp4" {
        Some(Scope::new(obj, &q.path, None))
    } else {
        None
    };
    let mut modelopt_defaults = (None, None);
    if let Some(mo) = &modelopt_scope {
        let algo = mo
            .string(&["quant_algo"])?
            .unwrap_or_default()
            .to_ascii_uppercase();
        method = match (modelopt_method(&algo), algo.as_str()) {
            (Some((m, bits, group)), _) => {
                modelopt_defaults = (bits, group);
                m.to_string()
            }
            (None, "NVFP4") => {
                modelopt_defaults = (Some(4), Some(16));
                "nvfp4".to_string()
            }
            (None, "") => "modelopt".to_string(),
            (None, other) => format!("modelopt-{}", other.to_ascii_lowercase()),
        };
    }
    let fields = modelopt_scope.as_ref().unwrap_or(&q);
    let mut bits = quant_bits(fields, &["bits", "w_bit", "num_bits"])?.or(modelopt_defaults.0);
    let mut group = quant_group(fields, &["group_size", "q_group_size"])?.or(modelopt_defaults.1);
    let mut format = q.string(&["fmt", "format"])?;
    // compressed-tensors keeps the scheme in config_groups.<group>.weights.
    if let Some(groups) = q.object("config_groups")? {
        if let Some((name, serde_json::Value::Object(g))) = groups.iter().next() {
            if let Some(serde_json::Value::Object(w)) = g.get("weights") {
                let ws = Scope::new(w, &format!("{}config_groups.{name}.weights.", q.path), None);
                bits = bits.or(quant_bits(&ws, &["num_bits"])?);
                group = group.or(quant_group(&ws, &["group_size"])?);
                if format.is_none() {
                    format = ws.string(&["type"])?;
                }
            }
        }
    }
    let block = match q.u64s(&["weight_block_size"])? {
        Some((field, v)) => {
            let first = v.first().copied();
            if let Some(b) = first.filter(|&b| b == 0 || b > MAX_QUANT_GROUP) {
                let why = format!(
                    "field '{field}' must list block sizes from 1 to {MAX_QUANT_GROUP}, found {b}"
                );
                return Err(ArchError::field(&field, why));
            }
            first
        }
        None => None,
    };
    let method = match method.as_str() {
        "compressed-tensors" => match (bits, format.as_deref()) {
            (Some(4), _) => "w4a16".to_string(),
            (Some(8), Some(f)) if f.contains("float") => "fp8".to_string(),
            (Some(8), _) => "w8a8".to_string(),
            _ => method,
        },
        "bitsandbytes" if q.flag(&["load_in_8bit"])? => "bnb-int8".to_string(),
        "bitsandbytes" => "bnb-nf4".to_string(),
        "fp8" if block.is_some() => {
            group = block;
            method
        }
        _ => method,
    };
    if method == "nvfp4" {
        // ggml's NVFP4 type has the same layout (E2M1 weights, an E4M3 scale per 16: 4.5 bits;
        // /work/shared/reference/gguf_and_quant.md), so `native_format` prices it through it,
        // but for every matrix, where ModelOpt keeps its `exclude_modules` (lm_head at least)
        // in 16-bit.
        warnings.push(format!(
            "NVFP4 weights computed from the config are priced at 4.5 bits for every matrix, embeddings and head included, which ModelOpt keeps in 16-bit ({}{key}.exclude_modules): understated by up to 1.4 bytes per embedding parameter; weights read from safetensors headers are exact",
            scope.path
        ));
    } else if !KNOWN_METHODS.contains(&method.as_str())
        && crate::precision::WeightFormat::parse(&method).is_err()
    {
        warnings.push(format!(
            "quantization method '{}' ({}{key}) has no weight format in vramplan: weights read from safetensors headers are exact, weights computed from the config are priced at its dtype, which overstates them",
            if method.is_empty() { "(none given)" } else { &method },
            scope.path
        ));
    }
    Ok(Some(QuantSpec {
        method,
        // Both within u32 by the bounds above (32 bits; groups and blocks of 2^24 columns).
        bits: bits.map(|b| b as u32),
        group_size: group.map(|g| g as u32),
        source: Some(format!("{}{key}", scope.path)),
        notes: None,
    }))
}

#[cfg(test)]
mod tests {
    use crate::arch::describe;
    use serde_json::json;

    fn with_quant(q: serde_json::Value) -> crate::ModelDesc {
        describe(&json!({
            "model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
            "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100,
            "max_position_embeddings": 512, "torch_dtype": "bfloat16",
            "quantization_config": q
        }))
        .unwrap()
    }

    #[test]
    fn modelopt_in_both_shapes() {
        // ≤ 0.29: hf_quant_config.json taken whole (vLLM get_config).
        let d = with_quant(
            json!({"producer": {"name": "modelopt", "version": "0.27.1"},
            "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": null}}),
        );
        let q = d.quantization.as_ref().unwrap();
        assert_eq!(
            (q.method.as_str(), q.bits, q.group_size),
            ("fp8", Some(8), None)
        );
        assert_eq!(d.native_format().name(), "fp8");
        // ≥ 0.31: inline, quant_method "modelopt".
        let d = with_quant(
            json!({"quant_method": "modelopt", "quant_algo": "W4A16_AWQ",
            "group_size": 64}),
        );
        let q = d.quantization.as_ref().unwrap();
        assert_eq!(
            (q.method.as_str(), q.bits, q.group_size),
            ("w4a16", Some(4), Some(64))
        );
        let d = with_quant(json!({"quant_method": "modelopt", "quant_algo": "NVFP4"}));
        let q = d.quantization.as_ref().unwrap();
        assert_eq!(
            (q.method.as_str(), q.bits, q.group_size),
            ("nvfp4", Some(4), Some(16))
        );
        assert!(d
            .warnings
            .iter()
            .any(|w| w.starts_with("NVFP4 weights computed")));
        // An algorithm with no weight format: named and warned about, not read as bf16 quietly.
        let d = with_quant(json!({"producer": {"name": "modelopt"},
            "quantization": {"quant_algo": "MIXED_PRECISION"}}));
        assert_eq!(
            d.quantization.as_ref().unwrap().method,
            "modelopt-mixed_precision"
        );
        assert!(
            d.warnings
                .iter()
                .any(|w| w.starts_with("quantization method 'modelopt-mixed_precision'")),
            "{:?}",
            d.warnings
        );
        // A bad field inside is refused naming its path.
        let e = describe(&json!({
            "model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
            "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100,
            "quantization_config": {"producer": {"name": "modelopt"},
                "quantization": {"quant_algo": "NVFP4", "group_size": -5}}
        }))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("quantization_config.quantization.group_size"),
            "{e}"
        );
    }
}
