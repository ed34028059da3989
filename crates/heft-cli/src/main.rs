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
    exit_quietly_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return parse_failure(&err),
    };
    // `heft bench` checks HEFT_KERNEL itself, where --kernel auto reads
    // it; a --kernel list that names the kernels leaves it unused.
    if !matches!(cli.command, Command::Bench(_)) {
        if let Err(message) = check_kernel_env() {
            eprintln!("heft: error: {message}");
            return ExitCode::from(2);
        }
    }
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

/// Rejects an unknown `HEFT_KERNEL` value, or a kernel this CPU lacks, as
/// an unknown `--kernel` is rejected, rather than warn and fall back to
/// another kernel.
fn check_kernel_env() -> Result<(), String> {
    use heft_kernels::dispatch::{Isa, KERNEL_ENV};
    Isa::from_env().map(|_| ()).map_err(|e| {
        let value = std::env::var_os(KERNEL_ENV).unwrap_or_default();
        format!(
            "invalid {KERNEL_ENV}={:?}: {e}; set {KERNEL_ENV} to one of those names or unset it",
            value.to_string_lossy()
        )
    })
}

/// Makes a write to a closed standard output end the process with status
/// 141 (128 + SIGPIPE, what a shell reports for a C program killed by a
/// broken pipe) and no message, so `heft bench gemm | head` stops
/// cleanly. Rust ignores SIGPIPE, so `println!` panics when the reader has
/// gone. Any other failed write to standard output or error (a full disk,
/// `> /dev/full`) ends it with status 2 and one error line instead of a
/// panic report. Every other panic keeps the default report.
///
/// NOTE: the exit skips destructors, so a command that prints to stdout
/// while it owns a staging directory (`RunDir`) would leave it behind.
/// None does today: `heft tune` prints after the run directory is final.
fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        let broken_pipe = message.contains("Broken pipe") || message.contains("(os error 32)");
        if message.starts_with("failed printing to stdout") && broken_pipe {
            std::process::exit(141);
        }
        if message.starts_with("failed printing to std") {
            // If standard error is the stream that failed, this line is
            // lost too, and the status alone reports the failure.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "heft: error: {message}; check the free space and permissions where the output goes"
            );
            std::process::exit(2);
        }
        default(info);
    }));
}

/// Prints help and version requests as clap does. Any other argument
/// error becomes one line, `heft: error: ...` with the offending value and
/// clap's tip, and exit status 2, like the errors of the commands.
fn parse_failure(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
    }
    let text = err.render().to_string();
    let mut lines = text.lines();
    // The message runs to the first blank line (a list of missing
    // arguments is indented below it), then clap may add a tip.
    let message: Vec<&str> = lines
        .by_ref()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    let tips: String = lines
        .map(str::trim)
        .filter(|line| line.starts_with("tip:"))
        .map(|tip| format!(" ({tip})"))
        .collect();
    eprintln!("heft: error: {message}{tips}; run with --help to list the options");
    ExitCode::from(2)
}
