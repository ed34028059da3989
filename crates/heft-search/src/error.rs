//! The error type of the crate.

use std::fmt;

/// Errors from building, driving, saving or restoring a search.
///
/// Every variant names the value that was rejected, and its message
/// states what to change.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SearchError {
    /// The box has zero dimensions.
    EmptyBounds,
    /// The lower and upper bound vectors differ in length.
    BoundsLengthMismatch {
        /// Length of the lower bound vector.
        lower: usize,
        /// Length of the upper bound vector.
        upper: usize,
    },
    /// A lower bound lies above its upper bound.
    LowerAboveUpper {
        /// Dimension index.
        index: usize,
        /// Lower bound at `index`.
        lower: f32,
        /// Upper bound at `index`.
        upper: f32,
    },
    /// A bound, a centre coordinate or a half-width is NaN or infinite.
    NonFinite {
        /// Description of the value (`"lower bound"`, `"centre coordinate"`, `"half-width"`).
        what: &'static str,
        /// Dimension index, or 0 for a scalar.
        index: usize,
        /// The rejected value.
        value: f32,
    },
    /// A half-width given to [`Bounds::around`](crate::Bounds::around) is negative.
    NegativeDelta {
        /// The rejected half-width.
        delta: f32,
    },
    /// The population is smaller than the algorithm needs.
    PopulationTooSmall {
        /// Algorithm name.
        algorithm: &'static str,
        /// Requested population size.
        size: usize,
        /// Minimum population size of the algorithm.
        min: usize,
    },
    /// The population size does not meet another requirement of the algorithm.
    InvalidPopulation {
        /// Algorithm name.
        algorithm: &'static str,
        /// Requested population size.
        size: usize,
        /// The requirement, as a sentence fragment ("must be even").
        reason: &'static str,
    },
    /// An algorithm name that is not known.
    UnknownAlgorithm {
        /// The rejected name.
        name: String,
    },
    /// A mode name that is not known.
    UnknownMode {
        /// The rejected name.
        name: String,
    },
    /// A bound handler name that is not known.
    UnknownBoundHandler {
        /// The rejected name.
        name: String,
    },
    /// The algorithm has no implementation in the requested mode.
    ModeNotSupported {
        /// Algorithm name.
        algorithm: &'static str,
        /// Mode name.
        mode: &'static str,
    },
    /// A hyperparameter is outside its valid range.
    InvalidHyperparameter {
        /// Parameter name.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// The valid range, as a sentence fragment.
        expected: &'static str,
    },
    /// The point to put into the initial population has the wrong length.
    InitialPointLength {
        /// Number of dimensions of the box.
        expected: usize,
        /// Length of the point.
        found: usize,
    },
    /// A coordinate of the point to put into the initial population lies outside the box.
    InitialPointOutside {
        /// Dimension index.
        index: usize,
        /// The coordinate.
        value: f32,
        /// Lower bound at `index`.
        lower: f32,
        /// Upper bound at `index`.
        upper: f32,
    },
    /// `tell` received a different number of fitness values than `ask` returned rows.
    FitnessLength {
        /// Rows in the pending batch.
        expected: usize,
        /// Fitness values received.
        found: usize,
    },
    /// `tell` was called without a batch from `ask`.
    NoPendingBatch,
    /// A checkpoint was requested while a batch from `ask` awaits its fitness.
    CheckpointWhilePending,
    /// The random source cannot save its state (for example a scripted source).
    RandomSourceNotSaveable,
    /// A checkpoint ended before all its fields were read.
    CheckpointTruncated {
        /// Byte offset where more data was expected.
        offset: usize,
        /// Bytes needed at that offset.
        needed: usize,
    },
    /// A checkpoint is damaged or does not belong to this optimizer.
    CheckpointInvalid {
        /// Description of the problem.
        reason: String,
    },
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SearchError::*;
        match self {
            EmptyBounds => write!(f, "the box has no dimensions: give at least one lower and upper bound"),
            BoundsLengthMismatch { lower, upper } => write!(
                f,
                "{lower} lower bounds but {upper} upper bounds: give one of each per dimension"
            ),
            LowerAboveUpper { index, lower, upper } => write!(
                f,
                "lower bound {lower} is above upper bound {upper} in dimension {index}: swap them or fix the box"
            ),
            NonFinite { what, index, value } => write!(
                f,
                "{what} {value} at index {index} is not finite: use finite values"
            ),
            NegativeDelta { delta } => write!(f, "half-width {delta} is negative: use a value >= 0"),
            PopulationTooSmall { algorithm, size, min } => {
                let agents = if *min == 1 { "agent" } else { "agents" };
                write!(
                    f,
                    "population of {size} is too small for {algorithm}: use at least {min} {agents}"
                )
            }
            InvalidPopulation { algorithm, size, reason } => {
                write!(f, "population of {size} is invalid for {algorithm}: it {reason}")
            }
            UnknownAlgorithm { name } => write!(
                f,
                "unknown algorithm {name:?}: valid names are {}",
                crate::Algorithm::NAMES.join(", ")
            ),
            UnknownMode { name } => write!(
                f,
                "unknown mode {name:?}: valid names are {}",
                crate::Mode::NAMES.join(", ")
            ),
            UnknownBoundHandler { name } => write!(
                f,
                "unknown bound handler {name:?}: valid names are {}",
                crate::BoundHandler::NAMES.join(", ")
            ),
            ModeNotSupported { algorithm, mode } => write!(
                f,
                "{algorithm} has no {mode} mode: use mode \"canonical\""
            ),
            InvalidHyperparameter { name, value, expected } => {
                write!(f, "hyperparameter {name} = {value} is invalid: expected {expected}")
            }
            InitialPointLength { expected, found } => write!(
                f,
                "the initial point has {found} coordinates but the box has {expected} dimensions"
            ),
            InitialPointOutside { index, value, lower, upper } => write!(
                f,
                "coordinate {index} of the initial point is {value}, outside [{lower}, {upper}]: widen the box or move the point"
            ),
            FitnessLength { expected, found } => write!(
                f,
                "tell received {found} fitness values for a batch of {expected} candidates"
            ),
            NoPendingBatch => write!(f, "tell was called without a pending batch: call ask first"),
            CheckpointWhilePending => write!(
                f,
                "cannot save a checkpoint while a batch awaits its fitness: call tell first"
            ),
            RandomSourceNotSaveable => write!(
                f,
                "the random source cannot save its state: use the seeded default source to checkpoint"
            ),
            CheckpointTruncated { offset, needed } => write!(
                f,
                "checkpoint is truncated: {needed} more bytes expected at byte {offset}"
            ),
            CheckpointInvalid { reason } => write!(f, "invalid checkpoint: {reason}"),
        }
    }
}

impl std::error::Error for SearchError {}
