//! The Hub client against a Hub on loopback (crates/testhub), not against mocks of our own
//! functions: the fixture repositories are written by the reference writers
//! (scripts/gen_fixtures.py), the servers speak the Hub's, the CDN's and the ollama registry's
//! routes, and every test asserts the answer and the requests and bytes the servers saw.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;
use vramplan_formats::{Format, ModelFile, Origin};
use vramplan_hub::{Found, HubError, Kind, Session, Settings};
use vramplan_testhub::{fixtures_dir, Fault, Hit, TestHub};

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn settings(hub: &TestHub, cache: &Path) -> Settings {
    Settings {
        endpoint: Url::parse(&hub.endpoint()).unwrap(),
        ollama_registry: Url::parse(&hub.registry()).unwrap(),
        token: None,
        offline: false,
        refresh: false,
        cache_dir: Some(cache.to_path_buf()),
        deadline: Duration::from_secs(20),
        other_registries: true,
    }
}

fn start() -> (TestHub, tempfile::TempDir) {
    (
        TestHub::start(&fixtures_dir()),
        tempfile::tempdir().unwrap(),
    )
}

fn model(s: &Settings, target: &str) -> Result<ModelFile, HubError> {
    let session = Session::new(s.clone());
    let r = vramplan_hub::parse_repo_ref(target).expect("a repo id");
    match session.hub(target, &r, None, false)? {
        Found::Model(m) => Ok(*m),
        Found::GgufFiles { .. } => panic!("a list for {target}"),
    }
}

fn on(hits: &[Hit], server: &str) -> Vec<Hit> {
    hits.iter()
        .filter(|h| h.server == server)
        .cloned()
        .collect()
}

fn paths(hits: &[Hit]) -> Vec<String> {
    hits.iter()
        .map(|h| format!("{} {} {}", h.server, h.status, h.path))
        .collect()
}

#[test]
fn a_sharded_checkpoint_is_read_from_its_headers_by_ranges() {
    let (hub, cache) = start();
    let e = expected();
    let m = model(&settings(&hub, cache.path()), "test-org/tiny-sharded").unwrap();
    let sh = &e["safetensors_sharded"];
    // The answer: every tensor's bytes, as the safetensors package wrote them.
    assert_eq!(m.format, Format::Safetensors);
    assert_eq!(m.summary.total_bytes, sh["total_bytes"].as_u64().unwrap());
    assert_eq!(m.summary.total_params, sh["total_params"].as_u64().unwrap());
    assert_eq!(
        m.summary.tensor_count as usize,
        sh["tensors"].as_array().unwrap().len()
    );
    assert!(m.config.is_some(), "config.json attached");
    let sha = e["hub"]["repos"]["test-org/tiny-sharded"].as_str().unwrap();
    assert_eq!(
        m.origin,
        Origin::Hub {
            repo: "test-org/tiny-sharded".into(),
            revision: "main".into(),
            commit: sha.into()
        }
    );
    // The requests: the revision, config.json and the index from the Hub; each shard's 302
    // to the CDN and one range there.
    let hits = hub.hits();
    let h = on(&hits, "hub");
    assert_eq!(
        h.iter()
            .filter(|x| x
                .path
                .starts_with("/api/models/test-org/tiny-sharded/revision/main"))
            .count(),
        1,
        "{:?}",
        paths(&hits)
    );
    assert_eq!(
        h.iter().filter(|x| x.status == 302).count(),
        2,
        "{:?}",
        paths(&hits)
    );
    let cdn = on(&hits, "cdn");
    assert_eq!(cdn.len(), 2, "{:?}", paths(&hits));
    for c in &cdn {
        // Each shard from its start, 64 KiB or the whole (smaller) file, in one range.
        assert_eq!(c.status, 206);
        assert!(c.range.as_deref().unwrap().starts_with("bytes=0-"), "{c:?}");
        assert!(c.bytes() <= 64 * 1024);
    }
    assert_eq!(hits.len(), 1 + 2 + 2 * 2, "{:?}", paths(&hits));
}

#[test]
fn a_30_shard_70b_checkpoint_costs_its_headers_plus_64_kib_a_file() {
    let (hub, cache) = start();
    let e = expected();
    let big = &e["hub"]["llama70_shards"];
    let t = Instant::now();
    let m = model(
        &settings(&hub, cache.path()),
        "loopback/Llama-3.1-70B-shaped",
    )
    .unwrap();
    let took = t.elapsed();
    assert_eq!(m.summary.tensor_count, big["tensors"].as_u64().unwrap());
    assert_eq!(m.summary.total_params, big["params"].as_u64().unwrap());
    assert_eq!(
        m.summary.total_bytes,
        big["weights_bytes"].as_u64().unwrap()
    );
    let hits = hub.hits();
    // 1 revision + config + index + 30 × (302 + one 64 KiB range).
    assert_eq!(hits.len(), 3 + 30 * 2, "{:?}", paths(&hits));
    let cdn_bytes: u64 = on(&hits, "cdn").iter().map(Hit::bytes).sum();
    assert!(cdn_bytes <= 30 * 64 * 1024, "{cdn_bytes}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn round_trips_stay_three_at_50_ms_of_latency() {
    let (hub, cache) = start();
    hub.set_latency(Duration::from_millis(50));
    let t = Instant::now();
    model(
        &settings(&hub, cache.path()),
        "loopback/Llama-3.1-70B-shaped",
    )
    .unwrap();
    let took = t.elapsed();
    // Three sequential round trips, the last with the CDN redirect's hop: 4 × 50 ms, and the
    // 30 shards 8 at a time (4 waves of 2 hops). A sequential client would take 60 × 50 ms.
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[test]
fn the_second_run_makes_one_request_and_offline_none() {
    let (hub, cache) = start();
    let s = settings(&hub, cache.path());
    let first = model(&s, "test-org/tiny-sharded").unwrap();
    hub.clear_hits();
    let second = model(&s, "test-org/tiny-sharded").unwrap();
    let hits = hub.hits();
    assert_eq!(
        paths(&hits),
        ["hub 200 /api/models/test-org/tiny-sharded/revision/main?blobs=true"]
    );
    assert_eq!(second.summary, first.summary);
    assert_eq!(second.header_bytes_read, first.header_bytes_read);
    hub.clear_hits();
    let offline = model(
        &Settings {
            offline: true,
            ..s.clone()
        },
        "test-org/tiny-sharded",
    )
    .unwrap();
    assert!(hub.hits().is_empty());
    assert_eq!(offline.summary, first.summary);
    // --refresh fetches everything again.
    model(&Settings { refresh: true, ..s }, "test-org/tiny-sharded").unwrap();
    assert_eq!(hub.hits().len(), 7, "{:?}", paths(&hub.hits()));
}

#[test]
fn offline_without_a_cache_entry_says_so_without_a_request() {
    let (hub, cache) = start();
    let s = Settings {
        offline: true,
        ..settings(&hub, cache.path())
    };
    let e = model(&s, "test-org/tiny-llama").unwrap_err();
    assert_eq!(e.kind, Kind::NotCached);
    assert!(
        e.message.contains("not in the cache") && e.message.contains("--offline"),
        "{e}"
    );
    assert!(hub.hits().is_empty());
}

#[test]
fn gated_repos_need_a_token_which_never_reaches_the_cdn() {
    let (hub, cache) = start();
    hub.set_token("hf_good");
    let s = settings(&hub, cache.path());
    let e = model(&s, "test-org/gated-llama").unwrap_err();
    assert_eq!(e.kind, Kind::Denied);
    assert!(e.message.starts_with("test-org/gated-llama is a gated model and no token was given (HTTP 401): accept its licence at http://127.0.0.1:"), "{e}");
    assert!(e.message.contains("HF_TOKEN"), "{e}");
    // A token the Hub does not accept for this repository.
    let wrong = Settings {
        token: Some((
            "hf_bad".into(),
            vramplan_hub::settings::TokenSource::Env("HF_TOKEN"),
        )),
        ..s.clone()
    };
    let e = model(&wrong, "test-org/gated-llama").unwrap_err();
    assert!(
        e.message
            .contains("the token from $HF_TOKEN does not give access to it (HTTP 403)"),
        "{e}"
    );
    hub.clear_hits();
    let good = Settings {
        token: Some((
            "hf_good".into(),
            vramplan_hub::settings::TokenSource::Env("HF_TOKEN"),
        )),
        ..s
    };
    let m = model(&good, "test-org/gated-llama").unwrap();
    assert_eq!(m.format, Format::Safetensors);
    let hits = hub.hits();
    for h in on(&hits, "hub") {
        assert_eq!(
            h.authorization.as_deref(),
            Some("Bearer hf_good"),
            "{}",
            h.path
        );
    }
    let cdn = on(&hits, "cdn");
    assert_eq!(cdn.len(), 1);
    assert_eq!(cdn[0].authorization, None, "the token went to the CDN");
}

#[test]
fn unknown_private_and_revision_errors_name_the_repo() {
    let (hub, cache) = start();
    let s = settings(&hub, cache.path());
    let e = model(&s, "test-org/no-such-model").unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert!(
        e.message
            .starts_with("test-org/no-such-model is not a model on 127.0.0.1 (HTTP 404)"),
        "{e}"
    );
    let e = model(&s, "test-org/private-llama").unwrap_err();
    assert_eq!(e.kind, Kind::Denied);
    assert!(
        e.message.contains("private or gated, or does not exist"),
        "{e}"
    );
    let e = model(&s, "test-org/tiny-llama@nope").unwrap_err();
    assert_eq!(
        e.message,
        "test-org/tiny-llama has no revision 'nope' (HTTP 404)"
    );
    let m = model(&s, "test-org/tiny-llama@v1.0").unwrap();
    assert!(matches!(m.origin, Origin::Hub { ref revision, .. } if revision == "v1.0"));
    let e = model(&s, "test-org/no-model").unwrap_err();
    assert!(
        e.message
            .contains("has no config.json, safetensors or GGUF file"),
        "{e}"
    );
}

#[test]
fn config_only_and_pickle_only_repos_are_sized_from_their_config() {
    let (hub, cache) = start();
    let s = settings(&hub, cache.path());
    let m = model(&s, "test-org/config-only").unwrap();
    assert_eq!(m.format, Format::ConfigOnly);
    assert!(
        m.warnings.iter().any(|n| n.starts_with("no weights files")),
        "{:?}",
        m.warnings
    );
    let m = model(&s, "test-org/pytorch-only").unwrap();
    assert_eq!(m.format, Format::ConfigOnly);
    assert!(
        m.warnings
            .iter()
            .any(|n| n.contains("pytorch_model.bin") && n.contains("never read")),
        "{:?}",
        m.warnings
    );
    // The pickle itself is never fetched.
    assert!(hub
        .hits()
        .iter()
        .all(|h| !h.path.contains("pytorch_model.bin")));
}

#[test]
fn gguf_files_are_chosen_by_tag_as_llama_cpp_does_and_split_sets_merged() {
    let (hub, cache) = start();
    let e = expected();
    let s = settings(&hub, cache.path());
    let m = model(&s, "test-org/tiny-gguf:q4_k_m").unwrap();
    assert_eq!(m.format, Format::Gguf);
    let basic = &e["gguf"]["basic.gguf"];
    assert_eq!(
        m.summary.total_bytes,
        basic["total_bytes"].as_u64().unwrap()
    );
    let m = model(&s, "test-org/tiny-gguf:Q8_0").unwrap();
    let split = &e["gguf_split"];
    assert_eq!(m.files.len(), 2);
    assert_eq!(
        m.summary.total_bytes,
        split["total_bytes"].as_u64().unwrap()
    );
    assert_eq!(m.gguf.as_ref().unwrap().split_count, 2);
    // No tag: an error listing the models (the mmproj file is not one) ...
    let e = model(&s, "test-org/tiny-gguf").unwrap_err();
    assert_eq!(e.kind, Kind::Input);
    assert!(e.message.starts_with("test-org/tiny-gguf holds 2 GGUF models: Q8_0/tiny-Q8_0-00001-of-00002.gguf (Q8_0, 2 parts, "), "{e}");
    assert!(
        e.message.contains("tiny-Q4_K_M.gguf (Q4_K_M, ") && e.message.contains(":TAG"),
        "{e}"
    );
    // ... or, for inspect, the list.
    let session = Session::new(s.clone());
    let r = vramplan_hub::parse_repo_ref("test-org/tiny-gguf").unwrap();
    match session.hub("test-org/tiny-gguf", &r, None, true).unwrap() {
        Found::GgufFiles { files, .. } => {
            let q: Vec<_> = files
                .iter()
                .map(|f| (f.file.as_str(), f.quant.as_deref(), f.parts))
                .collect();
            assert_eq!(
                q,
                [
                    ("Q8_0/tiny-Q8_0-00001-of-00002.gguf", Some("Q8_0"), 2),
                    ("tiny-Q4_K_M.gguf", Some("Q4_K_M"), 1)
                ]
            );
        }
        Found::Model(_) => panic!("a list"),
    }
    // --file, in any case, as llama.cpp's --hf-file.
    match session
        .hub("x", &r, Some("TINY-q4_k_m.gguf"), false)
        .unwrap()
    {
        Found::Model(m) => assert_eq!(
            m.summary.total_bytes,
            basic["total_bytes"].as_u64().unwrap()
        ),
        Found::GgufFiles { .. } => panic!("a model"),
    }
    let e = model(&s, "test-org/tiny-gguf:IQ1_S").unwrap_err();
    assert!(
        e.message
            .starts_with("test-org/tiny-gguf: no GGUF file for the tag 'IQ1_S': "),
        "{e}"
    );
    // One GGUF model: no tag needed.
    assert_eq!(
        model(&s, "test-org/tiny-gguf-one").unwrap().format,
        Format::Gguf
    );
}

#[test]
fn a_9_mb_gguf_header_is_read_by_growing_ranges() {
    let (hub, cache) = start();
    let e = expected();
    let g = &e["hub"]["llama70_gguf"];
    let m = model(
        &settings(&hub, cache.path()),
        "loopback/Llama-3.1-70B-shaped-GGUF",
    )
    .unwrap();
    assert_eq!(m.summary.tensor_count, g["tensors"].as_u64().unwrap());
    assert_eq!(m.summary.total_bytes, g["weights_bytes"].as_u64().unwrap());
    assert_eq!(
        m.gguf.as_ref().unwrap().file_type_name.as_deref(),
        Some("Q4_K_M")
    );
    let hits = hub.hits();
    let cdn = on(&hits, "cdn");
    // 2 MiB, then doubling: 2+4 = 6 MiB < 9.18 MB ≤ 2+4+8 MiB: three ranges, the first
    // through the Hub's redirect, the rest straight to the CDN.
    assert_eq!(cdn.len(), 3, "{:?}", paths(&hits));
    assert_eq!(
        on(&hits, "hub").iter().filter(|h| h.status == 302).count(),
        1
    );
    let fetched: u64 = cdn.iter().map(Hit::bytes).sum();
    let header = g["header_bytes"].as_u64().unwrap();
    assert!(
        fetched >= header && fetched < 2 * header,
        "{fetched} for a {header}-byte header"
    );
}

#[test]
fn an_ollama_model_comes_from_the_registry_manifest_and_blob_ranges() {
    let (hub, cache) = start();
    let e = expected();
    let s = settings(&hub, cache.path());
    let session = Session::new(s.clone());
    let name = vramplan_formats::stores::parse_ollama_name("tiny:latest").unwrap();
    let m = session.ollama("tiny:latest", &name).unwrap();
    assert_eq!(
        m.summary.total_bytes,
        e["gguf"]["basic.gguf"]["total_bytes"].as_u64().unwrap()
    );
    let digest = e["hub"]["ollama"]["digest"].as_str().unwrap();
    assert!(matches!(&m.origin, Origin::Registry { digest: d, .. } if d == digest));
    let hits = hub.hits();
    assert_eq!(
        paths(&on(&hits, "hub")),
        [
            "hub 200 /v2/library/tiny/manifests/latest".to_string(),
            format!("hub 307 /v2/library/tiny/blobs/{digest}")
        ]
    );
    assert_eq!(on(&hits, "cdn").len(), 1);
    hub.clear_hits();
    // Cached: the manifest is the revision check; the blob is content-addressed.
    Session::new(s.clone())
        .ollama("tiny:latest", &name)
        .unwrap();
    assert_eq!(hub.hits().len(), 1);
    let missing = vramplan_formats::stores::parse_ollama_name("nope:7b").unwrap();
    let e = Session::new(s.clone())
        .ollama("nope:7b", &missing)
        .unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert!(
        e.message
            .starts_with("ollama model nope:7b is not in the registry 127.0.0.1 (HTTP 404)"),
        "{e}"
    );
    // Another registry's name is refused when other registries are off (the web server).
    let other = vramplan_formats::stores::parse_ollama_name("example.com/ns/m:t").unwrap();
    let e = Session::new(Settings {
        other_registries: false,
        ..s
    })
    .ollama("x", &other)
    .unwrap_err();
    assert_eq!(e.kind, Kind::Input);
}

#[test]
fn a_429_then_success_is_retried_after_its_retry_after() {
    let (hub, cache) = start();
    hub.fault(
        "model-00001-of-00002",
        Fault::Status {
            status: 429,
            retry_after: Some("1".into()),
            times: 1,
        },
    );
    let t = Instant::now();
    let m = model(&settings(&hub, cache.path()), "test-org/tiny-sharded").unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        t.elapsed()
    );
    assert_eq!(m.summary.tensor_count, 6);
    let statuses: Vec<u16> = hub
        .hits()
        .iter()
        .filter(|h| {
            h.path.contains("model-00001-of-00002")
                || (h.server == "cdn" && h.path.ends_with("/0?X-Amz-Signature=loopback"))
        })
        .map(|h| h.status)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[test]
fn a_500_is_retried_then_reported() {
    let (hub, cache) = start();
    hub.fault(
        "config.json",
        Fault::Status {
            status: 500,
            retry_after: None,
            times: 100,
        },
    );
    let t = Instant::now();
    let e = model(&settings(&hub, cache.path()), "test-org/tiny-llama").unwrap_err();
    assert_eq!(e.kind, Kind::Server);
    assert!(
        e.message.contains("HTTP 500") && e.message.contains("4 attempts"),
        "{e}"
    );
    let config_hits = hub
        .hits()
        .iter()
        .filter(|h| h.path.contains("config.json"))
        .count();
    assert_eq!(config_hits, 4);
    // Back-off 0.25 + 0.5 + 1 s.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_server_that_ignores_range_and_streams_gigabytes_is_cut_at_the_cap() {
    let (hub, cache) = start();
    // The CDN answers every range with the whole shard, 4.7 GB each.
    hub.fault("/cdn/", Fault::IgnoreRange { size: None });
    let m = model(
        &settings(&hub, cache.path()),
        "loopback/Llama-3.1-70B-shaped",
    )
    .unwrap();
    assert_eq!(m.summary.tensor_count, 723);
    let cdn = on(&hub.hits(), "cdn");
    assert_eq!(cdn.len(), 30);
    assert!(cdn.iter().all(|h| h.status == 200 && h.range.is_some()));
    let sent: u64 = cdn.iter().map(Hit::bytes).sum();
    // 64 KiB wanted of each; what the server got into the sockets before we hung up is
    // bounded by buffers, far from 30 × 4.7 GB.
    assert!(sent < 30 * (8 << 20), "the server sent {sent} bytes");
}

#[test]
fn a_slow_drip_and_a_hang_end_at_the_deadline() {
    for fault in [
        Fault::SlowDrip {
            interval: Duration::from_millis(200),
        },
        Fault::Hang,
    ] {
        let (hub, cache) = start();
        hub.fault("/cdn/", fault.clone());
        let s = Settings {
            deadline: Duration::from_secs(3),
            ..settings(&hub, cache.path())
        };
        let t = Instant::now();
        let e = model(&s, "test-org/tiny-llama").unwrap_err();
        let took = t.elapsed();
        assert!(took < Duration::from_secs(5), "{fault:?} took {took:?}");
        assert_eq!(e.kind, Kind::Server, "{e}");
        assert!(
            e.message.contains("deadline") || e.message.contains("in time"),
            "{e}"
        );
        // The faulty object was asked for, and at most a dribble of it arrived.
        let raw = on(&hub.hits(), "raw");
        assert!(
            !raw.is_empty() && raw.len() <= 4,
            "{:?}",
            paths(&hub.hits())
        );
        assert!(raw.iter().map(Hit::bytes).sum::<u64>() < 64, "{raw:?}");
    }
}

#[test]
fn truncated_bodies_and_lying_lengths_are_errors_not_answers() {
    for (fault, needle) in [
        (
            Fault::Truncated { send: 100 },
            "the body ended after 100 of",
        ),
        (
            Fault::LyingLength {
                claim: 10,
                send: 65536,
            },
            "the body ended after 10 of",
        ),
        (
            Fault::LyingLength {
                claim: 1 << 40,
                send: 100,
            },
            "the body ended after 100 of",
        ),
        (
            Fault::LyingTotal { total: 70_000 },
            "bytes but served as 70000 bytes",
        ),
    ] {
        let (hub, cache) = start();
        hub.fault("/cdn/", fault.clone());
        let e = model(&settings(&hub, cache.path()), "test-org/tiny-llama").unwrap_err();
        assert!(e.message.contains(needle), "{fault:?}: {e}");
        assert!(!e.message.contains('\n'));
        // A body that ends early is retried (4 attempts); a lying total is not worth another.
        let raw = on(&hub.hits(), "raw").len();
        let attempts = if matches!(fault, Fault::LyingTotal { .. }) {
            1
        } else {
            4
        };
        assert_eq!(raw, attempts, "{fault:?}: {:?}", paths(&hub.hits()));
    }
}

#[test]
fn a_hostile_header_length_is_refused_after_one_range() {
    let (hub, cache) = start();
    let e = model(&settings(&hub, cache.path()), "test-org/hostile-header").unwrap_err();
    assert_eq!(e.kind, Kind::Format);
    assert_eq!(
        e.message,
        "test-org/hostile-header/model.safetensors: safetensors header length is 4611686018427387904, above the limit of 100000000"
    );
    let cdn = on(&hub.hits(), "cdn");
    assert_eq!(cdn.len(), 1);
    assert!(cdn[0].bytes() <= 64 * 1024);
}

#[test]
fn a_network_that_is_down_is_said_at_once() {
    let cache = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = Settings {
        endpoint: Url::parse(&format!("http://{closed}")).unwrap(),
        ollama_registry: Url::parse(&format!("http://{closed}")).unwrap(),
        token: None,
        offline: false,
        refresh: false,
        cache_dir: Some(cache.path().to_path_buf()),
        deadline: Duration::from_secs(20),
        other_registries: true,
    };
    let t = Instant::now();
    let e = model(&s, "test-org/tiny-llama").unwrap_err();
    assert_eq!(e.kind, Kind::Unreachable);
    assert!(e.message.starts_with("cannot reach 127.0.0.1"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
    // A name that does not resolve (.invalid never does, RFC 2606): the same, at once.
    let s = Settings {
        endpoint: Url::parse("http://hub.invalid").unwrap(),
        ..s
    };
    let t = Instant::now();
    let e = model(&s, "test-org/tiny-llama").unwrap_err();
    assert_eq!(e.kind, Kind::Unreachable, "{e}");
    assert!(e.message.starts_with("cannot reach hub.invalid: "), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
