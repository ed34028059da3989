//! Experiments: every (seed, tensor, algorithm, mode) cell of a grid tuned
//! from one pre-trained model per seed, with results appended to a
//! resumable JSON Lines file, and a report with the Wilcoxon and Friedman
//! tests rendered as Markdown, CSV, JSON and SVG.
//!
//! The results file `runs.jsonl` holds one JSON object per finished run.
//! Each line is written with a single `write` call, then flushed and synced,
//! so a crash loses at most the run in progress. [`run_experiment`] with
//! `resume` reads the file back, drops a last line left without its newline
//! by a crash, and runs only the cells that are missing.
//!
//! JSON is read and written with `serde_json` (its `Value` API, without
//! derive), which the workspace already builds for the CLI. That gives
//! correct string escaping and exact float round trips without a
//! hand-written parser.

use crate::model::{evaluate, Fitness, Model, Split, Target};
use crate::objective::ModelObjective;
use crate::stats::{friedman, wilcoxon_differences, Friedman, Wilcoxon, WilcoxonOptions};
use crate::TuneError;
use heft_search::{build, Algorithm, Bounds, Mode, NoCallbacks, Search, Settings, StopRules};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Largest population an experiment runs, in floats (agents times the
/// tuned values): 2^28 floats, 1 GiB for each population-sized array an
/// algorithm keeps.
pub const MAX_POPULATION_FLOATS: usize = 1 << 28;

/// Returns whether `agents` candidates of `dim` values exceed
/// [`MAX_POPULATION_FLOATS`].
pub fn population_too_large(agents: usize, dim: usize) -> bool {
    agents.saturating_mul(dim) > MAX_POPULATION_FLOATS
}

/// File name of the results file inside the experiment directory.
pub const RUNS_FILE: &str = "runs.jsonl";

/// The grid of an experiment and the settings shared by its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentSpec {
    /// Algorithms with the mode each runs in.
    pub algorithms: Vec<(Algorithm, Mode)>,
    /// Seeds. Each seed gets its own pre-trained model and is also the seed
    /// of every search run on it.
    pub seeds: Vec<u64>,
    /// Names of the tuned tensors, such as `fc2.weight`.
    pub tensors: Vec<String>,
    /// Population size (agents) of every search.
    pub agents: usize,
    /// Iterations of every search, after the initial population.
    pub iterations: u64,
    /// Half-width of the search box around the pre-trained values.
    pub bound: f32,
    /// The value minimised on the validation split.
    pub fitness: Fitness,
    /// Whether the pre-trained point is one member of the initial
    /// population, so no run ends worse on validation than it started.
    pub include_initial: bool,
}

impl Default for ExperimentSpec {
    /// The six study algorithms in `opytimizer-2.1.4` mode, the same six
    /// in `canonical` mode, then sep-CMA-ES, SNES and random search; seeds
    /// 0 to 14; `fc2.weight`; 10 agents; 15 iterations; bound 0.01;
    /// `1 - accuracy`; pre-trained point in the initial population.
    fn default() -> Self {
        let mut algorithms: Vec<(Algorithm, Mode)> = Algorithm::STUDY
            .iter()
            .map(|&a| (a, Mode::Opytimizer214))
            .collect();
        algorithms.extend(Algorithm::STUDY.iter().map(|&a| (a, Mode::Canonical)));
        algorithms.extend(
            [
                Algorithm::SepCmaEs,
                Algorithm::Snes,
                Algorithm::RandomSearch,
            ]
            .iter()
            .map(|&a| (a, Mode::Canonical)),
        );
        ExperimentSpec {
            algorithms,
            seeds: (0..15).collect(),
            tensors: vec!["fc2.weight".to_string()],
            agents: 10,
            iterations: 15,
            bound: 0.01,
            fitness: Fitness::Error,
            include_initial: true,
        }
    }
}

impl ExperimentSpec {
    /// Checks the specification.
    ///
    /// # Errors
    ///
    /// [`TuneError::InvalidExperiment`] for an empty or repeated algorithm,
    /// seed or tensor, a mode an algorithm does not have, fewer agents than
    /// an algorithm needs or zero iterations, and [`TuneError::Bound`] for a
    /// bound that is not a positive finite number.
    pub fn validate(&self) -> Result<(), TuneError> {
        let invalid =
            |problem: String, fix: &'static str| Err(TuneError::InvalidExperiment { problem, fix });
        if self.algorithms.is_empty() || self.seeds.is_empty() || self.tensors.is_empty() {
            return invalid(
                format!(
                    "the grid has {} algorithms, {} seeds and {} tensors",
                    self.algorithms.len(),
                    self.seeds.len(),
                    self.tensors.len()
                ),
                "give at least one of each",
            );
        }
        if let Some((a, m)) = first_repeat(&self.algorithms) {
            return invalid(
                format!("{} in mode {} is listed twice", a.name(), m.name()),
                "list each algorithm and mode once",
            );
        }
        if let Some(seed) = first_repeat(&self.seeds) {
            return invalid(
                format!("seed {seed} is listed twice"),
                "list each seed once",
            );
        }
        if let Some(tensor) = first_repeat(&self.tensors) {
            return invalid(
                format!("tensor {tensor:?} is listed twice"),
                "list each tensor once",
            );
        }
        for &(algorithm, mode) in &self.algorithms {
            if mode == Mode::Opytimizer214 && !algorithm.has_study_mode() {
                return invalid(
                    format!("{} has no opytimizer-2.1.4 mode", algorithm.name()),
                    "run it in canonical mode",
                );
            }
            if self.agents < algorithm.min_population() {
                return invalid(
                    format!(
                        "{} agents are too few for {}, which needs at least {}",
                        self.agents,
                        algorithm.name(),
                        algorithm.min_population()
                    ),
                    "raise the number of agents",
                );
            }
        }
        if self.agents == 0 || self.iterations == 0 {
            return invalid(
                format!("{} agents and {} iterations", self.agents, self.iterations),
                "use at least one agent and one iteration",
            );
        }
        if !(self.bound.is_finite() && self.bound > 0.0) {
            return Err(TuneError::Bound(self.bound));
        }
        Ok(())
    }
}

fn first_repeat<T: Eq + std::hash::Hash + Clone>(items: &[T]) -> Option<T> {
    let mut seen = HashSet::new();
    items.iter().find(|item| !seen.insert(*item)).cloned()
}

/// The pre-trained model of one seed and the splits it is tuned and tested
/// on, returned by the caller's preparation closure.
#[derive(Clone, Debug)]
pub struct SeedSetup<'a> {
    /// The pre-trained model, shared by every run of the seed.
    pub model: Model,
    /// The split the search scores candidates on.
    pub validation: Split<'a>,
    /// The held-out split, only evaluated before and after tuning.
    pub test: Split<'a>,
}

/// Correct predictions out of a number of rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Score {
    /// Rows predicted correctly.
    pub correct: u64,
    /// Rows in the split.
    pub rows: u64,
}

impl Score {
    /// Returns `correct / rows`.
    pub fn accuracy(self) -> f64 {
        self.correct as f64 / self.rows as f64
    }
}

/// One finished run: a line of the results file.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    /// Seed of the pre-trained model and of the search.
    pub seed: u64,
    /// The tuned tensor.
    pub tensor: String,
    /// The search algorithm.
    pub algorithm: Algorithm,
    /// Its mode.
    pub mode: Mode,
    /// Population size.
    pub agents: usize,
    /// Iterations after the initial population.
    pub iterations: u64,
    /// Half-width of the search box.
    pub bound: f32,
    /// Pre-trained model on the validation split.
    pub pretrained_validation: Score,
    /// Tuned model on the validation split.
    pub tuned_validation: Score,
    /// Pre-trained model on the test split.
    pub pretrained_test: Score,
    /// Tuned model on the test split.
    pub tuned_test: Score,
    /// Candidates scored by the search.
    pub evaluations: u64,
    /// Candidates scored per second of search time.
    pub candidates_per_second: f64,
    /// Wall-clock seconds of the search, without the evaluations of the
    /// pre-trained and tuned models.
    pub elapsed_seconds: f64,
    /// Best fitness after the initial population (index 0) and after each
    /// iteration.
    pub best_fitness: Vec<f64>,
}

impl RunRecord {
    /// Returns the grid cell of the run.
    fn cell(&self) -> Cell {
        (self.seed, self.tensor.clone(), self.algorithm, self.mode)
    }

    /// Returns the run as one line of JSON, without the newline.
    pub fn to_json_line(&self) -> String {
        let value = json!({
            "seed": self.seed,
            "tensor": self.tensor,
            "algorithm": self.algorithm.name(),
            "mode": self.mode.name(),
            "agents": self.agents,
            "iterations": self.iterations,
            // The f32's shortest decimal (0.01), not its f64 widening
            // (0.009999999776482582); it reads back as the same f32.
            "bound": self.bound.to_string().parse::<f64>().unwrap_or(f64::NAN),
            "pretrained_validation_correct": self.pretrained_validation.correct,
            "tuned_validation_correct": self.tuned_validation.correct,
            "validation_rows": self.pretrained_validation.rows,
            "pretrained_test_correct": self.pretrained_test.correct,
            "tuned_test_correct": self.tuned_test.correct,
            "test_rows": self.pretrained_test.rows,
            "pretrained_validation_accuracy": self.pretrained_validation.accuracy(),
            "tuned_validation_accuracy": self.tuned_validation.accuracy(),
            "pretrained_test_accuracy": self.pretrained_test.accuracy(),
            "tuned_test_accuracy": self.tuned_test.accuracy(),
            "evaluations": self.evaluations,
            "candidates_per_second": self.candidates_per_second,
            "elapsed_seconds": self.elapsed_seconds,
            "best_fitness": self.best_fitness,
        });
        value.to_string()
    }

    /// Parses a line written by [`RunRecord::to_json_line`]. The accuracy
    /// fields are recomputed from the counts rather than read.
    ///
    /// # Errors
    ///
    /// A message naming the missing or invalid field.
    pub fn from_json_line(line: &str) -> Result<RunRecord, String> {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let object = value.as_object().ok_or("not a JSON object")?;
        let score = |correct: &str, rows: &str| -> Result<Score, String> {
            Ok(Score {
                correct: get_u64(object, correct)?,
                rows: get_u64(object, rows)?,
            })
        };
        let best_fitness = object
            .get("best_fitness")
            .and_then(Value::as_array)
            .ok_or("missing array field \"best_fitness\"")?
            .iter()
            // serde_json writes non-finite numbers as null.
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect();
        Ok(RunRecord {
            seed: get_u64(object, "seed")?,
            tensor: get_str(object, "tensor")?.to_string(),
            algorithm: get_str(object, "algorithm")?
                .parse()
                .map_err(|e| format!("{e}"))?,
            mode: get_str(object, "mode")?
                .parse()
                .map_err(|e| format!("{e}"))?,
            agents: get_u64(object, "agents")? as usize,
            iterations: get_u64(object, "iterations")?,
            bound: get_f64(object, "bound")? as f32,
            pretrained_validation: score("pretrained_validation_correct", "validation_rows")?,
            tuned_validation: score("tuned_validation_correct", "validation_rows")?,
            pretrained_test: score("pretrained_test_correct", "test_rows")?,
            tuned_test: score("tuned_test_correct", "test_rows")?,
            evaluations: get_u64(object, "evaluations")?,
            candidates_per_second: get_f64(object, "candidates_per_second")?,
            elapsed_seconds: get_f64(object, "elapsed_seconds")?,
            best_fitness,
        })
    }
}

fn get_u64(object: &Map<String, Value>, key: &str) -> Result<u64, String> {
    object
        .get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("missing or invalid integer field {key:?}"))
}

fn get_f64(object: &Map<String, Value>, key: &str) -> Result<f64, String> {
    object
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("missing or invalid number field {key:?}"))
}

fn get_str<'m>(object: &'m Map<String, Value>, key: &str) -> Result<&'m str, String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing or invalid string field {key:?}"))
}

/// A grid cell: seed, tensor, algorithm, mode.
type Cell = (u64, String, Algorithm, Mode);

fn io_error(path: &Path, action: &'static str, error: std::io::Error) -> TuneError {
    TuneError::Io {
        path: path.display().to_string(),
        action,
        message: error.to_string(),
    }
}

/// Reads the results file. A last line without its newline, which a crash
/// during the write leaves behind, is ignored.
///
/// # Errors
///
/// [`TuneError::Io`] if the file cannot be read, and
/// [`TuneError::ResultsLine`] for a complete line that is not a run record.
pub fn read_runs(path: &Path) -> Result<Vec<RunRecord>, TuneError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, "read", e))?;
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let mut records = Vec::new();
    for (index, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record = RunRecord::from_json_line(line).map_err(|message| TuneError::ResultsLine {
            path: path.display().to_string(),
            line: index + 1,
            message,
        })?;
        records.push(record);
    }
    Ok(records)
}

/// Cuts a last line without its newline off the results file, so the next
/// appended line starts on a line of its own.
fn drop_truncated_line(path: &Path) -> Result<(), TuneError> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, "read", e))?;
    if bytes.last().is_none_or(|&b| b == b'\n') {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, "open", e))?;
    file.set_len(keep as u64)
        .map_err(|e| io_error(path, "truncate", e))?;
    file.sync_all().map_err(|e| io_error(path, "sync", e))
}

/// Appends one record as a line, then flushes and syncs the file.
fn append_run(path: &Path, record: &RunRecord) -> Result<(), TuneError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, "open for appending", e))?;
    let mut line = record.to_json_line();
    line.push('\n');
    file.write_all(line.as_bytes())
        .map_err(|e| io_error(path, "append to", e))?;
    file.flush().map_err(|e| io_error(path, "flush", e))?;
    file.sync_all().map_err(|e| io_error(path, "sync", e))
}

/// The result of [`run_experiment`]: counts of new and skipped runs and
/// every record of the results file.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentOutcome {
    /// The results file.
    pub runs_path: PathBuf,
    /// Runs finished by this call.
    pub completed: usize,
    /// Cells skipped because the results file already held them.
    pub skipped: usize,
    /// Every record of the results file after the call, in file order.
    pub records: Vec<RunRecord>,
}

/// Runs every cell of `spec` that the results file `dir/runs.jsonl` does
/// not yet hold, appending each run to it as soon as the run ends.
///
/// `prepare(seed)` returns the pre-trained model and the splits of a seed.
/// It is called once per seed that still has cells to run, and that model
/// is shared by every tensor and algorithm of the seed. `on_run` is called
/// after each run is written.
///
/// Without `resume` an existing non-empty results file is an error, so a
/// finished experiment is never mixed with a new one by accident. With
/// `resume`, the records already in the file are kept and their cells
/// skipped. A record of the same cell with other agents, iterations or
/// bound is an error, because its numbers would not be comparable.
///
/// # Errors
///
/// [`TuneError::InvalidExperiment`] for an invalid specification, an
/// existing results file without `resume` or a record from another
/// specification; [`TuneError::Io`] and [`TuneError::ResultsLine`] from the
/// results file; and any error of `prepare`, the objective or the search.
pub fn run_experiment<'a, P, C>(
    spec: &ExperimentSpec,
    dir: &Path,
    resume: bool,
    mut prepare: P,
    mut on_run: C,
) -> Result<ExperimentOutcome, TuneError>
where
    P: FnMut(u64) -> Result<SeedSetup<'a>, TuneError>,
    C: FnMut(&RunRecord),
{
    spec.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "create the directory", e))?;
    let runs_path = dir.join(RUNS_FILE);

    let existing_len = std::fs::metadata(&runs_path).map_or(0, |m| m.len());
    if existing_len > 0 && !resume {
        return Err(TuneError::InvalidExperiment {
            problem: format!("the results file {} already exists", runs_path.display()),
            fix: "resume the experiment or choose another directory",
        });
    }
    let mut done: HashSet<Cell> = HashSet::new();
    if existing_len > 0 {
        drop_truncated_line(&runs_path)?;
        for record in read_runs(&runs_path)? {
            check_comparable(spec, &record)?;
            done.insert(record.cell());
        }
    }

    let mut completed = 0;
    let mut skipped = 0;
    for &seed in &spec.seeds {
        let cells: Vec<Cell> = spec
            .tensors
            .iter()
            .flat_map(|tensor| {
                spec.algorithms
                    .iter()
                    .map(move |&(algorithm, mode)| (seed, tensor.clone(), algorithm, mode))
            })
            .collect();
        let pending: Vec<Cell> = cells.into_iter().filter(|c| !done.contains(c)).collect();
        skipped += spec.tensors.len() * spec.algorithms.len() - pending.len();
        if pending.is_empty() {
            continue;
        }

        let setup = prepare(seed)?;
        let pretrained_validation = score(&setup.model, setup.validation)?;
        let pretrained_test = score(&setup.model, setup.test)?;
        for tensor in &spec.tensors {
            let target = Target {
                tensor: tensor.clone(),
                include_bias: false,
            };
            let mut objective = ModelObjective::new(
                &setup.model,
                &target,
                setup.validation,
                spec.bound,
                spec.fitness,
                true,
            )?;
            if population_too_large(spec.agents, objective.dim()) {
                return Err(TuneError::InvalidExperiment {
                    problem: format!(
                        "{} agents of {} values of {tensor} exceed {MAX_POPULATION_FLOATS} floats \
                         (1 GiB) per population array",
                        spec.agents,
                        objective.dim()
                    ),
                    fix: "pass fewer --agents or a smaller tensor",
                });
            }
            for cell in pending.iter().filter(|c| &c.1 == tensor) {
                let (_, _, algorithm, mode) = cell.clone();
                let search = run_search(spec, seed, algorithm, mode, &mut objective)?;
                let mut tuned = setup.model.clone();
                objective.apply(&mut tuned, &search.best_point)?;
                let record = RunRecord {
                    seed,
                    tensor: tensor.clone(),
                    algorithm,
                    mode,
                    agents: spec.agents,
                    iterations: spec.iterations,
                    bound: spec.bound,
                    pretrained_validation,
                    tuned_validation: score(&tuned, setup.validation)?,
                    pretrained_test,
                    tuned_test: score(&tuned, setup.test)?,
                    evaluations: search.evaluations,
                    candidates_per_second: search.evaluations as f64
                        / search.elapsed_seconds.max(f64::MIN_POSITIVE),
                    elapsed_seconds: search.elapsed_seconds,
                    best_fitness: search.best_fitness,
                };
                append_run(&runs_path, &record)?;
                done.insert(cell.clone());
                completed += 1;
                on_run(&record);
            }
        }
    }

    Ok(ExperimentOutcome {
        records: read_runs(&runs_path).or_else(|e| match e {
            // No run was needed and no file exists yet.
            TuneError::Io { .. } if completed == 0 && existing_len == 0 => Ok(Vec::new()),
            other => Err(other),
        })?,
        runs_path,
        completed,
        skipped,
    })
}

fn check_comparable(spec: &ExperimentSpec, record: &RunRecord) -> Result<(), TuneError> {
    if record.agents != spec.agents
        || record.iterations != spec.iterations
        || record.bound != spec.bound
    {
        return Err(TuneError::InvalidExperiment {
            problem: format!(
                "the results file holds a run of seed {} with {} agents, {} iterations and bound {}, \
                 but the experiment uses {}, {} and {}",
                record.seed,
                record.agents,
                record.iterations,
                record.bound,
                spec.agents,
                spec.iterations,
                spec.bound
            ),
            fix: "resume with the settings the results file was written with, or use another directory",
        });
    }
    Ok(())
}

fn score(model: &Model, split: Split<'_>) -> Result<Score, TuneError> {
    let evaluation = evaluate(model, split)?;
    Ok(Score {
        correct: evaluation.correct,
        rows: evaluation.rows as u64,
    })
}

struct SearchResult {
    best_point: Vec<f32>,
    best_fitness: Vec<f64>,
    evaluations: u64,
    elapsed_seconds: f64,
}

fn run_search(
    spec: &ExperimentSpec,
    seed: u64,
    algorithm: Algorithm,
    mode: Mode,
    objective: &mut ModelObjective,
) -> Result<SearchResult, TuneError> {
    let initial = objective.initial_point().to_vec();
    let bounds = Bounds::around(&initial, spec.bound)?;
    let mut settings = Settings::new(bounds, spec.agents, seed).with_mode(mode);
    if spec.include_initial {
        settings = settings.with_initial_point(initial.clone());
    }
    let mut search = Search::new(build(algorithm, &settings)?);
    let start = Instant::now();
    let report = search.run(
        objective,
        &StopRules::iterations(spec.iterations),
        &mut NoCallbacks,
    )?;
    let elapsed_seconds = start.elapsed().as_secs_f64();
    // Without a finite fitness there is no best point, and the model stays
    // pre-trained.
    let best_point = search
        .optimizer()
        .best()
        .map_or(initial, |(point, _)| point.to_vec());
    Ok(SearchResult {
        best_point,
        best_fitness: search.history().iter().map(|r| r.best).collect(),
        evaluations: report.evaluations,
        elapsed_seconds,
    })
}

/// Mean and sample standard deviation (n - 1 denominator) of some values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation; NaN for fewer than two values.
    pub std: f64,
}

impl Summary {
    fn of(values: &[f64]) -> Summary {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() < 2 {
            f64::NAN
        } else {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        };
        Summary { mean, std }
    }
}

/// The results of one algorithm and mode on one tensor, over seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportRow {
    /// The tuned tensor.
    pub tensor: String,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Its mode.
    pub mode: Mode,
    /// Seeds with a run, ascending.
    pub seeds: Vec<u64>,
    /// Pre-trained validation accuracy.
    pub pretrained_validation: Summary,
    /// Tuned validation accuracy.
    pub tuned_validation: Summary,
    /// Pre-trained test accuracy.
    pub pretrained_test: Summary,
    /// Tuned test accuracy.
    pub tuned_test: Summary,
    /// Tuned minus pre-trained test accuracy of each seed, in the order of
    /// `seeds`.
    pub test_gains: Vec<f64>,
    /// Wilcoxon signed-rank test of tuned against pre-trained test
    /// accuracy.
    pub wilcoxon: Wilcoxon,
    /// Mean candidates scored per run.
    pub mean_evaluations: f64,
    /// Mean candidates scored per second.
    pub mean_candidates_per_second: f64,
    /// Mean best fitness over seeds at each iteration, over the iterations
    /// every run reached.
    pub mean_convergence: Vec<f64>,
}

/// The Friedman test across the algorithms of one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct FriedmanSummary {
    /// The tuned tensor.
    pub tensor: String,
    /// The compared algorithms and modes, in the order of the ranks.
    pub treatments: Vec<(Algorithm, Mode)>,
    /// Seeds (blocks) where every treatment has a run.
    pub seeds: Vec<u64>,
    /// The test on tuned test accuracy, rank 1 being the highest accuracy;
    /// `None` with fewer than two treatments or no complete seed.
    pub result: Option<Friedman>,
}

/// The report of an experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// One row per tensor, algorithm and mode, in order of first
    /// appearance in the records.
    pub rows: Vec<ReportRow>,
    /// One Friedman test per tensor.
    pub friedman: Vec<FriedmanSummary>,
    /// The options of the Wilcoxon tests.
    pub wilcoxon_options: WilcoxonOptions,
}

impl Report {
    /// Builds the report from run records, in any order. Runs of the same
    /// cell after the first are ignored.
    ///
    /// # Errors
    ///
    /// [`TuneError::InvalidSample`] if there are no records or one has an
    /// empty split.
    pub fn build(
        records: &[RunRecord],
        wilcoxon_options: WilcoxonOptions,
    ) -> Result<Report, TuneError> {
        if records.is_empty() {
            return Err(TuneError::InvalidSample {
                test: "experiment report",
                problem: "there are no finished runs".into(),
                fix: "run the experiment before building its report",
            });
        }
        if let Some(r) = records
            .iter()
            .find(|r| r.pretrained_test.rows == 0 || r.pretrained_validation.rows == 0)
        {
            return Err(TuneError::InvalidSample {
                test: "experiment report",
                problem: format!("the run of seed {} has an empty split", r.seed),
                fix: "rerun it with non-empty validation and test splits",
            });
        }

        // Group by (tensor, algorithm, mode) in first-appearance order, one
        // record per seed, sorted by seed.
        let mut order: Vec<(String, Algorithm, Mode)> = Vec::new();
        let mut groups: BTreeMap<usize, BTreeMap<u64, &RunRecord>> = BTreeMap::new();
        for record in records {
            let key = (record.tensor.clone(), record.algorithm, record.mode);
            let index = match order.iter().position(|k| *k == key) {
                Some(index) => index,
                None => {
                    order.push(key);
                    order.len() - 1
                }
            };
            groups
                .entry(index)
                .or_default()
                .entry(record.seed)
                .or_insert(record);
        }

        let mut rows = Vec::new();
        for (index, (tensor, algorithm, mode)) in order.iter().enumerate() {
            let runs: Vec<&RunRecord> = groups[&index].values().copied().collect();
            rows.push(report_row(
                tensor,
                *algorithm,
                *mode,
                &runs,
                wilcoxon_options,
            )?);
        }

        let mut tensors: Vec<String> = Vec::new();
        for (tensor, _, _) in &order {
            if !tensors.contains(tensor) {
                tensors.push(tensor.clone());
            }
        }
        let mut friedman_summaries = Vec::new();
        for tensor in tensors {
            let treatments: Vec<usize> =
                (0..order.len()).filter(|&i| order[i].0 == tensor).collect();
            let seed_sets: Vec<HashSet<u64>> = treatments
                .iter()
                .map(|i| groups[i].keys().copied().collect())
                .collect();
            let mut seeds: Vec<u64> = seed_sets[0]
                .iter()
                .copied()
                .filter(|s| seed_sets.iter().all(|set| set.contains(s)))
                .collect();
            seeds.sort_unstable();
            let blocks: Vec<Vec<f64>> = seeds
                .iter()
                .map(|s| {
                    treatments
                        .iter()
                        .map(|i| -groups[i][s].tuned_test.accuracy())
                        .collect()
                })
                .collect();
            let result = if treatments.len() >= 2 && !seeds.is_empty() {
                Some(friedman(&blocks)?)
            } else {
                None
            };
            friedman_summaries.push(FriedmanSummary {
                tensor,
                treatments: treatments
                    .iter()
                    .map(|&i| (order[i].1, order[i].2))
                    .collect(),
                seeds,
                result,
            });
        }

        Ok(Report {
            rows,
            friedman: friedman_summaries,
            wilcoxon_options,
        })
    }
}

fn report_row(
    tensor: &str,
    algorithm: Algorithm,
    mode: Mode,
    runs: &[&RunRecord],
    options: WilcoxonOptions,
) -> Result<ReportRow, TuneError> {
    let collect =
        |f: &dyn Fn(&RunRecord) -> f64| -> Vec<f64> { runs.iter().map(|r| f(r)).collect() };
    // Gains from the integer count difference, so equal count differences
    // on equal splits are equal floats and tie in the Wilcoxon ranks.
    let test_gains = collect(&|r| {
        (r.tuned_test.correct as f64 - r.pretrained_test.correct as f64)
            / r.pretrained_test.rows as f64
    });
    let reached = runs.iter().map(|r| r.best_fitness.len()).min().unwrap_or(0);
    let mean_convergence = (0..reached)
        .map(|i| runs.iter().map(|r| r.best_fitness[i]).sum::<f64>() / runs.len() as f64)
        .collect();
    Ok(ReportRow {
        tensor: tensor.to_string(),
        algorithm,
        mode,
        seeds: runs.iter().map(|r| r.seed).collect(),
        pretrained_validation: Summary::of(&collect(&|r| r.pretrained_validation.accuracy())),
        tuned_validation: Summary::of(&collect(&|r| r.tuned_validation.accuracy())),
        pretrained_test: Summary::of(&collect(&|r| r.pretrained_test.accuracy())),
        tuned_test: Summary::of(&collect(&|r| r.tuned_test.accuracy())),
        wilcoxon: wilcoxon_differences(&test_gains, options)?,
        test_gains,
        mean_evaluations: Summary::of(&collect(&|r| r.evaluations as f64)).mean,
        mean_candidates_per_second: Summary::of(&collect(&|r| r.candidates_per_second)).mean,
        mean_convergence,
    })
}

/// Formats an accuracy summary as percentages, `mean ± std`.
fn percent(summary: Summary) -> String {
    if summary.std.is_nan() {
        format!("{:.2}", 100.0 * summary.mean)
    } else {
        format!("{:.2} ± {:.2}", 100.0 * summary.mean, 100.0 * summary.std)
    }
}

fn finite_or_null(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn summary_json(summary: Summary) -> Value {
    json!({ "mean": finite_or_null(summary.mean), "std": finite_or_null(summary.std) })
}

/// Header of [`Report::to_csv`].
const CSV_HEADER: &str =
    "tensor,algorithm,mode,runs,pretrained_validation_mean,pretrained_validation_std,\
tuned_validation_mean,tuned_validation_std,pretrained_test_mean,pretrained_test_std,\
tuned_test_mean,tuned_test_std,test_gain_mean,test_gain_std,wilcoxon_statistic,wilcoxon_w_plus,\
wilcoxon_n,wilcoxon_zeros,wilcoxon_method,wilcoxon_p,friedman_average_rank,mean_evaluations,\
mean_candidates_per_second";

impl Report {
    /// Returns the Friedman average rank of a row's algorithm, if its
    /// tensor had a Friedman test.
    fn average_rank(&self, row: &ReportRow) -> Option<f64> {
        let summary = self.friedman.iter().find(|f| f.tensor == row.tensor)?;
        let result = summary.result.as_ref()?;
        let index = summary
            .treatments
            .iter()
            .position(|&t| t == (row.algorithm, row.mode))?;
        Some(result.average_ranks[index])
    }

    /// Renders the report as Markdown: one table of accuracies (percent,
    /// mean ± sample standard deviation over seeds), Wilcoxon tests and
    /// speed per tensor, then the Friedman test with average ranks.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let options = self.wilcoxon_options;
        for summary in &self.friedman {
            let tensor = &summary.tensor;
            let _ = writeln!(out, "## {tensor}\n");
            let _ = writeln!(
                out,
                "Accuracy in percent, mean ± sample standard deviation over seeds. \
                 Wilcoxon: two-sided signed-rank test of tuned against pre-trained test accuracy \
                 ({} zeros, W = min(W+, W-)).\n",
                options.zero_method.name()
            );
            out.push_str(
                "| algorithm | mode | runs | pre-trained validation | tuned validation | \
                 pre-trained test | tuned test | test gain | Wilcoxon W | p | evaluations | \
                 candidates/s |\n",
            );
            out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for row in self.rows.iter().filter(|r| &r.tensor == tensor) {
                let gain = Summary::of(&row.test_gains);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} ({}) | {:.0} | {:.0} |",
                    row.algorithm.name(),
                    row.mode.name(),
                    row.seeds.len(),
                    percent(row.pretrained_validation),
                    percent(row.tuned_validation),
                    percent(row.pretrained_test),
                    percent(row.tuned_test),
                    percent(gain),
                    row.wilcoxon.statistic,
                    row.wilcoxon.p_value,
                    method_name(&row.wilcoxon),
                    row.mean_evaluations,
                    row.mean_candidates_per_second,
                );
            }
            out.push('\n');
            match &summary.result {
                Some(result) => {
                    let _ = writeln!(
                        out,
                        "Friedman test over {} seeds (rank 1 = highest tuned test accuracy): \
                         chi-square = {:.4}, df = {}, p = {:.4}.\n",
                        summary.seeds.len(),
                        result.statistic,
                        result.df,
                        result.p_value
                    );
                    out.push_str("| algorithm | mode | average rank |\n|---|---|---:|\n");
                    for (&(algorithm, mode), rank) in
                        summary.treatments.iter().zip(&result.average_ranks)
                    {
                        let _ = writeln!(out, "| {} | {} | {rank:.2} |", algorithm.name(), mode.name());
                    }
                    out.push('\n');
                }
                None => out.push_str(
                    "Friedman test: not computed, it needs two algorithms with runs on a common seed.\n\n",
                ),
            }
        }
        out
    }

    /// Renders one CSV line per row, with accuracies as fractions.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(CSV_HEADER);
        out.push('\n');
        for row in &self.rows {
            let gain = Summary::of(&row.test_gains);
            let rank = self
                .average_rank(row)
                .map_or(String::new(), |r| r.to_string());
            let cells = [
                csv_field(&row.tensor),
                row.algorithm.name().to_string(),
                row.mode.name().to_string(),
                row.seeds.len().to_string(),
                number(row.pretrained_validation.mean),
                number(row.pretrained_validation.std),
                number(row.tuned_validation.mean),
                number(row.tuned_validation.std),
                number(row.pretrained_test.mean),
                number(row.pretrained_test.std),
                number(row.tuned_test.mean),
                number(row.tuned_test.std),
                number(gain.mean),
                number(gain.std),
                row.wilcoxon.statistic.to_string(),
                row.wilcoxon.w_plus.to_string(),
                row.wilcoxon.n.to_string(),
                row.wilcoxon.zeros.to_string(),
                method_name(&row.wilcoxon).to_string(),
                row.wilcoxon.p_value.to_string(),
                rank,
                row.mean_evaluations.to_string(),
                row.mean_candidates_per_second.to_string(),
            ];
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }

    /// Renders the report as a pretty-printed JSON object with `rows` and
    /// `friedman` arrays. Undefined numbers (the standard deviation of one
    /// run) are `null`.
    pub fn to_json(&self) -> String {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                json!({
                    "tensor": row.tensor,
                    "algorithm": row.algorithm.name(),
                    "mode": row.mode.name(),
                    "seeds": row.seeds,
                    "pretrained_validation_accuracy": summary_json(row.pretrained_validation),
                    "tuned_validation_accuracy": summary_json(row.tuned_validation),
                    "pretrained_test_accuracy": summary_json(row.pretrained_test),
                    "tuned_test_accuracy": summary_json(row.tuned_test),
                    "test_gains": row.test_gains,
                    "wilcoxon": {
                        "statistic": row.wilcoxon.statistic,
                        "w_plus": row.wilcoxon.w_plus,
                        "w_minus": row.wilcoxon.w_minus,
                        "n": row.wilcoxon.n,
                        "zeros": row.wilcoxon.zeros,
                        "ties": row.wilcoxon.ties,
                        "method": method_name(&row.wilcoxon),
                        "z": row.wilcoxon.z.map_or(Value::Null, finite_or_null),
                        "p_value": row.wilcoxon.p_value,
                    },
                    "friedman_average_rank": self.average_rank(row).map_or(Value::Null, |r| json!(r)),
                    "mean_evaluations": row.mean_evaluations,
                    "mean_candidates_per_second": finite_or_null(row.mean_candidates_per_second),
                    "mean_convergence": row.mean_convergence.iter().map(|&x| finite_or_null(x)).collect::<Vec<_>>(),
                })
            })
            .collect();
        let friedman: Vec<Value> = self
            .friedman
            .iter()
            .map(|f| {
                json!({
                    "tensor": f.tensor,
                    "treatments": f.treatments.iter().map(|(a, m)| json!({"algorithm": a.name(), "mode": m.name()})).collect::<Vec<_>>(),
                    "seeds": f.seeds,
                    "statistic": f.result.as_ref().map(|r| r.statistic),
                    "df": f.result.as_ref().map(|r| r.df),
                    "p_value": f.result.as_ref().map(|r| r.p_value),
                    "average_ranks": f.result.as_ref().map(|r| r.average_ranks.clone()),
                })
            })
            .collect();
        let report = json!({
            "wilcoxon_zero_method": self.wilcoxon_options.zero_method.name(),
            "wilcoxon_continuity_correction": self.wilcoxon_options.continuity,
            "rows": rows,
            "friedman": friedman,
        });
        serde_json::to_string_pretty(&report).unwrap_or_default()
    }
}

fn method_name(w: &Wilcoxon) -> &'static str {
    match w.method {
        crate::stats::WilcoxonMethod::Exact => "exact",
        _ => "normal",
    }
}

fn number(x: f64) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        String::new()
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Line and box colours of the SVG figures, cycled over the rows.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Returns the `q` quantile of sorted values with linear interpolation
/// between order statistics (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

fn row_label(row: &ReportRow) -> String {
    format!(
        "{} {} {}",
        row.algorithm.name(),
        row.mode.name(),
        row.tensor
    )
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Returns `(low, high)` widened to a non-empty range.
fn padded_range(low: f64, high: f64) -> (f64, f64) {
    if high > low {
        let pad = 0.05 * (high - low);
        (low - pad, high + pad)
    } else {
        (low - 1.0, high + 1.0)
    }
}

impl Report {
    /// Renders box plots of the test-accuracy gains (percentage points) of
    /// every row as SVG. Boxes span the quartiles, with the median marked,
    /// whiskers reach the furthest gain within 1.5 interquartile ranges,
    /// and gains beyond are drawn as circles.
    pub fn gains_svg(&self) -> String {
        let (width, height) = (120.0 + 70.0 * self.rows.len() as f64, 460.0);
        let (left, right, top, bottom) = (70.0, width - 20.0, 40.0, height - 150.0);
        let gains: Vec<Vec<f64>> = self
            .rows
            .iter()
            .map(|row| {
                let mut g: Vec<f64> = row.test_gains.iter().map(|g| 100.0 * g).collect();
                g.sort_by(f64::total_cmp);
                g
            })
            .collect();
        let all = gains.iter().flatten();
        let low = all.clone().copied().fold(0.0f64, f64::min);
        let high = all.copied().fold(0.0f64, f64::max);
        let (low, high) = padded_range(low, high);
        let y = |v: f64| bottom - (v - low) / (high - low) * (bottom - top);

        let mut svg = svg_start(
            width,
            height,
            "Test accuracy gain per algorithm (percentage points)",
        );
        svg_axis(&mut svg, left, right, top, bottom, low, high, &y);
        let zero = y(0.0);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{zero:.1}" x2="{right}" y2="{zero:.1}" stroke="#999" stroke-dasharray="4 3"/>"##
        );
        let step = (right - left) / self.rows.len().max(1) as f64;
        for (i, (row, g)) in self.rows.iter().zip(&gains).enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let centre = left + step * (i as f64 + 0.5);
            let half = (step * 0.3).min(20.0);
            let (q1, median, q3) = (quantile(g, 0.25), quantile(g, 0.5), quantile(g, 0.75));
            let iqr = q3 - q1;
            let low_whisker = g
                .iter()
                .copied()
                .find(|&v| v >= q1 - 1.5 * iqr)
                .unwrap_or(q1);
            let high_whisker = g
                .iter()
                .rev()
                .copied()
                .find(|&v| v <= q3 + 1.5 * iqr)
                .unwrap_or(q3);
            let _ = writeln!(
                svg,
                r#"<line x1="{centre:.1}" y1="{:.1}" x2="{centre:.1}" y2="{:.1}" stroke="{colour}"/>"#,
                y(low_whisker),
                y(high_whisker)
            );
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.3" stroke="{colour}"/>"#,
                centre - half,
                y(q3),
                2.0 * half,
                (y(q1) - y(q3)).max(0.5)
            );
            let _ = writeln!(
                svg,
                r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/>"#,
                centre - half,
                y(median),
                centre + half,
                y(median)
            );
            for &v in g.iter().filter(|&&v| v < low_whisker || v > high_whisker) {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{centre:.1}" cy="{:.1}" r="3" fill="none" stroke="{colour}"/>"#,
                    y(v)
                );
            }
            let _ = writeln!(
                svg,
                r#"<text x="{centre:.1}" y="{:.1}" font-size="11" text-anchor="end" transform="rotate(-45 {centre:.1} {:.1})">{}</text>"#,
                bottom + 14.0,
                bottom + 14.0,
                escape_xml(&row_label(row))
            );
        }
        svg.push_str("</svg>\n");
        svg
    }

    /// Renders the mean best fitness over seeds at each iteration of every
    /// row as lines on one SVG figure, with a legend.
    pub fn convergence_svg(&self) -> String {
        let (width, height) = (820.0, 480.0);
        let (left, right, top, bottom) = (80.0, 560.0, 40.0, height - 60.0);
        let values = self
            .rows
            .iter()
            .flat_map(|r| r.mean_convergence.iter().copied());
        let finite: Vec<f64> = values.filter(|v| v.is_finite()).collect();
        let low = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let high = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (low, high) = if finite.is_empty() {
            (0.0, 1.0)
        } else {
            padded_range(low, high)
        };
        let last = self
            .rows
            .iter()
            .map(|r| r.mean_convergence.len())
            .max()
            .unwrap_or(1)
            .saturating_sub(1)
            .max(1) as f64;
        let x = |i: usize| left + i as f64 / last * (right - left);
        let y = |v: f64| bottom - (v - low) / (high - low) * (bottom - top);

        let mut svg = svg_start(
            width,
            height,
            "Mean best fitness per iteration (validation)",
        );
        svg_axis(&mut svg, left, right, top, bottom, low, high, &y);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">iteration (0 = initial population, last = {last})</text>"#,
            (left + right) / 2.0,
            bottom + 35.0
        );
        for (i, row) in self.rows.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let points: Vec<String> = row
                .mean_convergence
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(k, &v)| format!("{:.1},{:.1}", x(k), y(v)))
                .collect();
            let dash = if row.mode == Mode::Opytimizer214 {
                r#" stroke-dasharray="6 3""#
            } else {
                ""
            };
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>"#,
                points.join(" ")
            );
            let legend_y = top + 16.0 * i as f64;
            let _ = writeln!(
                svg,
                r#"<line x1="580" y1="{legend_y:.1}" x2="605" y2="{legend_y:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="610" y="{:.1}" font-size="11">{}</text>"#,
                legend_y + 4.0,
                escape_xml(&row_label(row))
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn svg_start(width: f64, height: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{:.1}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
        width / 2.0,
        escape_xml(title)
    )
}

/// Draws the left axis with five labelled ticks and the bottom axis line.
#[allow(clippy::too_many_arguments)]
fn svg_axis(
    svg: &mut String,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    low: f64,
    high: f64,
    y: &dyn Fn(f64) -> f64,
) {
    let _ = writeln!(
        svg,
        r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/><line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>"#
    );
    for k in 0..=4 {
        let v = low + (high - low) * k as f64 / 4.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{left}" y2="{:.1}" stroke="black"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{v:.4}</text>"#,
            left - 4.0,
            y(v),
            y(v),
            left - 6.0,
            y(v) + 4.0
        );
    }
}
