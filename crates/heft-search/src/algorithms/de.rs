//! Differential evolution (DE), rand/1/bin.
//!
//! # Rules
//!
//! Agent `i` gets three distinct donors `a, b, c` other than `i`, a forced
//! index `R` in `0..D`, and a uniform `u_j` per dimension. The trial takes
//! `x_a + F (x_b - x_c)` where `u_j < CR` or `j == R`, and `x_i` elsewhere.
//! The trial is then brought into the box.
//!
//! Donors are drawn with a partial Fisher-Yates shuffle of the other
//! indices (three `below` draws), then `R` (one `below` draw), then the
//! `D` uniforms. In `canonical` mode the uniforms of a group of agents are
//! drawn first, in one call that fills large groups in parallel, then each
//! agent's donors and `R`.
//!
//! `opytimizer-2.1.4` mode is asynchronous: agents are processed in order,
//! each trial is scored alone (a batch of one), and a strictly better trial
//! replaces its agent at once, so later agents may use it as a donor. The
//! global best is not updated by the trials. After the `P` trials the whole
//! population is scored again (one batch of `P`) and the best is updated
//! from that, as the library's outer loop does.
//!
//! `canonical` mode is synchronous: all `P` trials are built from the same
//! population and scored in one batch, and a trial replaces its agent when
//! its fitness is lower or equal.
//!
//! # Evaluations
//!
//! `P` for the initial population, then `2P` per iteration in
//! `opytimizer-2.1.4` mode (`P` batches of one and one batch of `P`) and `P`
//! per iteration in `canonical` mode.
//!
//! # Measured quality (canonical, 30 dimensions, P = 30, seed 1)
//!
//! Within 30,000 evaluations DE reaches below 1e-3 on the sphere in
//! `[-5.12, 5.12]^30` and on the sphere shifted to 2.5, below 100 on
//! Rosenbrock and below 0.3 on Ackley, where the seeds 1 to 20 give a
//! median of 0.039 (see `canonical_de_sphere` in `tests/functions.rs`).

use crate::checkpoint::{Reader, Writer};
use crate::error::SearchError;
use crate::optimizer::{
    check_param, invalid_phase, rows_per_group, Algorithm, Batch, Core, Engine, Mode, Progress,
    Settings,
};
use crate::rng::RandomSource;

/// DE hyperparameters. The defaults are the study's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeParams {
    /// Crossover rate (default 0.9).
    pub cr: f64,
    /// Differential weight (default 0.7).
    pub f: f64,
}

impl Default for DeParams {
    fn default() -> Self {
        DeParams { cr: 0.9, f: 0.7 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Init,
    /// Opytimizer 2.1.4: the trial of this agent is next.
    Trial(usize),
    /// Opytimizer 2.1.4: the population is scored again.
    Rescore,
    /// Canonical: the next batch is all trials.
    Trials,
}

/// Differential evolution.
pub struct De {
    core: Core,
    mode: Mode,
    cr: f64,
    f: f32,
    phase: Phase,
    others: Vec<usize>,
    draws: Vec<f32>,
}

impl De {
    /// Builds DE.
    ///
    /// # Errors
    ///
    /// `cr` outside `[0, 1]`, a negative or non-finite `f`, a population
    /// below 4, and the shared checks of [`Settings`].
    pub fn new(settings: &Settings, rng: Box<dyn RandomSource>) -> Result<Self, SearchError> {
        let p = settings.de;
        check_param(
            "cr",
            p.cr,
            (0.0..=1.0).contains(&p.cr),
            "a probability in [0, 1]",
        )?;
        check_param("f", p.f, p.f >= 0.0, "a finite value >= 0")?;
        let rows = if settings.mode == Mode::Opytimizer214 {
            1
        } else {
            settings.population
        };
        let core = Core::new(settings, Algorithm::De, rng, rows)?;
        let (n, d) = (core.n, core.dim);
        Ok(De {
            mode: settings.mode,
            cr: p.cr,
            f: p.f as f32,
            phase: Phase::Init,
            others: vec![0; n],
            draws: vec![
                0.0;
                if settings.mode == Mode::Canonical {
                    rows_per_group(d, n) * d
                } else {
                    d
                }
            ],
            core,
        })
    }

    /// Writes the trial of agent `i` into scratch row `slot`.
    fn trial(&mut self, i: usize, slot: usize) {
        let (n, d) = (self.core.n, self.core.dim);
        self.others.clear();
        self.others.extend((0..n).filter(|&j| j != i));
        let m = n - 1;
        for k in 0..3 {
            let pick = k + self.core.rng.below(m - k);
            self.others.swap(k, pick);
        }
        let (a, b, c) = (self.others[0], self.others[1], self.others[2]);
        let forced = self.core.rng.below(d);
        let Core {
            pos,
            scratch,
            rng,
            bounds,
            handler,
            ..
        } = &mut self.core;
        let t = &mut scratch[slot * d..(slot + 1) * d];
        let (xa, xb, xc, xi) = (
            &pos[a * d..(a + 1) * d],
            &pos[b * d..(b + 1) * d],
            &pos[c * d..(c + 1) * d],
            &pos[i * d..(i + 1) * d],
        );
        if self.mode == Mode::Opytimizer214 {
            // One uniform per gene in gene order, as scalar draws would
            // give, taken in one call rather than one virtual call each.
            // The comparison in f32 differs from the f64 one only for
            // draws within one f32 step of `cr`.
            let draws = &mut self.draws[..d];
            rng.fill_uniform(draws);
            let cr = self.cr as f32;
            for j in 0..d {
                t[j] = if draws[j] < cr || j == forced {
                    xa[j] + self.f * (xb[j] - xc[j])
                } else {
                    xi[j]
                };
            }
        } else {
            // The group's uniforms, drawn by `prepare`.
            let group = rows_per_group(d, n);
            let draws = &self.draws[(i % group) * d..][..d];
            let (cr, f) = (self.cr as f32, self.f);
            let genes = t
                .iter_mut()
                .zip(draws)
                .zip(xa.iter().zip(xb).zip(xc).zip(xi));
            for ((tj, &u), (((&a, &b), &c), &x)) in genes {
                *tj = if u < cr { a + f * (b - c) } else { x };
            }
            // The forced gene after the loop, which then runs branch-free.
            t[forced] = xa[forced] + f * (xb[forced] - xc[forced]);
        }
        bounds.repair(t, *handler, None, rng.as_mut());
    }

    fn replace(&mut self, i: usize, slot: usize, f: f64) {
        let d = self.core.dim;
        let c = &mut self.core;
        c.pos[i * d..(i + 1) * d].copy_from_slice(&c.scratch[slot * d..(slot + 1) * d]);
        c.fit[i] = f;
    }
}

impl Engine for De {
    fn core(&self) -> &Core {
        &self.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::De
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
            Phase::Trial(i) => {
                self.trial(i, 0);
                Batch::Scratch(1)
            }
            Phase::Trials => {
                let (n, d) = (self.core.n, self.core.dim);
                let group = rows_per_group(d, n);
                for first in (0..n).step_by(group) {
                    let rows = group.min(n - first);
                    self.core.rng.fill_uniform_fast(&mut self.draws[..rows * d]);
                    for i in first..first + rows {
                        self.trial(i, i);
                    }
                }
                Batch::Scratch(n)
            }
        }
    }

    fn absorb(&mut self, _batch: Batch, fitness: &[f64]) -> Progress {
        let n = self.core.n;
        match self.phase {
            Phase::Init | Phase::Rescore => {
                for (i, &f) in fitness.iter().enumerate() {
                    self.core.fit[i] = f;
                    self.core.offer_row(i, f);
                }
                let first = self.phase == Phase::Init;
                self.phase = if self.mode == Mode::Opytimizer214 {
                    Phase::Trial(0)
                } else {
                    Phase::Trials
                };
                if first {
                    Progress::Initialized
                } else {
                    Progress::Iteration
                }
            }
            Phase::Trial(i) => {
                if fitness[0] < self.core.fit[i] {
                    self.replace(i, 0, fitness[0]);
                }
                self.phase = if i + 1 < n {
                    Phase::Trial(i + 1)
                } else {
                    Phase::Rescore
                };
                Progress::Batch
            }
            Phase::Trials => {
                for (i, &f) in fitness.iter().enumerate() {
                    if f <= self.core.fit[i] {
                        self.replace(i, i, f);
                        self.core.offer_row(i, f);
                    }
                }
                Progress::Iteration
            }
        }
    }

    fn save_extra(&self, w: &mut Writer) {
        let (tag, index) = match self.phase {
            Phase::Init => (0, 0),
            Phase::Trial(i) => (1, i),
            Phase::Rescore => (2, 0),
            Phase::Trials => (3, 0),
        };
        w.u8(tag);
        w.u64(index as u64);
    }

    fn load_extra(&mut self, r: &mut Reader) -> Result<(), SearchError> {
        let (tag, index) = (r.u8()?, r.u64()? as usize);
        self.phase = match tag {
            0 => Phase::Init,
            1 if index < self.core.n => Phase::Trial(index),
            2 => Phase::Rescore,
            3 => Phase::Trials,
            v => return Err(invalid_phase("de", v)),
        };
        Ok(())
    }
}
