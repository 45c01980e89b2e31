//! Zamba's shared transformer blocks: its hybrid layers run a Mamba mixer and then a transformer
//! block whose weights are shared between them (one block, or `num_mem_blocks` taken in turn),
//! each hybrid layer keeping its own K/V cache and its own input projection.
//!
//! - Zamba (`modeling_zamba.py` ZambaHybridLayer): shared_transf — self_attn q/k/v
//!   [attention_hidden_size, 2 × hidden] (the hidden state concatenated with the original
//!   embeddings), o_proj [hidden, attention_hidden_size], a gated MLP, input_layernorm [2 ×
//!   hidden] and pre_ff_layernorm [hidden] — and a per-layer `linear` [hidden, hidden]; the Mamba
//!   mixer with its norm is the layer's own.
//! - Zamba 2 (`modeling_zamba2.py` Zamba2HybridLayer): the same block with a fused gate_up_proj;
//!   per layer the `linear` and, with `adapter_rank`, the MLP's LoRA adapters
//!   gate_up_proj_adapter_list ([adapter_rank, hidden], [2 × intermediate, adapter_rank]) and,
//!   with `use_shared_attention_adapter`, q/k/v adapters ([adapter_rank, 2 × hidden],
//!   [attention_hidden_size, adapter_rank]) (Zamba2AttentionDecoderLayer, Zamba2MLP).

use super::layers::{Mixer, Plan};
use super::{ArchError, Basics, Builder};
use crate::layer::{Attention, Span};
use crate::model::{Role, Split, Tensor};

/// Gives every hybrid layer after the first using a block the `block_from` of that first one.
pub(crate) fn assign_blocks(b: &Builder, plans: &mut [Plan]) -> Result<(), ArchError> {
    let blocks = b.text.u64_or(&["num_mem_blocks"], 1)?.max(1) as usize;
    let mut owners: Vec<Option<u32>> = vec![None; blocks.min(1024)];
    let mut k = 0usize;
    for (i, p) in plans.iter_mut().enumerate() {
        if !matches!(p.mixer, Mixer::Hybrid(..)) {
            continue;
        }
        let slot = k % owners.len();
        k += 1;
        match owners[slot] {
            None => owners[slot] = Some(i as u32),
            Some(o) => p.block_from = Some(o),
        }
    }
    Ok(())
}

/// A hybrid layer's attention (its cache) and its tensors beside the Mamba mixer: its own input
/// projection and adapters, and the shared block's when it holds them.
pub(crate) fn hybrid(
    b: &Builder,
    basics: &Basics,
    p: &Plan,
    span: Span,
    out: &mut Vec<Tensor>,
) -> Result<Attention, ArchError> {
    let t = b.text;
    let h = basics.hidden;
    let i = basics.intermediate.get(0);
    let heads = t.req_u64(&["num_attention_heads"])?;
    let kv = t.u64_or(&["num_key_value_heads"], heads)?;
    let d = t.req_u64(&["attention_head_dim"])?;
    let a = t.u64_or(&["attention_hidden_size"], heads * d)?;
    let kv_width = kv * d;
    out.push(Tensor::matrix(Role::Small, h, h, Split::Replicated));
    let zamba2 = b.fam.shared_block.as_deref() == Some("zamba2");
    let rank = if zamba2 {
        t.u64_or(&["adapter_rank"], 0)?
    } else {
        0
    };
    if rank > 0 {
        out.push(Tensor::matrix(Role::Small, rank, h, Split::Replicated));
        out.push(Tensor::matrix(Role::Small, 2 * i, rank, Split::Replicated));
        if t.flag(&["use_shared_attention_adapter"])? {
            out.push(Tensor::matrix(Role::Small, rank, 2 * h, Split::Replicated).times(3));
            out.push(Tensor::matrix(Role::Small, a, rank, Split::Replicated).times(2));
            out.push(Tensor::matrix(
                Role::Small,
                kv_width,
                rank,
                Split::Replicated,
            ));
        }
    }
    if p.block_from.is_none() {
        let r = Role::Attention;
        out.push(Tensor::matrix(r, a, 2 * h, Split::Rows));
        out.push(Tensor::matrix(r, kv_width, 2 * h, Split::KvRows { head_dim: d }).times(2));
        out.push(Tensor::matrix(r, h, a, Split::Cols));
        out.push(Tensor::matrix(Role::Mlp, 2 * i, h, Split::Rows));
        out.push(Tensor::matrix(Role::Mlp, h, i, Split::Cols));
        out.push(Tensor::vector(2 * h + h));
    }
    Ok(Attention {
        rotary_dim: if t.flag(&["use_mem_rope"])? { d } else { 0 },
        ..Attention::plain(heads, kv, d, d, span)
    })
}
