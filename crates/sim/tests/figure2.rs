//! The shape of the PagedAttention paper's Fig. 2 (Kwon et al., SOSP 2023): average KV-cache
//! breakdown during the §6.2 experiment, OPT-13B on one A100-40GB, ShareGPT requests.
//!
//! Published bars (token states / reservation / internal / external & others, %):
//! Orca (Max) 20.4/13.3/57.3/8.9, Orca (Pow2) 26.8/17.9/13.6/41.6,
//! Orca (Oracle) 38.2/25.2/0/36.6, vLLM 96.3% token states (3.7% waste).
//!
//! Which load: Fig. 13 gives the batch sizes of the same runs at 2 req/s (ShareGPT): Orca
//! (Max) 7.00, Pow2 9.81, Oracle 13.62, vLLM 30.42. Every system there was memory-bound.
//! Our roofline step (no kernel or Python overhead) is about twice as fast as the paper's
//! engine, so at 2 req/s our paged allocator is not memory-bound (batch ~13, ~60% of the
//! pool idle). At 4 req/s it batches ~33 requests, as vLLM did in the paper at 2 req/s, and
//! every allocator is memory-bound: that is the load at which we compare the shapes.
//!
//! Ours at 4 req/s, 20,000 requests (RESULTS.md): Max 20.2/13.1/57.8/8.8, paged 96.2% token
//! states (1.6% internal, 1.4% external): both match. Oracle is 50.9/33.2/0/15.4 with a
//! first-fit address space, 39.6/25.7/0/34.4 with Orca's buddy allocator (the rest of each
//! power-of-two block counted as external & others): the buddy run matches the paper. Pow2
//! (38.5/25.0/24.3/12.0 first fit) keeps the order but not the paper's 41.6% external: in the
//! paper both Pow2 and Oracle left ~40% of the pool idle for reasons its text does not give.

mod common;

use vramplan_sim::{simulate, AllocatorKind, LengthDistribution, Report, SyntheticWorkload};

fn breakdown(rate: f64, requests: u64) -> Report {
    breakdown_with(rate, requests, vramplan_sim::Placement::FirstFit)
}

fn breakdown_with(rate: f64, requests: u64, placement: vramplan_sim::Placement) -> Report {
    let mut config = common::opt13b_a100();
    config.contiguous_placement = placement;
    let requests = SyntheticWorkload {
        lengths: LengthDistribution::ShareGpt,
        rate,
        requests,
        parallel_samples: 1,
        beam_width: 1,
        seed: 2023,
    }
    .generate(config.max_seq_len)
    .unwrap();
    simulate(&config, &requests, &AllocatorKind::ALL, &mut |_, _| {}).unwrap()
}

fn pct(x: f64) -> f64 {
    100.0 * x
}

#[test]
fn figure2_shape_when_every_allocator_is_memory_bound() {
    let r = breakdown(4.0, 3000);
    let [max, pow2, oracle, paged, sharing] = &r.allocators[..] else {
        panic!("five allocators")
    };
    // Orca (Max): 7 requests of 2048 slots fit in 15,728 (paper Fig. 13: 7.00); the rest,
    // 1,392 slots = 8.85%, is the paper's 8.9% external & others.
    assert_eq!(max.max_batch, 7);
    assert!(max.mean_batch > 6.8, "{}", max.mean_batch);
    for (ours, paper) in [
        (max.token_states, 20.4),
        (max.reservation, 13.3),
        (max.internal_fragmentation, 57.3),
        (max.external_fragmentation, 8.9),
    ] {
        assert!(
            (pct(ours) - paper).abs() < 3.0,
            "Max: {} vs {paper}",
            pct(ours)
        );
    }
    // Same order of token states as the paper.
    assert!(max.token_states < pow2.token_states);
    assert!(pow2.token_states < oracle.token_states);
    assert!(oracle.token_states < paged.token_states);
    // Broad ranges: contiguous allocators keep 20-55% token states; Pow2 wastes 10-30% to
    // over-reservation; Oracle none; both lose memory to holes and blocking.
    for a in [max, pow2, oracle] {
        assert!(
            (20.0..55.0).contains(&pct(a.token_states)),
            "{}: {}",
            a.name,
            pct(a.token_states)
        );
        assert!(a.external_fragmentation > 0.05, "{}", a.name);
    }
    assert!((10.0..30.0).contains(&pct(pow2.internal_fragmentation)));
    assert_eq!(oracle.internal_fragmentation, 0.0);
    // vLLM: 96.3% token states, waste only in last blocks (< 4% per the vLLM blog).
    assert!(paged.waste() < 0.05, "paged waste {}", paged.waste());
    assert!(paged.token_states > 0.90, "{}", paged.token_states);
    assert!(paged.internal_fragmentation < 0.04);
    assert!(
        paged.mean_batch > 25.0 && paged.mean_batch < 40.0,
        "{}",
        paged.mean_batch
    );
    // Without sharing opportunities, sharing changes nothing.
    assert_eq!(paged.token_states, sharing.token_states);
    for a in &r.allocators {
        assert!((a.memory_sum() - 1.0).abs() < 1e-9);
        assert_eq!(a.completed, 3000);
    }
}

#[test]
fn buddy_placement_reproduces_the_oracle_bar() {
    // With Orca's buddy allocator an exact reservation still occupies a power-of-two block;
    // the rest is lost to the allocator ("external fragmentation & others"). Oracle then
    // lands on the paper's 38.2/25.2/0/36.6 and behaves like Pow2 in memory.
    let r = breakdown_with(4.0, 3000, vramplan_sim::Placement::Buddy);
    let (pow2, oracle) = (&r.allocators[1], &r.allocators[2]);
    for (ours, paper) in [
        (oracle.token_states, 38.2),
        (oracle.reservation, 25.2),
        (oracle.internal_fragmentation, 0.0),
        (oracle.external_fragmentation, 36.6),
    ] {
        assert!(
            (pct(ours) - paper).abs() < 4.0,
            "Oracle: {} vs {paper}",
            pct(ours)
        );
    }
    assert_eq!(pow2.mean_batch, oracle.mean_batch);
}

#[test]
fn figure2_at_the_papers_request_rate() {
    // At 2 req/s the contiguous allocators are still memory-bound (Max batches 7), but our
    // faster paged engine keeps up and leaves memory idle: the waste stays under 5%, the
    // unused memory is free, not fragmented.
    let r = breakdown(2.0, 3000);
    let (max, paged) = (&r.allocators[0], &r.allocators[3]);
    assert!((pct(max.internal_fragmentation) - 57.3).abs() < 3.0);
    assert!(paged.waste() < 0.05);
    assert!(paged.free > 0.3, "{}", paged.free);
    assert!(paged.throughput_rps > 1.9);
    assert!(
        max.throughput_rps < 1.3,
        "Max cannot keep up with 2 req/s: {}",
        max.throughput_rps
    );
}

/// Prints the README table: `cargo test --release -p vramplan-sim --test figure2 -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_figure2_table() {
    for (rate, placement) in [
        (2.0, vramplan_sim::Placement::FirstFit),
        (4.0, vramplan_sim::Placement::FirstFit),
        (2.0, vramplan_sim::Placement::Buddy),
        (4.0, vramplan_sim::Placement::Buddy),
    ] {
        let r = breakdown_with(rate, 20_000, placement);
        println!("rate {rate} req/s, 20,000 requests, {placement:?}");
        println!("| allocator | token states | reservation | internal | external | free | mean batch | req/s |");
        for a in &r.allocators {
            println!(
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
                a.name,
                pct(a.token_states),
                pct(a.reservation),
                pct(a.internal_fragmentation),
                pct(a.external_fragmentation),
                pct(a.free),
                a.mean_batch,
                a.throughput_rps
            );
        }
    }
}

/// Writes the memory-over-time plot of the 4 req/s run to $FIG2_SVG (for looking at it).
#[test]
#[ignore]
fn write_figure2_svg() {
    let path = std::env::var("FIG2_SVG").unwrap_or_else(|_| "/tmp/figure2.svg".into());
    let r = breakdown(4.0, 3000);
    std::fs::write(
        path,
        vramplan_sim::svg::render(&r, "OPT-13B on A100-40GB, ShareGPT at 4 req/s"),
    )
    .unwrap();
}
