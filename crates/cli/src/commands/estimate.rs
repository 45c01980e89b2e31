//! `vramplan estimate`: one configuration's memory breakdown, verdict and limits.

use crate::render::Rows;
use crate::Failure;
use clap::{Args, ValueEnum};
use vramplan_core::naive::{naive_estimate, NaiveEstimate};
use vramplan_core::units::{bytes_kib, gb_gib, gib, params_short, thousands};
use vramplan_core::{catalogue, estimate, Config, Estimate, Gpu, KvDtype, ModelDesc, Parallelism, WeightFormat};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Formula {
    /// Architecture-aware: GQA/MQA/MLA, sliding windows, quantized layouts, runtime overheads.
    Exact,
    /// The seed articles' arithmetic: 2 × 2 × layers × hidden × sequence × batch.
    Naive,
}

#[derive(Args)]
pub struct EstimateArgs {
    /// Catalogue id or alias (see `vramplan models`).
    #[arg(long, short = 'm', default_value = "meta-llama/Llama-3.1-8B-Instruct")]
    pub model: String,
    /// Weight precision: fp32, fp16, bf16, fp8, int8, awq, gptq, w4a16, nf4, bnb-int8, mxfp4,
    /// or a GGUF type (q4_0, q4_k, q8_0, ...). Default: the checkpoint's own.
    #[arg(long, short = 'q')]
    pub quant: Option<String>,
    /// KV-cache dtype: fp16, bf16, fp8, int8, q8_0, q4_0 (default: fp16).
    #[arg(long, default_value = "fp16")]
    pub kv_dtype: String,
    /// Tokens per sequence (prompt + output).
    #[arg(long, short = 'c', default_value_t = 8192)]
    pub context: u64,
    /// Concurrent sequences.
    #[arg(long, short = 'b', default_value_t = 1)]
    pub batch: u64,
    /// GPU kind: catalogue id, alias or the name nvidia-smi prints (see `vramplan gpus`).
    #[arg(long, short = 'g', default_value = "h100")]
    pub gpu: String,
    /// Memory of a GPU not in the catalogue, with its unit: 24GiB, 80GB.
    #[arg(long)]
    pub gpu_memory: Option<String>,
    /// GPUs used with tensor parallelism (same as --tp).
    #[arg(long)]
    pub gpus: Option<u64>,
    /// Tensor-parallel size.
    #[arg(long)]
    pub tp: Option<u64>,
    /// Pipeline-parallel size.
    #[arg(long, default_value_t = 1)]
    pub pp: u64,
    /// Data-parallel replicas.
    #[arg(long, default_value_t = 1)]
    pub dp: u64,
    /// Share of each GPU's memory the engine may use.
    #[arg(long, default_value_t = vramplan_core::engine::generic::DEFAULT_UTILIZATION)]
    pub gpu_memory_utilization: f64,
    /// Tokens per prefill forward pass.
    #[arg(long, default_value_t = vramplan_core::engine::generic::DEFAULT_PREFILL_CHUNK)]
    pub prefill_chunk: u64,
    /// exact (default) or naive (the seed articles' formula).
    #[arg(long, value_enum, default_value_t = Formula::Exact)]
    pub formula: Formula,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// A model from the catalogue.
pub fn resolve_model(query: &str) -> Result<ModelDesc, Failure> {
    catalogue().model(query).cloned().map_err(Failure::input)
}

/// A GPU from the catalogue, or a custom size.
pub fn resolve_gpu(query: &str, memory: Option<&str>) -> Result<Gpu, Failure> {
    match memory {
        Some(m) => vramplan_core::units::parse_size(m).map(Gpu::custom).map_err(Failure::input),
        None => catalogue().gpu(query).cloned().map_err(Failure::input),
    }
}

pub fn parallelism(gpus: Option<u64>, tp: Option<u64>, pp: u64, dp: u64) -> Result<Parallelism, Failure> {
    let tp = match (gpus, tp) {
        (Some(g), Some(t)) if g != t * pp * dp => {
            return Err(Failure::input(format!(
                "--gpus {g} disagrees with --tp {t} × --pp {pp} × --dp {dp}; give one or make them agree"
            )))
        }
        (_, Some(t)) => t,
        (Some(g), None) => {
            let per = pp.saturating_mul(dp).max(1);
            if g % per != 0 {
                return Err(Failure::input(format!("--gpus {g} is not a multiple of --pp {pp} × --dp {dp}")));
            }
            g / per
        }
        (None, None) => 1,
    };
    Ok(Parallelism { tp, pp, dp })
}

/// Exactly what `vramplan estimate --json` prints, as a JSON value (the web API calls this).
pub fn compute(a: &EstimateArgs) -> Result<serde_json::Value, Failure> {
    let model = resolve_model(&a.model)?;
    let gpu = resolve_gpu(&a.gpu, a.gpu_memory.as_deref())?;
    let to_value = |v: Result<serde_json::Value, serde_json::Error>| v.map_err(|e| Failure::runtime(e.to_string()));
    if a.formula == Formula::Naive {
        let n = naive(a, &model, &gpu)?;
        return to_value(serde_json::to_value(&n));
    }
    let e = exact(a, &model, &gpu)?;
    to_value(serde_json::to_value(&e))
}

fn naive(a: &EstimateArgs, model: &ModelDesc, gpu: &Gpu) -> Result<NaiveEstimate, Failure> {
    if a.context == 0 || a.batch == 0 {
        return Err(Failure::input("context and batch must each be at least 1"));
    }
    Ok(naive_estimate(model, gpu.memory_bytes, a.context, a.batch))
}

fn exact(a: &EstimateArgs, model: &ModelDesc, gpu: &Gpu) -> Result<Estimate, Failure> {
    let weights = match &a.quant {
        Some(q) => WeightFormat::parse(q).map_err(Failure::input)?,
        None => model.native_format(),
    };
    let kv_dtype = KvDtype::parse(&a.kv_dtype).map_err(Failure::input)?;
    let mut config = Config::new(weights, kv_dtype, a.context, a.batch);
    config.parallel = parallelism(a.gpus, a.tp, a.pp, a.dp)?;
    config.utilization = a.gpu_memory_utilization;
    config.prefill_chunk = a.prefill_chunk;
    estimate(model, gpu, config).map_err(Failure::input)
}

pub fn run(a: EstimateArgs) -> Result<(), Failure> {
    if a.json {
        let v = compute(&a)?;
        let s = serde_json::to_string_pretty(&v).map_err(|e| Failure::runtime(e.to_string()))?;
        println!("{s}");
        return Ok(());
    }
    let model = resolve_model(&a.model)?;
    let gpu = resolve_gpu(&a.gpu, a.gpu_memory.as_deref())?;
    if a.formula == Formula::Naive {
        let n = naive(&a, &model, &gpu)?;
        print!("{}", render_naive(&n));
        return Ok(());
    }
    let e = exact(&a, &model, &gpu)?;
    print!("{}", render(&e, &gpu));
    Ok(())
}

pub fn print_json_or<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<(), Failure> {
    if json {
        let s = serde_json::to_string_pretty(value).map_err(|e| Failure::runtime(e.to_string()))?;
        println!("{s}");
    } else {
        print!("{}", text());
    }
    Ok(())
}

fn render(e: &Estimate, gpu: &Gpu) -> String {
    let mut out = format!(
        "{} on {} × {} ({}), engine: {}\n  weights {}, KV cache {}, {} sequence{} × {} tokens{}\n\n",
        e.model,
        e.gpus,
        gpu.name,
        gib(gpu.memory_bytes),
        e.engine,
        e.quant,
        e.kv_dtype,
        thousands(e.batch),
        if e.batch == 1 { "" } else { "s" },
        thousands(e.context),
        if e.gpus > 1 { format!("; TP {} × PP {} × DP {}; figures per GPU", e.tp, e.pp, e.dp) } else { String::new() },
    );
    let mut r = Rows::default();
    let active = if e.active_params != e.params { format!("; {} active per token", params_short(e.active_params)) } else { String::new() };
    r.add("parameters", params_short(e.params), format!("{}{active}", thousands(e.params)));
    r.add("weights", gb_gib(e.weights_bytes), "");
    r.add("KV cache", gb_gib(e.kv_cache_bytes), format!("{} per token (whole model)", bytes_kib(e.kv_bytes_per_token)));
    r.add("activations", gb_gib(e.activation_bytes), "peak of one prefill chunk, temporary buffers");
    r.add("overhead", gb_gib(e.overhead_bytes), "CUDA context, runtime buffers");
    r.rule();
    r.add("total", gb_gib(e.total_bytes), "");
    r.add("usable", gb_gib(e.usable_bytes), format!("{} × {}", gib(e.gpu_memory_bytes), e.utilization));
    let verdict = if e.fits {
        format!("FITS, {} to spare", gb_gib(e.margin_bytes.unsigned_abs()))
    } else {
        format!("DOES NOT FIT, short by {}", gb_gib(e.margin_bytes.unsigned_abs()))
    };
    r.add("verdict", verdict, "");
    r.add("max concurrency", thousands(e.max_concurrency), format!("sequences of {} tokens", thousands(e.context)));
    let limit = if e.max_context_limit == "model" { " (the model's own limit)" } else { "" };
    r.add("max context", thousands(e.max_context), format!("tokens at {} sequence(s){limit}", thousands(e.batch)));
    r.add(
        "fewest GPUs",
        e.min_gpus.map(|n| n.to_string()).unwrap_or_else(|| "over 64".into()),
        format!("× {} with tensor parallelism", e.gpu),
    );
    out.push_str(&r.render());
    if e.naive.kv_bytes_per_token != e.kv_bytes_per_token {
        out.push_str(&format!(
            "\n  The seed articles' formula (2 × 2 × layers × hidden) gives {} per token, {:.1}× this figure: {}.\n",
            bytes_kib(e.naive.kv_bytes_per_token),
            e.naive.ratio,
            e.naive.reason
        ));
    }
    out
}

fn render_naive(n: &NaiveEstimate) -> String {
    let mut out = format!("{} with the seed articles' formula (--formula naive)\n\n", n.model);
    let mut r = Rows::default();
    r.add("parameters", params_short(n.params), "the size in the model's name");
    r.add("weights", gb_gib(n.weights_bytes), "parameters × 2 bytes (fp16)");
    r.add("KV per token", bytes_kib(n.kv_bytes_per_token), "2 × 2 bytes × layers × hidden size");
    r.add("KV cache", gb_gib(n.kv_cache_bytes), "× sequence length × batch");
    r.add("total", gb_gib(n.total_bytes), "weights + KV cache");
    r.add("GPU memory", gb_gib(n.gpu_memory_bytes), "");
    r.add("free after weights", gb_gib(n.free_bytes), "");
    r.add("max concurrency", thousands(n.max_concurrency_article), "as the article computes it");
    out.push_str(&r.render());
    for note in &n.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    out
}
