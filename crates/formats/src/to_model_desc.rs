//! [`ModelFile`] → `vramplan_core::ModelDesc`, plus the file's *exact* weight bytes.
//!
//! The description comes from the one config.json mapping (`vramplan_core::arch::describe`):
//! the file's config.json, or the config a GGUF header stands for. [`FileWeights`] carries what
//! the file actually stores — every tensor's real dtype and byte size, summed per decoder
//! layer — so an estimate can use the file's bytes instead of a bits-per-weight guess (reference
//! Part 1.3: "the exact weight size is always Σ nbytes(type, shape) from the GGUF header").

use std::collections::BTreeMap;

use vramplan_core::limits::MAX_LAYERS;
use vramplan_core::model::QuantSpec;
use vramplan_core::{ModelDesc, WeightFormat};

use crate::error::FormatError;
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
    let mut desc =
        vramplan_core::arch::describe(c).map_err(|e| FormatError::architecture(&file, e))?;
    let id = m.name.clone().unwrap_or_else(|| file.clone());
    desc.id = id.clone();
    desc.family = desc.top_model_type.clone();
    desc.source = file.clone();
    if m.summary.total_params > 0 {
        desc.published_params = Some(m.summary.total_params);
        desc.published_params_source = Some(format!(
            "sum of tensor shapes in the {} header(s) of {id}",
            m.format.name()
        ));
    }
    // Before anything is computed from the description (the mapping already checked every
    // field that sizes an allocation against vramplan_core::limits).
    desc.validate()
        .map_err(|e| FormatError::malformed(&file, e))?;
    let mut notes = Vec::new();
    let weights = if m.format == Format::ConfigOnly {
        None
    } else {
        Some(file_weights(m, &desc))
    };
    if let Some(w) = &weights {
        // Estimates use the file's own bytes, layer by layer, and name its storage format.
        desc.measured = Some(measured_weights(m, desc.num_layers));
        if desc.quantization.is_none() {
            if let Some(f @ WeightFormat::Gguf(_)) = w.format {
                desc.quantization = Some(QuantSpec {
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

fn file_weights(m: &ModelFile, desc: &ModelDesc) -> FileWeights {
    let mut layer_bytes = vec![0u64; usize::try_from(desc.num_layers.min(MAX_LAYERS)).unwrap_or(0)];
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
        format: dominant_format(m, desc),
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
        let layer = layer_index(t.name).filter(|&i| i < w.layer_bytes.len());
        w.tensors.push(vramplan_core::model::MeasuredTensor {
            name: t.name.to_string(),
            bytes: t.n_bytes,
            layer: layer.map(|i| i as u64),
            output: layer.is_none() && is_output_tensor(t.name),
        });
        if let Some(i) = layer {
            if t.name.contains("_exps.") {
                if w.expert_bytes.len() < w.layer_bytes.len() {
                    w.expert_bytes.resize(w.layer_bytes.len(), 0);
                }
                w.expert_bytes[i] = w.expert_bytes[i].saturating_add(t.n_bytes);
            }
        }
        match layer.and_then(|i| w.layer_bytes.get_mut(i)) {
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
fn dominant_format(m: &ModelFile, desc: &ModelDesc) -> Option<WeightFormat> {
    if let Some(q) = &desc.quantization {
        let f = desc.native_format();
        if matches!(
            q.method.as_str(),
            "awq" | "gptq" | "fp8" | "mxfp4" | "w4a16" | "w8a8"
        ) {
            return Some(f);
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
