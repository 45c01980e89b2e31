//! A model in the ollama registry, sized from its GGUF blob's header.
//!
//! The registry's routes are a Docker registry's (ollama server/images.go `pullModelManifest`,
//! server/download.go `downloadBlob`, ollama/ollama at 01ca4ec):
//! - `GET {registry}/v2/{namespace}/{model}/manifests/{tag}` with
//!   `Accept: application/vnd.docker.distribution.manifest.v2+json`: the manifest, whose layer
//!   of mediaType `application/vnd.ollama.image.model` is the GGUF weights (and
//!   `application/vnd.ollama.image.projector` a vision projector);
//! - `GET {registry}/v2/{namespace}/{model}/blobs/{digest}`: the blob, which the registry
//!   redirects (307) to a CDN that takes `Range` (ollama resolves the redirect once, then
//!   downloads ranges of the direct URL without its registry credentials).
//!
//! Blobs are named by their digest, so their cached bytes never go stale; the manifest GET is
//! the revision check.

use std::path::PathBuf;

use url::Url;
use vramplan_formats::stores::{
    digest_hex, manifest_model, OllamaName, MAX_MANIFEST_BYTES, OLLAMA_DEFAULT_HOST,
};
use vramplan_formats::{read_gguf_files, ByteSource, FormatError, ModelFile, Origin};

use crate::cache::{escape, Cache};
use crate::client::{show, Client, GetError, Want};
use crate::error::{HubError, Kind};
use crate::settings::Settings;
use crate::source::HttpObject;

/// The Accept header ollama sends for a manifest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The registry a name is fetched from: the configured one for `registry.ollama.ai`, else the
/// name's own host over HTTPS (refused when `other_registries` is off, as in the web server).
pub fn registry_for(settings: &Settings, name: &OllamaName) -> Result<Url, HubError> {
    if name.host == OLLAMA_DEFAULT_HOST {
        return Ok(settings.ollama_registry.clone());
    }
    if !settings.other_registries {
        return Err(HubError::new(
            Kind::Input,
            format!(
                "{}: only models of {OLLAMA_DEFAULT_HOST} are fetched here, not of {}",
                name.display_name(),
                name.host
            ),
        ));
    }
    Url::parse(&format!("https://{}", name.host)).map_err(|_| {
        HubError::new(
            Kind::Input,
            format!(
                "{}: '{}' is not a registry host",
                name.display_name(),
                name.host
            ),
        )
    })
}

fn url_of(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    url
}

fn explain(name: &str, registry: &Url, e: GetError) -> HubError {
    match e {
        GetError::Other(h) => h,
        GetError::Status(s) if s.status == 404 => HubError::new(
            Kind::NotFound,
            format!(
                "ollama model {name} is not in the registry {} (HTTP 404)",
                registry.host_str().unwrap_or("?")
            ),
        ),
        GetError::Status(s) if matches!(s.status, 401 | 403) => HubError::new(
            Kind::Denied,
            format!(
                "ollama model {name}: the registry refused access (HTTP {}); private models are not supported",
                s.status
            ),
        ),
        GetError::Status(s) => HubError::new(
            Kind::Server,
            format!("ollama model {name}: HTTP {} from {}", s.status, show(&s.url)),
        ),
    }
}

/// Reads an ollama model from its registry: the manifest, then the model blob's GGUF header.
pub fn fetch(
    settings: &Settings,
    client: &Client,
    target: &str,
    name: &OllamaName,
) -> Result<ModelFile, HubError> {
    let shown = name.display_name();
    let registry = registry_for(settings, name)?;
    let cache = settings.cache_dir.clone().map(Cache::new);
    let manifest_path = cache.as_ref().map(|c| {
        c.registry(&registry)
            .join(escape(&name.namespace))
            .join(escape(&name.model))
            .join(format!("{}.json", escape(&name.tag)))
    });
    let manifest_url = url_of(
        &registry,
        &["v2", &name.namespace, &name.model, "manifests", &name.tag],
    );
    let bytes = if settings.offline {
        cache
            .as_ref()
            .zip(manifest_path.as_ref())
            .and_then(|(c, p)| c.read(p, MAX_MANIFEST_BYTES))
            .ok_or_else(|| {
                HubError::new(
                    Kind::NotCached,
                    format!(
                        "ollama model {shown} is not in the cache and --offline (or HF_HUB_OFFLINE=1) forbids the network: run once online to cache its header"
                    ),
                )
            })?
    } else {
        let reply = client
            .get(
                &manifest_url,
                Want::All {
                    cap: MAX_MANIFEST_BYTES,
                },
                Some(MANIFEST_ACCEPT),
            )
            .map_err(|e| explain(&shown, &registry, e))?;
        reply.body
    };
    let manifest_name = format!("{shown} manifest");
    let root: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| HubError::new(Kind::Format, format!("{manifest_name}: invalid JSON: {e}")))?;
    let layers = manifest_model(&root, &manifest_name)?;
    let digest = layers.model.digest.clone();
    let hex = digest_hex(&digest).unwrap_or_default().to_ascii_lowercase();
    let blob_url = url_of(
        &registry,
        &["v2", &name.namespace, &name.model, "blobs", &digest],
    );
    let mut object = HttpObject::new(
        client,
        blob_url,
        format!("{shown} (blob {})", &hex[..12.min(hex.len())]),
        layers.model.size,
    );
    if let Some(c) = &cache {
        let path = c
            .registry(&registry)
            .join("blobs")
            .join(format!("{hex}.bytes"));
        object = object.with_cache(c.clone(), path, settings.refresh);
    }
    let paths = vec![PathBuf::from(format!("{shown}/{digest}"))];
    let open = |_: usize| -> Result<Box<dyn ByteSource + Send + '_>, FormatError> {
        Ok(Box::new(&object))
    };
    let mut m =
        read_gguf_files(target, &paths, &open, 1).map_err(|e| match object.take_error() {
            Some(net) => explain(&shown, &registry, net),
            None => e.into(),
        })?;
    let mut notes = Vec::new();
    if let Err(e) = object.persist() {
        notes.push(format!("could not write the cache: {e}"));
    }
    if !settings.offline {
        if let (Some(c), Some(p)) = (&cache, &manifest_path) {
            if let Err(e) = c.write(p, &bytes) {
                notes.push(format!("could not write the cache: {e}"));
            }
        }
    }
    if !layers.projectors.is_empty() {
        m.notes.push(format!(
            "the manifest also lists {} vision projector blob(s), not counted here",
            layers.projectors.len()
        ));
    }
    m.notes.extend(notes.into_iter().take(1));
    m.name = Some(shown.clone());
    m.origin = Origin::Registry {
        name: shown,
        registry: registry.to_string(),
        digest,
    };
    Ok(m)
}
