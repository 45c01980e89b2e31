//! Hugging Face `config.json`: read (size-capped) and parsed as a JSON object. What it says
//! about the architecture is the config.json mapping's business (`vramplan_core::arch`), the
//! one place a config becomes a model description; this module only gets the bytes to it.

use std::path::Path;

use serde_json::Value;

use crate::error::{show_path, FormatError};

/// config.json files are a few KiB (the largest, with long label maps, under 1 MiB); refuse
/// anything absurd before reading it. The parsed tree of a JSON text can take ~16× its size
/// (a list of one-digit numbers), so this cap also bounds the tree: 4 MiB → 64 MiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// A quantization file beside config.json (`layout::QUANT_CONFIGS`) is a few hundred bytes;
/// ModelOpt's lists the modules it left out, a few KiB for the largest MoE.
pub const MAX_QUANT_CONFIG_BYTES: u64 = 1024 * 1024;

/// Puts a quantization file read beside config.json (`name` is one of
/// `layout::QUANT_CONFIGS`, `bytes` its content, `file` how it is shown) where config.json's
/// `quantization_config` would be, as vLLM does, so that the one mapping
/// (`vramplan_core::arch`) reads it. config.json's own `quantization_config` wins (vLLM's order).
/// AutoGPTQ's and AutoAWQ's files often lack `quant_method`: it is the method their file name
/// stands for (AutoAWQ's `w_bit`/`q_group_size`/`version` keys name AWQ in quantize_config.json
/// too, as vLLM's AWQConfig reads either file). Returns whether the file was used.
pub fn merge_quant_config(
    config: &mut Value,
    name: &str,
    bytes: &[u8],
    file: &str,
) -> Result<bool, FormatError> {
    let has_own = |v: &Value| v.get("quantization_config").is_some_and(|q| !q.is_null());
    if has_own(config) || config.get("text_config").is_some_and(has_own) {
        return Ok(false);
    }
    let mut quant = parse_config(bytes, file)?;
    if let Value::Object(q) = &mut quant {
        let is_modelopt = q
            .get("producer")
            .and_then(|p| p.get("name"))
            .is_some_and(|n| n == "modelopt");
        if !is_modelopt && q.get("quant_method").is_none_or(Value::is_null) {
            let awq_keys = ["w_bit", "q_group_size", "version", "zero_point"]
                .iter()
                .any(|k| q.contains_key(*k));
            let method = if name == "quant_config.json" || awq_keys {
                "awq"
            } else {
                "gptq"
            };
            q.insert("quant_method".into(), Value::String(method.into()));
        }
    }
    if let Value::Object(c) = config {
        c.insert("quantization_config".into(), quant);
    }
    Ok(true)
}

/// Reads a config.json from disk (size-capped) as a JSON object.
pub fn read_config_file(path: &Path) -> Result<Value, FormatError> {
    let file = show_path(path);
    let bytes = read_json_file(path, MAX_CONFIG_BYTES)?;
    parse_config(&bytes, &file)
}

/// Reads a small JSON file whole (a regular file only), refusing files above `cap` bytes.
pub(crate) fn read_json_file(path: &Path, cap: u64) -> Result<Vec<u8>, FormatError> {
    let src = crate::source::LocalFile::open(path)?;
    crate::source::read_capped(&src, cap, "JSON file")
}

/// Parses config.json bytes: a JSON object. `file` names the file in errors.
pub fn parse_config(bytes: &[u8], file: &str) -> Result<Value, FormatError> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| FormatError::json(file, e))?;
    if !root.is_object() {
        return Err(FormatError::WrongFieldType {
            file: file.to_string(),
            field: "(top level)".to_string(),
            expected: "a JSON object".to_string(),
            found: vramplan_core::arch::fields::describe_value(&root),
        });
    }
    Ok(root)
}

/// `architectures[0]` or `model_type` of a config, for display.
pub fn architecture_name(config: &Value) -> Option<String> {
    config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .or_else(|| config.get("model_type").and_then(Value::as_str))
        .map(str::to_string)
}
