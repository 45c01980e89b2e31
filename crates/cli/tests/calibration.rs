//! `vramplan calibrate` over the repository's data/calibration (embedded in the binary): the
//! issue's targets where the profiles meet them, and the measured figures where they do not (so
//! that a regression shows).

use std::path::PathBuf;
use std::process::Command;

fn data_dir() -> PathBuf {
    // crates/cli → the workspace root holds data/calibration.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/calibration")
}

/// `vramplan calibrate --json` with `extra` arguments (none: the embedded records).
fn calibrate_json(extra: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vramplan"))
        .args(["calibrate", "--json"])
        .args(extra)
        .output()
        .expect("run vramplan");
    assert!(
        out.status.success(),
        "calibrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn report() -> serde_json::Value {
    calibrate_json(&[])
}

fn summary<'a>(r: &'a serde_json::Value, engine: &str, figure: &str) -> &'a serde_json::Value {
    r["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["engine"] == engine && s["figure"] == figure)
        .unwrap_or_else(|| panic!("no {engine}/{figure} in the summary"))
}

/// The vLLM rows of the report whose record's `vllm_version` passes `keep`.
fn vllm_rows(r: &serde_json::Value, keep: impl Fn(Option<&str>) -> bool) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(data_dir().join("vllm.jsonl")).unwrap();
    let versions: Vec<Option<String>> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["vllm_version"].as_str().map(String::from)
        })
        .collect();
    r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| {
            let record = row["record"].as_str().unwrap();
            let Some(rest) = record.strip_prefix("vllm.jsonl:") else {
                return false;
            };
            let line: usize = rest.split(' ').next().unwrap().parse().unwrap();
            keep(versions[line - 1].as_deref())
        })
        .cloned()
        .collect()
}

/// Median and worst absolute relative error of `figure` over `rows`, and the row count.
fn median_worst(rows: &[serde_json::Value], figure: &str) -> (f64, f64, usize) {
    let mut errs: Vec<f64> = rows
        .iter()
        .filter(|row| row["figure"] == figure)
        .map(|row| row["rel_error"].as_f64().unwrap().abs())
        .collect();
    errs.sort_by(f64::total_cmp);
    let n = errs.len();
    if n == 0 {
        return (0.0, 0.0, 0);
    }
    let median = if n % 2 == 1 {
        errs[n / 2]
    } else {
        (errs[n / 2 - 1] + errs[n / 2]) / 2.0
    };
    (median, errs[n - 1], n)
}

#[test]
fn targets_of_the_issue() {
    let r = report();
    assert_eq!(r["data"], "data/calibration (embedded at build time)");
    // llama.cpp KV buffers: exact on every CPU-run record, cells and MiB.
    for fig in ["kv_cells", "kv_buffer"] {
        let s = summary(&r, "llamacpp", fig);
        assert_eq!(s["met"], true, "{s}");
        assert!(s["records"].as_u64().unwrap() >= 700, "{s}");
    }
    // Weights within 1% for both engines, except vllm.jsonl:52 (gpt-oss-20b attributed to
    // 0.11.0): the 0.11 Marlin layout is 1.7% over its 13.47 GiB, a Triton-layout figure from a
    // 0.12+ run (docs/reference/vllm_releases.md §6: real Marlin and Triton logs of gpt-oss-120b,
    // crates/core/tests/engines_vllm.rs gpt_oss_120b_matches_marlin_and_triton_logs).
    assert_eq!(summary(&r, "llamacpp", "weights")["met"], true);
    for row in r["rows"].as_array().unwrap() {
        if row["engine"] == "vllm" && row["figure"] == "weights" {
            let limit = if row["record"].as_str().unwrap().contains("gpt-oss") {
                0.02
            } else {
                0.01
            };
            assert!(row["rel_error"].as_f64().unwrap().abs() <= limit, "{row}");
        }
    }
    // Issue 14's targets on every release line and GPU with records: vLLM KV median ≤ 2% and
    // p90 ≤ 5%; SGLang's pool median ≤ 3%.
    for line in r["lines"].as_array().unwrap() {
        let fig = line["figure"].as_str().unwrap();
        if (line["engine"] == "vllm" && (fig == "kv_tokens" || fig == "kv_cache"))
            || (line["engine"] == "sglang" && fig == "max_total_num_tokens")
        {
            assert_eq!(line["met"], true, "{line}");
        }
    }
    // The WSL2 RTX 3090 (sglang.jsonl:1) is sized from its logged pre-load free memory; the
    // Windows host's share stays visible: 22.76 GiB logged against 23.59 − 0.40 = 23.19 GiB for a
    // card that runs nothing else (+1.9%).
    let wsl = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| {
            row["engine"] == "sglang"
                && row["figure"] == "free_before_load"
                && row["record"]
                    .as_str()
                    .unwrap()
                    .starts_with("sglang.jsonl:1 ")
        })
        .expect("the WSL2 record's free_before_load row");
    let err = wsl["rel_error"].as_f64().unwrap();
    assert!((0.015..0.025).contains(&err), "{wsl}");
    assert!(r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["gpu"] == "rtx-3090 (WSL2: pre-load memory from the log)"));
    // No failed start predicted to succeed, no successful start predicted to fail.
    for c in r["starts"].as_array().unwrap() {
        assert_eq!(c["started"], c["predicted_start"], "{c}");
    }
    // vLLM KV cache: 3% median, 8% worst.
    let kv = summary(&r, "vllm", "kv_cache");
    assert_eq!(kv["met"], true, "{kv}");
    assert!(kv["records"].as_u64().unwrap() >= 30);
    // vLLM activation peaks within 15%.
    assert_eq!(summary(&r, "vllm", "activation")["met"], true);
    // vLLM: the issue-4 targets (weights within 1%, KV cache 3% median and 8% worst, activation
    // peaks within 15%) on the vLLM 0.19 H100 records the profile was built from.
    let v019 = vllm_rows(&r, |version| version == Some("0.19.0"));
    for (figure, median, worst) in [
        ("weights", 0.01, 0.01),
        ("kv_cache", 0.03, 0.08),
        ("activation", 0.15, 0.15),
    ] {
        let (m, w, n) = median_worst(&v019, figure);
        assert!(n >= 30, "{figure}: {n} rows");
        assert!(
            m <= median && w <= worst,
            "vLLM 0.19 {figure}: median {m}, worst {w}"
        );
    }
    // llama.cpp compute buffers within 15% (the issue's target). On the CPU-run records the
    // ggml-alloc simulation of the reserve graph is exact: every one of the 470 rows within
    // 0.05% (the log prints two decimals of MiB: 0.005 MiB of ~70 MiB is 0.007%).
    let cb = summary(&r, "llamacpp", "compute_buffer");
    assert_eq!(cb["met"], true, "{cb}");
    let cpu_rows: Vec<&serde_json::Value> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| {
            row["figure"] == "compute_buffer"
                && row["record"]
                    .as_str()
                    .unwrap()
                    .starts_with("llamacpp_cpu_runs.jsonl")
        })
        .collect();
    assert_eq!(cpu_rows.len(), 470);
    for row in cpu_rows {
        assert!(row["rel_error"].as_f64().unwrap().abs() < 0.0005, "{row}");
    }
    // The simulated reserve graph has llama.cpp's node count on every CPU-run record.
    let nodes = summary(&r, "llamacpp", "graph_nodes");
    assert_eq!(nodes["met"], true, "{nodes}");
    assert_eq!(nodes["records"], 470, "{nodes}");
    // The three records llama.cpp refused are refused by the profile too.
    let refused = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["engine"] == "llamacpp"
                && s["reason"]
                    .as_str()
                    .unwrap()
                    .contains("the profile refuses too")
        })
        .count();
    assert_eq!(refused, 3);
}

/// The embedded copy is the repository's files: reading them with --data gives the same rows.
#[test]
fn embedded_records_are_the_repository_files() {
    let embedded = report();
    let dir = data_dir();
    let from_dir = calibrate_json(&["--data".as_ref(), dir.as_os_str()]);
    assert_eq!(from_dir["data"], dir.display().to_string());
    for key in ["rows", "summary", "skipped"] {
        assert_eq!(embedded[key], from_dir[key], "{key}");
    }
    // Every record file of the repository is read: 56 vLLM + 473 CPU runs + 28 llama.cpp logs
    // (the sglang file is not calibrated yet), each either compared or skipped with a reason.
    let mut records: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for row in embedded["rows"].as_array().unwrap() {
        records.insert(row["record"].as_str().unwrap().to_string());
    }
    for s in embedded["skipped"].as_array().unwrap() {
        records.insert(s["record"].as_str().unwrap().to_string());
    }
    let count = |prefix: &str| records.iter().filter(|r| r.starts_with(prefix)).count();
    let lines = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    };
    assert_eq!(count("vllm.jsonl:"), lines("vllm.jsonl"));
    assert_eq!(
        count("llamacpp_cpu_runs.jsonl:"),
        lines("llamacpp_cpu_runs.jsonl")
    );
    assert_eq!(count("llamacpp.jsonl:"), lines("llamacpp.jsonl"));
    assert_eq!(
        count("llamacpp_truth/cpu_runs.jsonl:"),
        lines("llamacpp_truth/cpu_runs.jsonl")
    );
    // --truth DIR reads the ground-truth records from another folder: the same rows here.
    let truth = dir.join("llamacpp_truth");
    let from_truth = calibrate_json(&["--truth".as_ref(), truth.as_os_str()]);
    assert_eq!(embedded["rows"], from_truth["rows"]);
}

#[test]
fn llamacpp_ground_truth_buffers_on_every_architecture() {
    let r = report();
    // KV and output buffers to the log's 0.01 MiB on every context of every architecture the
    // description covers: llama, mistral (llama and mistral3), qwen2, qwen3, phi3 (its window
    // ignored), gemma2 (with and without its window key: the loader's default 4096), gemma3,
    // gemma3n (KV only in the first 20 layers), falcon, starcoder2, qwen3moe, mixtral, gpt-oss,
    // deepseek2 (MLA) and llama4 (chunked).
    for fig in ["kv_buffer", "output_buffer"] {
        let s = summary(&r, "llamacpp-truth", fig);
        assert_eq!(s["met"], true, "{s}");
        assert!(s["records"].as_u64().unwrap() >= 390, "{s}");
    }
    let rows = r["rows"].as_array().unwrap();
    let mut archs: Vec<&str> = rows
        .iter()
        .filter(|x| x["engine"] == "llamacpp-truth" && x["figure"] == "kv_buffer")
        .filter_map(|x| x["record"].as_str()?.split_whitespace().nth(1))
        .collect();
    archs.sort();
    archs.dedup();
    assert!(archs.len() >= 17, "{archs:?}");
    // The simulated graphs have llama.cpp's node count on every run they cover.
    let nodes = summary(&r, "llamacpp-truth", "graph_nodes");
    assert_eq!(nodes["met"], true, "{nodes}");
    assert!(nodes["records"].as_u64().unwrap() >= 160, "{nodes}");
    // Compute buffers: every builder's reserve graph is simulated through ggml-alloc (issue 15's
    // target: 1% median, 5% worst over every harness run). 542 of the 543 runs are exact to
    // the log's 0.01 MiB; the one miss is deepseek2 without flash attention at n_ubatch 2048,
    // 4 unified sequences, 32768 cells: 2476.04 MiB simulated vs 2412.04 logged (+64 MiB =
    // 2.65%), whose graph agrees with llama.cpp's node for node (a difference of the
    // allocator's reuse, not of the graph).
    let cb = summary(&r, "llamacpp-truth", "compute_buffer");
    assert_eq!(cb["met"], true, "{cb}");
    assert!(cb["median_abs_error"].as_f64().unwrap() <= 0.01, "{cb}");
    assert!(cb["worst_abs_error"].as_f64().unwrap() <= 0.05, "{cb}");
    assert_eq!(cb["records"], 543, "{cb}");
    assert_eq!(nodes["records"], 543, "{nodes}");
    let mut compute_archs = std::collections::BTreeSet::new();
    for row in rows
        .iter()
        .filter(|x| x["engine"] == "llamacpp-truth" && x["figure"] == "compute_buffer")
    {
        let rec = row["record"].as_str().unwrap();
        compute_archs.insert(rec.split_whitespace().nth(1).unwrap().to_string());
        if !rec.contains(" deepseek2 c32768 np4u ub2048 fp16/fp16 fa-off") {
            assert!(row["rel_error"].as_f64().unwrap().abs() < 0.0005, "{row}");
        }
    }
    assert_eq!(compute_archs.len(), 23, "{compute_archs:?}");
    // Recurrent and hybrid models are compared, not skipped: the only skipped ground-truth
    // records are the runs llama.cpp itself refused.
    let skipped = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["engine"] == "llamacpp-truth")
        .filter(|s| !s["reason"].as_str().unwrap().contains("refused"))
        .count();
    assert_eq!(skipped, 0);
    // The nine runs llama.cpp refused (an MLA model with different K and V cache types) are
    // refused by the profile too.
    let refused = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["engine"] == "llamacpp-truth")
        .filter(|s| {
            s["reason"]
                .as_str()
                .unwrap()
                .contains("the profile refuses too")
        })
        .count();
    assert_eq!(refused, 9);
}

#[test]
fn missing_data_directory_is_a_one_line_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_vramplan"))
        .args(["calibrate", "--data", "/nonexistent/calibration"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found") && err.contains("--data"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);
}

fn estimate_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vramplan"))
        .arg("estimate")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn engine_profiles_add_their_keys_and_keep_the_others() {
    let common = [
        "params",
        "weights_bytes",
        "kv_bytes_per_token",
        "kv_cache_bytes",
        "activation_bytes",
        "overhead_bytes",
        "total_bytes",
        "gpu_memory_bytes",
        "fits",
        "max_concurrency",
        "max_context",
        "min_gpus",
    ];
    let v = estimate_json(&[
        "-m",
        "llama-3.1-8b",
        "--engine",
        "vllm",
        "--vllm-version",
        "0.19",
        "--gpu-memory-utilization",
        "0.95",
    ]);
    for k in common.iter().chain(
        [
            "non_torch_bytes",
            "kv_cache_blocks",
            "kv_cache_tokens",
            "engine_max_concurrency",
            "kv_pool_bytes",
        ]
        .iter(),
    ) {
        assert!(v.get(*k).is_some(), "vllm: missing {k}");
    }
    // Tokens are blocks × 16; the integer concurrency is the floor of vLLM's figure.
    assert_eq!(
        v["kv_cache_tokens"].as_u64().unwrap(),
        v["kv_cache_blocks"].as_u64().unwrap() * 16
    );
    assert_eq!(
        v["max_concurrency"].as_u64().unwrap(),
        v["engine_max_concurrency"].as_f64().unwrap().floor() as u64
    );
    let l = estimate_json(&[
        "-m",
        "llama-3.1-8b",
        "-g",
        "rtx-4090",
        "--engine",
        "llamacpp",
        "-q",
        "q4_k",
        "-c",
        "16384",
        "--np",
        "2",
    ]);
    for k in common.iter().chain(
        [
            "gpu_model_buffer_bytes",
            "cpu_model_buffer_bytes",
            "kv_buffer_bytes",
            "compute_buffer_bytes",
            "gpu_layers",
        ]
        .iter(),
    ) {
        assert!(l.get(*k).is_some(), "llamacpp: missing {k}");
    }
    // 32 layers × 16,384 cells × 2048 B × 2 B (f16 K and V) = 2 GiB, all on the GPU.
    assert_eq!(l["kv_buffer_bytes"], 2u64 << 30);
    assert_eq!(l["gpu_layers"], 33);
    let s = estimate_json(&["-m", "llama-3.1-8b", "--engine", "sglang"]);
    assert!(s["kv_cache_tokens"].as_u64().unwrap() > 400_000);
}

#[test]
fn vllm_start_up_errors_are_reported_with_their_fix() {
    let run = |version: &str| {
        estimate_json(&[
            "-m",
            "falcon-7b",
            "-g",
            "a10g",
            "--engine",
            "vllm",
            "--vllm-version",
            version,
            "--max-model-len",
            "1000",
            "--gpu-memory-utilization",
            "1.0",
        ])
    };
    // 0.34's extensible KV cache takes the budget as a cap: utilization 1.0 starts there
    // (vllm/v1/worker/utils.py request_memory).
    assert!(run("0.34")["startup_error"].is_null());
    let v = run("0.33");
    assert_eq!(v["fits"], false);
    assert!(v["startup_error"]["message"]
        .as_str()
        .unwrap()
        .contains("Free memory on device"));
    assert_eq!(v["startup_error"]["fix"], "--gpu-memory-utilization 0.97");
}
