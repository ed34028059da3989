//! The `heft` command.
//!
//! Subcommands arrive with the parts of heft they drive; `bench gemm`
//! measures the GEMM kernels against the machine's FMA peak.
#![forbid(unsafe_code)]

mod bench;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Improve pre-trained neural-network weights with meta-heuristics on the CPU.
#[derive(Parser)]
#[command(name = "heft", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure kernel throughput.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("heft: error: {message}");
            ExitCode::from(2)
        }
    }
}
