//! safetensors header reader: the 8-byte length and the JSON header, never the tensor data.
//!
//! Layout (huggingface/safetensors README, `safetensors/src/tensor.rs`; reference Part 1.4):
//! `u64 LE N | N bytes of JSON | data`. The JSON maps tensor names to
//! `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the data start) plus an
//! optional `"__metadata__"` string map.
//!
//! The checks are the `safetensors` crate's own (`Metadata::validate` in `tensor.rs` 0.8): dtypes
//! from its `Dtype` (whose names and bit sizes we use), offsets contiguous from 0 once sorted, each
//! tensor's byte range equal to shape × dtype bits / 8 with overflow checks, a whole number of
//! bytes, and the last offset equal to the data section's length. We do not call the crate's
//! parser: its `Metadata` builds a `HashMap` of names and a `Vec` of `TensorInfo` (a `Vec`
//! shape each), ~10× the header in memory for a million tensors, and `SafeTensors::read_metadata`
//! wants the whole file in one buffer. Instead the JSON header alone is read from the
//! [`ByteSource`] and parsed with each tensor going straight into the compact [`TensorList`]
//! (names borrowed from the buffer, shapes on the stack), and the same checks run on the offsets
//! afterwards: memory is the header once plus the list.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ::safetensors::Dtype;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{quoted, show_path, FormatError};
use crate::source::{read_exact_at, ByteSource};
use crate::tensors::{TensorList, MAX_TENSOR_DIMS};

/// MAX_HEADER_SIZE in safetensors `tensor.rs`.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;
/// An index file maps tensor names to shard files; a 100k-tensor index is a few MB.
pub const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;
/// `__metadata__` entries kept: checkpoints carry one to three (`format: pt`).
pub const MAX_METADATA_ENTRIES: usize = 1024;
/// Shard files an index may name: the largest checkpoints have a few hundred (DeepSeek-V3: 163).
pub const MAX_SHARDS: usize = 16_384;

/// A parsed safetensors header (its tensors went to the caller's [`TensorList`], in data-offset
/// order).
#[derive(Debug, Clone, Serialize)]
pub struct SafetensorsHeader {
    pub header_len: u64,
    pub tensor_count: u64,
    pub metadata: BTreeMap<String, String>,
    pub file_len: u64,
}

/// The crate's dtype names, as `'static` strings for the tensor list.
fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::BOOL => "BOOL",
        Dtype::F4 => "F4",
        Dtype::F6_E2M3 => "F6_E2M3",
        Dtype::F6_E3M2 => "F6_E3M2",
        Dtype::U8 => "U8",
        Dtype::I8 => "I8",
        Dtype::F8_E5M2 => "F8_E5M2",
        Dtype::F8_E4M3 => "F8_E4M3",
        Dtype::F8_E8M0 => "F8_E8M0",
        Dtype::F8_E4M3FNUZ => "F8_E4M3FNUZ",
        Dtype::F8_E5M2FNUZ => "F8_E5M2FNUZ",
        Dtype::I16 => "I16",
        Dtype::U16 => "U16",
        Dtype::F16 => "F16",
        Dtype::BF16 => "BF16",
        Dtype::I32 => "I32",
        Dtype::U32 => "U32",
        Dtype::F32 => "F32",
        Dtype::C64 => "C64",
        Dtype::F64 => "F64",
        Dtype::I64 => "I64",
        Dtype::U64 => "U64",
        // Dtype is non-exhaustive: a dtype a newer crate adds parses, and is shown as such.
        _ => "unknown",
    }
}

/// Reads the header of `src` (the 8-byte length, then the JSON streamed), appending its tensors
/// to `tensors` with file index `file_index`.
pub fn read_header(
    src: &dyn ByteSource,
    tensors: &mut TensorList,
    file_index: usize,
) -> Result<SafetensorsHeader, FormatError> {
    let file = src.name();
    let file_len = src.len()?;
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
    read_exact_at(src, 0, &mut len_bytes, "the header length")?;
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
    // header_len <= 100 MB and <= the bytes in the file: safe to allocate. Parsing from one
    // buffer is ~5× faster than from a stream (serde_json's slice reader scans strings in bulk),
    // and the buffer is the header's size once.
    let mut header = vec![0u8; header_len as usize];
    read_exact_at(src, 8, &mut header, "the JSON header")?;
    let (metadata, offsets) = parse_json(&header, tensors, file_index, file)?;
    drop(header);
    finish(tensors, offsets, metadata, header_len, file_len, file)
}

/// Parses the JSON header bytes (without the 8-byte length) of a file `file_len` bytes long.
pub fn parse_header_bytes(
    header: &[u8],
    file_len: u64,
    file: &str,
    tensors: &mut TensorList,
) -> Result<SafetensorsHeader, FormatError> {
    let (metadata, offsets) = parse_json(header, tensors, 0, file)?;
    finish(
        tensors,
        offsets,
        metadata,
        header.len() as u64,
        file_len,
        file,
    )
}

/// Data offsets of the tensors one header added, in the list's order.
type Offsets = Vec<(u64, u64)>;

fn invalid(file: &str, e: impl fmt::Display) -> FormatError {
    FormatError::malformed(file, format!("invalid safetensors header: {e}"))
}

/// The JSON object: each tensor straight into the list, `__metadata__` kept, nothing else.
fn parse_json(
    json: &[u8],
    tensors: &mut TensorList,
    file_index: usize,
    file: &str,
) -> Result<(BTreeMap<String, String>, Offsets), FormatError> {
    let mut limit: Option<FormatError> = None;
    let mut de = serde_json::Deserializer::from_slice(json);
    let seed = HeaderSeed {
        tensors,
        file_index,
        file,
        limit: &mut limit,
    };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (result, limit) {
        (_, Some(e)) => Err(e),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(invalid(file, e)),
    }
}

/// The crate's `Metadata::validate`, over the offsets kept apart from the list; then the last
/// offset against the file's length.
fn finish(
    tensors: &TensorList,
    offsets: Offsets,
    metadata: BTreeMap<String, String>,
    header_len: u64,
    file_len: u64,
    file: &str,
) -> Result<SafetensorsHeader, FormatError> {
    let first = tensors.len() - offsets.len();
    let name = |i: usize| {
        tensors
            .get(first + i)
            .map(|t| t.name)
            .unwrap_or("no_tensor")
    };
    if let Some((dup, _)) = tensors.duplicate_name(first) {
        return Err(invalid(
            file,
            format!("tensor {} is listed twice", quoted(dup)),
        ));
    }
    let mut order: Vec<u32> = (0..offsets.len() as u32).collect();
    order.sort_unstable_by_key(|&i| offsets[i as usize]);
    let mut start = 0u64;
    for &i in &order {
        let (s, e) = offsets[i as usize];
        if s != start || e < s {
            return Err(invalid(
                file,
                format!("invalid offset for tensor `{}`", name(i as usize)),
            ));
        }
        start = e;
        // The element count and byte size were checked against the offsets when the tensor
        // was read (TensorInfo in HeaderSeed).
    }
    let data_len = start;
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
    Ok(SafetensorsHeader {
        header_len,
        tensor_count: offsets.len() as u64,
        metadata,
        file_len,
    })
}

/// One tensor's JSON, as the crate's `TensorInfo` reads it (other keys ignored).
#[derive(Deserialize)]
struct TensorInfo {
    dtype: Dtype,
    #[serde(deserialize_with = "bounded_shape")]
    shape: ShapeBuf,
    data_offsets: (u64, u64),
}

/// A shape of at most [`MAX_TENSOR_DIMS`] dimensions, without a heap allocation.
struct ShapeBuf {
    dims: [u64; MAX_TENSOR_DIMS as usize],
    len: usize,
}

fn bounded_shape<'de, D: de::Deserializer<'de>>(d: D) -> Result<ShapeBuf, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = ShapeBuf;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a list of at most {MAX_TENSOR_DIMS} dimensions")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ShapeBuf, A::Error> {
            let mut out = ShapeBuf {
                dims: [0; MAX_TENSOR_DIMS as usize],
                len: 0,
            };
            while let Some(d) = seq.next_element::<u64>()? {
                if out.len == out.dims.len() {
                    return Err(de::Error::custom(format!(
                        "a shape has more than {MAX_TENSOR_DIMS} dimensions"
                    )));
                }
                out.dims[out.len] = d;
                out.len += 1;
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

/// Element count and byte size of one tensor, as `Metadata::validate` computes them (bits, then
/// bytes; a partial byte is an error).
fn sizes(info: &TensorInfo) -> Result<(u64, u64), &'static str> {
    let shape = &info.shape.dims[..info.shape.len];
    let n = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or("overflow computing buffer size from shape and/or element type")?;
    let bits = n
        .checked_mul(info.dtype.bitsize() as u64)
        .ok_or("overflow computing buffer size from shape and/or element type")?;
    if bits % 8 != 0 {
        return Err("a tensor's size is not a whole number of bytes");
    }
    Ok((n, bits / 8))
}

struct HeaderSeed<'a> {
    tensors: &'a mut TensorList,
    file_index: usize,
    file: &'a str,
    /// A limit of ours that stopped the parse (reported as is, not as a JSON error).
    limit: &'a mut Option<FormatError>,
}

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = (BTreeMap<String, String>, Offsets);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed<'_> {
    type Value = (BTreeMap<String, String>, Offsets);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of tensors")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut metadata = BTreeMap::new();
        let mut offsets = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "__metadata__" {
                metadata = map.next_value_seed(MetadataSeed)?;
                continue;
            }
            let info: TensorInfo = map.next_value()?;
            let (n_elements, n_bytes) = sizes(&info).map_err(de::Error::custom)?;
            let (begin, end) = info.data_offsets;
            if end < begin || end - begin != n_bytes {
                return Err(de::Error::custom(format!(
                    "invalid shape, data type, or offset for tensor `{key}`"
                )));
            }
            let shape = &info.shape.dims[..info.shape.len];
            if let Err(l) = self.tensors.push(
                &key,
                dtype_name(info.dtype),
                shape,
                n_elements,
                n_bytes,
                self.file_index,
            ) {
                *self.limit = Some(crate::error::over_limit(self.file, &l));
                return Err(de::Error::custom("limit"));
            }
            offsets.push((begin, end));
        }
        Ok((metadata, offsets))
    }
}

/// `__metadata__`: a map of strings, at most [`MAX_METADATA_ENTRIES`] of them.
struct MetadataSeed;

impl<'de> DeserializeSeed<'de> for MetadataSeed {
    type Value = BTreeMap<String, String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed {
    type Value = BTreeMap<String, String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of strings")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, String>()? {
            if out.len() == MAX_METADATA_ENTRIES {
                return Err(de::Error::custom(format!(
                    "__metadata__ has more than {MAX_METADATA_ENTRIES} entries"
                )));
            }
            out.insert(k, v);
        }
        Ok(out)
    }
}

/// `model.safetensors.index.json`: which shard holds each tensor (a Hugging Face convention,
/// not part of the safetensors format). Held compactly: all names in one string, 12 bytes per
/// entry besides.
#[derive(Debug, Clone, Serialize)]
pub struct ShardIndex {
    /// Shard files in file-name order, resolved against the index's directory.
    pub shards: Vec<PathBuf>,
    names: String,
    /// (name start, name length, shard) per weight_map entry.
    entries: Vec<(u32, u32, u32)>,
    /// metadata.total_size, if given (bytes of tensor data, informational).
    pub total_size: Option<u64>,
}

impl ShardIndex {
    /// weight_map entries: (tensor name, index into `shards`).
    pub fn weight_map(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        self.entries.iter().map(|&(start, len, shard)| {
            let start = start as usize;
            (
                self.names.get(start..start + len as usize).unwrap_or(""),
                shard as usize,
            )
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Parses an index file's bytes; shard names must be plain file names in the same directory.
pub fn parse_index(bytes: &[u8], dir: &Path, file: &str) -> Result<ShardIndex, FormatError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut problem: Option<FormatError> = None;
    let raw = IndexSeed {
        file,
        problem: &mut problem,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    let raw = match (raw, problem) {
        (_, Some(e)) => return Err(e),
        (Err(e), None) => return Err(FormatError::json(file, e)),
        (Ok(raw), None) => raw,
    };
    let Some(mut raw) = raw.weight_map else {
        return Err(FormatError::MissingField {
            file: file.to_string(),
            field: "weight_map".to_string(),
            alternatives: String::new(),
        });
    };
    if raw.entries.is_empty() {
        return Err(FormatError::malformed(file, "weight_map is empty"));
    }
    // Number the shards in file-name order.
    let mut by_name: Vec<(String, u32)> = std::mem::take(&mut raw.shards).into_iter().collect();
    by_name.sort();
    let mut renumber = vec![0u32; by_name.len()];
    for (new, (_, old)) in by_name.iter().enumerate() {
        renumber[*old as usize] = new as u32;
    }
    for e in &mut raw.entries {
        e.2 = renumber[e.2 as usize];
    }
    Ok(ShardIndex {
        shards: by_name.iter().map(|(n, _)| dir.join(n)).collect(),
        names: raw.names,
        entries: raw.entries,
        total_size: raw.total_size,
    })
}

/// Reads an index file from disk.
pub fn read_index_file(path: &Path) -> Result<ShardIndex, FormatError> {
    let file = show_path(path);
    let bytes = crate::hf_config::read_json_file(path, MAX_INDEX_BYTES)?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    parse_index(&bytes, dir, &file)
}

#[derive(Default)]
struct RawWeightMap {
    names: String,
    entries: Vec<(u32, u32, u32)>,
    /// Shard name → its number in order of first mention.
    shards: std::collections::HashMap<String, u32>,
    total_size: Option<u64>,
}

struct RawIndex {
    weight_map: Option<RawWeightMap>,
    total_size: Option<u64>,
}

struct IndexSeed<'a> {
    file: &'a str,
    problem: &'a mut Option<FormatError>,
}

impl<'de> DeserializeSeed<'de> for IndexSeed<'_> {
    type Value = RawWeightMapResult;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// What the top level of an index holds.
struct RawWeightMapResult {
    weight_map: Option<RawWeightMap>,
}

impl<'de> Visitor<'de> for IndexSeed<'_> {
    type Value = RawWeightMapResult;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with a weight_map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = RawIndex {
            weight_map: None,
            total_size: None,
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "weight_map" => {
                    raw.weight_map = Some(map.next_value_seed(WeightMapSeed {
                        file: self.file,
                        problem: &mut *self.problem,
                    })?)
                }
                "metadata" => {
                    let m: serde_json::Map<String, serde_json::Value> =
                        match map.next_value::<serde_json::Value>()? {
                            serde_json::Value::Object(m) => m,
                            _ => Default::default(),
                        };
                    raw.total_size = m.get("total_size").and_then(|v| {
                        v.as_u64()
                            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    });
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let mut weight_map = raw.weight_map;
        if let Some(w) = weight_map.as_mut() {
            w.total_size = raw.total_size;
        }
        Ok(RawWeightMapResult { weight_map })
    }
}

struct WeightMapSeed<'a> {
    file: &'a str,
    problem: &'a mut Option<FormatError>,
}

impl<'de> DeserializeSeed<'de> for WeightMapSeed<'_> {
    type Value = RawWeightMap;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for WeightMapSeed<'_> {
    type Value = RawWeightMap;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of tensor names to shard file names")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = RawWeightMap::default();
        let mut fail = |e: FormatError| -> A::Error {
            *self.problem = Some(e);
            de::Error::custom("stopped")
        };
        while let Some(tensor) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value: serde_json::Value = map.next_value()?;
            let Some(shard) = value.as_str() else {
                return Err(fail(FormatError::WrongFieldType {
                    file: self.file.to_string(),
                    field: format!("weight_map.{}", crate::error::one_line(&tensor)),
                    expected: "a shard file name".to_string(),
                    found: "a non-string value".to_string(),
                }));
            };
            // A shard name like "../../etc/passwd" must not send us outside the model directory.
            let plain = !shard.is_empty()
                && Path::new(shard)
                    .file_name()
                    .is_some_and(|n| n == std::ffi::OsStr::new(shard));
            if !plain {
                return Err(fail(FormatError::malformed(
                    self.file,
                    format!(
                        "weight_map entry for {} names {}, which is not a plain file name",
                        quoted(&tensor),
                        quoted(shard)
                    ),
                )));
            }
            let next = out.shards.len() as u32;
            let shard_no = match out.shards.get(shard) {
                Some(&n) => n,
                None if out.shards.len() >= MAX_SHARDS => {
                    return Err(fail(FormatError::OverLimit {
                        file: self.file.to_string(),
                        what: "shard files named by weight_map".to_string(),
                        value: out.shards.len() as u64 + 1,
                        cap: MAX_SHARDS as u64,
                    }))
                }
                None => {
                    out.shards.insert(shard.to_string(), next);
                    next
                }
            };
            if out.entries.len() as u64 >= crate::tensors::MAX_TENSORS
                || tensor.len() as u64 > crate::tensors::MAX_TENSOR_NAME_BYTES
            {
                let (what, value, cap) =
                    if tensor.len() as u64 > crate::tensors::MAX_TENSOR_NAME_BYTES {
                        (
                            "length of a tensor name in weight_map",
                            tensor.len() as u64,
                            crate::tensors::MAX_TENSOR_NAME_BYTES,
                        )
                    } else {
                        (
                            "weight_map entries",
                            out.entries.len() as u64 + 1,
                            crate::tensors::MAX_TENSORS,
                        )
                    };
                return Err(fail(FormatError::OverLimit {
                    file: self.file.to_string(),
                    what: what.to_string(),
                    value,
                    cap,
                }));
            }
            out.entries
                .push((out.names.len() as u32, tensor.len() as u32, shard_no));
            out.names.push_str(&tensor);
        }
        Ok(out)
    }
}
