//! `vramplan-sim`: a discrete-event simulator of KV-cache allocation in an LLM serving engine.
//!
//! It replays requests (a built-in ShareGPT-/Alpaca-like workload or a trace) through an
//! iteration-level scheduler with one of five KV allocators, and reports how the KV pool was
//! used over time (token states, reservation, internal and external fragmentation, free, as in
//! the PagedAttention paper's Fig. 2), batch sizes, throughput, latency percentiles and the
//! cost of preemption. The input is a plain [`SimConfig`] of numbers that the CLI fills from
//! the core estimator; this crate prints nothing.
//!
//! ```
//! use vramplan_sim::{simulate, AllocatorKind, LengthDistribution, SimConfig, SyntheticWorkload};
//! // OPT-13B on an A100-40GB (see tests/figure2.rs for where each number comes from).
//! let config = SimConfig::with_defaults(819_200, 12 << 30, 25_700_000_000, 1.555e12, 312e12,
//!                                       12_850_000_000, 25e9, 2048);
//! let requests = SyntheticWorkload { lengths: LengthDistribution::ShareGpt, rate: 2.0,
//!     requests: 200, parallel_samples: 1, beam_width: 1, seed: 7 }.generate(2048).unwrap();
//! let report = simulate(&config, &requests, &[AllocatorKind::Paged], &mut |_, _| {}).unwrap();
//! assert!(report.allocators[0].waste() < 0.05);
//! ```

pub mod allocator;
pub mod config;
pub mod cost;
pub mod error;
pub mod metrics;
pub mod report;
pub mod scheduler;
pub mod svg;
pub mod workload;

pub use allocator::AllocatorKind;
pub use config::{Placement, Preemption, SimConfig};
pub use error::SimError;
pub use report::{AllocatorReport, Report, TimelinePoint};
pub use workload::{
    load_trace, parse_trace, read_trace, LengthDistribution, Request, SharedPrefix,
    SyntheticStream, SyntheticWorkload, TraceFormat,
};

use allocator::{ContiguousAllocator, PagedAllocator, ReservationPolicy};
use scheduler::Progress;

/// Runs every allocator in `allocators` over `requests` and collects their reports.
///
/// `progress(done, total)` is called every few thousand finished requests and once at the
/// end of each allocator's run, with `total = requests × allocators`; the CLI can drive a
/// progress bar from it. Requests must be sorted by arrival time (the workload and trace
/// loaders return them sorted).
pub fn simulate(
    config: &SimConfig,
    requests: &[Request],
    allocators: &[AllocatorKind],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, SimError> {
    run_slice(config, requests, allocators, progress, false, true)
}

/// Like [`simulate`], but checks every allocator invariant after every step (no block owned
/// twice, reference counts equal to block-table references, memory within the pool, every
/// request finished, everything freed at the end). Slow; for tests.
pub fn simulate_audited(
    config: &SimConfig,
    requests: &[Request],
    allocators: &[AllocatorKind],
) -> Result<Report, SimError> {
    run_slice(config, requests, allocators, &mut |_, _| {}, true, true)
}

/// Like [`simulate`] but stepping through every decode step one by one, without the
/// quiet-step fast path; for the test that the fast path changes nothing.
#[doc(hidden)]
pub fn simulate_step_by_step(
    config: &SimConfig,
    requests: &[Request],
    allocators: &[AllocatorKind],
) -> Result<Report, SimError> {
    run_slice(config, requests, allocators, &mut |_, _| {}, false, false)
}

/// One request's own checks (the trace loader's, for requests built through the API or
/// streamed): lengths, arrival time, samples or beams, prefix. `count` bounds prefix ids.
pub(crate) fn check_request(r: &Request, count: u64) -> Result<(), SimError> {
    let bad = |why: &str| Err(SimError::InvalidWorkload(format!("{why}, got {r:?}")));
    if r.prompt_tokens == 0 || r.output_tokens == 0 {
        return bad("every request needs >= 1 prompt and output token");
    }
    if !(r.arrival_s.is_finite() && (0.0..=workload::MAX_ARRIVAL_S).contains(&r.arrival_s)) {
        return bad(&format!(
            "arrival times must be from 0 to {:e} s",
            workload::MAX_ARRIVAL_S
        ));
    }
    if r.parallel_samples > 1 && r.beam_width > 1 {
        return bad("a request uses either parallel samples or beam search, not both");
    }
    if let Some(p) = r.prefix {
        if p.tokens == 0 || p.tokens > r.prompt_tokens {
            return bad("a shared prefix needs 1..=prompt_tokens tokens");
        }
        // Allocators index prefixes by id: dense ids, at most one per request.
        if u64::from(p.id) >= count {
            return bad("shared-prefix ids must be dense (below the number of requests)");
        }
    }
    Ok(())
}

/// Checks what the trace loader checks for requests built through the API, and renumbers
/// shared-prefix ids densely (0, 1, ...) so allocators can index them.
fn checked_requests(requests: &[Request]) -> Result<std::borrow::Cow<'_, [Request]>, SimError> {
    let mut has_prefix = false;
    for r in requests {
        // Prefix ids are renumbered below: check them against no bound here.
        let unprefixed = Request { prefix: None, ..*r };
        check_request(&unprefixed, 0)?;
        if let Some(p) = r.prefix {
            if p.tokens == 0 || p.tokens > r.prompt_tokens {
                return Err(SimError::InvalidWorkload(format!(
                    "a shared prefix needs 1..=prompt_tokens tokens, got {r:?}"
                )));
            }
            has_prefix = true;
        }
    }
    if !has_prefix {
        return Ok(std::borrow::Cow::Borrowed(requests));
    }
    // Dense ids; a prefix id names one token sequence, so one length.
    let mut dense: std::collections::HashMap<u32, (u32, u32)> = Default::default();
    let mut out = requests.to_vec();
    for r in out.iter_mut() {
        if let Some(p) = r.prefix.as_mut() {
            let next = dense.len() as u32;
            let (id, tokens) = *dense.entry(p.id).or_insert((next, p.tokens));
            if tokens != p.tokens {
                return Err(SimError::InvalidWorkload(format!(
                    "shared prefix {} has {} tokens in one request and {tokens} in another",
                    p.id, p.tokens
                )));
            }
            p.id = id;
        }
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Like [`simulate`], for requests from a stream: any iterator that can be cloned to replay it
/// (each allocator's run and the scheduler's waiting queue read it again), such as
/// [`SyntheticWorkload::stream`]. Memory does not grow with the number of requests. The
/// stream must give requests sorted by arrival with dense shared-prefix ids; each is checked as
/// it arrives. `count` is the number of requests (for progress and prefix ids).
pub fn simulate_stream<I: Iterator<Item = Request> + Clone>(
    config: &SimConfig,
    requests: I,
    count: u64,
    allocators: &[AllocatorKind],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, SimError> {
    config.validate()?;
    run_all(config, requests, count, allocators, progress, false, true)
}

/// [`simulate_stream`] over a [`SyntheticWorkload`]'s requests. Not generic, so the scheduler
/// and allocators are compiled here, with this crate's optimization even in a debug build of
/// the binary (Cargo.toml: `profile.dev.package.vramplan-sim`), rather than unoptimized in the
/// caller's crate.
pub fn simulate_synthetic(
    config: &SimConfig,
    workload: &SyntheticWorkload,
    max_seq_len: u32,
    allocators: &[AllocatorKind],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, SimError> {
    let requests = workload.stream(max_seq_len)?;
    simulate_stream(config, requests, workload.requests, allocators, progress)
}

#[allow(clippy::too_many_arguments)]
fn run_slice(
    config: &SimConfig,
    requests: &[Request],
    allocators: &[AllocatorKind],
    hook: &mut dyn FnMut(u64, u64),
    audit: bool,
    fast_path: bool,
) -> Result<Report, SimError> {
    config.validate()?;
    if requests.windows(2).any(|w| w[0].arrival_s > w[1].arrival_s) {
        return Err(SimError::InvalidWorkload(
            "requests must be sorted by arrival time".into(),
        ));
    }
    let requests = checked_requests(requests)?;
    let count = requests.len() as u64;
    run_all(
        config,
        requests.iter().copied(),
        count,
        allocators,
        hook,
        audit,
        fast_path,
    )
}

#[allow(clippy::too_many_arguments)]
fn run_all<I: Iterator<Item = Request> + Clone>(
    config: &SimConfig,
    requests: I,
    count: u64,
    allocators: &[AllocatorKind],
    hook: &mut dyn FnMut(u64, u64),
    audit: bool,
    fast_path: bool,
) -> Result<Report, SimError> {
    let mut progress = Progress {
        hook,
        done: 0,
        total: count.saturating_mul(allocators.len() as u64),
    };
    let slots = config.pool_slots() as u32;
    let mut out = Vec::with_capacity(allocators.len());
    for &kind in allocators {
        let contiguous = |policy| {
            ContiguousAllocator::new(
                policy,
                config.contiguous_placement,
                slots,
                config.max_seq_len,
            )
        };
        let paged = |sharing| {
            PagedAllocator::new(
                config.pool_blocks() as u32,
                config.block_size,
                config.block_bytes(),
                config.watermark,
                config.cpu_swap_bytes,
                sharing,
                config.seed,
            )
        };
        let name = kind.name();
        let report = match kind {
            AllocatorKind::ContiguousMax => scheduler::run(
                name,
                config,
                requests.clone(),
                count,
                contiguous(ReservationPolicy::Max),
                &mut progress,
                audit,
                fast_path,
            ),
            AllocatorKind::ContiguousPow2 => scheduler::run(
                name,
                config,
                requests.clone(),
                count,
                contiguous(ReservationPolicy::Pow2),
                &mut progress,
                audit,
                fast_path,
            ),
            AllocatorKind::ContiguousOracle => scheduler::run(
                name,
                config,
                requests.clone(),
                count,
                contiguous(ReservationPolicy::Oracle),
                &mut progress,
                audit,
                fast_path,
            ),
            AllocatorKind::Paged => scheduler::run(
                name,
                config,
                requests.clone(),
                count,
                paged(false),
                &mut progress,
                audit,
                fast_path,
            ),
            AllocatorKind::PagedSharing => scheduler::run(
                name,
                config,
                requests.clone(),
                count,
                paged(true),
                &mut progress,
                audit,
                fast_path,
            ),
        }?;
        out.push(report);
    }
    Ok(Report { allocators: out })
}
