//! The planner: search GPU kind × GPU count × weight precision × KV dtype × parallelism for the
//! deployments that serve a workload, cheapest first, and say what would make a failing
//! configuration fit. Engine-neutral: the caller passes the engine profile as an evaluator, so
//! every plan is checked by exactly the accounting its launch command will meet.

use crate::estimate::{Config, Estimate};
use crate::gpu::Gpu;
use crate::model::ModelDesc;
use crate::parallel::Parallelism;
use crate::precision::{KvDtype, WeightFormat};
use crate::roofline;
use serde::Serialize;

/// An engine profile's estimate for one configuration on one GPU kind.
pub type Evaluator<'a> = dyn Fn(&ModelDesc, &Gpu, Config) -> Result<Estimate, String> + 'a;

/// What the deployment must serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Tokens per sequence (prompt + output).
    pub context: u64,
    /// Sequences served at once.
    pub concurrency: u64,
    /// Optional request rate (requests/s) to sustain.
    pub rate: Option<f64>,
    /// Output tokens per request (the rest of `context` is prompt), for the rate check.
    pub output_tokens: u64,
}

/// The options searched.
#[derive(Debug, Clone)]
pub struct Space<'a> {
    pub models: Vec<&'a ModelDesc>,
    pub gpus: Vec<(&'a Gpu, Option<f64>)>,
    pub quants: Vec<WeightFormat>,
    pub kv_dtypes: Vec<KvDtype>,
    /// Most GPUs a deployment may use in total (all replicas).
    pub max_gpus: u64,
    pub utilization: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Deployment {
    pub model: String,
    pub gpu: String,
    /// GPUs in total: tp × pp × replicas.
    pub gpus: u64,
    pub quant: String,
    pub kv_dtype: String,
    pub tp: u64,
    pub pp: u64,
    pub replicas: u64,
    /// Busiest GPU's memory at the target concurrency, bytes.
    pub memory_per_gpu_bytes: u64,
    pub gpu_memory_bytes: u64,
    /// Sequences of `context` tokens the whole deployment holds at once.
    pub max_concurrency: u64,
    /// Roofline decode throughput at the target concurrency (upper bound), tokens/s.
    pub decode_tokens_per_s: f64,
    /// Roofline prefill throughput (compute bound, upper bound), tokens/s.
    pub prefill_tokens_per_s: f64,
    /// Requests/s the deployment sustains at the given output length, by the roofline.
    pub max_rate: f64,
    /// USD per hour, null when the catalogue has no price for this GPU kind.
    pub cost_per_hour: Option<f64>,
    pub launch: String,
}

/// One change that would make a failing configuration work, with its figure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Advice {
    pub change: String,
    pub detail: String,
}

fn tflops_for(gpu: &Gpu, quant: WeightFormat) -> f64 {
    match quant {
        WeightFormat::Fp8 { .. } if gpu.fp8_dense_tflops > 0.0 => gpu.fp8_dense_tflops,
        _ => gpu.bf16_dense_tflops,
    }
}

/// Tensor-parallel sizes allowed for a model up to `max`: powers of two and other divisors that
/// pass the engine's divisibility rules.
pub fn tp_options(model: &ModelDesc, max: u64) -> Vec<u64> {
    (1..=max.min(64))
        .filter(|&tp| Parallelism { tp, pp: 1, dp: 1 }.check(model).is_ok())
        .collect()
}

/// Evaluates one candidate; `None` when it cannot serve even one sequence.
#[allow(clippy::too_many_arguments)]
fn candidate(
    eval: &Evaluator,
    model: &ModelDesc,
    gpu: &Gpu,
    price: Option<f64>,
    quant: WeightFormat,
    kv: KvDtype,
    tp: u64,
    pp: u64,
    work: &Workload,
    space: &Space,
    launch: &dyn Fn(&ModelDesc, &Deployment) -> String,
) -> Option<Deployment> {
    let mut config = Config::new(quant, kv, work.context, 1);
    config.parallel = Parallelism { tp, pp, dp: 1 };
    config.utilization = space.utilization;
    let one = eval(model, gpu, config).ok()?;
    let per_replica = one.max_concurrency;
    if per_replica == 0 {
        return None;
    }
    // The fewest replicas that hold the concurrency; with a rate target, more replicas until the
    // roofline sustains it (each replica then runs a smaller batch).
    let mut replicas = work.concurrency.div_ceil(per_replica).max(1);
    let (at_load, decode, prefill, max_rate) = loop {
        if tp * pp * replicas > space.max_gpus {
            return None;
        }
        let batch = work.concurrency.div_ceil(replicas).max(1);
        config.batch = batch;
        let at_load = eval(model, gpu, config).ok()?;
        if !at_load.fits {
            return None;
        }
        let (decode, prefill, max_rate) = throughput(
            model, gpu, quant, &one, &at_load, tp, pp, batch, replicas, work,
        );
        if work.rate.is_none_or(|r| max_rate >= r) {
            break (at_load, decode, prefill, max_rate);
        }
        replicas += 1;
    };
    let gpus = tp * pp * replicas;
    let mut d = Deployment {
        model: model.id.clone(),
        gpu: gpu.id.clone(),
        gpus,
        quant: quant.name(),
        kv_dtype: kv.name(),
        tp,
        pp,
        replicas,
        memory_per_gpu_bytes: at_load.total_bytes,
        gpu_memory_bytes: gpu.memory_bytes,
        max_concurrency: per_replica.saturating_mul(replicas),
        decode_tokens_per_s: decode,
        prefill_tokens_per_s: prefill,
        max_rate,
        cost_per_hour: price.map(|p| p * gpus as f64),
        launch: String::new(),
    };
    d.launch = launch(model, &d);
    Some(d)
}

/// The fewest GPUs (over `more_than`) of one kind that hold `config`: tensor parallel sizes the
/// model allows, then pipeline stages, up to 64 GPUs.
fn fewest_gpus(
    eval: &Evaluator,
    model: &ModelDesc,
    gpu: &Gpu,
    config: Config,
    more_than: u64,
) -> Option<(Parallelism, Estimate)> {
    let tps = tp_options(model, 64);
    let mut shapes: Vec<Parallelism> = Vec::new();
    for &tp in &tps {
        for pp in 1..=8u64.min(model.num_layers) {
            if tp * pp <= 64 && tp * pp > more_than {
                shapes.push(Parallelism { tp, pp, dp: 1 });
            }
        }
    }
    shapes.sort_by_key(|p| (p.tp * p.pp, p.pp));
    shapes.into_iter().find_map(|par| {
        let e = eval(
            model,
            gpu,
            Config {
                parallel: par,
                ..config
            },
        )
        .ok()?;
        e.fits.then_some((par, e))
    })
}

/// Roofline throughput of `replicas` replicas each running `batch` sequences: decode and
/// prefill tokens/s and the request rate they sustain at the workload's output length.
#[allow(clippy::too_many_arguments)]
fn throughput(
    model: &ModelDesc,
    gpu: &Gpu,
    quant: WeightFormat,
    one: &Estimate,
    at_load: &Estimate,
    tp: u64,
    pp: u64,
    batch: u64,
    replicas: u64,
    work: &Workload,
) -> (f64, f64, f64) {
    // FLOPs per token on one GPU of a stage: the stage's share of the active parameters, split over TP.
    let flops_per_token = 2.0 * one.active_params as f64 / (tp * pp) as f64;
    let tflops = tflops_for(gpu, quant);
    // Decode, worst case: every sequence at full context (a lower bound on tokens/s). With
    // pipeline parallelism the batch runs as m = min(batch, pp) micro-batches; each stage is busy
    // m/pp of the time, so tokens/s = batch / (pp × stage time of one micro-batch). At batch 1 a
    // pipeline is no faster than one GPU reading every stage's weights. An MoE step reads only
    // the experts its micro-batch is routed to.
    let micro_batches = batch.min(pp).max(1);
    let micro = batch.div_ceil(micro_batches);
    // The estimate already carries the counts the inventory gives (active = total − idle experts).
    let weights_read = roofline::weight_bytes_read_per_step(
        model,
        one.params.saturating_sub(one.active_params),
        one.params,
        at_load.weights_bytes,
        micro,
    );
    let kv_read = crate::units::mul_ratio(at_load.kv_cache_bytes, micro, batch);
    let stage_seconds =
        roofline::decode_step_seconds(gpu, weights_read, kv_read, micro, flops_per_token, tflops);
    let decode = if stage_seconds.is_finite() && stage_seconds > 0.0 {
        batch as f64 / (pp as f64 * stage_seconds) * replicas as f64
    } else {
        0.0
    };
    let prefill =
        roofline::prefill_tokens_per_s(tp * pp, one.active_params, tflops) * replicas as f64;
    // Requests/s R is sustained when R × (prompt/prefill + output/decode) ≤ 1: both phases share
    // the GPUs' time.
    let prompt = work.context.saturating_sub(work.output_tokens) as f64;
    let seconds_per_request = prompt / prefill.max(f64::MIN_POSITIVE)
        + work.output_tokens as f64 / decode.max(f64::MIN_POSITIVE);
    let max_rate = if seconds_per_request > 0.0 {
        1.0 / seconds_per_request
    } else {
        f64::INFINITY
    };
    (decode, prefill, max_rate)
}

/// Every deployment in the space that meets the workload, cheapest first (unpriced last), then
/// fewest GPUs, then highest decode throughput. For each model × GPU kind × precision × KV dtype
/// × (tp, pp) the fewest replicas that reach the concurrency are taken, which is the cheapest
/// deployment of that shape.
pub fn search(
    eval: &Evaluator,
    space: &Space,
    work: &Workload,
    launch: &dyn Fn(&ModelDesc, &Deployment) -> String,
) -> Vec<Deployment> {
    search_within(eval, space, work, launch, &|_| None).0
}

/// Candidates (model × GPU kind × precision × KV dtype × tp × pp) a search of `space` visits:
/// what a caller checks against its budget before searching.
pub fn candidate_count(space: &Space) -> u64 {
    let per_gpu_option: u64 = space
        .models
        .iter()
        .map(|model| {
            tp_options(model, space.max_gpus)
                .iter()
                .map(|&tp| (space.max_gpus / tp).min(64).min(model.num_layers))
                .sum::<u64>()
        })
        .sum();
    per_gpu_option
        .saturating_mul(space.gpus.len() as u64)
        .saturating_mul(space.quants.len() as u64)
        .saturating_mul(space.kv_dtypes.len() as u64)
}

/// [`search`] that asks `stop(candidates evaluated so far)` before each candidate and ends early
/// when it answers with a reason: the deployments found until then (sorted as usual) and that
/// reason. The caller's stop holds its budget (a deadline, a cancelled request), so that the
/// core itself reads no clock.
pub fn search_within(
    eval: &Evaluator,
    space: &Space,
    work: &Workload,
    launch: &dyn Fn(&ModelDesc, &Deployment) -> String,
    stop: &dyn Fn(u64) -> Option<String>,
) -> (Vec<Deployment>, Option<String>) {
    let mut plans = Vec::new();
    let mut visited = 0u64;
    let mut stopped = None;
    for &model in &space.models {
        let tps = tp_options(model, space.max_gpus);
        for &(gpu, price) in &space.gpus {
            for &quant in &space.quants {
                for &kv in &space.kv_dtypes {
                    for &tp in &tps {
                        for pp in 1..=space.max_gpus.min(64) {
                            if tp * pp > space.max_gpus || pp > model.num_layers {
                                continue;
                            }
                            if stopped.is_none() {
                                stopped = stop(visited);
                            }
                            if stopped.is_some() {
                                break;
                            }
                            visited += 1;
                            if let Some(d) = candidate(
                                eval, model, gpu, price, quant, kv, tp, pp, work, space, launch,
                            ) {
                                plans.push(d);
                            }
                        }
                    }
                }
            }
        }
    }
    sort_plans(&mut plans);
    (keep_cheapest_per_option(plans), stopped)
}

/// One row per model × GPU kind × precision × KV dtype: its cheapest shape (the list is sorted,
/// so the first of each option is the cheapest), so that the list shows distinct choices.
pub fn keep_cheapest_per_option(plans: Vec<Deployment>) -> Vec<Deployment> {
    let mut seen = std::collections::HashSet::new();
    plans
        .into_iter()
        .filter(|d| {
            seen.insert((
                d.model.clone(),
                d.gpu.clone(),
                d.quant.clone(),
                d.kv_dtype.clone(),
            ))
        })
        .collect()
}

pub fn sort_plans(plans: &mut [Deployment]) {
    plans.sort_by(|a, b| {
        let cost = |d: &Deployment| d.cost_per_hour.unwrap_or(f64::INFINITY);
        cost(a)
            .total_cmp(&cost(b))
            .then(a.gpus.cmp(&b.gpus))
            .then(b.decode_tokens_per_s.total_cmp(&a.decode_tokens_per_s))
            .then(a.model.cmp(&b.model))
            .then(a.gpu.cmp(&b.gpu))
    });
}

/// The smallest changes that would make `config` of `model` on `gpu` serve `batch` sequences of
/// `context` tokens: a lower weight precision, an fp8 KV cache, a shorter context, one more GPU,
/// another GPU kind. Each is checked with the same evaluator.
pub fn advise(
    eval: &Evaluator,
    model: &ModelDesc,
    gpu: &Gpu,
    config: Config,
    other_gpus: &[(&Gpu, Option<f64>)],
) -> Vec<Advice> {
    use crate::units::gb_gib;
    // Beyond the model's own context limit no hardware helps: the one change is the context.
    if config.context > model.max_context {
        return vec![Advice {
            change: format!(
                "context of {} tokens",
                crate::units::thousands(model.max_context)
            ),
            detail: format!(
                "{}'s own limit (max_position_embeddings); no GPU or precision serves a longer one",
                model.id
            ),
        }];
    }
    let mut advice = Vec::new();
    let fits = |c: Config, g: &Gpu| eval(model, g, c).ok().filter(|e| e.fits);
    let current = config.weights;
    for q in ["fp8", "awq", "q4_k"] {
        let f = WeightFormat::parse(q).expect("known format");
        if f == current || f.nominal_bits() >= current.nominal_bits() {
            continue;
        }
        if let Some(e) = fits(
            Config {
                weights: f,
                ..config
            },
            gpu,
        ) {
            advice.push(Advice {
                change: format!("weights in {q}"),
                detail: format!(
                    "{} per GPU ({} weights); serves {} of {} tokens",
                    gb_gib(e.total_bytes),
                    gb_gib(e.weights_bytes),
                    crate::units::count(e.max_concurrency, "sequence"),
                    config.context
                ),
            });
            break;
        }
    }
    if !matches!(config.kv_dtype, KvDtype::Fp8) {
        if let Some(e) = fits(
            Config {
                kv_dtype: KvDtype::Fp8,
                ..config
            },
            gpu,
        ) {
            advice.push(Advice {
                change: "fp8 KV cache".into(),
                detail: format!(
                    "KV cache {} instead of {}; {} per GPU",
                    gb_gib(e.kv_cache_bytes),
                    gb_gib(e.kv_cache_bytes.saturating_mul(2)),
                    gb_gib(e.total_bytes)
                ),
            });
        }
    }
    if let Ok(e) = eval(model, gpu, config) {
        if e.max_context > 0 && e.max_context < config.context {
            advice.push(Advice {
                change: format!("context of {} tokens", e.max_context),
                detail: format!(
                    "the longest that fits {}",
                    crate::units::count(config.batch, "sequence")
                ),
            });
        } else if e.max_concurrency > 0 && e.max_concurrency < config.batch {
            advice.push(Advice {
                change: crate::units::count(e.max_concurrency, "concurrent sequence"),
                detail: format!("the most of {} tokens that fit", config.context),
            });
        }
    }
    let current_gpus = config.parallel.tp * config.parallel.pp;
    if let Some((par, e)) = fewest_gpus(eval, model, gpu, config, current_gpus) {
        advice.push(Advice {
            change: format!(
                "{} × {} (tensor parallel {}, pipeline parallel {})",
                par.tp * par.pp,
                gpu.id,
                par.tp,
                par.pp
            ),
            detail: format!("{} per GPU", gb_gib(e.total_bytes)),
        });
    }
    let mut others: Vec<(&Gpu, Option<f64>, Parallelism, Estimate)> = other_gpus
        .iter()
        .filter(|(g, _)| g.id != gpu.id)
        .filter_map(|(g, p)| {
            fewest_gpus(eval, model, g, config, 0).map(|(par, e)| (*g, *p, par, e))
        })
        .collect();
    let cost = |o: &(&Gpu, Option<f64>, Parallelism, Estimate)| {
        o.1.map(|p| p * (o.2.tp * o.2.pp) as f64)
            .unwrap_or(f64::INFINITY)
    };
    others.sort_by(|a, b| {
        cost(a)
            .total_cmp(&cost(b))
            .then((a.2.tp * a.2.pp).cmp(&(b.2.tp * b.2.pp)))
    });
    if let Some(o) = others.first() {
        let (g, p, par, e) = o;
        let n = par.tp * par.pp;
        advice.push(Advice {
            change: format!(
                "{n} × {} (tensor parallel {}, pipeline parallel {})",
                g.id, par.tp, par.pp
            ),
            detail: format!(
                "{} of {} per GPU{}",
                gb_gib(e.total_bytes),
                gb_gib(g.memory_bytes),
                p.map(|p| format!("; ${:.2}/h", p * n as f64))
                    .unwrap_or_default()
            ),
        });
    }
    advice
}
