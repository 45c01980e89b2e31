//! Where `--model` comes from: a catalogue id or alias, or a model on disk (a safetensors or
//! GGUF file, a sharded checkpoint, a Hugging Face model folder or cache snapshot, a
//! config.json, an ollama model name), read header-only by crates/formats.

use crate::Failure;
use std::path::Path;
use vramplan_core::{catalogue, ModelDesc};
use vramplan_formats::{inspect, to_model_desc, FormatError};

/// A model and, when it was read from disk, what was read.
pub struct Resolved {
    pub desc: ModelDesc,
    /// "read from PATH (GGUF, 291 tensors)" for models from files.
    pub origin: Option<String>,
    pub notes: Vec<String>,
}

fn file_failure(e: FormatError) -> Failure {
    match e {
        FormatError::Io { .. } => Failure::runtime(e.to_string()),
        _ => Failure::input(e.to_string()),
    }
}

/// Catalogue first (exact id or alias); then a path on disk, an HF repo id in the local cache
/// or an ollama model name. An unknown name that is none of these gets the catalogue's error
/// with the nearest names.
pub fn resolve(query: &str) -> Result<Resolved, Failure> {
    let cat = catalogue();
    let from_catalogue = cat.model(query);
    if let Ok(m) = from_catalogue {
        return Ok(Resolved {
            desc: m.clone(),
            origin: None,
            notes: Vec::new(),
        });
    }
    let is_path = Path::new(query).exists();
    match inspect(query) {
        Ok(file) => {
            let fm = to_model_desc(&file).map_err(file_failure)?;
            let origin = format!(
                "read from {} ({}, {} tensors, {} on disk)",
                file.files
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| query.to_string()),
                file.format.name(),
                file.summary.tensor_count,
                vramplan_core::units::size(file.bytes_on_disk)
            );
            Ok(Resolved {
                desc: fm.desc,
                origin: Some(origin),
                notes: fm.notes,
            })
        }
        Err(e) if is_path => Err(file_failure(e)),
        // Neither in the catalogue nor a local model: the catalogue's error names the nearest.
        Err(_) => Err(Failure::input(from_catalogue.err().unwrap_or_default())),
    }
}
