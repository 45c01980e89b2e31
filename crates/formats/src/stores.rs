//! Where models live on a machine, and how to find them without walking forever.
//!
//! * Hugging Face cache (huggingface_hub's layout): `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//!   `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`; each repo is
//!   `models--ORG--NAME/` with `refs/main` (a commit hash) and `snapshots/<hash>/` holding
//!   symlinks into `blobs/`.
//! * ollama: `$OLLAMA_MODELS`, else `~/.ollama/models`; a model `NAME:TAG` has the JSON manifest
//!   `manifests/registry.ollama.ai/library/NAME/TAG`, whose layer with mediaType
//!   `application/vnd.ollama.image.model` names the GGUF blob `blobs/sha256-<hex>`.
//! * Plain directories: a folder with config.json and/or *.safetensors, or *.gguf files.
//!
//! Walking is bounded in depth and entry count and never follows directory symlinks (walkdir's
//! default), so symlink loops cannot trap it.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use walkdir::WalkDir;

use crate::error::{quoted, show_path, FormatError};
use crate::gguf::split_name_parts;

/// mediaType of the GGUF weights layer in an ollama manifest.
pub const OLLAMA_MODEL_MEDIA_TYPE: &str = "application/vnd.ollama.image.model";
/// mediaType of a vision projector (a second GGUF) in an ollama manifest.
pub const OLLAMA_PROJECTOR_MEDIA_TYPE: &str = "application/vnd.ollama.image.projector";
/// ollama's default registry host and namespace.
pub const OLLAMA_DEFAULT_HOST: &str = "registry.ollama.ai";
pub const OLLAMA_DEFAULT_NAMESPACE: &str = "library";
/// Manifests are a few KiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// A ref file (`refs/main`) holds a commit hash: 40 hex characters and a newline.
pub const MAX_REF_BYTES: u64 = 1024;

/// Which store a found model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StoreKind {
    HuggingFaceCache,
    Ollama,
    Directory,
}

/// A model found by a scan: a display name and what to pass to [`crate::inspect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundModel {
    pub name: String,
    pub store: StoreKind,
    pub path: PathBuf,
}

/// Bounds on a directory walk.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    pub max_depth: usize,
    pub max_entries: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        // Deep enough for hub/models--A--B/snapshots/REV/subfolder; 200k entries is a large disk.
        ScanLimits {
            max_depth: 8,
            max_entries: 200_000,
        }
    }
}

/// What a scan found, and whether it stopped at a limit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanResult {
    pub models: Vec<FoundModel>,
    /// The walk hit `max_entries` and stopped early.
    pub truncated: bool,
    pub entries_seen: usize,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> Option<PathBuf> {
    env_path("HOME")
}

/// The Hugging Face hub cache directory (it may not exist).
pub fn hf_hub_dir() -> Option<PathBuf> {
    if let Some(p) = env_path("HF_HUB_CACHE") {
        return Some(p);
    }
    if let Some(p) = env_path("HF_HOME") {
        return Some(p.join("hub"));
    }
    if let Some(p) = env_path("XDG_CACHE_HOME") {
        return Some(p.join("huggingface").join("hub"));
    }
    home().map(|h| h.join(".cache").join("huggingface").join("hub"))
}

/// The ollama models directory (it may not exist).
pub fn ollama_models_dir() -> Option<PathBuf> {
    env_path("OLLAMA_MODELS").or_else(|| home().map(|h| h.join(".ollama").join("models")))
}

// ------------------------------------------------------------------------------------------
// Hugging Face cache
// ------------------------------------------------------------------------------------------

/// "org/name" → "models--org--name".
pub fn hf_repo_dir_name(repo_id: &str) -> Option<String> {
    let (org, name) = repo_id.split_once('/')?;
    let ok = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\']);
    (ok(org) && ok(name)).then(|| format!("models--{org}--{name}"))
}

/// The snapshot to use in a `models--ORG--NAME` directory: `refs/main`'s revision when it
/// exists, else the only (or most recently modified) snapshot.
pub fn hf_snapshot(repo_dir: &Path) -> Result<(PathBuf, String), FormatError> {
    let target = show_path(repo_dir);
    let snapshots = repo_dir.join("snapshots");
    let refs_main = repo_dir.join("refs").join("main");
    // refs/main holds a 40-character commit hash: read as a small regular file (a FIFO there
    // would block the read, a link to /dev/zero would never end).
    let rev = match std::fs::symlink_metadata(&refs_main) {
        Err(_) => None,
        Ok(_) => {
            let src = crate::source::LocalFile::open(&refs_main)?;
            Some(crate::source::read_capped(
                &src,
                MAX_REF_BYTES,
                "refs/main",
            )?)
        }
    };
    if let Some(rev) = rev.and_then(|b| String::from_utf8(b).ok()) {
        let rev = rev.trim();
        let plain = !rev.is_empty() && rev.chars().all(|c| c.is_ascii_alphanumeric());
        if plain && snapshots.join(rev).is_dir() {
            return Ok((snapshots.join(rev), rev.to_string()));
        }
    }
    let entries = std::fs::read_dir(&snapshots)
        .map_err(|e| FormatError::not_found(&target, format!("no snapshots/ directory ({e})")))?;
    let mut best: Option<(std::time::SystemTime, PathBuf, String)> = None;
    for entry in entries.take(10_000).flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        let rev = entry.file_name().to_string_lossy().into_owned();
        if best.as_ref().is_none_or(|(t, _, _)| modified > *t) {
            best = Some((modified, path, rev));
        }
    }
    best.map(|(_, p, r)| (p, r))
        .ok_or_else(|| FormatError::not_found(&target, "snapshots/ holds no revision"))
}

/// A repo id such as "meta-llama/Llama-3.1-8B" resolved in the HF cache, if present there.
pub fn resolve_hf_repo(
    hub: &Path,
    repo_id: &str,
) -> Option<Result<(PathBuf, String), FormatError>> {
    let dir = hub.join(hf_repo_dir_name(repo_id)?);
    dir.is_dir().then(|| hf_snapshot(&dir))
}

/// If `path` lies inside a HF cache snapshot, the repo id and revision.
pub fn hf_repo_from_path(path: &Path) -> Option<(String, String)> {
    let parts: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if let Some(rest) = part.strip_prefix("models--") {
            if parts.get(i + 1) == Some(&"snapshots") {
                let rev = parts.get(i + 2)?;
                let (org, name) = rest.split_once("--")?;
                return Some((format!("{org}/{name}"), (*rev).to_string()));
            }
        }
    }
    None
}

/// Every repo in the HF cache (one level of read_dir, bounded).
pub fn scan_hf_cache(hub: &Path) -> Vec<FoundModel> {
    let Ok(entries) = std::fs::read_dir(hub) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.take(100_000).flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("models--") else {
            continue;
        };
        let repo = rest.replacen("--", "/", 1);
        // A repo whose snapshot cannot be found (a hostile refs/main) is still listed, by its
        // folder, so that inspecting it reports why.
        out.push(FoundModel {
            name: repo,
            store: StoreKind::HuggingFaceCache,
            path: hf_snapshot(&entry.path())
                .map(|(snapshot, _)| snapshot)
                .unwrap_or_else(|_| entry.path()),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

// ------------------------------------------------------------------------------------------
// ollama
// ------------------------------------------------------------------------------------------

/// A parsed ollama model reference: `[host/][namespace/]model[:tag]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OllamaName {
    pub host: String,
    pub namespace: String,
    pub model: String,
    pub tag: String,
}

impl OllamaName {
    /// Relative manifest path under `manifests/`.
    pub fn manifest_rel_path(&self) -> PathBuf {
        [&self.host, &self.namespace, &self.model, &self.tag]
            .iter()
            .collect()
    }

    /// The short form ollama prints: `model:tag` for the default registry and namespace.
    pub fn display_name(&self) -> String {
        if self.host == OLLAMA_DEFAULT_HOST && self.namespace == OLLAMA_DEFAULT_NAMESPACE {
            format!("{}:{}", self.model, self.tag)
        } else if self.host == OLLAMA_DEFAULT_HOST {
            format!("{}/{}:{}", self.namespace, self.model, self.tag)
        } else {
            format!(
                "{}/{}/{}:{}",
                self.host, self.namespace, self.model, self.tag
            )
        }
    }
}

/// Parses `llama3.1:8b`, `user/model`, `host/ns/model:tag`. Parts are restricted to
/// `[A-Za-z0-9._-]` (host may carry `:port`) so a name can never escape the manifests folder.
pub fn parse_ollama_name(s: &str) -> Option<OllamaName> {
    let last_slash = s.rfind('/');
    let (path, tag) = match s.rfind(':') {
        Some(colon) if last_slash.is_none_or(|sl| colon > sl) => {
            (s.get(..colon)?, s.get(colon + 1..)?)
        }
        _ => (s, "latest"),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let (host, namespace, model) = match parts.as_slice() {
        [m] => (OLLAMA_DEFAULT_HOST, OLLAMA_DEFAULT_NAMESPACE, *m),
        [ns, m] => (OLLAMA_DEFAULT_HOST, *ns, *m),
        [h, ns, m] => (*h, *ns, *m),
        _ => return None,
    };
    let ok = |p: &str, allow_colon: bool| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.len() <= 256
            && p.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '.' | '_' | '-')
                    || (allow_colon && c == ':')
            })
    };
    if !(ok(host, true) && ok(namespace, false) && ok(model, false) && ok(tag, false)) {
        return None;
    }
    Some(OllamaName {
        host: host.to_string(),
        namespace: namespace.to_string(),
        model: model.to_string(),
        tag: tag.to_string(),
    })
}

/// An ollama model resolved to its blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OllamaModel {
    pub name: String,
    pub manifest: PathBuf,
    pub model_blob: PathBuf,
    pub projector_blobs: Vec<PathBuf>,
}

/// `sha256:<64 hex>` → `blobs/sha256-<hex>`; anything else is rejected (no path tricks).
pub fn ollama_blob_path(models_dir: &Path, digest: &str) -> Option<PathBuf> {
    let hex = digest_hex(digest)?;
    Some(models_dir.join("blobs").join(format!("sha256-{hex}")))
}

/// Resolves `name` in the store at `models_dir`; `None` if there is no such manifest.
pub fn resolve_ollama(
    models_dir: &Path,
    name: &OllamaName,
) -> Option<Result<OllamaModel, FormatError>> {
    let manifest = models_dir.join("manifests").join(name.manifest_rel_path());
    manifest
        .is_file()
        .then(|| read_ollama_manifest(&manifest, models_dir, &name.display_name()))
}

/// The models directory that holds a manifest: the parent of its `manifests` ancestor.
pub fn ollama_models_dir_of_manifest(manifest: &Path) -> Option<PathBuf> {
    manifest
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "manifests"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

/// Reads a manifest and finds its model (GGUF) blob.
pub fn read_ollama_manifest(
    manifest: &Path,
    models_dir: &Path,
    name: &str,
) -> Result<OllamaModel, FormatError> {
    let file = show_path(manifest);
    let bytes = crate::hf_config::read_json_file(manifest, MAX_MANIFEST_BYTES)?;
    let root: Value = serde_json::from_slice(&bytes).map_err(|e| FormatError::json(&file, e))?;
    parse_ollama_manifest(&root, models_dir, manifest, name)
}

/// One layer of an ollama manifest: a content digest (`sha256:<64 hex>`) and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestLayer {
    pub digest: String,
    pub size: Option<u64>,
}

/// The layers of an ollama manifest that hold GGUF: the model and any vision projectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestModel {
    pub model: ManifestLayer,
    pub projectors: Vec<ManifestLayer>,
}

/// `sha256:<64 hex>` (or ollama's file-name form `sha256-<hex>`) → the 64 hex digits.
pub fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .or_else(|| digest.strip_prefix("sha256-"))?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// The manifest JSON → its model layer and projector layers (digests checked), wherever the
/// manifest came from (a local store, a registry). `file` names the manifest in errors.
pub fn manifest_model(root: &Value, file: &str) -> Result<ManifestModel, FormatError> {
    let Some(layers) = root.get("layers").and_then(Value::as_array) else {
        return Err(FormatError::MissingField {
            file: file.to_string(),
            field: "layers".to_string(),
            alternatives: String::new(),
        });
    };
    let mut model = None;
    let mut projectors = Vec::new();
    for layer in layers {
        let media = layer.get("mediaType").and_then(Value::as_str).unwrap_or("");
        if media != OLLAMA_MODEL_MEDIA_TYPE && media != OLLAMA_PROJECTOR_MEDIA_TYPE {
            continue;
        }
        let digest = layer.get("digest").and_then(Value::as_str).unwrap_or("");
        if digest_hex(digest).is_none() {
            return Err(FormatError::malformed(
                file,
                format!(
                    "layer {media} has digest {}, not sha256:<64 hex digits>",
                    quoted(digest)
                ),
            ));
        }
        let entry = ManifestLayer {
            digest: digest.to_string(),
            size: layer.get("size").and_then(Value::as_u64),
        };
        if media == OLLAMA_MODEL_MEDIA_TYPE {
            if model.is_none() {
                model = Some(entry);
            }
        } else {
            projectors.push(entry);
        }
    }
    let model = model.ok_or_else(|| {
        FormatError::malformed(
            file,
            format!("no layer with mediaType {OLLAMA_MODEL_MEDIA_TYPE}"),
        )
    })?;
    Ok(ManifestModel { model, projectors })
}

/// The manifest JSON → blob paths (checked to exist).
pub fn parse_ollama_manifest(
    root: &Value,
    models_dir: &Path,
    manifest: &Path,
    name: &str,
) -> Result<OllamaModel, FormatError> {
    let file = show_path(manifest);
    let layers = manifest_model(root, &file)?;
    let blob = |l: &ManifestLayer| {
        ollama_blob_path(models_dir, &l.digest).ok_or_else(|| {
            FormatError::malformed(&file, format!("digest {} is not sha256", quoted(&l.digest)))
        })
    };
    let model_blob = blob(&layers.model)?;
    let projector_blobs = layers
        .projectors
        .iter()
        .map(blob)
        .collect::<Result<Vec<_>, _>>()?;
    if !model_blob.is_file() {
        return Err(FormatError::not_found(
            &show_path(&model_blob),
            format!("model blob named by {file} is missing"),
        ));
    }
    Ok(OllamaModel {
        name: name.to_string(),
        manifest: manifest.to_path_buf(),
        model_blob,
        projector_blobs,
    })
}

/// Every model in an ollama store: manifests/HOST/NAMESPACE/MODEL/TAG files.
pub fn scan_ollama(models_dir: &Path) -> Vec<FoundModel> {
    let root = models_dir.join("manifests");
    let mut out = Vec::new();
    for entry in WalkDir::new(&root)
        .min_depth(4)
        .max_depth(4)
        .into_iter()
        .take(100_000)
        .flatten()
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(&root) else {
            continue;
        };
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if let [host, ns, model, tag] = parts.as_slice() {
            let name = OllamaName {
                host: host.clone(),
                namespace: ns.clone(),
                model: model.clone(),
                tag: tag.clone(),
            };
            out.push(FoundModel {
                name: name.display_name(),
                store: StoreKind::Ollama,
                path: entry.path().to_path_buf(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

// ------------------------------------------------------------------------------------------
// Plain directories
// ------------------------------------------------------------------------------------------

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Finds model candidates under `dir`: folders with config.json / *.safetensors, and *.gguf
/// files (a split set once, by its first part). Candidates are picked by name here; `inspect`
/// then identifies each by its content. An ollama store or HF cache met on the way is listed
/// through its own layout.
pub fn scan_dir(dir: &Path, limits: ScanLimits) -> ScanResult {
    let mut result = ScanResult::default();
    let mut model_dirs: Vec<PathBuf> = Vec::new();
    let mut model_dir_set: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    let mut walker = WalkDir::new(dir)
        .follow_links(false)
        .max_depth(limits.max_depth)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        let Ok(entry) = entry else { continue };
        result.entries_seen += 1;
        if result.entries_seen > limits.max_entries {
            result.truncated = true;
            break;
        }
        let path = entry.path();
        if entry.file_type().is_dir() {
            // An ollama store: list it by manifests, do not descend into its blobs.
            if path.join("manifests").is_dir() && path.join("blobs").is_dir() {
                result.models.extend(scan_ollama(path));
                walker.skip_current_dir();
                continue;
            }
            // A HF cache repo: list its current snapshot once, not every old revision.
            let hf_repo = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("models--"))
                .filter(|_| path.join("snapshots").is_dir())
                .map(|r| r.replacen("--", "/", 1));
            if let Some(repo) = hf_repo {
                // Listed even when its snapshot cannot be found, so inspecting says why.
                result.models.push(FoundModel {
                    name: repo,
                    store: StoreKind::HuggingFaceCache,
                    path: hf_snapshot(path)
                        .map(|(snapshot, _)| snapshot)
                        .unwrap_or_else(|_| path.to_path_buf()),
                });
                walker.skip_current_dir();
                continue;
            }
            // Blobs are content-addressed copies of snapshot files; .git holds nothing to list.
            if path
                .file_name()
                .is_some_and(|n| n == "blobs" || n == ".git")
            {
                walker.skip_current_dir();
            }
            continue;
        }
        // Symlinked files (HF snapshots) count as files; symlinked directories are not followed.
        if !path.is_file() {
            continue;
        }
        let file_name = entry.file_name().to_string_lossy();
        if has_ext(path, "gguf") {
            if let Some((_, part, _)) = split_name_parts(&file_name) {
                if part != 1 {
                    continue;
                }
            }
            result.models.push(FoundModel {
                name: file_name.into_owned(),
                store: StoreKind::Directory,
                path: path.to_path_buf(),
            });
        } else if file_name == "config.json" || has_ext(path, "safetensors") {
            if let Some(parent) = path.parent() {
                if model_dir_set.insert(parent.to_path_buf()) {
                    model_dirs.push(parent.to_path_buf());
                }
            }
        }
    }
    for d in model_dirs {
        let (name, store) = match hf_repo_from_path(&d) {
            Some((repo, _)) => (repo, StoreKind::HuggingFaceCache),
            None => (
                d.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| show_path(&d)),
                StoreKind::Directory,
            ),
        };
        result.models.push(FoundModel {
            name,
            store,
            path: d,
        });
    }
    result
}

/// Every model in the default stores (HF cache, ollama) that exist on this machine.
pub fn scan_default_stores() -> Vec<FoundModel> {
    let mut out = Vec::new();
    if let Some(hub) = hf_hub_dir() {
        out.extend(scan_hf_cache(&hub));
    }
    if let Some(dir) = ollama_models_dir() {
        out.extend(scan_ollama(&dir));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_names() {
        let n = parse_ollama_name("llama3.1:8b").unwrap();
        assert_eq!(
            n.manifest_rel_path(),
            PathBuf::from("registry.ollama.ai/library/llama3.1/8b")
        );
        let n = parse_ollama_name("qwen2.5").unwrap();
        assert_eq!(n.tag, "latest");
        let n = parse_ollama_name("user/model:q4").unwrap();
        assert_eq!((n.namespace.as_str(), n.model.as_str()), ("user", "model"));
        let n = parse_ollama_name("localhost:5000/ns/m:t").unwrap();
        assert_eq!(n.host, "localhost:5000");
        assert!(parse_ollama_name("../etc:passwd").is_none());
        assert!(parse_ollama_name("a/b/c/d").is_none());
        assert!(parse_ollama_name("").is_none());
    }

    #[test]
    fn blob_digest_is_strict() {
        let dir = Path::new("/m");
        let hex = "a".repeat(64);
        assert_eq!(
            ollama_blob_path(dir, &format!("sha256:{hex}")),
            Some(PathBuf::from(format!("/m/blobs/sha256-{hex}")))
        );
        assert_eq!(ollama_blob_path(dir, "sha256:../../x"), None);
    }

    #[test]
    fn hf_paths() {
        assert_eq!(
            hf_repo_dir_name("org/name").as_deref(),
            Some("models--org--name")
        );
        assert_eq!(hf_repo_dir_name("../x"), None);
        let p = Path::new("/c/hub/models--org--my-model/snapshots/abc123/config.json");
        assert_eq!(
            hf_repo_from_path(p),
            Some(("org/my-model".to_string(), "abc123".to_string()))
        );
    }
}
