//! `vramplan simulate`: replays a request trace through the KV-cache simulator (crates/sim) for
//! one or every allocator, with the model, GPU, KV bytes per token and KV pool from the core.

use crate::commands::estimate::{parallelism, print_json_or, resolve_gpu, resolve_model};
use crate::render::table;
use crate::Failure;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vramplan_core::engine::vllm::{self, Release, VllmArgs};
use vramplan_core::kv::kv_bytes_per_token;
use vramplan_core::units::{count, gib, thousands};
use vramplan_core::{Config, KvDtype, WeightFormat};
use vramplan_sim::allocator::Placement;
use vramplan_sim::{
    load_trace, simulate, simulate_synthetic, AllocatorKind, LengthDistribution, Preemption,
    Report, SimConfig, SyntheticWorkload,
};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreemptionArg {
    /// Copy a preempted request's blocks to CPU memory over the host link.
    Swap,
    /// Drop them and re-run the prefill later.
    Recompute,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlacementArg {
    FirstFit,
    Buddy,
}

#[derive(Args)]
pub struct SimulateArgs {
    #[arg(long, short = 'm', default_value = "facebook/opt-13b", help = crate::model_source::MODEL_HELP)]
    pub model: String,
    /// GPU kind.
    #[arg(long, short = 'g', default_value = "a100-40gb")]
    pub gpu: String,
    /// GPUs (tensor parallel).
    #[arg(long, default_value_t = 1)]
    pub gpus: u64,
    /// `sharegpt`, `alpaca`, or a trace file (CSV or JSONL: arrival_s, prompt_tokens,
    /// output_tokens, optional n, beam_width, prefix_id, prefix_tokens).
    #[arg(long, short = 'w', default_value = "sharegpt")]
    pub workload: String,
    /// Poisson arrival rate, requests/s (built-in workloads).
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Requests to generate (built-in workloads).
    #[arg(long, default_value_t = 2000)]
    pub requests: u64,
    /// Parallel samples per request (built-in workloads).
    #[arg(long, default_value_t = 1)]
    pub n: u16,
    /// Beam width per request (built-in workloads).
    #[arg(long, default_value_t = 1)]
    pub beam_width: u16,
    /// contiguous-max, contiguous-pow2, contiguous-oracle, paged, paged-sharing, or all.
    #[arg(long, short = 'a', default_value = "all")]
    pub allocator: String,
    /// What the scheduler does when blocks run out.
    #[arg(long, value_enum, default_value_t = PreemptionArg::Swap)]
    pub preemption: PreemptionArg,
    /// How contiguous allocators place reservations in the address space.
    #[arg(long, value_enum, default_value_t = PlacementArg::FirstFit)]
    pub placement: PlacementArg,
    /// Tokens per paged block.
    #[arg(long, default_value_t = 16)]
    pub block_size: u32,
    /// Longest sequence (prompt + output); contiguous-max reserves this much. Default: the
    /// model's context length.
    #[arg(long)]
    pub max_seq_len: Option<u32>,
    /// Weight precision (default: the checkpoint's own).
    #[arg(long, short = 'q')]
    pub quant: Option<String>,
    /// KV-cache dtype.
    #[arg(long, default_value = "fp16")]
    pub kv_dtype: String,
    /// KV pool size with its unit (e.g. 12GiB), instead of what vLLM's accounting leaves.
    #[arg(long)]
    pub kv_pool: Option<String>,
    /// Random seed: the same seed gives the same run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a plot of KV memory over time per allocator to this SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub hub: crate::model_source::HubArgs,
}

pub fn run(a: SimulateArgs) -> Result<(), Failure> {
    let model = resolve_model(&a.model, &a.hub)?;
    let gpu = resolve_gpu(&a.gpu, None)?;
    let par = parallelism(Some(a.gpus), None, 1, 1)?;
    let weights = match &a.quant {
        Some(q) => WeightFormat::parse(q).map_err(Failure::input)?,
        None => model.native_format(),
    };
    let kv = KvDtype::parse(&a.kv_dtype).map_err(Failure::input)?;
    let max_seq_len = match a.max_seq_len {
        Some(0) => return Err(Failure::input("--max-seq-len must be at least 1")),
        Some(n) => n,
        None => u32::try_from(model.max_context).unwrap_or(u32::MAX),
    };
    let kinds =
        AllocatorKind::parse_selection(&a.allocator).map_err(|e| Failure::input(e.to_string()))?;
    // KV per token of the whole model, and the pool as a whole-model equivalent: vLLM's block
    // count × block tokens × bytes per token (every rank holds its share of each token).
    let kv_per_token = kv_bytes_per_token(&model, kv);
    let mut config = Config::new(weights, kv, u64::from(max_seq_len), 1);
    config.parallel = par;
    let est = vllm::estimate(&model, &gpu, config, &VllmArgs::new(Release::NEWEST))
        .map_err(Failure::input)?;
    let pool = match &a.kv_pool {
        Some(text) => vramplan_core::units::parse_size(text).map_err(Failure::input)?,
        None => est
            .kv_cache_tokens
            .unwrap_or(0)
            .saturating_mul(kv_per_token),
    };
    if pool == 0 {
        return Err(Failure::input(format!(
            "{} leaves no memory for the KV cache on {} × {}; use more --gpus, a lower --quant, or give --kv-pool",
            model.id, a.gpus, gpu.id
        )));
    }
    let n = a.gpus as f64;
    let mut sim = SimConfig::with_defaults(
        kv_per_token,
        pool,
        est.weights_bytes.saturating_mul(a.gpus),
        gpu.hbm_bandwidth_bytes_per_s * n,
        gpu.bf16_dense_tflops * 1e12 * n,
        est.active_params,
        gpu.host_link_bytes_per_s,
        max_seq_len,
    );
    sim.block_size = a.block_size;
    sim.seed = a.seed;
    sim.preemption = match a.preemption {
        PreemptionArg::Swap => Preemption::Swap,
        PreemptionArg::Recompute => Preemption::Recompute,
    };
    sim.contiguous_placement = match a.placement {
        PlacementArg::FirstFit => Placement::FirstFit,
        PlacementArg::Buddy => Placement::Buddy,
    };
    // Built-in workloads are streamed (memory does not grow with --requests); a trace is read
    // whole, since it is sorted by arrival after reading.
    enum Workload {
        Stream(SyntheticWorkload),
        Trace(Vec<vramplan_sim::Request>),
    }
    let workload = match a.workload.to_ascii_lowercase().as_str() {
        "sharegpt" | "alpaca" => {
            let lengths = if a.workload.eq_ignore_ascii_case("alpaca") {
                LengthDistribution::Alpaca
            } else {
                LengthDistribution::ShareGpt
            };
            if a.requests == 0 || a.requests > 50_000_000 {
                return Err(Failure::input(
                    "--requests must be between 1 and 50,000,000",
                ));
            }
            let w = SyntheticWorkload {
                lengths,
                rate: a.rate,
                requests: a.requests,
                parallel_samples: a.n,
                beam_width: a.beam_width,
                seed: a.seed,
            };
            // Checks the workload's inputs before the run.
            w.stream(max_seq_len)
                .map_err(|e| Failure::input(e.to_string()))?;
            Workload::Stream(w)
        }
        _ => {
            let path = PathBuf::from(&a.workload);
            if !path.is_file() {
                return Err(Failure::input(format!(
                    "workload '{}' is neither sharegpt, alpaca nor a readable trace file",
                    a.workload
                )));
            }
            Workload::Trace(load_trace(&path).map_err(|e| Failure::input(e.to_string()))?)
        }
    };
    let request_count = match &workload {
        Workload::Stream(w) => w.requests,
        Workload::Trace(t) => t.len() as u64,
    };
    // A progress bar only for runs that last more than a second, on standard error.
    let start = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    let mut progress = |done: u64, total: u64| {
        if bar.is_none() && start.elapsed() > Duration::from_secs(1) {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} requests")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar = Some(b);
        }
        if let Some(b) = &bar {
            b.set_position(done);
        }
    };
    let report = match &workload {
        Workload::Stream(w) => simulate_synthetic(&sim, w, max_seq_len, &kinds, &mut progress),
        Workload::Trace(requests) => simulate(&sim, requests, &kinds, &mut progress),
    }
    .map_err(|e| Failure::input(e.to_string()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(path) = &a.svg {
        let title = format!(
            "{} on {} × {}: KV pool {} ({} requests, {} req/s)",
            model.id,
            a.gpus,
            gpu.id,
            gib(pool),
            request_count,
            a.rate
        );
        std::fs::write(path, vramplan_sim::svg::render(&report, &title))
            .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())))?;
    }
    let header = format!(
        "{} on {} × {}: KV pool {} = {} tokens of {} B; {}; block {} tokens; {} preemption\n\n",
        model.id,
        a.gpus,
        gpu.name,
        gib(pool),
        thousands(pool / kv_per_token.max(1)),
        thousands(kv_per_token),
        count(request_count, "request"),
        a.block_size,
        if sim.preemption == Preemption::Swap {
            "swap"
        } else {
            "recompute"
        },
    );
    print_json_or(a.json, &report, || {
        let mut text = render(&header, &report);
        text.push_str(&never_admitted(&report, request_count, &sim));
        text
    })
}

/// The requests an allocator refused at arrival, by cause: they are in no other figure, so a
/// table of zeros must not pass for an idle engine.
fn never_admitted(r: &Report, total: u64, sim: &SimConfig) -> String {
    let mut out = String::new();
    for a in r.allocators.iter().filter(|a| a.rejected > 0) {
        let mut causes = Vec::new();
        if a.rejected_too_long > 0 {
            causes.push(format!(
                "{} longer than --max-seq-len {}",
                thousands(a.rejected_too_long),
                thousands(u64::from(sim.max_seq_len))
            ));
        }
        if a.rejected_too_many_sequences > 0 {
            causes.push(format!(
                "{} with more sequences (--n, --beam-width) than max_num_seqs {}",
                thousands(a.rejected_too_many_sequences),
                sim.max_num_seqs
            ));
        }
        if a.rejected_larger_than_pool > 0 {
            causes.push(format!(
                "{} needing more KV than {} can ever give one request",
                thousands(a.rejected_larger_than_pool),
                a.name
            ));
        }
        out.push_str(&format!(
            "\n{}: {} of {} never admitted, left out of every figure above: {}.\n",
            a.name,
            thousands(a.rejected),
            count(total, "request"),
            causes.join("; ")
        ));
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn render(header: &str, r: &Report) -> String {
    let mut s = header.to_string();
    let rows: Vec<Vec<String>> = r
        .allocators
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                pct(a.token_states),
                pct(a.reservation),
                pct(a.internal_fragmentation),
                pct(a.external_fragmentation),
                pct(a.free),
                format!("{:.1}", a.mean_batch),
                a.max_batch.to_string(),
                format!("{:.2}", a.throughput_rps),
                format!("{:.0}", a.throughput_tps),
                format!("{}", a.preemptions),
            ]
        })
        .collect();
    s.push_str("KV pool, time-weighted (the PagedAttention paper's figure 2):\n");
    s.push_str(&table(
        &[
            "allocator",
            "token states",
            "reserved",
            "internal frag",
            "external frag",
            "free",
            "mean batch",
            "max batch",
            "req/s",
            "tokens/s",
            "preemptions",
        ],
        &rows,
        &[
            false, true, true, true, true, true, true, true, true, true, true,
        ],
    ));
    let lat: Vec<Vec<String>> = r
        .allocators
        .iter()
        .map(|a| {
            let ms = |x: f64| format!("{:.0}", x * 1000.0);
            vec![
                a.name.clone(),
                format!("{:.2} / {:.2} / {:.2}", a.ttft_p50, a.ttft_p90, a.ttft_p99),
                format!(
                    "{} / {} / {}",
                    ms(a.tpot_p50),
                    ms(a.tpot_p90),
                    ms(a.tpot_p99)
                ),
                format!("{:.1} / {:.1} / {:.1}", a.e2e_p50, a.e2e_p90, a.e2e_p99),
                format!("{:.2}", a.preemption_seconds),
                if a.sharing_savings > 0.0 {
                    pct(a.sharing_savings)
                } else {
                    "-".into()
                },
            ]
        })
        .collect();
    s.push_str("\nLatency p50 / p90 / p99 and preemption cost:\n");
    s.push_str(&table(
        &[
            "allocator",
            "TTFT s",
            "TPOT ms",
            "end-to-end s",
            "preemption s",
            "sharing saved",
        ],
        &lat,
        &[false, true, true, true, true, true],
    ));
    s
}
