//! Bat algorithm (BA).
//!
//! # Rules
//!
//! `opytimizer-2.1.4` mode, with `t` the 0-based iteration and `g` a local
//! copy of the global best taken at the start of the iteration. At build
//! time the library draws `P` initial frequencies (then never uses them),
//! `P` loudness values `U(0, A)` and `P` pulse rates `U(0, r)`, in that order.
//! Then per bat `i`, in order:
//! 1. `beta ~ U`, frequency `f = f_min + (f_min - f_max) beta` (the sign is
//!    flipped on purpose in the library, so `f` lies in `[-2, 0]` by default).
//! 2. `v_i <- v_i + (x_i - g) f`, `x_i <- x_i + v_i`.
//! 3. `p ~ U`, `e ~ N(0, 1)`; if `p > pulse_i`,
//!    `x_i <- g + 0.001 e mean(loudness)`, one offset for every dimension.
//! 4. `x_i` is brought into the box and scored alone (a batch of one). The
//!    move is kept whatever the fitness.
//! 5. If `p < loudness_i` and the fitness beats `g`'s, `g <- x_i`,
//!    `pulse_i <- r (1 - exp(-0.9 t))` and `loudness_i <- 0.9 A`.
//!
//! The global best itself is not updated by step 5 (the library rebinds a
//! local variable). After the `P` bats the whole population is scored again
//! (one batch of `P`) and the global best is updated greedily from that.
//!
//! `canonical` mode (Yang, 2010), synchronous: loudness starts at `A`, pulse
//! rate at `r`. Per bat: `f = f_min + (f_max - f_min) beta`,
//! `v_i <- v_i + (x_i - g) f`, candidate `x_i + v_i`; if a uniform exceeds
//! `pulse_i`, the candidate is instead `g_j + eps_j mean(loudness) 0.1 w_j`
//! with `eps_j ~ U(-1, 1)` per dimension and `w_j` the interval width. All
//! candidates are scored in one batch. A candidate replaces its bat if a
//! uniform is below `loudness_i` and its fitness is not worse; then
//! `loudness_i <- 0.9 loudness_i` and `pulse_i <- r (1 - exp(-0.9 (t + 1)))`.
//! The global best takes any better candidate.
//!
//! # Evaluations
//!
//! `P` for the initial population, then `2P` per iteration in
//! `opytimizer-2.1.4` mode and `P` in `canonical` mode.
//!
//! # Measured quality (canonical, 30 dimensions, P = 30, seed 1)
//!
//! BA reaches below 0.1 on the sphere in `[-5.12, 5.12]^30`, and on the
//! sphere shifted to 2.5, within 30,000 evaluations (see
//! `canonical_ba_sphere` in `tests/functions.rs`).

use crate::checkpoint::{Reader, Writer};
use crate::error::SearchError;
use crate::optimizer::{
    check_param, invalid_phase, Algorithm, Batch, Core, Engine, Mode, Progress, Settings,
};
use crate::rng::RandomSource;

/// BA hyperparameters. The defaults are the study's. The decay constants
/// `alpha = gamma = 0.9` are fixed, as in Opytimizer 2.1.4.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaParams {
    /// Minimum frequency (default 0).
    pub f_min: f64,
    /// Maximum frequency (default 2).
    pub f_max: f64,
    /// Loudness `A` (default 0.5).
    pub a: f64,
    /// Pulse rate `r` (default 0.5).
    pub r: f64,
}

impl Default for BaParams {
    fn default() -> Self {
        BaParams {
            f_min: 0.0,
            f_max: 2.0,
            a: 0.5,
            r: 0.5,
        }
    }
}

const DECAY: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Init,
    Bat(usize),
    Rescore,
    Candidates,
}

/// The bat algorithm.
pub struct Ba {
    core: Core,
    mode: Mode,
    params: BaParams,
    phase: Phase,
    vel: Vec<f32>,
    loudness: Vec<f64>,
    pulse: Vec<f64>,
    /// The uniform `p` of each bat, drawn when its move is built.
    p_draw: Vec<f64>,
    local_best: Vec<f32>,
    local_best_fit: f64,
    draws: Vec<f32>,
}

impl Ba {
    /// Builds BA.
    ///
    /// # Errors
    ///
    /// Non-finite or negative hyperparameters, `f_min > f_max`, and the
    /// shared checks of [`Settings`].
    pub fn new(settings: &Settings, rng: Box<dyn RandomSource>) -> Result<Self, SearchError> {
        let p = settings.ba;
        check_param("f_min", p.f_min, true, "a finite value")?;
        check_param(
            "f_max",
            p.f_max,
            p.f_max >= p.f_min,
            "a finite value >= f_min",
        )?;
        check_param("a", p.a, p.a >= 0.0, "a finite value >= 0")?;
        check_param("r", p.r, (0.0..=1.0).contains(&p.r), "a rate in [0, 1]")?;
        let study = settings.mode == Mode::Opytimizer214;
        let mut core = Core::new(
            settings,
            Algorithm::Ba,
            rng,
            if study { 0 } else { settings.population },
        )?;
        let (n, d) = (core.n, core.dim);
        let (mut loudness, mut pulse) = (vec![p.a; n], vec![p.r; n]);
        if study {
            for _ in 0..n {
                // The library's initial frequencies: drawn, then overwritten.
                core.rng.uniform();
            }
            for l in &mut loudness {
                *l = p.a * core.rng.uniform();
            }
            for r in &mut pulse {
                *r = p.r * core.rng.uniform();
            }
        }
        Ok(Ba {
            mode: settings.mode,
            params: p,
            phase: Phase::Init,
            vel: vec![0.0; n * d],
            loudness,
            pulse,
            p_draw: vec![0.0; n],
            local_best: vec![0.0; d],
            local_best_fit: f64::INFINITY,
            draws: vec![0.0; if study { 0 } else { d }],
            core,
        })
    }

    fn mean_loudness(&self) -> f64 {
        self.loudness.iter().sum::<f64>() / self.loudness.len() as f64
    }

    fn study_move(&mut self, i: usize) {
        if i == 0 {
            self.local_best.copy_from_slice(&self.core.best_pos);
            self.local_best_fit = self.core.best_fit;
        }
        let d = self.core.dim;
        let mean_loudness = self.mean_loudness();
        let BaParams { f_min, f_max, .. } = self.params;
        let Core {
            pos,
            rng,
            bounds,
            handler,
            ..
        } = &mut self.core;
        let beta = rng.uniform();
        let f = (f_min + (f_min - f_max) * beta) as f32;
        let x = &mut pos[i * d..(i + 1) * d];
        let v = &mut self.vel[i * d..(i + 1) * d];
        let g = &self.local_best;
        for j in 0..d {
            v[j] += (x[j] - g[j]) * f;
            x[j] += v[j];
        }
        let p = rng.uniform();
        let e = rng.normal();
        self.p_draw[i] = p;
        if p > self.pulse[i] {
            let offset = (0.001 * e * mean_loudness) as f32;
            for j in 0..d {
                x[j] = g[j] + offset;
            }
        }
        bounds.repair(x, *handler, None, rng.as_mut());
    }

    fn canonical_moves(&mut self) {
        let (n, d) = (self.core.n, self.core.dim);
        let mean_loudness = self.mean_loudness();
        let BaParams { f_min, f_max, .. } = self.params;
        let Core {
            pos,
            scratch,
            rng,
            bounds,
            handler,
            best_pos,
            ..
        } = &mut self.core;
        for i in 0..n {
            let beta = rng.uniform();
            let f = (f_min + (f_max - f_min) * beta) as f32;
            let x = &pos[i * d..(i + 1) * d];
            let v = &mut self.vel[i * d..(i + 1) * d];
            let cand = &mut scratch[i * d..(i + 1) * d];
            for j in 0..d {
                v[j] += (x[j] - best_pos[j]) * f;
                cand[j] = x[j] + v[j];
            }
            if rng.uniform() > self.pulse[i] {
                rng.fill_uniform_fast(&mut self.draws);
                for j in 0..d {
                    let eps = 2.0 * self.draws[j] as f64 - 1.0;
                    cand[j] = best_pos[j] + (eps * mean_loudness * 0.1 * bounds.width(j)) as f32;
                }
            }
            self.p_draw[i] = rng.uniform();
            bounds.repair(cand, *handler, None, rng.as_mut());
        }
    }
}

impl Engine for Ba {
    fn core(&self) -> &Core {
        &self.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::Ba
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn evaluations_per_iteration(&self) -> u64 {
        match self.mode {
            Mode::Opytimizer214 => 2 * self.core.n as u64,
            Mode::Canonical => self.core.n as u64,
        }
    }

    fn prepare(&mut self) -> Batch {
        match self.phase {
            Phase::Init | Phase::Rescore => Batch::Population,
            Phase::Bat(i) => {
                self.study_move(i);
                Batch::Row(i)
            }
            Phase::Candidates => {
                self.canonical_moves();
                Batch::Scratch(self.core.n)
            }
        }
    }

    fn absorb(&mut self, _batch: Batch, fitness: &[f64]) -> Progress {
        let (n, d) = (self.core.n, self.core.dim);
        let t = self.core.iterations as f64;
        let BaParams { a, r, .. } = self.params;
        match self.phase {
            Phase::Init | Phase::Rescore => {
                for (i, &f) in fitness.iter().enumerate() {
                    self.core.fit[i] = f;
                    self.core.offer_row(i, f);
                }
                let first = self.phase == Phase::Init;
                self.phase = if self.mode == Mode::Opytimizer214 {
                    Phase::Bat(0)
                } else {
                    Phase::Candidates
                };
                if first {
                    Progress::Initialized
                } else {
                    Progress::Iteration
                }
            }
            Phase::Bat(i) => {
                let f = fitness[0];
                self.core.fit[i] = f;
                if self.p_draw[i] < self.loudness[i] && f < self.local_best_fit {
                    self.local_best.copy_from_slice(self.core.row(i));
                    self.local_best_fit = f;
                    self.pulse[i] = r * (1.0 - (-DECAY * t).exp());
                    self.loudness[i] = a * DECAY;
                }
                self.phase = if i + 1 < n {
                    Phase::Bat(i + 1)
                } else {
                    Phase::Rescore
                };
                Progress::Batch
            }
            Phase::Candidates => {
                for (i, &f) in fitness.iter().enumerate() {
                    let c = &mut self.core;
                    Core::offer(
                        &mut c.best_pos,
                        &mut c.best_fit,
                        &mut c.has_best,
                        &c.scratch[i * d..(i + 1) * d],
                        f,
                    );
                    if self.p_draw[i] < self.loudness[i] && f <= c.fit[i] {
                        c.pos[i * d..(i + 1) * d].copy_from_slice(&c.scratch[i * d..(i + 1) * d]);
                        c.fit[i] = f;
                        self.loudness[i] *= DECAY;
                        self.pulse[i] = r * (1.0 - (-DECAY * (t + 1.0)).exp());
                    }
                }
                Progress::Iteration
            }
        }
    }

    fn save_extra(&self, w: &mut Writer) {
        let (tag, index) = match self.phase {
            Phase::Init => (0, 0),
            Phase::Bat(i) => (1, i),
            Phase::Rescore => (2, 0),
            Phase::Candidates => (3, 0),
        };
        w.u8(tag);
        w.u64(index as u64);
        w.f32s(&self.vel);
        w.f64s(&self.loudness);
        w.f64s(&self.pulse);
        w.f64s(&self.p_draw);
        w.f32s(&self.local_best);
        w.f64(self.local_best_fit);
    }

    fn load_extra(&mut self, r: &mut Reader) -> Result<(), SearchError> {
        let (tag, index) = (r.u8()?, r.u64()? as usize);
        self.phase = match tag {
            0 => Phase::Init,
            1 if index < self.core.n => Phase::Bat(index),
            2 => Phase::Rescore,
            3 => Phase::Candidates,
            v => return Err(invalid_phase("ba", v)),
        };
        r.f32s_into("velocity", &mut self.vel)?;
        r.f64s_into("loudness", &mut self.loudness)?;
        r.f64s_into("pulse rate", &mut self.pulse)?;
        r.f64s_into("pulse draw", &mut self.p_draw)?;
        r.f32s_into("local best", &mut self.local_best)?;
        self.local_best_fit = r.f64()?;
        Ok(())
    }
}
