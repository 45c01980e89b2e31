//! Family traits that depend on config values in ways the table cannot say: each rule reads
//! the config and sets the family's traits before the layers are built. One function per
//! family, citing the modeling file of transformers 5.24.0 it follows.

use super::family::Family;
use super::fields::Scope;
use super::ArchError;

/// Adjusts `fam` (the table's entry for `model_type`) to this config.
pub(crate) fn adjust(model_type: &str, t: &Scope, fam: &mut Family) -> Result<(), ArchError> {
    match model_type {
        "falcon" => falcon(t, fam),
        "opt" => opt(t, fam),
        "lfm2" | "lfm2_moe" => lfm2(t, fam),
        "idefics" => idefics(t, fam),
        "molmo2_text" => molmo2(t, fam),
        "modernbert-decoder" => modernbert_decoder(t, fam),
        "step3p5" => step3p5(t, fam),
        "xlstm" => xlstm(t, fam),
        _ => Ok(()),
    }
}

/// models/falcon/modeling_falcon.py FalconDecoderLayer: without `parallel_attn`, an input and a
/// post-attention LayerNorm; with it, `ln_attn` and `ln_mlp` when `num_ln_in_parallel_attn` is 2
/// (the default under `new_decoder_architecture`), else one `input_layernorm`. FalconAttention:
/// `multi_query` means one KV head unless `new_decoder_architecture` (then `num_kv_heads`).
fn falcon(t: &Scope, fam: &mut Family) -> Result<(), ArchError> {
    let new_arch = t.flag(&["new_decoder_architecture"])?;
    let parallel = t.bool(&["parallel_attn"])?.unwrap_or(true);
    let n_ln = t.u64(&["num_ln_in_parallel_attn"])?;
    fam.layer_norms = Some(
        if !parallel || n_ln == Some(2) || (n_ln.is_none() && new_arch) {
            2
        } else {
            1
        },
    );
    if new_arch {
        fam.multi_query_key = None;
    }
    Ok(())
}

/// models/opt/modeling_opt.py OPTDecoder: a final LayerNorm only when `do_layer_norm_before`
/// and not `_remove_final_layer_norm` (OPT-350m has none).
fn opt(t: &Scope, fam: &mut Family) -> Result<(), ArchError> {
    let before = t.bool(&["do_layer_norm_before"])?.unwrap_or(true);
    let removed = t.flag(&["_remove_final_layer_norm"])?;
    fam.final_norm = Some(before && !removed);
    Ok(())
}

/// models/lfm2/modeling_lfm2.py Lfm2MLP: with `block_auto_adjust_ff_dim` the width is
/// int(2 × intermediate / 3), then × `block_ffn_dim_multiplier` and rounded up to a multiple of
/// `block_multiple_of`.
fn lfm2(t: &Scope, fam: &mut Family) -> Result<(), ArchError> {
    if !t.flag(&["block_auto_adjust_ff_dim"])? {
        return Ok(());
    }
    let Some(i) = t.u64(&["intermediate_size"])? else {
        return Ok(());
    };
    let mut w = 2 * i / 3;
    if let Some(m) = t.f64(&["block_ffn_dim_multiplier"])? {
        w = (m * w as f64) as u64;
        let of = t.u64_or(&["block_multiple_of"], 256)?.max(1);
        w = of * w.div_ceil(of);
    }
    fam.intermediate_override = Some(w);
    Ok(())
}

/// models/idefics/modeling_idefics.py IdeficsGatedCrossAttentionLayer: alpha_cross_attn and
/// alpha_dense are one number each for `alpha_type` "float", [hidden] each for "vector".
fn idefics(t: &Scope, fam: &mut Family) -> Result<(), ArchError> {
    let alphas = match t.string(&["alpha_type"])?.as_deref() {
        None | Some("float") => "2",
        Some("vector") => "2 * h",
        Some(other) => {
            return Err(ArchError::field(
                &t.field("alpha_type"),
                format!(
                    "{} = \"{}\" is neither \"float\" nor \"vector\" (modeling_idefics.py)",
                    t.field("alpha_type"),
                    other.chars().take(20).collect::<String>()
                ),
            ))
        }
    };
    fam.cross_extra = Some(format!(
        "{alphas} + 3 * h * i + 2 * h + qk_layer_norms * 2 * d"
    ));
    Ok(())
}

/// models/molmo2/modeling_molmo2.py Molmo2TextAttention: q_norm/k_norm over head_dim for
/// `qk_norm_type` "qwen3", over all heads for "olmo", none otherwise.
fn molmo2(t: &Scope, fam: &mut Family) -> Result<(), ArchError> {
    fam.qk_norm = match t.string(&["qk_norm_type"])?.as_deref() {
        Some("qwen3") => Some("head".into()),
        Some("olmo") => Some("full".into()),
        _ => None,
    };
    Ok(())
}

/// models/modernbert_decoder/modeling_modernbert_decoder.py: every LayerNorm has a bias only
/// when `norm_bias`.
fn modernbert_decoder(t: &Scope, fam: &mut Family) -> Result<(), ArchError> {
    fam.norm = Some(
        if t.flag(&["norm_bias"])? {
            "layer"
        } else {
            "layer_nobias"
        }
        .into(),
    );
    Ok(())
}

/// models/step3p7/modeling_step3p7.py Step3p7Attention: g_proj [heads, hidden] for `gating`
/// true or "per-head", else [heads × head_dim, hidden]; sliding layers' head count comes through
/// `per_layer_config` (configuration_step3p7.py), so `num_sliding_attention_heads` is read there.
fn step3p5(t: &Scope, fam: &mut Family) -> Result<(), ArchError> {
    let per_head = match t.find(&["gating"]).map(|f| f.value.clone()) {
        None => true,
        Some(serde_json::Value::Bool(b)) => b,
        Some(serde_json::Value::String(s)) => s == "per-head",
        Some(_) => false,
    };
    fam.layer_extra = Some(
        if per_head {
            "heads * h"
        } else {
            "heads * d * h"
        }
        .into(),
    );
    t.mark_read(&["num_sliding_attention_heads"]);
    Ok(())
}

/// models/xlstm/modeling_xlstm.py xLSTMFeedForward: proj_up_gate and proj_up of
/// round_up(hidden × ffn_proj_factor, ffn_round_up_to_multiple_of), proj_down.
fn xlstm(t: &Scope, fam: &mut Family) -> Result<(), ArchError> {
    let h = t.req_u64(&["hidden_size", "embedding_dim"])?;
    let f = t.f64(&["ffn_proj_factor"])?.unwrap_or(2.667);
    let of = t.u64_or(&["ffn_round_up_to_multiple_of"], 64)?.max(1);
    fam.intermediate_override = Some(((h as f64 * f) as u64).div_ceil(of) * of);
    Ok(())
}
