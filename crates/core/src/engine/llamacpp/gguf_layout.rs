//! The tensors of a GGUF file converted from a model description: llama.cpp's tensor names
//! (src/llama-arch.cpp `LLM_TENSOR_*` names) and shapes (src/models/<arch>.cpp
//! `load_arch_tensors`, ne innermost first) at ggml-org/llama.cpp@0c1e57098, with the types
//! convert_hf_to_gguf.py gives an f16 conversion (conversion/base.py `prepare_tensors`: 1-D
//! tensors, norms, routers and convolution kernels F32, the other matrices F16). Quantizing
//! this list with [`super::quant_mix::choose_types`] gives the file a `--quant` name describes.

use super::quant_mix::{GgufTensor, QuantModel};
use crate::ggml::GgmlType;
use crate::model::{MlpKind, ModelDesc, NormKind};

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
/// falcon.cpp: `attn_qkv`).
pub fn arch_of(model: &ModelDesc) -> &'static str {
    let f = model
        .family
        .to_ascii_lowercase()
        .replace([' ', '-', '_', '.'], "");
    const TABLE: &[(&str, &str)] = &[
        ("llama4", "llama4"),
        ("qwen3moe", "qwen3moe"),
        ("qwen3", "qwen3"),
        ("qwen2", "qwen2"),
        ("qwq", "qwen2"),
        ("phi3", "phi3"),
        ("phi4", "phi3"),
        ("falcon", "falcon"),
        ("gemma3", "gemma3"),
        ("gemma2", "gemma2"),
        ("gemma", "gemma"),
        ("gptoss", "gpt-oss"),
        ("deepseekv2", "deepseek2"),
        ("deepseekv3", "deepseek2"),
        ("kimi", "deepseek2"),
        ("starcoder2", "starcoder2"),
        ("jamba", "jamba"),
        ("mamba2", "mamba2"),
        ("mistralsmall3", "mistral3"),
    ];
    TABLE
        .iter()
        .find(|(p, _)| f.starts_with(p))
        .map_or("llama", |x| x.1)
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
    fn add(&mut self, place: Place, name: String, ne: &[u64]) {
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
        self.0.push((
            place,
            GgufTensor {
                name,
                ne: ne.to_vec(),
                ty,
            },
        ));
    }
}

/// The file's tensors in llama.cpp's names, with where each is placed.
pub fn gguf_tensors(model: &ModelDesc) -> Vec<(Place, GgufTensor)> {
    let arch = arch_of(model);
    let (h, v) = (model.hidden_size, model.vocab_size);
    let mut o = Out(Vec::new());
    o.add(Place::Input, "token_embd.weight".into(), &[h, v]);
    let norm = |o: &mut Out, place: Place, name: &str, n: u64| {
        o.add(place, format!("{name}.weight"), &[n]);
        if model.norm == NormKind::Layer {
            o.add(place, format!("{name}.bias"), &[n]);
        }
    };
    for i in 0..model.num_layers {
        let p = Place::Layer(i);
        let b = |n: &str| format!("blk.{i}.{n}");
        norm(&mut o, p, &b("attn_norm"), h);
        if model.is_attention_layer(i) {
            attention(&mut o, model, arch, i);
        } else if let Some(s) = &model.ssm {
            let di = s.expand * h;
            let r = if s.dt_rank == 0 {
                h.div_ceil(16)
            } else {
                s.dt_rank
            };
            o.add(p, b("ssm_in.weight"), &[h, 2 * di]);
            o.add(p, b("ssm_conv1d.weight"), &[s.d_conv, di]);
            if s.conv_bias {
                o.add(p, b("ssm_conv1d.bias"), &[di]);
            }
            o.add(p, b("ssm_x.weight"), &[di, r + 2 * s.d_state]);
            o.add(p, b("ssm_dt.weight"), &[r, di]);
            o.add(p, b("ssm_dt.bias"), &[di]);
            o.add(p, b("ssm_a"), &[s.d_state, di]);
            o.add(p, b("ssm_d"), &[di]);
            o.add(p, b("ssm_out.weight"), &[di, h]);
        }
        if model.norms_per_layer >= 2 {
            norm(&mut o, p, &b("ffn_norm"), h);
        }
        for k in 2..model.norms_per_layer {
            norm(&mut o, p, &b(&format!("post_norm_{k}")), h);
        }
        mlp(&mut o, model, i);
    }
    if model.final_norm {
        norm(&mut o, Place::Output, "output_norm", h);
    }
    if !model.tie_embeddings {
        o.add(Place::Output, "output.weight".into(), &[h, v]);
    }
    o.0
}

fn attention(o: &mut Out, model: &ModelDesc, arch: &str, i: u64) {
    let p = Place::Layer(i);
    let b = |n: &str| format!("blk.{i}.{n}");
    let (h, heads, kv, d) = (
        model.hidden_size,
        model.num_attention_heads,
        model.num_kv_heads,
        model.head_dim,
    );
    if let Some(m) = &model.mla {
        // src/models/deepseek2.cpp: q through a LoRA when q_lora_rank > 0; the latent
        // projection; k_b and v_b as per-head 3-D tensors (the split form converters write).
        let qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
        if m.q_lora_rank > 0 {
            o.add(p, b("attn_q_a.weight"), &[h, m.q_lora_rank]);
            o.add(p, b("attn_q_a_norm.weight"), &[m.q_lora_rank]);
            o.add(p, b("attn_q_b.weight"), &[m.q_lora_rank, heads * qk]);
        } else {
            o.add(p, b("attn_q.weight"), &[h, heads * qk]);
        }
        o.add(
            p,
            b("attn_kv_a_mqa.weight"),
            &[h, m.kv_lora_rank + m.qk_rope_head_dim],
        );
        o.add(p, b("attn_kv_a_norm.weight"), &[m.kv_lora_rank]);
        o.add(
            p,
            b("attn_k_b.weight"),
            &[m.qk_nope_head_dim, m.kv_lora_rank, heads],
        );
        o.add(
            p,
            b("attn_v_b.weight"),
            &[m.kv_lora_rank, m.v_head_dim, heads],
        );
        o.add(p, b("attn_output.weight"), &[heads * m.v_head_dim, h]);
        return;
    }
    if fused_qkv(arch) {
        o.add(p, b("attn_qkv.weight"), &[h, (heads + 2 * kv) * d]);
        if model.qkv_bias {
            o.add(p, b("attn_qkv.bias"), &[(heads + 2 * kv) * d]);
        }
    } else {
        o.add(p, b("attn_q.weight"), &[h, heads * d]);
        o.add(p, b("attn_k.weight"), &[h, kv * d]);
        o.add(p, b("attn_v.weight"), &[h, kv * d]);
        if model.qkv_bias {
            o.add(p, b("attn_q.bias"), &[heads * d]);
            o.add(p, b("attn_k.bias"), &[kv * d]);
            o.add(p, b("attn_v.bias"), &[kv * d]);
        }
    }
    if model.qk_norm {
        o.add(p, b("attn_q_norm.weight"), &[d]);
        o.add(p, b("attn_k_norm.weight"), &[d]);
    }
    o.add(p, b("attn_output.weight"), &[heads * d, h]);
    if model.o_bias {
        o.add(p, b("attn_output.bias"), &[h]);
    }
}

fn mlp(o: &mut Out, model: &ModelDesc, i: u64) {
    let p = Place::Layer(i);
    let b = |n: &str| format!("blk.{i}.{n}");
    let h = model.hidden_size;
    let gated = model.mlp == MlpKind::Gated;
    let dense = |o: &mut Out, suffix: &str, ff: u64, count: Option<u64>| {
        let ne = |a: u64, c: u64| match count {
            Some(n) => vec![a, c, n],
            None => vec![a, c],
        };
        if gated {
            o.add(p, b(&format!("ffn_gate{suffix}.weight")), &ne(h, ff));
        }
        o.add(p, b(&format!("ffn_up{suffix}.weight")), &ne(h, ff));
        o.add(p, b(&format!("ffn_down{suffix}.weight")), &ne(ff, h));
    };
    match &model.moe {
        Some(m) if model.is_moe_layer(i) => {
            o.add(p, b("ffn_gate_inp.weight"), &[h, m.num_experts]);
            dense(o, "_exps", m.expert_intermediate_size, Some(m.num_experts));
            if m.shared_experts > 0 {
                dense(
                    o,
                    "_shexp",
                    m.shared_expert_intermediate_size * m.shared_experts,
                    None,
                );
            }
            if m.shared_expert_gate {
                o.add(p, b("ffn_gate_inp_shexp.weight"), &[h]);
            }
        }
        Some(m) => dense(
            o,
            "",
            m.dense_intermediate_size.unwrap_or(model.intermediate_size),
            None,
        ),
        None => dense(o, "", model.intermediate_size, None),
    }
    if model.mlp_bias {
        o.add(p, b("ffn_down.bias"), &[h]);
    }
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
