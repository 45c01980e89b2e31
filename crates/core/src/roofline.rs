//! Roofline throughput: decode is bound by memory bandwidth (every step reads the weights and
//! every sequence's KV cache), prefill by compute (2 FLOPs per active parameter per token).
//! Formulas: "How to Scale Your Model", inference chapter (jax-ml/scaling-book inference.md):
//! step time = (batch × KV bytes + parameter bytes) / bandwidth, and
//! max(2 × batch × params / FLOPs, param bytes / bandwidth) for the weight term.
//! These are upper bounds on speed (lower bounds on time); real engines reach 50–80% of them.

use crate::gpu::Gpu;

/// Seconds of one decode step on one GPU of a tensor/pipeline group.
/// `weight_bytes` and `kv_bytes` are what that GPU reads per step; `flops_per_token` is
/// 2 × active parameters on that GPU.
pub fn decode_step_seconds(
    gpu: &Gpu,
    weight_bytes: u64,
    kv_bytes: u64,
    batch: u64,
    flops_per_token: f64,
    tflops: f64,
) -> f64 {
    let bw = gpu.hbm_bandwidth_bytes_per_s;
    if bw <= 0.0 {
        return f64::INFINITY;
    }
    let memory = (weight_bytes as f64 + kv_bytes as f64) / bw;
    let compute = if tflops > 0.0 {
        batch as f64 * flops_per_token / (tflops * 1e12)
    } else {
        0.0
    };
    memory.max(compute)
}

/// Decode tokens per second of one replica running `batch` sequences.
pub fn decode_tokens_per_s(
    gpu: &Gpu,
    weight_bytes: u64,
    kv_bytes: u64,
    batch: u64,
    flops_per_token: f64,
    tflops: f64,
) -> f64 {
    let t = decode_step_seconds(gpu, weight_bytes, kv_bytes, batch, flops_per_token, tflops);
    if t.is_finite() && t > 0.0 {
        batch as f64 / t
    } else {
        0.0
    }
}

/// Weight bytes a decode step reads: every dense weight, but of the routed experts only those
/// some sequence of the batch is routed to. With `k` of `E` experts per token chosen uniformly,
/// the expected share of a layer's experts touched by `batch` tokens is 1 − (1 − k/E)^batch.
pub fn weight_bytes_read_per_step(
    model: &crate::model::ModelDesc,
    inactive_expert_params: u64,
    params: u64,
    weight_bytes: u64,
    batch: u64,
) -> u64 {
    let Some(m) = &model.moe else {
        return weight_bytes;
    };
    if params == 0 || m.num_experts == 0 || m.num_experts <= m.experts_per_token {
        return weight_bytes;
    }
    let (e, k) = (m.num_experts as f64, m.experts_per_token as f64);
    let expert_params = inactive_expert_params as f64 * e / (e - k);
    let expert_share = (expert_params / params as f64).clamp(0.0, 1.0);
    let touched = 1.0 - (1.0 - k / e).powf(batch.max(1) as f64);
    (weight_bytes as f64 * ((1.0 - expert_share) + expert_share * touched)).round() as u64
}

/// Prefill tokens per second of one replica of `gpus` GPUs: compute-bound.
pub fn prefill_tokens_per_s(gpus: u64, active_params: u64, tflops: f64) -> f64 {
    if active_params == 0 {
        return 0.0;
    }
    gpus as f64 * tflops * 1e12 / (2.0 * active_params as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_book_llama2_13b_example() {
        // Scaling book: LLaMA-2-13B on 8 TPU v5e (6.5 TiB/s total in the book's table, here one
        // device of that bandwidth): batch 1, KV 6.7 GB, params 26 GB → step ≈ (6.7e9+26e9)/BW.
        let mut gpu = crate::gpu::Gpu::custom(128 << 30);
        gpu.hbm_bandwidth_bytes_per_s = 6.5e12;
        let t = decode_step_seconds(&gpu, 26_000_000_000, 6_700_000_000, 1, 0.0, 0.0);
        // 32.7e9 / 6.5e12 = 5.03 ms (the book's table: 4.98 ms with its exact sizes).
        assert!((t - 0.005_030_769).abs() < 1e-6, "{t}");
        assert!(
            (decode_tokens_per_s(&gpu, 26_000_000_000, 6_700_000_000, 1, 0.0, 0.0) - 198.78).abs()
                < 0.1
        );
    }

    #[test]
    fn moe_decode_reads_only_touched_experts() {
        let m = crate::catalogue()
            .model("mistralai/Mixtral-8x7B-v0.1")
            .unwrap();
        let inv = m.inventory();
        let (params, idle) = (inv.params(), inv.inactive_expert_params);
        // Mixtral: 8 experts, 2 per token. Batch 1 touches 2/8 = 25% of the expert weights:
        // 1 − (1 − 2/8)^1 = 0.25. Expert params = idle × 8/6.
        let w = 93_000_000_000u64;
        let expert_share = idle as f64 * 8.0 / 6.0 / params as f64;
        let expect = (w as f64 * ((1.0 - expert_share) + expert_share * 0.25)).round() as u64;
        assert_eq!(weight_bytes_read_per_step(m, idle, params, w, 1), expect);
        // A large batch touches every expert.
        assert!(weight_bytes_read_per_step(m, idle, params, w, 1000) >= w - 1);
        // A dense model reads everything.
        let d = crate::catalogue()
            .model("meta-llama/Llama-3.1-8B-Instruct")
            .unwrap();
        assert_eq!(weight_bytes_read_per_step(d, 0, d.params(), 16, 1), 16);
    }

    #[test]
    fn compute_bound_when_batch_is_large() {
        let mut gpu = crate::gpu::Gpu::custom(80 << 30);
        gpu.hbm_bandwidth_bytes_per_s = 3.35e12;
        // 8B params: 16e9 B / 3.35e12 = 4.78 ms memory; batch 1024 × 16e9 FLOPs / 989e12 = 16.6 ms.
        let t = decode_step_seconds(&gpu, 16_000_000_000, 0, 1024, 16e9, 989.0);
        assert!((t - 1024.0 * 16e9 / 989e12).abs() < 1e-9);
        assert!((prefill_tokens_per_s(1, 8_000_000_000, 989.0) - 61_812.5).abs() < 1e-6);
    }
}
