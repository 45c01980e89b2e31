//! llama.cpp and ollama profiles against hand-computed buffer sizes and log lines from
//! shared/calibration/llamacpp.jsonl.

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
    assert_eq!(e.kv_buffer_bytes.unwrap(), ngl * 8192 * 2048 * 2);
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
