//! One million ShareGPT-like requests through the paged allocator, OPT-13B on an A100-40GB.
//!
//! `CARGO_TARGET_DIR=... cargo bench -p vramplan-sim --bench simulate`. Request generation is
//! outside the timed loop. Two loads: 2 req/s (below the engine's ~3.9 req/s capacity: 25M
//! steps, few preemptions) and 4 req/s (overloaded, memory-bound, ~1M swap preemptions).
//! `stream_rate_*` runs the same requests streamed (`simulate_synthetic`, what the CLI runs:
//! drawn as they are read, memory independent of their number), drawing included; and
//! `generate_1m` times the drawing alone, for comparing the two.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Duration;
use vramplan_sim::{
    simulate, simulate_synthetic, AllocatorKind, LengthDistribution, SyntheticWorkload,
};

#[path = "../tests/common/mod.rs"]
mod common;

fn one_million_sharegpt(c: &mut Criterion) {
    let config = common::opt13b_a100();
    let mut group = c.benchmark_group("paged_1m_sharegpt");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for rate in [2.0, 4.0] {
        let workload = SyntheticWorkload {
            lengths: LengthDistribution::ShareGpt,
            rate,
            requests: 1_000_000,
            parallel_samples: 1,
            beam_width: 1,
            seed: 1,
        };
        let requests = workload
            .generate(config.max_seq_len)
            .expect("valid workload");
        group.bench_function(format!("stream_rate_{rate}"), |b| {
            b.iter(|| {
                let report = simulate_synthetic(
                    &config,
                    black_box(&workload),
                    config.max_seq_len,
                    &[AllocatorKind::Paged],
                    &mut |_, _| {},
                )
                .expect("valid configuration");
                black_box(report.allocators[0].token_states)
            })
        });
        if rate == 2.0 {
            group.bench_function("generate_1m", |b| {
                b.iter(|| black_box(workload.generate(config.max_seq_len).unwrap().len()))
            });
        }
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
