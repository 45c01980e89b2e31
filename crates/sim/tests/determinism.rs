//! Same seed, same result; different seed, different workload.

mod common;

use vramplan_sim::{
    simulate, simulate_audited, simulate_stream, AllocatorKind, LengthDistribution,
    SyntheticWorkload,
};

fn json_for(seed: u64, beam: u16) -> String {
    let mut config = common::opt13b_a100();
    config.seed = seed;
    let requests = SyntheticWorkload {
        lengths: LengthDistribution::Alpaca,
        rate: 20.0,
        requests: 300,
        parallel_samples: 1,
        beam_width: beam,
        seed,
    }
    .generate(config.max_seq_len)
    .unwrap();
    let report = simulate(&config, &requests, &AllocatorKind::ALL, &mut |_, _| {}).unwrap();
    serde_json::to_string(&report).unwrap()
}

#[test]
fn same_seed_same_report() {
    // Beam search draws from the engine's RNG too.
    assert_eq!(json_for(42, 1), json_for(42, 1));
    assert_eq!(json_for(42, 4), json_for(42, 4));
}

#[test]
fn different_seed_different_report() {
    assert_ne!(json_for(1, 1), json_for(2, 1));
}

#[test]
fn workload_is_reproducible_and_matches_published_means() {
    // The first requests of seed 7 never change (ChaCha8 stream, rand_distr 0.5): a guard
    // against silent changes of the generator that would alter every published figure.
    let w = SyntheticWorkload {
        lengths: LengthDistribution::ShareGpt,
        rate: 2.0,
        requests: 200_000,
        parallel_samples: 1,
        beam_width: 1,
        seed: 7,
    };
    let a = w.generate(2048).unwrap();
    assert_eq!(a, w.generate(2048).unwrap());
    // Pinned values (recorded from this generator, not derivable by hand).
    let head: Vec<(u32, u32)> = a[..3]
        .iter()
        .map(|r| (r.prompt_tokens, r.output_tokens))
        .collect();
    assert_eq!(head, vec![(25, 500), (132, 146), (289, 198)]);
    assert!((a[0].arrival_s - 0.079_160_426_173_124_77).abs() < 1e-15);
    // Means after clipping to 2048 tokens stay within 3% of the paper's 161.31 / 337.99, and
    // the arrival rate within 1% of 2 req/s.
    let n = a.len() as f64;
    let mean_in = a.iter().map(|r| f64::from(r.prompt_tokens)).sum::<f64>() / n;
    let mean_out = a.iter().map(|r| f64::from(r.output_tokens)).sum::<f64>() / n;
    assert!((mean_in / 161.31 - 1.0).abs() < 0.03, "{mean_in}");
    assert!((mean_out / 337.99 - 1.0).abs() < 0.03, "{mean_out}");
    assert!((n / a.last().unwrap().arrival_s / 2.0 - 1.0).abs() < 0.01);
    assert!(a
        .iter()
        .all(|r| r.final_len() <= 2048 && r.prompt_tokens >= 1 && r.output_tokens >= 1));
    let alpaca = SyntheticWorkload {
        lengths: LengthDistribution::Alpaca,
        ..w
    }
    .generate(2048)
    .unwrap();
    let mean_in = alpaca
        .iter()
        .map(|r| f64::from(r.prompt_tokens))
        .sum::<f64>()
        / n;
    let mean_out = alpaca
        .iter()
        .map(|r| f64::from(r.output_tokens))
        .sum::<f64>()
        / n;
    assert!((mean_in / 19.31 - 1.0).abs() < 0.03, "{mean_in}");
    assert!((mean_out / 58.45 - 1.0).abs() < 0.03, "{mean_out}");
}

#[test]
fn a_streamed_workload_gives_the_report_of_the_same_requests_in_memory() {
    // Overloaded (rate 60/s on OPT-13B) so the waiting queue grows long and preemption happens:
    // the queue's second cursor over the stream must replay exactly the requests kept in memory.
    for beam in [1, 4] {
        let config = common::opt13b_a100();
        let w = SyntheticWorkload {
            lengths: LengthDistribution::ShareGpt,
            rate: 60.0,
            requests: 1500,
            parallel_samples: 1,
            beam_width: beam,
            seed: 11,
        };
        let requests = w.generate(config.max_seq_len).unwrap();
        let in_memory = simulate(&config, &requests, &AllocatorKind::ALL, &mut |_, _| {}).unwrap();
        let streamed = simulate_stream(
            &config,
            w.stream(config.max_seq_len).unwrap(),
            w.requests,
            &AllocatorKind::ALL,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&in_memory).unwrap(),
            serde_json::to_string(&streamed).unwrap()
        );
        assert!(in_memory.allocators.iter().any(|a| a.preemptions > 0));
        // And every allocator invariant holds on that run.
        simulate_audited(&config, &requests[..300], &AllocatorKind::ALL).unwrap();
    }
}
