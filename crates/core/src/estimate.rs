//! The estimate: a memory breakdown per GPU for a model, precision, context, batch and GPU, the
//! verdict, and the searches that answer "how many sequences", "how long a context" and "how
//! many GPUs". Pure: no I/O, no printing.

use crate::engine::generic;
use crate::gpu::Gpu;
use crate::kv::{naive_kv_bytes_per_token, KvLayout};
use crate::model::{Inventory, ModelDesc};
use crate::parallel::{weight_bytes_per_stage, Parallelism};
use crate::precision::{KvDtype, WeightFormat};
use crate::units::mul_ratio;
use serde::Serialize;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    pub weights: WeightFormat,
    pub kv_dtype: KvDtype,
    /// Tokens per sequence (prompt + output).
    pub context: u64,
    /// Concurrent sequences.
    pub batch: u64,
    pub parallel: Parallelism,
    /// Share of each GPU's memory the engine may use.
    pub utilization: f64,
    /// Tokens per prefill forward pass.
    pub prefill_chunk: u64,
}

impl Config {
    pub fn new(weights: WeightFormat, kv_dtype: KvDtype, context: u64, batch: u64) -> Config {
        Config {
            weights,
            kv_dtype,
            context,
            batch,
            parallel: Parallelism::default(),
            utilization: generic::DEFAULT_UTILIZATION,
            prefill_chunk: generic::DEFAULT_PREFILL_CHUNK,
        }
    }

    pub fn check(&self, model: &ModelDesc) -> Result<(), String> {
        if self.context == 0 {
            return Err("context must be at least 1 token".into());
        }
        if self.context > 1 << 34 {
            return Err(format!("context of {} tokens is absurd (limit 2^34)", self.context));
        }
        if self.batch == 0 {
            return Err("batch must be at least 1 concurrent sequence".into());
        }
        if self.batch > 1 << 32 {
            return Err(format!("batch of {} sequences is absurd (limit 2^32)", self.batch));
        }
        if !(self.utilization > 0.0 && self.utilization <= 1.0) {
            return Err(format!("GPU memory utilization {} must be in (0, 1]", self.utilization));
        }
        if self.prefill_chunk == 0 {
            return Err("prefill chunk must be at least 1 token".into());
        }
        self.parallel.check(model)
    }
}

/// The parts of the memory of the busiest GPU that do not depend on batch and context,
/// precomputed so that the searches below cost a few multiplications per step.
#[derive(Debug, Clone)]
pub struct Sizing<'a> {
    pub model: &'a ModelDesc,
    pub config: Config,
    pub weights_bytes: u64,
    pub kv: KvLayout,
    pub overhead_bytes: u64,
    pub usable_bytes: u64,
    pub gpu_memory_bytes: u64,
}

impl<'a> Sizing<'a> {
    pub fn new(model: &'a ModelDesc, inv: &Inventory, gpu_memory_bytes: u64, config: Config) -> Sizing<'a> {
        let par = config.parallel;
        let weights = weight_bytes_per_stage(model, inv, config.weights, &par);
        let stages = par.stages(model.num_layers);
        // The busiest stage sets the per-GPU figure: largest weights plus KV at this config.
        let (mut best, mut best_total) = (0usize, 0u64);
        for (s, range) in stages.iter().enumerate() {
            let kv = KvLayout::new(model, config.kv_dtype, par.tp, range.clone());
            let t = weights[s].saturating_add(kv.bytes_per_sequence(config.context).saturating_mul(config.batch));
            if t >= best_total {
                best = s;
                best_total = t;
            }
        }
        let kv = KvLayout::new(model, config.kv_dtype, par.tp, stages[best].clone());
        let utilization_milli = (config.utilization * 1_000_000.0).round() as u64;
        Sizing {
            model,
            config,
            weights_bytes: weights[best],
            kv,
            overhead_bytes: generic::overhead_bytes(par.tp.saturating_mul(par.pp)),
            usable_bytes: mul_ratio(gpu_memory_bytes, utilization_milli, 1_000_000),
            gpu_memory_bytes,
        }
    }

    pub fn kv_cache_bytes(&self, batch: u64, context: u64) -> u64 {
        self.kv.bytes_per_sequence(context).saturating_mul(batch)
    }

    pub fn activation_bytes(&self, batch: u64, context: u64) -> u64 {
        let tokens = context.saturating_mul(batch).min(self.config.prefill_chunk).max(1);
        generic::activation_bytes(self.model, tokens, batch, self.config.parallel.tp)
    }

    pub fn total_bytes(&self, batch: u64, context: u64) -> u64 {
        self.weights_bytes
            .saturating_add(self.kv_cache_bytes(batch, context))
            .saturating_add(self.activation_bytes(batch, context))
            .saturating_add(self.overhead_bytes)
    }

    pub fn fits(&self, batch: u64, context: u64) -> bool {
        self.total_bytes(batch, context) <= self.usable_bytes
    }

    /// Largest number of concurrent sequences of `context` tokens that fit (0 if none).
    pub fn max_concurrency(&self, context: u64) -> u64 {
        largest_fitting(1 << 32, |b| self.fits(b, context))
    }

    /// Longest context that fits at `batch` sequences (0 if none), not capped by the model.
    pub fn max_context(&self, batch: u64) -> u64 {
        largest_fitting(1 << 34, |c| self.fits(batch, c))
    }
}

/// Largest n in [0, limit] with `fits(n)`, for a predicate that is true up to some n and false
/// after (memory never shrinks as batch or context grows). 0 when even 1 does not fit.
fn largest_fitting(limit: u64, fits: impl Fn(u64) -> bool) -> u64 {
    if !fits(1) {
        return 0;
    }
    let (mut lo, mut hi) = (1u64, limit);
    if fits(hi) {
        return hi;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// One line of "where this number comes from", shown on hover in the web page and under the
/// table in the CLI.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Assumption {
    pub figure: &'static str,
    pub formula: String,
    pub source: &'static str,
}

/// The seed articles' figures for the same request, for comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NaiveComparison {
    pub kv_bytes_per_token: u64,
    pub kv_cache_bytes: u64,
    /// naive ÷ architecture-aware KV per token.
    pub ratio: f64,
    pub reason: String,
}

/// The estimate as printed and as JSON (`vramplan estimate --json`). Byte figures are per GPU.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Estimate {
    pub model: String,
    pub gpu: String,
    pub gpus: u64,
    pub tp: u64,
    pub pp: u64,
    pub dp: u64,
    pub quant: String,
    pub kv_dtype: String,
    pub context: u64,
    pub batch: u64,
    pub engine: String,
    pub params: u64,
    pub active_params: u64,
    pub weights_bytes: u64,
    pub kv_bytes_per_token: u64,
    pub kv_cache_bytes: u64,
    pub activation_bytes: u64,
    pub overhead_bytes: u64,
    pub total_bytes: u64,
    pub gpu_memory_bytes: u64,
    pub usable_bytes: u64,
    pub utilization: f64,
    /// usable − total: positive is room to spare, negative the shortfall.
    pub margin_bytes: i64,
    pub fits: bool,
    /// Concurrent sequences of `context` tokens that fit (over all data-parallel replicas).
    pub max_concurrency: u64,
    /// Longest context at `batch` sequences, capped at the model's own limit.
    pub max_context: u64,
    /// "memory" or "model": what limits `max_context`.
    pub max_context_limit: &'static str,
    /// Fewest GPUs of this kind (tensor parallel) that hold the configuration; null if over 64.
    pub min_gpus: Option<u64>,
    pub naive: NaiveComparison,
    pub assumptions: Vec<Assumption>,
}

/// Smallest tensor-parallel size (≤ 64) at which the configuration fits on this GPU.
pub fn min_gpus(model: &ModelDesc, inv: &Inventory, gpu_memory_bytes: u64, config: Config) -> Option<u64> {
    (1..=64u64)
        .filter(|&tp| Parallelism { tp, pp: 1, dp: 1 }.check(model).is_ok())
        .find(|&tp| {
            let c = Config { parallel: Parallelism { tp, pp: 1, dp: 1 }, ..config };
            Sizing::new(model, inv, gpu_memory_bytes, c).fits(config.batch, config.context)
        })
}

fn naive_reason(model: &ModelDesc) -> String {
    if let Some(m) = &model.mla {
        return format!(
            "{} uses multi-head latent attention: it caches a {}-wide latent plus a {}-wide rope key per layer, not K and V of the full hidden size {}",
            model.id, m.kv_lora_rank, m.qk_rope_head_dim, model.hidden_size
        );
    }
    let kind = if model.num_kv_heads == 1 {
        "multi-query attention (1 KV head)".to_string()
    } else if model.num_kv_heads < model.num_attention_heads {
        format!("grouped-query attention ({} KV heads for {} query heads)", model.num_kv_heads, model.num_attention_heads)
    } else {
        format!("multi-head attention ({} heads)", model.num_attention_heads)
    };
    let mut r = format!("{} uses {kind} of head dimension {}", model.id, model.head_dim);
    if model.num_kv_heads * model.head_dim != model.hidden_size {
        r.push_str(&format!(": K and V are {} wide per layer, not the hidden size {}", model.num_kv_heads * model.head_dim, model.hidden_size));
    }
    if model.sliding_window.is_some() {
        r.push_str("; sliding-window layers keep at most their window");
    }
    if model.ssm.is_some() {
        r.push_str("; Mamba layers keep a constant state instead of a KV cache");
    }
    if model.dtype_bytes() != 2 {
        r.push_str("; the naive formula assumes 2-byte elements");
    }
    r
}

/// The full estimate under the generic engine.
pub fn estimate(model: &ModelDesc, gpu: &Gpu, config: Config) -> Result<Estimate, String> {
    config.check(model)?;
    let inv = model.inventory();
    let s = Sizing::new(model, &inv, gpu.memory_bytes, config);
    let (b, c) = (config.batch, config.context);
    let total = s.total_bytes(b, c);
    let kv_per_token_model = crate::kv::kv_bytes_per_token(model, config.kv_dtype);
    let naive_per_token = naive_kv_bytes_per_token(model);
    let fit_context = s.max_context(b);
    let (max_context, limit) = if fit_context >= model.max_context { (model.max_context, "model") } else { (fit_context, "memory") };
    let par = config.parallel;
    let params = inv.params();
    Ok(Estimate {
        model: model.id.clone(),
        gpu: gpu.id.clone(),
        gpus: par.gpus(),
        tp: par.tp,
        pp: par.pp,
        dp: par.dp,
        quant: config.weights.name(),
        kv_dtype: config.kv_dtype.name(),
        context: c,
        batch: b,
        engine: "generic".into(),
        params,
        active_params: params.saturating_sub(inv.inactive_expert_params),
        weights_bytes: s.weights_bytes,
        kv_bytes_per_token: kv_per_token_model,
        kv_cache_bytes: s.kv_cache_bytes(b, c),
        activation_bytes: s.activation_bytes(b, c),
        overhead_bytes: s.overhead_bytes,
        total_bytes: total,
        gpu_memory_bytes: gpu.memory_bytes,
        usable_bytes: s.usable_bytes,
        utilization: config.utilization,
        margin_bytes: (s.usable_bytes as i128 - total as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        fits: total <= s.usable_bytes,
        max_concurrency: s.max_concurrency(c).saturating_mul(par.dp),
        max_context,
        max_context_limit: limit,
        min_gpus: min_gpus(model, &inv, gpu.memory_bytes, Config { parallel: Parallelism::default(), ..config }),
        naive: NaiveComparison {
            kv_bytes_per_token: naive_per_token,
            kv_cache_bytes: naive_per_token.saturating_mul(c).saturating_mul(b),
            ratio: if kv_per_token_model == 0 { f64::INFINITY } else { naive_per_token as f64 / kv_per_token_model as f64 },
            reason: naive_reason(model),
        },
        assumptions: assumptions(model, &config),
    })
}

fn assumptions(model: &ModelDesc, config: &Config) -> Vec<Assumption> {
    vec![
        Assumption {
            figure: "weights",
            formula: format!("sum over every tensor of its bytes in {} (quantized layouts include their scales and zero points; embeddings, head and norms stay 16-bit where the format keeps them)", config.weights.name()),
            source: "tensor inventory from the model's config.json (data/models), storage layouts in precision.rs",
        },
        Assumption {
            figure: "kv_cache",
            formula: if model.mla.is_some() {
                "layers × (kv_lora_rank + qk_rope_head_dim) × dtype bytes × tokens × sequences".into()
            } else {
                format!("2 × layers × KV heads ({}) × head_dim ({}) × {} bytes × tokens × sequences; sliding-window layers capped at the window", model.num_kv_heads, model.head_dim, config.kv_dtype.name())
            },
            source: "DeepSeek-V2 §2.1 (KV per token by attention kind); vLLM kv_cache_interface.py page sizes",
        },
        Assumption {
            figure: "activations",
            formula: format!("min(context × batch, {}) prefill tokens × (2·hidden + widest of attention and MLP) × 2 bytes + fp32 logits ×2 for each sampled sequence", config.prefill_chunk),
            source: "generic engine model (engine/generic.rs); engine profiles replace it",
        },
        Assumption {
            figure: "overhead",
            formula: "CUDA context 400 MiB + runtime buffers 0.25 GiB (+2 GiB communication buffers per GPU when split)".into(),
            source: "pytorch/pytorch#109888; vLLM 0.19 non-torch memory (shared/calibration/vllm.jsonl)",
        },
        Assumption {
            figure: "usable",
            formula: format!("GPU memory as CUDA reports it × {}", config.utilization),
            source: "vLLM --gpu-memory-utilization default 0.9 (vllm/config/cache.py)",
        },
    ]
}
