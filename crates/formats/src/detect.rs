//! Format detection by content: magic bytes and header shape, never the file name alone.
//!
//! * GGUF: the 4 bytes "GGUF" (ggml `docs/gguf.md`).
//! * safetensors: a u64 LE header length N, then the JSON header, which starts with '{'.
//! * JSON (config.json, model.safetensors.index.json, an ollama manifest): the first non-blank
//!   byte is '{'; which one it is is decided from its keys ([`classify_json`]).
//!
//! A JSON file's first 8 bytes read as a u64 are always above 2^61 (ASCII bytes), far beyond the
//! file's length, so the two '{' tests do not confuse each other.

use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::FormatError;
use crate::source::{read_exact_at, ByteSource, LocalFile};

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

/// Detects the kind of a source from its first [`PROBE_BYTES`] bytes and its length.
pub fn detect_source(src: &dyn ByteSource) -> Result<FileKind, FormatError> {
    let len = src.len()?;
    let mut prefix = [0u8; PROBE_BYTES];
    let n = (len.min(PROBE_BYTES as u64)) as usize;
    read_exact_at(src, 0, &mut prefix[..n], "the first bytes")?;
    detect_bytes(&prefix[..n], len).ok_or_else(|| FormatError::UnknownFormat {
        file: src.name().to_string(),
        reason: if len < 9 {
            format!("only {len} bytes, too short for GGUF or safetensors")
        } else {
            "neither the GGUF magic, a safetensors header, nor a JSON object".to_string()
        },
    })
}

/// Detects the kind of the file at `path` (a regular file; reads at most [`PROBE_BYTES`]).
pub fn detect_file(path: &Path) -> Result<FileKind, FormatError> {
    detect_source(&LocalFile::open(path)?)
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
    if CONFIG_KEYS.iter().any(|k| obj.contains_key(*k)) {
        return Some(JsonKind::HfConfig);
    }
    None
}

/// [`classify_json`] on the JSON text itself, without building its tree: the top-level keys are
/// read and every value skipped (a 40 MB index must not become a 500 MB `Value`). Fails on
/// malformed JSON; `Ok(None)` for a top level that is not an object or has none of the keys.
pub fn classify_json_bytes(bytes: &[u8]) -> Result<Option<JsonKind>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let kind = de::Deserializer::deserialize_any(&mut de, TopLevel)?;
    de.end()?;
    Ok(kind)
}

struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Option<JsonKind>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut index, mut manifest, mut config) = (false, false, false);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "weight_map" => {
                    index = true;
                    map.next_value::<IgnoredAny>()?;
                }
                "layers" => {
                    manifest |= map.next_value_seed(LayersWithMediaType { element: false })?
                }
                k => {
                    config |= CONFIG_KEYS.contains(&k);
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(if index {
            Some(JsonKind::SafetensorsIndex)
        } else if manifest {
            Some(JsonKind::OllamaManifest)
        } else if config {
            Some(JsonKind::HfConfig)
        } else {
            None
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `layers` (at depth 0): true when it is an array with an object that has a `mediaType` key;
/// the same visitor at depth 1 looks at one element of the array.
struct LayersWithMediaType {
    element: bool,
}

impl<'de> DeserializeSeed<'de> for LayersWithMediaType {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LayersWithMediaType {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut found = false;
        if self.element {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        } else {
            while let Some(has) = seq.next_element_seed(LayersWithMediaType { element: true })? {
                found |= has;
            }
        }
        Ok(found)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            found |= self.element && key == "mediaType";
            map.next_value::<IgnoredAny>()?;
        }
        Ok(found)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Keys that make a JSON object a Hugging Face config.json.
const CONFIG_KEYS: &[&str] = &[
    "model_type",
    "architectures",
    "num_hidden_layers",
    "n_layer",
    "num_layers",
    "text_config",
];

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
    fn classification_without_a_tree_agrees_with_the_tree() {
        for (text, kind) in [
            (
                r#"{"weight_map": {"a": "b"}, "metadata": {}}"#,
                Some(JsonKind::SafetensorsIndex),
            ),
            (
                r#"{"schemaVersion": 2, "layers": [{"x": [1]}, {"mediaType": "m", "digest": "d"}]}"#,
                Some(JsonKind::OllamaManifest),
            ),
            (
                r#"{"layers": [1, 2], "num_layers": 2}"#,
                Some(JsonKind::HfConfig),
            ),
            (r#"{"model_type": "llama"}"#, Some(JsonKind::HfConfig)),
            (r#"{"other": {"model_type": 1}}"#, None),
            ("[1, {}]", None),
            ("3", None),
        ] {
            let tree: Value = serde_json::from_str(text).unwrap();
            assert_eq!(classify_json(&tree), kind, "{text}");
            assert_eq!(
                classify_json_bytes(text.as_bytes()).unwrap(),
                kind,
                "{text}"
            );
        }
        assert!(classify_json_bytes(b"{\"a\": ").is_err());
    }

    #[test]
    fn garbage() {
        assert_eq!(detect_bytes(b"\x7fELF\x02\x01\x01\0\0\0", 10), None);
    }
}
