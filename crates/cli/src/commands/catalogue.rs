//! `vramplan models` and `vramplan gpus`: list and search the catalogue.

use crate::commands::estimate::print_json_or;
use crate::render::table;
use crate::Failure;
use clap::Args;
use vramplan_core::kv::kv_bytes_per_token;
use vramplan_core::names::{has_words, nearest_clause};
use vramplan_core::units::{count, gib, params_short, thousands};
use vramplan_core::{catalogue, KvDtype};

#[derive(Args)]
pub struct ModelsArgs {
    /// Show only entries whose id, alias or family contains this text (case and punctuation
    /// ignored: `llama3.1` finds Llama-3.1-8B).
    pub search: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct GpusArgs {
    /// Show only entries whose id, name, alias or nvidia-smi/rocm-smi name contains this text
    /// (case and punctuation ignored: `rtx 4090` finds the GeForce RTX 4090).
    pub search: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// A field contains the query as text (any case), or the query's words in a row, compared
/// without punctuation (`rtx 4090` finds "NVIDIA GeForce RTX 4090", `llama3.1` finds
/// "Llama-3.1-8B"; `qwen3` does not find "Qwen-32B").
fn matches(query: &Option<String>, fields: &[&str]) -> bool {
    match query {
        None => true,
        Some(q) => {
            let lower = q.to_ascii_lowercase();
            fields
                .iter()
                .any(|f| f.to_ascii_lowercase().contains(&lower) || has_words(f, q))
        }
    }
}

pub fn models(a: ModelsArgs) -> Result<(), Failure> {
    let cat = catalogue();
    let hits: Vec<_> = cat
        .models
        .iter()
        .filter(|m| {
            let mut fields = vec![m.id.as_str(), m.family.as_str()];
            fields.extend(m.aliases.iter().map(String::as_str));
            matches(&a.search, &fields)
        })
        .collect();
    if hits.is_empty() {
        let q = a.search.unwrap_or_default();
        return Err(Failure::input(format!(
            "no model matches '{q}'{}",
            nearest_clause(&cat.nearest_models(&q))
        )));
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        id: &'a str,
        aliases: &'a [String],
        family: &'a str,
        params: u64,
        quant: String,
        kv_bytes_per_token: u64,
        max_context: u64,
        source: &'a str,
    }
    let rows: Vec<Row> = hits
        .iter()
        .map(|m| Row {
            id: &m.id,
            aliases: &m.aliases,
            family: &m.family,
            params: m.params(),
            quant: m.native_format().name(),
            kv_bytes_per_token: kv_bytes_per_token(m, KvDtype::F16),
            max_context: m.max_context,
            source: &m.source,
        })
        .collect();
    print_json_or(a.json, &rows, || {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.aliases.first().cloned().unwrap_or_default(),
                    params_short(r.params),
                    r.quant.clone(),
                    thousands(r.kv_bytes_per_token),
                    thousands(r.max_context),
                ]
            })
            .collect();
        let mut s = table(
            &[
                "id",
                "alias",
                "params",
                "weights",
                "KV B/token (fp16)",
                "max context",
            ],
            &cells,
            &[false, false, true, false, true, true],
        );
        s.push_str(&format!("{}\n", count(rows.len() as u64, "model")));
        s
    })
}

pub fn gpus(a: GpusArgs) -> Result<(), Failure> {
    let cat = catalogue();
    let hits: Vec<_> = cat
        .gpus
        .iter()
        .filter(|g| {
            let mut fields = vec![g.id.as_str(), g.name.as_str()];
            fields.extend(g.aliases.iter().map(String::as_str));
            fields.extend(g.smi_names.iter().map(String::as_str));
            matches(&a.search, &fields)
        })
        .collect();
    if hits.is_empty() {
        let q = a.search.unwrap_or_default();
        return Err(Failure::input(format!(
            "no GPU matches '{q}'{}",
            nearest_clause(&cat.nearest_gpus(&q))
        )));
    }
    print_json_or(a.json, &hits, || {
        let cells: Vec<Vec<String>> = hits
            .iter()
            .map(|g| {
                vec![
                    g.id.clone(),
                    g.name.clone(),
                    gib(g.memory_bytes),
                    format!("{:.0} GB/s", g.hbm_bandwidth_bytes_per_s / 1e9),
                    format!("{:.0}", g.bf16_dense_tflops),
                    if g.fp8_dense_tflops > 0.0 {
                        format!("{:.0}", g.fp8_dense_tflops)
                    } else {
                        "-".into()
                    },
                ]
            })
            .collect();
        let mut s = table(
            &[
                "id",
                "name",
                "memory (as reported)",
                "bandwidth",
                "bf16 TFLOPS",
                "fp8 TFLOPS",
            ],
            &cells,
            &[false, false, true, true, true, true],
        );
        s.push_str(&format!("{}\n", count(hits.len() as u64, "GPU")));
        s
    })
}
