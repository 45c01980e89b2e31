//! Where `--model` comes from: the one resolver of every command and of the web API.
//!
//! In order (issue 13):
//! 1. a path on disk (a safetensors or GGUF file, a sharded checkpoint, a model folder, a
//!    config.json), read header-only by crates/formats;
//! 2. a catalogue id or alias (offline, instant);
//! 3. the local stores: an `ORG/NAME` in the Hugging Face cache, an ollama `NAME:TAG` in the
//!    ollama store;
//! 4. the network: `ORG/NAME[@REVISION][:TAG]` on the Hugging Face Hub (`HF_ENDPOINT`),
//!    `ollama://NAME:TAG` (and a bare `NAME:TAG` not found locally) in the ollama registry,
//!    read by HTTP ranges by crates/hub — through its cache, and never with `--offline` or
//!    `HF_HUB_OFFLINE=1`;
//! 5. the catalogue by the names people type (names.rs), whose miss lists the nearest names.
//!
//! The web server resolves with [`Scope::server`]: the catalogue and the Hub only (never its
//! own disk or another registry), or the catalogue alone with `serve --no-hub`.

use crate::Failure;
use clap::Args;
use std::path::Path;
use std::time::Duration;
use vramplan_core::{catalogue, ModelDesc};
use vramplan_formats::{inspect, to_model_desc, FormatError, ModelFile, Origin};
use vramplan_hub::{Found, GgufFile, HubError, Kind, Session, Settings};

/// What a command may use to find a model (not a flag: the CLI's is [`Scope::default`], the
/// web server sets its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope {
    /// Paths, the Hugging Face cache and the ollama store on this machine.
    pub local: bool,
    /// The Hub (and, with `registries`, the ollama registry) over the network or its cache.
    pub hub: bool,
    /// The ollama registry, and names that carry their own registry host.
    pub registries: bool,
}

impl Default for Scope {
    fn default() -> Scope {
        Scope {
            local: true,
            hub: true,
            registries: true,
        }
    }
}

impl Scope {
    /// The web server's: the catalogue and, unless `--no-hub`, the Hub.
    pub fn server(hub: bool) -> Scope {
        Scope {
            local: false,
            hub,
            registries: false,
        }
    }
}

/// Seconds the network may take for one command, by default.
pub const DEFAULT_TIMEOUT: f64 = 120.0;

/// The flags of the commands that take `--model`, about models on the Hub or in the ollama
/// registry.
#[derive(Args, Clone, Debug)]
pub struct HubArgs {
    /// Never use the network (as HF_HUB_OFFLINE=1): models on the Hub or in the ollama
    /// registry come from vramplan's cache of what was read before.
    #[arg(long)]
    pub offline: bool,
    /// Read a Hub or registry model again instead of from the cache.
    #[arg(long, conflicts_with = "offline")]
    pub refresh: bool,
    /// The file of a Hub repository to read (a GGUF file, as llama.cpp's --hf-file; or one
    /// .safetensors file), in any case.
    #[arg(long, value_name = "NAME")]
    pub file: Option<String>,
    /// Seconds the network may take in all for this command (each request also has 30 s).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT)]
    pub timeout: f64,
    #[arg(skip = Scope::default())]
    pub scope: Scope,
}

impl Default for HubArgs {
    fn default() -> HubArgs {
        HubArgs {
            offline: false,
            refresh: false,
            file: None,
            timeout: DEFAULT_TIMEOUT,
            scope: Scope::default(),
        }
    }
}

/// A model and, when it was read from files, what was read.
pub struct Resolved {
    pub desc: ModelDesc,
    /// "read from PATH (GGUF, 291 tensors)" for models from files.
    pub origin: Option<String>,
    pub notes: Vec<String>,
    /// What the estimate cannot claim (weights not read): the JSON's `warnings` too.
    pub warnings: Vec<String>,
}

/// What a query names.
pub enum Located {
    Catalogue(Box<ModelDesc>),
    /// A model read from its files, locally or remotely.
    File(Box<ModelFile>),
    /// A Hub repository of several GGUF models, and nothing to choose one by.
    GgufFiles {
        repo: String,
        files: Vec<GgufFile>,
    },
}

fn file_failure(e: FormatError) -> Failure {
    match e {
        FormatError::Io { .. } => Failure::runtime(e.to_string()),
        _ => Failure::input(e.to_string()),
    }
}

/// What `--model` accepts, for the commands' `--help`.
pub const MODEL_HELP: &str = "Model: a catalogue id or alias in any case, with or without its organisation or punctuation (meta-llama/Llama-3.1-8B-Instruct, Llama-3.1-8B-Instruct, llama3.1-8b-instruct; see `vramplan models`); a model on disk: a .safetensors or .gguf file, a sharded checkpoint's index.json, a Hugging Face model folder or a config.json alone; an HF repo id ORG/NAME[@REVISION][:GGUF_TAG] (from the local Hugging Face cache, else read from the Hub by its headers); an ollama model NAME:TAG (from the local store, else the ollama registry; ollama://NAME:TAG for the registry)";

/// A `--model` written as a path rather than a name: it starts at a folder (`./`, `../`,
/// `/`, `~`), or names a model file by its extension. `org/name` (with a revision or a tag)
/// is a repository id, not a path.
pub fn looks_like_path(query: &str) -> bool {
    let q = query.trim();
    if vramplan_hub::parse_repo_ref(q).is_some() || q.starts_with("ollama://") {
        return false;
    }
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

/// The hub settings of one command: the environment's, with the command's flags.
pub fn settings(hub: &HubArgs) -> Result<Settings, Failure> {
    let mut s = Settings::from_env().map_err(|e| Failure::input(e.message))?;
    s.offline |= hub.offline;
    s.refresh = hub.refresh;
    if !(hub.timeout > 0.0 && hub.timeout <= 3600.0) {
        return Err(Failure::input(format!(
            "--timeout {} must be a number of seconds in (0, 3600]",
            hub.timeout
        )));
    }
    s.deadline = Duration::from_secs_f64(hub.timeout);
    s.other_registries = hub.scope.registries;
    Ok(s)
}

/// A hub failure as the command's one line: a 404 also names the nearest catalogue entries; a
/// network that is down suggests what works without it.
fn hub_failure(e: HubError, query: &str) -> Failure {
    match e.kind {
        Kind::NotFound => {
            let nearest = catalogue().nearest_models(query);
            Failure::input(format!(
                "{}{}",
                e.message,
                vramplan_core::names::nearest_clause(&nearest)
                    .replacen("; nearest:", "; nearest catalogue names:", 1)
            ))
        }
        Kind::Unreachable => Failure::runtime(format!(
            "{}: the network may be down; --offline answers from vramplan's cache of models read before, and catalogue names (`vramplan models`) need no network",
            e.message
        )),
        _ if e.is_input() => Failure::input(e.message),
        _ => Failure::runtime(e.message),
    }
}

/// Finds what `query` names, in the order of the module documentation. For `inspect`
/// (`for_inspect`), the catalogue is not looked at (its entries have no files), and a Hub
/// repository of several GGUF models answers with their list rather than an error.
pub fn locate(query: &str, hub: &HubArgs, for_inspect: bool) -> Result<Located, Failure> {
    let list_gguf = for_inspect;
    let cat = catalogue();
    let scope = hub.scope;
    let repo = vramplan_hub::parse_repo_ref(query);
    // 1. A path on disk.
    let on_disk = scope.local && Path::new(query).exists();
    if on_disk {
        return inspect(query)
            .map(|m| Located::File(Box::new(m)))
            .map_err(file_failure);
    }
    // 2. The catalogue, exactly.
    if hub.file.is_none() && !for_inspect {
        if let Some(m) = cat.model_exact(query) {
            return Ok(Located::Catalogue(Box::new(m.clone())));
        }
    }
    if scope.local && looks_like_path(query) {
        return Err(Failure::input(format!(
            "no such file: {query} (--model takes a catalogue id, a Hugging Face repo ORG/NAME, or a path to a model file, folder or config.json that exists)"
        )));
    }
    let fuzzy = || -> Result<Located, Failure> {
        if for_inspect {
            return Err(Failure::input(format!(
                "{query}: no such file or directory, Hugging Face repo or ollama model"
            )));
        }
        cat.model(query)
            .map(|m| Located::Catalogue(Box::new(m.clone())))
            .map_err(Failure::input)
    };
    // 3. The local stores (an HF cache entry is read as it stands: no tag, revision or file).
    if scope.local {
        let plain_repo = repo
            .as_ref()
            .is_some_and(|r| r.revision.is_none() && r.tag.is_none() && hub.file.is_none());
        let ollama_local = repo.is_none() && !query.starts_with("ollama://");
        if plain_repo || ollama_local {
            match inspect(query) {
                Ok(m) => return Ok(Located::File(Box::new(m))),
                // In a store but unreadable (a hostile refs/main): that is the answer.
                Err(e) if in_local_store(query) => return Err(file_failure(e)),
                Err(_) => {}
            }
        }
    }
    // 4. The network (or its cache).
    if let Some(r) = &repo {
        if scope.hub {
            let session = Session::new(settings(hub)?);
            return match session.hub(query, r, hub.file.as_deref(), list_gguf) {
                Ok(Found::Model(m)) => Ok(Located::File(m)),
                Ok(Found::GgufFiles { repo, files }) => Ok(Located::GgufFiles { repo, files }),
                // Not on the Hub (or not cached offline): perhaps a catalogue name as typed.
                Err(e) if matches!(e.kind, Kind::NotFound | Kind::NotCached) => {
                    fuzzy().map_err(|_| hub_failure(e, query))
                }
                Err(e) => Err(hub_failure(e, query)),
            };
        }
    }
    let ollama_name = query
        .strip_prefix("ollama://")
        .or_else(|| (repo.is_none() && query.contains(':')).then_some(query));
    if let Some(name) = ollama_name {
        if scope.hub && scope.registries {
            let Some(parsed) = vramplan_formats::stores::parse_ollama_name(name) else {
                return Err(Failure::input(format!(
                    "'{name}' is not an ollama model name (NAME:TAG, NAMESPACE/NAME:TAG)"
                )));
            };
            let session = Session::new(settings(hub)?);
            return match session.ollama(query, &parsed) {
                Ok(m) => Ok(Located::File(Box::new(m))),
                Err(e) if matches!(e.kind, Kind::NotFound | Kind::NotCached) => {
                    fuzzy().map_err(|_| hub_failure(e, query))
                }
                Err(e) => Err(hub_failure(e, query)),
            };
        }
    }
    // 5. The catalogue by the names people type.
    fuzzy()
}

/// Whether a local store (the Hugging Face cache, the ollama store) has an entry for `query`.
fn in_local_store(query: &str) -> bool {
    use vramplan_formats::stores;
    let hf = stores::hf_hub_dir()
        .and_then(|hub| Some(hub.join(stores::hf_repo_dir_name(query)?)))
        .is_some_and(|dir| dir.is_dir());
    let ollama = stores::parse_ollama_name(query)
        .zip(stores::ollama_models_dir())
        .is_some_and(|(n, dir)| dir.join("manifests").join(n.manifest_rel_path()).is_file());
    hf || ollama
}

/// How a model read from files is named in the estimate's footer.
pub fn describe(file: &ModelFile) -> String {
    let size = vramplan_core::units::size(file.bytes_on_disk);
    let config_only = file.format == vramplan_formats::Format::ConfigOnly;
    match &file.origin {
        Origin::Hub { repo, commit, .. } if config_only => format!(
            "read from the Hub: {repo} at commit {} (its config.json)",
            commit.get(..7).unwrap_or(commit),
        ),
        Origin::Hub { repo, commit, .. } => format!(
            "read from the Hub: {repo} at commit {} ({}, {} tensors in {}, {size}; {} of headers read)",
            commit.get(..7).unwrap_or(commit),
            file.format.name(),
            file.summary.tensor_count,
            vramplan_core::units::count(file.files.len() as u64, "file"),
            vramplan_core::units::size(file.header_bytes_read)
        ),
        Origin::Registry { name, digest, .. } => format!(
            "read from the ollama registry: {name}, blob {} ({}, {} tensors, {size}; {} of header read)",
            digest.get(..19).unwrap_or(digest),
            file.format.name(),
            file.summary.tensor_count,
            vramplan_core::units::size(file.header_bytes_read)
        ),
        _ => format!(
            "read from {} ({}, {} tensors, {size} on disk)",
            file.files
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| file.target.clone()),
            file.format.name(),
            file.summary.tensor_count,
        ),
    }
}

/// The GGUF list of a repository as an error line (for commands that need one model).
fn gguf_list_failure(repo: &str, files: &[GgufFile]) -> Failure {
    let shown: Vec<String> = files
        .iter()
        .map(|g| format!("{} ({})", g.file, g.quant.as_deref().unwrap_or("?")))
        .collect();
    Failure::input(format!(
        "{repo} holds {} GGUF models: {}; pick one with {repo}:TAG or --file NAME",
        files.len(),
        shown.join(", ")
    ))
}

/// The model `query` names, as the estimator takes it.
pub fn resolve(query: &str, hub: &HubArgs) -> Result<Resolved, Failure> {
    match locate(query, hub, false)? {
        Located::Catalogue(desc) => Ok(Resolved {
            desc: *desc,
            origin: None,
            notes: Vec::new(),
            warnings: Vec::new(),
        }),
        Located::GgufFiles { repo, files } => Err(gguf_list_failure(&repo, &files)),
        Located::File(file) => {
            let fm = to_model_desc(&file).map_err(file_failure)?;
            let mut notes = fm.notes;
            notes.extend(file.notes.iter().cloned());
            Ok(Resolved {
                desc: fm.desc,
                origin: Some(describe(&file)),
                notes,
                warnings: file.warnings.clone(),
            })
        }
    }
}
