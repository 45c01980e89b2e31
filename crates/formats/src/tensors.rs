//! The tensors of a model, as the readers found them, held compactly.
//!
//! A header may list a million tensors. Kept as one owned struct each (a `String` name, a
//! `String` dtype, a `Vec` shape) they cost ~200 bytes apiece, five times what the smallest
//! tensor record takes in a GGUF file; here every name lives in one string, every shape in one
//! array, and a tensor is a 56-byte record pointing into them, so memory follows the header's
//! size (names and dimensions once, plus the record). Readers append to a [`TensorList`];
//! callers see each tensor as a borrowed [`TensorEntry`].
//!
//! The list refuses to grow beyond [`MAX_TENSORS`] tensors or [`MAX_KEPT_TENSOR_BYTES`] bytes, so
//! no header can make it large: the check comes before each allocation.

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

/// Most tensors a model may have, over all its files. The largest released checkpoints have a
/// few hundred thousand (Kimi K2 with GPTQ packing: 61 layers × 384 experts × 3 matrices × 4
/// tensors ≈ 281k; DeepSeek-V3 in fp8: ≈ 91k); 2^20 leaves ×3.7.
pub const MAX_TENSORS: u64 = 1 << 20;
/// Longest tensor name kept. ggml requires < 64 bytes (GGML_MAX_NAME); Hugging Face names are
/// under 200; 1024 leaves room for an odd writer.
pub const MAX_TENSOR_NAME_BYTES: u64 = 1024;
/// Most dimensions a tensor may have: ggml has 4 (GGML_MAX_DIMS); safetensors checkpoints use
/// at most 5 or 6. More is refused rather than stored.
pub const MAX_TENSOR_DIMS: u64 = 16;
/// Memory the list may use in all (records, names, dimensions): 2^20 tensors with 32-byte names
/// and two dimensions fit; the largest released checkpoint (~281k tensors) needs ~40 MiB. With
/// a safetensors header at its 100 MB cap in memory beside it, a process stays under 256 MiB.
pub const MAX_KEPT_TENSOR_BYTES: u64 = 96 * 1024 * 1024;

/// One tensor, with its size as stored (a view into a [`TensorList`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TensorEntry<'a> {
    pub name: &'a str,
    /// safetensors dtype ("BF16") or ggml type name ("Q4_K").
    pub dtype: &'static str,
    /// As stored: numpy order for safetensors, ggml order (innermost first) for GGUF.
    pub shape: &'a [u64],
    pub n_elements: u64,
    pub n_bytes: u64,
    /// Index into [`crate::ModelFile::files`].
    pub file_index: usize,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    name_start: u32,
    name_len: u32,
    shape_start: u32,
    n_dims: u32,
    file_index: u32,
    dtype: &'static str,
    n_elements: u64,
    n_bytes: u64,
}

/// Every tensor of a model, in the order the readers met them.
#[derive(Debug, Clone, Default)]
pub struct TensorList {
    names: String,
    dims: Vec<u64>,
    records: Vec<Record>,
}

/// Why a tensor could not be added (the reader turns it into a one-line error for its file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorLimit {
    Count,
    NameBytes(u64),
    Dims(u64),
    KeptBytes(u64),
}

impl TensorLimit {
    /// The limit as the error line's "what", value and cap.
    pub fn describe(&self) -> (String, u64, u64) {
        match *self {
            TensorLimit::Count => ("tensor count".to_string(), MAX_TENSORS + 1, MAX_TENSORS),
            TensorLimit::NameBytes(n) => (
                "length of a tensor name".to_string(),
                n,
                MAX_TENSOR_NAME_BYTES,
            ),
            TensorLimit::Dims(n) => (
                "dimension count of a tensor".to_string(),
                n,
                MAX_TENSOR_DIMS,
            ),
            TensorLimit::KeptBytes(n) => (
                "tensor records kept in memory (bytes)".to_string(),
                n,
                MAX_KEPT_TENSOR_BYTES,
            ),
        }
    }
}

impl TensorList {
    pub fn new() -> TensorList {
        TensorList::default()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes the list holds (records, names, dimensions).
    pub fn kept_bytes(&self) -> u64 {
        (self.records.len() * std::mem::size_of::<Record>()
            + self.names.len()
            + self.dims.len() * 8) as u64
    }

    /// Whether one more tensor with this name and this many dimensions may be added.
    pub fn check_room(&self, name_len: u64, n_dims: u64) -> Result<(), TensorLimit> {
        if self.records.len() as u64 >= MAX_TENSORS {
            return Err(TensorLimit::Count);
        }
        if name_len > MAX_TENSOR_NAME_BYTES {
            return Err(TensorLimit::NameBytes(name_len));
        }
        if n_dims > MAX_TENSOR_DIMS {
            return Err(TensorLimit::Dims(n_dims));
        }
        let after = self
            .kept_bytes()
            .saturating_add(std::mem::size_of::<Record>() as u64)
            .saturating_add(name_len)
            .saturating_add(n_dims * 8);
        if after > MAX_KEPT_TENSOR_BYTES {
            return Err(TensorLimit::KeptBytes(after));
        }
        Ok(())
    }

    /// Adds a tensor (after [`TensorList::check_room`]'s checks).
    pub fn push(
        &mut self,
        name: &str,
        dtype: &'static str,
        shape: &[u64],
        n_elements: u64,
        n_bytes: u64,
        file_index: usize,
    ) -> Result<(), TensorLimit> {
        self.check_room(name.len() as u64, shape.len() as u64)?;
        // Both arenas stay under MAX_KEPT_TENSOR_BYTES (< 2^32), so the offsets fit in u32.
        let record = Record {
            name_start: self.names.len() as u32,
            name_len: name.len() as u32,
            shape_start: self.dims.len() as u32,
            n_dims: shape.len() as u32,
            file_index: u32::try_from(file_index).unwrap_or(u32::MAX),
            dtype,
            n_elements,
            n_bytes,
        };
        self.names.push_str(name);
        self.dims.extend_from_slice(shape);
        self.records.push(record);
        Ok(())
    }

    /// Appends every tensor of `other` (read apart, e.g. one shard on its own thread), keeping
    /// their file indices; refused before anything is added if the result would pass a limit.
    pub fn append(&mut self, other: &TensorList) -> Result<(), TensorLimit> {
        if (self.records.len() + other.records.len()) as u64 > MAX_TENSORS {
            return Err(TensorLimit::Count);
        }
        let after = self.kept_bytes().saturating_add(other.kept_bytes());
        if after > MAX_KEPT_TENSOR_BYTES {
            return Err(TensorLimit::KeptBytes(after));
        }
        // Both lists are under MAX_KEPT_TENSOR_BYTES together (< 2^32): the offsets fit in u32.
        let name_base = self.names.len() as u32;
        let dims_base = self.dims.len() as u32;
        self.names.push_str(&other.names);
        self.dims.extend_from_slice(&other.dims);
        self.records.extend(other.records.iter().map(|r| Record {
            name_start: r.name_start + name_base,
            shape_start: r.shape_start + dims_base,
            ..*r
        }));
        Ok(())
    }

    fn entry(&self, r: &Record) -> TensorEntry<'_> {
        let name_start = r.name_start as usize;
        let shape_start = r.shape_start as usize;
        TensorEntry {
            name: self
                .names
                .get(name_start..name_start + r.name_len as usize)
                .unwrap_or(""),
            dtype: r.dtype,
            shape: self
                .dims
                .get(shape_start..shape_start + r.n_dims as usize)
                .unwrap_or(&[]),
            n_elements: r.n_elements,
            n_bytes: r.n_bytes,
            file_index: r.file_index as usize,
        }
    }

    pub fn get(&self, i: usize) -> Option<TensorEntry<'_>> {
        self.records.get(i).map(|r| self.entry(r))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = TensorEntry<'_>> + '_ {
        self.records.iter().map(move |r| self.entry(r))
    }

    /// Tensors `from..` (those one file added).
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = TensorEntry<'_>> + '_ {
        self.records
            .get(from..)
            .unwrap_or(&[])
            .iter()
            .map(move |r| self.entry(r))
    }

    /// Adds `by` to every tensor's file index (when an index file is put in front of the shards).
    pub fn shift_file_index(&mut self, by: u32) {
        for r in &mut self.records {
            r.file_index = r.file_index.saturating_add(by);
        }
    }

    /// Positions of the tensors sorted by (file index, name): for lookups by name in one file
    /// ([`TensorList::find_in`]) and for finding names given twice. 4 bytes per tensor.
    pub fn sorted_by_file_and_name(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.records.len() as u32).collect();
        let key = |i: u32| {
            let r = &self.records[i as usize];
            (r.file_index, self.entry(r).name)
        };
        order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
        order
    }

    /// Whether file `file_index` holds a tensor named `name`, given the order from
    /// [`TensorList::sorted_by_file_and_name`].
    pub fn find_in(&self, order: &[u32], file_index: usize, name: &str) -> bool {
        order
            .binary_search_by(|&i| {
                let e = self.get(i as usize);
                e.map(|e| (e.file_index, e.name))
                    .cmp(&Some((file_index, name)))
            })
            .is_ok()
    }

    /// A name that appears twice among the tensors `from..`, and the file of its first
    /// appearance, if any.
    pub fn duplicate_name(&self, from: usize) -> Option<(&str, usize)> {
        let mut order: Vec<u32> = (from as u32..self.records.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            let name = |i: u32| self.get(i as usize).map(|e| e.name);
            name(a).cmp(&name(b)).then(a.cmp(&b))
        });
        order.windows(2).find_map(|w| {
            let (a, b) = (self.get(w[0] as usize)?, self.get(w[1] as usize)?);
            (a.name == b.name).then_some((a.name, a.file_index))
        })
    }
}

impl PartialEq for TensorList {
    fn eq(&self, other: &TensorList) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Serialize for TensorList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for t in self.iter() {
            seq.serialize_element(&t)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_lookups_work() {
        let mut l = TensorList::new();
        l.push("b", "F32", &[2, 3], 6, 24, 0).unwrap();
        l.push("a", "Q4_K", &[256], 256, 144, 1).unwrap();
        l.push("a", "BF16", &[], 1, 2, 0).unwrap();
        assert_eq!(l.len(), 3);
        let e = l.get(1).unwrap();
        assert_eq!(
            (
                e.name,
                e.dtype,
                e.shape,
                e.n_elements,
                e.n_bytes,
                e.file_index
            ),
            ("a", "Q4_K", &[256u64][..], 256, 144, 1)
        );
        assert_eq!(l.get(2).unwrap().shape, &[] as &[u64]);
        let order = l.sorted_by_file_and_name();
        assert!(l.find_in(&order, 0, "a") && l.find_in(&order, 1, "a"));
        assert!(!l.find_in(&order, 1, "b"));
        assert_eq!(l.duplicate_name(0), Some(("a", 1)));
        assert_eq!(l.duplicate_name(2), None);
        // 3 records of 56 bytes, 3 name bytes, 3 dimensions.
        assert_eq!(std::mem::size_of::<Record>(), 56);
        assert_eq!(l.kept_bytes(), 3 * 56 + 3 + 3 * 8);
        let json = serde_json::to_string(&l).unwrap();
        assert!(json.starts_with(r#"[{"name":"b","dtype":"F32","shape":[2,3],"n_elements":6,"n_bytes":24,"file_index":0}"#), "{json}");
    }

    #[test]
    fn appending_keeps_names_shapes_and_files() {
        let mut a = TensorList::new();
        a.push("x", "F32", &[2], 2, 8, 0).unwrap();
        let mut b = TensorList::new();
        b.push("long.name", "BF16", &[3, 4], 12, 24, 1).unwrap();
        b.push("z", "F16", &[], 1, 2, 1).unwrap();
        a.append(&b).unwrap();
        let got: Vec<(&str, &[u64], usize)> =
            a.iter().map(|t| (t.name, t.shape, t.file_index)).collect();
        assert_eq!(
            got,
            [
                ("x", &[2u64][..], 0),
                ("long.name", &[3u64, 4][..], 1),
                ("z", &[][..], 1)
            ]
        );
        assert_eq!(a.kept_bytes(), 3 * 56 + 1 + 9 + 1 + 3 * 8);
    }

    #[test]
    fn limits_come_before_allocation() {
        let l = TensorList::new();
        assert_eq!(
            l.check_room(MAX_TENSOR_NAME_BYTES + 1, 1),
            Err(TensorLimit::NameBytes(MAX_TENSOR_NAME_BYTES + 1))
        );
        assert_eq!(l.check_room(3, 17), Err(TensorLimit::Dims(17)));
    }
}
