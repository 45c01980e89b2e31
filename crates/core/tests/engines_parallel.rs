//! Multi-GPU rules: tensor, pipeline, expert and data parallelism, and the refusals that name
//! the rule that forbids a split.

use vramplan_core::engine::vllm::{self, Release, VllmArgs};
use vramplan_core::parallel::{weight_bytes_per_stage, weight_bytes_per_stage_with, ExpertSplit};
use vramplan_core::{catalogue, Config, KvDtype, Parallelism, WeightFormat};

fn par(tp: u64, pp: u64, dp: u64) -> Parallelism {
    Parallelism { tp, pp, dp }
}

#[test]
fn refusals_name_their_rule() {
    let cat = catalogue();
    let llama = cat.model("llama-3.1-8b").unwrap();
    // 32 attention heads: TP 3 is refused, naming the heads.
    assert!(par(3, 1, 1)
        .check(llama)
        .unwrap_err()
        .contains("attention heads (32) divisible by 3"));
    // Falcon-7B has 71 heads: only TP 1 or 71.
    let falcon = cat.model("falcon-7b").unwrap();
    assert!(par(2, 1, 1)
        .check(falcon)
        .unwrap_err()
        .contains("attention heads (71)"));
    // More stages than layers.
    assert!(par(1, 33, 1)
        .check(llama)
        .unwrap_err()
        .contains("exceeds the 32 layers"));
    // Expert parallelism needs experts, and no more ranks than experts.
    assert!(par(2, 1, 1)
        .check_expert_parallel(llama)
        .unwrap_err()
        .contains("dense"));
    let mixtral = cat.model("mixtral-8x7b").unwrap();
    assert_eq!(par(2, 1, 2).check_expert_parallel(mixtral), Ok(4));
    assert!(par(4, 1, 4)
        .check_expert_parallel(mixtral)
        .unwrap_err()
        .contains("16 ranks exceeds the 8 routed experts"));
}

#[test]
fn first_and_last_stage_carry_embedding_and_head() {
    // Llama-3.1-8B over PP 2: both stages hold 16 layers; the first adds the embedding
    // (128,256 × 4096 × 2 B = 1,050,673,152 B), the last the final norm (8,192 B) and the
    // untied head (1,050,673,152 B): equal totals.
    let llama = catalogue().model("llama-3.1-8b").unwrap();
    let inv = llama.inventory();
    let s = weight_bytes_per_stage(llama, inv, WeightFormat::Bf16, &par(1, 2, 1));
    assert_eq!(s[1] - s[0], 8_192);
    let whole = weight_bytes_per_stage(llama, inv, WeightFormat::Bf16, &par(1, 1, 1))[0];
    assert_eq!(s[0] + s[1], whole);
}

#[test]
fn data_parallel_multiplies_concurrency_not_memory() {
    let cat = catalogue();
    let m = cat.model("llama-3.1-8b").unwrap();
    let gpu = cat.gpu("h100").unwrap();
    let mut a = VllmArgs::new(Release::parse("0.19").unwrap());
    a.utilization_given = true;
    let mut c = Config::new(WeightFormat::Bf16, KvDtype::Bf16, 8192, 1);
    let one = vllm::estimate(m, gpu, c, &a).unwrap();
    c.parallel = par(1, 1, 2);
    let two = vllm::estimate(m, gpu, c, &a).unwrap();
    assert_eq!(two.kv_cache_blocks, one.kv_cache_blocks);
    assert_eq!(two.weights_bytes, one.weights_bytes);
    assert_eq!(two.max_concurrency, 2 * one.max_concurrency);
    assert_eq!(two.gpus, 2);
}

#[test]
fn expert_parallel_over_dp_shrinks_expert_weights() {
    // Mixtral-8x7B TP 2 × DP 2 with EP: 4 expert ranks, 2 whole experts each instead of half of
    // each of 8. One expert = 3 × 4096 × 14336 × 2 B = 352,321,536 B; per layer a rank holds
    // 2 experts (704,643,072 B) instead of 8 halves (1,409,286,144 B): 32 layers ×
    // 704,643,072 B = 22,548,578,304 B less.
    let m = catalogue().model("mixtral-8x7b").unwrap();
    let inv = m.inventory();
    let tp_only = weight_bytes_per_stage(m, inv, WeightFormat::Bf16, &par(2, 1, 2))[0];
    let ep = weight_bytes_per_stage_with(
        m,
        inv,
        WeightFormat::Bf16,
        &par(2, 1, 2),
        ExpertSplit::ExpertParallel { ep: 4 },
    )[0];
    assert_eq!(tp_only - ep, 22_548_578_304);
}
