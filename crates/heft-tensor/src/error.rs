//! The error type of heft-tensor.

use crate::matrix::storage_bytes;
use heft_kernels::elementwise::ElementwiseError;
use heft_kernels::gemm::{GemmError, LayoutError};
use std::fmt;

/// A failed tensor operation. Every message names the operation and the
/// shapes involved.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TensorError {
    /// Two operands whose shapes must agree do not.
    Shape {
        /// The operation that was called.
        op: &'static str,
        /// Name of the first operand, such as `"A"`.
        left_name: &'static str,
        /// `(rows, cols)` of the first operand.
        left: (usize, usize),
        /// Name of the second operand.
        right_name: &'static str,
        /// `(rows, cols)` of the second operand.
        right: (usize, usize),
        /// The condition the shapes break, such as "inner dimensions differ".
        problem: &'static str,
    },
    /// Data whose length does not match the requested shape.
    DataLength {
        /// The operation that was called.
        op: &'static str,
        /// Requested `(rows, cols)`.
        shape: (usize, usize),
        /// Length of the data given.
        len: usize,
    },
    /// A shape whose element count overflows `usize`, or whose storage
    /// would exceed `isize::MAX` bytes, the largest allocation Rust
    /// permits.
    TooLarge {
        /// The operation that was called.
        op: &'static str,
        /// Requested `(rows, cols)`.
        shape: (usize, usize),
    },
    /// A vector argument whose length does not match the matrix.
    VectorLength {
        /// The operation that was called.
        op: &'static str,
        /// The argument, such as `"bias"`.
        what: &'static str,
        /// `(rows, cols)` of the matrix.
        shape: (usize, usize),
        /// The length the shape requires.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A row-wise reduction over rows with no elements.
    EmptyRows {
        /// The operation that was called.
        op: &'static str,
        /// `(rows, cols)` of the matrix, with `cols == 0`.
        shape: (usize, usize),
    },
    /// A strided view that does not fit its slice.
    Layout(LayoutError),
    /// An error reported by a GEMM kernel.
    Gemm(GemmError),
    /// An error reported by an element-wise kernel.
    Elementwise(ElementwiseError),
}

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorError::Shape {
                op,
                left_name,
                left,
                right_name,
                right,
                problem,
            } => write!(
                f,
                "{op}: {left_name} is {}x{} but {right_name} is {}x{}: {problem}",
                left.0, left.1, right.0, right.1
            ),
            TensorError::DataLength { op, shape, len } => match shape.0.checked_mul(shape.1) {
                Some(count) => write!(
                    f,
                    "{op}: a {}x{} matrix needs {count} elements but the data has {len}",
                    shape.0, shape.1
                ),
                None => write!(
                    f,
                    "{op}: a {}x{} matrix has more elements than usize can count, so the data \
                     ({len} elements) cannot fill it",
                    shape.0, shape.1
                ),
            },
            TensorError::TooLarge { op, shape } => match shape.0.checked_mul(shape.1) {
                None => write!(
                    f,
                    "{op}: a {}x{} matrix has more elements than usize can count",
                    shape.0, shape.1
                ),
                Some(count) => write!(
                    f,
                    "{op}: a {}x{} matrix has {count} elements, whose {} bytes of storage exceed \
                     isize::MAX ({}), the largest allocation Rust permits",
                    shape.0,
                    shape.1,
                    storage_bytes(count),
                    isize::MAX
                ),
            },
            TensorError::VectorLength {
                op,
                what,
                shape,
                expected,
                actual,
            } => write!(
                f,
                "{op}: {what} has {actual} elements but the matrix is {}x{}, so it needs \
                 {expected}",
                shape.0, shape.1
            ),
            TensorError::EmptyRows { op, shape } => write!(
                f,
                "{op}: the matrix is {}x{}, so its rows have no elements and no maximum",
                shape.0, shape.1
            ),
            TensorError::Layout(e) => write!(f, "invalid view: {e}"),
            TensorError::Gemm(e) => e.fmt(f),
            TensorError::Elementwise(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TensorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TensorError::Layout(e) => Some(e),
            TensorError::Gemm(e) => Some(e),
            TensorError::Elementwise(e) => Some(e),
            _ => None,
        }
    }
}

impl From<LayoutError> for TensorError {
    fn from(e: LayoutError) -> Self {
        TensorError::Layout(e)
    }
}

impl From<GemmError> for TensorError {
    fn from(e: GemmError) -> Self {
        TensorError::Gemm(e)
    }
}

impl From<ElementwiseError> for TensorError {
    fn from(e: ElementwiseError) -> Self {
        TensorError::Elementwise(e)
    }
}
