//! The `vramplan` binary: command-line parsing and dispatch. Each command lives in its own
//! module under `commands/`; this file only wires them to clap and maps errors to exit codes.

mod commands;
mod render;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// How much GPU memory will this LLM take, will it fit, how many users can it serve.
#[derive(Parser)]
#[command(name = "vramplan", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Memory breakdown, verdict, max concurrency, max context and fewest GPUs for one configuration.
    Estimate(commands::estimate::EstimateArgs),
    /// List or search the model catalogue.
    Models(commands::catalogue::ModelsArgs),
    /// List or search the GPU catalogue.
    Gpus(commands::catalogue::GpusArgs),
}

/// A failure with its exit code: 2 for bad input (usage, unknown names, impossible values),
/// 1 for everything else (unreadable files, internal errors).
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn input(message: impl Into<String>) -> Failure {
        Failure { code: 2, message: message.into() }
    }
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure { code: 1, message: message.into() }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Estimate(a) => commands::estimate::run(a),
        Command::Models(a) => commands::catalogue::models(a),
        Command::Gpus(a) => commands::catalogue::gpus(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}
