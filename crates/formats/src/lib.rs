//! Header-only readers for the files models ship in: GGUF (our own reader), safetensors (via the
//! `safetensors` crate) and Hugging Face config.json, plus the local stores they live in (HF
//! cache, ollama, plain folders).
//!
//! One entry point, [`inspect`], takes a path, a HF repo id present in the local cache, or an
//! ollama model name, and returns a [`ModelFile`]: format, architecture, tensors (each with its
//! real dtype and byte size), parameter totals per dtype, bytes on disk, the architecture fields
//! the estimator needs, and for GGUF the file type and metadata.
//!
//! Only headers are read: inspecting a 40 GB file costs what a 40 MB one does
//! ([`ModelFile::header_bytes_read`] records what was read). Hostile input yields a one-line
//! [`FormatError`], never a panic and never an allocation sized by an unchecked count; memory
//! follows the header's size ([`tensors`]) and only regular files are opened ([`source`]).
//!
//! Every reader reads through a [`ByteSource`] (module [`source`]): a local file today, an HTTP
//! object read by ranges next, with one reader per format.

#![forbid(unsafe_code)]

pub mod detect;
pub mod error;
pub mod gguf;
pub mod hf_config;
pub mod layout;
pub mod parallel;
pub mod safetensors;
pub mod source;
pub mod stores;
pub mod tensors;
pub mod to_model_desc;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use crate::detect::{FileKind, JsonKind};
pub use crate::error::FormatError;
pub use crate::gguf::{GgmlType, GgufHeader, MetaValue};
pub use crate::source::{ByteSource, LocalFile, MemorySource};
pub use crate::tensors::{TensorEntry, TensorList};
pub use crate::to_model_desc::{to_model_desc, FileModel, FileWeights};

use crate::error::{quoted, show_path};

/// The weights format of an inspected model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Format {
    Gguf,
    Safetensors,
    /// A config.json with no weights next to it: architecture only.
    ConfigOnly,
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::Gguf => "GGUF",
            Format::Safetensors => "safetensors",
            Format::ConfigOnly => "config.json",
        }
    }
}

/// Where the model was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Origin {
    Path,
    HfCache {
        repo: String,
        revision: String,
    },
    Ollama {
        name: String,
        manifest: PathBuf,
    },
    /// A Hugging Face Hub repository (or a mirror), read by HTTP ranges.
    Hub {
        repo: String,
        /// The revision asked for (`main`, a tag, a branch or a commit).
        revision: String,
        /// The commit it resolved to.
        commit: String,
    },
    /// An ollama registry's model, read by HTTP ranges.
    Registry {
        name: String,
        registry: String,
        /// The model blob's digest (`sha256:...`).
        digest: String,
    },
}

/// Totals for one dtype / quant type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DtypeStats {
    pub dtype: String,
    pub tensors: u64,
    pub params: u64,
    pub bytes: u64,
}

/// Totals over all tensors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TensorSummary {
    pub tensor_count: u64,
    pub total_params: u64,
    pub total_bytes: u64,
    /// Largest byte share first.
    pub by_dtype: Vec<DtypeStats>,
}

impl TensorSummary {
    pub fn from_tensors(tensors: &TensorList) -> TensorSummary {
        let mut by: BTreeMap<&str, DtypeStats> = BTreeMap::new();
        let mut s = TensorSummary::default();
        for t in tensors.iter() {
            s.tensor_count = s.tensor_count.saturating_add(1);
            s.total_params = s.total_params.saturating_add(t.n_elements);
            s.total_bytes = s.total_bytes.saturating_add(t.n_bytes);
            let e = by.entry(t.dtype).or_insert_with(|| DtypeStats {
                dtype: t.dtype.to_string(),
                tensors: 0,
                params: 0,
                bytes: 0,
            });
            e.tensors = e.tensors.saturating_add(1);
            e.params = e.params.saturating_add(t.n_elements);
            e.bytes = e.bytes.saturating_add(t.n_bytes);
        }
        s.by_dtype = by.into_values().collect();
        s.by_dtype
            .sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.dtype.cmp(&b.dtype)));
        s
    }
}

/// GGUF-specific facts.
#[derive(Debug, Clone, Serialize)]
pub struct GgufDetails {
    pub version: u32,
    pub big_endian: bool,
    pub alignment: u64,
    /// general.file_type (llama_ftype id) and its name, e.g. 15 → "Q4_K_M".
    pub file_type: Option<u32>,
    pub file_type_name: Option<String>,
    pub quantization_version: Option<u64>,
    /// Number of split files (1 when not split).
    pub split_count: u32,
    /// Metadata of the first (or only) file; long arrays keep only their length and samples.
    pub metadata: BTreeMap<String, MetaValue>,
}

/// Everything `inspect` learns about a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelFile {
    /// What the caller asked for.
    pub target: String,
    pub format: Format,
    pub origin: Origin,
    /// Every file whose header was read, in order (shards, split parts, config.json).
    pub files: Vec<PathBuf>,
    /// GGUF general.architecture, or config.json architectures[0] / model_type.
    pub architecture: Option<String>,
    /// GGUF general.name, the repo id, or the folder / file name.
    pub name: Option<String>,
    pub tensors: TensorList,
    pub summary: TensorSummary,
    /// Total size of the files read.
    pub bytes_on_disk: u64,
    /// Bytes actually read from disk (headers, buffered) — proof of header-only reading.
    pub header_bytes_read: u64,
    /// The config.json (read, or the one a GGUF header stands for: its `{arch}.*` keys
    /// translated by `vramplan_core::arch::gguf`).
    pub config: Option<serde_json::Value>,
    pub gguf: Option<GgufDetails>,
    /// safetensors `__metadata__` of the first shard.
    pub safetensors_metadata: BTreeMap<String, String>,
    /// Things worth telling the user that are not errors.
    pub notes: Vec<String>,
    /// Things that change what an estimate can claim (the weights could not be read, so they
    /// are computed from the config): shown as warnings, in `--json` too.
    pub warnings: Vec<String>,
}

impl ModelFile {
    fn new(target: &str, format: Format) -> ModelFile {
        ModelFile {
            target: target.to_string(),
            format,
            origin: Origin::Path,
            files: Vec::new(),
            architecture: None,
            name: None,
            tensors: TensorList::new(),
            summary: TensorSummary::default(),
            bytes_on_disk: 0,
            header_bytes_read: 0,
            config: None,
            gguf: None,
            safetensors_metadata: BTreeMap::new(),
            notes: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Context length the model was trained for (max_position_embeddings / context_length).
    pub fn context_length(&self) -> Option<u64> {
        let c = self.config.as_ref()?;
        vramplan_core::arch::describe(c).ok().map(|d| d.max_context)
    }

    /// Takes `config` (already checked by the mapping) as the model's config.json, read from
    /// `path`.
    fn use_config(&mut self, config: serde_json::Value, path: PathBuf) {
        self.files.push(path);
        self.config = Some(config);
        self.set_architecture_from_config();
    }

    /// Counts a quantization file that stood in for config.json's `quantization_config`.
    fn use_quant_file(&mut self, q: QuantFile<'_>, note: String) {
        self.files.push(q.path.to_path_buf());
        self.bytes_on_disk = self.bytes_on_disk.saturating_add(q.bytes.len() as u64);
        self.notes.push(note);
    }

    fn set_architecture_from_config(&mut self) {
        if self.architecture.is_none() {
            self.architecture = self.config.as_ref().and_then(hf_config::architecture_name);
        }
    }

    fn finish(mut self) -> ModelFile {
        self.summary = TensorSummary::from_tensors(&self.tensors);
        self.set_architecture_from_config();
        self
    }
}

/// Inspects a path (file or directory), a Hugging Face repo id present in the local cache
/// (`org/name`), or an ollama model name (`llama3.1:8b`).
pub fn inspect(target: impl AsRef<Path>) -> Result<ModelFile, FormatError> {
    let target = target.as_ref();
    let shown = show_path(target);
    if std::fs::symlink_metadata(target).is_ok() {
        return inspect_path(target, &shown);
    }
    if let Some(s) = target.to_str() {
        if let Some(hub) = stores::hf_hub_dir() {
            if let Some(found) = stores::resolve_hf_repo(&hub, s) {
                let (snapshot, revision) = found?;
                let mut m = inspect_path(&snapshot, &shown)?;
                m.origin = Origin::HfCache {
                    repo: s.to_string(),
                    revision,
                };
                m.name = Some(s.to_string());
                return Ok(m);
            }
        }
        if let (Some(name), Some(dir)) = (stores::parse_ollama_name(s), stores::ollama_models_dir())
        {
            if let Some(found) = stores::resolve_ollama(&dir, &name) {
                return inspect_ollama(found?, &shown);
            }
        }
    }
    Err(FormatError::not_found(
        &shown,
        "no such file or directory, Hugging Face cache entry, or ollama model",
    ))
}

/// One model file from any [`ByteSource`] (a GGUF, a safetensors file or a config.json; no
/// siblings or split parts are looked for): what [`inspect`] gives for a single file.
pub fn inspect_source(src: &dyn ByteSource, target: &str) -> Result<ModelFile, FormatError> {
    let mut m = match detect::detect_source(src)? {
        FileKind::Gguf => {
            let mut m = ModelFile::new(target, Format::Gguf);
            let header = gguf::read_header(src, &mut m.tensors, 0)?;
            m.bytes_on_disk = header.file_len;
            m.header_bytes_read = src.bytes_read();
            gguf_model_file(m, header, 1, src.name())?
        }
        FileKind::Safetensors => {
            let mut m = ModelFile::new(target, Format::Safetensors);
            let header = safetensors::read_header(src, &mut m.tensors, 0)?;
            m.bytes_on_disk = header.file_len;
            m.header_bytes_read = src.bytes_read();
            m.safetensors_metadata = header.metadata;
            m.finish()
        }
        FileKind::Json => {
            let bytes = source::read_capped(src, hf_config::MAX_CONFIG_BYTES, "config.json")?;
            let mut m = ModelFile::new(target, Format::ConfigOnly);
            m.config = Some(hf_config::parse_config(&bytes, src.name())?);
            m.bytes_on_disk = bytes.len() as u64;
            m.header_bytes_read = src.bytes_read();
            m.finish()
        }
    };
    m.name.get_or_insert_with(|| target.to_string());
    Ok(m)
}

/// A config.json given as bytes rather than a path (pasted into the web calculator) → the model
/// description [`to_model_desc`] builds for a config-only file. `name` labels the model and
/// starts every error line; nothing is read from disk.
pub fn model_from_config_json(bytes: &[u8], name: &str) -> Result<FileModel, FormatError> {
    let config = hf_config::parse_config(bytes, name)?;
    model_from_config_value(config, name, bytes.len() as u64)
}

/// A config.json already parsed (a JSON object) → the model description, as
/// [`model_from_config_json`].
pub fn model_from_config_value(
    config: serde_json::Value,
    name: &str,
    bytes: u64,
) -> Result<FileModel, FormatError> {
    let mut m = ModelFile::new(name, Format::ConfigOnly);
    m.name = Some(name.to_string());
    m.header_bytes_read = bytes;
    m.config = Some(config);
    to_model_desc(&m.finish())
}

fn inspect_path(path: &Path, target: &str) -> Result<ModelFile, FormatError> {
    let meta = std::fs::metadata(path).map_err(|e| FormatError::io(target, e))?;
    let mut m = if meta.is_dir() {
        inspect_dir(path, target)?
    } else {
        inspect_file(path, target)?
    };
    if matches!(m.origin, Origin::Path) {
        if let Some((repo, revision)) = stores::hf_repo_from_path(path) {
            m.name = Some(repo.clone());
            m.origin = Origin::HfCache { repo, revision };
        }
    }
    Ok(m)
}

fn inspect_ollama(model: stores::OllamaModel, target: &str) -> Result<ModelFile, FormatError> {
    let mut m = inspect_gguf(&model.model_blob, target)?;
    m.name = Some(model.name.clone());
    if !model.projector_blobs.is_empty() {
        m.notes.push(format!(
            "the manifest also lists {} vision projector blob(s), not counted here",
            model.projector_blobs.len()
        ));
    }
    m.origin = Origin::Ollama {
        name: model.name,
        manifest: model.manifest,
    };
    Ok(m)
}

fn inspect_file(path: &Path, target: &str) -> Result<ModelFile, FormatError> {
    match detect::detect_file(path)? {
        FileKind::Gguf => inspect_gguf(path, target),
        FileKind::Safetensors => {
            let mut m = inspect_safetensors_files(&[path.to_path_buf()], None, target)?;
            attach_sibling_config(&mut m, path);
            Ok(m)
        }
        FileKind::Json => inspect_json(path, target),
    }
}

fn inspect_json(path: &Path, target: &str) -> Result<ModelFile, FormatError> {
    let file = show_path(path);
    let bytes = hf_config::read_json_file(path, safetensors::MAX_INDEX_BYTES)?;
    // Classified without building the document's tree: an index may be tens of MB.
    let kind = detect::classify_json_bytes(&bytes).map_err(|e| FormatError::json(&file, e))?;
    // A manifest or a config is parsed as a tree; both have their own, smaller caps.
    let small = |cap: u64| -> Result<serde_json::Value, FormatError> {
        if bytes.len() as u64 > cap {
            return Err(FormatError::OverLimit {
                file: file.clone(),
                what: "JSON file size (bytes)".to_string(),
                value: bytes.len() as u64,
                cap,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| FormatError::json(&file, e))
    };
    match kind {
        Some(JsonKind::SafetensorsIndex) => {
            let dir = path.parent().unwrap_or_else(|| Path::new("."));
            let index = safetensors::parse_index(&bytes, dir, &file)?;
            let mut m = inspect_safetensors_files(&index.shards, Some((&index, path)), target)?;
            attach_sibling_config(&mut m, path);
            Ok(m)
        }
        Some(JsonKind::OllamaManifest) => {
            let models_dir = stores::ollama_models_dir_of_manifest(path).ok_or_else(|| {
                FormatError::malformed(&file, "ollama manifest is not inside a manifests/ folder, so its blobs cannot be found")
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let root = small(stores::MAX_MANIFEST_BYTES)?;
            let model = stores::parse_ollama_manifest(&root, &models_dir, path, &name)?;
            inspect_ollama(model, target)
        }
        Some(JsonKind::HfConfig) => {
            if bytes.len() as u64 > hf_config::MAX_CONFIG_BYTES {
                small(hf_config::MAX_CONFIG_BYTES)?;
            }
            let dir = path.parent().unwrap_or_else(|| Path::new("."));
            let side = read_sibling_quant(dir)?;
            let quant = side.as_ref().map(SideQuant::file);
            config_only_model(target, &bytes, path.to_path_buf(), quant)
        }
        None => Err(FormatError::UnknownFormat {
            file,
            reason:
                "a JSON object that is not a config.json, a safetensors index or an ollama manifest"
                    .to_string(),
        }),
    }
}

/// A folder: index + shards, *.safetensors, or *.gguf, with config.json when present.
fn inspect_dir(dir: &Path, target: &str) -> Result<ModelFile, FormatError> {
    // A HF cache repo folder (models--ORG--NAME): use its current snapshot.
    if dir.join("snapshots").is_dir()
        && dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("models--"))
    {
        let (snapshot, revision) = stores::hf_snapshot(dir)?;
        let mut m = inspect_dir(&snapshot, target)?;
        if let Some((repo, _)) = stores::hf_repo_from_path(&snapshot) {
            m.name = Some(repo.clone());
            m.origin = Origin::HfCache { repo, revision };
        }
        return Ok(m);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| FormatError::io(target, e))?;
    let mut names: Vec<String> = Vec::new();
    for entry in entries.take(100_000).flatten() {
        if entry.path().is_file() {
            if let Some(n) = entry.file_name().to_str() {
                names.push(n.to_string());
            }
        }
    }
    names.sort();
    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());

    let mut m = match layout::choose(&names) {
        layout::Weights::Index(index) => {
            let mut m = inspect_json(&dir.join(index), target)?;
            m.target = target.to_string();
            m
        }
        layout::Weights::Safetensors { files, skipped } => {
            let chosen: Vec<PathBuf> = files.iter().map(|n| dir.join(n)).collect();
            let mut m = inspect_safetensors_files(&chosen, None, target)?;
            if let Some(first) = chosen.first() {
                attach_sibling_config(&mut m, first);
            }
            m.notes
                .extend(layout::safetensors_note(chosen.len(), skipped, "folder"));
            m
        }
        layout::Weights::Gguf(models) => match models.as_slice() {
            [one] => inspect_gguf(&dir.join(one), target)?,
            _ => {
                let list: Vec<String> = models.iter().take(5).map(|n| quoted(n)).collect();
                return Err(FormatError::not_found(
                    target,
                    format!(
                        "folder holds {} GGUF models ({}{}); name one",
                        models.len(),
                        list.join(", "),
                        if models.len() > 5 { ", ..." } else { "" }
                    ),
                ));
            }
        },
        layout::Weights::PickleOnly(files) => {
            let mut m = inspect_json(&dir.join(layout::CONFIG), target)?;
            m.warnings.push(layout::pickle_note(&files));
            m
        }
        layout::Weights::ConfigOnly => {
            // The Hub says the same of a repository with config.json alone (one layout rule).
            let mut m = inspect_json(&dir.join(layout::CONFIG), target)?;
            m.warnings.push(layout::NO_WEIGHTS_NOTE.to_string());
            m
        }
        layout::Weights::Nothing => {
            return Err(FormatError::not_found(
                target,
                "folder has no config.json, *.safetensors or *.gguf file",
            ))
        }
    };
    if m.format == Format::Safetensors
        && m.config.is_none()
        && !names.iter().any(|n| n == "config.json")
    {
        m.notes
            .push("no config.json in the folder: architecture fields unknown".to_string());
    }
    if m.name.is_none() {
        m.name = dir_name;
    }
    Ok(m)
}

/// A quantization file read beside config.json (one of `layout::QUANT_CONFIGS`): it stands in
/// for config.json's `quantization_config` when that is missing (`hf_config::merge_quant_config`).
#[derive(Debug, Clone, Copy)]
pub struct QuantFile<'a> {
    /// Its name in the folder or repository (`hf_quant_config.json`, ...).
    pub name: &'a str,
    /// Where it was read, as shown.
    pub path: &'a Path,
    pub bytes: &'a [u8],
}

/// config.json bytes, with the quantization file beside it if any, parsed and checked by the
/// one mapping (`vramplan_core::arch::describe`), for every source alike (a folder, the HF
/// cache, the Hub): a config the mapping refuses is refused here, naming the file and the
/// field. Also returns the note saying the quantization file was used.
fn described_config(
    bytes: &[u8],
    file: &str,
    quant: Option<QuantFile<'_>>,
) -> Result<(serde_json::Value, Option<String>), FormatError> {
    let mut config = hf_config::parse_config(bytes, file)?;
    let mut note = None;
    if let Some(q) = quant {
        let shown = show_path(q.path);
        if hf_config::merge_quant_config(&mut config, q.name, q.bytes, &shown)? {
            note = Some(format!(
                "quantization read from {shown} (config.json has no quantization_config; vLLM reads the file the same way)"
            ));
        }
    }
    vramplan_core::arch::describe(&config).map_err(|e| FormatError::architecture(file, e))?;
    Ok((config, note))
}

/// A quantization file read from a local folder.
struct SideQuant {
    name: &'static str,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl SideQuant {
    fn file(&self) -> QuantFile<'_> {
        QuantFile {
            name: self.name,
            path: &self.path,
            bytes: &self.bytes,
        }
    }
}

/// The quantization file beside a local config.json, if there is one (`layout::quant_config`),
/// read with its byte cap.
fn read_sibling_quant(dir: &Path) -> Result<Option<SideQuant>, FormatError> {
    let Some(name) = layout::quant_config(|n| dir.join(n).is_file()) else {
        return Ok(None);
    };
    let path = dir.join(name);
    let bytes = hf_config::read_json_file(&path, hf_config::MAX_QUANT_CONFIG_BYTES)?;
    Ok(Some(SideQuant { name, path, bytes }))
}

/// A model's config.json read from any source, given as bytes: a config-only model (no
/// weights). `path` is how the file is shown; `quant` the quantization file beside it, if the
/// folder or repository has one. A config.json alone is only its architecture: one the mapping
/// refuses is an error.
pub fn config_only_model(
    target: &str,
    bytes: &[u8],
    path: PathBuf,
    quant: Option<QuantFile<'_>>,
) -> Result<ModelFile, FormatError> {
    let (config, note) = described_config(bytes, &show_path(&path), quant)?;
    let mut m = ModelFile::new(target, Format::ConfigOnly);
    m.files.push(path);
    m.bytes_on_disk = bytes.len() as u64;
    m.header_bytes_read = bytes.len() as u64;
    m.config = Some(config);
    if let (Some(q), Some(note)) = (quant, note) {
        m.use_quant_file(q, note);
    }
    Ok(m.finish())
}

/// Adds a config.json given as bytes (and the quantization file beside it, if any) to a model
/// read from its weights; a broken one becomes a note, as a local folder's does
/// ([`CONFIG_NOT_USED`]), since the weights were readable.
pub fn attach_config(m: &mut ModelFile, bytes: &[u8], path: PathBuf, quant: Option<QuantFile<'_>>) {
    match described_config(bytes, &show_path(&path), quant) {
        Ok((config, note)) => {
            m.bytes_on_disk = m.bytes_on_disk.saturating_add(bytes.len() as u64);
            m.header_bytes_read = m.header_bytes_read.saturating_add(bytes.len() as u64);
            m.use_config(config, path);
            if let (Some(q), Some(note)) = (quant, note) {
                m.use_quant_file(q, note);
                m.header_bytes_read = m.header_bytes_read.saturating_add(q.bytes.len() as u64);
            }
        }
        Err(e) => m.notes.push(format!("{CONFIG_NOT_USED}{e}")),
    }
}

/// Starts the note that says why a config.json next to the weights was not read.
pub(crate) const CONFIG_NOT_USED: &str = "config.json next to the weights was not used: ";

/// Adds config.json from the same folder, if there is one, with the quantization file beside
/// it; a broken one becomes a note, since the weights file itself was readable.
fn attach_sibling_config(m: &mut ModelFile, weights_path: &Path) {
    let Some(dir) = weights_path.parent() else {
        return;
    };
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return;
    }
    let read =
        hf_config::read_json_file(&config_path, hf_config::MAX_CONFIG_BYTES).and_then(|bytes| {
            let side = read_sibling_quant(dir)?;
            let quant = side.as_ref().map(SideQuant::file);
            let (config, note) = described_config(&bytes, &show_path(&config_path), quant)?;
            Ok((config, bytes.len(), note.zip(side)))
        });
    match read {
        // Local files count the config in the bytes on disk, not in the headers read (as
        // before the Hub: `inspect` shows the tensor headers read).
        Ok((config, len, side)) => {
            m.bytes_on_disk = m.bytes_on_disk.saturating_add(len as u64);
            m.use_config(config, config_path);
            if let Some((note, side)) = side {
                m.use_quant_file(side.file(), note);
            }
        }
        Err(e) => m.notes.push(format!("{CONFIG_NOT_USED}{e}")),
    }
}

/// Files whose headers are read at once by [`read_safetensors_files`] and [`read_gguf_files`]
/// when their caller allows it (remote shards: each read is a round trip).
pub const MAX_PARALLEL_READS: usize = parallel::MAX_IN_FLIGHT;

/// Opens file `i` of a multi-file model (a shard, a split part) for reading.
pub type OpenFile<'a> =
    dyn Fn(usize) -> Result<Box<dyn ByteSource + Send + 'a>, FormatError> + Sync + 'a;

/// Reads one opened file's header into its own tensor list (file `i`).
type ReadFile<'a, H> =
    dyn Fn(&dyn ByteSource, &mut TensorList, usize) -> Result<H, FormatError> + Sync + 'a;

/// What reading one file gave: its header, its tensors, and the source's counters.
struct FileRead<H> {
    header: H,
    tensors: TensorList,
    bytes_read: u64,
    name: String,
}

/// Reads `count` files with `read`, up to `parallel` at a time, each into its own tensor list;
/// results in file order, the first file's error if any failed. Files are opened only when
/// their turn comes, so a checkpoint of thousands of shards never holds thousands open; after a
/// failure no further file is started.
fn read_files<H: Send>(
    count: usize,
    parallel: usize,
    open: &OpenFile<'_>,
    read: &ReadFile<'_, H>,
) -> Result<Vec<FileRead<H>>, FormatError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let failed = AtomicBool::new(false);
    let one = |i: usize| -> Option<Result<FileRead<H>, FormatError>> {
        if failed.load(Ordering::Relaxed) {
            return None;
        }
        let r = (|| {
            let src = open(i)?;
            let mut tensors = TensorList::new();
            let header = read(&*src, &mut tensors, i)?;
            Ok(FileRead {
                header,
                tensors,
                bytes_read: src.bytes_read(),
                name: src.name().to_string(),
            })
        })();
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        Some(r)
    };
    let mut out = Vec::with_capacity(count);
    for r in parallel::run_bounded(count, parallel, &one) {
        // Files are started in order, so one skipped after a failure comes after the failed
        // one: the first error in file order is met before any skipped file.
        match r {
            Some(r) => out.push(r?),
            None => {
                return Err(FormatError::malformed(
                    target_of(&out),
                    "a file was not read (a reader thread stopped)",
                ))
            }
        }
    }
    Ok(out)
}

fn target_of<H>(reads: &[FileRead<H>]) -> &str {
    reads.first().map(|r| r.name.as_str()).unwrap_or("model")
}

/// A model's safetensors index, when its shards are read through one.
pub struct IndexFile<'a> {
    pub index: &'a safetensors::ShardIndex,
    /// How the index file is shown in [`ModelFile::files`] and error lines.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
}

/// Reads the headers of the safetensors shards of one checkpoint, from any source: file `i`
/// is `paths[i]`, opened by `open(i)`; `parallel` files at a time. With the index, every
/// `weight_map` entry is checked against the shards' headers. The local and the remote models
/// both come through here: one safetensors reader.
pub fn read_safetensors_files(
    target: &str,
    paths: &[PathBuf],
    open: &OpenFile<'_>,
    index: Option<IndexFile<'_>>,
    parallel: usize,
) -> Result<ModelFile, FormatError> {
    let mut m = ModelFile::new(target, Format::Safetensors);
    let read = |src: &dyn ByteSource, tensors: &mut TensorList, i: usize| {
        safetensors::read_header(src, tensors, i)
    };
    let reads = read_files(paths.len(), parallel, open, &read)?;
    for (file_index, r) in reads.into_iter().enumerate() {
        m.tensors
            .append(&r.tensors)
            .map_err(|l| crate::error::over_limit(&r.name, &l))?;
        m.header_bytes_read = m.header_bytes_read.saturating_add(r.bytes_read);
        m.bytes_on_disk = m.bytes_on_disk.saturating_add(r.header.file_len);
        if file_index == 0 {
            m.safetensors_metadata = r.header.metadata;
        }
    }
    m.files.extend(paths.iter().cloned());
    if let Some((name, shard)) = m.tensors.duplicate_name(0) {
        let shard = m.files.get(shard).map(|p| show_path(p)).unwrap_or_default();
        return Err(FormatError::malformed(
            &shard,
            format!("tensor {} also appears in another shard", quoted(name)),
        ));
    }
    if let Some(IndexFile {
        index,
        path: index_path,
        len: index_len,
    }) = index
    {
        let index_file = show_path(&index_path);
        // The shards' tensors sorted by (shard, name): 4 bytes per tensor, binary-searched for
        // each weight_map entry.
        let order = m.tensors.sorted_by_file_and_name();
        let mut mapped = 0usize;
        let mut missing: Option<(&str, usize)> = None;
        let mut missing_count = 0usize;
        for (tensor, shard) in index.weight_map() {
            if m.tensors.find_in(&order, shard, tensor) {
                mapped += 1;
            } else {
                missing_count += 1;
                if missing.is_none_or(|(t, _)| tensor < t) {
                    missing = Some((tensor, shard));
                }
            }
        }
        drop(order);
        if let Some((tensor, shard)) = missing {
            let shard_name = index
                .shards
                .get(shard)
                .map(|p| show_path(p))
                .unwrap_or_default();
            return Err(FormatError::malformed(
                &index_file,
                format!(
                    "weight_map puts tensor {} in {shard_name}, whose header has no such tensor ({missing_count} such entries)",
                    quoted(tensor),
                ),
            ));
        }
        if mapped < m.tensors.len() {
            m.notes.push(format!(
                "{} tensor(s) in the shards are not listed in the index weight_map",
                m.tensors.len() - mapped
            ));
        }
        let total_bytes: u64 = m
            .tensors
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.n_bytes));
        if let Some(total) = index.total_size {
            if total != total_bytes {
                m.notes.push(format!(
                    "index metadata.total_size is {total} bytes, the shards' tensors hold {total_bytes} bytes"
                ));
            }
        }
        m.files.insert(0, index_path);
        // Every tensor's file index refers to the shards; shift past the index entry.
        m.tensors.shift_file_index(1);
        m.bytes_on_disk = m.bytes_on_disk.saturating_add(index_len);
    }
    Ok(m.finish())
}

/// Opens local file `i` of `paths`, saying what it was for when it is missing.
fn open_local<'a>(
    paths: &'a [PathBuf],
    missing: impl Fn(usize) -> String + Sync + 'a,
) -> impl Fn(usize) -> Result<Box<dyn ByteSource + Send + 'a>, FormatError> + Sync + 'a {
    move |i: usize| {
        let path = &paths[i];
        if !path.is_file() {
            return Err(FormatError::not_found(&show_path(path), missing(i)));
        }
        Ok(Box::new(LocalFile::open(path)?) as Box<dyn ByteSource + Send>)
    }
}

/// Reads the headers of one or more local safetensors files (shards of one checkpoint).
fn inspect_safetensors_files(
    paths: &[PathBuf],
    index: Option<(&safetensors::ShardIndex, &Path)>,
    target: &str,
) -> Result<ModelFile, FormatError> {
    let from = index.map(|(_, p)| show_path(p)).unwrap_or_default();
    let open = open_local(paths, |_| format!("shard listed in {from} is missing"));
    let index = index.map(|(index, path)| IndexFile {
        index,
        path: path.to_path_buf(),
        len: std::fs::metadata(path).map(|md| md.len()).unwrap_or(0),
    });
    // Local files one at a time: a disk read is not a round trip, and one header in memory at
    // a time keeps a hostile checkpoint's peak where issue 11 measured it.
    read_safetensors_files(target, paths, &open, index, 1)
}

/// Reads a local GGUF file, and every part of its split set if its name says it is split.
fn inspect_gguf(path: &Path, target: &str) -> Result<ModelFile, FormatError> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let parts: Vec<PathBuf> = match gguf::split_name_parts(&file_name) {
        Some((prefix, _, count)) => {
            let dir = path.parent().unwrap_or_else(|| Path::new("."));
            (1..=count)
                .map(|i| dir.join(gguf::split_part_name(prefix, i, count)))
                .collect()
        }
        None => vec![path.to_path_buf()],
    };
    let count = parts.len();
    let open = open_local(&parts, move |i| {
        format!("split part {} of {count} is missing", i + 1)
    });
    read_gguf_files(target, &parts, &open, 1)
}

/// Reads a GGUF model from any source: one file, or every part of a split set (file `i` is
/// `paths[i]`, opened by `open(i)`), `parallel` parts at a time; the split keys are checked
/// against the parts. The local and the remote models both come through here: one GGUF reader.
pub fn read_gguf_files(
    target: &str,
    paths: &[PathBuf],
    open: &OpenFile<'_>,
    parallel: usize,
) -> Result<ModelFile, FormatError> {
    let count = paths.len();
    let read = |src: &dyn ByteSource, tensors: &mut TensorList, i: usize| {
        let header = gguf::read_header(src, tensors, i)?;
        if count > 1 {
            check_split_keys(&header, i, count, src.name())?;
        }
        Ok(header)
    };
    let reads = read_files(count, parallel, open, &read)?;
    let mut m = ModelFile::new(target, Format::Gguf);
    let mut first: Option<GgufHeader> = None;
    for r in reads {
        let before = m.tensors.len();
        m.tensors
            .append(&r.tensors)
            .map_err(|l| crate::error::over_limit(&r.name, &l))?;
        m.header_bytes_read = m.header_bytes_read.saturating_add(r.bytes_read);
        m.bytes_on_disk = m.bytes_on_disk.saturating_add(r.header.file_len);
        if count > 1 && before > 0 {
            if let Some((name, _)) = m.tensors.duplicate_name(0) {
                return Err(FormatError::malformed(
                    &r.name,
                    format!(
                        "tensor {} also appears in an earlier split part",
                        quoted(name)
                    ),
                ));
            }
        }
        if first.is_none() {
            first = Some(r.header);
        }
    }
    m.files.extend(paths.iter().cloned());
    let Some(header) = first else {
        return Err(FormatError::not_found(target, "no GGUF file to read"));
    };
    let first_name = paths.first().map(|p| show_path(p)).unwrap_or_default();
    if count > 1 {
        if let Some(expected) = header
            .get("split.tensors.count")
            .and_then(MetaValue::as_u64)
        {
            if expected != m.tensors.len() as u64 {
                return Err(FormatError::malformed(
                    &first_name,
                    format!(
                        "split.tensors.count says {expected} tensors but the {count} parts hold {}",
                        m.tensors.len()
                    ),
                ));
            }
        }
    }
    gguf_model_file(m, header, count, &first_name)
}

/// A model from a GGUF header and its tensor list held in memory (one file; `target` names
/// it), as [`inspect`] reads one from disk: for callers that have a file's metadata and tensor
/// list without the file (the llama.cpp calibration records).
pub fn model_file_from_gguf_header(
    target: &str,
    header: GgufHeader,
    tensors: TensorList,
) -> Result<ModelFile, FormatError> {
    let mut m = ModelFile::new(target, Format::Gguf);
    m.tensors = tensors;
    m.bytes_on_disk = header.file_len;
    m.files.push(PathBuf::from(target));
    gguf_model_file(m, header, 1, target)
}

/// What the first (or only) part's header says, once every part's tensors are in `m`.
/// Which layers of a GGUF file route to experts: llama.cpp decides by the tensors the file has
/// (a layer is routed when it has `blk.N.ffn_gate_inp.weight`: src/models/jamba.cpp,
/// llama.cpp, … create it TENSOR_NOT_REQUIRED), so a file whose experts sit on other layers
/// than its architecture's config default is described as the file is. Written into the config
/// as `mlp_layer_types` (the mapping's explicit per-layer list) when the file has experts.
fn routed_layers_from_tensors(config: &mut serde_json::Value, tensors: &TensorList) {
    let experts = ["num_local_experts", "num_experts"]
        .iter()
        .filter_map(|k| config.get(k).and_then(serde_json::Value::as_u64))
        .max()
        .unwrap_or(0);
    let layers = config
        .get("num_hidden_layers")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0) as usize;
    if experts == 0 || layers == 0 || tensors.is_empty() {
        return;
    }
    let mut routed = vec![false; layers];
    for t in tensors.iter() {
        let Some(rest) = t.name.strip_prefix("blk.") else {
            continue;
        };
        let Some((i, tail)) = rest.split_once('.') else {
            continue;
        };
        if tail == "ffn_gate_inp.weight" {
            if let Some(r) = i.parse::<usize>().ok().and_then(|i| routed.get_mut(i)) {
                *r = true;
            }
        }
    }
    if !routed.iter().any(|&r| r) {
        return;
    }
    config["mlp_layer_types"] = serde_json::Value::Array(
        routed
            .iter()
            .map(|&r| serde_json::Value::from(if r { "sparse" } else { "dense" }))
            .collect(),
    );
}

fn gguf_model_file(
    mut m: ModelFile,
    header: GgufHeader,
    split_count: usize,
    first_name: &str,
) -> Result<ModelFile, FormatError> {
    m.architecture = header.architecture().map(str::to_string);
    m.name = header
        .get("general.name")
        .and_then(MetaValue::as_str)
        .map(str::to_string);
    // GGUF has no tie flag: llama.cpp reuses token_embd when output.weight is absent (it may
    // live in any split part, so look at all tensors).
    let has_output =
        (!m.tensors.is_empty()).then(|| m.tensors.iter().any(|t| t.name == "output.weight"));
    match gguf::model_config(&header, has_output, first_name)? {
        Ok(mut config) => {
            routed_layers_from_tensors(&mut config, &m.tensors);
            // The header's architecture keys must describe a model; a refusal names the GGUF
            // key the faulty field came from.
            if let Err(mut e) = vramplan_core::arch::describe(&config) {
                let arch = m.architecture.clone().unwrap_or_default();
                if let Some(key) = e
                    .field
                    .as_deref()
                    .and_then(|f| vramplan_core::arch::gguf::gguf_key_of(&arch, f))
                {
                    let field = e.field.take().unwrap_or_default();
                    e.message = e
                        .message
                        .replace(&format!("'{field}'"), &format!("'{key}'"));
                    e.field = Some(key);
                }
                return Err(FormatError::architecture(first_name, e));
            }
            m.config = Some(config)
        }
        Err(reason) => m
            .notes
            .push(format!("architecture fields unavailable: {reason}")),
    }
    let file_type = header.file_type();
    m.gguf = Some(GgufDetails {
        version: header.version,
        big_endian: header.big_endian,
        alignment: header.alignment,
        file_type,
        file_type_name: file_type.map(|id| {
            gguf::file_type_name(id)
                .map(str::to_string)
                .unwrap_or_else(|| format!("unknown (id {id})"))
        }),
        quantization_version: header
            .get("general.quantization_version")
            .and_then(MetaValue::as_u64),
        split_count: u32::try_from(split_count).unwrap_or(u32::MAX),
        metadata: header.metadata,
    });
    Ok(m.finish())
}

/// split.no (0-based, as gguf-py writes it) and split.count must agree with the file names.
fn check_split_keys(
    header: &GgufHeader,
    index: usize,
    count: usize,
    file: &str,
) -> Result<(), FormatError> {
    let get = |k: &str| header.get(k).and_then(MetaValue::as_u64);
    if let Some(n) = get("split.count") {
        if n != count as u64 {
            return Err(FormatError::malformed(
                file,
                format!("split.count is {n} but the file name says {count} parts"),
            ));
        }
    }
    if let Some(no) = get("split.no") {
        if no != index as u64 {
            return Err(FormatError::malformed(
                file,
                format!(
                    "split.no is {no} but this is part {} of {count} (split.no counts from 0)",
                    index + 1
                ),
            ));
        }
    }
    Ok(())
}

/// Lists tensors by file for callers that need per-file grouping (e.g. shard sizes).
pub fn bytes_per_file(m: &ModelFile) -> HashMap<usize, u64> {
    let mut out = HashMap::new();
    for t in m.tensors.iter() {
        let e = out.entry(t.file_index).or_insert(0u64);
        *e = e.saturating_add(t.n_bytes);
    }
    out
}
