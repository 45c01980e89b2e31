//! `vramplan inspect PATH`: what a model file or folder holds, read from its headers only.

use crate::commands::estimate::print_json_or;
use crate::render::{table, Rows};
use crate::Failure;
use clap::Args;
use serde::Serialize;
use vramplan_core::kv::kv_bytes_per_token;
use vramplan_core::model::{LayerSummary, Tower};
use vramplan_core::units::{bytes_kib, params_short, size, thousands};
use vramplan_core::KvDtype;
use vramplan_formats::{to_model_desc, DtypeStats, ModelFile};

#[derive(Args)]
pub struct InspectArgs {
    /// A .safetensors or .gguf file (split GGUF: its first part), a model folder, a sharded
    /// checkpoint's index json, a config.json, an HF cache snapshot; a Hugging Face repo
    /// ORG/NAME[@REVISION][:GGUF_TAG] (the local cache, else the Hub, header-only; a repo of
    /// several GGUF files without a tag lists them); an ollama model name (`llama3.1:8b`: the
    /// local store, else the registry; `ollama://NAME:TAG` for the registry).
    pub path: String,
    /// Also list every tensor (name, type, shape, bytes) in the JSON.
    #[arg(long)]
    pub tensors: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub hub: crate::model_source::HubArgs,
}

/// The architecture as the config.json mapping describes it.
#[derive(Serialize)]
struct Architecture {
    model_type: String,
    num_layers: u64,
    hidden_size: u64,
    num_attention_heads: u64,
    num_kv_heads: u64,
    head_dim: u64,
    intermediate_size: u64,
    vocab_size: u64,
    tie_embeddings: bool,
    experts: Option<(u64, u64)>,
    mla_kv_lora_rank: Option<u64>,
    sliding_window: Option<u64>,
    kv_bytes_per_token_fp16: u64,
    params_from_architecture: u64,
    text_params: u64,
    /// The decoder layers by kind, with the pattern (one letter per layer).
    layers: LayerSummary,
    towers: Vec<Tower>,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    target: &'a str,
    format: &'static str,
    architecture: Option<&'a str>,
    name: Option<&'a str>,
    origin: &'a vramplan_formats::Origin,
    files: Vec<String>,
    bytes_on_disk: u64,
    header_bytes_read: u64,
    params: u64,
    tensor_count: u64,
    weights_bytes: u64,
    by_dtype: &'a [DtypeStats],
    context_length: Option<u64>,
    file_type: Option<&'a str>,
    gguf_version: Option<u32>,
    split_count: Option<u32>,
    fields: Option<Architecture>,
    fields_error: Option<String>,
    notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tensors: Option<&'a vramplan_formats::TensorList>,
}

fn report<'a>(m: &'a ModelFile, with_tensors: bool) -> Report<'a> {
    let (fields, fields_error, mut notes) = match to_model_desc(m) {
        Ok(fm) => {
            let d = &fm.desc;
            let layers = d.layer_summary();
            let fields = Architecture {
                model_type: d.model_type.clone(),
                num_layers: d.num_layers,
                hidden_size: d.hidden_size,
                num_attention_heads: d.num_attention_heads,
                num_kv_heads: d.num_kv_heads,
                head_dim: d.head_dim,
                intermediate_size: d.intermediate_size,
                vocab_size: d.vocab_size,
                tie_embeddings: d.tie_embeddings,
                experts: d.moe.as_ref().map(|e| (e.num_experts, e.experts_per_token)),
                mla_kv_lora_rank: d.mla.as_ref().map(|x| x.kv_lora_rank),
                sliding_window: layers.windows.first().map(|w| w.tokens),
                kv_bytes_per_token_fp16: kv_bytes_per_token(d, KvDtype::F16),
                params_from_architecture: d.params(),
                text_params: d.text_params(),
                layers,
                towers: d.towers.clone(),
                warnings: d.warnings.clone(),
            };
            (Some(fields), None, fm.notes)
        }
        Err(e) => (None, Some(e.to_string()), Vec::new()),
    };
    notes.extend(m.notes.iter().cloned());
    Report {
        target: &m.target,
        format: m.format.name(),
        architecture: m.architecture.as_deref(),
        name: m.name.as_deref(),
        origin: &m.origin,
        files: m.files.iter().map(|p| p.display().to_string()).collect(),
        bytes_on_disk: m.bytes_on_disk,
        header_bytes_read: m.header_bytes_read,
        params: m.summary.total_params,
        tensor_count: m.summary.tensor_count,
        weights_bytes: m.summary.total_bytes,
        by_dtype: &m.summary.by_dtype,
        context_length: m.context_length(),
        file_type: m.gguf.as_ref().and_then(|g| g.file_type_name.as_deref()),
        gguf_version: m.gguf.as_ref().map(|g| g.version),
        split_count: m.gguf.as_ref().map(|g| g.split_count),
        fields,
        fields_error,
        notes,
        tensors: with_tensors.then_some(&m.tensors),
    }
}

pub fn run(a: InspectArgs) -> Result<(), Failure> {
    use crate::model_source::{locate, Located};
    // Inspect reads files: the catalogue is not looked at (`vramplan models` lists it).
    let m = match locate(&a.path, &a.hub, true)? {
        Located::File(m) => *m,
        Located::GgufFiles { repo, files } => {
            let list = GgufList {
                repo: &repo,
                gguf_files: &files,
            };
            return print_json_or(a.json, &list, || render_list(&list));
        }
        Located::Catalogue(m) => {
            return Err(Failure::input(format!(
                "{}: a catalogue model ({}), with no files to read",
                a.path, m.id
            )))
        }
    };
    let r = report(&m, a.tensors);
    print_json_or(a.json, &r, || render(&r))
}

/// A Hub repository's GGUF models, when no tag chose one.
#[derive(Serialize)]
struct GgufList<'a> {
    repo: &'a str,
    gguf_files: &'a [vramplan_hub::GgufFile],
}

fn render_list(l: &GgufList) -> String {
    let rows: Vec<Vec<String>> = l
        .gguf_files
        .iter()
        .map(|g| {
            vec![
                g.file.clone(),
                g.quant.clone().unwrap_or_else(|| "?".into()),
                g.parts.to_string(),
                g.bytes.map(size).unwrap_or_else(|| "?".into()),
            ]
        })
        .collect();
    let mut s = format!(
        "{} holds {} GGUF models; pick one with {}:TAG (llama.cpp's -hf convention) or --file NAME\n\n",
        l.repo,
        l.gguf_files.len(),
        l.repo
    );
    for line in table(
        &["file", "quant", "parts", "size"],
        &rows,
        &[false, false, true, true],
    )
    .lines()
    {
        s.push_str(&format!("  {line}\n"));
    }
    s
}

fn render(r: &Report) -> String {
    let mut s = format!("{} ({})\n\n", r.target, r.format);
    let mut rows = Rows::default();
    rows.add(
        "format",
        r.format,
        r.file_type
            .map(|t| format!("file type {t}"))
            .unwrap_or_default(),
    );
    if let Some(v) = r.gguf_version {
        rows.add(
            "GGUF version",
            v.to_string(),
            r.split_count
                .filter(|&n| n > 1)
                .map(|n| format!("{n} split files"))
                .unwrap_or_default(),
        );
    }
    rows.add(
        "architecture",
        r.architecture.unwrap_or("unknown"),
        r.name.unwrap_or_default(),
    );
    rows.add(
        "files",
        r.files.len().to_string(),
        r.files.first().cloned().unwrap_or_default(),
    );
    rows.add(
        "parameters",
        params_short(r.params),
        format!(
            "{} in {} tensors",
            thousands(r.params),
            thousands(r.tensor_count)
        ),
    );
    rows.add(
        "weights",
        size(r.weights_bytes),
        "sum of the tensors' bytes as stored",
    );
    rows.add(
        "on disk",
        size(r.bytes_on_disk),
        format!("{} of headers read", size(r.header_bytes_read)),
    );
    if let Some(c) = r.context_length {
        rows.add(
            "context length",
            thousands(c),
            "tokens the model was trained for",
        );
    }
    if let Some(f) = &r.fields {
        rows.add(
            "layers",
            f.num_layers.to_string(),
            format!(
                "{}: hidden {}, intermediate {}, vocabulary {}",
                f.model_type, f.hidden_size, f.intermediate_size, f.vocab_size
            ),
        );
        rows.add("layer kinds", crate::render::layer_kinds(&f.layers), "");
        rows.add(
            "layer pattern",
            crate::render::layer_pattern(&f.layers.pattern),
            "F full, S sliding, C chunked, X KV-shared, L latent, I latent + indexer, R recurrent, H hybrid, M MLP only",
        );
        rows.add(
            "attention",
            format!(
                "{} heads, {} KV heads",
                f.num_attention_heads, f.num_kv_heads
            ),
            format!("head dim {}", f.head_dim),
        );
        if let Some((e, k)) = f.experts {
            rows.add(
                "experts",
                format!("{e}, {k} per token"),
                format!("on {} layers", f.layers.moe_layers),
            );
        }
        if let Some(r) = f.mla_kv_lora_rank {
            rows.add("MLA latent", r.to_string(), "");
        }
        for w in &f.layers.windows {
            rows.add(
                "sliding window",
                thousands(w.tokens),
                format!("tokens, {} layers", w.layers),
            );
        }
        rows.add(
            "KV per token",
            bytes_kib(f.kv_bytes_per_token_fp16),
            "fp16, whole model",
        );
        if f.layers.state_bytes_per_sequence > 0 {
            rows.add(
                "recurrent state",
                size(f.layers.state_bytes_per_sequence),
                "per sequence, whatever the context",
            );
        }
        rows.add(
            "params (config)",
            params_short(f.params_from_architecture),
            format!("text model {}", params_short(f.text_params)),
        );
        for t in &f.towers {
            rows.add("  tower", params_short(t.params), t.name.clone());
        }
        if f.layers.mtp_layers > 0 {
            rows.add(
                "MTP layers",
                f.layers.mtp_layers.to_string(),
                format!(
                    "{} parameters apart (speculative decoding)",
                    params_short(f.layers.mtp_params)
                ),
            );
        }
    }
    s.push_str(&rows.render());
    let mix: Vec<Vec<String>> = r
        .by_dtype
        .iter()
        .map(|d| {
            vec![
                d.dtype.clone(),
                thousands(d.tensors),
                params_short(d.params),
                size(d.bytes),
            ]
        })
        .collect();
    s.push_str("\n  tensor types:\n");
    for line in table(
        &["type", "tensors", "params", "bytes"],
        &mix,
        &[false, true, true, true],
    )
    .lines()
    {
        s.push_str(&format!("  {line}\n"));
    }
    if let Some(e) = &r.fields_error {
        s.push_str(&format!("\n  not enough to estimate: {e}\n"));
    }
    if let Some(f) = &r.fields {
        for w in &f.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
    }
    for n in &r.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    s
}
