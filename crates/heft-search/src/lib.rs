//! Meta-heuristic search over a box, for improving pre-trained weights.
//!
//! A population is one contiguous `P x D` f32 matrix in row-major order.
//! An [`Optimizer`] hands out candidates with [`Optimizer::ask`] and takes
//! their fitness with [`Optimizer::tell`]; a [`Search`] runs that loop
//! against an [`Objective`] that scores a whole batch in one call, with
//! stopping rules, callbacks, a history and checkpoints. Everything
//! minimises, and NaN or infinite fitness ranks below every finite value.
//!
//! # Algorithms and modes
//!
//! PSO, RPSO, GA, DE, BA and FA each have two modes ([`Mode`]):
//! `opytimizer-2.1.4` reproduces the update rules of that version of the
//! Python library Opytimizer, quirks and evaluation counts included, and
//! `canonical` follows the textbook equations with per-dimension draws.
//! Separable CMA-ES, SNES and random search (the control) are canonical only.
//! Each algorithm's module documents its rules, its evaluations per
//! iteration and the quality it reaches on test functions.
//!
//! ```
//! use heft_search::{build, testfns::TestFunction, Algorithm, Bounds, Mode, NoCallbacks, Search, Settings, StopRules};
//!
//! let bounds = Bounds::uniform(10, -5.12, 5.12)?;
//! let settings = Settings::new(bounds, 20, 42).with_mode(Mode::Canonical);
//! let mut search = Search::new(build("de".parse::<Algorithm>()?, &settings)?);
//! let report = search.run(&mut TestFunction::Sphere, &StopRules::iterations(200), &mut NoCallbacks)?;
//! assert!(report.best_fitness < 1e-2);
//! # Ok::<(), heft_search::SearchError>(())
//! ```
//!
//! # Determinism
//!
//! Algorithms draw from a [`RandomSource`] in a fixed order on one thread.
//! The default [`SplitMix`] is counter-based, so the large buffers it fills
//! in parallel hold the same values as a sequential fill. A run therefore
//! depends on its seed only, not on the number of rayon threads (as long as
//! the objective's values do not depend on it either).
//!
//! # Crate layout
//!
//! * `bounds`: [`Bounds`], [`BoundHandler`], [`VelocityHandling`].
//! * `objective`: [`Objective`], [`PerPoint`].
//! * `optimizer`: [`Optimizer`], [`Settings`], [`Algorithm`], [`Mode`], [`build`].
//! * [`algorithms`]: one module per algorithm.
//! * `run`: [`Search`], [`StopRules`], [`Callbacks`], [`Record`].
//! * [`rng`]: [`RandomSource`], [`SplitMix`], [`Scripted`](rng::Scripted).
//! * [`testfns`]: sphere, shifted sphere, Rastrigin, Rosenbrock, Ackley, Griewank.
//!
//! # Features
//!
//! `parallel` (default): rayon for [`PerPoint`] objectives and for filling
//! large random buffers.

#![forbid(unsafe_code)]

pub mod algorithms;
mod bounds;
mod checkpoint;
mod error;
mod objective;
mod optimizer;
pub mod rng;
mod run;
pub mod testfns;

pub use algorithms::{
    ba::BaParams, cmaes::SepCmaParams, de::DeParams, fa::FaParams, ga::GaParams, pso::PsoParams,
    pso::RpsoParams, snes::SnesParams,
};
pub use bounds::{BoundHandler, Bounds, VelocityHandling};
pub use error::SearchError;
pub use objective::{Objective, PerPoint};
pub use optimizer::{build, build_with_source, Algorithm, Mode, Optimizer, Progress, Settings};
pub use rng::{RandomSource, SplitMix};
pub use run::{Callbacks, NoCallbacks, Record, Report, Search, StopReason, StopRules};
