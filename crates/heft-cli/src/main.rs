//! The `heft` command: pre-train a model, tune one of its tensors with a
//! meta-heuristic, evaluate checkpoints and benchmark the kernels.
#![forbid(unsafe_code)]

mod bench;
mod bench_tune;
mod data;
mod engine;
mod eval;
mod experiment;
mod rundir;
mod svg;
mod train;
mod tune;

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
    /// Pre-train an MLP on images or a sequence classifier on text and write
    /// a checkpoint.
    #[command(allow_negative_numbers = true)]
    Train(train::TrainArgs),
    /// Tune one tensor of a pre-trained model with a meta-heuristic and
    /// write a run directory (trains the default model first when no
    /// checkpoint is given).
    #[command(allow_negative_numbers = true)]
    Tune(Box<tune::TuneArgs>),
    /// Print the accuracy, per-class accuracy and confusion matrix of a
    /// checkpoint on one split.
    #[command(allow_negative_numbers = true)]
    Eval(eval::EvalArgs),
    /// Tune every algorithm of a grid on one pre-trained model per seed and
    /// report the accuracies with the Wilcoxon and Friedman tests.
    #[command(allow_negative_numbers = true)]
    Experiment(Box<experiment::ExperimentArgs>),
    /// Measure kernel throughput.
    #[command(allow_negative_numbers = true)]
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Tune(args) => tune::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Experiment(args) => experiment::run(&args),
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
