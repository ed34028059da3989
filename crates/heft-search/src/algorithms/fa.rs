//! Firefly algorithm (FA).
//!
//! # Rules
//!
//! At the start of every iteration `alpha <- alpha (1 - delta)` with
//! `delta = 1 - (1e-3 / 0.9)^(1 / T)` and `T = planned_iterations`, so after
//! `T` iterations `alpha = alpha0 * 1e-3 / 0.9`. Then a snapshot `S` of the
//! population is taken, and for each firefly `i` in order and each `s` in
//! `S`, if `fit_i > fit_s` (the fitness from the last scoring, not updated
//! by moves), `i` moves toward `s`:
//!
//! * `opytimizer-2.1.4` mode: with `r = ||x_i - x_s||^2` (squared distance
//!   from `i`'s current, possibly already moved, position),
//!   `beta = beta0 exp(-gamma r)`, one uniform `u`, and
//!   `x_i <- beta (x_s + x_i) + alpha (u - 0.5)`: the library scales the
//!   sum, which shrinks positions toward zero.
//! * `canonical` mode (Yang, 2008): with `r^2 = sum_j ((x_ij - x_sj) / w_j)^2`
//!   (distance in units of the interval widths `w_j`, dimensions with
//!   `w_j = 0` left out), `beta = beta0 exp(-gamma r^2)`, one uniform `u_j` per
//!   dimension, and `x_ij <- x_ij + beta (x_sj - x_ij) + alpha (u_j - 0.5) w_j`.
//!
//! Then every firefly is brought into the box and the population is scored.
//! The cost is `O(P^2 D)` per iteration.
//!
//! # Evaluations
//!
//! `P` for the initial population, then `P` per iteration, in one batch.
//!
//! # Measured quality (canonical, 30 dimensions, P = 30, seed 1)
//!
//! With `planned_iterations = 1000` (the run's length), FA reaches below 10
//! on the sphere in `[-5.12, 5.12]^30` within 30,000 evaluations (see
//! `canonical_fa_sphere` in `tests/functions.rs`).

use crate::checkpoint::{Reader, Writer};
use crate::error::SearchError;
use crate::optimizer::{
    check_param, read_bool, Algorithm, Batch, Core, Engine, Mode, Progress, Settings,
};
use crate::rng::RandomSource;

/// FA hyperparameters. The defaults are the study's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaParams {
    /// Initial randomisation step `alpha0` (default 0.5).
    pub alpha: f64,
    /// Attractiveness at distance zero, `beta0` (default 0.2).
    pub beta: f64,
    /// Light absorption `gamma` (default 1.0).
    pub gamma: f64,
    /// Number of iterations `T` the decay of `alpha` is planned for
    /// (default 15, the study's default iteration count). Iterations past
    /// `T` keep decaying `alpha` at the same rate, as in Opytimizer 2.1.4.
    pub planned_iterations: u64,
}

impl Default for FaParams {
    fn default() -> Self {
        FaParams {
            alpha: 0.5,
            beta: 0.2,
            gamma: 1.0,
            planned_iterations: 15,
        }
    }
}

/// The firefly algorithm.
pub struct Fa {
    core: Core,
    mode: Mode,
    params: FaParams,
    alpha: f64,
    initialized: bool,
    snapshot: Vec<f32>,
    draws: Vec<f32>,
    inv_width: Vec<f64>,
}

impl Fa {
    /// Builds FA.
    ///
    /// # Errors
    ///
    /// Negative or non-finite hyperparameters, `planned_iterations == 0`,
    /// and the shared checks of [`Settings`].
    pub fn new(settings: &Settings, rng: Box<dyn RandomSource>) -> Result<Self, SearchError> {
        let p = settings.fa;
        check_param("alpha", p.alpha, p.alpha >= 0.0, "a finite value >= 0")?;
        check_param("beta", p.beta, p.beta >= 0.0, "a finite value >= 0")?;
        check_param("gamma", p.gamma, p.gamma >= 0.0, "a finite value >= 0")?;
        let t = p.planned_iterations as f64;
        check_param(
            "planned_iterations",
            t,
            p.planned_iterations > 0,
            "at least 1",
        )?;
        let core = Core::new(settings, Algorithm::Fa, rng, 0)?;
        let (n, d) = (core.n, core.dim);
        let inv_width = (0..d)
            .map(|j| {
                let w = core.bounds.width(j);
                if w > 0.0 {
                    1.0 / w
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Fa {
            mode: settings.mode,
            params: p,
            alpha: p.alpha,
            initialized: false,
            snapshot: vec![0.0; n * d],
            draws: vec![
                0.0;
                if settings.mode == Mode::Canonical {
                    d
                } else {
                    0
                }
            ],
            inv_width,
            core,
        })
    }

    /// Returns the current randomisation step `alpha`.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    fn update(&mut self) {
        let (n, d) = (self.core.n, self.core.dim);
        let delta = 1.0 - (1e-3f64 / 0.9).powf(1.0 / self.params.planned_iterations as f64);
        self.alpha *= 1.0 - delta;
        self.snapshot.copy_from_slice(&self.core.pos);
        let FaParams {
            beta: beta0, gamma, ..
        } = self.params;
        let study = self.mode == Mode::Opytimizer214;
        let Core {
            pos,
            fit,
            rng,
            bounds,
            handler,
            ..
        } = &mut self.core;
        for i in 0..n {
            let x = &mut pos[i * d..(i + 1) * d];
            for s in 0..n {
                if fit[i] <= fit[s] {
                    continue;
                }
                let xs = &self.snapshot[s * d..(s + 1) * d];
                if study {
                    let r: f64 = x
                        .iter()
                        .zip(xs)
                        .map(|(&a, &b)| ((a - b) as f64).powi(2))
                        .sum();
                    let beta = (beta0 * (-gamma * r).exp()) as f32;
                    let noise = (self.alpha * (rng.uniform() - 0.5)) as f32;
                    for j in 0..d {
                        x[j] = beta * (xs[j] + x[j]) + noise;
                    }
                } else {
                    let r2: f64 = (0..d)
                        .map(|j| ((x[j] - xs[j]) as f64 * self.inv_width[j]).powi(2))
                        .sum();
                    let beta = (beta0 * (-gamma * r2).exp()) as f32;
                    rng.fill_uniform_fast(&mut self.draws);
                    for j in 0..d {
                        let noise =
                            (self.alpha * (self.draws[j] as f64 - 0.5) * bounds.width(j)) as f32;
                        x[j] += beta * (xs[j] - x[j]) + noise;
                    }
                }
            }
        }
        for row in pos.chunks_mut(d) {
            bounds.repair(row, *handler, None, rng.as_mut());
        }
    }
}

impl Engine for Fa {
    fn core(&self) -> &Core {
        &self.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::Fa
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn evaluations_per_iteration(&self) -> u64 {
        self.core.n as u64
    }

    fn prepare(&mut self) -> Batch {
        if self.initialized {
            self.update();
        }
        Batch::Population
    }

    fn absorb(&mut self, _batch: Batch, fitness: &[f64]) -> Progress {
        for (i, &f) in fitness.iter().enumerate() {
            self.core.fit[i] = f;
            self.core.offer_row(i, f);
        }
        if self.initialized {
            Progress::Iteration
        } else {
            self.initialized = true;
            Progress::Initialized
        }
    }

    fn save_extra(&self, w: &mut Writer) {
        w.u8(self.initialized as u8);
        w.f64(self.alpha);
    }

    fn load_extra(&mut self, r: &mut Reader) -> Result<(), SearchError> {
        self.initialized = read_bool(r, "initialized")?;
        self.alpha = r.f64()?;
        Ok(())
    }
}
