//! Errors of the tuning engine.

use std::fmt;

/// An invalid tuning setup.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TuneError {
    /// Two inputs disagree in size.
    Shape {
        /// What was being built.
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
        }
    }
}

impl std::error::Error for TuneError {}
