//! The bounds of a model description, in one place: every reader and mapping checks a field
//! against these before it allocates anything sized by it (one entry per layer, per expert, per
//! head, per token of the vocabulary), and `ModelDesc::validate` checks the finished description
//! against the same values. A field beyond its bound is refused in one line naming the field and
//! the bound, never turned into an allocation: a 1.4 KB GGUF that says `block_count = 10^12`
//! would otherwise ask for terabytes.
//!
//! Each bound sits well above the largest released model (so no real checkpoint is refused) and
//! well below what would make the estimator's per-layer and per-expert work, or its integer
//! arithmetic, unreasonable.

/// Decoder layers. The deepest released decoders have ~200 (Llama 3.1 405B: 126, DeepSeek-V3:
/// 61, Grok-1: 64); 10,000 leaves ×50 headroom and keeps per-layer work (one inventory entry
/// and one KV buffer per layer) in the milliseconds.
pub const MAX_LAYERS: u64 = 10_000;
/// Hidden size. The widest released models are 16,384 (Llama 3.1 405B) to 18,432 (Grok-1);
/// 2^20 is ×50 beyond them.
pub const MAX_HIDDEN_SIZE: u64 = 1 << 20;
/// Attention heads (query heads) per layer. Released models have at most a few hundred (Llama
/// 3.1 405B: 128; DeepSeek-V3: 128).
pub const MAX_ATTENTION_HEADS: u64 = 1 << 14;
/// Width of one attention head. Released models use 64 to 256 (MLA's q/k head: 192).
pub const MAX_HEAD_DIM: u64 = 1 << 14;
/// MLP width. The widest released dense MLPs are ~53,248 (Llama 3.1 405B); 2^24 is ×300.
pub const MAX_INTERMEDIATE_SIZE: u64 = 1 << 24;
/// Vocabulary. The largest released vocabularies are ~262k (Gemma 3: 262,144); 2^24 is ×64.
pub const MAX_VOCAB_SIZE: u64 = 1 << 24;
/// Context length. Released models reach 10M tokens (Llama 4 Scout); 2^34 is ×1,700 and the
/// largest context the estimate's searches probe (estimate.rs `max_context`).
pub const MAX_CONTEXT: u64 = 1 << 34;
/// Routed experts per MoE layer. Released models have at most 384 (Kimi K2); 4096 is ×10.
pub const MAX_EXPERTS: u64 = 4096;
/// Layers of a vision or audio tower. Released towers have tens (CLIP ViT-L/14: 24, SigLIP
/// so400m: 27); 1,000 keeps the tower's tensor list small.
pub const MAX_TOWER_LAYERS: u64 = 1_000;
/// Entries in a per-layer list of a config (`layer_types`, per-layer head counts): one per
/// layer, so the layer bound.
pub const MAX_PER_LAYER_ENTRIES: u64 = MAX_LAYERS;

// ---- Workload bounds: what an estimate is asked for ----

/// Concurrent sequences. The largest serving deployments run thousands; 2^32 is the search
/// ceiling of `max_concurrency` (estimate.rs).
pub const MAX_BATCH: u64 = 1 << 32;
/// Tokens held in the KV cache at once, over all sequences (context × batch). The largest
/// pools hold ~10^8 tokens (a 1B model's 8 KiB/token over 1 TB of HBM); 2^34 is ×100 beyond
/// that, and keeps every byte figure far below 2^64 for any real model (2^34 tokens × the
/// largest released per-token KV, ~2 MiB, is 2^55 bytes).
pub const MAX_CACHED_TOKENS: u64 = 1 << 34;

/// `field = value` against its bound, as the one-line error every caller prints.
pub fn check(field: &str, value: u64, max: u64) -> Result<(), String> {
    if value > max {
        return Err(format!(
            "{field} = {value} is beyond any real model (limit {max})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_field_and_the_limit() {
        assert!(check("num_layers", MAX_LAYERS, MAX_LAYERS).is_ok());
        assert_eq!(
            check("num_layers", 1_000_000_000_000, MAX_LAYERS).unwrap_err(),
            "num_layers = 1000000000000 is beyond any real model (limit 10000)"
        );
    }
}
