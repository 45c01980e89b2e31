//! Inkling's hybrid layers (`modeling_inkling.py` InklingDecoderLayer): attention — sliding on
//! "hybrid_sliding" layers with the `swa_*` head counts, full on "hybrid" ones — with a
//! relative-position term (r_proj [heads × d_rel, h], rel_logits_proj [d_rel, window or
//! rel_extent]), per-head q/k RMSNorms and depthwise short convolutions over its keys and
//! values (k_sconv, v_sconv [kv_heads × head_dim, 1, k], kept in float32), and two more short
//! convolutions over the hidden state before attention and before the MLP (attn_sconv,
//! mlp_sconv [h, 1, k]). No biases. Their conv states (`LinearAttentionAndSlidingWindowAttentionLayer`
//! / `...FullAttentionLayer`: [channels, k] each, float32) sit beside the K/V cache.
//!
//! Inkling 2 (`modeling_inkling2.py` Inkling2SlidingDecoderLayer, Inkling2FullDecoderLayer):
//! q_proj with a per-head norm scale [heads, head_dim], k/v_proj (their short convolutions
//! static on sliding layers, dynamic on full ones: static_weight [k, kv × d] and weight_proj
//! [kv × k, h]), a gated output (gate_proj, linear), sink_proj [heads, h], a relative position
//! bias (proj [d_rel, window or rel_extent], linear [heads × d_rel, h], norm scale [heads,
//! d_rel]); block attention residuals (attention_input queries [h] — [3, h] on full layers — on
//! every layer but the first, mlp_input [h]); two norms on sliding layers, four (q/k/v input
//! norms and post-attention) on full ones; post_attention_convolution and post_mlp_convolution
//! [h, 1, k]. The same four conv states.

use super::layers::Plan;
use super::recurrent::state;
use super::{ArchError, Basics, Builder};
use crate::layer::{Attention, Recurrent, RecurrentKind, Span, StateDtype};
use crate::model::{Role, Split, Tensor};

/// The layer's attention, its conv states and tensors.
pub(crate) fn hybrid(
    b: &Builder,
    basics: &Basics,
    p: &Plan,
    span: Span,
    out: &mut Vec<Tensor>,
) -> Result<(Attention, Recurrent), ArchError> {
    let t = b.text;
    let h = basics.hidden;
    let v2 = b.fam.hybrid_block.as_deref() == Some("inkling2");
    let sliding = matches!(span, Span::Window(_));
    let (heads, kv, d) = if sliding {
        (
            t.req_u64(&["swa_num_attention_heads"])?,
            t.req_u64(&["swa_num_key_value_heads"])?,
            t.req_u64(&["swa_head_dim"])?,
        )
    } else {
        (basics.heads.get(0), basics.kv_heads.get(0), basics.head_dim)
    };
    let d_rel = t.req_u64(&["d_rel"])?;
    let extent = match span {
        Span::Window(w) => w,
        _ => t.req_u64(&["rel_extent"])?,
    };
    let k = t.req_u64(&["sconv_kernel_size", "conv_kernel_size"])?;
    let a = Role::Attention;
    out.push(Tensor::matrix(a, heads * d, h, Split::Rows));
    out.push(Tensor::matrix(a, kv * d, h, Split::KvRows { head_dim: d }).times(2));
    out.push(Tensor::matrix(a, heads * d_rel, h, Split::Rows));
    out.push(Tensor::matrix(a, h, heads * d, Split::Cols));
    out.push(Tensor::matrix(Role::Small, h, k, Split::Rows).times(2));
    if v2 {
        out.push(Tensor::matrix(a, heads * d, h, Split::Rows));
        out.push(Tensor::matrix(a, heads, h, Split::Replicated));
        if sliding {
            out.push(Tensor::matrix(Role::Small, kv * d, k, Split::Rows).times(2));
        } else {
            out.push(Tensor::matrix(Role::Small, k, kv * d, Split::Rows).times(2));
            out.push(Tensor::matrix(Role::Small, kv * k, h, Split::Replicated).times(2));
        }
        // Block residual queries: on every layer but the first (three on full layers), and
        // the MLP's; per-head q and relative-bias scales; q/k/v input norms on full layers
        // beside the post-attention norm, the input norm on sliding ones (the family's two).
        let first = p.first_layer;
        let queries = if first {
            0
        } else if sliding {
            h
        } else {
            3 * h
        };
        let norms = if sliding { 0 } else { 2 * h };
        out.push(Tensor::vector(
            d_rel * extent + heads * d + heads * d_rel + queries + h + norms,
        ));
    } else {
        out.push(Tensor::matrix(Role::Small, kv * d, k, Split::Rows).times(2));
        out.push(Tensor::vector(2 * d + d_rel * extent));
    }
    let conv = |c: u64| state("conv", &[c, k], StateDtype::F32);
    Ok((
        Attention {
            qk_norm: true,
            ..Attention::plain(heads, kv, d, d, span)
        },
        Recurrent::new(
            RecurrentKind::Other,
            vec![conv(kv * d), conv(kv * d), conv(h), conv(h)],
        ),
    ))
}
