//! `heft experiment`: tune every algorithm of a grid on one pre-trained
//! model per seed, append each run to `runs.jsonl` as it ends, and write
//! the report with the Wilcoxon and Friedman tests.

use crate::engine::{self, Fitness, Split, Target};
use crate::rundir::write_atomically;
use crate::train::{Cell, DataArgs, ModelArgs, Splits, Task};
use crate::tune::{check_search_size, check_threads, thread_pool, ObjectiveArg};
use clap::Args;
use heft_search::{Algorithm, Mode};
use heft_tune::experiment::{
    read_runs, run_experiment, ExperimentSpec, Report, RunRecord, SeedSetup, RUNS_FILE,
};
use heft_tune::stats::WilcoxonOptions;
use heft_tune::TuneError;
use std::fs;
use std::path::{Path, PathBuf};

/// Files of the report, written when every run of the grid has finished.
const REPORT_FILES: [&str; 5] = [
    "report.md",
    "report.csv",
    "report.json",
    "gains.svg",
    "convergence.svg",
];

/// Default epochs of each seed's pre-trained model: fewer than `heft
/// train` uses, because an experiment trains one model per seed.
const DEFAULT_EXPERIMENT_EPOCHS: usize = 5;

/// Options of `heft experiment`.
#[derive(Args, Clone, Debug)]
pub struct ExperimentArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Algorithms, comma-separated, each `name` or `name:mode` (such as
    /// `pso:canonical`). A name without a mode runs in every mode of
    /// --modes that it has [default: pso, rpso, ga, de, ba and fa in
    /// opytimizer-2.1.4 and canonical mode, then sep-cma-es, snes and
    /// random in canonical mode].
    #[arg(long, value_delimiter = ',', value_name = "NAME[:MODE],...")]
    pub algorithms: Vec<String>,
    /// Modes of the algorithms given without one, comma-separated:
    /// opytimizer-2.1.4 (the study's library, quirks included) and
    /// canonical (textbook equations). Without --algorithms it filters the
    /// default grid.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "opytimizer-2.1.4,canonical",
        value_name = "MODE,..."
    )]
    pub modes: Vec<String>,
    /// Seeds: one number N from 1 to 10,000 for seeds 0 to N-1, or a
    /// comma-separated list of at most 10,000 seeds such as `3,7,11` (`5,`
    /// is seed 5 alone). Each seed trains its own model and seeds the
    /// searches on it.
    #[arg(long, default_value = "15", value_name = "N|SEED,...")]
    pub seeds: String,
    /// Tensors to tune, comma-separated [default: fc2.weight for the image
    /// task, fc.weight for the text task].
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub tensors: Vec<String>,
    /// Population size (agents) of every search, 1 to 100,000.
    #[arg(long, default_value_t = 10)]
    pub agents: usize,
    /// Iterations of every search after the initial population, 0 to
    /// 1,000,000.
    #[arg(long, default_value_t = 15)]
    pub iterations: u64,
    /// Half-width of the search box around each pre-trained weight, in
    /// weight units; must be positive and finite.
    #[arg(long, default_value_t = 0.01, allow_hyphen_values = true, value_parser = crate::tune::parse_bound)]
    pub bound: f32,
    /// Fitness the searches minimise on the validation split.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Error)]
    pub objective: ObjectiveArg,
    /// Leave the pre-trained weights out of the initial population. By
    /// default they are agent 0, so no run ends with a worse validation
    /// fitness than it started with. With --objective cross-entropy the
    /// validation accuracy can still drop while the loss improves.
    #[arg(long)]
    pub exclude_initial: bool,
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Name of the experiment, used for the default --out: one plain name,
    /// without `/` [default: derived from the dataset and the tensors].
    #[arg(long)]
    pub name: Option<String>,
    /// Experiment directory [default: experiments/<name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the experiment in --out: keep its finished runs and run
    /// only the missing ones. Every setting that changes the results
    /// (dataset, split, model, training and search options) must equal
    /// the one recorded in its settings.json, and so must the content of
    /// the data loaded. The seeds, algorithms and tensors may change.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Delete the results, settings and report files in --out and start over.
    #[arg(long)]
    pub force: bool,
    /// Worker threads for training and scoring, 1 to 1024 [default: all
    /// cores]. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Training settings of the pre-trained model of each seed. The seed of
/// the weight initialisation and shuffling is the experiment seed.
#[derive(Args, Clone, Debug)]
pub struct TrainingArgs {
    /// MLP layer sizes, input first, comma-separated. Image task only.
    #[arg(long, value_delimiter = ',', default_value = "784,128,10")]
    pub sizes: Vec<usize>,
    /// Recurrent layer of the text model.
    #[arg(long, value_enum, default_value_t = Cell::Lstm)]
    pub cell: Cell,
    /// Embedding width of the text model.
    #[arg(long, default_value_t = 32)]
    pub embed: usize,
    /// Hidden-state width of the text model.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Passes over the training split of each seed's model, 1 to 100,000.
    #[arg(long, default_value_t = DEFAULT_EXPERIMENT_EPOCHS)]
    pub epochs: usize,
    /// Rows per gradient step, 1 or more. A value above the number of
    /// training rows takes all of them in one step.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Adam learning rate, a positive number.
    #[arg(long, default_value_t = 1e-3, value_parser = crate::train::parse_lr)]
    pub lr: f32,
}

impl TrainingArgs {
    fn model_args(&self, seed: u64) -> ModelArgs {
        ModelArgs {
            sizes: self.sizes.clone(),
            cell: self.cell,
            embed: self.embed,
            hidden: self.hidden,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed,
        }
    }
}

/// Runs `heft experiment`.
pub fn run(args: &ExperimentArgs) -> Result<(), String> {
    let spec = build_spec(args)?;
    let out = match &args.out {
        Some(out) => out.clone(),
        None => {
            let name = match &args.name {
                Some(name) => check_name(name)?.to_string(),
                None => default_name(&args.data, &spec.tensors),
            };
            PathBuf::from("experiments").join(name)
        }
    };
    check_search_size(args.agents, args.iterations)?;
    check_threads(args.threads)?;
    args.training.model_args(0).check()?;
    let settings = settings(args);
    if args.resume {
        check_settings(&out, &settings)?;
    }
    let pool = thread_pool(args.threads)?;
    let work = || {
        // Load the data and check every tensor name before the directory
        // is created or any model trained.
        let splits = args.data.load()?;
        check_tensors(args, &splits, &spec.tensors)?;
        // The data's content, so that a resume notices data files that
        // changed under the same --data path.
        let mut settings = settings.clone();
        settings.push((DATA_CONTENT, splits.fingerprint()));
        if args.resume {
            check_settings(&out, &settings)?;
        }
        let created = Created::before(&out);
        prepare_directory(&out, args.resume, args.force)?;
        let result =
            write_settings(&out, &settings).and_then(|()| experiment(args, &spec, &out, &splits));
        if result.is_err() {
            remove_if_no_runs(&out, &created);
        }
        result
    };
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// Checks a `--name` value: one plain path component, so the experiment
/// directory stays inside `experiments/`.
fn check_name(name: &str) -> Result<&str, String> {
    let mut components = Path::new(name).components();
    let plain = matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !name.contains(['/', '\\']);
    if plain {
        Ok(name)
    } else {
        Err(format!(
            "invalid --name {name:?}: pass one plain name such as fashion-run-1 (not empty, no \
             `/`, not `.` or `..`), or pass --out with the directory"
        ))
    }
}

/// The directories that creating the experiment directory adds: the
/// directory itself and any missing parents, up to the first that exists.
struct Created {
    dirs: Vec<PathBuf>,
}

impl Created {
    fn before(out: &Path) -> Created {
        let dirs = out
            .ancestors()
            .filter(|dir| !dir.as_os_str().is_empty())
            .take_while(|dir| fs::symlink_metadata(dir).is_err())
            .map(Path::to_path_buf)
            .collect();
        Created { dirs }
    }
}

/// After a failure, removes what this run added to an experiment
/// directory that contains no finished run: the settings file, an empty
/// results file, and the directories the run created if they are empty.
/// Finished runs stay, so that --resume can continue them.
fn remove_if_no_runs(out: &Path, created: &Created) {
    let runs = out.join(RUNS_FILE);
    if fs::metadata(&runs).is_ok_and(|m| m.len() > 0) {
        return;
    }
    let _ = fs::remove_file(&runs);
    let _ = fs::remove_file(out.join(SETTINGS_FILE));
    for dir in &created.dirs {
        // `remove_dir` removes empty directories only.
        if fs::remove_dir(dir).is_err() {
            break;
        }
    }
}

/// The file of an experiment directory that records the settings its runs
/// were made with, so that --resume can check them.
const SETTINGS_FILE: &str = "settings.json";

/// The entry of [`SETTINGS_FILE`] with the fingerprint of the loaded data
/// (`Splits::fingerprint`). Experiments written before it existed
/// lack it, and resume without the check.
const DATA_CONTENT: &str = "data content";

/// Returns the settings that change the results of a run, as option names
/// and values in the form the command line takes them. The seeds, the
/// algorithms and the tensors pick the cells of the grid, so they may
/// change between resumed runs.
fn settings(args: &ExperimentArgs) -> Vec<(&'static str, String)> {
    let training = &args.training;
    let join = |sizes: &[usize]| {
        sizes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut list = vec![
        ("--task", format!("{:?}", args.data.task).to_lowercase()),
        ("--data", data_setting(args.data.data.as_deref())),
    ];
    match args.data.task {
        Task::Image => list.extend([
            ("--valid-share", args.data.valid_share().to_string()),
            ("--classes", args.data.classes.to_string()),
            ("--sizes", join(&training.sizes)),
        ]),
        Task::Text => list.extend([
            ("--cell", format!("{:?}", training.cell).to_lowercase()),
            ("--embed", training.embed.to_string()),
            ("--hidden", training.hidden.to_string()),
        ]),
    }
    list.extend([
        ("--epochs", training.epochs.to_string()),
        ("--batch-size", training.batch_size.to_string()),
        ("--lr", float_text(training.lr)),
        ("--agents", args.agents.to_string()),
        ("--iterations", args.iterations.to_string()),
        ("--bound", float_text(args.bound)),
        (
            "--objective",
            match args.objective {
                ObjectiveArg::Error => "error",
                ObjectiveArg::CrossEntropy => "cross-entropy",
            }
            .to_string(),
        ),
        ("--exclude-initial", args.exclude_initial.to_string()),
    ]);
    list
}

/// Returns the `--data` setting: the directory passed, or the embedded
/// data with the `HEFT_DATASETS` directory it is read from when that
/// variable is set, so a resume cannot mix two datasets.
fn data_setting(data: Option<&std::path::Path>) -> String {
    match (data, std::env::var_os("HEFT_DATASETS")) {
        (Some(dir), _) => dir.display().to_string(),
        (None, Some(dir)) => format!(
            "embedded, HEFT_DATASETS={}",
            std::path::Path::new(&dir).display()
        ),
        (None, None) => "embedded".to_string(),
    }
}

/// With --resume, checks that the runs in `out` were made with `settings`,
/// and names every setting that differs.
fn check_settings(out: &Path, settings: &[(&'static str, String)]) -> Result<(), String> {
    let runs = out.join(RUNS_FILE);
    if !fs::metadata(&runs).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    let path = out.join(SETTINGS_FILE);
    let text = fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {}: {e}; the settings of the runs in {} are unknown, so pass --force \
             to start the experiment over or --out to pick another directory",
            path.display(),
            runs.display()
        )
    })?;
    let stored: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a JSON object of settings ({e}); pass --force to start the \
                 experiment over or --out to pick another directory",
                path.display()
            )
        })?;
    let differences: Vec<String> = settings
        .iter()
        .filter_map(|(name, requested)| {
            let stored = stored.get(*name).and_then(serde_json::Value::as_str);
            if *name == DATA_CONTENT {
                return match stored {
                    Some(stored) if stored != requested => Some(format!(
                        "{name} {stored} (the data loaded now gives {requested}: the files \
                         changed)"
                    )),
                    _ => None,
                };
            }
            (stored != Some(requested.as_str())).then(|| {
                format!(
                    "{name} {} (requested {requested})",
                    stored.unwrap_or("not recorded")
                )
            })
        })
        .collect();
    if differences.is_empty() {
        return Ok(());
    }
    Err(format!(
        "cannot resume the experiment in {}: its runs were made with {}; resume with the same \
         values, or pass --out with a new directory",
        out.display(),
        differences.join(", ")
    ))
}

/// Writes `settings` to the experiment directory.
fn write_settings(out: &Path, settings: &[(&'static str, String)]) -> Result<(), String> {
    let object: serde_json::Map<String, serde_json::Value> = settings
        .iter()
        .map(|(name, value)| ((*name).to_string(), value.clone().into()))
        .collect();
    let text = serde_json::to_string_pretty(&object).map_err(|e| e.to_string())? + "\n";
    write_atomically(out, SETTINGS_FILE, text.as_bytes())
}

/// Formats an f32 option in its shortest form that reads back as the same
/// value: `0.01`, `1e38`, `2` (not `0.009999999776482582`, `1000...0` or
/// `2.0`).
pub(crate) fn float_text(value: f32) -> String {
    let text = format!("{value:?}");
    match text.strip_suffix(".0") {
        Some(whole) => whole.to_string(),
        None => text,
    }
}

/// Builds the grid from the options and checks it.
fn build_spec(args: &ExperimentArgs) -> Result<ExperimentSpec, String> {
    let modes = parse_modes(&args.modes)?;
    let algorithms = if args.algorithms.is_empty() {
        ExperimentSpec::default()
            .algorithms
            .into_iter()
            .filter(|(_, mode)| modes.contains(mode))
            .collect()
    } else {
        parse_algorithms(&args.algorithms, &modes)?
    };
    let tensors = if args.tensors.is_empty() {
        vec![match args.data.task {
            Task::Image => "fc2.weight".to_string(),
            Task::Text => "fc.weight".to_string(),
        }]
    } else {
        args.tensors.iter().map(|t| t.trim().to_string()).collect()
    };
    if !(args.bound.is_finite() && args.bound > 0.0) {
        return Err(format!(
            "invalid --bound {}: the box half-width must be a positive finite number such as 0.01",
            args.bound
        ));
    }
    let spec = ExperimentSpec {
        algorithms,
        seeds: parse_seeds(&args.seeds)?,
        tensors,
        agents: args.agents,
        iterations: args.iterations,
        bound: args.bound,
        fitness: match args.objective {
            ObjectiveArg::Error => Fitness::Error,
            ObjectiveArg::CrossEntropy => Fitness::CrossEntropy,
        },
        include_initial: !args.exclude_initial,
    };
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
}

fn parse_modes(names: &[String]) -> Result<Vec<Mode>, String> {
    let mut modes = Vec::new();
    for name in names {
        let mode: Mode = name
            .parse()
            .map_err(|e| format!("{e}; fix the name {name:?} in --modes"))?;
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    if modes.is_empty() {
        return Err(format!(
            "--modes is empty; pass some of {}",
            Mode::NAMES.join(", ")
        ));
    }
    Ok(modes)
}

/// Parses `name[:mode]` entries. A name without a mode expands to every
/// mode of `modes` that the algorithm has.
fn parse_algorithms(entries: &[String], modes: &[Mode]) -> Result<Vec<(Algorithm, Mode)>, String> {
    let mut grid = Vec::new();
    for entry in entries {
        let (name, mode) = match entry.split_once(':') {
            Some((name, mode)) => (name, Some(mode)),
            None => (entry.as_str(), None),
        };
        // The parse errors already list the valid names.
        let algorithm: Algorithm = name
            .parse()
            .map_err(|e| format!("{e}; fix the entry {entry:?} of --algorithms"))?;
        match mode {
            Some(mode) => {
                let mode: Mode = mode
                    .parse()
                    .map_err(|e| format!("{e}; fix the entry {entry:?} of --algorithms"))?;
                grid.push((algorithm, mode));
            }
            None => {
                let usable: Vec<Mode> = modes
                    .iter()
                    .copied()
                    .filter(|&m| m == Mode::Canonical || algorithm.has_study_mode())
                    .collect();
                if usable.is_empty() {
                    return Err(format!(
                        "{} has none of the modes given by --modes; write it as {}:canonical",
                        algorithm.name(),
                        algorithm.name()
                    ));
                }
                grid.extend(usable.into_iter().map(|m| (algorithm, m)));
            }
        }
    }
    Ok(grid)
}

/// Parses `N` (seeds 0 to N-1) or a comma-separated list of seeds.
/// A repeated seed is left for [`ExperimentSpec::validate`] to reject.
/// Largest number of seeds `--seeds` accepts. Each seed trains its own
/// model, so this is far beyond any useful experiment, and small enough
/// that a mistyped count cannot reserve gigabytes for the list of seeds.
const MAX_SEEDS: u64 = 10_000;

fn parse_seeds(text: &str) -> Result<Vec<u64>, String> {
    let invalid = || {
        format!(
            "invalid --seeds {text:?}: pass a count from 1 to {MAX_SEEDS} such as 15, or a \
             comma-separated list of at most {MAX_SEEDS} seeds such as 0,3,7"
        )
    };
    let trimmed = text.trim();
    let seeds: Vec<u64> = if trimmed.contains(',') {
        // Empty items are skipped, so `5,` is seed 5 alone.
        trimmed
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().map_err(|_| invalid()))
            .collect::<Result<_, _>>()?
    } else {
        let count: u64 = trimmed.parse().map_err(|_| invalid())?;
        if count > MAX_SEEDS {
            return Err(invalid());
        }
        (0..count).collect()
    };
    if seeds.is_empty() || seeds.len() as u64 > MAX_SEEDS {
        return Err(invalid());
    }
    Ok(seeds)
}

fn default_name(data: &DataArgs, tensors: &[String]) -> String {
    let dataset = match (&data.data, data.task) {
        (Some(path), _) => path
            .file_stem()
            .map_or_else(|| "data".to_string(), |s| s.to_string_lossy().into_owned()),
        (None, Task::Image) => "fashion-mnist-subset".to_string(),
        (None, Task::Text) => "sentiment".to_string(),
    };
    format!("{dataset}-{}", tensors.join("+"))
}

/// Checks the experiment directory against --resume and --force, and with
/// --force deletes the results and report files (nothing else).
fn prepare_directory(out: &Path, resume: bool, force: bool) -> Result<(), String> {
    let runs = out.join(RUNS_FILE);
    let has_runs = fs::metadata(&runs).is_ok_and(|m| m.len() > 0);
    if force {
        for name in [RUNS_FILE, SETTINGS_FILE].into_iter().chain(REPORT_FILES) {
            let path = out.join(name);
            if path.exists() {
                fs::remove_file(&path)
                    .map_err(|e| format!("cannot delete {} for --force: {e}", path.display()))?;
            }
        }
    } else if has_runs && !resume {
        return Err(format!(
            "the experiment directory {} already holds results in {RUNS_FILE}; pass --resume to \
             continue it, --force to start over, or --out to pick another directory",
            out.display()
        ));
    }
    fs::create_dir_all(out).map_err(|e| {
        format!(
            "cannot create the experiment directory {}: {e}; pass --out with a writable path",
            out.display()
        )
    })
}

fn experiment(
    args: &ExperimentArgs,
    spec: &ExperimentSpec,
    out: &Path,
    splits: &Splits,
) -> Result<(), String> {
    let (validation, test, source) = match splits {
        Splits::Image(s) => (Split::Dense(&s.valid), Split::Dense(&s.test), &s.source),
        Splits::Text(s) => (Split::Tokens(&s.valid), Split::Tokens(&s.test), &s.source),
    };
    let grid_size = spec.seeds.len() * spec.tensors.len() * spec.algorithms.len();
    let already = if args.resume {
        count_finished(spec, &out.join(RUNS_FILE))?
    } else {
        0
    };
    eprintln!(
        "experiment {}: {} runs ({} seeds x {} tensors x {} algorithms) on {source}, {already} \
         already finished",
        out.display(),
        grid_size,
        spec.seeds.len(),
        spec.tensors.len(),
        spec.algorithms.len()
    );

    // `prepare` must return a `TuneError`, whose variants describe tuning
    // failures, so the CLI's own message is kept here and shown instead.
    let mut prepare_error: Option<String> = None;
    let mut finished = already;
    let prepare = |seed: u64| {
        eprintln!(
            "seed {seed}: training the pre-trained model ({} epochs)",
            args.training.epochs
        );
        let model = args.training.model_args(seed).train(splits, false);
        match model {
            Ok(model) => Ok(SeedSetup {
                model,
                validation: validation.to_tune(),
                test: test.to_tune(),
            }),
            Err(message) => {
                prepare_error = Some(message.clone());
                Err::<SeedSetup, _>(TuneError::Model(message))
            }
        }
    };
    let on_run = |record: &RunRecord| {
        finished += 1;
        print_progress(finished, grid_size, record);
    };
    let outcome = run_experiment(spec, out, args.resume, prepare, on_run);
    let outcome = match (outcome, prepare_error) {
        (Ok(outcome), _) => outcome,
        (Err(_), Some(message)) => return Err(message),
        (Err(e), None) => return Err(e.to_string()),
    };

    let records = grid_records(spec, &outcome.records);
    let outside = outcome.records.len() - records.len();
    if outside > 0 {
        eprintln!(
            "{outside} runs in {} are outside this grid and left out of the report",
            outcome.runs_path.display()
        );
    }
    let report = Report::build(&records, WilcoxonOptions::default())
        .map_err(|e| format!("cannot build the report: {e}"))?;
    let markdown = format!(
        "{}{}",
        report_header(args, spec, source),
        report.to_markdown()
    );
    write_atomically(out, "report.md", markdown.as_bytes())?;
    write_atomically(out, "report.csv", report.to_csv().as_bytes())?;
    write_atomically(out, "report.json", report.to_json().as_bytes())?;
    write_atomically(out, "gains.svg", report.gains_svg().as_bytes())?;
    write_atomically(out, "convergence.svg", report.convergence_svg().as_bytes())?;
    print!("{markdown}");
    eprintln!(
        "{} new runs, {} kept from before; wrote {} and the report files in {}",
        outcome.completed,
        outcome.skipped,
        RUNS_FILE,
        out.display()
    );
    Ok(())
}

/// Counts the records of the results file that belong to the grid.
fn count_finished(spec: &ExperimentSpec, runs: &Path) -> Result<usize, String> {
    if !runs.exists() {
        return Ok(0);
    }
    // The error of a damaged line already names its fix, to repair or
    // delete the line.
    let records = read_runs(runs).map_err(|e| match e {
        TuneError::ResultsLine { .. } => {
            format!("{e}, or pass --force to start the experiment over")
        }
        _ => format!("{e}; pass --force to start the experiment over"),
    })?;
    Ok(grid_records(spec, &records).len())
}

/// Returns the records of the grid's cells, first run of each cell only,
/// ordered by tensor, algorithm and seed as the grid lists them. The order
/// makes the report independent of the order in which the runs finished.
fn grid_records(spec: &ExperimentSpec, records: &[RunRecord]) -> Vec<RunRecord> {
    let position = |r: &RunRecord| {
        let tensor = spec.tensors.iter().position(|t| *t == r.tensor)?;
        let algorithm = spec
            .algorithms
            .iter()
            .position(|&a| a == (r.algorithm, r.mode))?;
        let seed = spec.seeds.iter().position(|&s| s == r.seed)?;
        Some((tensor, algorithm, seed))
    };
    let mut keyed: Vec<((usize, usize, usize), &RunRecord)> = records
        .iter()
        .filter_map(|r| position(r).map(|key| (key, r)))
        .collect();
    // A stable sort keeps the first record of a repeated cell first.
    keyed.sort_by_key(|(key, _)| *key);
    keyed.dedup_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, r)| r.clone()).collect()
}

/// Checks, before any training, that the model of the experiment has every
/// tensor of `tensors` and that each can be tuned.
fn check_tensors(args: &ExperimentArgs, splits: &Splits, tensors: &[String]) -> Result<(), String> {
    let model = args.training.model_args(0).init(splits)?;
    let names = heft_tune::tensor_names(&model);
    if let Some(unknown) = tensors.iter().find(|t| !names.contains(t)) {
        return Err(format!(
            "unknown tensor `{unknown}` in --tensors: this model has {}; pass some of them with \
             --tensors",
            names.join(", ")
        ));
    }
    for tensor in tensors {
        let target = Target {
            tensor: tensor.clone(),
            include_bias: false,
        };
        engine::check_target(&model, &target)?;
    }
    Ok(())
}

fn print_progress(finished: usize, total: usize, r: &RunRecord) {
    eprintln!(
        "[{finished}/{total}] seed {} {} {} {}: validation {:.2} -> {:.2} %, test {:.2} -> {:.2} %, \
         {} candidates in {}",
        r.seed,
        r.tensor,
        r.algorithm.name(),
        r.mode.name(),
        100.0 * r.pretrained_validation.accuracy(),
        100.0 * r.tuned_validation.accuracy(),
        100.0 * r.pretrained_test.accuracy(),
        100.0 * r.tuned_test.accuracy(),
        r.evaluations,
        crate::tune::duration_text(r.elapsed_seconds)
    );
}

/// Returns the title and settings that precede the tables of `report.md`.
fn report_header(args: &ExperimentArgs, spec: &ExperimentSpec, source: &str) -> String {
    let training = &args.training;
    let model = match args.data.task {
        Task::Image => format!(
            "MLP {}",
            training
                .sizes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("-")
        ),
        Task::Text => format!(
            "{} sequence classifier (embedding {}, hidden {})",
            format!("{:?}", training.cell).to_uppercase(),
            training.embed,
            training.hidden
        ),
    };
    // The embedded corpus's path is the build machine's, so it is named
    // instead.
    let source = match (&args.data.data, args.data.task) {
        (None, Task::Text) => "embedded 6,000-record sentiment corpus",
        _ => source,
    };
    let seeds = spec
        .seeds
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "# Experiment\n\n\
         - Dataset: {source}\n\
         - Model: {model}, pre-trained per seed with Adam (lr {}) for {} epochs, batch size {}\n\
         - Seeds: {seeds}\n\
         - Search: {} agents, {} iterations, bound {}, objective {}, pre-trained point {} the \
         initial population\n\n",
        float_text(training.lr),
        training.epochs,
        training.batch_size,
        spec.agents,
        spec.iterations,
        float_text(spec.bound),
        match spec.fitness {
            Fitness::Error => "1 - validation accuracy",
            Fitness::CrossEntropy => "validation cross-entropy",
        },
        if spec.include_initial { "in" } else { "not in" },
    )
}
