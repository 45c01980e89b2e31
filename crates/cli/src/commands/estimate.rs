//! `vramplan estimate`: one configuration's memory breakdown, verdict and limits, under the
//! generic model or an engine profile (`--engine vllm|llamacpp|ollama|sglang`) with each
//! engine's own flag names.

use crate::render::Rows;
use crate::Failure;
use clap::{Args, ValueEnum};
use std::ffi::OsString;
use vramplan_core::engine::llamacpp::{self, LlamaCppFlags};
use vramplan_core::engine::ollama;
use vramplan_core::engine::sglang::{self, SglangFlags};
use vramplan_core::engine::vllm::{self, Release, VllmFlags};
use vramplan_core::engine::Request;
use vramplan_core::gpu::Interconnect;
use vramplan_core::naive::{naive_estimate, NaiveEstimate};
use vramplan_core::units::{bytes_kib, count, gb_gib, gib, params_short, thousands};
use vramplan_core::{
    catalogue, estimate, Config, Estimate, Gpu, KvDtype, ModelDesc, Parallelism, WeightFormat,
};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Formula {
    /// Architecture-aware: GQA/MQA/MLA, sliding windows, quantized layouts, runtime overheads.
    Exact,
    /// The seed articles' arithmetic: 2 × 2 × layers × hidden × sequence × batch.
    Naive,
}

/// The serving engine whose accounting applies.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum EngineChoice {
    /// Engine-neutral model (default).
    Generic,
    /// vLLM V1 (0.10 and later): KV blocks, the profiling run, start-up errors.
    Vllm,
    /// llama.cpp: model/KV/compute buffers per device for -ngl layers.
    Llamacpp,
    /// ollama: its own layer-offload estimate, then llama.cpp's buffers.
    Ollama,
    /// SGLang: --mem-fraction-static and its token pool.
    Sglang,
}

#[derive(Args)]
pub struct EstimateArgs {
    #[arg(long, short = 'm', default_value = "meta-llama/Llama-3.1-8B-Instruct", help = crate::model_source::MODEL_HELP)]
    pub model: String,
    /// Weight precision: fp32, fp16, bf16, fp8, int8, awq, gptq, w4a16, nf4, bnb-int8, mxfp4,
    /// or a GGUF type (q4_0, q4_k, q8_0, ...). Default: the checkpoint's own. vLLM's
    /// --quantization names (awq_marlin, gptq_marlin, bitsandbytes, compressed-tensors) are accepted.
    #[arg(long, short = 'q', alias = "quantization")]
    pub quant: Option<String>,
    /// KV-cache dtype: auto (the model dtype; fp16 for the generic engine), fp16, bf16, fp8,
    /// int8, q8_0, q4_0. Same as vLLM's --kv-cache-dtype.
    #[arg(long, default_value = "auto", alias = "kv-cache-dtype")]
    pub kv_dtype: String,
    /// Tokens per sequence (prompt + output); vLLM's --max-model-len; llama.cpp's -c (n_ctx,
    /// shared by the -np slots); ollama's num_ctx.
    #[arg(
        long,
        short = 'c',
        default_value_t = 8192,
        alias = "max-model-len",
        alias = "ctx-size",
        alias = "num-ctx"
    )]
    pub context: u64,
    /// Concurrent sequences (llama.cpp/ollama: the slots, as --parallel).
    #[arg(long, short = 'b', default_value_t = 1)]
    pub batch: u64,
    /// GPU kind: catalogue id, alias or the name nvidia-smi prints (see `vramplan gpus`).
    /// llama.cpp: repeat it for a machine with different GPUs (--gpu rtx-4090 --gpu rtx-5090),
    /// one per device in llama.cpp's order.
    #[arg(long, short = 'g', default_value = "h100")]
    pub gpu: Vec<String>,
    /// Memory of a GPU not in the catalogue, with its unit: 24GiB, 80GB. Not with --gpu: a
    /// catalogue card's memory is known (refused rather than one silently overriding the other).
    #[arg(long, conflicts_with = "gpu")]
    pub gpu_memory: Option<String>,
    /// GPUs used with tensor parallelism (same as --tp).
    #[arg(long)]
    pub gpus: Option<u64>,
    /// Tensor-parallel size (vLLM: --tensor-parallel-size).
    #[arg(long, alias = "tensor-parallel-size")]
    pub tp: Option<u64>,
    /// Pipeline-parallel size (vLLM: --pipeline-parallel-size).
    #[arg(long, default_value_t = 1, alias = "pipeline-parallel-size")]
    pub pp: u64,
    /// Data-parallel replicas (vLLM: --data-parallel-size).
    #[arg(long, default_value_t = 1, alias = "data-parallel-size")]
    pub dp: u64,
    /// Share of each GPU's memory the engine may use. Default: the engine's own (generic 0.9;
    /// vLLM 0.90 up to 0.19, 0.92 from 0.20, 1.0 with 0.34's extensible KV cache).
    #[arg(long)]
    pub gpu_memory_utilization: Option<f64>,
    /// GPU-to-GPU link when the model spans GPUs: nvswitch, nvlink, pcie, xgmi (default: the
    /// card's usual server, data/gpus.toml).
    #[arg(long)]
    pub interconnect: Option<String>,
    /// Tokens per prefill forward pass (generic engine).
    #[arg(long, default_value_t = vramplan_core::engine::generic::DEFAULT_PREFILL_CHUNK)]
    pub prefill_chunk: u64,
    /// exact (default) or naive (the seed articles' formula).
    #[arg(long, value_enum, default_value_t = Formula::Exact)]
    pub formula: Formula,
    /// Serving engine whose accounting applies.
    #[arg(long, value_enum, default_value_t = EngineChoice::Generic)]
    pub engine: EngineChoice,
    /// vLLM: release whose accounting applies (0.10 to 0.34; default the newest modelled).
    #[arg(long, default_value = "latest")]
    pub vllm_version: String,
    /// vLLM: serve (vllm serve, the OpenAI server) or llm (the offline LLM class): their batch
    /// defaults differ.
    #[arg(long, default_value = "serve")]
    pub vllm_entrypoint: String,
    /// vLLM: --enable-lora (LoRA slots on every linear layer).
    #[arg(long)]
    pub enable_lora: bool,
    /// vLLM: --max-loras (default 1; ignored without --enable-lora, as vLLM ignores it).
    #[arg(long)]
    pub max_loras: Option<u64>,
    /// vLLM: --max-lora-rank (default 16).
    #[arg(long)]
    pub max_lora_rank: Option<u64>,
    /// vLLM: --max-cpu-loras (host memory; default --max-loras).
    #[arg(long)]
    pub max_cpu_loras: Option<u64>,
    /// vLLM: --speculative-config JSON, e.g. '{"method": "eagle", "model": "…", "num_speculative_tokens": 3}'.
    #[arg(long)]
    pub speculative_config: Option<String>,
    /// vLLM: the model runner (VLLM_USE_V2_MODEL_RUNNER): auto, v1 or v2.
    #[arg(long, default_value = "auto")]
    pub vllm_model_runner: String,
    /// vLLM 0.34: --enable-extensible-kv-cache (size the KV cache after warmup; on by default).
    #[arg(long, conflicts_with = "no_enable_extensible_kv_cache")]
    pub enable_extensible_kv_cache: bool,
    /// vLLM 0.34: --no-enable-extensible-kv-cache (size it from the profiling run).
    #[arg(long)]
    pub no_enable_extensible_kv_cache: bool,
    /// vLLM: --mamba-cache-dtype (auto, float32, float16): the Mamba / linear-attention conv
    /// state of hybrid models (and their SSM state unless --mamba-ssm-cache-dtype is given).
    #[arg(long, default_value = "auto")]
    pub mamba_cache_dtype: String,
    /// vLLM: --mamba-ssm-cache-dtype (auto, float32, float16): hybrid models' temporal state.
    #[arg(long, default_value = "auto")]
    pub mamba_ssm_cache_dtype: String,
    /// vLLM 0.16+: --mamba-cache-mode (none, all, align): how hybrid models cache their state
    /// for prefix caching (default: none without prefix caching).
    #[arg(long)]
    pub mamba_cache_mode: Option<String>,
    /// vLLM: --enable-prefix-caching (hybrid models: off by default until 0.25, on from 0.26).
    #[arg(long, conflicts_with = "no_enable_prefix_caching")]
    pub enable_prefix_caching: bool,
    /// vLLM: --no-enable-prefix-caching.
    #[arg(long)]
    pub no_enable_prefix_caching: bool,
    /// vLLM 0.10.1+: --skip-mm-profiling (no vision/audio encoder run in the profiling run).
    #[arg(long)]
    pub skip_mm_profiling: bool,
    /// vLLM/SGLang: --dtype (auto, bfloat16, float16, float32): the activation and unquantized
    /// weight dtype; auto is the checkpoint's (fp32 checkpoints are served in bf16).
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// vLLM: tokens per KV block (default 16; 64 for MLA models).
    #[arg(long)]
    pub block_size: Option<u64>,
    /// vLLM: --max-num-seqs (default by release and card: 1024 on ≥ 70 GiB cards, else 256).
    #[arg(long)]
    pub max_num_seqs: Option<u64>,
    /// vLLM: --max-num-batched-tokens (default 8192 on ≥ 70 GiB cards, else 2048).
    #[arg(long)]
    pub max_num_batched_tokens: Option<u64>,
    /// vLLM: --enforce-eager (no CUDA graphs).
    #[arg(long)]
    pub enforce_eager: bool,
    /// vLLM: --enable-expert-parallel (whole experts over TP × DP ranks).
    #[arg(long)]
    pub enable_expert_parallel: bool,
    /// SGLang: --mem-fraction-static (default: the release's, from the GPU memory, TP and the
    /// prefill and CUDA-graph settings).
    #[arg(long)]
    pub mem_fraction_static: Option<f64>,
    /// SGLang: release whose accounting applies (0.4.0 to 0.5.23; default the newest modelled).
    #[arg(long, default_value = "latest")]
    pub sglang_version: String,
    /// SGLang: --chunked-prefill-size (default by GPU memory; -1 disables chunking).
    #[arg(long, allow_hyphen_values = true)]
    pub chunked_prefill_size: Option<i64>,
    /// SGLang: --cuda-graph-max-bs (default by GPU memory and TP).
    #[arg(long)]
    pub cuda_graph_max_bs: Option<u64>,
    /// SGLang: --page-size (default 1).
    #[arg(long)]
    pub page_size: Option<u64>,
    /// SGLang: --max-total-tokens (a cap on the token pool).
    #[arg(long)]
    pub max_total_tokens: Option<u64>,
    /// SGLang: --max-mamba-cache-size: state slots of a hybrid (Mamba-2 / gated-delta-net)
    /// model (default: sized by --mamba-full-memory-ratio; overridden by it before 0.5.10).
    #[arg(long)]
    pub max_mamba_cache_size: Option<u64>,
    /// SGLang: --mamba-full-memory-ratio: a hybrid model's state pool over its KV pool (default
    /// 0.9).
    #[arg(long)]
    pub mamba_full_memory_ratio: Option<f64>,
    /// SGLang: --mamba-ssm-dtype: float32, bfloat16 (float16 from 0.5.10) for a hybrid model's
    /// SSM state (default: config.json's mamba_ssm_dtype from 0.5.10, else float32).
    #[arg(long)]
    pub mamba_ssm_dtype: Option<String>,
    /// SGLang: memory other processes hold on each GPU when the engine starts, with its unit
    /// (0.8GiB): a desktop, or the Windows host under WSL2 (nvidia-smi memory.used before the
    /// start). SGLang takes --mem-fraction-static of the free memory it finds, so this lowers
    /// the token pool (default 0: a GPU that runs nothing else).
    #[arg(long)]
    pub gpu_memory_in_use: Option<String>,
    /// SGLang: --speculative-algorithm (EAGLE, EAGLE3, NEXTN, STANDALONE, NGRAM): its reserve
    /// enters the default --mem-fraction-static.
    #[arg(long)]
    pub speculative_algorithm: Option<String>,
    /// llama.cpp -ngl / ollama num_gpu: layers on the GPU, the output layer counted last
    /// (default: the largest that fits).
    #[arg(long, alias = "gpu-layers", alias = "ngl")]
    pub n_gpu_layers: Option<u64>,
    /// llama.cpp -np / ollama OLLAMA_NUM_PARALLEL: sequences (default: --batch).
    #[arg(long, alias = "np")]
    pub parallel: Option<u64>,
    /// llama.cpp -ctk (ollama OLLAMA_KV_CACHE_TYPE): f16, q8_0, q4_0, ...; auto = --kv-dtype,
    /// else llama.cpp's f16.
    #[arg(long, alias = "ctk", default_value = "auto")]
    pub cache_type_k: String,
    /// llama.cpp -ctv; auto = --kv-dtype, else f16.
    #[arg(long, alias = "ctv", default_value = "auto")]
    pub cache_type_v: String,
    /// llama.cpp -fa on|off|auto (auto: on where supported; for ollama, auto means its
    /// default, OLLAMA_FLASH_ATTENTION off).
    #[arg(long, alias = "fa", default_value = "auto")]
    pub flash_attn: String,
    /// llama.cpp -ub (default 512; ollama num_batch).
    #[arg(long, alias = "ub")]
    pub ubatch_size: Option<u64>,
    /// llama.cpp -b, the logical batch (default 2048).
    #[arg(long)]
    pub batch_size: Option<u64>,
    /// llama.cpp --kv-unified: one KV cache shared by all sequences.
    #[arg(long)]
    pub kv_unified: bool,
    /// llama.cpp --swa-full: full-size caches for sliding-window layers.
    #[arg(long)]
    pub swa_full: bool,
    /// llama.cpp --no-kv-offload: keep the KV cache in host memory.
    #[arg(long)]
    pub no_kv_offload: bool,
    /// llama.cpp -ts: each GPU's proportion of the layers, e.g. 3,1 (default: by free memory).
    #[arg(long, alias = "ts")]
    pub tensor_split: Option<String>,
    /// llama.cpp -sm none|layer|row (default layer).
    #[arg(long, alias = "sm", default_value = "layer")]
    pub split_mode: String,
    /// llama.cpp -mg: the GPU of -sm none|row (default 0).
    #[arg(long, alias = "mg", default_value_t = 0)]
    pub main_gpu: usize,
    /// llama.cpp --n-cpu-moe N: keep the experts of the first N layers in host memory.
    #[arg(long, alias = "ncmoe")]
    pub n_cpu_moe: Option<u64>,
    /// llama.cpp --cpu-moe: keep every layer's experts in host memory.
    #[arg(long, alias = "cmoe")]
    pub cpu_moe: bool,
    /// llama.cpp -ot PATTERN=DEVICE,...: tensors whose name matches the regular expression go
    /// to that device (CPU, CUDA0, CUDA1…), e.g. "blk\.([0-9]|1[0-9])\.ffn_.*_exps\.=CPU".
    #[arg(long, alias = "ot")]
    pub override_tensor: Option<String>,
    /// llama.cpp --no-mmap: read the weights into host buffers instead of mapping the file.
    #[arg(long)]
    pub no_mmap: bool,
    /// Host memory, checked like GPU memory for llama.cpp's host buffers, with its unit: 64GiB;
    /// none to skip the check (default: this machine's, from /proc/meminfo, on the command
    /// line; not checked by the web API unless given).
    #[arg(long)]
    pub host_memory: Option<String>,
    /// ollama: which ollama places the layers: llama-server (ollama today: it starts
    /// llama-server, whose --fit places them) or estimate (ollama before its llama-server
    /// switch: its own llm/memory.go estimate).
    #[arg(long, default_value = "llama-server")]
    pub ollama_scheduler: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub hub: crate::model_source::HubArgs,
}

/// llama.cpp's single-dash flags (-ngl, -np, -ctk, -ctv, -fa, -ub) are not expressible as
/// clap short flags (one letter each), so `main` rewrites them to their long forms before
/// parsing: `-ngl 99` → `--n-gpu-layers 99`. Everything else passes through unchanged.
#[allow(dead_code)] // called by main.rs once it parses with Cli::parse_from (see the report)
pub fn expand_engine_short_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    const LONG: [(&str, &str); 12] = [
        ("-ngl", "--n-gpu-layers"),
        ("-ot", "--override-tensor"),
        ("-ts", "--tensor-split"),
        ("-sm", "--split-mode"),
        ("-mg", "--main-gpu"),
        ("-ncmoe", "--n-cpu-moe"),
        ("-cmoe", "--cpu-moe"),
        ("-np", "--parallel"),
        ("-ctk", "--cache-type-k"),
        ("-ctv", "--cache-type-v"),
        ("-fa", "--flash-attn"),
        ("-ub", "--ubatch-size"),
    ];
    args.into_iter()
        .map(|a| {
            let Some(text) = a.to_str() else { return a };
            for (short, long) in LONG {
                if text == short {
                    return OsString::from(long);
                }
                if let Some(rest) = text.strip_prefix(short).and_then(|r| r.strip_prefix('=')) {
                    return OsString::from(format!("{long}={rest}"));
                }
            }
            a
        })
        .collect()
}

/// A model from the catalogue, a file, the Hub or the ollama registry (model_source.rs).
pub fn resolve_model(
    query: &str,
    hub: &crate::model_source::HubArgs,
) -> Result<ModelDesc, Failure> {
    crate::model_source::resolve(query, hub).map(|r| r.desc)
}

/// The first `--gpu` (the one every engine but llama.cpp uses).
pub fn first_gpu(a: &EstimateArgs) -> &str {
    a.gpu.first().map_or("h100", String::as_str)
}

/// A GPU from the catalogue, or a custom size.
pub fn resolve_gpu(query: &str, memory: Option<&str>) -> Result<Gpu, Failure> {
    match memory {
        Some(m) => vramplan_core::units::parse_size(m)
            .map(Gpu::custom)
            .map_err(Failure::input),
        None => catalogue().gpu(query).cloned().map_err(Failure::input),
    }
}

/// The GPU an estimate runs on: `--gpu` or `--gpu-memory`, with `--interconnect` applied.
pub fn estimate_gpu(a: &EstimateArgs) -> Result<Gpu, Failure> {
    let mut gpu = resolve_gpu(first_gpu(a), a.gpu_memory.as_deref())?;
    if let Some(i) = &a.interconnect {
        gpu.interconnect = Interconnect::parse(i).map_err(Failure::input)?;
    }
    Ok(gpu)
}

pub fn parallelism(
    gpus: Option<u64>,
    tp: Option<u64>,
    pp: u64,
    dp: u64,
) -> Result<Parallelism, Failure> {
    let tp = match (gpus, tp) {
        // Saturating: sizes near 2^64 are refused by the parallelism check, not overflowed here.
        (Some(g), Some(t)) if g != t.saturating_mul(pp).saturating_mul(dp) => {
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
    let resolved = crate::model_source::resolve(&a.model, &a.hub)?;
    let model = resolved.desc;
    let gpu = estimate_gpu(a)?;
    let to_value = |v: Result<serde_json::Value, serde_json::Error>| {
        v.map_err(|e| Failure::runtime(e.to_string()))
    };
    if a.formula == Formula::Naive {
        let mut n = naive(a, &model, &gpu)?;
        n.notes.extend(resolved.warnings);
        return to_value(serde_json::to_value(&n));
    }
    let mut e = exact(a, &model, &gpu)?;
    // What the model's source could not give (weights not read) is the answer's warning too.
    e.warnings.extend(resolved.warnings);
    to_value(serde_json::to_value(&e))
}

fn naive(a: &EstimateArgs, model: &ModelDesc, gpu: &Gpu) -> Result<NaiveEstimate, Failure> {
    if a.context == 0 || a.batch == 0 {
        return Err(Failure::input("context and batch must each be at least 1"));
    }
    // The exact path's bounds (estimate.rs Config::check), so both formulas refuse alike.
    if a.context > 1 << 34 || a.batch > 1 << 32 {
        return Err(Failure::input(format!(
            "context {} (limit 2^34) or batch {} (limit 2^32) is beyond any deployment",
            a.context, a.batch
        )));
    }
    vramplan_core::estimate::check_cached_tokens(a.context, a.batch).map_err(Failure::input)?;
    let n = naive_estimate(model, gpu.memory_bytes, a.context, a.batch);
    not_saturated(&[
        ("weights", n.weights_bytes),
        ("KV cache", n.kv_cache_bytes),
        ("total", n.total_bytes),
    ])?;
    Ok(n)
}

/// The engine-neutral part of the request, as the engines' flags resolve against it.
pub fn request(a: &EstimateArgs) -> Result<Request, Failure> {
    Ok(Request {
        quant: a.quant.clone(),
        kv_dtype: a.kv_dtype.clone(),
        context: a.context,
        batch: a.batch,
        parallel: parallelism(a.gpus, a.tp, a.pp, a.dp)?,
        utilization: a.gpu_memory_utilization,
        prefill_chunk: a.prefill_chunk,
    })
}

/// vLLM's flags, carried as given (engine/vllm/flags.rs parses them).
pub fn vllm_flags(a: &EstimateArgs) -> VllmFlags {
    VllmFlags {
        vllm_version: a.vllm_version.clone(),
        dtype: a.dtype.clone(),
        block_size: a.block_size,
        max_num_seqs: a.max_num_seqs,
        max_num_batched_tokens: a.max_num_batched_tokens,
        enforce_eager: a.enforce_eager,
        enable_expert_parallel: a.enable_expert_parallel,
        entrypoint: a.vllm_entrypoint.clone(),
        enable_lora: a.enable_lora,
        max_loras: a.max_loras,
        max_lora_rank: a.max_lora_rank,
        max_cpu_loras: a.max_cpu_loras,
        speculative_config: a.speculative_config.clone(),
        model_runner: a.vllm_model_runner.clone(),
        extensible_kv_cache: if a.enable_extensible_kv_cache {
            Some(true)
        } else if a.no_enable_extensible_kv_cache {
            Some(false)
        } else {
            None
        },
        mamba_cache_dtype: a.mamba_cache_dtype.clone(),
        mamba_ssm_cache_dtype: a.mamba_ssm_cache_dtype.clone(),
        mamba_cache_mode: a.mamba_cache_mode.clone(),
        skip_mm_profiling: a.skip_mm_profiling,
        enable_prefix_caching: if a.enable_prefix_caching {
            Some(true)
        } else if a.no_enable_prefix_caching {
            Some(false)
        } else {
            None
        },
    }
}

/// SGLang's flags, carried as given (engine/sglang.rs parses them).
pub fn sglang_flags(a: &EstimateArgs) -> SglangFlags {
    SglangFlags {
        sglang_version: a.sglang_version.clone(),
        mem_fraction_static: a.mem_fraction_static,
        chunked_prefill_size: a.chunked_prefill_size,
        cuda_graph_max_bs: a.cuda_graph_max_bs,
        dtype: a.dtype.clone(),
        page_size: a.page_size,
        max_total_tokens: a.max_total_tokens,
        speculative: a.speculative_algorithm.is_some(),
        max_mamba_cache_size: a.max_mamba_cache_size,
        mamba_full_memory_ratio: a.mamba_full_memory_ratio,
        mamba_ssm_dtype: a.mamba_ssm_dtype.clone(),
        gpu_memory_in_use: a.gpu_memory_in_use.clone(),
    }
}

/// llama.cpp's (and ollama's) flags, carried as given (engine/llamacpp/flags.rs parses them).
pub fn llamacpp_flags(a: &EstimateArgs) -> LlamaCppFlags {
    LlamaCppFlags {
        n_gpu_layers: a.n_gpu_layers,
        parallel: a.parallel,
        cache_type_k: a.cache_type_k.clone(),
        cache_type_v: a.cache_type_v.clone(),
        flash_attn: a.flash_attn.clone(),
        ubatch_size: a.ubatch_size,
        batch_size: a.batch_size,
        kv_unified: a.kv_unified,
        swa_full: a.swa_full,
        no_kv_offload: a.no_kv_offload,
        gpu: a.gpu.clone(),
        gpus: a.gpus.or(a.tp),
        tensor_split: a.tensor_split.clone(),
        split_mode: a.split_mode.clone(),
        main_gpu: a.main_gpu,
        n_cpu_moe: a.n_cpu_moe,
        cpu_moe: a.cpu_moe,
        override_tensor: a.override_tensor.clone(),
        no_mmap: a.no_mmap,
        host_memory: a.host_memory.clone(),
        ollama_scheduler: a.ollama_scheduler.clone(),
        // The machine's memory by default (hardware.rs, as `vramplan fit` reads it).
        machine_memory: if a.host_memory.is_none() {
            crate::hardware::host_memory()
        } else {
            None
        },
    }
}

/// The estimate for a model already resolved (catalogue entry or pasted config.json), under
/// the engine the flags name. The web API can call this for pasted configs.
pub fn estimate_for_model(
    a: &EstimateArgs,
    model: &ModelDesc,
    gpu: &Gpu,
) -> Result<Estimate, Failure> {
    let req = request(a)?;
    let input = Failure::input;
    let e = match a.engine {
        EngineChoice::Generic => {
            let config = req.generic_config(model).map_err(input)?;
            estimate(model, gpu, config).map_err(input)
        }
        EngineChoice::Vllm => {
            let (config, v) = vllm_flags(a).resolve(model, &req).map_err(input)?;
            vllm::estimate(model, gpu, config, &v).map_err(input)
        }
        EngineChoice::Llamacpp => {
            let flags = llamacpp_flags(a);
            let (config, mix, l) = flags.resolve(model, &req).map_err(input)?;
            let gpus = flags.devices(gpu).map_err(input)?;
            llamacpp::estimate_on(model, &gpus, config, &mix, &l).map_err(input)
        }
        EngineChoice::Ollama => {
            let (config, mix, o) =
                ollama::resolve_flags(&llamacpp_flags(a), model, &req).map_err(input)?;
            ollama::estimate(model, gpu, config, &mix, &o).map_err(input)
        }
        EngineChoice::Sglang => {
            let (config, s) = sglang_flags(a).resolve(model, &req).map_err(input)?;
            sglang::estimate(model, gpu, config, &s).map_err(input)
        }
    }?;
    not_saturated(&[
        ("weights", e.weights_bytes),
        ("KV cache", e.kv_cache_bytes),
        ("activations", e.activation_bytes),
        ("total", e.total_bytes),
    ])?;
    Ok(e)
}

/// A byte figure that saturated at 2^64 − 1 is not an answer (it would print as
/// 18,446,744,073.71 GB): refused, naming the figure, before anything is printed. The inputs'
/// own limits (limits.rs) keep real models far from it; an absurd model within them can still
/// reach it.
fn not_saturated(figures: &[(&str, u64)]) -> Result<(), Failure> {
    match figures.iter().find(|(_, v)| *v == u64::MAX) {
        Some((name, _)) => Err(Failure::input(format!(
            "the {name} figure overflows 2^64 bytes (18.4 EB): the context, batch or model sizes are beyond any deployment"
        ))),
        None => Ok(()),
    }
}

/// `compute` for a model that is not in the catalogue: the JSON `--json` would print.
#[allow(dead_code)] // for the web API's pasted config.json (web/api.rs compute_for_model)
pub fn compute_with_model(
    a: &EstimateArgs,
    model: &ModelDesc,
) -> Result<serde_json::Value, Failure> {
    let gpu = estimate_gpu(a)?;
    let to_value = |v: Result<serde_json::Value, serde_json::Error>| {
        v.map_err(|e| Failure::runtime(e.to_string()))
    };
    if a.formula == Formula::Naive {
        return to_value(serde_json::to_value(naive(a, model, &gpu)?));
    }
    to_value(serde_json::to_value(estimate_for_model(a, model, &gpu)?))
}

fn exact(a: &EstimateArgs, model: &ModelDesc, gpu: &Gpu) -> Result<Estimate, Failure> {
    // A file's measured bytes are its own precision's: another --quant is computed instead.
    let requantized;
    let model = if a.quant.is_some() && model.measured.is_some() {
        requantized = ModelDesc {
            measured: None,
            ..model.clone()
        };
        &requantized
    } else {
        model
    };
    let mut e = estimate_for_model(a, model, gpu)?;
    if !e.fits {
        e.advice = advice(a, model, gpu, &e);
    }
    Ok(e)
}

/// What would make a configuration that does not fit work: the planner's advice, each change
/// checked by the same engine profile (with that engine's default settings).
fn advice(
    a: &EstimateArgs,
    model: &ModelDesc,
    gpu: &Gpu,
    e: &Estimate,
) -> Vec<vramplan_core::plan::Advice> {
    use crate::commands::plan::{evaluator, PlanEngine};
    let engine = match a.engine {
        EngineChoice::Generic => PlanEngine::Generic,
        EngineChoice::Vllm => PlanEngine::Vllm,
        EngineChoice::Sglang => PlanEngine::Sglang,
        EngineChoice::Llamacpp => PlanEngine::Llamacpp,
        EngineChoice::Ollama => return Vec::new(),
    };
    let (Ok(weights), Ok(kv), Ok(release)) = (
        WeightFormat::parse(&e.quant),
        KvDtype::parse(&e.kv_dtype),
        Release::parse(&a.vllm_version),
    ) else {
        return Vec::new();
    };
    let mut config = Config::new(weights, kv, e.context, e.batch);
    config.parallel = Parallelism {
        tp: e.tp,
        pp: e.pp,
        dp: 1,
    };
    config.utilization = e.utilization;
    let cat = catalogue();
    let gpus: Vec<(&Gpu, Option<f64>)> = cat
        .gpus
        .iter()
        .map(|g| (g, cat.price(&g.id).map(|p| p.usd_per_hour)))
        .collect();
    vramplan_core::plan::advise(
        &*evaluator(engine, release, true),
        model,
        gpu,
        config,
        &gpus,
    )
}

pub fn run(a: EstimateArgs) -> Result<(), Failure> {
    if a.json {
        let v = compute(&a)?;
        let s = serde_json::to_string_pretty(&v).map_err(|e| Failure::runtime(e.to_string()))?;
        crate::render::emit(&format!("{s}\n"));
        return Ok(());
    }
    let resolved = crate::model_source::resolve(&a.model, &a.hub)?;
    let model = resolved.desc;
    let gpu = estimate_gpu(&a)?;
    let mut text = match a.formula {
        Formula::Naive => {
            let mut n = naive(&a, &model, &gpu)?;
            n.notes
                .extend(resolved.warnings.iter().map(|w| format!("warning: {w}")));
            render_naive(&n)
        }
        Formula::Exact => {
            let mut e = exact(&a, &model, &gpu)?;
            e.warnings.extend(resolved.warnings.iter().cloned());
            render(&e, &gpu)
        }
    };
    if let Some(origin) = &resolved.origin {
        let weights = if model.measured.is_none() {
            "no weights in it: weights computed from the architecture"
        } else if a.quant.is_some() {
            "weights computed for --quant"
        } else {
            "weights are the file's own tensor bytes"
        };
        text.push_str(&format!("\n  Model {origin}; {weights}.\n"));
        for n in &resolved.notes {
            text.push_str(&format!("  note: {n}\n"));
        }
    }
    crate::render::emit(&text);
    Ok(())
}

pub fn print_json_or<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce() -> String,
) -> Result<(), Failure> {
    if json {
        let s = serde_json::to_string_pretty(value).map_err(|e| Failure::runtime(e.to_string()))?;
        crate::render::emit(&format!("{s}\n"));
    } else {
        crate::render::emit(&text());
    }
    Ok(())
}

fn render(e: &Estimate, gpu: &Gpu) -> String {
    match e.engine.as_str() {
        "vllm" => render_vllm(e, gpu),
        "llamacpp" | "ollama" => render_llamacpp(e, gpu),
        "sglang" => render_sglang(e, gpu),
        _ => render_generic(e, gpu),
    }
}

fn verdict_rows(r: &mut Rows, e: &Estimate) {
    let verdict = if e.fits {
        format!("FITS, {} to spare", gb_gib(e.margin_bytes.unsigned_abs()))
    } else if e.startup_error.is_some() {
        "DOES NOT START (see below)".to_string()
    } else {
        format!(
            "DOES NOT FIT, short by {}",
            gb_gib(e.margin_bytes.unsigned_abs())
        )
    };
    r.add("verdict", verdict, "");
}

fn footer(out: &mut String, e: &Estimate) {
    // The layers when they are not all alike, the towers, and what the description could not say.
    let l = &e.layers;
    if l.kinds.len() > 1 || l.state_bytes_per_sequence > 0 || !l.windows.is_empty() {
        out.push_str(&format!(
            "
  layers: {} ({}){}
",
            crate::render::layer_kinds(l),
            crate::render::layer_pattern(&l.pattern),
            if l.state_bytes_per_sequence > 0 {
                format!(
                    "; recurrent state {} per sequence, whatever the context",
                    gb_gib(l.state_bytes_per_sequence)
                )
            } else {
                String::new()
            }
        ));
    }
    if !e.towers.is_empty() {
        out.push_str(&format!(
            "  text model {} parameters; towers: {}\n",
            params_short(e.text_params),
            e.towers
                .iter()
                .map(|t| format!("{} {}", t.name, params_short(t.params)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if l.mtp_layers > 0 {
        out.push_str(&format!(
            "  {} multi-token-prediction layer(s), {} parameters, not loaded unless used for speculative decoding\n",
            l.mtp_layers,
            params_short(l.mtp_params)
        ));
    }
    if !e.warnings.is_empty() {
        out.push('\n');
        for w in &e.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
    }
    if let Some(err) = &e.startup_error {
        out.push_str(&format!(
            "\n  Start-up error ({}):\n    {}\n  Fix: {}\n",
            err.source, err.message, err.fix
        ));
    }
    if !e.advice.is_empty() {
        out.push_str("\n  What would make it fit (each checked with the same engine profile):\n");
        for a in &e.advice {
            out.push_str(&format!("    - {}: {}\n", a.change, a.detail));
        }
    }
    if e.naive.kv_bytes_per_token != e.kv_bytes_per_token {
        out.push_str(&format!(
            "\n  The seed articles' formula (2 × 2 × layers × hidden) gives {} per token, {:.1}× this figure: {}.\n",
            bytes_kib(e.naive.kv_bytes_per_token),
            e.naive.ratio,
            e.naive.reason
        ));
    }
}

fn setting<'a>(e: &'a Estimate, name: &str) -> &'a str {
    e.engine_settings
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.value.as_str())
        .unwrap_or("?")
}

fn render_generic(e: &Estimate, gpu: &Gpu) -> String {
    let mut out = format!(
        "{} on {} × {} ({}), engine: {}\n  weights {}, KV cache {}, {} × {} tokens{}\n\n",
        e.model,
        e.gpus,
        gpu.name,
        gib(gpu.memory_bytes),
        e.engine,
        e.quant,
        e.kv_dtype,
        count(e.batch, "sequence"),
        thousands(e.context),
        if e.gpus > 1 {
            format!("; TP {} × PP {} × DP {}; figures per GPU", e.tp, e.pp, e.dp)
        } else {
            String::new()
        },
    );
    let mut r = Rows::default();
    let active = if e.active_params != e.params {
        format!("; {} active per token", params_short(e.active_params))
    } else {
        String::new()
    };
    r.add(
        "parameters",
        params_short(e.params),
        format!("{}{active}", thousands(e.params)),
    );
    r.add("weights", gb_gib(e.weights_bytes), "");
    r.add(
        "KV cache",
        gb_gib(e.kv_cache_bytes),
        format!(
            "{} per token (whole model)",
            bytes_kib(e.kv_bytes_per_token)
        ),
    );
    r.add(
        "activations",
        gb_gib(e.activation_bytes),
        "peak of one prefill chunk, temporary buffers",
    );
    r.add(
        "overhead",
        gb_gib(e.overhead_bytes),
        "CUDA context, runtime buffers",
    );
    r.rule();
    r.add("total", gb_gib(e.total_bytes), "");
    r.add(
        "usable",
        gb_gib(e.usable_bytes),
        format!("{} × {}", gib(e.gpu_memory_bytes), e.utilization),
    );
    verdict_rows(&mut r, e);
    r.add(
        "max concurrency",
        thousands(e.max_concurrency),
        format!("sequences of {} tokens", thousands(e.context)),
    );
    let limit = if e.max_context_limit == "model" {
        " (the model's own limit)"
    } else {
        ""
    };
    r.add(
        "max context",
        thousands(e.max_context),
        format!("tokens at {}{limit}", count(e.batch, "sequence")),
    );
    r.add(
        "fewest GPUs",
        e.min_gpus
            .map(|n| n.to_string())
            .unwrap_or_else(|| "over 64".into()),
        format!("× {} with tensor parallelism", e.gpu),
    );
    out.push_str(&r.render());
    footer(&mut out, e);
    out
}

fn render_vllm(e: &Estimate, gpu: &Gpu) -> String {
    let mut out = format!(
        "{} on {} × {} ({} as CUDA reports it), engine: vLLM {}\n  weights {}, KV cache {}, --max-model-len {}, --gpu-memory-utilization {}{}\n\n",
        e.model,
        e.gpus,
        gpu.name,
        gib(gpu.memory_bytes),
        setting(e, "vllm_version"),
        e.quant,
        e.kv_dtype,
        e.context,
        e.utilization,
        if e.gpus > 1 { format!("; TP {} × PP {} × DP {}; figures per GPU (the worker with the fewest blocks)", e.tp, e.pp, e.dp) } else { String::new() },
    );
    let mut r = Rows::default();
    let extensible = setting(e, "kv_cache_sizing").starts_with("extensible");
    r.add(
        "budget",
        gb_gib(e.usable_bytes),
        if extensible {
            format!(
                "min(total × {}, memory free at start): the extensible KV cache's cap",
                e.utilization
            )
        } else {
            format!(
                "total × {} (the current vLLM instance can use)",
                e.utilization
            )
        },
    );
    r.add("weights", gb_gib(e.weights_bytes), "\"Model loading took\"");
    r.add(
        "activation peak",
        gb_gib(e.activation_bytes),
        format!(
            "profile run: {} tokens, {} requests (\"torch peak memory increase\")",
            setting(e, "max_num_batched_tokens"),
            setting(e, "max_num_seqs")
        ),
    );
    r.add(
        "non-torch",
        gb_gib(e.non_torch_bytes.unwrap_or(0)),
        "\"non-torch forward increase memory\"",
    );
    if e.cuda_graph_bytes.unwrap_or(0) > 0 {
        r.add(
            "CUDA graphs",
            gb_gib(e.cuda_graph_bytes.unwrap_or(0)),
            if extensible {
                "estimate of what warmup captures before the cache is sized"
            } else {
                "estimate, charged from vLLM 0.20"
            },
        );
    }
    let margin = e
        .overhead_bytes
        .saturating_sub(e.non_torch_bytes.unwrap_or(0) + e.cuda_graph_bytes.unwrap_or(0));
    if margin > 0 {
        r.add(
            "kept free",
            gb_gib(margin),
            "max(1 GiB, 0.75 × activation peak), besides the peak itself",
        );
    }
    let pool = e.kv_pool_bytes.unwrap_or(0);
    r.add(
        "KV cache pool",
        gb_gib(pool),
        "\"Available KV cache memory\", in whole blocks",
    );
    r.rule();
    r.add(
        "KV blocks",
        thousands(e.kv_cache_blocks.unwrap_or(0)),
        format!(
            "of {} tokens; {} per token (whole model)",
            e.block_size.unwrap_or(16),
            bytes_kib(e.kv_bytes_per_token)
        ),
    );
    // Hybrid models: the Mamba / linear-attention state in the same pages (engine/vllm/hybrid.rs).
    if let Some(state) = e
        .engine_settings
        .iter()
        .find(|s| s.name == "mamba_state_page")
    {
        r.add(
            "state pages",
            format!("mode {}", setting(e, "mamba_cache_mode")),
            state.value.clone(),
        );
    }
    r.add(
        "GPU KV cache size",
        format!("{} tokens", thousands(e.kv_cache_tokens.unwrap_or(0))),
        "as vLLM logs it",
    );
    r.add(
        "max concurrency",
        format!("{:.2}x", e.engine_max_concurrency.unwrap_or(0.0)),
        format!(
            "\"Maximum concurrency for {} tokens per request\"",
            thousands(e.context)
        ),
    );
    r.add(
        "served at once",
        thousands(e.max_concurrency),
        format!(
            "requests of {} tokens (whole requests, at most --max-num-seqs {}{})",
            thousands(e.context),
            setting(e, "max_num_seqs"),
            if e.dp > 1 { ", × DP" } else { "" }
        ),
    );
    r.add(
        "KV for the batch",
        gb_gib(e.kv_cache_bytes),
        format!(
            "{} of {} tokens",
            count(e.batch, "request"),
            thousands(e.context)
        ),
    );
    verdict_rows(&mut r, e);
    let limit = if e.max_context_limit == "model" {
        " (the model's own limit)"
    } else {
        ""
    };
    r.add(
        "max model len",
        thousands(e.max_context),
        format!("tokens at {}{limit}", count(e.batch, "request")),
    );
    r.add(
        "fewest GPUs",
        e.min_gpus
            .map(|n| n.to_string())
            .unwrap_or_else(|| "none up to 64 at these settings".into()),
        format!("× {} with --tensor-parallel-size", e.gpu),
    );
    out.push_str(&r.render());
    if !e.stages.is_empty() {
        out.push_str("\n  Pipeline stages (one GPU each):\n");
        for s in &e.stages {
            out.push_str(&format!(
                "    stage {}: {} layers, weights {}, activations {}, KV budget {}\n",
                s.stage,
                s.layers,
                gib(s.weights_bytes),
                gib(s.activation_bytes),
                if s.kv_available_bytes < 0 {
                    format!("−{}", gib(s.kv_available_bytes.unsigned_abs()))
                } else {
                    gib(s.kv_available_bytes as u64)
                }
            ));
        }
    }
    footer(&mut out, e);
    out
}

fn render_llamacpp(e: &Estimate, gpu: &Gpu) -> String {
    let layers = e.model_layers.unwrap_or(0);
    let gpus: Vec<String> = e
        .devices
        .iter()
        .filter(|d| d.kind == "gpu")
        .map(|d| format!("{} ({})", d.name, gib(d.memory_bytes)))
        .collect();
    let on = if gpus.len() > 1 {
        format!("{} GPUs: {}", gpus.len(), gpus.join(" + "))
    } else {
        format!("{} ({})", gpu.name, gib(gpu.memory_bytes))
    };
    // ollama's num_ctx is per request; the runner's cache holds num_ctx × parallel cells.
    let ctx = if e.engine == "ollama" {
        format!(
            "num_ctx {} × {} (n_ctx {})",
            thousands(e.context),
            count(e.batch, "parallel request"),
            thousands(e.context.saturating_mul(e.batch))
        )
    } else {
        format!(
            "n_ctx {} over {}",
            thousands(e.context),
            count(e.batch, "sequence")
        )
    };
    let mut out = format!(
        "{} on {}, engine: {}\n  weights {}, KV cache {}, {ctx}, offloaded {}/{} layers\n\n",
        e.model,
        on,
        e.engine,
        e.quant,
        e.kv_dtype,
        e.gpu_layers.unwrap_or(0),
        layers
    );
    let mut r = Rows::default();
    r.add(
        "GPU model buffer",
        gb_gib(e.gpu_model_buffer_bytes.unwrap_or(0)),
        "layers offloaded (+ output layer)",
    );
    r.add(
        "GPU KV buffer",
        gb_gib(e.kv_buffer_bytes.unwrap_or(0)),
        "the offloaded layers' cache",
    );
    r.add(
        "GPU compute buffer",
        gb_gib(e.compute_buffer_bytes.unwrap_or(0)),
        if e.engine == "ollama" {
            "llama.cpp's, for the layers ollama offloads"
        } else {
            "estimate of the reserve graph's peak"
        },
    );
    r.add(
        "reserve",
        gb_gib(e.overhead_bytes),
        "CUDA context (ollama MinimumMemory)",
    );
    r.rule();
    r.add(
        "GPU total",
        gb_gib(e.total_bytes),
        format!("of {}", gib(e.gpu_memory_bytes)),
    );
    r.add(
        "host model buffer",
        gb_gib(e.cpu_model_buffer_bytes.unwrap_or(0)),
        "token_embd (+ layers left on the CPU)",
    );
    r.add(
        "host KV buffer",
        gb_gib(e.cpu_kv_buffer_bytes.unwrap_or(0)),
        "",
    );
    let simulated = e
        .engine_settings
        .iter()
        .any(|s| s.name == "compute_buffer" && s.value == "simulated");
    r.add(
        "host compute buffer",
        gb_gib(e.cpu_compute_buffer_bytes.unwrap_or(0)),
        if simulated {
            "reserve graph simulated through ggml-alloc"
        } else {
            ""
        },
    );
    r.add(
        "output buffer",
        gb_gib(e.output_buffer_bytes.unwrap_or(0)),
        "logits, host memory",
    );
    if let Some(host) = e.devices.iter().find(|d| d.kind == "host") {
        r.add(
            "host total",
            gb_gib(host.total_bytes),
            if host.memory_bytes > 0 {
                format!(
                    "of {} host memory{}",
                    gib(host.memory_bytes),
                    if host.fits { "" } else { ": DOES NOT FIT" }
                )
            } else {
                "host memory not checked (--host-memory)".to_string()
            },
        );
    }
    let gpus: Vec<_> = e.devices.iter().filter(|d| d.kind == "gpu").collect();
    if gpus.len() > 1 {
        for d in gpus {
            r.add(
                &format!("{} ({} layers)", d.device, d.layers),
                gb_gib(d.total_bytes),
                format!(
                    "{}: model {}, KV {}, compute {}, of {}{}",
                    d.name,
                    gib(d.model_bytes),
                    gib(d.kv_bytes),
                    gib(d.compute_bytes),
                    gib(d.memory_bytes),
                    if d.fits { "" } else { ": DOES NOT FIT" }
                ),
            );
        }
    }
    verdict_rows(&mut r, e);
    r.add(
        "largest -ngl that fits",
        format!("{}/{}", e.max_gpu_layers.unwrap_or(0), layers),
        if e.engine == "ollama" {
            "ollama's choice"
        } else {
            ""
        },
    );
    if let Some(n) = e.engine_settings.iter().find(|s| s.name == "n_cpu_moe") {
        r.add(
            "--n-cpu-moe",
            format!("{}/{}", n.value, layers.saturating_sub(1)),
            "layers whose experts stay in host memory",
        );
    }
    let limit = if e.max_context_limit == "model" {
        " (the model's own limit)"
    } else {
        ""
    };
    r.add(
        "max -c",
        thousands(e.max_context),
        format!("at this -ngl{limit}"),
    );
    out.push_str(&r.render());
    footer(&mut out, e);
    out
}

fn render_sglang(e: &Estimate, gpu: &Gpu) -> String {
    let mut out = format!(
        "{} on {} × {} ({}), engine: SGLang, --mem-fraction-static {}\n  weights {}, KV cache {}, {} × {} tokens\n\n",
        e.model,
        e.gpus,
        gpu.name,
        gib(gpu.memory_bytes),
        e.utilization,
        e.quant,
        e.kv_dtype,
        count(e.batch, "request"),
        thousands(e.context)
    );
    let mut r = Rows::default();
    r.add(
        "static budget",
        gb_gib(e.usable_bytes),
        format!("total × {}", e.utilization),
    );
    r.add("weights", gb_gib(e.weights_bytes), "");
    r.add(
        "before load",
        gb_gib(e.overhead_bytes),
        "CUDA context (+ NCCL with TP)",
    );
    r.add(
        "token pool",
        format!("{} tokens", thousands(e.kv_cache_tokens.unwrap_or(0))),
        gb_gib(e.kv_pool_bytes.unwrap_or(0)),
    );
    r.add(
        "max concurrency",
        thousands(e.max_concurrency),
        format!("requests of {} tokens", thousands(e.context)),
    );
    // A hybrid model can have the memory and still not run the batch: SGLang caps its running
    // requests by the state slots (engine/sglang.rs hybrid_max_running_requests).
    let running_cap = e
        .engine_settings
        .iter()
        .find(|s| s.name == "max_running_requests")
        .and_then(|s| s.value.parse::<u64>().ok());
    match running_cap {
        Some(cap)
            if !e.fits && e.startup_error.is_none() && e.margin_bytes >= 0 && cap < e.batch =>
        {
            r.add(
                "verdict",
                format!(
                    "DOES NOT FIT: SGLang runs at most {} at once (max_running_requests, capped by the state slots)",
                    count(cap, "request")
                ),
                "",
            );
        }
        _ => verdict_rows(&mut r, e),
    }
    out.push_str(&r.render());
    footer(&mut out, e);
    out
}

fn render_naive(n: &NaiveEstimate) -> String {
    let mut out = format!(
        "{} with the seed articles' formula (--formula naive)\n\n",
        n.model
    );
    let mut r = Rows::default();
    r.add(
        "parameters",
        params_short(n.params),
        "the size in the model's name",
    );
    r.add(
        "weights",
        gb_gib(n.weights_bytes),
        "parameters × 2 bytes (fp16)",
    );
    r.add(
        "KV per token",
        bytes_kib(n.kv_bytes_per_token),
        "2 × 2 bytes × layers × hidden size",
    );
    r.add(
        "KV cache",
        gb_gib(n.kv_cache_bytes),
        "× sequence length × batch",
    );
    r.add("total", gb_gib(n.total_bytes), "weights + KV cache");
    r.add("GPU memory", gb_gib(n.gpu_memory_bytes), "");
    r.add("free after weights", gb_gib(n.free_bytes), "");
    r.add(
        "max concurrency",
        thousands(n.max_concurrency_article),
        "as the article computes it",
    );
    out.push_str(&r.render());
    for note in &n.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn llama_cpp_short_flags_become_long_ones() {
        let out = expand_engine_short_flags(os(&[
            "vramplan", "estimate", "-ngl", "20", "-np", "4", "-ctk", "q8_0", "-fa=on", "-ub",
            "256", "-c", "8192",
        ]));
        assert_eq!(
            out,
            os(&[
                "vramplan",
                "estimate",
                "--n-gpu-layers",
                "20",
                "--parallel",
                "4",
                "--cache-type-k",
                "q8_0",
                "--flash-attn=on",
                "--ubatch-size",
                "256",
                "-c",
                "8192"
            ])
        );
        // Values that merely start like a flag are left alone.
        assert_eq!(expand_engine_short_flags(os(&["-ngl2"])), os(&["-ngl2"]));
    }

    #[test]
    fn vllm_quantization_names_map_to_formats() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            args: EstimateArgs,
        }
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let parse = |q: &str| {
            let a = Cmd::parse_from(["x", "--quantization", q]).args;
            vramplan_core::engine::weight_format(a.quant.as_deref(), m)
                .unwrap_or_else(|f| panic!("{f}"))
        };
        assert_eq!(parse("awq_marlin"), WeightFormat::Awq { group: 128 });
        assert_eq!(parse("bitsandbytes"), WeightFormat::BnbNf4);
        assert_eq!(parse("q4_k_m"), WeightFormat::parse("q4_k").unwrap());
        assert_eq!(parse("compressed-tensors"), m.native_format());
        // vLLM and llama.cpp flag names parse into the same fields.
        let a = Cmd::parse_from([
            "x",
            "--tensor-parallel-size",
            "2",
            "--max-model-len",
            "4096",
            "--kv-cache-dtype",
            "fp8",
            "--ngl",
            "7",
            "--np",
            "3",
        ])
        .args;
        assert_eq!(
            (
                a.tp,
                a.context,
                a.kv_dtype.as_str(),
                a.n_gpu_layers,
                a.parallel
            ),
            (Some(2), 4096, "fp8", Some(7), Some(3))
        );
    }
}
