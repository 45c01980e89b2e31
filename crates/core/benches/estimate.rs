//! One estimate, end to end: breakdown, verdict, max concurrency, max context and fewest GPUs.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use vramplan_core::{catalogue, estimate, Config, KvDtype, WeightFormat};

fn bench(c: &mut Criterion) {
    let cat = catalogue();
    let model = cat.model("meta-llama/Llama-3.1-8B-Instruct").expect("catalogue model");
    let gpu = cat.gpu("a10g").expect("catalogue gpu");
    let config = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 8192, 16);
    c.bench_function("estimate llama-3.1-8b a10g 8k x16", |b| {
        b.iter(|| estimate(black_box(model), black_box(gpu), black_box(config)).unwrap())
    });
    let inv = model.inventory();
    let sizing = vramplan_core::estimate::Sizing::new(model, &inv, gpu.memory_bytes, config);
    c.bench_function("fit check (precomputed sizing)", |b| b.iter(|| sizing.fits(black_box(16), black_box(8192))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
