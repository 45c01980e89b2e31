//! The tensors of a GGUF file converted from a model description: llama.cpp's tensor names
//! (src/llama-arch.cpp `LLM_TENSOR_*` names) and shapes (src/models/<arch>.cpp
//! `load_arch_tensors`, ne innermost first) at ggml-org/llama.cpp@0c1e57098, with the types
//! convert_hf_to_gguf.py gives an f16 conversion (conversion/base.py `prepare_tensors`: 1-D
//! tensors, norms, routers and convolution kernels F32, the other matrices F16). Quantizing
//! this list with [`super::quant_mix::choose_types`] gives the file a `--quant` name describes.
//!
//! Each decoder layer is read from the per-layer description (`crate::layer`): its attention
//! (heads, KV heads, key and value widths, latent attention, fused q/k/v of the architectures
//! that have it), its feed-forward block (dense, routed experts, shared experts) and a Mamba
//! mixer are named as llama.cpp names them; the projections of other recurrent mixers get
//! generic `ssm_*` names (the quantizer has no rule for them beyond the convolution, which is
//! kept F32). Norms, q/k norms, biases and routers are named too; other vectors are never
//! quantized, so they are one F32 tensor per layer whatever their names. Matrix parameters the
//! names above do not cover (a V3.2 indexer, Gemma 3n's extra projections) are kept at F16 and
//! reported by [`unmodelled_params`]. Vision and audio towers are not in the text model's GGUF (llama.cpp
//! keeps them in a separate mmproj file).

use super::quant_mix::{GgufTensor, QuantModel};
use crate::ggml::GgmlType;
use crate::layer::{Ffn, Layer, RecurrentKind};
use crate::model::{ModelDesc, NormKind, Role, Split, Stage, Tensor};

/// Where llama.cpp places a tensor: the input side (kept on the CPU), decoder layer `i`, or
/// the output side (the output layer of -ngl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Input,
    Layer(u64),
    Output,
}

/// The llama.cpp architecture a description converts to, for the rules that name one
/// (falcon in llama-quant.cpp; 70B typing of llama and qwen2 in load_arch_hparams) and for the
/// fused q/k/v projection of the Phi-3 and Falcon families (src/models/phi3.cpp,
/// falcon.cpp: `attn_qkv`). By transformers `model_type` (the text model's, else the outer
/// one's); convert_hf_to_gguf.py writes Mistral and Mixtral checkpoints as `llama`.
pub fn arch_of(model: &ModelDesc) -> &'static str {
    const TABLE: &[(&str, &str)] = &[
        ("llama4", "llama4"),
        ("qwen3_moe", "qwen3moe"),
        ("qwen3", "qwen3"),
        ("qwen2", "qwen2"),
        ("phi3", "phi3"),
        ("falcon", "falcon"),
        ("gemma3", "gemma3"),
        ("gemma2", "gemma2"),
        ("gemma", "gemma"),
        ("gpt_oss", "gpt-oss"),
        ("deepseek_v2", "deepseek2"),
        ("deepseek_v3", "deepseek2"),
        ("kimi", "deepseek2"),
        ("starcoder2", "starcoder2"),
        ("jamba", "jamba"),
        ("mamba2", "mamba2"),
        ("mistral3", "mistral3"),
    ];
    let find = |t: &str| TABLE.iter().find(|(p, _)| t.starts_with(p)).map(|x| x.1);
    find(&model.model_type)
        .or_else(|| find(&model.top_model_type))
        .unwrap_or("llama")
}

fn fused_qkv(arch: &str) -> bool {
    matches!(arch, "phi3" | "falcon")
}

fn f32() -> GgmlType {
    GgmlType::by_name("F32").expect("F32")
}
fn f16() -> GgmlType {
    GgmlType::by_name("F16").expect("F16")
}

struct Out(Vec<(Place, GgufTensor)>);

impl Out {
    /// A tensor at the type an f16 conversion gives it (F32 for vectors, norms, routers,
    /// convolutions and tensors that are not `.weight`; F16 otherwise).
    fn add(&mut self, place: Place, name: String, ne: &[u64]) -> u64 {
        let ty = if ne.len() == 1
            || name.ends_with("_norm.weight")
            || name.contains("ffn_gate_inp")
            || name.contains("ssm_conv1d")
            || !name.ends_with(".weight")
        {
            f32()
        } else {
            f16()
        };
        self.add_as(place, name, ne, ty)
    }

    fn add_as(&mut self, place: Place, name: String, ne: &[u64], ty: GgmlType) -> u64 {
        let elements = ne.iter().product::<u64>();
        if elements > 0 {
            self.0.push((
                place,
                GgufTensor {
                    name,
                    ne: ne.to_vec(),
                    ty,
                },
            ));
        }
        elements
    }
}

/// Elements of the tensors of `tensors` that are quantizable matrices (the projections:
/// attention, MLP, experts, recurrent mixers, embeddings and head), and of the others (vectors,
/// routers, convolutions, A_log/D: F32 in every GGUF).
fn split_elements<'a>(tensors: impl Iterator<Item = &'a Tensor>) -> (u64, u64) {
    let (mut matrices, mut small) = (0u64, 0u64);
    for t in tensors {
        let quantizable = t.cols > 1
            && t.rows > 1
            && matches!(
                t.role,
                Role::Attention
                    | Role::Mlp
                    | Role::Expert
                    | Role::Ssm
                    | Role::Embedding
                    | Role::LmHead
            );
        if quantizable {
            matrices = matrices.saturating_add(t.elements());
        } else {
            small = small.saturating_add(t.elements());
        }
    }
    (matrices, small)
}

/// The file's tensors in llama.cpp's names, with where each is placed.
pub fn gguf_tensors(model: &ModelDesc) -> Vec<(Place, GgufTensor)> {
    layout(model).0
}

/// Matrix parameters of the text model that [`gguf_tensors`] cannot name (kept at F16 there).
pub fn unmodelled_params(model: &ModelDesc) -> u64 {
    layout(model).1
}

fn layout(model: &ModelDesc) -> (Vec<(Place, GgufTensor)>, u64) {
    let arch = arch_of(model);
    let (h, v) = (model.hidden_size, model.vocab_size);
    let mut o = Out(Vec::new());
    let mut unmodelled = 0u64;
    let inv = model.inventory();
    // Model-level tensors: token_embd, output, and the vectors (final norm) by stage; towers
    // are not in the text GGUF.
    let text_globals = || inv.global.iter().filter(|(_, t)| t.role != Role::Vision);
    let mut named = o.add(Place::Input, "token_embd.weight".into(), &[h, v]);
    if !model.tie_embeddings {
        named += o.add(Place::Output, "output.weight".into(), &[h, v]);
    }
    for stage in [Stage::First, Stage::Last] {
        let (_, mut small) =
            split_elements(text_globals().filter(|(s, _)| *s == stage).map(|(_, t)| t));
        let place = if stage == Stage::First {
            Place::Input
        } else {
            // The final norm (weight, and bias for LayerNorm).
            small -= norm(&mut o, model, Place::Output, "output_norm", small);
            Place::Output
        };
        let name = if stage == Stage::Last {
            "output_vectors"
        } else {
            "token_embd_vectors"
        };
        o.add(place, name.into(), &[small]);
    }
    let (global_matrices, _) = split_elements(text_globals().map(|(_, t)| t));
    if global_matrices > named {
        unmodelled += global_matrices - named;
        o.add_as(
            Place::Input,
            "unmodelled.weight".into(),
            &[global_matrices - named],
            f16(),
        );
    }
    for i in 0..model.num_layers {
        unmodelled += layer(&mut o, model, arch, i, model.layer(i));
    }
    (o.0, unmodelled)
}

/// One decoder layer's tensors; returns its matrix parameters left unnamed.
fn layer(o: &mut Out, model: &ModelDesc, arch: &str, i: u64, l: &Layer) -> u64 {
    let p = Place::Layer(i);
    let b = |n: &str| format!("blk.{i}.{n}");
    let h = model.hidden_size;
    let mut named = 0u64;
    // Elements of the F32 vectors named below (norms, q/k norms, biases, routers).
    let (matrices, mut small) = split_elements(l.tensors.iter());
    let n_norms = l.norms;
    if n_norms > 0 {
        small -= norm(o, model, p, &b("attn_norm"), small);
    }
    if let Some(a) = &l.attention {
        let (heads, kv, d, dv) = (a.heads, a.kv_heads, a.k_head_dim, a.v_head_dim);
        let mut vector = |o: &mut Out, name: &str, n: u64| {
            if n <= small {
                small -= o.add(p, b(name), &[n]);
            }
        };
        if let Some(m) = &a.latent {
            if m.q_lora_rank > 0 {
                vector(o, "attn_q_a_norm.weight", m.q_lora_rank);
            }
            vector(o, "attn_kv_a_norm.weight", m.kv_lora_rank);
        } else {
            if a.qk_norm {
                vector(o, "attn_q_norm.weight", d);
                vector(o, "attn_k_norm.weight", d);
            }
            if a.qkv_bias {
                if fused_qkv(arch) {
                    vector(o, "attn_qkv.bias", (heads + kv) * d + kv * dv);
                } else {
                    vector(o, "attn_q.bias", heads * d);
                    vector(o, "attn_k.bias", kv * d);
                    vector(o, "attn_v.bias", kv * dv);
                }
            }
            if a.o_bias {
                vector(o, "attn_output.bias", h);
            }
        }
        if let Some(m) = &a.latent {
            // src/models/deepseek2.cpp: q through a LoRA when q_lora_rank > 0; the latent
            // projection; k_b and v_b as per-head 3-D tensors (the split form converters write).
            let qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
            if m.q_lora_rank > 0 {
                named += o.add(p, b("attn_q_a.weight"), &[h, m.q_lora_rank]);
                named += o.add(p, b("attn_q_b.weight"), &[m.q_lora_rank, heads * qk]);
            } else {
                named += o.add(p, b("attn_q.weight"), &[h, heads * qk]);
            }
            named += o.add(
                p,
                b("attn_kv_a_mqa.weight"),
                &[h, m.kv_lora_rank + m.qk_rope_head_dim],
            );
            named += o.add(
                p,
                b("attn_k_b.weight"),
                &[m.qk_nope_head_dim, m.kv_lora_rank, heads],
            );
            named += o.add(
                p,
                b("attn_v_b.weight"),
                &[m.kv_lora_rank, m.v_head_dim, heads],
            );
            named += o.add(p, b("attn_output.weight"), &[heads * m.v_head_dim, h]);
        } else {
            // Layers reading another layer's cache may have no k/v projections (Gemma 3n).
            let has_kv = l
                .tensors
                .iter()
                .any(|t| matches!(t.split, Split::KvRows { .. }));
            let (k_rows, v_rows) = if has_kv { (kv * d, kv * dv) } else { (0, 0) };
            if fused_qkv(arch) {
                named += o.add(p, b("attn_qkv.weight"), &[h, heads * d + k_rows + v_rows]);
            } else {
                named += o.add(p, b("attn_q.weight"), &[h, heads * d]);
                named += o.add(p, b("attn_k.weight"), &[h, k_rows]);
                named += o.add(p, b("attn_v.weight"), &[h, v_rows]);
            }
            named += o.add(p, b("attn_output.weight"), &[heads * dv, h]);
        }
    }
    if let Some(r) = &l.recurrent {
        let ssm: Vec<&Tensor> = l
            .tensors
            .iter()
            .filter(|t| t.role == Role::Ssm && t.cols > 1 && t.rows > 1)
            .collect();
        // Mamba (src/models/mamba.cpp): in [h, 2·di], x [di, r + 2·n], dt [r, di], out [di, h],
        // told apart by their shapes (the state gives di and n).
        let mamba_dims = match (r.kind, r.states.as_slice()) {
            (RecurrentKind::Mamba, [conv, state, ..]) => conv.shape.first().zip(state.shape.get(1)),
            _ => None,
        };
        for (j, t) in ssm.iter().enumerate() {
            let name = match mamba_dims {
                Some((&di, _)) if t.rows == 2 * di && t.cols == h => "ssm_in.weight".to_string(),
                Some((&di, &n)) if t.cols == di && t.rows != h && t.rows > 2 * n => {
                    "ssm_x.weight".to_string()
                }
                Some((&di, _)) if t.rows == di => "ssm_dt.weight".to_string(),
                Some((&di, _)) if t.rows == h && t.cols == di => "ssm_out.weight".to_string(),
                _ => format!("ssm_proj{j}.weight"),
            };
            let ne = if t.count > 1 {
                vec![t.cols, t.rows, t.count]
            } else {
                vec![t.cols, t.rows]
            };
            named += o.add(p, b(&name), &ne);
        }
    }
    let dense = |o: &mut Out, suffix: &str, ff: u64, gated: bool, count: Option<u64>| -> u64 {
        let ne = |a: u64, c: u64| match count {
            Some(n) => vec![a, c, n],
            None => vec![a, c],
        };
        let mut n = 0;
        if gated {
            n += o.add(p, b(&format!("ffn_gate{suffix}.weight")), &ne(h, ff));
        }
        n += o.add(p, b(&format!("ffn_up{suffix}.weight")), &ne(h, ff));
        n + o.add(p, b(&format!("ffn_down{suffix}.weight")), &ne(ff, h))
    };
    if n_norms >= 2 {
        small -= norm(o, model, p, &b("ffn_norm"), small);
    }
    for k in 2..n_norms {
        small -= norm(o, model, p, &b(&format!("post_norm_{k}")), small);
    }
    match &l.ffn {
        Ffn::None => {}
        Ffn::Dense { width, gated, .. } => named += dense(o, "", *width, *gated, None),
        Ffn::Moe { moe: m, gated } => {
            small = small.saturating_sub(o.add(p, b("ffn_gate_inp.weight"), &[h, m.num_experts]));
            named += dense(
                o,
                "_exps",
                m.expert_intermediate_size,
                *gated,
                Some(m.num_experts),
            );
            if m.shared_experts > 0 {
                // Shared experts are gated like the model's dense MLPs.
                let shared_gated = model.mlp == crate::model::MlpKind::Gated;
                named += dense(
                    o,
                    "_shexp",
                    m.shared_expert_intermediate_size * m.shared_experts,
                    shared_gated,
                    None,
                );
            }
        }
    }
    // Other biases, convolutions, A_log/D, extra routers: F32 whatever their names.
    o.add(p, b("vectors"), &[small]);
    let left = matrices.saturating_sub(named);
    if left > 0 {
        o.add_as(p, b("unmodelled.weight"), &[left], f16());
    }
    left
}

/// A norm of the model's input width (weight, and bias for LayerNorm), named `name`, if `left`
/// F32 elements remain for it; returns the elements added.
fn norm(o: &mut Out, model: &ModelDesc, place: Place, name: &str, left: u64) -> u64 {
    let h = model.hidden_size;
    let bias = model.norm == NormKind::Layer;
    let size = if bias { 2 * h } else { h };
    if size == 0 || left < size {
        return 0;
    }
    o.add(place, format!("{name}.weight"), &[h]);
    if bias {
        o.add(place, format!("{name}.bias"), &[h]);
    }
    size
}

/// The quantizer's view of a description.
pub fn quant_model(model: &ModelDesc) -> QuantModel {
    let arch = arch_of(model);
    QuantModel {
        arch: arch.to_string(),
        n_expert: model.moe.as_ref().map_or(0, |m| m.num_experts),
        n_gqa: model
            .num_attention_heads
            .checked_div(model.num_kv_heads)
            .unwrap_or(0),
        n_layer: model.num_layers,
        // load_arch_hparams: an 80-layer qwen2 is 70B, an 80-layer llama 70B unless MHA (65B).
        is_70b: model.num_layers == 80
            && (arch == "qwen2"
                || (arch == "llama" && model.num_attention_heads != model.num_kv_heads)),
    }
}
