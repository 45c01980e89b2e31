//! `vramplan scan [DIR...]`: every model in the local stores (Hugging Face cache, ollama) and
//! the given folders, one row each: size, and for each GPU whether it fits at the context and
//! how many concurrent sequences it serves.

use crate::commands::estimate::print_json_or;
use crate::render::table;
use crate::Failure;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use vramplan_core::units::{count, gib, thousands};
use vramplan_core::{catalogue, estimate, Config, Gpu, KvDtype};
use vramplan_formats::stores::{scan_default_stores, scan_dir, FoundModel, ScanLimits};
use vramplan_formats::{inspect, to_model_desc};

#[derive(Args)]
pub struct ScanArgs {
    /// Folders to search besides the default stores.
    pub dirs: Vec<PathBuf>,
    /// GPU kinds to check against (default: the GPUs nvidia-smi, rocm-smi or macOS report, else
    /// h100).
    #[arg(long, short = 'g')]
    pub gpu: Vec<String>,
    /// Tokens per sequence.
    #[arg(long, short = 'c', default_value_t = 8192)]
    pub context: u64,
    /// KV-cache dtype.
    #[arg(long, default_value = "fp16")]
    pub kv_dtype: String,
    /// Skip the Hugging Face cache and ollama stores.
    #[arg(long)]
    pub no_default_stores: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Fit {
    gpu: String,
    fits: bool,
    max_concurrency: u64,
    total_bytes: u64,
}

#[derive(Serialize)]
struct Row {
    name: String,
    store: String,
    path: String,
    format: Option<String>,
    params: Option<u64>,
    weights_bytes: Option<u64>,
    fits: Vec<Fit>,
    error: Option<String>,
}

pub fn run(a: ScanArgs) -> Result<(), Failure> {
    if a.context == 0 || a.context > 1 << 34 {
        return Err(Failure::input(
            "--context must be between 1 and 2^34 tokens",
        ));
    }
    let kv = KvDtype::parse(&a.kv_dtype).map_err(Failure::input)?;
    let mut gpus: Vec<Gpu> = a
        .gpu
        .iter()
        .map(|g| catalogue().gpu(g).cloned().map_err(Failure::input))
        .collect::<Result<_, _>>()?;
    let mut notes = Vec::new();
    if gpus.is_empty() {
        let found = crate::hardware::detect_gpus();
        gpus = found.gpus;
        notes.extend(found.notes);
        if gpus.is_empty() {
            gpus.push(catalogue().gpu("h100").map_err(Failure::input)?.clone());
            notes.push(
                "no --gpu given and no GPU found (nvidia-smi, rocm-smi, Apple silicon): checked against h100"
                    .to_string(),
            );
        }
    }
    for d in &a.dirs {
        if !d.is_dir() {
            return Err(Failure::input(format!("{}: not a folder", d.display())));
        }
    }
    let mut found: Vec<FoundModel> = if a.no_default_stores {
        Vec::new()
    } else {
        scan_default_stores()
    };
    for d in &a.dirs {
        let r = scan_dir(d, ScanLimits::default());
        if r.truncated {
            notes.push(format!(
                "{}: stopped after {} entries (scan limit)",
                d.display(),
                r.entries_seen
            ));
        }
        found.extend(r.models);
    }
    let bar = ProgressBar::new(found.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let rows: Vec<Row> = found
        .iter()
        .map(|f| {
            bar.set_message(f.name.clone());
            bar.inc(1);
            row(f, &gpus, a.context, kv)
        })
        .collect();
    bar.finish_and_clear();
    print_json_or(
        a.json,
        &serde_json::json!({"models": rows, "gpus": gpus.iter().map(|g| &g.id).collect::<Vec<_>>(), "context": a.context, "notes": notes}),
        || render(&rows, &gpus, a.context, &notes),
    )
}

fn row(f: &FoundModel, gpus: &[Gpu], context: u64, kv: KvDtype) -> Row {
    let mut r = Row {
        name: f.name.clone(),
        store: format!("{:?}", f.store),
        path: f.path.display().to_string(),
        format: None,
        params: None,
        weights_bytes: None,
        fits: Vec::new(),
        error: None,
    };
    let file = match inspect(&f.path) {
        Ok(m) => m,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.format = Some(file.format.name().to_string());
    r.params = Some(file.summary.total_params);
    r.weights_bytes = Some(file.summary.total_bytes);
    let desc = match to_model_desc(&file) {
        Ok(fm) => fm.desc,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    for g in gpus {
        match estimate(&desc, g, Config::new(desc.native_format(), kv, context, 1)) {
            Ok(e) => r.fits.push(Fit {
                gpu: g.id.clone(),
                fits: e.fits,
                max_concurrency: e.max_concurrency,
                total_bytes: e.total_bytes,
            }),
            Err(e) => r.error = Some(e),
        }
    }
    r
}

fn render(rows: &[Row], gpus: &[Gpu], context: u64, notes: &[String]) -> String {
    let mut header = vec![
        "model".to_string(),
        "store".into(),
        "format".into(),
        "params".into(),
        "weights".into(),
    ];
    header.extend(
        gpus.iter()
            .map(|g| format!("{} ({} seq of {})", g.id, "max", thousands(context))),
    );
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                r.name.clone(),
                r.store.clone(),
                r.format.clone().unwrap_or_else(|| "-".into()),
                r.params
                    .map(vramplan_core::units::params_short)
                    .unwrap_or_else(|| "-".into()),
                r.weights_bytes
                    .map(vramplan_core::units::size)
                    .unwrap_or_else(|| "-".into()),
            ];
            for g in gpus {
                c.push(match r.fits.iter().find(|f| f.gpu == g.id) {
                    Some(f) if f.fits => format!("fits, {}", thousands(f.max_concurrency)),
                    Some(f) => format!("no ({} needed)", gib(f.total_bytes)),
                    None => r
                        .error
                        .clone()
                        .map(|_| "unreadable".to_string())
                        .unwrap_or_else(|| "-".into()),
                });
            }
            c
        })
        .collect();
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut right = vec![false, false, false, true, true];
    right.extend(gpus.iter().map(|_| true));
    let mut s = format!("{} found\n\n", count(rows.len() as u64, "model"));
    s.push_str(&table(&h, &cells, &right));
    for r in rows.iter().filter(|r| r.error.is_some()) {
        s.push_str(&format!(
            "  {}: {}\n",
            r.name,
            r.error.as_deref().unwrap_or_default()
        ));
    }
    for n in notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    s
}
