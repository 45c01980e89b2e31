//! Invariants on random traces (proptest): every allocator, both preemption modes, random
//! samples / beams / shared prefixes, pools from tiny to roomy.
//!
//! `simulate_audited` checks after every step that no block is owned twice or both owned and
//! free, that reference counts equal the block-table references (so a shared block is freed
//! exactly once, when its last reference goes; a second free is recorded and fails the
//! audit), that allocations minus frees equal the blocks in use, that memory in use never
//! exceeds the pool, that the contiguous address space is tiled exactly by holes and
//! reservations; and at the end that every request finished or was rejected and that
//! everything was freed.

use proptest::prelude::*;
use vramplan_sim::{
    simulate, simulate_audited, simulate_step_by_step, AllocatorKind, Placement, Preemption,
    Request, SharedPrefix, SimConfig,
};

#[derive(Debug, Clone)]
struct Case {
    config: SimConfig,
    requests: Vec<Request>,
}

fn case() -> impl Strategy<Value = Case> {
    let request = (
        0.0f64..20.0,
        1u32..40,
        1u32..40,
        prop_oneof![3 => Just((1u16, 1u16)), 1 => (2u16..5).prop_map(|n| (n, 1)), 1 => (2u16..5).prop_map(|b| (1, b))],
        prop_oneof![2 => Just(None), 1 => (0u32..3, 1u32..20)
            .prop_map(Some)],
    );
    (
        prop::collection::vec(request, 1..25),
        1u32..9,   // block size
        4u64..400, // pool in tokens
        prop_oneof![Just(Preemption::Swap), Just(Preemption::Recompute)],
        prop_oneof![Just(0u64), Just(64), Just(1 << 20)], // CPU swap bytes
        prop_oneof![Just(0.0), Just(0.05)],               // watermark
        1u32..12,                                         // max_num_seqs
        any::<u64>(),
        prop_oneof![Just(Placement::FirstFit), Just(Placement::Buddy)],
    )
        .prop_map(
            |(raw, bs, pool, preemption, cpu, watermark, max_seqs, seed, placement)| {
                // At least one block.
                let pool = pool.max(u64::from(bs));
                let mut config = SimConfig::with_defaults(2, pool * 2, 1000, 1e6, 1e9, 10, 1e6, 64);
                config.block_size = bs;
                config.preemption = preemption;
                config.cpu_swap_bytes = cpu;
                config.watermark = watermark;
                config.max_num_seqs = max_seqs;
                config.max_num_batched_tokens = 64;
                config.seed = seed;
                config.contiguous_placement = placement;
                let mut requests: Vec<Request> = raw
                    .into_iter()
                    .map(|(arrival, prompt, output, (n, beam), prefix)| Request {
                        arrival_s: arrival,
                        prompt_tokens: prompt,
                        output_tokens: output,
                        parallel_samples: n,
                        beam_width: beam,
                        prefix: prefix.map(|(id, len): (u32, u32)| SharedPrefix {
                            id,
                            // A prefix id always has the same length (as the trace loader checks).
                            tokens: (len + id).min(prompt).max(1),
                        }),
                    })
                    .collect();
                // Keep one length per prefix id: the shortest prompt bounds it.
                for id in 0..3 {
                    let min_len = requests
                        .iter()
                        .filter_map(|r| r.prefix.filter(|p| p.id == id).map(|p| p.tokens))
                        .min();
                    if let Some(len) = min_len {
                        for r in requests.iter_mut() {
                            if let Some(p) = r.prefix.as_mut().filter(|p| p.id == id) {
                                p.tokens = len;
                            }
                        }
                    }
                }
                requests.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
                Case { config, requests }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_on_random_traces(c in case()) {
        let report = simulate_audited(&c.config, &c.requests, &AllocatorKind::ALL)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for a in &report.allocators {
            // Every request finished or was refused up front.
            prop_assert_eq!(a.completed + a.rejected, c.requests.len() as u64, "{}", a.name);
            prop_assert!((a.memory_sum() - 1.0).abs() < 1e-9, "{}: sum {}", a.name, a.memory_sum());
            for f in [a.token_states, a.reservation, a.internal_fragmentation, a.external_fragmentation, a.free] {
                prop_assert!((-1e-12..=1.0 + 1e-12).contains(&f), "{}: fraction {}", a.name, f);
            }
            prop_assert_eq!(a.preemptions, a.swaps + a.recomputations);
            prop_assert!(a.sharing_savings >= -1e-12 && a.sharing_savings < 1.0);
        }
        // Contiguous reservations never grow: no preemption.
        for a in &report.allocators[..3] {
            prop_assert_eq!(a.preemptions, 0);
        }
        // Sharing never refuses a request that the plain pager accepts, and does not change
        // which requests can ever run.
        prop_assert_eq!(report.allocators[3].rejected, report.allocators[4].rejected);
    }

    #[test]
    fn fast_path_changes_nothing(c in case()) {
        let fast = simulate(&c.config, &c.requests, &AllocatorKind::ALL, &mut |_, _| {}).unwrap();
        let slow = simulate_step_by_step(&c.config, &c.requests, &AllocatorKind::ALL).unwrap();
        for (f, s) in fast.allocators.iter().zip(&slow.allocators) {
            prop_assert_eq!(f.steps, s.steps);
            prop_assert_eq!(f.completed, s.completed);
            prop_assert_eq!(f.preemptions, s.preemptions);
            for (x, y) in [
                (f.token_states, s.token_states),
                (f.internal_fragmentation, s.internal_fragmentation),
                (f.external_fragmentation, s.external_fragmentation),
                (f.reservation, s.reservation),
                (f.duration_s, s.duration_s),
                (f.e2e_p99, s.e2e_p99),
                (f.sharing_savings, s.sharing_savings),
            ] {
                prop_assert!((x - y).abs() <= 1e-9 * (1.0 + y.abs()), "{}: {} vs {}", f.name, x, y);
            }
        }
    }
}

/// A crowded pool with beams, samples and shared prefixes: the audit must hold through many
/// swaps and recomputations (the random cases above are small; this one makes sure the
/// preemption paths of the sharing allocator are exercised).
#[test]
fn crowded_pool_with_sharing_preempts_and_stays_consistent() {
    let mut requests = Vec::new();
    for i in 0..300u32 {
        let kind = i % 4;
        requests.push(Request {
            arrival_s: f64::from(i) * 0.001,
            prompt_tokens: 5 + (i * 7) % 23,
            output_tokens: 3 + (i * 11) % 29,
            parallel_samples: if kind == 1 { 3 } else { 1 },
            beam_width: if kind == 2 { 3 } else { 1 },
            prefix: (kind == 3).then_some(SharedPrefix {
                id: i % 2,
                tokens: 5,
            }),
        });
    }
    for (preemption, cpu) in [
        (Preemption::Swap, 1 << 20),
        (Preemption::Swap, 24),
        (Preemption::Recompute, 1 << 20),
    ] {
        let mut config = SimConfig::with_defaults(1, 128, 1000, 1e6, 1e9, 10, 1e6, 64);
        config.block_size = 4;
        config.preemption = preemption;
        config.cpu_swap_bytes = cpu;
        let report = simulate_audited(
            &config,
            &requests,
            &[AllocatorKind::Paged, AllocatorKind::PagedSharing],
        )
        .unwrap();
        for a in &report.allocators {
            assert_eq!(a.completed + a.rejected, 300, "{}", a.name);
            assert!(
                a.preemptions > 0,
                "{} {preemption:?}: no preemption",
                a.name
            );
        }
        let sharing = &report.allocators[1];
        assert!(sharing.sharing_savings > 0.0);
        match (preemption, cpu) {
            (Preemption::Swap, 24) => assert!(sharing.swaps > 0 && sharing.recomputations > 0),
            (Preemption::Swap, _) => assert!(sharing.swaps > 0),
            // Multi-sequence requests are swapped even in recompute mode (as vLLM does).
            (Preemption::Recompute, _) => assert!(sharing.recomputations > 0 && sharing.swaps > 0),
        }
    }
}
