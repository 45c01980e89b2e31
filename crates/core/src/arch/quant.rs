//! `quantization_config` of a pre-quantized checkpoint → the storage it ships in.
//!
//! Methods as transformers names them (`quant_method`): awq, gptq, fp8 (with
//! `weight_block_size`), compressed-tensors (the scheme in `config_groups.*.weights`:
//! 4-bit → w4a16, 8-bit float → fp8, 8-bit int → w8a8), bitsandbytes (load_in_8bit → bnb-int8,
//! else nf4), mxfp4.

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
    let mut bits = quant_bits(&q, &["bits", "w_bit", "num_bits"])?;
    let mut group = quant_group(&q, &["group_size", "q_group_size"])?;
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
    Ok(Some(QuantSpec {
        method,
        // Both within u32 by the bounds above (32 bits; groups and blocks of 2^24 columns).
        bits: bits.map(|b| b as u32),
        group_size: group.map(|g| g as u32),
        source: Some(format!("{}{key}", scope.path)),
        notes: None,
    }))
}
