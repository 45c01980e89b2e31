//! [`ModelFile`] → `vramplan_core::ModelDesc`, plus the file's *exact* weight bytes.
//!
//! The description carries the architecture (what the KV cache, activations and parameter
//! inventory are computed from); [`FileWeights`] carries what the file actually stores — every
//! tensor's real dtype and byte size, summed per decoder layer — so an estimate can use the
//! file's bytes instead of a bits-per-weight guess (reference Part 1.3: "the exact weight size is
//! always Σ nbytes(type, shape) from the GGUF header").
//!
//! Field mapping follows crates/core/data/SCHEMA.md (which names the config.json key behind each
//! schema key). Structure flags the config does not state (q/k norms, biases, norms per layer) are
//! read off the layer-0 tensor names when the file has tensors.

use std::collections::BTreeMap;

use vramplan_core::limits::MAX_LAYERS;
use vramplan_core::model::{Mla, MlpKind, Moe, NormKind, QuantSpec, SlidingWindow, WindowPattern};
use vramplan_core::{ModelDesc, WeightFormat};

use crate::error::FormatError;
use crate::hf_config::{ModelConfig, PerLayer};
use crate::{DtypeStats, Format, ModelFile};

/// What the file stores, exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct FileWeights {
    pub total_bytes: u64,
    pub total_params: u64,
    pub by_dtype: Vec<DtypeStats>,
    /// Bytes of tensors that belong to decoder layer i (names `blk.i.` / `model.layers.i.` /
    /// `language_model.model.layers.i.` ...), index = layer.
    pub layer_bytes: Vec<u64>,
    /// Bytes of every other tensor (embeddings, output head, final norm, vision tower...).
    pub other_bytes: u64,
    /// The dominant storage format, when it maps to one of the core's formats.
    pub format: Option<WeightFormat>,
}

/// A model description built from a file, with the file's exact weights and what was assumed.
#[derive(Debug, Clone)]
pub struct FileModel {
    pub desc: ModelDesc,
    /// `None` for a config.json without weights.
    pub weights: Option<FileWeights>,
    /// Assumptions made while mapping (each one line), for the CLI to show.
    pub notes: Vec<String>,
}

fn missing(file: &str, field: &str) -> FormatError {
    FormatError::MissingField {
        file: file.to_string(),
        field: field.to_string(),
        alternatives: " (needed for an estimate)".to_string(),
    }
}

/// The decoder layer a tensor name belongs to, if any.
pub fn layer_index(name: &str) -> Option<usize> {
    for marker in ["blk.", "layers.", "h.", "block.", "blocks."] {
        let mut search = name;
        while let Some(pos) = search.find(marker) {
            // The marker must start the name or follow a '.'.
            let start_ok = pos == 0 || search.as_bytes().get(pos - 1) == Some(&b'.');
            let rest = &search[pos + marker.len()..];
            let digits: &str = rest.split('.').next().unwrap_or("");
            if start_ok
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && rest.len() > digits.len()
            {
                return digits.parse().ok();
            }
            search = &search[pos + marker.len()..];
        }
    }
    None
}

fn per_layer_value(p: &PerLayer, what: &str, notes: &mut Vec<String>) -> u64 {
    match p {
        PerLayer::Uniform(v) => *v,
        PerLayer::Layers(vs) => {
            let max = vs.iter().copied().max().unwrap_or(0);
            notes.push(format!(
                "{what} differs per layer ({} values); using the largest, {max}",
                vs.len()
            ));
            max
        }
    }
}

/// The released dtype as the schema names it.
fn schema_dtype(torch_dtype: Option<&str>) -> String {
    match torch_dtype.map(str::to_ascii_lowercase).as_deref() {
        Some("float16") | Some("fp16") | Some("half") => "fp16".into(),
        Some("float32") | Some("fp32") | Some("float") => "fp32".into(),
        _ => "bf16".into(),
    }
}

/// Plain-MLP / LayerNorm families named in SCHEMA.md (`mlp`: GPT-2, OPT, Falcon, BLOOM, GPT-J, NeoX).
fn plain_mlp_family(model_type: &str) -> bool {
    matches!(
        model_type,
        "gpt2"
            | "opt"
            | "falcon"
            | "bloom"
            | "gptj"
            | "gpt_neox"
            | "gptneox"
            | "starcoder"
            | "gpt_bigcode"
    )
}

/// Builds the core description. `file` names the model in errors.
pub fn to_model_desc(m: &ModelFile) -> Result<FileModel, FormatError> {
    let file = m
        .files
        .first()
        .map(|p| crate::error::show_path(p))
        .unwrap_or_else(|| m.target.clone());
    let Some(c) = &m.config else {
        // A config.json that was there but refused: its own error is the reason.
        if let Some(why) = m
            .notes
            .iter()
            .find_map(|n| n.strip_prefix(crate::CONFIG_NOT_USED))
        {
            return Err(FormatError::NotFound {
                target: file,
                message: format!(
                    "no architecture fields: the config.json beside it was refused: {why}"
                ),
            });
        }
        return Err(FormatError::NotFound {
            target: file,
            message: "no architecture fields (no config.json next to the weights, or a GGUF without llama.cpp architecture keys)".into(),
        });
    };
    let mut notes = Vec::new();
    let mut desc = desc_from_config(m, c, &file, &mut notes)?;
    // Before anything is computed or allocated per layer from the description (limits.rs).
    desc.validate()
        .map_err(|e| FormatError::malformed(&file, e))?;
    let weights = if m.format == Format::ConfigOnly {
        None
    } else {
        Some(file_weights(m, c, desc.num_layers))
    };
    if let Some(w) = &weights {
        // Estimates use the file's own bytes, layer by layer, and name its storage format.
        desc.measured = Some(measured_weights(m, desc.num_layers));
        if desc.quantization.is_none() {
            if let Some(f @ WeightFormat::Gguf(_)) = w.format {
                desc.quantization = Some(vramplan_core::model::QuantSpec {
                    method: f.name(),
                    bits: None,
                    group_size: None,
                    source: Some(format!("the dominant tensor type of {file}")),
                    notes: None,
                });
            }
        }
        let computed = desc.params();
        if computed != w.total_params {
            notes.push(format!(
                "the file holds {} parameters, the architecture fields imply {computed}; the file's bytes are exact",
                w.total_params
            ));
        }
    }
    Ok(FileModel {
        desc,
        weights,
        notes,
    })
}

fn desc_from_config(
    m: &ModelFile,
    c: &ModelConfig,
    file: &str,
    notes: &mut Vec<String>,
) -> Result<ModelDesc, FormatError> {
    let model_type = c
        .model_type
        .clone()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let heads = match &c.num_attention_heads {
        Some(p) => per_layer_value(p, "num_attention_heads", notes),
        None => return Err(missing(file, "num_attention_heads")),
    };
    // transformers: num_key_value_heads defaults to num_attention_heads (plain multi-head).
    let kv_heads = match &c.num_key_value_heads {
        Some(PerLayer::Layers(vs)) if vs.contains(&0) => {
            let max = vs.iter().copied().max().unwrap_or(0);
            notes.push(format!(
                "{} of {} layers have no KV heads (recurrent/hybrid layers); using {max} KV heads for every layer",
                vs.iter().filter(|&&v| v == 0).count(),
                vs.len()
            ));
            max
        }
        Some(p) => per_layer_value(p, "num_key_value_heads", notes),
        None => heads,
    };
    let mla_qk_width = c.mla.as_ref().and_then(|x| {
        x.qk_nope_head_dim
            .and_then(|n| n.checked_add(x.qk_rope_head_dim?))
    });
    let head_dim = match (c.head_dim, mla_qk_width) {
        (Some(d), _) => d,
        // MLA: hidden/heads means nothing; the q/k head is nope + rope wide (SCHEMA.md, and
        // the DeepSeek entries of data/models/deepseek.toml).
        (None, Some(w)) => w,
        (None, None) => c
            .hidden_size
            .checked_div(heads)
            .ok_or_else(|| missing(file, "head_dim"))?,
    };
    let vocab = c.vocab_size.ok_or_else(|| missing(file, "vocab_size"))?;
    let max_context = c
        .max_position_embeddings
        .ok_or_else(|| missing(file, "max_position_embeddings"))?;

    let moe = match &c.moe {
        None => None,
        Some(x) => {
            let per_tok = x
                .num_experts_per_tok
                .ok_or_else(|| missing(file, "num_experts_per_tok"))?;
            let expert_width = match (x.moe_intermediate_size, &c.intermediate_size) {
                (Some(w), _) => w,
                // Mixtral: experts use intermediate_size.
                (None, Some(p)) => per_layer_value(p, "intermediate_size", notes),
                (None, None) => return Err(missing(file, "moe_intermediate_size")),
            };
            let qwen_shared = x.num_shared_experts.is_none()
                && x.shared_expert_intermediate_size.unwrap_or(0) > 0;
            let shared = x.num_shared_experts.unwrap_or(u64::from(qwen_shared));
            let step = x.moe_layer_step.filter(|&s| s > 1);
            // SCHEMA.md: Llama 4 Maverick interleave step 2 → MoE on odd layers (offset 1).
            let offset = match (model_type.as_str(), step) {
                ("llama4" | "llama4_text", Some(s)) => s - 1,
                _ => x.moe_layer_offset.unwrap_or(0),
            };
            Some(Moe {
                num_experts: x.num_experts,
                experts_per_token: per_tok,
                expert_intermediate_size: expert_width,
                shared_experts: shared,
                shared_expert_intermediate_size: if shared > 0 {
                    x.shared_expert_intermediate_size.unwrap_or(expert_width)
                } else {
                    0
                },
                // Qwen-MoE's hidden→1 gate on its shared expert (SCHEMA.md).
                shared_expert_gate: qwen_shared,
                dense_leading_layers: x.first_k_dense_replace.unwrap_or(0),
                layer_step: step,
                layer_offset: offset,
                router_bias: false,
                expert_bias: false,
                dense_intermediate_size: x.dense_intermediate_size,
            })
        }
    };
    let intermediate = match &c.intermediate_size {
        Some(p) => per_layer_value(p, "intermediate_size", notes),
        None => match &moe {
            Some(x) => x.expert_intermediate_size,
            None => return Err(missing(file, "intermediate_size")),
        },
    };

    let mla = match &c.mla {
        None => None,
        Some(x) => Some(Mla {
            kv_lora_rank: x.kv_lora_rank,
            q_lora_rank: x.q_lora_rank.unwrap_or(0),
            qk_rope_head_dim: x
                .qk_rope_head_dim
                .ok_or_else(|| missing(file, "qk_rope_head_dim"))?,
            qk_nope_head_dim: x
                .qk_nope_head_dim
                .ok_or_else(|| missing(file, "qk_nope_head_dim"))?,
            v_head_dim: x.v_head_dim.ok_or_else(|| missing(file, "v_head_dim"))?,
        }),
    };

    let sliding_window = sliding_window(c, &model_type, max_context, notes);

    // Layer-0 structure from tensor names (GGUF `blk.0.*`, HF `*.layers.0.*`).
    let layer0: Vec<&str> = m
        .tensors
        .iter()
        .filter(|t| layer_index(t.name) == Some(0))
        .map(|t| t.name)
        .collect();
    let has = |needles: &[&str]| layer0.iter().any(|n| needles.iter().any(|x| n.contains(x)));
    let (qk_norm, qkv_bias, o_bias, norms_per_layer) = if layer0.is_empty() {
        // No tensors to look at (config.json alone): the family's fixed layout. transformers'
        // Qwen2 attention always has q/k/v biases; Qwen3's has per-head q/k RMSNorm weights.
        (
            model_type.starts_with("qwen3"),
            model_type.starts_with("qwen2"),
            false,
            2,
        )
    } else {
        let norms = layer0
            .iter()
            .filter(|n| (n.contains("norm") || n.contains("ln_")) && n.ends_with(".weight"))
            .filter(|n| {
                !n.contains("q_norm")
                    && !n.contains("k_norm")
                    && !n.contains("q_layernorm")
                    && !n.contains("k_layernorm")
                    && !n.contains("kv_a_layernorm")
                    && !n.contains("q_a_layernorm")
                    && !n.contains("attn_q_a_norm")
                    && !n.contains("attn_kv_a_norm")
            })
            .count() as u64;
        (
            has(&["attn_q_norm", "q_norm.weight", "q_layernorm"]),
            has(&[
                "attn_q.bias",
                "q_proj.bias",
                "attn_qkv.bias",
                "c_attn.bias",
                "query_key_value.bias",
            ]),
            has(&[
                "attn_output.bias",
                "o_proj.bias",
                "c_proj.bias",
                "dense.bias",
            ]) && has(&["attn"]),
            norms.max(1),
        )
    };
    let plain = plain_mlp_family(&model_type);

    let quantization = c.quantization.as_ref().map(|q| {
        let method = q
            .quant_method
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let method = match method.as_str() {
            "compressed-tensors" => match (q.bits, q.format.as_deref()) {
                (Some(4), _) => "w4a16".to_string(),
                (Some(8), Some(f)) if f.contains("float") => "fp8".to_string(),
                (Some(8), _) => "w8a8".to_string(),
                _ => method.clone(),
            },
            "bitsandbytes" if q.load_in_8bit == Some(true) => "bnb-int8".to_string(),
            "bitsandbytes" => "bnb-nf4".to_string(),
            _ => method.clone(),
        };
        QuantSpec {
            method,
            bits: q.bits.and_then(|b| u32::try_from(b).ok()),
            group_size: q.group_size.and_then(|g| u32::try_from(g).ok()),
            source: Some(format!("quantization_config in {file}")),
            notes: None,
        }
    });

    let id = m.name.clone().unwrap_or_else(|| file.to_string());
    Ok(ModelDesc {
        id: id.clone(),
        aliases: Vec::new(),
        family: c.model_type.clone().unwrap_or_default(),
        source: file.to_string(),
        base: None,
        quantization,
        published_params: (m.summary.total_params > 0).then_some(m.summary.total_params),
        published_params_source: (m.summary.total_params > 0).then(|| {
            format!(
                "sum of tensor shapes in the {} header(s) of {id}",
                m.format.name()
            )
        }),
        nominal_params: None,
        max_context,
        dtype: schema_dtype(c.torch_dtype.as_deref()),
        num_layers: c.num_hidden_layers,
        hidden_size: c.hidden_size,
        num_attention_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        intermediate_size: intermediate,
        vocab_size: vocab,
        tie_embeddings: c.tie_word_embeddings.unwrap_or(false),
        mlp: if plain {
            MlpKind::Plain
        } else {
            MlpKind::Gated
        },
        norm: if plain {
            NormKind::Layer
        } else {
            NormKind::Rms
        },
        norms_per_layer,
        qk_norm,
        qkv_bias,
        o_bias,
        mlp_bias: false,
        lm_head_bias: false,
        learned_positions: 0,
        embedding_norm: false,
        final_norm: true,
        embed_proj_dim: 0,
        extra_params: 0,
        extra_params_note: None,
        notes: None,
        moe,
        mla,
        sliding_window,
        ssm: None,
        vision: None,
        measured: None,
    })
}

/// Sliding-window layout from layer_types, sliding_window_pattern, or the model family.
fn sliding_window(
    c: &ModelConfig,
    model_type: &str,
    max_context: u64,
    notes: &mut Vec<String>,
) -> Option<SlidingWindow> {
    let window = c.sliding_window?;
    if window == 0 || c.use_sliding_window == Some(false) || window >= max_context {
        return None;
    }
    let sw = |pattern, global_every| {
        Some(SlidingWindow {
            window,
            pattern,
            global_every,
        })
    };
    if !c.layer_types.is_empty() {
        let local: Vec<bool> = c
            .layer_types
            .iter()
            .map(|t| t.contains("sliding") || t.contains("local") || t.contains("chunk"))
            .collect();
        let n = local.len();
        if local.iter().all(|&l| l) {
            return sw(WindowPattern::All, 0);
        }
        if !local.iter().any(|&l| l) {
            return None;
        }
        if local.iter().enumerate().all(|(i, &l)| l == (i % 2 == 0)) {
            return sw(WindowPattern::Alternate, 0);
        }
        for every in 2..=n as u64 {
            if local
                .iter()
                .enumerate()
                .all(|(i, &l)| l != (i as u64 + 1).is_multiple_of(every))
            {
                return sw(WindowPattern::GlobalEvery, every);
            }
        }
        notes.push("layer_types has a sliding-window pattern the model description cannot express; treated as full attention".into());
        return None;
    }
    if let Some(every) = c.sliding_window_pattern.filter(|&p| p > 1) {
        return sw(WindowPattern::GlobalEvery, every);
    }
    match model_type {
        "mistral" => sw(WindowPattern::All, 0),
        "gemma2" => sw(WindowPattern::Alternate, 0),
        _ => {
            notes.push(format!(
                "sliding_window = {window} without a layer pattern for model type '{model_type}'; treated as full attention"
            ));
            None
        }
    }
}

fn file_weights(m: &ModelFile, c: &ModelConfig, num_layers: u64) -> FileWeights {
    let mut layer_bytes = vec![0u64; usize::try_from(num_layers.min(MAX_LAYERS)).unwrap_or(0)];
    let mut other = 0u64;
    for t in m.tensors.iter() {
        match layer_index(t.name).and_then(|i| layer_bytes.get_mut(i)) {
            Some(slot) => *slot = slot.saturating_add(t.n_bytes),
            None => other = other.saturating_add(t.n_bytes),
        }
    }
    FileWeights {
        total_bytes: m.summary.total_bytes,
        total_params: m.summary.total_params,
        by_dtype: m.summary.by_dtype.clone(),
        layer_bytes,
        other_bytes: other,
        format: dominant_format(m, c),
    }
}

/// Whether a tensor outside the decoder layers belongs to the output side (final norm, head)
/// rather than the input side (embeddings, positions, vision tower).
fn is_output_tensor(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "lm_head",
        "output.weight",
        "output_norm",
        "embed_out",
        "final_layernorm",
        "model.norm.",
        "ln_f.",
        "norm_f.",
        "language_model.norm.",
    ]
    .iter()
    .any(|p| n.contains(p))
        || n == "norm.weight"
        || n == "output.bias"
}

/// The file's tensor bytes by decoder layer, input side and output side.
fn measured_weights(m: &ModelFile, num_layers: u64) -> vramplan_core::model::MeasuredWeights {
    let mut w = vramplan_core::model::MeasuredWeights {
        layer_bytes: vec![0u64; usize::try_from(num_layers.min(MAX_LAYERS)).unwrap_or(0)],
        ..Default::default()
    };
    for t in m.tensors.iter() {
        match layer_index(t.name).and_then(|i| w.layer_bytes.get_mut(i)) {
            Some(slot) => *slot = slot.saturating_add(t.n_bytes),
            None if is_output_tensor(t.name) => {
                w.output_bytes = w.output_bytes.saturating_add(t.n_bytes)
            }
            None => w.input_bytes = w.input_bytes.saturating_add(t.n_bytes),
        }
    }
    w
}

/// The core's weight format for the dtype holding the most bytes (GGUF: its ggml type; a
/// quantization_config wins for HF checkpoints, whose packed int32 tensors say little).
fn dominant_format(m: &ModelFile, c: &ModelConfig) -> Option<WeightFormat> {
    if let Some(q) = &c.quantization {
        let group = q
            .group_size
            .and_then(|g| u32::try_from(g).ok())
            .unwrap_or(128);
        match q
            .quant_method
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("awq") => return Some(WeightFormat::Awq { group }),
            Some("gptq") => {
                let bits = q.bits.and_then(|b| u8::try_from(b).ok()).unwrap_or(4);
                return Some(WeightFormat::Gptq { bits, group });
            }
            Some("fp8") => {
                let block = q
                    .weight_block_size
                    .first()
                    .and_then(|&b| u32::try_from(b).ok())
                    .unwrap_or(0);
                return Some(WeightFormat::Fp8 { block });
            }
            Some("mxfp4") => return Some(WeightFormat::Mxfp4),
            _ => {}
        }
    }
    // Largest byte share, over matrices (1-D tensors are F32 in every GGUF).
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for t in m.tensors.iter().filter(|t| t.shape.len() >= 2) {
        let e = by.entry(t.dtype).or_insert(0);
        *e = e.saturating_add(t.n_bytes);
    }
    let (dtype, _) = by.into_iter().max_by_key(|(_, b)| *b)?;
    match dtype {
        "BF16" => Some(WeightFormat::Bf16),
        "F16" => Some(WeightFormat::F16),
        "F32" => Some(WeightFormat::F32),
        "F8_E4M3" => Some(WeightFormat::Fp8 { block: 0 }),
        other if m.format == Format::Gguf => {
            vramplan_core::ggml::GgmlType::by_name(other).map(WeightFormat::Gguf)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::layer_index;

    #[test]
    fn layer_indices() {
        assert_eq!(layer_index("blk.12.attn_q.weight"), Some(12));
        assert_eq!(layer_index("model.layers.3.mlp.up_proj.weight"), Some(3));
        assert_eq!(
            layer_index("language_model.model.layers.7.self_attn.q_proj.weight"),
            Some(7)
        );
        assert_eq!(layer_index("transformer.h.0.attn.c_attn.weight"), Some(0));
        assert_eq!(layer_index("token_embd.weight"), None);
        assert_eq!(layer_index("model.norm.weight"), None);
        assert_eq!(layer_index("blk.x.y"), None);
        assert_eq!(layer_index("layers.5"), None);
    }
}
