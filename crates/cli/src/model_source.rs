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

/// What `--model` accepts, for the commands' `--help`.
pub const MODEL_HELP: &str = "Model: a catalogue id or alias in any case, with or without its organisation or punctuation (meta-llama/Llama-3.1-8B-Instruct, Llama-3.1-8B-Instruct, llama3.1-8b-instruct; see `vramplan models`); or a model on disk: a .safetensors or .gguf file, a sharded checkpoint's index.json, a Hugging Face model folder or a config.json alone; an HF repo id in the local cache; an ollama model name (llama3.1:8b)";

/// A `--model` written as a path rather than a name: it starts at a folder (`./`, `../`,
/// `/`, `~`), or names a model file by its extension. `org/name` is a repository id, not a
/// path.
pub fn looks_like_path(query: &str) -> bool {
    let q = query.trim();
    let lower = q.to_ascii_lowercase();
    q.starts_with("./")
        || q.starts_with("../")
        || q.starts_with('/')
        || q.starts_with('~')
        || q.starts_with(".\\")
        || q.contains('\\')
        || q.matches('/').count() > 1
        || [".gguf", ".safetensors", ".json", ".bin"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// The catalogue by exact id or alias first; then a model on disk (a path, an HF repo id in
/// the local cache, an ollama model name), so that a local `llama3.1:8b` is the ollama file
/// and not the catalogue's bf16 checkpoint; then the catalogue by the names people type
/// (names.rs). A path that does not exist is "no such file", not an unknown model.
pub fn resolve(query: &str) -> Result<Resolved, Failure> {
    let cat = catalogue();
    if let Some(m) = cat.model_exact(query) {
        return Ok(Resolved {
            desc: m.clone(),
            origin: None,
            notes: Vec::new(),
        });
    }
    let is_path = Path::new(query).exists();
    if !is_path && looks_like_path(query) {
        return Err(Failure::input(format!(
            "no such file: {query} (--model takes a catalogue id, or a path to a model file, folder or config.json that exists)"
        )));
    }
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
        // Not a local model: the catalogue by the names people type, whose error names the
        // nearest entries.
        Err(_) => cat
            .model(query)
            .map(|m| Resolved {
                desc: m.clone(),
                origin: None,
                notes: Vec::new(),
            })
            .map_err(Failure::input),
    }
}
