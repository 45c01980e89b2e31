//! ollama, in its two ways of placing a model:
//!
//! - **llama-server** (ollama today, since the CGO runners were removed, ollama/ollama PR
//!   #16031, merged 2026-05): ollama starts upstream llama-server with `-c num_ctx × parallel
//!   -np parallel [--cache-type-k/-v OLLAMA_KV_CACHE_TYPE] [-b num_batch] [-ngl num_gpu]` and
//!   nothing else (ollama/ollama llm/llama_server.go `startLlamaServer` at 869e7249): no `-ub`
//!   (llama-server's 512, clamped to `-b`), no `-fa` (llama-server's `auto`), no `--fit-target`
//!   (its 1 GiB per device), and without `num_gpu` no `-ngl`, so llama-server's `--fit` places
//!   the layers and experts. `--fit` never shrinks a context the caller gave (common/fit.cpp
//!   at 0c1e57098: "context size set by user -> no change"), and ollama always gives `-c`:
//!   the context is num_ctx × parallel whatever the card. The buffers are the llama.cpp
//!   profile's for those flags. `OLLAMA_FLASH_ATTENTION` and `OLLAMA_GPU_OVERHEAD` are not
//!   passed to llama-server at that commit.
//! - **estimate** (ollama up to its llama-server switch): ollama's scheduler decides how many
//!   layers to offload before it starts its llama.cpp runner (llm/memory.go
//!   `estimateGPULayers` and fs/ggml/ggml.go `GraphSize`, read at commit 4372d0bf;
//!   docs/reference/gguf_and_quant.md §2.3), with its own formulas: this reproduces the
//!   estimate (what `msg=offload` logs), and the buffers the runner then allocates follow the
//!   llama.cpp profile with the chosen layer count.

use crate::engine::llamacpp::{self, GgufWeights, LlamaCppArgs, TypeMix};
use crate::estimate::{Assumption, Config, Estimate, Setting};
use crate::gpu::Gpu;
use crate::model::ModelDesc;
use crate::precision::KvDtype;
use crate::units::MIB;

const MEMORY_GO: &str = "ollama llm/memory.go estimateGPULayers";
const LLAMA_SERVER_GO: &str = "ollama llm/llama_server.go startLlamaServer @869e7249";
const GGML_GO: &str = "ollama fs/ggml/ggml.go GraphSize";

/// ml/device.go `MinimumMemory` for CUDA and ROCm (earlier discover/gpu.go
/// cudaMinimumMemory): 457 MiB per GPU.
pub const MINIMUM_MEMORY_BYTES: u64 = 457 * MIB;

/// ollama's settings that size memory.
#[derive(Debug, Clone, PartialEq)]
pub struct OllamaArgs {
    /// `num_ctx` per request.
    pub num_ctx: u64,
    /// `OLLAMA_NUM_PARALLEL`: the runner gets num_ctx × parallel cells.
    pub num_parallel: u64,
    /// `num_batch` (default 512).
    pub num_batch: u64,
    /// `OLLAMA_KV_CACHE_TYPE` (honoured only with flash attention).
    pub kv_type: KvDtype,
    /// `OLLAMA_FLASH_ATTENTION`.
    pub flash_attention: bool,
    /// `OLLAMA_GPU_OVERHEAD` bytes.
    pub gpu_overhead: u64,
    /// `num_gpu` forced layer count (None: ollama's estimate).
    pub num_gpu: Option<u64>,
    /// Which ollama places the layers.
    pub scheduler: Scheduler,
    /// Host memory to check llama-server's host buffers against (None: not checked).
    pub host_memory: Option<u64>,
}

/// How ollama decides where the layers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    /// ollama today: upstream llama-server with its `--fit` (llm/llama_server.go).
    LlamaServer,
    /// ollama before its llama-server switch: its own estimate (llm/memory.go).
    Estimate,
}

impl Scheduler {
    pub fn parse(text: &str) -> Result<Scheduler, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "llama-server" | "llamaserver" | "fit" | "auto" => Ok(Scheduler::LlamaServer),
            "estimate" | "legacy" => Ok(Scheduler::Estimate),
            _ => Err(format!(
                "ollama scheduler '{text}': use llama-server (ollama today: llama-server's --fit places the layers) or estimate (ollama before its llama-server switch: llm/memory.go)"
            )),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Scheduler::LlamaServer => "llama-server",
            Scheduler::Estimate => "estimate",
        }
    }
}

impl Default for OllamaArgs {
    fn default() -> Self {
        OllamaArgs {
            num_ctx: 4096,
            num_parallel: 1,
            num_batch: 512,
            kv_type: KvDtype::F16,
            flash_attention: false,
            gpu_overhead: 0,
            num_gpu: None,
            scheduler: Scheduler::LlamaServer,
            host_memory: None,
        }
    }
}

/// The llama-server flags ollama starts (llm/llama_server.go `startLlamaServer` at 869e7249):
/// `-c num_ctx × parallel`, `-np parallel`, `--cache-type-k` and `--cache-type-v` both
/// OLLAMA_KV_CACHE_TYPE when set, `-b num_batch` (`-ub` stays llama-server's 512, clamped to
/// `-b` by llama-context.cpp), `-ngl num_gpu` only when set (else `--fit` places the layers),
/// flash attention llama-server's `auto`.
pub fn llama_server_args(a: &OllamaArgs) -> LlamaCppArgs {
    LlamaCppArgs {
        n_ctx: a.num_ctx.saturating_mul(a.num_parallel.max(1)),
        n_seq: a.num_parallel.max(1),
        n_batch: a.num_batch,
        type_k: a.kv_type,
        type_v: a.kv_type,
        flash_attn: llamacpp::FlashAttn::Auto,
        n_gpu_layers: a.num_gpu,
        host_memory: a.host_memory,
        ..LlamaCppArgs::default()
    }
}

/// ollama today: llama-server with the flags of [`llama_server_args`], on `gpus`.
fn estimate_llama_server(
    model: &ModelDesc,
    gpus: &[Gpu],
    config: Config,
    mix: &TypeMix,
    a: &OllamaArgs,
) -> Result<Estimate, String> {
    let runner = llama_server_args(a);
    let mut e = llamacpp::estimate_on(model, gpus, config, mix, &runner)?;
    e.engine = "ollama".into();
    e.context = a.num_ctx;
    e.batch = a.num_parallel;
    e.max_concurrency = e.max_concurrency.min(a.num_parallel);
    e.engine_settings.splice(
        0..0,
        [
            Setting {
                name: "scheduler",
                value: Scheduler::LlamaServer.name().into(),
                origin: format!("ollama starts llama-server; its --fit places the layers ({LLAMA_SERVER_GO})"),
            },
            Setting {
                name: "num_ctx",
                value: a.num_ctx.to_string(),
                origin: format!("--context; llama-server -c {} (num_ctx × OLLAMA_NUM_PARALLEL, never shrunk by --fit: common/fit.cpp)", runner.n_ctx),
            },
            Setting {
                name: "OLLAMA_NUM_PARALLEL",
                value: a.num_parallel.to_string(),
                origin: "-np".into(),
            },
            Setting {
                name: "num_batch",
                value: a.num_batch.to_string(),
                origin: "llama-server -b (its -ub stays 512)".into(),
            },
            Setting {
                name: "OLLAMA_KV_CACHE_TYPE",
                value: a.kv_type.name(),
                origin: "llama-server --cache-type-k and --cache-type-v".into(),
            },
        ],
    );
    if a.flash_attention {
        e.warnings.push(format!("OLLAMA_FLASH_ATTENTION is not passed to llama-server ({LLAMA_SERVER_GO}): flash attention is llama-server's auto"));
    }
    if a.gpu_overhead > 0 {
        e.warnings.push(format!("OLLAMA_GPU_OVERHEAD is not passed to llama-server ({LLAMA_SERVER_GO}): --fit keeps its own 1 GiB free per GPU"));
    }
    e.assumptions.push(Assumption {
        figure: "ollama",
        formula: "llama-server -c num_ctx×parallel -np parallel -ctk/-ctv OLLAMA_KV_CACHE_TYPE -b num_batch, -ngl only with num_gpu (else --fit), -fa auto".into(),
        source: LLAMA_SERVER_GO,
    });
    Ok(e)
}

/// ollama's settings from the flags vramplan carries for llama.cpp (ollama's own names in
/// brackets): `-c` (num_ctx), `-np` (OLLAMA_NUM_PARALLEL), `-ub` (num_batch, default 512),
/// `-ctk` (OLLAMA_KV_CACHE_TYPE), `-fa` (OLLAMA_FLASH_ATTENTION: off unless set, so "auto"
/// keeps it off), `-ngl` (num_gpu), `--ollama-scheduler` (llama-server or estimate). Weights default to the Q4_K_M mix: ollama's library models
/// are mostly Q4_K_M files.
pub fn resolve_flags(
    f: &llamacpp::LlamaCppFlags,
    model: &ModelDesc,
    req: &crate::engine::Request,
) -> Result<(Config, TypeMix, OllamaArgs), String> {
    let (weights, mix) = llamacpp::LlamaCppFlags::weights_or(req, model, Some("q4_k_m"))?;
    let o = OllamaArgs {
        num_ctx: req.context,
        num_parallel: f.parallel.unwrap_or(req.batch),
        num_batch: f.ubatch_size.unwrap_or(512),
        kv_type: llamacpp::LlamaCppFlags::cache_type(&f.cache_type_k, req)?,
        flash_attention: llamacpp::FlashAttn::parse(&f.flash_attn)? == llamacpp::FlashAttn::On,
        gpu_overhead: 0,
        num_gpu: f.n_gpu_layers,
        scheduler: Scheduler::parse(&f.ollama_scheduler)?,
        host_memory: f.host_memory_bytes()?,
    };
    let config = req.config(
        weights,
        o.kv_type,
        crate::engine::generic::DEFAULT_UTILIZATION,
    );
    Ok((config, mix, o))
}

/// Bytes per KV element as ollama counts them (ggml.go `kvCacheBytesPerElement`): f16 2,
/// q8_0 1, q4_0 0.5 — only with flash attention, else f16. Returned as (numerator, 2).
fn kv_halves(a: &OllamaArgs) -> u64 {
    if !a.flash_attention {
        return 4;
    }
    match a.kv_type {
        KvDtype::Ggml(g) if g.name == "Q8_0" => 2,
        KvDtype::Ggml(g) if g.name == "Q4_0" => 1,
        KvDtype::F32 => 8,
        _ => 4,
    }
}

/// KV bytes of each layer (ggml.go `GraphSize`): context = num_ctx × parallel; a layer caches
/// context × (key_length + value_length) × head_count_kv × bytes; Gemma 3 local layers only
/// parallel × sliding_window + batch cells; gpt-oss local layers parallel × 4096 + batch cells
/// whatever the window (GraphSize's `case "gptoss"`: `kv[i] *= numParallel*4096 + batch` on the
/// even layers, which mirrors the runner's cache: model/models/gptoss/model.go keeps its local
/// layers in `kvcache.NewSWAMemCache(sliding_window, 4096, …)`, and kvcache/causal.go `Init`
/// sizes such a cache maxSequences × memorySize + maxBatch cells). gpt-oss-20b at num_ctx 8192:
/// 12 × 4608 × 2048 B + 12 × 8192 × 2048 B = 300 MiB, the figure ollama logs for it.
/// The cells per sequence ollama keeps for gpt-oss's sliding-window layers (the `4096` of
/// model/models/gptoss/model.go `NewSWAMemCache(…, 4096, …)` and of ggml.go `GraphSize`).
const GPT_OSS_SWA_MEMORY_CELLS: u64 = 4096;

pub fn kv_per_layer(model: &ModelDesc, args: &OllamaArgs) -> Vec<u64> {
    cache_per_layer(model, args, 1)
}

/// gpt-oss's cache padding in ollama's own engine: model/models/gptoss/model.go
/// `m.Cache.SetConfig(ml.CacheConfig{CachePadding: 32, PermutedV: true})`; kvcache/causal.go
/// `Init` rounds each cache's cells up to it.
const GPT_OSS_CACHE_PADDING: u64 = 32;

/// Whether ollama runs `model` on its own Go engine (model/models/), whose KV cache is sized by
/// kvcache/causal.go rather than by the llama.cpp runner: the architectures modelled here —
/// gpt-oss, which ollama only runs on its engine.
fn runs_on_ollama_engine(model: &ModelDesc) -> bool {
    model.model_type == "gpt_oss"
}

/// The KV bytes each layer's cache allocates in ollama's engine (kvcache/causal.go `Init`:
/// cells = maxSequences × capacity for a full-attention cache, maxSequences × memorySize +
/// maxBatch for a sliding-window one, rounded up to the cache padding), or `None` when the
/// llama.cpp runner holds the cache. gpt-oss-20b at num_ctx 8192, one sequence, batch 512:
/// 12 layers × 4,608 cells + 12 × 8,192 cells (both multiples of 32) × 2,048 B = 300 MiB.
pub fn engine_kv_per_layer(model: &ModelDesc, args: &OllamaArgs) -> Option<Vec<u64>> {
    runs_on_ollama_engine(model).then(|| cache_per_layer(model, args, GPT_OSS_CACHE_PADDING))
}

/// Per-layer KV bytes with each layer's cells rounded up to `pad`.
fn cache_per_layer(model: &ModelDesc, args: &OllamaArgs, pad: u64) -> Vec<u64> {
    let context = args.num_ctx.saturating_mul(args.num_parallel.max(1));
    let batch = args.num_batch.min(args.num_ctx).max(1);
    let t = model.model_type.as_str();
    let windowed = t.starts_with("gemma3");
    let gpt_oss = t == "gpt_oss";
    model
        .layers()
        .map(|l| {
            // A layer without a cache of its own: its recurrent state (llama.cpp's), or nothing.
            let Some(att) = l.attention.as_ref().filter(|a| a.caches()) else {
                return super::llamacpp::recurrent_state_bytes(l);
            };
            let row = att.k_width() + att.v_width();
            let cells = match (att.span.limit(), windowed) {
                (Some(_), _) if gpt_oss => args
                    .num_parallel
                    .max(1)
                    .saturating_mul(GPT_OSS_SWA_MEMORY_CELLS)
                    .saturating_add(batch),
                (Some(w), true) => context.min(
                    args.num_parallel
                        .max(1)
                        .saturating_mul(w)
                        .saturating_add(batch),
                ),
                _ => context,
            };
            let cells = cells.div_ceil(pad.max(1)).saturating_mul(pad.max(1));
            cells.saturating_mul(row).saturating_mul(kv_halves(args)) / 2
        })
        .collect()
}

/// Graph sizes (ggml.go `GraphSize`, the `llama` formula, used here for every architecture):
///   full    = max(4·batch·(1 + 4·embd + context·(1 + heads)), 4·batch·(embd + vocab))
///   partial = 4·batch·embd + max(4·batch·(1 + embd + max(context, embd)) + embd²·9/16
///             + 4·context·(batch·heads + embd/heads·heads_kv), 4·batch·(embd + vocab) + embd·vocab·105/128)
/// ollama has hand-fitted variants for mixtral, gemma, command-r, qwen2, phi2, stablelm,
/// deepseek2, chatglm and gpt-oss that are not reproduced.
pub fn graph_sizes(model: &ModelDesc, a: &OllamaArgs) -> (u64, u64) {
    let context = a.num_ctx.saturating_mul(a.num_parallel.max(1));
    let batch = a.num_batch.min(a.num_ctx).max(1);
    let (embd, vocab, heads, kv) = (
        model.hidden_size,
        model.vocab_size,
        model.num_attention_heads,
        model.num_kv_heads,
    );
    let embedding_heads = embd / heads.max(1);
    let full = (4 * batch * (1 + 4 * embd + context * (1 + heads))).max(4 * batch * (embd + vocab));
    let partial = 4 * batch * embd
        + (4 * batch * (1 + embd + context.max(embd))
            + embd * embd * 9 / 16
            + 4 * context * (batch * heads + embedding_heads * kv))
            .max(4 * batch * (embd + vocab) + embd * vocab * 105 / 128);
    (full, partial)
}

/// ollama's offload decision for one GPU with `free` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offload {
    /// Layers offloaded, the output layer counted last (layers.offload).
    pub layers: u64,
    pub weights_on_gpu: u64,
    pub kv_on_gpu: u64,
    /// Graph charged to the GPU: full when every layer is offloaded, else partial.
    pub graph: u64,
    /// memory.required.partial: what ollama expects the GPU to hold (MinimumMemory and one
    /// spare layer included, as memory.go's first allocation does).
    pub gpu_bytes: u64,
}

/// llm/memory.go `estimateGPULayers` for one GPU: admission (free > overhead + graph +
/// MinimumMemory + 2 × layer size), then layers from the last down while free > overhead +
/// used + graph + layer, then the output layer.
pub fn offload(model: &ModelDesc, weights: &GgufWeights, a: &OllamaArgs, free: u64) -> Offload {
    let kv = kv_per_layer(model, a);
    let (full, partial) = graph_sizes(model, a);
    let graph_max = full.max(partial);
    let layer_size =
        weights.layers.first().copied().unwrap_or(0) + kv.first().copied().unwrap_or(0);
    let none = Offload {
        layers: 0,
        weights_on_gpu: 0,
        kv_on_gpu: 0,
        graph: 0,
        gpu_bytes: 0,
    };
    if free < a.gpu_overhead + graph_max + MINIMUM_MEMORY_BYTES + 2 * layer_size {
        return none;
    }
    let mut used = MINIMUM_MEMORY_BYTES + layer_size;
    let mut layers = 0u64;
    let (mut w_gpu, mut kv_gpu) = (0u64, 0u64);
    let limit = a.num_gpu.unwrap_or(u64::MAX);
    for i in (0..model.num_layers as usize).rev() {
        if layers >= limit {
            break;
        }
        let size = weights.layers[i] + kv[i];
        if free > a.gpu_overhead + used + graph_max + size {
            used += size;
            layers += 1;
            w_gpu += weights.layers[i];
            kv_gpu += kv[i];
        } else {
            break;
        }
    }
    let fully = layers >= model.num_layers;
    if fully && layers < limit && free > a.gpu_overhead + used + graph_max + weights.output {
        used += weights.output;
        layers += 1;
        w_gpu += weights.output;
    }
    let graph = if fully { full } else { partial };
    Offload {
        layers,
        weights_on_gpu: w_gpu,
        kv_on_gpu: kv_gpu,
        graph,
        gpu_bytes: used + graph,
    }
}

/// The ollama estimate: ollama's layer choice, and what the llama.cpp runner then allocates.
pub fn estimate(
    model: &ModelDesc,
    gpu: &Gpu,
    config: Config,
    mix: &TypeMix,
    a: &OllamaArgs,
) -> Result<Estimate, String> {
    if a.num_ctx == 0 || a.num_parallel == 0 {
        return Err("num_ctx and OLLAMA_NUM_PARALLEL must each be at least 1".into());
    }
    // The runner gets num_ctx × parallel cells (llama.cpp's -c): refused here in ollama's own
    // terms, before llama.cpp's check would quote the product as if it were -c.
    let cells = u128::from(a.num_ctx) * u128::from(a.num_parallel);
    if cells > 1 << 34 {
        return Err(format!(
            "num_ctx {} × OLLAMA_NUM_PARALLEL {} = {cells} KV cells is beyond any deployment (limit 2^34)",
            a.num_ctx, a.num_parallel
        ));
    }
    if a.scheduler == Scheduler::LlamaServer {
        let n = config.parallel.gpus().clamp(1, 64) as usize;
        return estimate_llama_server(model, &vec![gpu.clone(); n], config, mix, a);
    }
    if config.parallel.gpus() > 1 {
        return Err("ollama's own estimate models one GPU (before its llama-server switch ollama spread layers over GPUs itself); --ollama-scheduler llama-server places them over several".into());
    }
    let weights = GgufWeights::of(model, mix);
    // ollama reads the GPU's free memory; an idle card is taken as fully free.
    let o = offload(model, &weights, a, gpu.memory_bytes);
    let runner = LlamaCppArgs {
        n_ctx: a.num_ctx.saturating_mul(a.num_parallel),
        n_seq: a.num_parallel,
        n_batch: a.num_batch,
        n_ubatch: a.num_batch,
        type_k: if a.flash_attention {
            a.kv_type
        } else {
            KvDtype::F16
        },
        type_v: if a.flash_attention {
            a.kv_type
        } else {
            KvDtype::F16
        },
        flash_attn: if a.flash_attention {
            llamacpp::FlashAttn::On
        } else {
            llamacpp::FlashAttn::Off
        },
        n_gpu_layers: Some(o.layers),
        ..LlamaCppArgs::default()
    };
    llamacpp::check(model, &runner)?;
    let b = llamacpp::buffers(model, &weights, &runner, o.layers);
    let inv = model.inventory();
    let mut e = Estimate::skeleton(model, inv, gpu, &config, "ollama");
    e.quant = mix.name();
    e.context = a.num_ctx;
    e.batch = a.num_parallel;
    e.kv_dtype = runner.type_k.name();
    e.weights_bytes = o.weights_on_gpu;
    e.kv_cache_bytes = kv_per_layer(model, a).iter().sum();
    e.activation_bytes = o.graph;
    e.overhead_bytes = MINIMUM_MEMORY_BYTES + a.gpu_overhead;
    e.gpu_model_buffer_bytes = Some(b.gpu_model);
    e.cpu_model_buffer_bytes = Some(b.cpu_model);
    match engine_kv_per_layer(model, a) {
        // Each layer's cache lives with the layer; the last `o.layers` repeating layers are
        // the ones on the GPU (the runner's -ngl convention, which ollama's layout follows).
        Some(per_layer) => {
            let on_cpu = per_layer.len().saturating_sub(o.layers as usize);
            e.kv_buffer_bytes = Some(per_layer[on_cpu..].iter().sum());
            e.cpu_kv_buffer_bytes = Some(per_layer[..on_cpu].iter().sum());
        }
        None => {
            e.kv_buffer_bytes = Some(b.gpu_kv);
            e.cpu_kv_buffer_bytes = Some(b.cpu_kv);
        }
    }
    e.compute_buffer_bytes = Some(b.gpu_compute);
    e.cpu_compute_buffer_bytes = Some(b.cpu_compute);
    e.output_buffer_bytes = Some(b.output);
    e.gpu_layers = Some(o.layers);
    e.max_gpu_layers = Some(o.layers);
    e.model_layers = Some(model.num_layers + 1);
    e.utilization = 1.0;
    let needed = if o.layers == 0 {
        MINIMUM_MEMORY_BYTES
    } else {
        o.gpu_bytes + a.gpu_overhead
    };
    e.set_verdict(needed, gpu.memory_bytes);
    // Fully offloaded is what "fits" means to an ollama user; partial offload still runs.
    e.fits = o.layers > model.num_layers;
    e.max_concurrency = a.num_parallel;
    e.max_context = a.num_ctx;
    e.max_context_limit = if a.num_ctx >= model.max_context {
        "model"
    } else {
        "memory"
    };
    e.engine_settings = vec![
        Setting {
            name: "num_ctx",
            value: a.num_ctx.to_string(),
            origin: "--context / -c".into(),
        },
        Setting {
            name: "OLLAMA_NUM_PARALLEL",
            value: a.num_parallel.to_string(),
            origin: "-np / --batch".into(),
        },
        Setting {
            name: "num_batch",
            value: a.num_batch.to_string(),
            origin: "-ub (ollama default 512)".into(),
        },
        Setting {
            name: "OLLAMA_FLASH_ATTENTION",
            value: a.flash_attention.to_string(),
            origin: "-fa".into(),
        },
        Setting {
            name: "OLLAMA_KV_CACHE_TYPE",
            value: runner.type_k.name(),
            origin: "-ctk (needs flash attention)".into(),
        },
        Setting {
            name: "layers.offload",
            value: format!("{}/{}", o.layers, model.num_layers + 1),
            origin: "ollama's estimate".into(),
        },
        Setting {
            name: "scheduler",
            value: Scheduler::Estimate.name().into(),
            origin: "ollama before its llama-server switch".into(),
        },
    ];
    e.assumptions = vec![
        Assumption { figure: "kv", formula: "num_ctx × parallel × (key_length + value_length) × head_count_kv × bytes per layer (q8_0 counted 1 B, q4_0 0.5 B)".into(), source: GGML_GO },
        Assumption { figure: "graph", formula: "the llama GraphSize formula (full when all layers fit, else partial)".into(), source: GGML_GO },
        Assumption { figure: "layers", formula: "admit the GPU if free > overhead + graph + 457 MiB + 2 layers; place layers from the last while they fit, then the output layer; free memory taken as the card's total".into(), source: MEMORY_GO },
        Assumption { figure: "sliding window", formula: "Gemma 3 local layers: parallel × window + batch cells; gpt-oss local layers: parallel × 4096 + batch cells".into(), source: GGML_GO },
    ];
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;
    use crate::ggml::GgmlType;

    #[test]
    fn kv_by_hand() {
        // Llama-3.1-8B, num_ctx 2048, f16: 2048 × (128 + 128) × 8 × 2 B = 8 MiB per layer.
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let a = OllamaArgs {
            num_ctx: 2048,
            ..OllamaArgs::default()
        };
        assert_eq!(kv_per_layer(m, &a)[0], 8 * MIB);
        // q8_0 counts 1 byte only with flash attention: 4 MiB; without it stays f16.
        let q8 = OllamaArgs {
            kv_type: KvDtype::parse("q8_0").unwrap(),
            flash_attention: true,
            ..a.clone()
        };
        assert_eq!(kv_per_layer(m, &q8)[0], 4 * MIB);
        let q8_no_fa = OllamaArgs {
            flash_attention: false,
            ..q8
        };
        assert_eq!(kv_per_layer(m, &q8_no_fa)[0], 8 * MIB);
    }

    #[test]
    fn gpt_oss_local_layers_keep_4096_cells_per_sequence() {
        // gpt-oss-20b, num_ctx 8192, batch 512, f16: a layer's row is (64 + 64) × 8 KV heads ×
        // 2 B = 2,048 B; the 12 sliding layers hold 1 × 4096 + 512 = 4,608 cells, the 12 full
        // layers 8,192: 12 × 4608 × 2048 + 12 × 8192 × 2048 = 113,246,208 + 201,326,592 =
        // 314,572,800 B = 300 MiB, what ollama logs for gpt-oss:20b at that context (the window,
        // 128, would give 12 × 640 × 2048 + 201,326,592 = 217,055,232 B, 207 MiB).
        let m = catalogue().model("gpt-oss-20b").unwrap();
        let a = OllamaArgs {
            num_ctx: 8192,
            num_batch: 512,
            ..OllamaArgs::default()
        };
        let kv = kv_per_layer(m, &a);
        assert_eq!(kv.len(), 24);
        assert_eq!(kv.iter().sum::<u64>(), 314_572_800);
        assert_eq!(kv.iter().sum::<u64>(), 300 * MIB);
        // Two parallel requests: 2 × 4096 + 512 cells on the local layers, 16,384 on the full.
        let two = OllamaArgs {
            num_parallel: 2,
            ..a
        };
        let kv2: u64 = kv_per_layer(m, &two).iter().sum();
        assert_eq!(kv2, 12 * 8704 * 2048 + 12 * 16384 * 2048);
    }

    #[test]
    fn gpt_oss_engine_cache_pads_cells_to_32() {
        // ollama's engine (kvcache/causal.go Init, CachePadding 32 for gpt-oss) at num_ctx
        // 1000: full layers 1,000 cells → 1,024; sliding layers 4096 + 512 = 4,608 (already a
        // multiple of 32). 12 × 1024 × 2048 + 12 × 4608 × 2048 = 25,165,824 + 113,246,208 =
        // 138,412,032 B, where GraphSize's estimate (no padding) is 12 × 1000 × 2048 +
        // 113,246,208 = 137,822,208 B.
        let m = catalogue().model("gpt-oss-20b").unwrap();
        let a = OllamaArgs {
            num_ctx: 1000,
            num_batch: 512,
            ..OllamaArgs::default()
        };
        let engine = engine_kv_per_layer(m, &a).unwrap();
        assert_eq!(engine.iter().sum::<u64>(), 138_412_032);
        assert_eq!(kv_per_layer(m, &a).iter().sum::<u64>(), 137_822_208);
        // A model the llama.cpp runner serves has no engine cache of its own.
        assert!(engine_kv_per_layer(catalogue().model("llama-3.1-8b").unwrap(), &a).is_none());
    }

    #[test]
    fn graph_by_hand() {
        // Llama-3.1-8B, num_ctx 2048, batch 512: full = max(4·512·(1 + 16384 + 2048·33),
        // 4·512·(4096 + 128256)) = max(171,542,528, 271,056,896) = 271,056,896 B.
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let a = OllamaArgs {
            num_ctx: 2048,
            ..OllamaArgs::default()
        };
        assert_eq!(graph_sizes(m, &a).0, 271_056_896);
    }

    #[test]
    fn offload_all_or_part() {
        let cat = catalogue();
        let m = cat.model("llama-3.1-8b").unwrap();
        let w = GgufWeights::of(m, &TypeMix::uniform(GgmlType::by_name("Q4_K").unwrap()));
        let a = OllamaArgs {
            num_ctx: 2048,
            ..OllamaArgs::default()
        };
        // 24 GB card: all 32 layers and the output layer (33/33).
        assert_eq!(
            offload(m, &w, &a, cat.gpu("rtx-4090").unwrap().memory_bytes).layers,
            33
        );
        // 4 GiB: some layers, not all; 1 GiB: the card is not admitted.
        let part = offload(m, &w, &a, 4 << 30).layers;
        assert!(part > 0 && part < 32, "{part}");
        assert_eq!(offload(m, &w, &a, 1 << 30).layers, 0);
    }
}
