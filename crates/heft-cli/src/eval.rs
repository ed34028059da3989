//! `heft eval`: accuracy, per-class accuracy and confusion matrix of a
//! checkpoint on one split.

use crate::engine::{ModelExt, Split};
use crate::train::{self, DataArgs, Splits};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;

/// A split of the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    Train,
    Valid,
    Test,
}

/// Options of `heft eval`.
#[derive(Args, Clone, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Checkpoint to score (heft's or a PyTorch safetensors file).
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,
    /// Split to score the checkpoint on.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Print the result as JSON on stdout. The per-class accuracy of a
    /// class without rows in the split is `null` there, and `-` in the
    /// table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct EvalReport {
    checkpoint: String,
    split: String,
    rows: usize,
    correct: u64,
    accuracy: f64,
    cross_entropy: f64,
    /// Accuracy of each true class; `null` for a class without rows in
    /// the split, whose accuracy is undefined.
    per_class_accuracy: Vec<Option<f64>>,
    /// Row = true class, column = predicted class.
    confusion: Vec<Vec<u64>>,
}

/// Runs `heft eval`.
pub fn run(args: &EvalArgs) -> Result<(), String> {
    let splits = args.data.load_for_checkpoint(&args.checkpoint)?;
    let model = train::load(&args.checkpoint, args.data.task)?;
    train::check_model(&model, &splits, &args.checkpoint)?;
    let split = match (&splits, args.split) {
        (Splits::Image(s), SplitArg::Train) => Split::Dense(&s.train),
        (Splits::Image(s), SplitArg::Valid) => Split::Dense(&s.valid),
        (Splits::Image(s), SplitArg::Test) => Split::Dense(&s.test),
        (Splits::Text(s), SplitArg::Train) => Split::Tokens(&s.train),
        (Splits::Text(s), SplitArg::Valid) => Split::Tokens(&s.valid),
        (Splits::Text(s), SplitArg::Test) => Split::Tokens(&s.test),
    };
    let evaluation = model.evaluate(split)?;
    let classes = evaluation.classes;
    let confusion: Vec<Vec<u64>> = evaluation
        .confusion
        .chunks_exact(classes)
        .map(<[u64]>::to_vec)
        .collect();
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(class, row)| {
            let rows = row.iter().sum::<u64>();
            (rows > 0).then(|| row[class] as f64 / rows as f64)
        })
        .collect();
    let report = EvalReport {
        checkpoint: args.checkpoint.display().to_string(),
        split: format!("{:?}", args.split).to_lowercase(),
        rows: evaluation.rows,
        correct: evaluation.correct,
        accuracy: evaluation.accuracy(),
        cross_entropy: evaluation.mean_cross_entropy,
        per_class_accuracy,
        confusion,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(report: &EvalReport) {
    println!(
        "{} on the {} split: accuracy {:.4} ({} of {}), cross-entropy {:.4}",
        report.checkpoint,
        report.split,
        report.accuracy,
        report.correct,
        report.rows,
        report.cross_entropy
    );
    println!(
        "confusion matrix (rows: true class, columns: predicted class; accuracy - for a class \
         without rows in the split)"
    );
    let classes = report.confusion.len();
    let header: String = (0..classes).map(|c| format!("{c:>6}")).collect();
    println!("{:>6}{header}  accuracy", "");
    for (class, row) in report.confusion.iter().enumerate() {
        let cells: String = row.iter().map(|n| format!("{n:>6}")).collect();
        let accuracy =
            report.per_class_accuracy[class].map_or_else(|| "-".to_string(), |a| format!("{a:.4}"));
        println!("{class:>6}{cells}  {accuracy}");
    }
}
