//! Matrices for heft: an owned, 64-byte-aligned, row-major [`Matrix`],
//! strided views, and shape-checked operations over the heft-kernels GEMM
//! and element-wise kernels.
//!
//! ```
//! use heft_tensor::{matmul, Matrix};
//!
//! let a = Matrix::from_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
//! let b = Matrix::from_slice(2, 3, &[1.0, 0.0, -1.0, 2.0, 1.0, 0.0])?;
//!
//! // A * B^T: the transpose is a view with swapped strides, not a copy.
//! let c = matmul(a.view(), b.view().t())?;
//! assert_eq!(c.shape(), (2, 2));
//! assert_eq!(c.as_slice(), &[-2.0, 4.0, -2.0, 13.0]);
//!
//! // Shapes are checked, and the error names the operation and both shapes.
//! let err = matmul(a.view(), b.view()).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "matmul: A is 2x3 but B is 2x3: inner dimensions differ"
//! );
//!
//! let p = c.softmax_rows();
//! assert_eq!(p.argmax_rows()?, vec![1, 1]);
//! # Ok::<(), heft_tensor::TensorError>(())
//! ```
//!
//! # Views
//!
//! [`MatRef`] and [`MatMut`] (from `heft_kernels::gemm`) borrow `f32`
//! slices with a row stride and a column stride, so transposes
//! ([`MatRef::t`]), sub-matrices ([`MatRef::submatrix`]) and column-major
//! data cost nothing. [`Matrix::view`] and [`Matrix::view_mut`] return views
//! of a whole matrix, and [`Matrix::from_view`] copies any view into a new
//! matrix.
//!
//! # Crate layout
//!
//! - `matrix`: [`Matrix`], its constructors, accessors, views and
//!   [`Matrix::transpose`].
//! - `ops`: [`matmul`], [`matmul_into`], [`matmul_into_with`] and the
//!   element-wise methods of [`Matrix`].
//! - `error`: [`TensorError`].
//!
//! Random initialisation lives with the layers that need it, not here.
//!
//! # Features
//!
//! - `parallel` (default): the GEMM spreads blocks of C over the rayon
//!   thread pool. Without it, heft-tensor depends only on heft-kernels,
//!   `wide` and `bytemuck`.

#![forbid(unsafe_code)]

mod error;
mod matrix;
mod ops;

pub use error::TensorError;
pub use heft_kernels::gemm::{LayoutError, MatMut, MatRef};
pub use matrix::Matrix;
pub use ops::{matmul, matmul_into, matmul_into_with};
