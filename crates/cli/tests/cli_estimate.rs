//! End-to-end tests of the `vramplan` binary: estimate (exact and naive), models, gpus, and
//! bad input (one-line error, exit code 2, never a panic).

mod common;
use common::{fails_with, json, vramplan};

#[test]
fn readme_example_json_has_the_documented_keys() {
    let v = json(&[
        "estimate",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--gpu",
        "a10g",
        "--context",
        "8192",
        "--batch",
        "16",
        "--json",
    ]);
    for key in [
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
    ] {
        assert!(v.get(key).is_some(), "missing key {key} in {v}");
    }
    // 2 × 32 layers × 8 KV heads × 128 × 2 B = 131,072 B per token; × 8192 × 16 = 17,179,869,184 B.
    assert_eq!(v["kv_bytes_per_token"], 131_072);
    assert_eq!(v["kv_cache_bytes"], 17_179_869_184u64);
    // 16 GB of bf16 weights plus 17 GB of KV cannot fit a 24 GB A10G.
    assert_eq!(v["fits"], false);
    let min_gpus = v["min_gpus"].as_u64().unwrap();
    assert!(min_gpus >= 2, "needs more than one A10G, got {min_gpus}");
    // It does not fit, so the advice names changes that would, each with its figure.
    let advice = v["advice"].as_array().expect("advice when it does not fit");
    assert!(
        advice.iter().any(|a| a["change"]
            .as_str()
            .unwrap()
            .contains("2 × a10g (tensor parallel 2")),
        "{advice:?}"
    );
    assert!(advice
        .iter()
        .all(|a| a["detail"].as_str().unwrap().contains("GB")
            || a["detail"].as_str().unwrap().contains("sequences")));
    let total = v["total_bytes"].as_u64().unwrap();
    let parts: u64 = [
        "weights_bytes",
        "kv_cache_bytes",
        "activation_bytes",
        "overhead_bytes",
    ]
    .iter()
    .map(|k| v[*k].as_u64().unwrap())
    .sum();
    assert!(total >= parts, "total {total} must cover its parts {parts}");
}

#[test]
fn text_output_names_units() {
    let out = vramplan(&[
        "estimate",
        "--model",
        "llama-3.1-8b-instruct",
        "--gpu",
        "a10g",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" GB") && text.contains(" GiB"), "{text}");
    assert!(
        !text.contains(" G ") && !text.contains(" G\n"),
        "bare G in: {text}"
    );
}

#[test]
fn naive_formula_reproduces_the_falcon_article() {
    // 2 × 2 × 32 × 4544 × 1000 × 100 = 58,163,200,000 B (54.17 GiB); 18 requests in 10 GB free.
    let v = json(&[
        "estimate",
        "--model",
        "falcon-7b",
        "--formula",
        "naive",
        "--gpu-memory",
        "24GB",
        "--context",
        "1000",
        "--batch",
        "100",
        "--json",
    ]);
    assert_eq!(v["kv_cache_bytes"], 58_163_200_000u64);
    assert_eq!(v["max_concurrency_article"], 18);
    assert_eq!(v["weights_bytes"], 14_000_000_000u64);
}

#[test]
fn catalogue_listings() {
    let models = json(&["models", "--json"]);
    assert!(models.as_array().unwrap().len() >= 60);
    let hits = json(&["models", "qwen3", "--json"]);
    assert!(hits.as_array().unwrap().iter().all(|m| m["id"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("qwen3")
        || m["aliases"].to_string().to_lowercase().contains("qwen3")));
    let gpus = json(&["gpus", "h100", "--json"]);
    assert!(gpus.as_array().unwrap().iter().any(|g| g["id"] == "h100"));
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    fails_with(&["estimate", "--model", "llama-3.1-8x"], "nearest:");
    fails_with(&["estimate", "--gpu", "h1000"], "unknown GPU 'h1000'");
    fails_with(&["estimate", "--batch", "0"], "at least 1");
    fails_with(&["estimate", "--context", "1000000000000000"], "absurd");
    fails_with(&["estimate", "--quant", "int3"], "unknown precision");
    fails_with(
        &["estimate", "--kv-dtype", "q2_k"],
        "unknown KV-cache dtype",
    );
    fails_with(&["estimate", "--gpu-memory", "24"], "no unit");
    fails_with(&["estimate", "--gpus", "3"], "divisible");
    fails_with(&["models", "zzzzzz-no-such"], "no model matches");
    // clap's own errors (non-numeric) also exit 2.
    let out = vramplan(&["estimate", "--context", "lots"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Names as people type them (issue 16), through the binary.
#[test]
fn names_as_people_type_them() {
    let id = |args: &[&str]| json(args)["model"].as_str().unwrap().to_string();
    assert_eq!(
        id(&[
            "estimate",
            "-m",
            "Mistral-Small-24B-Instruct-2501",
            "--json"
        ]),
        "mistralai/Mistral-Small-24B-Instruct-2501"
    );
    assert_eq!(
        id(&["estimate", "-m", "llama3.1-8b-instruct", "--json"]),
        "meta-llama/Llama-3.1-8B-Instruct"
    );
    let gpu = |name: &str| json(&["estimate", "-g", name, "--json"])["gpu"].clone();
    for (typed, want) in [
        ("RTX 4090", "rtx-4090"),
        ("4090", "rtx-4090"),
        ("H100 SXM", "h100"),
        ("A100 80GB", "a100-80gb"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("AMD Instinct MI300X OAM", "mi300x"),
    ] {
        assert_eq!(gpu(typed), want, "{typed}");
    }
    // `gpus` and `models` search the same way.
    let hits = json(&["gpus", "rtx 4090", "--json"]);
    assert_eq!(hits[0]["id"], "rtx-4090");
    // Suggestions share a word with what was typed; GLM-4.7 is not near gemma-3-4b (GLM-4.6 is
    // in the catalogue).
    let out = vramplan(&["estimate", "-m", "GLM-4.7"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(!err.contains("gemma"), "{err}");
    assert!(err.contains("zai-org/GLM-4.6"), "{err}");
    fails_with(
        &["estimate", "-m", "lama-3.1-8b-instruct"],
        "nearest: meta-llama/Llama-3.1-8B-Instruct,",
    );
}

#[test]
fn mistakes_get_one_line_each() {
    // A path that does not exist is a missing file, not an unknown catalogue model.
    fails_with(
        &["estimate", "--model", "./missing/config.json"],
        "no such file: ./missing/config.json",
    );
    fails_with(&["plan", "-m", "/nowhere/model.gguf"], "no such file");
    // Negative numbers: our message, naming the flag, not clap's "unexpected argument".
    fails_with(
        &["estimate", "--context", "-5"],
        "--context -5: the value cannot be negative",
    );
    fails_with(
        &["plan", "-m", "llama-3.1-8b", "--concurrency=-2"],
        "cannot be negative",
    );
    fails_with(&["simulate", "--rate", "-1"], "cannot be negative");
    // clap's own mistakes, on one line too.
    fails_with(
        &["estimate", "--contxt", "5"],
        "similar argument exists: '--context'",
    );
    fails_with(&["plan"], "required arguments were not provided: --model");
    // A catalogue GPU and a custom memory size are refused together.
    fails_with(
        &["estimate", "--gpu", "h100", "--gpu-memory", "24GiB"],
        "cannot be used with",
    );
}

/// `--help` of every command that takes --model says what it accepts.
#[test]
fn help_says_what_model_accepts() {
    for cmd in ["estimate", "plan", "simulate"] {
        let out = vramplan(&[cmd, "--help"]);
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for needle in [
            "catalogue id",
            "config.json",
            ".gguf",
            "ollama",
            "HF repo id",
        ] {
            assert!(help.contains(needle), "{cmd} --help lacks {needle}");
        }
    }
}

/// Nothing misleading (issue 16): counts in the right number, a context beyond the model's
/// limit flagged, the SGLang fix never the value that failed.
#[test]
fn answers_do_not_mislead() {
    let out = vramplan(&["estimate", "-m", "llama-3.1-8b", "--batch", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 sequence ×") && !text.contains("1 sequences"),
        "{text}"
    );
    let out = vramplan(&["gpus", "rtx-4090"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\n1 GPU\n"));
    // Llama-3.1-8B's limit is 131,072: a warning, and advice that is the context only.
    let v = json(&[
        "estimate",
        "-m",
        "llama-3.1-8b",
        "--context",
        "1000000",
        "--json",
    ]);
    assert!(v["warnings"][0].as_str().unwrap().contains("beyond"), "{v}");
    let advice = v["advice"].as_array().unwrap();
    assert_eq!(advice.len(), 1, "{advice:?}");
    assert_eq!(advice[0]["change"], "context of 131,072 tokens");
    let v = json(&[
        "estimate",
        "-m",
        "llama-3.1-8b",
        "--context",
        "1000000",
        "--engine",
        "sglang",
        "--json",
    ]);
    assert!(v["startup_error"]["message"]
        .as_str()
        .unwrap()
        .contains("greater than the derived context_length (131072)"));
    // SGLang, DeepSeek-V3 at TP 8 with --mem-fraction-static 0.95: no share is enough, and the
    // fix says so instead of repeating 0.95.
    let v = json(&[
        "estimate",
        "-m",
        "deepseek-v3",
        "--engine",
        "sglang",
        "--tp",
        "8",
        "--mem-fraction-static",
        "0.95",
        "--json",
    ]);
    let fix = v["startup_error"]["fix"].as_str().unwrap();
    assert!(
        !fix.contains("0.95") && fix.contains("larger --tp"),
        "{fix}"
    );
    // plan names the model that had no plan.
    let v = json(&[
        "plan",
        "-m",
        "llama-3.1-8b",
        "-m",
        "llama-3.1-405b",
        "-g",
        "rtx-4090",
        "--max-gpus",
        "2",
        "--json",
    ]);
    assert!(!v["plans"].as_array().unwrap().is_empty());
    assert_eq!(v["no_plan"][0]["model"], "meta-llama/Llama-3.1-405B");
    let out = vramplan(&[
        "plan",
        "-m",
        "llama-3.1-8b",
        "-m",
        "llama-3.1-405b",
        "-g",
        "rtx-4090",
        "--max-gpus",
        "2",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("No plan for meta-llama/Llama-3.1-405B"),
        "{text}"
    );
    assert!(!text.contains("Nothing in the search space"), "{text}");
}

#[test]
fn llamacpp_host_memory_is_checked() {
    // -c 2^34 on Llama-3.1-8B: 2 PiB of KV; with no layer fitting the card it all lands in host
    // memory, which is checked like the GPU's.
    let v = json(&[
        "estimate",
        "-m",
        "llama-3.1-8b",
        "--engine",
        "llamacpp",
        "-g",
        "rtx-4090",
        "--context",
        "17179869184",
        "--host-memory",
        "64GiB",
        "--json",
    ]);
    assert_eq!(v["fits"], false, "{v}");
    let host = v["devices"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (host["kind"].as_str(), host["fits"].as_bool()),
        (Some("host"), Some(false))
    );
    assert_eq!(host["memory_bytes"], 64u64 << 30);
    // 32 layers × 2^34 cells × 2048 B: 1 PiB of KV (2 PiB with the K and V of 1024 each).
    assert_eq!(
        host["kv_bytes"].as_u64().unwrap(),
        32 * (1u64 << 34) * 2048 * 2
    );
    assert!(v["warnings"].to_string().contains("host memory"), "{v}");
    // The same with a context that fits, on a machine with enough memory.
    let ok = json(&[
        "estimate",
        "-m",
        "llama-3.1-8b",
        "--engine",
        "llamacpp",
        "-g",
        "rtx-4090",
        "--context",
        "8192",
        "--host-memory",
        "64GiB",
        "--json",
    ]);
    assert_eq!(ok["fits"], true);
}

#[test]
fn llamacpp_two_gpus_and_experts_on_the_host() {
    // An RTX 4090 beside an RTX 5090 with -ts 1,1: 81 layers split 41 / 40.
    let v = json(&[
        "estimate",
        "-m",
        "llama-3.1-70b-instruct",
        "--engine",
        "llamacpp",
        "-q",
        "q4_k_m",
        "-g",
        "rtx-4090",
        "-g",
        "rtx-5090",
        "--tensor-split",
        "1,1",
        "-c",
        "8192",
        "--host-memory",
        "64GiB",
        "--json",
    ]);
    let d = v["devices"].as_array().unwrap();
    assert_eq!(d.len(), 3);
    assert_eq!(
        (d[0]["layers"].as_u64(), d[1]["layers"].as_u64()),
        (Some(41), Some(40))
    );
    assert!(d[1]["name"].as_str().unwrap().contains("5090"));
    // Qwen3-30B-A3B Q8_0 on one 24 GB card: every layer on the GPU, and the fewest layers'
    // experts in host memory that leave 1 GiB free.
    let m = json(&[
        "estimate",
        "-m",
        "qwen3-30b-a3b",
        "--engine",
        "llamacpp",
        "-q",
        "q8_0",
        "-g",
        "rtx-4090",
        "-c",
        "32768",
        "--host-memory",
        "64GiB",
        "--json",
    ]);
    assert_eq!(m["gpu_layers"], 49);
    let n = m["engine_settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "n_cpu_moe")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(n > 0 && n < 48, "{n}");
    assert!(m["margin_bytes"].as_i64().unwrap() >= 1 << 30, "{m}");
    // A dense model has no experts to keep on the host.
    fails_with(
        &[
            "estimate",
            "-m",
            "llama-3.1-8b",
            "--engine",
            "llamacpp",
            "--n-cpu-moe",
            "4",
        ],
        "has none",
    );
    fails_with(
        &[
            "estimate",
            "-m",
            "llama-3.1-8b",
            "--engine",
            "llamacpp",
            "-g",
            "rtx-4090",
            "-g",
            "rtx-4090",
            "--tensor-split",
            "1,2,3",
        ],
        "-ts has 3 values",
    );
}

#[test]
fn sglang_hybrid_request_cap_and_memory_in_use() {
    // Qwen3-Next-80B-A3B bf16 on 4× H100 under SGLang 0.5.18 with its defaults: 707 state slots
    // and 1,239,880 tokens (engine/sglang.rs qwen3_next_on_four_h100s_by_hand); at 4096-token
    // requests SGLang runs min(clamp(⌊1,239,880 ÷ 4096 × 512⌋, 2048, 4096), 1,239,880 // 2,
    // 707 // 5) = 141 (hybrid_request_cap: 3 + 2 ping-pong slots from 0.5.14); 0.5.13 at the
    // same fraction 708 // 3 = 236.
    let run = |version: &str, batch: &str| {
        json(&[
            "estimate",
            "--engine",
            "sglang",
            "--sglang-version",
            version,
            "--model",
            "qwen3-next-80b-a3b-instruct",
            "--gpu",
            "h100",
            "--tp",
            "4",
            "--mem-fraction-static",
            "0.819",
            "-c",
            "4096",
            "-b",
            batch,
            "--json",
        ])
    };
    let setting = |v: &serde_json::Value, name: &str| {
        v["engine_settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["value"].as_str().unwrap().to_string())
    };
    let v = run("0.5.18", "200");
    assert_eq!(v["kv_cache_tokens"], 1_239_880, "{v}");
    assert_eq!(setting(&v, "max_mamba_cache_size").as_deref(), Some("707"));
    assert_eq!(setting(&v, "max_running_requests").as_deref(), Some("141"));
    assert_eq!(v["max_concurrency"], 141);
    assert_eq!(v["fits"], false);
    let v = run("0.5.13", "200");
    assert_eq!(setting(&v, "max_running_requests").as_deref(), Some("236"));
    assert_eq!(v["fits"], true);
    // --gpu-memory-in-use: DeepSeek-R1-Distill-Qwen-7B on an RTX 3090 (25,327,697,920 B) at
    // SGLang 0.4.2, 0.88: 0.43 GiB more in use before the load leaves 0.43 × 2^30 × 0.88 =
    // 406,303,906 B less for the pool, ÷ 57,344 B a token (4 KV heads × 128 × 28 layers × 2 ×
    // 2 B) = 7,085 tokens fewer (112,702 → 105,617; the WSL2 log shows 105,531).
    let r1 = |extra: &[&str]| {
        let mut a = vec![
            "estimate",
            "--engine",
            "sglang",
            "--sglang-version",
            "0.4.2",
            "-m",
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
            "--gpu",
            "rtx-3090",
            "-c",
            "131072",
            "--mem-fraction-static",
            "0.88",
            "--json",
        ];
        a.extend_from_slice(extra);
        json(&a)["kv_cache_tokens"].as_u64().unwrap()
    };
    assert_eq!(r1(&[]), 112_702);
    assert_eq!(r1(&["--gpu-memory-in-use", "0.43GiB"]), 105_617);
    fails_with(
        &[
            "estimate",
            "--engine",
            "sglang",
            "--gpu",
            "rtx-3090",
            "--gpu-memory-in-use",
            "lots",
        ],
        "--gpu-memory-in-use lots",
    );
}

/// ollama before its llama-server switch ran gpt-oss on its own engine: under that scheduler
/// the GPU KV buffer row is the engine's cache (kvcache/causal.go), the 300 MiB ollama logs
/// for gpt-oss:20b at num_ctx 8192 — 12 sliding layers × (4096 + 512) cells + 12 full layers
/// × 8,192 cells, × 2,048 B = 314,572,800 B — not the llama.cpp runner's windows. Today's
/// ollama hands the model to llama-server, whose cache keeps pad(128 + 512, 256) = 768 cells
/// on the sliding layers: 12 × 768 × 2048 + 12 × 8192 × 2048 = 220,200,960 B.
#[test]
fn ollama_gpt_oss_kv_buffer_follows_the_runner() {
    let args = |scheduler: &'static str| {
        [
            "estimate",
            "-m",
            "gpt-oss-20b",
            "--engine",
            "ollama",
            "--ollama-scheduler",
            scheduler,
            "--gpu",
            "rtx-4090",
            "--context",
            "8192",
            "--json",
        ]
    };
    let v = json(&args("estimate"));
    assert_eq!(v["kv_cache_bytes"], 314_572_800u64, "{v}");
    assert_eq!(v["kv_buffer_bytes"], 314_572_800u64, "{v}");
    assert_eq!(v["cpu_kv_buffer_bytes"], 0, "{v}");
    let v = json(&args("llama-server"));
    assert_eq!(v["kv_buffer_bytes"], 220_200_960u64, "{v}");
}
