//! The planner over the whole GPU catalogue for one model: every GPU kind × precision × KV dtype
//! × tensor/pipeline split up to 8 GPUs, each checked by the vLLM profile.
use criterion::{criterion_group, criterion_main, Criterion};
use vramplan_core::engine::vllm::{self, Release, VllmArgs};
use vramplan_core::plan::{search, Space, Workload};
use vramplan_core::{catalogue, Config, Gpu, KvDtype, ModelDesc, WeightFormat};

fn bench(c: &mut Criterion) {
    let cat = catalogue();
    let model = cat.model("meta-llama/Llama-3.1-70B-Instruct").unwrap();
    let eval = |m: &ModelDesc, g: &Gpu, cfg: Config| {
        let mut a = VllmArgs::new(Release::NEWEST);
        a.utilization_given = true;
        vllm::estimate(m, g, cfg, &a)
    };
    let space = Space {
        models: vec![model],
        gpus: cat
            .gpus
            .iter()
            .map(|g| (g, cat.price(&g.id).map(|p| p.usd_per_hour)))
            .collect(),
        quants: vec![
            WeightFormat::Bf16,
            WeightFormat::Fp8 { block: 0 },
            WeightFormat::Awq { group: 128 },
        ],
        kv_dtypes: vec![KvDtype::F16, KvDtype::Fp8],
        max_gpus: 8,
        utilization: 0.92,
    };
    let work = Workload {
        context: 8192,
        concurrency: 32,
        rate: None,
        output_tokens: 256,
    };
    let launch = |_: &ModelDesc, _: &vramplan_core::plan::Deployment| String::new();
    c.bench_function("plan llama-3.1-70b 8k x32, all GPUs (vllm profile)", |b| {
        b.iter(|| search(&eval, &space, &work, &launch))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
