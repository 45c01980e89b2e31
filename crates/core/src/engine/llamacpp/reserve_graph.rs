//! The graph llama.cpp reserves its compute buffer for (llama-context.cpp `graph_reserve`: one
//! ubatch of n_ubatch tokens, every token an output, attending over the whole cache), built
//! node by node for the decoder shapes whose builders were read, so that ggml-alloc's peak can
//! be simulated ([`super::ggml_alloc`]). Sources: src/llama-graph.cpp (`build_inp_embd`,
//! `build_attn`, `build_attn_mha`, `build_ffn`, `build_inp_out_ids`), src/llama-kv-cache.cpp
//! (`cpy_k`, `cpy_v`, `get_k`, `get_v`, the Hadamard rotation of quantized caches),
//! src/models/llama.cpp, qwen2.cpp, qwen3.cpp, gemma.cpp and gemma2-iswa.cpp.

use super::ggml_alloc::{Dtype, Graph, Id, Layout, Op};
use crate::layer::{Ffn, Span};
use crate::model::{ModelDesc, NormKind};

/// The llama.cpp graph builders modelled here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// llm_build_llama (also Mistral, Yi, the Llama-based distills); `qkv_bias` gives
    /// llm_build_qwen2's bias adds, `qk_norm` src/models/qwen3.cpp's RMS norms of Q and K
    /// before RoPE.
    Llama { qkv_bias: bool, qk_norm: bool },
    /// llm_build_gemma: embeddings scaled by sqrt(n_embd), Q scaled after RoPE.
    Gemma,
    /// llm_build_gemma2_iswa: Gemma plus post-attention and post-FFN norms, attention and final
    /// logit soft-capping, alternating sliding-window layers.
    Gemma2,
}

/// The builder llama.cpp uses for `model`, when it is one of those modelled: a dense decoder
/// with RMSNorm, a gated MLP and separate q/k/v projections, QK-norm for Qwen3. MoE, MLA,
/// recurrent and vision models, Gemma 3, fused-QKV (Phi-3) and scaled-residual (Granite)
/// builders are not modelled and get `None`.
pub fn builder_for(model: &ModelDesc) -> Option<Builder> {
    let inv = model.inventory();
    // QK-norm is read for Qwen3 only (Gemma 3's builder differs in more than that).
    let qk_norm_ok = model.model_type == "qwen3";
    // Every layer a plain attention layer caching its own K and V, with a gated dense MLP
    // without biases, and no q/k norms (but Qwen3's), output bias or sinks.
    let plain_layers = inv.kinds.iter().all(|k| {
        k.recurrent.is_none()
            && matches!(
                k.ffn,
                Ffn::Dense {
                    gated: true,
                    bias: false,
                    ..
                }
            )
            && k.attention.as_ref().is_some_and(|a| {
                a.caches()
                    && a.latent.is_none()
                    && (!a.qk_norm || qk_norm_ok)
                    && !a.o_bias
                    && !a.sinks
                    && a.k_head_dim == a.v_head_dim
                    && a.rotary_dim == a.k_head_dim
            })
    });
    // The text model only: token embedding, final norm and the head (tied or not).
    let plain_globals =
        model.towers.is_empty() && inv.global.len() == 2 + usize::from(!model.tie_embeddings);
    if !plain_layers || !plain_globals || model.norm != NormKind::Rms {
        return None;
    }
    let qkv_bias = model.first_attention().is_some_and(|a| a.qkv_bias);
    let qk_norm = model.first_attention().is_some_and(|a| a.qk_norm);
    match model.model_type.as_str() {
        "gemma2" => Some(Builder::Gemma2),
        "gemma" => Some(Builder::Gemma),
        "llama" | "mistral" if !qkv_bias => Some(Builder::Llama { qkv_bias, qk_norm }),
        "qwen2" | "qwen3" => Some(Builder::Llama { qkv_bias, qk_norm }),
        _ => None,
    }
    .filter(|b| *b == Builder::Gemma2 || !super::honours_sliding_window(model))
}

/// The sizes of one reserve graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveShape {
    /// Tokens in the ubatch: n_ubatch rounded up to a multiple of the streams
    /// (llama-context.cpp `graph_reserve`).
    pub tokens: u64,
    /// Output rows (n_ubatch): the last layer keeps only these (`build_inp_out_ids`).
    pub outputs: u64,
    /// KV streams (n_seq_max unless the cache is unified).
    pub streams: u64,
    pub flash_attn: bool,
    /// Cells per stream of the full-attention cache, and of the sliding-window cache.
    pub cells: u64,
    pub swa_cells: u64,
    /// Width of the Hadamard matrices that rotate a quantized K and V cache, if any.
    pub k_rot: Option<u64>,
    pub v_rot: Option<u64>,
}

/// Width of the Hadamard rotation llama.cpp applies to a quantized cache of `head_dim`-wide
/// heads (llama-kv-cache.cpp: attn_rot_k when type_k is quantized and head_dim % 64 == 0, with
/// the largest power-of-two block dividing head_dim; attn_rot_v uses 64-wide blocks).
pub fn rotation_width(quantized: bool, head_dim: u64, for_v: bool) -> Option<u64> {
    if !quantized || head_dim == 0 || !head_dim.is_multiple_of(64) {
        return None;
    }
    if for_v {
        return Some(64);
    }
    Some(1 << head_dim.trailing_zeros())
}

/// Inputs of one KV cache (llama-graph.cpp `build_attn_inp_kv`, `build_input_k_idxs`…).
struct CacheInputs {
    k_idxs: Id,
    v_idxs: Id,
    mask: Id,
    k_rot: Option<Id>,
    v_rot: Option<Id>,
    cells: u64,
}

/// Builds the reserve graph of `model` (which `builder_for` accepted).
pub fn build(model: &ModelDesc, builder: Builder, s: &ReserveShape) -> Graph {
    let mut g = Graph::new();
    let (t, ns) = (s.tokens, s.streams.max(1));
    let e = model.hidden_size;
    let (nh, nhk, d) = (
        model.num_attention_heads,
        model.num_kv_heads,
        model.head_dim,
    );
    let kvd = nhk.saturating_mul(d);
    let (ff, vocab) = (model.intermediate_size, model.vocab_size);
    let gemma = matches!(builder, Builder::Gemma | Builder::Gemma2);
    let gemma2 = builder == Builder::Gemma2;
    let qkv_bias = matches!(builder, Builder::Llama { qkv_bias: true, .. });
    let qk_norm = matches!(builder, Builder::Llama { qk_norm: true, .. });

    // build_inp_embd: token ids → get_rows, or embeddings given directly; ggml_build_forward_select
    // expands both, so the unused [n_embd, tokens] input is reserved too (and never freed).
    let tokens = g.input(Dtype::I32, [t, 1, 1, 1]);
    let tok_embd = g.external(Dtype::F16, [e, vocab, 1, 1]);
    let rows = g.op(Op::GetRows, &[tok_embd, tokens], [e, t, 1, 1]);
    let embd = g.input(Dtype::F32, [e, t, 1, 1]);
    g.expand(rows);
    g.expand(embd);
    let mut x = rows;
    if gemma {
        x = g.like(Op::Scale, x, &[]);
    }
    let pos = g.input(Dtype::I32, [t, 1, 1, 1]);
    let mask_type = if s.flash_attn { Dtype::F16 } else { Dtype::F32 };
    let cache_inputs = |g: &mut Graph, cells: u64| CacheInputs {
        k_idxs: g.input(Dtype::I64, [t, 1, 1, 1]),
        // Without flash attention V is stored transposed, one index per element.
        v_idxs: g.input(
            Dtype::I64,
            [
                if s.flash_attn {
                    t
                } else {
                    t.saturating_mul(kvd)
                },
                1,
                1,
                1,
            ],
        ),
        mask: g.input(mask_type, [cells, t / ns, 1, ns]),
        k_rot: s.k_rot.map(|n| g.input(Dtype::F32, [n, n, 1, 1])),
        v_rot: s.v_rot.map(|n| g.input(Dtype::F32, [n, n, 1, 1])),
        cells,
    };
    let full = cache_inputs(&mut g, s.cells);
    let window = gemma2.then(|| cache_inputs(&mut g, s.swa_cells));
    let out_ids = g.input(Dtype::I32, [s.outputs, 1, 1, 1]);
    let weight = |g: &mut Graph| g.external(Dtype::F16, [1, 1, 1, 1]);

    let rms_norm = |g: &mut Graph, x: Id| {
        let n = g.like(Op::RmsNorm, x, &[]);
        let w = weight(g);
        g.like(Op::Mul, n, &[w])
    };
    let linear = |g: &mut Graph, x: Id, rows: u64| {
        let w = weight(g);
        let ne = g.tensors[x].ne;
        g.op(Op::MulMat, &[w, x], [rows, ne[1], ne[2], ne[3]])
    };
    // llama_mul_mat_hadamard: rows of the rotation's width, multiplied, reshaped back. The
    // rotation matrix is reached after the tensor it rotates: the order of the inputs that
    // reproduces every calibration record (the llama.cpp revision they came from is not in
    // the reference library; a later one lists the matrix first).
    let hadamard = |g: &mut Graph, x: Id, n: Id| {
        let width = g.tensors[n].ne[0];
        let ne = g.tensors[x].ne;
        let total = ne.iter().fold(1u64, |a, &b| a.saturating_mul(b));
        let rows_of = [width, total / width.max(1), 1, 1];
        let r = if g.tensors[x].layout == Layout::Contiguous {
            g.view(x, rows_of, false)
        } else {
            g.op(Op::Cont, &[x], rows_of)
        };
        let m = g.op(Op::MulMat, &[r, n], rows_of);
        g.view(m, ne, false)
    };

    for il in 0..model.num_layers {
        let windowed = model
            .layer(il)
            .attention
            .as_ref()
            .is_some_and(|a| matches!(a.span, Span::Window(_) | Span::Chunk(_)));
        let inp = match &window {
            Some(w) if windowed => w,
            _ => &full,
        };
        let cells = inp.cells;
        let residual = x;
        let cur = rms_norm(&mut g, x);
        let proj = |g: &mut Graph, rows: u64| {
            let m = linear(g, cur, rows);
            if qkv_bias {
                let b = weight(g);
                g.like(Op::Add, m, &[b])
            } else {
                m
            }
        };
        let q = proj(&mut g, nh.saturating_mul(d));
        let k = proj(&mut g, kvd);
        let v = proj(&mut g, kvd);
        let mut q = g.view(q, [d, nh, t, 1], false);
        let mut k = g.view(k, [d, nhk, t, 1], false);
        let v = g.view(v, [d, nhk, t, 1], false);
        if qk_norm {
            q = rms_norm(&mut g, q);
        }
        let mut q = g.like(Op::Rope, q, &[pos]);
        if qk_norm {
            k = rms_norm(&mut g, k);
        }
        let mut k = g.like(Op::Rope, k, &[pos]);
        let mut v = v;
        if gemma {
            q = g.like(Op::Scale, q, &[]);
        }
        // build_attn: rotate for a quantized cache, expand q, v, k, then store K and V.
        if let Some(r) = inp.k_rot {
            q = hadamard(&mut g, q, r);
            k = hadamard(&mut g, k, r);
        }
        if let Some(r) = inp.v_rot {
            v = hadamard(&mut g, v, r);
        }
        g.expand(q);
        g.expand(v);
        g.expand(k);
        let k_cache = g.external(Dtype::F16, [kvd, cells, ns, 1]);
        let v_cache = g.external(Dtype::F16, [kvd, cells, ns, 1]);
        // cpy_k / cpy_v: the new rows as [n_embd_gqa, tokens]; several streams share one
        // index space, so the cache is viewed as one 2-D tensor.
        let k_rows = g.view(k, [kvd, t, 1, 1], false);
        let k_dst = if ns > 1 {
            g.view(k_cache, [kvd, cells.saturating_mul(ns), 1, 1], false)
        } else {
            k_cache
        };
        let store_k = g.set_rows(k_dst, k_rows, inp.k_idxs);
        g.expand(store_k);
        let mut v_rows = g.view(v, [kvd, t, 1, 1], false);
        let v_dst = if s.flash_attn {
            if ns > 1 {
                g.view(v_cache, [kvd, cells.saturating_mul(ns), 1, 1], false)
            } else {
                v_cache
            }
        } else {
            // Transposed V: one element per row, over every stream.
            v_rows = g.view(v_rows, [1, kvd.saturating_mul(t), 1, 1], false);
            v_cache
        };
        let store_v = g.set_rows(v_dst, v_rows, inp.v_idxs);
        g.expand(store_v);
        let k_all = g.view(k_cache, [d, nhk, cells, ns], true);
        let v_all = g.view(v_cache, [d, nhk, cells, ns], true);
        // build_attn_mha: split the tokens by stream, heads outermost.
        let q4 = g.view(q, [d, nh, t / ns, ns], false);
        let qp = g.view(q4, [d, t / ns, nh, ns], true);
        let kp = g.view(k_all, [d, cells, nhk, ns], true);
        let vp = g.view(v_all, [d, cells, nhk, ns], true);
        let mut o = if s.flash_attn {
            let fa = g.op(Op::FlashAttn, &[qp, kp, vp, inp.mask], [d, nh, t / ns, ns]);
            g.view(fa, [d.saturating_mul(nh), t, 1, 1], false)
        } else {
            let mut kq = g.op(Op::MulMat, &[kp, qp], [cells, t / ns, nh, ns]);
            if gemma2 {
                kq = g.like(Op::Scale, kq, &[]);
                kq = g.like(Op::Unary, kq, &[]);
                kq = g.like(Op::Scale, kq, &[]);
            }
            let kq = g.like(Op::SoftMax, kq, &[inp.mask]);
            let vt = g.view(vp, [cells, d, nhk, ns], true);
            let kqv = g.op(Op::MulMat, &[vt, kq], [d, t / ns, nh, ns]);
            let p = g.view(kqv, [d, nh, t / ns, ns], true);
            g.op(Op::Cont, &[p], [d.saturating_mul(nh), t, 1, 1])
        };
        if let Some(r) = inp.v_rot {
            o = hadamard(&mut g, o, r);
        }
        let mut o = linear(&mut g, o, e);
        if gemma2 {
            o = rms_norm(&mut g, o);
        }
        let mut residual = residual;
        if il + 1 == model.num_layers {
            // Only the output rows go on after the last layer's attention.
            o = g.op(Op::GetRows, &[o, out_ids], [e, s.outputs, 1, 1]);
            residual = g.op(Op::GetRows, &[residual, out_ids], [e, s.outputs, 1, 1]);
        }
        let ffn_inp = g.like(Op::Add, o, &[residual]);
        let cur = rms_norm(&mut g, ffn_inp);
        // build_ffn, gated in parallel: up, gate, then the GLU of (gate, up) and down.
        let up = linear(&mut g, cur, ff);
        let gate = linear(&mut g, cur, ff);
        let glu = g.like(Op::Glu, gate, &[up]);
        let mut down = linear(&mut g, glu, e);
        if gemma2 {
            down = rms_norm(&mut g, down);
        }
        x = g.like(Op::Add, down, &[ffn_inp]);
    }
    let norm = rms_norm(&mut g, x);
    g.set_output(norm); // res->t_embd
    let mut logits = linear(&mut g, norm, vocab);
    if gemma2 {
        logits = g.like(Op::Scale, logits, &[]);
        logits = g.like(Op::Unary, logits, &[]);
        logits = g.like(Op::Scale, logits, &[]);
    }
    g.set_output(logits);
    g.expand(logits);
    g
}
