//! Parallelism: how a model is divided over GPUs, the rules that forbid a split, and the bytes
//! of weights each GPU holds. Tensor parallelism shards q/gate/up by output features and o/down
//! by input features (vLLM ColumnParallelLinear / RowParallelLinear); KV heads are split and
//! replicated when there are fewer than ranks; pipeline parallelism splits layers, the first stage
//! holding the embeddings and the last the head (vLLM `get_pp_indices`).

use crate::model::{Inventory, ModelDesc, Split, Stage, Tensor};
use crate::precision::WeightFormat;
use crate::units::div_ceil;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parallelism {
    pub tp: u64,
    pub pp: u64,
    /// Data-parallel replicas: each holds a whole copy; concurrency multiplies.
    pub dp: u64,
}

impl Default for Parallelism {
    fn default() -> Self {
        Parallelism {
            tp: 1,
            pp: 1,
            dp: 1,
        }
    }
}

impl Parallelism {
    pub fn gpus(&self) -> u64 {
        self.tp.saturating_mul(self.pp).saturating_mul(self.dp)
    }

    /// vLLM's divisibility rules (vllm/config.py `verify_with_parallel_config`, and the KV head
    /// rule of `get_num_kv_heads`): attention heads divisible by TP; KV heads divisible by TP or
    /// TP divisible by KV heads; at most one pipeline stage per layer.
    pub fn check(&self, model: &ModelDesc) -> Result<(), String> {
        if self.tp == 0 || self.pp == 0 || self.dp == 0 {
            return Err("tensor, pipeline and data parallel sizes must each be at least 1".into());
        }
        if self.gpus() > 4096 {
            return Err(format!(
                "{} GPUs is beyond what this tool plans for (limit 4096)",
                self.gpus()
            ));
        }
        // Every attention layer kind must split (per-layer head counts differ on some models).
        for a in model
            .inventory()
            .kinds
            .iter()
            .filter_map(|k| k.attention.as_ref())
        {
            let heads = a.heads;
            if !heads.is_multiple_of(self.tp) {
                let ok: Vec<String> = (1..=heads.min(64))
                    .filter(|t| heads.is_multiple_of(*t))
                    .map(|t| t.to_string())
                    .collect();
                return Err(format!(
                    "tensor parallelism over {} GPUs needs the attention heads ({heads}) divisible by {}; use a tensor-parallel size of {} or add pipeline parallelism (--pp)",
                    self.tp, self.tp, ok.join(", ")
                ));
            }
            let kv = a.kv_heads;
            if a.latent.is_none() && !kv.is_multiple_of(self.tp) && !self.tp.is_multiple_of(kv) {
                return Err(format!(
                    "tensor parallelism over {} GPUs needs the KV heads ({kv}) divisible by it, or it divisible by them",
                    self.tp
                ));
            }
        }
        if self.pp > model.num_layers {
            return Err(format!(
                "pipeline parallelism over {} stages exceeds the {} layers",
                self.pp, model.num_layers
            ));
        }
        Ok(())
    }

    /// Layer ranges of each pipeline stage, as vLLM assigns them (vllm/distributed/utils.py
    /// `get_pp_indices`): equal shares, and the remainder given one layer each to the stages
    /// before the last, counting back from the second-to-last (`partitions[-i] += 1` for i in
    /// 2..remaining+2), because the last stage also holds the final norm and the head.
    pub fn stages(&self, layers: u64) -> Vec<std::ops::Range<u64>> {
        let pp = self.pp.max(1);
        let base = layers / pp;
        let extra = layers % pp;
        let mut counts = vec![base; pp as usize];
        for i in 2..extra + 2 {
            // i ≤ pp because extra ≤ pp − 1.
            let idx = (pp - i) as usize;
            counts[idx] += 1;
        }
        let mut start = 0;
        counts
            .into_iter()
            .map(|n| {
                let r = start..start + n;
                start += n;
                r
            })
            .collect()
    }

    /// Expert-parallel size when `--enable-expert-parallel` is on: vLLM forms one expert group
    /// over every tensor- and data-parallel rank, EP = TP × DP (vllm/config/parallel.py
    /// `enable_expert_parallel`; vllm/model_executor/layers/fused_moe/config.py
    /// `FusedMoEParallelConfig.make`: ep_size = dp_size × tp_size).
    pub fn expert_parallel_size(&self) -> u64 {
        self.tp.saturating_mul(self.dp).max(1)
    }

    /// Refuses expert parallelism where vLLM cannot place the experts: a dense model has none,
    /// and more expert ranks than experts would leave ranks without any.
    pub fn check_expert_parallel(&self, model: &ModelDesc) -> Result<u64, String> {
        let Some(moe) = model.moe.as_ref() else {
            return Err(format!(
                "expert parallelism needs a mixture-of-experts model; {} is dense (drop --enable-expert-parallel)",
                model.id
            ));
        };
        let ep = self.expert_parallel_size();
        if ep > moe.num_experts {
            return Err(format!(
                "expert parallelism over TP {} × DP {} = {ep} ranks exceeds the {} routed experts of {}: each rank needs at least one expert",
                self.tp, self.dp, moe.num_experts, model.id
            ));
        }
        Ok(ep)
    }
}

/// How routed experts are divided between GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpertSplit {
    /// Each expert's projections are sharded like a dense MLP over the TP ranks (vLLM's
    /// default: FusedMoE with tp_size = TP).
    #[default]
    TensorParallel,
    /// Whole experts are spread over `ep` ranks; the busiest rank holds ceil(E / ep) of them
    /// (vllm/model_executor/layers/fused_moe/layer.py `determine_expert_map`: E // ep each,
    /// the remainder one more to the first ranks).
    ExpertParallel { ep: u64 },
}

/// Bytes of one tensor on one of `tp` ranks.
pub fn tensor_bytes_per_rank(t: &Tensor, format: WeightFormat, tp: u64) -> u64 {
    let tp = tp.max(1);
    let (rows, cols) = match t.split {
        Split::Replicated => (t.rows, t.cols),
        Split::Rows => (div_ceil(t.rows, tp), t.cols),
        Split::Cols => (t.rows, div_ceil(t.cols, tp)),
        Split::KvRows { head_dim } => {
            let heads = t.rows.checked_div(head_dim).unwrap_or(0);
            (
                crate::kv::kv_heads_per_rank(heads, tp).saturating_mul(head_dim),
                t.cols,
            )
        }
    };
    let one = if t.cols == 1 && t.role == crate::precision::Role::Small {
        format.vector_bytes(rows)
    } else {
        format.matrix_bytes(t.role, rows, cols)
    };
    one.saturating_mul(t.count)
}

/// Weight bytes each pipeline stage holds on one tensor-parallel rank (experts TP-sharded).
pub fn weight_bytes_per_stage(
    model: &ModelDesc,
    inv: &Inventory,
    format: WeightFormat,
    par: &Parallelism,
) -> Vec<u64> {
    weight_bytes_per_stage_with(model, inv, format, par, ExpertSplit::TensorParallel)
}

/// Weight bytes each pipeline stage holds on its busiest rank, with routed experts divided as
/// `experts` says.
/// Stage bytes from a file's measured tensors: each stage's layers, the input side on the first
/// stage and the output side on the last, divided evenly over tensor-parallel ranks (an
/// approximation: replicated norms and KV-head replication are a few MiB at most).
fn measured_bytes_per_stage(
    model: &ModelDesc,
    m: &crate::model::MeasuredWeights,
    par: &Parallelism,
) -> Vec<u64> {
    let stages = par.stages(model.num_layers);
    let last = stages.len() - 1;
    let tp = par.tp.max(1);
    stages
        .iter()
        .enumerate()
        .map(|(si, range)| {
            let mut bytes: u64 = range
                .clone()
                .map(|i| m.layer_bytes.get(i as usize).copied().unwrap_or(0))
                .fold(0, u64::saturating_add);
            if si == 0 {
                bytes = bytes.saturating_add(m.input_bytes);
            }
            if si == last {
                bytes = bytes.saturating_add(m.output_bytes);
            }
            div_ceil(bytes, tp)
        })
        .collect()
}

pub fn weight_bytes_per_stage_with(
    model: &ModelDesc,
    inv: &Inventory,
    format: WeightFormat,
    par: &Parallelism,
    experts: ExpertSplit,
) -> Vec<u64> {
    if let Some(m) = &model.measured {
        return measured_bytes_per_stage(model, m, par);
    }
    let tp = par.tp;
    let one = |t: &Tensor| match (experts, t.role) {
        (ExpertSplit::ExpertParallel { ep }, crate::precision::Role::Expert) => {
            // A whole expert per slot, unsharded; `count` is the number of experts.
            let single = Tensor { count: 1, ..*t };
            let per_rank = div_ceil(t.count, ep.max(1));
            tensor_bytes_per_rank(&single, format, 1).saturating_mul(per_rank)
        }
        _ => tensor_bytes_per_rank(t, format, tp),
    };
    let per_kind: Vec<u64> = inv
        .kinds
        .iter()
        .map(|k| k.tensors.iter().map(one).sum())
        .collect();
    let stages = par.stages(model.num_layers);
    let last = stages.len() - 1;
    stages
        .iter()
        .enumerate()
        .map(|(si, range)| {
            let mut bytes: u64 = range
                .clone()
                .map(|i| per_kind[inv.layer_kind[i as usize] as usize])
                .sum();
            for (stage, t) in &inv.global {
                let here = match stage {
                    Stage::First => si == 0,
                    Stage::Last => si == last,
                };
                if here {
                    bytes = bytes.saturating_add(tensor_bytes_per_rank(t, format, tp));
                }
            }
            bytes
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_follow_vllm_get_pp_indices() {
        let p = |pp| Parallelism { tp: 1, pp, dp: 1 };
        // 80 layers over 3 stages: base 26, remainder 2 → partitions[-2] and [-3] get one more:
        // [27, 27, 26].
        assert_eq!(p(3).stages(80), vec![0..27, 27..54, 54..80]);
        // 32 over 2: even split [16, 16] (the Llama-3.1-8B PP=2 records of vllm.jsonl).
        assert_eq!(p(2).stages(32), vec![0..16, 16..32]);
        // 30 over 4: base 7, remainder 2 → [7, 8, 8, 7].
        assert_eq!(p(4).stages(30), vec![0..7, 7..15, 15..23, 23..30]);
        // 7 over 4: base 1, remainder 3 → [2, 2, 2, 1].
        assert_eq!(p(4).stages(7), vec![0..2, 2..4, 4..6, 6..7]);
    }

    #[test]
    fn expert_parallel_holds_whole_experts() {
        let cat = crate::catalogue();
        let mixtral = cat.model("mixtral-8x7b").unwrap();
        let inv = mixtral.inventory();
        let tp2 = Parallelism {
            tp: 2,
            pp: 1,
            dp: 1,
        };
        let tp_split = weight_bytes_per_stage(mixtral, inv, WeightFormat::Bf16, &tp2)[0];
        let ep_split = weight_bytes_per_stage_with(
            mixtral,
            inv,
            WeightFormat::Bf16,
            &tp2,
            ExpertSplit::ExpertParallel { ep: 2 },
        )[0];
        // 8 experts over EP 2 hold 4 whole experts per rank: the same expert bytes as halving
        // each of 8 experts (14336 is even), so the two splits agree on Mixtral.
        assert_eq!(tp_split, ep_split);
        // With DP 2 as well, EP = 4: each rank holds 2 whole experts per layer, so expert bytes
        // per rank halve again. One expert = 3 × 4096 × 14336 × 2 B = 352,321,536 B; 32 layers
        // × 2 fewer experts per rank = 22,548,578,304 B less.
        let ep4 = weight_bytes_per_stage_with(
            mixtral,
            inv,
            WeightFormat::Bf16,
            &tp2,
            ExpertSplit::ExpertParallel { ep: 4 },
        )[0];
        assert_eq!(ep_split - ep4, 32 * 2 * 352_321_536);
        // Refusals name the rule.
        let dense = cat.model("llama-3.1-8b").unwrap();
        assert!(tp2
            .check_expert_parallel(dense)
            .unwrap_err()
            .contains("dense"));
        let wide = Parallelism {
            tp: 4,
            pp: 1,
            dp: 4,
        };
        assert!(wide
            .check_expert_parallel(mixtral)
            .unwrap_err()
            .contains("exceeds the 8 routed experts"));
    }
}
