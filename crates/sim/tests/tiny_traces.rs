//! Hand-computed tiny traces, one per allocator and per preemption mode.
//!
//! The toy machine makes step times easy to add by hand:
//! - 1 B of KV per token, blocks of 4 tokens;
//! - weights 1000 B over 1000 B/s: every step costs 1 s plus 1 ms per KV token read or
//!   written (`dt = 1 + 0.001 × (context read + new tokens)`); compute is 2 × 1 FLOP per
//!   token at 1 GFLOP/s, negligible, so memory always sets the step time;
//! - host link 100 B/s: a 4-token block (4 B) takes 0.04 s each way;
//! - no watermark, max_seq_len 16, token budget 16, 8 sequences.

use vramplan_sim::{
    parse_trace, simulate, simulate_audited, AllocatorKind, AllocatorReport, Preemption, SimConfig,
    TraceFormat,
};

fn toy(pool_bytes: u64, preemption: Preemption) -> SimConfig {
    let mut c = SimConfig::with_defaults(1, pool_bytes, 1000, 1000.0, 1e9, 1, 100.0, 16);
    c.block_size = 4;
    c.watermark = 0.0;
    c.max_num_batched_tokens = 16;
    c.max_num_seqs = 8;
    c.preemption = preemption;
    c
}

fn run(config: &SimConfig, csv: &str, kind: AllocatorKind) -> AllocatorReport {
    let requests = parse_trace(csv, TraceFormat::Csv, "tiny.csv").unwrap();
    // Audited run first: every invariant holds at every step.
    simulate_audited(config, &requests, &[kind]).unwrap();
    let mut r = simulate(config, &requests, &[kind], &mut |_, _| {}).unwrap();
    r.allocators.remove(0)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

macro_rules! assert_close {
    ($a:expr, $b:expr) => {
        assert!(
            close($a, $b),
            "{} = {} but expected {}",
            stringify!($a),
            $a,
            $b
        )
    };
}

/// A: prompt 3, output 3 (final 6). B: prompt 2, output 2 (final 4). Both at t = 0.
const TWO_REQUESTS: &str = "arrival_s,prompt_tokens,output_tokens\n0,3,3\n0,2,2\n";

#[test]
fn paged_two_requests() {
    // Pool 16 B = 4 blocks.
    // Step 0: both admitted. A holds 3 + 1 = 4 tokens (1 block), B 2 + 1 = 3 (1 block).
    //   dt = 1 + 0.001 × 5 prefill tokens = 1.005. Tokens 7, empty tail slots 1.
    // Step 1: A's 5th token needs a block (4 % 4 == 0), B writes into its tail.
    //   dt = 1 + 0.001 × (7 read + 2 new) = 1.009. Tokens 9, tails 3 + 0 = 3. B done (2 out).
    // Step 2: A alone: dt = 1 + 0.001 × (5 + 1) = 1.006. Tokens 6, tail 2. A done.
    // Duration 3.020 s; pool-seconds 16 × 3.020 = 48.32.
    let r = run(
        &toy(16, Preemption::Swap),
        TWO_REQUESTS,
        AllocatorKind::Paged,
    );
    assert_eq!(r.steps, 3);
    assert_close!(r.duration_s, 3.020);
    assert_close!(
        r.token_states,
        (7.0 * 1.005 + 9.0 * 1.009 + 6.0 * 1.006) / 48.32
    );
    assert_close!(
        r.internal_fragmentation,
        (1.0 * 1.005 + 3.0 * 1.009 + 2.0 * 1.006) / 48.32
    );
    assert_close!(r.reservation, 0.0);
    assert_close!(r.external_fragmentation, 0.0);
    assert_close!(r.memory_sum(), 1.0);
    // Batch 2, 2, 1.
    assert_close!(r.mean_batch, 5.0 / 3.0);
    assert_eq!(r.max_batch, 2);
    assert_close!(r.throughput_rps, 2.0 / 3.020);
    assert_close!(r.throughput_tps, 5.0 / 3.020);
    // TTFT 1.005 for both; e2e B 2.014, A 3.020 (nearest rank: p50 of 2 = the smaller).
    assert_close!(r.ttft_p50, 1.005);
    assert_close!(r.e2e_p50, 2.014);
    assert_close!(r.e2e_p99, 3.020);
    // TPOT A = (3.020 - 1.005) / 2 = 1.0075, B = (2.014 - 1.005) / 1 = 1.009.
    assert_close!(r.tpot_p50, 1.0075);
    assert_close!(r.tpot_p90, 1.009);
    assert_eq!(r.preemptions, 0);
}

#[test]
fn contiguous_max_reserves_the_whole_context() {
    // Pool 16 slots, max_seq_len 16: A reserves all 16, B waits for A to finish.
    // Step 0: A prefill (3): dt 1.003; A holds 4 tokens, reserves 2 more, 10 never used.
    // Step 1: dt = 1 + 0.001 × (4 + 1) = 1.005; tokens 5, reservation 1.
    // Step 2: dt = 1.006; tokens 6; A done at 3.014.
    // Step 3: B prefill (2): dt 1.002; B 3 tokens, 1 reserved, 12 never used.
    // Step 4: dt = 1 + 0.001 × (3 + 1) = 1.004; B done at 5.020.
    // The pool is fully reserved throughout: no free, no external fragmentation.
    let r = run(
        &toy(16, Preemption::Swap),
        TWO_REQUESTS,
        AllocatorKind::ContiguousMax,
    );
    let total = 16.0 * 5.020;
    assert_close!(r.duration_s, 5.020);
    assert_close!(
        r.token_states,
        (4.0 * 1.003 + 5.0 * 1.005 + 6.0 * 1.006 + 3.0 * 1.002 + 4.0 * 1.004) / total
    );
    assert_close!(
        r.reservation,
        (2.0 * 1.003 + 1.0 * 1.005 + 1.0 * 1.002) / total
    );
    assert_close!(
        r.internal_fragmentation,
        (10.0 * 3.014 + 12.0 * 2.006) / total
    );
    assert_close!(r.external_fragmentation, 0.0);
    assert_close!(r.free, 0.0);
    assert_eq!(r.max_batch, 1);
    // B waited for A: first token at 4.016.
    assert_close!(r.ttft_p90, 4.016);
    assert_close!(r.e2e_p90, 5.020);
}

#[test]
fn contiguous_pow2_rounds_up_to_a_power_of_two() {
    // A final 6 → reserves 8; B final 4 → 4; both fit in 16. Same steps as paged.
    // Step 0 (1.005): A 4 tokens + 2 reserved + 2 unused, B 3 + 1 + 0 → 7 / 3 / 2, free 4.
    // Step 1 (1.009): A 5 + 1 + 2, B 4 + 0 + 0 → 9 / 1 / 2, free 4.
    // Step 2 (1.006): A 6 + 0 + 2 → 6 / 0 / 2, free 8. Nothing waits: free, not external.
    let r = run(
        &toy(16, Preemption::Swap),
        TWO_REQUESTS,
        AllocatorKind::ContiguousPow2,
    );
    let total = 48.32;
    assert_close!(
        r.token_states,
        (7.0 * 1.005 + 9.0 * 1.009 + 6.0 * 1.006) / total
    );
    assert_close!(r.reservation, (3.0 * 1.005 + 1.0 * 1.009) / total);
    assert_close!(r.internal_fragmentation, 2.0 * 3.020 / total);
    assert_close!(r.free, (4.0 * 1.005 + 4.0 * 1.009 + 8.0 * 1.006) / total);
    assert_close!(r.external_fragmentation, 0.0);
}

#[test]
fn contiguous_oracle_has_no_internal_fragmentation() {
    // Reserves exactly 6 and 4: reservation as Pow2, internal 0, free 2 more slots.
    let r = run(
        &toy(16, Preemption::Swap),
        TWO_REQUESTS,
        AllocatorKind::ContiguousOracle,
    );
    let total = 48.32;
    assert_close!(r.reservation, (3.0 * 1.005 + 1.0 * 1.009) / total);
    assert_close!(r.internal_fragmentation, 0.0);
    assert_close!(r.free, (6.0 * 1.005 + 6.0 * 1.009 + 10.0 * 1.006) / total);
}

#[test]
fn contiguous_oracle_in_a_buddy_arena() {
    // Buddy placement: A's 6 slots take an 8-block (2 slots of slack), B's 4 a 4-block.
    // Slack is external fragmentation whether or not anyone waits; free = 16 - 8 - 4 = 4
    // while both run, 8 once B is gone. Steps as in the paged case: 1.005, 1.009, 1.006.
    let mut c = toy(16, Preemption::Swap);
    c.contiguous_placement = vramplan_sim::Placement::Buddy;
    let r = run(&c, TWO_REQUESTS, AllocatorKind::ContiguousOracle);
    let total = 48.32;
    assert_close!(r.internal_fragmentation, 0.0);
    assert_close!(r.external_fragmentation, 2.0 * 3.020 / total);
    assert_close!(r.free, (4.0 * 1.005 + 4.0 * 1.009 + 8.0 * 1.006) / total);
    assert_close!(r.memory_sum(), 1.0);
}

#[test]
fn contiguous_first_fit_external_fragmentation() {
    // Pool 8 slots, Oracle. A (1 + 1 = 2) at [0,2), B (2 + 3 = 5) at [2,7); D needs 3.
    // Step 0 (1 + 0.001 × 3 = 1.003): tokens A 2 + B 3 = 5, B reserves 2; 1 slot free while
    //   D waits → external 1. A is done after its prefill.
    // Step 1 (1 + 0.001 × (3 + 1) = 1.004): holes [0,2) and [7,8): 3 slots free but no hole
    //   of 3 → D still waits → external 3. Tokens 4, reservation 1.
    // Step 2 (1.005): tokens 5, external 3; B done at 3.012, holes merge into [0,8).
    // Step 3 (1 + 0.001 × 2 = 1.002): D at [0,3): tokens 3, 5 free with nobody waiting.
    let trace = "arrival_s,prompt_tokens,output_tokens\n0,1,1\n0,2,3\n0,2,1\n";
    let mut c = toy(8, Preemption::Swap);
    c.max_seq_len = 8;
    c.max_num_batched_tokens = 8;
    let r = run(&c, trace, AllocatorKind::ContiguousOracle);
    let total = 8.0 * 4.014;
    assert_close!(r.duration_s, 4.014);
    assert_close!(
        r.external_fragmentation,
        (1.0 * 1.003 + 3.0 * 1.004 + 3.0 * 1.005) / total
    );
    assert_close!(r.free, 5.0 * 1.002 / total);
    assert_close!(
        r.token_states,
        (5.0 * 1.003 + 4.0 * 1.004 + 5.0 * 1.005 + 3.0 * 1.002) / total
    );
    assert_close!(r.reservation, (2.0 * 1.003 + 1.0 * 1.004) / total);
    // D arrived at 0 and got its only token at 4.014.
    assert_close!(r.e2e_p99, 4.014);
}

/// A: prompt 3, output 5 (final 8 = 2 blocks). B: prompt 3, output 2 (final 5 = 2 blocks).
const PREEMPTION_TRACE: &str = "arrival_s,prompt_tokens,output_tokens\n0,3,5\n0,3,2\n";

#[test]
fn paged_swap_preemption() {
    // Pool 8 B = 2 blocks. Step 0: A and B hold 4 tokens each, one block each; dt 1.006.
    // Step 1: both need a second block, none is free → B (latest arrival) is swapped out:
    //   1 block = 4 B at 100 B/s = 0.04 s. A grows into the freed block.
    //   dt = 1 + 0.001 × (4 + 1) + 0.04 = 1.045.
    // Steps 2-4: B cannot come back (needs its block + a new one, 0 free); A alone:
    //   1.006, 1.007, 1.008; A done at 5.072.
    // Step 5: B swapped in (0.04 s) and decodes its 2nd token: 1.005 + 0.04; done at 6.117.
    for kind in [AllocatorKind::Paged, AllocatorKind::PagedSharing] {
        let r = run(&toy(8, Preemption::Swap), PREEMPTION_TRACE, kind);
        assert_eq!((r.preemptions, r.swaps, r.recomputations), (1, 1, 0));
        assert_close!(r.preemption_seconds, 0.08);
        assert_close!(r.duration_s, 6.117);
        assert_close!(r.e2e_p50, 5.072);
        assert_close!(r.e2e_p99, 6.117);
        assert_eq!(r.steps, 6);
        // While B is swapped out and cannot return, the free memory (0 blocks) is external.
        assert_eq!(r.completed, 2);
    }
}

#[test]
fn paged_recompute_preemption() {
    // As above, but B's block is dropped; B returns to the head of the queue.
    // Step 1: dt = 1.005 (no transfer). Steps 2-4: B needs 3 + 1 + 1 = 5 tokens = 2 blocks,
    //   0 free; A alone 1.006, 1.007, 1.008 → A done at 1.006 + 1.005 + 1.006 + 1.007 + 1.008
    //   = 5.032.
    // Step 5: B re-prefills prompt 3 + 1 generated = 4 tokens: dt = 1 + 0.001 × 4 = 1.004 and
    //   produces its 2nd token: done at 6.036. Recomputation cost charged: 4 tokens × 2 FLOP /
    //   1 GFLOP/s = 8 ns.
    let r = run(
        &toy(8, Preemption::Recompute),
        PREEMPTION_TRACE,
        AllocatorKind::Paged,
    );
    assert_eq!((r.preemptions, r.swaps, r.recomputations), (1, 0, 1));
    assert_close!(r.preemption_seconds, 8e-9);
    assert_close!(r.e2e_p50, 5.032);
    assert_close!(r.e2e_p99, 6.036);
    // B's first token still counts from step 0 (1.006), not from the recomputation.
    assert_close!(r.ttft_p99, 1.006);
}

#[test]
fn recompute_falls_back_from_swap_when_the_cpu_pool_is_full() {
    // Same trace, swap mode, but a CPU pool of 0 B: B is recomputed instead.
    let mut c = toy(8, Preemption::Swap);
    c.cpu_swap_bytes = 0;
    let r = run(&c, PREEMPTION_TRACE, AllocatorKind::Paged);
    assert_eq!((r.swaps, r.recomputations), (0, 1));
    assert_close!(r.e2e_p99, 6.036);
}

#[test]
fn parallel_samples_share_the_prompt() {
    // Prompt 5, output 2, n = 2, blocks of 4. With sharing the full prompt block is shared
    // and each sample copies the partial one: 1 + 2 = 3 physical blocks for 2 × 2 = 4
    // logical ones at both steps → savings 1 - 3/4 = 0.25. Without sharing: 4 blocks.
    let trace = "arrival_s,prompt_tokens,output_tokens,n\n0,5,2,2\n";
    let shared = run(
        &toy(32, Preemption::Swap),
        trace,
        AllocatorKind::PagedSharing,
    );
    assert_close!(shared.sharing_savings, 0.25);
    let plain = run(&toy(32, Preemption::Swap), trace, AllocatorKind::Paged);
    assert_close!(plain.sharing_savings, 0.0);
    // Step 0: one prefill of 5 tokens, dt = 1.005; each sample holds 6 tokens.
    //   Shared: 4 prompt tokens once + 2 × 2 private = 8 tokens, 2 × 2 empty tail slots.
    //   Plain: 2 × 6 = 12 tokens, same tails.
    // Step 1: 2 decodes reading 12 tokens: dt = 1 + 0.001 × (12 + 2) = 1.014.
    //   Shared: 4 + 2 × 3 = 10 tokens, tails 2 × 1. Plain: 14 tokens.
    let total = 32.0 * 2.019;
    assert_close!(shared.duration_s, 2.019);
    assert_close!(shared.token_states, (8.0 * 1.005 + 10.0 * 1.014) / total);
    assert_close!(
        shared.internal_fragmentation,
        (4.0 * 1.005 + 2.0 * 1.014) / total
    );
    assert_close!(plain.token_states, (12.0 * 1.005 + 14.0 * 1.014) / total);
    assert_close!(
        plain.internal_fragmentation,
        (4.0 * 1.005 + 2.0 * 1.014) / total
    );
    // 2 samples × 2 tokens generated.
    assert_close!(shared.throughput_tps, 4.0 / 2.019);
    assert_eq!(shared.completed, 1);
}

#[test]
fn requests_that_can_never_run_are_rejected() {
    // Final length 17 > max_seq_len 16; 4 + 9 = 13 tokens fit max_seq_len but not a pool of
    // 8 slots (2 blocks); the third request runs, except under contiguous-max, which would
    // reserve max_seq_len = 16 > 8 slots for every request.
    let trace = "arrival_s,prompt_tokens,output_tokens\n0,10,7\n0,4,9\n1,2,2\n";
    for kind in AllocatorKind::ALL {
        let r = run(&toy(8, Preemption::Swap), trace, kind);
        let expected = if kind == AllocatorKind::ContiguousMax {
            (0, 3)
        } else {
            (1, 2)
        };
        assert_eq!((r.completed, r.rejected), expected, "{kind}");
    }
}
