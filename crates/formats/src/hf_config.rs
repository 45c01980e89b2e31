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
