//! The `vramplan` binary: command-line parsing and dispatch. Each command lives in its own
//! module under `commands/`; this file only wires them to clap and maps errors to exit codes.

mod commands;
mod hardware;
mod model_source;
mod render;
mod usage;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// How much GPU memory will this LLM take, will it fit, how many users can it serve.
#[derive(Parser)]
#[command(name = "vramplan", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// One value parsed once at start-up: boxing the large argument structs would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Memory breakdown, verdict, max concurrency, max context and fewest GPUs for one configuration.
    Estimate(commands::estimate::EstimateArgs),
    /// List or search the model catalogue.
    Models(commands::catalogue::ModelsArgs),
    /// List or search the GPU catalogue.
    Gpus(commands::catalogue::GpusArgs),
    /// Read a model file or directory (safetensors, GGUF, config.json, HF cache, ollama): header only.
    Inspect(commands::inspect::InspectArgs),
    /// The models that run on this machine (or on named GPUs): best precision, KV dtype, max
    /// context and concurrency for every catalogue and local model.
    Fit(commands::fit::FitArgs),
    /// Find models in local stores and folders and say whether each fits.
    Scan(commands::scan::ScanArgs),
    /// Simulate KV-cache allocation under a request trace: contiguous vs paged, sharing, preemption.
    Simulate(commands::simulate::SimulateArgs),
    /// Serve the interactive calculator and its JSON API.
    Serve(commands::serve::ServeArgs),
    /// Choose the cheapest deployment that meets a workload.
    Plan(commands::plan::PlanArgs),
    /// Run every calibration record through its engine profile and print the error table.
    Calibrate(commands::calibrate::CalibrateArgs),
}

/// A failure with its exit code: 2 for bad input (usage, unknown names, impossible values),
/// 1 for everything else (unreadable files, internal errors).
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn input(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    // llama.cpp's single-dash flags (-ngl, -np, -ctk, ...) are rewritten to their long forms first.
    let args = commands::estimate::expand_engine_short_flags(std::env::args_os());
    if let Some(message) = usage::negative_value(&args) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage::report(e),
    };
    let result = match cli.command {
        Command::Estimate(a) => commands::estimate::run(a),
        Command::Models(a) => commands::catalogue::models(a),
        Command::Gpus(a) => commands::catalogue::gpus(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Scan(a) => commands::scan::run(a),
        Command::Fit(a) => commands::fit::run(a),
        Command::Simulate(a) => commands::simulate::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Calibrate(a) => commands::calibrate::run(a),
    };
    record_peak_memory();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}

/// With `VRAMPLAN_PEAK_MEMORY_FILE=PATH`, writes the process's peak resident memory in bytes
/// (Linux `VmHWM`) to PATH when the command ends: how the tests of issue 11 assert that hostile
/// inputs are read in bounded memory. (A parent's `wait4` cannot tell: Linux carries the spawning
/// process's peak into the child's across `execve`.)
fn record_peak_memory() {
    let Some(path) = std::env::var_os("VRAMPLAN_PEAK_MEMORY_FILE") else {
        return;
    };
    let peak_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
    if let Some(kib) = peak_kib {
        let _ = std::fs::write(path, (kib * 1024).to_string());
    }
}
