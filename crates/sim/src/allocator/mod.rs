//! KV-cache allocators: contiguous reservation over a first-fit address space (Orca's three
//! policies) and paged block tables with optional copy-on-write sharing (vLLM).
//!
//! The scheduler drives every allocator through [`KvAllocator`]. All sequences of a request
//! have the same length at any time (samples and beams advance together), and every running
//! sequence writes one token per step; allocators keep aggregate counters so that a step
//! costs O(1) plus O(1) per block actually allocated, never O(tokens).

pub mod contiguous;
pub mod paged;

use crate::error::SimError;
use crate::workload::SharedPrefix;
use serde::{Deserialize, Serialize};
use std::fmt;

pub use contiguous::{ContiguousAllocator, Placement, ReservationPolicy};
pub use paged::PagedAllocator;

/// Allocators by their public CLI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AllocatorKind {
    /// `contiguous-max`: reserve `max_seq_len` per sequence at admission (Orca (Max)).
    ContiguousMax,
    /// `contiguous-pow2`: reserve the next power of two of the final length (Orca (Pow2)).
    ContiguousPow2,
    /// `contiguous-oracle`: reserve exactly the final length (Orca (Oracle)).
    ContiguousOracle,
    /// `paged`: vLLM block tables, every sequence owns its blocks.
    Paged,
    /// `paged-sharing`: block tables with reference-counted copy-on-write blocks shared by
    /// parallel samples, beams and common prefixes.
    PagedSharing,
}

impl AllocatorKind {
    /// Every allocator, in the order `all` runs them.
    pub const ALL: [AllocatorKind; 5] = [
        AllocatorKind::ContiguousMax,
        AllocatorKind::ContiguousPow2,
        AllocatorKind::ContiguousOracle,
        AllocatorKind::Paged,
        AllocatorKind::PagedSharing,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            AllocatorKind::ContiguousMax => "contiguous-max",
            AllocatorKind::ContiguousPow2 => "contiguous-pow2",
            AllocatorKind::ContiguousOracle => "contiguous-oracle",
            AllocatorKind::Paged => "paged",
            AllocatorKind::PagedSharing => "paged-sharing",
        }
    }

    /// Parses one name or `all`.
    pub fn parse_selection(name: &str) -> Result<Vec<AllocatorKind>, SimError> {
        let lower = name.trim().to_ascii_lowercase();
        if lower == "all" {
            return Ok(AllocatorKind::ALL.to_vec());
        }
        AllocatorKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == lower)
            .map(|k| vec![k])
            .ok_or_else(|| SimError::UnknownAllocator(name.to_string()))
    }
}

impl fmt::Display for AllocatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Index of a request's allocation inside an allocator (valid from admission to release,
/// including while swapped out).
pub type Handle = u32;

/// What a request needs when it enters (or re-enters, after recomputation) the batch.
#[derive(Debug, Clone, Copy)]
pub struct AdmitSpec {
    /// Sequences (samples or beams).
    pub num_seqs: u32,
    /// Beam search: sequences fork from each other every step.
    pub beam: bool,
    /// Prompt tokens.
    pub prompt: u32,
    /// Tokens each sequence holds after this step: prompt + generated so far + 1.
    pub kv_after: u32,
    /// Prompt + output: what each sequence holds at the end.
    pub final_len: u32,
    /// Shared prefix, if the request has one.
    pub prefix: Option<SharedPrefix>,
}

/// Result of a successful admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Handle for later calls.
    pub handle: Handle,
    /// Prompt tokens whose KV was already resident (shared prefix hit): no prefill needed.
    pub cached_prompt_tokens: u32,
}

/// Memory of the pool at one instant, in token slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// Slots holding a token's K and V (counted once however many sequences share them).
    pub token_slots: u64,
    /// Slots reserved for tokens a running request will still generate.
    pub reserved_slots: u64,
    /// Slots allocated that no token will ever use (over-reservation, partial last blocks).
    pub internal_slots: u64,
    /// Slots the address-space allocator holds beyond what requests reserved (the rest of a
    /// buddy block); reported as external fragmentation ("& others" in the paper).
    pub slack_slots: u64,
    /// Blocks the sequences' block tables reference (what the pool would hold without
    /// sharing); 0 for contiguous allocators.
    pub logical_blocks: u64,
    /// Physical blocks in use; 0 for contiguous allocators.
    pub physical_blocks: u64,
}

/// How memory evolves over decode-only steps in which no request joins or leaves and no beam
/// forks: linear in the tokens written and the blocks taken, so the scheduler can run many
/// such steps with a few register updates each and commit them at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietModel {
    /// Occupancy before the first step, as [token, reserved, internal, slack, logical,
    /// physical].
    pub start: [i64; 6],
    /// Change per token written.
    pub per_token: [i64; 6],
    /// Change per block taken.
    pub per_block: [i64; 6],
}

impl Occupancy {
    /// The fields as [token, reserved, internal, slack, logical, physical].
    pub fn as_array(&self) -> [i64; 6] {
        [
            self.token_slots as i64,
            self.reserved_slots as i64,
            self.internal_slots as i64,
            self.slack_slots as i64,
            self.logical_blocks as i64,
            self.physical_blocks as i64,
        ]
    }
}

/// The interface the scheduler drives. Units of `decode_demand`/`free_units` are the
/// allocator's own (blocks for paged, slots for contiguous).
pub trait KvAllocator {
    /// Token slots of the pool (the denominator of every memory fraction).
    fn capacity_slots(&self) -> u64;
    /// Whether a request could run if it were alone; requests that could not are rejected at
    /// arrival so that the scheduler never stalls.
    fn can_ever_fit(&self, spec: &AdmitSpec) -> bool;
    /// Starts step `step`: beam-search forks happen here, and the growth of running sequences
    /// that the step needs is computed.
    fn begin_step(&mut self, step: u64);
    /// Units that [`KvAllocator::grow`] will take for the running sequences this step.
    fn decode_demand(&self) -> u64;
    /// Free units now.
    fn free_units(&self) -> u64;
    /// True when, until a request is released, swapped out or admitted, free memory can only
    /// shrink (lets the scheduler skip admission attempts that must fail again).
    fn free_memory_only_shrinks(&self) -> bool;
    /// Gives every running sequence room for the token this step writes (and counts it).
    /// Precondition: `decode_demand() <= free_units()`.
    fn grow(&mut self);
    /// Admits a request for a prefill in this step, or `None` if memory does not allow it now.
    fn try_admit(&mut self, spec: &AdmitSpec) -> Option<Admitted>;
    /// Frees everything a running request holds (completion or recomputation preemption).
    fn release(&mut self, handle: Handle);
    /// Moves a running request's blocks to the CPU pool; returns the bytes copied, or `None`
    /// (and changes nothing) when the CPU pool cannot take them.
    fn swap_out(&mut self, handle: Handle) -> Option<u64>;
    /// Brings a swapped request back for a decode in this step; returns the bytes copied, or
    /// `None` when GPU memory does not allow it now.
    fn try_swap_in(&mut self, handle: Handle) -> Option<u64>;
    /// Ends the current step.
    fn end_step(&mut self);
    /// Blocks the running sequences take at each step of a quiet run, as a cycle read
    /// backwards from the returned index (entry `idx`, then `idx - 1`, ... wrapping); an empty
    /// slice when growth never takes memory.
    fn demand_cycle(&self) -> (&[u64], usize);
    /// The linear model of quiet steps from the current state (see [`QuietModel`]).
    fn quiet_model(&self) -> QuietModel;
    /// Commits `steps` quiet steps (as `begin_step`/`grow`/`end_step` would) that took
    /// `blocks` units in total. Only valid when `free_memory_only_shrinks()` and the blocks
    /// fit.
    fn advance_quiet(&mut self, steps: u64, blocks: u64);
    /// Memory breakdown now.
    fn occupancy(&self) -> Occupancy;
    /// Sequences currently running.
    fn running_seqs(&self) -> u64;
    /// Sum of the running sequences' lengths in tokens (what decode attention reads).
    fn logical_tokens(&self) -> u64;
    /// Checks internal invariants (no block owned twice, reference counts match the block
    /// tables, nothing beyond the pool); used by tests.
    fn audit(&mut self) -> Result<(), String>;
}

/// `(bs - k % bs) % bs`: empty slots in the last block of a `k`-token sequence.
#[inline]
pub(crate) fn tail_empty(tokens: u64, block_size: u64) -> u64 {
    (block_size - tokens % block_size) % block_size
}
