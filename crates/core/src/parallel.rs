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
        Parallelism { tp: 1, pp: 1, dp: 1 }
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
            return Err(format!("{} GPUs is beyond what this tool plans for (limit 4096)", self.gpus()));
        }
        let heads = model.num_attention_heads;
        if heads % self.tp != 0 {
            let ok: Vec<String> = (1..=heads.min(64)).filter(|t| heads % t == 0).map(|t| t.to_string()).collect();
            return Err(format!(
                "tensor parallelism over {} GPUs needs the attention heads ({heads}) divisible by {}; use a tensor-parallel size of {} or add pipeline parallelism (--pp)",
                self.tp, self.tp, ok.join(", ")
            ));
        }
        let kv = model.num_kv_heads;
        if model.mla.is_none() && kv % self.tp != 0 && self.tp % kv != 0 {
            return Err(format!(
                "tensor parallelism over {} GPUs needs the KV heads ({kv}) divisible by it, or it divisible by them",
                self.tp
            ));
        }
        if self.pp > model.num_layers {
            return Err(format!("pipeline parallelism over {} stages exceeds the {} layers", self.pp, model.num_layers));
        }
        Ok(())
    }

    /// Layer ranges of each pipeline stage: equal shares, the remainder to the last stages.
    pub fn stages(&self, layers: u64) -> Vec<std::ops::Range<u64>> {
        let pp = self.pp.max(1);
        let base = layers / pp;
        let extra = layers % pp;
        let mut start = 0;
        (0..pp)
            .map(|s| {
                let n = base + u64::from(s >= pp - extra);
                let r = start..start + n;
                start += n;
                r
            })
            .collect()
    }
}

/// Bytes of one tensor on one of `tp` ranks.
pub fn tensor_bytes_per_rank(t: &Tensor, format: WeightFormat, tp: u64, kv_heads: u64, head_dim: u64) -> u64 {
    let tp = tp.max(1);
    let (rows, cols) = match t.split {
        Split::Replicated => (t.rows, t.cols),
        Split::Rows => (div_ceil(t.rows, tp), t.cols),
        Split::Cols => (t.rows, div_ceil(t.cols, tp)),
        Split::KvRows => (crate::kv::kv_heads_per_rank(kv_heads, tp) * head_dim, t.cols),
    };
    let one = if t.cols == 1 && t.role == crate::precision::Role::Small {
        format.vector_bytes(rows)
    } else {
        format.matrix_bytes(t.role, rows, cols)
    };
    one.saturating_mul(t.count)
}

/// Weight bytes each pipeline stage holds on one tensor-parallel rank.
pub fn weight_bytes_per_stage(model: &ModelDesc, inv: &Inventory, format: WeightFormat, par: &Parallelism) -> Vec<u64> {
    let (tp, kv, d) = (par.tp, model.num_kv_heads, model.head_dim);
    let per_shape: Vec<u64> = inv
        .shapes
        .iter()
        .map(|s| s.tensors.iter().map(|t| tensor_bytes_per_rank(t, format, tp, kv, d)).sum())
        .collect();
    let stages = par.stages(model.num_layers);
    let last = stages.len() - 1;
    stages
        .iter()
        .enumerate()
        .map(|(si, range)| {
            let mut bytes: u64 = range.clone().map(|i| per_shape[inv.layer_shape[i as usize] as usize]).sum();
            for (stage, t) in &inv.global {
                let here = match stage {
                    Stage::First => si == 0,
                    Stage::Last => si == last,
                };
                if here {
                    bytes = bytes.saturating_add(tensor_bytes_per_rank(t, format, tp, kv, d));
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
    fn stages_cover_layers_remainder_last() {
        let p = Parallelism { tp: 1, pp: 3, dp: 1 };
        // 80 layers over 3 stages: 26, 27, 27.
        assert_eq!(p.stages(80), vec![0..26, 26..53, 53..80]);
    }
}
