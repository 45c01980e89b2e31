//! `vramplan fit`: the models that run on this machine (its GPUs as nvidia-smi, rocm-smi or
//! macOS report them, and its host memory) or on named GPUs. For every catalogue model and every
//! model in the local stores (HF cache, ollama): the most precise weights and KV-cache dtype that
//! an engine profile accepts at `--context` and `--concurrency`, with the longest context and the
//! most sequences that configuration reaches; for the others, one line on why not. Each engine
//! is the planner's evaluator (plan.rs), so `fit`, `plan` and `estimate` agree.

use crate::commands::plan::{evaluator, llama_server_args, quant_options, PlanEngine};
use crate::render::table;
use crate::Failure;
use clap::Args;
use serde::Serialize;
use vramplan_core::engine::llamacpp::{self, TypeMix};
use vramplan_core::engine::vllm::Release;
use vramplan_core::fit::{best, Want};
use vramplan_core::names::has_words;
use vramplan_core::units::{count, gib, params_short, thousands};
use vramplan_core::{catalogue, Config, Gpu, KvDtype, ModelDesc, WeightFormat};
use vramplan_formats::stores::scan_default_stores;
use vramplan_formats::{inspect, to_model_desc, Format};

#[derive(Args, Clone)]
pub struct FitArgs {
    /// GPU kind, as you would write it (rtx-4090, "RTX 4090", H100, "A100 80GB"; see `vramplan
    /// gpus`). Default: the GPUs of this machine, as nvidia-smi, rocm-smi or macOS report them.
    #[arg(long, short = 'g')]
    pub gpu: Option<String>,
    /// GPUs of that kind serving one model together (tensor parallel, then pipeline stages).
    /// Default: as many as were found, or 1 with --gpu.
    #[arg(long)]
    pub gpus: Option<u64>,
    /// Host memory, with its unit (64GiB): what llama.cpp may keep off the GPU. Default: this
    /// machine's (/proc/meminfo, or sysctl hw.memsize on macOS).
    #[arg(long)]
    pub host_memory: Option<String>,
    /// Tokens per sequence (prompt + output).
    #[arg(long, short = 'c', default_value_t = 8192)]
    pub context: u64,
    /// Sequences served at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: u64,
    /// Engine(s) to check each model under; repeat for several. Default: vLLM for safetensors
    /// checkpoints (the catalogue), llama.cpp for GGUF files (ollama, .gguf); on Apple silicon
    /// llama.cpp for all (vLLM and SGLang need CUDA or ROCm).
    #[arg(long, value_enum)]
    pub engine: Vec<PlanEngine>,
    /// Only models whose family or id has these words (llama, qwen2.5, "llama 3", gemma-2).
    #[arg(long)]
    pub family: Option<String>,
    /// Only models with at least this many parameters (7B, 500M).
    #[arg(long)]
    pub min_params: Option<String>,
    /// Only models with at most this many parameters (70B).
    #[arg(long)]
    pub max_params: Option<String>,
    /// Only the catalogue: skip the Hugging Face cache and ollama stores.
    #[arg(long)]
    pub no_local: bool,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// The hardware the answer is for.
#[derive(Serialize, Clone)]
pub struct Hardware {
    pub gpu: String,
    pub gpu_name: String,
    pub gpus: u64,
    pub gpu_memory_bytes: u64,
    pub host_memory_bytes: Option<u64>,
    /// "--gpu", "nvidia-smi", "rocm-smi" or "sysctl (Apple silicon)".
    pub detected_by: String,
    pub unified_memory: bool,
}

/// One model under one engine.
#[derive(Serialize)]
pub struct Row {
    pub model: String,
    /// "catalogue", or the local store it was found in ("hf-cache", "ollama").
    pub source: String,
    pub family: String,
    pub params: u64,
    pub engine: String,
    /// It runs: every layer on the GPUs, or (llama.cpp, `offload`) some in host memory.
    pub fits: bool,
    /// llama.cpp keeps some layers in host memory (`gpu_layers` of `model_layers` on the GPU).
    pub offload: bool,
    pub quant: Option<String>,
    pub kv_dtype: Option<String>,
    pub tp: Option<u64>,
    pub pp: Option<u64>,
    pub memory_per_gpu_bytes: Option<u64>,
    /// llama.cpp with offload: the model, KV and compute buffers kept in host memory.
    pub host_bytes: Option<u64>,
    pub gpu_layers: Option<u64>,
    pub model_layers: Option<u64>,
    /// Longest context per sequence at `concurrency` sequences, with this configuration.
    pub max_context: Option<u64>,
    /// Most sequences of `context` tokens at once, with this configuration.
    pub max_concurrency: Option<u64>,
    /// Why it does not run (one line), or `null`.
    pub reason: Option<String>,
}

#[derive(Serialize)]
pub struct FitOutput {
    pub hardware: Hardware,
    pub context: u64,
    pub concurrency: u64,
    pub models: Vec<Row>,
    pub notes: Vec<String>,
}

/// A model to check and where it came from.
struct Candidate {
    desc: ModelDesc,
    params: u64,
    source: String,
    gguf: bool,
    /// Read from a file: its own precision only.
    local: bool,
}

fn engine_name(e: PlanEngine) -> &'static str {
    match e {
        PlanEngine::Vllm => "vllm",
        PlanEngine::Llamacpp => "llamacpp",
        PlanEngine::Sglang => "sglang",
        PlanEngine::Generic => "generic",
    }
}

/// "7B", "1.5b", "500M", "70e9", or a plain count.
fn parse_params(flag: &str, text: &str) -> Result<u64, Failure> {
    let t = text.trim().to_ascii_lowercase();
    let (num, scale) = match t.chars().last() {
        Some('b') => (&t[..t.len() - 1], 1e9),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('k') => (&t[..t.len() - 1], 1e3),
        _ => (t.as_str(), 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 && x * scale < 1e16 => Ok((x * scale) as u64),
        _ => Err(Failure::input(format!(
            "{flag} '{text}': give a parameter count such as 7B, 1.5B or 500M"
        ))),
    }
}

/// The hardware: named with --gpu, else detected (the most numerous kind found).
fn hardware(a: &FitArgs, notes: &mut Vec<String>) -> Result<(Gpu, Hardware), Failure> {
    let host = crate::hardware::host_memory_or(a.host_memory.as_deref()).map_err(Failure::input)?;
    let (gpu, found, detected_by) = match &a.gpu {
        Some(q) => (
            catalogue().gpu(q).map_err(Failure::input)?.clone(),
            1,
            "--gpu".to_string(),
        ),
        None => {
            let d = crate::hardware::detect_gpus();
            notes.extend(d.notes);
            let mut kinds: Vec<(Gpu, u64)> = Vec::new();
            for g in d.gpus {
                match kinds.iter_mut().find(|(k, _)| k.id == g.id) {
                    Some((_, n)) => *n += 1,
                    None => kinds.push((g, 1)),
                }
            }
            kinds.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.memory_bytes.cmp(&a.0.memory_bytes)));
            let Some((gpu, n)) = kinds.first().cloned() else {
                return Err(Failure::input(
                    "no GPU found (nvidia-smi, rocm-smi and macOS's sysctl report none); name one with --gpu ID [--gpus N] (see `vramplan gpus`)",
                ));
            };
            if kinds.len() > 1 {
                notes.push(format!(
                    "several GPU kinds found; answering for the {n} × {}",
                    gpu.id
                ));
            }
            (gpu, n, d.source.to_string())
        }
    };
    let gpus = a.gpus.unwrap_or(found);
    if gpus == 0 || gpus > 64 {
        return Err(Failure::input("--gpus must be between 1 and 64"));
    }
    let unified = gpu.vendor == "apple";
    let hw = Hardware {
        gpu: gpu.id.clone(),
        gpu_name: gpu.name.clone(),
        gpus,
        gpu_memory_bytes: gpu.memory_bytes,
        host_memory_bytes: host,
        detected_by,
        unified_memory: unified,
    };
    Ok((gpu, hw))
}

/// Catalogue models, then the local stores' models.
fn candidates(a: &FitArgs, notes: &mut Vec<String>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = catalogue()
        .models
        .iter()
        .map(|m| Candidate {
            params: m.inventory().params(),
            desc: m.clone(),
            source: "catalogue".into(),
            gguf: false,
            local: false,
        })
        .collect();
    if a.no_local {
        return out;
    }
    for f in scan_default_stores() {
        let source = match f.store {
            vramplan_formats::stores::StoreKind::Ollama => "ollama",
            _ => "hf-cache",
        };
        match inspect(&f.path).and_then(|file| {
            let gguf = file.format == Format::Gguf;
            to_model_desc(&file).map(|fm| (fm.desc, gguf))
        }) {
            Ok((mut desc, gguf)) => {
                desc.id = f.name.clone();
                out.push(Candidate {
                    params: desc.inventory().params(),
                    desc,
                    source: source.into(),
                    gguf,
                    local: true,
                });
            }
            Err(e) => notes.push(format!("{} ({source}): not read: {e}", f.name)),
        }
    }
    out
}

fn keep(a: &FitArgs, c: &Candidate, min: Option<u64>, max: Option<u64>) -> bool {
    let (m, params) = (&c.desc, c.params);
    if min.is_some_and(|n| params < n) || max.is_some_and(|n| params > n) {
        return false;
    }
    // By words, not letters: `llama-3` is Llama 3.x, not CodeLlama-34b.
    match &a.family {
        None => true,
        Some(f) => has_words(&m.family, f) || has_words(&m.id, f),
    }
}

/// Precisions to try, most precise first, and KV dtypes likewise.
fn ladders(c: &Candidate, engine: PlanEngine) -> Result<(Vec<WeightFormat>, Vec<KvDtype>), String> {
    let kv = match engine {
        PlanEngine::Llamacpp => vec![KvDtype::F16, KvDtype::parse("q8_0")?],
        _ => vec![KvDtype::F16, KvDtype::Fp8],
    };
    if c.local || (c.desc.quantization.is_some() && engine != PlanEngine::Llamacpp) {
        // A file, or a checkpoint published quantized (AWQ, GPTQ, FP8, W8A8), holds one
        // precision: its own.
        return Ok((vec![c.desc.native_format()], kv));
    }
    let mut weights = quant_options(&c.desc, &[], engine).map_err(|f| f.message)?;
    if engine != PlanEngine::Llamacpp && weights.first() == Some(&WeightFormat::F32) {
        // vLLM and SGLang serve fp32 checkpoints in bf16 unless told --dtype float32 (vLLM
        // config.py `_get_and_verify_dtype`; estimate.rs `vllm_dtype`).
        weights[0] = WeightFormat::Bf16;
    }
    Ok((weights, kv))
}

/// llama.cpp with some layers in host memory: the most precise weights whose largest `-ngl`
/// leaves a host part that fits host memory.
fn offload(
    model: &ModelDesc,
    gpu: &Gpu,
    want: Want,
    weights: &[WeightFormat],
    host: u64,
) -> Option<(WeightFormat, vramplan_core::Estimate, u64)> {
    for &w in weights {
        let mix = TypeMix::from_format(w).ok()?;
        let c = Config::new(w, KvDtype::F16, want.context, want.concurrency);
        let mut args = llama_server_args(&c, want.concurrency, model.num_layers);
        args.n_gpu_layers = None;
        let Ok(e) = llamacpp::estimate(model, gpu, c, &mix, &args) else {
            continue;
        };
        let host_bytes = e.cpu_model_buffer_bytes.unwrap_or(0)
            + e.cpu_kv_buffer_bytes.unwrap_or(0)
            + e.cpu_compute_buffer_bytes.unwrap_or(0)
            + e.output_buffer_bytes.unwrap_or(0);
        if e.fits && e.gpu_layers.unwrap_or(0) > 0 && host_bytes <= host {
            return Some((w, e, host_bytes));
        }
    }
    None
}

fn check(c: &Candidate, engine: PlanEngine, gpu: &Gpu, hw: &Hardware, a: &FitArgs) -> Row {
    let mut row = Row {
        model: c.desc.id.clone(),
        source: c.source.clone(),
        family: c.desc.family.clone(),
        params: c.params,
        engine: engine_name(engine).into(),
        fits: false,
        offload: false,
        quant: None,
        kv_dtype: None,
        tp: None,
        pp: None,
        memory_per_gpu_bytes: None,
        host_bytes: None,
        gpu_layers: None,
        model_layers: None,
        max_context: None,
        max_concurrency: None,
        reason: None,
    };
    if c.gguf && matches!(engine, PlanEngine::Vllm | PlanEngine::Sglang) {
        row.reason = Some("a GGUF file: served by llama.cpp or ollama".into());
        return row;
    }
    if hw.unified_memory && matches!(engine, PlanEngine::Vllm | PlanEngine::Sglang) {
        row.reason = Some(format!(
            "{} needs CUDA or ROCm: not on Apple silicon",
            engine_name(engine)
        ));
        return row;
    }
    let release = Release::parse("latest").expect("latest is a release");
    let utilization = match engine {
        PlanEngine::Vllm => release.default_utilization(),
        // Unused: each GPU gets SGLang's own release default (plan.rs `evaluator`).
        PlanEngine::Sglang => 0.88,
        _ => vramplan_core::engine::generic::DEFAULT_UTILIZATION,
    };
    let want = Want {
        context: a.context,
        concurrency: a.concurrency,
        gpus: hw.gpus,
        utilization,
    };
    if a.context > c.desc.max_context {
        row.reason = Some(format!(
            "its context limit is {} tokens (max_position_embeddings): ask for --context {} or less",
            thousands(c.desc.max_context),
            c.desc.max_context
        ));
        return row;
    }
    let (weights, kvs) = match ladders(c, engine) {
        Ok(l) => l,
        Err(e) => {
            row.reason = Some(e);
            return row;
        }
    };
    let eval = evaluator(engine, release, false);
    match best(&*eval, &c.desc, gpu, want, &weights, &kvs) {
        Ok(found) => {
            let e = &found.estimate;
            row.fits = true;
            row.quant = Some(found.weights.name());
            row.kv_dtype = Some(found.kv_dtype.name());
            row.tp = Some(found.parallel.tp);
            row.pp = Some(found.parallel.pp);
            row.memory_per_gpu_bytes = Some(e.total_bytes);
            row.max_concurrency = Some(e.max_concurrency);
            row.gpu_layers = e.gpu_layers;
            row.model_layers = e.model_layers;
            // llama.cpp's -c is the cells of all the slots: per sequence is -c ÷ slots.
            row.max_context = Some(if engine == PlanEngine::Llamacpp {
                e.max_context / a.concurrency.max(1)
            } else {
                e.max_context
            });
        }
        Err(why) => {
            let host = hw.host_memory_bytes.unwrap_or(0);
            let tries_offload =
                engine == PlanEngine::Llamacpp && hw.gpus == 1 && !hw.unified_memory;
            let offloaded = tries_offload
                .then(|| offload(&c.desc, gpu, want, &weights, host))
                .flatten();
            match offloaded {
                Some((w, e, host_bytes)) => {
                    row.fits = true;
                    row.offload = true;
                    row.quant = Some(w.name());
                    row.kv_dtype = Some(KvDtype::F16.name());
                    row.tp = Some(1);
                    row.pp = Some(1);
                    row.memory_per_gpu_bytes = Some(e.total_bytes);
                    row.host_bytes = Some(host_bytes);
                    row.gpu_layers = e.gpu_layers;
                    row.model_layers = e.model_layers;
                    row.max_context = Some(e.max_context / a.concurrency.max(1));
                    row.max_concurrency = Some(a.concurrency);
                }
                None if tries_offload => {
                    row.reason = Some(format!(
                        "{why}; with layers in host memory, more than its {}",
                        gib(host)
                    ))
                }
                None => row.reason = Some(why),
            }
        }
    }
    row
}

/// What `vramplan fit --json` prints. `local` false: the catalogue only and no detection (the
/// web API: a server reads neither its own GPUs nor its disk for a visitor).
pub fn compute(a: &FitArgs, local: bool) -> Result<FitOutput, Failure> {
    if a.context == 0 || a.concurrency == 0 {
        return Err(Failure::input(
            "--context and --concurrency must each be at least 1",
        ));
    }
    if a.context > 1 << 24 || a.concurrency > 1 << 16 {
        return Err(Failure::input(
            "--context (limit 2^24) or --concurrency (limit 2^16) is absurd",
        ));
    }
    if !local && a.gpu.is_none() {
        return Err(Failure::input("give gpu: the server does not detect GPUs"));
    }
    let min = a
        .min_params
        .as_deref()
        .map(|t| parse_params("--min-params", t))
        .transpose()?;
    let max = a
        .max_params
        .as_deref()
        .map(|t| parse_params("--max-params", t))
        .transpose()?;
    let mut notes = Vec::new();
    let (gpu, hw) = hardware(a, &mut notes)?;
    let mut list = if local {
        candidates(a, &mut notes)
    } else {
        candidates(
            &FitArgs {
                no_local: true,
                ..a.clone()
            },
            &mut notes,
        )
    };
    list.retain(|c| keep(a, c, min, max));
    let mut rows = Vec::new();
    for c in &list {
        let engines: Vec<PlanEngine> = if !a.engine.is_empty() {
            a.engine.clone()
        } else if c.gguf || hw.unified_memory {
            vec![PlanEngine::Llamacpp]
        } else {
            vec![PlanEngine::Vllm]
        };
        for e in engines {
            rows.push(check(c, e, &gpu, &hw, a));
        }
    }
    // Largest first: the most capable model that runs is the first row that fits.
    rows.sort_by(|x, y| y.params.cmp(&x.params).then(x.model.cmp(&y.model)));
    Ok(FitOutput {
        hardware: hw,
        context: a.context,
        concurrency: a.concurrency,
        models: rows,
        notes,
    })
}

pub fn run(a: FitArgs) -> Result<(), Failure> {
    let out = compute(&a, true)?;
    crate::commands::estimate::print_json_or(a.json, &out, || render(&out))
}

fn render(out: &FitOutput) -> String {
    let hw = &out.hardware;
    let host = hw
        .host_memory_bytes
        .map(|h| format!("; host memory {}", gib(h)))
        .unwrap_or_default();
    let mut s = format!(
        "{} × {} ({} each, {}{host})\n{} of {} tokens\n\n",
        hw.gpus,
        hw.gpu_name,
        gib(hw.gpu_memory_bytes),
        if hw.detected_by == "--gpu" {
            "as named".to_string()
        } else {
            format!("found by {}", hw.detected_by)
        },
        count(out.concurrency, "concurrent sequence"),
        thousands(out.context),
    );
    let runs: Vec<&Row> = out.models.iter().filter(|r| r.fits).collect();
    let cells: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let placement = if r.offload {
                format!(
                    "{}/{} layers on GPU, {} in host memory",
                    r.gpu_layers.unwrap_or(0),
                    r.model_layers.unwrap_or(0),
                    gib(r.host_bytes.unwrap_or(0))
                )
            } else if r.tp.unwrap_or(1) * r.pp.unwrap_or(1) > 1 {
                format!("TP {} × PP {}", r.tp.unwrap_or(1), r.pp.unwrap_or(1))
            } else {
                "GPU".into()
            };
            vec![
                r.model.clone(),
                if r.source == "catalogue" {
                    String::new()
                } else {
                    r.source.clone()
                },
                params_short(r.params),
                r.engine.clone(),
                opt(&r.quant),
                opt(&r.kv_dtype),
                r.memory_per_gpu_bytes.map(gib).unwrap_or_default(),
                r.max_context.map(thousands).unwrap_or_default(),
                r.max_concurrency.map(thousands).unwrap_or_default(),
                placement,
            ]
        })
        .collect();
    s.push_str(&format!(
        "Runs ({}), largest first, each in its most precise weights and KV cache that fit:\n",
        count(runs.len() as u64, "model")
    ));
    if cells.is_empty() {
        s.push_str("  none\n");
    } else {
        s.push_str(&table(
            &[
                "model",
                "store",
                "params",
                "engine",
                "weights",
                "KV",
                "per GPU",
                "max context",
                "max seqs",
                "placement",
            ],
            &cells,
            &[
                false, false, true, false, false, false, true, true, true, false,
            ],
        ));
    }
    let misses: Vec<&Row> = out.models.iter().filter(|r| !r.fits).collect();
    if !misses.is_empty() {
        s.push_str(&format!(
            "\nDoes not run ({}):\n",
            count(misses.len() as u64, "model")
        ));
        for r in misses {
            s.push_str(&format!(
                "  {} ({}, {}): {}\n",
                r.model,
                params_short(r.params),
                r.engine,
                r.reason.as_deref().unwrap_or("-")
            ));
        }
    }
    s.push_str("\nmax context: longest per sequence at this concurrency; max seqs: most sequences of this context at once.\n");
    for n in &out.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_as_people_write_them() {
        assert_eq!(
            parse_params("--min-params", "7B").ok().unwrap(),
            7_000_000_000
        );
        assert_eq!(
            parse_params("--min-params", "1.5b").ok().unwrap(),
            1_500_000_000
        );
        assert_eq!(
            parse_params("--min-params", "500M").ok().unwrap(),
            500_000_000
        );
        assert!(parse_params("--min-params", "lots").is_err());
        assert!(parse_params("--min-params", "1e30").is_err());
    }
}
