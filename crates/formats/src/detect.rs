//! Format detection by content: magic bytes and header shape, never the file name alone.
//!
//! * GGUF: the 4 bytes "GGUF" (ggml `docs/gguf.md`).
//! * safetensors: a u64 LE header length N, then the JSON header, which starts with '{'.
//! * JSON (config.json, model.safetensors.index.json, an ollama manifest): the first non-blank
//!   byte is '{'; which one it is is decided from its keys ([`classify_json`]).
//!
//! A JSON file's first 8 bytes read as a u64 are always above 2^61 (ASCII bytes), far beyond the
//! file's length, so the two '{' tests do not confuse each other.

use std::io::Read;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::{show_path, FormatError};

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FileKind {
    Gguf,
    Safetensors,
    Json,
}

/// What a JSON document is, from its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JsonKind {
    /// model.safetensors.index.json: has "weight_map".
    SafetensorsIndex,
    /// An ollama manifest: has "layers" with "mediaType" entries.
    OllamaManifest,
    /// A Hugging Face config.json: has "model_type", "architectures" or a layer count.
    HfConfig,
}

/// Bytes we look at to detect a format.
pub const PROBE_BYTES: usize = 16;

/// Detects the kind from the first bytes and the file's length.
pub fn detect_bytes(prefix: &[u8], file_len: u64) -> Option<FileKind> {
    if prefix.starts_with(b"GGUF") {
        return Some(FileKind::Gguf);
    }
    let safetensors_shaped = match (prefix.get(..8), prefix.get(8)) {
        (Some(len_bytes), Some(b'{')) => {
            let mut arr = [0u8; 8];
            arr.copy_from_slice(len_bytes);
            Some(u64::from_le_bytes(arr))
        }
        _ => None,
    };
    if let Some(n) = safetensors_shaped {
        if n >= 2 && n.saturating_add(8) <= file_len {
            return Some(FileKind::Safetensors);
        }
    }
    let first_non_blank = prefix
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(prefix)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    if first_non_blank == Some(&b'{') {
        return Some(FileKind::Json);
    }
    // A safetensors-shaped file whose declared header runs past its end: call it safetensors so
    // the reader reports the bad length instead of "unknown format".
    if safetensors_shaped.is_some() {
        return Some(FileKind::Safetensors);
    }
    None
}

/// Detects the kind of the file at `path` (reads at most [`PROBE_BYTES`]).
pub fn detect_file(path: &Path) -> Result<FileKind, FormatError> {
    let file = show_path(path);
    let f = std::fs::File::open(path).map_err(|e| FormatError::io(&file, e))?;
    let len = f.metadata().map_err(|e| FormatError::io(&file, e))?.len();
    let mut prefix = Vec::with_capacity(PROBE_BYTES);
    f.take(PROBE_BYTES as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| FormatError::io(&file, e))?;
    detect_bytes(&prefix, len).ok_or_else(|| FormatError::UnknownFormat {
        file,
        reason: if len < 9 {
            format!("only {len} bytes, too short for GGUF or safetensors")
        } else {
            "neither the GGUF magic, a safetensors header, nor a JSON object".to_string()
        },
    })
}

/// Decides what a JSON object is from its keys.
pub fn classify_json(root: &Value) -> Option<JsonKind> {
    let obj = root.as_object()?;
    if obj.contains_key("weight_map") {
        return Some(JsonKind::SafetensorsIndex);
    }
    if obj
        .get("layers")
        .and_then(Value::as_array)
        .is_some_and(|layers| layers.iter().any(|l| l.get("mediaType").is_some()))
    {
        return Some(JsonKind::OllamaManifest);
    }
    const CONFIG_KEYS: &[&str] = &[
        "model_type",
        "architectures",
        "num_hidden_layers",
        "n_layer",
        "num_layers",
        "text_config",
    ];
    if CONFIG_KEYS.iter().any(|k| obj.contains_key(*k)) {
        return Some(JsonKind::HfConfig);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_magic() {
        assert_eq!(detect_bytes(b"GGUF\x03\0\0\0", 8), Some(FileKind::Gguf));
    }

    #[test]
    fn safetensors_shape() {
        let mut b = 2u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        assert_eq!(detect_bytes(&b, 10), Some(FileKind::Safetensors));
    }

    #[test]
    fn json_not_safetensors() {
        // '{"abcd":{' has '{' at byte 8, but the u64 of its first 8 bytes is ~4e18 > the length.
        assert_eq!(
            detect_bytes(b"{\"abcd\":{\"x\":1}}", 16),
            Some(FileKind::Json)
        );
        assert_eq!(detect_bytes(b"  \n{}", 5), Some(FileKind::Json));
    }

    #[test]
    fn garbage() {
        assert_eq!(detect_bytes(b"\x7fELF\x02\x01\x01\0\0\0", 10), None);
    }
}
