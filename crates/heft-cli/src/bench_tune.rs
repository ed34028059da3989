//! `heft bench tune`: candidates scored per second by the tuning objective
//! on the standard shapes, with the pruned fraction and the fraction of the
//! FMA-peak bound.
//!
//! The image model is a 784-128-10 MLP trained for `--epochs` (default 1)
//! with Adam, batch 100 and seed 0 on the training split of the complete
//! Fashion-MNIST when it is installed, else on the embedded subset. The
//! text model is the default LSTM sequence classifier on the embedded
//! sentiment corpus, trained the same way.

use crate::bench::{
    check_common, count, measure_row_peak, median, parse_kernels, peak_range, BenchArgs,
};
use crate::data::{self, ImageSplits, TextSplits};
use crate::engine::{self, Fitness, Model, ModelObjective, Split, Target};
use crate::train::{ModelArgs, Splits};
use heft_nn::{RecurrentLayer, SplitMix64};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Install directory of Debian's `dataset-fashion-mnist` package: the
/// complete Fashion-MNIST (60,000 training and 10,000 test images, IDX `.gz`).
pub const SYSTEM_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// Half-width of the search box around the pre-trained weights.
const BOUND: f32 = 0.01;

/// Seed of the random candidates.
const CANDIDATE_SEED: u64 = 1;

/// Populations scored before timing starts.
const WARM_UP_POPULATIONS: usize = 2;

/// One measured configuration.
struct Case {
    model: ModelKind,
    tensor: &'static str,
    population: usize,
    prune: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ModelKind {
    Mlp,
    Sequence,
}

impl Case {
    fn label(&self) -> String {
        let model = match self.model {
            ModelKind::Mlp => "mlp",
            ModelKind::Sequence => "lstm",
        };
        let prune = if self.prune { "on" } else { "off" };
        format!(
            "{model} {} P={} prune {prune}",
            self.tensor, self.population
        )
    }
}

fn cases() -> Vec<Case> {
    let mut list = Vec::new();
    let plan: [(ModelKind, &'static str, &[usize]); 4] = [
        (ModelKind::Mlp, "fc2.weight", &[64, 10]),
        (ModelKind::Mlp, "fc1.weight", &[64, 8]),
        (ModelKind::Sequence, "fc.weight", &[64, 10]),
        (ModelKind::Sequence, "rnn.weight_hh_l0", &[10]),
    ];
    for (model, tensor, populations) in plan {
        for &population in populations {
            for prune in [true, false] {
                list.push(Case {
                    model,
                    tensor,
                    population,
                    prune,
                });
            }
        }
    }
    list
}

/// A measured row of the table.
struct Row {
    label: String,
    threads: usize,
    candidates_per_second: f64,
    /// Share of validation rows skipped by pruning (0 with pruning off).
    pruned_fraction: f64,
    /// Share of multiply-adds skipped on zero inputs.
    skipped_fraction: f64,
    /// Useful FLOPs of one candidate on the whole split, without pruning.
    flops_per_candidate: f64,
    /// Single-thread FMA peak in GFLOP/s: the better of the measurements
    /// just before and just after the row.
    peak: f64,
}

/// Runs `heft bench tune`.
pub fn bench_tune(args: &BenchArgs) -> Result<(), String> {
    check_common(args)?;
    if !args.kernel.trim().eq_ignore_ascii_case("auto") {
        return Err(format!(
            "--kernel {}: `heft bench tune` runs the kernel heft selects; set HEFT_KERNEL (for \
             example HEFT_KERNEL=avx2) to choose it",
            args.kernel
        ));
    }
    let isa = *parse_kernels("auto")?
        .first()
        .ok_or("no GEMM kernel is available on this CPU")?;
    let selected: Vec<Case> = cases()
        .into_iter()
        .filter(|case| crate::bench::label_matches(&case.label(), args.filter.as_deref()))
        .collect();
    if selected.is_empty() {
        let labels: Vec<String> = cases().iter().map(Case::label).collect();
        return Err(format!(
            "--filter: no case label contains {:?}; labels are: {}",
            args.filter.as_deref().unwrap_or(""),
            labels.join(", ")
        ));
    }

    // The image options choose the MLP's data, while --epochs trains both
    // models and applies to every case.
    let mlp_selected = selected.iter().any(|c| c.model == ModelKind::Mlp);
    if !mlp_selected {
        let image_option = if args.data.is_some() {
            Some("--data")
        } else if args.embedded_data {
            Some("--embedded-data")
        } else {
            None
        };
        if let Some(option) = image_option {
            return Err(format!(
                "{option} chooses the images of the MLP cases (fc2.weight, fc1.weight), and \
                 --filter {:?} selects LSTM cases only; drop {option} or widen the filter",
                args.filter.as_deref().unwrap_or("")
            ));
        }
    }

    let model_args = ModelArgs {
        epochs: args.epochs.unwrap_or(1),
        ..ModelArgs::default()
    };
    let images = if mlp_selected {
        Some(load_image_model(args, &model_args)?)
    } else {
        None
    };
    let text = if selected.iter().any(|c| c.model == ModelKind::Sequence) {
        Some(load_text_model(&model_args)?)
    } else {
        None
    };

    println!(
        "heft bench tune: bound {BOUND}, random candidates in the box, median of {} of at least \
         {} ms after {WARM_UP_POPULATIONS} warm-up populations; kernel {isa}",
        count(args.samples, "sample", "samples"),
        args.sample_ms
    );
    if let Some((images, _)) = &images {
        println!(
            "images: {} ({} validation rows); MLP 784-128-10 trained {} epoch(s), Adam, batch 100, seed 0",
            images.source,
            images.valid.labels.len(),
            model_args.epochs
        );
    }
    if let Some((text, _)) = &text {
        println!(
            "text: {} ({} validation records); LSTM embed 32, hidden 64, trained {} epoch(s)",
            text.source,
            text.valid.labels.len(),
            model_args.epochs
        );
    }

    // As in `heft bench gemm`, each row is divided by the better of the
    // peaks measured just before and just after it.
    let mut peak_before = measure_row_peak(isa);
    let mut rows = Vec::new();
    for case in &selected {
        let (model, split) = match case.model {
            ModelKind::Mlp => {
                let (images, model) = images.as_ref().expect("loaded for MLP cases");
                (model, Split::Dense(&images.valid))
            }
            ModelKind::Sequence => {
                let (text, model) = text.as_ref().expect("loaded for sequence cases");
                (model, Split::Tokens(&text.valid))
            }
        };
        for &threads in &crate::bench::thread_counts(args) {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| format!("failed to start {threads} threads: {e}"))?;
            let mut row = pool.install(|| measure_case(case, model, split, threads, args))?;
            let peak_after = measure_row_peak(isa);
            row.peak = peak_before.max(peak_after);
            peak_before = peak_after;
            eprintln!(
                "{}  threads {}  {:.1} candidates/s",
                row.label, row.threads, row.candidates_per_second
            );
            rows.push(row);
        }
    }
    println!("FMA peak {}", peak_range(rows.iter().map(|row| row.peak)));
    println!(
        "{:<38} {:>7} {:>12} {:>8} {:>8} {:>15} {:>7} {:>9}",
        "case", "threads", "candidates/s", "pruned", "zeros", "MFLOP/candidate", "peak", "% peak"
    );
    for row in &rows {
        let gflops = row.flops_per_candidate * row.candidates_per_second / 1e9;
        let fraction = 100.0 * gflops / (row.peak * row.threads as f64);
        let pruned = format!("{:.1}%", 100.0 * row.pruned_fraction);
        let zeros = format!("{:.1}%", 100.0 * row.skipped_fraction);
        println!(
            "{:<38} {:>7} {:>12.1} {:>8} {:>8} {:>15.2} {:>7.1} {:>8.1}%",
            row.label,
            row.threads,
            row.candidates_per_second,
            pruned,
            zeros,
            row.flops_per_candidate / 1e6,
            row.peak,
            fraction
        );
    }
    println!(
        "% peak: dense useful FLOPs per candidate times candidates/s over the peak times the \
         threads; pruning skips rows and the MLP kernels skip the multiply-adds on zero \
         inputs (column zeros), so cases can exceed 100%."
    );
    Ok(())
}

/// Loads the image splits (the complete Fashion-MNIST when found) and
/// trains the MLP.
fn load_image_model(
    args: &BenchArgs,
    model_args: &ModelArgs,
) -> Result<(ImageSplits, Model), String> {
    let dir: Option<PathBuf> = match (&args.data, args.embedded_data) {
        (_, true) => None,
        (Some(dir), false) => Some(dir.clone()),
        (None, false) => {
            let system = Path::new(SYSTEM_FASHION_MNIST);
            if system.is_dir() {
                Some(system.to_path_buf())
            } else {
                eprintln!(
                    "note: the complete Fashion-MNIST is not installed at {SYSTEM_FASHION_MNIST} \
                     (apt-get install dataset-fashion-mnist), so the embedded subset and its \
                     2,400-image validation split are used"
                );
                None
            }
        }
    };
    let images = data::load_images(dir.as_deref(), 10, heft_data::DEFAULT_VALID_SHARE)?;
    let splits = Splits::Image(images);
    let model = model_args.train(&splits, false)?;
    let Splits::Image(images) = splits else {
        unreachable!("built as images above")
    };
    Ok((images, model))
}

/// Loads the embedded sentiment corpus and trains the LSTM classifier.
fn load_text_model(model_args: &ModelArgs) -> Result<(TextSplits, Model), String> {
    let splits = Splits::Text(data::load_text(None)?);
    let model = model_args.train(&splits, false)?;
    let Splits::Text(text) = splits else {
        unreachable!("built as text above")
    };
    Ok((text, model))
}

/// Times one case on the current thread pool.
fn measure_case(
    case: &Case,
    model: &Model,
    split: Split<'_>,
    threads: usize,
    args: &BenchArgs,
) -> Result<Row, String> {
    let target = Target {
        tensor: case.tensor.to_string(),
        include_bias: false,
    };
    let mut objective =
        engine::objective(model, &target, split, BOUND, Fitness::Error, case.prune)?;
    let dim = objective.dim();
    let mut rng = SplitMix64::new(CANDIDATE_SEED);
    let initial = objective.initial_point().to_vec();
    let mut population = Vec::with_capacity(dim * case.population);
    for _ in 0..case.population {
        population.extend(initial.iter().map(|&w| w + rng.uniform(-BOUND, BOUND)));
    }
    debug_assert_eq!(population.len(), dim * case.population);
    let mut fitness = vec![0.0f64; case.population];
    let mut score = |objective: &mut ModelObjective| {
        objective
            .score(&population, &mut fitness)
            .map_err(|e| format!("scoring {} failed: {e}", case.label()))
    };

    let start = Instant::now();
    for _ in 0..WARM_UP_POPULATIONS {
        score(&mut objective)?;
    }
    let per_population = start.elapsed().as_secs_f64() / WARM_UP_POPULATIONS as f64;
    let min_sample = args.sample_ms as f64 / 1e3;
    let reps = ((min_sample / per_population.max(1e-9)).ceil() as usize).max(1);
    let mut seconds_per_population = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        let start = Instant::now();
        for _ in 0..reps {
            score(&mut objective)?;
        }
        seconds_per_population.push(start.elapsed().as_secs_f64() / reps as f64);
    }
    Ok(Row {
        label: case.label(),
        threads,
        candidates_per_second: case.population as f64 / median(&seconds_per_population),
        pruned_fraction: objective.pruned_fraction(),
        skipped_fraction: objective.skipped_fraction(),
        flops_per_candidate: useful_flops(model, case.tensor, split),
        // Set by the caller, which measures it around this row.
        peak: 0.0,
    })
}

/// Returns the FLOPs one candidate needs on the whole split without
/// pruning: the layers from the tuned one to the output. For the
/// recurrent weight this counts the input and recurrent products of every
/// real (unpadded) time step plus the head.
fn useful_flops(model: &Model, tensor: &str, split: Split<'_>) -> f64 {
    match (model, split) {
        (Model::Mlp(mlp), Split::Dense(dense)) => {
            let rows = dense.labels.len() as f64;
            let sizes = mlp.sizes();
            let first = match tensor {
                "fc1.weight" => 0,
                _ => sizes.len() - 2,
            };
            sizes[first..]
                .windows(2)
                .map(|pair| 2.0 * rows * pair[0] as f64 * pair[1] as f64)
                .sum()
        }
        (Model::Sequence(seq), Split::Tokens(tokens)) => {
            let rows = tokens.labels.len() as f64;
            let fc = seq.fc();
            let head = 2.0 * rows * fc.in_features() as f64 * fc.out_features() as f64;
            if tensor == "fc.weight" {
                return head;
            }
            let (gates, input, hidden) = match seq.rnn() {
                RecurrentLayer::Lstm(l) => (4, l.input_size(), l.hidden_size()),
                RecurrentLayer::Rnn(r) => (1, r.input_size(), r.hidden_size()),
            };
            let steps: usize = tokens.lengths.iter().sum();
            head + 2.0 * steps as f64 * (gates * hidden) as f64 * (input + hidden) as f64
        }
        _ => 0.0,
    }
}
