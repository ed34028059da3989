//! A fully connected layer, `Y = X W^T + b`.
//!
//! Shapes (PyTorch's `torch.nn.Linear` layout):
//!
//! - input `X`: `[batch, in]`
//! - weight `W`: `[out, in]`
//! - bias `b`: `[out]`
//! - output `Y`: `[batch, out]`
//!
//! Backward, given `dY = dL/dY` of shape `[batch, out]`:
//! `dX = dY W` (`[batch, in]`), `dW = dY^T X` (`[out, in]`) and `db` is the
//! column sum of `dY` (`[out]`).
//!
//! ```
//! use heft_nn::Linear;
//! use heft_tensor::Matrix;
//!
//! // W = [[1, 2], [3, 4], [0, -1]], b = [1, 0, 2]
//! let w = Matrix::from_slice(3, 2, &[1.0, 2.0, 3.0, 4.0, 0.0, -1.0])?;
//! let layer = Linear::new(w, vec![1.0, 0.0, 2.0])?;
//! let x = Matrix::from_slice(1, 2, &[1.0, 1.0])?;
//! let y = layer.forward(&x)?;
//! // [1 + 2 + 1, 3 + 4 + 0, 0 - 1 + 2]
//! assert_eq!(y.as_slice(), &[4.0, 7.0, 1.0]);
//! # Ok::<(), heft_nn::NnError>(())
//! ```

use crate::error::NnError;
use crate::rng::SplitMix64;
use heft_tensor::{matmul_into, matmul_into_with, Matrix};

/// Distribution of the initial weight and bias in [`Linear::init`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum LinearInit {
    /// PyTorch's default for `nn.Linear`: the weight from Kaiming-uniform
    /// with `a = sqrt(5)`, which is `U(-1/sqrt(in), 1/sqrt(in))`, and the
    /// bias from the same interval.
    #[default]
    PyTorchDefault,
    /// Weight and bias from `U(-bound, bound)`.
    Uniform {
        /// Half-width of the interval, at least 0.
        bound: f32,
    },
}

/// A fully connected layer with weight `[out, in]` and bias `[out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    weight: Matrix,
    bias: Vec<f32>,
}

/// Gradients of a [`Linear`] layer, shaped like its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearGrads {
    /// `dL/dW`, `[out, in]`.
    pub weight: Matrix,
    /// `dL/db`, `[out]`.
    pub bias: Vec<f32>,
}

impl LinearGrads {
    /// Creates zero gradients for `layer`.
    ///
    /// # Errors
    ///
    /// [`NnError::Tensor`] only if the shape overflows `usize`.
    pub fn zeros_like(layer: &Linear) -> Result<Self, NnError> {
        Ok(LinearGrads {
            weight: Matrix::zeros(layer.out_features(), layer.in_features())?,
            bias: vec![0.0; layer.out_features()],
        })
    }
}

impl Linear {
    /// Creates a layer from a given weight `[out, in]` and bias `[out]`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the weight has no rows or no columns, as
    /// [`Linear::init`] rejects 0 sizes, or if `bias.len()` is not the
    /// weight's row count.
    pub fn new(weight: Matrix, bias: Vec<f32>) -> Result<Self, NnError> {
        if weight.rows() == 0 || weight.cols() == 0 {
            return Err(NnError::shape(
                "Linear::new",
                format!(
                    "the weight is {}x{} (out x in) but a Linear layer needs at least one \
                     output and one input",
                    weight.rows(),
                    weight.cols()
                ),
            ));
        }
        if bias.len() != weight.rows() {
            return Err(NnError::shape(
                "Linear::new",
                format!(
                    "the weight is {}x{} (out x in) so the bias needs {} elements, but it has {}",
                    weight.rows(),
                    weight.cols(),
                    weight.rows(),
                    bias.len()
                ),
            ));
        }
        Ok(Linear { weight, bias })
    }

    /// Creates a layer with random weights drawn from `rng` by the rule `init`.
    /// The weight is drawn first, row by row, then the bias.
    ///
    /// # Errors
    ///
    /// [`NnError::InvalidConfig`] if `in_features` or `out_features` is 0 or
    /// a uniform bound is negative or not finite.
    pub fn init(
        in_features: usize,
        out_features: usize,
        init: LinearInit,
        rng: &mut SplitMix64,
    ) -> Result<Self, NnError> {
        if in_features == 0 || out_features == 0 {
            return Err(NnError::config(
                "layer size",
                format!(
                    "a Linear layer needs at least one input and one output, \
                     but got in = {in_features}, out = {out_features}"
                ),
            ));
        }
        let bound = match init {
            LinearInit::PyTorchDefault => 1.0 / (in_features as f32).sqrt(),
            LinearInit::Uniform { bound } => {
                if !(bound.is_finite() && bound >= 0.0) {
                    return Err(NnError::config(
                        "init bound",
                        format!("the bound must be finite and at least 0, but it is {bound}"),
                    ));
                }
                bound
            }
        };
        let weight = Matrix::from_fn(out_features, in_features, |_, _| rng.uniform(-bound, bound))?;
        let bias = (0..out_features)
            .map(|_| rng.uniform(-bound, bound))
            .collect();
        Ok(Linear { weight, bias })
    }

    /// Returns the number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.cols()
    }

    /// Returns the number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.rows()
    }

    /// Returns the weight, `[out, in]`.
    pub fn weight(&self) -> &Matrix {
        &self.weight
    }

    /// Returns the weight for in-place changes; its shape cannot change.
    pub fn weight_mut(&mut self) -> &mut [f32] {
        self.weight.as_mut_slice()
    }

    /// Returns the bias, `[out]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Returns the bias for in-place changes.
    pub fn bias_mut(&mut self) -> &mut [f32] {
        &mut self.bias
    }

    /// Returns the weight and the bias for in-place changes at once.
    pub fn parameters_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        (self.weight.as_mut_slice(), &mut self.bias)
    }

    fn check_input(&self, op: &'static str, x: &Matrix) -> Result<(), NnError> {
        if x.cols() == self.in_features() {
            Ok(())
        } else {
            Err(NnError::shape(
                op,
                format!(
                    "the input is {}x{} but the layer takes {} features per row",
                    x.rows(),
                    x.cols(),
                    self.in_features()
                ),
            ))
        }
    }

    /// Computes `Y = X W^T + b` for `X` of shape `[batch, in]`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if `X` does not have `in` columns.
    pub fn forward(&self, x: &Matrix) -> Result<Matrix, NnError> {
        let mut y = Matrix::zeros(x.rows(), self.out_features())?;
        self.forward_into(x, &mut y, false)?;
        Ok(y)
    }

    /// Computes `Y = X W^T + b` into `y`, followed by ReLU if `relu` is set,
    /// in one pass of the GEMM epilogue.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if `X` is not `[batch, in]` or `y` is not
    /// `[batch, out]`.
    pub fn forward_into(&self, x: &Matrix, y: &mut Matrix, relu: bool) -> Result<(), NnError> {
        const OP: &str = "Linear::forward_into";
        self.check_input(OP, x)?;
        if y.shape() != (x.rows(), self.out_features()) {
            return Err(NnError::shape(
                OP,
                format!(
                    "the output is {}x{} but must be {}x{} (batch x out)",
                    y.rows(),
                    y.cols(),
                    x.rows(),
                    self.out_features()
                ),
            ));
        }
        matmul_into_with(
            1.0,
            x.view(),
            self.weight.view().t(),
            0.0,
            y.view_mut(),
            Some(&self.bias),
            relu,
        )?;
        Ok(())
    }

    /// Adds this batch's `dW = dY^T X` and `db = sum_rows(dY)` to `grads`
    /// (so gradients accumulate like PyTorch's `.grad`), and returns `dX =
    /// dY W` if `need_input_grad` is set.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if `X`, `dY` or `grads` do not fit the layer.
    pub fn backward(
        &self,
        x: &Matrix,
        grad_output: &Matrix,
        grads: &mut LinearGrads,
        need_input_grad: bool,
    ) -> Result<Option<Matrix>, NnError> {
        const OP: &str = "Linear::backward";
        self.check_input(OP, x)?;
        if grad_output.shape() != (x.rows(), self.out_features()) {
            return Err(NnError::shape(
                OP,
                format!(
                    "the output gradient is {}x{} but must be {}x{} (batch x out)",
                    grad_output.rows(),
                    grad_output.cols(),
                    x.rows(),
                    self.out_features()
                ),
            ));
        }
        if grads.weight.shape() != self.weight.shape() || grads.bias.len() != self.bias.len() {
            return Err(NnError::shape(
                OP,
                format!(
                    "the gradient buffers are {}x{} and {} but the layer is {}x{} and {}; \
                     create them with LinearGrads::zeros_like",
                    grads.weight.rows(),
                    grads.weight.cols(),
                    grads.bias.len(),
                    self.weight.rows(),
                    self.weight.cols(),
                    self.bias.len()
                ),
            ));
        }

        matmul_into(
            1.0,
            grad_output.view().t(),
            x.view(),
            1.0,
            grads.weight.view_mut(),
        )?;
        let out = self.out_features();
        for row in grad_output.as_slice().chunks_exact(out) {
            for (b, g) in grads.bias.iter_mut().zip(row) {
                *b += g;
            }
        }

        if !need_input_grad {
            return Ok(None);
        }
        let mut grad_input = Matrix::zeros(x.rows(), self.in_features())?;
        matmul_into(
            1.0,
            grad_output.view(),
            self.weight.view(),
            0.0,
            grad_input.view_mut(),
        )?;
        Ok(Some(grad_input))
    }
}
