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

/// `Attention::kv_source` of a layer reading its target model's cache: a speculative-decoding
/// assistant (Gemma 4 unified assistant) that keeps no cache of its own.
pub const TARGET_MODEL_CACHE: u32 = u32::MAX;

/// How far back an attention layer looks, which bounds what it caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Span {
    /// Every previous token.
    Full,
    /// The last `n` tokens (sliding window).
    Window(u64),
    /// Tokens of the current chunk of `n` (Llama 4 chunked local attention); caches at most `n`.
    Chunk(u64),
    /// Every prompt (prefill) token and the last `n` generated ones (Unlimited-OCR's reference
    /// sliding-window attention, UnlimitedOcrDynamicReferenceSlidingWindowLayer): bounded only
    /// by the context, which it equals when the context is all prompt.
    PrefillWindow(u64),
}

impl Span {
    /// Tokens of a `context`-token sequence this layer keeps.
    pub fn tokens(&self, context: u64) -> u64 {
        match *self {
            Span::Full | Span::PrefillWindow(_) => context,
            Span::Window(n) | Span::Chunk(n) => context.min(n),
        }
    }

    /// The window or chunk length, if any (none for a prefill window: the prompt is kept).
    pub fn limit(&self) -> Option<u64> {
        match *self {
            Span::Full | Span::PrefillWindow(_) => None,
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

/// A sparse-attention indexer: DeepSeek-V3.2's "lightning indexer" beside the latent, or
/// MiniMax-M3's block indexer beside K and V. It caches one key of `head_dim` per token per
/// layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Indexer {
    pub heads: u64,
    pub head_dim: u64,
    pub topk: u64,
    /// Elements cached per token: the key (head_dim), or with GLM-5-next's key pooling the key,
    /// its pooling gate scores and a validity channel (2 × head_dim + 1).
    pub cached_width: u64,
}

/// DeepSeek-V4's compressed attention: beside a sliding window of uncompressed K/V, every
/// `rate` tokens are folded into one compressed entry of `width` (and, for its sparse variant,
/// an indexer entry of `indexer_width`), kept for the whole context
/// (`modeling_deepseek_v4.py` DeepseekV4HCACache / DeepseekV4CSACache `compressed_kv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Compression {
    pub rate: u64,
    pub width: u64,
    pub indexer_width: u64,
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
    /// `num_kv_shared_layers`, Gemma 4's `kv_sharing_modes`), or [`TARGET_MODEL_CACHE`].
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
    /// A compressed cache beside the window (DeepSeek-V4), growing at 1 / rate of the context.
    pub compressed: Option<Compression>,
    /// The layer caches its input hidden states rather than K and V (XLNet's Transformer-XL
    /// memory: the last `mem_len` rows of d_model, in `k_width`, no `v_width`).
    pub hidden_memory: bool,
}

impl Attention {
    /// Attention caching `kv_heads` K rows of `k_head_dim` and V rows of `v_head_dim` over
    /// `span`, without latent, indexer, sinks, biases, norms or rotary positions (callers set
    /// what differs).
    pub fn plain(heads: u64, kv_heads: u64, k_head_dim: u64, v_head_dim: u64, span: Span) -> Self {
        Attention {
            heads,
            kv_heads,
            k_head_dim,
            v_head_dim,
            span,
            kv_source: None,
            latent: None,
            indexer: None,
            sinks: false,
            rotary_dim: 0,
            qkv_bias: false,
            o_bias: false,
            qk_norm: false,
            compressed: None,
            hidden_memory: false,
        }
    }

    /// Whether the layer reads another layer's K and V instead of keeping its own.
    pub fn shares_kv(&self) -> bool {
        self.kv_source.is_some()
    }

    /// Whether the layer keeps a cache of its own: its K and V, or, reading another layer's,
    /// its own indexer keys (Mistral Large 4's "reuse_but_indexer" layers).
    pub fn caches(&self) -> bool {
        !self.shares_kv() || self.indexer.is_some()
    }

    /// Key elements cached per token for the whole layer (latent attention: the latent).
    pub fn k_width(&self) -> u64 {
        if self.shares_kv() {
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
        if self.shares_kv() {
            return 0;
        }
        match &self.latent {
            Some(l) => l.qk_rope_head_dim,
            None => self.kv_heads.saturating_mul(self.v_head_dim),
        }
    }

    /// Indexer key elements cached per token (DeepSeek-V3.2, MiniMax-M3): the layer's own, even
    /// when its K and V are another layer's.
    pub fn indexer_width(&self) -> u64 {
        self.indexer.as_ref().map_or(0, |i| i.cached_width)
    }

    /// KV heads each of `tp` ranks holds: max(1, K / tp), replicated when there are more ranks
    /// than KV heads (vllm/config.py `get_num_kv_heads`). The latent is shared by every head,
    /// so each rank keeps all of it.
    pub fn kv_heads_per_rank(&self, tp: u64) -> u64 {
        (self.kv_heads / tp.max(1)).max(1)
    }

    /// K row elements per token on one of `tp` ranks.
    pub fn k_width_per_rank(&self, tp: u64) -> u64 {
        match (&self.latent, self.shares_kv()) {
            (_, true) => 0,
            (Some(_), false) => self.k_width(),
            (None, false) => self.kv_heads_per_rank(tp).saturating_mul(self.k_head_dim),
        }
    }

    /// V row elements per token on one of `tp` ranks.
    pub fn v_width_per_rank(&self, tp: u64) -> u64 {
        match (&self.latent, self.shares_kv()) {
            (_, true) => 0,
            (Some(_), false) => self.v_width(),
            (None, false) => self.kv_heads_per_rank(tp).saturating_mul(self.v_head_dim),
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

    /// Bytes per token of the compressed cache (rounded up: one entry per `rate` tokens).
    pub fn compressed_bytes_per_token(&self, dtype: KvDtype) -> u64 {
        match &self.compressed {
            Some(c) if !self.shares_kv() => dtype
                .row_bytes(c.width.saturating_add(c.indexer_width))
                .div_ceil(c.rate.max(1)),
            _ => 0,
        }
    }

    /// The name of this attention's kind, as `layers` in the estimate JSON counts it.
    pub fn kind_name(&self) -> &'static str {
        if self.hidden_memory {
            return "memory_attention";
        }
        if self.compressed.is_some() {
            return "compressed_attention";
        }
        match (!self.shares_kv(), &self.latent, self.span) {
            (false, _, _) => "kv_shared_attention",
            (true, Some(_), _) if self.indexer.is_some() => "latent_attention_indexed",
            (true, Some(_), _) => "latent_attention",
            (true, None, _) if self.indexer.is_some() => "indexed_attention",
            (true, None, Span::Full) => "full_attention",
            (true, None, Span::Window(_)) => "sliding_attention",
            (true, None, Span::Chunk(_)) => "chunked_attention",
            (true, None, Span::PrefillWindow(_)) => "reference_sliding_attention",
        }
    }
}

/// Attention from a layer's tokens to an encoder's outputs (image features): Mllama's
/// cross-attention layers, IDEFICS's gated cross-attention blocks. Its keys and values are the
/// encoder tokens' projections, so what it may cache grows with the number of images, not with
/// the context: transformers' Mllama caches them per sequence (`cache.update` in
/// MllamaTextCrossAttention), IDEFICS recomputes them every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CrossAttention {
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    /// Width of the encoder states keys and values are projected from.
    pub kv_input: u64,
    /// Whether transformers keeps the encoder tokens' K and V in the cache.
    pub cached: bool,
}

impl CrossAttention {
    /// Cache elements per encoder (image) token when cached: K and V rows.
    pub fn elements_per_encoder_token(&self) -> u64 {
        if self.cached {
            2u64.saturating_mul(self.kv_heads)
                .saturating_mul(self.head_dim)
        } else {
            0
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
    /// ZAYA's compressed convolutional attention: the q/k convolution's last inputs and the
    /// delayed value beside the attention's K/V cache.
    Cca,
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
            RecurrentKind::Cca => "cca",
            RecurrentKind::Other => "recurrent",
        }
    }
}

/// A recurrent mixer and its state per sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recurrent {
    pub kind: RecurrentKind,
    pub states: Vec<StateTensor>,
    /// Mamba-2 `n_groups` (B and C projection groups; 1 for the other mixers): engines that
    /// shard the state over TP ranks replicate groups to follow the heads (vLLM's
    /// `extra_groups_for_head_shards`).
    pub groups: u64,
    /// The SSD kernel's chunk (`mamba_chunk_size` or `chunk_size` in config.json), when given.
    pub chunk_size: Option<u64>,
    /// Bytes of the SSM state's dtype when config.json names it (`mamba_ssm_cache_dtype`,
    /// Nemotron-H; `mamba_ssm_dtype`, Qwen3.5): engines that honour it keep the state so.
    pub config_ssm_dtype_bytes: Option<u64>,
}

impl Recurrent {
    /// A mixer whose config names no group count, SSD chunk or state dtype.
    pub fn new(kind: RecurrentKind, states: Vec<StateTensor>) -> Self {
        Recurrent {
            kind,
            states,
            groups: 1,
            chunk_size: None,
            config_ssm_dtype_bytes: None,
        }
    }

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
    /// Attention to an encoder's outputs, beside or instead of self-attention.
    pub cross: Option<CrossAttention>,
    /// The earlier layer whose weights this layer runs again (all of them, or its shared block:
    /// HRM's cycles over one stack, Zamba's shared transformer block): `tensors` then holds
    /// only what the layer has of its own, so shared weights are counted once.
    pub weights_from: Option<u32>,
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
        if self.cross.is_some() && self.attention.is_none() && self.recurrent.is_none() {
            return 'A';
        }
        match (&self.attention, &self.recurrent) {
            (Some(_), Some(_)) => 'H',
            (None, Some(_)) => 'R',
            (None, None) => 'M',
            (Some(a), None) if a.hidden_memory => 'Y',
            (Some(a), _) if a.compressed.is_some() => 'Z',
            (Some(a), None) => match (!a.shares_kv(), &a.latent, a.span) {
                (false, _, _) => 'X',
                (true, Some(_), _) if a.indexer.is_some() => 'I',
                (true, Some(_), _) => 'L',
                (true, None, _) if a.indexer.is_some() => 'I',
                (true, None, Span::Full) => 'F',
                (true, None, Span::Window(_)) => 'S',
                (true, None, Span::Chunk(_)) => 'C',
                (true, None, Span::PrefillWindow(_)) => 'P',
            },
        }
    }

    /// The name of the layer's kind: its attention kind, its recurrent kind, "hybrid" when it
    /// has both, or the feed-forward kind when it has no mixer.
    pub fn kind_name(&self) -> String {
        let base = self.mixer_name();
        match (
            &self.cross,
            self.attention.is_some() || self.recurrent.is_some(),
        ) {
            (Some(_), true) => format!("{base}+cross_attention"),
            (Some(_), false) => "cross_attention".to_string(),
            (None, _) => base,
        }
    }

    /// The layer's cache kind when it is not K and V rows an attention pool holds, named as
    /// `layers` counts it: cross-attention to encoder tokens, reference sliding windows,
    /// hidden-state memories, compressed caches, or an indexer's key cache beside K and V
    /// (MiniMax-M3's sparse layers) or on a layer reading another layer's K and V (Mistral
    /// Large 4). Latent attention with its indexer (DeepSeek-V3.2) is not among them.
    pub fn cache_beyond_kv_rows(&self) -> Option<&'static str> {
        if self.cross.is_some() {
            return Some("cross_attention");
        }
        let a = self.attention.as_ref()?;
        if matches!(a.span, Span::PrefillWindow(_)) || a.hidden_memory || a.compressed.is_some() {
            // reference_sliding_attention, memory_attention, compressed_attention
            return Some(a.kind_name());
        }
        (a.indexer.is_some() && (a.latent.is_none() || a.shares_kv()))
            .then_some("indexed_attention")
    }

    fn mixer_name(&self) -> String {
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
