//! `vramplan fit` end to end: hardware found by fake nvidia-smi, rocm-smi and sysctl executables
//! put on PATH (the real tools are not on this machine, and the fakes print what the real ones
//! print: formats in crates/cli/src/hardware.rs), rows checked against `vramplan estimate` for
//! the same configuration, filters, and bad input.

mod common;

use common::fails_with;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A folder holding executables `name` that print `stdout`, used as the whole PATH.
fn fake_tools(test: &str, tools: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vramplan-fit-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, script) in tools {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn run(path: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vramplan"))
        .args(args)
        .env("PATH", path)
        .output()
        .expect("run vramplan")
}

fn fit_json(path: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["fit", "--no-local", "--host-memory", "64GiB", "--json"];
    all.extend_from_slice(args);
    let out = run(path, &all);
    assert!(
        out.status.success(),
        "fit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn row<'a>(v: &'a serde_json::Value, model: &str, engine: &str) -> &'a serde_json::Value {
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == model && r["engine"] == engine)
        .unwrap_or_else(|| panic!("no row for {model} under {engine}"))
}

const NVIDIA_4090: &str = "echo 'NVIDIA GeForce RTX 4090, 24564'";

#[test]
fn an_rtx_4090_found_by_nvidia_smi() {
    let path = fake_tools("4090", &[("nvidia-smi", NVIDIA_4090)]);
    let v = fit_json(&path, &[]);
    let hw = &v["hardware"];
    assert_eq!(hw["gpu"], "rtx-4090");
    assert_eq!(hw["gpus"], 1);
    assert_eq!(hw["detected_by"], "nvidia-smi");
    assert_eq!(hw["host_memory_bytes"], 64u64 << 30);
    assert_eq!(
        (v["context"].as_u64(), v["concurrency"].as_u64()),
        (Some(8192), Some(1))
    );
    // Llama-3.1-8B-Instruct runs in bf16 with an fp16 cache under vLLM: the row is vLLM's
    // estimate for that configuration, as `vramplan estimate` prints it.
    let r = row(&v, "meta-llama/Llama-3.1-8B-Instruct", "vllm");
    assert_eq!(r["fits"], true);
    assert_eq!(
        (r["quant"].as_str(), r["kv_dtype"].as_str()),
        (Some("bf16"), Some("fp16"))
    );
    let out = run(
        &path,
        &[
            "estimate",
            "-m",
            "meta-llama/Llama-3.1-8B-Instruct",
            "-g",
            "rtx-4090",
            "--engine",
            "vllm",
            "--json",
        ],
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["memory_per_gpu_bytes"], e["total_bytes"]);
    assert_eq!(r["max_concurrency"], e["max_concurrency"]);
    assert_eq!(r["max_context"], e["max_context"]);
    // Llama-3.1-70B does not fit one 24 GB card in any vLLM precision: AWQ int4 weights alone
    // are 37 GiB.
    let r = row(&v, "meta-llama/Llama-3.1-70B-Instruct", "vllm");
    assert_eq!(r["fits"], false);
    assert!(
        r["reason"].as_str().unwrap().starts_with("even in awq"),
        "{r}"
    );
    // Sorted by parameters, largest first.
    let params: Vec<u64> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["params"].as_u64().unwrap())
        .collect();
    assert!(params.windows(2).all(|w| w[0] >= w[1]));
    // Models whose own limit is below the context say so.
    let r = row(&v, "tiiuae/falcon-7b", "vllm");
    assert!(
        r["reason"].as_str().unwrap().contains("limit is 2,048"),
        "{r}"
    );
}

#[test]
fn two_gpus_share_a_model_and_llamacpp_offloads_to_host_memory() {
    let two = format!("{NVIDIA_4090}; {NVIDIA_4090}");
    let path = fake_tools("two", &[("nvidia-smi", &two)]);
    let v = fit_json(
        &path,
        &[
            "--family",
            "qwen",
            "--min-params",
            "30B",
            "--max-params",
            "40B",
        ],
    );
    assert_eq!(v["hardware"]["gpus"], 2);
    // Two 24 GB cards hold Qwen2.5-32B in fp8 with tensor parallelism 2 (32.8 GB of fp8
    // weights, 16.4 GB per card); bf16 (65.5 GB) does not fit.
    let r = row(&v, "Qwen/Qwen2.5-32B-Instruct", "vllm");
    assert_eq!(r["fits"], true, "{r}");
    assert_eq!(
        (r["quant"].as_str(), r["tp"].as_u64(), r["pp"].as_u64()),
        (Some("fp8"), Some(2), Some(1))
    );
    for r in v["models"].as_array().unwrap() {
        let p = r["params"].as_u64().unwrap();
        assert!((30_000_000_000..=40_000_000_000).contains(&p), "{r}");
        let named = r["model"].as_str().unwrap().to_lowercase().contains("qwen")
            || r["family"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("qwen");
        assert!(named, "{r}");
    }
    // Llama-3.1-70B in AWQ on two 4090s: 18.6 GiB of weights per card; PCIe cards have no NVLink
    // SHARP buffers, so one 8k-token sequence (16,368 tokens of fp8 KV) fits under vLLM's
    // default release; 32k tokens do not, and the reason is vLLM's own error.
    let v = fit_json(&path, &["--family", "llama-3.1-70b-instruct"]);
    let r = row(&v, "meta-llama/Llama-3.1-70B-Instruct", "vllm");
    assert_eq!(r["fits"], true, "{r}");
    assert_eq!(
        (
            r["quant"].as_str(),
            r["kv_dtype"].as_str(),
            r["tp"].as_u64()
        ),
        (Some("awq"), Some("fp8"), Some(2)),
        "{r}"
    );
    assert_eq!(r["max_context"], 16368, "{r}");
    let v = fit_json(
        &path,
        &["--family", "llama-3.1-70b-instruct", "--context", "32768"],
    );
    let r = row(&v, "meta-llama/Llama-3.1-70B-Instruct", "vllm");
    assert_eq!(r["fits"], false, "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("the estimated maximum model length is 16368"),
        "{r}"
    );
    // One card under llama.cpp: the 70B fits entirely on the GPU in q2_k; Llama-4-Scout (109B)
    // does in no GGUF type, so it runs with part of its weights in the 64 GiB of host memory:
    // as llama-server's --fit chooses for a MoE (common/fit.cpp), every layer on the GPU and
    // the experts of the first layers on the host.
    let v = fit_json(
        &path,
        &["--gpus", "1", "--engine", "llamacpp", "--family", "llama"],
    );
    let r = row(&v, "meta-llama/Llama-3.1-70B-Instruct", "llamacpp");
    assert_eq!(
        (r["fits"].as_bool(), r["offload"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(r["quant"], "q2_k");
    let r = row(&v, "meta-llama/Llama-4-Scout-17B-16E-Instruct", "llamacpp");
    assert_eq!(
        (r["fits"].as_bool(), r["offload"].as_bool()),
        (Some(true), Some(true)),
        "{r}"
    );
    let host = r["host_bytes"].as_u64().unwrap();
    assert!(host > 0 && host <= 64 << 30, "{r}");
    assert_eq!(r["gpu_layers"], r["model_layers"], "{r}");
    // Llama-3.1-405B fits neither way: the reason says both.
    let r = row(&v, "meta-llama/Llama-3.1-405B-Instruct", "llamacpp");
    assert_eq!(r["fits"], false);
    assert!(
        r["reason"].as_str().unwrap().contains("in host memory"),
        "{r}"
    );
}

#[test]
fn amd_and_apple_hardware() {
    // rocm-smi --showproductname --showmeminfo vram --json, as ROCm 6 prints it for an MI300X.
    let rocm = r#"echo '{"card0": {"Card Series": "AMD Instinct MI300X OAM", "Card model": "0x74a1", "VRAM Total Memory (B)": "206141652992", "VRAM Total Used Memory (B)": "0"}}'"#;
    let path = fake_tools("amd", &[("rocm-smi", rocm)]);
    let v = fit_json(&path, &["--max-params", "10B"]);
    assert_eq!(v["hardware"]["gpu"], "mi300x");
    assert_eq!(v["hardware"]["detected_by"], "rocm-smi");
    // An M2 Ultra with 192 GB: 75% for the GPU = 144 GiB; llama.cpp for every model.
    let sysctl = r#"case "$2" in machdep.cpu.brand_string) echo 'Apple M2 Ultra';; hw.memsize) echo 206158430208;; *) exit 1;; esac"#;
    let path = fake_tools("apple", &[("sysctl", sysctl)]);
    let v = fit_json(&path, &["--max-params", "10B"]);
    let hw = &v["hardware"];
    assert_eq!(hw["unified_memory"], true);
    assert_eq!(hw["gpu_memory_bytes"], 144u64 << 30);
    assert!(v["models"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["engine"] == "llamacpp"));
    // Asking for vLLM on a Mac gets the reason, not a number.
    let v = fit_json(&path, &["--max-params", "2B", "--engine", "vllm"]);
    let r = &v["models"][0];
    assert_eq!(r["fits"], false);
    assert!(
        r["reason"].as_str().unwrap().contains("CUDA or ROCm"),
        "{r}"
    );
}

#[test]
fn named_gpus_need_no_detection() {
    let empty = fake_tools("none", &[]);
    // DeepSeek-V3 in its released FP8 on 8 × H100: 79.31 GiB of weights per GPU, over the 78.68
    // GiB free at start-up; on 8 × H200 it runs with tensor parallelism 8.
    let v = fit_json(
        &empty,
        &[
            "--gpu",
            "H100 SXM",
            "--gpus",
            "8",
            "--family",
            "deepseek-v3",
        ],
    );
    assert_eq!(v["hardware"]["detected_by"], "--gpu");
    let r = row(&v, "deepseek-ai/DeepSeek-V3", "vllm");
    assert_eq!(r["fits"], false, "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("79.31 GiB per GPU needed"),
        "{r}"
    );
    let v = fit_json(
        &empty,
        &["--gpu", "h200", "--gpus", "8", "--family", "deepseek-v3"],
    );
    let r = row(&v, "deepseek-ai/DeepSeek-V3", "vllm");
    assert_eq!(r["fits"], true, "{r}");
    assert_eq!(r["tp"], 8);
}

#[test]
fn bad_input_is_one_line() {
    let empty = fake_tools("bad", &[]);
    let out = run(&empty, &["fit", "--no-local", "--host-memory", "8GiB"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no GPU found") && err.contains("--gpu"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1);
    fails_with(&["fit", "--gpu", "rtx 9090"], "unknown GPU");
    fails_with(&["fit", "--gpu", "h100", "--gpus", "0"], "between 1 and 64");
    fails_with(
        &["fit", "--gpu", "h100", "--min-params", "lots"],
        "parameter count",
    );
    fails_with(
        &["fit", "--gpu", "h100", "--context", "-5"],
        "cannot be negative",
    );
    fails_with(
        &["fit", "--gpu", "h100", "--host-memory", "64"],
        "--host-memory",
    );
}
