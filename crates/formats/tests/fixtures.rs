//! Our readers against files written by the *reference writers* (gguf-py's GGUFWriter and the
//! safetensors package): names, dtypes, shapes, element counts, bytes and metadata must equal
//! what the writer was given (recorded by scripts/gen_fixtures.py in expected.json).
//!
//! The fixtures are made by the test command (scripts/test.sh), not by this test: generating
//! them needs Python packages from PyPI, and `cargo test` should not install things. If
//! VRAMPLAN_FIXTURES is unset these tests FAIL with instructions rather than pass vacuously.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use vramplan_formats::gguf::{MetaArray, ValueType};
use vramplan_formats::{inspect, Format, MetaValue, ModelFile, Origin};

/// Tests that set process environment variables take this lock.
static ENV_LOCK: Mutex<()> = Mutex::new(());

fn fixtures() -> PathBuf {
    let Some(dir) = std::env::var_os("VRAMPLAN_FIXTURES") else {
        panic!(
            "VRAMPLAN_FIXTURES is not set. Generate the fixtures with the reference writers and point \
             the variable at them:\n  python3 -m pip install gguf safetensors numpy\n  \
             python3 scripts/gen_fixtures.py target/fixtures\n  \
             VRAMPLAN_FIXTURES=$PWD/target/fixtures cargo test -p vramplan-formats\n\
             (scripts/test.sh does all of this.)"
        );
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("expected.json").is_file(),
        "{}/expected.json missing: run python3 scripts/gen_fixtures.py {}",
        dir.display(),
        dir.display()
    );
    dir
}

fn expected() -> (PathBuf, Value) {
    let dir = fixtures();
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("read expected.json");
    (
        dir,
        serde_json::from_str(&text).expect("parse expected.json"),
    )
}

fn s(v: &Value) -> &str {
    v.as_str().expect("string in expected.json")
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("integer in expected.json")
}

fn u_list(v: &Value) -> Vec<u64> {
    v.as_array().expect("list").iter().map(u).collect()
}

/// gguf-py GGUFValueType names → ours.
fn value_type(name: &str) -> ValueType {
    match name {
        "UINT8" => ValueType::U8,
        "INT8" => ValueType::I8,
        "UINT16" => ValueType::U16,
        "INT16" => ValueType::I16,
        "UINT32" => ValueType::U32,
        "INT32" => ValueType::I32,
        "FLOAT32" => ValueType::F32,
        "BOOL" => ValueType::Bool,
        "STRING" => ValueType::String,
        "ARRAY" => ValueType::Array,
        "UINT64" => ValueType::U64,
        "INT64" => ValueType::I64,
        "FLOAT64" => ValueType::F64,
        other => panic!("unknown type {other} in expected.json"),
    }
}

/// One metadata value against what the writer was given.
fn check_value(key: &str, actual: &MetaValue, ty: ValueType, expected: &Value) {
    let ok = match (actual, ty) {
        (MetaValue::U8(v), ValueType::U8) => u64::from(*v) == u(expected),
        (MetaValue::U16(v), ValueType::U16) => u64::from(*v) == u(expected),
        (MetaValue::U32(v), ValueType::U32) => u64::from(*v) == u(expected),
        (MetaValue::U64(v), ValueType::U64) => *v == u(expected),
        (MetaValue::I8(v), ValueType::I8) => i64::from(*v) == expected.as_i64().unwrap(),
        (MetaValue::I16(v), ValueType::I16) => i64::from(*v) == expected.as_i64().unwrap(),
        (MetaValue::I32(v), ValueType::I32) => i64::from(*v) == expected.as_i64().unwrap(),
        (MetaValue::I64(v), ValueType::I64) => *v == expected.as_i64().unwrap(),
        // The writer packs Python floats into f32: compare after the same rounding.
        (MetaValue::F32(v), ValueType::F32) => *v == expected.as_f64().unwrap() as f32,
        (MetaValue::F64(v), ValueType::F64) => *v == expected.as_f64().unwrap(),
        (MetaValue::Bool(v), ValueType::Bool) => *v == expected.as_bool().unwrap(),
        (MetaValue::String(v), ValueType::String) => v == s(expected),
        (MetaValue::Array(a), ValueType::Array) => {
            check_array(key, a, expected);
            true
        }
        _ => false,
    };
    assert!(
        ok,
        "metadata {key}: read {actual:?}, writer was given {ty:?} {expected}"
    );
}

fn check_array(key: &str, a: &MetaArray, expected: &Value) {
    let items = expected.as_array().expect("array value");
    assert_eq!(a.len, items.len() as u64, "{key}: array length");
    let elem = match items.first() {
        Some(Value::String(_)) => ValueType::String,
        Some(Value::Bool(_)) => ValueType::Bool,
        Some(Value::Array(_)) => ValueType::Array,
        Some(Value::Number(n)) if n.is_f64() => ValueType::F32,
        Some(Value::Number(_)) => a.elem_type, // INT32 or UINT32, checked by value
        _ => panic!("{key}: empty array in expected.json"),
    };
    assert_eq!(a.elem_type, elem, "{key}: element type");
    if a.complete {
        assert_eq!(a.values.len(), items.len(), "{key}: kept values");
    } else {
        // Long arrays keep 8 samples (gguf::SAMPLES_KEPT).
        assert_eq!(a.values.len(), 8, "{key}: samples kept");
        assert!(items.len() > 256, "{key}: only long arrays are sampled");
    }
    for (v, e) in a.values.iter().zip(items) {
        check_value(key, v, elem, e);
    }
}

fn check_gguf_tensors(m: &ModelFile, exp: &Value) {
    let tensors = exp["tensors"].as_array().unwrap();
    assert_eq!(m.tensors.len(), tensors.len(), "tensor count");
    // gguf-py writes tensor infos in insertion order; we keep file order.
    for (t, e) in m.tensors.iter().zip(tensors) {
        assert_eq!(t.name, s(&e["name"]));
        assert_eq!(t.dtype, s(&e["type"]), "{}: type", t.name);
        assert_eq!(t.shape, u_list(&e["ne"]), "{}: dims (ggml order)", t.name);
        assert_eq!(t.n_elements, u(&e["n_elements"]), "{}: elements", t.name);
        assert_eq!(t.n_bytes, u(&e["n_bytes"]), "{}: bytes", t.name);
    }
    assert_eq!(m.summary.total_params, u(&exp["total_params"]));
    assert_eq!(m.summary.total_bytes, u(&exp["total_bytes"]));
}

#[test]
fn gguf_files_match_the_writer() {
    let (dir, exp) = expected();
    let files = exp["gguf"].as_object().unwrap();
    assert_eq!(files.len(), 3);
    for (name, e) in files {
        let m = inspect(dir.join(s(&e["path"]))).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(m.format, Format::Gguf);
        let g = m.gguf.as_ref().unwrap();
        assert_eq!(u64::from(g.version), u(&e["version"]), "{name}");
        assert_eq!(g.big_endian, e["big_endian"].as_bool().unwrap(), "{name}");
        assert_eq!(g.alignment, u(&e["alignment"]), "{name}");
        assert_eq!(g.file_type_name.as_deref(), Some(s(&e["file_type_name"])));
        assert_eq!(m.architecture.as_deref(), Some(s(&e["architecture"])));
        check_gguf_tensors(&m, e);
        let meta = e["metadata"].as_object().unwrap();
        // general.alignment is added by the writer only when set; everything given is present.
        for (key, ev) in meta {
            let actual = g
                .metadata
                .get(key)
                .unwrap_or_else(|| panic!("{name}: key {key} missing"));
            check_value(key, actual, value_type(s(&ev["type"])), &ev["value"]);
        }
        assert_eq!(
            g.metadata.len(),
            meta.len(),
            "{name}: no extra metadata keys"
        );
        // Architecture keys translated to the config.json they stand for.
        let c = m.config.as_ref().expect("config from GGUF keys");
        let ec = &e["config"];
        assert_eq!(c["num_hidden_layers"], ec["num_hidden_layers"]);
        assert_eq!(c["hidden_size"], ec["hidden_size"]);
        assert_eq!(
            c["vocab_size"], ec["vocab_size"],
            "vocab from tokenizer.ggml.tokens length"
        );
        assert_eq!(c["max_position_embeddings"], ec["max_position_embeddings"]);
        assert_eq!(c["tie_word_embeddings"], false, "output.weight present");
        assert_eq!(c["num_attention_heads"], ec["num_attention_heads"]);
        assert_eq!(
            c["num_key_value_heads"], ec["num_key_value_heads"],
            "per-layer KV heads"
        );
        assert_eq!(c["intermediate_size"], ec["intermediate_size"]);
        // Per-dtype totals add up to the whole.
        let by: u64 = m.summary.by_dtype.iter().map(|d| d.bytes).sum();
        assert_eq!(by, m.summary.total_bytes);
        // F32 F16 BF16 I8 I16 I32 I64 F64 Q4_0 Q8_0 Q4_K Q5_K Q6_K IQ4_NL MXFP4 = 15 types written.
        assert_eq!(m.summary.by_dtype.len(), 15, "{name}: distinct ggml types");
        assert!(m.header_bytes_read <= std::fs::metadata(dir.join(s(&e["path"]))).unwrap().len());
        // `--json` output serialises the whole result.
        let json = serde_json::to_string(&m).unwrap();
        assert!(
            json.contains("\"file_type_name\":\"Q4_K_M\""),
            "{}",
            &json[..200.min(json.len())]
        );
    }
}

#[test]
fn gguf_split_reads_all_parts() {
    let (dir, exp) = expected();
    let e = &exp["gguf_split"];
    let parts: Vec<PathBuf> = e["part_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| dir.join(s(p)))
        .collect();
    assert_eq!(parts.len(), 2);
    // Naming either part reads the whole set.
    for start in &parts {
        let m = inspect(start).unwrap();
        assert_eq!(m.files, parts);
        check_gguf_tensors(&m, e);
        let g = m.gguf.as_ref().unwrap();
        assert_eq!(g.split_count, 2);
        assert_eq!(g.file_type_name.as_deref(), Some("Q8_0"));
        assert_eq!(m.architecture.as_deref(), Some("llama"));
        // The second part holds the last 2 tensors (split_max_tensors = 3).
        assert_eq!(m.tensors.iter().filter(|t| t.file_index == 1).count(), 2);
        let disk: u64 = parts
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(m.bytes_on_disk, disk);
    }
}

fn check_st_tensors(m: &ModelFile, exp: &Value, files: &[PathBuf]) {
    let tensors = exp["tensors"].as_array().unwrap();
    assert_eq!(m.tensors.len(), tensors.len());
    for e in tensors {
        let name = s(&e["name"]);
        let t = m
            .tensors
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(t.dtype, s(&e["dtype"]), "{name}");
        assert_eq!(t.shape, u_list(&e["shape"]), "{name}");
        assert_eq!(t.n_elements, u(&e["n_elements"]), "{name}");
        assert_eq!(t.n_bytes, u(&e["n_bytes"]), "{name}");
        if let Some(shard) = e.get("shard") {
            assert_eq!(
                files[t.file_index].file_name().unwrap().to_str().unwrap(),
                s(shard),
                "{name}"
            );
        }
    }
    assert_eq!(m.summary.total_params, u(&exp["total_params"]));
    assert_eq!(m.summary.total_bytes, u(&exp["total_bytes"]));
}

#[test]
fn safetensors_single_file_matches_the_writer() {
    let (dir, exp) = expected();
    let e = &exp["safetensors_single"];
    let path = dir.join(s(&e["path"]));
    let m = inspect(&path).unwrap();
    assert_eq!(m.format, Format::Safetensors);
    check_st_tensors(&m, e, &m.files);
    for (k, v) in e["metadata"].as_object().unwrap() {
        assert_eq!(
            m.safetensors_metadata.get(k).map(String::as_str),
            Some(s(v))
        );
    }
    // 11 dtypes were written: BF16 F16 F32 F8_E4M3 I8 U8 I32 I64 F64 BOOL (+F32 twice) = 10 distinct.
    assert_eq!(m.summary.by_dtype.len(), 10);
    // config.json next to the file is read too.
    let c = m.config.as_ref().expect("sibling config.json");
    assert_eq!(
        (&c["num_hidden_layers"], &c["hidden_size"]),
        (&2.into(), &64.into())
    );
    assert_eq!(m.architecture.as_deref(), Some("LlamaForCausalLM"));
    assert_eq!(m.files.len(), 2);
    // The same through the folder.
    let m2 = inspect(dir.join(s(&e["dir"]))).unwrap();
    check_st_tensors(&m2, e, &m2.files);
    assert!(m2.config.is_some(), "folder: config.json read");
}

#[test]
fn safetensors_sharded_checkpoint_matches_the_writer() {
    let (dir, exp) = expected();
    let e = &exp["safetensors_sharded"];
    for target in [dir.join(s(&e["dir"])), dir.join(s(&e["index"]))] {
        let m = inspect(&target).unwrap();
        assert_eq!(m.format, Format::Safetensors);
        // index, shard 1, shard 2, config.json
        assert_eq!(m.files.len(), 4, "{:?}", m.files);
        check_st_tensors(&m, e, &m.files);
        assert!(m.notes.is_empty(), "index total_size agrees: {:?}", m.notes);
        assert_eq!(m.config.as_ref().unwrap()["num_key_value_heads"], 2);
    }
}

#[test]
fn config_variants_parse() {
    let (dir, exp) = expected();
    for name in exp["configs"].as_object().unwrap().keys() {
        let path = dir.join("configs").join(name);
        let m = inspect(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.format, Format::ConfigOnly);
        // The config is kept as written; what it means is the mapping's (tested below).
        let raw: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(m.config.as_ref().unwrap(), &raw, "{name}");
        assert!(to_model_desc(&m).is_ok(), "{name}");
    }
}

fn set_env(key: &str, value: &Path) {
    // Edition 2021: set_var is safe; ENV_LOCK keeps env-reading tests in this binary apart.
    std::env::set_var(key, value);
}

#[test]
fn stores_hf_cache_and_ollama() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (dir, exp) = expected();
    let basic = inspect(dir.join(s(&exp["gguf"]["basic.gguf"]["path"]))).unwrap();

    // HF cache: the snapshot folder, the repo folder (refs/main wins over the other snapshot),
    // and the repo id through HF_HUB_CACHE.
    let hf = &exp["hf_cache"];
    let rev = s(&hf["revision"]).to_string();
    set_env("HF_HUB_CACHE", &dir.join(s(&hf["hub"])));
    let repo_dir = dir.join(s(&hf["hub"])).join("models--test-org--tiny-llama");
    for target in [
        dir.join(s(&hf["snapshot"])),
        repo_dir,
        PathBuf::from("test-org/tiny-llama"),
    ] {
        let m = inspect(&target).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        assert_eq!(
            m.origin,
            Origin::HfCache {
                repo: "test-org/tiny-llama".into(),
                revision: rev.clone()
            }
        );
        assert_eq!(m.format, Format::Safetensors);
        assert_eq!(
            m.summary.total_params,
            u(&exp["safetensors_single"]["total_params"])
        );
        assert!(m.config.is_some());
    }
    let found = vramplan_formats::stores::scan_hf_cache(&dir.join(s(&hf["hub"])));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "test-org/tiny-llama");

    // ollama: by name (with and without tag) and by manifest path.
    let ol = &exp["ollama"];
    set_env("OLLAMA_MODELS", &dir.join(s(&ol["models_dir"])));
    for target in ["tiny", "tiny:latest", "library/tiny:latest"] {
        let m = inspect(target).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(matches!(&m.origin, Origin::Ollama { name, .. } if name == "tiny:latest"));
        assert_eq!(m.files, vec![dir.join(s(&ol["blob"]))]);
        assert_eq!(m.tensors, basic.tensors);
    }
    let m = inspect(dir.join(s(&ol["manifest"]))).unwrap();
    assert_eq!(m.summary, basic.summary);
    let err = inspect("no-such-model:7b").unwrap_err().to_string();
    assert!(err.contains("no such file or directory"), "{err}");

    // A scan of the whole fixture tree finds every model once.
    let scan = vramplan_formats::stores::scan_dir(&dir, Default::default());
    assert!(!scan.truncated);
    let names: Vec<&str> = scan.models.iter().map(|m| m.name.as_str()).collect();
    for want in [
        "basic.gguf",
        "tiny-00001-of-00002.gguf",
        "tiny:latest",
        "single",
        "sharded",
        "test-org/tiny-llama",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    assert!(
        !names.contains(&"tiny-00002-of-00002.gguf"),
        "split part 2 is not a model of its own"
    );
    std::env::remove_var("HF_HUB_CACHE");
    std::env::remove_var("OLLAMA_MODELS");
}

// ---------------------------------------------------------------------------------------------
// ModelFile → vramplan_core::ModelDesc
// ---------------------------------------------------------------------------------------------

use vramplan_core::WeightFormat;
use vramplan_formats::to_model_desc;

#[test]
fn gguf_to_model_desc_keeps_exact_bytes() {
    let (dir, exp) = expected();
    let e = &exp["gguf"]["basic.gguf"];
    let m = inspect(dir.join(s(&e["path"]))).unwrap();
    let fm = to_model_desc(&m).unwrap();
    let d = &fm.desc;
    assert_eq!(
        (d.num_layers, d.hidden_size, d.num_attention_heads),
        (2, 256, 8)
    );
    // head_count_kv = [2, 4] per layer: each layer keeps its own.
    let kv: Vec<u64> = d
        .layers()
        .map(|l| l.attention.as_ref().unwrap().kv_heads)
        .collect();
    assert_eq!(kv, vec![2, 4]);
    // No key_length: head_dim = 256 / 8 = 32.
    assert_eq!(d.head_dim, 32);
    assert_eq!(
        (d.vocab_size, d.max_context, d.intermediate_size),
        (300, 4096, 512)
    );
    assert!(!d.tie_embeddings);
    let w = fm.weights.as_ref().unwrap();
    assert_eq!(w.total_bytes, u(&e["total_bytes"]));
    assert_eq!(w.total_params, u(&e["total_params"]));
    // Per-layer bytes: the writer's blk.0.* and blk.1.* tensors.
    let layer_sum = |prefix: &str| -> u64 {
        e["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| s(&t["name"]).starts_with(prefix))
            .map(|t| u(&t["n_bytes"]))
            .sum()
    };
    assert_eq!(
        w.layer_bytes,
        vec![layer_sum("blk.0."), layer_sum("blk.1.")]
    );
    assert_eq!(
        w.other_bytes + layer_sum("blk.0.") + layer_sum("blk.1."),
        w.total_bytes
    );
    // Dominant matrix type by bytes, from the writer's record.
    let mut by = std::collections::BTreeMap::<String, u64>::new();
    for t in e["tensors"].as_array().unwrap() {
        if t["ne"].as_array().unwrap().len() >= 2 {
            *by.entry(s(&t["type"]).to_string()).or_default() += u(&t["n_bytes"]);
        }
    }
    let dominant = by.iter().max_by_key(|(_, b)| **b).unwrap().0.clone();
    match w.format {
        Some(WeightFormat::Gguf(g)) => assert_eq!(g.name, dominant),
        ref other => panic!("expected a GGUF format, got {other:?}"),
    }
    assert_eq!(d.published_params, Some(u(&e["total_params"])));
}

#[test]
fn safetensors_and_configs_to_model_desc() {
    let (dir, exp) = expected();
    let m = inspect(dir.join(s(&exp["safetensors_sharded"]["dir"]))).unwrap();
    let fm = to_model_desc(&m).unwrap();
    assert_eq!(
        (fm.desc.num_layers, fm.desc.num_kv_heads, fm.desc.head_dim),
        (2, 2, 16)
    );
    assert_eq!(fm.desc.dtype, "bf16");
    assert_eq!(
        fm.weights.as_ref().unwrap().total_bytes,
        u(&exp["safetensors_sharded"]["total_bytes"])
    );
    assert_eq!(
        fm.weights.as_ref().unwrap().format,
        Some(WeightFormat::Bf16)
    );

    let cfg =
        |name: &str| to_model_desc(&inspect(dir.join("configs").join(name)).unwrap()).unwrap();
    let ds = cfg("moe_mla.json");
    assert!(ds.weights.is_none());
    let moe = ds.desc.moe.as_ref().unwrap();
    assert_eq!(
        (moe.num_experts, moe.experts_per_token, moe.shared_experts),
        (256, 8, 1)
    );
    // Each DeepSeek shared expert is as wide as a routed one (moe_intermediate_size).
    assert_eq!(
        (
            moe.expert_intermediate_size,
            moe.shared_expert_intermediate_size
        ),
        (2048, 2048)
    );
    // first_k_dense_replace 3: 58 of 61 layers route to experts.
    assert_eq!(ds.desc.layer_summary().moe_layers, 58);
    let mla = ds.desc.mla.as_ref().unwrap();
    assert_eq!(
        (
            mla.kv_lora_rank,
            mla.q_lora_rank,
            mla.qk_rope_head_dim,
            mla.qk_nope_head_dim,
            mla.v_head_dim
        ),
        (512, 1536, 64, 128, 128)
    );
    assert_eq!(ds.desc.quantization.as_ref().unwrap().method, "fp8");

    let gemma = cfg("vlm_text_config.json");
    // sliding_window_pattern 6: layers 5, 11, 17, 23, 29 global, the other 29 of 34 sliding.
    let windows = gemma.desc.layer_summary().windows;
    assert_eq!((windows[0].tokens, windows[0].layers), (1024, 29));
    assert_eq!(gemma.desc.head_dim, 256);

    let awq = cfg("awq.json");
    let q = awq.desc.quantization.as_ref().unwrap();
    assert_eq!(
        (q.method.as_str(), q.bits, q.group_size),
        ("awq", Some(4), Some(128))
    );
    // use_sliding_window = false: no window.
    assert!(awq.desc.layer_summary().windows.is_empty());
    assert_eq!(awq.desc.dtype, "fp16");

    let mixtral = cfg("mixtral.json");
    let moe = mixtral.desc.moe.as_ref().unwrap();
    // Mixtral's experts use intermediate_size.
    assert_eq!(
        (
            moe.num_experts,
            moe.experts_per_token,
            moe.expert_intermediate_size
        ),
        (8, 2, 14336)
    );
}
