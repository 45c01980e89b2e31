//! A model on the Hugging Face Hub (or a mirror), sized from its headers.
//!
//! The Hub's routes (huggingface_hub 2.4.0 `hf_api.py` model_info, `file_download.py`
//! hf_hub_url):
//! - `GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true`: the commit the revision
//!   is at (`sha`) and the file list (`siblings`: `rfilename`, `size`, `lfs.size`);
//! - `GET {endpoint}/{repo}/resolve/{commit}/{file}`: a file; large (LFS) files answer with a
//!   redirect to a CDN, which takes `Range` and answers 206 with `Content-Range`.
//!
//! Round trips, sequential: (1) the revision; (2) at once, config.json, the safetensors index
//! and the first 64 KiB of every file that looks like one of the index's shards; (3) only for a
//! shard whose header is longer than that, the rest of it (all such shards at once). A GGUF
//! header is read by growing ranges until it parses. Every file read is one the listing names:
//! no path from an index or a user reaches a URL unless the repository has that file.
//!
//! Choosing a GGUF file follows llama.cpp's `-hf` (common/download.cpp at ggml-org/llama.cpp
//! 0216dab): `ORG/NAME:TAG` takes the first model file (not mmproj/imatrix/draft) whose path
//! holds TAG followed by `.` or `-`, case-insensitively, and the first part of a split set
//! (`find_best_model`); `--file` names one exactly, in any case (`string_iequal`), as
//! llama.cpp's `--hf-file`. Where llama.cpp falls back to Q4_K_M, then Q8_0, then the first
//! file when no tag is given, we list the files instead: a guess here would be a plausible
//! number for a model the user did not ask for.

use std::path::PathBuf;

use serde_json::Value;
use url::Url;
use vramplan_formats::gguf::{split_name_parts, split_part_name};
use vramplan_formats::layout::{self, Weights};
use vramplan_formats::parallel::run_bounded;
use vramplan_formats::safetensors::{parse_index, MAX_INDEX_BYTES};
use vramplan_formats::{
    attach_config, config_only_model, hf_config::MAX_CONFIG_BYTES,
    hf_config::MAX_QUANT_CONFIG_BYTES, read_gguf_files, read_safetensors_files, ByteSource,
    FormatError, IndexFile, ModelFile, Origin, QuantFile, MAX_PARALLEL_READS,
};

use crate::cache::{escape, Cache};
use crate::client::{show, Client, GetError, StatusError, Want};
use crate::error::{HubError, Kind};
use crate::settings::Settings;
use crate::source::HttpObject;

/// The API's answer for a repository is its file list: a few hundred KB for the largest.
pub const MAX_INFO_BYTES: u64 = 32 * 1024 * 1024;
/// Files of a repository kept from its listing.
pub const MAX_FILES: usize = 100_000;
/// Longest file path kept from a listing.
const MAX_PATH: usize = 1024;
/// Longest revision name (a branch, a tag or `refs/pr/N`).
const MAX_REVISION: usize = 256;

/// `ORG/NAME[@REVISION][:TAG]`, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    pub repo: String,
    pub revision: Option<String>,
    /// A GGUF quantization tag (llama.cpp's `-hf ORG/NAME:Q4_K_M`).
    pub tag: Option<String>,
}

impl RepoRef {
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

/// One part of a repo id, as huggingface_hub's `validate_repo_id` allows it
/// (`utils/_validators.py`): `[A-Za-z0-9_.-]`, 1 to 96 characters, not starting or ending with
/// `-` or `.`, no `--` or `..`, not ending in `.git`.
fn repo_part_ok(p: &str) -> bool {
    let b = p.as_bytes();
    (1..=96).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        && !matches!(b[0], b'-' | b'.')
        && !matches!(b[b.len() - 1], b'-' | b'.')
        && !p.contains("--")
        && !p.contains("..")
        && !p.ends_with(".git")
}

fn revision_ok(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= MAX_REVISION
        && r.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/'))
        && !r.split('/').any(|s| s.is_empty() || s == "." || s == "..")
}

fn tag_ok(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// Parses `ORG/NAME`, `ORG/NAME@REVISION`, `ORG/NAME:TAG`, `ORG/NAME@REVISION:TAG`, with an
/// optional `hf://`, `hf.co/`, `huggingface.co/` or `https://huggingface.co/` in front. `None`
/// for anything else (a path, an ollama name, a catalogue name).
pub fn parse_repo_ref(s: &str) -> Option<RepoRef> {
    let s = s.trim();
    let s = [
        "hf://",
        "https://huggingface.co/",
        "huggingface.co/",
        "hf.co/",
    ]
    .iter()
    .find_map(|p| s.strip_prefix(p))
    .unwrap_or(s);
    let (rest, tag) = match s.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') && !t.contains('@') => (r, Some(t)),
        Some(_) => return None,
        None => (s, None),
    };
    let (repo, revision) = match rest.split_once('@') {
        Some((r, v)) => (r, Some(v)),
        None => (rest, None),
    };
    let (org, name) = repo.split_once('/')?;
    if !repo_part_ok(org) || !repo_part_ok(name) {
        return None;
    }
    if revision.is_some_and(|r| !revision_ok(r)) || tag.is_some_and(|t| !tag_ok(t)) {
        return None;
    }
    Some(RepoRef {
        repo: repo.to_string(),
        revision: revision.map(str::to_string),
        tag: tag.map(str::to_string),
    })
}

/// One file of a repository's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sibling {
    pub name: String,
    pub size: Option<u64>,
}

/// A repository at one commit.
#[derive(Debug, Clone)]
pub struct RepoInfo {
    pub commit: String,
    pub files: Vec<Sibling>,
    /// `gated`: false, or "auto" / "manual".
    pub gated: Option<String>,
}

impl RepoInfo {
    pub fn file(&self, name: &str) -> Option<&Sibling> {
        self.files.iter().find(|f| f.name == name)
    }

    fn names(&self) -> Vec<String> {
        self.files.iter().map(|f| f.name.clone()).collect()
    }
}

/// A file path from a listing that is safe to put in a URL and a cache name.
fn path_ok(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_PATH
        && !p.starts_with('/')
        && !p.contains('\\')
        && !p.chars().any(char::is_control)
        && !p.split('/').any(|s| s.is_empty() || s == "." || s == "..")
}

/// The API's JSON → the commit and the files (paths that are not safe are left out).
pub fn parse_info(bytes: &[u8], repo: &str) -> Result<RepoInfo, HubError> {
    let bad = |why: &str| {
        HubError::new(
            Kind::Server,
            format!("{repo}: the Hub's answer about the repository {why}"),
        )
    };
    let root: Value = serde_json::from_slice(bytes).map_err(|_| bad("is not JSON"))?;
    let commit = root
        .get("sha")
        .and_then(Value::as_str)
        .filter(|s| (7..=64).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| bad("has no commit sha"))?
        .to_ascii_lowercase();
    let siblings = root
        .get("siblings")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("has no file list (siblings)"))?;
    if siblings.len() > MAX_FILES {
        return Err(bad(&format!(
            "lists {} files, above the limit of {MAX_FILES}",
            siblings.len()
        )));
    }
    let files = siblings
        .iter()
        .filter_map(|s| {
            let name = s.get("rfilename")?.as_str()?;
            path_ok(name).then(|| Sibling {
                name: name.to_string(),
                size: s
                    .get("lfs")
                    .and_then(|l| l.get("size"))
                    .and_then(Value::as_u64)
                    .or_else(|| s.get("size").and_then(Value::as_u64)),
            })
        })
        .collect();
    let gated = match root.get("gated") {
        Some(Value::String(g)) => Some(g.clone()),
        _ => None,
    };
    Ok(RepoInfo {
        commit,
        files,
        gated,
    })
}

/// The quantization a GGUF file's name states: llama.cpp's `get_gguf_split_info` (the last
/// `-` or `.`-separated word of the name, without `.gguf` and the split suffix, upper-cased).
pub fn gguf_quant_tag(path: &str) -> Option<String> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file
        .get(..file.len().checked_sub(5)?)
        .filter(|_| file.to_ascii_lowercase().ends_with(".gguf"))?;
    let stem = match split_name_parts(file) {
        Some((prefix, _, _)) => prefix,
        None => stem,
    };
    let at = stem.rfind(['-', '.'])?;
    let tag = &stem[at + 1..];
    (!tag.is_empty() && tag.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'))
        .then(|| tag.to_ascii_uppercase())
}

/// llama.cpp's `find_best_model` for a given tag: the first model file (in listing order) whose
/// path holds the tag followed by `.` or `-` (case-insensitive), the first part of a split set.
pub fn find_gguf_by_tag<'a>(names: &'a [String], tag: &str) -> Option<&'a String> {
    let needle = tag.to_ascii_lowercase();
    names.iter().find(|n| {
        if !layout::gguf_is_model(n) {
            return false;
        }
        let file = n.rsplit('/').next().unwrap_or(n);
        if matches!(split_name_parts(file), Some((_, part, _)) if part != 1) {
            return false;
        }
        let lower = n.to_ascii_lowercase();
        lower.match_indices(&needle).any(|(i, _)| {
            matches!(
                lower.as_bytes().get(i + needle.len()),
                Some(b'.') | Some(b'-')
            )
        })
    })
}

/// A GGUF model of a repository, for listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GgufFile {
    /// The file (a split set's first part).
    pub file: String,
    /// The quantization its name states.
    pub quant: Option<String>,
    /// Files in its split set (1 when not split).
    pub parts: u32,
    /// Its size (all parts), when the listing gave it.
    pub bytes: Option<u64>,
}

/// How many objects to read at once: over the network all of them (a round trip each), from
/// the cache one at a time. A cached header is a local read of a few KiB, and the threads cost
/// more than they save: a cached 30-shard estimate spent two thirds of its 32 ms in the kernel
/// (thread stacks, per-thread malloc arenas, TLB shootdowns on their unmapping).
fn parallel<'a, 'c: 'a>(objects: impl IntoIterator<Item = &'a HttpObject<'c>>) -> usize {
    if objects.into_iter().all(HttpObject::is_cached) {
        1
    } else {
        MAX_PARALLEL_READS
    }
}

fn split_parts(name: &str) -> Vec<String> {
    let (dir, file) = match name.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), name),
    };
    match split_name_parts(file) {
        Some((prefix, _, count)) => (1..=count)
            .map(|i| format!("{dir}{}", split_part_name(prefix, i, count)))
            .collect(),
        None => vec![name.to_string()],
    }
}

/// The GGUF models of a listing, with their quantization and size.
pub fn gguf_files(info: &RepoInfo) -> Vec<GgufFile> {
    let names = info.names();
    let mut models = layout::gguf_models(&names);
    models.sort();
    models
        .into_iter()
        .map(|file| {
            let parts = split_parts(&file);
            let bytes = parts
                .iter()
                .map(|p| info.file(p).and_then(|s| s.size))
                .sum::<Option<u64>>();
            GgufFile {
                quant: gguf_quant_tag(&file),
                parts: parts.len() as u32,
                bytes,
                file,
            }
        })
        .collect()
}

/// What a repository gave.
pub enum Found {
    Model(Box<ModelFile>),
    /// A repository of several GGUF models and nothing to choose one by (`inspect` lists them).
    GgufFiles {
        repo: String,
        files: Vec<GgufFile>,
    },
}

/// A repository being read: the endpoint, the client, the cache, and its listing.
struct Repo<'a> {
    settings: &'a Settings,
    client: &'a Client,
    cache: Option<Cache>,
    reference: &'a RepoRef,
    info: RepoInfo,
    notes: Vec<String>,
}

/// `{endpoint}/seg/seg/...`, each segment percent-escaped.
fn endpoint_url(endpoint: &Url, segments: &[&str]) -> Url {
    let mut url = endpoint.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    url
}

/// The repository's page, where a gated model's licence is accepted.
pub fn repo_page(endpoint: &Url, repo: &str) -> String {
    let (org, name) = repo.split_once('/').unwrap_or((repo, ""));
    endpoint_url(endpoint, &[org, name]).to_string()
}

/// A failed GET in a repository's terms: not found, gated, private, or the server's fault.
fn explain(settings: &Settings, repo: &str, what: &str, e: GetError) -> HubError {
    let s = match e {
        GetError::Other(h) => return h,
        GetError::Status(s) => s,
    };
    let StatusError {
        status,
        error_code,
        error_message,
        url,
    } = *s;
    let code = error_code.as_deref().unwrap_or("");
    let page = repo_page(&settings.endpoint, repo);
    let token = match &settings.token {
        Some((_, source)) => format!("the token from {source} does not give access to it"),
        None => "no token was given".to_string(),
    };
    let detail = error_message
        .as_deref()
        .map(|m| format!(" (the Hub says: {m})"))
        .unwrap_or_default();
    match (status, code) {
        (401 | 403, "GatedRepo") => HubError::new(
            Kind::Denied,
            format!(
                "{repo} is a gated model and {token} (HTTP {status}): accept its licence at {page} while logged in, then set HF_TOKEN to a token of that account (or run `hf auth login`){detail}"
            ),
        ),
        (401 | 403, _) if error_message.as_deref() == Some("Invalid credentials in Authorization header") => {
            HubError::new(
                Kind::Denied,
                format!("{repo}: the Hub refused the token as invalid (HTTP {status}); set HF_TOKEN to a valid token from https://huggingface.co/settings/tokens"),
            )
        }
        (401 | 403, _) => HubError::new(
            Kind::Denied,
            format!(
                "{repo}: HTTP {status} for {what}: the repository is private or gated, or does not exist, and {token}; check the name, accept the licence at {page}, and set HF_TOKEN{detail}"
            ),
        ),
        (404, "RevisionNotFound") => HubError::new(
            Kind::NotFound,
            format!("{repo} has no {what} (HTTP 404)"),
        ),
        (404, "EntryNotFound") => HubError::new(
            Kind::NotFound,
            format!("{repo} has no file {what} (HTTP 404)"),
        ),
        (404, _) => HubError::new(
            Kind::NotFound,
            format!(
                "{repo} is not a model on {} (HTTP 404)",
                settings.endpoint.host_str().unwrap_or("the Hub")
            ),
        ),
        _ => HubError::new(
            Kind::Server,
            format!("{repo}: HTTP {status} for {what} from {}{detail}", show(&url)),
        ),
    }
}

/// The repository's listing at the revision: from the API (the revision check), or with
/// `--offline` from the cache. The answer is cached by commit.
fn repo_info(
    settings: &Settings,
    client: &Client,
    cache: Option<&Cache>,
    r: &RepoRef,
) -> Result<RepoInfo, HubError> {
    let dir = cache.map(|c| c.hub_repo(&settings.endpoint, &r.repo));
    let cached_at = |commit: &str| -> Option<RepoInfo> {
        let (cache, dir) = (cache?, dir.as_ref()?);
        let bytes = cache.read(&dir.join(escape(commit)).join("info.json"), MAX_INFO_BYTES)?;
        parse_info(&bytes, &r.repo).ok()
    };
    let full_sha = |s: &str| s.len() == 40 && s.bytes().all(|c| c.is_ascii_hexdigit());
    // A commit names immutable content: its listing never needs asking again.
    if !settings.refresh && full_sha(r.revision()) {
        if let Some(info) = cached_at(&r.revision().to_ascii_lowercase()) {
            return Ok(info);
        }
    }
    if settings.offline {
        let commit = cache
            .zip(dir.as_ref())
            .and_then(|(c, d)| c.read(&d.join("refs").join(escape(r.revision())), 1024))
            .and_then(|b| String::from_utf8(b).ok())
            .map(|s| s.trim().to_string());
        return commit
            .as_deref()
            .and_then(cached_at)
            .ok_or_else(|| {
                HubError::new(
                    Kind::NotCached,
                    format!(
                        "{}@{} is not in the cache and --offline (or HF_HUB_OFFLINE=1) forbids the network: run once online to cache its headers",
                        r.repo,
                        r.revision()
                    ),
                )
            });
    }
    let (org, name) = r.repo.split_once('/').unwrap_or((&r.repo, ""));
    let mut url = endpoint_url(
        &settings.endpoint,
        &["api", "models", org, name, "revision", r.revision()],
    );
    url.set_query(Some("blobs=true"));
    let reply = client
        .get(
            &url,
            Want::All {
                cap: MAX_INFO_BYTES,
            },
            Some("application/json"),
        )
        .map_err(|e| {
            explain(
                settings,
                &r.repo,
                &format!("revision '{}'", r.revision()),
                e,
            )
        })?;
    let info = parse_info(&reply.body, &r.repo)?;
    if let (Some(cache), Some(dir)) = (cache, dir.as_ref()) {
        // A failure to cache is not an error: the answer stands. What is there already (the
        // revision check of a cached model) is not written again.
        let info_path = dir.join(escape(&info.commit)).join("info.json");
        if cache.read(&info_path, MAX_INFO_BYTES).as_deref() != Some(&reply.body[..]) {
            let _ = cache.write(&info_path, &reply.body);
        }
        let ref_path = dir.join("refs").join(escape(r.revision()));
        if cache.read(&ref_path, 1024).as_deref() != Some(info.commit.as_bytes()) {
            let _ = cache.write(&ref_path, info.commit.as_bytes());
        }
    }
    Ok(info)
}

impl<'a> Repo<'a> {
    fn object(&self, file: &str) -> HttpObject<'a> {
        let (org, name) = self
            .reference
            .repo
            .split_once('/')
            .unwrap_or((&self.reference.repo, ""));
        let mut segments = vec![org, name, "resolve", self.info.commit.as_str()];
        segments.extend(file.split('/'));
        let url = endpoint_url(&self.settings.endpoint, &segments);
        let size = self.info.file(file).and_then(|s| s.size);
        let object = HttpObject::new(
            self.client,
            url,
            format!("{}/{file}", self.reference.repo),
            size,
        );
        match &self.cache {
            Some(cache) => {
                let path = cache
                    .hub_repo(&self.settings.endpoint, &self.reference.repo)
                    .join(escape(&self.info.commit))
                    .join(format!("{}.bytes", escape(file)));
                object.with_cache(cache.clone(), path, self.settings.refresh)
            }
            None => object,
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        PathBuf::from(format!("{}/{file}", self.reference.repo))
    }

    fn explain(&self, what: &str, e: GetError) -> HubError {
        explain(self.settings, &self.reference.repo, what, e)
    }

    /// A reader's error, or the network error behind it.
    fn reader_failure(&self, e: FormatError, objects: &[HttpObject<'_>]) -> HubError {
        for o in objects {
            if let Some(net) = o.take_error() {
                return self.explain(o.name(), net);
            }
        }
        e.into()
    }

    fn persist(&mut self, objects: &[&HttpObject<'_>]) {
        for o in objects {
            if let Err(e) = o.persist() {
                self.notes.push(format!("could not write the cache: {e}"));
                break;
            }
        }
    }

    fn finish(&self, mut m: ModelFile) -> ModelFile {
        m.origin = Origin::Hub {
            repo: self.reference.repo.clone(),
            revision: self.reference.revision().to_string(),
            commit: self.info.commit.clone(),
        };
        m.name = Some(self.reference.repo.clone());
        m.notes.extend(self.notes.iter().cloned());
        m
    }

    fn safetensors(&mut self, target: &str, weights: Weights) -> Result<ModelFile, HubError> {
        let names = self.info.names();
        let has_config = self.info.file(layout::CONFIG).is_some();
        let config = has_config.then(|| self.object(layout::CONFIG));
        let quant_name = self.quant_config_name();
        let quant = quant_name.map(|n| self.object(n));
        let (index_name, shards_listed): (Option<String>, Vec<String>) = match &weights {
            Weights::Index(i) => (Some(i.clone()), Vec::new()),
            Weights::Safetensors { files, .. } => (None, files.clone()),
            _ => (None, Vec::new()),
        };
        let index = index_name.as_deref().map(|i| self.object(i));
        // The index's shards are not known before it is read: start the files that look like
        // them (`STEM-00001-of-00030.safetensors` for `STEM.safetensors.index.json`) with it.
        let guessed: Vec<String> = match &index_name {
            Some(i) => {
                let stem = i.strip_suffix(".safetensors.index.json").unwrap_or(i);
                names
                    .iter()
                    .filter(|n| {
                        n.strip_prefix(stem)
                            .and_then(|r| r.strip_prefix('-'))
                            .is_some_and(|r| r.ends_with(".safetensors") && r.contains("-of-"))
                    })
                    .cloned()
                    .collect()
            }
            None => shards_listed.clone(),
        };
        let early: Vec<HttpObject<'_>> = guessed.iter().map(|n| self.object(n)).collect();
        // Round trip 2: config, quantization file, index and shard starts at once.
        let jobs = 3 + early.len();
        let at_once = parallel(config.iter().chain(&index).chain(&quant).chain(&early));
        let results = run_bounded(jobs, at_once, &|i| match i {
            0 => config
                .as_ref()
                .map(|c| c.whole(MAX_CONFIG_BYTES).map(Some))
                .unwrap_or(Ok(None)),
            1 => index
                .as_ref()
                .map(|c| c.whole(MAX_INDEX_BYTES).map(Some))
                .unwrap_or(Ok(None)),
            2 => quant
                .as_ref()
                .map(|c| c.whole(MAX_QUANT_CONFIG_BYTES).map(Some))
                .unwrap_or(Ok(None)),
            i => early[i - 3].prefetch().map(|()| None),
        });
        let mut results = results.into_iter();
        let config_bytes = results
            .next()
            .transpose()
            .map_err(|e| self.explain(layout::CONFIG, e))?
            .flatten();
        let index_bytes = results
            .next()
            .transpose()
            .map_err(|e| self.explain(index_name.as_deref().unwrap_or("the index"), e))?
            .flatten();
        let quant_bytes = results
            .next()
            .transpose()
            .map_err(|e| self.explain(quant_name.unwrap_or("the quantization file"), e))?
            .flatten();
        for (r, o) in results.zip(&early) {
            if let Err(e) = r {
                return Err(self.explain(o.name(), e));
            }
        }
        let (shards, parsed) = match (&index_name, &index_bytes) {
            (Some(i), Some(bytes)) => {
                let parsed = parse_index(
                    bytes,
                    std::path::Path::new(""),
                    &format!("{}/{i}", self.reference.repo),
                )?;
                let shards: Vec<String> = parsed
                    .shards
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                (shards, Some(parsed))
            }
            _ => (shards_listed, None),
        };
        for s in &shards {
            if self.info.file(s).is_none() {
                return Err(HubError::new(
                    Kind::Format,
                    format!(
                        "{}/{}: names the shard {s}, which the repository does not have",
                        self.reference.repo,
                        index_name.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
        // The shards, reusing what round trip 2 started.
        let mut early: Vec<Option<HttpObject<'_>>> = early.into_iter().map(Some).collect();
        let objects: Vec<HttpObject<'_>> = shards
            .iter()
            .map(|s| {
                guessed
                    .iter()
                    .position(|g| g == s)
                    .and_then(|at| early[at].take())
                    .unwrap_or_else(|| self.object(s))
            })
            .collect();
        let paths: Vec<PathBuf> = shards.iter().map(|s| self.path(s)).collect();
        let open = |i: usize| -> Result<Box<dyn ByteSource + Send + '_>, FormatError> {
            Ok(Box::new(&objects[i]))
        };
        let index_file = match (&parsed, &index_name, &index_bytes) {
            (Some(p), Some(name), Some(bytes)) => Some(IndexFile {
                index: p,
                path: self.path(name),
                len: bytes.len() as u64,
            }),
            _ => None,
        };
        let mut m = read_safetensors_files(target, &paths, &open, index_file, parallel(&objects))
            .map_err(|e| self.reader_failure(e, &objects))?;
        if let Some(bytes) = &index_bytes {
            m.header_bytes_read = m.header_bytes_read.saturating_add(bytes.len() as u64);
        }
        if let Weights::Safetensors { files, skipped } = &weights {
            m.notes.extend(layout::safetensors_note(
                files.len(),
                *skipped,
                "repository",
            ));
        }
        let quant_path = quant_name.map(|n| self.path(n));
        let quant_file = quant_file(quant_name, &quant_path, &quant_bytes);
        match &config_bytes {
            Some(bytes) => attach_config(&mut m, bytes, self.path(layout::CONFIG), quant_file),
            None => m
                .notes
                .push("no config.json in the repository: architecture fields unknown".to_string()),
        }
        let mut keep: Vec<&HttpObject<'_>> = objects.iter().collect();
        keep.extend(config.iter());
        keep.extend(index.iter());
        keep.extend(quant.iter());
        self.persist(&keep);
        Ok(self.finish(m))
    }

    fn gguf(&mut self, target: &str, file: &str) -> Result<ModelFile, HubError> {
        let parts = split_parts(file);
        for p in &parts {
            if self.info.file(p).is_none() {
                return Err(HubError::new(
                    Kind::NotFound,
                    format!(
                        "{}: split part {p} of {file} is not in the repository",
                        self.reference.repo
                    ),
                ));
            }
        }
        let objects: Vec<HttpObject<'_>> = parts.iter().map(|p| self.object(p)).collect();
        let paths: Vec<PathBuf> = parts.iter().map(|p| self.path(p)).collect();
        let open = |i: usize| -> Result<Box<dyn ByteSource + Send + '_>, FormatError> {
            Ok(Box::new(&objects[i]))
        };
        let m = read_gguf_files(target, &paths, &open, parallel(&objects))
            .map_err(|e| self.reader_failure(e, &objects))?;
        let keep: Vec<&HttpObject<'_>> = objects.iter().collect();
        self.persist(&keep);
        Ok(self.finish(m))
    }

    /// The repository's quantization file beside config.json, by the folders' rule.
    fn quant_config_name(&self) -> Option<&'static str> {
        layout::quant_config(|n| self.info.file(n).is_some())
    }

    fn config_only(&mut self, target: &str, note: String) -> Result<ModelFile, HubError> {
        let config = self.object(layout::CONFIG);
        let quant_name = self.quant_config_name();
        let quant = quant_name.map(|n| self.object(n));
        // One round trip for both.
        let at_once = parallel(std::iter::once(&config).chain(&quant));
        let mut results = run_bounded(2, at_once, &|i| match (i, &quant) {
            (0, _) => config.whole(MAX_CONFIG_BYTES).map(Some),
            (_, Some(q)) => q.whole(MAX_QUANT_CONFIG_BYTES).map(Some),
            (_, None) => Ok(None),
        })
        .into_iter();
        let bytes = results
            .next()
            .transpose()
            .map_err(|e| self.explain(layout::CONFIG, e))?
            .flatten()
            .unwrap_or_default();
        let quant_bytes = results
            .next()
            .transpose()
            .map_err(|e| self.explain(quant_name.unwrap_or("the quantization file"), e))?
            .flatten();
        let quant_path = quant_name.map(|n| self.path(n));
        let quant_file = quant_file(quant_name, &quant_path, &quant_bytes);
        let mut m = config_only_model(target, &bytes, self.path(layout::CONFIG), quant_file)?;
        m.warnings.push(note);
        let mut keep = vec![&config];
        keep.extend(quant.iter());
        self.persist(&keep);
        Ok(self.finish(m))
    }
}

/// The quantization file read beside config.json, when the repository has one.
fn quant_file<'a>(
    name: Option<&'a str>,
    path: &'a Option<PathBuf>,
    bytes: &'a Option<Vec<u8>>,
) -> Option<QuantFile<'a>> {
    match (name, path, bytes) {
        (Some(name), Some(path), Some(bytes)) => Some(QuantFile { name, path, bytes }),
        _ => None,
    }
}

/// Reads a Hub model: its listing, then the files that hold it (see the module). `file` is
/// `--file`; with `list_gguf`, a repository of several GGUF models and no tag gives the list
/// rather than an error.
pub fn fetch(
    settings: &Settings,
    client: &Client,
    target: &str,
    r: &RepoRef,
    file: Option<&str>,
    list_gguf: bool,
) -> Result<Found, HubError> {
    let cache = settings.cache_dir.clone().map(Cache::new);
    let info = repo_info(settings, client, cache.as_ref(), r)?;
    let mut repo = Repo {
        settings,
        client,
        cache,
        reference: r,
        info,
        notes: Vec::new(),
    };
    let names = repo.info.names();
    // --file and :TAG pick a GGUF file as llama.cpp's --hf-file and -hf do.
    if let Some(f) = file {
        let found = names.iter().find(|n| n.eq_ignore_ascii_case(f)).cloned();
        let Some(found) = found else {
            return Err(HubError::new(
                Kind::NotFound,
                format!(
                    "{}: no file '{f}' in the repository{}",
                    r.repo,
                    list_clause(&repo.info)
                ),
            ));
        };
        if found.to_ascii_lowercase().ends_with(".gguf") {
            return repo.gguf(target, &found).map(|m| Found::Model(Box::new(m)));
        }
        if found.to_ascii_lowercase().ends_with(".safetensors") {
            return repo
                .safetensors(
                    target,
                    Weights::Safetensors {
                        files: vec![found],
                        skipped: 0,
                    },
                )
                .map(|m| Found::Model(Box::new(m)));
        }
        return Err(HubError::new(
            Kind::Input,
            format!(
                "{}: --file {f} is neither a .gguf nor a .safetensors file",
                r.repo
            ),
        ));
    }
    if let Some(tag) = &r.tag {
        return match find_gguf_by_tag(&names, tag) {
            Some(found) => {
                let found = found.clone();
                repo.gguf(target, &found).map(|m| Found::Model(Box::new(m)))
            }
            None => Err(HubError::new(
                Kind::NotFound,
                format!(
                    "{}: no GGUF file for the tag '{tag}'{}",
                    r.repo,
                    list_clause(&repo.info)
                ),
            )),
        };
    }
    let weights = layout::choose(&names);
    let m = match weights {
        Weights::Index(_) | Weights::Safetensors { .. } => repo.safetensors(target, weights)?,
        Weights::Gguf(models) => match models.as_slice() {
            [one] => repo.gguf(target, one)?,
            _ if list_gguf => {
                return Ok(Found::GgufFiles {
                    repo: r.repo.clone(),
                    files: gguf_files(&repo.info),
                })
            }
            _ => {
                return Err(HubError::new(
                    Kind::Input,
                    format!(
                        "{} holds {} GGUF models{}; pick one with {}:TAG (llama.cpp's -hf convention, e.g. :{}) or --file NAME",
                        r.repo,
                        models.len(),
                        list_clause(&repo.info),
                        r.repo,
                        gguf_files(&repo.info)
                            .iter()
                            .find_map(|g| g.quant.clone())
                            .unwrap_or_else(|| "Q4_K_M".to_string())
                    ),
                ))
            }
        },
        Weights::PickleOnly(files) => repo.config_only(target, layout::pickle_note(&files))?,
        Weights::ConfigOnly => repo.config_only(target, layout::NO_WEIGHTS_NOTE.to_string())?,
        Weights::Nothing => {
            return Err(HubError::new(
                Kind::NotFound,
                format!(
                    "{} has no config.json, safetensors or GGUF file: not a model vramplan can size",
                    r.repo
                ),
            ))
        }
    };
    Ok(Found::Model(Box::new(m)))
}

/// ": a.gguf (Q4_K_M, 4.92 GB (4.58 GiB)), b.gguf (Q8_0, …), …" for messages.
fn list_clause(info: &RepoInfo) -> String {
    let files = gguf_files(info);
    if files.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = files
        .iter()
        .take(8)
        .map(|g| {
            let mut bits = Vec::new();
            if let Some(q) = &g.quant {
                bits.push(q.clone());
            }
            if g.parts > 1 {
                bits.push(format!("{} parts", g.parts));
            }
            if let Some(b) = g.bytes {
                bits.push(vramplan_core::units::size(b));
            }
            format!("{} ({})", g.file, bits.join(", "))
        })
        .collect();
    format!(
        ": {}{}",
        shown.join(", "),
        if files.len() > 8 { ", ..." } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_references() {
        let r = parse_repo_ref("Qwen/Qwen3-Next-80B-A3B-Instruct").unwrap();
        assert_eq!(
            (r.repo.as_str(), r.revision(), r.tag.as_deref()),
            ("Qwen/Qwen3-Next-80B-A3B-Instruct", "main", None)
        );
        let r = parse_repo_ref("hf.co/bartowski/Llama-3.1-8B-GGUF@refs/pr/3:q4_k_m").unwrap();
        assert_eq!(r.repo, "bartowski/Llama-3.1-8B-GGUF");
        assert_eq!(r.revision.as_deref(), Some("refs/pr/3"));
        assert_eq!(r.tag.as_deref(), Some("q4_k_m"));
        for bad in [
            "llama3.1:8b",
            "./a/b",
            "a/b/c",
            "../x/y",
            "a--b/c",
            "org/x.git",
            "a/b@../x",
            "/a/b",
            "a/-b",
        ] {
            assert_eq!(parse_repo_ref(bad), None, "{bad}");
        }
    }

    #[test]
    fn gguf_tags_as_llama_cpp_matches_them() {
        assert_eq!(
            gguf_quant_tag("Llama-3.1-8B-Instruct-Q4_K_M.gguf").as_deref(),
            Some("Q4_K_M")
        );
        assert_eq!(gguf_quant_tag("m.q8_0.gguf").as_deref(), Some("Q8_0"));
        assert_eq!(
            gguf_quant_tag("Q4_K_M/Big-Q4_K_M-00001-of-00002.gguf").as_deref(),
            Some("Q4_K_M")
        );
        let names: Vec<String> = [
            "mmproj-Q4_K_M.gguf",
            "m-Q4_K_S.gguf",
            "m-Q4_K_M-00002-of-00002.gguf",
            "m-Q4_K_M-00001-of-00002.gguf",
            "m-Q8_0.gguf",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            find_gguf_by_tag(&names, "q4_k_m").map(String::as_str),
            Some("m-Q4_K_M-00001-of-00002.gguf")
        );
        assert_eq!(find_gguf_by_tag(&names, "Q4_K").map(String::as_str), None);
        assert_eq!(
            find_gguf_by_tag(&names, "Q8_0").map(String::as_str),
            Some("m-Q8_0.gguf")
        );
    }

    #[test]
    fn unsafe_paths_are_dropped_from_listings() {
        let info = parse_info(
            br#"{"sha":"0123456789abcdef0123456789abcdef01234567","siblings":[{"rfilename":"config.json"},{"rfilename":"../../etc/passwd"},{"rfilename":"/abs"},{"rfilename":"a//b"},{"rfilename":"x.safetensors","size":10,"lfs":{"size":99}}]}"#,
            "o/n",
        )
        .unwrap();
        let names: Vec<&str> = info.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["config.json", "x.safetensors"]);
        assert_eq!(info.file("x.safetensors").unwrap().size, Some(99));
    }
}
