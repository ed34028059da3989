//! The fine-tuning engine: scores populations of candidate weight matrices
//! for the search algorithms of `heft-search`.
//!
//! Tuning the last linear layer of a classifier (`fc2` of an MLP, `fc` of
//! a sequence model) is the common case, and [`HeadScorer`] makes it cheap:
//!
//! - The layers before the head are frozen, so their output on the
//!   validation split (the head's input features) is computed once.
//! - The candidates of a population are read as one `in x (classes * P)`
//!   matrix without copying, and scored by one GEMM whose fused epilogue
//!   counts correct argmax predictions per candidate, so the logits never
//!   reach memory.
//! - Rows whose prediction no candidate in the search box can change are
//!   found once by interval arithmetic, counted once, and skipped.
//!
//! [`ModelObjective`] tunes any tensor of a [`Model`] on a [`Split`]: the
//! last layer through [`HeadScorer`], an earlier MLP layer with one stacked
//! GEMM per block of rows, and embedding or recurrent tensors through the
//! model's own forward pass, run over the rows sorted by true length so
//! that no step computes padding. Row pruning works on every path: the bounds
//! are carried through the layers after the tuned tensor, recurrent steps
//! included. [`evaluate`] scores a whole model.
//!
//! [`stats`] has the Wilcoxon signed-rank and Friedman tests, and
//! [`experiment`] runs a grid of algorithms, modes, seeds and tensors with
//! resumable results and builds the report with those tests.
//!
//! Fitness is `1 - accuracy`, with accuracy an exact count over the split,
//! or the mean cross-entropy. Counts are integers summed per block and
//! losses are summed in f64 in a fixed order, so fitness does not depend on
//! the number of threads.

#![forbid(unsafe_code)]

mod ce;
mod error;
pub mod experiment;
mod head;
mod interval;
mod model;
mod objective;
mod prune;
mod recurrent;
pub mod stats;
mod zeros;

pub use error::TuneError;
pub use head::{HeadScorer, HeadStats};
pub use model::{evaluate, tensor_names, Evaluation, Fitness, Model, Split, Target};
pub use objective::{check_target, ModelObjective};
