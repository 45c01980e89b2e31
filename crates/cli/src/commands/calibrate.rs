//! `vramplan calibrate`: runs every calibration record (real engine start-up logs in
//! data/calibration/*.jsonl, embedded in the binary by build.rs, or the files of `--data DIR`)
//! through its engine profile and prints observed, predicted and relative error per figure, then
//! the median and worst error per engine and figure.
//!
//! Records that cannot be reproduced (engine release not modelled, model not named, failed
//! run) are listed with the reason instead of being dropped silently.

use crate::render::table;
use crate::Failure;
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use vramplan_core::engine::llamacpp::{self, FlashAttn, GgufWeights, LlamaCppArgs, TypeMix};
use vramplan_core::engine::sglang;
use vramplan_core::engine::vllm::{self, Release, VllmArgs};
use vramplan_core::ggml::GgmlType;
use vramplan_core::units::{GIB, MIB};
use vramplan_core::{catalogue, Config, Gpu, KvDtype, ModelDesc, Parallelism, WeightFormat};

#[derive(Args)]
pub struct CalibrateArgs {
    /// Directory holding vllm.jsonl, llamacpp.jsonl and llamacpp_cpu_runs.jsonl to read instead
    /// of the copy of the repository's data/calibration embedded in the binary.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Print one JSON object (rows, summary, skipped) instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Print only the summary and the skipped records, not every row.
    #[arg(long)]
    pub summary: bool,
    /// The llama.cpp ground-truth records (models.jsonl, cpu_runs.jsonl from
    /// scripts/llamacpp_truth); default the llamacpp_truth folder of --data DIR, or the embedded
    /// copy of data/calibration/llamacpp_truth.
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

/// One compared figure of one record.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub record: String,
    pub engine: &'static str,
    pub figure: &'static str,
    pub unit: &'static str,
    pub observed: f64,
    pub predicted: f64,
    /// (predicted − observed) / observed.
    pub rel_error: f64,
    /// The engine's release line ("0.19", SGLang "0.5"; "unstated" when the log does not say).
    pub release: String,
    /// The catalogue GPU the record ran on ("cpu" for llama.cpp's CPU runs).
    pub gpu: String,
}

/// Median, 90th percentile and worst absolute relative error of one engine's figure on one
/// release line and GPU.
#[derive(Debug, Clone, Serialize)]
pub struct LineSummary {
    pub engine: &'static str,
    pub release: String,
    pub gpu: String,
    pub figure: &'static str,
    pub records: usize,
    pub median_abs_error: f64,
    pub p90_abs_error: f64,
    pub worst_abs_error: f64,
    pub worst_record: String,
    pub target: &'static str,
    pub met: Option<bool>,
}

/// Whether a record started, against whether the profile says it would.
#[derive(Debug, Clone, Serialize)]
pub struct StartCheck {
    pub record: String,
    pub engine: &'static str,
    pub started: bool,
    pub predicted_start: bool,
    /// The profile's start-up error, when it predicts one.
    pub predicted_error: Option<String>,
}

/// Median and worst absolute relative error of one engine's figure.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub engine: &'static str,
    pub figure: &'static str,
    pub records: usize,
    pub median_abs_error: f64,
    pub worst_abs_error: f64,
    pub worst_record: String,
    /// The target for this figure, as text, and whether it is met.
    pub target: &'static str,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub record: String,
    pub engine: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// Where the records were read from: the embedded copy of data/calibration, or `--data DIR`.
    pub data: String,
    pub rows: Vec<Row>,
    pub summary: Vec<Summary>,
    /// Per engine, release line, GPU and figure (issue 14's targets).
    pub lines: Vec<LineSummary>,
    pub starts: Vec<StartCheck>,
    pub skipped: Vec<Skipped>,
    /// The release line and GPU of the record being pushed.
    #[serde(skip)]
    context: (String, String),
}

impl Report {
    fn context(&mut self, release: impl Into<String>, gpu: impl Into<String>) {
        self.context = (release.into(), gpu.into());
    }

    fn push(
        &mut self,
        record: &str,
        engine: &'static str,
        figure: &'static str,
        unit: &'static str,
        observed: f64,
        predicted: f64,
    ) {
        if !(observed.is_finite() && predicted.is_finite()) || observed == 0.0 {
            return;
        }
        let rel_error = (predicted - observed) / observed;
        self.rows.push(Row {
            record: record.into(),
            engine,
            figure,
            unit,
            observed,
            predicted,
            rel_error,
            release: self.context.0.clone(),
            gpu: self.context.1.clone(),
        });
    }
    fn skip(&mut self, record: &str, engine: &'static str, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            record: record.into(),
            engine,
            reason: reason.into(),
        });
    }
}

/// The targets (issue 4, "Calibration against reality"): (engine, figure) → (limit on
/// the median, limit on the worst).
fn target(engine: &str, figure: &str) -> (&'static str, Option<(f64, f64)>) {
    match (engine, figure) {
        (_, "weights") => ("within 1%", Some((0.01, 0.01))),
        ("llamacpp", "graph_nodes") | ("llamacpp-truth", "graph_nodes") => {
            ("exact", Some((0.0, 0.0)))
        }
        ("llamacpp", "kv_buffer")
        | ("llamacpp", "kv_cells")
        | ("llamacpp-truth", "kv_buffer")
        | ("llamacpp-truth", "rs_buffer")
        | ("llamacpp-truth", "rs_cells")
        | ("llamacpp-truth", "output_buffer") => {
            ("exact (to the log's 0.01 MiB)", Some((0.0, 0.0)))
        }
        // Issue 15: every architecture's CPU compute buffer.
        ("llamacpp-truth", "compute_buffer") => ("1% median, 5% worst", Some((0.01, 0.05))),
        ("vllm", "kv_cache") => ("3% median, 8% worst", Some((0.03, 0.08))),
        ("sglang", "max_total_num_tokens") => ("3% median", Some((0.03, f64::INFINITY))),
        (_, "compute_buffer") | (_, "activation") => ("within 15%", Some((0.15, 0.15))),
        _ => ("reported, no target", None),
    }
}

/// Issue 14's targets per release line and GPU: (limit on the median, on the 90th percentile,
/// on the worst).
fn line_target(engine: &str, figure: &str) -> (&'static str, Option<(f64, f64, f64)>) {
    match (engine, figure) {
        ("vllm", "kv_tokens") | ("vllm", "kv_cache") => {
            ("2% median, 5% p90", Some((0.02, 0.05, f64::INFINITY)))
        }
        ("vllm", "weights") | ("sglang", "weights") => ("within 1%", Some((0.01, 0.01, 0.01))),
        ("sglang", "max_total_num_tokens") => {
            ("3% median", Some((0.03, f64::INFINITY, f64::INFINITY)))
        }
        _ => ("reported, no target", None),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    // Nearest rank.
    let k = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[k - 1]
}

fn summarise_lines(rows: &[Row]) -> Vec<LineSummary> {
    type Key = (&'static str, String, String, &'static str);
    let mut groups: BTreeMap<Key, Vec<&Row>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.engine != "llamacpp" && r.engine != "ollama")
    {
        groups
            .entry((r.engine, r.release.clone(), r.gpu.clone(), r.figure))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|((engine, release, gpu, figure), rs)| {
            let mut errs: Vec<f64> = rs.iter().map(|r| r.rel_error.abs()).collect();
            errs.sort_by(f64::total_cmp);
            let median = percentile(&errs, 0.5);
            let p90 = percentile(&errs, 0.9);
            let worst = rs
                .iter()
                .max_by(|a, b| a.rel_error.abs().total_cmp(&b.rel_error.abs()))
                .expect("non-empty group");
            let (text, limits) = line_target(engine, figure);
            let w = worst.rel_error.abs();
            let met =
                limits.map(|(m, p, x)| median <= m + 1e-9 && p90 <= p + 1e-9 && w <= x + 1e-9);
            LineSummary {
                engine,
                release,
                gpu,
                figure,
                records: errs.len(),
                median_abs_error: median,
                p90_abs_error: p90,
                worst_abs_error: w,
                worst_record: worst.record.clone(),
                target: text,
                met,
            }
        })
        .collect()
}

fn summarise(rows: &[Row]) -> Vec<Summary> {
    let mut groups: BTreeMap<(&'static str, &'static str), Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups.entry((r.engine, r.figure)).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|((engine, figure), rs)| {
            let mut errs: Vec<f64> = rs.iter().map(|r| r.rel_error.abs()).collect();
            errs.sort_by(f64::total_cmp);
            let n = errs.len();
            let median = if n % 2 == 1 {
                errs[n / 2]
            } else {
                (errs[n / 2 - 1] + errs[n / 2]) / 2.0
            };
            let worst = rs
                .iter()
                .max_by(|a, b| a.rel_error.abs().total_cmp(&b.rel_error.abs()))
                .expect("non-empty group");
            let (text, limits) = target(engine, figure);
            // Rows are compared at the logs' own precision, so a tiny float residue is not an error.
            let met = limits.map(|(m, w)| median <= m + 1e-9 && worst.rel_error.abs() <= w + 1e-9);
            Summary {
                engine,
                figure,
                records: n,
                median_abs_error: median,
                worst_abs_error: worst.rel_error.abs(),
                worst_record: worst.record.clone(),
                target: text,
                met,
            }
        })
        .collect()
}

include!(concat!(env!("OUT_DIR"), "/calibration_files.rs"));

/// Where the calibration records are read from.
pub enum DataSource<'a> {
    /// The copy of data/calibration compressed into the binary at build time.
    Embedded,
    /// A folder with the same file names (`--data DIR`).
    Dir(&'a Path),
}

impl DataSource<'_> {
    /// The text of one record file (`vllm.jsonl`, ...).
    fn read(&self, name: &str) -> Result<String, Failure> {
        match self {
            DataSource::Embedded => {
                let (_, packed) = CALIBRATION_FILES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| {
                        Failure::runtime(format!(
                            "this binary was built without data/calibration/{name}; pass --data DIR"
                        ))
                    })?;
                let mut text = String::new();
                flate2::read::DeflateDecoder::new(*packed)
                    .read_to_string(&mut text)
                    .map_err(|e| {
                        Failure::runtime(format!("embedded calibration file {name}: {e}"))
                    })?;
                Ok(text)
            }
            DataSource::Dir(dir) => {
                let path = dir.join(name);
                std::fs::read_to_string(&path).map_err(|e| {
                    Failure::runtime(format!(
                        "cannot read calibration file {}: {e}",
                        path.display()
                    ))
                })
            }
        }
    }

    /// Whether the source holds `name`.
    fn has(&self, name: &str) -> bool {
        match self {
            DataSource::Embedded => CALIBRATION_FILES.iter().any(|(n, _)| *n == name),
            DataSource::Dir(dir) => dir.join(name).is_file(),
        }
    }

    fn describe(&self) -> String {
        match self {
            DataSource::Embedded => "data/calibration (embedded at build time)".into(),
            DataSource::Dir(dir) => dir.display().to_string(),
        }
    }
}

fn read_jsonl(source: &DataSource, name: &str) -> Result<Vec<Value>, Failure> {
    let text = source.read(name)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Failure::input(format!(
                    "{} {name} line {}: not JSON: {e}",
                    source.describe(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// Runs every record of `source` (and the llama.cpp ground truth of `truth`, else of the
/// source's `llamacpp_truth` folder when it has one) and returns the report.
pub fn calibrate(source: &DataSource, truth: Option<&Path>) -> Result<Report, Failure> {
    if let DataSource::Dir(dir) = source {
        if !dir.is_dir() {
            return Err(Failure::input(format!(
                "calibration data directory {} not found; pass --data DIR (the folder with vllm.jsonl, llamacpp.jsonl, llamacpp_cpu_runs.jsonl and optionally sglang.jsonl), or omit --data to use the records built into vramplan",
                dir.display()
            )));
        }
    }
    let mut report = Report {
        data: source.describe(),
        ..Report::default()
    };
    for (i, r) in read_jsonl(source, "vllm.jsonl")?.iter().enumerate() {
        vllm_record(&mut report, i + 1, r);
    }
    for (i, r) in read_jsonl(source, "llamacpp_cpu_runs.jsonl")?
        .iter()
        .enumerate()
    {
        cpu_run_record(&mut report, i + 1, r);
    }
    for (i, r) in read_jsonl(source, "llamacpp.jsonl")?.iter().enumerate() {
        llamacpp_log_record(&mut report, i + 1, r);
    }
    // SGLang's records are optional: an older --data folder has none.
    if source.has("sglang.jsonl") {
        for (i, r) in read_jsonl(source, "sglang.jsonl")?.iter().enumerate() {
            sglang_record(&mut report, i + 1, r);
        }
    }
    match truth {
        Some(dir) => truth_records(&mut report, &DataSource::Dir(dir), "")?,
        None if source.has(TRUTH_RUNS) => truth_records(&mut report, source, TRUTH_FOLDER)?,
        None => {}
    }
    report.summary = summarise(&report.rows);
    report.lines = summarise_lines(&report.rows);
    Ok(report)
}

pub fn run(a: CalibrateArgs) -> Result<(), Failure> {
    let source = match &a.data {
        Some(dir) => DataSource::Dir(dir),
        None => DataSource::Embedded,
    };
    let report = calibrate(&source, a.truth.as_deref())?;
    if a.json {
        let s =
            serde_json::to_string_pretty(&report).map_err(|e| Failure::runtime(e.to_string()))?;
        crate::render::emit(&format!("{s}\n"));
        return Ok(());
    }
    crate::render::emit(&render(&report, !a.summary));
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:+.2}%", x * 100.0)
}

fn num(x: f64) -> String {
    if x.abs() >= 1000.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

pub fn render(report: &Report, rows: bool) -> String {
    let mut out = format!("Calibration records: {}\n\n", report.data);
    if rows {
        let body: Vec<Vec<String>> = report
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.record.clone(),
                    r.engine.into(),
                    r.figure.into(),
                    format!("{} {}", num(r.observed), r.unit),
                    format!("{} {}", num(r.predicted), r.unit),
                    pct(r.rel_error),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "record",
                "engine",
                "figure",
                "observed",
                "predicted",
                "error",
            ],
            &body,
            &[false, false, false, true, true, true],
        ));
        out.push('\n');
    }
    let body: Vec<Vec<String>> = report
        .summary
        .iter()
        .map(|s| {
            vec![
                s.engine.into(),
                s.figure.into(),
                s.records.to_string(),
                format!("{:.2}%", s.median_abs_error * 100.0),
                format!("{:.2}%", s.worst_abs_error * 100.0),
                s.worst_record.clone(),
                s.target.into(),
                match s.met {
                    Some(true) => "met".into(),
                    Some(false) => "NOT MET".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    out.push_str("Summary (absolute relative error):\n");
    out.push_str(&table(
        &[
            "engine",
            "figure",
            "rows",
            "median",
            "worst",
            "worst record",
            "target",
            "",
        ],
        &body,
        &[false, false, true, true, true, false, false, false],
    ));
    let body: Vec<Vec<String>> = report
        .lines
        .iter()
        .filter(|l| l.met.is_some())
        .map(|l| {
            vec![
                l.engine.into(),
                l.release.clone(),
                l.gpu.clone(),
                l.figure.into(),
                l.records.to_string(),
                format!("{:.2}%", l.median_abs_error * 100.0),
                format!("{:.2}%", l.p90_abs_error * 100.0),
                format!("{:.2}%", l.worst_abs_error * 100.0),
                l.target.into(),
                match l.met {
                    Some(true) => "met".into(),
                    Some(false) => "NOT MET".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    out.push_str("\nPer release line and GPU (absolute relative error):\n");
    out.push_str(&table(
        &[
            "engine", "release", "gpu", "figure", "rows", "median", "p90", "worst", "target", "",
        ],
        &body,
        &[
            false, false, false, false, true, true, true, true, false, false,
        ],
    ));
    let wrong: Vec<&StartCheck> = report
        .starts
        .iter()
        .filter(|c| c.started != c.predicted_start)
        .collect();
    let failed = report.starts.iter().filter(|c| !c.started).count();
    out.push_str(&format!(
        "\nStarts: {} records ({} failed to start); {} predicted wrongly\n",
        report.starts.len(),
        failed,
        wrong.len()
    ));
    for c in wrong {
        out.push_str(&format!(
            "  {} ({}): {} but predicted {}\n",
            c.record,
            c.engine,
            if c.started { "started" } else { "failed" },
            c.predicted_error.as_deref().unwrap_or("to start")
        ));
    }
    if !report.skipped.is_empty() {
        out.push_str(&format!(
            "\nSkipped {}:\n",
            vramplan_core::units::count(report.skipped.len() as u64, "record")
        ));
        for s in &report.skipped {
            out.push_str(&format!("  {} ({}): {}\n", s.record, s.engine, s.reason));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// vLLM records (vllm.jsonl)

fn f64_of(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}
fn u64_of(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}
fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A record's model: its catalogue entry, or the base model of a re-quantized checkpoint
/// ("RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic" → "Llama-3.3-70B-Instruct" in fp8), matched
/// by the last path segment.
fn resolve_vllm_model(name: &str) -> Option<(ModelDesc, Option<WeightFormat>)> {
    let cat = catalogue();
    if let Ok(m) = cat.model(name) {
        return Some((m.clone(), None));
    }
    let last = name.rsplit('/').next()?.to_ascii_lowercase();
    for (suffix, format) in [
        ("-fp8-dynamic", WeightFormat::Fp8 { block: 0 }),
        ("-fp8", WeightFormat::Fp8 { block: 0 }),
        ("-quantized.w4a16", WeightFormat::W4a16 { group: 128 }),
    ] {
        if let Some(base) = last.strip_suffix(suffix) {
            let hit = cat.models.iter().find(|m| {
                m.id.rsplit('/')
                    .next()
                    .is_some_and(|s| s.eq_ignore_ascii_case(base))
            })?;
            return Some((hit.clone(), Some(format)));
        }
    }
    None
}

/// A record's GPU: "4x NVIDIA L40S (EC2 g6e.12xlarge)" → (l40s, 4). The catalogue name that
/// appears in the text (its id, aliases, smi names, or its name without the vendor prefix),
/// the longest match winning.
pub fn record_gpu(text: &str) -> Result<(Gpu, u64), String> {
    let norm = |t: &str| {
        t.to_ascii_lowercase()
            .replace(['-', '_'], " ")
            .replace("nvidia ", "")
            .replace("geforce ", "")
    };
    let hay = norm(text);
    let count = text
        .trim()
        .split(['x', 'X', '×'])
        .next()
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(1);
    let mut best: Option<(usize, &Gpu)> = None;
    for g in &catalogue().gpus {
        let mut names: Vec<String> = vec![norm(&g.name), norm(&g.id)];
        names.extend(g.aliases.iter().map(|a| norm(a)));
        names.extend(g.smi_names.iter().map(|a| norm(a)));
        for n in names {
            // Short names ("h100") must stand alone; long ones may be followed by a size.
            if n.len() >= 4 && hay.contains(&n) && best.is_none_or(|b| n.len() > b.0) {
                best = Some((n.len(), g));
            }
        }
    }
    match best {
        Some((_, g)) => Ok((g.clone(), count)),
        None => Err(format!("GPU '{text}' not named in the catalogue")),
    }
}

/// Whether the record was started with the offline `LLM` class (its batch defaults differ).
fn offline_entrypoint(r: &Value) -> bool {
    let text = |k: &str| match r.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    let t = format!("{} {}", text("verbatim"), text("note"));
    t.contains("LLM(") || t.contains("Offline LLM")
}

fn vllm_case(r: &Value) -> Result<(ModelDesc, Gpu, Config, VllmArgs), String> {
    let version = str_of(r, "vllm_version").ok_or("vLLM version not stated in the log")?;
    let release = Release::parse(version)?;
    let name = str_of(r, "model").ok_or("model not named in the excerpt")?;
    let (model, requant) =
        resolve_vllm_model(name).ok_or_else(|| format!("model {name} is not in the catalogue"))?;
    let (gpu, _) = record_gpu(str_of(r, "gpu").unwrap_or_default())?;
    let dtype = str_of(r, "dtype").unwrap_or("auto");
    let act_bytes = if dtype.contains("float32") { 4 } else { 2 };
    let compute_kv = match dtype {
        d if d.contains("float32") => KvDtype::F32,
        d if d.contains("float16") && !d.contains("bfloat16") => KvDtype::F16,
        d if d.contains("bfloat16") => KvDtype::Bf16,
        _ if model.dtype == "fp16" => KvDtype::F16,
        _ => KvDtype::Bf16,
    };
    let quant = str_of(r, "quantization").unwrap_or("");
    let weights = match requant {
        Some(f) => f,
        None if quant.starts_with("fp8") && model.quantization.is_none() => {
            WeightFormat::Fp8 { block: 0 }
        }
        // A pre-quantized checkpoint (gpt-oss MXFP4, AWQ, …) keeps its layout.
        None if model.quantization.is_some() => model.native_format(),
        None => match act_bytes {
            4 => WeightFormat::F32,
            _ if compute_kv == KvDtype::F16 => WeightFormat::F16,
            _ => WeightFormat::Bf16,
        },
    };
    let kv = match str_of(r, "kv_cache_dtype").unwrap_or("auto") {
        "auto" => compute_kv,
        other => KvDtype::parse(other)?,
    };
    let len = u64_of(r, "max_model_len").ok_or("max_model_len not stated")?;
    let mut config = Config::new(weights, kv, len, 1);
    config.parallel = Parallelism {
        tp: u64_of(r, "tensor_parallel_size").unwrap_or(1),
        pp: u64_of(r, "pipeline_parallel_size").unwrap_or(1),
        dp: u64_of(r, "data_parallel_size").unwrap_or(1),
    };
    let mut args = VllmArgs::new(release);
    if let Some(u) = f64_of(r, "gpu_memory_utilization") {
        config.utilization = u;
        args.utilization_given = true;
    }
    args.max_num_seqs = u64_of(r, "max_num_seqs");
    args.max_num_batched_tokens = u64_of(r, "max_num_batched_tokens");
    args.enforce_eager = r
        .get("enforce_eager")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    args.block_size = u64_of(r, "block_size");
    args.activation_bytes = act_bytes;
    if offline_entrypoint(r) {
        args.entrypoint = vllm::Entrypoint::Offline;
    }
    Ok((model, gpu, config, args))
}

/// A failed start whose error is vLLM's memory accounting (the others, e.g. a process crash,
/// say nothing about memory).
fn memory_failure(r: &Value) -> bool {
    let e = format!(
        "{} {}",
        str_of(r, "error").unwrap_or(""),
        str_of(r, "note").unwrap_or("")
    )
    .to_ascii_lowercase();
    [
        "no available memory",
        "out of memory",
        "to serve at least one request",
        "less than desired gpu memory",
        "not enough memory",
    ]
    .iter()
    .any(|k| e.contains(k))
}

fn vllm_record(report: &mut Report, line: usize, r: &Value) {
    let id = format!("vllm.jsonl:{line}");
    let failed = r.get("failed_run").and_then(Value::as_bool) == Some(true);
    if failed && !memory_failure(r) {
        return report.skip(
            &id,
            "vllm",
            format!(
                "failed run whose error is not a memory error (\"{}\"): nothing to check",
                str_of(r, "error").unwrap_or("no error text")
            ),
        );
    }
    let (model, gpu, config, args) = match vllm_case(r) {
        Ok(c) => c,
        Err(reason) => return report.skip(&id, "vllm", reason),
    };
    report.context(format!("0.{}", args.release.minor), gpu.id.clone());
    let label = format!(
        "{id} {} tp{}pp{} {}",
        model.id.rsplit('/').next().unwrap_or(&model.id),
        config.parallel.tp,
        config.parallel.pp,
        config.context
    );
    let e = match vllm::estimate(&model, &gpu, config, &args) {
        Ok(e) => e,
        Err(reason) => return report.skip(&id, "vllm", format!("profile refused: {reason}")),
    };
    report.starts.push(StartCheck {
        record: label.clone(),
        engine: "vllm",
        started: !failed,
        predicted_start: e.startup_error.is_none(),
        predicted_error: e.startup_error.as_ref().map(|s| s.message.clone()),
    });
    if failed {
        return;
    }
    // The log's byte figures are rank 0's (the first worker); with PP the profile's first stage.
    let (weights, activation, available) = match e.stages.first() {
        Some(s) => (s.weights_bytes, s.activation_bytes, s.kv_available_bytes),
        None => (e.weights_bytes, e.activation_bytes, 0),
    };
    let gib = |b: u64| b as f64 / GIB as f64;
    if let Some(w) = f64_of(r, "weights_gib") {
        report.push(&label, "vllm", "weights", "GiB", w, gib(weights));
    }
    if let Some(a) = f64_of(r, "activation_peak_gib") {
        report.push(&label, "vllm", "activation", "GiB", a, gib(activation));
    }
    if let Some(n) = f64_of(r, "non_torch_gib") {
        report.push(
            &label,
            "vllm",
            "non_torch",
            "GiB",
            n,
            gib(e.non_torch_bytes.unwrap_or(0)),
        );
    }
    if let Some(k) = f64_of(r, "kv_cache_gib") {
        // "Available KV cache memory" of the first worker: its own budget, before the minimum
        // over workers is taken.
        // Without PP the top-level figures are the one worker's: budget − weights − activations −
        // overhead, before rounding down to whole blocks.
        let predicted = if e.stages.is_empty() {
            let used = e.weights_bytes + e.activation_bytes + e.overhead_bytes;
            (e.usable_bytes as f64 - used as f64) / GIB as f64
        } else {
            available as f64 / GIB as f64
        };
        report.push(&label, "vllm", "kv_cache", "GiB", k, predicted);
    }
    if let Some(b) = u64_of(r, "gpu_blocks") {
        report.push(
            &label,
            "vllm",
            "kv_blocks",
            "blocks",
            b as f64,
            e.kv_cache_blocks.unwrap_or(0) as f64,
        );
    }
    if let Some(t) = u64_of(r, "kv_cache_tokens") {
        report.push(
            &label,
            "vllm",
            "kv_tokens",
            "tokens",
            t as f64,
            e.kv_cache_tokens.unwrap_or(0) as f64,
        );
    }
    if let Some(mc) = r
        .get("max_concurrency")
        .and_then(|m| m.get("value"))
        .and_then(Value::as_f64)
    {
        report.push(
            &label,
            "vllm",
            "max_concurrency",
            "x",
            mc,
            e.engine_max_concurrency.unwrap_or(0.0),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// SGLang records (sglang.jsonl): the token pool, the weights and the free memory before load.

fn sglang_record(report: &mut Report, line: usize, r: &Value) {
    let id = format!("sglang.jsonl:{line}");
    if r.get("failed_run").and_then(Value::as_bool) == Some(true) {
        return report.skip(&id, "sglang", "failed run: no pool logged");
    }
    let Some(name) = str_of(r, "model") else {
        return report.skip(&id, "sglang", "model not named");
    };
    let Some((model, requant)) = resolve_vllm_model(name) else {
        return report.skip(
            &id,
            "sglang",
            format!("model {name} is not in the catalogue"),
        );
    };
    let release_text = str_of(r, "sglang_version").unwrap_or("");
    let release = sglang::SglangRelease::parse(release_text).ok();
    let gib_f = |k: &str| f64_of(r, k).map(|g| (g * GIB as f64) as u64);
    let tp = u64_of(r, "tp_size").unwrap_or(1);
    // The GPU, or (not named) a card of unknown size whose free memory before load the log gives.
    // A card shared with a Windows host (WSL2) has memory the host holds (its desktop, WDDM),
    // which SGLang's device-wide free memory counts (utils.py get_available_gpu_memory) and the
    // card does not determine: its log's pre-load free memory is the input, as
    // --gpu-memory-in-use would give it, and the dedicated card's figure is reported beside it.
    let gpu_text = str_of(r, "gpu").unwrap_or_default();
    let shared_host = gpu_text.to_ascii_lowercase().contains("wsl");
    let (gpu, gpu_label, free_before) = match record_gpu(gpu_text) {
        Ok((g, _)) if shared_host && gib_f("avail_mem_before_load_gb").is_some() => (
            g.clone(),
            format!("{} (WSL2: pre-load memory from the log)", g.id),
            gib_f("avail_mem_before_load_gb"),
        ),
        Ok((g, _)) => (g.clone(), g.id.clone(), None),
        Err(_) => match gib_f("avail_mem_before_load_gb") {
            Some(free) => (
                Gpu::custom(free + sglang::used_before_load(tp)),
                "unknown (pre-load memory from the log)".to_string(),
                Some(free),
            ),
            None => return report.skip(&id, "sglang", "GPU not named and no pre-load memory"),
        },
    };
    let dtype = str_of(r, "dtype").unwrap_or("auto");
    let flags = sglang::SglangFlags {
        sglang_version: release.map(|r| r.name()).unwrap_or_else(|| "latest".into()),
        mem_fraction_static: f64_of(r, "mem_fraction_static"),
        chunked_prefill_size: r.get("chunked_prefill_size").and_then(Value::as_i64),
        cuda_graph_max_bs: u64_of(r, "cuda_graph_max_bs"),
        dtype: if dtype.contains("float16") && !dtype.contains("bfloat16") {
            "float16".into()
        } else {
            "auto".into()
        },
        ..sglang::SglangFlags::default()
    };
    let mut req = vramplan_core::engine::Request::new(
        u64_of(r, "context_length")
            .unwrap_or(model.max_context)
            .min(model.max_context),
        1,
    );
    req.parallel.tp = tp;
    req.kv_dtype = str_of(r, "kv_cache_dtype").unwrap_or("auto").to_string();
    req.quant = requant.map(|f| f.name());
    let (config, mut args) = match flags.resolve(&model, &req) {
        Ok(x) => x,
        Err(e) => return report.skip(&id, "sglang", format!("flags: {e}")),
    };
    args.free_before_load = free_before;
    report.context(
        release
            .map(|r| format!("0.{}", r.minor))
            .unwrap_or_else(|| "unstated".into()),
        gpu_label,
    );
    let label = format!(
        "{id} {} tp{tp}",
        model.id.rsplit('/').next().unwrap_or(&model.id)
    );
    let e = match sglang::estimate(&model, &gpu, config, &args) {
        Ok(e) => e,
        Err(reason) => return report.skip(&id, "sglang", format!("profile refused: {reason}")),
    };
    let gib = |b: u64| b as f64 / GIB as f64;
    let observed_weights = f64_of(r, "weights_mem_usage_gb").or_else(|| {
        Some(f64_of(r, "avail_mem_before_load_gb")? - f64_of(r, "avail_mem_after_load_gb")?)
    });
    if let Some(w) = observed_weights {
        report.push(&label, "sglang", "weights", "GiB", w, gib(e.weights_bytes));
    }
    // Free memory before the load as the profile predicts it for a card that runs nothing else.
    if let Some(b) = f64_of(r, "avail_mem_before_load_gb") {
        if free_before.is_none() || shared_host {
            report.push(
                &label,
                "sglang",
                "free_before_load",
                "GiB",
                b,
                gib(gpu
                    .memory_bytes
                    .saturating_sub(sglang::used_before_load(tp))),
            );
        }
    }
    if let Some(t) = u64_of(r, "kv_tokens") {
        report.push(
            &label,
            "sglang",
            "max_total_num_tokens",
            "tokens",
            t as f64,
            e.kv_cache_tokens.unwrap_or(0) as f64,
        );
        // The pool formula alone: the same estimate given the log's own pre-load free memory.
        if let (None, Some(free)) = (free_before, gib_f("avail_mem_before_load_gb")) {
            let mut given = args.clone();
            given.free_before_load = Some(free);
            if let Ok(g) = sglang::estimate(&model, &gpu, config, &given) {
                report.push(
                    &label,
                    "sglang",
                    "pool_given_free_memory",
                    "tokens",
                    t as f64,
                    g.kv_cache_tokens.unwrap_or(0) as f64,
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// llama.cpp CPU runs (llamacpp_cpu_runs.jsonl): random-weight GGUF files described by their
// hyperparameters and tensor-type mix.

/// A ModelDesc from a record's hyperparameters (the files are synthetic, so they are described
/// here rather than in the catalogue): the config.json they stand for, through the one mapping.
/// Their architectures' own traits (Qwen2's q/k/v biases, Gemma 2's four norms and alternating
/// sliding layers) come from the mapping's family table.
fn model_from_hparams(name: &str, h: &Value) -> Result<ModelDesc, String> {
    let n = |k: &str| u64_of(h, k).ok_or_else(|| format!("hparams.{k} missing"));
    let arch = str_of(h, "arch").unwrap_or("llama");
    let mut config = json!({
        "model_type": arch,
        "max_position_embeddings": n("n_ctx_train")?,
        "torch_dtype": "float16",
        "num_hidden_layers": n("n_layer")?,
        "hidden_size": n("n_embd")?,
        "num_attention_heads": n("n_head")?,
        "num_key_value_heads": n("n_head_kv")?,
        "head_dim": n("head_dim_k")?,
        "intermediate_size": n("n_ff")?,
        "vocab_size": n("n_vocab")?,
        "tie_word_embeddings": h.get("tied_embeddings").and_then(Value::as_bool).unwrap_or(false),
        "sliding_window": null,
    });
    if let Some(w) = u64_of(h, "sliding_window") {
        // "layer il is SWA iff il % 2 < 1": even layers local, Gemma 2's pattern.
        config["sliding_window"] = json!(w);
    }
    let mut m = vramplan_core::arch::describe(&config).map_err(|e| e.to_string())?;
    let bias = m.first_attention().is_some_and(|a| a.qkv_bias);
    if bias != h.get("qkv_bias").and_then(Value::as_bool).unwrap_or(false) {
        return Err(format!(
            "{name}: the record's qkv_bias disagrees with the {arch} family"
        ));
    }
    m.id = name.to_string();
    m.family = arch.to_string();
    m.validate()?;
    Ok(m)
}

/// The per-role GGUF types of a record: the one assignment of the record's types to the
/// tensor groups (token_embd, output, attn q/o, attn k/v, ffn) whose element totals per type
/// equal the record's `tensor_type_mix` (1-D tensors are F32).
fn solve_type_mix(model: &ModelDesc, mix: &Value) -> Result<TypeMix, String> {
    let obj = mix.as_object().ok_or("tensor_type_mix is not an object")?;
    let types: Vec<(GgmlType, u64)> = obj
        .iter()
        .map(|(k, v)| {
            Ok((
                GgmlType::by_name(k).ok_or(format!("unknown ggml type {k}"))?,
                u64_of(v, "n_elements").ok_or("n_elements missing")?,
            ))
        })
        .collect::<Result<_, String>>()?;
    let f32t = GgmlType::by_name("F32").expect("F32");
    // Elements of each group, from the tensor inventory.
    let inv = model.inventory();
    let mut groups = [0u64; 6]; // embd, output, attn_qo, attn_kv, ffn, vectors
    let mut add = |t: &vramplan_core::model::Tensor, times: u64| {
        use vramplan_core::model::Split;
        use vramplan_core::precision::Role;
        let g = match (t.role, t.split) {
            (Role::Small, _) if t.cols == 1 => 5,
            (Role::Embedding, _) => 0,
            (Role::LmHead, _) => 1,
            (Role::Attention, Split::KvRows { .. }) => 3,
            (Role::Attention, _) => 2,
            _ => 4,
        };
        groups[g] += t.elements() * times;
    };
    for (_, t) in &inv.global {
        add(t, 1);
    }
    for (shape, count) in inv.kinds.iter().zip(inv.kind_counts()) {
        for t in &shape.tensors {
            add(t, count);
        }
    }
    let candidates: Vec<GgmlType> = types.iter().map(|t| t.0).collect();
    let mut found: Option<TypeMix> = None;
    let k = candidates.len();
    for code in 0..k.pow(5) {
        let pick = |i: u32| candidates[(code / k.pow(i)) % k];
        let assign = [pick(0), pick(1), pick(2), pick(3), pick(4), f32t];
        let ok = types.iter().all(|(t, elements)| {
            let sum: u64 = (0..6).filter(|&g| assign[g] == *t).map(|g| groups[g]).sum();
            sum == *elements
        });
        if ok {
            let m = TypeMix {
                embedding: assign[0],
                output: assign[1],
                attn_qo: assign[2],
                attn_kv: assign[3],
                ffn: assign[4],
                experts: assign[4],
                other: assign[4],
                file_type: None,
            };
            // An empty group (a tied model has no output tensor) may take any type; keep one.
            if found.is_none() {
                found = Some(m);
            }
        }
    }
    let mut m = found.ok_or("no assignment of the record's tensor types to the model's tensors reproduces its element counts")?;
    if model.tie_embeddings {
        // The tied head is the embedding itself.
        m.output = m.embedding;
    }
    Ok(m)
}

fn cpu_run_args(s: &Value) -> Result<LlamaCppArgs, String> {
    let kv = |k: &str| KvDtype::parse(str_of(s, k).unwrap_or("f16"));
    Ok(LlamaCppArgs {
        n_ctx: u64_of(s, "n_ctx").ok_or("n_ctx missing")?,
        n_seq: u64_of(s, "n_seq").unwrap_or(1),
        kv_unified: s
            .get("kv_unified")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        n_batch: u64_of(s, "n_batch").unwrap_or(2048),
        n_ubatch: u64_of(s, "n_ubatch").unwrap_or(512),
        type_k: kv("type_k")?,
        type_v: kv("type_v")?,
        flash_attn: FlashAttn::parse(str_of(s, "flash_attn").unwrap_or("auto"))?,
        swa_full: s.get("swa_full").and_then(Value::as_bool).unwrap_or(false),
        n_gpu_layers: Some(0),
        ..LlamaCppArgs::default()
    })
}

/// MiB as the llama.cpp log prints it: printf("%.2f"), which rounds an exact tie (1.125) to
/// even ("1.12") — byte counts in MiB are exact binary fractions, so ties do occur.
fn mib2(bytes: u64) -> f64 {
    let hundredths = bytes as f64 / MIB as f64 * 100.0;
    let r = if (hundredths - hundredths.trunc()) == 0.5 {
        let down = hundredths.trunc();
        if down % 2.0 == 0.0 {
            down
        } else {
            down + 1.0
        }
    } else {
        hundredths.round()
    };
    r / 100.0
}

/// The skip reason of a run llama.cpp refused, given whether the profile refuses it too.
fn refusal(r: &Value, profile: Result<(), String>) -> String {
    match profile {
        Err(e) => format!(
            "llama.cpp refused ({}); the profile refuses too: {e}",
            str_of(r, "error").unwrap_or("?")
        ),
        Ok(()) => format!(
            "llama.cpp refused ({}) but the profile accepts it",
            str_of(r, "error").unwrap_or("?")
        ),
    }
}

fn cpu_run_record(report: &mut Report, line: usize, r: &Value) {
    let id = format!("llamacpp_cpu_runs.jsonl:{line}");
    report.context("0c1e57098", "cpu");
    if r.get("ok").and_then(Value::as_bool) != Some(true) {
        // A refusal is a fact too: the profile must refuse the same settings.
        let refused = r
            .get("settings")
            .ok_or("no settings".to_string())
            .and_then(cpu_run_args)
            .and_then(|a| {
                let m = model_from_hparams("x", r.get("hparams").unwrap_or(&Value::Null))?;
                llamacpp::check(&m, &a)
            });
        return report.skip(&id, "llamacpp", refusal(r, refused));
    }
    let name = str_of(r, "model_name").unwrap_or("model");
    let s = r.get("settings").unwrap_or(&Value::Null);
    let prepared = model_from_hparams(name, r.get("hparams").unwrap_or(&Value::Null))
        .and_then(|m| {
            solve_type_mix(&m, r.get("tensor_type_mix").unwrap_or(&Value::Null)).map(|mix| (m, mix))
        })
        .and_then(|(m, mix)| cpu_run_args(s).map(|a| (m, mix, a)));
    let (model, mix, a) = match prepared {
        Ok(x) => x,
        Err(e) => return report.skip(&id, "llamacpp", e),
    };
    let label = context_label(&id, name, &a);
    let o = r.get("observed").unwrap_or(&Value::Null);
    let weights = GgufWeights::of(&model, &mix);
    let b = llamacpp::buffers(&model, &weights, &a, 0);
    // Weights: the model buffers hold every tensor once, except with mmap + CPU_REPACK, where
    // the mapped range still spans the repacked tensors (they would be counted twice).
    let load = r.get("load").unwrap_or(&Value::Null);
    let mapped_and_repacked = str_of(load, "load_mode") == Some("auto")
        && load.get("use_extra_bufts").and_then(Value::as_bool) == Some(true);
    if !mapped_and_repacked {
        if let Some(total) = f64_of(o, "model_buffer_total_MiB") {
            report.push(
                &label,
                "llamacpp",
                "weights",
                "MiB",
                total,
                mib2(weights.total_in_file(&model, &mix)),
            );
        }
    }
    // KV: every cache's cells (exact) and MiB (to the log's two decimals).
    let predicted = &b.caches;
    if let Some(observed) = o.get("kv_caches").and_then(Value::as_array) {
        if observed.len() != predicted.len() {
            report.push(
                &label,
                "llamacpp",
                "kv_cells",
                "caches",
                observed.len() as f64,
                predicted.len() as f64,
            );
        }
        for (oc, pc) in observed.iter().zip(predicted) {
            let cells = u64_of(oc, "cells").unwrap_or(0)
                * u64_of(oc, "n_stream").unwrap_or(1)
                * u64_of(oc, "layers").unwrap_or(0);
            report.push(
                &label,
                "llamacpp",
                "kv_cells",
                "cell-layers",
                cells as f64,
                (pc.cells * pc.streams * pc.layers) as f64,
            );
            if let (Some(k), Some(v)) = (f64_of(oc, "K_MiB"), f64_of(oc, "V_MiB")) {
                report.push(&label, "llamacpp", "kv_buffer", "MiB", k, mib2(pc.k_bytes));
                report.push(&label, "llamacpp", "kv_buffer", "MiB", v, mib2(pc.v_bytes));
            }
        }
    }
    push_context_buffers(report, &label, "llamacpp", o, &model, &a, &b);
}

/// A CPU-run record's label: its line, model and settings.
fn context_label(id: &str, name: &str, a: &LlamaCppArgs) -> String {
    format!(
        "{id} {name} c{} np{}{} ub{} {}/{} fa-{}{}",
        a.n_ctx,
        a.n_seq,
        if a.kv_unified { "u" } else { "" },
        a.n_ubatch,
        a.type_k.name(),
        a.type_v.name(),
        a.flash_attn.name(),
        if a.swa_full { "" } else { " swa" }
    )
}

/// A context's KV total, compute and output buffers and the simulated graph's node count
/// (where a builder is simulated) against one record's observations.
fn push_context_buffers(
    report: &mut Report,
    label: &str,
    engine: &'static str,
    o: &Value,
    model: &ModelDesc,
    a: &LlamaCppArgs,
    b: &llamacpp::Buffers,
) {
    if let Some(total) = f64_of(o, "kv_buffer_total_MiB") {
        let predicted = b.caches.iter().map(|c| mib2(c.bytes())).sum::<f64>();
        report.push(label, engine, "kv_buffer", "MiB", total, predicted);
    }
    let sum = |key: &str| {
        o.get(key)
            .and_then(Value::as_object)
            .map(|m| m.values().filter_map(Value::as_f64).sum::<f64>())
    };
    if let Some(total) = sum("compute_buffers_MiB") {
        report.push(
            label,
            engine,
            "compute_buffer",
            "MiB",
            total,
            mib2(b.cpu_compute),
        );
    }
    // The simulated reserve graph's size against "graph: nodes = N" (a check that the graph
    // built is llama.cpp's, node for node).
    if let (Some(nodes), Some(g)) = (
        u64_of(o, "graph_nodes"),
        llamacpp::cpu_reserve_graph(model, a),
    ) {
        let n = g.nodes.len() as f64;
        report.push(label, engine, "graph_nodes", "nodes", nodes as f64, n);
    }
    if let Some(total) = sum("output_buffer_MiB") {
        report.push(label, engine, "output_buffer", "MiB", total, mib2(b.output));
    }
}

// ---------------------------------------------------------------------------------------------
// llama.cpp ground truth (data/calibration/llamacpp_truth, scripts/llamacpp_truth): each model
// rebuilt from its GGUF metadata and tensor list through the same GGUF reader as a file on disk,
// each context compared buffer by buffer. Engine "llamacpp-truth" keeps these rows apart from
// the 470 CPU runs above.

/// A GGUF header holding a record's metadata, and its tensor list.
fn truth_header(
    m: &Value,
) -> Result<(vramplan_formats::GgufHeader, vramplan_formats::TensorList), String> {
    use vramplan_formats::gguf::{MetaArray, ValueType};
    use vramplan_formats::MetaValue;
    let arch = str_of(m, "arch").ok_or("arch missing")?;
    let h = m
        .get("hparams")
        .and_then(Value::as_object)
        .ok_or("hparams missing")?;
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert(
        "general.architecture".to_string(),
        MetaValue::String(arch.into()),
    );
    for (k, v) in h {
        if matches!(k.as_str(), "arch" | "n_vocab" | "tied_embeddings") {
            continue;
        }
        let value = match v {
            Value::Bool(b) => MetaValue::Bool(*b),
            Value::Number(n) if n.is_u64() => MetaValue::U32(
                u32::try_from(n.as_u64().unwrap_or(0)).map_err(|_| format!("{k} too large"))?,
            ),
            Value::Number(n) => MetaValue::F32(n.as_f64().unwrap_or(0.0) as f32),
            Value::Array(a) => MetaValue::Array(Box::new(MetaArray {
                elem_type: ValueType::U32,
                len: a.len() as u64,
                values: a
                    .iter()
                    .map(|x| {
                        x.as_u64()
                            .and_then(|x| u32::try_from(x).ok())
                            .map(MetaValue::U32)
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or(format!("{k}: not an array of integers"))?,
                complete: true,
            })),
            other => return Err(format!("{k}: unexpected value {other}")),
        };
        metadata.insert(format!("{arch}.{k}"), value);
    }
    let vocab = h.get("n_vocab").and_then(Value::as_u64);
    if let Some(n) = vocab {
        metadata.insert(format!("{arch}.vocab_size"), MetaValue::U32(n as u32));
    }
    let mut tensors = vramplan_formats::TensorList::new();
    for t in m
        .get("tensors")
        .and_then(Value::as_array)
        .ok_or("tensors missing")?
    {
        let name = str_of(t, "name").ok_or("tensor name")?;
        let ty = GgmlType::by_name(str_of(t, "type").ok_or("tensor type")?)
            .ok_or("unknown tensor type")?;
        let dims: Vec<u64> = t
            .get("ne")
            .and_then(Value::as_array)
            .ok_or("tensor ne")?
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        let n_elements = dims.iter().product::<u64>();
        let rows = dims.iter().skip(1).product::<u64>().max(1);
        let dtype = vramplan_formats::GgmlType::from_id(ty.id).ok_or("ggml type")?;
        tensors
            .push(
                name,
                dtype.name,
                &dims,
                n_elements,
                ty.row_bytes(dims.first().copied().unwrap_or(0)) * rows,
                0,
            )
            .map_err(|e| format!("tensor {name}: {}", e.describe().0))?;
    }
    let header = vramplan_formats::GgufHeader {
        version: 3,
        big_endian: false,
        alignment: 32,
        metadata,
        tensor_count: tensors.len() as u64,
        data_offset: 0,
        file_len: u64_of(m, "file_size_bytes").unwrap_or(0),
    };
    Ok((header, tensors))
}

fn truth_model(m: &Value) -> Result<ModelDesc, String> {
    let name = str_of(m, "model_name").unwrap_or("model");
    let (header, tensors) = truth_header(m)?;
    let file = vramplan_formats::model_file_from_gguf_header(name, header, tensors)
        .map_err(|e| e.to_string())?;
    let fm = vramplan_formats::to_model_desc(&file).map_err(|e| e.to_string())?;
    Ok(fm.desc)
}

/// The ground-truth records' folder under data/calibration, and its runs file there.
const TRUTH_FOLDER: &str = "llamacpp_truth/";
const TRUTH_RUNS: &str = "llamacpp_truth/cpu_runs.jsonl";

/// The ground-truth records of `source`, their file names prefixed by `folder`.
fn truth_records(report: &mut Report, source: &DataSource, folder: &str) -> Result<(), Failure> {
    let models: Vec<Value> = read_jsonl(source, &format!("{folder}models.jsonl"))?;
    let descs: Vec<(String, Result<ModelDesc, String>)> = models
        .iter()
        .map(|m| {
            (
                str_of(m, "model_name").unwrap_or("?").to_string(),
                truth_model(m),
            )
        })
        .collect();
    for (i, r) in read_jsonl(source, &format!("{folder}cpu_runs.jsonl"))?
        .iter()
        .enumerate()
    {
        let id = format!("{TRUTH_RUNS}:{}", i + 1);
        let name = str_of(r, "model_name").unwrap_or("?");
        let Some((_, desc)) = descs.iter().find(|d| d.0 == name) else {
            report.skip(
                &id,
                "llamacpp-truth",
                format!("model {name} not in models.jsonl"),
            );
            continue;
        };
        match desc {
            Ok(model) => truth_run(report, &id, model, r),
            Err(e) => report.skip(&id, "llamacpp-truth", format!("{name}: {e}")),
        }
    }
    Ok(())
}

fn truth_run(report: &mut Report, id: &str, model: &ModelDesc, r: &Value) {
    let name = str_of(r, "model_name").unwrap_or("?");
    let s = r.get("settings").unwrap_or(&Value::Null);
    let a = match cpu_run_args(s) {
        Ok(a) => a,
        Err(e) => return report.skip(id, "llamacpp-truth", e),
    };
    if r.get("ok").and_then(Value::as_bool) != Some(true) {
        // A refusal is a fact too: listed with whether the profile refuses the same settings.
        return report.skip(id, "llamacpp-truth", refusal(r, llamacpp::check(model, &a)));
    }
    let o = r.get("observed").unwrap_or(&Value::Null);
    let label = context_label(id, name, &a);
    let mix = TypeMix::uniform(GgmlType::by_name("F16").expect("F16"));
    let weights = GgufWeights::of(model, &mix);
    let b = llamacpp::buffers(model, &weights, &a, 0);
    push_context_buffers(report, &label, "llamacpp-truth", o, model, &a, &b);
    // Recurrent memory (llama_memory_recurrent, alone or in a hybrid): its R and S rows, exact.
    let observed_rs = o.get("rs_caches").and_then(Value::as_array);
    match observed_rs.and_then(|v| v.first()) {
        Some(rs) => {
            for (key, predicted) in [("R_MiB", b.states.r_bytes), ("S_MiB", b.states.s_bytes)] {
                if let Some(x) = f64_of(rs, key) {
                    report.push(
                        &label,
                        "llamacpp-truth",
                        "rs_buffer",
                        "MiB",
                        x,
                        mib2(predicted),
                    );
                }
            }
            if let Some(cells) = u64_of(rs, "cells") {
                report.push(
                    &label,
                    "llamacpp-truth",
                    "rs_cells",
                    "cells",
                    cells as f64,
                    b.states.cells as f64,
                );
            }
        }
        None if b.states.layers > 0 => report.skip(
            id,
            "llamacpp-truth",
            format!(
                "{name}: llama.cpp allocated no recurrent memory, the profile predicts {:.2} MiB",
                mib2(b.states.bytes())
            ),
        ),
        None => {}
    }
}

// ---------------------------------------------------------------------------------------------
// llama.cpp / ollama logs from issues (llamacpp.jsonl): only records whose model is named and
// in the catalogue, and whose settings the excerpt states, can be reproduced.

fn named_model(text: &str) -> Option<ModelDesc> {
    let t = text.to_ascii_lowercase();
    catalogue()
        .models
        .iter()
        .filter_map(|m| {
            let last = m.id.rsplit('/').next()?.to_ascii_lowercase();
            t.contains(&last).then_some((last.len(), m))
        })
        .max_by_key(|x| x.0)
        .map(|x| x.1.clone())
}

/// A value printed in the verbatim lines as "key = value".
fn verbatim_value(r: &Value, key: &str) -> Option<String> {
    let text = match r.get("verbatim")? {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return None,
    };
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim().rsplit(' ').next()? == key)
            .then(|| v.split_whitespace().next().unwrap_or("").to_string())
    })
}

fn llamacpp_log_record(report: &mut Report, line: usize, r: &Value) {
    let id = format!("llamacpp.jsonl:{line}");
    report.context("unstated", "unknown");
    let engine_text = str_of(r, "engine").unwrap_or("");
    let engine: &'static str = if engine_text.starts_with("ollama") {
        "ollama"
    } else {
        "llamacpp"
    };
    if engine_text.contains("ik_llama") {
        return report.skip(
            &id,
            engine,
            "ik_llama.cpp fork: its buffers are not mainline llama.cpp's",
        );
    }
    let Some(model) = str_of(r, "model").and_then(named_model) else {
        return report.skip(
            &id,
            engine,
            "model not named in the excerpt (or not in the catalogue)",
        );
    };
    let Some(n_ctx) = u64_of(r, "n_ctx") else {
        return report.skip(
            &id,
            engine,
            format!("{}: n_ctx not in the excerpt", model.id),
        );
    };
    let kv = |k: &str| str_of(r, k).map(KvDtype::parse).transpose();
    let (Ok(type_k), Ok(type_v)) = (kv("type_k"), kv("type_v")) else {
        return report.skip(&id, engine, "cache type not understood");
    };
    let ub = verbatim_value(r, "n_ubatch")
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let nb = verbatim_value(r, "n_batch")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let fa = match verbatim_value(r, "flash_attn").as_deref() {
        Some("1") | Some("enabled") => FlashAttn::On,
        Some("0") | Some("disabled") => FlashAttn::Off,
        _ => {
            return report.skip(
                &id,
                engine,
                format!("{}: flash attention setting not in the excerpt", model.id),
            )
        }
    };
    let a = LlamaCppArgs {
        n_ctx,
        n_batch: nb,
        n_ubatch: ub,
        type_k: type_k.unwrap_or(KvDtype::F16),
        type_v: type_v.unwrap_or(KvDtype::F16),
        flash_attn: fa,
        n_gpu_layers: Some(model.num_layers + 1),
        ..LlamaCppArgs::default()
    };
    let label = format!(
        "{id} {} c{n_ctx} ub{ub} fa-{}",
        model.id.rsplit('/').next().unwrap_or(&model.id),
        a.flash_attn.name()
    );
    // Weights need the file's type mix, which these excerpts do not give; KV and compute do not.
    let mix = TypeMix::uniform(GgmlType::by_name("Q4_K").expect("Q4_K"));
    let w = GgufWeights::of(&model, &mix);
    let b = llamacpp::buffers(&model, &w, &a, model.num_layers + 1);
    if let Some(kv_total) = f64_of(r, "kv_total_mib") {
        report.push(
            &label,
            engine,
            "kv_buffer",
            "MiB",
            kv_total,
            mib2(b.gpu_kv + b.cpu_kv),
        );
    }
    if let Some(c) = r.get("compute_buffers_mib").and_then(Value::as_object) {
        for (dev, v) in c {
            let Some(v) = v.as_f64() else { continue };
            let predicted = if dev.starts_with("CUDA_Host") || dev == "CPU" {
                b.cpu_compute
            } else {
                b.gpu_compute
            };
            report.push(&label, engine, "compute_buffer", "MiB", v, mib2(predicted));
        }
    }
    if let Some(out) = r.get("output_buffer_mib").and_then(Value::as_object) {
        let total: f64 = out.values().filter_map(Value::as_f64).sum();
        report.push(
            &label,
            engine,
            "output_buffer",
            "MiB",
            total,
            mib2(b.output),
        );
    }
}
