//! Time-weighted memory breakdown, batch sizes, throughput, latency percentiles and
//! preemption cost, accumulated in O(1) per step.
//!
//! The memory categories follow the PagedAttention paper's Fig. 2: token states, reservation
//! (slots reserved for tokens still to come), internal fragmentation (slots reserved that no
//! token will use) and external fragmentation & others. The paper's Orca bars sum to 100%
//! with no separate "free" bar because its runs were saturated; we count free memory as
//! external only while a waiting request is refused for lack of memory, and as `free`
//! otherwise, so an under-loaded run does not look fragmented.

use crate::allocator::{Occupancy, QuietModel};
use crate::report::{AllocatorReport, TimelinePoint};

/// Buckets kept for the memory-over-time plot; merged pairwise when the run outgrows them.
const TIMELINE_BUCKETS: usize = 400;
/// First bucket width in seconds (doubles as needed).
const TIMELINE_FIRST_WIDTH_S: f64 = 0.01;

/// Adaptive-resolution integral of the four memory categories over time.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    width_s: f64,
    /// Slot-seconds per bucket: token, reservation, internal, external.
    buckets: Vec<[f64; 4]>,
}

impl Timeline {
    fn new() -> Timeline {
        Timeline {
            width_s: TIMELINE_FIRST_WIDTH_S,
            buckets: Vec::with_capacity(TIMELINE_BUCKETS),
        }
    }

    /// Adds `values` (slots) held during `[t0, t0 + dt)`, split across bucket boundaries.
    #[inline]
    fn add(&mut self, t0: f64, dt: f64, values: [f64; 4]) {
        // Fast path: the interval lies inside the last bucket (almost every step).
        let end = self.buckets.len() as f64 * self.width_s;
        if let Some(last) = self.buckets.last_mut() {
            if t0 + dt <= end && t0 >= end - self.width_s {
                for (b, v) in last.iter_mut().zip(values) {
                    *b += v * dt;
                }
                return;
            }
        }
        self.add_split(t0, dt, values);
    }

    #[cold]
    fn add_split(&mut self, mut t0: f64, mut dt: f64, values: [f64; 4]) {
        while dt > 0.0 {
            let (idx, end) = loop {
                let mut idx = (t0 / self.width_s) as usize;
                // Rounding can leave t0 on the far edge of bucket idx: move on.
                if (idx + 1) as f64 * self.width_s <= t0 {
                    idx += 1;
                }
                if idx < TIMELINE_BUCKETS {
                    break (idx, (idx + 1) as f64 * self.width_s);
                }
                self.coarsen();
            };
            if self.buckets.len() <= idx {
                self.buckets.resize(idx + 1, [0.0; 4]);
            }
            let piece = (end - t0).min(dt);
            for (b, v) in self.buckets[idx].iter_mut().zip(values) {
                *b += v * piece;
            }
            t0 += piece;
            dt -= piece;
        }
    }

    fn coarsen(&mut self) {
        let merged: Vec<[f64; 4]> = self
            .buckets
            .chunks(2)
            .map(|pair| {
                let mut m = pair[0];
                if let Some(second) = pair.get(1) {
                    for (a, b) in m.iter_mut().zip(second) {
                        *a += b;
                    }
                }
                m
            })
            .collect();
        self.buckets = merged;
        self.width_s *= 2.0;
    }

    fn points(&self, capacity_slots: f64, end_s: f64) -> Vec<TimelinePoint> {
        self.buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let start = i as f64 * self.width_s;
                let stop = ((i + 1) as f64 * self.width_s).min(end_s);
                let span = stop - start;
                if span <= 0.0 || capacity_slots <= 0.0 {
                    return None;
                }
                let f = |x: f64| x / (capacity_slots * span);
                Some(TimelinePoint {
                    start_s: start,
                    end_s: stop,
                    token_states: f(b[0]),
                    reservation: f(b[1]),
                    internal_fragmentation: f(b[2]),
                    external_fragmentation: f(b[3]),
                })
            })
            .collect()
    }
}

/// Integrals over consecutive steps, accumulated in registers by the scheduler's loop and
/// handed to the [`Collector`] once per segment (per-step bookkeeping was most of the run
/// time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub start_s: f64,
    pub duration_s: f64,
    pub steps: u64,
    /// Slot-seconds of token, reserved, internal and slack slots; block-seconds of logical
    /// and physical blocks.
    pub slot_seconds: [f64; 6],
}

impl Segment {
    pub fn new(start_s: f64) -> Segment {
        Segment {
            start_s,
            duration_s: 0.0,
            steps: 0,
            slot_seconds: [0.0; 6],
        }
    }

    /// A run of quiet steps from their linear model: `sum_dt` = Σ dt_j, `sum_dt_tokens` =
    /// Σ dt_j · tokens written up to step j, `sum_dt_blocks` = Σ dt_j · blocks taken up to
    /// step j (j = 0..steps, both counted after step j's growth).
    pub fn from_quiet(
        start_s: f64,
        steps: u64,
        model: &QuietModel,
        sum_dt: f64,
        sum_dt_tokens: f64,
        sum_dt_blocks: f64,
    ) -> Segment {
        let mut slot_seconds = [0.0; 6];
        for (i, v) in slot_seconds.iter_mut().enumerate() {
            *v = model.start[i] as f64 * sum_dt
                + model.per_token[i] as f64 * sum_dt_tokens
                + model.per_block[i] as f64 * sum_dt_blocks;
        }
        Segment {
            start_s,
            duration_s: sum_dt,
            steps,
            slot_seconds,
        }
    }

    /// Adds one step of `dt` seconds with memory `occ`.
    #[inline]
    pub fn add(&mut self, dt: f64, occ: Occupancy) {
        // i64 → f64 is one instruction on x86-64, u64 → f64 six; counts are < 2^63.
        self.slot_seconds[0] += occ.token_slots as i64 as f64 * dt;
        self.slot_seconds[1] += occ.reserved_slots as i64 as f64 * dt;
        self.slot_seconds[2] += occ.internal_slots as i64 as f64 * dt;
        self.slot_seconds[3] += occ.slack_slots as i64 as f64 * dt;
        self.slot_seconds[4] += occ.logical_blocks as i64 as f64 * dt;
        self.slot_seconds[5] += occ.physical_blocks as i64 as f64 * dt;
        self.duration_s += dt;
        self.steps += 1;
    }
}

/// Everything measured during one allocator's run.
#[derive(Debug, Clone)]
pub(crate) struct Collector {
    capacity_slots: u64,
    /// Slot-seconds: token, reservation, internal, external, free.
    memory: [f64; 5],
    logical_block_s: f64,
    physical_block_s: f64,
    timeline: Timeline,
    pub steps: u64,
    batch_sum: u64,
    batch_max: u64,
    ttft: Latencies,
    tpot: Latencies,
    e2e: Latencies,
    pub completed: u64,
    pub rejected: u64,
    pub rejected_too_long: u64,
    pub rejected_too_many_sequences: u64,
    pub rejected_larger_than_pool: u64,
    output_tokens: u64,
    pub swaps: u64,
    pub recomputations: u64,
    pub preemption_seconds: f64,
}

impl Collector {
    pub fn new(capacity_slots: u64, expected_requests: usize) -> Collector {
        Collector {
            capacity_slots,
            memory: [0.0; 5],
            logical_block_s: 0.0,
            physical_block_s: 0.0,
            timeline: Timeline::new(),
            steps: 0,
            batch_sum: 0,
            batch_max: 0,
            ttft: Latencies::new(expected_requests),
            tpot: Latencies::new(expected_requests),
            e2e: Latencies::new(expected_requests),
            completed: 0,
            rejected: 0,
            rejected_too_long: 0,
            rejected_too_many_sequences: 0,
            rejected_larger_than_pool: 0,
            output_tokens: 0,
            swaps: 0,
            recomputations: 0,
            preemption_seconds: 0.0,
        }
    }

    /// Accounts a run of steps with the same batch and memory-blocked verdict.
    pub fn segment(&mut self, seg: &Segment, batch: u64, memory_blocked: bool) {
        if seg.steps == 0 {
            return;
        }
        self.steps += seg.steps;
        self.batch_sum += seg.steps * batch;
        self.batch_max = self.batch_max.max(batch);
        self.hold(
            seg.start_s,
            seg.duration_s,
            seg.slot_seconds,
            memory_blocked,
        );
    }

    /// Accounts an interval of `dt` seconds with no step (idle: nothing allocated).
    pub fn idle(&mut self, t0: f64, dt: f64) {
        self.hold(t0, dt, [0.0; 6], false);
    }

    /// `slot_seconds`: integrals over the interval of token, reserved, internal, slack slots
    /// and logical, physical blocks.
    fn hold(&mut self, t0: f64, dt: f64, slot_seconds: [f64; 6], memory_blocked: bool) {
        if dt <= 0.0 {
            return;
        }
        let [token, reserved, internal, slack, logical, physical] = slot_seconds;
        let free = (self.capacity_slots as f64 * dt - token - reserved - internal - slack).max(0.0);
        // Allocator slack is always external; free memory only while a request waits on it.
        let (external, idle) = if memory_blocked {
            (slack + free, 0.0)
        } else {
            (slack, free)
        };
        self.memory[0] += token;
        self.memory[1] += reserved;
        self.memory[2] += internal;
        self.memory[3] += external;
        self.memory[4] += idle;
        self.logical_block_s += logical;
        self.physical_block_s += physical;
        // The plot gets the segment's mean, spread over the buckets it spans.
        self.timeline.add(
            t0,
            dt,
            [token / dt, reserved / dt, internal / dt, external / dt],
        );
    }

    /// Records a finished request.
    pub fn complete(
        &mut self,
        arrival_s: f64,
        first_token_s: f64,
        end_s: f64,
        output: u32,
        seqs: u32,
    ) {
        self.completed += 1;
        self.output_tokens += u64::from(output) * u64::from(seqs);
        self.ttft.push(first_token_s - arrival_s);
        self.e2e.push(end_s - arrival_s);
        if output >= 2 {
            self.tpot
                .push((end_s - first_token_s) / f64::from(output - 1));
        }
    }

    /// Final figures; `duration_s` is the time of the last event.
    pub fn finish(mut self, name: &str, duration_s: f64) -> AllocatorReport {
        let cap_time = self.capacity_slots as f64 * duration_s;
        let frac = |x: f64| if cap_time > 0.0 { x / cap_time } else { 0.0 };
        let per_s = |x: f64| {
            if duration_s > 0.0 {
                x / duration_s
            } else {
                0.0
            }
        };
        let (ttft_p50, ttft_p90, ttft_p99) = self.ttft.percentiles();
        let (tpot_p50, tpot_p90, tpot_p99) = self.tpot.percentiles();
        let (e2e_p50, e2e_p90, e2e_p99) = self.e2e.percentiles();
        AllocatorReport {
            name: name.to_string(),
            pool_slots: self.capacity_slots,
            token_states: frac(self.memory[0]),
            reservation: frac(self.memory[1]),
            internal_fragmentation: frac(self.memory[2]),
            external_fragmentation: frac(self.memory[3]),
            // A run that never ran a step (everything rejected at t = 0) left the pool free.
            free: if cap_time > 0.0 {
                frac(self.memory[4])
            } else {
                1.0
            },
            sharing_savings: if self.logical_block_s > 0.0 {
                1.0 - self.physical_block_s / self.logical_block_s
            } else {
                0.0
            },
            mean_batch: if self.steps > 0 {
                self.batch_sum as f64 / self.steps as f64
            } else {
                0.0
            },
            max_batch: self.batch_max,
            throughput_rps: per_s(self.completed as f64),
            throughput_tps: per_s(self.output_tokens as f64),
            completed: self.completed,
            rejected: self.rejected,
            rejected_too_long: self.rejected_too_long,
            rejected_too_many_sequences: self.rejected_too_many_sequences,
            rejected_larger_than_pool: self.rejected_larger_than_pool,
            preemptions: self.swaps + self.recomputations,
            swaps: self.swaps,
            recomputations: self.recomputations,
            preemption_seconds: self.preemption_seconds,
            duration_s,
            steps: self.steps,
            ttft_p50,
            ttft_p90,
            ttft_p99,
            tpot_p50,
            tpot_p90,
            tpot_p99,
            e2e_p50,
            e2e_p90,
            e2e_p99,
            timeline: self.timeline.points(self.capacity_slots as f64, duration_s),
        }
    }
}

/// Latency samples: kept exactly up to [`EXACT_SAMPLES`] (nearest-rank percentiles, as every
/// test and short run sees them), then moved into an HDR histogram (the `hdrhistogram` crate) of
/// nanoseconds with [`HISTOGRAM_SIGNIFICANT_DIGITS`] significant digits, so that memory stays
/// bounded whatever the number of requests: 512 KiB of samples, then ~2.4 MiB of buckets.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    exact: Vec<f64>,
    histogram: Option<hdrhistogram::Histogram<u32>>,
}

/// Longest latency the histogram tells apart: 2^50 ns, 13 days (longer ones count as 13 days).
/// u32 counts (a bucket saturates at 4×10^9 samples, above the 5×10^7-request cap): ~2.4 MiB.
const MAX_LATENCY_NANOS: u64 = 1 << 50;
/// Samples kept exactly before the histogram takes over.
pub(crate) const EXACT_SAMPLES: usize = 1 << 16;
/// 4 significant digits: a percentile within 0.01% of the exact one (±0.1 ms on a 1 s TTFT),
/// below the printed precision (TTFT to 10 ms, TPOT to 1 ms, end-to-end to 100 ms).
pub(crate) const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 4;

impl Latencies {
    fn new(expected: usize) -> Latencies {
        Latencies {
            exact: Vec::with_capacity(expected.min(EXACT_SAMPLES)),
            histogram: None,
        }
    }

    fn nanos(seconds: f64) -> u64 {
        (seconds * 1e9).round().clamp(1.0, MAX_LATENCY_NANOS as f64) as u64
    }

    pub(crate) fn push(&mut self, seconds: f64) {
        if let Some(h) = &mut self.histogram {
            h.saturating_record(Self::nanos(seconds));
            return;
        }
        self.exact.push(seconds);
        if self.exact.len() > EXACT_SAMPLES {
            let mut h = hdrhistogram::Histogram::<u32>::new_with_bounds(
                1,
                MAX_LATENCY_NANOS,
                HISTOGRAM_SIGNIFICANT_DIGITS,
            )
            .expect("valid bounds and precision");
            for &v in &self.exact {
                h.saturating_record(Self::nanos(v));
            }
            self.exact = Vec::new();
            self.histogram = Some(h);
        }
    }

    /// p50, p90, p99 in seconds (zeros when there are no samples).
    pub(crate) fn percentiles(&mut self) -> (f64, f64, f64) {
        match &self.histogram {
            None => percentiles(&mut self.exact),
            Some(h) => {
                let q = |p: f64| h.value_at_quantile(p) as f64 / 1e9;
                (q(0.5), q(0.9), q(0.99))
            }
        }
    }
}

/// Nearest-rank p50/p90/p99 (the smallest value with at least p% of samples at or below it);
/// zeros when there are no samples. O(n) selection, no full sort.
pub(crate) fn percentiles(values: &mut [f64]) -> (f64, f64, f64) {
    (
        nearest_rank(values, 50.0),
        nearest_rank(values, 90.0),
        nearest_rank(values, 99.0),
    )
}

fn nearest_rank(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    let idx = rank.clamp(1, n) - 1;
    let (_, v, _) = values.select_nth_unstable_by(idx, f64::total_cmp);
    *v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_beyond_the_exact_samples_keep_four_digits() {
        // 0.001 s .. 2.000 s in 1 ms steps, repeated: the exact p50/p90/p99 are known.
        let mut l = Latencies::new(0);
        let n = EXACT_SAMPLES + 1000;
        for i in 0..n {
            l.push(((i % 2000) + 1) as f64 / 1000.0);
        }
        assert!(l.histogram.is_some() && l.exact.capacity() == 0);
        let mut exact: Vec<f64> = (0..n).map(|i| ((i % 2000) + 1) as f64 / 1000.0).collect();
        let (e50, e90, e99) = percentiles(&mut exact);
        let (h50, h90, h99) = l.percentiles();
        for (e, h) in [(e50, h50), (e90, h90), (e99, h99)] {
            assert!((h - e).abs() <= 1e-4 * e, "{h} vs {e}");
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        // 1..=10: p50 → rank 5 → 5; p90 → rank 9 → 9; p99 → rank ceil(9.9) = 10 → 10.
        let mut v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(percentiles(&mut v), (5.0, 9.0, 10.0));
        assert_eq!(percentiles(&mut []), (0.0, 0.0, 0.0));
    }

    #[test]
    fn fractions_sum_to_one_and_blocked_free_is_external() {
        // Pool 100 slots. 2 s with 40 tokens, 10 reserved, 10 internal, not blocked (40 free);
        // then 2 s with 60 tokens blocked (40 free counted as external).
        let mut c = Collector::new(100, 0);
        let occ = |t, r, i| Occupancy {
            token_slots: t,
            reserved_slots: r,
            internal_slots: i,
            slack_slots: 0,
            logical_blocks: 0,
            physical_blocks: 0,
        };
        let mut first = Segment::new(0.0);
        first.add(2.0, occ(40, 10, 10));
        c.segment(&first, 1, false);
        let mut second = Segment::new(2.0);
        second.add(1.0, occ(60, 0, 0));
        second.add(1.0, occ(60, 0, 0));
        c.segment(&second, 3, true);
        let r = c.finish("x", 4.0);
        // token = (40×2 + 60×2) / 400 = 0.5; reservation 20/400 = 0.05; internal 0.05;
        // external = 80/400 = 0.2; free = 80/400 = 0.2.
        assert!((r.token_states - 0.5).abs() < 1e-12);
        assert!((r.reservation - 0.05).abs() < 1e-12);
        assert!((r.internal_fragmentation - 0.05).abs() < 1e-12);
        assert!((r.external_fragmentation - 0.2).abs() < 1e-12);
        assert!((r.free - 0.2).abs() < 1e-12);
        assert!((r.memory_sum() - 1.0).abs() < 1e-12);
        // Batch: 1 request for one step, 3 for two steps → mean 7/3, max 3.
        assert!((r.mean_batch - 7.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.max_batch, 3);
        // Timeline buckets cover [0, 4) and reproduce the token share of each half.
        let first = r.timeline.first().unwrap();
        assert!((first.token_states - 0.4).abs() < 1e-9);
        let last = r.timeline.last().unwrap();
        assert!((last.token_states - 0.6).abs() < 1e-9, "{last:?}");
    }
}
