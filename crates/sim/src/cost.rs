//! Step time from the roofline: a forward step takes the longer of its compute time and its
//! HBM traffic time.
//!
//! Formulas (JAX scaling book, `inference.md`; PagedAttention paper §3 on decode being
//! memory-bound):
//! - decode: (weight bytes + KV bytes read by the batch) / HBM bandwidth;
//! - prefill: max(2 · params_active · tokens / FLOP/s, memory time).
//!
//! A step that mixes prefills and decodes (iteration-level batching) is one forward pass, so
//! its FLOPs and bytes add up before the max. Attention FLOPs (4·layers·hidden·context per
//! token) are left out: at ≤ 2048 tokens of context they are a few percent of 2·params for a
//! 13B model, and the core estimator's roofline makes the same simplification.

use crate::config::SimConfig;

/// Precomputed per-unit costs of a configuration.
#[derive(Debug, Clone, Copy)]
pub struct StepCost {
    /// Seconds to stream the weights once.
    weight_s: f64,
    /// Seconds of HBM time per KV token read or written.
    kv_token_s: f64,
    /// Seconds of compute per token through the model (2 · params / FLOP/s).
    token_compute_s: f64,
    /// Seconds to move one byte over the host link.
    host_byte_s: f64,
}

/// What a step does, in aggregate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepWork {
    /// Tokens that go through a prefill (prompts, recomputed contexts).
    pub prefill_tokens: u64,
    /// Sequences that decode one token.
    pub decode_seqs: u64,
    /// KV tokens the decoding sequences read (sum of their context lengths).
    pub kv_tokens_read: u64,
}

impl StepCost {
    /// Derives per-unit costs from the configuration's roofline numbers.
    pub fn new(config: &SimConfig) -> StepCost {
        StepCost {
            weight_s: config.weight_bytes as f64 / config.hbm_bandwidth,
            kv_token_s: config.kv_bytes_per_token as f64 / config.hbm_bandwidth,
            token_compute_s: 2.0 * config.params_active as f64 / config.flops,
            host_byte_s: 1.0 / config.host_link_bandwidth,
        }
    }

    /// Seconds of one forward step; zero when the step does nothing.
    #[inline]
    pub fn step_seconds(&self, work: StepWork) -> f64 {
        let tokens = work.prefill_tokens + work.decode_seqs;
        if tokens == 0 {
            return 0.0;
        }
        // Counts are far below 2^63; i64 → f64 converts in one instruction.
        let compute = tokens as i64 as f64 * self.token_compute_s;
        // Every new token's K and V are written once; decoders also read their context.
        let kv_traffic = (work.kv_tokens_read + tokens) as i64 as f64 * self.kv_token_s;
        compute.max(self.weight_s + kv_traffic)
    }

    /// Seconds of a decode-only step of `decode_seqs` sequences whose contexts total
    /// `kv_tokens_after` tokens including the token each writes (= `step_seconds` of the same
    /// step, written for the scheduler's tight loop).
    #[inline]
    pub fn decode_seconds(&self, decode_seqs: u64, kv_tokens_after: u64) -> f64 {
        let compute = decode_seqs as i64 as f64 * self.token_compute_s;
        compute.max(self.weight_s + kv_tokens_after as i64 as f64 * self.kv_token_s)
    }

    /// Compute seconds of re-running a prefill over `tokens` (the marginal cost charged to a
    /// recomputation preemption).
    pub fn recompute_seconds(&self, tokens: u64) -> f64 {
        tokens as f64 * self.token_compute_s
    }

    /// Seconds to move `bytes` over the host link (one direction of a swap).
    pub fn transfer_seconds(&self, bytes: u64) -> f64 {
        bytes as f64 * self.host_byte_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt13b() -> SimConfig {
        // OPT-13B on A100-40GB: see tests/figure2.rs for the derivation of each number.
        SimConfig::with_defaults(
            819_200,
            12 << 30,
            25_700_000_000,
            1.555e12,
            312e12,
            12_850_000_000,
            25e9,
            2048,
        )
    }

    #[test]
    fn decode_step_is_memory_bound() {
        let c = StepCost::new(&opt13b());
        // 30 sequences with 500 tokens of context each:
        // bytes = 25.7e9 + (15,000 read + 30 written) × 819,200 = 25.7e9 + 12.3126e9 = 38.0126e9
        // time = 38.0126e9 / 1.555e12 = 24.4454 ms; compute = 30 × 2 × 12.85e9 / 312e12 = 2.47 ms.
        let t = c.step_seconds(StepWork {
            prefill_tokens: 0,
            decode_seqs: 30,
            kv_tokens_read: 15_000,
        });
        assert!((t - 0.024_445_4).abs() < 1e-6, "{t}");
    }

    #[test]
    fn long_prefill_is_compute_bound() {
        let c = StepCost::new(&opt13b());
        // 2048 prompt tokens: compute = 2048 × 25.7e9 / 312e12 = 168.69 ms;
        // memory = (25.7e9 + 2048 × 819,200) / 1.555e12 = 17.61 ms.
        let t = c.step_seconds(StepWork {
            prefill_tokens: 2048,
            decode_seqs: 0,
            kv_tokens_read: 0,
        });
        assert!((t - 2048.0 * 2.0 * 12.85e9 / 312e12).abs() < 1e-9, "{t}");
        assert_eq!(c.step_seconds(StepWork::default()), 0.0);
    }

    #[test]
    fn swap_transfer_time() {
        let c = StepCost::new(&opt13b());
        // One 16-token block = 13,107,200 B over 25 GB/s = 0.524288 ms.
        assert!((c.transfer_seconds(13_107_200) - 0.000_524_288).abs() < 1e-12);
    }
}
