//! safetensors header reader: the 8-byte length and the JSON header, never the tensor data.
//!
//! Layout (huggingface/safetensors README, `safetensors/src/tensor.rs`; reference Part 1.4):
//! `u64 LE N | N bytes of JSON | data`. The JSON maps tensor names to
//! `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the data start) plus an
//! optional `"__metadata__"` string map.
//!
//! We parse and validate the JSON with the `safetensors` crate's own `Metadata` type (it checks
//! dtypes, that offsets are contiguous from 0 without gaps or overlaps, and that each tensor's byte
//! range equals shape × dtype size, with overflow checks). We cannot call
//! `SafeTensors::read_metadata`, because it wants the *whole file* in one buffer to compare the
//! last offset with the buffer length; instead we do that one comparison ourselves against the
//! file length the file system reports, which is what keeps inspection header-only.

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{quoted, show_path, FormatError};

/// MAX_HEADER_SIZE in safetensors `tensor.rs`.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;
/// An index file maps tensor names to shard files; a 100k-tensor index is a few MB.
pub const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;

/// One tensor record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafetensorsTensor {
    pub name: String,
    /// The crate's dtype name: "BF16", "F16", "F32", "I8", "F8_E4M3", ...
    pub dtype: String,
    /// Row-major (numpy order).
    pub shape: Vec<u64>,
    pub n_elements: u64,
    pub n_bytes: u64,
    /// Offsets relative to the data section.
    pub data_offsets: (u64, u64),
}

/// A parsed safetensors header.
#[derive(Debug, Clone, Serialize)]
pub struct SafetensorsHeader {
    pub header_len: u64,
    /// Tensors in data-offset order.
    pub tensors: Vec<SafetensorsTensor>,
    pub metadata: BTreeMap<String, String>,
    pub file_len: u64,
}

/// Reads the header from `reader` (at the file's first byte). `file_len` is the real length.
pub fn read_header<R: Read>(
    reader: &mut R,
    file_len: u64,
    file: &str,
) -> Result<SafetensorsHeader, FormatError> {
    if file_len < 8 {
        return Err(FormatError::Truncated {
            file: file.to_string(),
            what: "the 8-byte safetensors header length".to_string(),
            needed: 8,
            offset: 0,
            file_len,
        });
    }
    let mut len_bytes = [0u8; 8];
    read_exact(reader, &mut len_bytes, file, file_len, "the header length")?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_BYTES {
        return Err(FormatError::OverLimit {
            file: file.to_string(),
            what: "safetensors header length".to_string(),
            value: header_len,
            cap: MAX_HEADER_BYTES,
        });
    }
    if header_len > file_len - 8 {
        return Err(FormatError::Truncated {
            file: file.to_string(),
            what: format!("the JSON header (declared length {header_len})"),
            needed: header_len,
            offset: 8,
            file_len,
        });
    }
    // header_len <= 100 MB and <= the bytes in the file: safe to allocate.
    let mut header = vec![0u8; header_len as usize];
    read_exact(reader, &mut header, file, file_len, "the JSON header")?;
    parse_header_bytes(&header, file_len, file)
}

fn read_exact<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    file: &str,
    file_len: u64,
    what: &str,
) -> Result<(), FormatError> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            FormatError::Truncated {
                file: file.to_string(),
                what: what.to_string(),
                needed: buf.len() as u64,
                offset: 0,
                file_len,
            }
        } else {
            FormatError::io(file, e)
        }
    })
}

/// Parses the JSON header bytes (without the 8-byte length) of a file `file_len` bytes long.
pub fn parse_header_bytes(
    header: &[u8],
    file_len: u64,
    file: &str,
) -> Result<SafetensorsHeader, FormatError> {
    let header_len = header.len() as u64;
    let metadata: ::safetensors::tensor::Metadata = serde_json::from_slice(header)
        .map_err(|e| FormatError::malformed(file, format!("invalid safetensors header: {e}")))?;
    let data_len = metadata.data_len() as u64;
    let expected_len = 8u64.saturating_add(header_len).saturating_add(data_len);
    if expected_len > file_len {
        return Err(FormatError::Truncated {
            file: file.to_string(),
            what: format!("tensor data ({data_len} bytes declared by the header)"),
            needed: data_len,
            offset: 8u64.saturating_add(header_len),
            file_len,
        });
    }
    if expected_len < file_len {
        // The crate's read_metadata rejects this too (MetadataIncompleteBuffer).
        return Err(FormatError::malformed(
            file,
            format!(
                "file is {file_len} bytes but its header accounts for {expected_len}: {} bytes after the last tensor belong to no tensor",
                file_len - expected_len
            ),
        ));
    }
    let mut tensors = Vec::with_capacity(metadata.offset_keys().len());
    for name in metadata.offset_keys() {
        let Some(info) = metadata.info(&name) else {
            continue;
        };
        let shape: Vec<u64> = info.shape.iter().map(|&d| d as u64).collect();
        // validate() already checked the product for overflow in usize; recheck in u64.
        let n_elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                FormatError::malformed(
                    file,
                    format!("tensor {} element count overflows", quoted(&name)),
                )
            })?;
        let (begin, end) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
        tensors.push(SafetensorsTensor {
            name,
            dtype: info.dtype.to_string(),
            shape,
            n_elements,
            n_bytes: end.saturating_sub(begin),
            data_offsets: (begin, end),
        });
    }
    let meta = metadata
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(SafetensorsHeader {
        header_len,
        tensors,
        metadata: meta,
        file_len,
    })
}

/// `model.safetensors.index.json`: which shard holds each tensor (a Hugging Face convention,
/// not part of the safetensors format).
#[derive(Debug, Clone, Serialize)]
pub struct ShardIndex {
    /// Shard files in first-mention order, resolved against the index's directory.
    pub shards: Vec<PathBuf>,
    /// tensor name → index into `shards`
    pub weight_map: HashMap<String, usize>,
    /// metadata.total_size, if given (bytes of tensor data, informational).
    pub total_size: Option<u64>,
}

/// Parses an index file's bytes; shard names must be plain file names in the same directory.
pub fn parse_index(bytes: &[u8], dir: &Path, file: &str) -> Result<ShardIndex, FormatError> {
    let root: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| FormatError::json(file, e))?;
    let Some(map) = root.get("weight_map").and_then(|v| v.as_object()) else {
        return Err(FormatError::MissingField {
            file: file.to_string(),
            field: "weight_map".to_string(),
            alternatives: String::new(),
        });
    };
    let total_size = root
        .get("metadata")
        .and_then(|m| m.get("total_size"))
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        });
    // Validate every entry first, then number the shards in file-name order.
    let mut names: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for (tensor, shard) in map {
        let Some(shard) = shard.as_str() else {
            return Err(FormatError::WrongFieldType {
                file: file.to_string(),
                field: format!("weight_map.{}", crate::error::one_line(tensor)),
                expected: "a shard file name".to_string(),
                found: "a non-string value".to_string(),
            });
        };
        // A shard name like "../../etc/passwd" must not send us outside the model directory.
        let plain = !shard.is_empty()
            && Path::new(shard)
                .file_name()
                .is_some_and(|n| n == std::ffi::OsStr::new(shard));
        if !plain {
            return Err(FormatError::malformed(
                file,
                format!(
                    "weight_map entry for {} names {}, which is not a plain file name",
                    quoted(tensor),
                    quoted(shard)
                ),
            ));
        }
        names.insert(shard);
    }
    let shard_index: HashMap<&str, usize> =
        names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let shards: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let mut weight_map = HashMap::with_capacity(map.len());
    for (tensor, shard) in map {
        if let Some(&i) = shard.as_str().and_then(|s| shard_index.get(s)) {
            weight_map.insert(tensor.clone(), i);
        }
    }
    if shards.is_empty() {
        return Err(FormatError::malformed(file, "weight_map is empty"));
    }
    Ok(ShardIndex {
        shards,
        weight_map,
        total_size,
    })
}

/// Reads an index file from disk.
pub fn read_index_file(path: &Path) -> Result<ShardIndex, FormatError> {
    let file = show_path(path);
    let bytes = crate::hf_config::read_json_file(path, MAX_INDEX_BYTES)?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    parse_index(&bytes, dir, &file)
}
