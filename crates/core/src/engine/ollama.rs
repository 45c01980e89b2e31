//! ollama: how ollama's scheduler decides how many layers to offload before it starts the
//! llama.cpp runner (ollama/ollama llm/memory.go `estimateGPULayers` and fs/ggml/ggml.go
//! `GraphSize`, read at commit 4372d0bf; docs/reference/gguf_and_quant.md §2.3). ollama
//! estimates with its own formulas, not llama.cpp's buffer sizes: this profile reproduces the
//! estimate (what `msg=offload` logs), and the buffers the runner then allocates follow
//! the llama.cpp profile with the chosen layer count.

use crate::engine::llamacpp::{self, GgufWeights, LlamaCppArgs, TypeMix};
use crate::estimate::{Assumption, Config, Estimate, Setting};
use crate::gpu::Gpu;
use crate::model::ModelDesc;
use crate::precision::KvDtype;
use crate::units::MIB;

const MEMORY_GO: &str = "ollama llm/memory.go estimateGPULayers";
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
        }
    }
}

/// ollama's settings from the flags vramplan carries for llama.cpp (ollama's own names in
/// brackets): `-c` (num_ctx), `-np` (OLLAMA_NUM_PARALLEL), `-ub` (num_batch, default 512),
/// `-ctk` (OLLAMA_KV_CACHE_TYPE), `-fa` (OLLAMA_FLASH_ATTENTION: off unless set, so "auto"
/// keeps it off), `-ngl` (num_gpu). Weights default to the Q4_K_M mix: ollama's library models
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
/// parallel × sliding_window + batch cells, gpt-oss local layers parallel × window + batch.
pub fn kv_per_layer(model: &ModelDesc, args: &OllamaArgs) -> Vec<u64> {
    let context = args.num_ctx.saturating_mul(args.num_parallel.max(1));
    let batch = args.num_batch.min(args.num_ctx).max(1);
    let t = model.model_type.as_str();
    let windowed = t.starts_with("gemma3") || t == "gpt_oss";
    model
        .layers()
        .map(|l| {
            // A layer without a cache of its own: its recurrent state (llama.cpp's), or nothing.
            let Some(att) = l.attention.as_ref().filter(|a| a.caches()) else {
                return super::llamacpp::recurrent_state_bytes(l);
            };
            let row = att.k_width() + att.v_width();
            let cells = match (att.span.limit(), windowed) {
                (Some(w), true) => context.min(
                    args.num_parallel
                        .max(1)
                        .saturating_mul(w)
                        .saturating_add(batch),
                ),
                _ => context,
            };
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
    if config.parallel.gpus() > 1 {
        return Err("the ollama profile models one GPU; ollama spreads layers over GPUs itself (use --engine vllm for tensor parallelism)".into());
    }
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
    e.kv_buffer_bytes = Some(b.gpu_kv);
    e.cpu_kv_buffer_bytes = Some(b.cpu_kv);
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
    ];
    e.assumptions = vec![
        Assumption { figure: "kv", formula: "num_ctx × parallel × (key_length + value_length) × head_count_kv × bytes per layer (q8_0 counted 1 B, q4_0 0.5 B)".into(), source: GGML_GO },
        Assumption { figure: "graph", formula: "the llama GraphSize formula (full when all layers fit, else partial)".into(), source: GGML_GO },
        Assumption { figure: "layers", formula: "admit the GPU if free > overhead + graph + 457 MiB + 2 layers; place layers from the last while they fit, then the output layer; free memory taken as the card's total".into(), source: MEMORY_GO },
        Assumption { figure: "sliding window", formula: "Gemma 3 / gpt-oss local layers: parallel × window + batch cells".into(), source: GGML_GO },
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
