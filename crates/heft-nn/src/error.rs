//! The error type of heft-nn for everything except checkpoint files.

use heft_kernels::elementwise::ElementwiseError;
use heft_tensor::TensorError;
use std::fmt;

/// A failed layer, loss, optimiser or training call. Every message names the
/// call and the offending value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NnError {
    /// An input whose shape does not fit the layer or model.
    Shape {
        /// The call that failed, such as `"Linear::forward"`.
        op: &'static str,
        /// Description of the problem, with the shapes involved and the fix.
        message: String,
    },
    /// A class label that is not below the number of classes.
    LabelOutOfRange {
        /// The call that failed.
        op: &'static str,
        /// Row of the offending label.
        row: usize,
        /// The label.
        label: u32,
        /// The number of classes (logit columns).
        classes: usize,
    },
    /// A configuration value outside its valid range.
    InvalidConfig {
        /// The setting, such as `"batch_size"`.
        name: &'static str,
        /// Description of the problem and the valid range.
        message: String,
    },
    /// An error from a heft-tensor operation.
    Tensor(TensorError),
}

impl NnError {
    pub(crate) fn shape(op: &'static str, message: impl Into<String>) -> Self {
        NnError::Shape {
            op,
            message: message.into(),
        }
    }

    pub(crate) fn config(name: &'static str, message: impl Into<String>) -> Self {
        NnError::InvalidConfig {
            name,
            message: message.into(),
        }
    }
}

impl fmt::Display for NnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NnError::Shape { op, message } => write!(f, "{op}: {message}"),
            NnError::LabelOutOfRange {
                op,
                row,
                label,
                classes,
            } => write!(
                f,
                "{op}: label {label} in row {row} is out of range for {classes} classes; \
                 labels must be in 0..{classes}"
            ),
            NnError::InvalidConfig { name, message } => write!(f, "invalid {name}: {message}"),
            NnError::Tensor(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for NnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NnError::Tensor(e) => Some(e),
            _ => None,
        }
    }
}

impl From<TensorError> for NnError {
    fn from(e: TensorError) -> Self {
        NnError::Tensor(e)
    }
}

impl From<ElementwiseError> for NnError {
    fn from(e: ElementwiseError) -> Self {
        NnError::Tensor(TensorError::from(e))
    }
}

impl From<heft_tensor::LayoutError> for NnError {
    fn from(e: heft_tensor::LayoutError) -> Self {
        NnError::Tensor(TensorError::from(e))
    }
}
