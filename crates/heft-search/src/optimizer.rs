//! The ask/tell interface, the settings shared by every algorithm and the
//! factory that builds an algorithm from its name.

use crate::algorithms::{
    ba::{Ba, BaParams},
    cmaes::{SepCmaEs, SepCmaParams},
    de::{De, DeParams},
    fa::{Fa, FaParams},
    ga::{Ga, GaParams},
    pso::{Pso, PsoParams, RpsoParams},
    random::RandomSearch,
    snes::{Snes, SnesParams},
};
use crate::bounds::{BoundHandler, Bounds, VelocityHandling};
use crate::checkpoint::{invalid, Reader, Writer};
use crate::error::SearchError;
use crate::rng::{RandomSource, SplitMix};
use std::str::FromStr;

/// The search algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Particle swarm optimisation.
    Pso,
    /// Relativistic particle swarm optimisation.
    Rpso,
    /// Genetic algorithm.
    Ga,
    /// Differential evolution, rand/1/bin.
    De,
    /// Bat algorithm.
    Ba,
    /// Firefly algorithm.
    Fa,
    /// Separable CMA-ES (diagonal covariance).
    SepCmaEs,
    /// Separable natural evolution strategy with antithetic sampling.
    Snes,
    /// Uniform random search in the box, the control.
    RandomSearch,
}

impl Algorithm {
    /// Names accepted by [`FromStr`], in the order of the variants.
    pub const NAMES: &'static [&'static str] = &[
        "pso",
        "rpso",
        "ga",
        "de",
        "ba",
        "fa",
        "sep-cma-es",
        "snes",
        "random",
    ];

    /// Every algorithm, in the order of [`Algorithm::NAMES`].
    pub const ALL: [Algorithm; 9] = [
        Algorithm::Pso,
        Algorithm::Rpso,
        Algorithm::Ga,
        Algorithm::De,
        Algorithm::Ba,
        Algorithm::Fa,
        Algorithm::SepCmaEs,
        Algorithm::Snes,
        Algorithm::RandomSearch,
    ];

    /// The six algorithms of Opytimizer 2.1.4 that have both modes.
    pub const STUDY: [Algorithm; 6] = [
        Algorithm::Pso,
        Algorithm::Rpso,
        Algorithm::Ga,
        Algorithm::De,
        Algorithm::Ba,
        Algorithm::Fa,
    ];

    /// Returns the name of the algorithm.
    pub fn name(self) -> &'static str {
        Self::NAMES[Self::ALL
            .iter()
            .position(|&a| a == self)
            .expect("every variant is in ALL")]
    }

    /// Returns the smallest population the algorithm accepts.
    pub fn min_population(self) -> usize {
        match self {
            Algorithm::De => 4,
            Algorithm::Ga | Algorithm::Snes | Algorithm::SepCmaEs => 2,
            _ => 1,
        }
    }

    /// Returns true if the algorithm has an `opytimizer-2.1.4` mode.
    pub fn has_study_mode(self) -> bool {
        Self::STUDY.contains(&self)
    }
}

impl FromStr for Algorithm {
    type Err = SearchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let canonical = match lower.as_str() {
            "cma-es" | "sep-cmaes" | "sepcmaes" => "sep-cma-es",
            "random-search" => "random",
            other => other,
        };
        Self::NAMES
            .iter()
            .position(|&n| n == canonical)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| SearchError::UnknownAlgorithm { name: s.to_owned() })
    }
}

/// The set of update rules an algorithm follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// The rules of Opytimizer 2.1.4, quirks included. Random draws are one
    /// per agent, shared by all dimensions, and DE is asynchronous. BA has a
    /// flipped frequency and non-greedy moves, FA scales the sum of positions
    /// and uses the squared distance, RPSO's velocity starts at one and GA
    /// mutates by multiplication. Evaluation counts match the library.
    Opytimizer214,
    /// Textbook equations with one random draw per dimension.
    #[default]
    Canonical,
}

impl Mode {
    /// Names accepted by [`FromStr`].
    pub const NAMES: &'static [&'static str] = &["opytimizer-2.1.4", "canonical"];

    /// Returns the name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Opytimizer214 => "opytimizer-2.1.4",
            Mode::Canonical => "canonical",
        }
    }
}

impl FromStr for Mode {
    type Err = SearchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "opytimizer-2.1.4" | "opytimizer" | "study" => Ok(Mode::Opytimizer214),
            "canonical" => Ok(Mode::Canonical),
            _ => Err(SearchError::UnknownMode { name: s.to_owned() }),
        }
    }
}

/// Everything needed to build an algorithm: box, population, seed, mode,
/// bound handling and the hyperparameters of every algorithm.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The search box.
    pub bounds: Bounds,
    /// Number of agents (or samples per iteration for the evolution strategies).
    pub population: usize,
    /// Seed of the default random source.
    pub seed: u64,
    /// Update rules.
    pub mode: Mode,
    /// The rule for coordinates that leave the box.
    pub bound_handler: BoundHandler,
    /// The change PSO and RPSO make to the velocity of such coordinates.
    pub velocity_handling: VelocityHandling,
    /// A point (such as the pre-trained weights) to put into the initial
    /// population as agent 0. For the evolution strategies it is the initial mean.
    pub initial_point: Option<Vec<f32>>,
    /// PSO hyperparameters.
    pub pso: PsoParams,
    /// RPSO hyperparameters.
    pub rpso: RpsoParams,
    /// GA hyperparameters.
    pub ga: GaParams,
    /// DE hyperparameters.
    pub de: DeParams,
    /// BA hyperparameters.
    pub ba: BaParams,
    /// FA hyperparameters.
    pub fa: FaParams,
    /// Separable CMA-ES hyperparameters.
    pub sep_cma: SepCmaParams,
    /// SNES hyperparameters.
    pub snes: SnesParams,
}

impl Settings {
    /// Creates settings with the study's hyperparameters, canonical mode,
    /// clipping, and no initial point.
    pub fn new(bounds: Bounds, population: usize, seed: u64) -> Self {
        Settings {
            bounds,
            population,
            seed,
            mode: Mode::default(),
            bound_handler: BoundHandler::default(),
            velocity_handling: VelocityHandling::default(),
            initial_point: None,
            pso: PsoParams::default(),
            rpso: RpsoParams::default(),
            ga: GaParams::default(),
            de: DeParams::default(),
            ba: BaParams::default(),
            fa: FaParams::default(),
            sep_cma: SepCmaParams::default(),
            snes: SnesParams::default(),
        }
    }

    /// Sets the mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the bound handler.
    pub fn with_bound_handler(mut self, handler: BoundHandler) -> Self {
        self.bound_handler = handler;
        self
    }

    /// Sets the point put into the initial population.
    pub fn with_initial_point(mut self, point: Vec<f32>) -> Self {
        self.initial_point = Some(point);
        self
    }
}

/// The stage a call to [`Optimizer::tell`] completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The initial population has been scored.
    Initialized,
    /// A batch inside an iteration has been scored; more batches follow.
    Batch,
    /// The last batch of an iteration has been scored.
    Iteration,
}

/// An ask/tell optimizer. Minimises.
///
/// A run alternates [`ask`](Optimizer::ask), which returns candidates to
/// score, and [`tell`](Optimizer::tell), which takes their fitness. The first
/// batch is the initial population. An iteration may need several batches:
/// in `opytimizer-2.1.4` mode, DE and BA score one agent at a time as the
/// library does, so the evaluation order and count match it.
pub trait Optimizer: Send {
    /// Returns the algorithm.
    fn algorithm(&self) -> Algorithm;
    /// Returns the mode.
    fn mode(&self) -> Mode;
    /// Returns the number of dimensions.
    fn dim(&self) -> usize;
    /// Returns the population size.
    fn population_size(&self) -> usize;
    /// Returns the number of evaluations one iteration makes (the initial
    /// population costs `population_size()` evaluations).
    fn evaluations_per_iteration(&self) -> u64;
    /// Returns the next candidates to score: `rows x dim` values, row-major.
    /// Calling `ask` again before `tell` returns the same batch.
    fn ask(&mut self) -> &[f32];
    /// Takes the fitness of every row of the batch returned by `ask`.
    ///
    /// NaN and infinite values rank below every finite value and are never
    /// reported as the best.
    ///
    /// # Errors
    ///
    /// [`SearchError::NoPendingBatch`] without a preceding `ask`, and
    /// [`SearchError::FitnessLength`] if `fitness.len()` differs from the
    /// number of rows.
    fn tell(&mut self, fitness: &[f64]) -> Result<Progress, SearchError>;
    /// Returns the current population (`population_size() x dim`, row-major).
    /// For the evolution strategies it is the last sampled batch.
    fn population(&self) -> &[f32];
    /// Returns the fitness of the current population, non-finite values as `+inf`.
    fn fitness(&self) -> &[f64];
    /// Returns the best point found and its fitness, or `None` before a finite fitness was seen.
    fn best(&self) -> Option<(&[f32], f64)>;
    /// Returns the number of fitness values received.
    fn evaluations(&self) -> u64;
    /// Returns the number of completed iterations (the initial population not counted).
    fn iterations(&self) -> u64;
    /// Serialises the full state: population, fitness, velocities, memory,
    /// best point and random source state.
    ///
    /// # Errors
    ///
    /// [`SearchError::CheckpointWhilePending`] between `ask` and `tell`, and
    /// [`SearchError::RandomSourceNotSaveable`] for a scripted source.
    fn save_state(&self) -> Result<Vec<u8>, SearchError>;
    /// Restores a state written by [`save_state`](Optimizer::save_state) of
    /// an optimizer built with the same algorithm, mode, dimension and population.
    ///
    /// # Errors
    ///
    /// [`SearchError::CheckpointTruncated`] and [`SearchError::CheckpointInvalid`].
    fn load_state(&mut self, bytes: &[u8]) -> Result<(), SearchError>;
}

/// Builds an algorithm with the default random source seeded from `settings.seed`.
///
/// # Errors
///
/// Invalid hyperparameters, a too-small population, an initial point of the
/// wrong length or outside the box, or a mode the algorithm does not have.
pub fn build(algorithm: Algorithm, settings: &Settings) -> Result<Box<dyn Optimizer>, SearchError> {
    build_with_source(algorithm, settings, Box::new(SplitMix::new(settings.seed)))
}

/// Builds an algorithm that draws from `rng`.
///
/// # Errors
///
/// As [`build`].
pub fn build_with_source(
    algorithm: Algorithm,
    settings: &Settings,
    rng: Box<dyn RandomSource>,
) -> Result<Box<dyn Optimizer>, SearchError> {
    Ok(match algorithm {
        Algorithm::Pso => Box::new(Pso::new(settings, false, rng)?),
        Algorithm::Rpso => Box::new(Pso::new(settings, true, rng)?),
        Algorithm::Ga => Box::new(Ga::new(settings, rng)?),
        Algorithm::De => Box::new(De::new(settings, rng)?),
        Algorithm::Ba => Box::new(Ba::new(settings, rng)?),
        Algorithm::Fa => Box::new(Fa::new(settings, rng)?),
        Algorithm::SepCmaEs => Box::new(SepCmaEs::new(settings, rng)?),
        Algorithm::Snes => Box::new(Snes::new(settings, rng)?),
        Algorithm::RandomSearch => Box::new(RandomSearch::new(settings, rng)?),
    })
}

/// Maps NaN and both infinities to `+inf`, so they rank last.
#[inline]
pub(crate) fn sanitize(f: f64) -> f64 {
    if f.is_finite() {
        f
    } else {
        f64::INFINITY
    }
}

/// The location of the rows of a pending batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batch {
    /// The whole population.
    Population,
    /// One row of the population.
    Row(usize),
    /// The first `rows` rows of the scratch buffer.
    Scratch(usize),
}

/// State shared by every algorithm.
pub(crate) struct Core {
    pub dim: usize,
    pub n: usize,
    pub bounds: Bounds,
    pub handler: BoundHandler,
    pub rng: Box<dyn RandomSource>,
    /// Population, `n x dim`.
    pub pos: Vec<f32>,
    /// Fitness of `pos` (the meaning can differ per algorithm, see its docs).
    pub fit: Vec<f64>,
    pub best_pos: Vec<f32>,
    pub best_fit: f64,
    pub has_best: bool,
    /// Candidates that are not population rows (GA children, DE trials).
    pub scratch: Vec<f32>,
    fit_buf: Vec<f64>,
    pending: Option<Batch>,
    pub evaluations: u64,
    pub iterations: u64,
}

impl Core {
    /// Validates the shared settings and draws the initial population row by
    /// row, one uniform draw per coordinate. The initial point, if any,
    /// replaces row 0 after the draws.
    pub fn new(
        settings: &Settings,
        algorithm: Algorithm,
        mut rng: Box<dyn RandomSource>,
        scratch_rows: usize,
    ) -> Result<Self, SearchError> {
        let n = settings.population;
        let min = algorithm.min_population();
        if n < min {
            return Err(SearchError::PopulationTooSmall {
                algorithm: algorithm.name(),
                size: n,
                min,
            });
        }
        if settings.mode == Mode::Opytimizer214 && !algorithm.has_study_mode() {
            return Err(SearchError::ModeNotSupported {
                algorithm: algorithm.name(),
                mode: settings.mode.name(),
            });
        }
        let bounds = settings.bounds.clone();
        let dim = bounds.dim();
        if let Some(p) = &settings.initial_point {
            check_point(&bounds, p)?;
        }
        let mut pos = vec![0.0f32; n * dim];
        bounds.sample_rows(&mut pos, rng.as_mut());
        if let Some(p) = &settings.initial_point {
            pos[..dim].copy_from_slice(p);
        }
        let max_rows = n.max(scratch_rows);
        Ok(Core {
            dim,
            n,
            handler: settings.bound_handler,
            rng,
            pos,
            fit: vec![f64::INFINITY; n],
            best_pos: vec![0.0; dim],
            best_fit: f64::INFINITY,
            has_best: false,
            scratch: vec![0.0; scratch_rows * dim],
            fit_buf: Vec::with_capacity(max_rows),
            pending: None,
            evaluations: 0,
            iterations: 0,
            bounds,
        })
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.pos[i * self.dim..(i + 1) * self.dim]
    }

    /// Makes population row `i` the best point if `f` is strictly better.
    pub fn offer_row(&mut self, i: usize, f: f64) {
        if f < self.best_fit {
            let d = self.dim;
            self.best_pos.copy_from_slice(&self.pos[i * d..(i + 1) * d]);
            self.best_fit = f;
            self.has_best = true;
        }
    }

    /// Makes `point` the best point if `f` is strictly better.
    pub fn offer(
        best_pos: &mut [f32],
        best_fit: &mut f64,
        has_best: &mut bool,
        point: &[f32],
        f: f64,
    ) {
        if f < *best_fit {
            best_pos.copy_from_slice(point);
            *best_fit = f;
            *has_best = true;
        }
    }

    fn batch_slice(&self, b: Batch) -> &[f32] {
        match b {
            Batch::Population => &self.pos,
            Batch::Row(i) => self.row(i),
            Batch::Scratch(rows) => &self.scratch[..rows * self.dim],
        }
    }

    fn batch_rows(&self, b: Batch) -> usize {
        match b {
            Batch::Population => self.n,
            Batch::Row(_) => 1,
            Batch::Scratch(rows) => rows,
        }
    }

    fn save(&self, w: &mut Writer) -> Result<(), SearchError> {
        w.f32s(&self.pos);
        w.f64s(&self.fit);
        w.f32s(&self.best_pos);
        w.f64(self.best_fit);
        w.u8(self.has_best as u8);
        w.u64(self.evaluations);
        w.u64(self.iterations);
        let state = self
            .rng
            .state()
            .ok_or(SearchError::RandomSourceNotSaveable)?;
        w.u64(state[0]);
        w.u64(state[1]);
        Ok(())
    }

    fn load(&mut self, r: &mut Reader) -> Result<(), SearchError> {
        r.f32s_into("population", &mut self.pos)?;
        r.f64s_into("fitness", &mut self.fit)?;
        r.f32s_into("best position", &mut self.best_pos)?;
        self.best_fit = r.f64()?;
        self.has_best = read_bool(r, "best flag")?;
        self.evaluations = r.u64()?;
        self.iterations = r.u64()?;
        let state = [r.u64()?, r.u64()?];
        if !self.rng.set_state(state) {
            return Err(SearchError::RandomSourceNotSaveable);
        }
        self.pending = None;
        Ok(())
    }
}

pub(crate) fn read_bool(r: &mut Reader, field: &str) -> Result<bool, SearchError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(invalid(format!("field {field} is {v}, expected 0 or 1"))),
    }
}

pub(crate) fn check_point(bounds: &Bounds, p: &[f32]) -> Result<(), SearchError> {
    if p.len() != bounds.dim() {
        return Err(SearchError::InitialPointLength {
            expected: bounds.dim(),
            found: p.len(),
        });
    }
    for (index, &value) in p.iter().enumerate() {
        let (lower, upper) = (bounds.lower()[index], bounds.upper()[index]);
        if value.is_nan() || value < lower || value > upper {
            return Err(SearchError::InitialPointOutside {
                index,
                value,
                lower,
                upper,
            });
        }
    }
    Ok(())
}

pub(crate) fn check_param(
    name: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<(), SearchError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(SearchError::InvalidHyperparameter {
            name,
            value,
            expected,
        })
    }
}

/// The part each algorithm implements; [`Optimizer`] is derived from it.
pub(crate) trait Engine: Send {
    fn core(&self) -> &Core;
    fn core_mut(&mut self) -> &mut Core;
    fn algorithm(&self) -> Algorithm;
    fn mode(&self) -> Mode;
    fn evaluations_per_iteration(&self) -> u64;
    /// Builds the next batch and returns its location.
    fn prepare(&mut self) -> Batch;
    /// Takes the sanitised fitness of the batch built by `prepare`.
    fn absorb(&mut self, batch: Batch, fitness: &[f64]) -> Progress;
    fn save_extra(&self, w: &mut Writer);
    fn load_extra(&mut self, r: &mut Reader) -> Result<(), SearchError>;
}

impl<T: Engine> Optimizer for T {
    fn algorithm(&self) -> Algorithm {
        Engine::algorithm(self)
    }

    fn mode(&self) -> Mode {
        Engine::mode(self)
    }

    fn dim(&self) -> usize {
        self.core().dim
    }

    fn population_size(&self) -> usize {
        self.core().n
    }

    fn evaluations_per_iteration(&self) -> u64 {
        Engine::evaluations_per_iteration(self)
    }

    fn ask(&mut self) -> &[f32] {
        let batch = match self.core().pending {
            Some(b) => b,
            None => {
                let b = self.prepare();
                self.core_mut().pending = Some(b);
                b
            }
        };
        self.core().batch_slice(batch)
    }

    fn tell(&mut self, fitness: &[f64]) -> Result<Progress, SearchError> {
        let core = self.core_mut();
        let batch = core.pending.ok_or(SearchError::NoPendingBatch)?;
        let rows = core.batch_rows(batch);
        if fitness.len() != rows {
            return Err(SearchError::FitnessLength {
                expected: rows,
                found: fitness.len(),
            });
        }
        let mut buf = std::mem::take(&mut core.fit_buf);
        buf.clear();
        buf.extend(fitness.iter().map(|&f| sanitize(f)));
        core.pending = None;
        core.evaluations += rows as u64;
        let progress = self.absorb(batch, &buf);
        let core = self.core_mut();
        core.fit_buf = buf;
        if progress == Progress::Iteration {
            core.iterations += 1;
        }
        Ok(progress)
    }

    fn population(&self) -> &[f32] {
        &self.core().pos
    }

    fn fitness(&self) -> &[f64] {
        &self.core().fit
    }

    fn best(&self) -> Option<(&[f32], f64)> {
        let c = self.core();
        c.has_best.then_some((&c.best_pos[..], c.best_fit))
    }

    fn evaluations(&self) -> u64 {
        self.core().evaluations
    }

    fn iterations(&self) -> u64 {
        self.core().iterations
    }

    fn save_state(&self) -> Result<Vec<u8>, SearchError> {
        let c = self.core();
        if c.pending.is_some() {
            return Err(SearchError::CheckpointWhilePending);
        }
        let mut w = Writer::new();
        write_header(
            &mut w,
            Engine::algorithm(self),
            Engine::mode(self),
            c.dim,
            c.n,
        );
        c.save(&mut w)?;
        self.save_extra(&mut w);
        Ok(w.finish())
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<(), SearchError> {
        let mut r = Reader::new(bytes)?;
        let (algorithm, mode, dim, n) = (
            Engine::algorithm(self),
            Engine::mode(self),
            self.core().dim,
            self.core().n,
        );
        read_header(&mut r, algorithm, mode, dim, n)?;
        self.core_mut().load(&mut r)?;
        self.load_extra(&mut r)?;
        r.finish()
    }
}

/// Random draws an algorithm makes per [`RandomSource`] call when it
/// fills the draws of several short rows at once: 16 KiB of f32, so the
/// draws stay in L1 until they are used. Rows longer than this get one call
/// each, which fills in parallel chunks once it is long enough (see `rng`).
pub(crate) const GROUP_DRAWS: usize = 1 << 12;

/// Returns how many rows of `draws_per_row` draws each to fill per call:
/// as many as fit in [`GROUP_DRAWS`], at least 1, at most `rows`. It
/// depends on the sizes only, so the draws do not depend on the thread
/// count.
pub(crate) fn rows_per_group(draws_per_row: usize, rows: usize) -> usize {
    (GROUP_DRAWS / draws_per_row.max(1)).clamp(1, rows.max(1))
}

pub(crate) fn write_header(w: &mut Writer, algorithm: Algorithm, mode: Mode, dim: usize, n: usize) {
    w.bytes(algorithm.name().as_bytes());
    w.bytes(mode.name().as_bytes());
    w.u64(dim as u64);
    w.u64(n as u64);
}

pub(crate) fn read_header(
    r: &mut Reader,
    algorithm: Algorithm,
    mode: Mode,
    dim: usize,
    n: usize,
) -> Result<(), SearchError> {
    let name = String::from_utf8_lossy(r.bytes()?).into_owned();
    if name != algorithm.name() {
        return Err(invalid(format!(
            "checkpoint is for algorithm {name:?}, not {:?}",
            algorithm.name()
        )));
    }
    let m = String::from_utf8_lossy(r.bytes()?).into_owned();
    if m != mode.name() {
        return Err(invalid(format!(
            "checkpoint is for mode {m:?}, not {:?}",
            mode.name()
        )));
    }
    let (d, p) = (r.u64()?, r.u64()?);
    if d != dim as u64 || p != n as u64 {
        return Err(invalid(format!(
            "checkpoint has dimension {d} and population {p}, but the optimizer has {dim} and {n}"
        )));
    }
    Ok(())
}

pub(crate) fn invalid_phase(algorithm: &str, value: u8) -> SearchError {
    invalid(format!("phase {value} is not a valid {algorithm} phase"))
}
