//! Models on the Hugging Face Hub and in the ollama registry, sized from their headers before a
//! single weight is downloaded.
//!
//! The files are read by the same readers as local files (`vramplan_formats`: one GGUF reader,
//! one safetensors reader) through [`source::HttpObject`], a byte-range source over HTTP.
//! [`client`] holds the HTTP rules (limits, retries, redirects without the token), [`cache`]
//! what was fetched, [`settings`] the environment (`HF_ENDPOINT`, `HF_TOKEN`, the token file,
//! `HF_HUB_OFFLINE`), [`hf`] the Hub's routes and file choice, [`ollama`] the registry's.
//!
//! A [`Session`] is one command's network use: one client, one deadline, one byte budget.

#![forbid(unsafe_code)]

pub mod cache;
pub mod client;
pub mod error;
pub mod hf;
pub mod ollama;
pub mod settings;
pub mod source;

pub use error::{HubError, Kind};
pub use hf::{parse_repo_ref, Found, GgufFile, RepoRef};
pub use settings::Settings;

use client::{Client, Limits};
use vramplan_formats::stores::OllamaName;
use vramplan_formats::ModelFile;

/// The User-Agent of every request.
pub const USER_AGENT: &str = concat!("vramplan/", env!("CARGO_PKG_VERSION"));

/// One command's access to the Hub and the registry.
pub struct Session {
    settings: Settings,
    client: Client,
}

impl Session {
    pub fn new(settings: Settings) -> Session {
        let limits = Limits::with_deadline(settings.deadline);
        let client = Client::new(
            limits,
            settings
                .token
                .as_ref()
                .map(|(t, _)| (&settings.endpoint, t.as_str())),
            settings.offline,
            USER_AGENT,
        );
        Session { settings, client }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// HTTP exchanges made so far.
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    /// Body bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.client.bytes()
    }

    /// A Hub repository (see [`hf::fetch`]).
    pub fn hub(
        &self,
        target: &str,
        r: &RepoRef,
        file: Option<&str>,
        list_gguf: bool,
    ) -> Result<Found, HubError> {
        hf::fetch(&self.settings, &self.client, target, r, file, list_gguf)
    }

    /// An ollama registry model (see [`ollama::fetch`]).
    pub fn ollama(&self, target: &str, name: &OllamaName) -> Result<ModelFile, HubError> {
        ollama::fetch(&self.settings, &self.client, target, name)
    }
}
