//! Inkling's hybrid layers (`modeling_inkling.py` InklingDecoderLayer): attention — sliding on
//! "hybrid_sliding" layers with the `swa_*` head counts, full on "hybrid" ones — with a
//! relative-position term (r_proj [heads × d_rel, h], rel_logits_proj [d_rel, window or
//! rel_extent]), per-head q/k RMSNorms and depthwise short convolutions over its keys and
//! values (k_sconv, v_sconv [kv_heads × head_dim, 1, k], kept in float32), and two more short
//! convolutions over the hidden state before attention and before the MLP (attn_sconv,
//! mlp_sconv [h, 1, k]). No biases. Their conv states (`LinearAttentionAndSlidingWindowAttentionLayer`
//! / `...FullAttentionLayer`: [channels, k] each, float32) sit beside the K/V cache.

use super::layers::Plan;
use super::{ArchError, Basics, Builder};
use crate::layer::{Attention, Recurrent, RecurrentKind, Span, StateDtype, StateTensor};
use crate::model::{Role, Split, Tensor};

/// The layer's attention, its conv states and tensors.
pub(crate) fn hybrid(
    b: &Builder,
    basics: &Basics,
    _p: &Plan,
    span: Span,
    out: &mut Vec<Tensor>,
) -> Result<(Attention, Recurrent), ArchError> {
    let t = b.text;
    let h = basics.hidden;
    let sliding = matches!(span, Span::Window(_));
    let (heads, kv, d) = if sliding {
        (
            t.req_u64(&["swa_num_attention_heads"])?,
            t.req_u64(&["swa_num_key_value_heads"])?,
            t.req_u64(&["swa_head_dim"])?,
        )
    } else {
        (
            basics.heads.get(0),
            basics.kv_heads.get(0),
            basics.head_dim,
        )
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
    out.push(Tensor::matrix(Role::Small, kv * d, k, Split::Rows).times(2));
    out.push(Tensor::matrix(Role::Small, h, k, Split::Rows).times(2));
    out.push(Tensor::vector(2 * d + d_rel * extent));
    let conv = |c: u64| StateTensor {
        name: "conv",
        shape: vec![c, k],
        dtype: StateDtype::F32,
    };
    Ok((
        Attention {
            heads,
            kv_heads: kv,
            k_head_dim: d,
            v_head_dim: d,
            span,
            kv_source: None,
            latent: None,
            indexer: None,
            sinks: false,
            rotary_dim: 0,
            qkv_bias: false,
            o_bias: false,
            qk_norm: true,
        },
        Recurrent {
            kind: RecurrentKind::Other,
            states: vec![conv(kv * d), conv(kv * d), conv(h), conv(h)],
        },
    ))
}
