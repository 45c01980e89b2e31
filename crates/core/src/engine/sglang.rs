//! SGLang: the token pool `--mem-fraction-static` leaves for the KV cache, release by release
//! (data/engines/sglang.toml; docs/reference/sglang.md).
//!
//!   pre    = free memory before the weights load (after the distributed init)
//!   rest   = (pre − weights) − pre × (1 − mem_fraction_static)
//!   tokens = rest ÷ cell, cell = KV heads per rank × (head_dim + v_head_dim) × layers × dtype
//!            bytes (MLA: (kv_lora_rank + qk_rope_head_dim) × layers × dtype bytes)
//! (sgl-project/sglang@v0.4.2:python/sglang/srt/model_executor/model_runner.py
//! `profile_max_num_token`; @v0.5.23: mem_cache/kv_cache_configurator.py
//! `_profile_available_bytes`, model_executor/pool_configurator.py `calculate_pool_sizes`).
//! Static memory is weights + KV pool; activations and CUDA graphs live in the remaining
//! 1 − mem_fraction_static, which the default fraction sizes from the GPU and the settings.

use crate::engine::{kv_dtype_or, serving_dtype, weight_format, Request};
use crate::estimate::{Assumption, Config, Estimate, Setting, StartupError};
use crate::gpu::Gpu;
use crate::layer::Span;
use crate::model::ModelDesc;
use crate::parallel::weight_bytes_per_stage;

use crate::engine::releases::Version;
use std::sync::OnceLock;

const MODEL_RUNNER: &str = "python/sglang/srt/model_executor/model_runner.py";
const FILE: &str = include_str!("../../data/engines/sglang.toml");
const MODEL_CONFIG: &str = "python/sglang/srt/configs/model_config.py";
const KV_CACHE_CONFIGURATOR: &str = "python/sglang/srt/mem_cache/kv_cache_configurator.py";

/// The flag that gets past "Not enough memory": a static share 5 points above the minimum the
/// loaded weights leave (SGLang's own `1 − free after load / free before load`,
/// kv_cache_configurator.py), if that is above the share that failed and leaves SGLang at least
/// 5% of the card for activations and CUDA graphs. When no share does, the fix says so rather
/// than repeat the value that failed.
fn mem_fraction_fix(needed: f64, failed: f64, static_bytes: u64, total: u64) -> String {
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

/// An SGLang release 0.minor.patch (".postN" suffixes are the same release's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SglangRelease {
    pub minor: u32,
    pub patch: u32,
}

impl SglangRelease {
    pub const OLDEST: SglangRelease = SglangRelease { minor: 4, patch: 0 };
    pub const NEWEST: SglangRelease = SglangRelease {
        minor: 5,
        patch: 23,
    };

    /// "0.5.10", "v0.4.2.post1", "latest".
    pub fn parse(text: &str) -> Result<SglangRelease, String> {
        if text.trim().eq_ignore_ascii_case("latest") {
            return Ok(SglangRelease::NEWEST);
        }
        let v = Version::parse(text, "SGLang")?;
        let r = SglangRelease {
            minor: v.minor,
            patch: v.patch,
        };
        if r < SglangRelease::OLDEST || r > SglangRelease::NEWEST {
            return Err(format!(
                "SGLang {text} is not modelled: this profile follows {} to {}",
                SglangRelease::OLDEST.name(),
                SglangRelease::NEWEST.name()
            ));
        }
        Ok(r)
    }

    pub fn version(&self) -> Version {
        Version {
            minor: self.minor,
            patch: self.patch,
        }
    }

    pub fn name(&self) -> String {
        format!("0.{}.{}", self.minor, self.patch)
    }
}

pub use crate::engine::releases::{Constant, RuleEntry, RuleTable as Table};

/// The embedded rules (their validity is a test).
pub fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| match parse_table(FILE) {
        Ok(t) => t,
        Err(e) => panic!("embedded SGLang rules are invalid: {e}"),
    })
}

fn parse_table(text: &str) -> Result<Table, String> {
    let t = Table::parse(text, "sglang.toml", "SGLang")?;
    if t.oldest != SglangRelease::OLDEST.version() || t.newest != SglangRelease::NEWEST.version() {
        return Err("data/engines/sglang.toml: oldest/newest disagree with SglangRelease".into());
    }
    for minor in [4u32, 5] {
        for patch in 0..=23 {
            let r = SglangRelease { minor, patch };
            if r >= SglangRelease::OLDEST && r <= SglangRelease::NEWEST {
                SglangRules::resolve(&t, r)?;
            }
        }
    }
    Ok(t)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FractionRule {
    ByTp,
    ByTpUpTo80Gib,
    ByParallelSize,
    ReserveByGpuBracket,
    ReserveFromPrefillAndGraphs,
}

/// How a hybrid model's state pool is carved out of the memory left for the pools
/// (data/engines/sglang.toml `hybrid_state_pool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HybridPool {
    /// No ratio-sized state pool: hybrid models refused.
    None,
    /// The ratio decides the slots; --max-mamba-cache-size is overridden (radix cache on).
    RatioFlagIgnored,
    /// --max-mamba-cache-size when given, else the ratio.
    Ratio,
    /// As `Ratio`, with the pool's padding slot charged.
    RatioPadded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuTiers {
    Before053,
    Cg16,
    Cg24,
    Cg48,
}

/// A release's rules, typed, with the entries in force.
#[derive(Debug, Clone)]
pub struct SglangRules {
    pub fraction: FractionRule,
    pub tiers: GpuTiers,
    pub prefill_graph_reserve: bool,
    pub speculative_reserve_mib: u64,
    /// Whether the token cell counts DeepSeek-V3.2's indexer keys (0.5.4+).
    pub indexer_in_cell: bool,
    pub hybrid_pool: HybridPool,
    /// config.json model types whose Mamba-2 / gated-delta-net state SGLang pools.
    pub hybrid_models: Vec<String>,
    /// Whether config.json's `mamba_ssm_dtype` sets the SSM state dtype (0.5.10+).
    pub ssm_dtype_from_config: bool,
    /// State slots a running request of a hybrid model is charged with: SGLang caps
    /// `max_running_requests` at `max_mamba_cache_size ÷ this` (`hybrid_request_cap`).
    pub hybrid_request_ratio: Option<u64>,
    pub applied: Vec<&'static RuleEntry>,
}

impl SglangRules {
    fn resolve<'t>(
        t: &'t Table,
        r: SglangRelease,
    ) -> Result<(SglangRules, Vec<&'t RuleEntry>), String> {
        let mut applied = Vec::new();
        let mut get = |name: &str| -> Result<&'t RuleEntry, String> {
            let e = t.rule(name, r.version())?;
            applied.push(e);
            Ok(e)
        };
        let bad = |e: &RuleEntry| t.bad_value(e);
        let e = get("mem_fraction_static_default")?;
        let fraction = match e.value.as_str() {
            "by_tp" => FractionRule::ByTp,
            "by_tp_up_to_80gib" => FractionRule::ByTpUpTo80Gib,
            "by_parallel_size" => FractionRule::ByParallelSize,
            "reserve_by_gpu_bracket" => FractionRule::ReserveByGpuBracket,
            "reserve_from_prefill_and_graphs" => FractionRule::ReserveFromPrefillAndGraphs,
            _ => return Err(bad(e)),
        };
        let e = get("gpu_tiers")?;
        let tiers = match e.value.as_str() {
            "before_0_5_3" => GpuTiers::Before053,
            "cg16" => GpuTiers::Cg16,
            "cg24" => GpuTiers::Cg24,
            "cg48" => GpuTiers::Cg48,
            _ => return Err(bad(e)),
        };
        let e = get("prefill_graph_reserve")?;
        let prefill_graph_reserve = match e.value.as_str() {
            "none" => false,
            "per_capture_size" => true,
            _ => return Err(bad(e)),
        };
        let e = get("speculative_reserve_mib")?;
        let speculative_reserve_mib = e.value.parse().map_err(|_| bad(e))?;
        let e = get("dsa_indexer_cell")?;
        let indexer_in_cell = match e.value.as_str() {
            "none" => false,
            "fp8_with_scales" => true,
            _ => return Err(bad(e)),
        };
        let e = get("hybrid_state_pool")?;
        let hybrid_pool = match e.value.as_str() {
            "none" => HybridPool::None,
            "ratio_flag_ignored" => HybridPool::RatioFlagIgnored,
            "ratio" => HybridPool::Ratio,
            "ratio_padded" => HybridPool::RatioPadded,
            _ => return Err(bad(e)),
        };
        let e = get("hybrid_models")?;
        let hybrid_models = e
            .value
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(String::from)
            .collect();
        let e = get("mamba_ssm_dtype_default")?;
        let ssm_dtype_from_config = match e.value.as_str() {
            "float32" => false,
            "config_then_float32" => true,
            _ => return Err(bad(e)),
        };
        let e = get("hybrid_request_cap")?;
        let hybrid_request_ratio = match e.value.as_str() {
            "none" => None,
            v => match v.parse::<u64>() {
                Ok(r) if r > 0 => Some(r),
                _ => return Err(bad(e)),
            },
        };
        Ok((
            SglangRules {
                fraction,
                tiers,
                prefill_graph_reserve,
                speculative_reserve_mib,
                indexer_in_cell,
                hybrid_pool,
                hybrid_models,
                ssm_dtype_from_config,
                hybrid_request_ratio,
                applied: Vec::new(),
            },
            applied,
        ))
    }

    pub fn of(r: SglangRelease) -> SglangRules {
        match SglangRules::resolve(table(), r) {
            Ok((mut rules, applied)) => {
                rules.applied = applied;
                rules
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// `--chunked-prefill-size` and `--cuda-graph-max-bs` defaults for a GPU of `gpu_mib` MiB
/// (nvidia-smi) at `tp` (data/engines/sglang.toml `gpu_tiers`).
pub fn gpu_tier_defaults(tiers: GpuTiers, gpu_mib: u64, tp: u64) -> (u64, u64) {
    let small_tp = tp < 4;
    let pick = |a: u64, b: u64| if small_tp { a } else { b };
    if tiers == GpuTiers::Before053 {
        return if gpu_mib < 25_000 {
            (2048, pick(8, 80))
        } else {
            (8192, 160)
        };
    }
    let g = gpu_mib;
    if g < 20 * 1024 {
        (2048, 8)
    } else if g < 35 * 1024 {
        match tiers {
            GpuTiers::Cg16 => (2048, pick(16, 80)),
            GpuTiers::Cg24 => (2048, pick(24, 80)),
            _ => (4096, pick(48, 160)),
        }
    } else if g < 60 * 1024 {
        (4096, pick(32, 160))
    } else if g < 160 * 1024 {
        (8192, pick(256, 512))
    } else {
        (16384, 512)
    }
}

/// Piecewise / prefill CUDA-graph capture sizes up to `max_tokens` (server_args.py
/// `_generate_piecewise_cuda_graph_tokens`, 0.5.10; `_generate_prefill_cuda_graph_batch_sizes`).
pub fn prefill_graph_sizes(max_tokens: u64) -> u64 {
    let ranges: [(u64, u64, u64); 6] = [
        (4, 32, 4),
        (48, 256, 16),
        (288, 512, 32),
        (576, 1024, 64),
        (1280, 4096, 256),
        (4608, u64::MAX, 512),
    ];
    let mut n = 0;
    for (start, end, step) in ranges {
        let mut s = start;
        while s <= end.min(max_tokens) {
            n += 1;
            s += step;
        }
    }
    n
}

/// What SGLang's default `--mem-fraction-static` depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FractionInputs {
    /// nvidia-smi memory.total, MiB.
    pub gpu_mib: u64,
    pub tp: u64,
    pub pp: u64,
    pub chunked_prefill: i64,
    pub cuda_graph_max_bs: u64,
    pub mla: bool,
    pub speculative: bool,
}

/// The default `--mem-fraction-static` (data/engines/sglang.toml `mem_fraction_static_default`).
pub fn default_mem_fraction_static(rules: &SglangRules, i: FractionInputs) -> f64 {
    let FractionInputs {
        gpu_mib,
        tp,
        pp,
        chunked_prefill,
        cuda_graph_max_bs,
        mla,
        speculative,
    } = i;
    let g = gpu_mib as f64;
    let by = |n: u64| match n {
        t if t >= 16 => 0.79,
        t if t >= 8 => 0.81,
        t if t >= 4 => 0.85,
        t if t >= 2 => 0.87,
        _ => 0.88,
    };
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let ps = (tp * pp) as f64;
    match rules.fraction {
        FractionRule::ByTp => by(tp),
        FractionRule::ByTpUpTo80Gib => {
            if gpu_mib <= 81920 {
                by(tp)
            } else {
                (g - 13.0 * 1024.0) / g
            }
        }
        FractionRule::ByParallelSize => {
            let f = if gpu_mib <= 81920 { by(tp * pp) } else { 0.88 };
            if gpu_mib > 180_000 {
                0.79
            } else if gpu_mib > 96 * 1024 {
                let reserve = if speculative { 20.0 } else { 18.0 } * 1024.0;
                (f + 48.0 * 1024.0 * (1.0 - f) / g).min((g - reserve) / g)
            } else if speculative {
                f * 0.95
            } else {
                f
            }
        }
        FractionRule::ReserveByGpuBracket => {
            let mut reserved = if gpu_mib < 35 * 1024 {
                (2.8 + ps / 10.0) * 1024.0
            } else if gpu_mib < 90 * 1024 {
                (9.5 + ps / 2.0) * 1024.0
            } else if gpu_mib < 160 * 1024 {
                (12.0 + ps / 2.0) * 1024.0
            } else {
                32.0 * 1024.0
            };
            if speculative {
                reserved += 2.0 * 1024.0;
            }
            round3((g - reserved) / g)
        }
        FractionRule::ReserveFromPrefillAndGraphs => {
            let tokens = if chunked_prefill > 0 {
                chunked_prefill.max(2048) as f64
            } else {
                16384.0 // max_prefill_tokens default
            };
            let mut reserved = 512.0 + tokens * 1.5 + cuda_graph_max_bs as f64 * 2.0;
            reserved += ps / 8.0 * 1024.0;
            if rules.prefill_graph_reserve {
                reserved += if mla {
                    1.5 * 1024.0
                } else {
                    prefill_graph_sizes(chunked_prefill.max(0) as u64) as f64 * 8.0
                };
            }
            if gpu_mib > 60 * 1024 {
                reserved = reserved.max(10.0 * 1024.0);
            }
            if speculative {
                reserved += rules.speculative_reserve_mib as f64;
            }
            round3((g - reserved) / g)
        }
    }
}

/// SGLang's flags as given (None / "auto" = SGLang's default).
#[derive(Debug, Clone, PartialEq)]
pub struct SglangFlags {
    /// `--sglang-version`: 0.4.0 to 0.5.23, "latest".
    pub sglang_version: String,
    pub mem_fraction_static: Option<f64>,
    /// `--chunked-prefill-size` (-1 disables chunking).
    pub chunked_prefill_size: Option<i64>,
    pub cuda_graph_max_bs: Option<u64>,
    /// `--dtype` (shared with vLLM).
    pub dtype: String,
    /// `--page-size` (default 1).
    pub page_size: Option<u64>,
    /// `--max-total-tokens`: a cap on the pool.
    pub max_total_tokens: Option<u64>,
    /// Whether a speculative algorithm is set (its reserve enters the default fraction).
    pub speculative: bool,
    /// `--max-mamba-cache-size`: state slots of a hybrid model (default: from the ratio).
    pub max_mamba_cache_size: Option<u64>,
    /// `--mamba-full-memory-ratio`: state pool ÷ KV pool (default 0.9).
    pub mamba_full_memory_ratio: Option<f64>,
    /// `--mamba-ssm-dtype`: float32, bfloat16 (float16 from 0.5.10); default the release's.
    pub mamba_ssm_dtype: Option<String>,
    /// `--gpu-memory-in-use`: memory other processes hold on each GPU at start ("0.8GiB").
    pub gpu_memory_in_use: Option<String>,
}

impl Default for SglangFlags {
    fn default() -> SglangFlags {
        SglangFlags {
            sglang_version: "latest".into(),
            mem_fraction_static: None,
            chunked_prefill_size: None,
            cuda_graph_max_bs: None,
            dtype: "auto".into(),
            page_size: None,
            max_total_tokens: None,
            speculative: false,
            max_mamba_cache_size: None,
            mamba_full_memory_ratio: None,
            mamba_ssm_dtype: None,
            gpu_memory_in_use: None,
        }
    }
}

/// The settings the SGLang profile uses, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SglangArgs {
    pub release: SglangRelease,
    /// `--mem-fraction-static` (None: the release's default for the GPU and settings).
    pub mem_fraction_static: Option<f64>,
    pub chunked_prefill_size: Option<i64>,
    pub cuda_graph_max_bs: Option<u64>,
    pub page_size: u64,
    pub max_total_tokens: Option<u64>,
    pub speculative: bool,
    /// Free memory before the weights load when it is known (SGLang logs it: "Load weight
    /// begin. avail mem"); None = the card's total less the observed start-up use.
    pub free_before_load: Option<u64>,
    pub max_mamba_cache_size: Option<u64>,
    /// `--mamba-full-memory-ratio` (SGLang's default 0.9 when None).
    pub mamba_full_memory_ratio: Option<f64>,
    /// `--mamba-ssm-dtype` in bytes (None: the release's default).
    pub mamba_ssm_dtype_bytes: Option<u64>,
    /// Memory other processes hold on each GPU before SGLang starts (a desktop, WSL2's Windows
    /// host): SGLang's free memory before the load is device-wide (torch.cuda.mem_get_info), so
    /// it counts them. 0 = a GPU that runs nothing else.
    pub gpu_memory_in_use: u64,
}

impl SglangArgs {
    pub fn new(release: SglangRelease) -> SglangArgs {
        SglangArgs {
            release,
            mem_fraction_static: None,
            chunked_prefill_size: None,
            cuda_graph_max_bs: None,
            page_size: 1,
            max_total_tokens: None,
            speculative: false,
            free_before_load: None,
            max_mamba_cache_size: None,
            mamba_full_memory_ratio: None,
            mamba_ssm_dtype_bytes: None,
            gpu_memory_in_use: 0,
        }
    }
}

impl SglangFlags {
    pub fn resolve(
        &self,
        model: &ModelDesc,
        req: &Request,
    ) -> Result<(Config, SglangArgs), String> {
        let release = SglangRelease::parse(&self.sglang_version)?;
        let (_, float_weights, auto_kv) = serving_dtype(&self.dtype, model)?;
        let weights = match (&req.quant, model.quantization.is_some()) {
            (None, false) => float_weights,
            _ => weight_format(req.quant.as_deref(), model)?,
        };
        let kv = kv_dtype_or(&req.kv_dtype, auto_kv)?;
        if let Some(f) = self.mem_fraction_static {
            if !(f > 0.0 && f < 1.0) {
                return Err(format!("--mem-fraction-static {f} must be between 0 and 1"));
            }
        }
        if self.page_size.is_some_and(|p| p == 0 || p > 1024) {
            return Err("--page-size must be between 1 and 1024".into());
        }
        if let Some(r) = self.mamba_full_memory_ratio {
            if !(r > 0.0 && r <= 100.0) {
                return Err(format!(
                    "--mamba-full-memory-ratio {r} must be above 0 (and at most 100): it is the state pool's size over the KV pool's"
                ));
            }
        }
        if self.max_mamba_cache_size == Some(0) {
            return Err("--max-mamba-cache-size must be at least 1".into());
        }
        let mamba_ssm_dtype_bytes = match self.mamba_ssm_dtype.as_deref().map(str::trim) {
            None | Some("") | Some("auto") => None,
            Some("float32") => Some(4),
            Some("bfloat16") => Some(2),
            // MAMBA_SSM_DTYPE_CHOICES gains float16 in 0.5.10 (@v0.5.10:server_args.py).
            Some("float16")
                if release
                    >= SglangRelease {
                        minor: 5,
                        patch: 10,
                    } =>
            {
                Some(2)
            }
            Some(other) => {
                return Err(format!(
                    "--mamba-ssm-dtype '{other}': SGLang {} takes float32 or bfloat16{}",
                    release.name(),
                    if release
                        >= (SglangRelease {
                            minor: 5,
                            patch: 10
                        })
                    {
                        " or float16"
                    } else {
                        " (float16 from 0.5.10)"
                    }
                ))
            }
        };
        let gpu_memory_in_use = match self.gpu_memory_in_use.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(t) => {
                crate::units::parse_size(t).map_err(|e| format!("--gpu-memory-in-use {t}: {e}"))?
            }
        };
        let a = SglangArgs {
            release,
            mem_fraction_static: self.mem_fraction_static,
            chunked_prefill_size: self.chunked_prefill_size,
            cuda_graph_max_bs: self.cuda_graph_max_bs,
            page_size: self.page_size.unwrap_or(1),
            max_total_tokens: self.max_total_tokens,
            speculative: self.speculative,
            free_before_load: None,
            max_mamba_cache_size: self.max_mamba_cache_size,
            mamba_full_memory_ratio: self.mamba_full_memory_ratio,
            mamba_ssm_dtype_bytes,
            gpu_memory_in_use,
        };
        // The config's utilization carries the fraction once the GPU is known (estimate).
        let config = req.config(weights, kv, 0.88);
        Ok((config, a))
    }
}

/// Memory in use before the weights load: the CUDA context (and, with tensor parallelism, what
/// the distributed init allocates), observed constants of data/engines/sglang.toml.
pub fn used_before_load(tp: u64) -> u64 {
    let t = table();
    let base = t.constant("startup_used_mib");
    if tp > 1 {
        base + t.constant("distributed_init_mib")
    } else {
        base
    }
}

/// KV bytes per token on one rank (pool_configurator.py `_compute_cell_size`): MHA/GQA
/// kv heads per rank × (head_dim + v_head_dim) × layers; MLA (kv_lora_rank + rope) × layers —
/// each layer's own K and V rows (`Layer::kv_bytes_per_token`), summed over the layers.
/// DeepSeek-V3.2's indexer keys are counted as SGLang does: from 0.5.4 `index_head_dim +
/// index_head_dim / 128 × 4` bytes a layer (uint8: fp8 values and fp32 scales,
/// `NSATokenToKVPool.index_k_with_scale_buffer_dtype`; @v0.5.5
/// model_runner.py `profile_max_num_token`, @v0.5.23 pool_configurator.py
/// `_compute_dsa_indexer_cell_size`), before it not at all (@v0.5.3).
pub fn cell_bytes(
    model: &ModelDesc,
    kv: crate::precision::KvDtype,
    tp: u64,
    indexer_in_cell: bool,
) -> u64 {
    model
        .layers()
        .map(|l| match &l.attention {
            Some(a) if a.indexer.is_some() && a.caches() => {
                let d = a.indexer_width();
                let latent = kv.row_bytes(a.k_width() + a.v_width());
                latent + if indexer_in_cell { d + d / 128 * 4 } else { 0 }
            }
            _ => l.kv_bytes_per_token(kv, tp),
        })
        .fold(0u64, u64::saturating_add)
}

/// A hybrid model's state on one rank, as SGLang sizes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HybridState {
    /// `mamba_cache_per_req`: one request's state over every linear layer, bytes.
    pub per_request: u64,
    /// Bytes per element of the SSM (temporal) state.
    pub ssm_bytes: u64,
    /// Layers with a state.
    pub layers: u64,
}

/// The model's Mamba-2 / gated-delta-net state per request on one of `tp` ranks
/// (configs/mamba_utils.py `Mamba2CacheParams.mamba_cache_per_req`; the shapes are vLLM's,
/// `vllm::hybrid::state_bytes`), or None for a model without one. The conv state is bfloat16
/// (`CONV_DTYPE`, @v0.5.4; the default of `SGLANG_MAMBA_CONV_DTYPE` in @v0.5.23); the SSM state
/// `--mamba-ssm-dtype`, else config.json's `mamba_ssm_dtype` from 0.5.10, else float32.
pub fn hybrid_state(
    model: &ModelDesc,
    rules: &SglangRules,
    tp: u64,
    ssm_flag_bytes: Option<u64>,
) -> Result<Option<HybridState>, String> {
    use crate::layer::RecurrentKind;
    let mut per_request = 0u64;
    let mut layers = 0u64;
    let mut ssm = 4;
    for l in model.layers() {
        let Some(rec) = &l.recurrent else { continue };
        // config.json's `mamba_ssm_dtype` (Qwen3.5; Nemotron-H's `mamba_ssm_cache_dtype` is
        // vLLM's key, which SGLang does not read).
        let from_config = if rules.ssm_dtype_from_config && model.model_type.starts_with("qwen3_5")
        {
            rec.config_ssm_dtype_bytes
        } else {
            None
        };
        ssm = ssm_flag_bytes.or(from_config).unwrap_or(4);
        if rec.kind == RecurrentKind::GatedDeltaNet {
            // SGLang passes the gated delta net to Mamba2StateShape with n_groups = key heads,
            // which it replicates when TP does not divide them (vLLM does not): refuse that case.
            let dim = |i: usize, j: usize| {
                rec.states
                    .get(i)
                    .and_then(|s| s.shape.get(j))
                    .copied()
                    .unwrap_or(0)
            };
            let (conv_dim, vh, kd, vd) = (dim(0, 0), dim(1, 0), dim(1, 1), dim(1, 2));
            let key_heads = conv_dim.saturating_sub(vh * vd) / (2 * kd).max(1);
            if key_heads == 0 || !key_heads.is_multiple_of(tp.max(1)) {
                return Err(format!(
                    "{}: SGLang replicates the {key_heads} linear-attention key heads when --tp {tp} does not divide them (configs/mamba_utils.py extra_groups_for_head_shards), which this profile does not size; choose a TP size that divides {key_heads}",
                    model.id
                ));
            }
        }
        let bytes = crate::engine::vllm::hybrid::state_bytes(model, rec, tp, 2, ssm, 0)?;
        per_request = per_request.saturating_add(bytes);
        layers += 1;
    }
    Ok((layers > 0).then_some(HybridState {
        per_request,
        ssm_bytes: ssm,
        layers,
    }))
}

/// SGLang's `max_running_requests` for a hybrid model without `--max-running-requests`, and
/// whether the state slots decided it: min(clamp(⌊tokens ÷ context_len × 512⌋, 2048, 4096),
/// tokens ÷ 2, slots ÷ ratio) (@v0.5.4 model_runner.py `init_memory_pool` with
/// managers/tp_worker.py; @v0.5.10 model_runner_kv_cache_mixin.py `_resolve_max_num_reqs`;
/// @v0.5.18 mem_cache/kv_cache_configurator.py `resolve_max_num_reqs`), ratio the release's
/// `hybrid_request_cap` (3 state slots a request from 0.5.4, 5 from 0.5.14's extra_buffer default).
pub fn hybrid_max_running_requests(
    rules: &SglangRules,
    tokens: u64,
    context_len: u64,
    slots: u64,
) -> (u64, bool) {
    let estimated = ((tokens as f64 / context_len.max(1) as f64 * 512.0) as u64).clamp(2048, 4096);
    let by_tokens = estimated.min(tokens / 2);
    match rules.hybrid_request_ratio {
        Some(r) if slots / r < by_tokens => (slots / r, true),
        Some(_) => (by_tokens, false),
        // No cap in the release: at most one running request a slot (HybridReqToTokenPool).
        None => (by_tokens.min(slots), slots < by_tokens),
    }
}

/// The default `--mamba-full-memory-ratio` (server_args.py, @v0.5.4 to @v0.5.23).
pub const MAMBA_FULL_MEMORY_RATIO: f64 = 0.9;

/// Splits `rest` bytes (what is left after the static slack) into the state pool and what the
/// KV pool gets (data/engines/sglang.toml `hybrid_state_pool`). Returns (state slots, bytes left
/// for the KV pool). SGLang computes in GiB floats; f64 bytes here differ from it by far less
/// than a token.
pub fn split_state_pool(
    rule: HybridPool,
    rest: f64,
    per_request: u64,
    ratio: f64,
    given: Option<u64>,
) -> (u64, f64) {
    let per = per_request.max(1) as f64;
    let budget = rest * ratio / (1.0 + ratio);
    let from_ratio = |padded: bool| -> u64 {
        let b = if padded { budget - per } else { budget };
        if b <= 0.0 {
            0
        } else {
            (b / per).floor() as u64
        }
    };
    let (slots, charged) = match rule {
        HybridPool::None | HybridPool::RatioFlagIgnored => {
            let k = from_ratio(false);
            (k, k)
        }
        HybridPool::Ratio => {
            let k = given.unwrap_or_else(|| from_ratio(false));
            (k, k)
        }
        HybridPool::RatioPadded => {
            let k = given.unwrap_or_else(|| from_ratio(true));
            (k, k + 1)
        }
    };
    (slots, rest - charged as f64 * per)
}

pub fn estimate(
    model: &ModelDesc,
    gpu: &Gpu,
    config: Config,
    a: &SglangArgs,
) -> Result<Estimate, String> {
    config.check(model)?;
    // Every cache beyond K/V rows in a token pool and every recurrent state but the two
    // SGLang's Mamba pool holds that this profile sizes (Mamba-2, gated delta nets).
    use crate::layer::RecurrentKind;
    if let Some(kind) = model.kind_beyond(&[RecurrentKind::Mamba2, RecurrentKind::GatedDeltaNet]) {
        return Err(format!(
            "{} has {kind} layers, whose cache the SGLang profile does not size: it models attention KV pools and the Mamba-2 / gated-delta-net state pool only (use --engine generic)",
            model.id
        ));
    }
    let rules = SglangRules::of(a.release);
    let state = hybrid_state(model, &rules, config.parallel.tp, a.mamba_ssm_dtype_bytes)?;
    if state.is_some() {
        let ty = model.model_type.trim_end_matches("_text");
        if rules.hybrid_pool == HybridPool::None || !rules.hybrid_models.iter().any(|m| m == ty) {
            return Err(format!(
                "{} ({}) is a hybrid model SGLang {} does not pool as this profile models (hybrid_models in data/engines/sglang.toml: {}); try a later --sglang-version or --engine generic",
                model.id,
                model.model_type,
                a.release.name(),
                if rules.hybrid_models.is_empty() { "none".to_string() } else { rules.hybrid_models.join(", ") }
            ));
        }
        if a.speculative {
            return Err("the SGLang profile does not size a hybrid model's speculative state (the intermediate Mamba states per draft token, handle_max_mamba_cache); drop --speculative-algorithm or use --engine generic".into());
        }
    }
    if model
        .layers()
        .any(|l| l.attention.as_ref().is_some_and(|a| a.span != Span::Full))
    {
        return Err(format!(
            "{} has sliding-window layers: SGLang sizes separate full and sliding pools for it (HybridSWAPoolConfigurator, swa_full_tokens_ratio), which this profile does not model yet",
            model.id
        ));
    }
    if config.parallel.pp > 1 {
        return Err("the SGLang profile models tensor parallelism only (--pp 1)".into());
    }
    let par = config.parallel;
    let gpu_mib = gpu.smi_mib();
    let (cps_default, bs_default) = gpu_tier_defaults(rules.tiers, gpu_mib, par.tp);
    let chunked_prefill = a.chunked_prefill_size.unwrap_or(cps_default as i64);
    let max_bs = a.cuda_graph_max_bs.unwrap_or(bs_default);
    let mfs = a.mem_fraction_static.unwrap_or_else(|| {
        default_mem_fraction_static(
            &rules,
            FractionInputs {
                gpu_mib,
                tp: par.tp,
                pp: par.pp,
                chunked_prefill,
                cuda_graph_max_bs: max_bs,
                mla: model.mla.is_some(),
                speculative: a.speculative,
            },
        )
    });
    if !(mfs > 0.0 && mfs < 1.0) {
        return Err(format!(
            "--mem-fraction-static {mfs} must be between 0 and 1"
        ));
    }
    let inv = model.inventory();
    // What the load takes: the tensors, the rotary cos/sin cache in the model dtype
    // (sglang/srt/layers/rotary_embedding.py `_compute_cos_sin_cache`, then `.to(dtype)`), and
    // what loading leaves outside torch (load_non_torch_mib, data/engines/sglang.toml).
    let rope = crate::engine::vllm::rope_cache_bytes(
        model,
        if config.weights == crate::precision::WeightFormat::F32 {
            4
        } else {
            2
        },
    );
    let weights = weight_bytes_per_stage(model, inv, config.weights, &par)[0]
        .saturating_add(rope)
        .saturating_add(table().constant("load_non_torch_mib"));
    let total = gpu.memory_bytes;
    // SGLang's pre-load free memory is device-wide (@v0.4.2.post1:python/sglang/srt/utils.py
    // get_available_gpu_memory: torch.cuda.mem_get_info after empty_cache; model_runner.py
    // init_torch_distributed returns it as min_per_gpu_memory): what other processes hold on
    // the GPU is not there for the pool either.
    let before = match a.free_before_load {
        Some(free) => total.saturating_sub(free),
        None => used_before_load(par.tp).saturating_add(a.gpu_memory_in_use),
    };
    if before >= total {
        return Err(format!(
            "--gpu-memory-in-use {} leaves nothing of the GPU's {} for SGLang",
            crate::units::gb_gib(a.gpu_memory_in_use),
            crate::units::gb_gib(total)
        ));
    }
    let pre = total.saturating_sub(before);
    let free_after_load = pre.saturating_sub(weights) as i128;
    let reserved = (pre as f64 * (1.0 - mfs)) as i128;
    let mut rest = free_after_load - reserved;
    // Hybrid models: the state pool comes out of rest first (handle_max_mamba_cache).
    let ratio = a.mamba_full_memory_ratio.unwrap_or(MAMBA_FULL_MEMORY_RATIO);
    let mut slots = None;
    if let (Some(st), true) = (state, rest > 0) {
        let (k, left) = split_state_pool(
            rules.hybrid_pool,
            rest as f64,
            st.per_request,
            ratio,
            a.max_mamba_cache_size,
        );
        slots = Some(k);
        rest = left.floor() as i128;
    } else if state.is_some() {
        slots = Some(0);
    }
    let cell = cell_bytes(model, config.kv_dtype, par.tp, rules.indexer_in_cell);
    let mut tokens = if rest > 0 {
        (rest as u64) / cell.max(1)
    } else {
        0
    };
    tokens = tokens / a.page_size * a.page_size;
    if let Some(cap) = a.max_total_tokens {
        tokens = tokens.min(cap);
    }
    let mut e = Estimate::skeleton(model, inv, gpu, &config, "sglang");
    e.utilization = mfs;
    e.weights_bytes = weights;
    e.overhead_bytes = before;
    e.non_torch_bytes = Some(before);
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
    } else if slots == Some(0) && tokens > 0 {
        e.startup_error = Some(StartupError {
            message: "RuntimeError: Not enough GPU memory for hybrid (mamba/linear-attention) state cache. Computed max_mamba_cache_size=0".into(),
            source: KV_CACHE_CONFIGURATOR,
            fix: "a higher --mem-fraction-static or --mamba-full-memory-ratio, or more GPUs (a larger --tp)".into(),
        });
    } else if tokens == 0 {
        let minimum = 1.0 - (free_after_load.max(0) as f64) / pre.max(1) as f64;
        e.startup_error = Some(StartupError {
            message:
                "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."
                    .into(),
            source: MODEL_RUNNER,
            fix: mem_fraction_fix(minimum, mfs, weights + before, total),
        });
    }
    let static_budget = (pre as f64 * mfs) as u64;
    e.set_verdict(weights.saturating_add(e.kv_cache_bytes), static_budget);
    let per_request = cell.saturating_mul(config.context).max(1);
    let mut concurrency = tokens.saturating_mul(cell) / per_request;
    // Hybrid models: SGLang's max_running_requests, capped by the state slots a request is
    // charged with (hybrid_request_cap).
    let running = slots.map(|k| hybrid_max_running_requests(&rules, tokens, config.context, k));
    if let Some((cap, _)) = running {
        concurrency = concurrency.min(cap);
        if cap == 0 && e.startup_error.is_none() && tokens > 0 {
            e.startup_error = Some(StartupError {
                message: format!(
                    "RuntimeError: Hybrid (mamba/linear-attention) state cache is too small to serve any requests. max_mamba_cache_size={}, mamba_ratio={}, resulting max_num_reqs=0 (before 0.5.13: AssertionError: max_running_request is zero)",
                    slots.unwrap_or(0),
                    rules.hybrid_request_ratio.unwrap_or(1)
                ),
                source: KV_CACHE_CONFIGURATOR,
                fix: "a higher --mem-fraction-static or --mamba-full-memory-ratio, --max-mamba-cache-size, or --mamba-ssm-dtype bfloat16".into(),
            });
        }
    }
    e.max_concurrency = concurrency.saturating_mul(par.dp);
    e.fits = e.startup_error.is_none()
        && tokens >= config.context.saturating_mul(config.batch)
        && running.is_none_or(|(cap, _)| cap >= config.batch);
    e.engine_max_concurrency =
        Some(((tokens as f64 / config.context as f64) * 100.0).floor() / 100.0);
    let fit_context = tokens.checked_div(config.batch).unwrap_or(0);
    e.max_context = fit_context.min(model.max_context);
    e.max_context_limit = if fit_context >= model.max_context {
        "model"
    } else {
        "memory"
    };
    let default_src = |what: &str| {
        format!(
            "default of SGLang {} for a {gpu_mib} MiB GPU at TP {} ({what})",
            a.release.name(),
            par.tp
        )
    };
    e.engine_settings = vec![
        Setting {
            name: "sglang_version",
            value: a.release.name(),
            origin: "--sglang-version".into(),
        },
        Setting {
            name: "mem_fraction_static",
            value: format!("{mfs}"),
            origin: if a.mem_fraction_static.is_some() {
                "given".into()
            } else {
                default_src("mem_fraction_static_default")
            },
        },
        Setting {
            name: "chunked_prefill_size",
            value: chunked_prefill.to_string(),
            origin: if a.chunked_prefill_size.is_some() {
                "given".into()
            } else {
                default_src("gpu_tiers")
            },
        },
        Setting {
            name: "cuda_graph_max_bs",
            value: max_bs.to_string(),
            origin: if a.cuda_graph_max_bs.is_some() {
                "given".into()
            } else {
                default_src("gpu_tiers")
            },
        },
        Setting {
            name: "page_size",
            value: a.page_size.to_string(),
            origin: "--page-size (default 1)".into(),
        },
    ];
    if let (Some(st), Some(k)) = (state, slots) {
        e.engine_settings.push(Setting {
            name: "max_mamba_cache_size",
            value: k.to_string(),
            origin: match (a.max_mamba_cache_size, rules.hybrid_pool) {
                (Some(_), HybridPool::RatioFlagIgnored) => format!(
                    "--max-mamba-cache-size is overridden by the ratio in SGLang {} with the radix cache on (hybrid_state_pool)",
                    a.release.name()
                ),
                (Some(_), _) => "given".into(),
                _ => format!(
                    "state pool = memory left × {ratio} ÷ (1 + {ratio}) in whole {} B states (hybrid_state_pool)",
                    st.per_request
                ),
            },
        });
        if let Some((cap, by_slots)) = running {
            let r = rules.hybrid_request_ratio.unwrap_or(1);
            e.engine_settings.push(Setting {
                name: "max_running_requests",
                value: cap.to_string(),
                origin: if by_slots {
                    format!(
                        "max_mamba_cache_size {k} ÷ {r} state slots a request (hybrid_request_cap; SGLang warns \"max_running_requests is capped to {cap} by the mamba state cache\")"
                    )
                } else {
                    format!(
                        "min(clamp(tokens ÷ context × 512, 2048, 4096), tokens ÷ 2), below the state cap {k} ÷ {r} (hybrid_request_cap)"
                    )
                },
            });
        }
        e.engine_settings.push(Setting {
            name: "mamba_full_memory_ratio",
            value: format!("{ratio}"),
            origin: if a.mamba_full_memory_ratio.is_some() {
                "given".into()
            } else {
                "SGLang's default (server_args.py)".into()
            },
        });
        e.engine_settings.push(Setting {
            name: "mamba_ssm_dtype",
            value: if st.ssm_bytes == 4 {
                "float32"
            } else {
                "16-bit"
            }
            .into(),
            origin: if a.mamba_ssm_dtype_bytes.is_some() {
                "given".into()
            } else {
                "the release's default (mamba_ssm_dtype_default)".into()
            },
        });
    }
    // The hybrid rules applied only when the model has a state to pool.
    let hybrid_rule = |name: &str| {
        matches!(
            name,
            "hybrid_state_pool"
                | "hybrid_models"
                | "mamba_ssm_dtype_default"
                | "hybrid_request_cap"
        )
    };
    for r in rules
        .applied
        .iter()
        .filter(|r| state.is_some() || !hybrid_rule(&r.name))
    {
        e.engine_settings.push(Setting {
            name: r.name.as_str(),
            value: r.value.clone(),
            origin: format!("SGLang rule since {}: {}", r.since, r.source),
        });
    }
    e.assumptions = vec![
        Assumption {
            figure: "token pool",
            formula: format!(
                "((free before load − weights) − free before load × (1 − {mfs}){}) ÷ {cell} B per token{}",
                if slots.is_some() { " − state pool" } else { "" },
                if a.page_size > 1 { ", whole pages" } else { "" }
            ),
            source: "sglang model_runner.py profile_max_num_token (0.4); mem_cache/kv_cache_configurator.py _profile_available_bytes (0.5.23)",
        },
        Assumption {
            figure: "free before load",
            formula: format!(
                "total − {} (CUDA context{}{})",
                crate::units::gib(before),
                if par.tp > 1 { " and the distributed init" } else { "" },
                if a.gpu_memory_in_use > 0 && a.free_before_load.is_none() {
                    format!(
                        ", {} other processes hold: --gpu-memory-in-use",
                        crate::units::gib(a.gpu_memory_in_use)
                    )
                } else {
                    String::new()
                }
            ),
            source: "observed constants with their records in data/engines/sglang.toml",
        },
    ];
    if let (Some(st), Some(k)) = (state, slots) {
        e.assumptions.push(Assumption {
            figure: "state pool",
            formula: format!(
                "{k} request states × {} B ({} linear layers: conv bfloat16, SSM {} B an element){} taken before the token pool; at most {} running requests ({})",
                st.per_request,
                st.layers,
                st.ssm_bytes,
                if rules.hybrid_pool == HybridPool::RatioPadded { " + 1 padding slot" } else { "" },
                running.map_or(k, |(cap, _)| cap),
                match rules.hybrid_request_ratio {
                    Some(r) => format!("{r} state slots a request with the radix cache on"),
                    None => "one state slot a request".into(),
                }
            ),
            source: "sglang model_runner.py handle_max_mamba_cache (0.5.4-0.5.14); mem_cache/kv_cache_configurator.py _handle_max_mamba_cache (0.5.18+)",
        });
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;
    use crate::precision::{KvDtype, WeightFormat};
    use crate::units::MIB;

    #[test]
    fn rules_change_where_the_source_says() {
        let r = |v: &str| SglangRules::of(SglangRelease::parse(v).unwrap());
        assert_eq!(r("0.4.2").fraction, FractionRule::ByTp);
        assert_eq!(r("0.4.6.post5").fraction, FractionRule::ByTpUpTo80Gib);
        assert_eq!(r("0.4.9").fraction, FractionRule::ReserveByGpuBracket);
        assert_eq!(
            r("0.5.3").fraction,
            FractionRule::ReserveFromPrefillAndGraphs
        );
        assert_eq!(r("0.5.19").tiers, GpuTiers::Cg24);
        assert_eq!(r("0.5.20").tiers, GpuTiers::Cg48);
        assert!(!r("0.5.9").prefill_graph_reserve);
        assert!(r("0.5.10").prefill_graph_reserve);
        assert!(SglangRelease::parse("0.3.6").is_err());
        assert!(SglangRelease::parse("0.6.0").is_err());
    }

    fn fi(
        gpu_mib: u64,
        tp: u64,
        pp: u64,
        chunked_prefill: i64,
        cuda_graph_max_bs: u64,
    ) -> FractionInputs {
        FractionInputs {
            gpu_mib,
            tp,
            pp,
            chunked_prefill,
            cuda_graph_max_bs,
            mla: false,
            speculative: false,
        }
    }

    #[test]
    fn default_fractions_by_hand() {
        let r = |v: &str| SglangRules::of(SglangRelease::parse(v).unwrap());
        // 0.4.x: by TP.
        assert_eq!(
            default_mem_fraction_static(&r("0.4.2"), fi(81559, 1, 1, 8192, 160)),
            0.88
        );
        assert_eq!(
            default_mem_fraction_static(&r("0.4.2"), fi(81559, 8, 1, 8192, 160)),
            0.81
        );
        // 0.4.8, RTX 4090 (24564 MiB) at TP 1: reserved (2.8 + 0.1) × 1024 = 2969.6 MiB;
        // (24564 − 2969.6) / 24564 = 0.87911 → 0.879.
        assert_eq!(
            default_mem_fraction_static(&r("0.4.8"), fi(24564, 1, 1, 2048, 8)),
            0.879
        );
        // 0.5.5, RTX 4090 at TP 1: chunked prefill 2048, max_bs 24: 512 + 3072 + 48 + 128 =
        // 3760 MiB; (24564 − 3760) / 24564 = 0.84693 → 0.847.
        let (cps, bs) = gpu_tier_defaults(GpuTiers::Cg24, 24564, 1);
        assert_eq!((cps, bs), (2048, 24));
        assert_eq!(
            default_mem_fraction_static(&r("0.5.5"), fi(24564, 1, 1, 2048, 24)),
            0.847
        );
        // 0.5.23, same card: 4096 and 48; prefill graphs up to 4096 tokens: 8 + 14 + 8 + 8 + 12
        // = 50 sizes × 8 MiB = 400; 512 + 6144 + 96 + 128 + 400 = 7280 MiB; (24564 − 7280) /
        // 24564 = 0.70363 → 0.704.
        assert_eq!(prefill_graph_sizes(4096), 50);
        assert_eq!(
            default_mem_fraction_static(&r("0.5.23"), fi(24564, 1, 1, 4096, 48)),
            0.704
        );
        // 0.5.5, H100 (81559 MiB) at TP 1: 512 + 12288 + 512 + 128 = 13440 MiB (above the
        // 10 GiB floor); (81559 − 13440) / 81559 = 0.83521 → 0.835.
        assert_eq!(
            default_mem_fraction_static(&r("0.5.5"), fi(81559, 1, 1, 8192, 256)),
            0.835
        );
    }

    #[test]
    fn token_pool_by_hand() {
        // sglang.jsonl:3 (Qwen3-14B bf16, TP 4 on RTX 4090s, mem_fraction_static 0.8): 298,447
        // tokens logged. Here: pre = 25,386,352,640 − (410 + 154) MiB = 24,794,955,776 B;
        // cell = 2 KV heads × 128 × 40 layers × 2 × 2 B = 40,960 B.
        let cat = catalogue();
        let m = cat.model("qwen3-14b").unwrap();
        let gpu = cat.gpu("rtx-4090").unwrap();
        let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 40960, 1);
        c.parallel.tp = 4;
        let mut a = SglangArgs::new(SglangRelease::parse("0.5.19").unwrap());
        a.mem_fraction_static = Some(0.8);
        let e = estimate(m, gpu, c, &a).unwrap();
        assert_eq!(cell_bytes(m, KvDtype::Bf16, 4, true), 40_960);
        // DeepSeek-V3.2: 61 layers × (576 × 2 B + 128 + 128/128 × 4 B) = 78,324 B from 0.5.4;
        // 61 × 1,152 = 70,272 B at 0.5.3, whose cell leaves the indexer out.
        let v32 = crate::catalogue()
            .model("deepseek-ai/DeepSeek-V3.2-Exp")
            .unwrap();
        assert_eq!(cell_bytes(v32, KvDtype::Bf16, 8, true), 78_324);
        assert_eq!(cell_bytes(v32, KvDtype::Bf16, 8, false), 70_272);
        assert!(SglangRules::of(SglangRelease::parse("0.5.4").unwrap()).indexer_in_cell);
        assert!(!SglangRules::of(SglangRelease::parse("0.5.3").unwrap()).indexer_in_cell);
        let pre: u64 = 25_386_352_640 - 564 * MIB;
        let expected =
            ((pre - e.weights_bytes) as i128 - (pre as f64 * 0.2) as i128) as u64 / 40_960;
        assert_eq!(e.kv_cache_tokens.unwrap(), expected);
        let logged = 298_447.0;
        let err = (expected as f64 - logged) / logged;
        assert!(err.abs() < 0.03, "{err}");
    }
    fn release_rules(v: &str) -> SglangRules {
        SglangRules::of(SglangRelease::parse(v).unwrap())
    }

    #[test]
    fn hybrid_rules_change_where_the_source_says() {
        assert_eq!(release_rules("0.5.3").hybrid_pool, HybridPool::None);
        assert_eq!(
            release_rules("0.5.4").hybrid_pool,
            HybridPool::RatioFlagIgnored
        );
        assert_eq!(
            release_rules("0.5.8").hybrid_pool,
            HybridPool::RatioFlagIgnored
        );
        assert_eq!(release_rules("0.5.10").hybrid_pool, HybridPool::Ratio);
        assert_eq!(release_rules("0.5.14").hybrid_pool, HybridPool::Ratio);
        assert_eq!(release_rules("0.5.18").hybrid_pool, HybridPool::RatioPadded);
        assert_eq!(release_rules("0.5.23").hybrid_pool, HybridPool::RatioPadded);
        assert!(!release_rules("0.5.8")
            .hybrid_models
            .contains(&"qwen3_5".to_string()));
        assert!(release_rules("0.5.10")
            .hybrid_models
            .contains(&"granitemoehybrid".to_string()));
        assert!(!release_rules("0.5.8").ssm_dtype_from_config);
        assert!(release_rules("0.5.10").ssm_dtype_from_config);
    }

    #[test]
    fn hybrid_state_by_hand() {
        let cat = catalogue();
        let next = cat.model("Qwen/Qwen3-Next-80B-A3B-Instruct").unwrap();
        let r = release_rules("0.5.23");
        // Qwen3-Next at TP 4 (configs/qwen3_next.py mamba2_cache_params): conv_dim = 128 × 32
        // value + 2 × 16 key heads × 128 = 8192, ÷ 4 = 2048 × (kernel 4 − 1) × 2 B = 12,288;
        // temporal 32/4 heads × 128 × 128 × 4 B = 524,288; 536,576 × 36 linear layers =
        // 19,316,736 B. With --mamba-ssm-dtype bfloat16: (12,288 + 262,144) × 36 = 9,879,552.
        let st = hybrid_state(next, &r, 4, None).unwrap().unwrap();
        assert_eq!(
            (st.per_request, st.layers, st.ssm_bytes),
            (19_316_736, 36, 4)
        );
        let bf = hybrid_state(next, &r, 4, Some(2)).unwrap().unwrap();
        assert_eq!(bf.per_request, 9_879_552);
        // The full-attention cell: 12 layers × max(1, 2 KV heads ÷ 4) × 256 × 2 (K, V) × 2 B.
        assert_eq!(cell_bytes(next, KvDtype::Bf16, 4, true), 12_288);
        // Nemotron-Nano-9B-v2 (Mamba-2, 27 'M' layers): conv (128 × 80 + 2 × 8 groups × 128)
        // = 12,288 × 3 × 2 B = 73,728; temporal 128 × 80 × 128 × 4 B = 5,242,880; × 27 =
        // 143,548,416 B at TP 1; TP 2 halves both: 71,774,208.
        let nano = cat.model("nvidia/NVIDIA-Nemotron-Nano-9B-v2").unwrap();
        assert_eq!(
            hybrid_state(nano, &r, 1, None)
                .unwrap()
                .unwrap()
                .per_request,
            143_548_416
        );
        assert_eq!(
            hybrid_state(nano, &r, 2, None)
                .unwrap()
                .unwrap()
                .per_request,
            71_774_208
        );
        // Qwen3-Next's 16 key heads do not divide over 32 ranks: SGLang replicates them.
        assert!(hybrid_state(next, &r, 32, None).is_err());
    }

    #[test]
    fn state_pool_split_by_hand() {
        // rest = 40 GiB = 42,949,672,960 B; budget = rest × 0.9 ÷ 1.9 = 20,344,581,928.4 B;
        // ÷ 19,316,736 B = 1053.2 states.
        let rest = 42_949_672_960.0;
        let per = 19_316_736;
        // 0.5.4–0.5.14: 1053 states; the KV pool gets 42,949,672,960 − 1053 × 19,316,736 =
        // 22,609,149,952 B.
        let (k, left) = split_state_pool(HybridPool::Ratio, rest, per, 0.9, None);
        assert_eq!((k, left as u64), (1053, 22_609_149_952));
        // 0.5.18+: (budget − per) ÷ per = 1052 states, charged with the padding slot: 1053.
        let (k, left) = split_state_pool(HybridPool::RatioPadded, rest, per, 0.9, None);
        assert_eq!((k, left as u64), (1052, 22_609_149_952));
        // --max-mamba-cache-size 512: 0.5.10 charges 512 states (33,059,504,128 B left), 0.5.18
        // 513 (33,040,187,392), 0.5.4 ignores it (the ratio's 1053).
        let (k, left) = split_state_pool(HybridPool::Ratio, rest, per, 0.9, Some(512));
        assert_eq!((k, left as u64), (512, 33_059_504_128));
        let (k, left) = split_state_pool(HybridPool::RatioPadded, rest, per, 0.9, Some(512));
        assert_eq!((k, left as u64), (512, 33_040_187_392));
        let (k, _) = split_state_pool(HybridPool::RatioFlagIgnored, rest, per, 0.9, Some(512));
        assert_eq!(k, 1053);
    }

    #[test]
    fn qwen3_next_on_four_h100s_by_hand() {
        // SGLang 0.5.23, Qwen3-Next-80B-A3B bf16, TP 4 on H100 SXM (81,559 MiB), defaults.
        // Fraction: 512 + 8192 × 1.5 + 512 × 2 + 4/8 GiB + 58 prefill graph sizes × 8 MiB =
        // 14,800 MiB; (81,559 − 14,800) ÷ 81,559 = 0.8185 → 0.819.
        // pre = 85,028,896,768 − 564 MiB = 84,437,499,904 B; rest = (pre − weights) −
        // ⌊pre × 0.181⌋; state budget = rest × 0.9 ÷ 1.9; states = ⌊(budget − per) ÷ per⌋,
        // charged + 1; tokens = ⌊(rest − (states + 1) × 19,316,736) ÷ 12,288⌋.
        let cat = catalogue();
        let m = cat.model("Qwen/Qwen3-Next-80B-A3B-Instruct").unwrap();
        let gpu = cat.gpu("h100").unwrap();
        let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 32768, 1);
        c.parallel.tp = 4;
        let a = SglangArgs::new(SglangRelease::parse("0.5.23").unwrap());
        let e = estimate(m, gpu, c, &a).unwrap();
        assert_eq!(e.utilization, 0.819);
        let pre: u64 = 85_028_896_768 - 564 * MIB;
        assert_eq!(gpu.memory_bytes, 85_028_896_768);
        let rest = (pre - e.weights_bytes) as f64 - (pre as f64 * (1.0 - 0.819)).floor();
        let per = 19_316_736.0;
        let states = ((rest * 0.9 / 1.9 - per) / per).floor();
        let tokens = ((rest - (states + 1.0) * per) / 12_288.0).floor() as u64;
        assert_eq!(e.kv_cache_tokens, Some(tokens));
        // With this profile's weights (40,242,411,008 B a rank): 707 states, 1,239,880 tokens.
        assert_eq!(e.weights_bytes, 40_242_411_008);
        assert_eq!(states, 707.0);
        assert_eq!(tokens, 1_239_880);
        let slots = e
            .engine_settings
            .iter()
            .find(|s| s.name == "max_mamba_cache_size")
            .unwrap();
        assert_eq!(slots.value, "707");
        // 32,768-token requests: 1,239,880 ÷ 32,768 = 37 (fewer than the 707 state slots).
        assert_eq!(e.max_concurrency, 37);
        // --max-mamba-cache-size 16 leaves more for KV and caps running requests at 16 ÷ 5
        // state slots a request (hybrid_request_cap, 0.5.14+) = 3.
        let mut a16 = a.clone();
        a16.max_mamba_cache_size = Some(16);
        let e16 = estimate(m, gpu, c, &a16).unwrap();
        assert_eq!(e16.max_concurrency, 3);
        assert!(e16.kv_cache_tokens.unwrap() > tokens);
        // 0.5.4 overrides the flag with the ratio (radix cache on).
        let mut old = SglangArgs::new(SglangRelease::parse("0.5.4").unwrap());
        old.mem_fraction_static = Some(0.819);
        old.max_mamba_cache_size = Some(16);
        let e4 = estimate(m, gpu, c, &old).unwrap();
        assert!(e4.max_concurrency > 16);
    }

    #[test]
    fn hybrid_request_cap_by_hand() {
        // The ratio: none before 0.5.4, 3 slots a request (no_buffer) 0.5.4-0.5.13, 3 + 2
        // ping-pong slots (extra_buffer with the overlap schedule) from 0.5.14.
        assert_eq!(release_rules("0.5.3").hybrid_request_ratio, None);
        assert_eq!(release_rules("0.5.4").hybrid_request_ratio, Some(3));
        assert_eq!(release_rules("0.5.13").hybrid_request_ratio, Some(3));
        assert_eq!(release_rules("0.5.14").hybrid_request_ratio, Some(5));
        assert_eq!(release_rules("0.5.18").hybrid_request_ratio, Some(5));
        assert_eq!(release_rules("0.5.23").hybrid_request_ratio, Some(5));
        // 1,239,880 tokens at context 4096: ⌊1,239,880 ÷ 4096 × 512⌋ = 154,985 → clamped to
        // 4096; tokens ÷ 2 = 619,940; so 4096 unless the slots say less. 707 slots ÷ 5 = 141
        // (0.5.18); 708 ÷ 3 = 236 (0.5.13).
        let r18 = release_rules("0.5.18");
        let r13 = release_rules("0.5.13");
        assert_eq!(
            hybrid_max_running_requests(&r18, 1_239_880, 4096, 707),
            (141, true)
        );
        assert_eq!(
            hybrid_max_running_requests(&r13, 1_239_880, 4096, 708),
            (236, true)
        );
        // 10,000 tokens at 131,072: ⌊39.06⌋ → 2048, tokens ÷ 2 = 5000 → 2048, below 100,000
        // slots ÷ 5 = 20,000: the slots do not decide.
        assert_eq!(
            hybrid_max_running_requests(&r18, 10_000, 131_072, 100_000),
            (2048, false)
        );
        // 3,000 tokens: tokens ÷ 2 = 1500 is the bound.
        assert_eq!(
            hybrid_max_running_requests(&r18, 3_000, 131_072, 100_000),
            (1500, false)
        );

        // The estimate: Qwen3-Next-80B-A3B bf16 on 4× H100 with 0.5.18's defaults (0.819,
        // 1,239,880 tokens and 707 slots, as qwen3_next_on_four_h100s_by_hand computes for
        // 0.5.23, whose pool rules are the same), 4096-token requests: the pool holds
        // ⌊1,239,880 ÷ 4096⌋ = 302 of them but SGLang runs at most 141.
        let cat = catalogue();
        let m = cat.model("Qwen/Qwen3-Next-80B-A3B-Instruct").unwrap();
        let gpu = cat.gpu("h100").unwrap();
        let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 4096, 141);
        c.parallel.tp = 4;
        let a = SglangArgs::new(SglangRelease::parse("0.5.18").unwrap());
        let e = estimate(m, gpu, c, &a).unwrap();
        assert_eq!(e.kv_cache_tokens, Some(1_239_880));
        assert_eq!(e.max_concurrency, 141);
        assert!(e.fits);
        let setting = |e: &Estimate, n: &str| {
            e.engine_settings
                .iter()
                .find(|s| s.name == n)
                .map(|s| s.value.clone())
        };
        assert_eq!(setting(&e, "max_running_requests").as_deref(), Some("141"));
        assert_eq!(setting(&e, "hybrid_request_cap").as_deref(), Some("5"));
        // 142 requests: the memory holds them, the cap does not.
        c.batch = 142;
        let e = estimate(m, gpu, c, &a).unwrap();
        assert!(!e.fits && e.startup_error.is_none());
        // 0.5.13 at the same fraction: 708 slots (no padding slot), ÷ 3 = 236 requests.
        let mut a13 = SglangArgs::new(SglangRelease::parse("0.5.13").unwrap());
        a13.mem_fraction_static = Some(0.819);
        let e = estimate(m, gpu, c, &a13).unwrap();
        assert_eq!(setting(&e, "max_mamba_cache_size").as_deref(), Some("708"));
        assert_eq!(e.max_concurrency, 236);
        assert!(e.fits);
        // --max-mamba-cache-size 4 at 0.5.18: 4 ÷ 5 = 0 requests, SGLang's RuntimeError.
        let mut a4 = a.clone();
        a4.max_mamba_cache_size = Some(4);
        let e = estimate(m, gpu, c, &a4).unwrap();
        let err = e.startup_error.unwrap();
        assert!(
            err.message.contains("too small to serve any requests"),
            "{}",
            err.message
        );
        // A model without a state has no such setting.
        let dense = cat.model("qwen3-14b").unwrap();
        let e = estimate(
            dense,
            gpu,
            Config::new(WeightFormat::Bf16, KvDtype::Bf16, 4096, 1),
            &a,
        )
        .unwrap();
        assert_eq!(setting(&e, "max_running_requests"), None);
    }

    #[test]
    fn hybrid_refusals() {
        let cat = catalogue();
        let next = cat.model("Qwen/Qwen3-Next-80B-A3B-Instruct").unwrap();
        let gpu = cat.gpu("h100").unwrap();
        let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 4096, 1);
        c.parallel.tp = 4;
        // Before 0.5.4 no ratio-sized pool.
        let a = SglangArgs::new(SglangRelease::parse("0.5.3").unwrap());
        let err = estimate(next, gpu, c, &a).unwrap_err();
        assert!(err.contains("0.5.3"), "{err}");
        // Speculative state not sized.
        let mut a = SglangArgs::new(SglangRelease::NEWEST);
        a.speculative = true;
        assert!(estimate(next, gpu, c, &a).is_err());
        // Jamba's Mamba (v1) layers stay refused.
        let jamba = cat.model("ai21labs/Jamba-v0.1").unwrap();
        let a = SglangArgs::new(SglangRelease::NEWEST);
        let err = estimate(jamba, gpu, c, &a).unwrap_err();
        assert!(err.contains("mamba"), "{err}");
        // --mamba-ssm-dtype float16 arrives in 0.5.10.
        let req = Request::new(4096, 1);
        let f = |v: &str, d: &str| SglangFlags {
            sglang_version: v.into(),
            mamba_ssm_dtype: Some(d.into()),
            ..SglangFlags::default()
        };
        assert!(f("0.5.8", "float16").resolve(next, &req).is_err());
        assert_eq!(
            f("0.5.10", "float16")
                .resolve(next, &req)
                .unwrap()
                .1
                .mamba_ssm_dtype_bytes,
            Some(2)
        );
    }
}
