//! The rectified linear unit, `y = max(x, 0)` element by element.
//!
//! Input and output have the same shape. Backward: `dx = dy` where `x > 0`
//! and `0` elsewhere, which is PyTorch's choice of 0 for the derivative at
//! `x = 0`.
//!
//! ```
//! use heft_nn::Relu;
//! use heft_tensor::Matrix;
//!
//! let x = Matrix::from_slice(1, 3, &[-1.0, 0.0, 2.0])?;
//! let y = Relu.forward(&x);
//! assert_eq!(y.as_slice(), &[0.0, 0.0, 2.0]);
//! let dy = Matrix::from_slice(1, 3, &[5.0, 5.0, 5.0])?;
//! assert_eq!(Relu.backward(&y, &dy)?.as_slice(), &[0.0, 0.0, 5.0]);
//! # Ok::<(), heft_nn::NnError>(())
//! ```

use crate::error::NnError;
use heft_tensor::Matrix;

/// The ReLU activation. It has no parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relu;

impl Relu {
    /// Returns `max(x, 0)` element by element.
    pub fn forward(&self, x: &Matrix) -> Matrix {
        x.relu()
    }

    /// Returns `dx`, given the forward output `y` (or the input: both are
    /// positive at the same places) and `dy`.
    ///
    /// # Errors
    ///
    /// [`NnError::Tensor`] if `y` and `dy` differ in shape.
    pub fn backward(&self, y: &Matrix, grad_output: &Matrix) -> Result<Matrix, NnError> {
        Ok(y.relu_backward(grad_output)?)
    }
}
