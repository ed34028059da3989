//! Genetic algorithm (GA) on real-valued genes.
//!
//! # Rules
//!
//! `k = floor(p_selection * P)`, rounded up to even, parents are selected
//! and paired in order, and each pair makes two children.
//!
//! `opytimizer-2.1.4` mode:
//! 1. Roulette selection without replacement on inverted fitness
//!    `max f - f_i + 1e-32`, done as NumPy 1.x `choice(replace=False, p)`
//!    does it. Each round draws `k - found` uniforms and maps each through
//!    the cumulative distribution, keeping first occurrences. The chosen
//!    indices get probability zero, and rounds repeat until `k` are found.
//! 2. Per pair, one uniform `u`. If `u < p_crossover`, one more uniform
//!    `beta` and the children are `beta a + (1 - beta) b` and
//!    `beta b + (1 - beta) a`; otherwise they are copies of the parents.
//! 3. Per gene, for the first and then the second child: a uniform, and if
//!    it is below `p_mutation`, the gene is multiplied by a standard normal
//!    draw. On a narrow box this pulls genes toward the bound nearest zero.
//! 4. The children are brought into the box and scored (one batch of `k`).
//! 5. (mu + lambda) survival: parents and children sorted by fitness (stable,
//!    non-finite last), the first `P` kept.
//! 6. The survivors are scored again (one batch of `P`), as the library's
//!    outer loop does.
//!
//! `canonical` mode: binary tournament selection, BLX-0.5 crossover with one
//! uniform per gene and child (applied to a pair with probability
//! `p_crossover`), additive Gaussian mutation with probability `p_mutation`
//! per gene and standard deviation `mutation_scale` times the interval
//! width, then the same (mu + lambda) survival without re-scoring.
//!
//! # Evaluations
//!
//! `P` for the initial population, then `k + P` per iteration in
//! `opytimizer-2.1.4` mode and `k` in `canonical` mode.
//!
//! # Measured quality (canonical, 30 dimensions, P = 30, seed 1)
//!
//! GA reaches below 2.0 on the sphere in `[-5.12, 5.12]^30`, and on the
//! sphere shifted to 2.5, within 30,000 evaluations (see
//! `canonical_ga_sphere` in `tests/functions.rs`).

use crate::checkpoint::{Reader, Writer};
use crate::error::SearchError;
use crate::optimizer::{
    check_param, invalid_phase, rows_per_group, Algorithm, Batch, Core, Engine, Mode, Progress,
    Settings,
};
use crate::rng::RandomSource;

/// GA hyperparameters. The defaults are the study's, plus a mutation scale
/// for canonical mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaParams {
    /// Fraction of the population selected as parents (default 0.75).
    pub p_selection: f64,
    /// Probability of mutating a gene (default 0.25).
    pub p_mutation: f64,
    /// Probability that a pair is crossed over (default 0.5).
    pub p_crossover: f64,
    /// Canonical mode: mutation standard deviation as a fraction of the interval width (default 0.1).
    pub mutation_scale: f64,
}

impl Default for GaParams {
    fn default() -> Self {
        GaParams {
            p_selection: 0.75,
            p_mutation: 0.25,
            p_crossover: 0.5,
            mutation_scale: 0.1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Init,
    Children,
    Rescore,
}

/// The genetic algorithm.
pub struct Ga {
    core: Core,
    mode: Mode,
    params: GaParams,
    k: usize,
    phase: Phase,
    selected: Vec<usize>,
    probs: Vec<f64>,
    cdf: Vec<f64>,
    round: Vec<usize>,
    order: Vec<usize>,
    merged_fit: Vec<f64>,
    child_fit: Vec<f64>,
    next_pos: Vec<f32>,
    /// The uniform and normal draws of one group of pairs (canonical mode)
    /// or one pair (study mode).
    draws: Vec<f32>,
    /// Canonical mode: whether each pair is crossed over.
    crossed: Vec<bool>,
    /// Canonical mutation step per dimension, `mutation_scale` times the interval width.
    mutation_step: Vec<f32>,
}

/// Returns how many pairs canonical mode breeds per group (one draw per
/// gene of each child), see [`rows_per_group`].
fn group_pairs(d: usize, k: usize) -> usize {
    rows_per_group(2 * d, k / 2)
}

/// Returns the number of children: `floor(p_selection * n)` rounded up to even.
fn child_count(n: usize, p_selection: f64) -> usize {
    let k = (n as f64 * p_selection) as usize;
    k + k % 2
}

impl Ga {
    /// Builds the GA.
    ///
    /// # Errors
    ///
    /// Probabilities outside `[0, 1]`, a negative mutation scale, a
    /// population below 2 or one where the number of parents exceeds the
    /// population, and the shared checks of [`Settings`].
    pub fn new(settings: &Settings, rng: Box<dyn RandomSource>) -> Result<Self, SearchError> {
        let p = settings.ga;
        let prob = |v: f64| (0.0..=1.0).contains(&v);
        check_param(
            "p_selection",
            p.p_selection,
            prob(p.p_selection),
            "a probability in [0, 1]",
        )?;
        check_param(
            "p_mutation",
            p.p_mutation,
            prob(p.p_mutation),
            "a probability in [0, 1]",
        )?;
        check_param(
            "p_crossover",
            p.p_crossover,
            prob(p.p_crossover),
            "a probability in [0, 1]",
        )?;
        check_param(
            "mutation_scale",
            p.mutation_scale,
            p.mutation_scale >= 0.0,
            "a finite value >= 0",
        )?;
        let n = settings.population;
        let k = child_count(n, p.p_selection);
        if settings.mode == Mode::Opytimizer214 && k > n {
            return Err(SearchError::InvalidPopulation {
                algorithm: "ga",
                size: n,
                reason: "must be at least the number of selected parents (p_selection * P rounded up to even)",
            });
        }
        let core = Core::new(settings, Algorithm::Ga, rng, k)?;
        let d = core.dim;
        // Canonical mode draws a group of pairs at once, study mode one
        // pair at a time.
        let draws_len = if settings.mode == Mode::Canonical {
            2 * group_pairs(d, k) * d
        } else {
            2 * d
        };
        Ok(Ga {
            mode: settings.mode,
            params: p,
            k,
            phase: Phase::Init,
            selected: vec![0; k],
            probs: vec![0.0; n],
            cdf: vec![0.0; n],
            round: Vec::with_capacity(k),
            order: Vec::with_capacity(n + k),
            merged_fit: Vec::with_capacity(n + k),
            child_fit: vec![0.0; k],
            next_pos: vec![0.0; n * d],
            draws: vec![0.0; draws_len],
            crossed: Vec::with_capacity(k / 2),
            mutation_step: (0..d)
                .map(|j| (p.mutation_scale * core.bounds.width(j)) as f32)
                .collect(),
            core,
        })
    }

    /// Roulette without replacement, as NumPy 1.x `choice(n, k, p, replace=False)`.
    fn roulette(&mut self) {
        let n = self.core.n;
        let fit = &self.core.fit;
        // The library adds 1e-32 to every fitness first; in f64 this changes
        // nothing for fitness values far from zero, but it is kept to match.
        let max_finite = fit
            .iter()
            .copied()
            .filter(|f| f.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        let max_finite = if max_finite.is_finite() {
            max_finite + 1e-32
        } else {
            0.0
        };
        let mut total = 0.0;
        for (p, &f) in self.probs.iter_mut().zip(fit) {
            let f = if f.is_finite() { f + 1e-32 } else { max_finite };
            *p = max_finite - f + 1e-32;
            total += *p;
        }
        for p in &mut self.probs {
            *p /= total;
        }
        let mut found = 0;
        while found < self.k {
            let remaining = self.k - found;
            self.round.clear();
            let mut acc = 0.0;
            for j in 0..n {
                if self.selected[..found].contains(&j) {
                    self.probs[j] = 0.0;
                }
                acc += self.probs[j];
                self.cdf[j] = acc;
            }
            let last = self.cdf[n - 1];
            for c in &mut self.cdf {
                *c /= last;
            }
            for _ in 0..remaining {
                let x = self.core.rng.uniform();
                // searchsorted(side = "right"): the first index with cdf > x.
                let idx = self.cdf.partition_point(|&c| c <= x).min(n - 1);
                if !self.round.contains(&idx) {
                    self.round.push(idx);
                }
            }
            for &idx in &self.round {
                self.selected[found] = idx;
                found += 1;
            }
        }
    }

    fn tournament(&mut self) {
        let n = self.core.n;
        for s in 0..self.k {
            let a = self.core.rng.below(n);
            let b = self.core.rng.below(n);
            self.selected[s] = if self.core.fit[b] < self.core.fit[a] {
                b
            } else {
                a
            };
        }
    }

    /// Builds the `k` children into the scratch buffer.
    fn breed(&mut self) {
        if self.mode == Mode::Opytimizer214 {
            self.roulette();
            self.breed_study();
        } else {
            self.tournament();
            self.breed_canonical();
        }
        let d = self.core.dim;
        let Core {
            scratch,
            rng,
            bounds,
            handler,
            ..
        } = &mut self.core;
        for child in scratch[..self.k * d].chunks_exact_mut(d) {
            bounds.repair(child, *handler, None, rng.as_mut());
        }
    }

    /// Copies the parents of pair `pair` into its two children.
    fn copy_parents(&mut self, pair: usize) {
        let d = self.core.dim;
        let (fa, mo) = (self.selected[2 * pair], self.selected[2 * pair + 1]);
        let Core { pos, scratch, .. } = &mut self.core;
        let (ca, cb) = scratch[2 * pair * d..(2 * pair + 2) * d].split_at_mut(d);
        ca.copy_from_slice(&pos[fa * d..(fa + 1) * d]);
        cb.copy_from_slice(&pos[mo * d..(mo + 1) * d]);
    }

    /// Breeds the children with the library's crossover and multiplicative
    /// mutation, making its scalar draws in its order: per pair, per gene.
    fn breed_study(&mut self) {
        let d = self.core.dim;
        let GaParams {
            p_crossover,
            p_mutation,
            ..
        } = self.params;
        for pair in 0..self.k / 2 {
            self.copy_parents(pair);
            let (fa, mo) = (self.selected[2 * pair], self.selected[2 * pair + 1]);
            let Core {
                pos, scratch, rng, ..
            } = &mut self.core;
            let (ca, cb) = scratch[2 * pair * d..(2 * pair + 2) * d].split_at_mut(d);
            let father = &pos[fa * d..(fa + 1) * d];
            let mother = &pos[mo * d..(mo + 1) * d];
            if rng.uniform() < p_crossover {
                let beta = rng.uniform() as f32;
                for j in 0..d {
                    ca[j] = beta * father[j] + (1.0 - beta) * mother[j];
                    cb[j] = beta * mother[j] + (1.0 - beta) * father[j];
                }
            }
            // Per gene, first child then second: a uniform, and a normal
            // factor when it is below p_mutation (else the factor is 1,
            // which leaves the gene unchanged bit for bit).
            let factors = &mut self.draws[..2 * d];
            rng.fill_sparse_normal(p_mutation, 1.0, factors);
            for (j, f) in factors.chunks_exact(2).enumerate() {
                ca[j] *= f[0];
                cb[j] *= f[1];
            }
        }
    }

    /// Breeds the children with BLX-0.5 crossover and additive Gaussian
    /// mutation. One uniform per pair decides the crossovers. Then each
    /// group of pairs (see [`group_pairs`]) makes each kind of draw in one
    /// call, so large groups fill in parallel chunks. The group takes one
    /// uniform per gene and child of its crossed pairs,
    /// then the mutation draws of every gene of every child with
    /// [`RandomSource::fill_sparse_normal`] (a gene moves by a normal draw
    /// times its step with probability `p_mutation`).
    fn breed_canonical(&mut self) {
        let (d, k) = (self.core.dim, self.k);
        let GaParams {
            p_crossover,
            p_mutation,
            ..
        } = self.params;
        self.crossed.clear();
        for _ in 0..k / 2 {
            let crossed = self.core.rng.uniform() < p_crossover;
            self.crossed.push(crossed);
        }
        for pair in 0..k / 2 {
            self.copy_parents(pair);
        }
        let Core {
            pos, scratch, rng, ..
        } = &mut self.core;
        let group = group_pairs(d, k);
        for first in (0..k / 2).step_by(group) {
            let pairs = first..(first + group).min(k / 2);
            let crossed = &self.crossed[pairs.clone()];
            let crossed_pairs = crossed.iter().filter(|&&c| c).count();
            let draws = &mut self.draws[..crossed_pairs * 2 * d];
            rng.fill_uniform_fast(draws);
            let crossed = pairs.clone().zip(crossed).filter(|&(_, &c)| c);
            for ((pair, _), u) in crossed.zip(draws.chunks_exact(2 * d)) {
                let (fa, mo) = (self.selected[2 * pair], self.selected[2 * pair + 1]);
                let father = &pos[fa * d..(fa + 1) * d];
                let mother = &pos[mo * d..(mo + 1) * d];
                let (ca, cb) = scratch[2 * pair * d..(2 * pair + 2) * d].split_at_mut(d);
                let (ua, ub) = u.split_at(d);
                for j in 0..d {
                    let (lo, hi) = (father[j].min(mother[j]), father[j].max(mother[j]));
                    let spread = hi - lo;
                    let (a, b) = (lo - 0.5 * spread, hi + 0.5 * spread);
                    ca[j] = a + ua[j] * (b - a);
                    cb[j] = a + ub[j] * (b - a);
                }
            }

            let children = &mut scratch[2 * pairs.start * d..2 * pairs.end * d];
            let normals = &mut self.draws[..children.len()];
            rng.fill_sparse_normal(p_mutation, 0.0, normals);
            for (child, draws) in children.chunks_exact_mut(d).zip(normals.chunks_exact(d)) {
                for ((gene, &z), &step) in child.iter_mut().zip(draws).zip(&self.mutation_step) {
                    *gene += z * step;
                }
            }
        }
    }

    /// (mu + lambda) survival of parents and children, stable by fitness.
    fn survive(&mut self) {
        let (n, d, k) = (self.core.n, self.core.dim, self.k);
        self.merged_fit.clear();
        self.merged_fit.extend_from_slice(&self.core.fit);
        self.merged_fit.extend_from_slice(&self.child_fit);
        self.order.clear();
        self.order.extend(0..n + k);
        let fit = &self.merged_fit;
        // Ties are broken by index, which makes the unstable sort stable
        // without the allocation of `sort_by`.
        self.order
            .sort_unstable_by(|&a, &b| fit[a].total_cmp(&fit[b]).then(a.cmp(&b)));
        for (slot, &src) in self.order[..n].iter().enumerate() {
            let row = if src < n {
                &self.core.pos[src * d..(src + 1) * d]
            } else {
                &self.core.scratch[(src - n) * d..(src - n + 1) * d]
            };
            self.next_pos[slot * d..(slot + 1) * d].copy_from_slice(row);
        }
        for slot in 0..n {
            self.core.fit[slot] = self.merged_fit[self.order[slot]];
        }
        std::mem::swap(&mut self.core.pos, &mut self.next_pos);
    }
}

impl Engine for Ga {
    fn core(&self) -> &Core {
        &self.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::Ga
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn evaluations_per_iteration(&self) -> u64 {
        match self.mode {
            Mode::Opytimizer214 => (self.k + self.core.n) as u64,
            Mode::Canonical => self.k as u64,
        }
    }

    fn prepare(&mut self) -> Batch {
        match self.phase {
            Phase::Init | Phase::Rescore => Batch::Population,
            Phase::Children => {
                self.breed();
                Batch::Scratch(self.k)
            }
        }
    }

    fn absorb(&mut self, _batch: Batch, fitness: &[f64]) -> Progress {
        match self.phase {
            Phase::Init => {
                for (i, &f) in fitness.iter().enumerate() {
                    self.core.fit[i] = f;
                    self.core.offer_row(i, f);
                }
                self.phase = Phase::Children;
                Progress::Initialized
            }
            Phase::Children => {
                self.child_fit.copy_from_slice(fitness);
                if self.mode == Mode::Canonical {
                    let d = self.core.dim;
                    let c = &mut self.core;
                    for (i, &f) in fitness.iter().enumerate() {
                        Core::offer(
                            &mut c.best_pos,
                            &mut c.best_fit,
                            &mut c.has_best,
                            &c.scratch[i * d..(i + 1) * d],
                            f,
                        );
                    }
                }
                self.survive();
                if self.mode == Mode::Opytimizer214 {
                    self.phase = Phase::Rescore;
                    Progress::Batch
                } else {
                    Progress::Iteration
                }
            }
            Phase::Rescore => {
                for (i, &f) in fitness.iter().enumerate() {
                    self.core.fit[i] = f;
                    self.core.offer_row(i, f);
                }
                self.phase = Phase::Children;
                Progress::Iteration
            }
        }
    }

    fn save_extra(&self, w: &mut Writer) {
        w.u8(self.phase as u8);
    }

    fn load_extra(&mut self, r: &mut Reader) -> Result<(), SearchError> {
        self.phase = match r.u8()? {
            0 => Phase::Init,
            1 => Phase::Children,
            2 => Phase::Rescore,
            v => return Err(invalid_phase("ga", v)),
        };
        Ok(())
    }
}
