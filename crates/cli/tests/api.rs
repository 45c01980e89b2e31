//! API tests against a real `vramplan serve` on an ephemeral loopback port: every endpoint, the
//! estimate equal to `vramplan estimate --json` and the plans equal to `vramplan plan --json` for
//! the same flags, the OpenAPI document matching
//! what the handler accepts, and bad input (malformed JSON, wrong types, out-of-range values,
//! unknown fields, pasted objects that are not configs, oversize bodies) answered with a 4xx that
//! names the field while the server goes on serving.
//!
//! The HTTP client is a few lines over `TcpStream` rather than a client crate: the tests need to
//! send exactly the bytes they choose (lying Content-Length, chunked oversize bodies).

mod common;

use common::server::{Response, Server};
use serde_json::{json, Value};
use std::process::{Command, Output};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_vramplan");

fn cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run vramplan")
}

fn cli_json(args: &[&str]) -> Value {
    let out = cli(args);
    assert!(
        out.status.success(),
        "vramplan {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("CLI printed JSON")
}

/// A request body as CLI flags: `{"kv_dtype": "fp8"}` → `--kv-dtype fp8`.
fn flags(body: &Value) -> Vec<String> {
    let mut v = vec!["estimate".to_string(), "--json".to_string()];
    for (k, val) in body.as_object().unwrap() {
        v.push(format!("--{}", k.replace('_', "-")));
        match val {
            Value::Bool(true) => {} // a switch: the flag alone
            Value::String(s) => v.push(s.clone()),
            other => v.push(other.to_string()),
        }
    }
    v
}

/// A plan request body as CLI flags: an array is the flag once per entry
/// (`{"gpu": ["h100", "l4"]}` → `--gpu h100 --gpu l4`).
fn plan_flags(body: &Value) -> Vec<String> {
    let mut v = vec!["plan".to_string(), "--json".to_string()];
    for (k, val) in body.as_object().unwrap() {
        let flag = format!("--{}", k.replace('_', "-"));
        let values = match val {
            Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        };
        for item in values {
            v.push(flag.clone());
            v.push(match item {
                Value::String(s) => s,
                other => other.to_string(),
            });
        }
    }
    v
}

/// A 400 whose JSON names `field`.
fn assert_field_error(r: &Response, field: Option<&str>) {
    let v = r.json();
    assert_eq!(r.status, 400, "expected 400, got {}: {v}", r.status);
    assert_eq!(v["field"].as_str(), field, "wrong field in {v}");
    let msg = v["error"].as_str().expect("error text");
    assert!(
        !msg.is_empty() && !msg.contains('\n'),
        "error must be one line: {msg:?}"
    );
}

#[test]
fn models_and_gpus_are_the_cli_catalogue() {
    let s = Server::start();
    let models = s.get("/api/v1/models");
    assert_eq!(models.status, 200);
    assert_eq!(models.header("content-type"), Some("application/json"));
    assert_eq!(models.json(), cli_json(&["models", "--json"]));
    let gpus = s.get("/api/v1/gpus");
    assert_eq!(gpus.status, 200);
    assert_eq!(gpus.json(), cli_json(&["gpus", "--json"]));
}

#[test]
fn estimate_equals_the_cli_json_for_the_same_flags() {
    let s = Server::start();
    let cases = [
        json!({}),
        json!({"model": "llama-3.1-8b", "context": 8192, "kv_dtype": "fp8"}),
        json!({"model": "meta-llama/Llama-3.1-70B-Instruct", "gpu": "a100-80gb", "gpus": 4, "quant": "awq", "batch": 16}),
        json!({"model": "mixtral-8x7b", "gpu": "h100", "gpus": 2, "context": 32768, "batch": 4, "gpu_memory_utilization": 0.85}),
        json!({"model": "llama-3.1-8b", "gpu_memory": "24GiB", "context": 4096, "prefill_chunk": 2048}),
        json!({"model": "llama-3.1-8b", "gpu": "a10g", "formula": "naive"}),
        json!({"model": "llama-3.1-8b", "gpu": "rtx-4090", "quant": "q4_k", "kv_dtype": "q8_0", "batch": 3}),
        // Engine profiles and their own options.
        json!({"model": "llama-3.1-8b", "engine": "vllm", "gpu": "a100-80gb", "max_num_seqs": 128, "kv_dtype": "fp8"}),
        json!({"model": "llama-3.1-70b-instruct", "engine": "vllm", "gpus": 4, "vllm_version": "0.10", "enforce_eager": true}),
        json!({"model": "qwen2.5-7b-instruct", "engine": "sglang", "mem_fraction_static": 0.8, "context": 32768}),
        json!({"model": "llama-3.1-8b", "engine": "llamacpp", "gpu": "rtx-4090", "quant": "q4_k", "cache_type_k": "q8_0", "cache_type_v": "q8_0", "flash_attn": "on"}),
        json!({"model": "llama-3.1-8b", "engine": "ollama", "gpu": "rtx-3090", "quant": "q4_k", "batch": 2}),
    ];
    for body in cases {
        let r = s.estimate(&body);
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        let mut args = flags(&body);
        if body["engine"] == "llamacpp" || body["engine"] == "ollama" {
            // The CLI checks this machine's memory by default; the API only a given size
            // (ollama runs llama-server, whose host buffers are checked the same way).
            args.extend(["--host-memory".to_string(), "none".to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(r.json(), cli_json(&args), "API and CLI differ for {body}");
    }
}

#[test]
fn openapi_documents_exactly_what_the_handler_accepts() {
    let s = Server::start();
    let r = s.get("/api/v1/openapi.json");
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/api/v1/models", "/api/v1/gpus", "/api/v1/openapi.json"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} undocumented");
        assert_eq!(s.get(path).status, 200, "{path}");
    }
    assert!(doc["paths"]["/api/v1/estimate"]["post"]["responses"]["413"].is_object());
    let req = &doc["components"]["schemas"]["EstimateRequest"];
    assert_eq!(req["additionalProperties"], false);
    let props = req["properties"].as_object().unwrap();
    for name in [
        "model",
        "gpu",
        "gpus",
        "context",
        "batch",
        "quant",
        "kv_dtype",
        "gpu_memory_utilization",
        "config",
    ] {
        assert!(props.contains_key(name), "{name} not documented");
    }
    // Every documented field, alone with its example (or default), is accepted.
    for (name, p) in props {
        if name == "config" {
            continue;
        }
        let value = p
            .get("example")
            .or_else(|| p.get("default"))
            .or_else(|| p["enum"].get(0))
            .cloned()
            .unwrap_or_else(|| match p["type"].as_str() {
                Some("integer") => json!(1),
                Some("number") => json!(0.9),
                Some("boolean") => json!(false),
                _ => panic!("{name} has no example, default or enum"),
            });
        let r = s.estimate(&json!({ name.as_str(): value }));
        assert_eq!(
            r.status,
            200,
            "documented field {name} = {value} refused: {}",
            r.text()
        );
    }
    // The documented config fields are read.
    let r = s.estimate(&json!({"config": llama_8b_config()}));
    assert_eq!(r.status, 200, "{}", r.text());
    // Anything undocumented is refused by name.
    for bogus in ["frobnicate", "json", "help", "Model", "kv-dtype"] {
        assert!(!props.contains_key(bogus));
        assert_field_error(&s.estimate(&json!({ bogus: 1 })), Some(bogus));
    }
    // The documented response fields are the ones returned, for each engine profile.
    let engines: Vec<&str> = props["engine"]["enum"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut bodies = vec![
        ("Estimate".to_string(), json!({})),
        ("NaiveEstimate".to_string(), json!({"formula": "naive"})),
    ];
    for e in engines.iter().filter(|e| **e != "generic") {
        bodies.push((format!("Estimate_{e}"), json!({ "engine": e })));
    }
    for (schema, body) in bodies {
        let est = s.estimate(&body).json();
        let documented: Vec<&String> = doc["components"]["schemas"][&schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} undocumented"))
            .keys()
            .collect();
        let returned: Vec<&String> = est.as_object().unwrap().keys().collect();
        assert_eq!(documented, returned, "{schema}");
    }
}

/// meta-llama/Llama-3.1-8B-Instruct config.json fields (the catalogue entry in data/models/llama.toml).
fn llama_8b_config() -> Value {
    json!({
        "_name_or_path": "meta-llama/Llama-3.1-8B-Instruct", "architectures": ["LlamaForCausalLM"],
        "model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 14336, "vocab_size": 128256,
        "max_position_embeddings": 131072, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
        "rope_theta": 500000.0, "rms_norm_eps": 1e-05, "hidden_act": "silu"
    })
}

#[test]
fn a_pasted_config_gives_the_catalogue_numbers() {
    let s = Server::start();
    for engine in ["generic", "vllm", "sglang"] {
        let settings = json!({"gpu": "l40s", "context": 16384, "batch": 4, "kv_dtype": "fp8", "engine": engine});
        let mut pasted = settings.clone();
        pasted["config"] = llama_8b_config();
        let mut named = settings.clone();
        named["model"] = json!("meta-llama/Llama-3.1-8B-Instruct");
        let (a, b) = (s.estimate(&pasted), s.estimate(&named));
        assert_eq!(a.status, 200, "{}", a.text());
        let (mut a, b) = (a.json(), b.json());
        assert_eq!(
            a["model"],
            "pasted config.json (meta-llama/Llama-3.1-8B-Instruct)"
        );
        // Same architecture, same bytes: only the name (and the wording that repeats it) differ.
        a["model"] = b["model"].clone();
        a["naive"]["reason"] = b["naive"]["reason"].clone();
        assert_eq!(a, b, "{engine}");
        // 2 × 32 layers × 8 KV heads × 128 × 1 B (fp8) = 65,536 B per token.
        assert_eq!(b["kv_bytes_per_token"], 65_536);
    }
}

/// deepseek-ai/DeepSeek-V2-Lite config.json fields (the catalogue entry in data/models/deepseek.toml
/// quotes them): latent attention plus 64 routed and 2 shared experts.
fn deepseek_v2_lite_config() -> Value {
    json!({
        "_name_or_path": "deepseek-ai/DeepSeek-V2-Lite", "architectures": ["DeepseekV2ForCausalLM"],
        "model_type": "deepseek_v2", "num_hidden_layers": 27, "hidden_size": 2048,
        "num_attention_heads": 16, "num_key_value_heads": 16, "q_lora_rank": null,
        "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
        "intermediate_size": 10944, "moe_intermediate_size": 1408, "n_routed_experts": 64,
        "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1,
        "vocab_size": 102400, "max_position_embeddings": 163840, "tie_word_embeddings": false,
        "torch_dtype": "bfloat16"
    })
}

#[test]
fn a_pasted_latent_attention_moe_config_is_estimated() {
    let s = Server::start();
    let settings = json!({"gpu": "h100", "context": 8192, "batch": 1});
    let mut pasted = settings.clone();
    pasted["config"] = deepseek_v2_lite_config();
    let r = s.estimate(&pasted);
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(
        a["model"],
        "pasted config.json (deepseek-ai/DeepSeek-V2-Lite)"
    );
    // MLA caches the latent, not heads × head_dim: 27 layers × (512 + 64) × 2 B (bf16) = 31,104 B.
    assert_eq!(a["kv_bytes_per_token"], 31_104);
    // Same architecture as the catalogue entry: same parameters, KV cache and total.
    let mut named = settings.clone();
    named["model"] = json!("deepseek-ai/DeepSeek-V2-Lite");
    let b = s.estimate(&named).json();
    for key in [
        "params",
        "active_params",
        "kv_bytes_per_token",
        "total_bytes",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
    s.assert_alive();
}

#[test]
fn pasted_objects_that_are_not_configs_name_the_missing_field() {
    let s = Server::start();
    // A tokenizer.json-like object.
    let r = s.estimate(
        &json!({"config": {"version": "1.0", "truncation": null, "model": {"type": "BPE"}}}),
    );
    assert_field_error(&r, Some("config.num_hidden_layers"));
    // Without a configuration class to default it (transformers' LlamaConfig would give 2048).
    let mut c = llama_8b_config();
    c["model_type"] = json!("no_such_model");
    c.as_object_mut().unwrap().remove("max_position_embeddings");
    assert_field_error(
        &s.estimate(&json!({"config": c})),
        Some("config.max_position_embeddings"),
    );
    let mut c = llama_8b_config();
    c["hidden_size"] = json!("4096");
    assert_field_error(
        &s.estimate(&json!({"config": c})),
        Some("config.hidden_size"),
    );
    let mut c = llama_8b_config();
    c["num_key_value_heads"] = json!(7);
    assert_field_error(
        &s.estimate(&json!({"config": c})),
        Some("config.num_key_value_heads"),
    );
    let mut c = llama_8b_config();
    c["kv_lora_rank"] = json!("512");
    assert_field_error(
        &s.estimate(&json!({"config": c})),
        Some("config.kv_lora_rank"),
    );
    // Latent attention without its head widths: the first one missing is named.
    let mut c = llama_8b_config();
    c["kv_lora_rank"] = json!(512);
    assert_field_error(
        &s.estimate(&json!({"config": c})),
        Some("config.qk_rope_head_dim"),
    );
    assert_field_error(&s.estimate(&json!({"config": [1, 2, 3]})), Some("config"));
    assert_field_error(
        &s.estimate(&json!({"config": llama_8b_config(), "model": "llama-3.1-8b"})),
        Some("config"),
    );
    s.assert_alive();
}

#[test]
fn bad_requests_get_a_4xx_naming_the_field_and_the_server_keeps_serving() {
    let s = Server::start();
    // Malformed JSON: no field to name.
    for body in [
        &b"{\"context\": "[..],
        b"not json",
        b"",
        b"{\"model\": \"a\",}",
        &[0xff, 0xfe, 0x00][..],
    ] {
        let r = s.post("/api/v1/estimate", body);
        assert_field_error(&r, None);
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"));
    }
    assert_field_error(&s.estimate(&json!([1, 2])), None);
    assert_field_error(&s.estimate(&json!("llama")), None);
    // Deeply nested JSON is refused by the parser's depth limit, not by a stack overflow.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_field_error(&s.post("/api/v1/estimate", deep.as_bytes()), None);
    // Wrong types.
    assert_field_error(&s.estimate(&json!({"context": "8k"})), Some("context"));
    assert_field_error(&s.estimate(&json!({"context": 1.5})), Some("context"));
    assert_field_error(&s.estimate(&json!({"context": [8192]})), Some("context"));
    assert_field_error(
        &s.estimate(&json!({"gpu_memory_utilization": "0.9"})),
        Some("gpu_memory_utilization"),
    );
    assert_field_error(&s.estimate(&json!({"model": 42})), Some("model"));
    assert_field_error(&s.estimate(&json!({"formula": "magic"})), Some("formula"));
    // Out of range: refused by the same checks as the CLI.
    assert_field_error(&s.estimate(&json!({"context": -1})), Some("context"));
    assert_field_error(&s.estimate(&json!({"batch": 0})), Some("batch"));
    assert_field_error(&s.estimate(&json!({"context": 0})), Some("context"));
    assert_field_error(
        &s.estimate(&json!({"context": 1u64 << 40})),
        Some("context"),
    );
    assert_field_error(&s.estimate(&json!({"context": 1e300})), Some("context"));
    assert_field_error(
        &s.post("/api/v1/estimate", b"{\"context\": 18446744073709551616}"),
        Some("context"),
    );
    assert_field_error(
        &s.estimate(&json!({"gpu_memory_utilization": 1.5})),
        Some("gpu_memory_utilization"),
    );
    assert_field_error(
        &s.estimate(&json!({"gpu_memory_utilization": 0})),
        Some("gpu_memory_utilization"),
    );
    assert_field_error(&s.estimate(&json!({"gpus": 3})), Some("gpus"));
    assert_field_error(&s.estimate(&json!({"tp": 0})), Some("tp"));
    assert_field_error(
        &s.estimate(&json!({"gpu_memory": "24"})),
        Some("gpu_memory"),
    );
    // Unknown names.
    assert_field_error(
        &s.estimate(&json!({"model": "no-such-model"})),
        Some("model"),
    );
    assert_field_error(&s.estimate(&json!({"gpu": "voodoo-5"})), Some("gpu"));
    assert_field_error(&s.estimate(&json!({"quant": "q3_zz"})), Some("quant"));
    assert_field_error(&s.estimate(&json!({"kv_dtype": "fp4"})), Some("kv_dtype"));
    assert_field_error(&s.estimate(&json!({"contxt": 8192})), Some("contxt"));
    // Long strings are refused before any name search.
    assert_field_error(
        &s.estimate(&json!({"model": "x".repeat(10_000)})),
        Some("model"),
    );
    s.assert_alive();
}

#[test]
fn no_request_names_a_file_the_server_reads() {
    let s = Server::start();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    for model in [
        manifest,
        "../../Cargo.toml",
        "/etc/passwd",
        "~/.bashrc",
        "file:///etc/hostname",
    ] {
        let r = s.estimate(&json!({ "model": model }));
        assert_field_error(&r, Some("model"));
        // The answer is the catalogue miss, with nothing of the file in it.
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("unknown model"),
            "{}",
            r.text()
        );
        assert!(!r.text().contains("[package]") && !r.text().contains("root:"));
    }
    for (field, value) in [
        ("gpu", "/dev/zero"),
        ("quant", "../x"),
        ("kv_dtype", "..\\x"),
        ("gpu_memory", "/proc/meminfo"),
    ] {
        assert_field_error(&s.estimate(&json!({ field: value })), Some(field));
    }
}

#[test]
fn bodies_over_the_limit_get_413() {
    let s = Server::start();
    // 64 KiB = 65,536 bytes is the documented limit: one byte more is refused.
    let big = format!("{{\"model\": \"{}\"}}", "x".repeat(65_536));
    let r = s.post("/api/v1/estimate", big.as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("65536 bytes"));
    // A declared size over the limit is refused before the body is read.
    let r = s.raw(b"POST /api/v1/estimate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n{");
    assert_eq!(r.status, 413);
    // A chunked body that grows past the limit.
    let mut req = b"POST /api/v1/estimate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..20 {
        req.extend_from_slice(format!("{:x}\r\n{}\r\n", 8192, " ".repeat(8192)).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(s.raw(&req).status, 413);
    // Just under the limit is read (and then judged on its content).
    let pad = " ".repeat(65_536 - 2);
    let ok = format!("{{{pad}}}");
    assert_eq!(ok.len(), 65_536);
    assert_eq!(s.post("/api/v1/estimate", ok.as_bytes()).status, 200);
    s.assert_alive();
}

#[test]
fn parallelism_sizes_that_overflow_are_refused_not_crashed() {
    let s = Server::start();
    // tp × pp overflows 64 bits: 2^62 × 4.
    let r = s.estimate(&json!({"gpus": 5, "tp": 1u64 << 62, "pp": 4}));
    assert!(r.status == 400 || r.status == 500, "{}", r.text());
    assert!(r.json()["error"].is_string());
    assert_eq!(
        r.status,
        400,
        "an overflow in the parallelism check must be a 400, got: {}",
        r.text()
    );
    s.assert_alive();
}

#[test]
fn unknown_paths_and_methods_answer_in_json() {
    let s = Server::start();
    let r = s.get("/api/v1/nope");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let r = s.raw(
        format!(
            "DELETE /api/v1/models HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.addr
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].is_string());
    assert_eq!(s.get("/api/v1/estimate").status, 405);
}

#[test]
fn the_page_and_its_assets_come_from_the_binary_only() {
    let s = Server::start();
    for (path, ty) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").unwrap().starts_with(ty), "{path}");
        let csp = r.header("content-security-policy").unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        let text = r.text();
        // No asset loads anything from elsewhere: the only absolute URL is the SVG namespace name.
        let without_ns = text.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !without_ns.contains("http://")
                && !without_ns.contains("https://")
                && !without_ns.contains("//cdn"),
            "{path} names an outside URL"
        );
    }
    let html = s.get("/").text();
    assert!(html.contains("src=\"/app.js\"") && html.contains("href=\"/style.css\""));
}

#[test]
fn serve_prints_its_address_and_refuses_a_bad_host() {
    let s = Server::start();
    assert!(s.addr.starts_with("127.0.0.1:"));
    let out = cli(&["serve", "--host", "not-an-ip"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

// ---------------------------------------------------------------- POST /api/v1/plan

#[test]
fn plan_equals_the_cli_json_for_the_same_flags() {
    // Both sides get the same long time budget, so a loaded test machine (a debug build, other
    // test binaries beside it) cannot cut one search short and not the other: the comparison is
    // of the searches, not of their speed.
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_vramplan"));
    c.args([
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--plan-time-budget",
        "600",
    ]);
    let s = Server::start_with(c);
    let cases = [
        // The whole catalogue of GPUs, the CLI's defaults otherwise.
        json!({"model": ["llama-3.1-8b"]}),
        // Two models compared, two GPU kinds, a longer context and more users.
        json!({"model": ["llama-3.1-70b", "meta-llama/Llama-3.1-8B-Instruct"], "gpu": ["h100", "l40s"], "context": 16384, "concurrency": 16}),
        // Each engine, with its own options.
        json!({"model": ["qwen2.5-7b-instruct"], "engine": "sglang", "gpu": ["a100-80gb"], "max_gpus": 2, "rate": 1.5, "output_tokens": 512}),
        json!({"model": ["llama-3.1-8b"], "engine": "llamacpp", "gpu": ["rtx-4090", "rtx-3090"], "quant": ["q4_k", "q8_0"], "kv_dtype": ["q8_0"]}),
        json!({"model": ["llama-3.1-8b"], "engine": "vllm", "vllm_version": "0.10", "gpu_memory_utilization": 0.85, "gpu": ["l4"], "top": 3}),
        json!({"model": ["mixtral-8x7b"], "engine": "generic", "gpu": ["a100-80gb", "h100"], "kv_dtype": ["fp8"], "quant": ["fp8"]}),
        // Nothing serves 64 × 128K tokens of Llama 3.2 1B on one T4: no plan, advice instead.
        json!({"model": ["llama-3.2-1b"], "gpu": ["t4"], "max_gpus": 1, "context": 131072, "concurrency": 64}),
    ];
    for mut body in cases {
        body["time_budget"] = json!(600);
        let r = s.plan(&body);
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let args = plan_flags(&body);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let api = r.json();
        assert_eq!(api, cli_json(&args), "API and CLI differ for {body}");
        // Either plans or (possibly empty) advice: advice only when nothing was found.
        let plans = api["plans"].as_array().unwrap();
        assert!(plans.is_empty() || api["advice"].as_array().unwrap().is_empty());
        assert!(
            api["truncated"].is_null(),
            "{body}: cut short: {}",
            api["truncated"]
        );
    }
    // The answers above are not all alike: the last has no plan and says what would help.
    let r = s
        .plan(&json!({"model": ["llama-3.2-1b"], "gpu": ["t4"], "max_gpus": 1, "context": 131072, "concurrency": 64}))
        .json();
    assert_eq!(r["plans"], json!([]));
    let change = r["advice"][0]["change"].as_str().unwrap();
    assert!(
        change.starts_with("meta-llama/Llama-3.2-1B: context of "),
        "{change}"
    );
    // `top` trims only the CLI's table: like --json, the API answers every plan.
    let all = s
        .plan(&json!({"model": ["llama-3.1-8b"], "gpu": ["l4", "l40s"]}))
        .json();
    let top1 = s
        .plan(&json!({"model": ["llama-3.1-8b"], "gpu": ["l4", "l40s"], "top": 1}))
        .json();
    assert!(all["plans"].as_array().unwrap().len() > 1);
    assert_eq!(all, top1);
}

#[test]
fn openapi_documents_the_plan_endpoint() {
    let s = Server::start();
    let doc = s.get("/api/v1/openapi.json").json();
    let post = &doc["paths"]["/api/v1/plan"]["post"];
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/PlanRequest"
    );
    for status in ["200", "400", "413", "500", "503"] {
        assert!(
            post["responses"][status].is_object(),
            "{status} undocumented"
        );
    }
    let req = &doc["components"]["schemas"]["PlanRequest"];
    assert_eq!(req["additionalProperties"], false);
    assert_eq!(req["required"], json!(["model"]));
    let props = req["properties"].as_object().unwrap();
    // Exactly the `plan` flags, --json aside (plan.rs PlanArgs).
    let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "concurrency",
            "context",
            "engine",
            "gpu",
            "gpu_memory_utilization",
            "kv_dtype",
            "max_candidates",
            "max_gpus",
            "model",
            "output_tokens",
            "quant",
            "rate",
            "time_budget",
            "top",
            "vllm_version"
        ]
    );
    for list in ["model", "gpu", "quant", "kv_dtype"] {
        assert_eq!(props[list]["type"], "array", "{list}");
        assert_eq!(props[list]["items"]["type"], "string", "{list}");
    }
    assert_eq!(
        props["engine"]["enum"],
        json!(["vllm", "llamacpp", "sglang", "generic"])
    );
    // Every documented field with its example (or default) is accepted. A small search (one GPU
    // kind, one GPU) keeps each request short; the field under test replaces the base's value.
    for (name, p) in props {
        let value = p
            .get("example")
            .or_else(|| p.get("default"))
            .or_else(|| p["enum"].get(0))
            .cloned()
            .unwrap_or_else(|| match p["type"].as_str() {
                Some("integer") => json!(1),
                Some("number") => json!(0.9),
                Some("boolean") => json!(false),
                _ => panic!("{name} has no example, default or enum"),
            });
        let mut body = json!({"model": ["llama-3.1-8b"], "gpu": ["l4"], "max_gpus": 1});
        body[name.as_str()] = value.clone();
        let r = s.plan(&body);
        assert_eq!(
            r.status,
            200,
            "documented field {name} = {value} refused: {}",
            r.text()
        );
    }
    // Anything undocumented is refused by name (estimate's fields included).
    for bogus in ["batch", "gpus", "config", "json", "Model", "max-gpus"] {
        assert!(!props.contains_key(bogus));
        assert_field_error(
            &s.plan(&json!({"model": ["llama-3.1-8b"], bogus: 1})),
            Some(bogus),
        );
    }
    // The documented answer is the returned one: keys of the result, of a plan, of an advice.
    let schemas = &doc["components"]["schemas"];
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let found = s
        .plan(&json!({"model": ["llama-3.1-8b"], "gpu": ["h100"]}))
        .json();
    let advised = s
        .plan(&json!({"model": ["llama-3.2-1b"], "gpu": ["t4"], "max_gpus": 1, "context": 131072, "concurrency": 64}))
        .json();
    assert_eq!(keys(&schemas["PlanResult"]["properties"]), keys(&found));
    assert_eq!(
        keys(&schemas["Deployment"]["properties"]),
        keys(&found["plans"][0])
    );
    assert_eq!(
        keys(&schemas["Advice"]["properties"]),
        keys(&advised["advice"][0])
    );
    assert_eq!(
        schemas["Deployment"]["properties"]["cost_per_hour"]["nullable"],
        true
    );
}

#[test]
fn bad_plan_requests_get_a_400_naming_the_field() {
    let s = Server::start();
    // Unknown model: the catalogue's nearest names, as the CLI says them.
    let r = s.plan(&json!({"model": ["llama-3.1-8bb"]}));
    assert_field_error(&r, Some("model"));
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("unknown model 'llama-3.1-8bb'; nearest: "),
        "{msg}"
    );
    assert!(msg.contains("llama-3.1-8b"), "{msg}");
    let cli_out = cli(&["plan", "--json", "--model", "llama-3.1-8bb"]);
    assert_eq!(cli_out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&cli_out.stderr).trim(),
        format!("error: {msg}")
    );
    // The second of two models is the unknown one.
    assert_field_error(
        &s.plan(&json!({"model": ["llama-3.1-8b", "no-such"]})),
        Some("model"),
    );
    // Zero or absurd sizes: the planner's own checks, pointed at the field that is wrong even
    // when the other one is given too.
    for (body, field) in [
        (
            json!({"model": ["llama-3.1-8b"], "concurrency": 0}),
            "concurrency",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "context": 8192, "concurrency": 0}),
            "concurrency",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "context": 0, "concurrency": 4}),
            "context",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "context": 1u64 << 30, "concurrency": 4}),
            "context",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "context": 8192, "concurrency": 1u64 << 30}),
            "concurrency",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "max_gpus": 0}),
            "max_gpus",
        ),
        (json!({"model": ["llama-3.1-8b"], "rate": 0}), "rate"),
        (json!({"model": ["llama-3.1-8b"], "rate": -2.5}), "rate"),
        (
            json!({"model": ["llama-3.1-8b"], "output_tokens": 8192}),
            "output_tokens",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "gpu_memory_utilization": 1.5}),
            "gpu_memory_utilization",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "vllm_version": "0.1"}),
            "vllm_version",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "gpu": ["voodoo-5"]}),
            "gpu",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "quant": ["q3_zz"]}),
            "quant",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "kv_dtype": ["fp4"]}),
            "kv_dtype",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "engine": "ollama"}),
            "engine",
        ),
        (
            json!({"model": ["llama-3.1-8b"], "concurrency": -1}),
            "concurrency",
        ),
        (json!({"model": ["llama-3.1-8b"], "top": 1.5}), "top"),
    ] {
        assert_field_error(&s.plan(&body), Some(field));
    }
    // Unknown fields, among them estimate's names for similar things.
    assert_field_error(
        &s.plan(&json!({"model": ["llama-3.1-8b"], "concurency": 4})),
        Some("concurency"),
    );
    assert_field_error(
        &s.plan(&json!({"model": ["llama-3.1-8b"], "batch": 4})),
        Some("batch"),
    );
    // Wrong types.
    assert_field_error(
        &s.plan(&json!({"model": ["llama-3.1-8b"], "concurrency": "8"})),
        Some("concurrency"),
    );
    assert_field_error(
        &s.plan(&json!({"model": ["llama-3.1-8b"], "rate": "fast"})),
        Some("rate"),
    );
    assert_field_error(&s.plan(&json!({"model": [42]})), Some("model"));
    assert_field_error(
        &s.plan(&json!({"model": [["llama-3.1-8b"]]})),
        Some("model"),
    );
    assert_field_error(
        &s.plan(&json!({"model": {"id": "llama-3.1-8b"}})),
        Some("model"),
    );
    // An array where a string or a number is expected, and a string where an array is.
    let r = s.plan(&json!({"model": ["llama-3.1-8b"], "engine": ["vllm"]}));
    assert_field_error(&r, Some("engine"));
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .ends_with("got an array"));
    assert_field_error(
        &s.plan(&json!({"model": ["llama-3.1-8b"], "vllm_version": ["0.10"]})),
        Some("vllm_version"),
    );
    assert_field_error(
        &s.plan(&json!({"model": ["llama-3.1-8b"], "context": [8192]})),
        Some("context"),
    );
    let r = s.plan(&json!({"model": "llama-3.1-8b"}));
    assert_field_error(&r, Some("model"));
    assert_eq!(
        r.json()["error"],
        "model must be an array of strings, got a string"
    );
    assert_field_error(
        &s.plan(&json!({"model": ["llama-3.1-8b"], "gpu": "h100"})),
        Some("gpu"),
    );
    // A missing or empty model list: the CLI's "required" error.
    assert_field_error(&s.plan(&json!({})), Some("model"));
    assert_field_error(&s.plan(&json!({"model": []})), Some("model"));
    assert_field_error(&s.plan(&json!({"model": null})), Some("model"));
    // More entries than a list takes.
    assert_field_error(
        &s.plan(&json!({"model": vec!["llama-3.1-8b"; 17]})),
        Some("model"),
    );
    // Paths: refused outside `model`; in `model`, only a catalogue miss (no file is read).
    assert_field_error(
        &s.plan(&json!({"model": ["llama-3.1-8b"], "gpu": ["../h100"]})),
        Some("gpu"),
    );
    let r = s.plan(&json!({"model": ["/etc/passwd"]}));
    assert_field_error(&r, Some("model"));
    assert!(!r.text().contains("root:"));
    // Malformed JSON and bodies that are not objects.
    for body in [
        &b"{\"model\": ["[..],
        b"not json",
        b"",
        b"[\"llama-3.1-8b\"]",
        b"\"llama\"",
    ] {
        assert_field_error(&s.post("/api/v1/plan", body), None);
    }
    // The body limit.
    let big = format!("{{\"model\": [\"{}\"]}}", "x".repeat(65_536));
    assert_eq!(s.post("/api/v1/plan", big.as_bytes()).status, 413);
    let r = s.raw(b"POST /api/v1/plan HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n{");
    assert_eq!(r.status, 413);
    assert_eq!(s.get("/api/v1/plan").status, 405);
    s.assert_alive();
}

#[test]
fn plan_searches_do_not_stop_estimates() {
    let s = Server::start();
    let body = json!({"model": ["llama-3.1-70b"], "concurrency": 8}).to_string();
    // More simultaneous full searches than the server runs at once: each is answered, with the
    // plans or a 503 that says when to retry, and estimates are answered meanwhile.
    let answers: Vec<Response> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..5)
            .map(|_| scope.spawn(|| s.post("/api/v1/plan", body.as_bytes())))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let est = s.estimate(&json!({"model": "llama-3.1-8b"}));
        assert_eq!(est.status, 200, "{}", est.text());
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut plans = Vec::new();
    for r in &answers {
        match r.status {
            200 => plans.push(r.json()),
            503 => {
                assert_eq!(r.header("retry-after"), Some("1"));
                assert!(r.json()["error"].as_str().unwrap().contains("try again"));
            }
            other => panic!("status {other}: {}", r.text()),
        }
    }
    assert!(!plans.is_empty());
    assert!(plans.windows(2).all(|w| w[0] == w[1]));
    // Once they are done, the next search runs.
    assert_eq!(s.post("/api/v1/plan", body.as_bytes()).status, 200);
    s.assert_alive();
}

// ---------------------------------------------------------------- POST /api/v1/fit

#[test]
fn fit_equals_the_cli_json_for_the_same_flags() {
    let s = Server::start();
    let post = |body: &Value| s.post("/api/v1/fit", body.to_string().as_bytes());
    let r = post(
        &json!({"gpu": "RTX 4090", "host_memory": "64GiB", "family": "llama-3.1", "engine": ["vllm", "llamacpp"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let cli = cli_json(&[
        "fit",
        "--gpu",
        "RTX 4090",
        "--host-memory",
        "64GiB",
        "--family",
        "llama-3.1",
        "--engine",
        "vllm",
        "--engine",
        "llamacpp",
        "--no-local",
        "--json",
    ]);
    assert_eq!(r.json(), cli);
    assert_eq!(cli["hardware"]["gpu"], "rtx-4090");
    // The server detects nothing: gpu is required, named as the field at fault.
    let r = post(&json!({"context": 8192}));
    assert_field_error(&r, Some("gpu"));
    // The local stores are not the visitor's to ask for.
    let r = post(&json!({"gpu": "h100", "no_local": false}));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(&json!({"gpu": "h100", "min_params": "lots"}));
    assert_field_error(&r, Some("min_params"));
    s.assert_alive();
}
