//! vLLM, V1 engine (0.10 to 0.34): how a worker turns the card's memory into KV-cache blocks,
//! and what it prints at start-up. Every rule cites the vLLM file it follows; what changes
//! from release to release is data (data/engines/vllm.toml, read by `rules`), explained in
//! docs/reference/vllm_releases.md.
//!
//! Per worker (vllm/v1/worker/gpu_worker.py `determine_available_memory`, 0.9.2+):
//!   available = total × gpu_memory_utilization − weights − activation peak − non-torch
//!               [− CUDA-graph estimate, 0.20 and later]
//!   blocks    = available ÷ (page bytes × KV tensors on the worker)   (kv_cache_utils.py)
//! and the engine keeps the minimum over workers (`get_kv_cache_configs`). 0.34 sizes the cache
//! from the memory free after warmup instead (`KvSizing::Extensible`).

mod flags;
pub(crate) mod hybrid;
mod rules;
mod weights;

pub use flags::{parse_speculative, quantization_format, Entrypoint, VllmFlags};
pub use hybrid::{HybridFlags, MambaCacheMode, MambaDtype, StateLayout};
pub use rules::{
    table as rules_table, Baseline, BatchDefaults, BatchTiers, CudagraphProfile, HybridDetection,
    KvGroupSize, KvSizing, KvTokensReport, Mrv2, ProfileLog, Rules, TopKTopP, UtilizationDefault,
    WindowInFlight,
};
pub use weights::{Lora, Speculative, SpeculativeMethod};

use crate::estimate::{
    signed_difference, Assumption, Config, Estimate, Setting, StageFigures, StartupError,
};
use crate::gpu::Gpu;
use crate::layer::{Recurrent, Span};
use crate::model::{Inventory, MlpKind, ModelDesc, TowerKind};
use crate::parallel::{weight_bytes_per_stage_with, ExpertSplit, Parallelism};
use crate::precision::{KvDtype, WeightFormat};
use crate::units::{div_ceil, GIB, MIB};

const WORKER: &str = "vllm/v1/worker/gpu_worker.py";
const KV_UTILS: &str = "vllm/v1/core/kv_cache_utils.py";

/// A vLLM release, 0.minor.patch. Only the V1 engine (0.10 on) is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    pub minor: u32,
    pub patch: u32,
}

impl Release {
    pub const OLDEST: Release = Release {
        minor: 10,
        patch: 0,
    };
    /// The newest release whose source data/engines/vllm.toml was read from (a test checks the
    /// two agree).
    pub const NEWEST: Release = Release {
        minor: 34,
        patch: 0,
    };

    /// "0.19", "0.19.1", "v0.19.0", "latest".
    pub fn parse(text: &str) -> Result<Release, String> {
        if text.trim().eq_ignore_ascii_case("latest") {
            return Ok(Release::NEWEST);
        }
        let v = crate::engine::releases::Version::parse(text, "vLLM")?;
        let r = Release {
            minor: v.minor,
            patch: v.patch,
        };
        if r < Release::OLDEST {
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

    /// The release's rules (data/engines/vllm.toml).
    pub fn rules(&self) -> &'static Rules {
        Rules::of(*self)
    }

    /// `--gpu-memory-utilization` default: 0.90 up to 0.19, 0.92 from 0.20, 1.0 with 0.34's
    /// extensible KV cache (vllm/config/cache.py).
    pub fn default_utilization(&self) -> f64 {
        self.rules().default_utilization()
    }
}

/// The vLLM settings that change memory, beyond those in `Config` (weights ↔ --quantization/--dtype,
/// kv_dtype ↔ --kv-cache-dtype, context ↔ --max-model-len, parallel ↔ --tp/--pp/--dp,
/// utilization ↔ --gpu-memory-utilization, batch = the concurrent requests asked about).
/// `VllmFlags` (flags.rs) turns the command-line text into these.
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
    /// `vllm serve` or the offline `LLM` class: their batch defaults differ.
    pub entrypoint: Entrypoint,
    /// --enable-lora and its sizes.
    pub lora: Option<Lora>,
    /// --speculative-config.
    pub speculative: Option<Speculative>,
    /// VLLM_USE_V2_MODEL_RUNNER: None = the release's default for the model.
    pub model_runner_v2: Option<bool>,
    /// --enable-extensible-kv-cache / --no-enable-extensible-kv-cache (0.34); None = default.
    pub extensible_kv_cache: Option<bool>,
    /// --mamba-cache-dtype, --mamba-ssm-cache-dtype, --mamba-cache-mode, --enable-prefix-caching
    /// (hybrid and attention-free models).
    pub hybrid: HybridFlags,
    /// --skip-mm-profiling (0.10.1+): no multimodal encoder run in the profiling run.
    pub skip_mm_profiling: bool,
}

impl VllmArgs {
    /// Tokens `--speculative-config` proposes per step (0 without it): the state pages of a
    /// hybrid model keep that many more conv columns.
    pub fn num_speculative_tokens(&self) -> u64 {
        self.speculative
            .as_ref()
            .map_or(0, |s| s.num_speculative_tokens)
    }

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
            entrypoint: Entrypoint::Serve,
            lora: None,
            speculative: None,
            model_runner_v2: None,
            extensible_kv_cache: None,
            hybrid: HybridFlags::default(),
            skip_mm_profiling: false,
        }
    }

    /// Whether the KV cache is sized after warmup (0.34's extensible KV cache, on by default).
    pub fn extensible(&self, rules: &Rules) -> bool {
        rules.kv_sizing == KvSizing::Extensible && self.extensible_kv_cache != Some(false)
    }
}

/// Memory already held when a vLLM worker starts: the CUDA context and allocator of the
/// process. Measured in the 0.19 H100 logs: "Free memory on device (78.68/79.19 GiB) on
/// startup" = 0.51 GiB (data/engines/vllm.toml `startup_used_mib`).
pub const STARTUP_USED_BYTES: u64 = 51 * GIB / 100;

/// Non-torch memory charged to the budget ("non-torch forward increase memory") per worker:
///  - a single worker: the cuBLAS handles and lazily loaded kernels of the profiling run
///    (0.13 GiB on 0.11–0.17), plus what the CUDA-graph memory profile leaves outside torch when
///    it runs inside the profiling context (0.18–0.26: +0.12 GiB; gpu_worker.py);
///  - tensor parallelism: NCCL's buffers, allocated lazily at the first collective of the
///    profiling run: 1.85 GiB per GPU with NVLink SHARP (NVSwitch + Hopper or newer), 0.08 GiB
///    otherwise; and up to 0.10, whose baseline is taken before the distributed init, also the
///    custom all-reduce IPC buffers (2 × 8 MiB, custom_all_reduce.py);
///  - pipeline parallelism alone: 0.07 GiB.
///
/// The constants are observations with their records in data/engines/vllm.toml.
pub fn non_torch_bytes(par: &Parallelism, rules: &Rules, gpu: &Gpu, enforce_eager: bool) -> u64 {
    let t = rules::table();
    let single = t.constant("non_torch_base_mib")
        + if rules.cudagraph_profile == CudagraphProfile::InsideProfile && !enforce_eager {
            t.constant("cudagraph_profile_residue_mib")
        } else {
            0
        };
    let nccl = if gpu.has_nvls() {
        t.constant("nccl_nvls_mib")
    } else {
        t.constant("nccl_p2p_mib")
    };
    let before_init = rules.baseline == Baseline::BeforeDistributedInit;
    if par.tp > 1 {
        let custom_all_reduce = if before_init && custom_all_reduce_enabled(par.tp, gpu) {
            2 * 8 * MIB
        } else {
            0
        };
        single + nccl + custom_all_reduce
    } else if par.pp > 1 {
        t.constant("non_torch_pipeline_mib")
    } else if par.dp > 1 && before_init {
        single + nccl
    } else {
        single
    }
}

/// vLLM's custom all-reduce: world sizes 2, 4, 6, 8; beyond two GPUs only when every pair is
/// NVLink-connected (custom_all_reduce.py `CustomAllreduce.__init__`: "not supported on more
/// than two PCIe-only GPUs").
pub fn custom_all_reduce_enabled(tp: u64, gpu: &Gpu) -> bool {
    use crate::gpu::Interconnect;
    matches!(tp, 2 | 4 | 6 | 8)
        && (tp == 2
            || matches!(
                gpu.interconnect,
                Interconnect::Nvswitch | Interconnect::Nvlink
            ))
}

/// CUDA-graph memory estimate, charged from 0.20 (and measured after capture by 0.34's
/// extensible KV cache). An estimate from the 0.19 logs' "Estimated CUDA graph memory" lines
/// (0.49–1.82 GiB over 17 runs): a fixed 0.35 GiB graph pool plus 17 MiB per decoder layer on
/// the worker (51 PIECEWISE + 51 FULL graphs each capture every layer's kernels). Not exact: the
/// logged value varies ±0.3 GiB around it between models.
pub fn cuda_graph_bytes(layers_on_worker: u64, args: &VllmArgs, rules: &Rules) -> u64 {
    if args.enforce_eager || !(rules.cudagraph_charged || args.extensible(rules)) {
        return 0;
    }
    35 * GIB / 100 + 17 * MIB * layers_on_worker
}

/// `max_num_seqs` and `max_num_batched_tokens` defaults (vllm/engine/arg_utils.py
/// `get_batch_defaults`, `_set_default_args`):
///  - ≥ 160 GiB (from 0.28): 16384 tokens for `LLM` and `vllm serve`, 1024 sequences;
///  - ≥ 70 GiB and not an A100 (and, from 0.33, not a GB10): 16384 (`LLM`) / 8192 (serve) tokens,
///    1024 sequences;
///  - otherwise 8192 (`LLM`) / 2048 (serve) tokens, 256 sequences;
///
/// then up to 0.11 `max_num_seqs = min(seqs, tokens)`, and from 0.12 `max_num_batched_tokens =
/// min(max_num_seqs × max_model_len, tokens)` when the tokens were not given.
pub fn batch_defaults(
    gpu: &Gpu,
    rules: &Rules,
    entrypoint: Entrypoint,
    max_model_len: u64,
    given_seqs: Option<u64>,
    given_tokens: Option<u64>,
) -> (u64, u64) {
    let offline = entrypoint == Entrypoint::Offline;
    let big = gpu.memory_bytes >= 70 * GIB && !gpu.name_contains("a100");
    let huge = gpu.memory_bytes >= 160 * GIB;
    let gb10 = gpu.compute_capability == "12.1";
    let (seqs, tokens) = match rules.batch_tiers {
        BatchTiers::Tier160Then70NotA100 | BatchTiers::Tier160Then70NotA100NotGb10 if huge => {
            (1024, 16384)
        }
        BatchTiers::Tier160Then70NotA100NotGb10 if big && !gb10 => {
            (1024, if offline { 16384 } else { 8192 })
        }
        BatchTiers::Tier160Then70NotA100NotGb10 => (256, if offline { 8192 } else { 2048 }),
        _ if big => (1024, if offline { 16384 } else { 8192 }),
        _ => (256, if offline { 8192 } else { 2048 }),
    };
    match rules.batch_defaults {
        BatchDefaults::SeqsCappedByTokens => {
            let t = given_tokens.unwrap_or(tokens);
            (given_seqs.unwrap_or(seqs.min(t)), t)
        }
        BatchDefaults::TokensCappedBySeqsTimesLen => {
            let s = given_seqs.unwrap_or(seqs);
            (
                s,
                given_tokens.unwrap_or(tokens.min(s.saturating_mul(max_model_len))),
            )
        }
    }
}

/// Tokens per KV block: 16 on CUDA, 64 for MLA models (FlashMLA)
/// (vllm/platforms/cuda.py `check_and_update_config`; from 0.19 the attention backend's
/// `get_preferred_block_size`, platforms/interface.py).
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
        // DeepSeek-V3.2: the fp8 cache is FlashMLA-sparse's "fp8_ds_mla" layout, 656 bytes a
        // token (512 fp8 latent values, 4 fp32 scales, 64 bf16 rope values;
        // @v0.19.0:vllm/model_executor/layers/attention/mla_attention.py converts fp8 to it,
        // kv_cache_interface.py MLAAttentionSpec), and every layer adds its indexer's key
        // cache (`DeepseekV32IndexerCache`, deepseek_v2.py): head_dim fp8 values + one fp32
        // scale per 128 (quant_block_size), a spec of the same block size whose page joins
        // the layer's (UniformTypeKVCacheSpecs sums them).
        Some(a) if a.latent.is_some() && a.indexer.is_some() => {
            let latent = if kv == KvDtype::Fp8 && a.k_width() == 512 && a.v_width() == 64 {
                656
            } else {
                kv.row_bytes(a.k_width() + a.v_width())
            };
            let d = a.indexer_width();
            latent.saturating_add(d + d / 128 * 4).saturating_mul(block)
        }
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
/// (vllm/model_executor/layers/rotary_embedding `_compute_cos_sin_cache`, then `.to(dtype)`);
/// gpt-oss asks for float32 (vllm/model_executor/models/gpt_oss.py `get_rope(...,
/// dtype=torch.float32)`). Models with learned positions have none.
pub fn rope_cache_bytes(model: &ModelDesc, activation_bytes: u64) -> u64 {
    let rotary = model.first_attention().map_or(0, |a| a.rotary_dim);
    let bytes = if weights::is_gpt_oss(model) {
        4
    } else {
        activation_bytes
    };
    model
        .max_context
        .saturating_mul(rotary)
        .saturating_mul(bytes)
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

/// The model runner the profile runs on: V1's `GPUModelRunner` or Model Runner V2, as the
/// release decides by default (vllm/config/vllm.py `use_v2_model_runner`).
pub fn uses_model_runner_v2(model: &ModelDesc, weights: WeightFormat, rules: &Rules) -> bool {
    if rules.mrv2 == Mrv2::Never {
        return false;
    }
    let family = model.family.to_ascii_lowercase();
    let moe = model.moe.is_some();
    let quantized = model.quantization.is_some()
        || !matches!(
            weights,
            WeightFormat::Bf16 | WeightFormat::F16 | WeightFormat::F32
        );
    let hybrid = model.has_recurrent_layers();
    // Qwen3ForCausalLM: the dense Qwen3 family (catalogue "Qwen3", config.json model_type "qwen3").
    let qwen3 = family == "qwen3";
    let llama_or_mistral = family.starts_with("llama")
        || family.starts_with("code llama")
        || family.starts_with("mistral");
    match rules.mrv2 {
        Mrv2::Never => false,
        Mrv2::Qwen3Dense => qwen3 && !moe && !quantized,
        Mrv2::LlamaMistralQwen3Dense => (qwen3 || llama_or_mistral) && !moe && !quantized,
        Mrv2::Dense => !moe && !hybrid,
        Mrv2::All => true,
    }
}

/// Bytes per logit the dummy sampler run holds at its peak, and whether it allocates the
/// Triton top-k/top-p buffer.
///  - V1 runner, sort path (≤ 0.16, or fewer than 8 requests): the logits in the model dtype,
///    their fp32 copy (none for fp32 models), and torch.sort's working set over [requests,
///    vocab]: sorted values (4 B) and indices (8 B), the segmented sort's reverse indices (8 B)
///    and CUB's double buffer of keys and values (12 B) (vllm/v1/sample/ops/topk_topp_sampler.py
///    `apply_top_k_top_p`; PyTorch aten/src/ATen/native/cuda/SortStable.cu
///    `segmented_sort_pairs`): 38 B for bf16.
///  - V1 runner, Triton path (0.17+): logits, fp32 copy, softmax probabilities and the
///    exponential noise (`random_sample`): 14 B for bf16.
///  - Model Runner V2: the default pass keeps the logits as they are (sampler.py
///    `apply_sampling_params` returns early); from 0.33 a second pass with every sampling
///    parameter adds an fp32 copy and log-probabilities (an estimate: no record yet).
pub fn sampler_bytes_per_logit(
    activation_bytes: u64,
    requests: u64,
    rules: &Rules,
    v2: bool,
) -> (u64, bool) {
    let copy = if activation_bytes == 4 { 0 } else { 4 };
    if v2 {
        return if rules.mrv2_warmup_pass {
            (activation_bytes + copy + 4, true)
        } else {
            (activation_bytes, false)
        };
    }
    match rules.top_k_top_p {
        TopKTopP::Triton if requests >= 8 => (activation_bytes + copy + 4 + 4, true),
        _ => (activation_bytes + copy + 4 + 8 + 8 + 12, false),
    }
}

/// Rows of the Triton top-k/top-p kernel's cached buffer: one per program, min(SMs, requests),
/// rounded up to a power of two but not beyond the SM count (topk_topp_triton.py
/// `apply_top_k_top_p_triton`). Unknown SM counts take the H100's 132.
pub fn triton_buffer_rows(gpu: &Gpu, requests: u64) -> u64 {
    let sms = if gpu.sm_count > 0 { gpu.sm_count } else { 132 };
    sms.min(requests).next_power_of_two().min(sms)
}

/// Peak of the profiling sampler run on the last pipeline stage (gpu_model_runner.py
/// `_dummy_sampler_run`): the forward pass's hidden states [tokens, hidden] are still
/// referenced, the logits [requests, vocab] go through the sampler (`sampler_bytes_per_logit`),
/// plus the Triton buffer where it applies, plus 48 MiB the profile holds besides (cuBLAS
/// workspaces, attention metadata; `sampler_residue_mib` in data/engines/vllm.toml, read on 13
/// records of 0.19 and checked on 0.11, 0.15 and 0.17).
pub fn sampler_peak_bytes(
    model: &ModelDesc,
    requests: u64,
    tokens: u64,
    activation_bytes: u64,
    rules: &Rules,
    v2: bool,
    gpu: &Gpu,
) -> u64 {
    let (per_logit, triton) = sampler_bytes_per_logit(activation_bytes, requests, rules, v2);
    let logits = requests.saturating_mul(model.vocab_size);
    let buffer = if triton {
        triton_buffer_rows(gpu, requests).saturating_mul(model.vocab_size) * 4
    } else {
        0
    };
    logits
        .saturating_mul(per_logit)
        .saturating_add(buffer)
        .saturating_add(
            tokens
                .saturating_mul(model.hidden_size)
                .saturating_mul(activation_bytes),
        )
        .saturating_add(rules::table().constant("sampler_residue_mib"))
}

/// One kind of KV layer on a worker: full attention, or local attention with its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Full,
    Window(u64),
    Chunk(u64),
    /// Mamba / linear-attention state (`MambaSpec`), one kind per mixer.
    State(crate::layer::RecurrentKind),
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
    /// Layers of each kind on the worker.
    counts: Vec<(Kind, u64)>,
    size: KvGroupSize,
    /// The state layout of hybrid and attention-free models.
    state: Option<StateLayout>,
}

impl Groups {
    fn of(
        model: &ModelDesc,
        layers: std::ops::Range<u64>,
        size: KvGroupSize,
    ) -> Result<Groups, String> {
        let mut counts: Vec<(Kind, u64)> = Vec::new();
        let mut page: Option<(u64, u64)> = None;
        for i in layers {
            let layer = model.layer(i);
            // A recurrent mixer registers a MambaSpec layer; a layer with both (Falcon-H1's
            // parallel attention and Mamba) registers both.
            if let Some(r) = &layer.recurrent {
                let kind = Kind::State(r.kind);
                match counts.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((kind, 1)),
                }
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
        Ok(Groups::from_counts(counts, size))
    }

    fn from_counts(counts: Vec<(Kind, u64)>, size: KvGroupSize) -> Groups {
        if counts.len() <= 1 {
            let tensors = counts.first().map(|c| c.1).unwrap_or(0);
            return Groups {
                kinds: counts.iter().map(|&(k, _)| (k, 1)).collect(),
                tensors,
                counts,
                size,
                state: None,
            };
        }
        let min = counts.iter().map(|c| c.1).min().unwrap_or(1).max(1);
        let max = counts.iter().map(|c| c.1).max().unwrap_or(1).max(1);
        let group_size = match size {
            KvGroupSize::MaxWithin1_5x if (max as f64) < min as f64 * 1.5 => max,
            _ => min,
        };
        Groups {
            size,
            kinds: counts
                .iter()
                .map(|&(k, n)| (k, div_ceil(n, group_size)))
                .collect(),
            tensors: group_size,
            counts,
            state: None,
        }
    }

    /// A speculative drafter's attention layers (EAGLE head, MTP layers, a draft model) join
    /// the full-attention layers of the worker's KV cache (same page size).
    fn add_full_layers(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        let mut counts = std::mem::take(&mut self.counts);
        match counts.iter_mut().find(|(k, _)| *k == Kind::Full) {
            Some((_, c)) => *c += n,
            None => counts.push((Kind::Full, n)),
        }
        let state = self.state;
        *self = Groups::from_counts(counts, self.size);
        self.state = state;
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
                    Kind::State(_) => self.state.map_or(1, |s| s.blocks_per_request(len)),
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
    extras: Vec<Extra>,
}

/// Everything the profile computes for one configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    workers: Vec<Worker>,
    pub block_size: u64,
    pub max_num_seqs: u64,
    pub max_num_batched_tokens: u64,
    /// Tokens scheduled but not yet freed that sliding-window and chunked-local layers keep
    /// besides their window (`max_in_flight_tokens`, 0.26+; max_num_batched_tokens before).
    pub in_flight_tokens: u64,
    pub utilization: f64,
    pub requested_bytes: u64,
    pub num_blocks: u64,
    limiting: usize,
    pub rules: &'static Rules,
    /// Whether the profile ran on Model Runner V2.
    pub model_runner_v2: bool,
    /// Whether the KV cache is sized after warmup (0.34's extensible KV cache).
    pub extensible: bool,
    /// Whether the block size was raised for a state no layer keeps (a hybrid model class whose
    /// layers are all attention, `hybrid_detection` "model_class": granite-4.0-micro on 0.11.0).
    pub unused_state_block: bool,
}

/// Weights vLLM allocates beside the checkpoint's tensors on a worker (weights.rs), in bytes
/// (negative when vLLM's layout is smaller than the generic count).
#[derive(Debug, Clone)]
struct Extra {
    name: &'static str,
    bytes: i64,
    detail: String,
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
        let rules = args.release.rules();
        let (max_num_seqs, max_num_batched_tokens) = batch_defaults(
            gpu,
            rules,
            args.entrypoint,
            config.context,
            args.max_num_seqs,
            args.max_num_batched_tokens,
        );
        let block = block_size(model, args.block_size);
        let state = state_layout(model, config, args, rules, block)?;
        let unused = unused_state_block(model, config, args, rules, block)?;
        let block = state.map_or(unused.unwrap_or(block), |s| s.block_size);
        let extensible = args.extensible(rules);
        let utilization = if args.utilization_given {
            config.utilization
        } else {
            rules.default_utilization_for(extensible)
        };
        let requested_bytes = (gpu.memory_bytes as f64 * utilization).floor() as u64;
        let experts = if args.expert_parallel {
            ExpertSplit::ExpertParallel {
                ep: par.check_expert_parallel(model)?,
            }
        } else {
            ExpertSplit::TensorParallel
        };
        if args.speculative.is_some() && par.pp > 1 {
            return Err("vLLM does not run speculative decoding with pipeline parallelism (vllm/config/speculative.py); use --pp 1".into());
        }
        let weights = weight_bytes_per_stage_with(model, inv, config.weights, &par, experts);
        let rope = rope_cache_bytes(model, args.activation_bytes);
        let v2 = args
            .model_runner_v2
            .unwrap_or_else(|| uses_model_runner_v2(model, config.weights, rules));
        // gpt-oss MXFP4 experts in the layout of the GPU's MoE backend (weights.rs).
        let mxfp4 = (config.weights == WeightFormat::Mxfp4).then(|| {
            let backend = weights::Mxfp4Backend::of(gpu, rules.mxfp4_triton);
            (
                backend,
                weights::mxfp4_expert_delta(model, backend, &par, experts, rules.mxfp4_triton),
            )
        });
        let ranges = par.stages(model.num_layers);
        let last = ranges.len() - 1;
        let ab = args.activation_bytes;
        // The profile runs `min(max_num_seqs, max_num_batched_tokens)` requests (gpu_model_runner.py `_dummy_run`).
        let requests = max_num_seqs.min(max_num_batched_tokens);
        let startup_used = rules::table().constant("startup_used_mib");
        let mut workers = Vec::with_capacity(ranges.len());
        for (s, range) in ranges.iter().enumerate() {
            let layers = range.end - range.start;
            let mut extras = Vec::new();
            if let Some((backend, delta)) = mxfp4 {
                let moe_layers = range
                    .clone()
                    .filter(|&i| model.layer(i).ffn.moe().is_some())
                    .count() as i64;
                extras.push(Extra {
                    name: "mxfp4_experts",
                    bytes: delta.saturating_mul(moe_layers),
                    detail: format!(
                        "MXFP4 experts as the {} backend lays them out",
                        backend.name()
                    ),
                });
            }
            let vision = if s == 0 {
                weights::replicated_vision_extra(model, inv, config.weights, par.tp)
            } else {
                0
            };
            if vision > 0 {
                extras.push(Extra {
                    name: "vision_encoder",
                    bytes: vision as i64,
                    detail: "the Mistral-format Pixtral encoder, not TP-sharded (pixtral.py VisionTransformer)".into(),
                });
            }
            if let Some(l) = &args.lora {
                extras.push(Extra {
                    name: "lora",
                    bytes: l.bytes(model, par.tp, layers, ab, args.release) as i64,
                    detail: format!(
                        "{} LoRA slot(s) of rank {} on {layers} layers",
                        l.max_loras, l.max_lora_rank
                    ),
                });
            }
            if let (Some(sp), true) = (&args.speculative, s == last) {
                extras.push(Extra {
                    name: "speculative",
                    bytes: sp.weight_bytes(model, config.weights, par.tp) as i64,
                    detail: format!("drafter: {}", sp.describe()),
                });
            }
            let forward = forward_peak_bytes(model, max_num_batched_tokens, par.tp, ab);
            let activation = if s == last {
                // The last stage samples; with PP it also still holds the hidden states and
                // residual received from the stage before (IntermediateTensors).
                let received = if par.pp > 1 {
                    2 * max_num_batched_tokens * model.hidden_size * ab
                } else {
                    0
                };
                // With speculative decoding the dummy sampler run also builds the rejection
                // sampler's target logits, [requests × 1 draft token, vocab] in the model dtype
                // (gpu_model_runner.py `_dummy_sampler_run`).
                let rejection = if args.speculative.is_some() {
                    requests * model.vocab_size * ab
                } else {
                    0
                };
                forward.max(
                    sampler_peak_bytes(model, requests, max_num_batched_tokens, ab, rules, v2, gpu)
                        .saturating_add(received)
                        .saturating_add(rejection),
                )
            } else {
                forward
            };
            let non_torch = non_torch_bytes(&par, rules, gpu, args.enforce_eager);
            let cuda_graph = cuda_graph_bytes(layers, args, rules);
            let extra: i64 = extras.iter().map(|e| e.bytes).sum();
            let w = (weights[s].saturating_add(rope) as i64)
                .saturating_add(extra)
                .max(0) as u64;
            let available = if extensible {
                // vllm/v1/worker/extensible_kv_cache.py `measure_kv_cache_bytes`: everything
                // resident after warmup and capture, then a margin of max(1 GiB, 0.75 × the
                // transient peak) and the peak itself kept free.
                let non_kv = w.saturating_add(non_torch).saturating_add(cuda_graph);
                let headroom =
                    signed_difference(gpu.memory_bytes.saturating_sub(startup_used), non_kv);
                let margin = (GIB as i64).max((activation as f64 * 0.75) as i64);
                (signed_difference(requested_bytes, non_kv).min(headroom - margin))
                    .saturating_sub(activation as i64)
            } else {
                let used = w
                    .saturating_add(activation)
                    .saturating_add(non_torch)
                    .saturating_add(cuda_graph);
                signed_difference(requested_bytes, used)
            };
            let mut groups = Groups::of(model, range.clone(), rules.kv_group_size)?;
            groups.state = state;
            if let (Some(sp), true) = (&args.speculative, s == last) {
                groups.add_full_layers(sp.kv_layers());
            }
            // Hybrid models: the state page is padded to the attention page
            // (`mamba_page_size_padded`); attention-free models keep the state page.
            let page = match page_bytes(model, config.kv_dtype, par.tp, block) {
                0 => state.map_or(0, |s| s.state_page),
                p => p,
            };
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
                extras,
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
            in_flight_tokens: max_num_batched_tokens
                .saturating_mul(concurrent_batches(rules, args, par.pp, v2)),
            utilization,
            requested_bytes,
            num_blocks,
            limiting,
            rules,
            model_runner_v2: v2,
            extensible,
            unused_state_block: unused.is_some(),
        })
    }

    fn first(&self) -> &Worker {
        &self.workers[0]
    }

    /// Blocks one request of `len` tokens needs (the scheduler's view: first worker's groups).
    pub fn blocks_per_request(&self, len: u64) -> u64 {
        self.first()
            .groups
            .blocks_per_request(len, self.block_size, self.in_flight_tokens)
            .max(1)
    }

    /// "Maximum concurrency for L tokens per request: X x" (kv_cache_utils.py
    /// `_report_kv_cache_config`: num_blocks ÷ blocks one request needs).
    pub fn max_concurrency(&self, len: u64) -> f64 {
        self.num_blocks as f64 / self.blocks_per_request(len) as f64
    }

    /// "GPU KV cache size: N tokens".
    pub fn kv_cache_tokens(&self, len: u64) -> u64 {
        if self.rules.kv_tokens_report == KvTokensReport::Concurrency {
            (self.max_concurrency(len) * len as f64) as u64
        } else {
            // The smallest block size of any group: the state groups' is max_model_len in
            // mode "none" (`_report_kv_cache_config`: min over kv_cache_groups).
            let groups = &self.first().groups;
            let min_block = match groups.state {
                Some(s)
                    if groups
                        .kinds
                        .iter()
                        .all(|(k, _)| matches!(k, Kind::State(_))) =>
                {
                    s.state_block_size(len)
                }
                Some(s) => self.block_size.min(s.state_block_size(len)),
                None => self.block_size,
            };
            (self.num_blocks / groups.groups().max(1)).saturating_mul(min_block)
        }
    }

    /// KV bytes one request of `len` tokens needs on a worker (the check of
    /// `check_enough_kv_cache_memory` sums `max_memory_usage_bytes` over the worker's layers).
    fn request_bytes(&self, w: &Worker, len: u64) -> u64 {
        w.groups
            .blocks_per_request(len, self.block_size, self.in_flight_tokens)
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

/// Whether the plan's model has attention pages (hybrid) or only state pages (attention-free).
fn page_bytes_of_attention(plan: &Plan) -> u64 {
    if plan
        .first()
        .groups
        .kinds
        .iter()
        .all(|(k, _)| matches!(k, Kind::State(_)))
    {
        0
    } else {
        plan.first().page
    }
}

/// Batches in flight at once (vllm/config/vllm.py `max_concurrent_batches`, 0.26+): with async
/// scheduling (on by default from 0.26, off with draft-model and CPU n-gram speculation,
/// `VllmConfig.__post_init__`) 2 on Model Runner V1 without PP, PP + 1 on Model Runner V2 (and
/// on every runner from 0.34); the PP size without it. Before 0.26 the window specs reserve one
/// batch (`WindowInFlight::Batched`).
fn concurrent_batches(rules: &Rules, args: &VllmArgs, pp: u64, v2: bool) -> u64 {
    let async_scheduling = !matches!(
        args.speculative.as_ref().map(|s| &s.method),
        Some(SpeculativeMethod::DraftModel(_) | SpeculativeMethod::Ngram)
    );
    match rules.window_in_flight {
        WindowInFlight::Batched => 1,
        _ if !async_scheduling => pp.max(1),
        WindowInFlight::ConcurrentBatchesPpPlus1 => pp + 1,
        WindowInFlight::ConcurrentBatches if v2 => pp + 1,
        WindowInFlight::ConcurrentBatches if pp <= 1 => 2,
        WindowInFlight::ConcurrentBatches => pp,
    }
}

/// The state layout of a model with recurrent layers (hybrid or attention-free): its mamba cache
/// mode, state page and the attention block size raised to hold it (engine/vllm/hybrid.rs).
fn state_layout(
    model: &ModelDesc,
    config: &Config,
    args: &VllmArgs,
    rules: &Rules,
    block: u64,
) -> Result<Option<StateLayout>, String> {
    let inv = model.inventory();
    let mut recurrent = inv.kinds.iter().filter_map(|k| k.recurrent.as_ref());
    let Some(rec) = recurrent.next() else {
        return Ok(None);
    };
    let page = state_page(model, config, args, rules, rec)?;
    for other in recurrent {
        if state_page(model, config, args, rules, other)? != page {
            return Err(format!(
                "{}'s recurrent layers keep states of different sizes; vLLM sizes one state for the model (get_mamba_state_shape_from_config): use --engine generic",
                model.id
            ));
        }
    }
    raised_block(model, config, args, rules, rec, page, block).map(Some)
}

/// One sequence's state page of `state` on one TP rank (engine/vllm/hybrid.rs).
fn state_page(
    model: &ModelDesc,
    config: &Config,
    args: &VllmArgs,
    rules: &Rules,
    state: &Recurrent,
) -> Result<u64, String> {
    hybrid::state_page_bytes(
        model,
        state,
        config.parallel.tp,
        args.activation_bytes,
        &args.hybrid,
        rules,
        args.num_speculative_tokens(),
    )
}

/// The mamba cache mode of `state` and the attention block size raised so one attention page
/// holds its `state_page`: the same for the states layers keep and for the one a hybrid class
/// describes but no layer allocates.
fn raised_block(
    model: &ModelDesc,
    config: &Config,
    args: &VllmArgs,
    rules: &Rules,
    state: &Recurrent,
    state_page: u64,
    block: u64,
) -> Result<StateLayout, String> {
    let attn_1 = page_bytes(model, config.kv_dtype, config.parallel.tp, 1);
    let mode = hybrid::cache_mode(rules, &args.hybrid, state.kind, attn_1 == 0)?;
    let block_size = hybrid::unified_block_size(
        rules,
        model.mla.is_some(),
        mode,
        attn_1,
        state_page,
        block,
        state.chunk_size,
    );
    Ok(StateLayout {
        mode,
        state_page,
        block_size,
        speculative_blocks: args.num_speculative_tokens(),
    })
}

/// The attention block size vLLM raises for a hybrid model class none of whose layers keeps a
/// state (`model.unused_state`). Up to 0.11.0 `ModelConfig.is_hybrid` is the class's
/// (`hybrid_detection` "model_class"), so `HybridAttentionMambaModelConfig` raises the block until
/// one attention page holds the state page the config describes, although no layer allocates one
/// (granite-4.0-micro on 0.11.0: a 2,655,232 B Mamba-2 page over 2,048 B per token is 1,312
/// tokens). From 0.11.1 a config whose `layer_types` are all "attention" is not hybrid.
fn unused_state_block(
    model: &ModelDesc,
    config: &Config,
    args: &VllmArgs,
    rules: &Rules,
    block: u64,
) -> Result<Option<u64>, String> {
    let Some(u) = &model.unused_state else {
        return Ok(None);
    };
    let hybrid = match rules.hybrid_detection {
        HybridDetection::ModelClass => true,
        HybridDetection::LayerTypes => !u.layer_types_all_attention,
    };
    if !hybrid || model.has_recurrent_layers() {
        return Ok(None);
    }
    let page = state_page(model, config, args, rules, &u.state)?;
    raised_block(model, config, args, rules, &u.state, page, block).map(|l| Some(l.block_size))
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
    let mut e = Estimate::skeleton(model, inv, gpu, &config, "vllm");
    e.utilization = plan.utilization;
    let w = &plan.workers[plan.limiting];
    e.weights_bytes = w.weights;
    e.activation_bytes = w.activation;
    e.non_torch_bytes = Some(w.non_torch);
    e.cuda_graph_bytes = Some(w.cuda_graph);
    // 0.34's extensible KV cache keeps max(1 GiB, 0.75 × the transient peak) free besides.
    let margin = if plan.extensible {
        GIB.max((w.activation as f64 * 0.75) as u64)
    } else {
        0
    };
    e.overhead_bytes = w.non_torch + w.cuda_graph + margin;
    // DeepSeek-V3.2 under vLLM: the indexer's key cache is fp8 with fp32 scales (132 B a token
    // a layer), not transformers' bf16 row, so the per-token figure is vLLM's own.
    if inv
        .kinds
        .iter()
        .any(|k| k.attention.as_ref().is_some_and(|a| a.indexer.is_some()))
    {
        let caching = model
            .layers()
            .filter(|l| l.attention.as_ref().is_some_and(|a| a.caches()))
            .count() as u64;
        e.kv_bytes_per_token = page_bytes(model, config.kv_dtype, 1, 1).saturating_mul(caching);
    }
    e.block_size = Some(plan.block_size);
    e.kv_cache_blocks = Some(plan.num_blocks);
    e.kv_cache_tokens = Some(plan.kv_cache_tokens(len));
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
    let usable = if plan.extensible {
        plan.requested_bytes.min(
            gpu.memory_bytes
                .saturating_sub(rules::table().constant("startup_used_mib")),
        )
    } else {
        plan.requested_bytes
    };
    e.set_verdict(used.saturating_add(needed_kv), usable);
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
    // The multimodal encoder's share of the profiling run is not modelled: say so rather than
    // print a KV pool that is too large by it (docs/reference/vllm_releases.md §2.4).
    let encoder = model
        .towers
        .iter()
        .any(|t| matches!(t.kind, TowerKind::Vision | TowerKind::Audio));
    if encoder && !args.skip_mm_profiling {
        e.warnings.push(
            "vLLM's profiling run also runs the vision/audio encoder on its largest dummy inputs and holds their outputs in the encoder cache (gpu_model_runner.py profile_run); that peak is not modelled, so the KV pool may be a few percent too large (a Qwen3-VL 0.20 log: +6.4%); --skip-mm-profiling (vLLM 0.10.1+) makes vLLM skip it and these figures exact".into(),
        );
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
    let batch_src = format!(
        "default of vLLM {} for `{}` on a {} card (vllm/engine/arg_utils.py get_batch_defaults)",
        r.name(),
        args.entrypoint.name(),
        crate::units::gib(gpu.memory_bytes)
    );
    let mut v = vec![
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
            origin: if plan.first().groups.state.is_some() {
                "raised until one attention page holds a Mamba/linear-attention state page, a multiple of the kernel alignment (vllm/model_executor/models/config.py HybridAttentionMambaModelConfig; vllm/platforms/interface.py _align_hybrid_block_size from 0.20)".into()
            } else if plan.unused_state_block {
                "raised until one attention page holds the Mamba state page config.json describes, although no layer keeps one: the model class is hybrid, and this release decides from the class alone (vllm/config/model.py is_hybrid, layer_types checked from 0.11.1; HybridAttentionMambaModelConfig)".into()
            } else {
                origin(
                    args.block_size.is_some(),
                    "default (vllm/platforms/cuda.py; the attention backend's preferred size)",
                )
            },
        },
        Setting {
            name: "max_num_seqs",
            value: plan.max_num_seqs.to_string(),
            origin: origin(args.max_num_seqs.is_some(), &batch_src),
        },
        Setting {
            name: "max_num_batched_tokens",
            value: plan.max_num_batched_tokens.to_string(),
            origin: origin(args.max_num_batched_tokens.is_some(), &batch_src),
        },
        Setting {
            name: "entrypoint",
            value: args.entrypoint.name().into(),
            origin: "--vllm-entrypoint (serve: vllm serve; llm: the offline LLM class)".into(),
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
        Setting {
            name: "interconnect",
            value: gpu.interconnect.name().into(),
            origin: format!(
                "{} (data/gpus.toml, or --interconnect); NCCL NVLink SHARP: {}; custom all-reduce at TP {}: {}",
                gpu.id,
                if gpu.has_nvls() { "yes" } else { "no" },
                config.parallel.tp,
                if config.parallel.tp > 1 && custom_all_reduce_enabled(config.parallel.tp, gpu) {
                    "on"
                } else {
                    "off"
                }
            ),
        },
        Setting {
            name: "model_runner",
            value: if plan.model_runner_v2 { "v2" } else { "v1" }.into(),
            origin: origin(
                args.model_runner_v2.is_some(),
                "the release's default for this model (vllm/config/vllm.py use_v2_model_runner)",
            ),
        },
        Setting {
            name: "kv_cache_sizing",
            value: if plan.extensible {
                "extensible (after warmup)"
            } else {
                "profiling run"
            }
            .into(),
            origin: origin(
                args.extensible_kv_cache.is_some(),
                "the release's default (vllm/config/vllm.py, 0.34: extensible on CUDA)",
            ),
        },
    ];
    if let Some(st) = plan.first().groups.state {
        v.push(Setting {
            name: "mamba_cache_mode",
            value: st.mode.name().into(),
            origin: origin(
                args.hybrid.mamba_cache_mode.is_some() || args.hybrid.prefix_caching.is_some(),
                "the release's default for hybrid models (vllm/model_executor/models/config.py MambaModelConfig)",
            ),
        });
        v.push(Setting {
            name: "mamba_state_page",
            value: format!(
                "{} B per layer and sequence on each GPU, {}; {} per sequence in each state group",
                crate::units::thousands(st.state_page),
                if plan.first().page == st.state_page && page_bytes_of_attention(plan) == 0 {
                    "the page itself (no attention layers)".to_string()
                } else {
                    format!(
                        "padded to the {} B attention page of {} tokens",
                        crate::units::thousands(plan.first().page),
                        plan.block_size
                    )
                },
                match st.mode {
                    MambaCacheMode::All => "one page per block of context".to_string(),
                    _ => crate::units::count(st.blocks_per_request(config.context), "page"),
                }
            ),
            origin: "vllm/model_executor/layers/mamba/mamba_utils.py state shapes; HybridAttentionMambaModelConfig / Platform._align_hybrid_block_size".into(),
        });
    }
    if let Some(l) = &args.lora {
        v.push(Setting {
            name: "lora",
            value: format!(
                "max_loras {}, max_lora_rank {}, max_cpu_loras {}",
                l.max_loras,
                l.max_lora_rank,
                l.max_cpu_loras.unwrap_or(l.max_loras)
            ),
            origin: "--enable-lora (defaults vllm/config/lora.py; CPU LoRAs live in host memory)"
                .into(),
        });
    }
    if let Some(sp) = &args.speculative {
        v.push(Setting {
            name: "speculative",
            value: format!("{}, {} tokens", sp.describe(), sp.num_speculative_tokens),
            origin: "--speculative-config".into(),
        });
    }
    for w in plan.workers.iter().take(1) {
        for x in &w.extras {
            v.push(Setting {
                name: x.name,
                value: format!("{:+} B", x.bytes),
                origin: x.detail.clone(),
            });
        }
    }
    // Every release rule in force, with the file and function it comes from.
    v.extend(plan.rules.settings.iter().cloned());
    v
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
    // 2. Free memory at start-up below the requested share (gpu_worker.py `init_device`;
    // vllm/v1/worker/utils.py `request_memory` skips it with 0.34's extensible KV cache, whose
    // budget is only a cap).
    let free = total.saturating_sub(STARTUP_USED_BYTES);
    if free < plan.requested_bytes && !plan.extensible {
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
    // 3b. The profiling run itself runs out of memory: weights, what it allocates outside torch
    // and its peak beyond the memory free at start (gpu_model_runner.py `_dummy_sampler_run`
    // re-raises the sampler's OOM with its own message).
    let profiled = heaviest
        .weights
        .saturating_add(heaviest.non_torch)
        .saturating_add(heaviest.activation);
    if profiled > free {
        let requests = plan.max_num_seqs.min(plan.max_num_batched_tokens);
        let sampler = sampler_peak_bytes(
            model,
            requests,
            plan.max_num_batched_tokens,
            args.activation_bytes,
            plan.rules,
            plan.model_runner_v2,
            gpu,
        );
        let room = free.saturating_sub(heaviest.weights + heaviest.non_torch);
        return Some(if sampler >= heaviest.activation {
            // The largest max_num_seqs whose sampler peak fits the room left.
            let seqs = (1..=requests).rev().find(|&r| {
                sampler_peak_bytes(
                    model,
                    r,
                    plan.max_num_batched_tokens,
                    args.activation_bytes,
                    plan.rules,
                    plan.model_runner_v2,
                    gpu,
                ) <= room
            });
            StartupError {
                message: format!(
                    "RuntimeError: CUDA out of memory occurred when warming up sampler with {requests} dummy requests. Please try lowering `max_num_seqs` or `gpu_memory_utilization` when initializing the engine."
                ),
                source: "vllm/v1/worker/gpu_model_runner.py",
                fix: seqs
                    .map(|r| format!("--max-num-seqs {r}"))
                    .unwrap_or_else(tp_fix),
            }
        } else {
            StartupError {
                message: format!(
                    "torch.OutOfMemoryError: CUDA out of memory during the profiling run ({} GiB of activations for {} tokens, {} GiB free after the weights)",
                    gib2(heaviest.activation),
                    plan.max_num_batched_tokens,
                    gib2(room)
                ),
                source: "vllm/v1/worker/gpu_model_runner.py",
                fix: format!(
                    "--max-num-batched-tokens {}",
                    (plan.max_num_batched_tokens / 2).max(256)
                ),
            }
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
    let rules = &plan.rules;
    let requests = plan.max_num_seqs.min(plan.max_num_batched_tokens);
    let (per_logit, triton) =
        sampler_bytes_per_logit(args.activation_bytes, requests, rules, plan.model_runner_v2);
    let sampler_path = if plan.model_runner_v2 {
        "Model Runner V2 sampler"
    } else if triton {
        "Triton top-k/top-p (0.17+): logits + fp32 copy + probs + noise, and one [SMs, vocab] fp32 buffer"
    } else {
        "torch.sort top-k/top-p: logits + fp32 copy + sorted values and indices + reverse indices + CUB double buffer"
    };
    let charged = (rules.cudagraph_charged || plan.extensible) && !args.enforce_eager;
    let mut a = vec![
        Assumption {
            figure: "weights",
            formula: format!(
                "the tensors this worker loads in {} (TP-sharded, PP-split{}) + the rotary cos/sin cache, max_position {} × rotary dim{}{}",
                config.weights.name(),
                if args.expert_parallel { ", whole experts over TP × DP" } else { "" },
                model.max_context,
                w.extras
                    .iter()
                    .map(|x| format!(" + {} ({})", x.name, x.detail))
                    .collect::<String>(),
                if w.extras.is_empty() { "" } else { " (vllm weights.rs)" }
            ),
            source: "vLLM 'Model loading took' = DeviceMemoryProfiler delta (vllm/v1/worker/gpu_model_runner.py load_model: model, LoRA slots and drafter); rotary_embedding _compute_cos_sin_cache",
        },
        Assumption {
            figure: "activations",
            formula: format!(
                "max(forward pass over max_num_batched_tokens = {} tokens, sampler: {} requests × vocab {} × {} B ({sampler_path}) + the hidden states + 48 MiB)",
                plan.max_num_batched_tokens,
                requests,
                model.vocab_size,
                per_logit,
            ),
            source: "vllm/v1/worker/gpu_model_runner.py profile_run, _dummy_run, _dummy_sampler_run; vllm/v1/sample/ops/topk_topp_sampler.py; residue read on 0.19 and checked on 0.11, 0.15, 0.17 (data/engines/vllm.toml)",
        },
        Assumption {
            figure: "non_torch",
            formula: format!(
                "{} per GPU: 0.13 GiB for one worker{}{}",
                crate::units::gib(w.non_torch),
                if rules.cudagraph_profile == CudagraphProfile::InsideProfile && !args.enforce_eager {
                    " + 0.12 GiB left by the CUDA-graph memory profile (0.18–0.26)"
                } else {
                    ""
                },
                if config.parallel.tp > 1 {
                    " + NCCL buffers (1.85 GiB with NVLink SHARP on NVSwitch Hopper/Blackwell, 0.08 GiB otherwise)"
                } else if config.parallel.pp > 1 {
                    " (0.07 GiB with pipeline parallelism only)"
                } else {
                    ""
                }
            ),
            source: "observed constants with their records in data/engines/vllm.toml ('non-torch forward increase memory')",
        },
        Assumption {
            figure: "kv_cache",
            formula: if plan.extensible {
                format!(
                    "blocks = (min(total × {}, total − 0.51 GiB) − weights − non-torch − CUDA graphs − max(1 GiB, 0.75 × activations) − activations) ÷ (page {} B × {} KV tensors)",
                    plan.utilization, w.page, w.groups.tensors
                )
            } else {
                format!(
                    "blocks = (total × {} − weights − activations − non-torch{}) ÷ (page {} B × {} KV tensors); page = 2 × {} tokens × KV heads per rank × head dim × {} bytes",
                    plan.utilization,
                    if charged { " − CUDA graphs" } else { "" },
                    w.page,
                    w.groups.tensors,
                    plan.block_size,
                    config.kv_dtype.name()
                )
            },
            source: if plan.extensible {
                "vllm/v1/worker/extensible_kv_cache.py measure_kv_cache_bytes (0.34); vllm/v1/core/kv_cache_utils.py"
            } else {
                "vllm/v1/worker/gpu_worker.py determine_available_memory; vllm/v1/core/kv_cache_utils.py get_kv_cache_config; vllm/v1/kv_cache_interface.py"
            },
        },
    ];
    if charged {
        a.push(Assumption {
            figure: "cuda_graphs",
            formula: "estimate: 0.35 GiB + 17 MiB per decoder layer on the worker (±0.3 GiB between models)".into(),
            source: "0.19 'Estimated CUDA graph memory' lines (data/calibration/vllm.jsonl); charged from 0.20 (vllm/envs.py), measured after capture by 0.34's extensible KV cache",
        });
    }
    if !args.utilization_given && rules.default_utilization() != 0.90 {
        a.push(Assumption {
            figure: "usable",
            formula: format!(
                "vLLM {} defaults --gpu-memory-utilization to {}",
                args.release.name(),
                rules.default_utilization()
            ),
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
    fn release_parsing() {
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
        assert!(Release::parse("0.35").unwrap_err().contains("newer"));
        assert!(Release::parse("banana").is_err());
        assert_eq!(Release::parse("latest").unwrap(), Release::NEWEST);
        assert_eq!(Release::parse("0.19").unwrap().default_utilization(), 0.90);
        assert_eq!(Release::parse("0.20").unwrap().default_utilization(), 0.92);
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
        let h100 = h100();
        let r19 = Release::parse("0.19").unwrap().rules();
        let r11 = Release::parse("0.11").unwrap().rules();
        // 0.19, Triton top-k/top-p: 1024 requests × 128,256 vocab × (2 + 4 + 4 + 4) B =
        // 1,838,678,016 B; the Triton buffer has min(next_pow2(132), 132) = 132 rows × 128,256
        // × 4 B = 67,719,168 B; hidden states 8192 × 4096 × 2 B = 67,108,864 B; residue 48 MiB
        // = 50,331,648 B. Sum 2,023,837,696 B = 1.885 GiB (logged 1.89, vllm.jsonl:20).
        assert_eq!(
            sampler_peak_bytes(llama, 1024, 8192, 2, r19, false, &h100),
            2_023_837_696
        );
        // 0.11, torch.sort: 131,334,144 × 38 B = 4,990,697,472 + 67,108,864 + 50,331,648 =
        // 5,108,137,984 B = 4.757 GiB (logged 4.76, vllm.jsonl:53).
        assert_eq!(
            sampler_peak_bytes(llama, 1024, 8192, 2, r11, false, &h100),
            5_108_137_984
        );
        // fp32 model on 0.19: no fp32 copy, 4 + 4 + 4 B per logit = 1,576,009,728, buffer
        // 67,719,168, hidden 8192 × 4096 × 4 = 134,217,728, residue 50,331,648.
        assert_eq!(
            sampler_peak_bytes(llama, 1024, 8192, 4, r19, false, &h100),
            1_828_278_272
        );
        // Fewer than 8 requests take the sort path even on 0.19: 4 × 128,256 × 38 B.
        assert_eq!(sampler_bytes_per_logit(2, 4, r19, false), (38, false));
        // Model Runner V2 (default pass): the logits only.
        assert_eq!(sampler_bytes_per_logit(2, 1024, r19, true), (2, false));
        // The Triton buffer follows the SM count: an RTX 4090 (128 SMs) with 256 requests has
        // 128 rows; 100 requests on an H100: next_pow2(100) = 128 rows.
        let cat = catalogue();
        assert_eq!(triton_buffer_rows(cat.gpu("rtx-4090").unwrap(), 256), 128);
        assert_eq!(triton_buffer_rows(&h100, 100), 128);
        // Rotary cache: 131,072 positions × 128 × 2 B = 33,554,432 B (the 0.03 GiB between
        // 8.03e9 × 2 B = 14.96 GiB of parameters and the logged 14.99 GiB); gpt-oss keeps it in
        // float32: 131,072 × 64 × 4 = 33,554,432 B.
        assert_eq!(rope_cache_bytes(llama, 2), 33_554_432);
        assert_eq!(
            rope_cache_bytes(cat.model("gpt-oss-20b").unwrap(), 2),
            33_554_432
        );
    }

    #[test]
    fn forward_peak_by_hand() {
        let llama = catalogue().model("llama-3.1-8b").unwrap();
        // 8192 tokens × (6 × 4096 + 3 × 14336) × 2 B = 8192 × 67,584 × 2 = 1,107,296,256 B
        // (1.03 GiB; the PP0 worker of the 0.19 logs shows 1.10 GiB).
        assert_eq!(forward_peak_bytes(llama, 8192, 1, 2), 1_107_296_256);
    }

    #[test]
    fn batch_defaults_by_card_release_and_entrypoint() {
        let cat = catalogue();
        let rules = |v: &str| Release::parse(v).unwrap().rules();
        let serve = Entrypoint::Serve;
        let b = |g: &str, v: &str, e: Entrypoint, len: u64, s: Option<u64>, t: Option<u64>| {
            batch_defaults(cat.gpu(g).unwrap(), rules(v), e, len, s, t)
        };
        assert_eq!(b("h100", "0.19", serve, 8192, None, None), (1024, 8192));
        assert_eq!(b("a10g", "0.19", serve, 8192, None, None), (256, 2048));
        // The offline LLM class gets twice the tokens (arg_utils.py UsageContext.LLM_CLASS).
        assert_eq!(
            b("h100", "0.19", Entrypoint::Offline, 8192, None, None),
            (1024, 16384)
        );
        // A100 80GB stays on the small tier on every modelled release (0.10 included).
        assert_eq!(b("a100-80gb", "0.10", serve, 8192, None, None), (256, 2048));
        // ≥ 160 GiB from 0.28: 16384 tokens for serve too.
        assert_eq!(b("b200", "0.28", serve, 8192, None, None), (1024, 16384));
        assert_eq!(b("b200", "0.27", serve, 8192, None, None), (1024, 8192));
        // 0.12+: tokens capped by max_num_seqs × max_model_len (vllm.jsonl:55: max_num_seqs 1,
        // max_model_len 1024 → 1024 tokens).
        assert_eq!(
            b("rtx-4090", "0.15", Entrypoint::Offline, 1024, Some(1), None),
            (1, 1024)
        );
        // ≤ 0.11: sequences capped by tokens instead.
        assert_eq!(b("a10g", "0.11", serve, 8192, None, Some(100)), (100, 100));
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
        let groups = Groups::of(g, 0..46, KvGroupSize::MaxWithin1_5x).unwrap();
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
        // 0.19 on NVSwitch H100s: 133 + 123 (graph profile) + 1894 (NCCL NVLS) MiB = 2150 MiB.
        assert_eq!(two.non_torch_bytes, Some(2150 * MIB));
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
