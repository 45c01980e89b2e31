//! GGUF header reader (our own: no crate of standing reads GGUF headers, and we need hard bounds).
//!
//! Layout, per the GGUF specification (ggml `docs/gguf.md`, `src/gguf.cpp`; summarised in
//! docs/reference/gguf_and_quant.md Part 1.1):
//!
//! ```text
//! u32 magic "GGUF" | u32 version (1..=3) | tensor_count | metadata_kv_count     (counts: u64, v1: u32)
//! metadata_kv[kv_count]:   string key | u32 value_type | value
//! tensor_info[tensor_count]: string name | u32 n_dims | dims[n_dims] (u64, v1: u32) | u32 ggml_type | u64 offset
//! padding to ALIGNMENT (general.alignment, default 32) | tensor data (offsets relative to here)
//! ```
//!
//! Strings are `len` (u64, v1: u32) + bytes, no NUL. Everything is little-endian except in
//! big-endian v3 files, which we recognise by a byte-swapped version number (as gguf.cpp does).
//!
//! Bounds, so hostile input cannot make us allocate or loop beyond what the file holds: every
//! count is checked against the bytes left in the file (file length comes from the file system)
//! *before* anything is allocated for it; strings, arrays, nesting and kept metadata have caps;
//! element counts and byte sizes use checked arithmetic; tensor data must be aligned, inside the
//! data section, and non-overlapping. Only the header is read: we never seek into tensor data.
//!
//! The header is read through a [`ByteSource`] in ranges of growing size ([`SourceReader`]): a
//! GGUF header's length is only known once it has been parsed. Tensors go into the caller's
//! [`TensorList`] (compact: memory follows the header's size); metadata values are kept within a
//! budget that grows with the bytes read, so no header keeps more than a few times its size.

use std::collections::BTreeMap;
use std::io::{BufRead, ErrorKind};

use serde::Serialize;

use crate::error::{quoted, FormatError};
use crate::source::{ByteSource, SourceReader};
use crate::tensors::{TensorList, MAX_TENSORS, MAX_TENSOR_NAME_BYTES};

/// Longest metadata key: the spec limits keys to 65535 bytes.
pub const MAX_KEY_BYTES: u64 = 65_535;
/// Longest string value we read (chat templates are tens of KiB; gguf.cpp allows 1 GiB, which
/// would let one header field allocate 1 GiB here).
pub const MAX_STRING_VALUE_BYTES: u64 = 16 * 1024 * 1024;
/// Longest array: gguf.cpp's own cap (1 Gi elements); the bytes-left check usually bites first.
pub const MAX_ARRAY_LEN: u64 = 1 << 30;
/// Arrays may nest (spec), but not without end: the recursion depth is bounded.
pub const MAX_ARRAY_DEPTH: u32 = 8;
/// ggml tensors have at most 4 dimensions (GGML_MAX_DIMS).
pub const MAX_DIMS: u32 = 4;
/// Numeric arrays up to this length are kept whole: per-layer head counts and FFN widths, one
/// entry per layer (limits.rs). Longer ones (token scores and types) keep their length and
/// samples: nothing reads them whole.
pub const KEEP_ALL_NUMBERS_UP_TO: u64 = vramplan_core::limits::MAX_PER_LAYER_ENTRIES;
/// String (and nested) arrays up to this length are kept whole; longer ones (a 128k-token
/// vocabulary) keep only their length and the first [`SAMPLES_KEPT`] elements.
pub const KEEP_ALL_STRINGS_UP_TO: u64 = 256;
/// Elements kept from an array that is too long to keep whole.
pub const SAMPLES_KEPT: u64 = 8;
/// Total memory kept metadata may use (counted per value: its in-memory size, and a string's
/// bytes). Real headers keep well under 1 MiB: the tokenizer's long arrays keep only samples.
pub const MAX_KEPT_METADATA_BYTES: u64 = 48 * 1024 * 1024;
/// Kept metadata may also not exceed this many times the header bytes read so far (plus
/// [`KEPT_METADATA_FLOOR`]): a value kept whole takes more memory than its encoding (a u8 array
/// element becomes a 32-byte value), and this keeps a header made of such values proportional.
pub const KEPT_METADATA_PER_BYTE_READ: u64 = 2;
/// What kept metadata may use whatever was read (small headers, per-layer arrays).
pub const KEPT_METADATA_FLOOR: u64 = 1024 * 1024;
/// GGUF_DEFAULT_ALIGNMENT (gguf.h).
pub const DEFAULT_ALIGNMENT: u64 = 32;

// ------------------------------------------------------------------------------------------
// ggml tensor types
// ------------------------------------------------------------------------------------------

/// A ggml tensor type: elements per block and bytes per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GgmlType {
    pub id: u32,
    pub name: &'static str,
    pub block_size: u64,
    pub type_size: u64,
}

/// The one table of ggml types lives in the core (`vramplan_core::ggml`, with its sources); the
/// reader keeps this view of it, in the u64 units its size checks use.
impl From<vramplan_core::ggml::GgmlType> for GgmlType {
    fn from(t: vramplan_core::ggml::GgmlType) -> GgmlType {
        GgmlType {
            id: t.id,
            name: t.name,
            block_size: u64::from(t.block),
            type_size: u64::from(t.block_bytes),
        }
    }
}

/// Ids ggml once used and removed; a file carrying one cannot be loaded by current llama.cpp.
const REMOVED_GGML_TYPES: &[(u32, &str)] = &[
    (4, "Q4_2"),
    (5, "Q4_3"),
    (31, "Q4_0_4_4"),
    (32, "Q4_0_4_8"),
    (33, "Q4_0_8_8"),
    (36, "IQ4_NL_4_4"),
    (37, "IQ4_NL_4_8"),
    (38, "IQ4_NL_8_8"),
];

impl GgmlType {
    pub fn from_id(id: u32) -> Option<GgmlType> {
        vramplan_core::ggml::GgmlType::by_id(id).map(GgmlType::from)
    }

    pub fn from_name(name: &str) -> Option<GgmlType> {
        vramplan_core::ggml::GgmlType::by_name(name).map(GgmlType::from)
    }

    /// Bytes for `n_elements` of this type, `None` if not a whole number of blocks or overflow.
    /// gguf.cpp: `nbytes = ne / block_size * type_size`.
    pub fn nbytes(&self, n_elements: u64) -> Option<u64> {
        if self.block_size == 0 || !n_elements.is_multiple_of(self.block_size) {
            return None;
        }
        (n_elements / self.block_size).checked_mul(self.type_size)
    }

    /// Bits per weight, for display (8 × bytes / block).
    pub fn bits_per_weight(&self) -> f64 {
        if self.block_size == 0 {
            return 0.0;
        }
        8.0 * self.type_size as f64 / self.block_size as f64
    }
}

/// llama_ftype names for `general.file_type`: the core's table (`vramplan_core::ggml`).
pub use vramplan_core::ggml::file_type_name;

// ------------------------------------------------------------------------------------------
// Metadata values
// ------------------------------------------------------------------------------------------

/// GGUF metadata value types (gguf.h `gguf_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// Encoded size of a fixed-size value, `None` for strings and arrays.
    fn fixed_size(self) -> Option<u64> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }

    /// The fewest bytes one value of this type can take: used to check counts against the
    /// bytes left before looping over them.
    fn min_encoded_bytes(self, v1: bool) -> u64 {
        let len_field = if v1 { 4 } else { 8 };
        match self {
            ValueType::String => len_field,
            ValueType::Array => 4 + len_field,
            other => other.fixed_size().unwrap_or(1),
        }
    }
}

/// One metadata value. Serialised untagged, so `--json` shows plain JSON values.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    /// Boxed, so that a scalar value takes 32 bytes rather than an array's size.
    Array(Box<MetaArray>),
}

/// An array value. Long string arrays keep only their length and a few samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaArray {
    pub elem_type: ValueType,
    /// Number of elements in the file.
    pub len: u64,
    /// All elements when `complete`, else the first [`SAMPLES_KEPT`].
    pub values: Vec<MetaValue>,
    pub complete: bool,
}

impl MetaValue {
    /// Any integer type holding a non-negative value, as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(u64::from(v)),
            MetaValue::U16(v) => Some(u64::from(v)),
            MetaValue::U32(v) => Some(u64::from(v)),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(a) => Some(a.as_ref()),
            _ => None,
        }
    }

    /// Short description of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "u8",
            MetaValue::I8(_) => "i8",
            MetaValue::U16(_) => "u16",
            MetaValue::I16(_) => "i16",
            MetaValue::U32(_) => "u32",
            MetaValue::I32(_) => "i32",
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F32(_) => "f32",
            MetaValue::F64(_) => "f64",
            MetaValue::Bool(_) => "bool",
            MetaValue::String(_) => "string",
            MetaValue::Array(_) => "array",
        }
    }
}

// ------------------------------------------------------------------------------------------
// Header
// ------------------------------------------------------------------------------------------

/// A parsed GGUF header (its tensors went to the caller's [`TensorList`]).
#[derive(Debug, Clone, Serialize)]
pub struct GgufHeader {
    pub version: u32,
    pub big_endian: bool,
    pub alignment: u64,
    pub metadata: BTreeMap<String, MetaValue>,
    /// Tensor infos in the header.
    pub tensor_count: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
    pub file_len: u64,
}

impl GgufHeader {
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(MetaValue::as_str)
    }

    pub fn file_type(&self) -> Option<u32> {
        self.get("general.file_type")
            .and_then(MetaValue::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    }
}

/// The header of a GGUF held in memory, with its tensors (tests, the fuzzer).
pub fn read_bytes(name: &str, bytes: &[u8]) -> Result<(GgufHeader, TensorList), FormatError> {
    let mut tensors = TensorList::new();
    let header = read_header(
        &crate::source::MemorySource::new(name, bytes),
        &mut tensors,
        0,
    )?;
    Ok((header, tensors))
}

/// Reads the GGUF header of `src`, appending its tensors to `tensors` with file index
/// `file_index`. `src.name()` starts every error line.
pub fn read_header(
    src: &dyn ByteSource,
    tensors: &mut TensorList,
    file_index: usize,
) -> Result<GgufHeader, FormatError> {
    let file_len = src.len()?;
    let file = src.name();
    let mut reader = SourceReader::new(src, 0, file_len)?;
    let mut cur = Cursor {
        reader: &mut reader,
        file,
        pos: 0,
        len: file_len,
        big_endian: false,
        v1: false,
        kept_bytes: 0,
    };

    let magic: [u8; 4] = cur.array(|| "the GGUF magic".to_string())?;
    if &magic != b"GGUF" {
        return Err(FormatError::UnknownFormat {
            file: file.to_string(),
            reason: "does not start with the GGUF magic \"GGUF\"".to_string(),
        });
    }
    let version_bytes: [u8; 4] = cur.array(|| "the GGUF version".to_string())?;
    let version_le = u32::from_le_bytes(version_bytes);
    let version_be = u32::from_be_bytes(version_bytes);
    let version = if (1..=3).contains(&version_le) {
        version_le
    } else if (1..=3).contains(&version_be) {
        // gguf.cpp tells a byte-swapped version by its zero low 16 bits; v3 allows big-endian.
        cur.big_endian = true;
        version_be
    } else {
        return Err(FormatError::malformed(
            file,
            format!(
                "unsupported GGUF version {version_le} (this reader knows versions 1, 2 and 3)"
            ),
        ));
    };
    cur.v1 = version == 1;

    let tensor_count = cur.len_field(|| "the tensor count".to_string())?;
    let kv_count = cur.len_field(|| "the metadata key/value count".to_string())?;

    let len_field = if cur.v1 { 4 } else { 8 };
    // Smallest possible encodings: key (len + 1 byte) + type + 1-byte value; tensor info
    // name len + n_dims + type + offset.
    let min_kv = len_field + 1 + 4 + 1;
    let min_tensor_info = len_field + 4 + 4 + 8;
    cur.check_count("metadata key/value count", kv_count, min_kv)?;
    cur.check_count("tensor count", tensor_count, min_tensor_info)?;
    let total = (tensors.len() as u64).saturating_add(tensor_count);
    if total > MAX_TENSORS {
        return Err(FormatError::OverLimit {
            file: file.to_string(),
            what: "tensor count".to_string(),
            value: total,
            cap: MAX_TENSORS,
        });
    }

    // ---- metadata ----
    let mut metadata = BTreeMap::new();
    for index in 0..kv_count {
        let key_bytes =
            cur.string_bytes(MAX_KEY_BYTES, &|| format!("key of metadata entry #{index}"))?;
        let key = String::from_utf8(key_bytes).map_err(|_| {
            FormatError::malformed(file, format!("metadata key #{index} is not valid UTF-8"))
        })?;
        let type_id = cur.u32(|| format!("value type of metadata {}", quoted(&key)))?;
        let value_type = ValueType::from_id(type_id).ok_or_else(|| {
            FormatError::malformed(
                file,
                format!("metadata {} has unknown value type {type_id}", quoted(&key)),
            )
        })?;
        let value = cur.value(value_type, 0, &key)?;
        if metadata.contains_key(&key) {
            return Err(FormatError::malformed(
                file,
                format!("duplicate metadata key {}", quoted(&key)),
            ));
        }
        cur.keep((key.len() as u64).saturating_add(64))?;
        metadata.insert(key, value);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(value) => match value.as_u64() {
            Some(a) if a != 0 && a.is_power_of_two() => a,
            _ => {
                return Err(FormatError::malformed(
                    file,
                    format!(
                        "general.alignment must be a non-zero power of two, found {} {:?}",
                        value.type_name(),
                        value
                    ),
                ))
            }
        },
    };

    // ---- tensor infos ----
    let first = tensors.len();
    // Offsets, for the data-section checks once every tensor is read (8 bytes per tensor).
    let mut offsets: Vec<u64> = Vec::new();
    for index in 0..tensor_count {
        let name_bytes = cur.string_bytes(MAX_TENSOR_NAME_BYTES, &|| {
            format!("name of tensor #{index}")
        })?;
        let name = String::from_utf8(name_bytes).map_err(|_| {
            FormatError::malformed(file, format!("name of tensor #{index} is not valid UTF-8"))
        })?;
        let n_dims = cur.u32(|| format!("dimension count of tensor {}", quoted(&name)))?;
        if n_dims > MAX_DIMS {
            return Err(FormatError::malformed(
                file,
                format!(
                    "tensor {} has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}",
                    quoted(&name)
                ),
            ));
        }
        let mut dims = [0u64; MAX_DIMS as usize];
        for slot in dims.iter_mut().take(n_dims as usize) {
            let d = cur.len_field(|| format!("a dimension of tensor {}", quoted(&name)))?;
            // gguf.cpp reads dims as int64 and rejects negative ones.
            if d > i64::MAX as u64 {
                return Err(FormatError::malformed(
                    file,
                    format!("tensor {} has dimension {d}, above 2^63-1", quoted(&name)),
                ));
            }
            *slot = d;
        }
        let dims = &dims[..n_dims as usize];
        let type_id = cur.u32(|| format!("type of tensor {}", quoted(&name)))?;
        let offset = cur.u64(|| format!("data offset of tensor {}", quoted(&name)))?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
            let detail = match REMOVED_GGML_TYPES.iter().find(|(id, _)| *id == type_id) {
                Some((_, old)) => format!(" ({old}, removed from ggml)"),
                None => " (not in ggml's type table as of type id 42)".to_string(),
            };
            FormatError::UnknownTensorType {
                file: file.to_string(),
                tensor: quoted(&name),
                type_id,
                detail,
            }
        })?;
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                FormatError::malformed(
                    file,
                    format!(
                        "tensor {} element count overflows 64 bits (dims {:?})",
                        quoted(&name),
                        dims
                    ),
                )
            })?;
        let row = dims.first().copied().unwrap_or(1);
        if row % ggml_type.block_size != 0 {
            return Err(FormatError::malformed(
                file,
                format!(
                    "tensor {} has row length {row}, not a multiple of the {} block size {}",
                    quoted(&name),
                    ggml_type.name,
                    ggml_type.block_size
                ),
            ));
        }
        let n_bytes = ggml_type.nbytes(n_elements).ok_or_else(|| {
            FormatError::malformed(
                file,
                format!("tensor {} byte size overflows 64 bits", quoted(&name)),
            )
        })?;
        tensors
            .push(&name, ggml_type.name, dims, n_elements, n_bytes, file_index)
            .map_err(|l| crate::error::over_limit(file, &l))?;
        offsets.push(offset);
    }
    if let Some((name, _)) = tensors.duplicate_name(first) {
        return Err(FormatError::malformed(
            file,
            format!("duplicate tensor name {}", quoted(name)),
        ));
    }

    // ---- data section ----
    let end_of_infos = cur.pos;
    let data_offset = align_up(end_of_infos, alignment)
        .ok_or_else(|| FormatError::malformed(file, "data section offset overflows 64 bits"))?;
    if tensor_count > 0 {
        if data_offset > file_len {
            return Err(FormatError::Truncated {
                file: file.to_string(),
                what: "the tensor data section".to_string(),
                needed: data_offset.saturating_sub(end_of_infos),
                offset: end_of_infos,
                file_len,
            });
        }
        validate_tensor_data(
            file,
            tensors,
            first,
            &offsets,
            alignment,
            data_offset,
            file_len,
        )?;
    }

    Ok(GgufHeader {
        version,
        big_endian: cur.big_endian,
        alignment,
        metadata,
        tensor_count,
        data_offset,
        file_len,
    })
}

/// `x` rounded up to a multiple of `align` (a power of two); `None` on overflow.
fn align_up(x: u64, align: u64) -> Option<u64> {
    let rem = x % align;
    if rem == 0 {
        Some(x)
    } else {
        x.checked_add(align - rem)
    }
}

/// Every tensor of this file (`tensors[first..]`, at `offsets`) aligned, inside the data
/// section, and not overlapping another.
fn validate_tensor_data(
    file: &str,
    tensors: &TensorList,
    first: usize,
    offsets: &[u64],
    alignment: u64,
    data_offset: u64,
    file_len: u64,
) -> Result<(), FormatError> {
    let data_size = file_len.saturating_sub(data_offset);
    for (ti, &offset) in tensors.iter_from(first).zip(offsets) {
        if offset % alignment != 0 {
            return Err(FormatError::malformed(
                file,
                format!(
                    "tensor {} data offset {offset} is not a multiple of the alignment {alignment}",
                    quoted(ti.name),
                ),
            ));
        }
        let in_range = offset
            .checked_add(ti.n_bytes)
            .is_some_and(|end| end <= data_size);
        if !in_range {
            return Err(FormatError::TensorOutOfRange {
                file: file.to_string(),
                tensor: quoted(ti.name),
                offset,
                nbytes: ti.n_bytes,
                data_size,
                file_len,
            });
        }
    }
    // Sort by offset; each tensor must end at or before the next one starts. Zero-byte tensors
    // occupy nothing and cannot overlap. 4 bytes per tensor.
    let entry = |i: u32| tensors.get(first + i as usize);
    let mut order: Vec<u32> = (0..offsets.len() as u32)
        .filter(|&i| entry(i).is_some_and(|t| t.n_bytes > 0))
        .collect();
    order.sort_unstable_by_key(|&i| offsets[i as usize]);
    for pair in order.windows(2) {
        if let ([a, b], Some(ta), Some(tb)) = (pair, entry(pair[0]), entry(pair[1])) {
            let (a_start, b_start) = (offsets[*a as usize], offsets[*b as usize]);
            // In range was checked above, so this add cannot overflow.
            let a_end = a_start.saturating_add(ta.n_bytes);
            if a_end > b_start {
                return Err(FormatError::TensorOverlap {
                    file: file.to_string(),
                    first: quoted(ta.name),
                    second: quoted(tb.name),
                    first_start: a_start,
                    first_end: a_end,
                    second_start: b_start,
                });
            }
        }
    }
    Ok(())
}

/// Position-tracking reader over the header with every bound check in one place.
struct Cursor<'a, 'src> {
    reader: &'a mut SourceReader<'src>,
    file: &'a str,
    pos: u64,
    len: u64,
    big_endian: bool,
    v1: bool,
    kept_bytes: u64,
}

impl Cursor<'_, '_> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn truncated(&self, what: String, needed: u64) -> FormatError {
        FormatError::Truncated {
            file: self.file.to_string(),
            what,
            needed,
            offset: self.pos,
            file_len: self.len,
        }
    }

    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<(), FormatError> {
        if n > self.remaining() {
            return Err(self.truncated(what(), n));
        }
        Ok(())
    }

    /// `count` items of at least `min_each` bytes must fit in what is left of the file.
    fn check_count(&self, what: &str, count: u64, min_each: u64) -> Result<(), FormatError> {
        let max = self.remaining() / min_each.max(1);
        if count > max {
            return Err(FormatError::CountTooLarge {
                file: self.file.to_string(),
                what: what.to_string(),
                count,
                remaining: self.remaining(),
                max,
            });
        }
        Ok(())
    }

    /// Account for memory kept from the header; fail once past the budget (an absolute cap,
    /// and a multiple of the bytes read so far).
    fn keep(&mut self, bytes: u64) -> Result<(), FormatError> {
        self.kept_bytes = self.kept_bytes.saturating_add(bytes);
        let cap = MAX_KEPT_METADATA_BYTES.min(
            KEPT_METADATA_FLOOR
                .saturating_add(self.pos.saturating_mul(KEPT_METADATA_PER_BYTE_READ)),
        );
        if self.kept_bytes > cap {
            return Err(FormatError::OverLimit {
                file: self.file.to_string(),
                what: "metadata kept in memory (bytes)".to_string(),
                value: self.kept_bytes,
                cap,
            });
        }
        Ok(())
    }

    /// An error from the reader: the source's own error when it was one.
    fn read_error(&mut self, e: std::io::Error, what: String, n: u64) -> FormatError {
        if let Some(source_error) = self.reader.take_error() {
            if !matches!(source_error, FormatError::Truncated { .. }) {
                return source_error;
            }
        }
        if e.kind() == ErrorKind::UnexpectedEof {
            self.truncated(what, n)
        } else {
            FormatError::io(self.file, e)
        }
    }

    fn fill(&mut self, buf: &mut [u8], what: &dyn Fn() -> String) -> Result<(), FormatError> {
        let n = buf.len() as u64;
        self.need(n, what)?;
        // Most fields lie whole in the reader's current range: copied from it directly, not
        // through `read_exact`'s loop (a 128k-token vocabulary is ~400k length fields; this
        // path took the 9 MB header of a 70B GGUF from 34 to ~30 ms of CPU in release).
        if let Some(bytes) = self.reader.buffered().get(..buf.len()) {
            buf.copy_from_slice(bytes);
            self.reader.consume(buf.len());
            self.pos += n;
            return Ok(());
        }
        match std::io::Read::read_exact(self.reader, buf) {
            Ok(()) => {
                self.pos += n;
                Ok(())
            }
            // The file shrank under us (or the caller's length was wrong): still "truncated".
            Err(e) => Err(self.read_error(e, what(), n)),
        }
    }

    fn array<const N: usize>(&mut self, what: impl Fn() -> String) -> Result<[u8; N], FormatError> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, &what)?;
        Ok(buf)
    }

    /// Skip `n` bytes through the buffer (no seek: we never leave the header).
    fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<(), FormatError> {
        self.need(n, what)?;
        let mut left = n;
        while left > 0 {
            let available = match self.reader.fill_buf() {
                Ok(buf) => buf.len(),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(e, what(), left)),
            };
            if available == 0 {
                return Err(self.truncated(what(), left));
            }
            let take = (available as u64).min(left);
            // take <= available, which is a usize.
            self.reader.consume(take as usize);
            left -= take;
            self.pos += take;
        }
        Ok(())
    }

    /// Skips `count` length-prefixed strings of array `key`, each checked against
    /// [`MAX_STRING_VALUE_BYTES`] and the file. The strings that lie whole in the reader's current
    /// range are stepped over in place, without a call per string: a 128,256-token vocabulary and
    /// its 280,147 merges are ~400,000 strings, and walking them one `len_field` + `skip` at a
    /// time was two thirds of the instructions of an `--offline` estimate of a cached 70B GGUF
    /// (callgrind: 93 M of 148 M). A string that crosses the range's end, or whose length is
    /// refused, takes the checked one-at-a-time path.
    fn skip_strings(&mut self, mut count: u64, key: &str) -> Result<(), FormatError> {
        let len_bytes = if self.v1 { 4 } else { 8 };
        while count > 0 {
            let buffered = self.reader.buffered();
            let mut at = 0usize;
            while count > 0 {
                let Some(field) = buffered.get(at..at + len_bytes) else {
                    break;
                };
                // The length field (u32 in v1, u64 after), in the file's byte order.
                let byte = |a: u64, b: &u8| a << 8 | u64::from(*b);
                let n = if self.big_endian {
                    field.iter().fold(0, byte)
                } else {
                    field.iter().rev().fold(0, byte)
                };
                if n > MAX_STRING_VALUE_BYTES {
                    break;
                }
                // n <= 16 MiB: the sum cannot overflow a usize.
                let end = at + len_bytes + n as usize;
                if end > buffered.len() {
                    break;
                }
                at = end;
                count -= 1;
            }
            // The reader's range lies inside the file: these bytes were there to read.
            self.reader.consume(at);
            self.pos += at as u64;
            if count == 0 {
                break;
            }
            let n = self.len_field(|| format!("length of a string in array {}", quoted(key)))?;
            if n > MAX_STRING_VALUE_BYTES {
                return Err(FormatError::OverLimit {
                    file: self.file.to_string(),
                    what: format!("length of a string in array {}", quoted(key)),
                    value: n,
                    cap: MAX_STRING_VALUE_BYTES,
                });
            }
            self.skip(n, &|| format!("a string in array {}", quoted(key)))?;
            count -= 1;
        }
        Ok(())
    }

    fn u8(&mut self, what: impl Fn() -> String) -> Result<u8, FormatError> {
        let [b] = self.array::<1>(what)?;
        Ok(b)
    }

    fn u16(&mut self, what: impl Fn() -> String) -> Result<u16, FormatError> {
        let b = self.array::<2>(what)?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&mut self, what: impl Fn() -> String) -> Result<u32, FormatError> {
        let b = self.array::<4>(what)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&mut self, what: impl Fn() -> String) -> Result<u64, FormatError> {
        let b = self.array::<8>(what)?;
        Ok(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// Counts and lengths: u32 in GGUF v1, u64 from v2 on.
    fn len_field(&mut self, what: impl Fn() -> String) -> Result<u64, FormatError> {
        if self.v1 {
            self.u32(what).map(u64::from)
        } else {
            self.u64(what)
        }
    }

    /// A length-prefixed string's bytes, with its length checked against `cap` and the file.
    fn string_bytes(
        &mut self,
        cap: u64,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<u8>, FormatError> {
        let len = self.len_field(|| format!("length of {}", what()))?;
        if len > cap {
            return Err(FormatError::OverLimit {
                file: self.file.to_string(),
                what: format!("length of {}", what()),
                value: len,
                cap,
            });
        }
        self.need(len, what)?;
        // len <= cap (<= 16 MiB) and <= bytes left in the file: safe to allocate.
        let mut buf = vec![0u8; len as usize];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    fn value(&mut self, ty: ValueType, depth: u32, key: &str) -> Result<MetaValue, FormatError> {
        let what = || format!("value of metadata {}", quoted(key));
        Ok(match ty {
            ValueType::U8 => MetaValue::U8(self.u8(what)?),
            ValueType::I8 => MetaValue::I8(self.u8(what)? as i8),
            ValueType::U16 => MetaValue::U16(self.u16(what)?),
            ValueType::I16 => MetaValue::I16(self.u16(what)? as i16),
            ValueType::U32 => MetaValue::U32(self.u32(what)?),
            ValueType::I32 => MetaValue::I32(self.u32(what)? as i32),
            ValueType::U64 => MetaValue::U64(self.u64(what)?),
            ValueType::I64 => MetaValue::I64(self.u64(what)? as i64),
            ValueType::F32 => MetaValue::F32(f32::from_bits(self.u32(what)?)),
            ValueType::F64 => MetaValue::F64(f64::from_bits(self.u64(what)?)),
            ValueType::Bool => match self.u8(what)? {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                other => {
                    return Err(FormatError::malformed(
                        self.file,
                        format!(
                            "metadata {} has boolean byte {other} (must be 0 or 1)",
                            quoted(key)
                        ),
                    ))
                }
            },
            ValueType::String => {
                let bytes = self.string_bytes(MAX_STRING_VALUE_BYTES, &what)?;
                self.keep(bytes.len() as u64)?;
                MetaValue::String(String::from_utf8(bytes).map_err(|_| {
                    FormatError::malformed(
                        self.file,
                        format!("metadata {} string value is not valid UTF-8", quoted(key)),
                    )
                })?)
            }
            ValueType::Array => MetaValue::Array(Box::new(self.array_value(depth + 1, key)?)),
        })
    }

    fn array_value(&mut self, depth: u32, key: &str) -> Result<MetaArray, FormatError> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(FormatError::OverLimit {
                file: self.file.to_string(),
                what: format!("array nesting depth of metadata {}", quoted(key)),
                value: u64::from(depth),
                cap: u64::from(MAX_ARRAY_DEPTH),
            });
        }
        let elem_id = self.u32(|| format!("element type of array {}", quoted(key)))?;
        let elem_type = ValueType::from_id(elem_id).ok_or_else(|| {
            FormatError::malformed(
                self.file,
                format!("array {} has unknown element type {elem_id}", quoted(key)),
            )
        })?;
        let len = self.len_field(|| format!("length of array {}", quoted(key)))?;
        if len > MAX_ARRAY_LEN {
            return Err(FormatError::OverLimit {
                file: self.file.to_string(),
                what: format!("length of array {}", quoted(key)),
                value: len,
                cap: MAX_ARRAY_LEN,
            });
        }
        self.check_count(
            &format!("length of array {}", quoted(key)),
            len,
            elem_type.min_encoded_bytes(self.v1),
        )?;
        let keep_all = match elem_type.fixed_size() {
            Some(_) => len <= KEEP_ALL_NUMBERS_UP_TO,
            None => len <= KEEP_ALL_STRINGS_UP_TO,
        };
        let keep = if keep_all { len } else { SAMPLES_KEPT.min(len) };
        // keep <= 65536 and the elements exist in the file (checked above).
        let mut values = Vec::with_capacity(keep as usize);
        self.keep(keep.saturating_mul(std::mem::size_of::<MetaValue>() as u64))?;
        match elem_type.fixed_size() {
            Some(size) => {
                for _ in 0..keep {
                    values.push(self.value(elem_type, depth, key)?);
                }
                let rest = (len - keep).saturating_mul(size);
                self.skip(rest, &|| format!("elements of array {}", quoted(key)))?;
            }
            None => {
                for i in 0..len {
                    if i < keep {
                        values.push(self.value(elem_type, depth, key)?);
                    } else if elem_type == ValueType::String {
                        self.skip_strings(len - i, key)?;
                        break;
                    } else {
                        // Nested arrays have no fixed size: parse (bounded by depth) and drop.
                        self.array_value(depth + 1, key)?;
                    }
                }
            }
        }
        Ok(MetaArray {
            elem_type,
            len,
            values,
            complete: keep_all,
        })
    }
}

// ------------------------------------------------------------------------------------------
// Split files: NAME-00001-of-00003.gguf (gguf-py SHARD_NAME_FORMAT "{}-{:05d}-of-{:05d}.gguf")
// ------------------------------------------------------------------------------------------

/// If `file_name` is a split part, its (prefix, part number, part count).
pub fn split_name_parts(file_name: &str) -> Option<(&str, u32, u32)> {
    let stem = file_name.strip_suffix(".gguf")?;
    // stem = PREFIX-NNNNN-of-MMMMM
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, part) = rest.rsplit_once('-')?;
    let is_digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(part) || !is_digits(count) {
        return None;
    }
    let part: u32 = part.parse().ok()?;
    let count: u32 = count.parse().ok()?;
    if part == 0 || count == 0 || part > count {
        return None;
    }
    Some((prefix, part, count))
}

/// The file name of part `part` of `count`.
pub fn split_part_name(prefix: &str, part: u32, count: u32) -> String {
    format!("{prefix}-{part:05}-of-{count:05}.gguf")
}

// ------------------------------------------------------------------------------------------
// Architecture keys → the config.json they stand for (the translation table is the core's:
// vramplan_core::arch::gguf, data/gguf/keys.toml)
// ------------------------------------------------------------------------------------------

/// The architecture keys whose values size allocations (one entry per layer, per token of the
/// vocabulary, per expert), checked against `vramplan_core::limits` before the header is
/// translated: a value beyond its bound is refused naming the GGUF key, a value of the wrong
/// type too.
struct ArchKeys<'a> {
    header: &'a GgufHeader,
    arch: &'a str,
    file: &'a str,
}

impl ArchKeys<'_> {
    fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.arch)
    }

    fn wrong(&self, key: &str, expected: &str, value: &MetaValue) -> FormatError {
        FormatError::WrongFieldType {
            file: self.file.to_string(),
            field: key.to_string(),
            expected: expected.to_string(),
            found: format!("{} {}", value.type_name(), short_value(value)),
        }
    }

    /// A non-negative integer at most `max` (limits.rs), refused naming its key before
    /// anything is sized by it.
    fn bounded(&self, suffix: &str, max: u64) -> Result<Option<u64>, FormatError> {
        let key = self.key(suffix);
        match self.header.get(&key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                None => Err(self.wrong(&key, "a non-negative integer", v)),
                Some(n) if n > max => Err(FormatError::OverLimit {
                    file: self.file.to_string(),
                    what: format!("key '{key}'"),
                    value: n,
                    cap: max,
                }),
                Some(n) => Ok(Some(n)),
            },
        }
    }
}

fn short_value(v: &MetaValue) -> String {
    match v {
        MetaValue::String(s) => quoted(s),
        MetaValue::Array(a) => format!("of {} {:?} elements", a.len, a.elem_type),
        other => format!("{other:?}")
            .split_once('(')
            .map(|(_, rest)| rest.trim_end_matches(')').to_string())
            .unwrap_or_default(),
    }
}

/// A metadata value as JSON (arrays only when kept whole).
fn json_of(v: &MetaValue) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match v {
        MetaValue::String(s) => Value::String(s.clone()),
        MetaValue::Bool(b) => Value::Bool(*b),
        MetaValue::Array(a) => {
            if !a.complete {
                return None;
            }
            Value::Array(a.values.iter().filter_map(json_of).collect())
        }
        MetaValue::F32(f) => serde_json::Number::from_f64(f64::from(*f)).map(Value::Number)?,
        MetaValue::F64(f) => serde_json::Number::from_f64(*f).map(Value::Number)?,
        MetaValue::I8(_) | MetaValue::I16(_) | MetaValue::I32(_) | MetaValue::I64(_) => {
            match v.as_u64() {
                Some(n) => Value::from(n),
                // A negative integer (e.g. -1 for "none") is kept as such.
                None => match *v {
                    MetaValue::I8(x) => Value::from(x),
                    MetaValue::I16(x) => Value::from(x),
                    MetaValue::I32(x) => Value::from(x),
                    MetaValue::I64(x) => Value::from(x),
                    _ => return None,
                },
            }
        }
        other => Value::from(other.as_u64()?),
    })
}

/// The config.json a GGUF header stands for, or why there is none (a vision projector or
/// vocabulary-only file has no `{arch}.block_count`); a key that sizes an allocation and is of
/// the wrong type or beyond its limit is an error naming the key.
///
/// `has_output_weight`: whether any tensor (in any split part) is `output.weight`; `None` when
/// the file has no tensors. GGUF has no tie flag: llama.cpp reuses token_embd when output.weight
/// is absent.
pub fn model_config(
    header: &GgufHeader,
    has_output_weight: Option<bool>,
    file: &str,
) -> Result<Result<serde_json::Value, String>, FormatError> {
    let Some(arch) = header.architecture() else {
        return Ok(Err("no general.architecture key".to_string()));
    };
    use vramplan_core::limits;
    let k = ArchKeys { header, arch, file };
    if k.bounded("block_count", limits::MAX_LAYERS)?.is_none() {
        return Ok(Err(format!("no {arch}.block_count key")));
    }
    k.bounded("embedding_length", limits::MAX_HIDDEN_SIZE)?;
    k.bounded("vocab_size", limits::MAX_VOCAB_SIZE)?;
    k.bounded("expert_count", limits::MAX_EXPERTS)?;
    let mut meta = std::collections::BTreeMap::new();
    let prefix = format!("{arch}.");
    for (k, v) in &header.metadata {
        if k.starts_with(&prefix) || k == "general.architecture" {
            if let Some(j) = json_of(v) {
                meta.insert(k.clone(), j);
            }
        }
    }
    if let Some(n) = header
        .get("tokenizer.ggml.tokens")
        .and_then(MetaValue::as_array)
        .map(|a| a.len)
    {
        meta.insert(
            "tokenizer.ggml.tokens".to_string(),
            serde_json::Value::from(n),
        );
    }
    Ok(
        vramplan_core::arch::gguf::config_from_gguf(&meta, has_output_weight)
            .map_err(|e| e.message),
    )
}
