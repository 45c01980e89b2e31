//! `quantization_config` of a pre-quantized checkpoint → the storage it ships in.
//!
//! Methods as transformers names them (`quant_method`): awq, gptq, fp8 (with
//! `weight_block_size`), compressed-tensors (the scheme in `config_groups.*.weights`:
//! 4-bit → w4a16, 8-bit float → fp8, 8-bit int → w8a8), bitsandbytes (load_in_8bit → bnb-int8,
//! else nf4), mxfp4.

use super::fields::Scope;
use super::ArchError;
use crate::model::QuantSpec;

fn bounded(field: String, v: Option<u64>, max: u64) -> Result<Option<u32>, ArchError> {
    match v {
        None => Ok(None),
        Some(x) if x <= max => Ok(Some(x as u32)),
        Some(x) => Err(ArchError::field(
            &field,
            format!("{field} = {x} is not a quantization setting (at most {max})"),
        )),
    }
}

pub(crate) fn quant_spec(top: &Scope, text: &Scope) -> Result<Option<QuantSpec>, ArchError> {
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
    let method = q
        .string(&["quant_method"])?
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut bits = q.u64(&["bits", "w_bit", "num_bits"])?;
    let mut group = match q.find(&["group_size", "q_group_size"]) {
        // GPTQ writes -1 for per-channel scales.
        Some(f) if f.value.as_i64() == Some(-1) => None,
        Some(_) => q.u64(&["group_size", "q_group_size"])?,
        None => None,
    };
    let mut format = q.string(&["fmt", "format"])?;
    // compressed-tensors keeps the scheme in config_groups.<group>.weights.
    if let Some(groups) = q.object("config_groups")? {
        if let Some((name, serde_json::Value::Object(g))) = groups.iter().next() {
            if let Some(serde_json::Value::Object(w)) = g.get("weights") {
                let ws = Scope::new(w, &format!("{}config_groups.{name}.weights.", q.path), None);
                bits = bits.or(ws.u64(&["num_bits"])?);
                group = group.or(ws.u64(&["group_size"])?);
                if format.is_none() {
                    format = ws.string(&["type"])?;
                }
            }
        }
    }
    let block = q
        .u64s(&["weight_block_size"])?
        .and_then(|(_, v)| v.first().copied());
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
    Ok(Some(QuantSpec {
        method,
        bits: bounded(q.field("bits"), bits, 64)?,
        group_size: bounded(q.field("group_size"), group, 1 << 20)?,
        source: Some(format!("{}{key}", scope.path)),
        notes: None,
    }))
}
