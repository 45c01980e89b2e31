//! A minimal GGUF *writer* for tests and the bench: it must be able to write broken files (huge
//! counts, bad types, overlapping offsets), which no reference writer will do. Written by hand
//! for that reason; correct files are cross-checked against gguf-py's writer in fixtures.rs.
#![allow(dead_code)]

pub const T_U8: u32 = 0;
pub const T_U32: u32 = 4;
pub const T_I32: u32 = 5;
pub const T_F32: u32 = 6;
pub const T_BOOL: u32 = 7;
pub const T_STRING: u32 = 8;
pub const T_ARRAY: u32 = 9;
pub const T_U64: u32 = 10;

pub const GGML_F32: u32 = 0;
pub const GGML_F16: u32 = 1;
pub const GGML_Q4_0: u32 = 2;
pub const GGML_Q8_0: u32 = 8;
pub const GGML_Q4_K: u32 = 12;
pub const GGML_Q6_K: u32 = 14;

/// Builds a GGUF file byte by byte.
pub struct GgufBuilder {
    pub version: u32,
    pub kvs: Vec<u8>,
    pub n_kv: u64,
    pub infos: Vec<u8>,
    pub n_tensors: u64,
    pub alignment: u64,
    /// Bytes of zeros after the aligned data offset.
    pub data_len: u64,
    pub tensor_count_override: Option<u64>,
    pub kv_count_override: Option<u64>,
}

impl GgufBuilder {
    pub fn new(version: u32) -> Self {
        GgufBuilder {
            version,
            kvs: Vec::new(),
            n_kv: 0,
            infos: Vec::new(),
            n_tensors: 0,
            alignment: 32,
            data_len: 0,
            tensor_count_override: None,
            kv_count_override: None,
        }
    }

    fn len_into(&self, buf: &mut Vec<u8>, n: u64) {
        if self.version == 1 {
            buf.extend_from_slice(&(n as u32).to_le_bytes());
        } else {
            buf.extend_from_slice(&n.to_le_bytes());
        }
    }

    pub fn str_into(&self, buf: &mut Vec<u8>, s: &[u8]) {
        self.len_into(buf, s.len() as u64);
        buf.extend_from_slice(s);
    }

    /// A key with a raw, already-encoded value.
    pub fn kv_raw(&mut self, key: &[u8], vtype: u32, value: &[u8]) -> &mut Self {
        let mut b = Vec::new();
        self.str_into(&mut b, key);
        b.extend_from_slice(&vtype.to_le_bytes());
        b.extend_from_slice(value);
        self.kvs.extend_from_slice(&b);
        self.n_kv += 1;
        self
    }

    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.kv_raw(key.as_bytes(), T_U32, &v.to_le_bytes())
    }

    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        let mut b = Vec::new();
        self.str_into(&mut b, v.as_bytes());
        self.kv_raw(key.as_bytes(), T_STRING, &b)
    }

    pub fn kv_u32_array(&mut self, key: &str, values: &[u32]) -> &mut Self {
        let mut b = Vec::new();
        b.extend_from_slice(&T_U32.to_le_bytes());
        self.len_into(&mut b, values.len() as u64);
        for v in values {
            b.extend_from_slice(&v.to_le_bytes());
        }
        self.kv_raw(key.as_bytes(), T_ARRAY, &b)
    }

    pub fn kv_i32_array(&mut self, key: &str, n: usize) -> &mut Self {
        let mut b = Vec::with_capacity(12 + n * 4);
        b.extend_from_slice(&T_I32.to_le_bytes());
        self.len_into(&mut b, n as u64);
        for i in 0..n {
            b.extend_from_slice(&(i as i32).to_le_bytes());
        }
        self.kv_raw(key.as_bytes(), T_ARRAY, &b)
    }

    pub fn kv_str_array<S: AsRef<str>>(&mut self, key: &str, values: &[S]) -> &mut Self {
        let mut b = Vec::new();
        b.extend_from_slice(&T_STRING.to_le_bytes());
        self.len_into(&mut b, values.len() as u64);
        for v in values {
            self.str_into(&mut b, v.as_ref().as_bytes());
        }
        self.kv_raw(key.as_bytes(), T_ARRAY, &b)
    }

    /// A tensor info with dims in ggml order.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> &mut Self {
        let mut b = Vec::new();
        self.str_into(&mut b, name.as_bytes());
        b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for &d in dims {
            self.len_into(&mut b, d);
        }
        b.extend_from_slice(&ggml_type.to_le_bytes());
        b.extend_from_slice(&offset.to_le_bytes());
        self.infos.extend_from_slice(&b);
        self.n_tensors += 1;
        self
    }

    /// The header (magic .. tensor infos) without padding.
    pub fn header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        let nt = self.tensor_count_override.unwrap_or(self.n_tensors);
        let nk = self.kv_count_override.unwrap_or(self.n_kv);
        self.len_into(&mut out, nt);
        self.len_into(&mut out, nk);
        out.extend_from_slice(&self.kvs);
        out.extend_from_slice(&self.infos);
        out
    }

    /// Header + padding to the alignment: the data section starts at this length.
    pub fn header_padded(&self) -> Vec<u8> {
        let mut out = self.header();
        while !(out.len() as u64).is_multiple_of(self.alignment) {
            out.push(0);
        }
        out
    }

    /// The whole file: padded header + `data_len` zero bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut out = self.header_padded();
        out.resize(out.len() + self.data_len as usize, 0);
        out
    }
}

/// ggml bytes for `n` elements of (block, type_size).
pub fn ggml_bytes(n: u64, block: u64, type_size: u64) -> u64 {
    n / block * type_size
}

/// A GGUF header shaped like a 70B-class Llama 3 Q4_K_M file: 80 layers × 9 tensors + 3 =
/// 723 tensor infos, a 128,256-token vocabulary (tokens + token_type), and 280,000 BPE merges
/// (Llama 3's tokenizer has ~280k merges). Shapes: hidden 8192, FFN 28672, 64 heads / 8 KV
/// heads of 128 (Llama 3 70B config.json). Returns the builder; data_len is set so that every
/// tensor fits (the caller makes the file sparse with set_len).
pub fn realistic_llama_header() -> GgufBuilder {
    let (hidden, ffn, vocab, layers, kv_dim): (u64, u64, u64, u64, u64) =
        (8192, 28672, 128_256, 80, 1024);
    let mut b = GgufBuilder::new(3);
    b.kv_str("general.architecture", "llama")
        .kv_str("general.name", "realistic bench header")
        .kv_u32("general.file_type", 15)
        .kv_u32("llama.block_count", layers as u32)
        .kv_u32("llama.context_length", 131_072)
        .kv_u32("llama.embedding_length", hidden as u32)
        .kv_u32("llama.feed_forward_length", ffn as u32)
        .kv_u32("llama.attention.head_count", 64)
        .kv_u32("llama.attention.head_count_kv", 8)
        .kv_u32("llama.rope.dimension_count", 128)
        .kv_str("tokenizer.ggml.model", "gpt2");
    let tokens: Vec<String> = (0..vocab).map(|i| format!("Ġtok{i:06}")).collect();
    b.kv_str_array("tokenizer.ggml.tokens", &tokens);
    b.kv_i32_array("tokenizer.ggml.token_type", vocab as usize);
    let merges: Vec<String> = (0..280_000u64)
        .map(|i| format!("Ġa{} b{}", i % 997, i))
        .collect();
    b.kv_str_array("tokenizer.ggml.merges", &merges);

    let mut offset = 0u64;
    let mut add = |b: &mut GgufBuilder, name: String, dims: &[u64], ty: u32| {
        let n: u64 = dims.iter().product();
        let bytes = match ty {
            GGML_F32 => n * 4,
            GGML_Q4_K => ggml_bytes(n, 256, 144),
            GGML_Q6_K => ggml_bytes(n, 256, 210),
            _ => unreachable!(),
        };
        b.tensor(&name, dims, ty, offset);
        offset += bytes.div_ceil(32) * 32;
    };
    add(
        &mut b,
        "token_embd.weight".into(),
        &[hidden, vocab],
        GGML_Q4_K,
    );
    for l in 0..layers {
        add(
            &mut b,
            format!("blk.{l}.attn_norm.weight"),
            &[hidden],
            GGML_F32,
        );
        add(
            &mut b,
            format!("blk.{l}.attn_q.weight"),
            &[hidden, hidden],
            GGML_Q4_K,
        );
        add(
            &mut b,
            format!("blk.{l}.attn_k.weight"),
            &[hidden, kv_dim],
            GGML_Q4_K,
        );
        add(
            &mut b,
            format!("blk.{l}.attn_v.weight"),
            &[hidden, kv_dim],
            GGML_Q6_K,
        );
        add(
            &mut b,
            format!("blk.{l}.attn_output.weight"),
            &[hidden, hidden],
            GGML_Q4_K,
        );
        add(
            &mut b,
            format!("blk.{l}.ffn_norm.weight"),
            &[hidden],
            GGML_F32,
        );
        add(
            &mut b,
            format!("blk.{l}.ffn_gate.weight"),
            &[hidden, ffn],
            GGML_Q4_K,
        );
        add(
            &mut b,
            format!("blk.{l}.ffn_up.weight"),
            &[hidden, ffn],
            GGML_Q4_K,
        );
        add(
            &mut b,
            format!("blk.{l}.ffn_down.weight"),
            &[ffn, hidden],
            GGML_Q6_K,
        );
    }
    add(&mut b, "output_norm.weight".into(), &[hidden], GGML_F32);
    add(&mut b, "output.weight".into(), &[hidden, vocab], GGML_Q6_K);
    b.data_len = offset;
    b
}

/// Writes the header to `path` and extends the file (sparse) to its full size.
pub fn write_sparse(path: &std::path::Path, b: &GgufBuilder) -> u64 {
    use std::io::Write;
    let header = b.header_padded();
    let mut f = std::fs::File::create(path).expect("create sparse file");
    f.write_all(&header).expect("write header");
    let total = header.len() as u64 + b.data_len;
    f.set_len(total).expect("set_len");
    total
}
