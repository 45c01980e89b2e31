//! vLLM, V1 engine (0.10 and later): how a worker turns the card's memory into KV-cache blocks,
//! and what it prints at start-up. Every rule cites the vLLM file it follows; the version
//! history is summarised in docs/reference/vllm_memory_model.md.
//!
//! Per worker (vllm/v1/worker/gpu_worker.py `determine_available_memory`, 0.9.2+):
//!   available = total × gpu_memory_utilization − weights − activation peak − non-torch
//!               [− CUDA-graph estimate, 0.20 and later]
//!   blocks    = available ÷ (page bytes × KV tensors on the worker)   (kv_cache_utils.py)
//! and the engine keeps the minimum over workers (`get_kv_cache_configs`).

use crate::estimate::{
    signed_difference, Assumption, Config, Estimate, Setting, StageFigures, StartupError,
};
use crate::gpu::Gpu;
use crate::layer::Span;
use crate::model::{Inventory, MlpKind, ModelDesc};
use crate::parallel::{weight_bytes_per_stage_with, ExpertSplit, Parallelism};
use crate::precision::{KvDtype, WeightFormat};
use crate::units::{div_ceil, GIB, MIB};

const WORKER: &str = "vllm/v1/worker/gpu_worker.py";
const KV_UTILS: &str = "vllm/v1/core/kv_cache_utils.py";

/// A vLLM release, 0.minor.patch. Only the V1 engine (0.10 on) is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub minor: u32,
    pub patch: u32,
}

impl Release {
    pub const OLDEST: Release = Release {
        minor: 10,
        patch: 0,
    };
    /// The newest release whose accounting docs/reference/vllm_memory_model.md records.
    pub const NEWEST: Release = Release {
        minor: 33,
        patch: 0,
    };

    /// "0.19", "0.19.1", "v0.19.0", "latest".
    pub fn parse(text: &str) -> Result<Release, String> {
        let t = text.trim().trim_start_matches(['v', 'V']);
        if t.eq_ignore_ascii_case("latest") {
            return Ok(Release::NEWEST);
        }
        let bad =
            || format!("vLLM version '{text}' is not a release number such as 0.19 or 0.19.1");
        let mut parts = t.split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let patch: u32 = match parts.next() {
            None => 0,
            // "0.6.3.post1" style suffixes: keep the number.
            Some(p) => p
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|d| d.parse().ok())
                .ok_or_else(bad)?,
        };
        let r = Release { minor, patch };
        if major != 0 || r < Release::OLDEST {
            return Err(format!(
                "vLLM {text} is not modelled: this profile follows the V1 engine from 0.10 to {} (older releases sized the KV cache differently; see docs/reference/vllm_memory_model.md §1)",
                Release::NEWEST.name()
            ));
        }
        if r.minor > Release::NEWEST.minor {
            return Err(format!("vLLM {text} is newer than the newest release modelled ({}); pass --vllm-version {}", Release::NEWEST.name(), Release::NEWEST.name()));
        }
        Ok(r)
    }

    pub fn name(&self) -> String {
        format!("0.{}.{}", self.minor, self.patch)
    }

    /// `--gpu-memory-utilization` default: 0.90 up to 0.19, 0.92 from 0.20
    /// (vllm/config/cache.py `gpu_memory_utilization`).
    pub fn default_utilization(&self) -> f64 {
        if self.minor >= 20 {
            0.92
        } else {
            0.90
        }
    }

    /// CUDA-graph memory is estimated and subtracted from the KV budget from 0.20
    /// (vllm/envs.py `VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS` default "1"; "0" in 0.18–0.19).
    pub fn budgets_cuda_graphs(&self) -> bool {
        self.minor >= 20
    }

    /// 0.22 and later report "GPU KV cache size" as int(max_concurrency × max_model_len)
    /// (kv_cache_utils.py `get_kv_cache_capacity`); before, num_blocks // groups × block_size.
    pub fn tokens_from_concurrency(&self) -> bool {
        self.minor >= 22
    }

    /// From 0.11 the large-GPU batch defaults exclude the A100 (vllm/engine/arg_utils.py
    /// `get_batch_defaults`).
    pub fn a100_gets_small_defaults(&self) -> bool {
        self.minor >= 11
    }

    /// 0.9.2–0.10.x take the memory baseline before NCCL initialisation, so NCCL's own
    /// buffers count as non-torch memory; from 0.11 the baseline is taken after it
    /// (gpu_worker.py `init_device`).
    pub fn nccl_in_non_torch(&self) -> bool {
        self.minor <= 10
    }
}

/// The vLLM flags that change memory, beyond those in `Config` (weights ↔ --quantization/--dtype,
/// kv_dtype ↔ --kv-cache-dtype, context ↔ --max-model-len, parallel ↔ --tp/--pp/--dp,
/// utilization ↔ --gpu-memory-utilization, batch = the concurrent requests asked about).
#[derive(Debug, Clone, PartialEq)]
pub struct VllmArgs {
    pub release: Release,
    /// Whether --gpu-memory-utilization was given (else the release default applies).
    pub utilization_given: bool,
    pub block_size: Option<u64>,
    pub max_num_seqs: Option<u64>,
    pub max_num_batched_tokens: Option<u64>,
    pub enforce_eager: bool,
    /// Bytes of one activation element: the model dtype (--dtype), 2 for bf16/fp16, 4 for fp32.
    pub activation_bytes: u64,
    pub expert_parallel: bool,
}

impl VllmArgs {
    pub fn new(release: Release) -> VllmArgs {
        VllmArgs {
            release,
            utilization_given: false,
            block_size: None,
            max_num_seqs: None,
            max_num_batched_tokens: None,
            enforce_eager: false,
            activation_bytes: 2,
            expert_parallel: false,
        }
    }
}

/// Memory already held when a vLLM worker starts: the CUDA context and allocator of the
/// process. Measured in the 0.19 H100 logs: "Free memory on device (78.68/79.19 GiB) on
/// startup" = 0.51 GiB (data/calibration/vllm.jsonl, every single-GPU record).
pub const STARTUP_USED_BYTES: u64 = 51 * GIB / 100;

/// Non-torch memory charged to the budget ("non-torch forward increase memory"), as the 0.19
/// H100 logs show it (data/calibration/vllm.jsonl): 0.24–0.26 GiB on a single GPU (cuBLAS
/// workspaces and allocator pools; the CUDA context is in the baseline and not charged),
/// 2.06–2.21 GiB per GPU with tensor parallelism (NCCL communicators and custom all-reduce
/// buffers), 0.07 GiB with pipeline parallelism only. These are measurements, not derived.
pub fn non_torch_bytes(par: &Parallelism, release: Release) -> u64 {
    if par.tp > 1 || (par.dp > 1 && release.nccl_in_non_torch()) {
        21 * GIB / 10
    } else if par.pp > 1 {
        7 * GIB / 100
    } else {
        GIB / 4
    }
}

/// CUDA-graph memory estimate, charged from 0.20. An estimate from the 0.19 logs' "Estimated
/// CUDA graph memory" lines (0.49–1.82 GiB over 17 runs): a fixed 0.35 GiB graph pool plus
/// 17 MiB per decoder layer on the worker (51 PIECEWISE + 51 FULL graphs each capture every
/// layer's kernels). Not exact: the logged value varies ±0.3 GiB around it between models.
pub fn cuda_graph_bytes(layers_on_worker: u64, args: &VllmArgs) -> u64 {
    if args.enforce_eager || !args.release.budgets_cuda_graphs() {
        return 0;
    }
    35 * GIB / 100 + 17 * MIB * layers_on_worker
}

/// `max_num_seqs` and `max_num_batched_tokens` defaults for `vllm serve` (the OpenAI server
/// usage context): 1024 and 8192 on cards of at least 70 GiB (not A100 from 0.11), else 256
/// and 2048 (vllm/engine/arg_utils.py `get_batch_defaults`, `_set_default_args`).
pub fn batch_defaults(gpu: &Gpu, release: Release) -> (u64, u64) {
    let big = gpu.memory_bytes >= 70 * GIB;
    let a100 = gpu.id.to_ascii_lowercase().starts_with("a100") || gpu.name.contains("A100");
    if big && !(a100 && release.a100_gets_small_defaults()) {
        (1024, 8192)
    } else {
        (256, 2048)
    }
}

/// Tokens per KV block: 16 on CUDA, 64 for MLA models (FlashMLA)
/// (vllm/platforms/cuda.py `check_and_update_config`).
pub fn block_size(model: &ModelDesc, given: Option<u64>) -> u64 {
    match given {
        Some(b) => b,
        None if model.mla.is_some() => 64,
        None => 16,
    }
}

/// Bytes of one block of one attention layer on one TP rank (vllm/v1/kv_cache_interface.py
/// `AttentionSpec.page_size_bytes` = 2 × block × KV heads per rank × head size × dtype bytes;
/// `MLAAttentionSpec`: block × (kv_lora_rank + qk_rope_head_dim) × dtype bytes, every rank).
pub fn page_bytes(model: &ModelDesc, kv: KvDtype, tp: u64, block: u64) -> u64 {
    // The first layer that caches: the profile refuses models whose layers' pages differ
    // (`Groups::of`), so one layer's page is every layer's.
    let attention = model
        .inventory()
        .kinds
        .iter()
        .filter_map(|k| k.attention.as_ref())
        .find(|a| a.caches());
    match attention {
        Some(a) if a.latent.is_some() => kv
            .row_bytes(a.k_width() + a.v_width())
            .saturating_mul(block),
        Some(a) => kv
            .row_bytes(a.k_width_per_rank(tp))
            .saturating_add(kv.row_bytes(a.v_width_per_rank(tp)))
            .saturating_mul(block),
        None => 0,
    }
}

/// The rotary cos/sin cache every worker builds at load time and counts in "Model loading
/// took": [max_position_embeddings, rotary_dim] in the model dtype
/// (vllm/model_executor/layers/rotary_embedding `_compute_cos_sin_cache`, then `.to(dtype)`).
/// Models with learned positions have none.
pub fn rope_cache_bytes(model: &ModelDesc, activation_bytes: u64) -> u64 {
    let rotary = model.first_attention().map_or(0, |a| a.rotary_dim);
    model
        .max_context
        .saturating_mul(rotary)
        .saturating_mul(activation_bytes)
}

/// Peak of the profiling forward pass over `tokens` tokens on one worker
/// (gpu_model_runner.py `profile_run` → `_dummy_run(max_num_batched_tokens)`): per token,
/// six hidden-width tensors in flight (residual, normed input, attention output, MLP output and
/// the compiled graph's temporaries) and the widest MLP stage per rank (gated: gate_up output
/// 2·I plus the activated I; plain: 2·I), and for MoE the fused-MoE output cache of top_k
/// hidden rows (fused_moe.py `intermediate_cache3`). Sized against the PP0 workers of the 0.19
/// logs (1.10 GiB for Llama-3.1-8B at 8192 tokens), the only records where the forward pass
/// rather than the sampler sets the peak.
pub fn forward_peak_bytes(model: &ModelDesc, tokens: u64, tp: u64, activation_bytes: u64) -> u64 {
    let tp = tp.max(1);
    let h = model.hidden_size;
    let factor = match model.mlp {
        MlpKind::Gated => 3,
        MlpKind::Plain => 2,
    };
    let mlp = match &model.moe {
        Some(m) => {
            let routed = factor * m.experts_per_token * m.expert_intermediate_size / tp
                + m.experts_per_token * h;
            let shared = factor * m.shared_experts * m.shared_expert_intermediate_size / tp;
            let dense = factor * m.dense_intermediate_size / tp;
            routed.max(shared).max(dense)
        }
        None => factor * model.intermediate_size / tp,
    };
    let attention = (model.num_attention_heads + 2 * model.num_kv_heads) * model.head_dim / tp;
    let per_token = 6 * h + mlp.max(attention);
    tokens
        .saturating_mul(per_token)
        .saturating_mul(activation_bytes)
}

/// Peak of the profiling sampler run on the last pipeline stage (gpu_model_runner.py
/// `_dummy_sampler_run`, v1/sample/sampler.py): logits [requests, vocab] in the model dtype,
/// their fp32 copy (`logits.to(torch.float32)`, none when the model is fp32), the softmax
/// probabilities and the exponential noise of the random sampler (fp32 each; top-k/top-p and
/// logprobs are skipped while profiling), while the forward pass's last hidden states,
/// residual and normed output ([tokens, hidden] each) are still referenced.
pub fn sampler_peak_bytes(
    model: &ModelDesc,
    requests: u64,
    tokens: u64,
    activation_bytes: u64,
) -> u64 {
    let copy = if activation_bytes == 4 { 0 } else { 4 };
    let per_logit = activation_bytes + copy + 4 + 4;
    let logits = requests
        .saturating_mul(model.vocab_size)
        .saturating_mul(per_logit);
    let hidden = tokens
        .saturating_mul(model.hidden_size)
        .saturating_mul(3 * activation_bytes);
    logits.saturating_add(hidden)
}

/// One kind of KV layer on a worker: full attention, or local attention with its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Full,
    Window(u64),
    Chunk(u64),
}

/// How the KV layers of one worker are grouped (kv_cache_utils.py `get_kv_cache_groups`):
/// one group when all layers are alike; with several kinds of the same page size (Gemma-2/3,
/// Llama-4, gpt-oss), groups of `group_size` = the smallest count of a kind, which share
/// `group_size` tensors, each block id serving one layer of every group.
#[derive(Debug, Clone, PartialEq)]
struct Groups {
    /// (kind, number of groups of that kind).
    kinds: Vec<(Kind, u64)>,
    /// KV tensors on the worker; every block costs page bytes in each.
    tensors: u64,
}

impl Groups {
    fn of(model: &ModelDesc, layers: std::ops::Range<u64>) -> Result<Groups, String> {
        let mut counts: Vec<(Kind, u64)> = Vec::new();
        let mut page: Option<(u64, u64)> = None;
        for i in layers {
            let layer = model.layer(i);
            if layer.recurrent.is_some() {
                return Err(format!(
                    "{} has recurrent layers ({}); the vLLM profile does not model vLLM's hybrid KV-cache manager (Mamba and linear-attention state pages) yet (use --engine generic)",
                    model.id,
                    layer.kind_name()
                ));
            }
            let Some(a) = layer.attention.as_ref() else {
                continue;
            };
            if !a.caches() {
                return Err(format!(
                    "{} has layers that reuse another layer's KV cache; the vLLM profile does not model vLLM's KV sharing yet (use --engine generic)",
                    model.id
                ));
            }
            let widths = (a.k_width(), a.v_width());
            if page.is_some_and(|p| p != widths) {
                return Err(format!(
                    "{}'s attention layers cache rows of different widths; the vLLM profile does not model vLLM's page-size unification yet (use --engine generic)",
                    model.id
                ));
            }
            page = Some(widths);
            let kind = match a.span {
                Span::Full => Kind::Full,
                Span::Window(w) => Kind::Window(w),
                Span::Chunk(c) => Kind::Chunk(c),
                Span::PrefillWindow(_) => {
                    return Err(format!(
                        "{} has reference sliding-window layers (every prompt token and a window of generated ones); the vLLM profile does not size them (use --engine generic)",
                        model.id
                    ))
                }
            };
            match counts.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((kind, 1)),
            }
        }
        if counts.len() <= 1 {
            let tensors = counts.first().map(|c| c.1).unwrap_or(0);
            return Ok(Groups {
                kinds: counts.into_iter().map(|(k, _)| (k, 1)).collect(),
                tensors,
            });
        }
        let group_size = counts.iter().map(|c| c.1).min().unwrap_or(1).max(1);
        Ok(Groups {
            kinds: counts
                .into_iter()
                .map(|(k, n)| (k, div_ceil(n, group_size)))
                .collect(),
            tensors: group_size,
        })
    }

    fn groups(&self) -> u64 {
        self.kinds.iter().map(|k| k.1).sum()
    }

    /// Blocks one request of `len` tokens needs, summed over groups
    /// (kv_cache_interface.py `max_memory_usage_bytes`: full attention ceil(len/block);
    /// sliding window ceil(min(window − 1 + max_num_batched_tokens, len)/block) + 1; chunked
    /// local ceil(min(chunk + max_num_batched_tokens, len)/block)).
    fn blocks_per_request(&self, len: u64, block: u64, batched_tokens: u64) -> u64 {
        self.kinds
            .iter()
            .map(|&(kind, n)| {
                let one = match kind {
                    Kind::Full => div_ceil(len, block),
                    Kind::Window(w) => {
                        div_ceil(
                            len.min(w.saturating_sub(1).saturating_add(batched_tokens)),
                            block,
                        ) + 1
                    }
                    Kind::Chunk(c) => div_ceil(len.min(c.saturating_add(batched_tokens)), block),
                };
                one.saturating_mul(n)
            })
            .sum()
    }
}

/// One worker (one pipeline stage on one TP rank).
#[derive(Debug, Clone)]
struct Worker {
    layers: std::ops::Range<u64>,
    weights: u64,
    activation: u64,
    non_torch: u64,
    cuda_graph: u64,
    available: i64,
    groups: Groups,
    page: u64,
    blocks: u64,
}

/// Everything the profile computes for one configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    workers: Vec<Worker>,
    pub block_size: u64,
    pub max_num_seqs: u64,
    pub max_num_batched_tokens: u64,
    pub utilization: f64,
    pub requested_bytes: u64,
    pub num_blocks: u64,
    limiting: usize,
}

impl Plan {
    pub fn new(
        model: &ModelDesc,
        inv: &Inventory,
        gpu: &Gpu,
        config: &Config,
        args: &VllmArgs,
    ) -> Result<Plan, String> {
        let par = config.parallel;
        let (default_seqs, default_tokens) = batch_defaults(gpu, args.release);
        let max_num_seqs = args.max_num_seqs.unwrap_or(default_seqs);
        let max_num_batched_tokens = args.max_num_batched_tokens.unwrap_or(default_tokens);
        let block = block_size(model, args.block_size);
        let utilization = if args.utilization_given {
            config.utilization
        } else {
            args.release.default_utilization()
        };
        let requested_bytes = (gpu.memory_bytes as f64 * utilization).floor() as u64;
        let experts = if args.expert_parallel {
            ExpertSplit::ExpertParallel {
                ep: par.check_expert_parallel(model)?,
            }
        } else {
            ExpertSplit::TensorParallel
        };
        let weights = weight_bytes_per_stage_with(model, inv, config.weights, &par, experts);
        let rope = rope_cache_bytes(model, args.activation_bytes);
        let ranges = par.stages(model.num_layers);
        let last = ranges.len() - 1;
        let ab = args.activation_bytes;
        // The profile runs `min(max_num_seqs, max_num_batched_tokens)` requests (gpu_model_runner.py `_dummy_run`).
        let requests = max_num_seqs.min(max_num_batched_tokens);
        let mut workers = Vec::with_capacity(ranges.len());
        for (s, range) in ranges.iter().enumerate() {
            let forward = forward_peak_bytes(model, max_num_batched_tokens, par.tp, ab);
            let activation = if s == last {
                // The last stage samples; with PP it also still holds the hidden states and
                // residual received from the stage before (IntermediateTensors).
                let received = if par.pp > 1 {
                    2 * max_num_batched_tokens * model.hidden_size * ab
                } else {
                    0
                };
                forward.max(
                    sampler_peak_bytes(model, requests, max_num_batched_tokens, ab)
                        .saturating_add(received),
                )
            } else {
                forward
            };
            let non_torch = non_torch_bytes(&par, args.release);
            let cuda_graph = cuda_graph_bytes(range.end - range.start, args);
            let w = weights[s].saturating_add(rope);
            let used = w
                .saturating_add(activation)
                .saturating_add(non_torch)
                .saturating_add(cuda_graph);
            let available = signed_difference(requested_bytes, used);
            let groups = Groups::of(model, range.clone())?;
            let page = page_bytes(model, config.kv_dtype, par.tp, block);
            let per_block = page.saturating_mul(groups.tensors).max(1);
            let blocks = if available > 0 {
                available as u64 / per_block
            } else {
                0
            };
            workers.push(Worker {
                layers: range.clone(),
                weights: w,
                activation,
                non_torch,
                cuda_graph,
                available,
                groups,
                page,
                blocks,
            });
        }
        // Every worker gets the smallest block count (kv_cache_utils.py `get_kv_cache_configs`).
        let (limiting, num_blocks) = workers
            .iter()
            .enumerate()
            .map(|(i, w)| (i, w.blocks))
            .min_by_key(|x| x.1)
            .unwrap_or((0, 0));
        Ok(Plan {
            workers,
            block_size: block,
            max_num_seqs,
            max_num_batched_tokens,
            utilization,
            requested_bytes,
            num_blocks,
            limiting,
        })
    }

    fn first(&self) -> &Worker {
        &self.workers[0]
    }

    /// Blocks one request of `len` tokens needs (the scheduler's view: first worker's groups).
    pub fn blocks_per_request(&self, len: u64) -> u64 {
        self.first()
            .groups
            .blocks_per_request(len, self.block_size, self.max_num_batched_tokens)
            .max(1)
    }

    /// "Maximum concurrency for L tokens per request: X x" (kv_cache_utils.py
    /// `_report_kv_cache_config`: num_blocks ÷ blocks one request needs).
    pub fn max_concurrency(&self, len: u64) -> f64 {
        self.num_blocks as f64 / self.blocks_per_request(len) as f64
    }

    /// "GPU KV cache size: N tokens".
    pub fn kv_cache_tokens(&self, len: u64, release: Release) -> u64 {
        if release.tokens_from_concurrency() {
            (self.max_concurrency(len) * len as f64) as u64
        } else {
            (self.num_blocks / self.first().groups.groups().max(1)).saturating_mul(self.block_size)
        }
    }

    /// KV bytes one request of `len` tokens needs on a worker (the check of
    /// `check_enough_kv_cache_memory` sums `max_memory_usage_bytes` over the worker's layers).
    fn request_bytes(&self, w: &Worker, len: u64) -> u64 {
        w.groups
            .blocks_per_request(len, self.block_size, self.max_num_batched_tokens)
            .saturating_mul(w.page)
            .saturating_mul(w.groups.tensors)
    }

    /// Longest max_model_len whose one request fits the KV pool of every worker, as vLLM's
    /// error message estimates it (binary search in `check_enough_kv_cache_memory`).
    pub fn longest_fitting_len(&self, requests: u64) -> u64 {
        let fits =
            |len: u64| self.blocks_per_request(len).saturating_mul(requests) <= self.num_blocks;
        crate::estimate::largest_fitting_near(1, 1 << 34, fits)
    }
}

/// A float as Python's repr prints it in vLLM's messages: 1.0, 0.9.
fn py_float(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

fn gib2(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / GIB as f64)
}

fn gib2i(bytes: i64) -> String {
    format!("{:.2}", bytes as f64 / GIB as f64)
}

/// vLLM's check that `--quantization` group sizes still divide the sharded input dimension
/// (vllm/model_executor/layers/quantization/awq.py, gptq.py `create_weights`: "The input size is
/// not aligned with the quantized weight shape").
fn check_quant_alignment(model: &ModelDesc, weights: WeightFormat, tp: u64) -> Result<(), String> {
    let group = match weights {
        WeightFormat::Awq { group }
        | WeightFormat::W4a16 { group }
        | WeightFormat::Gptq { group, .. } => group as u64,
        _ => return Ok(()),
    };
    let width = match &model.moe {
        Some(m) => m.expert_intermediate_size,
        None => model.intermediate_size,
    };
    if tp > 1 && !(width / tp).is_multiple_of(group) {
        return Err(format!(
            "the {} weights are quantized in groups of {group} along the MLP input ({width}), and {width} / TP {tp} = {} is not a multiple of {group}: vLLM stops with \"The input size is not aligned with the quantized weight shape\" (vllm/model_executor/layers/quantization); use a tensor-parallel size that keeps it a multiple",
            model.id,
            width / tp
        ));
    }
    Ok(())
}

/// Smallest valid tensor-parallel size at which `fits` holds (≤ 64).
fn smallest_tp(model: &ModelDesc, fits: impl Fn(u64) -> bool) -> Option<u64> {
    (1..=64u64)
        .filter(|&tp| Parallelism { tp, pp: 1, dp: 1 }.check(model).is_ok())
        .find(|&tp| fits(tp))
}

/// The full vLLM estimate.
pub fn estimate(
    model: &ModelDesc,
    gpu: &Gpu,
    config: Config,
    args: &VllmArgs,
) -> Result<Estimate, String> {
    config.check(model)?;
    if let Some(kind) = model.cache_beyond_kv_pools() {
        return Err(format!(
            "{} has {kind} layers, whose cache the vLLM profile does not size yet (use --engine generic)",
            model.id
        ));
    }
    if args.block_size.is_some_and(|b| b == 0 || b > 1024) {
        return Err(
            "--block-size must be between 1 and 1024 tokens (vLLM accepts 1, 8, 16, 32, 64, 128)"
                .into(),
        );
    }
    if args.max_num_seqs == Some(0) || args.max_num_batched_tokens == Some(0) {
        return Err("--max-num-seqs and --max-num-batched-tokens must be at least 1".into());
    }
    // Bounded like the context and the batch (limits.rs): beyond them the profile's byte
    // figures would overflow.
    if let Some(n) = args
        .max_num_batched_tokens
        .filter(|&n| n > crate::limits::MAX_CONTEXT)
    {
        return Err(format!(
            "--max-num-batched-tokens {n} is beyond any deployment (limit 2^34 = {})",
            crate::limits::MAX_CONTEXT
        ));
    }
    if let Some(n) = args.max_num_seqs.filter(|&n| n > crate::limits::MAX_BATCH) {
        return Err(format!(
            "--max-num-seqs {n} is beyond any deployment (limit 2^32 = {})",
            crate::limits::MAX_BATCH
        ));
    }
    let par = config.parallel;
    check_quant_alignment(model, config.weights, par.tp)?;
    let inv = model.inventory();
    let plan = Plan::new(model, inv, gpu, &config, args)?;
    let len = config.context;
    let release = args.release;
    let mut e = Estimate::skeleton(model, inv, gpu, &config, "vllm");
    e.utilization = plan.utilization;
    let w = &plan.workers[plan.limiting];
    e.weights_bytes = w.weights;
    e.activation_bytes = w.activation;
    e.non_torch_bytes = Some(w.non_torch);
    e.cuda_graph_bytes = Some(w.cuda_graph);
    e.overhead_bytes = w.non_torch + w.cuda_graph;
    e.block_size = Some(plan.block_size);
    e.kv_cache_blocks = Some(plan.num_blocks);
    e.kv_cache_tokens = Some(plan.kv_cache_tokens(len, release));
    let concurrency = plan.max_concurrency(len);
    e.engine_max_concurrency = Some((concurrency * 100.0).floor() / 100.0);
    // Requests actually served at once: whole requests of the pool, at most max_num_seqs,
    // per data-parallel replica.
    let served = (concurrency.floor() as u64).min(plan.max_num_seqs);
    e.max_concurrency = served.saturating_mul(par.dp);
    let needed_kv = plan.request_bytes(w, len).saturating_mul(config.batch);
    e.kv_cache_bytes = needed_kv;
    e.kv_pool_bytes = Some(
        plan.num_blocks
            .saturating_mul(w.page)
            .saturating_mul(w.groups.tensors),
    );
    let used = w
        .weights
        .saturating_add(w.activation)
        .saturating_add(e.overhead_bytes);
    e.startup_error = startup_error(model, gpu, &config, args, &plan, inv);
    e.set_verdict(used.saturating_add(needed_kv), plan.requested_bytes);
    // Block rounding: the pool decides, not the byte sum.
    e.fits = e.startup_error.is_none()
        && plan.blocks_per_request(len).saturating_mul(config.batch) <= plan.num_blocks;
    let fit_len = plan.longest_fitting_len(config.batch);
    let (max_context, limit) = if fit_len >= model.max_context {
        (model.max_context, "model")
    } else {
        (fit_len, "memory")
    };
    e.max_context = max_context;
    e.max_context_limit = limit;
    e.min_gpus = smallest_tp(model, |tp| {
        let c = Config {
            parallel: Parallelism { tp, pp: 1, dp: 1 },
            ..config
        };
        check_quant_alignment(model, c.weights, tp).is_ok()
            && Plan::new(model, inv, gpu, &c, args).is_ok_and(|p| {
                startup_error(model, gpu, &c, args, &p, inv).is_none()
                    && p.blocks_per_request(len).saturating_mul(config.batch) <= p.num_blocks
            })
    });
    if par.pp > 1 {
        e.stages = plan
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| StageFigures {
                stage: i as u64,
                layers: w.layers.end - w.layers.start,
                weights_bytes: w.weights,
                activation_bytes: w.activation,
                overhead_bytes: w.non_torch + w.cuda_graph,
                kv_available_bytes: w.available,
            })
            .collect();
    }
    e.engine_settings = settings(gpu, &config, args, &plan);
    e.assumptions = assumptions(model, &config, args, &plan);
    Ok(e)
}

fn origin(given: bool, default: &str) -> String {
    if given {
        "given".into()
    } else {
        default.into()
    }
}

fn settings(gpu: &Gpu, config: &Config, args: &VllmArgs, plan: &Plan) -> Vec<Setting> {
    let r = args.release;
    let batch_src = if gpu.memory_bytes >= 70 * GIB {
        "default for cards ≥ 70 GiB (vllm/engine/arg_utils.py get_batch_defaults)"
    } else {
        "default for cards < 70 GiB (vllm/engine/arg_utils.py get_batch_defaults)"
    };
    vec![
        Setting {
            name: "vllm_version",
            value: r.name(),
            origin: "--vllm-version".into(),
        },
        Setting {
            name: "gpu_memory_utilization",
            value: format!("{}", plan.utilization),
            origin: origin(
                args.utilization_given,
                &format!("default of vLLM {} (vllm/config/cache.py)", r.name()),
            ),
        },
        Setting {
            name: "max_model_len",
            value: config.context.to_string(),
            origin: "given (--max-model-len / --context)".into(),
        },
        Setting {
            name: "block_size",
            value: plan.block_size.to_string(),
            origin: origin(
                args.block_size.is_some(),
                "default (vllm/platforms/cuda.py)",
            ),
        },
        Setting {
            name: "max_num_seqs",
            value: plan.max_num_seqs.to_string(),
            origin: origin(args.max_num_seqs.is_some(), batch_src),
        },
        Setting {
            name: "max_num_batched_tokens",
            value: plan.max_num_batched_tokens.to_string(),
            origin: origin(args.max_num_batched_tokens.is_some(), batch_src),
        },
        Setting {
            name: "enforce_eager",
            value: args.enforce_eager.to_string(),
            origin: origin(args.enforce_eager, "default"),
        },
        Setting {
            name: "kv_cache_dtype",
            value: config.kv_dtype.name(),
            origin: "--kv-cache-dtype (auto = the model dtype)".into(),
        },
        Setting {
            name: "enable_expert_parallel",
            value: args.expert_parallel.to_string(),
            origin: origin(args.expert_parallel, "default"),
        },
    ]
}

/// The first error vLLM would stop with, in the order it checks, and the flag that avoids it.
fn startup_error(
    model: &ModelDesc,
    gpu: &Gpu,
    config: &Config,
    args: &VllmArgs,
    plan: &Plan,
    inv: &Inventory,
) -> Option<StartupError> {
    let len = config.context;
    let total = gpu.memory_bytes;
    // 1. max_model_len beyond the model (vllm/config/model.py `_get_and_verify_max_len`).
    if len > model.max_context {
        return Some(StartupError {
            message: format!(
                "ValueError: User-specified max_model_len ({len}) is greater than the derived max_model_len (max_position_embeddings={} or model_max_length=None in model's config.json). To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1.",
                model.max_context
            ),
            source: "vllm/config/model.py",
            fix: format!("--max-model-len {}", model.max_context),
        });
    }
    // 2. Free memory at start-up below the requested share (gpu_worker.py `init_device`).
    let free = total.saturating_sub(STARTUP_USED_BYTES);
    if free < plan.requested_bytes {
        let best = (free as f64 / total as f64 * 100.0).floor() / 100.0;
        return Some(StartupError {
            message: format!(
                "ValueError: Free memory on device ({}/{} GiB) on startup is less than desired GPU memory utilization ({}, {} GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.",
                gib2(free),
                gib2(total),
                py_float(plan.utilization),
                gib2(plan.requested_bytes)
            ),
            source: WORKER,
            fix: format!("--gpu-memory-utilization {best:.2}"),
        });
    }
    let heaviest = plan
        .workers
        .iter()
        .max_by_key(|w| w.weights)
        .expect("at least one worker");
    let tp_fix = || {
        smallest_tp(model, |tp| {
            let c = Config {
                parallel: Parallelism {
                    tp,
                    pp: config.parallel.pp,
                    dp: 1,
                },
                ..*config
            };
            Plan::new(model, inv, gpu, &c, args)
                .is_ok_and(|p| p.num_blocks >= p.blocks_per_request(len))
        })
        .filter(|&tp| tp > config.parallel.tp)
        .map(|tp| format!("--tensor-parallel-size {tp}"))
        .unwrap_or_else(|| "a smaller --quantization (e.g. awq or fp8) or more GPUs".into())
    };
    // 3. Weights larger than the free memory: the load itself runs out of memory.
    if heaviest.weights > free {
        return Some(StartupError {
            message: format!(
                "torch.OutOfMemoryError: CUDA out of memory while loading the weights ({} GiB per GPU needed, {} GiB free)",
                gib2(heaviest.weights),
                gib2(free)
            ),
            source: "vllm/model_executor/model_loader",
            fix: tp_fix(),
        });
    }
    // 4. Nothing left for the KV cache (kv_cache_utils.py `check_enough_kv_cache_memory`).
    let worst = plan
        .workers
        .iter()
        .min_by_key(|w| w.available)
        .expect("at least one worker");
    if worst.available <= 0 {
        // The utilization at which one request of max_model_len would fit, if the card allows it.
        let need = worst.weights
            + worst.activation
            + worst.non_torch
            + worst.cuda_graph
            + plan.request_bytes(worst, len);
        let util = (need as f64 / total as f64 * 100.0).ceil() / 100.0;
        let max_util = (free as f64 / total as f64 * 100.0).floor() / 100.0;
        return Some(StartupError {
            message: "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.".into(),
            source: KV_UTILS,
            fix: if util <= max_util { format!("--gpu-memory-utilization {util:.2}") } else { tp_fix() },
        });
    }
    // 5. One request of max_model_len must fit (same function).
    let need = plan.request_bytes(worst, len);
    if need > worst.available as u64 {
        let estimated = plan.longest_fitting_len(1).min(model.max_context);
        return Some(StartupError {
            message: format!(
                "ValueError: To serve at least one request with the models's max seq len ({len}), ({} GiB KV cache is needed, which is larger than the available KV cache memory ({} GiB). Based on the available memory, the estimated maximum model length is {estimated}. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.",
                gib2(need),
                gib2i(worst.available)
            ),
            source: KV_UTILS,
            fix: format!("--max-model-len {estimated}"),
        });
    }
    None
}

fn assumptions(
    model: &ModelDesc,
    config: &Config,
    args: &VllmArgs,
    plan: &Plan,
) -> Vec<Assumption> {
    let w = &plan.workers[plan.limiting];
    let mut a = vec![
        Assumption {
            figure: "weights",
            formula: format!(
                "the tensors this worker loads in {} (TP-sharded, PP-split{}) + the rotary cos/sin cache, max_position {} × rotary dim × {} bytes",
                config.weights.name(),
                if args.expert_parallel { ", whole experts over TP × DP" } else { "" },
                model.max_context,
                args.activation_bytes
            ),
            source: "vLLM 'Model loading took' = DeviceMemoryProfiler delta (vllm/v1/worker/gpu_model_runner.py load_model); rotary_embedding _compute_cos_sin_cache",
        },
        Assumption {
            figure: "activations",
            formula: format!(
                "max(forward pass over max_num_batched_tokens = {} tokens, sampler over min(max_num_seqs, tokens) = {} requests × vocab {} × (logits + fp32 copy + probs + noise) + 3 hidden-state tensors)",
                plan.max_num_batched_tokens,
                plan.max_num_seqs.min(plan.max_num_batched_tokens),
                model.vocab_size
            ),
            source: "vllm/v1/worker/gpu_model_runner.py profile_run, _dummy_run, _dummy_sampler_run; sized against data/calibration/vllm.jsonl (0.19)",
        },
        Assumption {
            figure: "non_torch",
            formula: format!("{} per GPU: measured 0.25 GiB alone, 2.1 GiB with tensor parallelism, 0.07 GiB with pipeline parallelism only", crate::units::gib(w.non_torch)),
            source: "vLLM 0.19 'non-torch forward increase memory' (data/calibration/vllm.jsonl)",
        },
        Assumption {
            figure: "kv_cache",
            formula: format!(
                "blocks = (total × {} − weights − activations − non-torch{}) ÷ (page {} B × {} KV tensors); page = 2 × {} tokens × KV heads per rank × head dim × {} bytes",
                plan.utilization,
                if args.release.budgets_cuda_graphs() && !args.enforce_eager { " − CUDA graphs" } else { "" },
                w.page,
                w.groups.tensors,
                plan.block_size,
                config.kv_dtype.name()
            ),
            source: "vllm/v1/worker/gpu_worker.py determine_available_memory; vllm/v1/core/kv_cache_utils.py get_kv_cache_config; vllm/v1/kv_cache_interface.py",
        },
    ];
    if args.release.budgets_cuda_graphs() && !args.enforce_eager {
        a.push(Assumption {
            figure: "cuda_graphs",
            formula: "estimate: 0.35 GiB + 17 MiB per decoder layer on the worker (±0.3 GiB between models)".into(),
            source: "0.19 'Estimated CUDA graph memory' lines (data/calibration/vllm.jsonl); charged from 0.20 (vllm/envs.py)",
        });
    }
    if !args.utilization_given && args.release.minor >= 20 {
        a.push(Assumption {
            figure: "usable",
            formula: "vLLM 0.20 and later default --gpu-memory-utilization to 0.92".into(),
            source: "vllm/config/cache.py",
        });
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    fn h100() -> Gpu {
        catalogue().gpu("h100").unwrap().clone()
    }

    fn args19() -> VllmArgs {
        let mut a = VllmArgs::new(Release::parse("0.19.0").unwrap());
        a.utilization_given = true;
        a
    }

    #[test]
    fn release_rules() {
        assert_eq!(
            Release::parse("v0.19.1").unwrap(),
            Release {
                minor: 19,
                patch: 1
            }
        );
        assert!(Release::parse("0.6.3.post1")
            .unwrap_err()
            .contains("not modelled"));
        assert!(Release::parse("banana").is_err());
        assert_eq!(Release::parse("0.19").unwrap().default_utilization(), 0.90);
        assert_eq!(Release::parse("0.20").unwrap().default_utilization(), 0.92);
        assert!(!Release::parse("0.19").unwrap().budgets_cuda_graphs());
        assert!(Release::parse("0.20").unwrap().budgets_cuda_graphs());
    }

    #[test]
    fn page_bytes_by_hand() {
        let cat = catalogue();
        // Llama-3.1-8B, bf16 KV, TP 1: 2 × 16 × 8 heads × 128 × 2 B = 65,536 B per layer.
        let llama = cat.model("llama-3.1-8b").unwrap();
        assert_eq!(page_bytes(llama, KvDtype::Bf16, 1, 16), 65_536);
        // TP 4: 2 heads per rank → 16,384 B. TP 16 (more ranks than 8 heads): 1 head → 8,192 B.
        assert_eq!(page_bytes(llama, KvDtype::Bf16, 4, 16), 16_384);
        assert_eq!(page_bytes(llama, KvDtype::Bf16, 16, 16), 8_192);
        // fp8 KV halves it: 32,768 B.
        assert_eq!(page_bytes(llama, KvDtype::Fp8, 1, 16), 32_768);
        // DeepSeek-V3 MLA, block 64: 64 × (512 + 64) × 2 B = 73,728 B on every rank.
        let ds = cat.model("deepseek-v3").unwrap();
        assert_eq!(block_size(ds, None), 64);
        assert_eq!(page_bytes(ds, KvDtype::Bf16, 8, 64), 73_728);
    }

    #[test]
    fn sampler_and_rope_by_hand() {
        let llama = catalogue().model("llama-3.1-8b").unwrap();
        // 1024 requests × 128,256 vocab × (2 + 4 + 4 + 4) B = 1,838,678,016 B, plus
        // 3 × 8192 × 4096 × 2 B = 201,326,592 B → 2,040,004,608 B (1.90 GiB; logged 1.89).
        assert_eq!(sampler_peak_bytes(llama, 1024, 8192, 2), 2_040_004_608);
        // fp32 model: no copy, 4 + 4 + 4 B per logit: 131,334,144 × 12 = 1,576,009,728 B, plus
        // 3 × 8192 × 4096 × 4 B = 402,653,184 B.
        assert_eq!(sampler_peak_bytes(llama, 1024, 8192, 4), 1_978_662_912);
        // Rotary cache: 131,072 positions × 128 × 2 B = 33,554,432 B (the 0.03 GiB between
        // 8.03e9 × 2 B = 14.96 GiB of parameters and the logged 14.99 GiB).
        assert_eq!(rope_cache_bytes(llama, 2), 33_554_432);
    }

    #[test]
    fn forward_peak_by_hand() {
        let llama = catalogue().model("llama-3.1-8b").unwrap();
        // 8192 tokens × (6 × 4096 + 3 × 14336) × 2 B = 8192 × 67,584 × 2 = 1,107,296,256 B
        // (1.03 GiB; the PP0 worker of the 0.19 logs shows 1.10 GiB).
        assert_eq!(forward_peak_bytes(llama, 8192, 1, 2), 1_107_296_256);
    }

    #[test]
    fn batch_defaults_by_card() {
        let cat = catalogue();
        let r19 = Release::parse("0.19").unwrap();
        let r10 = Release::parse("0.10").unwrap();
        assert_eq!(batch_defaults(cat.gpu("h100").unwrap(), r19), (1024, 8192));
        assert_eq!(batch_defaults(cat.gpu("a10g").unwrap(), r19), (256, 2048));
        // A100 80GB: large defaults before 0.11, small from 0.11.
        assert_eq!(
            batch_defaults(cat.gpu("a100-80gb").unwrap(), r10),
            (1024, 8192)
        );
        assert_eq!(
            batch_defaults(cat.gpu("a100-80gb").unwrap(), r19),
            (256, 2048)
        );
    }

    #[test]
    fn llama_8b_on_h100_matches_the_019_log() {
        // vllm.jsonl: Llama-3.1-8B-Instruct, bf16, H100, util 0.95, 0.19: 29,751 blocks,
        // 476,016 tokens, 58.11x at 8192.
        let llama = catalogue().model("llama-3.1-8b-instruct").unwrap();
        let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 8192, 1);
        c.utilization = 0.95;
        let e = estimate(llama, &h100(), c, &args19()).unwrap();
        let blocks = e.kv_cache_blocks.unwrap() as f64;
        assert!(
            (blocks - 29_751.0).abs() / 29_751.0 < 0.03,
            "blocks {blocks}"
        );
        assert!(e.startup_error.is_none());
        // max concurrency = blocks / ceil(8192 / 16) = blocks / 512.
        let mc = e.engine_max_concurrency.unwrap();
        assert!((mc - blocks / 512.0).abs() < 0.01);
        // tokens = blocks × 16 (one group).
        assert_eq!(e.kv_cache_tokens.unwrap(), e.kv_cache_blocks.unwrap() * 16);
    }

    #[test]
    fn gemma2_groups_share_tensors() {
        // Gemma-2-27B: 46 layers, 23 sliding (4096) + 23 full, same page: group size 23, two
        // groups, 23 KV tensors. One 8192-token request needs 512 (full) + ceil(min(4095 + 8192,
        // 8192)/16) + 1 = 513 (sliding) = 1025 blocks — the 7335 / 1025 = 7.16x of the log.
        let g = catalogue().model("gemma-2-27b-it").unwrap();
        let groups = Groups::of(g, 0..46).unwrap();
        assert_eq!(groups.tensors, 23);
        assert_eq!(groups.groups(), 2);
        assert_eq!(groups.blocks_per_request(8192, 16, 8192), 1025);
    }

    #[test]
    fn startup_errors_name_the_fix() {
        let cat = catalogue();
        let llama = cat.model("llama-3.1-8b").unwrap();
        let a10g = cat.gpu("a10g").unwrap();
        // Utilization 1.0: free at start = total − 0.51 GiB < total → the free-memory error.
        let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 8192, 1);
        c.utilization = 1.0;
        let e = estimate(llama, a10g, c, &args19()).unwrap();
        let err = e.startup_error.unwrap();
        assert!(err
            .message
            .contains("on startup is less than desired GPU memory utilization"));
        assert!(err.fix.starts_with("--gpu-memory-utilization 0.9"));
        assert!(!e.fits);
        // A 70B model on one A10G: the weights do not load.
        let big = cat.model("llama-3.1-70b").unwrap();
        c.utilization = 0.9;
        let e = estimate(big, a10g, c, &args19()).unwrap();
        assert!(e
            .startup_error
            .unwrap()
            .message
            .contains("OutOfMemoryError"));
        // Llama-3.1-8B at its full 131,072 context on an A10G: one request does not fit.
        let long = Config {
            context: 131_072,
            ..c
        };
        let e = estimate(llama, a10g, long, &args19()).unwrap();
        let err = e.startup_error.unwrap();
        assert!(
            err.message.contains("To serve at least one request"),
            "{}",
            err.message
        );
        assert!(err.fix.starts_with("--max-model-len "));
        // Beyond the model's own limit.
        let e = estimate(
            llama,
            &h100(),
            Config {
                context: 200_000,
                ..c
            },
            &args19(),
        )
        .unwrap();
        assert_eq!(e.startup_error.unwrap().fix, "--max-model-len 131072");
    }

    #[test]
    fn tensor_parallel_splits_kv_heads_and_weights() {
        let llama = catalogue().model("llama-3.1-8b").unwrap();
        let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 8192, 1);
        c.utilization = 0.95;
        let one = estimate(llama, &h100(), c, &args19()).unwrap();
        c.parallel = Parallelism {
            tp: 2,
            pp: 1,
            dp: 1,
        };
        let two = estimate(llama, &h100(), c, &args19()).unwrap();
        // Half the KV heads per rank: each block costs half, and there is more room per GPU.
        assert!(two.kv_cache_blocks.unwrap() > 2 * one.kv_cache_blocks.unwrap());
        assert!(two.weights_bytes < one.weights_bytes / 2 + 600 * MIB);
        assert_eq!(two.non_torch_bytes, Some(21 * GIB / 10));
    }

    #[test]
    fn quantized_groups_must_divide_the_shard() {
        // Qwen2.5-7B: intermediate 18,944 = 148 × 128. TP 2: 9,472 = 74 × 128, fine;
        // TP 4: 4,736 = 37 × 128, fine; a 7B with 14,336 at TP 8 → 1,792 = 14 × 128, fine.
        // Falcon-7B 18,176 / 2 = 9,088 = 71 × 128 fine; /4 = 4,544 = 35.5 × 128 → refused.
        let falcon = catalogue().model("falcon-7b").unwrap();
        assert!(
            check_quant_alignment(falcon, WeightFormat::Awq { group: 128 }, 4)
                .unwrap_err()
                .contains("not a multiple of 128")
        );
        assert!(check_quant_alignment(falcon, WeightFormat::Awq { group: 128 }, 2).is_ok());
    }
}
