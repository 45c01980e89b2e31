//! The catalogue: models, GPUs and prices, embedded from `data/` and parsed once.
//! Each model is its own config.json (`data/catalogue/<org>/<name>/config.json`), described by
//! the one config.json mapping (`crate::arch`), plus `meta.toml` for what a config does not say
//! (names, the published parameter count, base and quantization of derived checkpoints).
//! Lookups take names as people type them (names.rs); a miss lists the three nearest entries.

use crate::gpu::{Gpu, Price};
use crate::model::{ModelDesc, QuantSpec};
use crate::precision::WeightFormat;
use serde::Deserialize;
use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/catalogue_files.rs"));
const GPU_FILE: &str = include_str!("../data/gpus.toml");
const PRICE_FILE: &str = include_str!("../data/prices.toml");

pub struct Catalogue {
    pub models: Models,
    pub gpus: Vec<Gpu>,
    pub prices: Vec<Price>,
    /// Each model's id and aliases, in the order of `models`: names are looked up without
    /// describing every entry.
    names: Vec<(String, Vec<String>)>,
}

/// The catalogue's model descriptions, described on first use. Describing the 179 entries'
/// config.json files through the mapping is most of the catalogue's cost (~10 ms of a 12 ms
/// parse, measured in release), and a command on a file or a Hub model only needs the names
/// (is the query an id or alias?) and the GPUs, a command on one catalogue name only that entry
/// (callgrind: 140 M instructions for `estimate --model llama-3.1-8b-instruct` when every entry
/// was described, 111 M of them the descriptions); a `Vec<ModelDesc>` to everything else.
pub struct Models {
    all: OnceLock<Vec<ModelDesc>>,
    /// Each entry, described alone when only it is asked for.
    entries: Vec<OnceLock<ModelDesc>>,
    /// How entry `i` is described (none when `all` was given whole).
    describe_one: Option<fn(usize) -> ModelDesc>,
}

impl Models {
    fn ready(models: Vec<ModelDesc>) -> Models {
        let all = OnceLock::new();
        let _ = all.set(models);
        Models {
            all,
            entries: Vec::new(),
            describe_one: None,
        }
    }

    /// Entry `i` (in the order of the names), described if nothing has described it yet.
    pub fn entry(&self, i: usize) -> Option<&ModelDesc> {
        if let Some(all) = self.all.get() {
            return all.get(i);
        }
        let (cell, describe) = (self.entries.get(i)?, self.describe_one?);
        Some(cell.get_or_init(|| describe(i)))
    }
}

impl std::ops::Deref for Models {
    type Target = Vec<ModelDesc>;
    fn deref(&self) -> &Vec<ModelDesc> {
        self.all.get_or_init(|| {
            (0..self.entries.len())
                .filter_map(|i| self.entry(i).cloned())
                .collect()
        })
    }
}

impl<'a> IntoIterator for &'a Models {
    type Item = &'a ModelDesc;
    type IntoIter = std::slice::Iter<'a, ModelDesc>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// `meta.toml` of a catalogue entry (data/SCHEMA.md, "catalogue/").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub family: String,
    pub config_source: String,
    #[serde(default)]
    pub config_copy: Option<String>,
    #[serde(default)]
    pub config_copy_from: Option<String>,
    #[serde(default)]
    pub base: Option<String>,
    #[serde(default)]
    pub config_from_base: bool,
    #[serde(default)]
    pub published_params: Option<u64>,
    #[serde(default)]
    pub published_params_source: Option<String>,
    #[serde(default)]
    pub nominal_params: Option<u64>,
    #[serde(default)]
    pub nominal_params_source: Option<String>,
    #[serde(default)]
    pub max_context: Option<u64>,
    #[serde(default)]
    pub max_context_source: Option<String>,
    #[serde(default)]
    pub dtype: Option<String>,
    #[serde(default)]
    pub dtype_source: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub quantization: Option<QuantSpec>,
}

#[derive(Deserialize)]
struct GpuFile {
    #[serde(default)]
    gpu: Vec<Gpu>,
}

#[derive(Deserialize)]
struct PriceFile {
    #[serde(default)]
    price: Vec<Price>,
}

/// One stored entry: its directory, meta.toml and config.json (if stored).
pub type EntryFiles<'a> = (&'a str, &'a str, Option<&'a str>);

/// Parses the embedded data. Errors name the file and entry; the catalogue tests assert none.
pub fn parse(entries: &[EntryFiles], gpus: &str, prices: &str) -> Result<Catalogue, String> {
    let metas = parse_metas(entries)?;
    let names = names_of(&metas);
    let models = describe_models(&metas)?;
    let (gpus, prices) = parse_gpus(gpus, prices)?;
    Ok(Catalogue {
        models: Models::ready(models),
        gpus,
        prices,
        names,
    })
}

type Metas<'a> = Vec<(&'a str, Meta, Option<&'a str>)>;

fn parse_metas<'a>(entries: &[EntryFiles<'a>]) -> Result<Metas<'a>, String> {
    let mut metas = Vec::with_capacity(entries.len());
    for (dir, meta, config) in entries {
        let m: Meta =
            toml::from_str(meta).map_err(|e| format!("data/catalogue/{dir}/meta.toml: {e}"))?;
        if !m.id.eq_ignore_ascii_case(dir) {
            return Err(format!(
                "data/catalogue/{dir}/meta.toml: id '{}' does not match its directory",
                m.id
            ));
        }
        metas.push((*dir, m, *config));
    }
    Ok(metas)
}

fn names_of(metas: &Metas<'_>) -> Vec<(String, Vec<String>)> {
    metas
        .iter()
        .map(|(_, m, _)| (m.id.clone(), m.aliases.clone()))
        .collect()
}

fn parse_gpus(gpus: &str, prices: &str) -> Result<(Vec<Gpu>, Vec<Price>), String> {
    let gpus: GpuFile = toml::from_str(gpus).map_err(|e| format!("data/gpus.toml: {e}"))?;
    let prices: PriceFile = toml::from_str(prices).map_err(|e| format!("data/prices.toml: {e}"))?;
    Ok((gpus.gpu, prices.price))
}

/// Every entry's description, in the order of `metas`.
fn describe_models(metas: &Metas<'_>) -> Result<Vec<ModelDesc>, String> {
    (0..metas.len()).map(|i| describe_entry(metas, i)).collect()
}

/// Entry `i` of `metas`: its config.json (or its base's, `config_from_base`) through the
/// mapping, with what meta.toml adds.
fn describe_entry(metas: &Metas<'_>, i: usize) -> Result<ModelDesc, String> {
    let entry = |id: &str| metas.iter().find(|(_, m, _)| m.id.eq_ignore_ascii_case(id));
    let config_of = |id: &str| -> Result<(&str, &str), String> {
        // Follow `config_from_base` to the entry that stores the config.json.
        let mut id = id.to_string();
        for _ in 0..8 {
            let (dir, m, config) =
                entry(&id).ok_or_else(|| format!("no catalogue entry '{id}'"))?;
            match (config, m.config_from_base, &m.base) {
                (Some(c), _, _) => return Ok((*dir, *c)),
                (None, true, Some(b)) => id = b.clone(),
                _ => {
                    return Err(format!(
                        "data/catalogue/{dir}: no config.json and no config_from_base"
                    ))
                }
            }
        }
        Err(format!(
            "data/catalogue: base chain of '{id}' is too long (a cycle?)"
        ))
    };
    let Some((dir, m, _)) = metas.get(i) else {
        return Err(format!("no catalogue entry #{i}"));
    };
    if let Some(b) = &m.base {
        if entry(b).is_none() {
            return Err(format!(
                "data/catalogue/{dir}/meta.toml: base '{b}' is not in the catalogue"
            ));
        }
    }
    let (config_dir, text) = config_of(&m.id)?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("data/catalogue/{config_dir}/config.json: {e}"))?;
    let mut d = crate::arch::describe(&value)
        .map_err(|e| format!("data/catalogue/{config_dir}/config.json: {e}"))?;
    d.id = m.id.clone();
    d.aliases = m.aliases.clone();
    d.family = m.family.clone();
    d.source = m.config_source.clone();
    d.base = m.base.clone();
    if m.quantization.is_some() {
        d.quantization = m.quantization.clone();
    }
    d.published_params = m.published_params;
    d.published_params_source = m.published_params_source.clone();
    d.nominal_params = m.nominal_params;
    if let Some(c) = m.max_context {
        d.max_context = c;
        d.warnings
            .retain(|w| !w.contains("gives no context length"));
    }
    if let Some(t) = &m.dtype {
        d.dtype = t.clone();
    }
    d.validate()
        .map_err(|e| format!("data/catalogue/{dir}: {e}"))?;
    // A derived entry without a count of its own inherits its nearest base's
    // (data/SCHEMA.md).
    if d.published_params.is_none() {
        let mut base = m.base.clone();
        for _ in 0..8 {
            let Some(b) = base else { break };
            let Some((_, bm, _)) = entry(&b) else { break };
            if bm.published_params.is_some() {
                d.published_params = bm.published_params;
                d.published_params_source = bm
                    .published_params_source
                    .clone()
                    .map(|s| format!("{s} (its base {b})"));
                break;
            }
            base = bm.base.clone();
        }
    }
    Ok(d)
}

/// The embedded catalogue, parsed on first use: names, GPUs and prices at once, the model
/// descriptions when something first reads `models`.
pub fn catalogue() -> &'static Catalogue {
    static CAT: OnceLock<Catalogue> = OnceLock::new();
    // The data is compiled in and checked by tests (`parse` on the same files); a failure
    // here is a build defect.
    fn embedded<T>(r: Result<T, String>) -> T {
        r.unwrap_or_else(|e| panic!("embedded catalogue is invalid: {e}"))
    }
    static METAS: OnceLock<Metas<'static>> = OnceLock::new();
    fn embedded_metas() -> &'static Metas<'static> {
        METAS.get_or_init(|| embedded(parse_metas(CATALOGUE_FILES)))
    }
    fn describe_embedded(i: usize) -> ModelDesc {
        embedded(describe_entry(embedded_metas(), i))
    }
    CAT.get_or_init(|| {
        let metas = embedded_metas();
        let (gpus, prices) = embedded(parse_gpus(GPU_FILE, PRICE_FILE));
        Catalogue {
            models: Models {
                all: OnceLock::new(),
                entries: (0..metas.len()).map(|_| OnceLock::new()).collect(),
                describe_one: Some(describe_embedded),
            },
            gpus,
            prices,
            names: names_of(metas),
        }
    })
}

fn normalise(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

impl Catalogue {
    /// The nearest model entries to `query`, each shown by its id (names::suggest_entries).
    pub fn nearest_models(&self, query: &str) -> Vec<String> {
        crate::names::suggest_entries(
            query,
            self.names.iter().map(|(id, aliases)| {
                let names = std::iter::once(id.as_str())
                    .chain(aliases.iter().map(String::as_str))
                    .collect();
                (id.as_str(), names)
            }),
        )
    }

    /// The nearest GPU entries to `query`, each shown by its id.
    pub fn nearest_gpus(&self, query: &str) -> Vec<String> {
        crate::names::suggest_entries(
            query,
            self.gpus.iter().map(|g| {
                let names = std::iter::once(g.id.as_str())
                    .chain(g.aliases.iter().map(String::as_str))
                    .chain(std::iter::once(g.name.as_str()))
                    .collect();
                (g.id.as_str(), names)
            }),
        )
    }

    /// The entry whose id or alias is `query`, ignoring case only.
    pub fn model_exact(&self, query: &str) -> Option<&ModelDesc> {
        let q = normalise(query);
        let at = self
            .names
            .iter()
            .position(|(id, _)| normalise(id) == q)
            .or_else(|| {
                self.names
                    .iter()
                    .position(|(_, aliases)| aliases.iter().any(|a| normalise(a) == q))
            })?;
        self.models.entry(at)
    }

    /// A model as people type it: its id or alias in any case; the same without punctuation
    /// (`llama3.1-8b-instruct`); the repository name without its organisation
    /// (`Mistral-Small-24B-Instruct-2501`). A name that fits several entries is refused with
    /// their ids; a miss lists the nearest names.
    pub fn model(&self, query: &str) -> Result<&ModelDesc, String> {
        if let Some(m) = self.model_exact(query) {
            return Ok(m);
        }
        let k = crate::names::key(query);
        let repo_name = |id: &str| {
            id.rsplit_once('/')
                .map(|(_, n)| n)
                .unwrap_or(id)
                .to_string()
        };
        let hits: Vec<&ModelDesc> = if k.is_empty() {
            Vec::new()
        } else {
            let at: Vec<usize> = (0..self.names.len())
                .filter(|&i| {
                    let (id, aliases) = &self.names[i];
                    crate::names::key(id) == k
                        || crate::names::key(&repo_name(id)) == k
                        || aliases.iter().any(|a| crate::names::key(a) == k)
                })
                .collect();
            if at.is_empty() {
                Vec::new()
            } else {
                at.into_iter()
                    .filter_map(|i| self.models.entry(i))
                    .collect()
            }
        };
        match hits.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "unknown model '{query}'{}. See `vramplan models` for the catalogue, or pass a path to a model file or config.json",
                crate::names::nearest_clause(&self.nearest_models(query))
            )),
            many => Err(format!(
                "'{query}' names {} catalogue models: {}; give the full id",
                many.len(),
                many.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// A GPU as people write it: catalogue id, alias, full name or the name nvidia-smi or
    /// rocm-smi prints, compared without case, punctuation or the vendor's words (`RTX 4090`,
    /// `4090`, `H100 SXM`, `A100 80GB`, `NVIDIA GeForce RTX 4090`, `AMD Instinct MI300X OAM`).
    pub fn gpu(&self, query: &str) -> Result<&Gpu, String> {
        let q = normalise(query);
        let exact = self.gpus.iter().find(|g| {
            normalise(&g.id) == q
                || g.aliases.iter().any(|a| normalise(a) == q)
                || g.smi_names.iter().any(|a| normalise(a) == q)
                || normalise(&g.name) == q
        });
        if let Some(g) = exact {
            return Ok(g);
        }
        let k = crate::names::gpu_key(query);
        let same = |name: &str| !k.is_empty() && crate::names::gpu_key(name) == k;
        let hit = self.gpus.iter().find(|g| {
            same(&g.id)
                || g.aliases.iter().any(|a| same(a))
                || g.smi_names.iter().any(|a| same(a))
                || same(&g.name)
        });
        hit.ok_or_else(|| {
            format!(
                "unknown GPU '{query}'{}. See `vramplan gpus`, or give --gpu-memory 24GiB for another card",
                crate::names::nearest_clause(&self.nearest_gpus(query))
            )
        })
    }

    pub fn price(&self, gpu_id: &str) -> Option<&Price> {
        self.prices
            .iter()
            .find(|p| p.gpu.eq_ignore_ascii_case(gpu_id))
    }
}

impl ModelDesc {
    /// The weight format a pre-quantized checkpoint ships in, or its released dtype.
    pub fn native_format(&self) -> WeightFormat {
        if let Some(q) = &self.quantization {
            let group = q.group_size.unwrap_or(128);
            return match q.method.to_ascii_lowercase().as_str() {
                "awq" => WeightFormat::Awq { group },
                "gptq" => WeightFormat::Gptq {
                    bits: q.bits.unwrap_or(4).min(8) as u8,
                    group,
                },
                "fp8" => WeightFormat::Fp8 {
                    block: q.group_size.unwrap_or(0),
                },
                "w8a8" | "int8" => WeightFormat::Int8,
                "w4a16" => WeightFormat::W4a16 { group },
                "mxfp4" => WeightFormat::Mxfp4,
                "bnb-nf4" | "nf4" => WeightFormat::BnbNf4,
                "bnb-int8" => WeightFormat::BnbInt8,
                // GGUF files name their dominant ggml type (q4_k, q8_0, ...).
                other => WeightFormat::parse(other).unwrap_or(WeightFormat::Bf16),
            };
        }
        match self.dtype.to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => WeightFormat::F32,
            "fp16" | "f16" | "float16" => WeightFormat::F16,
            _ => WeightFormat::Bf16,
        }
    }
}

impl Catalogue {
    /// A published checkpoint of `model` (or of its base) in the given quantization method
    /// (`awq`, `gptq`, `fp8`, `w8a8`, `w4a16`), for launch commands.
    pub fn quantized_sibling(&self, model: &ModelDesc, method: &str) -> Option<&ModelDesc> {
        let root = |m: &ModelDesc| -> String {
            let mut id = m.id.clone();
            let mut guard = 0;
            while let Some(b) = self
                .models
                .iter()
                .find(|x| x.id == id)
                .and_then(|x| x.base.clone())
            {
                id = b;
                guard += 1;
                if guard > 8 {
                    break;
                }
            }
            id.to_ascii_lowercase()
        };
        let want = root(model);
        self.models.iter().find(|m| {
            m.quantization
                .as_ref()
                .is_some_and(|q| q.method.eq_ignore_ascii_case(method))
                && root(m) == want
        })
    }
}
