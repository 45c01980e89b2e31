//! Where the Hub is, who we are to it, and whether the network may be used: from the same
//! environment variables huggingface_hub reads (`constants.py` and `utils/_auth.py`,
//! huggingface_hub 2.4.0), plus our own for the ollama registry and the cache.
//!
//! | variable | meaning |
//! |---|---|
//! | `HF_ENDPOINT` | the Hub or a mirror (default `https://huggingface.co`; a trailing `/` dropped) |
//! | `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN` | the token for gated and private repos |
//! | `HF_TOKEN_PATH`, else `$HF_HOME/token`, else `$XDG_CACHE_HOME/huggingface/token`, else `~/.cache/huggingface/token` | the file `hf auth login` writes the token to |
//! | `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) = `1`/`ON`/`YES`/`TRUE` | never use the network |
//! | `VRAMPLAN_OLLAMA_REGISTRY` | the ollama registry for `registry.ollama.ai` names (default `https://registry.ollama.ai`) |
//! | `VRAMPLAN_CACHE_DIR` | the cache (default: the user's cache directory + `vramplan`) |
//!
//! Tokens are cleaned as huggingface_hub cleans them (`_clean_token`: line breaks removed,
//! spaces trimmed, empty = none). Proxies (`ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` and their
//! lowercase forms, `NO_PROXY`) are read by the HTTP client (ureq's `Proxy::try_from_env`).

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::client::COMMAND_DEADLINE;
use crate::error::{HubError, Kind};

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
pub const DEFAULT_OLLAMA_REGISTRY: &str = "https://registry.ollama.ai";
/// A token file is a line of text.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Where a token came from, for messages (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Env(&'static str),
    File(PathBuf),
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Env(v) => write!(f, "${v}"),
            TokenSource::File(p) => write!(f, "the token file {}", p.display()),
        }
    }
}

#[derive(Clone)]
pub struct Settings {
    pub endpoint: Url,
    pub ollama_registry: Url,
    pub token: Option<(String, TokenSource)>,
    /// No network at all: answers from the cache (and the local stores) only.
    pub offline: bool,
    /// Fetch again what the cache holds.
    pub refresh: bool,
    pub cache_dir: Option<PathBuf>,
    /// All the network time one command may take.
    pub deadline: Duration,
    /// Names that carry their own registry host (`host/ns/model:tag`) may be fetched; the web
    /// server turns this off, so that a visitor can only make it fetch from the configured
    /// endpoints.
    pub other_registries: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint.as_str())
            .field("ollama_registry", &self.ollama_registry.as_str())
            .field("token", &self.token.as_ref().map(|(_, s)| s.to_string()))
            .field("offline", &self.offline)
            .field("refresh", &self.refresh)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// huggingface_hub's `_is_true`: 1, ON, YES, TRUE in any case.
fn is_true(v: Option<String>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE"))
}

/// huggingface_hub's `_clean_token`.
fn clean_token(t: &str) -> Option<String> {
    let t: String = t.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The token file huggingface_hub reads (`HF_TOKEN_PATH`, else `HF_HOME/token`).
pub fn token_path() -> Option<PathBuf> {
    if let Some(p) = var("HF_TOKEN_PATH") {
        return Some(PathBuf::from(p));
    }
    let hf_home = var("HF_HOME").map(PathBuf::from).or_else(|| {
        var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| dirs::home_dir().map(|h| h.join(".cache")))
            .map(|c| c.join("huggingface"))
    })?;
    Some(hf_home.join("token"))
}

fn read_token_file(path: &std::path::Path) -> Option<String> {
    let src = vramplan_formats::LocalFile::open(path).ok()?;
    let bytes =
        vramplan_formats::source::read_capped(&src, MAX_TOKEN_FILE_BYTES, "token file").ok()?;
    clean_token(&String::from_utf8_lossy(&bytes))
}

fn parse_base(name: &str, value: &str) -> Result<Url, HubError> {
    let trimmed = value.trim_end_matches('/');
    let url = Url::parse(trimmed)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    url.ok_or_else(|| {
        HubError::new(
            Kind::Input,
            format!("{name}='{value}' is not an http(s) URL such as {DEFAULT_ENDPOINT}"),
        )
    })
}

impl Settings {
    /// The settings the environment gives (see the module).
    pub fn from_env() -> Result<Settings, HubError> {
        let endpoint = match var("HF_ENDPOINT") {
            Some(v) => parse_base("HF_ENDPOINT", &v)?,
            None => Url::parse(DEFAULT_ENDPOINT).expect("a valid URL"),
        };
        let ollama_registry = match var("VRAMPLAN_OLLAMA_REGISTRY") {
            Some(v) => parse_base("VRAMPLAN_OLLAMA_REGISTRY", &v)?,
            None => Url::parse(DEFAULT_OLLAMA_REGISTRY).expect("a valid URL"),
        };
        let token = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]
            .iter()
            .find_map(|v| {
                var(v)
                    .and_then(|t| clean_token(&t))
                    .map(|t| (t, TokenSource::Env(v)))
            })
            .or_else(|| {
                let path = token_path()?;
                read_token_file(&path).map(|t| (t, TokenSource::File(path)))
            });
        Ok(Settings {
            endpoint,
            ollama_registry,
            token,
            offline: is_true(var("HF_HUB_OFFLINE")) || is_true(var("TRANSFORMERS_OFFLINE")),
            refresh: false,
            cache_dir: crate::cache::default_dir(),
            deadline: COMMAND_DEADLINE,
            other_registries: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_flags_are_read_as_huggingface_hub_reads_them() {
        assert_eq!(clean_token(" hf_abc\r\n").as_deref(), Some("hf_abc"));
        assert_eq!(clean_token("\n  \n"), None);
        assert!(is_true(Some("yes".into())) && is_true(Some("1".into())));
        assert!(!is_true(Some("0".into())) && !is_true(None));
        assert_eq!(
            parse_base("HF_ENDPOINT", "https://hf-mirror.com/")
                .unwrap()
                .as_str(),
            "https://hf-mirror.com/"
        );
        assert!(parse_base("HF_ENDPOINT", "file:///etc").is_err());
    }
}
