//! inspect() on a GGUF with a realistic header: a Llama-3-70B-shaped Q4_K_M layout with 723
//! tensor infos, a 128,256-token vocabulary (+ token types) and 280,000 merges, over ~40 GB of
//! sparse data. Also a safetensors file with the same 723 tensors (BF16, ~141 GB sparse).
//!
//! The GGUF is written to $VRAMPLAN_BENCH_GGUF if set, else to CARGO_TARGET_TMPDIR, and kept,
//! so benches/inspect_vs_gguf_py.sh can time gguf-py's GGUFReader on the very same file.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use vramplan_formats::inspect;

fn gguf_path() -> PathBuf {
    match std::env::var_os("VRAMPLAN_BENCH_GGUF") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("realistic-70b-q4_k_m.gguf"),
    }
}

fn make_gguf() -> PathBuf {
    let path = gguf_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("bench dir");
    }
    let b = common::realistic_llama_header();
    common::write_sparse(&path, &b);
    path
}

fn make_safetensors() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("realistic-70b-bf16.safetensors");
    let (hidden, ffn, vocab, kv): (u64, u64, u64, u64) = (8192, 28672, 128_256, 1024);
    let mut entries: Vec<(String, Vec<u64>)> =
        vec![("model.embed_tokens.weight".into(), vec![vocab, hidden])];
    for l in 0..80 {
        let p = format!("model.layers.{l}");
        entries.push((format!("{p}.input_layernorm.weight"), vec![hidden]));
        entries.push((format!("{p}.self_attn.q_proj.weight"), vec![hidden, hidden]));
        entries.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, hidden]));
        entries.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, hidden]));
        entries.push((format!("{p}.self_attn.o_proj.weight"), vec![hidden, hidden]));
        entries.push((format!("{p}.post_attention_layernorm.weight"), vec![hidden]));
        entries.push((format!("{p}.mlp.gate_proj.weight"), vec![ffn, hidden]));
        entries.push((format!("{p}.mlp.up_proj.weight"), vec![ffn, hidden]));
        entries.push((format!("{p}.mlp.down_proj.weight"), vec![hidden, ffn]));
    }
    entries.push(("model.norm.weight".into(), vec![hidden]));
    entries.push(("lm_head.weight".into(), vec![vocab, hidden]));
    let mut json = String::from("{\"__metadata__\":{\"format\":\"pt\"}");
    let mut offset = 0u64;
    for (name, shape) in &entries {
        let bytes = shape.iter().product::<u64>() * 2;
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        json.push_str(&format!(
            ",\"{name}\":{{\"dtype\":\"BF16\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            dims.join(","),
            offset + bytes
        ));
        offset += bytes;
    }
    json.push('}');
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(&(json.len() as u64).to_le_bytes())
        .expect("write");
    f.write_all(json.as_bytes()).expect("write");
    f.set_len(8 + json.len() as u64 + offset).expect("set_len");
    path
}

fn bench(c: &mut Criterion) {
    let gguf = make_gguf();
    let m = inspect(&gguf).expect("inspect bench GGUF");
    eprintln!(
        "bench GGUF: {} ({} tensors, {} bytes on disk (sparse), header {} bytes read)",
        gguf.display(),
        m.tensors.len(),
        m.bytes_on_disk,
        m.header_bytes_read
    );
    let st = make_safetensors();
    let ms = inspect(&st).expect("inspect bench safetensors");
    eprintln!(
        "bench safetensors: {} tensors, {} bytes on disk (sparse), {} bytes read",
        ms.tensors.len(),
        ms.bytes_on_disk,
        ms.header_bytes_read
    );
    let mut g = c.benchmark_group("inspect");
    g.sample_size(20);
    g.bench_function("gguf_70b_q4_k_m_128k_vocab_723_tensors", |b| {
        b.iter(|| inspect(&gguf).expect("inspect"))
    });
    g.bench_function("safetensors_70b_bf16_723_tensors", |b| {
        b.iter(|| inspect(&st).expect("inspect"))
    });
    g.finish();
    let _ = std::fs::remove_file(&st);
}

criterion_group!(benches, bench);
criterion_main!(benches);
