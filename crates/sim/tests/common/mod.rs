//! OPT-13B on one A100-40GB, the setting of the PagedAttention paper's Fig. 2 (§6.2).
#![allow(dead_code)]

use vramplan_sim::SimConfig;

/// KV bytes per token: 2 (K and V) × 40 layers × 5120 hidden × 2 B (fp16) = 819,200 B
/// (paper §3: "800 KB"; OPT-13B config: num_hidden_layers 40, hidden_size 5120).
pub const OPT13B_KV_BYTES_PER_TOKEN: u64 = 819_200;
/// OPT-13B parameters from its config (hidden 5120, 40 layers, ffn 20480, vocab 50272,
/// 2048 positions plus an offset of 2). Per layer: attention 4·5120² + 4·5120, MLP
/// 2·5120·20480 plus biases 20480 and 5120, two layer norms 4·5120, in all 314,639,360;
/// times 40 = 12,585,574,400. Token embeddings 50272·5120 = 257,392,640, positions
/// 2050·5120 = 10,496,000 and the final norm 10,240 bring it to 12,853,473,280.
pub const OPT13B_PARAMS: u64 = 12_853_473_280;
/// fp16 weights: 2 B × 12,853,473,280 = 25,706,946,560 B (paper Table 1: "26 GB").
pub const OPT13B_WEIGHT_BYTES: u64 = 2 * OPT13B_PARAMS;
/// KV pool: paper Table 1 gives 12 GB for KV and 15.7K slots; 12 GiB / 819,200 B =
/// 15,728.6 slots, so the table's GB are GiB. 983 blocks of 16 tokens (15,728 slots).
pub const OPT13B_A100_KV_POOL_BYTES: u64 = 12 << 30;
/// OPT's max_position_embeddings: 2048 tokens (Orca (Max) reserves this much).
pub const OPT13B_MAX_SEQ_LEN: u32 = 2048;
/// A100-SXM4-40GB datasheet: 1,555 GB/s HBM2, 312 TFLOP/s dense fp16/bf16 tensor.
pub const A100_40GB_HBM_BANDWIDTH: f64 = 1.555e12;
pub const A100_40GB_FLOPS: f64 = 312e12;
/// PCIe 4.0 x16: 64 GB/s both ways per the A100 datasheet, 32 GB/s per direction.
pub const A100_PCIE4_BANDWIDTH: f64 = 32e9;

/// The paper's setting with vLLM's scheduler defaults.
pub fn opt13b_a100() -> SimConfig {
    SimConfig::with_defaults(
        OPT13B_KV_BYTES_PER_TOKEN,
        OPT13B_A100_KV_POOL_BYTES,
        OPT13B_WEIGHT_BYTES,
        A100_40GB_HBM_BANDWIDTH,
        A100_40GB_FLOPS,
        OPT13B_PARAMS,
        A100_PCIE4_BANDWIDTH,
        OPT13B_MAX_SEQ_LEN,
    )
}
