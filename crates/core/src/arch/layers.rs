//! One decoder layer's tensors and caches from its plan (mixer, feed-forward, widths).
//!
//! Tensor shapes follow the modeling files of transformers 5.24.0: attention
//! (`modeling_llama.py` LlamaAttention: q [H·d, h], k and v [K·d, h], o [h, H·d]; biases when
//! `attention_bias`), latent attention (`modeling_deepseek_v3.py` DeepseekV3Attention: q_a, q_a
//! norm, q_b or q, kv_a [r + rope, h], kv_a norm, kv_b [H·(nope + v), r], o), the V3.2 indexer
//! (`modeling_deepseek_v32.py` DeepseekV32Indexer: wq_b, wk, k_norm LayerNorm, weights_proj),
//! MLPs (LlamaMLP gate/up/down; plain up/down), MoE (`modeling_mixtral.py`, `modeling_qwen2_moe.py`,
//! `modeling_deepseek_v3.py`: router, experts, shared experts), recurrent mixers in
//! `recurrent.rs`.

use super::fields;
use super::recurrent::{self, RecKind};
use super::{ArchError, Basics, Builder};
use crate::layer::{Attention, CrossAttention, Ffn, Indexer, Latent, Layer, Moe, Recurrent, Span};
use crate::model::{Mtp, Role, Split, Tensor};

/// What one decoder layer is, before its tensors are built. Layers with equal plans share one
/// description.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Plan {
    pub mixer: Mixer,
    pub ffn: FfnPlan,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub v_head_dim: u64,
    /// A cross-attention block to the vision encoder's outputs (Mllama, IDEFICS).
    pub cross: bool,
    /// The layer whose weights this one runs again (HRM): no tensors of its own.
    pub weights_from: Option<u32>,
    /// The layer's own latent widths (`per_layer_config`: dots3's sliding layers).
    pub kv_lora_rank: Option<u64>,
    pub qk_nope_head_dim: Option<u64>,
    /// The hybrid layer whose copy of the shared transformer block this layer runs (Zamba: the
    /// block's weights are counted there).
    pub block_from: Option<u32>,
    /// The model's first layer (Inkling 2's block residuals start after it).
    pub first_layer: bool,
    /// A layer of a section run several times (its first run; reuse.rs).
    pub in_loop: bool,
    /// A latent-attention layer without rotary positions (Mistral Large 4's `no_rope_layers`
    /// 0 entries): its rope key width folds into the nope part and nothing rope-wide is cached.
    pub no_rope: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mixer {
    /// Attention over `span`, with an indexer when `indexed`; `source` = the layer whose cache it
    /// reads (KV sharing).
    Attention {
        span: Span,
        indexed: bool,
        source: Option<u32>,
    },
    Recurrent(RecKind),
    /// A recurrent mixer and attention side by side (Falcon-H1, Zamba hybrid layers).
    Hybrid(RecKind, Span),
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FfnPlan {
    None,
    Dense(u64),
    Moe,
}

/// The config names of the number of routed experts per token.
pub(crate) const TOP_K_NAMES: &[&str] = &[
    "num_experts_per_tok",
    "num_experts_per_token",
    "experts_per_token",
    "moe_k",
    "moe_topk",
    "moe_top_k",
    "top_k_experts",
    "num_selected_experts",
    "moe_router_topk",
];

/// MoE fields under every spelling families use.
pub(crate) struct MoeFields {
    pub experts: u64,
    pub top_k: u64,
    pub width: u64,
    pub shared: u64,
    pub shared_width: u64,
}

pub(crate) fn moe_fields(b: &Builder, basics: &Basics) -> Result<Option<MoeFields>, ArchError> {
    let t = b.text;
    if let Some(k) = &b.fam.moe_key {
        if !t.flag(&[k.as_str()])? {
            t.mark_read(&["num_experts", "num_experts_per_tok", "num_local_experts"]);
            return Ok(None);
        }
    }
    let experts = t
        .u64(&[
            "num_local_experts",
            "num_experts",
            "n_routed_experts",
            "moe_num_experts",
            "num_routed_experts",
            "num_experts_routed",
        ])?
        .unwrap_or(0);
    if experts == 0 {
        return Ok(None);
    }
    super::check_limit(&t.field("num_experts"), experts, super::limits::MAX_EXPERTS)?;
    let top_k = t.u64(TOP_K_NAMES)?.unwrap_or(0);
    // transformers builds the experts whatever the top-k (DeepSeek-V2's class default is null):
    // the weights are right; only active parameters and activation peaks need it.
    let top_k = top_k.max(1);
    let width = match t.per_layer(&[
        "moe_intermediate_size",
        "expert_intermediate_size",
        "moe_ffn_hidden_size",
        "expert_ffn_hidden_size",
        "moe_hidden_size",
    ])? {
        Some((_, w)) => w.get(0),
        // Mixtral, Jamba, Llama 4: experts use intermediate_size.
        None => basics.intermediate.get(0),
    };
    let shared = t
        .u64(&[
            "n_shared_experts",
            "num_shared_experts",
            "moe_num_shared_experts",
            "shared_experts",
        ])?
        .unwrap_or(0);
    let shared_width_key = t.u64(&[
        "shared_expert_intermediate_size",
        "moe_shared_expert_intermediate_size",
        "shared_intermediate_size",
        "shared_experts_intermediate_size",
        "share_expert_dim",
    ])?;
    let shared = if shared == 0 {
        b.fam.shared_experts.unwrap_or(0)
    } else {
        shared
    };
    let (shared, shared_width) = match (shared, shared_width_key) {
        // Qwen-MoE: one shared expert of its own width.
        (0, Some(w)) if w > 0 => (1, w),
        (n, Some(w)) if w > 0 => (n, w),
        (n, _) => (n, width),
    };
    Ok(Some(MoeFields {
        experts,
        top_k,
        width,
        shared,
        shared_width,
    }))
}

fn mlp_tensors(
    out: &mut Vec<Tensor>,
    role: Role,
    h: u64,
    width: u64,
    gated: bool,
    bias: bool,
    count: u64,
) {
    let up_rows = if gated { 2 * width } else { width };
    out.push(Tensor::matrix(role, up_rows, h, Split::Rows).times(count));
    out.push(Tensor::matrix(role, h, width, Split::Cols).times(count));
    if bias {
        out.push(Tensor::vector(up_rows + h).times(count));
    }
}

fn mlp_params(h: u64, width: u64, gated: bool, bias: bool) -> u64 {
    let mut v = Vec::new();
    mlp_tensors(&mut v, Role::Mlp, h, width, gated, bias, 1);
    v.iter().map(Tensor::elements).sum()
}

/// Attention tensors and the description of its cache.
fn attention(
    b: &Builder,
    basics: &Basics,
    p: &Plan,
    span: Span,
    indexed: bool,
    source: Option<u32>,
    out: &mut Vec<Tensor>,
) -> Result<Attention, ArchError> {
    let t = b.text;
    let h = basics.hidden;
    let (heads, kv, d, dv) = (p.heads, p.kv_heads, p.head_dim, p.v_head_dim);
    let a = Role::Attention;
    let qkv_bias = b.toggle(&b.fam.qkv_bias, "attention_bias")?;
    let o_bias = match &b.fam.o_bias {
        None => qkv_bias,
        some => b.toggle(some, "attention_bias")?,
    };
    let latent = match p.kv_lora_rank.or(t.u64(&["kv_lora_rank"])?) {
        Some(r) if r > 0 => {
            let rope = t.req_u64(&["qk_rope_head_dim"])?;
            let nope = match p.qk_nope_head_dim {
                Some(n) => n,
                None => t.req_u64(&["qk_nope_head_dim"])?,
            };
            // modeling_mistral_large4.py: qk_rope_head_dim 0 and the nope part widened by it.
            let (rope, nope) = if p.no_rope {
                (0, nope + rope)
            } else {
                (rope, nope)
            };
            Some(Latent {
                kv_lora_rank: r,
                q_lora_rank: t.u64(&["q_lora_rank"])?.unwrap_or(0),
                qk_rope_head_dim: rope,
                qk_nope_head_dim: nope,
                v_head_dim: t.req_u64(&["v_head_dim"])?,
            })
        }
        _ => None,
    };
    let mut indexer = None;
    // A layer reading another layer's KV without projections of its own (Gemma 3n/4).
    let drops_kv = source.is_some() && b.fam.kv_shared_drops_kv == Some(true);
    let (k_head_dim, v_head_dim) = if let Some(m) = &latent {
        let qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
        if m.q_lora_rank > 0 && b.fam.attention_gate.as_deref() == Some("latent_fused") {
            // AXK2 (modeling_axk2.py AXK2Attention): no q_b_proj; q_gate_proj maps the normed
            // and the raw q latent, concatenated, to the queries and a per-head output gate.
            out.push(Tensor::matrix(a, m.q_lora_rank, h, Split::Replicated));
            out.push(Tensor::vector(m.q_lora_rank));
            out.push(Tensor::matrix(
                a,
                heads * (qk + m.v_head_dim),
                2 * m.q_lora_rank,
                Split::Rows,
            ));
        } else if m.q_lora_rank > 0 {
            out.push(Tensor::matrix(a, m.q_lora_rank, h, Split::Replicated));
            out.push(Tensor::vector(m.q_lora_rank));
            out.push(Tensor::matrix(a, heads * qk, m.q_lora_rank, Split::Rows));
        } else {
            out.push(Tensor::matrix(a, heads * qk, h, Split::Rows));
        }
        if !drops_kv {
            out.push(Tensor::matrix(
                a,
                m.kv_lora_rank + m.qk_rope_head_dim,
                h,
                Split::Replicated,
            ));
            out.push(Tensor::vector(m.kv_lora_rank));
        }
        out.push(Tensor::matrix(
            a,
            heads * (m.qk_nope_head_dim + m.v_head_dim),
            m.kv_lora_rank,
            Split::Rows,
        ));
        out.push(Tensor::matrix(a, h, heads * m.v_head_dim, Split::Cols));
        if qkv_bias {
            out.push(Tensor::vector(
                m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim,
            ));
        }
        if indexed {
            let ih = t.req_u64(&["index_n_heads", "indexer_n_heads"])?;
            let id = t.req_u64(&["index_head_dim", "indexer_head_dim"])?;
            let topk = t.u64(&["index_topk", "indexer_topk"])?.unwrap_or(0);
            let q_in = if m.q_lora_rank > 0 { m.q_lora_rank } else { h };
            out.push(Tensor::matrix(a, ih * id, q_in, Split::Replicated));
            out.push(Tensor::matrix(a, id, h, Split::Replicated));
            out.push(Tensor::vector(2 * id));
            out.push(Tensor::matrix(a, ih, h, Split::Replicated));
            // GLM-5-next's key pooling (modeling_glm5_next.py Glm5NextTextIndexer):
            // index_kpool_compress_ape [kpool, id] and index_kpool_compress_gate [id, h]; the
            // cache packs the key, its gate scores and a validity channel per token.
            let kpool = t.u64(&["index_kpool"])?.filter(|&k| k > 0);
            if let Some(kp) = kpool {
                out.push(Tensor::matrix(a, kp, id, Split::Replicated));
                out.push(Tensor::matrix(a, id, h, Split::Replicated));
            }
            indexer = Some(Indexer {
                heads: ih,
                head_dim: id,
                topk,
                cached_width: if kpool.is_some() { 2 * id + 1 } else { id },
            });
        }
        if b.fam.attention_gate.as_deref() == Some("linear") {
            // An output gate over the heads' values (HY-V4: gate_proj [heads × v_head_dim, h]).
            out.push(Tensor::matrix(a, heads * m.v_head_dim, h, Split::Rows));
        }
        (qk, m.v_head_dim)
    } else {
        let gate = match b.fam.attention_gate.as_deref() {
            Some("q") => 2,
            Some("linear") => {
                out.push(Tensor::matrix(a, heads * dv, h, Split::Rows));
                1
            }
            _ => 1,
        };
        // JetMoE's mixture of attention heads (modeling_jetmoe.py JetMoeMoA): the query and
        // output projections are experts of kv_heads × head_dim each, with a router and an
        // output bias; K and V come from one shared kv_proj.
        let moa = match b.fam.attention_experts {
            Some(true) => moe_fields(b, basics)?.map(|m| m.experts),
            _ => None,
        };
        match moa {
            Some(e) => {
                out.push(Tensor::matrix(Role::Expert, e * kv * d, h, Split::Rows));
                out.push(Tensor::matrix(Role::Router, e, h, Split::Replicated));
                out.push(Tensor::vector(h));
            }
            None => out.push(Tensor::matrix(a, gate * heads * d, h, Split::Rows)),
        }
        if !drops_kv {
            out.push(Tensor::matrix(a, kv * d, h, Split::KvRows { head_dim: d }));
            out.push(Tensor::matrix(
                a,
                kv * dv,
                h,
                Split::KvRows { head_dim: dv },
            ));
        }
        match moa {
            Some(e) => out.push(Tensor::matrix(Role::Expert, e * h, kv * dv, Split::Cols)),
            None => out.push(Tensor::matrix(a, h, heads * dv, Split::Cols)),
        }
        if indexed {
            // MiniMax-M3's block-sparse indexer (modeling_minimax_m3_vl.py MiniMaxM3VLIndexer):
            // q_proj [index_n_heads × index_head_dim, h], k_proj [index_head_dim, h], q/k
            // RMSNorms; its keys [batch, 1, tokens, index_head_dim] cached beside K and V
            // (MiniMaxM3VLSparseCacheLayer idx_keys).
            let ih = t.req_u64(&["index_n_heads"])?;
            let id = t.req_u64(&["index_head_dim"])?;
            out.push(Tensor::matrix(a, ih * id, h, Split::Replicated));
            out.push(Tensor::matrix(a, id, h, Split::Replicated));
            out.push(Tensor::vector(2 * id));
            let block = t.u64_or(&["index_block_size"], 1)?;
            indexer = Some(Indexer {
                heads: ih,
                head_dim: id,
                topk: t.u64_or(&["index_topk_blocks"], 0)?.saturating_mul(block),
                cached_width: id,
            });
        }
        if qkv_bias {
            out.push(Tensor::vector(heads * d + kv * d + kv * dv));
        }
        (d, dv)
    };
    if o_bias && latent.is_none() {
        out.push(Tensor::vector(h));
    }
    let qk_norm_on = match &b.fam.qk_norm_key {
        Some(k) => t.flag(&[k.as_str()])?,
        None => true,
    };
    let qk_norm = match b.fam.qk_norm.as_deref() {
        Some("head") if qk_norm_on => {
            out.push(Tensor::vector(if drops_kv {
                k_head_dim
            } else {
                2 * k_head_dim
            }));
            true
        }
        Some("full") if qk_norm_on => {
            out.push(Tensor::vector(heads * k_head_dim + kv * k_head_dim));
            true
        }
        // A LayerNorm (weight and bias) over head_dim for q and for k (Persimmon).
        Some("head_layer") if qk_norm_on => {
            out.push(Tensor::vector(4 * k_head_dim));
            true
        }
        _ => false,
    };
    let sinks = b.fam.sinks == Some(true)
        && (b.fam.sliding_only_sinks != Some(true) || matches!(span, Span::Window(_)));
    if sinks {
        out.push(Tensor::vector(heads));
    }
    let rotary_dim = if b.fam.positions.as_deref().is_some_and(|p| p != "rope") {
        0
    } else if let Some(m) = &latent {
        m.qk_rope_head_dim
    } else {
        let factor = t
            .f64(&["partial_rotary_factor"])?
            .filter(|f| *f > 0.0 && *f <= 1.0)
            .unwrap_or(1.0);
        t.u64(&["rotary_dim", "rotary_emb_dim"])?
            .unwrap_or((d as f64 * factor).round() as u64)
    };
    Ok(Attention {
        heads,
        kv_heads: if latent.is_some() { heads } else { kv },
        k_head_dim,
        v_head_dim,
        span,
        kv_source: source,
        latent,
        indexer,
        sinks,
        rotary_dim,
        qkv_bias,
        o_bias,
        qk_norm,
        compressed: None,
        hidden_memory: false,
    })
}

/// The layer's tensors and description.
pub(crate) fn build(b: &Builder, basics: &Basics, p: &Plan) -> Result<Layer, ArchError> {
    let h = basics.hidden;
    let mut t = Vec::with_capacity(16);
    let (attention_desc, recurrent_desc): (Option<Attention>, Option<Recurrent>) = match p.mixer {
        Mixer::Attention {
            span,
            indexed,
            source,
        } => {
            let mut a = attention(b, basics, p, span, indexed, source, &mut t)?;
            // XLNet (modeling_xlnet.py XLNetModel.cache_mem): each layer keeps its last mem_len
            // input hidden states, one d_model row per token, whatever the heads.
            if let Some(key) = &b.fam.memory_len_key {
                let len = b.text.req_u64(&[key.as_str()])?;
                a.hidden_memory = true;
                a.kv_heads = a.heads;
                a.k_head_dim = basics.hidden / a.heads.max(1);
                a.v_head_dim = 0;
                a.span = if len > 0 {
                    Span::Window(len)
                } else {
                    Span::Full
                };
            }
            (Some(a), None)
        }
        Mixer::Recurrent(kind) => (None, Some(recurrent::build(b, basics, kind, &mut t)?)),
        Mixer::Hybrid(RecKind::Compressor { sparse }, span) => {
            let (a, r) = super::compressed::build(b, basics, p, sparse, span, &mut t)?;
            (Some(a), Some(r))
        }
        Mixer::Hybrid(_, span) if b.fam.hybrid_block.is_some() => {
            let (a, r) = super::inkling::hybrid(b, basics, p, span, &mut t)?;
            (Some(a), Some(r))
        }
        Mixer::Hybrid(kind, span) if b.fam.shared_block.is_some() => {
            let r = recurrent::build(b, basics, kind, &mut t)?;
            (
                Some(super::shared::hybrid(b, basics, p, span, &mut t)?),
                Some(r),
            )
        }
        Mixer::Hybrid(kind, span) => {
            let r = recurrent::build(b, basics, kind, &mut t)?;
            (
                Some(attention(b, basics, p, span, false, None, &mut t)?),
                Some(r),
            )
        }
        Mixer::None => (None, None),
    };
    let gated = b.fam.mlp.as_deref() != Some("plain");
    let mlp_bias = b.toggle(&b.fam.mlp_bias, "mlp_bias")?;
    let mut inactive = 0;
    let ffn = match p.ffn {
        FfnPlan::None => Ffn::None,
        FfnPlan::Dense(w) => {
            mlp_tensors(&mut t, Role::Mlp, h, w, gated, mlp_bias, 1);
            Ffn::Dense {
                width: w,
                gated,
                bias: mlp_bias,
            }
        }
        FfnPlan::Moe => {
            let m = moe_fields(b, basics)?.ok_or_else(|| {
                ArchError::field(&b.text.field("num_experts"), "a MoE layer without experts")
            })?;
            let egated = b.fam.expert_mlp.as_deref() != Some("plain");
            // ZAYA's router is an MLP of its own (layer_extra).
            if b.fam.router_mlp != Some(true) {
                router(&mut t, b, m.experts, h);
            } else if b.fam.router_bias == Some(true) {
                t.push(Tensor::vector(m.experts));
            }
            let ebias = b.fam.expert_bias == Some(true);
            // Experts working in a narrower space than the model's (Muse Spark: pre/post expert
            // projections around them, in `layer_extra`).
            let eh = match &b.fam.expert_hidden_key {
                Some(k) => b.text.u64(&[k.as_str()])?.unwrap_or(h),
                None => h,
            };
            mlp_tensors(&mut t, Role::Expert, eh, m.width, egated, ebias, m.experts);
            if m.shared > 0 {
                // DeepSeek's n shared experts are one MLP n times as wide: the same tensors.
                mlp_tensors(
                    &mut t,
                    Role::Mlp,
                    h,
                    m.shared_width * m.shared,
                    gated,
                    mlp_bias,
                    1,
                );
            }
            if b.fam.shared_expert_gate == Some(true) && m.shared > 0 {
                t.push(Tensor::matrix(Role::Router, 1, h, Split::Replicated));
            }
            inactive = m
                .experts
                .saturating_sub(m.top_k)
                .saturating_mul(mlp_params(eh, m.width, egated, ebias));
            // ERNIE-4.5-VL (modeling_ernie4_5_vl_moe.py Ernie4_5_VLMoeMoeBlock): a second group of
            // experts for image tokens, with its own router, per further `moe_intermediate_size`
            // entry. A text token runs none of them.
            if b.fam.moe_groups == Some(true) {
                if let Some((_, fields::PerLayer::List(widths))) =
                    b.text.per_layer(&["moe_intermediate_size"])?
                {
                    for &w in widths.iter().skip(1) {
                        router(&mut t, b, m.experts, h);
                        mlp_tensors(&mut t, Role::Expert, h, w, egated, ebias, m.experts);
                        inactive = inactive.saturating_add(
                            m.experts.saturating_mul(mlp_params(h, w, egated, ebias)),
                        );
                    }
                }
            }
            let dense = basics.intermediate.get(0);
            Ffn::Moe {
                moe: Moe {
                    num_experts: m.experts,
                    experts_per_token: m.top_k,
                    expert_intermediate_size: m.width,
                    shared_experts: m.shared,
                    shared_expert_intermediate_size: m.shared_width,
                    dense_intermediate_size: dense,
                    expert_bias: ebias,
                },
                gated: egated,
            }
        }
    };
    let cross = if p.cross {
        Some(cross_attention(b, basics, p, &mut t)?)
    } else {
        None
    };
    let norms = b.fam.layer_norms.unwrap_or(2);
    let norm = b.norm_params(basics, h);
    if norms > 0 && norm > 0 {
        t.push(Tensor::vector(norm).times(norms));
    }
    let norm_count = if norm > 0 { norms } else { 0 };
    if let Some(f) = &b.fam.layer_extra {
        let n = b.formula(f, basics, Some(p))?;
        if n > 0 {
            t.push(Tensor::vector(n));
        }
    }
    if p.weights_from.is_some() {
        // The weights are the source layer's, counted there.
        t.clear();
        inactive = 0;
    }
    Ok(Layer {
        attention: attention_desc,
        recurrent: recurrent_desc,
        cross,
        weights_from: p.weights_from.or(p.block_from),
        ffn,
        tensors: t,
        norms: norm_count,
        inactive_params: inactive,
    })
}

/// A router [experts, h], with its per-expert bias when the family has one.
fn router(out: &mut Vec<Tensor>, b: &Builder, experts: u64, h: u64) {
    out.push(Tensor::matrix(Role::Router, experts, h, Split::Replicated));
    if b.fam.router_bias == Some(true) {
        out.push(Tensor::vector(experts));
    }
}

/// A cross-attention block's tensors (q [heads × d, h], k and v [kv × d, kv_input], o, optional
/// per-head q/k norms, the family's extra) and its description: Mllama's
/// MllamaTextCrossAttention (`modeling_mllama.py`), IDEFICS's gated cross-attention
/// (`modeling_idefics.py` IdeficsGatedCrossAttentionLayer).
fn cross_attention(
    b: &Builder,
    basics: &Basics,
    p: &Plan,
    out: &mut Vec<Tensor>,
) -> Result<CrossAttention, ArchError> {
    let h = basics.hidden;
    let (heads, kv, d) = (p.heads, p.kv_heads, p.head_dim);
    let kv_input = match &b.fam.cross_kv_input {
        Some(f) => b.formula(f, basics, Some(p))?,
        None => h,
    };
    let a = Role::Attention;
    out.push(Tensor::matrix(a, heads * d, h, Split::Rows));
    out.push(Tensor::matrix(a, kv * d, kv_input, Split::KvRows { head_dim: d }).times(2));
    out.push(Tensor::matrix(a, h, heads * d, Split::Cols));
    if b.fam.cross_qk_norm == Some(true) {
        out.push(Tensor::vector(2 * d));
    }
    if let Some(f) = &b.fam.cross_extra {
        let n = b.formula(f, basics, Some(p))?;
        if n > 0 {
            out.push(Tensor::vector(n));
        }
    }
    Ok(CrossAttention {
        heads,
        kv_heads: kv,
        head_dim: d,
        kv_input,
        cached: b.fam.cross_cached == Some(true),
    })
}

/// Multi-token-prediction layers (`num_nextn_predict_layers`, `num_mtp_layers`): each a decoder
/// layer like the model's last one, plus its input projection [h, 2h], two input norms and a
/// final norm (DeepSeek-V3's MTP module: enorm, hnorm, eh_proj, shared head norm).
pub(crate) fn mtp(
    b: &Builder,
    basics: &Basics,
    kinds: &[Layer],
    layer_kind: &[u16],
) -> Result<Option<Mtp>, ArchError> {
    let n = b
        .text
        .u64(&[
            "num_nextn_predict_layers",
            "num_mtp_layers",
            "mtp_num_layers",
        ])?
        .unwrap_or(0);
    if n == 0 {
        return Ok(None);
    }
    super::check_limit(&b.text.field("num_nextn_predict_layers"), n, 64)?;
    let Some(&last) = layer_kind.last() else {
        return Ok(None);
    };
    let h = basics.hidden;
    let mut tensors = kinds[last as usize].tensors.clone();
    tensors.push(Tensor::matrix(Role::Small, h, 2 * h, Split::Replicated));
    tensors.push(Tensor::vector(b.norm_params(basics, h)).times(3));
    let tensors: Vec<Tensor> = tensors.into_iter().map(|t| t.times(n)).collect();
    let params = tensors.iter().map(Tensor::elements).sum();
    Ok(Some(Mtp {
        layers: n,
        params,
        tensors,
    }))
}
