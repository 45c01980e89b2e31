//! How fast a model on the Hub is sized: the `vramplan` binary against the loopback Hub
//! (crates/testhub) with 50 ms of latency added to every response of every server (Hub, CDN,
//! registry), as a user would run it — process start, catalogue, requests, parsing, estimate.
//!
//! ```text
//! VRAMPLAN_FIXTURES=$PWD/target/fixtures cargo bench -p vramplan --bench hub
//! ```
//!
//! Scenarios (issue 13's targets in brackets):
//! - a Llama-3.1-70B-shaped checkpoint in 30 safetensors shards, cold cache [≤ 3 sequential
//!   round trips, < 0.4 s, headers + 64 KiB per file];
//! - a 70B Q4_K_M GGUF with a 9.2 MB header, cold cache [< 0.5 s];
//! - the same, cached: the revision check only [1 request, < 80 ms];
//! - the same, `--offline` [0 requests, < 20 ms].
//!
//! Each scenario runs `VRAMPLAN_BENCH_RUNS` times (default 7); the median, min and max wall
//! times are printed with the requests and bytes the servers saw per run. A criterion harness
//! would time a closure in-process; what matters here is the whole command, so this is a plain
//! `harness = false` bench that spawns it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vramplan_testhub::{fixtures_dir, TestHub};

const BIN: &str = env!("CARGO_BIN_EXE_vramplan");

fn command(hub: &TestHub, cache: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("HF_ENDPOINT", hub.endpoint())
        .env("VRAMPLAN_OLLAMA_REGISTRY", hub.registry())
        .env("VRAMPLAN_CACHE_DIR", cache)
        .env("HF_HOME", cache.join("hf"))
        .env("OLLAMA_MODELS", cache.join("ollama"));
    for v in [
        "HF_TOKEN",
        "HF_HUB_OFFLINE",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        c.env_remove(v);
    }
    c
}

struct Run {
    wall: Duration,
    requests: usize,
    bytes: u64,
}

fn once(hub: &TestHub, cache: &Path, args: &[&str]) -> Run {
    hub.clear_hits();
    let t = Instant::now();
    let out = command(hub, cache, args).output().expect("run vramplan");
    let wall = t.elapsed();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits = hub.hits();
    Run {
        wall,
        requests: hits.len(),
        bytes: hits.iter().map(|h| h.bytes()).sum(),
    }
}

fn report(name: &str, target: &str, mut runs: Vec<Run>) {
    runs.sort_by_key(|r| r.wall);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = &runs[runs.len() / 2];
    println!(
        "{name:<44} median {:>7.1} ms  (min {:>7.1}, max {:>7.1})  {:>3} requests  {:>10} bytes   [{target}]",
        ms(median.wall),
        ms(runs[0].wall),
        ms(runs[runs.len() - 1].wall),
        median.requests,
        median.bytes
    );
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is accepted and ignored.
    let runs: usize = std::env::var("VRAMPLAN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let hub = TestHub::start(&fixtures_dir());
    let latency = Duration::from_millis(
        std::env::var("VRAMPLAN_BENCH_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50),
    );
    hub.set_latency(latency);
    println!(
        "loopback Hub, {} ms added to every response; {runs} runs each; binary {BIN}",
        latency.as_millis()
    );
    let scratch = tempfile::tempdir().expect("scratch dir");
    let safetensors = [
        "estimate",
        "--model",
        "loopback/Llama-3.1-70B-shaped",
        "--json",
    ];
    // The generic engine for both: llama.cpp's profile simulates its compute buffers (~15 ms
    // for a 70B), a cost of the estimate, not of reading the Hub.
    let gguf = [
        "estimate",
        "--model",
        "loopback/Llama-3.1-70B-shaped-GGUF:Q4_K_M",
        "--json",
    ];
    for (label, args, cold_target) in [
        (
            "70B safetensors, 30 shards",
            &safetensors[..],
            "< 400 ms, 3 round trips",
        ),
        ("70B Q4_K_M GGUF, 9.2 MB header", &gguf[..], "< 500 ms"),
    ] {
        let cold: Vec<Run> = (0..runs)
            .map(|i| {
                let cache = scratch.path().join(format!("cold-{label}-{i}"));
                once(&hub, &cache, args)
            })
            .collect();
        report(&format!("{label}: cold cache"), cold_target, cold);
        let cache = scratch.path().join(format!("warm-{label}"));
        once(&hub, &cache, args);
        let warm: Vec<Run> = (0..runs).map(|_| once(&hub, &cache, args)).collect();
        report(&format!("{label}: cached"), "1 request, < 80 ms", warm);
        let offline_args: Vec<&str> = args.iter().copied().chain(["--offline"]).collect();
        let offline: Vec<Run> = (0..runs)
            .map(|_| once(&hub, &cache, &offline_args))
            .collect();
        report(
            &format!("{label}: --offline"),
            "0 requests, < 20 ms",
            offline,
        );
    }
    // For scale: a catalogue name, which never touches the network.
    let catalogue: Vec<Run> = (0..runs)
        .map(|_| {
            once(
                &hub,
                scratch.path(),
                &["estimate", "--model", "llama-3.1-70b", "--json"],
            )
        })
        .collect();
    report("catalogue name (no network)", "-", catalogue);
}
