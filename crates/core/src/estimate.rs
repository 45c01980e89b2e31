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
            return Err(format!(
                "context of {} tokens is absurd (limit 2^34)",
                self.context
            ));
        }
        if self.batch == 0 {
            return Err("batch must be at least 1 concurrent sequence".into());
        }
        if self.batch > 1 << 32 {
            return Err(format!(
                "batch of {} sequences is absurd (limit 2^32)",
                self.batch
            ));
        }
        check_cached_tokens(self.context, self.batch)?;
        if !(self.utilization > 0.0 && self.utilization <= 1.0) {
            return Err(format!(
                "GPU memory utilization {} must be in (0, 1]",
                self.utilization
            ));
        }
        if self.prefill_chunk == 0 {
            return Err("prefill chunk must be at least 1 token".into());
        }
        self.parallel.check(model)
    }
}

/// Context × batch against the tokens a KV cache can hold (limits.rs `MAX_CACHED_TOKENS`): each
/// may be in range and their product still beyond any deployment, where every byte figure would
/// saturate at 2^64.
pub fn check_cached_tokens(context: u64, batch: u64) -> Result<(), String> {
    let tokens = u128::from(context) * u128::from(batch);
    if tokens > u128::from(crate::limits::MAX_CACHED_TOKENS) {
        return Err(format!(
            "context {context} × batch {batch} = {tokens} tokens in the KV cache is beyond any deployment (limit 2^34 = {})",
            crate::limits::MAX_CACHED_TOKENS
        ));
    }
    Ok(())
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
    pub fn new(
        model: &'a ModelDesc,
        inv: &Inventory,
        gpu_memory_bytes: u64,
        config: Config,
    ) -> Sizing<'a> {
        let par = config.parallel;
        let weights = weight_bytes_per_stage(model, inv, config.weights, &par);
        let stages = par.stages(model.num_layers);
        // The busiest stage sets the per-GPU figure: largest weights plus KV at this config.
        let (mut best, mut best_total, mut best_kv) = (0usize, 0u64, None);
        for (s, range) in stages.iter().enumerate() {
            let kv = KvLayout::new(model, config.kv_dtype, par.tp, range.clone());
            let t = weights[s].saturating_add(
                kv.bytes_per_sequence(config.context)
                    .saturating_mul(config.batch),
            );
            if t >= best_total || best_kv.is_none() {
                best = s;
                best_total = t;
                best_kv = Some(kv);
            }
        }
        let kv = best_kv.unwrap_or_default();
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
        let tokens = context
            .saturating_mul(batch)
            .min(self.config.prefill_chunk)
            .max(1);
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

    /// Memory left for the KV cache after everything that does not grow with it, at `batch`
    /// sequences of `context` tokens (for the search's first guess).
    fn room_for_kv(&self, batch: u64, context: u64) -> u64 {
        self.usable_bytes
            .saturating_sub(self.weights_bytes)
            .saturating_sub(self.overhead_bytes)
            .saturating_sub(self.activation_bytes(batch, context))
    }

    /// Largest number of concurrent sequences of `context` tokens that fit (0 if none).
    pub fn max_concurrency(&self, context: u64) -> u64 {
        // First guess: the room left at one sequence over one sequence's KV — exact when
        // activations do not grow with the batch, a close upper bound otherwise.
        let per_seq = self.kv.bytes_per_sequence(context).max(1);
        let guess = self.room_for_kv(1, context) / per_seq;
        largest_fitting_near(guess, 1 << 32, |b| self.fits(b, context))
    }

    /// Longest context that fits at `batch` sequences (0 if none), not capped by the model.
    pub fn max_context(&self, batch: u64) -> u64 {
        // First guess: the room over the per-token KV of every attention layer (windows
        // treated as full: an underestimate when the model has sliding-window layers).
        let per_token = self.kv.bytes_per_token().saturating_mul(batch).max(1);
        let state = self.kv.bytes_per_sequence(0).saturating_mul(batch);
        let guess = self.room_for_kv(batch, 1).saturating_sub(state) / per_token;
        largest_fitting_near(guess, 1 << 34, |c| self.fits(batch, c))
    }
}

/// Largest n in [1, limit] with `fits(n)` (0 when even 1 does not fit), for a predicate that is
/// true up to some n and false after (memory never shrinks as batch or context grows). Starts
/// at `guess` and gallops away from it (1, 2, 4, … steps) until the answer is bracketed, then
/// bisects: a handful of evaluations when the guess is close, 2·log2(limit) at worst.
pub fn largest_fitting_near(guess: u64, limit: u64, fits: impl Fn(u64) -> bool) -> u64 {
    if !fits(1) {
        return 0;
    }
    let g = guess.clamp(1, limit);
    let (mut lo, mut hi);
    if fits(g) {
        lo = g;
        let mut step = 1u64;
        loop {
            if lo == limit {
                return limit;
            }
            let next = lo.saturating_add(step).min(limit);
            if fits(next) {
                lo = next;
                step = step.saturating_mul(2);
            } else {
                hi = next;
                break;
            }
        }
    } else {
        hi = g;
        let mut step = 1u64;
        loop {
            let next = hi.saturating_sub(step).max(1);
            if fits(next) {
                lo = next;
                break;
            }
            hi = next;
            step = step.saturating_mul(2);
        }
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

/// What an engine would print and stop with at start-up, and the flag that avoids it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StartupError {
    /// The error as the engine words it, with this configuration's numbers.
    pub message: String,
    /// The engine source file that raises it.
    pub source: &'static str,
    /// A flag (with value) that makes the configuration start.
    pub fix: String,
}

/// One engine setting as the profile resolved it (defaults made explicit).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Setting {
    pub name: &'static str,
    pub value: String,
    /// Where the value came from: "given", or the engine default and its source.
    pub origin: String,
}

/// Per pipeline stage figures (one GPU of the stage), when the model is split into stages.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageFigures {
    pub stage: u64,
    pub layers: u64,
    pub weights_bytes: u64,
    pub activation_bytes: u64,
    pub overhead_bytes: u64,
    /// KV-cache bytes this stage's GPU has room for (vLLM: "Available KV cache memory").
    pub kv_available_bytes: i64,
}

/// One device's share of a llama.cpp run (a GPU, or the host): its buffers and whether they
/// fit its memory.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceBuffers {
    /// llama.cpp's name for it (CUDA0, CUDA1…, CPU).
    pub device: String,
    /// The catalogue's name (the GPU model, or "host memory").
    pub name: String,
    /// "gpu" or "host".
    pub kind: &'static str,
    /// Its memory (0 for the host when its size is not known).
    pub memory_bytes: u64,
    /// Layers whose weights it holds (llama.cpp's count: the output layer is one).
    pub layers: u64,
    pub model_bytes: u64,
    pub kv_bytes: u64,
    pub compute_bytes: u64,
    /// The logits buffer (host only).
    pub output_bytes: u64,
    /// Memory the process holds outside llama.cpp's buffers (a GPU's CUDA context).
    pub reserve_bytes: u64,
    pub total_bytes: u64,
    pub fits: bool,
}

/// The estimate as printed and as JSON (`vramplan estimate --json`). Byte figures are per GPU.
/// The keys after `assumptions` appear only for the engine profiles that produce them.
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
    /// The whole checkpoint's parameters as transformers counts them (towers included, tied
    /// weights once, multi-token-prediction layers apart).
    pub params: u64,
    /// The language model's parameters (params without the vision/audio towers and projectors).
    pub text_params: u64,
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
    /// The decoder layers by kind, with their caches.
    pub layers: crate::model::LayerSummary,
    /// Vision/audio towers and projectors, each with its parameters.
    pub towers: Vec<crate::model::Tower>,
    /// vLLM / SGLang: memory outside torch tensors (CUDA context excluded, NCCL and cuBLAS
    /// buffers included) as vLLM's "non-torch memory".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_torch_bytes: Option<u64>,
    /// vLLM: CUDA-graph memory charged to the budget (0.20 and later; 0 when eager).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_graph_bytes: Option<u64>,
    /// vLLM: KV-cache blocks ("num_gpu_blocks", the minimum over ranks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_cache_blocks: Option<u64>,
    /// vLLM: "GPU KV cache size: N tokens" (engine-wide, one replica); SGLang: the token pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_cache_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u64>,
    /// vLLM: bytes of the KV-cache pool on this GPU (blocks × block bytes), what vLLM reserves
    /// whatever the load; `kv_cache_bytes` stays the KV that `batch` × `context` needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_pool_bytes: Option<u64>,
    /// vLLM: "Maximum concurrency for N tokens per request: X x" as vLLM computes X.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_max_concurrency: Option<f64>,
    /// llama.cpp / ollama: model buffers on the GPU and in host memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_model_buffer_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_model_buffer_bytes: Option<u64>,
    /// llama.cpp / ollama: KV buffer on the GPU (the layers offloaded) and in host memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_buffer_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_kv_buffer_bytes: Option<u64>,
    /// llama.cpp / ollama: compute buffer on the GPU and on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_buffer_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_compute_buffer_bytes: Option<u64>,
    /// llama.cpp: logits buffer in host memory ("output buffer size").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_buffer_bytes: Option<u64>,
    /// llama.cpp / ollama: layers on the GPU (-ngl; counts the output layer as llama.cpp does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_layers: Option<u64>,
    /// llama.cpp / ollama: the largest -ngl whose buffers fit the GPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_gpu_layers: Option<u64>,
    /// llama.cpp / ollama: block_count + 1 (the output layer), the "N" of "offloaded n/N".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_layers: Option<u64>,
    /// The start-up error the engine would stop with, and the flag that avoids it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_error: Option<StartupError>,
    /// The engine settings the profile used, defaults included.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub engine_settings: Vec<Setting>,
    /// Per-stage figures when pipeline parallel (the top-level figures are the limiting stage's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageFigures>,
    /// When it does not fit: the smallest changes that would (crate::plan::advise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<crate::plan::Advice>,
    /// What the description could not say exactly (the mapping's warnings, first), what the
    /// figures cannot say and the engine would (a context beyond the model's limit), what they
    /// assume that the input did not say, and where they are estimated rather than exact: one
    /// sentence each; empty when there is nothing to flag. Always serialized.
    pub warnings: Vec<String>,
    /// llama.cpp: every device's buffers, one object per GPU and one for the host.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceBuffers>,
}

impl Estimate {
    /// The fields every engine fills the same way: identity of the request, parameter counts,
    /// the seed articles' comparison. Engines fill the rest.
    pub fn skeleton(
        model: &ModelDesc,
        inv: &Inventory,
        gpu: &Gpu,
        config: &Config,
        engine: &str,
    ) -> Estimate {
        let par = config.parallel;
        let kv_per_token_model = crate::kv::kv_bytes_per_token(model, config.kv_dtype);
        let naive_per_token = naive_kv_bytes_per_token(model);
        let (b, c) = (config.batch, config.context);
        let params = inv.params();
        Estimate {
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
            engine: engine.into(),
            params,
            text_params: model.text_params(),
            active_params: params.saturating_sub(inv.inactive_expert_params),
            weights_bytes: 0,
            kv_bytes_per_token: kv_per_token_model,
            kv_cache_bytes: 0,
            activation_bytes: 0,
            overhead_bytes: 0,
            total_bytes: 0,
            gpu_memory_bytes: gpu.memory_bytes,
            usable_bytes: 0,
            utilization: config.utilization,
            margin_bytes: 0,
            fits: false,
            max_concurrency: 0,
            max_context: 0,
            max_context_limit: "memory",
            min_gpus: None,
            naive: NaiveComparison {
                kv_bytes_per_token: naive_per_token,
                kv_cache_bytes: naive_per_token.saturating_mul(c).saturating_mul(b),
                ratio: if kv_per_token_model == 0 {
                    f64::INFINITY
                } else {
                    naive_per_token as f64 / kv_per_token_model as f64
                },
                reason: naive_reason(model),
            },
            assumptions: Vec::new(),
            warnings: model.warnings.clone(),
            layers: model.layer_summary(),
            towers: model.towers.clone(),
            non_torch_bytes: None,
            cuda_graph_bytes: None,
            kv_cache_blocks: None,
            kv_cache_tokens: None,
            block_size: None,
            kv_pool_bytes: None,
            engine_max_concurrency: None,
            gpu_model_buffer_bytes: None,
            cpu_model_buffer_bytes: None,
            kv_buffer_bytes: None,
            cpu_kv_buffer_bytes: None,
            compute_buffer_bytes: None,
            cpu_compute_buffer_bytes: None,
            output_buffer_bytes: None,
            gpu_layers: None,
            max_gpu_layers: None,
            model_layers: None,
            startup_error: None,
            engine_settings: Vec::new(),
            stages: Vec::new(),
            advice: Vec::new(),
            devices: Vec::new(),
        }
    }

    /// Sets total, margin and verdict from the parts; `needed` is what the request needs.
    pub fn set_verdict(&mut self, needed: u64, usable: u64) {
        self.total_bytes = needed;
        self.usable_bytes = usable;
        self.margin_bytes = signed_difference(usable, needed);
        self.fits = needed <= usable && self.startup_error.is_none();
    }
}

/// a − b as a signed figure, clamped to i64.
pub fn signed_difference(a: u64, b: u64) -> i64 {
    (a as i128 - b as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Smallest tensor-parallel size (≤ 64) at which the configuration fits on this GPU.
pub fn min_gpus(
    model: &ModelDesc,
    inv: &Inventory,
    gpu_memory_bytes: u64,
    config: Config,
) -> Option<u64> {
    let one = Config {
        parallel: Parallelism::default(),
        ..config
    };
    min_gpus_from(
        model,
        inv,
        gpu_memory_bytes,
        &Sizing::new(model, inv, gpu_memory_bytes, one),
    )
}

/// `min_gpus` given the single-GPU sizing of the configuration.
fn min_gpus_from(
    model: &ModelDesc,
    inv: &Inventory,
    gpu_memory_bytes: u64,
    single: &Sizing,
) -> Option<u64> {
    let config = single.config;
    if single.fits(config.batch, config.context) {
        return Some(1);
    }
    // Each of tp GPUs holds at least 1/tp of the weights and of the KV cache, so a split whose
    // share of those alone exceeds the usable memory cannot fit and need not be sized.
    let shared = single
        .weights_bytes
        .saturating_add(single.kv_cache_bytes(config.batch, config.context));
    (2..=64u64)
        .filter(|&tp| shared / tp <= single.usable_bytes)
        .filter(|&tp| Parallelism { tp, pp: 1, dp: 1 }.check(model).is_ok())
        .find(|&tp| {
            let c = Config {
                parallel: Parallelism { tp, pp: 1, dp: 1 },
                ..config
            };
            Sizing::new(model, inv, gpu_memory_bytes, c).fits(config.batch, config.context)
        })
}

pub fn naive_reason(model: &ModelDesc) -> String {
    let Some(a) = model.first_attention() else {
        return format!(
            "{} has no attention layers: its recurrent layers keep a constant state per sequence, no KV cache",
            model.id
        );
    };
    if let Some(m) = &a.latent {
        return format!(
            "{} uses multi-head latent attention: it caches a {}-wide latent plus a {}-wide rope key per layer, not K and V of the full hidden size {}",
            model.id, m.kv_lora_rank, m.qk_rope_head_dim, model.hidden_size
        );
    }
    let kind = if a.kv_heads == 1 {
        "multi-query attention (1 KV head)".to_string()
    } else if a.kv_heads < a.heads {
        format!(
            "grouped-query attention ({} KV heads for {} query heads)",
            a.kv_heads, a.heads
        )
    } else {
        format!("multi-head attention ({} heads)", a.heads)
    };
    let mut r = format!(
        "{} uses {kind} of head dimension {}",
        model.id, a.k_head_dim
    );
    if a.kv_heads * a.k_head_dim != model.hidden_size {
        r.push_str(&format!(
            ": K and V are {} wide per layer, not the hidden size {}",
            a.kv_heads * a.k_head_dim,
            model.hidden_size
        ));
    }
    let layers: Vec<_> = model.layers().collect();
    if layers.iter().any(|l| {
        l.attention
            .as_ref()
            .is_some_and(|a| a.span.limit().is_some())
    }) {
        r.push_str("; sliding-window layers keep at most their window");
    }
    if layers
        .iter()
        .any(|l| l.attention.as_ref().is_some_and(|a| !a.caches()))
    {
        r.push_str("; some layers reuse another layer's cache");
    }
    if layers.iter().any(|l| l.recurrent.is_some()) {
        r.push_str("; recurrent layers keep a constant state instead of a KV cache");
    }
    if layers
        .iter()
        .any(|l| l.attention.is_none() && l.recurrent.is_none())
    {
        r.push_str("; some layers have no attention");
    }
    if model.dtype_bytes() != 2 {
        r.push_str("; the naive formula assumes 2-byte elements");
    }
    r
}

/// The full estimate under the generic engine.
/// The numbers of a generic-engine estimate, without the text that explains them: what the
/// searches, the planner and the benchmark need. `inv` is the model's inventory, built once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub weights_bytes: u64,
    pub kv_cache_bytes: u64,
    pub activation_bytes: u64,
    pub overhead_bytes: u64,
    pub total_bytes: u64,
    pub usable_bytes: u64,
    pub max_concurrency: u64,
    /// Longest context that fits at `batch`, not capped by the model.
    pub max_context: u64,
    pub min_gpus: Option<u64>,
}

pub fn figures(
    model: &ModelDesc,
    inv: &Inventory,
    gpu_memory_bytes: u64,
    config: Config,
) -> Figures {
    let s = Sizing::new(model, inv, gpu_memory_bytes, config);
    let (b, c) = (config.batch, config.context);
    Figures {
        weights_bytes: s.weights_bytes,
        kv_cache_bytes: s.kv_cache_bytes(b, c),
        activation_bytes: s.activation_bytes(b, c),
        overhead_bytes: s.overhead_bytes,
        total_bytes: s.total_bytes(b, c),
        usable_bytes: s.usable_bytes,
        max_concurrency: s.max_concurrency(c).saturating_mul(config.parallel.dp),
        max_context: s.max_context(b),
        min_gpus: if config.parallel == Parallelism::default() {
            min_gpus_from(model, inv, gpu_memory_bytes, &s)
        } else {
            min_gpus(model, inv, gpu_memory_bytes, config)
        },
    }
}

/// The full estimate under the generic engine.
pub fn estimate(model: &ModelDesc, gpu: &Gpu, config: Config) -> Result<Estimate, String> {
    config.check(model)?;
    let inv = model.inventory();
    let f = figures(model, inv, gpu.memory_bytes, config);
    let (max_context, limit) = if f.max_context >= model.max_context {
        (model.max_context, "model")
    } else {
        (f.max_context, "memory")
    };
    let mut e = Estimate::skeleton(model, inv, gpu, &config, "generic");
    e.weights_bytes = f.weights_bytes;
    e.kv_cache_bytes = f.kv_cache_bytes;
    e.activation_bytes = f.activation_bytes;
    e.overhead_bytes = f.overhead_bytes;
    e.set_verdict(f.total_bytes, f.usable_bytes);
    e.max_concurrency = f.max_concurrency;
    e.max_context = max_context;
    e.max_context_limit = limit;
    e.min_gpus = f.min_gpus;
    e.assumptions = assumptions(model, &config);
    if let Some(w) = context_beyond_limit(model, config.context) {
        e.warnings.push(w);
    }
    Ok(e)
}

/// The warning for a context longer than the model was built for (`max_position_embeddings`
/// in its config.json): the memory figures hold, but vLLM (vllm/config/model.py) and SGLang
/// (python/sglang/srt/configs/model_config.py `_derive_context_length`) refuse to start with
/// it, and llama.cpp warns "possible training context overflow" (src/llama-context.cpp).
pub fn context_beyond_limit(model: &ModelDesc, context: u64) -> Option<String> {
    (context > model.max_context).then(|| {
        format!(
            "context {} is beyond {}'s limit of {} tokens (max_position_embeddings): vLLM and SGLang refuse to start with it, llama.cpp warns of a training-context overflow; the memory figures are for the context as given",
            crate::units::thousands(context),
            model.id,
            crate::units::thousands(model.max_context)
        )
    })
}

fn assumptions(model: &ModelDesc, config: &Config) -> Vec<Assumption> {
    vec![
        Assumption {
            figure: "weights",
            formula: format!("sum over every tensor of its bytes in {} (quantized layouts include their scales and zero points; embeddings, head and norms stay 16-bit where the format keeps them)", config.weights.name()),
            source: "tensor inventory from the model's config.json (crates/core/src/arch, transformers 5.24.0 modeling files), storage layouts in precision.rs",
        },
        Assumption {
            figure: "kv_cache",
            formula: kv_formula(model, config),
            source: "transformers 5.24.0 cache_utils.py (per-layer K/V, sliding, shared and recurrent layers); DeepSeek-V2 §2.1 (MLA); vLLM kv_cache_interface.py page sizes",
        },
        Assumption {
            figure: "activations",
            formula: format!("min(context × batch, {}) prefill tokens × (2·hidden + widest of attention and MLP) × 2 bytes + fp32 logits ×2 for each sampled sequence", config.prefill_chunk),
            source: "generic engine model (engine/generic.rs); engine profiles replace it",
        },
        Assumption {
            figure: "overhead",
            formula: "CUDA context 400 MiB + runtime buffers 0.25 GiB (+2 GiB communication buffers per GPU when split)".into(),
            source: "pytorch/pytorch#109888; vLLM 0.19 non-torch memory (data/calibration/vllm.jsonl)",
        },
        Assumption {
            figure: "usable",
            formula: format!("GPU memory as CUDA reports it × {}", config.utilization),
            source: "vLLM --gpu-memory-utilization default 0.9 (vllm/config/cache.py)",
        },
    ]
}

/// The KV-cache formula of `assumptions`, layer kind by layer kind.
fn kv_formula(model: &ModelDesc, config: &Config) -> String {
    let summary = model.layer_summary();
    let mut parts = Vec::new();
    for (kind, n) in &summary.kinds {
        parts.push(format!("{n} {kind}"));
    }
    let mut f = format!(
        "per layer and token: K row + V row ({} each, KV heads × head_dim; MLA: the latent and the rope key) over the layers that cache ({}); sliding and chunked layers capped at their window; layers sharing another layer's cache count nothing",
        config.kv_dtype.name(),
        parts.join(", ")
    );
    if summary.state_bytes_per_sequence > 0 {
        f.push_str(&format!(
            "; recurrent layers: {} B of conv and recurrent state per sequence, whatever the context",
            summary.state_bytes_per_sequence
        ));
    }
    f
}
