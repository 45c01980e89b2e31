//! Hugging Face `config.json`: read (size-capped) and parsed as a JSON object. What it says
//! about the architecture is the config.json mapping's business (`vramplan_core::arch`), the
//! one place a config becomes a model description; this module only gets the bytes to it.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::error::{show_path, FormatError};

/// config.json files are a few KiB; refuse anything absurd before reading it.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a config.json from disk (size-capped) as a JSON object.
pub fn read_config_file(path: &Path) -> Result<Value, FormatError> {
    let file = show_path(path);
    let bytes = read_json_file(path, MAX_CONFIG_BYTES)?;
    parse_config(&bytes, &file)
}

/// Reads a small JSON file whole, refusing files above `cap` bytes.
pub(crate) fn read_json_file(path: &Path, cap: u64) -> Result<Vec<u8>, FormatError> {
    let file = show_path(path);
    let f = std::fs::File::open(path).map_err(|e| FormatError::io(&file, e))?;
    let len = f.metadata().map_err(|e| FormatError::io(&file, e))?.len();
    if len > cap {
        return Err(FormatError::OverLimit {
            file,
            what: "JSON file size (bytes)".to_string(),
            value: len,
            cap,
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // take(cap + 1) bounds the read even if the file grows after the length check.
    f.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FormatError::io(&file, e))?;
    Ok(bytes)
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
