//! A multi-layer perceptron: `Linear -> ReLU -> ... -> Linear`.
//!
//! With sizes `[n0, n1, ..., nL]` there are `L` linear layers named `fc1`
//! to `fcL`; layer `k` maps `n(k-1)` features to `nk`. Every layer except
//! the last is followed by ReLU, and the last layer's output is the logits.
//! Input `[batch, n0]`, output `[batch, nL]`.
//!
//! ```
//! use heft_nn::{Linear, Mlp};
//! use heft_tensor::Matrix;
//!
//! // fc1: 1 -> 2 with W = [[1], [-1]], b = 0; fc2: 2 -> 1 with W = [[1, 1]], b = 0.
//! let fc1 = Linear::new(Matrix::from_slice(2, 1, &[1.0, -1.0])?, vec![0.0, 0.0])?;
//! let fc2 = Linear::new(Matrix::from_slice(1, 2, &[1.0, 1.0])?, vec![0.0])?;
//! let mlp = Mlp::new(vec![fc1, fc2])?;
//! // ReLU(x) + ReLU(-x) = |x|
//! let x = Matrix::from_slice(2, 1, &[3.0, -2.0])?;
//! assert_eq!(mlp.forward(&x)?.as_slice(), &[3.0, 2.0]);
//! # Ok::<(), heft_nn::NnError>(())
//! ```

use crate::error::NnError;
use crate::linear::{Linear, LinearGrads, LinearInit};
use crate::rng::SplitMix64;
use heft_tensor::Matrix;

/// A multi-layer perceptron with ReLU between its linear layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    layers: Vec<Linear>,
}

/// Outputs of every layer of one training forward pass, kept for
/// [`Mlp::backward`].
#[derive(Clone, Debug)]
pub struct MlpActivations {
    /// Output of each hidden layer after ReLU, `[batch, n_k]` for `k` in
    /// `1..L`.
    pub hidden: Vec<Matrix>,
    /// Output of the last layer, `[batch, n_L]`.
    pub logits: Matrix,
}

/// Gradients of every layer of an [`Mlp`], in layer order.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpGrads {
    /// One entry per linear layer.
    pub layers: Vec<LinearGrads>,
}

impl MlpGrads {
    /// Creates zero gradients for `mlp`.
    ///
    /// # Errors
    ///
    /// [`NnError::Tensor`] only if a shape overflows `usize`.
    pub fn zeros_like(mlp: &Mlp) -> Result<Self, NnError> {
        let layers = mlp
            .layers
            .iter()
            .map(LinearGrads::zeros_like)
            .collect::<Result<_, _>>()?;
        Ok(MlpGrads { layers })
    }

    /// Sets every gradient to 0.
    pub fn zero(&mut self) {
        for g in &mut self.layers {
            g.weight.as_mut_slice().fill(0.0);
            g.bias.fill(0.0);
        }
    }

    /// Returns the gradients as flat slices in the order of
    /// [`Mlp::parameter_names`].
    pub fn as_slices(&self) -> Vec<&[f32]> {
        self.layers
            .iter()
            .flat_map(|g| [g.weight.as_slice(), g.bias.as_slice()])
            .collect()
    }
}

impl Mlp {
    /// Creates a model from given layers, which must chain: each layer's
    /// input count equals the previous layer's output count.
    ///
    /// # Errors
    ///
    /// [`NnError::InvalidConfig`] for no layers and [`NnError::Shape`] for
    /// layers that do not chain.
    pub fn new(layers: Vec<Linear>) -> Result<Self, NnError> {
        if layers.is_empty() {
            return Err(NnError::config(
                "layers",
                "an MLP needs at least one Linear layer",
            ));
        }
        for (k, pair) in layers.windows(2).enumerate() {
            if pair[0].out_features() != pair[1].in_features() {
                return Err(NnError::shape(
                    "Mlp::new",
                    format!(
                        "fc{} has {} outputs but fc{} takes {} inputs",
                        k + 1,
                        pair[0].out_features(),
                        k + 2,
                        pair[1].in_features()
                    ),
                ));
            }
        }
        Ok(Mlp { layers })
    }

    /// Creates a model with layer sizes `sizes` (input, hidden..., output)
    /// and PyTorch's default initialisation, drawing `fc1` first.
    ///
    /// # Errors
    ///
    /// [`NnError::InvalidConfig`] for fewer than two sizes or a size of 0.
    pub fn init(sizes: &[usize], rng: &mut SplitMix64) -> Result<Self, NnError> {
        if sizes.len() < 2 {
            return Err(NnError::config(
                "sizes",
                format!(
                    "an MLP needs an input and an output size, but got {sizes:?}; \
                     pass e.g. [784, 128, 10]"
                ),
            ));
        }
        let layers = sizes
            .windows(2)
            .map(|w| Linear::init(w[0], w[1], LinearInit::PyTorchDefault, rng))
            .collect::<Result<_, _>>()?;
        Mlp::new(layers)
    }

    /// Returns the layer sizes: input, hidden..., output.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.layers[0].in_features()];
        sizes.extend(self.layers.iter().map(Linear::out_features));
        sizes
    }

    /// Returns the linear layers, `fc1` first.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// Returns the linear layers for in-place changes of their parameters.
    pub fn layers_mut(&mut self) -> &mut [Linear] {
        &mut self.layers
    }

    /// Returns the PyTorch `state_dict` names: `fc1.weight`, `fc1.bias`,
    /// `fc2.weight`, ...
    pub fn parameter_names(&self) -> Vec<String> {
        (1..=self.layers.len())
            .flat_map(|k| [format!("fc{k}.weight"), format!("fc{k}.bias")])
            .collect()
    }

    /// Returns the parameters as flat row-major slices in the order of
    /// [`Mlp::parameter_names`].
    pub fn parameters(&self) -> Vec<&[f32]> {
        self.layers
            .iter()
            .flat_map(|l| [l.weight().as_slice(), l.bias()])
            .collect()
    }

    /// Returns the parameters for in-place changes, in the order of
    /// [`Mlp::parameter_names`].
    pub fn parameters_mut(&mut self) -> Vec<&mut [f32]> {
        let mut out = Vec::with_capacity(2 * self.layers.len());
        for layer in &mut self.layers {
            let (w, b) = layer.parameters_mut();
            out.push(w);
            out.push(b);
        }
        out
    }

    /// Returns the logits `[batch, n_L]` for `x` of shape `[batch, n_0]`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if `x` does not have `n_0` columns.
    pub fn forward(&self, x: &Matrix) -> Result<Matrix, NnError> {
        Ok(self.forward_train(x)?.logits)
    }

    /// Runs the forward pass and keeps every layer's output for
    /// [`Mlp::backward`]. Each hidden layer's bias and ReLU run in the GEMM
    /// epilogue.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if `x` does not have `n_0` columns.
    pub fn forward_train(&self, x: &Matrix) -> Result<MlpActivations, NnError> {
        let last = self.layers.len() - 1;
        let mut hidden: Vec<Matrix> = Vec::with_capacity(last);
        for layer in &self.layers[..last] {
            let input = hidden.last().unwrap_or(x);
            let mut out = Matrix::zeros(x.rows(), layer.out_features())?;
            layer.forward_into(input, &mut out, true)?;
            hidden.push(out);
        }
        let input = hidden.last().unwrap_or(x);
        let mut logits = Matrix::zeros(x.rows(), self.layers[last].out_features())?;
        self.layers[last].forward_into(input, &mut logits, false)?;
        Ok(MlpActivations { hidden, logits })
    }

    /// Adds the gradients of the loss to `grads`, given the input `x`, the
    /// activations from [`Mlp::forward_train`] on that `x` and
    /// `dL/dlogits`. The gradient with respect to `x` is not computed.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the activations, `grad_logits` or `grads` do
    /// not fit this model and `x`.
    pub fn backward(
        &self,
        x: &Matrix,
        activations: &MlpActivations,
        grad_logits: &Matrix,
        grads: &mut MlpGrads,
    ) -> Result<(), NnError> {
        const OP: &str = "Mlp::backward";
        let count = self.layers.len();
        if activations.hidden.len() + 1 != count || grads.layers.len() != count {
            return Err(NnError::shape(
                OP,
                format!(
                    "the model has {count} layers but the activations have {} hidden outputs \
                     and the gradients {} layers; pass the output of forward_train and \
                     MlpGrads::zeros_like for this model",
                    activations.hidden.len(),
                    grads.layers.len()
                ),
            ));
        }
        let mut grad_output = grad_logits.clone();
        for k in (0..count).rev() {
            let input = if k == 0 {
                x
            } else {
                &activations.hidden[k - 1]
            };
            let grad_input =
                self.layers[k].backward(input, &grad_output, &mut grads.layers[k], k > 0)?;
            if let Some(grad_input) = grad_input {
                grad_output = activations.hidden[k - 1].relu_backward(&grad_input)?;
            }
        }
        Ok(())
    }
}
