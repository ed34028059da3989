//! `heft tune`: search the box around one tensor of a pre-trained model
//! with a meta-heuristic and write the run directory.

use crate::engine::{self, Evaluation, Fitness, Model, ModelExt, Split, Target};
use crate::rundir::RunDir;
use crate::svg;
use crate::train::{self, DataArgs, ModelArgs, Splits};
use clap::{Args, ValueEnum};
use heft_search::{
    Algorithm, Bounds, Callbacks, Mode, Optimizer, Record, Search, Settings, StopRules,
};
use heft_tune::experiment::{population_too_large, MAX_POPULATION_FLOATS};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Fitness the search minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveArg {
    /// `1 - accuracy` on the validation split.
    Error,
    /// Mean softmax cross-entropy on the validation split.
    CrossEntropy,
}

/// Options of `heft tune`.
#[derive(Args, Clone, Debug)]
pub struct TuneArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Pre-trained checkpoint (heft's or a PyTorch safetensors file).
    /// Without it, a model is first trained with the defaults of `heft train`.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
    /// Tensor to tune [default: fc2.weight for the image task, fc.weight
    /// for the text task].
    #[arg(long)]
    pub tensor: Option<String>,
    /// Also tune the bias of the tensor's layer.
    #[arg(long)]
    pub include_bias: bool,
    /// Search algorithm: pso, rpso, ga, de, ba, fa, sep-cma-es, snes or random.
    #[arg(long, default_value = "pso")]
    pub algorithm: String,
    /// Update rules: opytimizer-2.1.4 (the study's library, quirks
    /// included) or canonical (textbook equations). Sep-cma-es, snes and
    /// random have the canonical mode only [default: opytimizer-2.1.4 for
    /// pso, rpso, ga, de, ba and fa, canonical for the others].
    #[arg(long)]
    pub mode: Option<String>,
    /// Population size (agents), 1 to 100,000; algorithms need a minimum
    /// (DE 4, for example).
    #[arg(long, default_value_t = 10)]
    pub agents: usize,
    /// Iterations after the initial population, 0 to 1,000,000.
    #[arg(long, default_value_t = 15)]
    pub iterations: u64,
    /// Half-width of the search box around each pre-trained weight, in
    /// weight units; must be positive and finite.
    #[arg(long, default_value_t = 0.01, allow_hyphen_values = true, value_parser = parse_bound)]
    pub bound: f32,
    /// Seed of the search.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fitness the search minimises on the validation split.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Error)]
    pub objective: ObjectiveArg,
    /// Worker threads for scoring, 1 to 1024 [default: all cores]. Results
    /// do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Leave the pre-trained weights out of the initial population. By
    /// default they are agent 0, as in `heft experiment`, so the tuned
    /// model never has a worse validation fitness than the pre-trained
    /// one. With --objective cross-entropy the validation accuracy can
    /// still drop while the loss improves.
    #[arg(long)]
    pub exclude_initial: bool,
    /// The default; kept so that older command lines still run.
    #[arg(long, hide = true, conflicts_with = "exclude_initial")]
    pub include_initial: bool,
    /// Score every validation row, including those whose prediction no
    /// candidate can change (same results, slower).
    #[arg(long)]
    pub no_prune: bool,
    /// Run directory [default: runs/tune-<tensor>-<algorithm>-seed<seed>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing run directory. Only a directory that contains
    /// nothing but the files of a heft run (config.json, summary.json,
    /// history.csv, tuned.safetensors, convergence.svg, delta.svg), and not
    /// the input checkpoint, is replaced. Anything else is an error.
    #[arg(long)]
    pub force: bool,
    /// Print the summary as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `config.json`: the resolved settings of a run.
#[derive(Serialize)]
struct Config {
    task: String,
    data: String,
    checkpoint: Option<String>,
    tensor: String,
    include_bias: bool,
    algorithm: String,
    mode: String,
    agents: usize,
    iterations: u64,
    bound: f32,
    seed: u64,
    objective: String,
    threads: Option<usize>,
    include_initial: bool,
    prune: bool,
    valid_share: f64,
}

/// Accuracy and cross-entropy on one split.
#[derive(Serialize, Clone, Copy)]
pub struct Score {
    accuracy: f64,
    correct: u64,
    rows: usize,
    cross_entropy: f64,
}

impl From<&Evaluation> for Score {
    fn from(e: &Evaluation) -> Self {
        Score {
            accuracy: e.accuracy(),
            correct: e.correct,
            rows: e.rows,
            cross_entropy: e.mean_cross_entropy,
        }
    }
}

/// `summary.json`.
#[derive(Serialize)]
pub struct Summary {
    algorithm: String,
    mode: String,
    tensor: String,
    include_bias: bool,
    bound: f32,
    seed: u64,
    agents: usize,
    iterations: u64,
    objective: String,
    variables: usize,
    pretrained_valid: Score,
    pretrained_test: Score,
    tuned_valid: Score,
    tuned_test: Score,
    best_fitness: f64,
    pretrained_fitness: f64,
    evaluations: u64,
    pruned_fraction: f64,
    /// Share of the tuned layer's multiply-adds skipped because their
    /// inputs were zero.
    skipped_zero_fraction: f64,
    /// Wall time of the search alone, in seconds.
    search_seconds: f64,
    candidates_per_second: f64,
    run_directory: String,
}

/// Search callbacks that keep a `\r` progress line on a terminal.
struct ProgressLine {
    enabled: bool,
    total: u64,
    dim: usize,
    start: Instant,
    scored: u64,
}

impl Callbacks for ProgressLine {
    fn after_scoring(&mut self, _candidates: &[f32], _dim: usize, fitness: &[f64]) {
        self.scored += fitness.len() as u64;
    }

    fn on_iteration_end(&mut self, record: &Record, _optimizer: &dyn Optimizer) -> bool {
        if self.enabled {
            let rate = self.scored as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\r\x1b[Kiteration {}/{}  best {:.6}  {:.0} candidates/s  ({} variables)",
                record.iteration, self.total, record.best, rate, self.dim
            );
            let _ = std::io::stderr().flush();
        }
        true
    }

    fn on_run_end(&mut self, _optimizer: &dyn Optimizer, _reason: heft_search::StopReason) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// Runs `heft tune`.
pub fn run(args: &TuneArgs) -> Result<(), String> {
    // Cheap checks first, so bad options fail before any training.
    if !(args.bound.is_finite() && args.bound > 0.0) {
        return Err(format!(
            "invalid --bound {}: the box half-width must be a positive finite number such as 0.01",
            args.bound
        ));
    }
    let algorithm: Algorithm = args
        .algorithm
        .parse()
        .map_err(|e| format!("{e}; pass one of them with --algorithm"))?;
    let mode = match &args.mode {
        Some(name) => name
            .parse()
            .map_err(|e| format!("{e}; pass one of them with --mode"))?,
        None if algorithm.has_study_mode() => Mode::Opytimizer214,
        None => Mode::Canonical,
    };
    if mode == Mode::Opytimizer214 && !algorithm.has_study_mode() {
        return Err(format!(
            "invalid --mode opytimizer-2.1.4 for {}: it has only the canonical mode; pass \
             --mode canonical or leave --mode out",
            algorithm.name()
        ));
    }
    check_search_size(args.agents, args.iterations)?;
    check_population(algorithm, mode, args.agents)?;
    check_threads(args.threads)?;
    let tensor = args.tensor.clone().unwrap_or_else(|| match args.data.task {
        train::Task::Image => "fc2.weight".into(),
        train::Task::Text => "fc.weight".into(),
    });
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "tune-{tensor}-{}-seed{}",
            algorithm.name(),
            args.seed
        ))
    });
    let inputs: Vec<&Path> = args.checkpoint.iter().map(PathBuf::as_path).collect();
    crate::rundir::check_target(&out, args.force, &inputs)?;

    let pool = thread_pool(args.threads)?;
    let work = || tune(args, algorithm, mode, &tensor, &out);
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

#[cfg(feature = "parallel")]
pub(crate) type Pool = rayon::ThreadPool;
#[cfg(not(feature = "parallel"))]
pub(crate) type Pool = NoPool;

#[cfg(not(feature = "parallel"))]
pub struct NoPool;
#[cfg(not(feature = "parallel"))]
impl NoPool {
    pub(crate) fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Parses a `--bound` value (see
/// [`parse_f32_as_typed`](crate::train::parse_f32_as_typed)). Infinity and
/// NaN pass through to the positive-and-finite check.
pub(crate) fn parse_bound(text: &str) -> Result<f32, String> {
    crate::train::parse_f32_as_typed(text, "0.01").map(|value| value as f32)
}

/// Largest population `--agents` accepts: 100,000 candidates of
/// `fc1.weight` already take 40 GB.
pub(crate) const MAX_AGENTS: usize = 100_000;

/// Checks that `agents` candidates of `dim` values stay within
/// [`MAX_POPULATION_FLOATS`], the limit `heft experiment` applies too.
pub(crate) fn check_population_memory(
    agents: usize,
    dim: usize,
    tensor: &str,
) -> Result<(), String> {
    if !population_too_large(agents, dim) {
        return Ok(());
    }
    let gigabytes = (agents as f64) * (dim as f64) * 4.0 / 1e9;
    Err(format!(
        "invalid --agents {agents} for {tensor}: {agents} candidates of {dim} values take \
         {gigabytes:.1} GB per population array; pass at most {} agents",
        (MAX_POPULATION_FLOATS / dim.max(1)).max(1)
    ))
}

/// Largest `--iterations` value accepted: far beyond any useful search of
/// these models, and small enough that the history fits in memory.
pub(crate) const MAX_ITERATIONS: u64 = 1_000_000;

/// Checks `--agents` and `--iterations` against [`MAX_AGENTS`] and
/// [`MAX_ITERATIONS`]; each algorithm checks its own minimum population.
pub(crate) fn check_search_size(agents: usize, iterations: u64) -> Result<(), String> {
    if agents > MAX_AGENTS {
        return Err(format!(
            "invalid --agents {agents}: pass at most {MAX_AGENTS}"
        ));
    }
    if iterations > MAX_ITERATIONS {
        return Err(format!(
            "invalid --iterations {iterations}: pass at most {MAX_ITERATIONS}"
        ));
    }
    Ok(())
}

/// Checks, before any data is loaded or model trained, that `algorithm`
/// in `mode` accepts a population of `agents`, by building it on a
/// one-dimensional box.
pub(crate) fn check_population(
    algorithm: Algorithm,
    mode: Mode,
    agents: usize,
) -> Result<(), String> {
    let bounds = Bounds::around(&[0.0], 1.0).map_err(|e| format!("invalid search box: {e}"))?;
    let settings = Settings::new(bounds, agents, 0).with_mode(mode);
    heft_search::build(algorithm, &settings)
        .map(|_| ())
        .map_err(|e| format!("invalid --agents {agents} for {}: {e}", algorithm.name()))
}

/// Largest thread count `--threads` accepts. Far above the core counts
/// heft runs on, and low enough that a mistyped value cannot start
/// hundreds of thousands of threads.
pub(crate) const MAX_THREADS: usize = 1024;

/// Checks a `--threads` value: 1 to [`MAX_THREADS`], or absent.
pub(crate) fn check_threads(threads: Option<usize>) -> Result<(), String> {
    match threads {
        Some(t) if t == 0 || t > MAX_THREADS => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Err(format!(
                "invalid --threads {t}: pass 1 to {MAX_THREADS} (this machine has {cores} CPUs)"
            ))
        }
        _ => Ok(()),
    }
}

/// Builds a pool of `threads` workers, or returns `None` to use rayon's
/// global pool.
pub(crate) fn thread_pool(threads: Option<usize>) -> Result<Option<Pool>, String> {
    check_threads(threads)?;
    let Some(threads) = threads else {
        return Ok(None);
    };
    #[cfg(feature = "parallel")]
    {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map(Some)
            .map_err(|e| format!("cannot start {threads} threads: {e}"))
    }
    #[cfg(not(feature = "parallel"))]
    {
        let _ = threads;
        Ok(Some(NoPool))
    }
}

fn tune(
    args: &TuneArgs,
    algorithm: Algorithm,
    mode: Mode,
    tensor: &str,
    out: &std::path::Path,
) -> Result<(), String> {
    let splits = match &args.checkpoint {
        Some(path) => args.data.load_for_checkpoint(path)?,
        None => args.data.load()?,
    };
    let target = Target {
        tensor: tensor.to_string(),
        include_bias: args.include_bias,
    };
    let model = match &args.checkpoint {
        Some(path) => {
            let model = train::load(path, args.data.task)?;
            train::check_model(&model, &splits, path)?;
            model
        }
        None => {
            // Reject a wrong --tensor before spending the training time.
            let model_args = ModelArgs::default();
            engine::check_target(&model_args.init(&splits)?, &target)?;
            if !args.json {
                eprintln!("no --checkpoint given: training the default model first");
            }
            model_args.train(&splits, !args.json)?
        }
    };
    let (valid, test) = match &splits {
        Splits::Image(s) => (Split::Dense(&s.valid), Split::Dense(&s.test)),
        Splits::Text(s) => (Split::Tokens(&s.valid), Split::Tokens(&s.test)),
    };
    let fitness = match args.objective {
        ObjectiveArg::Error => Fitness::Error,
        ObjectiveArg::CrossEntropy => Fitness::CrossEntropy,
    };
    let mut objective =
        engine::objective(&model, &target, valid, args.bound, fitness, !args.no_prune)?;

    check_population_memory(args.agents, objective.dim(), tensor)?;
    let w0 = objective.initial_point().to_vec();
    let bounds = Bounds::around(&w0, args.bound).map_err(|e| {
        format!(
            "invalid --bound {}: the box around {tensor} leaves the f32 range ({e}); pass a \
             smaller --bound",
            args.bound
        )
    })?;
    let mut settings = Settings::new(bounds, args.agents, args.seed).with_mode(mode);
    if !args.exclude_initial {
        settings = settings.with_initial_point(w0.clone());
    }
    let optimizer = heft_search::build(algorithm, &settings).map_err(|e| {
        format!(
            "invalid --agents {} for {}: {e}",
            args.agents,
            algorithm.name()
        )
    })?;

    // Create the run directory before the search, so an unwritable path
    // fails fast.
    let run_dir = RunDir::create(out, args.force)?;

    let pretrained_valid = model.evaluate(valid)?;
    let pretrained_test = model.evaluate(test)?;
    let pretrained_fitness = match fitness {
        Fitness::Error => 1.0 - pretrained_valid.accuracy(),
        Fitness::CrossEntropy => pretrained_valid.mean_cross_entropy,
    };

    let mut search = Search::new(optimizer);
    let mut progress = ProgressLine {
        enabled: std::io::stderr().is_terminal() && !args.json,
        total: args.iterations,
        dim: objective.dim(),
        start: Instant::now(),
        scored: 0,
    };
    let started = Instant::now();
    let report = search
        .run(
            &mut objective,
            &StopRules::iterations(args.iterations),
            &mut progress,
        )
        .map_err(|e| format!("the search failed: {e}"))?;
    let search_seconds = started.elapsed().as_secs_f64();
    let best = search
        .optimizer()
        .best()
        .map(|(point, _)| point.to_vec())
        .ok_or_else(|| no_best_message(args, tensor, report.evaluations))?;

    let mut tuned = model.clone();
    objective
        .apply(&mut tuned, &best)
        .map_err(|e| format!("cannot write the best point into the model: {e}"))?;
    let tuned_valid = tuned.evaluate(valid)?;
    let tuned_test = tuned.evaluate(test)?;

    let summary = Summary {
        algorithm: algorithm.name().into(),
        mode: mode.name().into(),
        tensor: tensor.into(),
        include_bias: args.include_bias,
        bound: args.bound,
        seed: args.seed,
        agents: args.agents,
        iterations: args.iterations,
        objective: objective_name(fitness).into(),
        variables: objective.dim(),
        pretrained_valid: Score::from(&pretrained_valid),
        pretrained_test: Score::from(&pretrained_test),
        tuned_valid: Score::from(&tuned_valid),
        tuned_test: Score::from(&tuned_test),
        best_fitness: report.best_fitness,
        pretrained_fitness,
        evaluations: report.evaluations,
        pruned_fraction: objective.pruned_fraction(),
        skipped_zero_fraction: objective.skipped_fraction(),
        search_seconds,
        candidates_per_second: objective.candidates_scored() as f64 / search_seconds.max(1e-9),
        run_directory: out.display().to_string(),
    };
    let config = Config {
        task: format!("{:?}", args.data.task).to_lowercase(),
        data: match &splits {
            Splits::Image(s) => s.source.clone(),
            Splits::Text(s) => s.source.clone(),
        },
        checkpoint: args.checkpoint.as_ref().map(|p| p.display().to_string()),
        tensor: tensor.into(),
        include_bias: args.include_bias,
        algorithm: algorithm.name().into(),
        mode: mode.name().into(),
        agents: args.agents,
        iterations: args.iterations,
        bound: args.bound,
        seed: args.seed,
        objective: objective_name(fitness).into(),
        threads: args.threads,
        include_initial: !args.exclude_initial,
        prune: !args.no_prune,
        valid_share: match &splits {
            Splits::Image(s) => s.valid_share,
            Splits::Text(_) => args.data.valid_share(),
        },
    };

    write_run(
        &run_dir,
        &config,
        &summary,
        search.history(),
        &model,
        &tuned,
        &target,
        fitness,
        &splits,
    )?;
    run_dir.finish()?;

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?
        );
    } else {
        print_table(&summary);
    }
    Ok(())
}

/// Explains why a search ended without a best point: every fitness it
/// scored was infinite or NaN (a box so wide that the objective
/// overflows), or it scored nothing at all.
fn no_best_message(args: &TuneArgs, tensor: &str, evaluations: u64) -> String {
    if evaluations == 0 {
        return "the search scored no candidate; pass --iterations 1 or more".into();
    }
    format!(
        "every one of the {evaluations} candidates scored an infinite or NaN fitness: the box of \
         --bound {} around {tensor} reaches weights for which the {} objective overflows; pass \
         a smaller --bound",
        crate::experiment::float_text(args.bound),
        objective_name(match args.objective {
            ObjectiveArg::Error => Fitness::Error,
            ObjectiveArg::CrossEntropy => Fitness::CrossEntropy,
        })
    )
}

fn objective_name(fitness: Fitness) -> &'static str {
    match fitness {
        Fitness::Error => "error",
        Fitness::CrossEntropy => "cross-entropy",
    }
}

#[allow(clippy::too_many_arguments)]
fn write_run(
    run_dir: &RunDir,
    config: &Config,
    summary: &Summary,
    history: &[Record],
    model: &Model,
    tuned: &Model,
    target: &Target,
    fitness: Fitness,
    splits: &Splits,
) -> Result<(), String> {
    run_dir.write("config.json", to_json(config)?.as_bytes())?;
    run_dir.write("summary.json", to_json(summary)?.as_bytes())?;

    let mut csv = String::from("iteration,best,mean,std,diversity,evaluations,elapsed_seconds\n");
    for r in history {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.iteration, r.best, r.mean, r.std, r.diversity, r.evaluations, r.elapsed
        ));
    }
    run_dir.write("history.csv", csv.as_bytes())?;

    // The checkpoint writer renames its own temporary file into place.
    train::save(tuned, &run_dir.staging_path("tuned.safetensors"), splits)?;

    let iterations: Vec<u64> = history.iter().map(|r| r.iteration).collect();
    let best: Vec<f64> = history.iter().map(|r| r.best).collect();
    let mean: Vec<f64> = history.iter().map(|r| r.mean).collect();
    let plot = svg::convergence(&iterations, &best, &mean, objective_name(fitness));
    run_dir.write("convergence.svg", plot.as_bytes())?;

    let before = model.tensor(&target.tensor).unwrap_or_default();
    let after = tuned.tensor(&target.tensor).unwrap_or_default();
    let (rows, cols) = tensor_shape(model, &target.tensor, before.len());
    let heat = svg::delta_heat_map(before, after, rows, cols, config.bound, &target.tensor);
    run_dir.write("delta.svg", heat.as_bytes())?;
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}

/// Returns the `(rows, columns)` of a tensor for the heat map: the weight
/// matrices of linear and recurrent layers are `[out, in]`, biases one row.
fn tensor_shape(model: &Model, name: &str, len: usize) -> (usize, usize) {
    let columns = match model {
        Model::Mlp(mlp) => name
            .strip_prefix("fc")
            .and_then(|rest| rest.strip_suffix(".weight"))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| mlp.layers().get(n.wrapping_sub(1)))
            .map(|layer| layer.in_features()),
        Model::Sequence(seq) => match name {
            "fc.weight" => Some(seq.fc().in_features()),
            "emb.weight" => Some(seq.emb().dim()),
            "rnn.weight_ih_l0" => Some(seq.emb().dim()),
            "rnn.weight_hh_l0" => Some(seq.fc().in_features()),
            _ => None,
        },
    };
    let columns = columns
        .filter(|&c| c > 0 && len.is_multiple_of(c))
        .unwrap_or(len.max(1));
    (len / columns.max(1), columns)
}

/// Formats a count of scored candidates for a summary line, singular for
/// one: "1 candidate", "640 candidates".
fn candidates_text(evaluations: u64) -> String {
    let noun = if evaluations == 1 {
        "candidate"
    } else {
        "candidates"
    };
    format!("{evaluations} {noun}")
}

/// Formats a duration in seconds for a summary line: milliseconds below
/// a tenth of a second, where two decimals of a second would print 0.00.
pub(crate) fn duration_text(seconds: f64) -> String {
    if seconds < 0.1 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

fn print_table(s: &Summary) {
    println!("{:<12} {:>12} {:>12}", "", "validation", "test");
    println!(
        "{:<12} {:>12.4} {:>12.4}",
        "pre-trained", s.pretrained_valid.accuracy, s.pretrained_test.accuracy
    );
    println!(
        "{:<12} {:>12.4} {:>12.4}",
        "tuned", s.tuned_valid.accuracy, s.tuned_test.accuracy
    );
    println!(
        "{} {} on {} ({} variables, bound {}): {} in {}, {:.0} candidates/s, {:.1} % of validation rows pruned, {:.1} % of multiply-adds skipped on zero inputs",
        s.algorithm,
        s.mode,
        s.tensor,
        s.variables,
        crate::experiment::float_text(s.bound),
        candidates_text(s.evaluations),
        duration_text(s.search_seconds),
        s.candidates_per_second,
        100.0 * s.pruned_fraction,
        100.0 * s.skipped_zero_fraction
    );
    println!("run directory: {}", s.run_directory);
}

#[cfg(test)]
mod summary_tests {
    use super::candidates_text;

    #[test]
    fn candidate_count_agrees_in_number() {
        assert_eq!(candidates_text(0), "0 candidates");
        assert_eq!(candidates_text(1), "1 candidate");
        assert_eq!(candidates_text(640), "640 candidates");
    }
}
