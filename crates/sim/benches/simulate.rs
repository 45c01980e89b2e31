//! One million ShareGPT-like requests through the paged allocator, OPT-13B on an A100-40GB.
//!
//! `CARGO_TARGET_DIR=... cargo bench -p vramplan-sim --bench simulate`. Request generation is
//! outside the timed loop. Two loads: 2 req/s (below the engine's ~3.9 req/s capacity: 25M
//! steps, few preemptions) and 4 req/s (overloaded, memory-bound, ~1M swap preemptions).

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Duration;
use vramplan_sim::{simulate, AllocatorKind, LengthDistribution, SyntheticWorkload};

#[path = "../tests/common/mod.rs"]
mod common;

fn one_million_sharegpt(c: &mut Criterion) {
    let config = common::opt13b_a100();
    let mut group = c.benchmark_group("paged_1m_sharegpt");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for rate in [2.0, 4.0] {
        let requests = SyntheticWorkload {
            lengths: LengthDistribution::ShareGpt,
            rate,
            requests: 1_000_000,
            parallel_samples: 1,
            beam_width: 1,
            seed: 1,
        }
        .generate(config.max_seq_len)
        .expect("valid workload");
        group.bench_function(format!("rate_{rate}"), |b| {
            b.iter(|| {
                let report = simulate(
                    &config,
                    black_box(&requests),
                    &[AllocatorKind::Paged],
                    &mut |_, _| {},
                )
                .expect("valid configuration");
                black_box(report.allocators[0].token_states)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, one_million_sharegpt);
criterion_main!(benches);
