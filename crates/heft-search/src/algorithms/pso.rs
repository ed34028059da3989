//! Particle swarm optimisation (PSO) and relativistic PSO (RPSO).
//!
//! # Rules
//!
//! With `x_i` the position, `v_i` the velocity, `p_i` the personal best and
//! `g` the global best at the start of the iteration:
//!
//! * PSO: `v_i <- w v_i + c1 r1 (p_i - x_i) + c2 r2 (g - x_i)`, then `x_i <- x_i + v_i`.
//! * RPSO: `v_i <- m_i * v_i * gamma + c1 r1 (p_i - x_i) + c2 r2 (g - x_i)`,
//!   where the mass `m_i` is drawn once, uniform per agent and dimension,
//!   and `gamma = 1 / sqrt(1 - vmax^2 / c^2)` with `vmax` the largest signed
//!   velocity component of the swarm and `c = 3e5`.
//!
//! In `opytimizer-2.1.4` mode `r1` and `r2` are one uniform draw each per
//! agent, shared by all dimensions (drawn `r1`, `r2`, agent by agent), the
//! RPSO velocity starts at one, and there is no velocity limit. In
//! `canonical` mode they are drawn per dimension, the velocity starts at
//! zero and each component is limited to the width of its interval.
//! After the move every position is brought back into the box by the bound
//! handler, and [`VelocityHandling`] sets what
//! happens to the velocity of the coordinates that left it.
//!
//! Fitness: a new fitness replaces the personal best only if strictly
//! better, and the global best follows the personal bests.
//!
//! # Evaluations
//!
//! `P` for the initial population, then `P` per iteration, in one batch.
//!
//! # Measured quality (canonical, 30 dimensions, P = 30, seed 1)
//!
//! Within 30,000 evaluations PSO reaches below 1e-6 on the sphere in
//! `[-5.12, 5.12]^30` and below 0.1 on Griewank, and RPSO below 2.0 on the
//! sphere (see the `canonical_pso_*` tests in `tests/functions.rs`). On
//! Ackley PSO reaches below 1e-2 with 29 of the seeds 1 to 60 and stalls in
//! a local minimum with the others. PSO stalls near 20 on the sphere
//! shifted to 2.5.

use crate::bounds::VelocityHandling;
use crate::checkpoint::{Reader, Writer};
use crate::error::SearchError;
use crate::optimizer::{
    check_param, read_bool, rows_per_group, Algorithm, Batch, Core, Engine, Mode, Progress,
    Settings,
};
use crate::rng::RandomSource;

/// Speed of light of RPSO, the constant `LIGHT_SPEED` of Opytimizer 2.1.4.
pub const LIGHT_SPEED: f64 = 3e5;

/// PSO hyperparameters. The defaults are the study's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsoParams {
    /// Inertia weight (default 0.7).
    pub w: f64,
    /// Cognitive coefficient (default 1.7).
    pub c1: f64,
    /// Social coefficient (default 1.7).
    pub c2: f64,
}

impl Default for PsoParams {
    fn default() -> Self {
        PsoParams {
            w: 0.7,
            c1: 1.7,
            c2: 1.7,
        }
    }
}

/// RPSO hyperparameters. The defaults are the study's. RPSO has no inertia weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RpsoParams {
    /// Cognitive coefficient (default 1.7).
    pub c1: f64,
    /// Social coefficient (default 1.7).
    pub c2: f64,
}

impl Default for RpsoParams {
    fn default() -> Self {
        RpsoParams { c1: 1.7, c2: 1.7 }
    }
}

/// PSO or RPSO.
pub struct Pso {
    core: Core,
    mode: Mode,
    relativistic: bool,
    w: f32,
    c1: f32,
    c2: f32,
    velocity_handling: VelocityHandling,
    initialized: bool,
    vel: Vec<f32>,
    pbest: Vec<f32>,
    pbest_fit: Vec<f64>,
    /// RPSO mass, `P x D`; empty for PSO.
    mass: Vec<f32>,
    /// Per-dimension draws of a group of agents in canonical mode, `2 x D`
    /// per agent.
    draws: Vec<f32>,
    /// Velocity limit per dimension in canonical mode (the interval width); empty otherwise.
    vmax: Vec<f32>,
}

/// Clamps a canonical velocity component to `[-vmax, vmax]` and maps NaN to 0.
/// Written with comparisons (not `clamp`) so the loop compiles to selects.
#[inline]
fn limit_velocity(v: f32, vmax: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else if v < -vmax {
        -vmax
    } else if v > vmax {
        vmax
    } else {
        v
    }
}

impl Pso {
    /// Builds PSO (`relativistic == false`) or RPSO.
    ///
    /// # Errors
    ///
    /// Negative or non-finite coefficients, and the shared checks of [`Settings`].
    pub fn new(
        settings: &Settings,
        relativistic: bool,
        rng: Box<dyn RandomSource>,
    ) -> Result<Self, SearchError> {
        let (w, c1, c2) = if relativistic {
            (1.0, settings.rpso.c1, settings.rpso.c2)
        } else {
            (settings.pso.w, settings.pso.c1, settings.pso.c2)
        };
        check_param("w", w, w >= 0.0, "a finite value >= 0")?;
        check_param("c1", c1, c1 >= 0.0, "a finite value >= 0")?;
        check_param("c2", c2, c2 >= 0.0, "a finite value >= 0")?;
        let algorithm = if relativistic {
            Algorithm::Rpso
        } else {
            Algorithm::Pso
        };
        let mut core = Core::new(settings, algorithm, rng, 0)?;
        let (n, d) = (core.n, core.dim);
        let study = settings.mode == Mode::Opytimizer214;
        let v0 = if relativistic && study { 1.0 } else { 0.0 };
        let mut mass = Vec::new();
        if relativistic {
            mass = vec![0.0; n * d];
            core.rng.fill_uniform(&mut mass);
        }
        let pbest = core.pos.clone();
        Ok(Pso {
            mode: settings.mode,
            relativistic,
            w: w as f32,
            c1: c1 as f32,
            c2: c2 as f32,
            velocity_handling: settings.velocity_handling,
            initialized: false,
            vel: vec![v0; n * d],
            pbest,
            pbest_fit: vec![f64::INFINITY; n],
            mass,
            draws: vec![
                0.0;
                if study {
                    0
                } else {
                    rows_per_group(2 * d, n) * 2 * d
                }
            ],
            vmax: if study {
                Vec::new()
            } else {
                (0..d).map(|j| core.bounds.width(j) as f32).collect()
            },
            core,
        })
    }

    /// Returns the velocities, `P x D`.
    pub fn velocities(&self) -> &[f32] {
        &self.vel
    }

    // NOTE: until some agent scores a finite fitness, the global best is the
    // zero vector, as in Opytimizer 2.1.4, so the social term pulls toward
    // 0 even when 0 lies outside the box (clipping then applies).
    fn update(&mut self) {
        let d = self.core.dim;
        let study = self.mode == Mode::Opytimizer214;
        let gamma = if self.relativistic {
            let vmax = self.vel.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            (1.0 / (1.0 - vmax * vmax / (LIGHT_SPEED * LIGHT_SPEED)).sqrt()) as f32
        } else {
            1.0
        };
        let n = self.core.n;
        let Core {
            pos,
            rng,
            best_pos,
            bounds,
            handler,
            ..
        } = &mut self.core;
        // Canonical mode fills the draws of a group of agents per call.
        let group = rows_per_group(2 * d, n);
        for i in 0..n {
            if !study && i % group == 0 {
                let rows = group.min(n - i);
                rng.fill_uniform_fast(&mut self.draws[..rows * 2 * d]);
            }
            let x = &mut pos[i * d..(i + 1) * d];
            let v = &mut self.vel[i * d..(i + 1) * d];
            let p = &self.pbest[i * d..(i + 1) * d];
            if study {
                let r1 = rng.uniform() as f32;
                let r2 = rng.uniform() as f32;
                let (a, b) = (self.c1 * r1, self.c2 * r2);
                if self.relativistic {
                    let m = &self.mass[i * d..(i + 1) * d];
                    for j in 0..d {
                        v[j] = m[j] * v[j] * gamma + a * (p[j] - x[j]) + b * (best_pos[j] - x[j]);
                    }
                } else {
                    let w = self.w;
                    for j in 0..d {
                        v[j] = w * v[j] + a * (p[j] - x[j]) + b * (best_pos[j] - x[j]);
                    }
                }
                for j in 0..d {
                    x[j] += v[j];
                }
            } else {
                let draws = &self.draws[(i % group) * 2 * d..][..2 * d];
                let (r1, r2) = draws.split_at(d);
                let (r2, g, vmax) = (&r2[..d], &best_pos[..d], &self.vmax[..d]);
                let (c1, c2) = (self.c1, self.c2);
                if self.relativistic {
                    let m = &self.mass[i * d..(i + 1) * d];
                    for j in 0..d {
                        let vj = m[j] * gamma * v[j]
                            + c1 * r1[j] * (p[j] - x[j])
                            + c2 * r2[j] * (g[j] - x[j]);
                        v[j] = limit_velocity(vj, vmax[j]);
                        x[j] += v[j];
                    }
                } else {
                    let w = self.w;
                    for j in 0..d {
                        let vj = w * v[j] + c1 * r1[j] * (p[j] - x[j]) + c2 * r2[j] * (g[j] - x[j]);
                        v[j] = limit_velocity(vj, vmax[j]);
                        x[j] += v[j];
                    }
                }
            }
            bounds.repair(x, *handler, Some((v, self.velocity_handling)), rng.as_mut());
        }
    }
}

impl Engine for Pso {
    fn core(&self) -> &Core {
        &self.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    fn algorithm(&self) -> Algorithm {
        if self.relativistic {
            Algorithm::Rpso
        } else {
            Algorithm::Pso
        }
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
        let d = self.core.dim;
        for (i, &f) in fitness.iter().enumerate() {
            self.core.fit[i] = f;
            if f < self.pbest_fit[i] {
                self.pbest_fit[i] = f;
                self.pbest[i * d..(i + 1) * d].copy_from_slice(self.core.row(i));
            }
            let c = &mut self.core;
            Core::offer(
                &mut c.best_pos,
                &mut c.best_fit,
                &mut c.has_best,
                &self.pbest[i * d..(i + 1) * d],
                self.pbest_fit[i],
            );
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
        w.f32s(&self.vel);
        w.f32s(&self.pbest);
        w.f64s(&self.pbest_fit);
        w.f32s(&self.mass);
    }

    fn load_extra(&mut self, r: &mut Reader) -> Result<(), SearchError> {
        self.initialized = read_bool(r, "initialized")?;
        r.f32s_into("velocity", &mut self.vel)?;
        r.f32s_into("personal best", &mut self.pbest)?;
        r.f64s_into("personal best fitness", &mut self.pbest_fit)?;
        r.f32s_into("mass", &mut self.mass)
    }
}
