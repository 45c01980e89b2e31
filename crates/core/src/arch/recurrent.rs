//! Recurrent mixers: their tensors and their constant state per sequence, as transformers
//! 5.24.0 builds and caches them (`cache_utils.py` LinearAttentionLayer: conv states
//! [batch, channels, kernel] in the model dtype, recurrent states of the mixer's own shape in
//! float32 for Mamba, Mamba-2 and the delta rules, whose scans run in float32 and whose cache
//! keeps the state they return: checked against the oracle's cache tensors).
//!
//! - Mamba (`modeling_mamba.py` MambaMixer; Jamba's `modeling_jamba.py`): in_proj [2·di, h],
//!   conv1d [di, 1, k], x_proj [r + 2·n, di], dt_proj [di, r] + bias, A_log [di, n], D [di],
//!   out_proj [h, di]; state conv [di, k] and ssm [di, n].
//! - Mamba-2 (`modeling_mamba2.py` Mamba2Mixer; Bamba, Granite 4-H, Nemotron-H, Falcon-H1,
//!   Zamba 2 follow it): conv_dim = di + 2·groups·n; in_proj [di + conv_dim + heads, h], conv1d
//!   [conv_dim, 1, k], dt_bias, A_log, D [heads], gated norm [di], out_proj [h, di]; state conv
//!   [conv_dim, k] and ssm [heads, head_dim, n].
//! - Gated DeltaNet (`modeling_qwen3_next.py` Qwen3NextGatedDeltaNet): key_dim = kh·kd,
//!   value_dim = vh·vd, conv_dim = 2·key_dim + value_dim; in_proj_qkvz [2·key_dim + 2·value_dim,
//!   h], in_proj_ba [2·vh, h], conv1d [conv_dim, 1, k], dt_bias, A_log [vh], norm [vd], out_proj
//!   [h, value_dim]; state conv [conv_dim, k] and recurrent [vh, kd, vd].
//! - Kimi Delta Attention (`modeling_kimi_linear.py` KimiLinearDeltaAttention): q, k, v [H·d, h],
//!   conv1d [3·H·d, 1, k], forget gate f_a [d, h], f_b [H·d, d], dt_bias [H·d], A_log [H], b_proj
//!   [H, h], g_a [d, h], g_b [H·d, d], o_norm [d], o_proj [h, H·d]; state conv [3·H·d, k] and
//!   recurrent [H, d, d].
//! - Short convolution (`modeling_lfm2.py` Lfm2ShortConv): in_proj [3h, h], conv [h, 1, L],
//!   out_proj [h, h]; state conv [h, L].
//! - RWKV (v4) time mixing (`modeling_rwkv.py` RwkvSelfAttention): key, value, receptance,
//!   output [a, h] and time_decay, time_first, time_mix_key/value/receptance [a]; state: five
//!   [hidden] vectors per layer (`RwkvModel` state list: two in the model dtype, three in float32).
//! - Lightning attention (`modeling_minimax.py` MiniMaxLightningAttention): qkv_proj [3·H·d, h],
//!   out_proj [h, H·d], output_gate [H·d, h], norm [H·d]; state recurrent [H, d, d].
//! - RG-LRU (`modeling_recurrent_gemma.py` RecurrentGemmaRecurrentBlock): linear_y, linear_x
//!   [w, h] and linear_out [h, w] with biases, conv_1d [w, 1, k] with bias, RG-LRU
//!   recurrent_param [w] and input/recurrent gates [heads, w / heads, w / heads] with biases
//!   (w = lru_width); state conv1d_state [w, k − 1] in the model dtype and recurrent_states [w]
//!   in float32.
//! - Compressed convolutional attention (`modeling_zaya.py` ZayaCCAProjection), beside the
//!   layer's attention (whose q/k/v/o it shapes: v split into current and delayed halves):
//!   conv_qk_depthwise [C, 1, cca_time0] and conv_qk_grouped [C, head_dim, cca_time1] with
//!   biases over C = (heads + kv_heads) × head_dim, qk_norm temperatures [kv_heads]; state the
//!   last (cca_time0 − 1) + (cca_time1 − 1) q/k inputs [C, that] and the delayed value
//!   [kv_heads × head_dim / 2], in the model dtype.
//! - mLSTM (`modeling_xlstm.py` xLSTMLayer): q, k [qk_dim, h], v and ogate_preact [v_dim, h]
//!   (biases with use_bias), igate/fgate_preact [heads, h] with biases, multihead_norm [v_dim],
//!   out_proj [h, v_dim]; qk_dim and v_dim are h × their factor rounded up to 64
//!   (configuration_xlstm.py); state per layer (xLSTMCache, in the cache dtype = the model's) C
//!   [heads, qk_dim / heads, v_dim / heads], n [heads, qk_dim / heads], m [heads, 1].

use super::{ArchError, Basics, Builder};
use crate::layer::{Recurrent, RecurrentKind, StateDtype, StateTensor};
use crate::model::{Role, Split, Tensor};

/// The recurrent mixer of a layer, as the plan names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecKind {
    Mamba,
    Mamba2,
    GatedDeltaNet,
    KimiDelta,
    ShortConv,
    Lightning,
    Rwkv,
    Rglru,
    Xlstm,
    Cca,
    /// DeepSeek-V4's compressors (heavily compressed / compressed sparse attention), built
    /// with their attention by compressed.rs.
    Compressor {
        sparse: bool,
    },
}

impl RecKind {
    /// What the family's `linear_attention` layers are.
    pub fn of_family(b: &Builder) -> Result<Option<RecKind>, ArchError> {
        Ok(match b.fam.linear_attention.as_deref() {
            None => None,
            Some("mamba") => Some(RecKind::Mamba),
            Some("mamba2") => Some(RecKind::Mamba2),
            Some("gated_deltanet") => Some(RecKind::GatedDeltaNet),
            Some("kimi_delta") => Some(RecKind::KimiDelta),
            Some("short_conv") => Some(RecKind::ShortConv),
            Some("lightning") => Some(RecKind::Lightning),
            Some("rwkv") => Some(RecKind::Rwkv),
            Some("rg_lru") => Some(RecKind::Rglru),
            Some("mlstm") => Some(RecKind::Xlstm),
            Some("cca") => Some(RecKind::Cca),
            // Built by the family's own hybrid code (inkling.rs); never by `build`.
            Some("inkling_convs") => Some(RecKind::ShortConv),
            Some(other) => {
                return Err(ArchError::model(format!(
                    "architectures.toml: unknown linear_attention '{other}' for {}",
                    b.model_type
                )))
            }
        })
    }
}

/// A state tensor of `shape` (per sequence) in `dtype`.
pub(crate) fn state(name: &'static str, shape: &[u64], dtype: StateDtype) -> StateTensor {
    StateTensor {
        name,
        shape: shape.to_vec(),
        dtype,
    }
}

/// The tensors of a recurrent mixer (appended to `out`) and its state.
pub(crate) fn build(
    b: &Builder,
    basics: &Basics,
    kind: RecKind,
    out: &mut Vec<Tensor>,
) -> Result<Recurrent, ArchError> {
    let t = b.text;
    let h = basics.hidden;
    let r = Role::Ssm;
    let conv_bias = t
        .bool(&["use_conv_bias", "mamba_conv_bias", "conv_bias"])?
        .unwrap_or(kind == RecKind::Mamba || kind == RecKind::Mamba2);
    let proj_bias = t.flag(&["use_bias", "mamba_proj_bias", "mamba_bias"])?;
    // Facts engines size their state pages from (vLLM: model_config.get_mamba_chunk_size;
    // NemotronHForCausalLMConfig / Qwen3_5ForConditionalGenerationConfig read the SSM dtype).
    let chunk_size = t.u64(&["mamba_chunk_size", "chunk_size"])?;
    let config_ssm_dtype_bytes = match t
        .string(&["mamba_ssm_cache_dtype", "mamba_ssm_dtype"])?
        .as_deref()
    {
        Some("float32") => Some(4),
        Some("float16" | "bfloat16") => Some(2),
        _ => None,
    };
    let rec = |kind: RecurrentKind, states: Vec<StateTensor>, groups: u64| Recurrent {
        kind,
        states,
        groups,
        chunk_size,
        config_ssm_dtype_bytes,
    };
    match kind {
        RecKind::Mamba => {
            // A GGUF file states the inner width (ssm.inner_size, as mamba_d_ssm): Jamba's.
            let di = match (
                t.u64(&["mamba_d_ssm"])?,
                t.u64(&["mamba_expand", "expand"])?,
            ) {
                (Some(d), _) => d,
                (None, Some(e)) if !t.has(&["intermediate_size"]) || t.has(&["mamba_expand"]) => {
                    e * h
                }
                _ => t.req_u64(&["intermediate_size"])?,
            };
            let n = t.req_u64(&["mamba_d_state", "state_size", "ssm_state_size"])?;
            let k = t.req_u64(&["mamba_d_conv", "conv_kernel", "d_conv"])?;
            // Zamba's multi-head Mamba (modeling_zamba.py ZambaMambaMixer) splits x_proj,
            // dt_proj, A_log and D over n_mamba_heads: the same elements, the same state.
            t.mark_read(&["n_mamba_heads"]);
            let rank = match t.find(&["mamba_dt_rank", "time_step_rank"]) {
                Some(f) if f.value.is_string() => h.div_ceil(16),
                Some(f) => super::fields::as_u64(f.value).unwrap_or(h.div_ceil(16)),
                None => h.div_ceil(16),
            };
            out.push(Tensor::matrix(r, 2 * di, h, Split::Rows));
            out.push(Tensor::matrix(Role::Small, di, k, Split::Rows));
            out.push(Tensor::matrix(r, rank + 2 * n, di, Split::Cols));
            out.push(Tensor::matrix(r, di, rank, Split::Rows));
            out.push(Tensor::matrix(Role::Small, di, n, Split::Rows));
            let mut small = di /* D */ + di /* dt_proj bias */;
            if conv_bias {
                small += di;
            }
            if proj_bias {
                small += 2 * di + h;
            }
            if b.fam.mamba_dt_norms == Some(true) {
                small += rank + 2 * n;
            }
            out.push(Tensor::vector(small));
            out.push(Tensor::matrix(r, h, di, Split::Cols));
            Ok(rec(
                RecurrentKind::Mamba,
                vec![
                    state("conv", &[di, k], StateDtype::Model),
                    state("recurrent", &[di, n], StateDtype::F32),
                ],
                1,
            ))
        }
        RecKind::Mamba2 => {
            let heads = t.req_u64(&[
                "mamba_n_heads",
                "mamba_num_heads",
                "n_mamba_heads",
                "num_heads",
            ])?;
            // Granite 4-H's class default is "auto": d_inner / heads
            // (configuration_granitemoehybrid.py), as when no head width is given.
            let head_dim_keys = ["mamba_d_head", "mamba_head_dim", "mamba_headdim"];
            let given_head_dim = match t.find(&head_dim_keys) {
                Some(f) if f.value.as_str() == Some("auto") => None,
                _ => t.u64(&head_dim_keys)?,
            };
            // Inner width: Falcon-H1's mamba_d_ssm; else heads × head dim when both are given
            // (Nemotron-H: `intermediate_size = mamba_num_heads * mamba_head_dim`); else
            // expand × hidden (Mamba2Mixer).
            t.mark_read(&["mamba_expand", "expand"]);
            let di = match (t.u64(&["mamba_d_ssm"])?, given_head_dim) {
                (Some(d), _) => d,
                (None, Some(hd)) => heads.saturating_mul(hd),
                (None, None) => t.u64_or(&["mamba_expand", "expand"], 2)? * h,
            };
            let head_dim = match given_head_dim {
                Some(d) => d,
                None => di.checked_div(heads).unwrap_or(0),
            };
            let groups = t.u64_or(&["mamba_n_groups", "mamba_ngroups", "n_groups"], 1)?;
            let n = t.req_u64(&["mamba_d_state", "ssm_state_size", "state_size"])?;
            let k = t.req_u64(&["mamba_d_conv", "conv_kernel", "d_conv"])?;
            let conv_dim = di + 2 * groups * n;
            out.push(Tensor::matrix(r, di + conv_dim + heads, h, Split::Rows));
            out.push(Tensor::matrix(Role::Small, conv_dim, k, Split::Rows));
            // The gated RMSNorm over di, absent when `mamba_rms_norm` is false (Falcon-H1).
            let gated_norm = t.bool(&["mamba_rms_norm"])?.unwrap_or(true);
            let mut small = 3 * heads + if gated_norm { di } else { 0 };
            if conv_bias {
                small += conv_dim;
            }
            if proj_bias {
                small += di + conv_dim + heads + h;
            }
            out.push(Tensor::vector(small));
            out.push(Tensor::matrix(r, h, di, Split::Cols));
            Ok(rec(
                RecurrentKind::Mamba2,
                vec![
                    state("conv", &[conv_dim, k], StateDtype::Model),
                    state("recurrent", &[heads, head_dim, n], StateDtype::F32),
                ],
                groups,
            ))
        }
        RecKind::GatedDeltaNet => {
            let kh = t.req_u64(&["linear_num_key_heads"])?;
            let vh = t.req_u64(&["linear_num_value_heads"])?;
            let kd = t.req_u64(&["linear_key_head_dim"])?;
            let vd = t.req_u64(&["linear_value_head_dim"])?;
            let k = t.req_u64(&["linear_conv_kernel_dim"])?;
            let (key_dim, value_dim) = (kh * kd, vh * vd);
            let conv_dim = 2 * key_dim + value_dim;
            out.push(Tensor::matrix(
                r,
                2 * key_dim + 2 * value_dim,
                h,
                Split::Rows,
            ));
            out.push(Tensor::matrix(r, 2 * vh, h, Split::Rows));
            out.push(Tensor::matrix(Role::Small, conv_dim, k, Split::Rows));
            out.push(Tensor::vector(2 * vh + vd));
            out.push(Tensor::matrix(r, h, value_dim, Split::Cols));
            Ok(rec(
                RecurrentKind::GatedDeltaNet,
                vec![
                    state("conv", &[conv_dim, k], StateDtype::Model),
                    state("recurrent", &[vh, kd, vd], StateDtype::F32),
                ],
                1,
            ))
        }
        RecKind::KimiDelta => {
            let heads = t.req_u64(&["linear_num_heads", "num_linear_heads"])?;
            let d = t.req_u64(&["linear_head_dim"])?;
            let k = t.req_u64(&["linear_conv_kernel_dim"])?;
            let qkv = heads * d;
            out.push(Tensor::matrix(r, qkv, h, Split::Rows).times(3));
            out.push(Tensor::matrix(Role::Small, 3 * qkv, k, Split::Rows));
            if b.fam.delta_gates.as_deref() == Some("full") {
                // Bailing hybrid (modeling_bailing_hybrid.py BailingHybridDeltaAttention):
                // forget_gate.f_proj and g_proj full rank [H·d, h].
                out.push(Tensor::matrix(r, qkv, h, Split::Rows).times(2));
            } else {
                out.push(Tensor::matrix(r, d, h, Split::Replicated).times(2));
                out.push(Tensor::matrix(r, qkv, d, Split::Rows).times(2));
            }
            out.push(Tensor::matrix(r, heads, h, Split::Rows));
            out.push(Tensor::vector(qkv + heads + d));
            out.push(Tensor::matrix(r, h, qkv, Split::Cols));
            Ok(rec(
                RecurrentKind::KimiDelta,
                vec![
                    state("conv", &[3 * qkv, k], StateDtype::Model),
                    state("recurrent", &[heads, d, d], StateDtype::F32),
                ],
                1,
            ))
        }
        RecKind::ShortConv => {
            let l = t.req_u64(&["conv_L_cache", "conv_kernel", "short_conv_kernel_size"])?;
            out.push(Tensor::matrix(r, 3 * h, h, Split::Rows));
            out.push(Tensor::matrix(Role::Small, h, l, Split::Rows));
            out.push(Tensor::matrix(r, h, h, Split::Cols));
            if conv_bias {
                out.push(Tensor::vector(3 * h + h + h));
            }
            Ok(rec(
                RecurrentKind::ShortConv,
                vec![state("conv", &[h, l], StateDtype::Model)],
                1,
            ))
        }
        RecKind::Rwkv => {
            let a = t.u64_or(&["attention_hidden_size"], h)?;
            out.push(Tensor::matrix(r, a, h, Split::Rows).times(3));
            out.push(Tensor::matrix(r, h, a, Split::Cols));
            out.push(Tensor::vector(5 * a));
            Ok(rec(
                RecurrentKind::Rwkv,
                vec![
                    state("state0", &[h], StateDtype::Model),
                    state("state1", &[h], StateDtype::Model),
                    state("state2", &[h], StateDtype::F32),
                    state("state3", &[h], StateDtype::F32),
                    state("state4", &[h], StateDtype::F32),
                ],
                1,
            ))
        }
        RecKind::Rglru => {
            let w = t.u64_or(&["lru_width"], h)?;
            let k = t.req_u64(&["conv1d_width"])?;
            let heads = basics.heads.get(0).max(1);
            let bw = w / heads;
            out.push(Tensor::matrix(r, w, h, Split::Rows).times(2));
            out.push(Tensor::matrix(r, h, w, Split::Cols));
            out.push(Tensor::matrix(Role::Small, w, k, Split::Rows));
            out.push(Tensor::matrix(Role::Small, heads * bw, bw, Split::Rows).times(2));
            out.push(Tensor::vector(2 * w + h + w + w + 2 * heads * bw));
            Ok(rec(
                RecurrentKind::Rglru,
                vec![
                    state("conv", &[w, k.saturating_sub(1)], StateDtype::Model),
                    state("recurrent", &[w], StateDtype::F32),
                ],
                1,
            ))
        }
        RecKind::Xlstm => {
            let heads = t.req_u64(&["num_heads"])?.max(1);
            let round64 = |f: f64| -> u64 { ((h as f64 * f) as u64).div_ceil(64) * 64 };
            let qk = round64(t.f64(&["qk_dim_factor"])?.unwrap_or(0.5));
            let v = round64(t.f64(&["v_dim_factor"])?.unwrap_or(1.0));
            let bias = t.flag(&["use_bias"])?;
            out.push(Tensor::matrix(r, qk, h, Split::Rows).times(2));
            out.push(Tensor::matrix(r, v, h, Split::Rows).times(2));
            out.push(Tensor::matrix(r, heads, h, Split::Rows).times(2));
            out.push(Tensor::matrix(r, h, v, Split::Cols));
            let biases = if bias { 2 * qk + 2 * v + h } else { 0 };
            out.push(Tensor::vector(2 * heads + v + biases));
            Ok(rec(
                RecurrentKind::Xlstm,
                vec![
                    state("C", &[heads, qk / heads, v / heads], StateDtype::Model),
                    state("n", &[heads, qk / heads], StateDtype::Model),
                    state("m", &[heads, 1], StateDtype::Model),
                ],
                1,
            ))
        }
        RecKind::Compressor { .. } => Err(ArchError::model(
            "a compressed-attention layer is built with its attention (compressed.rs)",
        )),
        RecKind::Cca => {
            let heads = basics.heads.get(0);
            let kv = basics.kv_heads.get(0);
            let d = basics.head_dim;
            let t0 = t.req_u64(&["cca_time0"])?;
            let t1 = t.req_u64(&["cca_time1"])?;
            let c = (heads + kv) * d;
            out.push(Tensor::matrix(Role::Small, c, t0 + d * t1, Split::Rows));
            out.push(Tensor::vector(2 * c + kv));
            Ok(rec(
                RecurrentKind::Cca,
                vec![
                    state(
                        "conv",
                        &[c, t0.saturating_sub(1) + t1.saturating_sub(1)],
                        StateDtype::Model,
                    ),
                    state("recurrent", &[kv * d / 2], StateDtype::Model),
                ],
                1,
            ))
        }
        RecKind::Lightning => {
            let heads = basics.heads.get(0);
            let d = basics.head_dim;
            out.push(Tensor::matrix(r, 3 * heads * d, h, Split::Rows));
            out.push(Tensor::matrix(r, h, heads * d, Split::Cols));
            out.push(Tensor::matrix(r, heads * d, h, Split::Rows));
            out.push(Tensor::vector(heads * d));
            Ok(rec(
                RecurrentKind::Lightning,
                vec![state("recurrent", &[heads, d, d], StateDtype::Model)],
                1,
            ))
        }
    }
}
