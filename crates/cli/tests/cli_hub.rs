//! `vramplan` against a Hugging Face Hub, CDN and ollama registry on loopback (crates/testhub),
//! serving repositories of files the reference writers made (scripts/gen_fixtures.py): the
//! answers, the exit codes and one-line errors, and the requests the servers saw.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use vramplan_testhub::{fixtures_dir, Hit, TestHub};

/// The binary with the loopback Hub as its endpoint and every store and cache in `home`; no
/// token, no offline switch and no proxy from the environment that runs the tests.
fn cmd(hub: &TestHub, home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vramplan"));
    c.env("HF_ENDPOINT", hub.endpoint())
        .env("VRAMPLAN_OLLAMA_REGISTRY", hub.registry())
        .env("VRAMPLAN_CACHE_DIR", home.join("cache"))
        .env("HF_HOME", home.join("hf"))
        .env("HF_HUB_CACHE", home.join("hf/hub"))
        .env("OLLAMA_MODELS", home.join("ollama"))
        .env("HOME", home);
    for v in [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        c.env_remove(v);
    }
    c
}

fn run(c: &mut Command, args: &[&str]) -> Output {
    c.args(args).output().expect("run vramplan")
}

fn ok_json(out: Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Exit code `code`, one line on stderr, no panic; the line.
fn fails(out: Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err.trim_end().trim_start_matches("error: ").to_string()
}

fn start() -> (TestHub, tempfile::TempDir) {
    (
        TestHub::start(&fixtures_dir()),
        tempfile::tempdir().unwrap(),
    )
}

fn on(hits: &[Hit], server: &str) -> Vec<Hit> {
    hits.iter()
        .filter(|h| h.server == server)
        .cloned()
        .collect()
}

/// The estimate's JSON with the model's name (which appears in its sentences) taken out.
fn figures(v: &Value) -> String {
    let name = v["model"].as_str().unwrap();
    v.to_string().replace(name, "MODEL")
}

#[test]
fn a_hub_repo_gives_the_same_estimate_as_its_files_on_disk() {
    let (hub, home) = start();
    // The repository's files, downloaded: a folder named as nothing else in the answer is.
    let dir: PathBuf = home.path().join("DownloadedCopy");
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(fixtures_dir().join("safetensors/sharded")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    let args = [
        "--gpu",
        "l4",
        "--context",
        "4096",
        "--engine",
        "vllm",
        "--json",
    ];
    let remote = ok_json(run(
        &mut cmd(&hub, home.path()),
        &[&["estimate", "--model", "test-org/tiny-sharded"], &args[..]].concat(),
    ));
    let local = ok_json(run(
        &mut cmd(&hub, home.path()),
        &[&["estimate", "--model", dir.to_str().unwrap()], &args[..]].concat(),
    ));
    assert_eq!(remote["model"], "test-org/tiny-sharded");
    assert_eq!(local["model"], "DownloadedCopy");
    assert_eq!(figures(&remote), figures(&local));
}

#[test]
fn the_second_run_asks_once_and_offline_never() {
    let (hub, home) = start();
    let args = [
        "estimate",
        "--model",
        "loopback/Llama-3.1-70B-shaped",
        "--gpu",
        "h100",
        "--gpus",
        "4",
        "--json",
    ];
    let first = ok_json(run(&mut cmd(&hub, home.path()), &args));
    assert_eq!(first["params"], 70_553_706_496u64);
    assert_eq!(hub.hits().len(), 3 + 30 * 2);
    hub.clear_hits();
    let second = ok_json(run(&mut cmd(&hub, home.path()), &args));
    let hits = hub.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0]
        .path
        .starts_with("/api/models/loopback/Llama-3.1-70B-shaped/revision/main"));
    assert_eq!(second, first);
    hub.clear_hits();
    let offline = ok_json(run(
        &mut cmd(&hub, home.path()),
        &[&args[..], &["--offline"]].concat(),
    ));
    assert_eq!(offline, first);
    let env_offline = ok_json(run(
        cmd(&hub, home.path()).env("HF_HUB_OFFLINE", "1"),
        &args,
    ));
    assert_eq!(env_offline, first);
    assert!(hub.hits().is_empty(), "{:?}", hub.hits());
    // Not cached, offline: said at once, exit 2.
    let e = fails(
        run(
            &mut cmd(&hub, home.path()),
            &["estimate", "-m", "test-org/tiny-llama", "--offline"],
        ),
        2,
    );
    assert!(
        e.starts_with("test-org/tiny-llama@main is not in the cache and --offline"),
        "{e}"
    );
    assert!(hub.hits().is_empty());
}

#[test]
fn tokens_come_from_hf_token_or_the_token_file_and_stay_on_the_hub() {
    let (hub, home) = start();
    hub.set_token("hf_loopback");
    let e = fails(
        run(
            &mut cmd(&hub, home.path()),
            &["estimate", "-m", "test-org/gated-llama"],
        ),
        2,
    );
    assert!(e.starts_with("test-org/gated-llama is a gated model and no token was given (HTTP 401): accept its licence at "), "{e}");
    // HF_TOKEN.
    let v = ok_json(run(
        cmd(&hub, home.path()).env("HF_TOKEN", "hf_loopback"),
        &["estimate", "-m", "test-org/gated-llama", "--json"],
    ));
    assert_eq!(v["model"], "test-org/gated-llama");
    // The file `hf auth login` writes: $HF_HOME/token.
    std::fs::create_dir_all(home.path().join("hf")).unwrap();
    std::fs::write(home.path().join("hf/token"), "hf_loopback\n").unwrap();
    hub.clear_hits();
    ok_json(run(
        &mut cmd(&hub, home.path()),
        &[
            "estimate",
            "-m",
            "test-org/gated-llama",
            "--json",
            "--refresh",
        ],
    ));
    let hits = hub.hits();
    assert!(on(&hits, "hub")
        .iter()
        .all(|h| h.authorization.as_deref() == Some("Bearer hf_loopback")));
    let cdn = on(&hits, "cdn");
    assert!(
        !cdn.is_empty() && cdn.iter().all(|h| h.authorization.is_none()),
        "{cdn:?}"
    );
    // A token the Hub refuses for this repo.
    let e = fails(
        run(
            cmd(&hub, home.path()).env("HF_TOKEN", "hf_other"),
            &["estimate", "-m", "test-org/gated-llama", "--refresh"],
        ),
        2,
    );
    assert!(
        e.contains("the token from $HF_TOKEN does not give access to it (HTTP 403)"),
        "{e}"
    );
}

#[test]
fn bad_names_and_a_network_that_is_down_are_one_line_each() {
    let (hub, home) = start();
    let e = fails(
        run(
            &mut cmd(&hub, home.path()),
            &["estimate", "-m", "meta-llama/Llama-3.1-8B-Instruct-Typo"],
        ),
        2,
    );
    assert!(e.starts_with("meta-llama/Llama-3.1-8B-Instruct-Typo is not a model on 127.0.0.1 (HTTP 404); nearest catalogue names: "), "{e}");
    assert!(e.contains("meta-llama/Llama-3.1-8B-Instruct"), "{e}");
    let e = fails(
        run(
            &mut cmd(&hub, home.path()),
            &["estimate", "-m", "test-org/tiny-gguf"],
        ),
        2,
    );
    assert!(e.starts_with("test-org/tiny-gguf holds 2 GGUF models: Q8_0/tiny-Q8_0-00001-of-00002.gguf (Q8_0, 2 parts, "), "{e}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let t = Instant::now();
    let e = fails(
        run(
            cmd(&hub, home.path()).env("HF_ENDPOINT", format!("http://{closed}")),
            &["estimate", "-m", "org/some-model"],
        ),
        1,
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(e.starts_with("cannot reach 127.0.0.1: "), "{e}");
    assert!(
        e.contains("the network may be down; --offline") && e.contains("`vramplan models`"),
        "{e}"
    );
    let e = fails(
        run(
            cmd(&hub, home.path()).env("HF_ENDPOINT", "ftp://x"),
            &["estimate", "-m", "org/some-model"],
        ),
        2,
    );
    assert_eq!(
        e,
        "HF_ENDPOINT='ftp://x' is not an http(s) URL such as https://huggingface.co"
    );
    // Catalogue names never touch the network.
    hub.clear_hits();
    ok_json(run(
        &mut cmd(&hub, home.path()),
        &[
            "estimate",
            "-m",
            "meta-llama/Llama-3.1-8B-Instruct",
            "--json",
        ],
    ));
    assert!(hub.hits().is_empty());
}

#[test]
fn repos_without_safetensors_or_gguf_are_sized_from_config_with_a_warning() {
    let (hub, home) = start();
    for (repo, needle) in [
        (
            "test-org/pytorch-only",
            "PyTorch pickle files (pytorch_model.bin), which are never read",
        ),
        (
            "test-org/config-only",
            "no weights files (safetensors, GGUF or PyTorch)",
        ),
    ] {
        let v = ok_json(run(
            &mut cmd(&hub, home.path()),
            &["estimate", "-m", repo, "--json"],
        ));
        let w: Vec<&str> = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert!(w.iter().any(|w| w.contains(needle)), "{repo}: {w:?}");
        // bf16 from the config's torch_dtype.
        assert_eq!(v["quant"], "bf16");
        let text = run(&mut cmd(&hub, home.path()), &["estimate", "-m", repo]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains(&format!("warning: {}", w[0])), "{text}");
    }
}

#[test]
fn inspect_lists_a_gguf_repo_and_reads_a_tag() {
    let (hub, home) = start();
    let v = ok_json(run(
        &mut cmd(&hub, home.path()),
        &["inspect", "test-org/tiny-gguf", "--json"],
    ));
    assert_eq!(v["repo"], "test-org/tiny-gguf");
    let files: Vec<(&str, &str)> = v["gguf_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["file"].as_str().unwrap(), f["quant"].as_str().unwrap()))
        .collect();
    assert_eq!(
        files,
        [
            ("Q8_0/tiny-Q8_0-00001-of-00002.gguf", "Q8_0"),
            ("tiny-Q4_K_M.gguf", "Q4_K_M")
        ]
    );
    let v = ok_json(run(
        &mut cmd(&hub, home.path()),
        &["inspect", "test-org/tiny-gguf:Q8_0", "--json"],
    ));
    assert_eq!(v["format"], "GGUF");
    assert_eq!(v["split_count"], 2);
    assert_eq!(v["file_type"], "Q8_0");
    assert_eq!(v["weights_bytes"], expected()["gguf_split"]["total_bytes"]);
    // A catalogue name has no files to inspect.
    let e = fails(
        run(&mut cmd(&hub, home.path()), &["inspect", "no-such-thing"]),
        2,
    );
    assert_eq!(
        e,
        "no-such-thing: no such file or directory, Hugging Face repo or ollama model"
    );
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("expected.json")).unwrap())
        .unwrap()
}

#[test]
fn ollama_names_not_found_locally_come_from_the_registry() {
    let (hub, home) = start();
    let v = ok_json(run(
        &mut cmd(&hub, home.path()),
        &["inspect", "tiny:latest", "--json"],
    ));
    assert_eq!(
        v["weights_bytes"],
        expected()["gguf"]["basic.gguf"]["total_bytes"]
    );
    assert!(v["origin"]["Registry"]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let v = ok_json(run(
        &mut cmd(&hub, home.path()),
        &[
            "estimate",
            "-m",
            "ollama://tiny:latest",
            "--engine",
            "ollama",
            "--json",
        ],
    ));
    assert_eq!(v["engine"], "ollama");
    let e = fails(
        run(
            &mut cmd(&hub, home.path()),
            &["estimate", "-m", "ollama://nope:1b"],
        ),
        2,
    );
    assert!(
        e.starts_with("ollama model nope:1b is not in the registry 127.0.0.1 (HTTP 404)"),
        "{e}"
    );
}

#[test]
fn plan_and_simulate_take_hub_models() {
    let (hub, home) = start();
    let v = ok_json(run(
        &mut cmd(&hub, home.path()),
        &[
            "plan",
            "-m",
            "test-org/tiny-sharded",
            "--gpu",
            "l4",
            "--context",
            "2048",
            "--concurrency",
            "4",
            "--json",
        ],
    ));
    assert_eq!(v["plans"][0]["model"], "test-org/tiny-sharded");
    let v = ok_json(run(
        &mut cmd(&hub, home.path()),
        &[
            "simulate",
            "-m",
            "test-org/tiny-sharded",
            "--gpu",
            "l4",
            "--requests",
            "20",
            "--json",
        ],
    ));
    assert!(v.is_object());
}

#[test]
fn proxy_variables_are_honoured() {
    let (hub, home) = start();
    let proxy = hub.start_proxy();
    // hub.invalid resolves nowhere but at the proxy.
    let port = hub.endpoint().rsplit(':').next().unwrap().to_string();
    let v = ok_json(run(
        cmd(&hub, home.path())
            .env("HF_ENDPOINT", format!("http://hub.invalid:{port}"))
            .env("HTTPS_PROXY", &proxy)
            .env("HTTP_PROXY", &proxy),
        &["estimate", "-m", "test-org/tiny-llama", "--json"],
    ));
    assert_eq!(v["model"], "test-org/tiny-llama");
    let tunnels: Vec<String> = on(&hub.hits(), "proxy")
        .iter()
        .map(|h| h.path.clone())
        .collect();
    assert!(
        tunnels
            .iter()
            .any(|t| t == &format!("CONNECT hub.invalid:{port}")),
        "{tunnels:?}"
    );
    // NO_PROXY: straight to the Hub, no tunnel.
    hub.clear_hits();
    ok_json(run(
        cmd(&hub, home.path())
            .env("HTTP_PROXY", &proxy)
            .env("NO_PROXY", "127.0.0.1,127.0.0.2"),
        &["estimate", "-m", "test-org/tiny-sharded", "--json"],
    ));
    assert!(on(&hub.hits(), "proxy").is_empty());
}

#[test]
fn the_web_api_reads_hub_ids_server_side_unless_told_not_to() {
    let (hub, home) = start();
    for no_hub in [false, true] {
        let mut c = cmd(&hub, home.path());
        c.args(["serve", "--host", "127.0.0.1", "--port", "0"]);
        if no_hub {
            c.arg("--no-hub");
        }
        let server = common::server::Server::start_with(c);
        let post = |body: &str| server.post("/api/v1/estimate", body.as_bytes());
        let r = post(r#"{"model":"test-org/tiny-sharded","gpu":"l4"}"#);
        if no_hub {
            assert_eq!(r.status, 400, "{}", r.text());
            assert!(r.text().contains("serve --no-hub"), "{}", r.text());
        } else {
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["model"], "test-org/tiny-sharded");
        }
        // Never a path, a local store, another registry or a visitor's offline switch.
        for body in [
            r#"{"model":"ollama://tiny:latest"}"#,
            r#"{"model":"example.com/ns/model:tag"}"#,
            r#"{"model":"../../Cargo.toml"}"#,
        ] {
            let r = post(body);
            assert_eq!(r.status, 400, "{body}: {}", r.text());
        }
        let r = post(r#"{"model":"test-org/tiny-sharded","offline":true}"#);
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(on(&hub.hits(), "hub")
            .iter()
            .all(|h| !h.path.contains("/v2/")));
    }
}

/// The quantization file beside config.json (ModelOpt's hf_quant_config.json, AutoGPTQ's
/// quantize_config.json, AutoAWQ's quant_config.json; scripts/gen_fixtures.py
/// `write_quantized`) read from the Hub as from the folder: the same estimate, the method it
/// names, and the file fetched in the same round trip as config.json.
#[test]
fn quantization_files_beside_config_json_are_read_from_the_hub_as_from_disk() {
    let (hub, home) = start();
    let exp = expected();
    let args = ["--gpu", "l4", "--context", "2048", "--json"];
    for (name, quant) in [
        ("modelopt-fp8", "fp8"),
        ("autogptq", "gptq"),
        ("autoawq-config-only", "awq"),
        ("modelopt-nvfp4-config-only", "nvfp4"),
    ] {
        let q = &exp["quantized"][name];
        let side = q["side"].as_str().unwrap();
        let dir = home.path().join(format!("Copy-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let src = fixtures_dir().join(q["dir"].as_str().unwrap());
        for f in std::fs::read_dir(&src).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
        hub.clear_hits();
        let repo = format!("test-org/{name}");
        let remote = ok_json(run(
            &mut cmd(&hub, home.path()),
            &[&["estimate", "--model", &repo], &args[..]].concat(),
        ));
        let local = ok_json(run(
            &mut cmd(&hub, home.path()),
            &[&["estimate", "--model", dir.to_str().unwrap()], &args[..]].concat(),
        ));
        assert_eq!(remote["quant"], quant, "{name}");
        assert_eq!(
            figures(&remote).replace(&repo, "MODEL"),
            figures(&local).replace(dir.to_str().unwrap(), "MODEL"),
            "{name}"
        );
        if let Some(total) = q.get("total_bytes") {
            assert_eq!(remote["weights_bytes"], *total, "{name}");
        }
        // The side file was asked for once, by the Hub's resolve route (sent on to the CDN).
        let hits = hub.hits();
        let side_hits: Vec<&Hit> = hits
            .iter()
            .filter(|h| h.path.ends_with(&format!("/{side}")))
            .collect();
        assert!(!side_hits.is_empty(), "{name}: {hits:?}");
        assert!(side_hits.iter().all(|h| h.status < 400), "{side_hits:?}");
        // inspect names it among the files read.
        let v = ok_json(run(
            &mut cmd(&hub, home.path()),
            &["inspect", &repo, "--json"],
        ));
        let files = v["files"].to_string();
        assert!(files.contains(side), "{name}: {files}");
        let notes = v["notes"].to_string();
        assert!(notes.contains("quantization read from"), "{notes}");
    }
    // NVFP4 priced through ggml's type of the same layout, with what that misses said.
    let v = ok_json(run(
        &mut cmd(&hub, home.path()),
        &[
            "estimate",
            "-m",
            "test-org/modelopt-nvfp4-config-only",
            "--json",
        ],
    ));
    let w = v["warnings"].to_string();
    assert!(
        w.contains(
            "NVFP4 weights computed from the config are priced at 4.5 bits for every matrix"
        ),
        "{w}"
    );
}

/// Issue 13's "What a user can do" items that the tests above did not reach through the binary:
/// a revision, `--file`, the resolution order (a path on disk, then the catalogue, the local
/// HF cache, the Hub), a private repo without a token.
#[test]
fn revisions_files_and_the_resolution_order_through_the_binary() {
    let (hub, home) = start();
    // ORG/NAME@REVISION: the revision route is asked for that revision.
    let v = ok_json(run(
        &mut cmd(&hub, home.path()),
        &["estimate", "-m", "test-org/tiny-llama@v1.0", "--json"],
    ));
    assert_eq!(v["model"], "test-org/tiny-llama");
    let hits = hub.hits();
    assert!(
        hits.iter().any(|h| h
            .path
            .starts_with("/api/models/test-org/tiny-llama/revision/v1.0?")),
        "{hits:?}"
    );
    assert!(hits.iter().all(|h| !h.path.contains("/main")), "{hits:?}");
    let e = fails(
        run(
            &mut cmd(&hub, home.path()),
            &["estimate", "-m", "test-org/tiny-llama@no-such-branch"],
        ),
        2,
    );
    assert!(e.contains("no-such-branch"), "{e}");
    // --file picks one GGUF of a repository that holds two (without it: the list, above).
    hub.clear_hits();
    let v = ok_json(run(
        &mut cmd(&hub, home.path()),
        &[
            "inspect",
            "test-org/tiny-gguf",
            "--file",
            "tiny-Q4_K_M.gguf",
            "--json",
        ],
    ));
    assert_eq!(v["format"], "GGUF");
    let hits = hub.hits();
    assert!(
        hits.iter().any(|h| h.path.ends_with("/tiny-Q4_K_M.gguf")),
        "{hits:?}"
    );
    assert!(
        hits.iter().all(|h| !h.path.contains("Q8_0")),
        "only the chosen file is read: {hits:?}"
    );
    // A private repository without a token: its name and what to do, in one line.
    let e = fails(
        run(
            &mut cmd(&hub, home.path()),
            &["estimate", "-m", "test-org/private-llama"],
        ),
        2,
    );
    assert!(e.starts_with("test-org/private-llama"), "{e}");
    assert!(e.contains("HF_TOKEN"), "{e}");

    // Resolution order. The local HF cache (the fixtures' snapshot of test-org/tiny-llama)
    // answers before the Hub, with no request.
    let exp = expected();
    let hf_hub = fixtures_dir().join(exp["hf_cache"]["hub"].as_str().unwrap());
    hub.clear_hits();
    let v = ok_json(run(
        cmd(&hub, home.path()).env("HF_HUB_CACHE", &hf_hub),
        &["inspect", "test-org/tiny-llama", "--json"],
    ));
    assert!(
        v["origin"].to_string().contains("HfCache") || v["origin"].to_string().contains("hf_cache"),
        "{}",
        v["origin"]
    );
    assert!(hub.hits().is_empty(), "{:?}", hub.hits());
    // A catalogue id answers before the HF cache and the Hub: no request either.
    let v = ok_json(run(
        cmd(&hub, home.path()).env("HF_HUB_CACHE", &hf_hub),
        &["estimate", "-m", "llama-3.1-8b", "--json"],
    ));
    assert!(
        v["model"].as_str().unwrap().contains("Llama-3.1-8B"),
        "{}",
        v["model"]
    );
    assert!(hub.hits().is_empty(), "{:?}", hub.hits());
    // A path on disk spelled like a repo id wins over all of them.
    let local = home.path().join("test-org/tiny-llama");
    std::fs::create_dir_all(&local).unwrap();
    let sharded = fixtures_dir().join("safetensors/sharded");
    for f in std::fs::read_dir(&sharded).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), local.join(f.file_name())).unwrap();
    }
    let v = ok_json(run(
        cmd(&hub, home.path())
            .env("HF_HUB_CACHE", &hf_hub)
            .current_dir(home.path()),
        &["inspect", "test-org/tiny-llama", "--json"],
    ));
    assert_eq!(v["origin"], "Path");
    assert_eq!(
        v["tensor_count"],
        exp["safetensors_sharded"]["tensors"]
            .as_array()
            .unwrap()
            .len()
    );
    assert!(hub.hits().is_empty(), "{:?}", hub.hits());
}

/// Issue 13's "a hostile server" through the binary: a header length of 2^62, a CDN that
/// ignores Range and sends 4.7 GB a shard, a server that drips a byte at a time. One line,
/// no panic, within the deadline, bounded reads.
#[test]
fn hostile_servers_through_the_binary() {
    let (hub, home) = start();
    let t = Instant::now();
    let e = fails(
        run(
            &mut cmd(&hub, home.path()),
            &["estimate", "-m", "test-org/hostile-header"],
        ),
        2,
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(e.contains("hostile-header"), "{e}");
    hub.clear_hits();
    hub.fault("/cdn/", vramplan_testhub::Fault::IgnoreRange { size: None });
    let v = ok_json(run(
        &mut cmd(&hub, home.path()),
        &["estimate", "-m", "loopback/Llama-3.1-70B-shaped", "--json"],
    ));
    assert_eq!(v["params"], 70_553_706_496u64);
    let sent: u64 = on(&hub.hits(), "cdn").iter().map(Hit::bytes).sum();
    assert!(sent < 30 * (8 << 20), "the CDN sent {sent} bytes");
    hub.clear_faults();
    hub.fault(
        "/cdn/",
        vramplan_testhub::Fault::SlowDrip {
            interval: Duration::from_millis(200),
        },
    );
    let t = Instant::now();
    let out = run(
        &mut cmd(&hub, home.path()),
        &[
            "estimate",
            "-m",
            "test-org/tiny-llama",
            "--refresh",
            "--timeout",
            "2",
        ],
    );
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
}
