//! Errors of the tuning engine.

use std::fmt;

/// An invalid tuning setup.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TuneError {
    /// Two inputs disagree in size.
    Shape {
        /// The object being built or checked.
        what: &'static str,
        /// Description of the expected size.
        expected: String,
        /// Description of the size given.
        actual: String,
    },
    /// The box half-width is not a positive finite number.
    Bound(f32),
    /// A label is not below the number of classes.
    Label {
        /// Row of the label.
        row: usize,
        /// Its value.
        label: u32,
        /// Number of classes.
        classes: usize,
    },
    /// A value that must be finite is NaN or infinite.
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Index of the first bad value.
        index: usize,
    },
    /// The tuned tensor is not a tunable tensor of the model.
    UnknownTensor {
        /// The requested name.
        name: String,
        /// The tunable tensors of the model.
        available: Vec<String>,
    },
    /// `include_bias` was set for a tensor that has no bias of its own.
    NoBias {
        /// The tensor name.
        tensor: String,
    },
    /// A split does not fit the model: wrong kind, or a size differs.
    SplitMismatch {
        /// The quantity that differs, such as "input columns".
        what: &'static str,
        /// The model's value.
        model: String,
        /// The split's value.
        split: String,
        /// The change that fixes it.
        fix: &'static str,
    },
    /// The split has no rows.
    EmptySplit,
    /// A layer of the model failed.
    Model(String),
    /// A sample passed to a statistical test cannot be tested.
    InvalidSample {
        /// The test, such as "Wilcoxon signed-rank".
        test: &'static str,
        /// The problem, with the offending value.
        problem: String,
        /// The change that fixes it.
        fix: &'static str,
    },
    /// An experiment specification is invalid.
    InvalidExperiment {
        /// The problem, with the offending value.
        problem: String,
        /// The change that fixes it.
        fix: &'static str,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: String,
        /// The operation that failed, such as "append to".
        action: &'static str,
        /// The operating system's message.
        message: String,
    },
    /// A complete line of a results file cannot be read.
    ResultsLine {
        /// The results file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The problem with the line.
        message: String,
    },
    /// The search failed.
    Search(String),
}

impl fmt::Display for TuneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TuneError::Shape { what, expected, actual } => {
                write!(f, "{what}: expected {expected}, got {actual}")
            }
            TuneError::Bound(bound) => write!(
                f,
                "invalid bound {bound}: the box half-width must be a positive finite number, such as 0.01"
            ),
            TuneError::Label { row, label, classes } => write!(
                f,
                "label {label} at row {row} is not below the class count {classes}: check that the model matches the dataset"
            ),
            TuneError::NonFinite { what, index } => {
                write!(f, "{what} has a NaN or infinite value at index {index}")
            }
            TuneError::UnknownTensor { name, available } => write!(
                f,
                "unknown tensor {name:?}: pick one of {}",
                available.join(", ")
            ),
            TuneError::NoBias { tensor } => write!(
                f,
                "tensor {tensor:?} has no bias of its own: tune it without the bias option"
            ),
            TuneError::SplitMismatch {
                what,
                model,
                split,
                fix,
            } => write!(
                f,
                "the split does not match the model: {what} is {model} for the model but {split} for the split; {fix}"
            ),
            TuneError::EmptySplit => write!(
                f,
                "the split has no rows: pass a split with at least one labelled row"
            ),
            TuneError::Model(message) => write!(f, "model evaluation failed: {message}"),
            TuneError::InvalidSample { test, problem, fix } => {
                write!(f, "invalid sample for the {test} test: {problem}; {fix}")
            }
            TuneError::InvalidExperiment { problem, fix } => {
                write!(f, "invalid experiment: {problem}; {fix}")
            }
            TuneError::Io {
                path,
                action,
                message,
            } => write!(f, "failed to {action} {path}: {message}"),
            TuneError::ResultsLine {
                path,
                line,
                message,
            } => write!(
                f,
                "invalid results file {path} at line {line}: {message}; repair or delete that line, then resume"
            ),
            TuneError::Search(message) => write!(f, "search failed: {message}"),
        }
    }
}

impl std::error::Error for TuneError {}

impl From<heft_nn::NnError> for TuneError {
    fn from(e: heft_nn::NnError) -> Self {
        TuneError::Model(e.to_string())
    }
}

impl From<heft_search::SearchError> for TuneError {
    fn from(e: heft_search::SearchError) -> Self {
        TuneError::Search(e.to_string())
    }
}

impl From<heft_tensor::TensorError> for TuneError {
    fn from(e: heft_tensor::TensorError) -> Self {
        TuneError::Model(e.to_string())
    }
}

impl From<heft_kernels::gemm::GemmError> for TuneError {
    fn from(e: heft_kernels::gemm::GemmError) -> Self {
        TuneError::Model(e.to_string())
    }
}
