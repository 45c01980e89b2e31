//! llama.cpp and ollama profiles against hand-computed buffer sizes and log lines from
//! data/calibration/llamacpp.jsonl.

use vramplan_core::engine::llamacpp::{self, FlashAttn, GgufWeights, LlamaCppArgs, TypeMix};
use vramplan_core::engine::ollama::{self, OllamaArgs};
use vramplan_core::ggml::GgmlType;
use vramplan_core::units::MIB;
use vramplan_core::{catalogue, Config, KvDtype, WeightFormat};

#[test]
fn phi3_mini_kv_buffer_matches_its_log() {
    // llamacpp.jsonl (Phi-3-mini Q4_K_M, RTX 3070): "KV buffer size = 1536.00 MiB" for n_ctx
    // 4096: 32 layers × 4096 cells × (3072 + 3072) × 2 B = 1,610,612,736 B. llama.cpp disables
    // Phi-3's sliding window ("Phi SWA is currently disabled"), so every layer is full size.
    let m = catalogue().model("phi-3-mini").unwrap();
    let a = LlamaCppArgs {
        n_ctx: 4096,
        flash_attn: FlashAttn::Off,
        n_ubatch: 256,
        n_batch: 256,
        ..LlamaCppArgs::default()
    };
    let caches = llamacpp::kv_caches(m, &a, 0..32);
    assert_eq!(caches.len(), 1);
    assert_eq!(caches[0].bytes(), 1536 * MIB);
    // Output buffer: 32,064 × 1 × 4 B = 128,256 B ("0.12 MiB").
    assert_eq!(llamacpp::output_buffer_bytes(m, &a), 128_256);
}

#[test]
fn quantized_cache_rows_use_ggml_blocks() {
    // iq4_nl K (18 B per 32), f16 V, 32 layers × 1024 cells × 1024 wide: K = 32 × 1024 × 576 B =
    // 18 MiB, V = 32 × 1024 × 2048 B = 64 MiB — the "K (iq4_nl): 18.00 MiB, V (f16): 64.00 MiB"
    // of llamacpp.jsonl.
    let m = catalogue().model("llama-3-8b").unwrap();
    let a = LlamaCppArgs {
        n_ctx: 1024,
        type_k: KvDtype::parse("iq4_nl").unwrap(),
        ..LlamaCppArgs::default()
    };
    let c = &llamacpp::kv_caches(m, &a, 0..32)[0];
    assert_eq!((c.k_bytes, c.v_bytes), (18 * MIB, 64 * MIB));
}

#[test]
fn estimate_reports_buffers_and_largest_ngl() {
    let cat = catalogue();
    let m = cat.model("llama-3.1-70b").unwrap();
    let gpu = cat.gpu("rtx-4090").unwrap();
    let mix = TypeMix::uniform(GgmlType::by_name("Q4_K").unwrap());
    let a = LlamaCppArgs {
        n_ctx: 8192,
        ..LlamaCppArgs::default()
    };
    let c = Config::new(WeightFormat::parse("q4_k").unwrap(), KvDtype::F16, 8192, 1);
    let e = llamacpp::estimate(m, gpu, c, &mix, &a).unwrap();
    let ngl = e.gpu_layers.unwrap();
    assert_eq!(Some(ngl), e.max_gpu_layers);
    assert!(ngl < 81 && e.fits);
    assert_eq!(e.model_layers, Some(81));
    // The KV of a 70B at 8192 cells: 80 × 8192 × 2048 B = 2.5 GiB split between GPU and host
    // in proportion to the layers offloaded.
    assert_eq!(
        e.kv_buffer_bytes.unwrap() + e.cpu_kv_buffer_bytes.unwrap(),
        80 * 8192 * 2048 * 2
    );
    // -ngl N holds the output layer and N − 1 blocks (src/llama-model.cpp at 0c1e57098).
    assert_eq!(e.kv_buffer_bytes.unwrap(), (ngl - 1) * 8192 * 2048 * 2);
    // Forcing every layer on the card does not fit.
    let all = LlamaCppArgs {
        n_gpu_layers: Some(81),
        ..a
    };
    assert!(!llamacpp::estimate(m, gpu, c, &mix, &all).unwrap().fits);
}

#[test]
fn ollama_offload_prefers_the_last_layers() {
    // ollama places layers from the last block down; 70B Q4_K in 24 GiB: a partial offload,
    // output layer kept on the CPU.
    let cat = catalogue();
    let m = cat.model("llama-3.1-70b").unwrap();
    let w = GgufWeights::of(m, &TypeMix::uniform(GgmlType::by_name("Q4_K").unwrap()));
    let o = ollama::offload(
        m,
        &w,
        &OllamaArgs {
            num_ctx: 2048,
            ..OllamaArgs::default()
        },
        cat.gpu("rtx-4090").unwrap().memory_bytes,
    );
    assert!(o.layers > 20 && o.layers < 80, "{}", o.layers);
    // Partial offload charges the partial graph.
    let (_, partial) = ollama::graph_sizes(
        m,
        &OllamaArgs {
            num_ctx: 2048,
            ..OllamaArgs::default()
        },
    );
    assert_eq!(o.graph, partial);
}

#[test]
fn ollama_today_starts_llama_server_and_lets_fit_place_the_layers() {
    // ollama llm/llama_server.go @869e7249: -c num_ctx × OLLAMA_NUM_PARALLEL, -np parallel,
    // --cache-type-k/-v OLLAMA_KV_CACHE_TYPE, -b num_batch; -ngl only for num_gpu.
    let cat = catalogue();
    let m = cat.model("llama-3.1-8b").unwrap();
    let gpu = cat.gpu("rtx-3090").unwrap();
    let mix = TypeMix::uniform(GgmlType::by_name("Q4_K").unwrap());
    let a = OllamaArgs {
        num_ctx: 4096,
        num_parallel: 4,
        kv_type: KvDtype::parse("q8_0").unwrap(),
        ..OllamaArgs::default()
    };
    let r = ollama::llama_server_args(&a);
    assert_eq!(
        (r.n_ctx, r.n_seq, r.n_batch, r.n_ubatch),
        (16384, 4, 512, 512)
    );
    assert_eq!(
        (r.type_k.name(), r.type_v.name()),
        ("q8_0".into(), "q8_0".into())
    );
    assert_eq!((r.flash_attn, r.n_gpu_layers), (FlashAttn::Auto, None));
    let c = Config::new(WeightFormat::parse("q4_k").unwrap(), a.kv_type, 4096, 4);
    let e = ollama::estimate(m, gpu, c, &mix, &a).unwrap();
    assert_eq!(e.engine, "ollama");
    // --fit puts all 33 layers on the 24 GB card; the KV is the 16,384 cells' q8_0 rows:
    // 32 layers × 16384 × 1024 × 2 (K, V) × 34/32 B (q8_0 blocks of 32 in 34 B) = 1,140,850,688 B.
    assert_eq!(e.gpu_layers, Some(33));
    assert_eq!(e.kv_buffer_bytes, Some(32 * 16384 * 1024 * 2 * 34 / 32));
    // num_gpu is passed as -ngl.
    let forced = OllamaArgs {
        num_gpu: Some(20),
        ..a.clone()
    };
    assert_eq!(
        ollama::estimate(m, gpu, c, &mix, &forced)
            .unwrap()
            .gpu_layers,
        Some(20)
    );
    // The estimate of ollama before its llama-server switch stays available.
    let legacy = OllamaArgs {
        scheduler: ollama::Scheduler::Estimate,
        flash_attention: true,
        ..a
    };
    let l = ollama::estimate(m, gpu, c, &mix, &legacy).unwrap();
    assert!(l.engine_settings.iter().any(|s| s.name == "layers.offload"));
}

#[test]
fn gpu_records_host_compute_buffer_is_the_graph_inputs_and_embedding_rows() {
    // With every layer on one GPU, the host ("CUDA_Host") compute buffer holds what the
    // scheduler runs on the CPU: the graph inputs (ggml-backend.cpp
    // `ggml_backend_sched_backend_id_from_cur`: an input goes to the last backend, the CPU)
    // and the token-embedding lookup (the input layer stays on the CPU, llama-model.cpp
    // `dev_input`), in the first GPU's pinned host buffer type (llama-context.cpp). Without
    // flash attention the KQ mask is f32: host = n_embd·n_ubatch·4 + n_ctx·n_ubatch·4 (+ the
    // small index inputs, under the log's 0.01 MiB). Checked on three GPU records of
    // data/calibration/llamacpp.jsonl from three builds, each model identified by its
    // logged KV buffer:
    let cat = catalogue();
    let mib = |b: u64| (b as f64 / MIB as f64 * 100.0).round() / 100.0;
    let cases = [
        // :17 Phi-3-mini, RTX 3070, -c 4096 -ub 256 -fa off: 3 + 4 MiB = "7.00"; KV 1536.
        ("phi-3-mini", 4096, 256, "f16", 7.0, 1536.0),
        // :21 (and :22) 640 MiB of f16 KV for 2048 cells over 32 layers: 2560-wide K and V
        // rows, Phi-2; -ub 512: 5 + 4 MiB = "9.01" with the index inputs.
        ("microsoft/phi-2", 2048, 512, "f16", 9.0, 640.0),
        // :19 K iq4_nl, V f16, 1024 cells: 32 × 1024 × 1024 × (0.5625 + 2) B = 82 MiB, Llama 3
        // 8B; -ub 512: 8 + 2 MiB = "10.01".
        ("llama-3-8b", 1024, 512, "iq4_nl", 10.0, 82.0),
    ];
    for (id, n_ctx, ub, k, host, kv) in cases {
        let m = cat.model(id).unwrap();
        let a = LlamaCppArgs {
            n_ctx,
            n_ubatch: ub,
            n_batch: n_ctx.max(ub),
            type_k: KvDtype::parse(k).unwrap(),
            flash_attn: FlashAttn::Off,
            ..LlamaCppArgs::default()
        };
        let caches: u64 = llamacpp::kv_caches(m, &a, 0..m.num_layers)
            .iter()
            .map(llamacpp::KvCache::bytes)
            .sum();
        assert_eq!(mib(caches), kv, "{id} KV");
        assert_eq!(
            mib(llamacpp::host_input_bytes(m, &a)),
            host,
            "{id} host compute"
        );
    }
}

/// The synthetic models of data/calibration/llamacpp_cpu_runs.jsonl (random-weight GGUFs):
/// 4 layers, n_embd 2048, 16 heads of 128 (4 KV heads for llama/qwen2; 8 heads of 256 with 4
/// KV heads for gemma2), n_ff 4096, 32,000-token vocabulary.
fn toy(arch: &str) -> vramplan_core::ModelDesc {
    let gemma = arch == "gemma2";
    // The config.json these files stand for, through the one mapping (qwen2: q/k/v biases;
    // gemma2: four norms per layer, even layers sliding).
    let config = serde_json::json!({
        "model_type": arch, "max_position_embeddings": 32768, "torch_dtype": "float16",
        "num_hidden_layers": 4, "hidden_size": 2048,
        "num_attention_heads": if gemma { 8 } else { 16 }, "num_key_value_heads": 4,
        "head_dim": if gemma { 256 } else { 128 }, "intermediate_size": 4096,
        "vocab_size": 32000, "tie_word_embeddings": false,
        "sliding_window": if gemma { serde_json::json!(1024) } else { serde_json::Value::Null },
    });
    let mut m = vramplan_core::arch::describe(&config).unwrap();
    m.id = format!("toy-{arch}");
    m.family = arch.to_string();
    m
}

fn cpu_args(n_ctx: u64, n_seq: u64, fa: bool, k: &str, v: &str) -> LlamaCppArgs {
    LlamaCppArgs {
        n_ctx,
        n_seq,
        n_ubatch: 512,
        flash_attn: FlashAttn::parse(if fa { "on" } else { "off" }).unwrap(),
        type_k: KvDtype::parse(k).unwrap(),
        type_v: KvDtype::parse(v).unwrap(),
        n_gpu_layers: Some(0),
        swa_full: true,
        ..LlamaCppArgs::default()
    }
}

#[test]
fn cpu_compute_buffer_reproduces_the_logged_sizes() {
    let llama = toy("llama");
    let cb = |a: &LlamaCppArgs| llamacpp::cpu_graph_buffer_bytes(&llama, a).unwrap();
    // c512, -fa on, f16 cache: "CPU compute buffer size = 83.01 MiB" (record 3). By hand: the
    // logits [32000, 512] f32 = 65,536,000 B go above everything alive when they are placed —
    // the final norm, which sits where the last down projection landed, ending at
    // 21,510,144 B (20.514 MiB) — so the buffer is 21,510,144 + 65,536,000 = 87,046,144 B.
    assert_eq!(cb(&cpu_args(512, 1, true, "f16", "f16")), 87_046_144);
    // Same run at c4096 (record 39): the 4 MiB mask leaves a hole the last layer's tensors fill,
    // the final norm ends at 8 MiB + 0.002 (tokens freed early) → "70.50 MiB" = 73,926,656 B,
    // smaller than at c512: ggml-alloc's peak is not monotonic in the context.
    assert_eq!(cb(&cpu_args(4096, 1, true, "f16", "f16")), 73_926_656);
    // A q8_0 K cache adds the Hadamard rotation of Q and K (record 7): "70.50 MiB" at c512.
    assert_eq!(cb(&cpu_args(512, 1, true, "q8_0", "f16")), 73_926_656);
    // Without flash attention (record 37, "158.01 MiB"): the KQ scores [4096 cells, 512, 16
    // heads] f32 = 134,217,728 B go on top of what is alive after layer 0's RoPE of Q: five
    // [2048, 512] f32 tensors (the unused embeddings input, the token rows, the normed input and
    // Q, Q after RoPE: 20 MiB, two of them already freed into a hole too small for the scores),
    // the f32 mask [4096, 512] = 8 MiB, the transposed-V indices 512 × 512 × 8 B = 2 MiB and
    // four small index inputs of 2048 + 2048 + 4096 + 2048 B:
    // 20,971,520 + 8,388,608 + 2,097,152 + 10,240 + 134,217,728 = 165,685,248 B.
    assert_eq!(cb(&cpu_args(4096, 1, false, "f16", "f16")), 165_685_248);
}

#[test]
fn reserve_graph_node_counts_match_the_logs() {
    use llamacpp::reserve_graph::{build, builder_for, ReserveShape};
    // "graph: nodes = N" of the CPU-run records, per builder, flash attention, cache type and
    // streams (non-unified caches of 4 sequences add a 2-D view of each stored cache).
    let cases = [
        ("llama", true, "f16", "f16", 1, 130),
        ("llama", false, "f16", "f16", 1, 150),
        ("llama", true, "q8_0", "f16", 1, 154),
        ("llama", true, "q8_0", "q8_0", 1, 178),
        ("llama", false, "q8_0", "f16", 1, 174),
        ("llama", true, "f16", "f16", 4, 138),
        ("llama", false, "f16", "f16", 4, 154),
        ("qwen2", true, "f16", "f16", 1, 142),
        ("qwen2", false, "f16", "f16", 1, 162),
        ("gemma2", true, "f16", "f16", 1, 154),
        ("gemma2", false, "f16", "f16", 1, 186),
        ("gemma2", true, "q8_0", "q8_0", 1, 202),
        ("gemma2", false, "q8_0", "f16", 4, 214),
    ];
    for (arch, fa, k, v, streams, nodes) in cases {
        let m = toy(arch);
        let q = |t: &str| t != "f16";
        let shape = ReserveShape {
            tokens: 512,
            outputs: 512,
            streams,
            flash_attn: fa,
            cells: 4096,
            swa_cells: 4096,
            seqs: streams,
            rs_size: streams,
            k_quantized: q(k),
            v_quantized: q(v),
        };
        let g = build(&m, builder_for(&m).unwrap(), &shape);
        assert_eq!(
            g.nodes.len(),
            nodes,
            "{arch} fa={fa} {k}/{v} streams={streams}"
        );
    }
}

#[test]
fn unmodelled_builders_keep_the_phase_estimate() {
    use llamacpp::reserve_graph::{builder_for, Builder};
    let cat = catalogue();
    let b = |id: &str| builder_for(cat.model(id).unwrap());
    assert_eq!(
        b("llama-3.1-8b"),
        Some(Builder::Llama {
            qkv_bias: false,
            qk_norm: false
        })
    );
    assert_eq!(
        b("qwen2.5-7b"),
        Some(Builder::Llama {
            qkv_bias: true,
            qk_norm: false
        })
    );
    // Qwen3's QK-norm is simulated (exact on the harness's qwen3 runs).
    assert_eq!(
        b("qwen3-8b"),
        Some(Builder::Llama {
            qkv_bias: false,
            qk_norm: true
        })
    );
    assert_eq!(b("gemma-2-9b"), Some(Builder::Gemma2));
    // MoE, fused QKV, gated delta nets: each builder is simulated (node for node with
    // llama.cpp's graphs on the ground-truth runs).
    assert_eq!(
        b("mixtral-8x7b"),
        Some(Builder::Llama {
            qkv_bias: false,
            qk_norm: false
        })
    );
    assert_eq!(b("phi-3-mini-4k"), Some(Builder::Phi3));
    assert_eq!(b("qwen3-next"), Some(Builder::Qwen3Next));
    // The catalogue's Gemma 3n is described with its vision and audio towers: builder_for
    // builds no graph for a model with towers (the phase estimate, warned); its GGUF text
    // model gets the Gemma3n builder (exact on the ground-truth runs).
    assert!(!cat.model("gemma-3n-e4b").unwrap().towers.is_empty());
    assert_eq!(b("gemma-3n-e4b"), None);
    // Builders not written (Command-R's cohere2.cpp) keep the phase estimate, with a warning.
    assert_eq!(b("CohereForAI/c4ai-command-r-v01"), None);
    let cr = cat.model("CohereForAI/c4ai-command-r-v01").unwrap();
    let c = Config::new(WeightFormat::parse("q4_k").unwrap(), KvDtype::F16, 4096, 1);
    let mix = TypeMix::uniform(GgmlType::by_name("Q4_K").unwrap());
    let args = LlamaCppArgs {
        n_ctx: 4096,
        ..LlamaCppArgs::default()
    };
    let e = llamacpp::estimate(cr, cat.gpu("rtx-4090").unwrap(), c, &mix, &args).unwrap();
    assert!(
        e.warnings
            .iter()
            .any(|w| w.contains("phase estimate") && w.contains("model_type \"cohere\"")),
        "{:?}",
        e.warnings
    );
    // The CPU estimate uses the simulation exactly when a builder is modelled.
    let m = cat.model("llama-3.1-8b").unwrap();
    let a = cpu_args(8192, 1, true, "f16", "f16");
    let w = GgufWeights::of(m, &TypeMix::uniform(GgmlType::by_name("Q4_K").unwrap()));
    assert_eq!(
        llamacpp::buffers(m, &w, &a, 0).cpu_compute,
        llamacpp::cpu_graph_buffer_bytes(m, &a).unwrap()
    );
}
