//! KV cache: bytes per token and per sequence, layer by layer, from each layer's description
//! (`crate::layer`). Per token per attention layer: the K row + the V row (K and V widths may
//! differ: MLA caches its latent and rope key, Gemma 4 K = V layers one) + the indexer key
//! (DeepSeek-V3.2), each row in the KV dtype's layout; GQA/MQA use their own KV head count, not
//! the query heads. Sliding-window and chunked layers hold at most their window; layers that read
//! another layer's cache hold nothing; recurrent layers hold a constant state per sequence (its
//! tensors in the dtype transformers 5.24.0's cache allocates them in: `cache_utils.py`).

pub use crate::layer::Span;
use crate::model::ModelDesc;
use crate::precision::KvDtype;

/// Per-layer cache facts of one pipeline stage on one tensor-parallel rank.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvLayout {
    /// Attention layers caching every token, and their bytes per token summed.
    pub full_layers: u64,
    pub full_bytes_per_token: u64,
    /// (window or chunk in tokens, layers, bytes per token summed over those layers).
    pub windowed: Vec<(u64, u64, u64)>,
    /// Layers with a recurrent state, and their state bytes per sequence summed.
    pub state_layers: u64,
    pub state_bytes: u64,
}

/// KV heads each tensor-parallel rank holds: vLLM `get_num_kv_heads` = max(1, K / tp), so heads
/// are replicated when there are more ranks than KV heads (vllm/config.py).
pub fn kv_heads_per_rank(kv_heads: u64, tp: u64) -> u64 {
    (kv_heads / tp.max(1)).max(1)
}

impl KvLayout {
    /// Layout of layers `layers` (a pipeline stage) on one of `tp` ranks.
    pub fn new(
        model: &ModelDesc,
        dtype: KvDtype,
        tp: u64,
        layers: std::ops::Range<u64>,
    ) -> KvLayout {
        let inv = model.inventory();
        let model_bytes = model.dtype_bytes();
        // Per kind: bytes per token and state bytes, computed once.
        let per_kind: Vec<(u64, u64)> = inv
            .kinds
            .iter()
            .map(|k| {
                (
                    k.kv_bytes_per_token(dtype, tp),
                    k.state_bytes(model_bytes, tp),
                )
            })
            .collect();
        let mut layout = KvLayout::default();
        for i in layers {
            let Some(&k) = inv.layer_kind.get(i as usize) else {
                break;
            };
            let kind = &inv.kinds[k as usize];
            let (per_token, state) = per_kind[k as usize];
            if kind.recurrent.is_some() {
                layout.state_layers += 1;
                layout.state_bytes = layout.state_bytes.saturating_add(state);
            }
            let Some(a) = kind.attention.as_ref().filter(|a| a.caches()) else {
                continue;
            };
            // DeepSeek-V4's compressed cache grows with the whole context beside its window.
            let compressed = a.compressed_bytes_per_token(dtype);
            if compressed > 0 {
                layout.full_layers += 1;
                layout.full_bytes_per_token =
                    layout.full_bytes_per_token.saturating_add(compressed);
            }
            match a.span.limit() {
                None => {
                    layout.full_layers += 1;
                    layout.full_bytes_per_token =
                        layout.full_bytes_per_token.saturating_add(per_token);
                }
                Some(w) => match layout.windowed.iter_mut().find(|(win, _, _)| *win == w) {
                    Some((_, n, b)) => {
                        *n += 1;
                        *b = b.saturating_add(per_token);
                    }
                    None => layout.windowed.push((w, 1, per_token)),
                },
            }
        }
        layout
    }

    /// Bytes per token when the context is within every window: the usual "KV per token".
    pub fn bytes_per_token(&self) -> u64 {
        self.windowed
            .iter()
            .fold(self.full_bytes_per_token, |a, (_, _, b)| {
                a.saturating_add(*b)
            })
    }

    /// Bytes one sequence of `context` tokens holds.
    pub fn bytes_per_sequence(&self, context: u64) -> u64 {
        let mut bytes = self.full_bytes_per_token.saturating_mul(context);
        for &(w, _, b) in &self.windowed {
            bytes = bytes.saturating_add(b.saturating_mul(context.min(w)));
        }
        bytes.saturating_add(self.state_bytes)
    }

    /// Whether the cache grows with context without bound (a model of recurrent and windowed
    /// layers only does not).
    pub fn grows_with_context(&self) -> bool {
        self.full_layers > 0
    }
}

/// KV bytes per token for the whole model on one GPU (no parallelism).
pub fn kv_bytes_per_token(model: &ModelDesc, dtype: KvDtype) -> u64 {
    KvLayout::new(model, dtype, 1, 0..model.num_layers).bytes_per_token()
}

/// Recurrent state bytes per sequence for the whole model on one GPU, as transformers
/// allocates it.
pub fn state_bytes_per_sequence(model: &ModelDesc) -> u64 {
    KvLayout::new(model, KvDtype::F16, 1, 0..model.num_layers).state_bytes
}

/// What full attention on every layer would cache per token: 2 × layers × (query heads ×
/// head_dim of each attention layer, or hidden for layers without attention) × dtype bytes. An
/// upper bound no model's cache exceeds (checked across the oracle set).
pub fn full_attention_bound_per_token(model: &ModelDesc, dtype: KvDtype) -> u64 {
    model
        .layers()
        .map(|l| {
            let width = match &l.attention {
                Some(a) => a
                    .heads
                    .saturating_mul(a.k_head_dim.max(a.v_head_dim))
                    .max(a.k_width() + a.v_width())
                    .max(model.hidden_size),
                None => model.hidden_size,
            };
            dtype
                .row_bytes(width)
                .saturating_mul(2)
                .saturating_add(l.attention.as_ref().map_or(0, |a| {
                    if a.indexer_width() == 0 {
                        0
                    } else {
                        dtype.row_bytes(a.indexer_width())
                    }
                }))
        })
        .fold(0u64, u64::saturating_add)
}

/// The seed articles' formula: 2 × 2 bytes × layers × hidden size per token. It takes the full
/// hidden size, so it ignores grouped-query, multi-query and latent attention.
pub fn naive_kv_bytes_per_token(model: &ModelDesc) -> u64 {
    2 * 2 * model.num_layers * model.hidden_size
}
