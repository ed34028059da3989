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
//! Fitness is `1 - accuracy`, with accuracy an exact count over the split.
//! Counts are integers summed per block, so fitness does not depend on the
//! number of threads.

#![forbid(unsafe_code)]

mod error;
mod head;

pub use error::TuneError;
pub use head::{HeadScorer, HeadStats};
