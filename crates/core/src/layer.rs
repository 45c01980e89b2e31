//! One decoder layer, described for memory: its token mixer and what that mixer keeps per
//! sequence (a KV cache per token, a constant recurrent state, or nothing), its feed-forward
//! block, and its weight tensors. The config.json mapping (`crate::arch`) builds these; engine
//! profiles ask them, layer by layer, for K and V bytes per token, windows, KV sharing, state
//! tensors, latent and indexer widths.
//!
//! Cache shapes follow transformers 5.24.0's cache (`cache_utils.py`): an attention layer
//! stores keys [batch, kv_heads, tokens, k_head_dim] and values [batch, kv_heads, tokens,
//! v_head_dim] (`DynamicLayer`), at most `window` tokens when sliding or chunked
//! (`DynamicSlidingWindowLayer`), nothing when it reads another layer's cache (`DummyLayer`);
//! DeepSeek's latent attention stores its compressed latent and the shared rope key
//! (`modeling_deepseek_v3.py`: `cache.update(kv_nope, k_rot)`), with DeepSeek-V3.2's indexer
//! keys [batch, tokens, index_head_dim] beside them (`DynamicIndexedLayer`); recurrent layers
//! keep conv and recurrent states whose shapes do not depend on the context
//! (`LinearAttentionLayer`).

use crate::model::Tensor;
use crate::precision::KvDtype;

/// How far back an attention layer looks, which bounds what it caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Span {
    /// Every previous token.
    Full,
    /// The last `n` tokens (sliding window).
    Window(u64),
    /// Tokens of the current chunk of `n` (Llama 4 chunked local attention); caches at most `n`.
    Chunk(u64),
}

impl Span {
    /// Tokens of a `context`-token sequence this layer keeps.
    pub fn tokens(&self, context: u64) -> u64 {
        match *self {
            Span::Full => context,
            Span::Window(n) | Span::Chunk(n) => context.min(n),
        }
    }

    /// The window or chunk length, if any.
    pub fn limit(&self) -> Option<u64> {
        match *self {
            Span::Full => None,
            Span::Window(n) | Span::Chunk(n) => Some(n),
        }
    }
}

/// DeepSeek multi-head latent attention: keys and values are decompressed from a latent of
/// `kv_lora_rank` plus one shared rope key of `qk_rope_head_dim`, which is what is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Latent {
    pub kv_lora_rank: u64,
    /// 0 = queries projected from the hidden state directly (DeepSeek-V2-Lite).
    pub q_lora_rank: u64,
    pub qk_rope_head_dim: u64,
    pub qk_nope_head_dim: u64,
    pub v_head_dim: u64,
}

/// DeepSeek-V3.2's sparse-attention indexer ("lightning indexer"): it caches one key of
/// `head_dim` per token per layer, apart from the latent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Indexer {
    pub heads: u64,
    pub head_dim: u64,
    pub topk: u64,
}

/// Softmax attention: multi-head, grouped-query, multi-query or latent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attention {
    pub heads: u64,
    /// Key/value heads (= `heads` for MHA, 1 for MQA). For latent attention: `heads`.
    pub kv_heads: u64,
    /// Width of one query/key head (latent attention: nope + rope).
    pub k_head_dim: u64,
    /// Width of one value head; differs from the key's on some models (MLA, Gemma 4 K=V).
    pub v_head_dim: u64,
    pub span: Span,
    /// The decoder layer whose cache this layer reads instead of keeping its own (Gemma 3n's
    /// `num_kv_shared_layers`, Gemma 4's `kv_sharing_modes`).
    pub kv_source: Option<u32>,
    pub latent: Option<Latent>,
    pub indexer: Option<Indexer>,
    /// One learned logit per head added to the softmax (gpt-oss `sinks`).
    pub sinks: bool,
    /// Rotary dimensions per head (0: no rotary embedding, e.g. learned or ALiBi positions).
    pub rotary_dim: u64,
    pub qkv_bias: bool,
    pub o_bias: bool,
    /// Per-head RMSNorm of q and k (Qwen3, Gemma 3, OLMo 2...).
    pub qk_norm: bool,
}

impl Attention {
    /// Whether the layer keeps a cache of its own.
    pub fn caches(&self) -> bool {
        self.kv_source.is_none()
    }

    /// Key elements cached per token for the whole layer (latent attention: the latent).
    pub fn k_width(&self) -> u64 {
        if !self.caches() {
            return 0;
        }
        match &self.latent {
            Some(l) => l.kv_lora_rank,
            None => self.kv_heads.saturating_mul(self.k_head_dim),
        }
    }

    /// Value elements cached per token for the whole layer (latent attention: the rope key,
    /// stored where transformers stores values).
    pub fn v_width(&self) -> u64 {
        if !self.caches() {
            return 0;
        }
        match &self.latent {
            Some(l) => l.qk_rope_head_dim,
            None => self.kv_heads.saturating_mul(self.v_head_dim),
        }
    }

    /// Indexer key elements cached per token (DeepSeek-V3.2).
    pub fn indexer_width(&self) -> u64 {
        match (&self.indexer, self.caches()) {
            (Some(i), true) => i.head_dim,
            _ => 0,
        }
    }

    /// KV heads each of `tp` ranks holds: max(1, K / tp), replicated when there are more ranks
    /// than KV heads (vllm/config.py `get_num_kv_heads`). The latent is shared by every head,
    /// so each rank keeps all of it.
    pub fn kv_heads_per_rank(&self, tp: u64) -> u64 {
        (self.kv_heads / tp.max(1)).max(1)
    }

    /// K row elements per token on one of `tp` ranks.
    pub fn k_width_per_rank(&self, tp: u64) -> u64 {
        match (&self.latent, self.caches()) {
            (_, false) => 0,
            (Some(_), true) => self.k_width(),
            (None, true) => self.kv_heads_per_rank(tp).saturating_mul(self.k_head_dim),
        }
    }

    /// V row elements per token on one of `tp` ranks.
    pub fn v_width_per_rank(&self, tp: u64) -> u64 {
        match (&self.latent, self.caches()) {
            (_, false) => 0,
            (Some(_), true) => self.v_width(),
            (None, true) => self.kv_heads_per_rank(tp).saturating_mul(self.v_head_dim),
        }
    }

    /// Cache bytes per token on one of `tp` ranks in `dtype`: K row + V row (rows are
    /// quantized separately, as every engine stores them) + the indexer key.
    pub fn bytes_per_token(&self, dtype: KvDtype, tp: u64) -> u64 {
        let k = self.k_width_per_rank(tp);
        let v = self.v_width_per_rank(tp);
        let row = |n: u64| if n == 0 { 0 } else { dtype.row_bytes(n) };
        row(k)
            .saturating_add(row(v))
            .saturating_add(row(self.indexer_width()))
    }

    /// The name of this attention's kind, as `layers` in the estimate JSON counts it.
    pub fn kind_name(&self) -> &'static str {
        match (self.caches(), &self.latent, self.span) {
            (false, _, _) => "kv_shared_attention",
            (true, Some(_), _) if self.indexer.is_some() => "latent_attention_indexed",
            (true, Some(_), _) => "latent_attention",
            (true, None, Span::Full) => "full_attention",
            (true, None, Span::Window(_)) => "sliding_attention",
            (true, None, Span::Chunk(_)) => "chunked_attention",
        }
    }
}

/// The dtype a state tensor is kept in by transformers' cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateDtype {
    /// The model's compute dtype (the conv state, most recurrent states).
    Model,
    /// float32 whatever the model dtype (e.g. `mamba_ssm_cache_dtype: float32`).
    F32,
}

impl StateDtype {
    pub fn bytes(&self, model_dtype_bytes: u64) -> u64 {
        match self {
            StateDtype::Model => model_dtype_bytes,
            StateDtype::F32 => 4,
        }
    }
}

/// One tensor of a recurrent layer's per-sequence state (batch dimension excluded).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateTensor {
    /// "conv" or "recurrent" (transformers' `conv_states` / `recurrent_states`), or the
    /// mixer's own name for its parts.
    pub name: &'static str,
    pub shape: Vec<u64>,
    pub dtype: StateDtype,
}

impl StateTensor {
    pub fn elements(&self) -> u64 {
        self.shape.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
}

/// The recurrent mixers whose state per sequence does not grow with the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecurrentKind {
    /// Mamba (selective SSM): Falcon-Mamba, Jamba.
    Mamba,
    /// Mamba-2 (SSD): Granite 4-H, Nemotron-H, Falcon-H1, Bamba, Zamba 2.
    Mamba2,
    /// Gated DeltaNet: Qwen3-Next, Qwen3.5, OLMo hybrid.
    GatedDeltaNet,
    /// Kimi Delta Attention: Kimi-Linear.
    KimiDelta,
    /// Short gated convolution: LFM2.
    ShortConv,
    /// Lightning (linear) attention: MiniMax-01.
    Lightning,
    /// RWKV (v4) time mixing.
    Rwkv,
    /// RG-LRU with a temporal conv: RecurrentGemma.
    Rglru,
    /// xLSTM mLSTM blocks.
    Xlstm,
    /// Another recurrent mixer (named in `Recurrent::name`).
    Other,
}

impl RecurrentKind {
    pub fn name(&self) -> &'static str {
        match self {
            RecurrentKind::Mamba => "mamba",
            RecurrentKind::Mamba2 => "mamba2",
            RecurrentKind::GatedDeltaNet => "gated_deltanet",
            RecurrentKind::KimiDelta => "kimi_delta_attention",
            RecurrentKind::ShortConv => "short_conv",
            RecurrentKind::Lightning => "lightning_attention",
            RecurrentKind::Rwkv => "rwkv",
            RecurrentKind::Rglru => "rg_lru",
            RecurrentKind::Xlstm => "mlstm",
            RecurrentKind::Other => "recurrent",
        }
    }
}

/// A recurrent mixer and its state per sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recurrent {
    pub kind: RecurrentKind,
    pub states: Vec<StateTensor>,
}

impl Recurrent {
    /// State elements per sequence.
    pub fn elements(&self) -> u64 {
        self.states
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.elements()))
    }

    /// State bytes per sequence as transformers allocates it, for a model whose compute dtype
    /// takes `model_dtype_bytes`.
    pub fn bytes(&self, model_dtype_bytes: u64) -> u64 {
        self.states.iter().fold(0u64, |a, s| {
            a.saturating_add(
                s.elements()
                    .saturating_mul(s.dtype.bytes(model_dtype_bytes)),
            )
        })
    }
}

/// A routed mixture of experts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Moe {
    pub num_experts: u64,
    pub experts_per_token: u64,
    /// Width of one routed expert.
    pub expert_intermediate_size: u64,
    /// Always-on shared experts and the width of each.
    pub shared_experts: u64,
    pub shared_expert_intermediate_size: u64,
    /// Width of the dense MLP on the model's non-MoE layers (0 when every layer is MoE).
    pub dense_intermediate_size: u64,
    /// Each routed expert's projections carry biases (gpt-oss): engines that re-lay the
    /// experts out (vLLM's MXFP4 backends) size the biases apart.
    pub expert_bias: bool,
}

/// The feed-forward block of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ffn {
    /// No feed-forward block (Mamba layers of Falcon-Mamba, Nemotron-H's mixer-only layers).
    None,
    /// One MLP: gated (gate, up, down) or plain (up, down), with or without biases.
    Dense { width: u64, gated: bool, bias: bool },
    /// Routed experts, gated or plain.
    Moe { moe: Moe, gated: bool },
}

impl Ffn {
    /// The MoE of this block, if routed.
    pub fn moe(&self) -> Option<&Moe> {
        match self {
            Ffn::Moe { moe, .. } => Some(moe),
            _ => None,
        }
    }
}

/// One kind of decoder layer: its mixers, its feed-forward block and its tensors. A layer may
/// have attention and a recurrent mixer side by side (Falcon-H1, Zamba's hybrid layers).
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub attention: Option<Attention>,
    pub recurrent: Option<Recurrent>,
    pub ffn: Ffn,
    /// Every weight tensor of the layer.
    pub tensors: Vec<Tensor>,
    /// Norms of the layer's input width (input, post-attention, Gemma's extra two...), each of
    /// the model's norm size (`ModelDesc::norm`: a weight, and a bias for LayerNorm); part of
    /// `tensors`. Zero for models without per-layer norms.
    pub norms: u64,
    /// Parameters of routed experts not active for a token.
    pub inactive_params: u64,
}

impl Layer {
    pub fn params(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.elements()))
    }

    /// KV-cache bytes per token on one of `tp` ranks (0 for layers without attention or that
    /// read another layer's cache).
    pub fn kv_bytes_per_token(&self, dtype: KvDtype, tp: u64) -> u64 {
        self.attention
            .as_ref()
            .map_or(0, |a| a.bytes_per_token(dtype, tp))
    }

    /// Recurrent state bytes per sequence on one of `tp` ranks (states split over TP ranks like
    /// the heads they belong to).
    pub fn state_bytes(&self, model_dtype_bytes: u64, tp: u64) -> u64 {
        self.recurrent
            .as_ref()
            .map_or(0, |r| r.bytes(model_dtype_bytes) / tp.max(1))
    }

    /// One letter for the layer pattern (`LayerSummary::pattern`).
    pub fn letter(&self) -> char {
        match (&self.attention, &self.recurrent) {
            (Some(_), Some(_)) => 'H',
            (None, Some(_)) => 'R',
            (None, None) => 'M',
            (Some(a), None) => match (a.caches(), &a.latent, a.span) {
                (false, _, _) => 'X',
                (true, Some(_), _) if a.indexer.is_some() => 'I',
                (true, Some(_), _) => 'L',
                (true, None, Span::Full) => 'F',
                (true, None, Span::Window(_)) => 'S',
                (true, None, Span::Chunk(_)) => 'C',
            },
        }
    }

    /// The name of the layer's kind: its attention kind, its recurrent kind, "hybrid" when it
    /// has both, or the feed-forward kind when it has no mixer.
    pub fn kind_name(&self) -> String {
        match (&self.attention, &self.recurrent) {
            (Some(a), None) => a.kind_name().to_string(),
            (None, Some(r)) => r.kind.name().to_string(),
            (Some(a), Some(r)) => format!("{}+{}", r.kind.name(), a.kind_name()),
            (None, None) => match self.ffn {
                Ffn::Moe { .. } => "moe_only".to_string(),
                Ffn::Dense { .. } => "mlp_only".to_string(),
                Ffn::None => "empty".to_string(),
            },
        }
    }
}
