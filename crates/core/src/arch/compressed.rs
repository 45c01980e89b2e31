//! DeepSeek-V4's attention (`modeling_deepseek_v4.py` DeepseekV4Attention): one shared K/V head
//! of head_dim (kv_proj, kv_norm) cached over a sliding window, latent queries (q_a_proj,
//! q_a_norm, q_b_proj), grouped output projections (o_a_proj [o_groups × o_lora_rank, heads ×
//! head_dim / o_groups], o_b_proj), attention sinks; and a compressor that folds every
//! `compress_rate` tokens into one entry kept for the whole context:
//!
//! - heavily compressed (HCA, DeepseekV4HCACompressor): kv_proj and gate_proj [head_dim, h],
//!   position_bias [rate, head_dim], kv_norm; cache compressed_kv [tokens / rate, head_dim] and
//!   buffers of the pending (< rate) tokens' kv and gate;
//! - compressed sparse (CSA, DeepseekV4CSACompressor): kv_proj and gate_proj [2 × head_dim, h]
//!   (two overlapping series), position_bias [rate, 2 × head_dim], kv_norm, and an indexer
//!   (DeepseekV4Indexer: the same at index_head_dim, q_b_proj [index_n_heads × index_head_dim,
//!   q_lora_rank], scorer weights_proj [index_n_heads, h]); cache compressed entries of head_dim
//!   and index_head_dim, buffers of the pending tokens, and the overlap state (the last
//!   window's first series: overlap_kv in the model dtype, overlap_gate in float32) for both.
//!
//! The window's K and V rows, the compressed entries per token and the bounded buffers and
//! overlap states per sequence are what `Attention` (with `compressed`) and the layer's
//! `Recurrent` states describe.

use super::layers::Plan;
use super::recurrent::state;
use super::{ArchError, Basics, Builder};
use crate::layer::{Attention, Compression, Recurrent, RecurrentKind, Span, StateDtype};
use crate::model::{Role, Split, Tensor};

pub(crate) fn build(
    b: &Builder,
    basics: &Basics,
    p: &Plan,
    sparse: bool,
    span: Span,
    out: &mut Vec<Tensor>,
) -> Result<(Attention, Recurrent), ArchError> {
    let t = b.text;
    let h = basics.hidden;
    let (heads, d) = (p.heads, p.head_dim);
    let q_lora = t.req_u64(&["q_lora_rank"])?;
    let groups = t.req_u64(&["o_groups"])?.max(1);
    let o_lora = t.req_u64(&["o_lora_rank"])?;
    let rates = t.object("compress_rates")?;
    let key = if sparse {
        "compressed_sparse_attention"
    } else {
        "heavily_compressed_attention"
    };
    let field = t.field("compress_rates");
    let rate = rates
        .and_then(|r| r.get(key))
        .and_then(super::fields::as_u64)
        .filter(|&r| r > 0)
        .ok_or_else(|| {
            ArchError::field(&field, format!("{field} has no positive rate for {key}"))
        })?;
    super::check_limit(&field, rate, 1 << 20)?;
    let a = Role::Attention;
    // Queries, the shared K/V head, grouped output, sinks.
    out.push(Tensor::matrix(a, q_lora, h, Split::Replicated));
    out.push(Tensor::matrix(a, heads * d, q_lora, Split::Rows));
    out.push(Tensor::matrix(a, d, h, Split::Replicated));
    out.push(Tensor::matrix(
        a,
        groups * o_lora,
        heads * d / groups,
        Split::Rows,
    ));
    out.push(Tensor::matrix(a, h, groups * o_lora, Split::Cols));
    // The compressor: kv and gate projections, position bias, norm.
    let series = if sparse { 2 } else { 1 };
    out.push(Tensor::matrix(a, series * d, h, Split::Replicated).times(2));
    out.push(Tensor::vector(q_lora + d + heads + rate * series * d + d));
    let mut states = vec![
        // Pending tokens' kv and gate, at most rate − 1 of them.
        state("buffer_kv", &[rate - 1, series * d], StateDtype::Model),
        state("buffer_gate", &[rate - 1, series * d], StateDtype::Model),
    ];
    let mut indexer_width = 0;
    if sparse {
        let ih = t.req_u64(&["index_n_heads"])?;
        let id = t.req_u64(&["index_head_dim"])?;
        out.push(Tensor::matrix(a, 2 * id, h, Split::Replicated).times(2));
        out.push(Tensor::matrix(a, ih * id, q_lora, Split::Replicated));
        out.push(Tensor::matrix(a, ih, h, Split::Replicated));
        out.push(Tensor::vector(rate * 2 * id + id));
        indexer_width = id;
        states.extend([
            state("buffer_kv", &[rate - 1, 2 * id], StateDtype::Model),
            state("buffer_gate", &[rate - 1, 2 * id], StateDtype::Model),
            state("overlap_kv", &[rate, d + id], StateDtype::Model),
            state("overlap_gate", &[rate, d + id], StateDtype::F32),
        ]);
    }
    Ok((
        Attention {
            sinks: true,
            rotary_dim: t.u64(&["qk_rope_head_dim"])?.unwrap_or(0),
            compressed: Some(Compression {
                rate,
                width: d,
                indexer_width,
            }),
            ..Attention::plain(heads, 1, d, d, span)
        },
        Recurrent::new(RecurrentKind::Other, states),
    ))
}
