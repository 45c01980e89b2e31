//! End-to-end tests of `vramplan inspect`, `vramplan scan` and `vramplan estimate --model PATH`
//! on fixtures written by the reference writers (the `gguf` and `safetensors` Python packages,
//! scripts/gen_fixtures.py, run by scripts/test.sh into $VRAMPLAN_FIXTURES), plus hostile and
//! sparse files made here.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("VRAMPLAN_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        panic!("VRAMPLAN_FIXTURES is not set: run `./scripts/test.sh`, or `python3 scripts/gen_fixtures.py target/fixtures` and set VRAMPLAN_FIXTURES=target/fixtures")
    });
    assert!(
        dir.join("expected.json").is_file(),
        "{} has no expected.json: regenerate the fixtures",
        dir.display()
    );
    dir
}

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap()
}

fn vramplan(args: &[&str], env: &[(&str, PathBuf)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vramplan"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run vramplan")
}

/// The fixtures' HF cache and ollama store as the default stores.
fn store_env(exp: &serde_json::Value, fx: &std::path::Path) -> [(&'static str, PathBuf); 3] {
    [
        ("HF_HOME", fx.join("hf_cache")),
        (
            "HF_HUB_CACHE",
            fx.join(exp["hf_cache"]["hub"].as_str().unwrap()),
        ),
        (
            "OLLAMA_MODELS",
            fx.join(exp["ollama"]["models_dir"].as_str().unwrap()),
        ),
    ]
}

fn json(args: &[&str], env: &[(&str, PathBuf)]) -> serde_json::Value {
    let out = vramplan(args, env);
    assert!(
        out.status.success(),
        "vramplan {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

#[test]
fn inspect_gguf_matches_what_the_writer_was_given() {
    let exp = expected();
    let g = &exp["gguf"]["basic.gguf"];
    let path = fixtures().join(g["path"].as_str().unwrap());
    let v = json(
        &["inspect", path.to_str().unwrap(), "--json", "--tensors"],
        &[],
    );
    assert_eq!(v["format"], "GGUF");
    assert_eq!(v["params"], g["total_params"]);
    assert_eq!(v["weights_bytes"], g["total_bytes"]);
    assert_eq!(v["file_type"], g["file_type_name"]);
    assert_eq!(v["architecture"], g["architecture"]);
    assert_eq!(v["fields"]["num_layers"], g["config"]["num_hidden_layers"]);
    assert_eq!(v["fields"]["hidden_size"], g["config"]["hidden_size"]);
    let tensors = v["tensors"].as_array().unwrap();
    for (want, got) in g["tensors"].as_array().unwrap().iter().zip(tensors) {
        assert_eq!(want["name"], got["name"]);
        assert_eq!(want["type"], got["dtype"]);
        assert_eq!(want["n_bytes"], got["n_bytes"]);
    }
}

#[test]
fn inspect_every_store_and_layout() {
    let exp = expected();
    let fx = fixtures();
    // A sharded safetensors checkpoint by its folder.
    let sh = &exp["safetensors_sharded"];
    let v = json(
        &[
            "inspect",
            fx.join(sh["dir"].as_str().unwrap()).to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(v["format"], "safetensors");
    assert_eq!(v["params"], sh["total_params"]);
    assert_eq!(v["weights_bytes"], sh["total_bytes"]);
    // A split GGUF by its first part.
    let sp = &exp["gguf_split"];
    let v = json(
        &[
            "inspect",
            fx.join(sp["path"].as_str().unwrap()).to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(v["params"], sp["total_params"]);
    assert_eq!(v["split_count"], sp["parts"]);
    // An HF cache repo id, and an ollama name, through their stores.
    let hf = &exp["hf_cache"];
    let v = json(
        &["inspect", hf["repo"].as_str().unwrap(), "--json"],
        &[
            ("HF_HOME", fx.join("hf_cache")),
            ("HF_HUB_CACHE", fx.join(hf["hub"].as_str().unwrap())),
        ],
    );
    assert_eq!(v["format"], "safetensors");
    let ol = &exp["ollama"];
    let v = json(
        &["inspect", ol["name"].as_str().unwrap(), "--json"],
        &[("OLLAMA_MODELS", fx.join(ol["models_dir"].as_str().unwrap()))],
    );
    assert_eq!(v["format"], "GGUF");
}

#[test]
fn estimate_uses_the_files_own_bytes() {
    let exp = expected();
    let s = &exp["safetensors_single"];
    let dir = fixtures().join(s["dir"].as_str().unwrap());
    let v = json(
        &[
            "estimate",
            "--model",
            dir.to_str().unwrap(),
            "--gpu",
            "a10g",
            "--json",
        ],
        &[],
    );
    // One GPU, no parallelism: the weights are exactly the file's tensor bytes.
    assert_eq!(v["weights_bytes"], s["total_bytes"]);
    assert_eq!(v["fits"], true);
    // Asking for another precision computes it instead (here q4_0 is smaller than the file's).
    let q = json(
        &[
            "estimate",
            "--model",
            dir.to_str().unwrap(),
            "--gpu",
            "a10g",
            "--quant",
            "q4_0",
            "--json",
        ],
        &[],
    );
    assert_eq!(q["quant"], "q4_0");
    assert_ne!(q["weights_bytes"], s["total_bytes"]);
}

#[test]
fn scan_finds_every_store_and_checks_the_gpu() {
    let exp = expected();
    let fx = fixtures();
    let v = json(
        &[
            "scan",
            fx.join("safetensors").to_str().unwrap(),
            "--gpu",
            "a10g",
            "--context",
            "4096",
            "--json",
        ],
        &store_env(&exp, &fx),
    );
    let models = v["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"test-org/tiny-llama") && names.contains(&"tiny:latest"),
        "{names:?}"
    );
    assert!(models.len() >= 4, "{names:?}");
    for m in models {
        let fit = &m["fits"][0];
        assert_eq!(fit["gpu"], "a10g", "{m}");
        assert_eq!(fit["fits"], true, "{m}");
        assert!(fit["max_concurrency"].as_u64().unwrap() > 0);
    }
}

#[test]
fn hostile_and_sparse_files() {
    let dir = std::env::temp_dir().join(format!("vramplan-cli-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A GGUF header claiming 2^63 tensors: a one-line error naming the file, exit 2.
    let bad = dir.join("bad.gguf");
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend((1u64 << 63).to_le_bytes());
    b.extend(0u64.to_le_bytes());
    std::fs::write(&bad, &b).unwrap();
    let out = vramplan(&["inspect", bad.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.gguf") && err.trim_end().lines().count() == 1,
        "{err}"
    );
    // A missing file: one line, non-zero.
    let out = vramplan(&["inspect", dir.join("none.gguf").to_str().unwrap()], &[]);
    assert_ne!(out.status.code(), Some(0));
    // A sparse 6 GiB GGUF: the reference fixture's header, then a hole. Only the header is read.
    let exp = expected();
    let src = fixtures().join(exp["gguf"]["basic.gguf"]["path"].as_str().unwrap());
    let sparse = dir.join("sparse.gguf");
    std::fs::copy(&src, &sparse).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap()
        .set_len(6 << 30)
        .unwrap();
    let v = json(&["inspect", sparse.to_str().unwrap(), "--json"], &[]);
    assert_eq!(v["bytes_on_disk"], 6u64 << 30);
    assert!(
        v["header_bytes_read"].as_u64().unwrap() < 1 << 20,
        "{}",
        v["header_bytes_read"]
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `vramplan fit` checks the local stores' models too: GGUF (ollama) under llama.cpp, an HF
/// cache snapshot under vLLM, each in its own precision.
#[test]
fn fit_includes_the_local_stores() {
    let exp = expected();
    let fx = fixtures();
    let v = json(
        &[
            "fit",
            "--gpu",
            "a10g",
            "--host-memory",
            "16GiB",
            "--max-params",
            "1B",
            // The fixtures' models declare a 4,096-token limit.
            "--context",
            "2048",
            "--json",
        ],
        &store_env(&exp, &fx),
    );
    let rows = v["models"].as_array().unwrap();
    let find = |name: &str| {
        rows.iter()
            .find(|r| r["model"] == name)
            .unwrap_or_else(|| panic!("{name} not in {rows:?}"))
    };
    let ollama = find("tiny:latest");
    assert_eq!(ollama["source"], "ollama");
    assert_eq!(ollama["engine"], "llamacpp");
    assert_eq!(ollama["fits"], true, "{ollama}");
    let hf = find("test-org/tiny-llama");
    assert_eq!(hf["source"], "hf-cache");
    assert_eq!(hf["engine"], "vllm");
}

/// Quantization kept beside config.json (scripts/gen_fixtures.py `write_quantized`): the method
/// the file names sizes the weights; config.json's own quantization_config would win.
#[test]
fn quantization_files_beside_config_json_are_read() {
    let exp = expected();
    let fx = fixtures();
    let estimate = |dir: &std::path::Path| {
        json(
            &[
                "estimate",
                "--model",
                dir.to_str().unwrap(),
                "--gpu",
                "l4",
                "--context",
                "2048",
                "--json",
            ],
            &[],
        )
    };
    for (name, quant) in [
        ("modelopt-fp8", "fp8"),
        ("autogptq", "gptq"),
        ("autoawq-config-only", "awq"),
    ] {
        let q = &exp["quantized"][name];
        let v = estimate(&fx.join(q["dir"].as_str().unwrap()));
        assert_eq!(v["quant"], quant, "{name}");
        if let Some(total) = q.get("total_bytes") {
            // The stored bytes, exactly: F8_E4M3 weights and their F32 scales; GPTQ's packed
            // I32 qweight/qzeros/g_idx and F16 scales.
            assert_eq!(v["weights_bytes"], *total, "{name}");
        }
    }
    // Config-only: the AWQ file prices the weights at 4 bits with a scale and zero per 128;
    // without it the same config.json is bf16. LLAMA_CONFIG has 78,144 parameters: bf16 is
    // 156,288 bytes; AWQ keeps embeddings, lm_head and norms (2 × 32 × 64 + 5 × 64 = 4,416
    // params) in 16-bit and packs the rest.
    let dir = std::env::temp_dir().join(format!("vramplan-quantfiles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let awq = fx.join(
        exp["quantized"]["autoawq-config-only"]["dir"]
            .as_str()
            .unwrap(),
    );
    std::fs::copy(awq.join("config.json"), dir.join("config.json")).unwrap();
    let bf16 = estimate(&dir);
    assert_eq!(bf16["quant"], "bf16");
    assert_eq!(bf16["weights_bytes"], 156_288);
    let with_awq = estimate(&awq);
    assert!(with_awq["weights_bytes"].as_u64().unwrap() < 156_288 / 2);
    // A side file that is not JSON is refused naming it, never ignored.
    std::fs::write(dir.join("quantize_config.json"), "{bits: 4").unwrap();
    let out = vramplan(&["estimate", "--model", dir.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("quantize_config.json"), "{err}");
    // config.json's own quantization_config wins over the file (vLLM's order).
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(awq.join("config.json")).unwrap()).unwrap();
    config["quantization_config"] =
        serde_json::json!({"quant_method": "fp8", "activation_scheme": "dynamic"});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(
        dir.join("quantize_config.json"),
        r#"{"bits": 4, "group_size": 128}"#,
    )
    .unwrap();
    assert_eq!(estimate(&dir)["quant"], "fp8");
    let _ = std::fs::remove_dir_all(&dir);
}
