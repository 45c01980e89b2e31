//! The graph llama.cpp reserves its compute buffer for (llama-context.cpp `graph_reserve`: one
//! ubatch of n_ubatch tokens, every token an output, attending over the whole cache), built
//! node by node for every decoder llama.cpp's model builders make, so that ggml-alloc's peak
//! can be simulated ([`super::ggml_alloc`]). Sources, all at ggml-org/llama.cpp@0c1e57098:
//! src/llama-graph.cpp (`build_inp_embd`, `build_norm`, `build_qkv`, `build_attn`,
//! `build_attn_mha`, `build_ffn`, `build_moe_ffn`, `build_inp_out_ids`, `build_rs`, the
//! attention and recurrent inputs), src/llama-kv-cache.cpp (`cpy_k`, `cpy_v`, `get_k`, `get_v`,
//! the Hadamard rotation of quantized caches), ggml/src/ggml.c (each op's result shape) and the
//! model builders in src/models/ ([`models`]). A builder is checked against llama.cpp's own graph
//! node for node: scripts/llamacpp_truth/graph_dump.c dumps it, the `reserve_graph_diff` example
//! of vramplan-formats compares.

mod models;

use super::ggml_alloc::{Dtype, Graph, Id, Layout, Op};
use crate::layer::{Attention, Ffn, Layer, Span};
use crate::model::ModelDesc;

/// The llama.cpp graph builders modelled here (src/models/<file>.cpp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// llama.cpp (Llama, Mistral, Mixtral), qwen2.cpp (`qkv_bias`), qwen3.cpp and qwen3moe.cpp
    /// (`qk_norm`: RMS norms of Q and K before RoPE): dense or routed feed-forward per layer.
    Llama { qkv_bias: bool, qk_norm: bool },
    /// gemma.cpp: embeddings scaled by sqrt(n_embd), Q scaled after RoPE.
    Gemma,
    /// gemma2.cpp: Gemma plus post-attention and post-FFN norms, attention and final logit
    /// soft-capping, alternating sliding-window layers.
    Gemma2,
    /// gemma3.cpp: Gemma 2 with QK norms and without soft-capping.
    Gemma3,
    /// gemma3n.cpp: AltUp, Laurel and per-layer embeddings.
    Gemma3n,
    /// phi3.cpp: fused QKV, fused gate+up (SwiGLU of one matrix), Q scaled after RoPE.
    Phi3,
    /// falcon.cpp: LayerNorm, fused QKV, attention and MLP in parallel from one norm.
    Falcon,
    /// starcoder2.cpp: LayerNorm with biases, biased projections, GELU MLP.
    Starcoder2,
    /// llama4.cpp: chunked attention, NoPE every fourth layer, sigmoid-routed experts beside a
    /// shared expert.
    Llama4,
    /// openai-moe.cpp (gpt-oss): attention sinks, biased experts with SwiGLU-OAI, sliding
    /// windows on alternate layers.
    GptOss,
    /// deepseek2.cpp with MLA (the absorbed path: the latent cached as K, V a view of it).
    Deepseek2,
    /// mamba.cpp for Mamba and Mamba-2 (mamba-base.cpp `build_mamba_layer`,
    /// `build_mamba2_layer`).
    Mamba,
    /// granite-hybrid.cpp: Mamba-2 and attention layers, each with an MLP.
    GraniteHybrid,
    /// nemotron-h.cpp: Mamba-2, attention and MLP-only layers.
    NemotronH,
    /// jamba.cpp: Mamba and attention layers, dense or routed MLPs.
    Jamba,
    /// lfm2.cpp: short convolutions and attention layers.
    Lfm2,
    /// qwen3next.cpp: gated delta net and gated attention layers, routed experts with a shared
    /// expert.
    Qwen3Next,
}

impl Builder {
    /// The llama.cpp source file of the builder.
    pub fn source(&self) -> &'static str {
        match self {
            Builder::Llama { .. } => "src/models/llama.cpp, qwen2.cpp, qwen3.cpp, qwen3moe.cpp",
            Builder::Gemma => "src/models/gemma.cpp",
            Builder::Gemma2 => "src/models/gemma2.cpp",
            Builder::Gemma3 => "src/models/gemma3.cpp",
            Builder::Gemma3n => "src/models/gemma3n.cpp",
            Builder::Phi3 => "src/models/phi3.cpp",
            Builder::Falcon => "src/models/falcon.cpp",
            Builder::Starcoder2 => "src/models/starcoder2.cpp",
            Builder::Llama4 => "src/models/llama4.cpp",
            Builder::GptOss => "src/models/openai-moe.cpp",
            Builder::Deepseek2 => "src/models/deepseek2.cpp",
            Builder::Mamba => "src/models/mamba.cpp, mamba-base.cpp",
            Builder::GraniteHybrid => "src/models/granite-hybrid.cpp, mamba-base.cpp",
            Builder::NemotronH => "src/models/nemotron-h.cpp, mamba-base.cpp",
            Builder::Jamba => "src/models/jamba.cpp, mamba-base.cpp",
            Builder::Lfm2 => "src/models/lfm2.cpp",
            Builder::Qwen3Next => "src/models/qwen3next.cpp, delta-net-base.cpp",
        }
    }
}

/// The builder llama.cpp uses for `model`, when the description holds what that builder needs
/// (None otherwise: the compute buffer is then the phase estimate, with a warning naming the
/// architecture). Vision towers and multi-token-prediction heads are not part of the text graph.
pub fn builder_for(model: &ModelDesc) -> Option<Builder> {
    models::builder_for(model)
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
    /// Sequences in the ubatch (n_seq_max): recurrent layers split the tokens by sequence.
    pub seqs: u64,
    pub flash_attn: bool,
    /// Cells per stream of the full-attention cache, and of the sliding-window cache.
    pub cells: u64,
    pub swa_cells: u64,
    /// Rows of the recurrent memory (mem_size = max(1, n_seq_max)).
    pub rs_size: u64,
    /// Whether the K and V caches are quantized (llama-kv-cache.cpp rotates them).
    pub k_quantized: bool,
    pub v_quantized: bool,
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

/// Builds the reserve graph of `model` (which `builder_for` accepted).
pub fn build(model: &ModelDesc, builder: Builder, s: &ReserveShape) -> Graph {
    let mut c = Ctx::new(model, s);
    models::build(&mut c, builder);
    c.g
}

/// The inputs of one KV cache (llama-graph.cpp `build_attn_inp_kv_impl`: k_idxs, v_idxs, the
/// KQ mask, the Hadamard matrices of a quantized cache).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KvInp {
    k_idxs: Id,
    /// None for a K-only cache (MLA: V is a view of K).
    v_idxs: Option<Id>,
    mask: Id,
    k_rot: Option<Id>,
    v_rot: Option<Id>,
    cells: u64,
}

/// The attention inputs of a model: one cache, or a full and a sliding-window one (iSWA).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttnInp {
    base: KvInp,
    swa: Option<KvInp>,
}

/// The recurrent-state input (llama-graph.cpp `build_rs_inp_impl`: s_copy and its two views).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RsInp {
    copy_main: Id,
    copy_extra: Id,
}

/// Options of one `build_attn` call beyond Q, K and V.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AttnOpts {
    /// Rows of the output projection (0: none, the caller projects).
    wo_rows: u64,
    wo_bias: bool,
    /// gpt-oss's learned sinks (a weight beside the mask; no memory of its own).
    sinks: bool,
    /// Gemma 2's attention logit soft-capping (without flash attention: scale, tanh, scale).
    softcap: bool,
    /// MLA's V up-projection applied to the attention output (`v_mla`).
    v_mla_rows: u64,
}

/// How a layer's feed-forward block is built (llama-graph.cpp `build_ffn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FfnKind {
    /// gate and up in parallel, then a GLU op (SwiGLU, GeGLU) and down.
    Parallel,
    /// up, an activation (GELU, SiLU), down.
    Sequential,
    /// up, ReLU then square (Nemotron-H: two in-place ops).
    ReluSqr,
    /// one gate+up matrix split by a GLU op (Phi-3's fused gate_up: LLM_FFN_SWIGLU).
    FusedGlu,
}

/// Options of one `build_moe_ffn` call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MoeOpts {
    experts: u64,
    used: u64,
    width: u64,
    gating: Gating,
    /// Expert-selection bias (DeepSeek V3's exp_probs_b).
    probs_bias: bool,
    /// Renormalise the chosen weights (sum, clamp, divide).
    norm_w: bool,
    /// Scale the weights (expert_weights_scale not 0 or 1).
    scale_w: bool,
    /// Router bias and expert biases (gpt-oss).
    biases: bool,
    /// Gate and up experts (else up alone).
    gated: bool,
    /// Activation: SwiGLU-OAI (gpt-oss) or a GLU op; ReLU² for ungated experts.
    oai: bool,
    /// Llama 4 weighs the input before the experts.
    weight_before: bool,
    /// Router logits computed by the caller (Nemotron-H's latent path).
    probs_in: Option<Id>,
}

/// Expert gating (llama_expert_gating_func_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gating {
    Softmax,
    Sigmoid,
    /// Softmax over the chosen experts' logits (gpt-oss).
    SoftmaxWeight,
}

/// A graph being built, with the shapes of the reserve ubatch (llm_graph_context).
pub(crate) struct Ctx<'a> {
    pub(crate) g: Graph,
    pub(crate) m: &'a ModelDesc,
    pub(crate) s: &'a ReserveShape,
    /// Tokens of the ubatch, streams, sequences and tokens per sequence.
    pub(crate) t: u64,
    pub(crate) ns: u64,
    pub(crate) seqs: u64,
    pub(crate) seq_tokens: u64,
    /// Whether RoPE takes frequency factors (a GGUF file with rope_freqs tensors).
    pub(crate) rope_factors: bool,
}

/// ggml's element count of `ne`.
fn numel(ne: [u64; 4]) -> u64 {
    ne.iter().fold(1u64, |a, &b| a.saturating_mul(b))
}

impl<'a> Ctx<'a> {
    fn new(m: &'a ModelDesc, s: &'a ReserveShape) -> Ctx<'a> {
        let seqs = s.seqs.max(1);
        Ctx {
            g: Graph::new(),
            m,
            s,
            t: s.tokens,
            ns: s.streams.max(1),
            seqs,
            seq_tokens: s.tokens / seqs,
            rope_factors: m.measured.as_ref().is_some_and(|w| {
                w.tensors
                    .iter()
                    .any(|t| t.name.starts_with("rope_freqs") || t.name.contains(".rope_freqs"))
            }),
        }
    }

    pub(crate) fn ne(&self, x: Id) -> [u64; 4] {
        self.g.tensors[x].ne
    }

    /// A weight (its shape does not matter to the allocator: it has its own buffer).
    pub(crate) fn weight(&mut self) -> Id {
        self.g.external(Dtype::F16, [1, 1, 1, 1])
    }

    pub(crate) fn expand(&mut self, x: Id) {
        self.g.expand(x);
    }

    // ---- views -------------------------------------------------------------------------

    /// A reshape (or a contiguous view): keeps the source's layout.
    pub(crate) fn reshape(&mut self, x: Id, ne: [u64; 4]) -> Id {
        self.g.view(x, ne, false)
    }

    /// A strided view: a permute, a transpose, or a slice of rows (ggml_view_nd with the
    /// source's row stride).
    pub(crate) fn strided(&mut self, x: Id, ne: [u64; 4]) -> Id {
        self.g.view(x, ne, true)
    }

    pub(crate) fn permute_0213(&mut self, x: Id) -> Id {
        let [a, b, c, d] = self.ne(x);
        self.strided(x, [a, c, b, d])
    }

    pub(crate) fn transpose(&mut self, x: Id) -> Id {
        let [a, b, c, d] = self.ne(x);
        self.strided(x, [b, a, c, d])
    }

    pub(crate) fn contiguous(&self, x: Id) -> bool {
        self.g.tensors[x].layout == Layout::Contiguous
    }

    // ---- ops ---------------------------------------------------------------------------

    pub(crate) fn unary(&mut self, op: Op, x: Id) -> Id {
        self.g.like(op, x, &[])
    }

    pub(crate) fn binary(&mut self, op: Op, a: Id, b: Id) -> Id {
        self.g.like(op, a, &[b])
    }

    /// ggml_add / ggml_mul with a weight (bias, norm weight, scale vector).
    pub(crate) fn with_weight(&mut self, op: Op, x: Id) -> Id {
        let w = self.weight();
        self.g.like(op, x, &[w])
    }

    pub(crate) fn cont(&mut self, x: Id, ne: [u64; 4]) -> Id {
        self.g.op(Op::Cont, &[x], ne)
    }

    /// ggml_mul_mat(w, x) with `rows` output rows.
    pub(crate) fn mm(&mut self, x: Id, rows: u64) -> Id {
        let w = self.weight();
        let [_, b, c, d] = self.ne(x);
        self.g.op(Op::MulMat, &[w, x], [rows, b, c, d])
    }

    /// ggml_mul_mat(a, b) of two computed tensors: [a.ne1, b.ne1, b.ne2, b.ne3].
    pub(crate) fn mul_mat(&mut self, a: Id, b: Id) -> Id {
        let an = self.ne(a);
        let [_, b1, b2, b3] = self.ne(b);
        self.g.op(Op::MulMat, &[a, b], [an[1], b1, b2, b3])
    }

    pub(crate) fn get_rows(&mut self, x: Id, ids: Id) -> Id {
        let [a, _, c, d] = self.ne(x);
        let n = self.ne(ids)[0];
        let ne = if self.ne(ids)[1] > 1 {
            // ids [n, m]: rows of x gathered per column (MoE weights: x [1, n_expert, t]).
            [a, n, self.ne(ids)[1], d]
        } else {
            [a, n, c, d]
        };
        self.g.op(Op::GetRows, &[x, ids], ne)
    }

    pub(crate) fn concat0(&mut self, a: Id, b: Id) -> Id {
        let [a0, a1, a2, a3] = self.ne(a);
        let b0 = self.ne(b)[0];
        self.g.op(Op::Concat, &[a, b], [a0 + b0, a1, a2, a3])
    }

    /// build_norm: RMS or layer norm, then the weight and the bias if any.
    pub(crate) fn norm(&mut self, x: Id, rms: bool, w: bool, b: bool) -> Id {
        let mut cur = self.unary(if rms { Op::RmsNorm } else { Op::Norm }, x);
        if w {
            cur = self.with_weight(Op::Mul, cur);
        }
        if b {
            cur = self.with_weight(Op::Add, cur);
        }
        cur
    }

    pub(crate) fn rms(&mut self, x: Id) -> Id {
        self.norm(x, true, true, false)
    }

    /// ggml_rope_ext, with the file's rope_freqs tensor as the frequency factors when it has
    /// one (`get_rope_factors`; a weight, no memory of the compute buffer's).
    pub(crate) fn rope(&mut self, x: Id, pos: Id) -> Id {
        if self.rope_factors {
            let f = self.weight();
            self.g.like(Op::Rope, x, &[pos, f])
        } else {
            self.g.like(Op::Rope, x, &[pos])
        }
    }

    // ---- inputs ------------------------------------------------------------------------

    /// build_inp_embd: token ids → get_rows, or embeddings given directly;
    /// ggml_build_forward_select expands both, so the unused [n_embd, tokens] input is
    /// reserved too (and never freed).
    pub(crate) fn inp_embd(&mut self) -> Id {
        let (e, t) = (self.m.hidden_size, self.t);
        let tokens = self.g.input(Dtype::I32, [t, 1, 1, 1]);
        let tok_embd = self.g.external(Dtype::F16, [e, self.m.vocab_size, 1, 1]);
        let rows = self.g.op(Op::GetRows, &[tok_embd, tokens], [e, t, 1, 1]);
        let embd = self.g.input(Dtype::F32, [e, t, 1, 1]);
        self.g.expand(rows);
        self.g.expand(embd);
        rows
    }

    pub(crate) fn inp_pos(&mut self) -> Id {
        self.g.input(Dtype::I32, [self.t, 1, 1, 1])
    }

    pub(crate) fn inp_out_ids(&mut self) -> Id {
        self.g.input(Dtype::I32, [self.s.outputs, 1, 1, 1])
    }

    /// The inputs of one cache: K and V indices, the mask [n_kv, tokens/streams, 1, streams]
    /// (f16 with flash attention), the rotations of a quantized cache. Without flash
    /// attention V is stored transposed: one index per element of the widest V row.
    fn kv_inp(&mut self, cells: u64, with_v: bool) -> KvInp {
        let t = self.t;
        let fa = self.s.flash_attn;
        let (k_head, v_head, v_row_max) = self.kv_widths();
        let mask_type = if fa { Dtype::F16 } else { Dtype::F32 };
        KvInp {
            k_idxs: self.g.input(Dtype::I64, [t, 1, 1, 1]),
            v_idxs: with_v.then(|| {
                let n = if fa { t } else { t.saturating_mul(v_row_max) };
                self.g.input(Dtype::I64, [n, 1, 1, 1])
            }),
            mask: self.g.input(mask_type, [cells, t / self.ns, 1, self.ns]),
            k_rot: if with_v {
                rotation_width(self.s.k_quantized, k_head, false)
                    .map(|n| self.g.input(Dtype::F32, [n, n, 1, 1]))
            } else {
                None
            },
            v_rot: if with_v {
                rotation_width(self.s.v_quantized, v_head, true)
                    .map(|n| self.g.input(Dtype::F32, [n, n, 1, 1]))
            } else {
                None
            },
            cells,
        }
    }

    /// Head widths of the cached K and V (the same on every layer llama.cpp rotates:
    /// `n_embd_head_k_all`), and the widest V row (n_embd_v_gqa_max).
    fn kv_widths(&self) -> (u64, u64, u64) {
        let mut k = 0;
        let mut v = 0;
        let mut v_max = 0;
        for l in self.m.layers() {
            if let Some(a) = l.attention.as_ref().filter(|a| a.caches()) {
                let (kh, vh) = match &a.latent {
                    Some(_) => (a.k_width(), 0),
                    None => (a.k_head_dim, a.v_head_dim),
                };
                if k == 0 {
                    k = kh;
                } else if k != kh {
                    k = u64::MAX;
                }
                if v == 0 {
                    v = vh;
                } else if v != vh {
                    v = u64::MAX;
                }
                v_max = v_max.max(a.v_width());
            }
        }
        let norm = |x: u64| if x == u64::MAX { 0 } else { x };
        (norm(k), norm(v), v_max)
    }

    /// build_attn_inp_kv, or build_attn_inp_kv_iswa when the model has windowed layers.
    pub(crate) fn attn_inp(&mut self, iswa: bool) -> AttnInp {
        let base = self.kv_inp(self.s.cells, true);
        let swa = iswa.then(|| self.kv_inp(self.s.swa_cells, true));
        AttnInp { base, swa }
    }

    /// build_attn_inp_k (MLA's K-only cache): indices and mask, no rotation
    /// (`build_attn_inp_k_impl` builds none, and that `build_attn` rotates nothing).
    pub(crate) fn attn_inp_k(&mut self) -> AttnInp {
        let mut base = self.kv_inp(self.s.cells, false);
        base.k_rot = None;
        AttnInp { base, swa: None }
    }

    /// build_rs_inp_impl: s_copy [n_rs] and its views for the sequences of the ubatch and the
    /// rest.
    pub(crate) fn rs_inp(&mut self) -> RsInp {
        let n_rs = self.s.rs_size.max(1);
        let s_copy = self.g.input(Dtype::I32, [n_rs, 1, 1, 1]);
        let copy_main = self.reshape(s_copy, [self.seqs, 1, 1, 1]);
        let copy_extra = self.reshape(s_copy, [n_rs.saturating_sub(self.seqs), 1, 1, 1]);
        RsInp {
            copy_main,
            copy_extra,
        }
    }

    // ---- attention ---------------------------------------------------------------------

    /// llama_mul_mat_hadamard: rows of the rotation's width (a copy when not contiguous),
    /// multiplied by the rotation, reshaped back.
    fn hadamard(&mut self, x: Id, rot: Id) -> Id {
        let n = self.ne(rot)[0];
        let ne = self.ne(x);
        let rows = [n, numel(ne) / n.max(1), 1, 1];
        let r = if self.contiguous(x) {
            self.reshape(x, rows)
        } else {
            self.cont(x, rows)
        };
        let m = self.g.op(Op::MulMat, &[rot, r], rows);
        self.reshape(m, ne)
    }

    /// The attention of layer `il` through its cache (llama-graph.cpp `build_attn` for a KV,
    /// an iSWA or a K-only input): rotate for a quantized cache, expand q/v/k (q/k/v for
    /// iSWA), store K and V, attend (`build_attn_mha`), rotate back, project.
    pub(crate) fn attn(&mut self, inp: &AttnInp, il: u64, q: Id, k: Id, v: Id, o: AttnOpts) -> Id {
        self.attn_kv(inp, il, q, Some((k, v)), o)
    }

    /// build_attn with Q alone: a layer reading the cache of an earlier one (Gemma 3n's
    /// KV-sharing layers): Q rotated for a quantized cache, nothing stored, the cache viewed
    /// as the layer's own attention describes it.
    pub(crate) fn attn_reuse(&mut self, inp: &AttnInp, il: u64, q: Id, o: AttnOpts) -> Id {
        self.attn_kv(inp, il, q, None, o)
    }

    fn attn_kv(
        &mut self,
        inp: &AttnInp,
        il: u64,
        q: Id,
        kv_cur: Option<(Id, Id)>,
        o: AttnOpts,
    ) -> Id {
        let layer = self.m.layer(il);
        let att = layer.attention.as_ref().expect("an attention layer");
        let windowed = matches!(att.span, Span::Window(_) | Span::Chunk(_));
        let iswa = inp.swa.is_some();
        let kv = match (&inp.swa, windowed) {
            (Some(w), true) => *w,
            _ => inp.base,
        };
        let k_only = kv.v_idxs.is_none();
        let mut q = q;
        if let Some(r) = kv.k_rot {
            q = self.hadamard(q, r);
        }
        let Some((k, v)) = kv_cur else {
            self.expand(q);
            let (kd, kh, vd) = (att.k_head_dim, att.kv_heads, att.v_head_dim);
            let (cells, ns, fa) = (kv.cells, self.ns, self.s.flash_attn);
            let k_cache = self.g.external(Dtype::F16, [kd * kh, cells, ns, 1]);
            let v_cache = self.g.external(Dtype::F16, [vd * kh, cells, ns, 1]);
            let k_all = self.strided(k_cache, [kd, kh, cells, ns]);
            let v_all = if fa {
                self.strided(v_cache, [vd, kh, cells, ns])
            } else {
                self.strided(v_cache, [cells, kh, vd, ns])
            };
            let out = self.attn_mha(q, k_all, v_all, kv.mask, fa, !fa, o);
            return self.attn_out(out, kv.v_rot, o);
        };
        let (mut k, mut v) = (k, v);
        if let Some(r) = kv.k_rot {
            k = self.hadamard(k, r);
        }
        if let Some(r) = kv.v_rot {
            v = self.hadamard(v, r);
        }
        self.expand(q);
        if iswa {
            self.expand(k);
            self.expand(v);
        } else {
            self.expand(v);
            self.expand(k);
        }
        let cells = kv.cells;
        let ns = self.ns;
        let fa = self.s.flash_attn;
        let (kd, kh) = (self.ne(k)[0], self.ne(k)[1]);
        let k_gqa = kd * kh;
        let k_cache = self.g.external(Dtype::F16, [k_gqa, cells, ns, 1]);
        // cpy_k: the new rows as [n_embd_gqa, tokens]; several streams share one index
        // space, so the cache is viewed as one 2-D tensor.
        let k_rows = self.reshape(k, [k_gqa, self.t, 1, 1]);
        let k_dst = if ns > 1 {
            self.reshape(k_cache, [k_gqa, cells * ns, 1, 1])
        } else {
            k_cache
        };
        let store_k = self.g.set_rows(k_dst, k_rows, kv.k_idxs);
        self.expand(store_k);
        let (vd, vh) = (self.ne(v)[0], self.ne(v)[1]);
        let v_gqa = vd * vh;
        let v_cache = (!k_only).then(|| self.g.external(Dtype::F16, [v_gqa, cells, ns, 1]));
        if let (Some(v_cache), Some(v_idxs)) = (v_cache, kv.v_idxs) {
            let store_v = if fa {
                let rows = self.reshape(v, [v_gqa, self.t, 1, 1]);
                let dst = if ns > 1 {
                    self.reshape(v_cache, [v_gqa, cells * ns, 1, 1])
                } else {
                    v_cache
                };
                self.g.set_rows(dst, rows, v_idxs)
            } else {
                // Transposed V: one element per row; rows that are not contiguous (a view of a
                // fused QKV) are copied first.
                let rows = if self.contiguous(v) {
                    self.reshape(v, [v_gqa, self.t, 1, 1])
                } else {
                    self.cont(v, [v_gqa, self.t, 1, 1])
                };
                let dst = self.reshape(v_cache, [1, v_gqa * cells * ns, 1, 1]);
                let rows = self.reshape(rows, [1, v_gqa * self.t, 1, 1]);
                self.g.set_rows(dst, rows, v_idxs)
            };
            self.expand(store_v);
        }
        // get_k / get_v: [head, heads, n_kv, streams] views of the caches.
        let k_all = self.strided(k_cache, [kd, kh, cells, ns]);
        let v_all = match v_cache {
            Some(vc) if fa => self.strided(vc, [vd, vh, cells, ns]),
            Some(vc) => self.strided(vc, [cells, vh, vd, ns]),
            // MLA: V is the first kv_lora_rank elements of each cached K row.
            None => self.strided(k_all, [vd, kh, cells, ns]),
        };
        let out = self.attn_mha(q, k_all, v_all, kv.mask, fa, !fa && v_cache.is_some(), o);
        self.attn_out(out, kv.v_rot, o)
    }

    /// The end of build_attn: V's rotation undone, the output projection and its bias.
    fn attn_out(&mut self, out: Id, v_rot: Option<Id>, o: AttnOpts) -> Id {
        let mut cur = out;
        if let Some(r) = v_rot {
            cur = self.hadamard(cur, r);
        }
        if o.wo_rows > 0 {
            cur = self.mm(cur, o.wo_rows);
        }
        if o.wo_bias {
            cur = self.with_weight(Op::Add, cur);
        }
        cur
    }

    /// build_attn_mha: split the tokens by stream, heads outermost; flash attention, or KQ,
    /// softmax and KQV.
    #[allow(clippy::too_many_arguments)]
    fn attn_mha(
        &mut self,
        q: Id,
        k: Id,
        v: Id,
        mask: Id,
        fa: bool,
        v_trans: bool,
        o: AttnOpts,
    ) -> Id {
        let ns = self.ne(k)[3];
        let [qd, qh, qt, _] = self.ne(q);
        let q4 = self.strided(q, [qd, qh, qt / ns, ns]);
        let qp = self.permute_0213(q4);
        let kp = self.permute_0213(k);
        let mut vp = self.permute_0213(v);
        let mut cur;
        if fa {
            if v_trans {
                vp = self.transpose(vp);
            }
            let mut srcs = vec![qp, kp, vp, mask];
            if o.sinks {
                srcs.push(self.weight());
            }
            let vd = self.ne(vp)[0];
            cur = self.g.op(Op::FlashAttn, &srcs, [vd, qh, qt / ns, ns]);
            if o.v_mla_rows > 0 {
                let p = self.permute_0213(cur);
                let m = self.mm(p, o.v_mla_rows);
                let p2 = self.permute_0213(m);
                let ne = self.ne(p2);
                cur = self.cont(p2, ne);
            }
            let [a, b, c, d] = self.ne(cur);
            cur = self.reshape(cur, [a * b, c * d, 1, 1]);
        } else {
            let mut kq = self.mul_mat(kp, qp);
            if o.softcap {
                kq = self.unary(Op::Scale, kq);
                kq = self.unary(Op::Unary, kq);
                kq = self.unary(Op::Scale, kq);
            }
            kq = if o.sinks {
                let s = self.weight();
                self.g.like(Op::SoftMax, kq, &[mask, s])
            } else {
                self.g.like(Op::SoftMax, kq, &[mask])
            };
            if !v_trans {
                let t = self.transpose(vp);
                let ne = self.ne(t);
                vp = self.cont(t, ne);
            }
            let mut kqv = self.mul_mat(vp, kq);
            if o.v_mla_rows > 0 {
                kqv = self.mm(kqv, o.v_mla_rows);
            }
            let p = self.permute_0213(kqv);
            let [a, b, c, d] = self.ne(p);
            cur = self.cont(p, [a * b, c * d, 1, 1]);
        }
        self.expand(cur);
        cur
    }

    /// build_qkv with separate projections: Q, K and V [head, heads, tokens], each biased when
    /// `bias`.
    pub(crate) fn qkv(&mut self, x: Id, att: &Attention, bias: bool) -> (Id, Id, Id) {
        let t = self.t;
        let proj = |c: &mut Self, rows: u64| {
            let m = c.mm(x, rows);
            if bias {
                c.with_weight(Op::Add, m)
            } else {
                m
            }
        };
        let q = proj(self, att.heads * att.k_head_dim);
        let k = proj(self, att.kv_heads * att.k_head_dim);
        let v = proj(self, att.kv_heads * att.v_head_dim);
        let q = self.reshape(q, [att.k_head_dim, att.heads, t, 1]);
        let k = self.reshape(k, [att.k_head_dim, att.kv_heads, t, 1]);
        let v = self.reshape(v, [att.v_head_dim, att.kv_heads, t, 1]);
        (q, k, v)
    }

    /// build_qkv with a fused QKV matrix: strided views of one product (biased when `bias`).
    pub(crate) fn qkv_fused(&mut self, x: Id, att: &Attention, bias: bool) -> (Id, Id, Id) {
        let t = self.t;
        let rows = att.heads * att.k_head_dim + att.kv_heads * (att.k_head_dim + att.v_head_dim);
        let mut qkv = self.mm(x, rows);
        if bias {
            qkv = self.with_weight(Op::Add, qkv);
        }
        let q = self.strided(qkv, [att.k_head_dim, att.heads, t, 1]);
        let k = self.strided(qkv, [att.k_head_dim, att.kv_heads, t, 1]);
        let v = self.strided(qkv, [att.v_head_dim, att.kv_heads, t, 1]);
        (q, k, v)
    }

    // ---- feed-forward ------------------------------------------------------------------

    /// build_ffn: `width` the hidden width, `bias` on up/gate/down.
    pub(crate) fn ffn(&mut self, x: Id, kind: FfnKind, width: u64, bias: bool) -> Id {
        let e = self.ne(x)[0];
        let biased = |c: &mut Self, y: Id| {
            if bias {
                c.with_weight(Op::Add, y)
            } else {
                y
            }
        };
        let cur = match kind {
            FfnKind::Parallel => {
                let up = self.mm(x, width);
                let up = biased(self, up);
                let gate = self.mm(x, width);
                let gate = biased(self, gate);
                self.g.like(Op::Glu, gate, &[up])
            }
            FfnKind::Sequential | FfnKind::ReluSqr => {
                let up = self.mm(x, width);
                let up = biased(self, up);
                let a = self.unary(Op::Unary, up);
                if kind == FfnKind::ReluSqr {
                    self.unary(Op::Sqr, a)
                } else {
                    a
                }
            }
            FfnKind::FusedGlu => {
                let up = self.mm(x, 2 * width);
                let up = biased(self, up);
                let [_, b, c, d] = self.ne(up);
                self.g.op(Op::Glu, &[up], [width, b, c, d])
            }
        };
        let down = self.mm(cur, e);
        biased(self, down)
    }

    /// build_moe_ffn: router, top-k by argsort, weights (renormalised, scaled), the experts
    /// through mul_mat_id, weighted and summed over the chosen experts.
    pub(crate) fn moe(&mut self, x: Id, o: MoeOpts) -> Id {
        let [e, t, _, _] = self.ne(x);
        let n_exp = o.experts;
        let k = o.used;
        let logits = match o.probs_in {
            Some(p) => p,
            None => self.mm(x, n_exp),
        };
        let logits = if o.biases {
            self.with_weight(Op::Add, logits)
        } else {
            logits
        };
        let probs = match o.gating {
            Gating::Softmax => self.unary(Op::SoftMax, logits),
            Gating::Sigmoid => self.unary(Op::Unary, logits),
            Gating::SoftmaxWeight => logits,
        };
        let mut selection = probs;
        if o.probs_bias {
            selection = self.with_weight(Op::Add, probs);
        }
        if o.weight_before {
            // Llama 4 selects on the logits.
            selection = logits;
        }
        // ggml_argsort_top_k: argsort, then a view of the first k indices.
        let sorted = self
            .g
            .op_typed(Op::ArgSort, &[selection], [n_exp, t, 1, 1], Dtype::I32);
        let selected = self.strided(sorted, [k, t, 1, 1]);
        let probs3 = self.reshape(probs, [1, n_exp, t, 1]);
        let mut weights = self.get_rows(probs3, selected);
        if o.gating == Gating::SoftmaxWeight {
            let w2 = self.reshape(weights, [k, t, 1, 1]);
            let sm = self.unary(Op::SoftMax, w2);
            weights = self.reshape(sm, [1, k, t, 1]);
        }
        if o.norm_w {
            let w2 = self.reshape(weights, [k, t, 1, 1]);
            let sum = self.g.op(Op::SumRows, &[w2], [1, t, 1, 1]);
            let clamped = self.unary(Op::Clamp, sum);
            let div = self.binary(Op::Div, w2, clamped);
            weights = self.reshape(div, [1, k, t, 1]);
        }
        if o.scale_w {
            weights = self.unary(Op::Scale, weights);
        }
        self.expand(weights);
        let mut cur = self.reshape(x, [e, 1, t, 1]);
        if o.weight_before {
            let rep = self.g.op(Op::Repeat, &[cur], [e, k, t, 1]);
            cur = self.binary(Op::Mul, rep, weights);
        }
        let mm_id = |c: &mut Self, input: Id, rows: u64| {
            let w = c.weight();
            let [_, b, tt, _] = c.ne(input);
            let _ = b;
            c.g.op(Op::MulMatId, &[w, input, selected], [rows, k, tt, 1])
        };
        let add_id = |c: &mut Self, y: Id| {
            if o.biases {
                let b = c.weight();
                c.g.like(Op::AddId, y, &[b, selected])
            } else {
                y
            }
        };
        let up = mm_id(self, cur, o.width);
        let up = add_id(self, up);
        let act = if o.gated {
            let gate = mm_id(self, cur, o.width);
            let gate = add_id(self, gate);
            self.g.like(Op::Glu, gate, &[up])
        } else {
            let r = self.unary(Op::Unary, up);
            self.unary(Op::Sqr, r)
        };
        let _ = o.oai;
        let experts = mm_id(self, act, e);
        let mut experts = add_id(self, experts);
        if !o.weight_before {
            experts = self.binary(Op::Mul, experts, weights);
        }
        self.expand(experts);
        // Views of each chosen expert's rows before the adds, then the sum.
        let views: Vec<Id> = (0..k)
            .map(|_| {
                let v = self.strided(experts, [e, t, 1, 1]);
                self.expand(v);
                v
            })
            .collect();
        let mut out = views[0];
        for &v in &views[1..] {
            out = self.binary(Op::Add, out, v);
            self.expand(out);
        }
        if k == 1 {
            out = self.cont(out, [e, t, 1, 1]);
        }
        out
    }

    /// Keeps only the output rows (the last layer).
    pub(crate) fn out_rows(&mut self, x: Id, ids: Id) -> Id {
        self.get_rows(x, ids)
    }

    /// res->t_embd and res->t_logits are outputs: never freed, never overwritten.
    pub(crate) fn finish(&mut self, embd: Id, logits: Id) {
        self.g.set_output(embd);
        self.g.set_output(logits);
        self.expand(logits);
    }

    /// The layer's own attention, if it caches K and V.
    pub(crate) fn attention(&self, il: u64) -> Option<&'a Attention> {
        let m: &'a ModelDesc = self.m;
        m.layer(il).attention.as_ref()
    }

    pub(crate) fn layer(&self, il: u64) -> &'a Layer {
        let m: &'a ModelDesc = self.m;
        m.layer(il)
    }

    /// The dense width of a layer's feed-forward block (0 without one).
    pub(crate) fn dense_width(&self, il: u64) -> u64 {
        match self.layer(il).ffn {
            Ffn::Dense { width, .. } => width,
            _ => 0,
        }
    }
}
