//! Iteration-level (continuous) batching as vLLM's scheduler does it, driven step by step.
//!
//! Each step:
//! 1. arrivals up to now join the FCFS waiting queue (requests that could never run are
//!    rejected: longer than `max_seq_len`, more sequences than `max_num_seqs`, or needing
//!    more than the whole pool even alone);
//! 2. every running sequence needs room for the token it writes this step; while the pool is
//!    short, the latest-arrived running request is preempted (vLLM's FCFS victim choice):
//!    swapped to the CPU pool, or dropped for recomputation;
//! 3. if nothing was preempted, swapped requests come back first (FCFS), then, once none is
//!    left swapped, waiting requests are admitted in order until one does not fit: the token
//!    budget (`max_num_batched_tokens` prefill tokens per step, as vLLM v0 without chunked
//!    prefill), the sequence cap (`max_num_seqs`) or memory stops admission (head-of-line
//!    blocking);
//! 4. one forward pass runs the admitted prefills and every decode together (Orca-style
//!    mixed step); its time is the roofline of [`crate::cost`] plus swap transfers;
//! 5. requests whose last token was produced are freed.
//!
//! A prefill produces the request's first token, and a generated token occupies a KV slot
//! from the step that produces it, so a finished sequence holds prompt + output tokens.
//! Nothing here is per token: a step is O(1) plus the requests that change state. When
//! admission cannot change before the next completion (memory only shrinks, the head of the
//! queue is blocked or the queue is empty with no arrival due), decode-only steps run in a
//! tight loop that keeps the memory integrals as a linear model ([`crate::allocator::QuietModel`])
//! and commits them at once; `simulate_step_by_step` exists to test that this changes nothing.
//!
//! Memory does not grow with the number of requests: they arrive from a replayable stream
//! (an iterator the scheduler clones), only requests in flight are stored ([`InFlight`]), and
//! the FCFS queue of requests that arrived but never ran is a second cursor over the same stream
//! (a count, not a list): its head is re-read from the stream when it is admitted.

use crate::allocator::{AdmitSpec, KvAllocator};
use crate::config::{Preemption, SimConfig};
use crate::cost::{StepCost, StepWork};
use crate::error::SimError;
use crate::metrics::{Collector, Segment};
use crate::report::AllocatorReport;
use crate::workload::Request;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// How often (in finished requests) the progress hook is called.
const PROGRESS_EVERY: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    Running,
    Swapped,
}

/// Why admission stopped in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Nothing left to admit.
    QueuesEmpty,
    /// Stopped by memory or the sequence cap: stays so until a request leaves or arrives
    /// into an empty queue.
    Persistent,
    /// Stopped by the prefill token budget: the next step has a fresh one.
    Transient,
}

/// Scheduler-side state of one request.
#[derive(Debug, Clone, Copy)]
struct RequestState {
    status: Status,
    handle: u32,
    /// Position in `running`.
    pos: u32,
    /// Bumped on preemption so stale completion events are ignored.
    epoch: u32,
    /// While running: tokens generated per sequence = `generated_base + steps_done`.
    generated_base: i64,
    /// While not running: tokens generated per sequence so far.
    generated: u32,
    first_token_s: f64,
}

impl RequestState {
    fn waiting() -> RequestState {
        RequestState {
            status: Status::Waiting,
            handle: 0,
            pos: 0,
            epoch: 0,
            generated_base: 0,
            generated: 0,
            first_token_s: f64::NAN,
        }
    }
}

type IdMap<V> = std::collections::HashMap<u32, V, foldhash::fast::FixedState>;

/// The requests the scheduler holds: those in flight (admitted once and not finished) with
/// their state, and the FCFS waiting queue — preempted requests in front (`front`), then the
/// requests that arrived and never ran, in arrival order, held as a count and re-read from a
/// second cursor over the stream (`lag`) when one reaches the head.
struct InFlight<I: Iterator> {
    /// The next arrival, and its id.
    arrivals: std::iter::Peekable<I>,
    next_arrival: u32,
    /// Second cursor: the next fresh request to reach the head of the queue, and its id.
    lag: I,
    lag_next: u32,
    /// Fresh requests that arrived, were accepted, and are not yet in `front` or `live`.
    fresh_waiting: u64,
    /// Waiting requests with state: preempted ones, and at most one fresh head.
    front: VecDeque<u32>,
    live: IdMap<(Request, RequestState)>,
}

impl<I: Iterator<Item = Request> + Clone> InFlight<I> {
    fn new(requests: I) -> Self {
        InFlight {
            arrivals: requests.clone().peekable(),
            next_arrival: 0,
            lag: requests,
            lag_next: 0,
            fresh_waiting: 0,
            front: VecDeque::new(),
            live: IdMap::default(),
        }
    }

    fn next_arrival_s(&mut self) -> f64 {
        self.arrivals.peek().map_or(f64::INFINITY, |r| r.arrival_s)
    }

    fn all_arrived(&mut self) -> bool {
        self.arrivals.peek().is_none()
    }

    fn waiting_is_empty(&self) -> bool {
        self.front.is_empty() && self.fresh_waiting == 0
    }

    fn waiting_len(&self) -> u64 {
        self.front.len() as u64 + self.fresh_waiting
    }

    /// The head of the waiting queue (a fresh head is read from the stream again and given
    /// state). `accepted` must be the predicate arrivals were accepted with.
    fn waiting_front(&mut self, accepted: impl Fn(&Request) -> bool) -> Option<u32> {
        if self.front.is_empty() && self.fresh_waiting > 0 {
            // Requests before the leading cursor: the ones it rejected are skipped again.
            for r in self.lag.by_ref() {
                let id = self.lag_next;
                self.lag_next += 1;
                if accepted(&r) {
                    self.live.insert(id, (r, RequestState::waiting()));
                    self.front.push_back(id);
                    self.fresh_waiting -= 1;
                    break;
                }
            }
        }
        self.front.front().copied()
    }

    fn pop_waiting(&mut self) {
        self.front.pop_front();
    }

    fn push_waiting_front(&mut self, id: u32) {
        self.front.push_front(id);
    }

    fn req(&self, id: u32) -> Request {
        self.live[&id].0
    }

    fn st(&mut self, id: u32) -> &mut RequestState {
        &mut self.live.get_mut(&id).expect("request in flight").1
    }
}

/// Why a request is refused at arrival (each counted in the report).
#[derive(Clone, Copy)]
enum Rejection {
    /// Prompt + output longer than `max_seq_len`.
    TooLong,
    /// More sequences (samples, beams) than `max_num_seqs`.
    TooManySequences,
    /// More KV than the allocator can ever give one request.
    LargerThanPool,
}

/// Progress reporting shared by the runs of several allocators.
pub(crate) struct Progress<'p> {
    pub hook: &'p mut dyn FnMut(u64, u64),
    pub done: u64,
    pub total: u64,
}

/// Runs one allocator over the requests. `audit_every_step` checks the allocator's
/// invariants and the pool bound after every step (tests); `fast_path` enables the quiet-step
/// loop (off only to test that it changes nothing).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<A: KvAllocator, I: Iterator<Item = Request> + Clone>(
    name: &str,
    config: &SimConfig,
    requests: I,
    expected_requests: u64,
    mut alloc: A,
    progress: &mut Progress<'_>,
    audit_every_step: bool,
    fast_path: bool,
) -> Result<AllocatorReport, SimError> {
    let cost = StepCost::new(config);
    let mut metrics = Collector::new(
        alloc.capacity_slots(),
        usize::try_from(expected_requests).unwrap_or(usize::MAX),
    );
    let mut q = InFlight::new(requests);
    let mut running: Vec<u32> = Vec::new();
    let mut swapped: VecDeque<u32> = VecDeque::new();
    // (finish step, request, epoch), earliest first.
    let mut finishes: BinaryHeap<Reverse<(u64, u32, u32)>> = BinaryHeap::new();
    let mut newly_started: Vec<u32> = Vec::new();
    let mut now = 0.0f64;
    let mut last_arrival_s = 0.0f64;
    let mut steps_done = 0u64;
    let mut last_reported = progress.done;
    // Set when step 3 found nothing to do and cannot find anything until a request leaves,
    // arrives into an empty queue, or is preempted (only when free memory can only shrink
    // between those events); such steps skip step 3 and keep its memory-blocked verdict.
    let mut admission_stuck = false;
    let mut stuck_memory_blocked = false;
    let max_seqs = u64::from(config.max_num_seqs);
    let budget = u64::from(config.max_num_batched_tokens);
    // Why a request can never run, or None when it can (checked at arrival; a pure function of
    // the request, so the queue's second cursor skips the same ones).
    let rejection = |alloc: &A, r: &Request| {
        if r.final_len() > config.max_seq_len {
            Some(Rejection::TooLong)
        } else if u64::from(r.num_seqs()) > max_seqs {
            Some(Rejection::TooManySequences)
        } else if !alloc.can_ever_fit(&final_spec(r)) {
            Some(Rejection::LargerThanPool)
        } else {
            None
        }
    };
    let accepted = |alloc: &A, r: &Request| rejection(alloc, r).is_none();

    loop {
        // 1. Arrivals.
        while q.next_arrival_s() <= now {
            let Some(r) = q.arrivals.next() else { break };
            if q.next_arrival == u32::MAX {
                return Err(SimError::InvalidWorkload(
                    "more than 2^32 - 1 requests".into(),
                ));
            }
            // What `simulate` checks up front for a slice, checked as a stream goes by.
            if r.arrival_s < last_arrival_s {
                return Err(SimError::InvalidWorkload(
                    "requests must be sorted by arrival time".into(),
                ));
            }
            last_arrival_s = r.arrival_s;
            crate::check_request(&r, expected_requests)?;
            q.next_arrival += 1;
            // The first cause that makes the request impossible, counted by kind.
            if let Some(cause) = rejection(&alloc, &r) {
                *match cause {
                    Rejection::TooLong => &mut metrics.rejected_too_long,
                    Rejection::TooManySequences => &mut metrics.rejected_too_many_sequences,
                    Rejection::LargerThanPool => &mut metrics.rejected_larger_than_pool,
                } += 1;
                metrics.rejected += 1;
                progress.done += 1;
            } else {
                if q.waiting_is_empty() {
                    admission_stuck = false;
                }
                q.fresh_waiting += 1;
            }
        }
        if running.is_empty() && q.waiting_is_empty() && swapped.is_empty() {
            if q.all_arrived() {
                break;
            }
            let t = q.next_arrival_s();
            metrics.idle(now, t - now);
            now = t;
            continue;
        }
        let next_arrival_s = q.next_arrival_s();
        let next_finish = finishes.peek().map_or(u64::MAX, |f| f.0 .0);

        // Fast path: while admission is stuck, steps only decode. Loop over them with
        // nothing but the allocator's O(1) growth, the roofline and register accumulators,
        // until a request finishes, an arrival could be admitted, or memory runs short.
        let mut quiet_steps = 0u64;
        if admission_stuck && fast_path && !running.is_empty() {
            let arrivals_matter = q.waiting_is_empty() && swapped.is_empty();
            let seqs = alloc.running_seqs();
            let free0 = alloc.free_units();
            let tokens0 = alloc.logical_tokens();
            // Audited runs take quiet steps one at a time so every step is checked.
            let limit = if audit_every_step {
                1
            } else {
                (next_finish + 1).saturating_sub(steps_done)
            };
            let (cycle, mut idx) = alloc.demand_cycle();
            let (mut blocks, mut t) = (0u64, now);
            let (mut sum_dt, mut sum_dt_tokens, mut sum_dt_blocks) = (0.0f64, 0.0f64, 0.0f64);
            while quiet_steps < limit && !(arrivals_matter && next_arrival_s <= t) {
                let demand = cycle.get(idx).copied().unwrap_or(0);
                if blocks + demand > free0 {
                    break;
                }
                blocks += demand;
                let written = (quiet_steps + 1) * seqs;
                let dt = cost.decode_seconds(seqs, tokens0 + written);
                sum_dt += dt;
                sum_dt_tokens += dt * written as i64 as f64;
                sum_dt_blocks += dt * blocks as i64 as f64;
                t += dt;
                quiet_steps += 1;
                idx = if idx == 0 {
                    cycle.len().saturating_sub(1)
                } else {
                    idx - 1
                };
            }
            if quiet_steps > 0 {
                let model = alloc.quiet_model();
                let seg = Segment::from_quiet(
                    now,
                    quiet_steps,
                    &model,
                    sum_dt,
                    sum_dt_tokens,
                    sum_dt_blocks,
                );
                metrics.segment(&seg, running.len() as u64, stuck_memory_blocked);
                alloc.advance_quiet(quiet_steps, blocks);
                now = t;
                steps_done += quiet_steps;
                if audit_every_step {
                    audit(&mut alloc, steps_done - 1)?;
                }
            }
        }

        if quiet_steps == 0 {
            // 2. Room for this step's decode tokens; preempt the latest arrivals if short.
            let step = steps_done;
            alloc.begin_step(step);
            let mut preempted = false;
            let mut swap_s = 0.0f64;
            while alloc.decode_demand() > alloc.free_units() {
                let Some(&victim) = running.iter().max() else {
                    return Err(SimError::InvariantViolated(format!(
                        "step {step}: decode needs {} units with nothing running",
                        alloc.decode_demand()
                    )));
                };
                remove_running(&mut running, &mut q, victim);
                let req = q.req(victim);
                let st = q.st(victim);
                st.epoch = st.epoch.wrapping_add(1);
                st.generated = (st.generated_base + step as i64) as u32;
                let try_swap = config.preemption == Preemption::Swap || req.num_seqs() > 1;
                let swapped_bytes = if try_swap {
                    alloc.swap_out(st.handle)
                } else {
                    None
                };
                match swapped_bytes {
                    Some(bytes) => {
                        let t = cost.transfer_seconds(bytes);
                        swap_s += t;
                        metrics.preemption_seconds += t;
                        metrics.swaps += 1;
                        st.status = Status::Swapped;
                        // Keep the swapped queue in arrival order (FCFS swap-in).
                        let at = swapped.partition_point(|&x| x < victim);
                        swapped.insert(at, victim);
                    }
                    None => {
                        alloc.release(st.handle);
                        let tokens = u64::from(req.prompt_tokens)
                            + u64::from(req.num_seqs()) * u64::from(st.generated);
                        metrics.preemption_seconds += cost.recompute_seconds(tokens);
                        metrics.recomputations += 1;
                        st.status = Status::Waiting;
                        q.push_waiting_front(victim);
                    }
                }
                preempted = true;
                admission_stuck = false;
            }
            let kv_read_running = alloc.logical_tokens();
            let decode_running = alloc.running_seqs();
            alloc.grow();

            // 3. Swap-ins, then admissions.
            let mut step_seqs = alloc.running_seqs();
            let mut decode_seqs = decode_running;
            let mut kv_read = kv_read_running;
            let mut prefill_tokens = 0u64;
            let mut memory_blocked = preempted;
            newly_started.clear();
            // Why step 3 stopped.
            let mut stop = Stop::QueuesEmpty;
            if admission_stuck {
                memory_blocked = stuck_memory_blocked;
            } else if !preempted {
                while let Some(&r) = swapped.front() {
                    let req = q.req(r);
                    let n = u64::from(req.num_seqs());
                    if step_seqs + n > max_seqs {
                        stop = Stop::Persistent;
                        break;
                    }
                    let st = q.st(r);
                    match alloc.try_swap_in(st.handle) {
                        Some(bytes) => {
                            let t = cost.transfer_seconds(bytes);
                            swap_s += t;
                            metrics.preemption_seconds += t;
                            swapped.pop_front();
                            step_seqs += n;
                            decode_seqs += n;
                            kv_read += n * u64::from(req.prompt_tokens + st.generated);
                            start_running(&mut running, st, r, step, &mut finishes, &req);
                        }
                        None => {
                            memory_blocked = true;
                            stop = Stop::Persistent;
                            break;
                        }
                    }
                }
            }
            if !admission_stuck && !preempted && swapped.is_empty() {
                while let Some(r) = q.waiting_front(|r| accepted(&alloc, r)) {
                    let req = q.req(r);
                    let n = u64::from(req.num_seqs());
                    if step_seqs + n > max_seqs {
                        stop = Stop::Persistent;
                        break;
                    }
                    let st = q.st(r);
                    let tokens = u64::from(req.prompt_tokens) + n * u64::from(st.generated);
                    // The budget bounds the prefill tokens of a step (vLLM v0 without chunked
                    // prefill); it is waived for a step's first prefill so nothing can stall,
                    // and the next step starts with a fresh budget.
                    if prefill_tokens > 0 && prefill_tokens + tokens > budget {
                        stop = Stop::Transient;
                        break;
                    }
                    let spec = AdmitSpec {
                        num_seqs: req.num_seqs(),
                        beam: req.beam_width > 1,
                        prompt: req.prompt_tokens,
                        kv_after: req.prompt_tokens + st.generated + 1,
                        final_len: req.final_len(),
                        prefix: req.prefix,
                    };
                    match alloc.try_admit(&spec) {
                        Some(admitted) => {
                            q.pop_waiting();
                            let st = q.st(r);
                            st.handle = admitted.handle;
                            prefill_tokens += tokens - u64::from(admitted.cached_prompt_tokens);
                            step_seqs += n;
                            if st.first_token_s.is_nan() {
                                newly_started.push(r);
                            }
                            start_running(&mut running, st, r, step, &mut finishes, &req);
                        }
                        None => {
                            memory_blocked = true;
                            stop = Stop::Persistent;
                            break;
                        }
                    }
                }
            }
            if !admission_stuck && !preempted {
                admission_stuck = stop != Stop::Transient && alloc.free_memory_only_shrinks();
                stuck_memory_blocked = memory_blocked;
            }
            if running.is_empty() {
                return Err(SimError::InvariantViolated(format!(
                    "step {step}: scheduler stalled with {} waiting and {} swapped requests",
                    q.waiting_len(),
                    swapped.len()
                )));
            }

            // 4. The forward pass.
            let work = StepWork {
                prefill_tokens,
                decode_seqs,
                kv_tokens_read: kv_read,
            };
            let dt = cost.step_seconds(work) + swap_s;
            if audit_every_step {
                audit(&mut alloc, step)?;
            }
            let mut seg = Segment::new(now);
            seg.add(dt, alloc.occupancy());
            metrics.segment(&seg, running.len() as u64, memory_blocked);
            now += dt;
            alloc.end_step();
            steps_done += 1;
            for &r in &newly_started {
                q.st(r).first_token_s = now;
            }
        }

        // 5. Completions of the last step.
        let last_step = steps_done - 1;
        while let Some(&Reverse((finish, r, epoch))) = finishes.peek() {
            if finish > last_step {
                break;
            }
            finishes.pop();
            // A stale event: the request was preempted since, or has finished.
            let Some(&(req, st)) = q.live.get(&r) else {
                continue;
            };
            if st.epoch != epoch || st.status != Status::Running {
                continue;
            }
            alloc.release(st.handle);
            admission_stuck = false;
            metrics.complete(
                req.arrival_s,
                st.first_token_s,
                now,
                req.output_tokens,
                req.num_seqs(),
            );
            remove_running(&mut running, &mut q, r);
            q.live.remove(&r);
            progress.done += 1;
        }
        if progress.done - last_reported >= PROGRESS_EVERY {
            last_reported = progress.done;
            (progress.hook)(progress.done, progress.total);
        }
    }
    (progress.hook)(progress.done, progress.total);
    if audit_every_step {
        let unfinished = q.live.len() as u64 + q.fresh_waiting;
        if unfinished > 0 {
            return Err(SimError::InvariantViolated(format!(
                "{unfinished} requests never finished"
            )));
        }
        alloc
            .audit()
            .map_err(|e| SimError::InvariantViolated(format!("after the run: {e}")))?;
        if alloc.occupancy() != Default::default() {
            return Err(SimError::InvariantViolated(format!(
                "memory still in use after the run: {:?}",
                alloc.occupancy()
            )));
        }
    }
    Ok(metrics.finish(name, now))
}

/// Checks the allocator's invariants and that memory in use stays within the pool.
fn audit<A: KvAllocator>(alloc: &mut A, step: u64) -> Result<(), SimError> {
    alloc
        .audit()
        .map_err(|e| SimError::InvariantViolated(format!("step {step}: {e}")))?;
    let occ = alloc.occupancy();
    let used = occ.token_slots + occ.reserved_slots + occ.internal_slots + occ.slack_slots;
    if used > alloc.capacity_slots() {
        return Err(SimError::InvariantViolated(format!(
            "step {step}: {used} slots in use exceed the pool of {}",
            alloc.capacity_slots()
        )));
    }
    Ok(())
}

/// What a request needs at its final length (for the can-ever-fit check).
fn final_spec(r: &Request) -> AdmitSpec {
    AdmitSpec {
        num_seqs: r.num_seqs(),
        beam: r.beam_width > 1,
        prompt: r.prompt_tokens,
        kv_after: r.final_len(),
        final_len: r.final_len(),
        prefix: r.prefix,
    }
}

/// Marks a request running from step `step` (where it produces a token) and schedules its
/// completion.
fn start_running(
    running: &mut Vec<u32>,
    st: &mut RequestState,
    r: u32,
    step: u64,
    finishes: &mut BinaryHeap<Reverse<(u64, u32, u32)>>,
    req: &Request,
) {
    st.status = Status::Running;
    st.pos = running.len() as u32;
    running.push(r);
    // generated after step s = generated + 1 + (s - step) = generated_base + s + 1.
    st.generated_base = i64::from(st.generated) - step as i64;
    // Last token in step: generated_base + s + 1 = output.
    let finish = (i64::from(req.output_tokens) - st.generated_base - 1) as u64;
    finishes.push(Reverse((finish, r, st.epoch)));
}

fn remove_running<I: Iterator<Item = Request> + Clone>(
    running: &mut Vec<u32>,
    q: &mut InFlight<I>,
    r: u32,
) {
    let pos = q.st(r).pos as usize;
    running.swap_remove(pos);
    if pos < running.len() {
        let moved = running[pos];
        q.st(moved).pos = pos as u32;
    }
}
