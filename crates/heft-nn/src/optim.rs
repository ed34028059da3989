//! Gradient optimisers with `torch.optim` semantics: [`Adam`] and [`Sgd`].
//!
//! Both update a list of flat parameter slices from a list of gradient
//! slices of the same lengths, in the same order on every step (for an
//! [`Mlp`](crate::Mlp), [`Mlp::parameters_mut`](crate::Mlp::parameters_mut)
//! and [`MlpGrads::as_slices`](crate::MlpGrads::as_slices)).
//!
//! Adam (`torch.optim.Adam`, `amsgrad = false`), at step `t` starting at 1:
//!
//! ```text
//! g = grad + weight_decay * p
//! m = m + (1 - beta1) * (g - m)
//! v = beta2 * v + (1 - beta2) * g * g
//! p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! SGD (`torch.optim.SGD`): `g = grad + weight_decay * p`; with momentum
//! `mu > 0` the buffer is `b = g` on the first step and
//! `b = mu * b + (1 - dampening) * g` after, and `g = b` (or `g + mu * b`
//! with Nesterov); then `p = p - lr * g`.
//!
//! ```
//! use heft_nn::{Sgd, SgdConfig};
//!
//! let mut sgd = Sgd::new(SgdConfig { lr: 0.5, momentum: 0.9, ..SgdConfig::default() })?;
//! let mut p = vec![1.0f32];
//! sgd.step(&mut [&mut p[..]], &[&[2.0][..]])?; // b = 2, p = 1 - 0.5 * 2
//! assert_eq!(p, [0.0]);
//! sgd.step(&mut [&mut p[..]], &[&[2.0][..]])?; // b = 0.9 * 2 + 2 = 3.8, p = 0 - 1.9
//! assert_eq!(p, [-1.9]);
//! # Ok::<(), heft_nn::NnError>(())
//! ```

use crate::error::NnError;

/// Settings of [`Adam`]. The `Default` is PyTorch's: lr `1e-3`, betas
/// `(0.9, 0.999)`, eps `1e-8`, no weight decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate, greater than 0.
    pub lr: f32,
    /// Decay of the first-moment average, in `[0, 1)`.
    pub beta1: f32,
    /// Decay of the second-moment average, in `[0, 1)`.
    pub beta2: f32,
    /// Term added to the denominator, at least 0.
    pub eps: f32,
    /// L2 penalty added to the gradient (not decoupled as in AdamW), at
    /// least 0.
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Settings of [`Sgd`]. The `Default` is that of `torch.optim.SGD` in
/// PyTorch 2.2 and later: lr `1e-3`, no momentum, dampening or weight
/// decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate, greater than 0.
    pub lr: f32,
    /// Momentum factor, at least 0.
    pub momentum: f32,
    /// Dampening of the gradient in the momentum buffer, at least 0.
    pub dampening: f32,
    /// L2 penalty added to the gradient, at least 0.
    pub weight_decay: f32,
    /// Nesterov momentum; needs `momentum > 0` and `dampening == 0`.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

fn check_range(name: &'static str, value: f32, low: f32, high: f32) -> Result<(), NnError> {
    if value.is_finite() && value >= low && value < high {
        Ok(())
    } else {
        Err(NnError::config(
            name,
            format!("{value} is outside [{low}, {high})"),
        ))
    }
}

fn check_lr(lr: f32) -> Result<(), NnError> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(NnError::config(
            "lr",
            format!("the learning rate must be finite and greater than 0, but it is {lr}"),
        ))
    }
}

/// Checks that `params` and `grads` pair up.
fn check_lists(op: &'static str, params: &[&mut [f32]], grads: &[&[f32]]) -> Result<(), NnError> {
    if params.len() != grads.len() {
        return Err(NnError::shape(
            op,
            format!(
                "there are {} parameters but {} gradients; pass them in the same order",
                params.len(),
                grads.len()
            ),
        ));
    }
    for (i, (p, g)) in params.iter().zip(grads).enumerate() {
        if p.len() != g.len() {
            return Err(NnError::shape(
                op,
                format!(
                    "parameter {i} has {} elements but its gradient has {}",
                    p.len(),
                    g.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that the optimiser state (one buffer per parameter, created on
/// the first step) matches the parameter lengths `lens`, without
/// allocating unless they differ.
fn check_state(
    op: &'static str,
    state: &[Vec<f32>],
    lens: impl Iterator<Item = usize> + Clone,
) -> Result<(), NnError> {
    let matches = state.len() == lens.clone().count()
        && state.iter().zip(lens.clone()).all(|(s, n)| s.len() == n);
    if matches {
        return Ok(());
    }
    let expected: Vec<usize> = state.iter().map(Vec::len).collect();
    let given: Vec<usize> = lens.collect();
    Err(NnError::shape(
        op,
        format!(
            "the optimiser state was created for parameter lengths {expected:?} but this \
             step passes {given:?}; use one optimiser per model"
        ),
    ))
}

/// Scalars of one Adam step, shared by every parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamScalars {
    step_size: f32,
    bias_correction2_sqrt: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
}

/// Scalars of one step, returned by [`Optimiser::begin_step`] and passed to
/// [`Optimiser::update`] for every parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StepScalars {
    Adam(AdamScalars),
    /// `first` is true on the first step, which seeds the momentum buffers.
    Sgd {
        first: bool,
    },
}

/// The Adam optimiser with `torch.optim.Adam` semantics.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    config: AdamConfig,
    step: u64,
    /// First moments, one buffer per parameter; empty before the first step.
    exp_avg: Vec<Vec<f32>>,
    /// Second moments, one buffer per parameter.
    exp_avg_sq: Vec<Vec<f32>>,
}

impl Adam {
    /// Creates an optimiser whose state is created on the first step.
    ///
    /// # Errors
    ///
    /// [`NnError::InvalidConfig`] for a setting outside its range.
    pub fn new(config: AdamConfig) -> Result<Self, NnError> {
        check_lr(config.lr)?;
        check_range("beta1", config.beta1, 0.0, 1.0)?;
        check_range("beta2", config.beta2, 0.0, 1.0)?;
        check_range("eps", config.eps, 0.0, f32::INFINITY)?;
        check_range("weight_decay", config.weight_decay, 0.0, f32::INFINITY)?;
        Ok(Adam {
            config,
            step: 0,
            exp_avg: Vec::new(),
            exp_avg_sq: Vec::new(),
        })
    }

    /// Returns the settings.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Returns the number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Updates `params` in place from `grads`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the lists differ in length, a gradient differs
    /// in length from its parameter, or the parameters differ from those of
    /// earlier steps. Nothing is changed then.
    pub fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]) -> Result<(), NnError> {
        check_lists("Adam::step", params, grads)?;
        let scalars = self.begin_step(params.iter().map(|p| p.len()))?;
        for (index, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            self.update(index, &scalars, p, g);
        }
        Ok(())
    }

    /// Checks or creates the state for parameters of lengths `lens`,
    /// counts the step and returns its scalars. Nothing changes on error.
    pub(crate) fn begin_step(
        &mut self,
        lens: impl Iterator<Item = usize> + Clone,
    ) -> Result<AdamScalars, NnError> {
        if self.step > 0 {
            check_state("Adam::step", &self.exp_avg, lens)?;
        } else {
            self.exp_avg = lens.map(|n| vec![0.0; n]).collect();
            self.exp_avg_sq = self.exp_avg.clone();
        }
        self.step += 1;

        let c = self.config;
        // PyTorch computes these scalars in Python floats (f64) and the
        // tensor arithmetic in f32; heft does the same.
        let t = self.step as f64;
        let bias_correction1 = 1.0 - f64::from(c.beta1).powf(t);
        let bias_correction2 = 1.0 - f64::from(c.beta2).powf(t);
        Ok(AdamScalars {
            step_size: (f64::from(c.lr) / bias_correction1) as f32,
            bias_correction2_sqrt: bias_correction2.sqrt() as f32,
            one_minus_beta1: (1.0 - f64::from(c.beta1)) as f32,
            one_minus_beta2: (1.0 - f64::from(c.beta2)) as f32,
        })
    }

    /// Updates parameter number `index` of the step begun by
    /// [`Adam::begin_step`]. The lengths were checked there. A parameter
    /// of at least `2 * PARALLEL_CHUNK` elements is updated in chunks on
    /// the rayon pool. Each element gets the same arithmetic either way, so
    /// the result does not depend on the thread count.
    pub(crate) fn update(&mut self, index: usize, s: &AdamScalars, p: &mut [f32], g: &[f32]) {
        let c = self.config;
        let m = &mut self.exp_avg[index][..];
        let v = &mut self.exp_avg_sq[index][..];
        #[cfg(feature = "parallel")]
        if worth_threads(p.len()) {
            use rayon::prelude::*;
            p.par_chunks_mut(PARALLEL_CHUNK)
                .zip(g.par_chunks(PARALLEL_CHUNK))
                .zip(m.par_chunks_mut(PARALLEL_CHUNK))
                .zip(v.par_chunks_mut(PARALLEL_CHUNK))
                .for_each(|(((p, g), m), v)| adam_update(&c, s, p, g, m, v));
            return;
        }
        adam_update(&c, s, p, g, m, v);
    }
}

/// Elements per task when the optimiser updates a large parameter on the
/// rayon pool: about 0.5 MB of parameter, gradient and state, enough work
/// to outweigh the cost of handing a task to another thread.
#[cfg(feature = "parallel")]
const PARALLEL_CHUNK: usize = 1 << 15;

/// Reports whether a parameter of `len` elements is large enough to update
/// on more than one thread.
#[cfg(feature = "parallel")]
fn worth_threads(len: usize) -> bool {
    len >= 2 * PARALLEL_CHUNK && rayon::current_num_threads() > 1
}

/// Applies the Adam update to the elements `p` from `g`, with their
/// moments `m` and `v`.
fn adam_update(
    c: &AdamConfig,
    s: &AdamScalars,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
        let g = if c.weight_decay != 0.0 {
            g + c.weight_decay * *p
        } else {
            g
        };
        *m += s.one_minus_beta1 * (g - *m);
        *v = *v * c.beta2 + s.one_minus_beta2 * g * g;
        let denom = v.sqrt() / s.bias_correction2_sqrt + c.eps;
        *p += -s.step_size * (*m / denom);
    }
}

/// Stochastic gradient descent with momentum, with `torch.optim.SGD`
/// semantics.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    config: SgdConfig,
    /// Momentum buffers, one per parameter; empty before the first step or
    /// without momentum.
    momentum_buffers: Vec<Vec<f32>>,
    step: u64,
}

impl Sgd {
    /// Creates an optimiser whose momentum buffers are created on the first
    /// step.
    ///
    /// # Errors
    ///
    /// [`NnError::InvalidConfig`] for a setting outside its range, or
    /// Nesterov without momentum or with dampening.
    pub fn new(config: SgdConfig) -> Result<Self, NnError> {
        check_lr(config.lr)?;
        check_range("momentum", config.momentum, 0.0, f32::INFINITY)?;
        check_range("dampening", config.dampening, 0.0, f32::INFINITY)?;
        check_range("weight_decay", config.weight_decay, 0.0, f32::INFINITY)?;
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            return Err(NnError::config(
                "nesterov",
                format!(
                    "Nesterov momentum needs momentum > 0 and dampening = 0, but momentum is {} \
                     and dampening is {}",
                    config.momentum, config.dampening
                ),
            ));
        }
        Ok(Sgd {
            config,
            momentum_buffers: Vec::new(),
            step: 0,
        })
    }

    /// Returns the settings.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// Updates `params` in place from `grads`.
    ///
    /// # Errors
    ///
    /// As [`Adam::step`].
    pub fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]) -> Result<(), NnError> {
        check_lists("Sgd::step", params, grads)?;
        let first = self.begin_step(params.iter().map(|p| p.len()))?;
        for (index, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            self.update(index, first, p, g);
        }
        Ok(())
    }

    /// Checks or creates the momentum buffers for parameters of lengths
    /// `lens` and counts the step. Returns true on the first step. Nothing
    /// changes on error.
    pub(crate) fn begin_step(
        &mut self,
        lens: impl Iterator<Item = usize> + Clone,
    ) -> Result<bool, NnError> {
        let use_momentum = self.config.momentum != 0.0;
        let first = self.step == 0;
        if use_momentum {
            if first {
                self.momentum_buffers = lens.map(|n| vec![0.0; n]).collect();
            } else {
                check_state("Sgd::step", &self.momentum_buffers, lens)?;
            }
        }
        self.step += 1;
        Ok(first)
    }

    /// Updates parameter number `index` of the step begun by
    /// [`Sgd::begin_step`]. The lengths were checked there. Large
    /// parameters are updated in chunks on the rayon pool, as in
    /// [`Adam::update`].
    pub(crate) fn update(&mut self, index: usize, first: bool, p: &mut [f32], g: &[f32]) {
        let c = self.config;
        let buffer: &mut [f32] = match self.momentum_buffers.get_mut(index) {
            Some(buffer) if c.momentum != 0.0 => buffer,
            _ => &mut [],
        };
        #[cfg(feature = "parallel")]
        if worth_threads(p.len()) {
            use rayon::prelude::*;
            let tasks = p
                .par_chunks_mut(PARALLEL_CHUNK)
                .zip(g.par_chunks(PARALLEL_CHUNK));
            if buffer.is_empty() {
                tasks.for_each(|(p, g)| sgd_update(&c, first, p, g, &mut []));
            } else {
                tasks
                    .zip(buffer.par_chunks_mut(PARALLEL_CHUNK))
                    .for_each(|((p, g), b)| sgd_update(&c, first, p, g, b));
            }
            return;
        }
        sgd_update(&c, first, p, g, buffer);
    }
}

/// Applies the SGD update to the elements `p` from `g`, with their
/// momentum buffer `momentum` (empty without momentum).
fn sgd_update(c: &SgdConfig, first: bool, p: &mut [f32], g: &[f32], momentum: &mut [f32]) {
    let use_momentum = c.momentum != 0.0;
    for (j, (p, &g)) in p.iter_mut().zip(g).enumerate() {
        let mut d = if c.weight_decay != 0.0 {
            g + c.weight_decay * *p
        } else {
            g
        };
        if use_momentum {
            let b = &mut momentum[j];
            *b = if first {
                d
            } else {
                c.momentum * *b + (1.0 - c.dampening) * d
            };
            d = if c.nesterov { d + c.momentum * *b } else { *b };
        }
        *p -= c.lr * d;
    }
}

/// A gradient optimiser chosen at run time, for the training loop.
#[derive(Clone, Debug, PartialEq)]
pub enum Optimiser {
    /// Adam.
    Adam(Adam),
    /// SGD with optional momentum.
    Sgd(Sgd),
}

impl Optimiser {
    /// Updates `params` in place from `grads` with the wrapped optimiser.
    ///
    /// # Errors
    ///
    /// As [`Adam::step`].
    pub fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]) -> Result<(), NnError> {
        match self {
            Optimiser::Adam(a) => a.step(params, grads),
            Optimiser::Sgd(s) => s.step(params, grads),
        }
    }

    /// Begins one step over parameters of lengths `lens`; see
    /// [`Adam::begin_step`] and [`Sgd::begin_step`].
    pub(crate) fn begin_step(
        &mut self,
        lens: impl Iterator<Item = usize> + Clone,
    ) -> Result<StepScalars, NnError> {
        Ok(match self {
            Optimiser::Adam(a) => StepScalars::Adam(a.begin_step(lens)?),
            Optimiser::Sgd(s) => StepScalars::Sgd {
                first: s.begin_step(lens)?,
            },
        })
    }

    /// Updates parameter number `index` of the step begun by
    /// [`Optimiser::begin_step`].
    pub(crate) fn update(&mut self, index: usize, scalars: &StepScalars, p: &mut [f32], g: &[f32]) {
        match (self, scalars) {
            (Optimiser::Adam(a), StepScalars::Adam(s)) => a.update(index, s, p, g),
            (Optimiser::Sgd(s), StepScalars::Sgd { first }) => s.update(index, *first, p, g),
            // begin_step returns the scalars of the same variant.
            _ => unreachable!("the step scalars come from this optimiser's begin_step"),
        }
    }
}
