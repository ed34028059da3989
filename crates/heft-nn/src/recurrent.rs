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
use heft_kernels::elementwise as ew;
use heft_kernels::gemm::{Epilogue, Gemm};
use heft_tensor::{matmul_into, matmul_into_with, MatMut, MatRef, Matrix, TensorError};

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
        let rows = gates.checked_mul(hidden_size).ok_or_else(|| {
            NnError::config(
                "layer size",
                format!(
                    "a hidden size of {hidden_size} gives {gates} x {hidden_size} gate rows, \
                     more than usize can count; use a smaller hidden size"
                ),
            )
        })?;
        let bound = 1.0 / (hidden_size as f32).sqrt();
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

    /// Writes `x W_ih^T + b_ih + b_hh` for every row of `inputs` (`[rows,
    /// input]`) into `out` (`[rows, gates * H]`) with one GEMM, so that the
    /// recurrence only adds `h_(t-1) W_hh^T`. `bias` is scratch for the
    /// summed biases.
    fn input_projection(
        &self,
        gemm: &Gemm,
        inputs: &[f32],
        rows: usize,
        bias: &mut Vec<f32>,
        out: &mut [f32],
    ) -> Result<(), NnError> {
        bias.clear();
        bias.extend(self.bias_ih.iter().zip(&self.bias_hh).map(|(a, b)| a + b));
        run_gemm(
            gemm,
            1.0,
            MatRef::row_major(inputs, rows, self.input_size())?,
            self.weight_ih.view().t(),
            0.0,
            MatMut::row_major(out, rows, self.weight_ih.rows())?,
            Some(bias),
        )?;
        Ok(())
    }

    /// Adds `h_prev W_hh^T` (`h_prev` `[batch, H]`) to `out` (`[batch,
    /// gates * H]`).
    fn add_recurrent(
        &self,
        gemm: &Gemm,
        h_prev: &[f32],
        batch: usize,
        out: &mut [f32],
    ) -> Result<(), NnError> {
        run_gemm(
            gemm,
            1.0,
            MatRef::row_major(h_prev, batch, self.hidden_size())?,
            self.weight_hh.view().t(),
            1.0,
            MatMut::row_major(out, batch, self.weight_hh.rows())?,
            None,
        )?;
        Ok(())
    }

    /// Writes `dh_prev = dA W_hh` (`dA` `[batch, gates * H]`) into `out`
    /// (`[batch, H]`).
    fn recurrent_grad(
        &self,
        gemm: &Gemm,
        grad_pre: &[f32],
        batch: usize,
        out: &mut [f32],
    ) -> Result<(), NnError> {
        run_gemm(
            gemm,
            1.0,
            MatRef::row_major(grad_pre, batch, self.weight_hh.rows())?,
            self.weight_hh.view(),
            0.0,
            MatMut::row_major(out, batch, self.hidden_size())?,
            None,
        )?;
        Ok(())
    }

    /// Adds the parameter gradients of all `steps` at once and writes
    /// `dL/dx` into `grad_inputs` (`[steps * batch, input]`). `grad_pre`
    /// (`[steps * batch, gates * H]`) and `inputs` are time-major, and
    /// `hidden` (`[(steps + 1) * batch, H]`) starts with the zero initial
    /// state, so its first `steps * batch` rows are each step's `h_(t-1)`.
    /// One GEMM each gives `dW_ih += dA^T X`, `dW_hh += dA^T H_prev` and
    /// `dX = dA W_ih`.
    #[allow(clippy::too_many_arguments)]
    fn accumulate_steps(
        &self,
        gemm: &Gemm,
        grad_pre: &[f32],
        inputs: &[f32],
        hidden: &[f32],
        batch: usize,
        steps: usize,
        grads: &mut RecurrentGrads,
        grad_inputs: &mut Vec<f32>,
    ) -> Result<(), NnError> {
        let rows = steps * batch;
        let width = self.weight_ih.rows();
        let hidden_size = self.hidden_size();
        let grad_pre_all = MatRef::row_major(grad_pre, rows, width)?;
        run_gemm(
            gemm,
            1.0,
            grad_pre_all.t(),
            MatRef::row_major(inputs, rows, self.input_size())?,
            1.0,
            grads.weight_ih.view_mut(),
            None,
        )?;
        // The initial state is zero, so step 0 adds nothing to dW_hh.
        if steps > 1 {
            let later = rows - batch;
            run_gemm(
                gemm,
                1.0,
                MatRef::row_major(&grad_pre[batch * width..rows * width], later, width)?.t(),
                MatRef::row_major(
                    &hidden[batch * hidden_size..rows * hidden_size],
                    later,
                    hidden_size,
                )?,
                1.0,
                grads.weight_hh.view_mut(),
                None,
            )?;
        }
        for row in grad_pre[..rows * width].chunks_exact(width) {
            for ((bi, bh), g) in grads.bias_ih.iter_mut().zip(&mut grads.bias_hh).zip(row) {
                *bi += g;
                *bh += g;
            }
        }
        // The GEMM with beta = 0 writes every element.
        resize_for_overwrite(grad_inputs, rows * self.input_size());
        run_gemm(
            gemm,
            1.0,
            grad_pre_all,
            self.weight_ih.view(),
            0.0,
            MatMut::row_major(grad_inputs, rows, self.input_size())?,
            None,
        )?;
        Ok(())
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

/// Computes `C <- alpha * A * B + beta * C` with `gemm`, then adds
/// `bias[j]` to column `j` if a bias is given. The checks and the result
/// are those of [`matmul_into_with`], but `gemm` sets whether the product
/// may use the rayon pool.
pub(crate) fn run_gemm(
    gemm: &Gemm,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    bias: Option<&[f32]>,
) -> Result<(), NnError> {
    gemm.run_with(alpha, a, b, beta, c, Epilogue { bias, relu: false })
        .map_err(TensorError::from)?;
    Ok(())
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

/// Concatenates the steps `xs` into one time-major `[T * batch, input]`
/// buffer.
fn flatten_steps(xs: &[Matrix], out: &mut Vec<f32>) {
    out.clear();
    for x in xs {
        out.extend_from_slice(x.as_slice());
    }
}

/// Splits a time-major `[steps * batch, cols]` buffer into one `[batch,
/// cols]` matrix per step.
fn split_steps(
    data: &[f32],
    steps: usize,
    batch: usize,
    cols: usize,
) -> Result<Vec<Matrix>, NnError> {
    let step_len = batch * cols;
    (0..steps)
        .map(|t| {
            Ok(Matrix::from_slice(
                batch,
                cols,
                &data[t * step_len..(t + 1) * step_len],
            )?)
        })
        .collect()
}

/// Checks that a trace's inputs fill `steps * batch` rows of `input_size`.
fn check_trace_inputs(
    op: &'static str,
    inputs: &[f32],
    batch: usize,
    steps: usize,
    input_size: usize,
) -> Result<(), NnError> {
    if batch == 0 || steps == 0 || inputs.len() != steps * batch * input_size {
        return Err(NnError::shape(
            op,
            format!(
                "{} input values cannot be {steps} steps of {batch} rows of {input_size}; \
                 batch and steps must be at least 1",
                inputs.len()
            ),
        ));
    }
    Ok(())
}

/// Scratch buffers of backward through time, reused across batches.
#[derive(Clone, Debug, Default)]
pub(crate) struct RecurrentScratch {
    /// `dL/d(pre-activations)` of every step, `[T * batch, gates * H]`.
    grad_pre: Vec<f32>,
    /// `dL/dx_t` of every step, `[T * batch, input]`, time-major.
    pub(crate) grad_inputs: Vec<f32>,
    /// `dL/dh_t` from later steps, `[batch, H]`.
    carry_h: Vec<f32>,
    /// `dL/dc_t` from later steps, `[batch, H]` (LSTM only).
    carry_c: Vec<f32>,
    /// Total `dL/dh_t` of the current step, `[batch, H]`.
    grad_h: Vec<f32>,
}

impl RecurrentScratch {
    /// Sizes the buffers for backward through `rows` rows of `width`
    /// pre-activations in steps of `batch` rows. The carried gradients
    /// start at zero. Every step writes its rows of `grad_pre` and all of
    /// `grad_h` before reading them, so those are only resized.
    fn reset(&mut self, rows: usize, width: usize, batch: usize, hidden: usize) {
        resize_for_overwrite(&mut self.grad_pre, rows * width);
        resize_for_overwrite(&mut self.grad_h, batch * hidden);
        for buffer in [&mut self.carry_h, &mut self.carry_c] {
            buffer.clear();
            buffer.resize(batch * hidden, 0.0);
        }
    }
}

/// Sets the length of `buffer`, whose contents the caller writes in full
/// before reading them, to `len`. Unlike clearing and refilling it, this
/// writes only the elements beyond the old length.
pub(crate) fn resize_for_overwrite(buffer: &mut Vec<f32>, len: usize) {
    buffer.resize(len, 0.0);
}

/// Applies the LSTM gate nonlinearities to `gates` (`[batch, 4H]`
/// pre-activations, overwritten with `[i, f, g, o]`) and writes `c_t`,
/// `tanh(c_t)` and `h_t` (`[batch, H]` each) in one pass over each row.
fn lstm_cell_update(
    gates: &mut [f32],
    c_prev: &[f32],
    c: &mut [f32],
    tanh_c: &mut [f32],
    h: &mut [f32],
    hidden: usize,
) {
    let rows = gates
        .chunks_exact_mut(4 * hidden)
        .zip(c_prev.chunks_exact(hidden))
        .zip(c.chunks_exact_mut(hidden))
        .zip(tanh_c.chunks_exact_mut(hidden))
        .zip(h.chunks_exact_mut(hidden));
    for ((((row, c_prev), c), tanh_c), h) in rows {
        let (ifg, o) = row.split_at_mut(3 * hidden);
        ew::sigmoid_in_place(&mut ifg[..2 * hidden]);
        ew::tanh_in_place(&mut ifg[2 * hidden..]);
        ew::sigmoid_in_place(o);
        let (i, fg) = ifg.split_at(hidden);
        let (f, g) = fg.split_at(hidden);
        for j in 0..hidden {
            c[j] = f[j] * c_prev[j] + i[j] * g[j];
        }
        tanh_c.copy_from_slice(c);
        ew::tanh_in_place(tanh_c);
        for j in 0..hidden {
            h[j] = o[j] * tanh_c[j];
        }
    }
}

/// A one-layer tanh RNN, `h_t = tanh(x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rnn {
    cell: Cell,
}

/// Values kept by [`Rnn::forward_train`] for backward through time. Every
/// buffer is time-major: row `t * batch + b` belongs to sequence `b` at
/// step `t`.
#[derive(Clone, Debug, Default)]
pub struct RnnTrace {
    batch: usize,
    steps: usize,
    /// Inputs `x_t`, `[T * batch, input]`.
    pub(crate) inputs: Vec<f32>,
    /// `b_ih + b_hh`.
    bias: Vec<f32>,
    /// `[(T + 1) * batch, H]`: the zero initial state, then `h_t` of each
    /// step.
    hidden: Vec<f32>,
}

impl RnnTrace {
    /// Creates the trace of an empty batch of `steps` steps, which the
    /// layer never runs on.
    pub(crate) fn empty(steps: usize) -> Self {
        RnnTrace {
            steps,
            ..RnnTrace::default()
        }
    }

    /// Returns `h_t`, `[batch, H]` row-major, for step `t` in `0..T`.
    pub fn hidden(&self, t: usize) -> Option<&[f32]> {
        if t >= self.steps {
            return None;
        }
        let len = self.hidden.len() / (self.steps + 1);
        self.hidden.get((t + 1) * len..(t + 2) * len)
    }

    /// Returns the number of time steps `T`.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Returns the number of sequences.
    pub fn batch(&self) -> usize {
        self.batch
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
        split_steps(
            &trace.hidden[trace.batch * self.hidden_size()..],
            trace.steps,
            trace.batch,
            self.hidden_size(),
        )
    }

    /// Runs the recurrence over the sequence and keeps what backward needs.
    ///
    /// # Errors
    ///
    /// As [`Rnn::forward`].
    pub fn forward_train(&self, xs: &[Matrix]) -> Result<RnnTrace, NnError> {
        const OP: &str = "Rnn::forward";
        let batch = check_sequence(OP, xs)?;
        if xs[0].cols() != self.input_size() {
            return Err(NnError::shape(
                OP,
                format!(
                    "the input is {}x{}, but the layer takes [batch, {}]",
                    xs[0].rows(),
                    xs[0].cols(),
                    self.input_size()
                ),
            ));
        }
        let mut trace = RnnTrace::default();
        flatten_steps(xs, &mut trace.inputs);
        self.forward_trace(&Gemm::new(), batch, xs.len(), &mut trace)?;
        Ok(trace)
    }

    /// Runs the recurrence on `trace.inputs` (`[steps * batch, input]`,
    /// time-major) and fills the rest of `trace`, reusing its buffers.
    /// The input projection of all steps is one GEMM. Every GEMM runs with
    /// `gemm`.
    pub(crate) fn forward_trace(
        &self,
        gemm: &Gemm,
        batch: usize,
        steps: usize,
        trace: &mut RnnTrace,
    ) -> Result<(), NnError> {
        check_trace_inputs(
            "Rnn::forward",
            &trace.inputs,
            batch,
            steps,
            self.input_size(),
        )?;
        let hidden = self.hidden_size();
        let step_len = batch * hidden;
        trace.batch = batch;
        trace.steps = steps;
        // The input projection and the steps write every state after the
        // initial one.
        resize_for_overwrite(&mut trace.hidden, (steps + 1) * step_len);
        let (initial, states) = trace.hidden.split_at_mut(step_len);
        initial.fill(0.0);
        self.cell
            .input_projection(gemm, &trace.inputs, steps * batch, &mut trace.bias, states)?;
        let mut h_prev: &[f32] = initial;
        for (t, h) in states.chunks_exact_mut(step_len).enumerate() {
            // h_(-1) is zero, so step 0 has no recurrent term.
            if t > 0 {
                self.cell.add_recurrent(gemm, h_prev, batch, h)?;
            }
            ew::tanh_in_place(h);
            h_prev = h;
        }
        Ok(())
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
        check_grad_hidden(
            OP,
            grad_hidden,
            trace.steps,
            (trace.batch, self.hidden_size()),
        )?;
        let mut flat = Vec::new();
        flatten_steps(grad_hidden, &mut flat);
        let mut scratch = RecurrentScratch::default();
        self.backward_trace(&Gemm::new(), trace, &flat, grads, &mut scratch)?;
        split_steps(
            &scratch.grad_inputs,
            trace.steps,
            trace.batch,
            self.input_size(),
        )
    }

    /// Backward through time from `grad_hidden` (`[T * batch, H]`,
    /// time-major), leaving `dL/dx` in `scratch.grad_inputs`. Every GEMM
    /// runs with `gemm`.
    pub(crate) fn backward_trace(
        &self,
        gemm: &Gemm,
        trace: &RnnTrace,
        grad_hidden: &[f32],
        grads: &mut RecurrentGrads,
        scratch: &mut RecurrentScratch,
    ) -> Result<(), NnError> {
        const OP: &str = "Rnn::backward";
        self.cell.check_grads(OP, grads)?;
        let (batch, steps, hidden) = (trace.batch, trace.steps, self.hidden_size());
        let step_len = batch * hidden;
        if trace.hidden.len() != (steps + 1) * step_len || grad_hidden.len() != steps * step_len {
            return Err(NnError::shape(
                OP,
                format!(
                    "pass {steps} steps of {batch}x{hidden} hidden-state gradients for a trace \
                     of this layer"
                ),
            ));
        }
        scratch.reset(steps * batch, hidden, batch, hidden);
        for t in (0..steps).rev() {
            let h = &trace.hidden[(t + 1) * step_len..(t + 2) * step_len];
            let grad_pre = &mut scratch.grad_pre[t * step_len..(t + 1) * step_len];
            let outside = &grad_hidden[t * step_len..(t + 1) * step_len];
            for (((g, &o), &c), &h) in grad_pre
                .iter_mut()
                .zip(outside)
                .zip(&scratch.carry_h)
                .zip(h)
            {
                *g = (o + c) * (1.0 - h * h);
            }
            if t > 0 {
                self.cell
                    .recurrent_grad(gemm, grad_pre, batch, &mut scratch.carry_h)?;
            }
        }
        self.cell.accumulate_steps(
            gemm,
            &scratch.grad_pre,
            &trace.inputs,
            &trace.hidden,
            batch,
            steps,
            grads,
            &mut scratch.grad_inputs,
        )
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

/// Values kept by [`Lstm::forward_train`] for backward through time. Every
/// buffer is time-major: row `t * batch + b` belongs to sequence `b` at
/// step `t`.
#[derive(Clone, Debug, Default)]
pub struct LstmTrace {
    batch: usize,
    steps: usize,
    /// Inputs `x_t`, `[T * batch, input]`.
    pub(crate) inputs: Vec<f32>,
    /// `b_ih + b_hh`.
    bias: Vec<f32>,
    /// Activated gates `[i, f, g, o]` of each step, `[T * batch, 4H]`.
    gates: Vec<f32>,
    /// `[(T + 1) * batch, H]`: the zero initial state, then `h_t` of each
    /// step.
    h: Vec<f32>,
    /// Cell states, laid out as `h`.
    c: Vec<f32>,
    /// `tanh(c_t)` of each step, `[T * batch, H]`.
    tanh_c: Vec<f32>,
}

impl LstmTrace {
    /// Creates the trace of an empty batch of `steps` steps, which the
    /// layer never runs on.
    pub(crate) fn empty(steps: usize) -> Self {
        LstmTrace {
            steps,
            ..LstmTrace::default()
        }
    }

    /// Returns `h_t`, `[batch, H]` row-major, for step `t` in `0..T`.
    pub fn hidden(&self, t: usize) -> Option<&[f32]> {
        if t >= self.steps {
            return None;
        }
        let len = self.h.len() / (self.steps + 1);
        self.h.get((t + 1) * len..(t + 2) * len)
    }

    /// Returns the number of time steps `T`.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Returns the number of sequences.
    pub fn batch(&self) -> usize {
        self.batch
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
    /// [`NnError::InvalidConfig`] if a size is 0 or `4 * hidden_size`
    /// overflows `usize`, and [`NnError::Tensor`] if a weight is too large
    /// to allocate.
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
        const OP: &str = "Lstm::step";
        if state.c.shape() != state.h.shape() {
            return Err(NnError::shape(
                OP,
                "the cell state and hidden state differ in shape",
            ));
        }
        let mut gates = self.cell.pre_activations(OP, x, &state.h)?;
        let mut next = self.zero_state(x.rows())?;
        let mut tanh_c = vec![0.0; next.c.len()];
        lstm_cell_update(
            gates.as_mut_slice(),
            state.c.as_slice(),
            next.c.as_mut_slice(),
            &mut tanh_c,
            next.h.as_mut_slice(),
            self.hidden_size(),
        );
        Ok(next)
    }

    /// Runs [`Lstm::step`] over the sequence from a zero state and returns
    /// every `h_t`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] for an empty sequence or shapes that do not fit.
    pub fn forward(&self, xs: &[Matrix]) -> Result<Vec<Matrix>, NnError> {
        let trace = self.forward_train(xs)?;
        split_steps(
            &trace.h[trace.batch * self.hidden_size()..],
            trace.steps,
            trace.batch,
            self.hidden_size(),
        )
    }

    /// Runs the steps over the sequence and keeps what backward needs.
    ///
    /// # Errors
    ///
    /// As [`Lstm::forward`].
    pub fn forward_train(&self, xs: &[Matrix]) -> Result<LstmTrace, NnError> {
        const OP: &str = "Lstm::forward";
        let batch = check_sequence(OP, xs)?;
        if xs[0].cols() != self.input_size() {
            return Err(NnError::shape(
                OP,
                format!(
                    "the input is {}x{}, but the layer takes [batch, {}]",
                    xs[0].rows(),
                    xs[0].cols(),
                    self.input_size()
                ),
            ));
        }
        let mut trace = LstmTrace::default();
        flatten_steps(xs, &mut trace.inputs);
        self.forward_trace(&Gemm::new(), batch, xs.len(), &mut trace)?;
        Ok(trace)
    }

    /// Runs the steps on `trace.inputs` (`[steps * batch, input]`,
    /// time-major) and fills the rest of `trace`, reusing its buffers. The
    /// input projection of all steps is one GEMM, so each step only adds
    /// `h_(t-1) W_hh^T` before the fused cell update. Every GEMM runs with
    /// `gemm`.
    ///
    /// NOTE: rows of sequences that ended before step `t` are still
    /// computed, up to the longest sequence in the batch. The classifier
    /// never reads those states and back-propagates zero through them.
    pub(crate) fn forward_trace(
        &self,
        gemm: &Gemm,
        batch: usize,
        steps: usize,
        trace: &mut LstmTrace,
    ) -> Result<(), NnError> {
        check_trace_inputs(
            "Lstm::forward",
            &trace.inputs,
            batch,
            steps,
            self.input_size(),
        )?;
        let hidden = self.hidden_size();
        let step_len = batch * hidden;
        let gates_len = 4 * step_len;
        trace.batch = batch;
        trace.steps = steps;
        // The input projection and the steps write every element except
        // the zero initial states.
        for (buffer, len) in [
            (&mut trace.gates, steps * gates_len),
            (&mut trace.h, (steps + 1) * step_len),
            (&mut trace.c, (steps + 1) * step_len),
            (&mut trace.tanh_c, steps * step_len),
        ] {
            resize_for_overwrite(buffer, len);
        }
        trace.h[..step_len].fill(0.0);
        trace.c[..step_len].fill(0.0);
        self.cell.input_projection(
            gemm,
            &trace.inputs,
            steps * batch,
            &mut trace.bias,
            &mut trace.gates,
        )?;
        for t in 0..steps {
            let gates = &mut trace.gates[t * gates_len..(t + 1) * gates_len];
            let (h_done, h_rest) = trace.h.split_at_mut((t + 1) * step_len);
            let (c_done, c_rest) = trace.c.split_at_mut((t + 1) * step_len);
            let h_prev = &h_done[t * step_len..];
            // h_(-1) is zero, so step 0 has no recurrent term.
            if t > 0 {
                self.cell.add_recurrent(gemm, h_prev, batch, gates)?;
            }
            lstm_cell_update(
                gates,
                &c_done[t * step_len..],
                &mut c_rest[..step_len],
                &mut trace.tanh_c[t * step_len..(t + 1) * step_len],
                &mut h_rest[..step_len],
                hidden,
            );
        }
        Ok(())
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
        check_grad_hidden(
            OP,
            grad_hidden,
            trace.steps,
            (trace.batch, self.hidden_size()),
        )?;
        let mut flat = Vec::new();
        flatten_steps(grad_hidden, &mut flat);
        let mut scratch = RecurrentScratch::default();
        self.backward_trace(&Gemm::new(), trace, &flat, grads, &mut scratch)?;
        split_steps(
            &scratch.grad_inputs,
            trace.steps,
            trace.batch,
            self.input_size(),
        )
    }

    /// Backward through time from `grad_hidden` (`[T * batch, H]`,
    /// time-major), leaving `dL/dx` in `scratch.grad_inputs`. Each step
    /// computes the gate gradients and one `[batch, 4H] x [4H, H]` GEMM for
    /// `dh_(t-1)`. The weight and input gradients of all steps follow in
    /// one GEMM each. Every GEMM runs with `gemm`.
    pub(crate) fn backward_trace(
        &self,
        gemm: &Gemm,
        trace: &LstmTrace,
        grad_hidden: &[f32],
        grads: &mut RecurrentGrads,
        scratch: &mut RecurrentScratch,
    ) -> Result<(), NnError> {
        const OP: &str = "Lstm::backward";
        self.cell.check_grads(OP, grads)?;
        let (batch, steps, hidden) = (trace.batch, trace.steps, self.hidden_size());
        let step_len = batch * hidden;
        let gates_len = 4 * step_len;
        if trace.h.len() != (steps + 1) * step_len || grad_hidden.len() != steps * step_len {
            return Err(NnError::shape(
                OP,
                format!(
                    "pass {steps} steps of {batch}x{hidden} hidden-state gradients for a trace \
                     of this layer"
                ),
            ));
        }
        scratch.reset(steps * batch, 4 * hidden, batch, hidden);
        for t in (0..steps).rev() {
            for ((dh, &outside), &carry) in scratch
                .grad_h
                .iter_mut()
                .zip(&grad_hidden[t * step_len..(t + 1) * step_len])
                .zip(&scratch.carry_h)
            {
                *dh = outside + carry;
            }
            let grad_pre = &mut scratch.grad_pre[t * gates_len..(t + 1) * gates_len];
            let rows = trace.gates[t * gates_len..(t + 1) * gates_len]
                .chunks_exact(4 * hidden)
                .zip(grad_pre.chunks_exact_mut(4 * hidden))
                .zip(scratch.grad_h.chunks_exact(hidden))
                .zip(scratch.carry_c.chunks_exact_mut(hidden))
                .zip(trace.c[t * step_len..(t + 1) * step_len].chunks_exact(hidden))
                .zip(trace.tanh_c[t * step_len..(t + 1) * step_len].chunks_exact(hidden));
            for (((((gate, pre), dh), dc_carry), c_prev), tanh_c) in rows {
                for j in 0..hidden {
                    let (i, f, g, o) = (
                        gate[j],
                        gate[hidden + j],
                        gate[2 * hidden + j],
                        gate[3 * hidden + j],
                    );
                    let tanh_c = tanh_c[j];
                    let dc = dc_carry[j] + dh[j] * o * (1.0 - tanh_c * tanh_c);
                    pre[j] = dc * g * i * (1.0 - i);
                    pre[hidden + j] = dc * c_prev[j] * f * (1.0 - f);
                    pre[2 * hidden + j] = dc * i * (1.0 - g * g);
                    pre[3 * hidden + j] = dh[j] * tanh_c * o * (1.0 - o);
                    // dL/dc_(t-1), carried to the previous step.
                    dc_carry[j] = dc * f;
                }
            }
            if t > 0 {
                self.cell
                    .recurrent_grad(gemm, grad_pre, batch, &mut scratch.carry_h)?;
            }
        }
        self.cell.accumulate_steps(
            gemm,
            &scratch.grad_pre,
            &trace.inputs,
            &trace.h,
            batch,
            steps,
            grads,
            &mut scratch.grad_inputs,
        )
    }
}
