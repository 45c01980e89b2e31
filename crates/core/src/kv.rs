//! KV cache: bytes per token and per sequence, layer by layer.
//! Per token per layer: 2 (K and V) × KV heads × head_dim × dtype bytes (GQA/MQA use their own KV
//! head count, not the query heads); MLA caches kv_lora_rank + qk_rope_head_dim once (DeepSeek-V2
//! §2.1.3, vLLM MLAAttentionSpec); sliding-window layers hold at most the window; Mamba layers a
//! constant state per sequence (fp32, as llama.cpp's recurrent memory stores it).

use crate::model::{LayerCache, ModelDesc};
use crate::precision::KvDtype;

/// Per-layer cache facts of one pipeline stage on one tensor-parallel rank.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvLayout {
    /// Bytes per token of one attention layer on this rank (K row + V row, or the MLA latent).
    pub bytes_per_token_layer: u64,
    /// Attention layers caching every token.
    pub full_layers: u64,
    /// (window, layers) for local-attention layers.
    pub windowed: Vec<(u64, u64)>,
    /// Mamba layers and their state bytes per sequence each.
    pub state_layers: u64,
    pub state_bytes_layer: u64,
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
        let bytes_per_token_layer = match &model.mla {
            // The latent is shared by all heads, so every TP rank keeps the whole of it.
            Some(m) => dtype.row_bytes(m.kv_lora_rank + m.qk_rope_head_dim),
            None => {
                let row = kv_heads_per_rank(model.num_kv_heads, tp) * model.head_dim;
                dtype.row_bytes(row).saturating_mul(2)
            }
        };
        let mut layout = KvLayout {
            bytes_per_token_layer,
            ..KvLayout::default()
        };
        // Mamba state is not quantized by the KV dtype: fp32 in llama.cpp; split over TP like d_inner.
        layout.state_bytes_layer = model.ssm_state_elements_layer().saturating_mul(4) / tp.max(1);
        for i in layers {
            match model.layer_cache(i) {
                LayerCache::Full => layout.full_layers += 1,
                LayerCache::Window(w) => {
                    match layout.windowed.iter_mut().find(|(win, _)| *win == w) {
                        Some((_, n)) => *n += 1,
                        None => layout.windowed.push((w, 1)),
                    }
                }
                LayerCache::State => layout.state_layers += 1,
            }
        }
        layout
    }

    /// Bytes per token when the context is within every window: the usual "KV per token".
    pub fn bytes_per_token(&self) -> u64 {
        let attn = self.full_layers + self.windowed.iter().map(|(_, n)| n).sum::<u64>();
        attn.saturating_mul(self.bytes_per_token_layer)
    }

    /// Bytes one sequence of `context` tokens holds.
    pub fn bytes_per_sequence(&self, context: u64) -> u64 {
        let mut tokens_layers = self.full_layers.saturating_mul(context);
        for &(w, n) in &self.windowed {
            tokens_layers = tokens_layers.saturating_add(n.saturating_mul(context.min(w)));
        }
        tokens_layers
            .saturating_mul(self.bytes_per_token_layer)
            .saturating_add(self.state_layers.saturating_mul(self.state_bytes_layer))
    }

    /// Whether the cache grows with context at all (a pure-Mamba model does not).
    pub fn grows_with_context(&self) -> bool {
        self.full_layers > 0
    }
}

/// KV bytes per token for the whole model on one GPU (no parallelism).
pub fn kv_bytes_per_token(model: &ModelDesc, dtype: KvDtype) -> u64 {
    KvLayout::new(model, dtype, 1, 0..model.num_layers).bytes_per_token()
}

/// The seed articles' formula: 2 × 2 bytes × layers × hidden size per token. It takes the full
/// hidden size, so it ignores grouped-query, multi-query and latent attention.
pub fn naive_kv_bytes_per_token(model: &ModelDesc) -> u64 {
    2 * 2 * model.num_layers * model.hidden_size
}
