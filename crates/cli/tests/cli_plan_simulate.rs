//! End-to-end tests of `vramplan plan` and `vramplan simulate`: JSON contracts, the figures
//! they must agree on, and bad input.

mod common;
use common::{fails_with, json, vramplan};

#[test]
fn plan_json_contract_and_order() {
    let v = json(&[
        "plan",
        "--model",
        "llama-3.1-70b-instruct",
        "--context",
        "8192",
        "--concurrency",
        "32",
        "--gpu",
        "h100",
        "--gpu",
        "a100-80gb",
        "--gpu",
        "l40s",
        "--json",
    ]);
    let plans = v["plans"].as_array().unwrap();
    assert!(!plans.is_empty());
    for key in [
        "gpu",
        "gpus",
        "quant",
        "kv_dtype",
        "tp",
        "pp",
        "memory_per_gpu_bytes",
        "gpu_memory_bytes",
        "max_concurrency",
        "decode_tokens_per_s",
        "cost_per_hour",
        "launch",
    ] {
        assert!(
            plans[0].get(key).is_some(),
            "plan lacks {key}: {}",
            plans[0]
        );
    }
    // Cheapest first, and every plan serves the 32 sequences within its GPUs' memory.
    let costs: Vec<f64> = plans
        .iter()
        .filter_map(|p| p["cost_per_hour"].as_f64())
        .collect();
    assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{costs:?}");
    for p in plans {
        assert!(p["max_concurrency"].as_u64().unwrap() >= 32);
        assert!(
            p["memory_per_gpu_bytes"].as_u64().unwrap() <= p["gpu_memory_bytes"].as_u64().unwrap()
        );
        let launch = p["launch"].as_str().unwrap();
        assert!(
            launch.starts_with("vllm serve ") && launch.contains("--max-model-len 8192"),
            "{launch}"
        );
        assert!(
            launch.contains(&format!("--tensor-parallel-size {}", p["tp"])),
            "{launch}"
        );
    }
    assert!(v["advice"].as_array().unwrap().is_empty());
}

#[test]
fn plan_with_nothing_feasible_advises() {
    // A 405B model on at most 2 L4s: nothing fits; the advice names changes with figures.
    let v = json(&[
        "plan",
        "--model",
        "llama-3.1-405b",
        "--gpu",
        "l4",
        "--max-gpus",
        "2",
        "--context",
        "8192",
        "--concurrency",
        "1",
        "--json",
    ]);
    assert!(v["plans"].as_array().unwrap().is_empty());
    let advice = v["advice"].as_array().unwrap();
    assert!(!advice.is_empty(), "{v}");
}

#[test]
fn plan_bad_input() {
    fails_with(&["plan", "--model", "llama-9000"], "nearest:");
    fails_with(
        &["plan", "--model", "llama-3.1-8b", "--concurrency", "0"],
        "at least 1",
    );
    fails_with(
        &["plan", "--model", "llama-3.1-8b", "--gpu", "h1000"],
        "unknown GPU",
    );
    fails_with(&["plan", "--model", "llama-3.1-8b", "--rate=-1"], "--rate");
}

#[test]
fn simulate_reports_every_allocator_and_paged_wastes_little() {
    let v = json(&[
        "simulate",
        "--model",
        "opt-13b",
        "--gpu",
        "a100-40gb",
        "--workload",
        "sharegpt",
        "--rate",
        "4",
        "--requests",
        "3000",
        "--allocator",
        "all",
        "--kv-pool",
        "12GiB",
        "--max-seq-len",
        "2048",
        "--seed",
        "3",
        "--json",
    ]);
    let allocs = v["allocators"].as_array().unwrap();
    assert_eq!(allocs.len(), 5);
    let get = |name: &str| allocs.iter().find(|a| a["name"] == name).unwrap();
    for a in allocs {
        let sum: f64 = [
            "token_states",
            "reservation",
            "internal_fragmentation",
            "external_fragmentation",
            "free",
        ]
        .iter()
        .map(|k| a[*k].as_f64().unwrap())
        .sum();
        assert!(
            (sum - 1.0).abs() < 1e-6,
            "{}: fractions sum to {sum}",
            a["name"]
        );
        for k in [
            "mean_batch",
            "max_batch",
            "throughput_rps",
            "throughput_tps",
            "preemptions",
            "ttft_p99",
            "tpot_p50",
            "e2e_p90",
        ] {
            assert!(a.get(k).is_some(), "{k} missing");
        }
    }
    let paged = get("paged");
    let waste = paged["reservation"].as_f64().unwrap()
        + paged["internal_fragmentation"].as_f64().unwrap()
        + paged["external_fragmentation"].as_f64().unwrap();
    assert!(waste < 0.05, "paged wastes {waste}");
    // The paper's order: Max < Pow2 < Oracle < paged in token states.
    let ts = |n: &str| get(n)["token_states"].as_f64().unwrap();
    assert!(
        ts("contiguous-max") < ts("contiguous-pow2")
            && ts("contiguous-pow2") < ts("contiguous-oracle")
            && ts("contiguous-oracle") < ts("paged")
    );
    // Deterministic for a seed.
    let again = json(&[
        "simulate",
        "--model",
        "opt-13b",
        "--gpu",
        "a100-40gb",
        "--workload",
        "sharegpt",
        "--rate",
        "4",
        "--requests",
        "3000",
        "--allocator",
        "all",
        "--kv-pool",
        "12GiB",
        "--max-seq-len",
        "2048",
        "--seed",
        "3",
        "--json",
    ]);
    assert_eq!(v, again);
}

#[test]
fn simulate_svg_and_bad_input() {
    let dir = std::env::temp_dir().join(format!("vramplan-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("mem.svg");
    let out = vramplan(&[
        "simulate",
        "--requests",
        "200",
        "--allocator",
        "paged",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") || text.starts_with("<?xml"),
        "{}",
        &text[..text.len().min(80)]
    );
    fails_with(&["simulate", "--allocator", "best-fit"], "best-fit");
    fails_with(
        &["simulate", "--workload", "/no/such/trace.csv"],
        "neither sharegpt",
    );
    fails_with(&["simulate", "--requests", "0"], "--requests");
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "arrival_s,prompt_tokens,output_tokens\n0.0,10,5\n1.0,abc,5\n",
    )
    .unwrap();
    fails_with(&["simulate", "--workload", bad.to_str().unwrap()], "line 3");
}

/// A request that can never be admitted is reported, not hidden in a table of zeros.
#[test]
fn simulate_reports_requests_never_admitted() {
    let dir = std::env::temp_dir().join(format!("vramplan-never-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("trace.csv");
    // One request of 50,010 tokens: longer than --max-seq-len 2048.
    std::fs::write(
        &trace,
        "arrival_s,prompt_tokens,output_tokens\n0.1,50000,10\n",
    )
    .unwrap();
    let args = [
        "simulate",
        "--model",
        "opt-13b",
        "--gpu",
        "a100-40gb",
        "--workload",
        trace.to_str().unwrap(),
        "--rate",
        "1",
        "--requests",
        "1",
        "--allocator",
        "paged",
        "--kv-pool",
        "1GiB",
    ];
    let out = vramplan(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("paged: 1 of 1 request never admitted, left out of every figure above: 1 longer than --max-seq-len 2,048."),
        "{text}"
    );
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let v = json(&with_json);
    assert_eq!(v["allocators"][0]["rejected"], 1);
    assert_eq!(v["allocators"][0]["rejected_too_long"], 1);
}
