//! The run loop on top of ask/tell: stopping rules, callbacks and history.

use crate::checkpoint::{invalid, Reader, Writer};
use crate::error::SearchError;
use crate::objective::Objective;
use crate::optimizer::{read_header, write_header, Optimizer, Progress};
use std::time::{Duration, Instant};

/// When a run stops. Every rule that is set is checked; the first one met
/// stops the run. Iteration and evaluation counts are totals of the
/// optimizer, so a resumed run stops where an uninterrupted one would.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StopRules {
    /// Stop after this many completed iterations (the initial population not counted).
    pub max_iterations: Option<u64>,
    /// Never score a batch that would take the evaluation count above this.
    pub max_evaluations: Option<u64>,
    /// Stop once the best fitness is at or below this value.
    pub target_fitness: Option<f64>,
    /// Stop before the next batch once this much time has passed in this call to [`Search::run`].
    pub time_limit: Option<Duration>,
}

impl StopRules {
    /// Stops after `n` iterations.
    pub fn iterations(n: u64) -> Self {
        StopRules {
            max_iterations: Some(n),
            ..Self::default()
        }
    }

    /// Stops within `n` evaluations.
    pub fn evaluations(n: u64) -> Self {
        StopRules {
            max_evaluations: Some(n),
            ..Self::default()
        }
    }
}

/// The reason a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// [`StopRules::max_iterations`] was reached.
    Iterations,
    /// The next batch would exceed [`StopRules::max_evaluations`].
    Evaluations,
    /// [`StopRules::target_fitness`] was reached.
    Target,
    /// [`StopRules::time_limit`] passed.
    Time,
    /// A callback asked to stop.
    Callback,
    /// No stopping rule was set, so the run stopped after initialisation.
    NoRule,
}

/// One row of the history: the state after the initial population
/// (`iteration == 0`) or after an iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    /// Completed iterations.
    pub iteration: u64,
    /// Best fitness so far (`+inf` while none was finite).
    pub best: f64,
    /// Mean fitness of the current population over finite values (NaN if none is finite).
    pub mean: f64,
    /// Standard deviation of the current population's fitness over finite values (NaN if none is finite).
    pub std: f64,
    /// Number of current fitness values that are NaN or infinite.
    pub non_finite: u64,
    /// Population diversity: mean Euclidean distance of the agents to their centroid.
    pub diversity: f64,
    /// Evaluations so far.
    pub evaluations: u64,
    /// Seconds spent in [`Search::run`] so far, summed over resumed runs.
    pub elapsed: f64,
}

/// Hooks called by [`Search::run`]. Every method has an empty default.
pub trait Callbacks {
    /// Called once when a run starts.
    fn on_run_start(&mut self, optimizer: &dyn Optimizer) {
        let _ = optimizer;
    }
    /// Called once when a run ends, with the reason.
    fn on_run_end(&mut self, optimizer: &dyn Optimizer, reason: StopReason) {
        let _ = (optimizer, reason);
    }
    /// Called before the first batch of an iteration; `iteration` is the one about to run (0 for the initial population).
    fn on_iteration_start(&mut self, iteration: u64) {
        let _ = iteration;
    }
    /// Called after an iteration with its history row. Return `false` to stop the run.
    fn on_iteration_end(&mut self, record: &Record, optimizer: &dyn Optimizer) -> bool {
        let _ = (record, optimizer);
        true
    }
    /// Called with every batch before it is scored (`rows x dim`, row-major).
    fn before_scoring(&mut self, candidates: &[f32], dim: usize) {
        let _ = (candidates, dim);
    }
    /// Called with every batch and its fitness after it is scored.
    fn after_scoring(&mut self, candidates: &[f32], dim: usize, fitness: &[f64]) {
        let _ = (candidates, dim, fitness);
    }
}

/// Callbacks that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCallbacks;

impl Callbacks for NoCallbacks {}

/// The outcome of [`Search::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The reason the run stopped.
    pub reason: StopReason,
    /// Best fitness found (`+inf` if none was finite).
    pub best_fitness: f64,
    /// Total evaluations.
    pub evaluations: u64,
    /// Total iterations.
    pub iterations: u64,
}

/// An optimizer with its history: runs, checkpoints and resumes.
pub struct Search {
    optimizer: Box<dyn Optimizer>,
    history: Vec<Record>,
    elapsed_before: f64,
    fitness: Vec<f64>,
    centroid: Vec<f64>,
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = &self.optimizer;
        f.debug_struct("Search")
            .field("algorithm", &opt.algorithm())
            .field("mode", &opt.mode())
            .field("dim", &opt.dim())
            .field("population", &opt.population_size())
            .field("iterations", &opt.iterations())
            .field("evaluations", &opt.evaluations())
            .field("history_rows", &self.history.len())
            .finish()
    }
}

impl Search {
    /// Wraps an optimizer.
    pub fn new(optimizer: Box<dyn Optimizer>) -> Self {
        let d = optimizer.dim();
        Search {
            optimizer,
            history: Vec::new(),
            elapsed_before: 0.0,
            fitness: Vec::new(),
            centroid: vec![0.0; d],
        }
    }

    /// Returns the optimizer.
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    /// Returns the optimizer, mutably.
    pub fn optimizer_mut(&mut self) -> &mut dyn Optimizer {
        self.optimizer.as_mut()
    }

    /// Returns the history, one row per completed iteration (row 0 is the initial population).
    pub fn history(&self) -> &[Record] {
        &self.history
    }

    /// Runs ask/tell with `objective` until a rule of `stop` is met.
    ///
    /// # Errors
    ///
    /// Only errors of [`Optimizer::tell`], which indicate a broken objective
    /// (it must write one fitness per row).
    pub fn run(
        &mut self,
        objective: &mut dyn Objective,
        stop: &StopRules,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Report, SearchError> {
        let start = Instant::now();
        callbacks.on_run_start(self.optimizer.as_ref());
        let reason = self.run_inner(objective, stop, callbacks, start)?;
        self.elapsed_before += start.elapsed().as_secs_f64();
        callbacks.on_run_end(self.optimizer.as_ref(), reason);
        Ok(Report {
            reason,
            best_fitness: self.optimizer.best().map_or(f64::INFINITY, |b| b.1),
            evaluations: self.optimizer.evaluations(),
            iterations: self.optimizer.iterations(),
        })
    }

    fn run_inner(
        &mut self,
        objective: &mut dyn Objective,
        stop: &StopRules,
        callbacks: &mut dyn Callbacks,
        start: Instant,
    ) -> Result<StopReason, SearchError> {
        let d = self.optimizer.dim();
        let mut at_iteration_start = true;
        loop {
            let initialized = !self.history.is_empty();
            if initialized {
                if let Some(reason) = self.check_rules(stop, start) {
                    return Ok(reason);
                }
            }
            if at_iteration_start {
                let next = if initialized {
                    self.optimizer.iterations() + 1
                } else {
                    0
                };
                callbacks.on_iteration_start(next);
                at_iteration_start = false;
            }
            let rows = self.optimizer.ask().len() / d;
            if let Some(max) = stop.max_evaluations {
                if self.optimizer.evaluations() + rows as u64 > max {
                    return Ok(StopReason::Evaluations);
                }
            }
            let candidates = self.optimizer.ask();
            callbacks.before_scoring(candidates, d);
            self.fitness.clear();
            self.fitness.resize(rows, f64::NAN);
            objective.evaluate(candidates, d, &mut self.fitness);
            callbacks.after_scoring(candidates, d, &self.fitness);
            let progress = self.optimizer.tell(&self.fitness)?;
            if progress != Progress::Batch {
                let record = self.record(start);
                self.history.push(record);
                at_iteration_start = true;
                if !callbacks.on_iteration_end(&record, self.optimizer.as_ref()) {
                    return Ok(StopReason::Callback);
                }
                if stop == &StopRules::default() {
                    return Ok(StopReason::NoRule);
                }
            }
        }
    }

    fn check_rules(&self, stop: &StopRules, start: Instant) -> Option<StopReason> {
        let opt = &self.optimizer;
        if let (Some(target), Some((_, best))) = (stop.target_fitness, opt.best()) {
            if best <= target {
                return Some(StopReason::Target);
            }
        }
        if stop.max_iterations.is_some_and(|m| opt.iterations() >= m) {
            return Some(StopReason::Iterations);
        }
        if stop.max_evaluations.is_some_and(|m| opt.evaluations() >= m) {
            return Some(StopReason::Evaluations);
        }
        if stop.time_limit.is_some_and(|t| start.elapsed() >= t) {
            return Some(StopReason::Time);
        }
        None
    }

    fn record(&mut self, start: Instant) -> Record {
        let opt = &self.optimizer;
        let (n, d) = (opt.population_size(), opt.dim());
        let fit = opt.fitness();
        let (mut count, mut sum, mut sum2) = (0u64, 0.0, 0.0);
        for &f in fit.iter().filter(|f| f.is_finite()) {
            count += 1;
            sum += f;
            sum2 += f * f;
        }

        let mean = if count > 0 {
            sum / count as f64
        } else {
            f64::NAN
        };
        let std = if count > 0 {
            (sum2 / count as f64 - mean * mean).max(0.0).sqrt()
        } else {
            f64::NAN
        };

        let pos = opt.population();
        self.centroid.fill(0.0);
        for row in pos.chunks(d) {
            for (c, &x) in self.centroid.iter_mut().zip(row) {
                *c += x as f64;
            }
        }
        for c in &mut self.centroid {
            *c /= n as f64;
        }

        let diversity = pos
            .chunks(d)
            .map(|row| {
                row.iter()
                    .zip(&self.centroid)
                    .map(|(&x, c)| (x as f64 - c).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .sum::<f64>()
            / n as f64;
        Record {
            iteration: opt.iterations(),
            best: opt.best().map_or(f64::INFINITY, |b| b.1),
            mean,
            std,
            non_finite: fit.len() as u64 - count,
            diversity,
            evaluations: opt.evaluations(),
            elapsed: self.elapsed_before + start.elapsed().as_secs_f64(),
        }
    }

    /// Serialises the optimizer state and the history.
    ///
    /// # Errors
    ///
    /// As [`Optimizer::save_state`].
    pub fn checkpoint(&self) -> Result<Vec<u8>, SearchError> {
        let state = self.optimizer.save_state()?;
        let opt = &self.optimizer;
        let mut w = Writer::new();
        write_header(
            &mut w,
            opt.algorithm(),
            opt.mode(),
            opt.dim(),
            opt.population_size(),
        );
        w.bytes(&state);
        w.f64(self.elapsed_before);
        w.u64(self.history.len() as u64);
        for r in &self.history {
            w.u64(r.iteration);
            w.f64s(&[r.best, r.mean, r.std, r.diversity, r.elapsed]);
            w.u64(r.non_finite);
            w.u64(r.evaluations);
        }
        Ok(w.finish())
    }

    /// Restores a checkpoint written by [`Search::checkpoint`] into
    /// `optimizer`, which must be built with the same algorithm, mode,
    /// dimension and population.
    ///
    /// # Errors
    ///
    /// [`SearchError::CheckpointTruncated`] and [`SearchError::CheckpointInvalid`].
    pub fn resume(mut optimizer: Box<dyn Optimizer>, bytes: &[u8]) -> Result<Self, SearchError> {
        let mut r = Reader::new(bytes)?;
        read_header(
            &mut r,
            optimizer.algorithm(),
            optimizer.mode(),
            optimizer.dim(),
            optimizer.population_size(),
        )?;
        optimizer.load_state(r.bytes()?)?;
        let elapsed_before = r.f64()?;
        let rows = r.u64()?;
        let mut history = Vec::new();
        for _ in 0..rows {
            let iteration = r.u64()?;
            let v = r.f64s()?;
            if v.len() != 5 {
                return Err(invalid(format!(
                    "history row has {} values, expected 5",
                    v.len()
                )));
            }
            let (non_finite, evaluations) = (r.u64()?, r.u64()?);
            history.push(Record {
                iteration,
                best: v[0],
                mean: v[1],
                std: v[2],
                diversity: v[3],
                elapsed: v[4],
                non_finite,
                evaluations,
            });
        }
        r.finish()?;
        let mut s = Search::new(optimizer);
        s.history = history;
        s.elapsed_before = elapsed_before;
        Ok(s)
    }
}
