//! `--formula naive`: the seed articles' arithmetic, reproduced exactly, mistakes included, so
//! that their worked examples can be checked and the difference from reality shown.
//!
//! Article formulas (the three seed articles, DEVELOPERS.md): weights = parameters × 2 bytes (fp16); KV cache =
//! 2 × 2 × layers × hidden × sequence × batch; max concurrent requests =
//! free × 1024³ / (2 × 2 × layers × hidden × sequence), where `free` is "GPU GB − weights GB".
//! The last one multiplies a figure in GB (10^9) by 1024³: that inflates the answer by 7.4%.

use crate::kv::naive_kv_bytes_per_token;
use crate::model::ModelDesc;
use crate::units::GIB;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NaiveEstimate {
    pub model: String,
    pub formula: &'static str,
    /// The size in the model's name (the articles use "7B", "13B", "175B").
    pub params: u64,
    pub weights_bytes: u64,
    pub kv_bytes_per_token: u64,
    pub kv_cache_bytes: u64,
    pub total_bytes: u64,
    pub gpu_memory_bytes: u64,
    pub free_bytes: u64,
    pub fits: bool,
    /// The article's figure: free GB × 1024³ ÷ per-sequence bytes (mixes GB and GiB).
    pub max_concurrency_article: u64,
    /// The same formula with consistent units: free bytes ÷ per-sequence bytes.
    pub max_concurrency: u64,
    pub notes: Vec<String>,
}

pub fn naive_estimate(
    model: &ModelDesc,
    gpu_memory_bytes: u64,
    context: u64,
    batch: u64,
) -> NaiveEstimate {
    let params = model
        .nominal_params
        .or(model.published_params)
        .unwrap_or_else(|| model.params());
    let weights = params.saturating_mul(2);
    let per_token = naive_kv_bytes_per_token(model);
    let per_seq = per_token.saturating_mul(context);
    let kv = per_seq.saturating_mul(batch);
    let free = gpu_memory_bytes.saturating_sub(weights);
    let article = if per_seq == 0 {
        0
    } else {
        ((free as u128 * GIB as u128 / 1_000_000_000) / per_seq as u128) as u64
    };
    let consistent = free.checked_div(per_seq).unwrap_or(0);
    let mut notes = vec![
        "naive formula: KV = 2 × 2 bytes × layers × hidden size per token; it ignores grouped-query, multi-query and latent attention and sliding windows".to_string(),
    ];
    if article != consistent {
        notes.push(format!(
            "the article multiplies free GB (10^9) by 1024^3, which gives {article}; with consistent units the same formula gives {consistent}"
        ));
    }
    NaiveEstimate {
        model: model.id.clone(),
        formula: "naive",
        params,
        weights_bytes: weights,
        kv_bytes_per_token: per_token,
        kv_cache_bytes: kv,
        total_bytes: weights.saturating_add(kv),
        gpu_memory_bytes,
        free_bytes: free,
        fits: weights.saturating_add(kv) <= gpu_memory_bytes,
        max_concurrency_article: article,
        max_concurrency: consistent,
        notes,
    }
}
