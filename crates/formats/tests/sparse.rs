//! Inspecting reads only the header: multi-GB sparse files (header written, then set_len) must
//! cost the same bytes read as a small file with the same header.

mod common;

use std::io::Write;

use common::*;
use vramplan_formats::inspect;

const GIB: u64 = 1 << 30;
/// Bytes-read ceiling: the header plus one 64 KiB read-ahead buffer is far below this.
const MAX_READ: u64 = 1 << 20;

#[test]
fn sparse_gguf_reads_only_the_header() {
    let dir = tempfile::tempdir().unwrap();
    // 4 F32 tensors of 2^29 elements = 2 GiB each, 8 GiB in all.
    let mut b = GgufBuilder::new(3);
    b.kv_str("general.architecture", "llama");
    let per = 1u64 << 29;
    for i in 0..4 {
        b.tensor(&format!("t{i}"), &[per], GGML_F32, i * per * 4);
    }
    b.data_len = 8 * GIB;
    let path = dir.path().join("big.gguf");
    let total = write_sparse(&path, &b);
    assert!(total > 8 * GIB);

    let m = inspect(&path).unwrap();
    assert_eq!(m.summary.total_bytes, 8 * GIB);
    assert_eq!(m.summary.total_params, 4 * per);
    assert_eq!(m.bytes_on_disk, total);
    assert!(
        m.header_bytes_read < MAX_READ,
        "read {} bytes of an 8 GiB file",
        m.header_bytes_read
    );

    // The same header over a small data section: the same bytes read (at most one buffer).
    let mut small = b;
    small.tensor_count_override = Some(0);
    small.infos.clear();
    small.n_tensors = 0;
    small.data_len = 1 << 20;
    let small_path = dir.path().join("small.gguf");
    write_sparse(&small_path, &small);
    let s = inspect(&small_path).unwrap();
    assert!(s.header_bytes_read <= m.header_bytes_read);
}

#[test]
fn sparse_realistic_70b_gguf_reads_only_the_header() {
    // 723 tensor infos and a 128k vocabulary over ~40 GB of (sparse) Q4_K/Q6_K data.
    let dir = tempfile::tempdir().unwrap();
    let b = realistic_llama_header();
    let header_len = b.header_padded().len() as u64;
    let path = dir.path().join("llama-70b-q4_k_m.gguf");
    write_sparse(&path, &b);
    let m = inspect(&path).unwrap();
    assert_eq!(m.tensors.len(), 723);
    assert!(m.bytes_on_disk > 35_000_000_000, "{}", m.bytes_on_disk);
    // Reads the header and at most one 64 KiB read-ahead past it.
    assert!(
        m.header_bytes_read <= header_len + 64 * 1024,
        "{} > {header_len}",
        m.header_bytes_read
    );
    assert_eq!(
        m.gguf.as_ref().unwrap().file_type_name.as_deref(),
        Some("Q4_K_M")
    );
    let c = m.config.unwrap();
    assert_eq!(c["vocab_size"], 128_256);
    assert_eq!(
        (&c["num_hidden_layers"], &c["hidden_size"]),
        (&80.into(), &8192.into())
    );
}

#[test]
fn sparse_safetensors_reads_only_the_header() {
    let dir = tempfile::tempdir().unwrap();
    // One BF16 tensor of 2^32 elements = 8 GiB.
    let n = 1u64 << 32;
    let header = format!(
        r#"{{"__metadata__":{{"format":"pt"}},"w":{{"dtype":"BF16","shape":[65536,65536],"data_offsets":[0,{}]}}}}"#,
        n * 2
    );
    let path = dir.path().join("big.safetensors");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    let total = 8 + header.len() as u64 + 8 * GIB;
    f.set_len(total).unwrap();
    drop(f);

    let m = inspect(&path).unwrap();
    assert_eq!(m.summary.total_params, n);
    assert_eq!(m.summary.total_bytes, 8 * GIB);
    assert_eq!(m.bytes_on_disk, total);
    assert!(
        m.header_bytes_read < MAX_READ,
        "read {} bytes",
        m.header_bytes_read
    );
    // The header plus at most one 64 KiB read-ahead buffer.
    assert!(m.header_bytes_read <= 8 + header.len() as u64 + 64 * 1024);
}
