//! The result of a simulation, serializable as `{"allocators": [...]}` for `--json`.
//!
//! Units: memory fields are fractions of the allocator's KV pool (0..=1), time-weighted over
//! the whole run (t = 0 to the last completion); times are seconds; throughput is per second
//! of simulated time.

use serde::{Deserialize, Serialize};

/// Results of every allocator that ran, in the order requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// One entry per allocator.
    pub allocators: Vec<AllocatorReport>,
}

/// One allocator's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocatorReport {
    /// CLI name of the allocator (`paged`, `contiguous-max`, ...).
    pub name: String,
    /// Token slots of the pool: the denominator of the memory fractions.
    pub pool_slots: u64,
    /// Share of the pool holding tokens' K and V (shared blocks counted once).
    pub token_states: f64,
    /// Share reserved for tokens that running requests will still generate.
    pub reservation: f64,
    /// Share allocated that no token will ever use (over-reservation; for paged, the unused
    /// tail of each sequence's last block).
    pub internal_fragmentation: f64,
    /// Share free while a waiting request could not be placed for lack of memory (the paper's
    /// "external fragmentation & others": holes too small for the next reservation, the
    /// remainder below one request, the paged watermark).
    pub external_fragmentation: f64,
    /// Share free while nothing waited on memory (idle or limited by another cap).
    pub free: f64,
    /// Share of blocks saved by copy-on-write sharing: 1 - physical / logical blocks,
    /// time-weighted (PagedAttention §6.3). 0 without sharing.
    pub sharing_savings: f64,
    /// Mean requests in a step (averaged over steps).
    pub mean_batch: f64,
    /// Most requests in one step.
    pub max_batch: u64,
    /// Completed requests per second.
    pub throughput_rps: f64,
    /// Generated tokens (all samples and beams) per second.
    pub throughput_tps: f64,
    /// Requests that finished.
    pub completed: u64,
    /// Requests refused at arrival: longer than `max_seq_len`, more sequences than
    /// `max_num_seqs`, or larger than the whole pool. They take no part in any other figure.
    pub rejected: u64,
    /// Of `rejected`: prompt + output longer than `max_seq_len`.
    #[serde(default)]
    pub rejected_too_long: u64,
    /// Of `rejected`: more sequences (samples, beams) than `max_num_seqs`.
    #[serde(default)]
    pub rejected_too_many_sequences: u64,
    /// Of `rejected`: needing more KV than this allocator can ever give one request.
    #[serde(default)]
    pub rejected_larger_than_pool: u64,
    /// Preemptions (swap-outs + recomputations).
    pub preemptions: u64,
    /// Preemptions served by swapping to the CPU pool.
    pub swaps: u64,
    /// Preemptions served by recomputation.
    pub recomputations: u64,
    /// Seconds spent on preemption: host-link transfer time of swaps (out and in) plus the
    /// compute time of re-running prefills.
    pub preemption_seconds: f64,
    /// Simulated seconds from t = 0 to the last completion.
    pub duration_s: f64,
    /// Forward steps executed.
    pub steps: u64,
    /// Time to first token (s), nearest-rank percentiles over completed requests.
    pub ttft_p50: f64,
    pub ttft_p90: f64,
    pub ttft_p99: f64,
    /// Time per output token after the first (s), over requests with >= 2 output tokens.
    pub tpot_p50: f64,
    pub tpot_p90: f64,
    pub tpot_p99: f64,
    /// End-to-end latency, arrival to last token (s).
    pub e2e_p50: f64,
    pub e2e_p90: f64,
    pub e2e_p99: f64,
    /// Memory over time for `--svg` (not serialized).
    #[serde(skip)]
    pub timeline: Vec<TimelinePoint>,
}

impl AllocatorReport {
    /// Token states + reservation + internal + external + free (1 up to rounding).
    pub fn memory_sum(&self) -> f64 {
        self.token_states
            + self.reservation
            + self.internal_fragmentation
            + self.external_fragmentation
            + self.free
    }

    /// Everything that is neither token states nor idle memory.
    pub fn waste(&self) -> f64 {
        self.reservation + self.internal_fragmentation + self.external_fragmentation
    }
}

/// Mean memory breakdown over one time bucket, as fractions of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Bucket start and end in seconds.
    pub start_s: f64,
    pub end_s: f64,
    pub token_states: f64,
    pub reservation: f64,
    pub internal_fragmentation: f64,
    pub external_fragmentation: f64,
}
