//! Single-layer recurrent layers over batched sequences: [`Rnn`] (tanh, like
//! `torch.nn.RNN`) and [`Lstm`] (like `torch.nn.LSTM`), with backward
//! through time.
//!
//! A sequence is a slice of `T` input matrices `x_t` of shape
//! `[batch, input]` (time-major, as [`Embedding::forward`] returns it). The
//! initial state is zero. With hidden size `H`:
//!
//! RNN, weights `weight_ih_l0` `[H, input]`, `weight_hh_l0` `[H, H]`, biases
//! `bias_ih_l0`, `bias_hh_l0` `[H]`:
//!
//! ```text
//! h_t = tanh(x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh)
//! ```
//!
//! LSTM, weights `[4H, input]` and `[4H, H]`, biases `[4H]`, whose row
//! blocks of `H` are the gates in PyTorch's order: input `i`, forget `f`,
//! cell `g`, output `o`:
//!
//! ```text
//! [a_i, a_f, a_g, a_o] = x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh
//! i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
//! c_t = f * c_(t-1) + i * g
//! h_t = o * tanh(c_t)
//! ```
//!
//! Both initialise every weight and bias from `U(-1/sqrt(H), 1/sqrt(H))`,
//! as PyTorch does.
//!
//! ```
//! use heft_nn::Rnn;
//! use heft_tensor::Matrix;
//!
//! // H = 1, input 1: h_t = tanh(x_t + 0.5 h_(t-1)), zero biases.
//! let rnn = Rnn::new(
//!     Matrix::from_slice(1, 1, &[1.0])?,
//!     Matrix::from_slice(1, 1, &[0.5])?,
//!     vec![0.0],
//!     vec![0.0],
//! )?;
//! let xs = [Matrix::from_slice(1, 1, &[1.0])?, Matrix::from_slice(1, 1, &[0.0])?];
//! let hs = rnn.forward(&xs)?;
//! // h_0 = tanh(1) = 0.76159, h_1 = tanh(0.5 * 0.76159) = 0.36340
//! assert!((hs[0].as_slice()[0] - 0.76159).abs() < 1e-5);
//! assert!((hs[1].as_slice()[0] - 0.36340).abs() < 1e-5);
//! # Ok::<(), heft_nn::NnError>(())
//! ```
//!
//! [`Embedding::forward`]: crate::Embedding::forward

use crate::error::NnError;
use crate::rng::SplitMix64;
use heft_tensor::{matmul_into, matmul_into_with, Matrix};

/// PyTorch's parameter names of a one-layer RNN or LSTM, in the order of
/// [`Rnn::parameters`] and [`Lstm::parameters`].
pub const RECURRENT_PARAMETER_NAMES: [&str; 4] =
    ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"];

/// The four parameters shared by both layers; `gates` is 1 for the RNN and
/// 4 for the LSTM.
#[derive(Clone, Debug, PartialEq)]
struct Cell {
    weight_ih: Matrix,
    weight_hh: Matrix,
    bias_ih: Vec<f32>,
    bias_hh: Vec<f32>,
    gates: usize,
}

/// Gradients of an [`Rnn`] or [`Lstm`], shaped like its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct RecurrentGrads {
    /// `dL/dW_ih`.
    pub weight_ih: Matrix,
    /// `dL/dW_hh`.
    pub weight_hh: Matrix,
    /// `dL/db_ih`.
    pub bias_ih: Vec<f32>,
    /// `dL/db_hh`, equal to `dL/db_ih` because both biases enter as a sum.
    pub bias_hh: Vec<f32>,
}

impl RecurrentGrads {
    /// Returns the gradients in the order of [`RECURRENT_PARAMETER_NAMES`].
    pub fn as_slices(&self) -> [&[f32]; 4] {
        [
            self.weight_ih.as_slice(),
            self.weight_hh.as_slice(),
            &self.bias_ih,
            &self.bias_hh,
        ]
    }

    /// Sets every gradient to 0.
    pub fn zero(&mut self) {
        self.weight_ih.as_mut_slice().fill(0.0);
        self.weight_hh.as_mut_slice().fill(0.0);
        self.bias_ih.fill(0.0);
        self.bias_hh.fill(0.0);
    }
}

impl Cell {
    fn new(
        op: &'static str,
        weight_ih: Matrix,
        weight_hh: Matrix,
        bias_ih: Vec<f32>,
        bias_hh: Vec<f32>,
        gates: usize,
    ) -> Result<Self, NnError> {
        let rows = weight_ih.rows();
        let hidden = rows / gates;
        let ok = rows > 0
            && rows.is_multiple_of(gates)
            && weight_ih.cols() > 0
            && weight_hh.shape() == (rows, hidden)
            && bias_ih.len() == rows
            && bias_hh.len() == rows;
        if !ok {
            return Err(NnError::shape(
                op,
                format!(
                    "weight_ih_l0 is {}x{}, weight_hh_l0 is {}x{}, bias_ih_l0 has {} and \
                     bias_hh_l0 {} elements, but they must be [{gates}H, input], [{gates}H, H], \
                     [{gates}H] and [{gates}H] for some H >= 1",
                    weight_ih.rows(),
                    weight_ih.cols(),
                    weight_hh.rows(),
                    weight_hh.cols(),
                    bias_ih.len(),
                    bias_hh.len()
                ),
            ));
        }
        Ok(Cell {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            gates,
        })
    }

    fn init(
        input_size: usize,
        hidden_size: usize,
        gates: usize,
        rng: &mut SplitMix64,
    ) -> Result<Self, NnError> {
        if input_size == 0 || hidden_size == 0 {
            return Err(NnError::config(
                "layer size",
                format!(
                    "a recurrent layer needs input and hidden sizes of at least 1, but got \
                     input = {input_size}, hidden = {hidden_size}"
                ),
            ));
        }
        let bound = 1.0 / (hidden_size as f32).sqrt();
        let rows = gates * hidden_size;
        let mut draw = |_, _| rng.uniform(-bound, bound);
        let weight_ih = Matrix::from_fn(rows, input_size, &mut draw)?;
        let weight_hh = Matrix::from_fn(rows, hidden_size, &mut draw)?;
        let bias_ih = (0..rows).map(|_| draw(0, 0)).collect();
        let bias_hh = (0..rows).map(|_| draw(0, 0)).collect();
        Ok(Cell {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            gates,
        })
    }

    fn hidden_size(&self) -> usize {
        self.weight_hh.cols()
    }

    fn input_size(&self) -> usize {
        self.weight_ih.cols()
    }

    fn parameters(&self) -> [&[f32]; 4] {
        [
            self.weight_ih.as_slice(),
            self.weight_hh.as_slice(),
            &self.bias_ih,
            &self.bias_hh,
        ]
    }

    fn parameters_mut(&mut self) -> [&mut [f32]; 4] {
        [
            self.weight_ih.as_mut_slice(),
            self.weight_hh.as_mut_slice(),
            &mut self.bias_ih,
            &mut self.bias_hh,
        ]
    }

    fn zero_grads(&self) -> Result<RecurrentGrads, NnError> {
        Ok(RecurrentGrads {
            weight_ih: Matrix::zeros(self.weight_ih.rows(), self.weight_ih.cols())?,
            weight_hh: Matrix::zeros(self.weight_hh.rows(), self.weight_hh.cols())?,
            bias_ih: vec![0.0; self.bias_ih.len()],
            bias_hh: vec![0.0; self.bias_hh.len()],
        })
    }

    /// Returns the pre-activations `x W_ih^T + b_ih + h W_hh^T + b_hh`,
    /// `[batch, gates * H]`.
    fn pre_activations(&self, op: &'static str, x: &Matrix, h: &Matrix) -> Result<Matrix, NnError> {
        if x.cols() != self.input_size() || h.shape() != (x.rows(), self.hidden_size()) {
            return Err(NnError::shape(
                op,
                format!(
                    "the input is {}x{} and the hidden state {}x{}, but the layer takes \
                     [batch, {}] and [batch, {}]",
                    x.rows(),
                    x.cols(),
                    h.rows(),
                    h.cols(),
                    self.input_size(),
                    self.hidden_size()
                ),
            ));
        }
        let bias: Vec<f32> = self
            .bias_ih
            .iter()
            .zip(&self.bias_hh)
            .map(|(a, b)| a + b)
            .collect();
        let mut out = Matrix::zeros(x.rows(), self.weight_ih.rows())?;
        matmul_into_with(
            1.0,
            x.view(),
            self.weight_ih.view().t(),
            0.0,
            out.view_mut(),
            Some(&bias),
            false,
        )?;
        matmul_into(
            1.0,
            h.view(),
            self.weight_hh.view().t(),
            1.0,
            out.view_mut(),
        )?;
        Ok(out)
    }

    /// Adds `dW_ih += dA^T x`, `dW_hh += dA^T h_prev` and the bias sums, and
    /// returns `(dx, dh_prev)`.
    fn accumulate(
        &self,
        grad_pre: &Matrix,
        x: &Matrix,
        h_prev: &Matrix,
        grads: &mut RecurrentGrads,
    ) -> Result<(Matrix, Matrix), NnError> {
        matmul_into(
            1.0,
            grad_pre.view().t(),
            x.view(),
            1.0,
            grads.weight_ih.view_mut(),
        )?;
        matmul_into(
            1.0,
            grad_pre.view().t(),
            h_prev.view(),
            1.0,
            grads.weight_hh.view_mut(),
        )?;
        for row in grad_pre.as_slice().chunks_exact(grad_pre.cols()) {
            for ((bi, bh), g) in grads.bias_ih.iter_mut().zip(&mut grads.bias_hh).zip(row) {
                *bi += g;
                *bh += g;
            }
        }
        let mut dx = Matrix::zeros(x.rows(), self.input_size())?;
        matmul_into(
            1.0,
            grad_pre.view(),
            self.weight_ih.view(),
            0.0,
            dx.view_mut(),
        )?;
        let mut dh = Matrix::zeros(x.rows(), self.hidden_size())?;
        matmul_into(
            1.0,
            grad_pre.view(),
            self.weight_hh.view(),
            0.0,
            dh.view_mut(),
        )?;
        Ok((dx, dh))
    }

    fn check_grads(&self, op: &'static str, grads: &RecurrentGrads) -> Result<(), NnError> {
        if grads.weight_ih.shape() == self.weight_ih.shape()
            && grads.weight_hh.shape() == self.weight_hh.shape()
            && grads.bias_ih.len() == self.bias_ih.len()
            && grads.bias_hh.len() == self.bias_hh.len()
        {
            Ok(())
        } else {
            Err(NnError::shape(
                op,
                "the gradient buffers do not match the layer; create them with zero_grads",
            ))
        }
    }
}

fn check_sequence(op: &'static str, xs: &[Matrix]) -> Result<usize, NnError> {
    let Some(first) = xs.first() else {
        return Err(NnError::shape(op, "the sequence has no time steps"));
    };
    if let Some((t, x)) = xs
        .iter()
        .enumerate()
        .find(|(_, x)| x.shape() != first.shape())
    {
        return Err(NnError::shape(
            op,
            format!(
                "step 0 is {}x{} but step {t} is {}x{}; every step must have the same shape",
                first.rows(),
                first.cols(),
                x.rows(),
                x.cols()
            ),
        ));
    }
    Ok(first.rows())
}

fn check_grad_hidden(
    op: &'static str,
    grad_hidden: &[Matrix],
    steps: usize,
    shape: (usize, usize),
) -> Result<(), NnError> {
    if grad_hidden.len() != steps || grad_hidden.iter().any(|g| g.shape() != shape) {
        return Err(NnError::shape(
            op,
            format!(
                "pass one {}x{} hidden-state gradient per step ({steps} steps), \
                 zero where the loss does not read the state",
                shape.0, shape.1
            ),
        ));
    }
    Ok(())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A one-layer tanh RNN, `h_t = tanh(x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rnn {
    cell: Cell,
}

/// Values kept by [`Rnn::forward_train`] for backward through time.
#[derive(Clone, Debug)]
pub struct RnnTrace {
    inputs: Vec<Matrix>,
    /// `hidden[0]` is the zero initial state and `hidden[t + 1]` is `h_t`.
    hidden: Vec<Matrix>,
}

impl RnnTrace {
    /// Returns `h_t`, `[batch, H]`, for step `t` in `0..T`.
    pub fn hidden(&self, t: usize) -> Option<&Matrix> {
        self.hidden.get(t + 1)
    }

    /// Returns the number of time steps `T`.
    pub fn steps(&self) -> usize {
        self.inputs.len()
    }
}

impl Rnn {
    /// Creates a layer from given `weight_ih_l0` `[H, input]`,
    /// `weight_hh_l0` `[H, H]`, `bias_ih_l0` and `bias_hh_l0` `[H]`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the shapes do not fit together.
    pub fn new(
        weight_ih: Matrix,
        weight_hh: Matrix,
        bias_ih: Vec<f32>,
        bias_hh: Vec<f32>,
    ) -> Result<Self, NnError> {
        let cell = Cell::new("Rnn::new", weight_ih, weight_hh, bias_ih, bias_hh, 1)?;
        Ok(Rnn { cell })
    }

    /// Creates a layer with PyTorch's initialisation, drawing `weight_ih`,
    /// `weight_hh`, `bias_ih`, `bias_hh` in that order from `rng`.
    ///
    /// # Errors
    ///
    /// [`NnError::InvalidConfig`] if a size is 0.
    pub fn init(
        input_size: usize,
        hidden_size: usize,
        rng: &mut SplitMix64,
    ) -> Result<Self, NnError> {
        Ok(Rnn {
            cell: Cell::init(input_size, hidden_size, 1, rng)?,
        })
    }

    /// Returns the input size.
    pub fn input_size(&self) -> usize {
        self.cell.input_size()
    }

    /// Returns the hidden size `H`.
    pub fn hidden_size(&self) -> usize {
        self.cell.hidden_size()
    }

    /// Returns the parameters in the order of [`RECURRENT_PARAMETER_NAMES`].
    pub fn parameters(&self) -> [&[f32]; 4] {
        self.cell.parameters()
    }

    /// Returns the parameters for in-place changes, in the same order.
    pub fn parameters_mut(&mut self) -> [&mut [f32]; 4] {
        self.cell.parameters_mut()
    }

    /// Returns the shapes of the parameters, in the same order.
    pub fn parameter_shapes(&self) -> [Vec<usize>; 4] {
        shapes(&self.cell)
    }

    /// Creates zero gradients for this layer.
    ///
    /// # Errors
    ///
    /// [`NnError::Tensor`] only if a shape overflows `usize`.
    pub fn zero_grads(&self) -> Result<RecurrentGrads, NnError> {
        self.cell.zero_grads()
    }

    /// Returns the next hidden state `[batch, H]` from the input `[batch,
    /// input]` and the previous state `[batch, H]`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the shapes do not fit the layer.
    pub fn step(&self, x: &Matrix, h: &Matrix) -> Result<Matrix, NnError> {
        let mut next = self.cell.pre_activations("Rnn::step", x, h)?;
        next.tanh_in_place();
        Ok(next)
    }

    /// Runs [`Rnn::step`] over the sequence from a zero state and returns
    /// every `h_t`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] for an empty sequence or shapes that do not fit.
    pub fn forward(&self, xs: &[Matrix]) -> Result<Vec<Matrix>, NnError> {
        let trace = self.forward_train(xs)?;
        Ok(trace.hidden.into_iter().skip(1).collect())
    }

    /// Runs [`Rnn::step`] over the sequence and keeps what backward needs.
    ///
    /// # Errors
    ///
    /// As [`Rnn::forward`].
    pub fn forward_train(&self, xs: &[Matrix]) -> Result<RnnTrace, NnError> {
        let batch = check_sequence("Rnn::forward", xs)?;
        let mut hidden = vec![Matrix::zeros(batch, self.hidden_size())?];
        for x in xs {
            let next = self.step(x, &hidden[hidden.len() - 1])?;
            hidden.push(next);
        }
        Ok(RnnTrace {
            inputs: xs.to_vec(),
            hidden,
        })
    }

    /// Back-propagates `grad_hidden[t] = dL/dh_t` (from outside the layer,
    /// one `[batch, H]` matrix per step) through time, adds the parameter
    /// gradients to `grads` and returns `dL/dx_t` for every step.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the gradients do not fit the trace or layer.
    pub fn backward(
        &self,
        trace: &RnnTrace,
        grad_hidden: &[Matrix],
        grads: &mut RecurrentGrads,
    ) -> Result<Vec<Matrix>, NnError> {
        const OP: &str = "Rnn::backward";
        self.cell.check_grads(OP, grads)?;
        let steps = trace.steps();
        let shape = trace.hidden[0].shape();
        check_grad_hidden(OP, grad_hidden, steps, shape)?;
        let mut grad_inputs = vec![Matrix::zeros(0, 0)?; steps];
        let mut carry = Matrix::zeros(shape.0, shape.1)?;
        for t in (0..steps).rev() {
            let h = &trace.hidden[t + 1];
            let mut grad_pre = grad_hidden[t].add(&carry)?;
            for (g, &h) in grad_pre.as_mut_slice().iter_mut().zip(h.as_slice()) {
                *g *= 1.0 - h * h;
            }
            let (dx, dh) =
                self.cell
                    .accumulate(&grad_pre, &trace.inputs[t], &trace.hidden[t], grads)?;
            grad_inputs[t] = dx;
            carry = dh;
        }
        Ok(grad_inputs)
    }
}

fn shapes(cell: &Cell) -> [Vec<usize>; 4] {
    [
        vec![cell.weight_ih.rows(), cell.weight_ih.cols()],
        vec![cell.weight_hh.rows(), cell.weight_hh.cols()],
        vec![cell.bias_ih.len()],
        vec![cell.bias_hh.len()],
    ]
}

/// A one-layer LSTM with PyTorch's gate order `i, f, g, o`.
#[derive(Clone, Debug, PartialEq)]
pub struct Lstm {
    cell: Cell,
}

/// The recurrent state of an [`Lstm`].
#[derive(Clone, Debug, PartialEq)]
pub struct LstmState {
    /// Hidden state `h`, `[batch, H]`; the layer's output.
    pub h: Matrix,
    /// Cell state `c`, `[batch, H]`.
    pub c: Matrix,
}

/// Values kept by [`Lstm::forward_train`] for backward through time.
#[derive(Clone, Debug)]
pub struct LstmTrace {
    inputs: Vec<Matrix>,
    /// `states[0]` is the zero initial state and `states[t + 1]` follows
    /// step `t`.
    states: Vec<LstmState>,
    /// Activated gates `[i, f, g, o]` of each step, `[batch, 4H]`.
    gates: Vec<Matrix>,
}

impl LstmTrace {
    /// Returns `h_t`, `[batch, H]`, for step `t` in `0..T`.
    pub fn hidden(&self, t: usize) -> Option<&Matrix> {
        self.states.get(t + 1).map(|s| &s.h)
    }

    /// Returns the number of time steps `T`.
    pub fn steps(&self) -> usize {
        self.inputs.len()
    }
}

impl Lstm {
    /// Creates a layer from given `weight_ih_l0` `[4H, input]`,
    /// `weight_hh_l0` `[4H, H]`, `bias_ih_l0` and `bias_hh_l0` `[4H]`, with
    /// row blocks in the gate order `i, f, g, o`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the shapes do not fit together.
    pub fn new(
        weight_ih: Matrix,
        weight_hh: Matrix,
        bias_ih: Vec<f32>,
        bias_hh: Vec<f32>,
    ) -> Result<Self, NnError> {
        let cell = Cell::new("Lstm::new", weight_ih, weight_hh, bias_ih, bias_hh, 4)?;
        Ok(Lstm { cell })
    }

    /// Creates a layer with PyTorch's initialisation, drawing `weight_ih`,
    /// `weight_hh`, `bias_ih`, `bias_hh` in that order from `rng`.
    ///
    /// # Errors
    ///
    /// [`NnError::InvalidConfig`] if a size is 0.
    pub fn init(
        input_size: usize,
        hidden_size: usize,
        rng: &mut SplitMix64,
    ) -> Result<Self, NnError> {
        Ok(Lstm {
            cell: Cell::init(input_size, hidden_size, 4, rng)?,
        })
    }

    /// Returns the input size.
    pub fn input_size(&self) -> usize {
        self.cell.input_size()
    }

    /// Returns the hidden size `H`.
    pub fn hidden_size(&self) -> usize {
        self.cell.hidden_size()
    }

    /// Returns the parameters in the order of [`RECURRENT_PARAMETER_NAMES`].
    pub fn parameters(&self) -> [&[f32]; 4] {
        self.cell.parameters()
    }

    /// Returns the parameters for in-place changes, in the same order.
    pub fn parameters_mut(&mut self) -> [&mut [f32]; 4] {
        self.cell.parameters_mut()
    }

    /// Returns the shapes of the parameters, in the same order.
    pub fn parameter_shapes(&self) -> [Vec<usize>; 4] {
        shapes(&self.cell)
    }

    /// Creates zero gradients for this layer.
    ///
    /// # Errors
    ///
    /// [`NnError::Tensor`] only if a shape overflows `usize`.
    pub fn zero_grads(&self) -> Result<RecurrentGrads, NnError> {
        self.cell.zero_grads()
    }

    /// Returns a zero state for `batch` sequences.
    ///
    /// # Errors
    ///
    /// [`NnError::Tensor`] only if the shape overflows `usize`.
    pub fn zero_state(&self, batch: usize) -> Result<LstmState, NnError> {
        Ok(LstmState {
            h: Matrix::zeros(batch, self.hidden_size())?,
            c: Matrix::zeros(batch, self.hidden_size())?,
        })
    }

    /// Returns the next state from the input `[batch, input]` and the
    /// previous state.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the shapes do not fit the layer.
    pub fn step(&self, x: &Matrix, state: &LstmState) -> Result<LstmState, NnError> {
        Ok(self.step_with_gates(x, state)?.0)
    }

    /// One step that also returns the activated gates `[i, f, g, o]`.
    fn step_with_gates(
        &self,
        x: &Matrix,
        state: &LstmState,
    ) -> Result<(LstmState, Matrix), NnError> {
        const OP: &str = "Lstm::step";
        if state.c.shape() != state.h.shape() {
            return Err(NnError::shape(
                OP,
                "the cell state and hidden state differ in shape",
            ));
        }
        let mut gates = self.cell.pre_activations(OP, x, &state.h)?;
        let hidden = self.hidden_size();
        let mut next = self.zero_state(x.rows())?;
        for (((row, c_prev), c), h) in gates
            .as_mut_slice()
            .chunks_exact_mut(4 * hidden)
            .zip(state.c.as_slice().chunks_exact(hidden))
            .zip(next.c.as_mut_slice().chunks_exact_mut(hidden))
            .zip(next.h.as_mut_slice().chunks_exact_mut(hidden))
        {
            let (i, rest) = row.split_at_mut(hidden);
            let (f, rest) = rest.split_at_mut(hidden);
            let (g, o) = rest.split_at_mut(hidden);
            for j in 0..hidden {
                i[j] = sigmoid(i[j]);
                f[j] = sigmoid(f[j]);
                g[j] = g[j].tanh();
                o[j] = sigmoid(o[j]);
                c[j] = f[j] * c_prev[j] + i[j] * g[j];
                h[j] = o[j] * c[j].tanh();
            }
        }
        Ok((next, gates))
    }

    /// Runs [`Lstm::step`] over the sequence from a zero state and returns
    /// every `h_t`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] for an empty sequence or shapes that do not fit.
    pub fn forward(&self, xs: &[Matrix]) -> Result<Vec<Matrix>, NnError> {
        let batch = check_sequence("Lstm::forward", xs)?;
        let mut state = self.zero_state(batch)?;
        let mut hidden = Vec::with_capacity(xs.len());
        for x in xs {
            state = self.step(x, &state)?;
            hidden.push(state.h.clone());
        }
        Ok(hidden)
    }

    /// Runs the steps over the sequence and keeps what backward needs.
    ///
    /// # Errors
    ///
    /// As [`Lstm::forward`].
    pub fn forward_train(&self, xs: &[Matrix]) -> Result<LstmTrace, NnError> {
        let batch = check_sequence("Lstm::forward", xs)?;
        let mut states = vec![self.zero_state(batch)?];
        let mut gates = Vec::with_capacity(xs.len());
        for x in xs {
            let (next, g) = self.step_with_gates(x, &states[states.len() - 1])?;
            states.push(next);
            gates.push(g);
        }
        Ok(LstmTrace {
            inputs: xs.to_vec(),
            states,
            gates,
        })
    }

    /// Back-propagates `grad_hidden[t] = dL/dh_t` (from outside the layer,
    /// one `[batch, H]` matrix per step) through time, adds the parameter
    /// gradients to `grads` and returns `dL/dx_t` for every step.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the gradients do not fit the trace or layer.
    pub fn backward(
        &self,
        trace: &LstmTrace,
        grad_hidden: &[Matrix],
        grads: &mut RecurrentGrads,
    ) -> Result<Vec<Matrix>, NnError> {
        const OP: &str = "Lstm::backward";
        self.cell.check_grads(OP, grads)?;
        let steps = trace.steps();
        let shape = trace.states[0].h.shape();
        check_grad_hidden(OP, grad_hidden, steps, shape)?;
        let hidden = self.hidden_size();
        let mut grad_inputs = vec![Matrix::zeros(0, 0)?; steps];
        let mut carry_h = Matrix::zeros(shape.0, shape.1)?;
        let mut carry_c = Matrix::zeros(shape.0, shape.1)?;
        for t in (0..steps).rev() {
            let dh = grad_hidden[t].add(&carry_h)?;
            let gates = &trace.gates[t];
            let c_prev = &trace.states[t].c;
            let c = &trace.states[t + 1].c;
            let mut grad_pre = Matrix::zeros(shape.0, 4 * hidden)?;
            let mut next_carry_c = Matrix::zeros(shape.0, shape.1)?;
            let rows = gates
                .as_slice()
                .chunks_exact(4 * hidden)
                .zip(grad_pre.as_mut_slice().chunks_exact_mut(4 * hidden))
                .zip(dh.as_slice().chunks_exact(hidden))
                .zip(carry_c.as_slice().chunks_exact(hidden))
                .zip(c_prev.as_slice().chunks_exact(hidden))
                .zip(c.as_slice().chunks_exact(hidden))
                .zip(next_carry_c.as_mut_slice().chunks_exact_mut(hidden));
            for ((((((gate, pre), dh), dc_in), c_prev), c), dc_prev) in rows {
                for j in 0..hidden {
                    let (i, f, g, o) = (
                        gate[j],
                        gate[hidden + j],
                        gate[2 * hidden + j],
                        gate[3 * hidden + j],
                    );
                    let tanh_c = c[j].tanh();
                    let dc = dc_in[j] + dh[j] * o * (1.0 - tanh_c * tanh_c);
                    pre[j] = dc * g * i * (1.0 - i);
                    pre[hidden + j] = dc * c_prev[j] * f * (1.0 - f);
                    pre[2 * hidden + j] = dc * i * (1.0 - g * g);
                    pre[3 * hidden + j] = dh[j] * tanh_c * o * (1.0 - o);
                    dc_prev[j] = dc * f;
                }
            }
            let (dx, dh_prev) =
                self.cell
                    .accumulate(&grad_pre, &trace.inputs[t], &trace.states[t].h, grads)?;
            grad_inputs[t] = dx;
            carry_h = dh_prev;
            carry_c = next_carry_c;
        }
        Ok(grad_inputs)
    }
}
