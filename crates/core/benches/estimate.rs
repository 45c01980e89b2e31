//! One estimate. `figures`: the numbers of an estimate (breakdown, verdict, max concurrency,
//! max context, fewest GPUs) from a model whose tensor inventory is built once, as the planner
//! and the web server use it; `estimate`: the whole answer with its explanatory text, as
//! `vramplan estimate --json` prints it.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use vramplan_core::estimate::figures;
use vramplan_core::{catalogue, estimate, Config, KvDtype, WeightFormat};

fn bench(c: &mut Criterion) {
    let cat = catalogue();
    let model = cat
        .model("meta-llama/Llama-3.1-8B-Instruct")
        .expect("catalogue model");
    let gpu = cat.gpu("a10g").expect("catalogue gpu");
    let config = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 8192, 16);
    let inv = model.inventory();
    c.bench_function("figures llama-3.1-8b a10g 8k x16", |b| {
        b.iter(|| {
            figures(
                black_box(model),
                black_box(inv),
                black_box(gpu.memory_bytes),
                black_box(config),
            )
        })
    });
    c.bench_function("estimate llama-3.1-8b a10g 8k x16 (full, with text)", |b| {
        b.iter(|| estimate(black_box(model), black_box(gpu), black_box(config)).unwrap())
    });
    let ds = cat
        .model("deepseek-ai/DeepSeek-V3")
        .expect("catalogue model");
    let ds_inv = ds.inventory();
    let h100 = cat.gpu("h100").expect("catalogue gpu");
    let ds_config = Config::new(WeightFormat::Fp8 { block: 128 }, KvDtype::Bf16, 32768, 8);
    c.bench_function("figures deepseek-v3 h100 32k x8", |b| {
        b.iter(|| {
            figures(
                black_box(ds),
                black_box(ds_inv),
                black_box(h100.memory_bytes),
                black_box(ds_config),
            )
        })
    });
}

/// llama.cpp's CPU compute buffer: the reserve graph of an 80-layer model (about 3,300 nodes)
/// built and run through the ggml-alloc simulation.
fn bench_llamacpp_graph(c: &mut Criterion) {
    use vramplan_core::engine::llamacpp::{self, LlamaCppArgs};
    let m = vramplan_core::catalogue().model("llama-3.1-70b").unwrap();
    let a = LlamaCppArgs {
        n_ctx: 8192,
        n_gpu_layers: Some(0),
        ..LlamaCppArgs::default()
    };
    c.bench_function(
        "llama.cpp CPU compute buffer llama-3.1-70b 8k (graph + ggml-alloc)",
        |b| b.iter(|| llamacpp::cpu_graph_buffer_bytes(black_box(m), black_box(&a))),
    );
}

criterion_group!(benches, bench, bench_llamacpp_graph);
criterion_main!(benches);
