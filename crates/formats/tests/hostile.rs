//! Hostile and broken input, each built here byte by byte: every case must give an error whose
//! one-line text names the file and the problem — never a panic, never a huge allocation.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use vramplan_formats::{gguf, inspect, safetensors, FormatError};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write fixture");
    p
}

/// Inspects `bytes` saved as `name`; the error text must contain every `needles` entry, name the
/// file, and be one line.
fn expect_err(name: &str, bytes: &[u8], needles: &[&str]) -> String {
    let dir = tmp();
    let path = write(dir.path(), name, bytes);
    let err = match inspect(&path) {
        Ok(m) => panic!("{name}: expected an error, got {} tensors", m.tensors.len()),
        Err(e) => e.to_string(),
    };
    check_text(&err, name, needles);
    err
}

fn check_text(err: &str, name: &str, needles: &[&str]) {
    assert!(!err.contains('\n'), "error is not one line: {err:?}");
    assert!(
        err.contains(name),
        "error does not name the file {name}: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "error lacks {n:?}: {err}");
    }
}

/// A small valid GGUF: 2 tensors, a few keys.
fn valid_gguf() -> GgufBuilder {
    let mut b = GgufBuilder::new(3);
    b.kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 1)
        .kv_u32("llama.embedding_length", 64)
        .kv_u32("llama.attention.head_count", 4)
        .kv_u32_array("llama.attention.head_count_kv", &[2])
        .kv_str_array("tokenizer.ggml.tokens", &["a", "b", "c"]);
    // Q8_0: 64 elements per row → 2 blocks × 34 = 68 bytes per row; 64 rows = 4352 bytes.
    b.tensor("token_embd.weight", &[64, 64], GGML_Q8_0, 0);
    // F32 64 → 256 bytes at offset 4352 (a multiple of 32).
    b.tensor("output_norm.weight", &[64], GGML_F32, 4352);
    b.data_len = 4352 + 256;
    b
}

#[test]
fn valid_gguf_reads_in_all_three_versions() {
    for version in [1, 2, 3] {
        // v1 writes u32 counts, lengths and dims; v2/v3 u64.
        let mut v = GgufBuilder::new(version);
        v.kv_str("general.architecture", "llama")
            .kv_u32("llama.block_count", 1)
            .kv_u32("llama.embedding_length", 64)
            .kv_str_array("tokenizer.ggml.tokens", &["a", "b", "c"]);
        v.tensor("token_embd.weight", &[64, 64], GGML_Q8_0, 0);
        v.tensor("output_norm.weight", &[64], GGML_F32, 4352);
        v.data_len = 4352 + 256;
        let bytes = v.build();
        let (h, tensors) =
            gguf::read_bytes("v.gguf", &bytes).unwrap_or_else(|e| panic!("v{version}: {e}"));
        assert_eq!(h.version, version);
        assert_eq!(tensors.len(), 2);
        // 64×64 Q8_0 = 128 blocks × 34 bytes = 4352; F32 64 = 256.
        assert_eq!(tensors.get(0).unwrap().n_bytes, 4352);
        assert_eq!(tensors.get(1).unwrap().n_bytes, 256);
        let params: u64 = tensors.iter().map(|t| t.n_elements).sum();
        assert_eq!(params, 64 * 64 + 64);
    }
}

#[test]
fn every_truncation_of_a_gguf_is_an_error() {
    let bytes = valid_gguf().build();
    let header_len = valid_gguf().header().len();
    for cut in 0..bytes.len() {
        let slice = &bytes[..cut];
        let r = gguf::read_bytes("cut.gguf", slice);
        let err = r.expect_err("a truncated file must not parse").to_string();
        assert!(!err.contains('\n'));
        if cut < header_len {
            assert!(
                err.contains("truncated") || err.contains("can hold at most"),
                "cut at {cut}: {err}"
            );
        } else {
            // Header complete, data missing: the last tensor lies beyond the end.
            assert!(
                err.contains("beyond the end of the file") || err.contains("truncated"),
                "cut at {cut}: {err}"
            );
        }
    }
    // Through inspect too, with the real file length.
    expect_err(
        "trunc.gguf",
        &bytes[..200],
        &["truncated", "file is 200 bytes"],
    );
}

#[test]
fn gguf_huge_counts_and_lengths() {
    // Tensor count 2^63.
    let mut b = valid_gguf();
    b.tensor_count_override = Some(1 << 63);
    expect_err(
        "count.gguf",
        &b.build(),
        &["tensor count is 9223372036854775808", "can hold at most"],
    );

    // Metadata count 2^63.
    let mut b = valid_gguf();
    b.kv_count_override = Some(1 << 63);
    expect_err(
        "kv.gguf",
        &b.build(),
        &["metadata key/value count is 9223372036854775808"],
    );

    // Key length 2^63.
    let mut b = GgufBuilder::new(3);
    b.kvs.extend_from_slice(&(1u64 << 63).to_le_bytes());
    b.n_kv = 1;
    b.data_len = 64;
    expect_err(
        "keylen.gguf",
        &b.build(),
        &[
            "length of key of metadata entry #0 is 9223372036854775808",
            "limit of 65535",
        ],
    );

    // String value length 2^63.
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"general.name", T_STRING, &(1u64 << 63).to_le_bytes());
    expect_err(
        "strlen.gguf",
        &b.build(),
        &["'general.name'", "9223372036854775808", "limit of 16777216"],
    );

    // String value length within the cap but beyond the file.
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"general.name", T_STRING, &1000u64.to_le_bytes());
    expect_err(
        "strfile.gguf",
        &b.build(),
        &["truncated", "'general.name'", "needs 1000 bytes"],
    );

    // Array of 2^62 u8 in a tiny file.
    let mut v = T_U8.to_le_bytes().to_vec();
    v.extend_from_slice(&(1u64 << 62).to_le_bytes());
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"big.array", T_ARRAY, &v);
    expect_err(
        "arr.gguf",
        &b.build(),
        &[
            "length of array 'big.array' is 4611686018427387904",
            "limit of 1073741824",
        ],
    );

    // Array of 2^29 u32: under the length cap, over the bytes left.
    let mut v = 4u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(1u64 << 29).to_le_bytes());
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"big.array", T_ARRAY, &v);
    expect_err(
        "arr2.gguf",
        &b.build(),
        &[
            "length of array 'big.array' is 536870912",
            "bytes left in the file can hold at most",
        ],
    );
}

#[test]
fn gguf_deeply_nested_arrays() {
    // 100 levels of array-of-array, then a u8.
    let mut v = Vec::new();
    for _ in 0..100 {
        v.extend_from_slice(&T_ARRAY.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
    }
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"deep", T_ARRAY, &v);
    expect_err(
        "deep.gguf",
        &b.build(),
        &["array nesting depth of metadata 'deep'", "limit of 8"],
    );

    // Nesting within the cap is read.
    let mut v = Vec::new();
    for _ in 0..3 {
        v.extend_from_slice(&T_ARRAY.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
    }
    v.extend_from_slice(&T_U8.to_le_bytes());
    v.extend_from_slice(&1u64.to_le_bytes());
    v.push(7);
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"ok", T_ARRAY, &v);
    let bytes = b.build();
    let (h, _) = gguf::read_bytes("n.gguf", &bytes).unwrap();
    let mut val = h.metadata.get("ok").unwrap();
    for _ in 0..4 {
        val = &val.as_array().unwrap().values[0];
    }
    assert_eq!(val, &vramplan_formats::MetaValue::U8(7));
}

#[test]
fn gguf_bad_types_keys_and_values() {
    // Unknown ggml tensor type.
    let mut b = GgufBuilder::new(3);
    b.tensor("blk.0.attn_q.weight", &[32], 99, 0);
    b.data_len = 64;
    expect_err(
        "type.gguf",
        &b.build(),
        &["tensor 'blk.0.attn_q.weight' has unknown ggml type id 99"],
    );
    // A removed one is named.
    let mut b = GgufBuilder::new(3);
    b.tensor("w", &[32], 4, 0);
    b.data_len = 64;
    expect_err(
        "removed.gguf",
        &b.build(),
        &["unknown ggml type id 4", "Q4_2, removed from ggml"],
    );
    // Non-UTF-8 key.
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"general.\xff\xfe", T_U32, &1u32.to_le_bytes());
    expect_err(
        "utf8.gguf",
        &b.build(),
        &["metadata key #0 is not valid UTF-8"],
    );
    // Non-UTF-8 tensor name.
    let mut b = GgufBuilder::new(3);
    b.infos.extend_from_slice(&2u64.to_le_bytes());
    b.infos.extend_from_slice(b"\xc3\x28");
    b.infos.extend_from_slice(&1u32.to_le_bytes());
    b.infos.extend_from_slice(&32u64.to_le_bytes());
    b.infos.extend_from_slice(&0u32.to_le_bytes());
    b.infos.extend_from_slice(&0u64.to_le_bytes());
    b.n_tensors = 1;
    b.data_len = 128;
    expect_err(
        "tname.gguf",
        &b.build(),
        &["name of tensor #0 is not valid UTF-8"],
    );
    // Unknown value type.
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"k", 13, &[0; 8]);
    expect_err(
        "vtype.gguf",
        &b.build(),
        &["metadata 'k' has unknown value type 13"],
    );
    // Boolean byte 2.
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"flag", T_BOOL, &[2]);
    expect_err(
        "bool.gguf",
        &b.build(),
        &["metadata 'flag' has boolean byte 2"],
    );
    // Version 4 and version 0.
    let mut bytes = valid_gguf().build();
    bytes[4] = 4;
    expect_err("v4.gguf", &bytes, &["unsupported GGUF version 4"]);
    bytes[4] = 0;
    expect_err("v0.gguf", &bytes, &["unsupported GGUF version 0"]);
    // Duplicate key, duplicate tensor.
    let mut b = GgufBuilder::new(3);
    b.kv_u32("a", 1).kv_u32("a", 2);
    expect_err("dupkey.gguf", &b.build(), &["duplicate metadata key 'a'"]);
    let mut b = GgufBuilder::new(3);
    b.tensor("w", &[8], GGML_F32, 0)
        .tensor("w", &[8], GGML_F32, 32);
    b.data_len = 64;
    expect_err("dupt.gguf", &b.build(), &["duplicate tensor name 'w'"]);
    // 5 dimensions.
    let mut b = GgufBuilder::new(3);
    b.tensor("w5", &[1, 1, 1, 1, 1], GGML_F32, 0);
    b.data_len = 32;
    expect_err(
        "dims.gguf",
        &b.build(),
        &["tensor 'w5' has 5 dimensions; GGUF allows at most 4"],
    );
    // Element count overflow: 2^40 × 2^40.
    let mut b = GgufBuilder::new(3);
    b.tensor("huge", &[1 << 40, 1 << 40], GGML_F32, 0);
    expect_err(
        "ovf.gguf",
        &b.build(),
        &["tensor 'huge' element count overflows 64 bits"],
    );
    // Row not a multiple of the block: Q4_0 blocks are 32.
    let mut b = GgufBuilder::new(3);
    b.tensor("q", &[33], GGML_Q4_0, 0);
    b.data_len = 64;
    expect_err(
        "block.gguf",
        &b.build(),
        &["row length 33, not a multiple of the Q4_0 block size 32"],
    );
    // Alignment not a power of two.
    let mut b = valid_gguf();
    b.kv_u32("general.alignment", 48);
    expect_err(
        "align.gguf",
        &b.build(),
        &["general.alignment must be a non-zero power of two"],
    );
    // Wrong-typed architecture key.
    let mut b = GgufBuilder::new(3);
    b.kv_str("general.architecture", "llama")
        .kv_str("llama.block_count", "32");
    expect_err(
        "archkey.gguf",
        &b.build(),
        &[
            "field 'llama.block_count' must be a non-negative integer",
            "string",
        ],
    );
    // A key with a newline and control characters stays on one line in the message.
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"evil\nkey", 13, &[]);
    expect_err("nl.gguf", &b.build(), &["'evil\\nkey'"]);
}

#[test]
fn gguf_offsets_out_of_range_overlapping_misaligned() {
    // Out of range: F32 × 64 = 256 bytes at offset 4352 in a data section of 4352 + 100 bytes.
    let mut b = valid_gguf();
    b.data_len = 4352 + 100;
    let err = expect_err("range.gguf", &b.build(), &["tensor 'output_norm.weight' has data offset 4352 (+256 bytes) beyond the end of the file"]);
    assert!(err.contains("data section 4452 bytes"), "{err}");
    // Offset near u64::MAX must not overflow.
    let mut b = GgufBuilder::new(3);
    b.tensor("w", &[8], GGML_F32, u64::MAX - 31);
    b.data_len = 32;
    expect_err("wrap.gguf", &b.build(), &["beyond the end of the file"]);
    // Overlap: second tensor starts inside the first (64×64 Q8_0 spans 0..4352).
    let mut b = GgufBuilder::new(3);
    b.tensor("a", &[64, 64], GGML_Q8_0, 0)
        .tensor("b", &[64], GGML_F32, 4096);
    b.data_len = 8192;
    expect_err(
        "overlap.gguf",
        &b.build(),
        &[
            "tensors 'a' and 'b' overlap",
            "bytes 0..4352",
            "starts at 4096",
        ],
    );
    // Misaligned offset.
    let mut b = GgufBuilder::new(3);
    b.tensor("m", &[8], GGML_F32, 8);
    b.data_len = 64;
    expect_err(
        "misaligned.gguf",
        &b.build(),
        &["tensor 'm' data offset 8 is not a multiple of the alignment 32"],
    );
}

fn safetensors_file(header: &str, data_len: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + data_len, 0);
    out
}

#[test]
fn safetensors_hostile() {
    // Header length larger than the file.
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    expect_err(
        "long.safetensors",
        &bytes,
        &["truncated", "declared length 1000", "file is 10 bytes"],
    );
    // Header length above the 100 MB cap.
    let mut bytes = 100_000_001u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    expect_err(
        "cap.safetensors",
        &bytes,
        &["safetensors header length is 100000001, above the limit of 100000000"],
    );
    // 2^63.
    let mut bytes = (1u64 << 63).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    expect_err("huge.safetensors", &bytes, &["9223372036854775808"]);
    // Malformed JSON.
    expect_err(
        "json.safetensors",
        &safetensors_file("{\"a\": {\"dtype\":", 0),
        &["invalid safetensors header"],
    );
    // Unknown dtype.
    expect_err(
        "dtype.safetensors",
        &safetensors_file(
            r#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}}"#,
            2,
        ),
        &["invalid safetensors header", "unknown variant `Q4`"],
    );
    // Overlapping offsets.
    expect_err(
        "overlap.safetensors",
        &safetensors_file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            12,
        ),
        &["invalid safetensors header", "invalid offset for tensor"],
    );
    // Size that does not match shape × dtype.
    expect_err(
        "size.safetensors",
        &safetensors_file(
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            8,
        ),
        &["invalid shape, data type, or offset"],
    );
    // Out of range: the header claims 1 GB of data, the file holds 8 bytes.
    expect_err(
        "range.safetensors",
        &safetensors_file(
            r#"{"a":{"dtype":"U8","shape":[1000000000],"data_offsets":[0,1000000000]}}"#,
            8,
        ),
        &["truncated", "1000000000 bytes declared by the header"],
    );
    // Trailing bytes nobody owns.
    expect_err(
        "tail.safetensors",
        &safetensors_file(
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
            10,
        ),
        &["6 bytes after the last tensor belong to no tensor"],
    );
    // Shape product overflow.
    expect_err(
        "ovf.safetensors",
        &safetensors_file(
            r#"{"a":{"dtype":"F32","shape":[18446744073709551615,2],"data_offsets":[0,8]}}"#,
            8,
        ),
        &["invalid safetensors header"],
    );
    // Non-UTF-8 header.
    let mut bytes = 4u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\xff}");
    bytes.push(b' ');
    expect_err("utf8.safetensors", &bytes, &["invalid safetensors header"]);
    // And directly through the parser: the test-only path used by the fuzzer.
    let r = safetensors::parse_header_bytes(b"[]", 10, "x", &mut Default::default());
    assert!(r.is_err());
}

#[test]
fn config_json_hostile() {
    expect_err("config.json", b"{\"model_type\": ", &["invalid JSON"]);
    // Missing layer count (a model_type without a configuration class, so no default fills it;
    // transformers' LlamaConfig would give a llama one its 32).
    let err = expect_err(
        "config.json",
        br#"{"model_type": "x", "hidden_size": 4096}"#,
        &["missing required field 'num_hidden_layers'"],
    );
    assert!(err.contains("also looked for n_layer"), "{err}");
    // Wrong types.
    expect_err(
        "config.json",
        br#"{"model_type": "llama", "num_hidden_layers": "32", "hidden_size": 4096}"#,
        &["field 'num_hidden_layers' must be a non-negative integer, found the string \"32\""],
    );
    expect_err(
        "config.json",
        br#"{"model_type": "llama", "num_hidden_layers": 32, "hidden_size": -1}"#,
        &["field 'hidden_size' must be a non-negative integer, found the number -1"],
    );
    expect_err(
        "config.json",
        br#"{"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096, "tie_word_embeddings": "yes"}"#,
        &["field 'tie_word_embeddings' must be true or false"],
    );
    expect_err(
        "config.json",
        br#"{"model_type": "x", "text_config": {"num_hidden_layers": 2, "hidden_size": [1]}}"#,
        &["field 'text_config.hidden_size' must be a non-negative integer, found a list of 1 items"],
    );
    expect_err(
        "config.json",
        br#"{"model_type": "x", "num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10, "max_position_embeddings": 64, "quantization_config": {"bits": "4"}}"#,
        &["field 'quantization_config.bits' must be a non-negative integer"],
    );
    // A JSON array is not a model file.
    expect_err("config.json", b"[1, 2]", &["not a model file we can read"]);
}

#[test]
fn stores_hostile() {
    let dir = tmp();
    // Index naming a shard outside the folder.
    let idx = br#"{"weight_map": {"a": "../../etc/passwd"}}"#;
    expect_err(
        "model.safetensors.index.json",
        idx,
        &["not a plain file name"],
    );
    // Index naming a missing shard.
    let path = write(
        dir.path(),
        "model.safetensors.index.json",
        br#"{"weight_map": {"a": "gone.safetensors"}}"#,
    );
    let err = inspect(&path).unwrap_err().to_string();
    assert!(
        err.contains("gone.safetensors") && err.contains("is missing"),
        "{err}"
    );
    // Index mapping a tensor to a shard that does not hold it.
    let shard = safetensors_file(
        r#"{"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
        4,
    );
    write(dir.path(), "s.safetensors", &shard);
    let path = write(
        dir.path(),
        "model.safetensors.index.json",
        br#"{"weight_map": {"a": "s.safetensors"}}"#,
    );
    let err = inspect(&path).unwrap_err().to_string();
    assert!(
        err.contains("puts tensor 'a' in") && err.contains("no such tensor"),
        "{err}"
    );
    // ollama manifest with a path-traversal digest.
    let m = tmp();
    let mdir = m.path().join("manifests/registry.ollama.ai/library/x");
    std::fs::create_dir_all(&mdir).unwrap();
    let manifest = write(
        &mdir,
        "latest",
        br#"{"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:../../../etc/passwd"}]}"#,
    );
    let err = inspect(&manifest).unwrap_err().to_string();
    assert!(err.contains("not sha256:<64 hex digits>"), "{err}");
    // Garbage and empty files.
    expect_err(
        "junk.bin",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0",
        &["not a model file we can read"],
    );
    expect_err("empty.gguf", b"", &["only 0 bytes"]);
    // Directory with two GGUF models.
    let two = tmp();
    let g = valid_gguf().build();
    write(two.path(), "a.gguf", &g);
    write(two.path(), "b.gguf", &g);
    let err = inspect(two.path()).unwrap_err().to_string();
    assert!(err.contains("folder holds 2 GGUF models"), "{err}");
    // Split set with a missing part.
    let split = tmp();
    write(split.path(), "m-00001-of-00002.gguf", &g);
    let err = inspect(split.path().join("m-00001-of-00002.gguf"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("m-00002-of-00002.gguf") && err.contains("split part 2 of 2 is missing"),
        "{err}"
    );
}

#[test]
fn errors_are_one_enum_with_file_names() {
    // Display of each variant is one line starting with the file.
    let e = FormatError::Malformed {
        file: "m.gguf".into(),
        message: "x".into(),
    };
    assert_eq!(e.to_string(), "m.gguf: x");
}

/// Bytes in memory served in ranges of `range` bytes, so that a reader meets every range
/// boundary a remote header would.
struct SmallRanges<'a> {
    inner: vramplan_formats::source::MemorySource<'a>,
    range: usize,
}

impl vramplan_formats::source::ByteSource for SmallRanges<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn len(&self) -> Result<u64, FormatError> {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, FormatError> {
        self.inner.read_at(offset, buf)
    }
    fn bytes_read(&self) -> u64 {
        self.inner.bytes_read()
    }
    fn first_range(&self) -> usize {
        self.range
    }
    fn max_range(&self) -> usize {
        self.range
    }
}

/// A vocabulary-sized string array is stepped over in the reader's buffer (`skip_strings`),
/// falling back to one string at a time where a string crosses a range's end: whatever the
/// range size, the array's count, its kept samples and the key after it read the same, and a
/// cut anywhere inside it or a refused length is still an error.
#[test]
fn long_string_arrays_read_the_same_across_range_boundaries() {
    // 2,000 strings of 0 to 299 bytes ("" , "x", "xx", ...; lengths cycle mod 300).
    let tokens: Vec<String> = (0..2000).map(|i| "x".repeat(i % 300)).collect();
    for version in [1, 2, 3] {
        let mut b = GgufBuilder::new(version);
        b.kv_str("general.architecture", "llama")
            .kv_str_array("tokenizer.ggml.tokens", &tokens)
            .kv_u32("after.the.array", 123_456);
        let bytes = b.build();
        let read = |range: usize| {
            let src = SmallRanges {
                inner: vramplan_formats::source::MemorySource::new("t.gguf", &bytes),
                range,
            };
            let mut tensors = vramplan_formats::tensors::TensorList::new();
            gguf::read_header(&src, &mut tensors, 0)
        };
        for range in [1, 7, 8, 9, 13, 64, 301, 4096, 1 << 20] {
            let h = read(range).unwrap_or_else(|e| panic!("v{version} range {range}: {e}"));
            let arr = h
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.as_array())
                .unwrap();
            assert_eq!(arr.len, 2000, "v{version} range {range}");
            assert!(!arr.complete);
            // The first SAMPLES_KEPT (8) kept: "", "x", ..., "xxxxxxx".
            let kept: Vec<&str> = arr.values.iter().filter_map(|v| v.as_str()).collect();
            assert_eq!(
                kept,
                ["", "x", "xx", "xxx", "xxxx", "xxxxx", "xxxxxx", "xxxxxxx"]
            );
            assert_eq!(
                h.get("after.the.array").and_then(|v| v.as_u64()),
                Some(123_456),
                "v{version} range {range}"
            );
        }
    }

    // Cut inside the array (v3): truncated, at every range size.
    let mut b = GgufBuilder::new(3);
    b.kv_str("general.architecture", "llama")
        .kv_str_array("tokenizer.ggml.tokens", &tokens);
    let header = b.header();
    for cut in [200, 1_000, 77_777, header.len() - 1] {
        for range in [7, 4096] {
            let src = SmallRanges {
                inner: vramplan_formats::source::MemorySource::new("cut.gguf", &header[..cut]),
                range,
            };
            let mut tensors = vramplan_formats::tensors::TensorList::new();
            let e = gguf::read_header(&src, &mut tensors, 0)
                .expect_err("a cut array must not parse")
                .to_string();
            check_text(&e, "cut.gguf", &["tokenizer.ggml.tokens"]);
            // Cut early, the count is refused before any string is read (each takes at
            // least its 8-byte length); later, a string runs past the end.
            assert!(
                e.contains("truncated") || e.contains("can hold at most"),
                "cut at {cut}, range {range}: {e}"
            );
        }
    }

    // A string length above the 16 MiB cap, 1,500 strings in: refused with the array's name
    // whether it lies inside a range or across its end.
    let mut raw = Vec::new();
    raw.extend_from_slice(&T_STRING.to_le_bytes());
    raw.extend_from_slice(&2000u64.to_le_bytes());
    for (i, t) in tokens.iter().enumerate() {
        let len = if i == 1500 {
            1u64 << 40
        } else {
            t.len() as u64
        };
        raw.extend_from_slice(&len.to_le_bytes());
        if i != 1500 {
            raw.extend_from_slice(t.as_bytes());
        }
    }
    let mut b = GgufBuilder::new(3);
    b.kv_raw(b"tokenizer.ggml.tokens", T_ARRAY, &raw);
    let bytes = b.build();
    for range in [5, 1 << 20] {
        let src = SmallRanges {
            inner: vramplan_formats::source::MemorySource::new("big.gguf", &bytes),
            range,
        };
        let mut tensors = vramplan_formats::tensors::TensorList::new();
        let e = gguf::read_header(&src, &mut tensors, 0)
            .expect_err("a 1 TiB string must be refused")
            .to_string();
        check_text(
            &e,
            "big.gguf",
            &[
                "length of a string in array 'tokenizer.ggml.tokens'",
                "1099511627776",
            ],
        );
    }
}
