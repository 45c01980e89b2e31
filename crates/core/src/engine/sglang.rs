//! SGLang: the token pool `--mem-fraction-static` leaves for the KV cache
//! (sgl-project/sglang python/sglang/srt/model_executor/model_runner.py
//! `profile_max_num_token`, python/sglang/srt/server_args.py defaults).
//!
//!   rest   = free memory after loading the weights − total × (1 − mem_fraction_static)
//!   tokens = rest ÷ cell size, cell = KV heads per rank × head_dim × layers × 2 × dtype bytes
//!            (MLA: (kv_lora_rank + qk_rope_head_dim) × layers × dtype bytes)
//! Static memory is weights + KV pool; activations and CUDA graphs live in the remaining
//! 1 − mem_fraction_static.

use crate::estimate::{Assumption, Config, Estimate, Setting, StartupError};
use crate::gpu::Gpu;
use crate::model::ModelDesc;
use crate::parallel::weight_bytes_per_stage;
use crate::units::GIB;

const MODEL_RUNNER: &str = "python/sglang/srt/model_executor/model_runner.py";
const SERVER_ARGS: &str = "python/sglang/srt/server_args.py";
const MODEL_CONFIG: &str = "python/sglang/srt/configs/model_config.py";

/// The flag that gets past "Not enough memory": a static share 5 points above what the
/// weights and the start-up memory take, if that is above the share that failed and leaves
/// SGLang at least 5% of the card for activations and CUDA graphs. When no share does, the
/// fix says so rather than repeat the value that failed.
fn mem_fraction_fix(static_bytes: u64, total: u64, failed: f64) -> String {
    let needed = static_bytes as f64 / total.max(1) as f64;
    let proposal = (needed + 0.05).max(failed + 0.01);
    if proposal <= 0.95 {
        format!("--mem-fraction-static {proposal:.2}")
    } else {
        format!(
            "none of --mem-fraction-static: the weights and start-up memory take {:.0}% of each GPU ({} of {}); spread the weights over more GPUs (a larger --tp) or use a lower precision",
            needed * 100.0,
            crate::units::gb_gib(static_bytes),
            crate::units::gb_gib(total)
        )
    }
}

/// `--mem-fraction-static` default by tensor-parallel size (server_args.py `__post_init__`):
/// TP ≥ 16: 0.79, ≥ 8: 0.81, ≥ 4: 0.85, ≥ 2: 0.87, else 0.88.
pub fn default_mem_fraction_static(tp: u64) -> f64 {
    match tp {
        t if t >= 16 => 0.79,
        t if t >= 8 => 0.81,
        t if t >= 4 => 0.85,
        t if t >= 2 => 0.87,
        _ => 0.88,
    }
}

/// Memory in use before the weights load: the CUDA context of the process, as in the vLLM
/// profile (vllm.rs STARTUP_USED_BYTES: 0.51 GiB on H100 with the same torch/CUDA stack); with
/// tensor parallelism NCCL adds its communicators (vllm.rs non_torch_bytes: 2.1 GiB).
fn used_before_load(tp: u64) -> u64 {
    let base = crate::engine::vllm::STARTUP_USED_BYTES;
    if tp > 1 {
        base + 21 * GIB / 10
    } else {
        base
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SglangArgs {
    /// `--mem-fraction-static` (None: the TP default).
    pub mem_fraction_static: Option<f64>,
}

pub fn estimate(
    model: &ModelDesc,
    gpu: &Gpu,
    config: Config,
    a: &SglangArgs,
) -> Result<Estimate, String> {
    config.check(model)?;
    if let Some(kind) = model.cache_beyond_kv_pools() {
        return Err(format!(
            "{} has {kind} layers, whose cache the SGLang profile does not size (use --engine generic)",
            model.id
        ));
    }
    if model.has_recurrent_layers() {
        return Err(format!(
            "{} has recurrent layers; the SGLang profile models attention KV pools only (use --engine generic)",
            model.id
        ));
    }
    if config.parallel.pp > 1 {
        return Err("the SGLang profile models tensor parallelism only (--pp 1)".into());
    }
    let par = config.parallel;
    let mfs = a
        .mem_fraction_static
        .unwrap_or_else(|| default_mem_fraction_static(par.tp));
    if !(mfs > 0.0 && mfs < 1.0) {
        return Err(format!(
            "--mem-fraction-static {mfs} must be between 0 and 1"
        ));
    }
    let inv = model.inventory();
    let weights = weight_bytes_per_stage(model, inv, config.weights, &par)[0];
    let total = gpu.memory_bytes;
    let free_after_load = total
        .saturating_sub(used_before_load(par.tp))
        .saturating_sub(weights) as i128;
    let reserved = (total as f64 * (1.0 - mfs)) as i128;
    let rest = free_after_load - reserved;
    // One token's cell: every caching attention layer's K and V rows (SGLang's token pool keeps
    // every layer at full length, sliding ones included: model_runner.py `init_memory_pool`).
    let cell = model
        .layers()
        .map(|l| l.kv_bytes_per_token(config.kv_dtype, par.tp))
        .fold(0u64, u64::saturating_add);
    let tokens = if rest > 0 {
        (rest as u64) / cell.max(1)
    } else {
        0
    };
    let mut e = Estimate::skeleton(model, inv, gpu, &config, "sglang");
    e.utilization = mfs;
    e.weights_bytes = weights;
    e.overhead_bytes = used_before_load(par.tp);
    e.non_torch_bytes = Some(used_before_load(par.tp));
    e.kv_cache_tokens = Some(tokens);
    e.kv_pool_bytes = Some(tokens.saturating_mul(cell));
    e.kv_cache_bytes = cell
        .saturating_mul(config.context)
        .saturating_mul(config.batch);
    // Activations come out of the (1 − mem_fraction_static) share, not the static pool.
    e.activation_bytes = 0;
    if config.context > model.max_context {
        // ModelConfig._derive_context_length raises unless
        // SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN is set.
        e.startup_error = Some(StartupError {
            message: format!(
                "ValueError: User-specified context_length ({}) is greater than the derived context_length ({}). This may lead to incorrect model outputs or CUDA errors.",
                config.context, model.max_context
            ),
            source: MODEL_CONFIG,
            fix: format!(
                "--context-length {} (or SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1 at the risk the message names)",
                model.max_context
            ),
        });
    } else if tokens == 0 {
        e.startup_error = Some(StartupError {
            message:
                "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."
                    .into(),
            source: MODEL_RUNNER,
            fix: mem_fraction_fix(weights + used_before_load(par.tp), total, mfs),
        });
    }
    let static_budget = (total as f64 * mfs) as u64;
    e.set_verdict(
        weights
            .saturating_add(e.overhead_bytes)
            .saturating_add(e.kv_cache_bytes),
        static_budget,
    );
    let per_request = cell.saturating_mul(config.context).max(1);
    e.max_concurrency = (tokens.saturating_mul(cell) / per_request).saturating_mul(par.dp);
    e.fits = e.startup_error.is_none() && tokens >= config.context.saturating_mul(config.batch);
    e.engine_max_concurrency =
        Some(((tokens as f64 / config.context as f64) * 100.0).floor() / 100.0);
    let fit_context = tokens.checked_div(config.batch).unwrap_or(0);
    e.max_context = fit_context.min(model.max_context);
    e.max_context_limit = if fit_context >= model.max_context {
        "model"
    } else {
        "memory"
    };
    e.engine_settings = vec![Setting {
        name: "mem_fraction_static",
        value: format!("{mfs}"),
        origin: if a.mem_fraction_static.is_some() {
            "given".into()
        } else {
            format!("default for TP {} ({SERVER_ARGS})", par.tp)
        },
    }];
    e.assumptions = vec![
        Assumption {
            figure: "token pool",
            formula: format!("(free after weights − total × (1 − {mfs})) ÷ {cell} B per token"),
            source: MODEL_RUNNER,
        },
        Assumption {
            figure: "free after weights",
            formula: "total − CUDA context 0.51 GiB (− 2.1 GiB NCCL with TP) − weights".into(),
            source: "CUDA context as measured in the vLLM 0.19 logs (data/calibration/vllm.jsonl); no SGLang logs to check against",
        },
    ];
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;
    use crate::precision::{KvDtype, WeightFormat};

    #[test]
    fn defaults_by_tp() {
        assert_eq!(default_mem_fraction_static(1), 0.88);
        assert_eq!(default_mem_fraction_static(2), 0.87);
        assert_eq!(default_mem_fraction_static(8), 0.81);
    }

    #[test]
    fn token_pool_by_hand() {
        // Llama-3.1-8B bf16 on H100 (85,028,896,768 B), mfs 0.88: free after load =
        // 85,028,896,768 − 547,608,330 (CUDA context) − 16,060,522,496 (weights) =
        // 68,420,765,942; reserved = 0.12 × total = 10,203,467,612; rest = 58,217,298,330;
        // cell = 8 × 128 × 32 × 2 × 2 = 131,072 B → 444,162 tokens.
        let cat = catalogue();
        let m = cat.model("llama-3.1-8b").unwrap();
        let gpu = cat.gpu("h100").unwrap();
        let c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 8192, 1);
        let e = estimate(
            m,
            gpu,
            c,
            &SglangArgs {
                mem_fraction_static: None,
            },
        )
        .unwrap();
        assert_eq!(e.weights_bytes, 16_060_522_496);
        assert_eq!(e.kv_cache_tokens.unwrap(), 444_162);
        assert!(e.fits);
    }
}
