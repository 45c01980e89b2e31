//! The simulator's input: plain numbers that the CLI fills in from the core estimator
//! (model, GPU, KV dtype), so that this crate does not depend on the core.

pub use crate::allocator::Placement;
use crate::error::SimError;
use serde::{Deserialize, Serialize};

/// vLLM's default paged block size in tokens (PagedAttention paper §7.2, Fig. 18b: 16).
pub const DEFAULT_BLOCK_SIZE: u32 = 16;
/// vLLM's default cap on sequences per step (`max_num_seqs`, vLLM EngineArgs default 256).
pub const DEFAULT_MAX_NUM_SEQS: u32 = 256;
/// vLLM's default CPU swap space per GPU: 4 GiB (`--swap-space 4`, in GiB).
pub const DEFAULT_CPU_SWAP_BYTES: u64 = 4 << 30;
/// vLLM v0 block manager keeps 1% of the GPU blocks free when admitting (`watermark=0.01`)
/// so that running sequences can still grow right after an admission.
pub const DEFAULT_WATERMARK: f64 = 0.01;

/// What the scheduler does to a running request when the paged pool cannot hold the next
/// decode step's tokens (vLLM `PreemptionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preemption {
    /// Copy the request's blocks to the CPU swap pool over the host link and back later.
    /// Falls back to recomputation when the CPU pool is full.
    Swap,
    /// Drop the request's blocks and re-run the prefill over prompt + generated tokens later.
    /// As in vLLM v0, requests with several sequences (parallel samples, beams) are swapped
    /// instead, because recomputation would lose their forked histories; they fall back to
    /// recomputation only when the CPU pool is full.
    Recompute,
}

/// Every number the simulator needs. All byte counts are exact integers; rates are f64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// KV-cache bytes per token for the model and KV dtype, all layers, K and V
    /// (from the core; OPT-13B fp16: 2 × 40 layers × 5120 × 2 B = 819,200 B).
    pub kv_bytes_per_token: u64,
    /// Bytes of GPU memory left for the KV cache after weights, activations and overhead.
    pub kv_pool_bytes: u64,
    /// Bytes read from HBM per forward step for the weights (the roofline's weight term).
    pub weight_bytes: u64,
    /// HBM bandwidth in bytes/s.
    pub hbm_bandwidth: f64,
    /// Dense 16-bit tensor throughput in FLOP/s (the compute roof for prefill).
    pub flops: f64,
    /// Parameters active per token; a forward pass costs 2 × this many FLOPs per token.
    pub params_active: u64,
    /// Host link (PCIe/NVLink-C2C) bandwidth in bytes/s used for swapping.
    pub host_link_bandwidth: f64,
    /// CPU swap pool in bytes (vLLM default 4 GiB, [`DEFAULT_CPU_SWAP_BYTES`]).
    pub cpu_swap_bytes: u64,
    /// The model's maximum sequence length (prompt + output) in tokens; longer requests are
    /// clipped by the synthetic workloads and rejected from traces.
    pub max_seq_len: u32,
    /// Token budget of one scheduler step: prefill tokens admitted per step (decodes ride
    /// along, Orca-style). Must be at least `max_seq_len` (as vLLM requires without chunked
    /// prefill).
    pub max_num_batched_tokens: u32,
    /// Most sequences (not requests: a request with n samples counts n) in one step.
    pub max_num_seqs: u32,
    /// Paged block size in tokens ([`DEFAULT_BLOCK_SIZE`]).
    pub block_size: u32,
    /// Fraction of the paged pool kept free at admission ([`DEFAULT_WATERMARK`]).
    pub watermark: f64,
    /// What to do when the paged pool runs out mid-decode.
    pub preemption: Preemption,
    /// How the contiguous allocators place reservations in their address space.
    pub contiguous_placement: Placement,
    /// Seed of the engine's own randomness (which beam survives a beam-search step).
    pub seed: u64,
}

impl SimConfig {
    /// A configuration with vLLM's scheduler defaults around the hardware/model numbers:
    /// block 16, 256 sequences, token budget max(max_seq_len, 2048) (vLLM v0 default
    /// without chunked prefill), 4 GiB swap, 1% watermark, swap preemption, seed 0.
    #[allow(clippy::too_many_arguments)]
    pub fn with_defaults(
        kv_bytes_per_token: u64,
        kv_pool_bytes: u64,
        weight_bytes: u64,
        hbm_bandwidth: f64,
        flops: f64,
        params_active: u64,
        host_link_bandwidth: f64,
        max_seq_len: u32,
    ) -> SimConfig {
        SimConfig {
            kv_bytes_per_token,
            kv_pool_bytes,
            weight_bytes,
            hbm_bandwidth,
            flops,
            params_active,
            host_link_bandwidth,
            cpu_swap_bytes: DEFAULT_CPU_SWAP_BYTES,
            max_seq_len,
            max_num_batched_tokens: max_seq_len.max(2048),
            max_num_seqs: DEFAULT_MAX_NUM_SEQS,
            block_size: DEFAULT_BLOCK_SIZE,
            watermark: DEFAULT_WATERMARK,
            preemption: Preemption::Swap,
            contiguous_placement: Placement::default(),
            seed: 0,
        }
    }

    /// Bytes of one paged block (`block_size` tokens), saturating on absurd inputs.
    pub fn block_bytes(&self) -> u64 {
        self.kv_bytes_per_token
            .saturating_mul(u64::from(self.block_size))
    }

    /// Token slots of the contiguous address space: whole tokens that fit in the pool.
    pub fn pool_slots(&self) -> u64 {
        self.kv_pool_bytes / self.kv_bytes_per_token.max(1)
    }

    /// Paged blocks that fit in the pool (the remainder below one block is unusable).
    pub fn pool_blocks(&self) -> u64 {
        self.kv_pool_bytes / self.block_bytes().max(1)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |msg: String| Err(SimError::InvalidConfig(msg));
        let positive = |name: &str, v: f64| -> Result<(), SimError> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(SimError::InvalidConfig(format!(
                    "{name} must be a positive finite number, got {v}"
                )))
            }
        };
        if self.kv_bytes_per_token == 0 {
            return bad("kv_bytes_per_token must be > 0".into());
        }
        if self.block_size == 0 || self.block_size > 4096 {
            return bad(format!(
                "block_size must be in 1..=4096 tokens, got {}",
                self.block_size
            ));
        }
        if self.max_seq_len < 2 {
            return bad(format!(
                "max_seq_len must be at least 2 tokens, got {}",
                self.max_seq_len
            ));
        }
        if self.max_num_batched_tokens < self.max_seq_len {
            return bad(format!(
                "max_num_batched_tokens ({}) must be >= max_seq_len ({}) so any prompt fits one step",
                self.max_num_batched_tokens, self.max_seq_len
            ));
        }
        if self.max_num_seqs == 0 {
            return bad("max_num_seqs must be > 0".into());
        }
        positive("hbm_bandwidth", self.hbm_bandwidth)?;
        positive("flops", self.flops)?;
        positive("host_link_bandwidth", self.host_link_bandwidth)?;
        if !(self.watermark.is_finite() && (0.0..0.5).contains(&self.watermark)) {
            return bad(format!(
                "watermark must be in [0, 0.5), got {}",
                self.watermark
            ));
        }
        // Block ids and slot addresses are u32 in the hot loop.
        if self.pool_slots() > u64::from(u32::MAX) {
            return bad(format!(
                "kv_pool_bytes / kv_bytes_per_token = {} token slots exceeds the simulator's 2^32 limit",
                self.pool_slots()
            ));
        }
        if self.pool_blocks() == 0 {
            return bad(format!(
                "kv_pool_bytes ({} B) holds no {}-token block of {} B/token",
                self.kv_pool_bytes, self.block_size, self.kv_bytes_per_token
            ));
        }
        Ok(())
    }
}
