//! `vramplan plan`: the cheapest deployments that serve a workload, with roofline throughput
//! and the exact launch command; when nothing does, the smallest changes that would.

use crate::commands::estimate::print_json_or;
use crate::render::table;
use crate::Failure;
use clap::{Args, ValueEnum};
use serde::Serialize;
use vramplan_core::engine::llamacpp::{self, FlashAttn, LlamaCppArgs, TypeMix};
use vramplan_core::engine::sglang::{self, SglangArgs, SglangRelease};
use vramplan_core::engine::vllm::{self, Release, VllmArgs};
use vramplan_core::plan::{advise, search_within, Advice, Deployment, Evaluator, Space, Workload};
use vramplan_core::units::{count, gib, thousands};
use vramplan_core::{catalogue, Config, Gpu, KvDtype, ModelDesc, WeightFormat};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum PlanEngine {
    Vllm,
    Llamacpp,
    Sglang,
    Generic,
}

#[derive(Args)]
pub struct PlanArgs {
    /// Repeat to compare a quantized larger model against a smaller one.
    #[arg(long, short = 'm', required = true, help = crate::model_source::MODEL_HELP, long_help = format!("{}. Repeat --model to compare a quantized larger model against a smaller one.", crate::model_source::MODEL_HELP))]
    pub model: Vec<String>,
    /// Tokens per sequence (prompt + output).
    #[arg(long, short = 'c', default_value_t = 8192)]
    pub context: u64,
    /// Sequences served at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: u64,
    /// Requests per second to sustain (roofline check).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Output tokens per request, for --rate (the rest of the context is prompt).
    #[arg(long, default_value_t = 256)]
    pub output_tokens: u64,
    /// Engine whose accounting each plan must pass.
    #[arg(long, value_enum, default_value_t = PlanEngine::Vllm)]
    pub engine: PlanEngine,
    /// vLLM release whose accounting applies.
    #[arg(long, default_value = "latest")]
    pub vllm_version: String,
    /// GPU kinds to consider (default: every catalogue GPU).
    #[arg(long, short = 'g')]
    pub gpu: Vec<String>,
    /// Most GPUs in total per deployment.
    #[arg(long, default_value_t = 8)]
    pub max_gpus: u64,
    /// Weight precisions to consider (default: the checkpoint's own, fp8 and awq).
    #[arg(long, short = 'q')]
    pub quant: Vec<String>,
    /// KV-cache dtypes to consider (default: fp16 and fp8).
    #[arg(long)]
    pub kv_dtype: Vec<String>,
    /// Share of each GPU the engine may use (default: the engine's own).
    #[arg(long)]
    pub gpu_memory_utilization: Option<f64>,
    /// Plans to print (JSON prints all).
    #[arg(long, default_value_t = 12)]
    pub top: usize,
    /// Seconds the search may run; past them it answers with the plans found so far and says
    /// it was cut short (`truncated`). The web API caps it at the server's own budget.
    #[arg(long, default_value_t = 60.0)]
    pub time_budget: f64,
    /// Most candidates (model × GPU kind × precision × KV dtype × tp × pp) one request may ask
    /// to search; a larger search is refused before it starts.
    #[arg(long, default_value_t = DEFAULT_MAX_CANDIDATES)]
    pub max_candidates: u64,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub hub: crate::model_source::HubArgs,
}

/// A search size that covers every catalogue GPU × 3 precisions × 2 KV dtypes × every shape up
/// to 8 GPUs for a dozen models (~2,700 candidates each), and refuses the 16 models × 16
/// precisions × 11 KV dtypes × 512 GPUs (tens of millions) that held the server for minutes.
pub const DEFAULT_MAX_CANDIDATES: u64 = 50_000;
/// Longest `--time-budget` accepted: a day.
const MAX_TIME_BUDGET_S: f64 = 86_400.0;

#[derive(Serialize)]
struct PlanOutput {
    plans: Vec<Deployment>,
    advice: Vec<Advice>,
    /// The models given with `--model` that no plan serves, each with the reason.
    no_plan: Vec<NoPlan>,
    /// Why the search stopped before covering its space (time budget spent, request
    /// cancelled), or null when it covered everything.
    truncated: Option<String>,
}

#[derive(Serialize)]
struct NoPlan {
    model: String,
    reason: String,
}

/// What may end a search early: its deadline, and a flag the caller sets when the answer is no
/// longer wanted (the web client went away, the server is stopping).
pub struct Budget<'a> {
    pub deadline: std::time::Instant,
    pub seconds: f64,
    pub cancelled: &'a [&'a std::sync::atomic::AtomicBool],
}

impl Budget<'_> {
    fn stop(&self, visited: u64) -> Option<String> {
        if self
            .cancelled
            .iter()
            .any(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Some(format!(
                "cancelled (the client went away or the server is stopping) after {} candidates",
                thousands(visited)
            ));
        }
        (std::time::Instant::now() >= self.deadline).then(|| {
            format!(
                "time budget of {} s spent after {} candidates",
                self.seconds,
                thousands(visited)
            )
        })
    }
}

/// The evaluator for an engine: every plan is checked by the profile its launch command meets.
/// `fraction_given`: whether `--mem-fraction-static` / `--gpu-memory-utilization` was given
/// (else SGLang takes its release's default for each GPU).
pub fn evaluator(
    engine: PlanEngine,
    release: Release,
    fraction_given: bool,
) -> Box<Evaluator<'static>> {
    match engine {
        PlanEngine::Generic => {
            Box::new(|m: &ModelDesc, g: &Gpu, c: Config| vramplan_core::estimate(m, g, c))
        }
        PlanEngine::Vllm => Box::new(move |m: &ModelDesc, g: &Gpu, c: Config| {
            let mut args = VllmArgs::new(release);
            args.utilization_given = true;
            vllm::estimate(m, g, c, &args)
        }),
        PlanEngine::Sglang => Box::new(move |m: &ModelDesc, g: &Gpu, c: Config| {
            let mut args = SglangArgs::new(SglangRelease::NEWEST);
            args.mem_fraction_static = fraction_given.then_some(c.utilization);
            sglang::estimate(m, g, c, &args)
        }),
        PlanEngine::Llamacpp => Box::new(llamacpp_evaluator),
    }
}

/// llama-server args for `slots` sequences of `context` tokens, every layer on the GPU (a plan
/// that leaves layers on the CPU is not a GPU deployment), flash attention on.
pub(crate) fn llama_server_args(c: &Config, slots: u64, layers: u64) -> LlamaCppArgs {
    LlamaCppArgs {
        n_ctx: c.context.saturating_mul(slots),
        n_seq: slots,
        type_k: c.kv_dtype,
        type_v: c.kv_dtype,
        flash_attn: FlashAttn::On,
        n_gpu_layers: Some(layers + 1),
        ..LlamaCppArgs::default()
    }
}

/// The llama.cpp profile as an evaluator: `batch` becomes `-np` slots of `context` cells each
/// (`-c` = context × slots), and max_concurrency the most slots whose buffers fit the GPU.
fn llamacpp_evaluator(
    m: &ModelDesc,
    g: &Gpu,
    c: Config,
) -> Result<vramplan_core::Estimate, String> {
    let mix = TypeMix::from_format(c.weights)?;
    let mut e = llamacpp::estimate(m, g, c, &mix, &llama_server_args(&c, c.batch, m.num_layers))?;
    let fits = |n: u64| {
        llamacpp::estimate(m, g, c, &mix, &llama_server_args(&c, n, m.num_layers))
            .is_ok_and(|e| e.fits)
    };
    e.max_concurrency = vramplan_core::estimate::largest_fitting_near(1, 1024, fits);
    Ok(e)
}

/// Weight formats to search for a model: its own, and fp8 / AWQ int4 when lighter; for
/// llama.cpp the common GGUF types.
pub(crate) fn quant_options(
    model: &ModelDesc,
    given: &[String],
    engine: PlanEngine,
) -> Result<Vec<WeightFormat>, Failure> {
    if !given.is_empty() {
        return given
            .iter()
            .map(|q| WeightFormat::parse(q).map_err(Failure::input))
            .collect();
    }
    if engine == PlanEngine::Llamacpp {
        return ["f16", "q8_0", "q6_k", "q5_k", "q4_k", "q3_k", "q2_k"]
            .iter()
            .map(|q| WeightFormat::parse(q).map_err(Failure::input))
            .collect();
    }
    let native = model.native_format();
    let mut v = vec![native];
    for f in [
        WeightFormat::Fp8 { block: 0 },
        WeightFormat::Awq { group: 128 },
    ] {
        if f.nominal_bits() < native.nominal_bits() {
            v.push(f);
        }
    }
    Ok(v)
}

fn launch_command(
    engine: PlanEngine,
    fraction: Option<f64>,
    utilization: f64,
    work: &Workload,
) -> impl Fn(&ModelDesc, &Deployment) -> String {
    let (concurrency, context) = (work.concurrency, work.context);
    move |model: &ModelDesc, d: &Deployment| {
        let cat = catalogue();
        let native = model.native_format().name();
        let (id, quant_flag) = if d.quant == native {
            (model.id.clone(), String::new())
        } else {
            let method = match d.quant.as_str() {
                "fp8" | "fp8-block" => "fp8",
                "int8" => "w8a8",
                other => other,
            };
            match cat.quantized_sibling(model, method) {
                Some(s) => (s.id.clone(), String::new()),
                // vLLM quantizes 16-bit weights to fp8 at load time; other methods need a checkpoint.
                None if method == "fp8" => (model.id.clone(), " --quantization fp8".into()),
                None => (
                    format!("<{} checkpoint of {}>", method.to_uppercase(), model.id),
                    String::new(),
                ),
            }
        };
        let kv = if d.kv_dtype == "fp8" {
            " --kv-cache-dtype fp8"
        } else {
            ""
        };
        let seqs = concurrency.div_ceil(d.replicas.max(1));
        let dp = if d.replicas > 1 {
            format!(" --data-parallel-size {}", d.replicas)
        } else {
            String::new()
        };
        let gguf = matches!(WeightFormat::parse(&d.quant), Ok(WeightFormat::Gguf(_)));
        match engine {
            // GGUF types are served by llama.cpp whichever profile checked them.
            PlanEngine::Generic if gguf => llama_server(model, d, context, seqs),
            PlanEngine::Vllm | PlanEngine::Generic => format!(
                "vllm serve {id} --tensor-parallel-size {} --pipeline-parallel-size {} --max-model-len {context}{} --max-num-seqs {seqs}{kv}{quant_flag}{dp}",
                d.tp,
                d.pp,
                // The release's own default when none was asked for (0.34: the extensible KV
                // cache sizes itself from the memory left after warmup).
                match (engine, fraction) {
                    (PlanEngine::Vllm, None) => String::new(),
                    _ => format!(" --gpu-memory-utilization {utilization}"),
                }
            ),
            PlanEngine::Sglang => {
                let kv = if d.kv_dtype == "fp8" { " --kv-cache-dtype fp8_e5m2" } else { "" };
                let quant = if quant_flag.is_empty() { String::new() } else { " --quantization fp8".to_string() };
                let dp = if d.replicas > 1 { format!(" --dp-size {}", d.replicas) } else { String::new() };
                let mfs = fraction
                    .map(|f| format!(" --mem-fraction-static {f}"))
                    .unwrap_or_default();
                format!(
                    "python -m sglang.launch_server --model-path {id} --tp-size {} --pp-size {} --context-length {context}{mfs} --max-running-requests {seqs}{kv}{quant}{dp}",
                    d.tp, d.pp
                )
            }
            PlanEngine::Llamacpp => llama_server(model, d, context, seqs),
        }
    }
}

/// `llama-server` for a GGUF deployment: `-c` is the total of the slots' cells; layers are split
/// over the GPUs of a replica (`--split-mode layer`, llama.cpp's default for several GPUs).
fn llama_server(model: &ModelDesc, d: &Deployment, context: u64, seqs: u64) -> String {
    let file = format!(
        "{}.{}.gguf",
        model.id.rsplit('/').next().unwrap_or(&model.id),
        d.quant.to_uppercase()
    );
    let kv = d.kv_dtype.replace("fp16", "f16");
    let split = if d.tp * d.pp > 1 {
        format!(
            " --split-mode layer --tensor-split {}",
            vec!["1"; (d.tp * d.pp) as usize].join(",")
        )
    } else {
        String::new()
    };
    let per = if d.replicas > 1 {
        format!("  # × {} servers", d.replicas)
    } else {
        String::new()
    };
    format!(
        "llama-server -m {file} -c {} -np {seqs} -ngl {} -fa on -ctk {kv} -ctv {kv}{split}{per}",
        context.saturating_mul(seqs),
        model.num_layers + 1
    )
}

pub fn run(a: PlanArgs) -> Result<(), Failure> {
    let budget = Budget {
        deadline: deadline(a.time_budget)?,
        seconds: a.time_budget,
        cancelled: &[],
    };
    let out = plans(&a, &budget)?;
    let work = Workload {
        context: a.context,
        concurrency: a.concurrency,
        rate: a.rate,
        output_tokens: a.output_tokens,
    };
    print_json_or(a.json, &out, || render(&out, &work, a.top))
}

/// The deadline `seconds` from now, refused unless positive and at most a day.
pub fn deadline(seconds: f64) -> Result<std::time::Instant, Failure> {
    if !(seconds > 0.0 && seconds <= MAX_TIME_BUDGET_S) {
        return Err(Failure::input(format!(
            "--time-budget {seconds} must be a number of seconds in (0, {MAX_TIME_BUDGET_S}]"
        )));
    }
    Ok(std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds))
}

/// What `vramplan plan --json` prints, as a JSON value (the web API's `POST /api/v1/plan`),
/// within `budget`.
pub fn compute(a: &PlanArgs, budget: &Budget) -> Result<serde_json::Value, Failure> {
    serde_json::to_value(plans(a, budget)?).map_err(|e| Failure::runtime(e.to_string()))
}

fn plans(a: &PlanArgs, budget: &Budget) -> Result<PlanOutput, Failure> {
    let cat = catalogue();
    if a.context == 0 || a.concurrency == 0 {
        return Err(Failure::input(
            "--context and --concurrency must each be at least 1",
        ));
    }
    if a.context > 1 << 24 || a.concurrency > 1 << 20 {
        return Err(Failure::input(
            "--context (limit 2^24) or --concurrency (limit 2^20) is absurd",
        ));
    }
    if a.max_gpus == 0 || a.max_gpus > 512 {
        return Err(Failure::input("--max-gpus must be between 1 and 512"));
    }
    if let Some(r) = a.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(Failure::input(
                "--rate must be a positive number of requests per second",
            ));
        }
    }
    if a.output_tokens >= a.context {
        return Err(Failure::input(
            "--output-tokens must be smaller than --context (the rest is the prompt)",
        ));
    }
    let release = Release::parse(&a.vllm_version).map_err(Failure::input)?;
    let models: Vec<ModelDesc> = a
        .model
        .iter()
        .map(|m| crate::commands::estimate::resolve_model(m, &a.hub))
        .collect::<Result<_, _>>()?;
    let gpus: Vec<(&Gpu, Option<f64>)> = if a.gpu.is_empty() {
        cat.gpus
            .iter()
            .map(|g| (g, cat.price(&g.id).map(|p| p.usd_per_hour)))
            .collect()
    } else {
        a.gpu
            .iter()
            .map(|q| {
                cat.gpu(q)
                    .map(|g| (g, cat.price(&g.id).map(|p| p.usd_per_hour)))
                    .map_err(Failure::input)
            })
            .collect::<Result<_, _>>()?
    };
    let kv_dtypes: Vec<KvDtype> = if a.kv_dtype.is_empty() {
        match a.engine {
            PlanEngine::Llamacpp => vec![
                KvDtype::F16,
                KvDtype::parse("q8_0").map_err(Failure::input)?,
            ],
            _ => vec![KvDtype::F16, KvDtype::Fp8],
        }
    } else {
        a.kv_dtype
            .iter()
            .map(|k| KvDtype::parse(k).map_err(Failure::input))
            .collect::<Result<_, _>>()?
    };
    let utilization = a.gpu_memory_utilization.unwrap_or(match a.engine {
        PlanEngine::Vllm => release.default_utilization(),
        // Unused when not given: each GPU gets SGLang's own default (see `evaluator`).
        PlanEngine::Sglang => 0.88,
        PlanEngine::Generic | PlanEngine::Llamacpp => {
            vramplan_core::engine::generic::DEFAULT_UTILIZATION
        }
    });
    if !(utilization > 0.0 && utilization <= 1.0) {
        return Err(Failure::input("--gpu-memory-utilization must be in (0, 1]"));
    }
    let work = Workload {
        context: a.context,
        concurrency: a.concurrency,
        rate: a.rate,
        output_tokens: a.output_tokens,
    };
    let given = a.gpu_memory_utilization.is_some();
    let eval = evaluator(a.engine, release, given);
    let launch = launch_command(a.engine, given.then_some(utilization), utilization, &work);
    let mut plans = Vec::new();
    let mut advice = Vec::new();
    let mut no_plan = Vec::new();
    let mut spaces = Vec::with_capacity(models.len());
    for model in &models {
        if a.context > model.max_context {
            no_plan.push(NoPlan {
                model: model.id.clone(),
                reason: format!(
                    "--context {} is beyond its limit of {} tokens (max_position_embeddings)",
                    thousands(a.context),
                    thousands(model.max_context)
                ),
            });
            let c = Config::new(
                model.native_format(),
                kv_dtypes[0],
                a.context,
                a.concurrency,
            );
            for mut adv in advise(&*eval, model, &Gpu::custom(0), c, &[]) {
                adv.change = format!("{}: {}", model.id, adv.change);
                advice.push(adv);
            }
            continue;
        }
        spaces.push(Space {
            models: vec![model],
            gpus: gpus.clone(),
            quants: quant_options(model, &a.quant, a.engine)?,
            kv_dtypes: kv_dtypes.clone(),
            max_gpus: a.max_gpus,
            utilization,
        });
    }
    // The search's size, refused before it starts when over the limit.
    let size = spaces
        .iter()
        .map(vramplan_core::plan::candidate_count)
        .fold(0u64, u64::saturating_add);
    if size > a.max_candidates {
        return Err(Failure::input(format!(
            "the search covers {} candidates (model × GPU kind × precision × KV dtype × tp × pp), over the limit of {} (--max-candidates): name fewer models, GPU kinds, precisions or KV dtypes, or lower --max-gpus",
            thousands(size),
            thousands(a.max_candidates)
        )));
    }
    let mut truncated = None;
    let mut visited_before = 0u64;
    for space in &spaces {
        let model = space.models[0];
        if truncated.is_some() {
            break;
        }
        let stop = |visited: u64| budget.stop(visited_before + visited);
        let (found, stopped) = search_within(&*eval, space, &work, &launch, &stop);
        visited_before += vramplan_core::plan::candidate_count(space);
        truncated = stopped;
        if found.is_empty() && truncated.is_none() {
            no_plan.push(NoPlan {
                model: model.id.clone(),
                reason: format!(
                    "no GPU kind, count (up to --max-gpus {}), precision and KV dtype searched serves it",
                    a.max_gpus
                ),
            });
            // Advice for the most natural configuration: the first GPU kind, as many GPUs as allowed.
            let gpu = gpus
                .first()
                .map(|(g, _)| *g)
                .ok_or_else(|| Failure::input("no GPU kinds to search"))?;
            let tp = vramplan_core::plan::tp_options(model, a.max_gpus)
                .into_iter()
                .max()
                .unwrap_or(1);
            let mut c = Config::new(
                model.native_format(),
                kv_dtypes[0],
                a.context,
                a.concurrency,
            );
            c.parallel.tp = tp;
            c.utilization = utilization;
            // Another GPU kind may be any in the catalogue, not only the ones searched.
            let all: Vec<(&Gpu, Option<f64>)> = cat
                .gpus
                .iter()
                .map(|g| (g, cat.price(&g.id).map(|p| p.usd_per_hour)))
                .collect();
            for mut adv in advise(&*eval, model, gpu, c, &all) {
                adv.change = format!("{}: {}", model.id, adv.change);
                advice.push(adv);
            }
        }
        plans.extend(found);
    }
    vramplan_core::plan::sort_plans(&mut plans);
    Ok(PlanOutput {
        plans,
        advice,
        no_plan,
        truncated,
    })
}

fn render(out: &PlanOutput, work: &Workload, top: usize) -> String {
    let mut s = format!(
        "Deployments serving {} of {} tokens{}, cheapest first ({} found)\n\n",
        count(work.concurrency, "concurrent sequence"),
        thousands(work.context),
        work.rate
            .map(|r| format!(" at {r} requests/s"))
            .unwrap_or_default(),
        out.plans.len()
    );
    let rows: Vec<Vec<String>> = out
        .plans
        .iter()
        .take(top)
        .map(|d| {
            vec![
                d.model.clone(),
                format!("{} × {}", d.gpus, d.gpu),
                d.quant.clone(),
                d.kv_dtype.clone(),
                format!("{}/{}/{}", d.tp, d.pp, d.replicas),
                format!(
                    "{} of {}",
                    gib(d.memory_per_gpu_bytes),
                    gib(d.gpu_memory_bytes)
                ),
                thousands(d.max_concurrency),
                format!("{:.0}", d.decode_tokens_per_s),
                d.cost_per_hour
                    .map(|c| format!("${c:.2}"))
                    .unwrap_or_else(|| "no price".into()),
            ]
        })
        .collect();
    if !rows.is_empty() {
        s.push_str(&table(
            &[
                "model",
                "GPUs",
                "weights",
                "KV",
                "TP/PP/DP",
                "memory per GPU",
                "max seqs",
                "decode tok/s",
                "per hour",
            ],
            &rows,
            &[false, false, false, false, false, true, true, true, true],
        ));
        s.push_str("\nLaunch commands:\n");
        for (i, d) in out.plans.iter().take(top.min(5)).enumerate() {
            s.push_str(&format!("  {}. {}\n", i + 1, d.launch));
        }
        s.push_str("\ndecode tok/s: memory-bandwidth roofline with every sequence at full context (an upper bound on speed). Prices: crates/core/data/prices.toml (date and source per entry).\n");
    }
    if let Some(why) = &out.truncated {
        s.push_str(&format!(
            "\nThe search was cut short ({why}): these are the plans found until then.\n"
        ));
    }
    if out.plans.is_empty() && !out.no_plan.is_empty() {
        s.push_str("Nothing in the search space serves this workload.\n");
    }
    for np in &out.no_plan {
        s.push_str(&format!("\nNo plan for {}: {}.\n", np.model, np.reason));
        let prefix = format!("{}: ", np.model);
        let own: Vec<&Advice> = out
            .advice
            .iter()
            .filter(|a| a.change.starts_with(&prefix))
            .collect();
        if own.is_empty() {
            s.push_str("  No single change found; allow more GPUs or other GPU kinds.\n");
        } else {
            s.push_str("  Smallest changes that would serve it:\n");
            for a in own {
                s.push_str(&format!(
                    "  - {}: {}\n",
                    &a.change[prefix.len()..],
                    a.detail
                ));
            }
        }
    }
    s
}
