//! The generic engine: a documented, engine-neutral model of activations and runtime overhead,
//! used when no engine is named. Every constant is a measurement with its source; engine
//! profiles (vllm.rs, llamacpp.rs, ...) replace these with each engine's own accounting.

use crate::model::{MlpKind, ModelDesc};
use crate::units::{GIB, MIB};

/// CUDA context with lazy module loading (CUDA ≥ 11.7): "around 400MB" — PyTorch maintainer
/// ptrblck, pytorch/pytorch#109888; measured 287 MB (PR #86509) to 426 MiB (unsloth-zoo #1053).
pub const CUDA_CONTEXT_BYTES: u64 = 400 * MIB;

/// Non-torch runtime buffers at one GPU (cuBLAS/cuBLASLt workspaces, allocator pools): vLLM 0.19
/// logs 0.24–0.27 GiB of non-torch memory at TP=1 on H100 (data/calibration/vllm.jsonl).
pub const RUNTIME_BUFFERS_BYTES: u64 = GIB / 4;

/// Collective-communication buffers per GPU when a model spans GPUs (NCCL, custom all-reduce):
/// vLLM 0.19 logs ≈2.0–2.2 GiB of non-torch memory per GPU at TP=2/4 on H100
/// (docs/reference/vllm_memory_model.md §2.3).
pub const COMMUNICATION_BYTES: u64 = 2 * GIB;

/// Prefill chunk: tokens processed in one forward pass. 2048 is llama.cpp's default n_batch
/// (common.h) and vLLM's chunked-prefill default up to 0.6 (vllm/config.py SchedulerConfig).
pub const DEFAULT_PREFILL_CHUNK: u64 = 2048;

/// Share of the card the engine may fill: 0.90 is vLLM's `--gpu-memory-utilization` default up
/// to 0.19 (vllm/config/cache.py); the rest is headroom for fragmentation and other processes.
pub const DEFAULT_UTILIZATION: f64 = 0.90;

/// Bytes of one activation element: the compute dtype, bf16/fp16, for every weight format
/// (quantized kernels dequantize to 16-bit).
const ACTIVATION_BYTES: u64 = 2;

/// Peak transient memory of one forward pass over `tokens` tokens on one of `tp` ranks, with
/// `sequences` of them producing logits.
///
/// Model (an estimate, not a measurement): with fused/flash attention no T×T score matrix is
/// materialised, so the live set is the residual stream and the normed input (2·h per token) plus
/// the widest stage: attention (q, k, v and the attention output: (2·H·d + 2·K·d)/tp) or the MLP
/// (gated: gate+up outputs and their product, 3·w/tp; plain: 2·w/tp, with w the routed width
/// experts_per_token × expert width plus shared experts). Logits for the sampled positions are
/// fp32, kept twice (logits and sampling probabilities): sequences × vocab/tp × 4 × 2.
pub fn activation_bytes(model: &ModelDesc, tokens: u64, sequences: u64, tp: u64) -> u64 {
    let tp = tp.max(1);
    let h = model.hidden_size;
    let (heads, kv, d) = (
        model.num_attention_heads,
        model.num_kv_heads,
        model.head_dim,
    );
    let attention = (2 * heads * d + 2 * kv * d) / tp;
    let width = match &model.moe {
        Some(m) => {
            m.experts_per_token * m.expert_intermediate_size
                + m.shared_experts * m.shared_expert_intermediate_size
        }
        None => model.intermediate_size,
    };
    let mlp = match model.mlp {
        MlpKind::Gated => 3 * width,
        MlpKind::Plain => 2 * width,
    } / tp;
    let per_token = (2 * h + attention.max(mlp)) * ACTIVATION_BYTES;
    let logits = sequences
        .min(tokens)
        .saturating_mul(model.vocab_size / tp)
        .saturating_mul(4 * 2);
    tokens.saturating_mul(per_token).saturating_add(logits)
}

/// Runtime memory outside weights, KV and activations on each GPU.
pub fn overhead_bytes(gpus_per_replica: u64) -> u64 {
    let comm = if gpus_per_replica > 1 {
        COMMUNICATION_BYTES
    } else {
        0
    };
    CUDA_CONTEXT_BYTES + RUNTIME_BUFFERS_BYTES + comm
}
