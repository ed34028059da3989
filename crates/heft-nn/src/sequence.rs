//! A sequence classifier: `Embedding -> RNN or LSTM -> Linear` on the
//! hidden state at each sequence's last true token.
//!
//! Token ids are `[batch, seq_len]` row-major, right-padded with id 0, and
//! `lengths[b]` in `1..=seq_len` is the true length of sequence `b`. The
//! logits `[batch, classes]` are `fc(h_(lengths[b] - 1))`. The recurrence
//! is causal, so padding after the last true token never changes a
//! prediction. Parameter names follow a PyTorch module with attributes
//! `emb`, `rnn` and `fc`: `emb.weight`, `rnn.weight_ih_l0`,
//! `rnn.weight_hh_l0`, `rnn.bias_ih_l0`, `rnn.bias_hh_l0`, `fc.weight`,
//! `fc.bias`.
//!
//! ```
//! use heft_nn::{RecurrentKind, SequenceClassifier, SplitMix64, TokenBatch};
//!
//! let mut rng = SplitMix64::new(0);
//! // vocab 5, embedding 3, hidden 4, 2 classes
//! let model = SequenceClassifier::init(RecurrentKind::Lstm, 5, 3, 4, 2, &mut rng)?;
//! // Two sequences of up to 3 tokens; the second has length 1 and two pads.
//! let ids = [1, 2, 3, 4, 0, 0];
//! let lengths = [3, 1];
//! let logits = model.forward(&TokenBatch::new(&ids, &lengths, 3)?)?;
//! assert_eq!(logits.shape(), (2, 2));
//! // The second sequence alone gives the same logits as with its padding.
//! let alone = model.forward(&TokenBatch::new(&[4], &[1], 1)?)?;
//! assert_eq!(alone.row(0), logits.row(1));
//! # Ok::<(), heft_nn::NnError>(())
//! ```

use crate::embedding::Embedding;
use crate::error::NnError;
use crate::linear::{Linear, LinearGrads, LinearInit};
use crate::recurrent::{
    resize_for_overwrite, run_gemm, Lstm, LstmTrace, RecurrentGrads, RecurrentScratch, Rnn,
    RnnTrace, RECURRENT_PARAMETER_NAMES,
};
use crate::rng::SplitMix64;
use heft_kernels::gemm::Gemm;
use heft_tensor::{MatMut, MatRef, Matrix};

/// The recurrent layer of a [`SequenceClassifier`].
#[derive(Clone, Debug, PartialEq)]
pub enum RecurrentLayer {
    /// A tanh RNN.
    Rnn(Rnn),
    /// An LSTM.
    Lstm(Lstm),
}

impl RecurrentLayer {
    fn input_size(&self) -> usize {
        match self {
            RecurrentLayer::Rnn(r) => r.input_size(),
            RecurrentLayer::Lstm(l) => l.input_size(),
        }
    }

    fn hidden_size(&self) -> usize {
        match self {
            RecurrentLayer::Rnn(r) => r.hidden_size(),
            RecurrentLayer::Lstm(l) => l.hidden_size(),
        }
    }

    fn parameters(&self) -> [&[f32]; 4] {
        match self {
            RecurrentLayer::Rnn(r) => r.parameters(),
            RecurrentLayer::Lstm(l) => l.parameters(),
        }
    }

    fn parameters_mut(&mut self) -> [&mut [f32]; 4] {
        match self {
            RecurrentLayer::Rnn(r) => r.parameters_mut(),
            RecurrentLayer::Lstm(l) => l.parameters_mut(),
        }
    }

    fn zero_grads(&self) -> Result<RecurrentGrads, NnError> {
        match self {
            RecurrentLayer::Rnn(r) => r.zero_grads(),
            RecurrentLayer::Lstm(l) => l.zero_grads(),
        }
    }
}

/// Kind of recurrent layer that [`SequenceClassifier::init`] builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecurrentKind {
    /// A tanh RNN.
    Rnn,
    /// An LSTM.
    #[default]
    Lstm,
}

/// `Embedding -> RNN or LSTM -> Linear` on the last true token.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceClassifier {
    emb: Embedding,
    rnn: RecurrentLayer,
    fc: Linear,
}

/// Token ids of a batch with their true lengths.
#[derive(Clone, Copy, Debug)]
pub struct TokenBatch<'a> {
    ids: &'a [u32],
    lengths: &'a [usize],
    seq_len: usize,
}

impl<'a> TokenBatch<'a> {
    /// Wraps `ids` (`[lengths.len(), seq_len]`, row-major) and the true
    /// lengths.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if `ids.len() != lengths.len() * seq_len` or a
    /// length is outside `1..=seq_len`.
    pub fn new(ids: &'a [u32], lengths: &'a [usize], seq_len: usize) -> Result<Self, NnError> {
        const OP: &str = "TokenBatch::new";
        if Some(ids.len()) != lengths.len().checked_mul(seq_len) {
            return Err(NnError::shape(
                OP,
                format!(
                    "{} ids cannot be {} sequences of {seq_len} tokens",
                    ids.len(),
                    lengths.len()
                ),
            ));
        }
        if let Some((b, len)) = lengths
            .iter()
            .enumerate()
            .find(|(_, &l)| l == 0 || l > seq_len)
        {
            return Err(NnError::shape(
                OP,
                format!("sequence {b} has length {len} but lengths must be in 1..={seq_len}"),
            ));
        }
        Ok(TokenBatch {
            ids,
            lengths,
            seq_len,
        })
    }

    /// Returns the number of sequences.
    pub fn batch(&self) -> usize {
        self.lengths.len()
    }
}

/// Values kept by [`SequenceClassifier::forward_train`] for backward.
#[derive(Clone, Debug)]
pub struct SequenceActivations {
    trace: RecurrentTrace,
    /// Hidden state at each sequence's last true token, `[batch, H]`.
    last_hidden: Matrix,
    /// Output of `fc`, `[batch, classes]`.
    pub logits: Matrix,
}

/// The trace of whichever recurrent layer ran.
#[derive(Clone, Debug)]
pub(crate) enum RecurrentTrace {
    Rnn(RnnTrace),
    Lstm(LstmTrace),
}

impl Default for RecurrentTrace {
    fn default() -> Self {
        RecurrentTrace::Lstm(LstmTrace::default())
    }
}

impl RecurrentTrace {
    /// Creates the trace of an empty batch of `steps` steps through `layer`.
    fn empty(layer: &RecurrentLayer, steps: usize) -> Self {
        match layer {
            RecurrentLayer::Rnn(_) => RecurrentTrace::Rnn(RnnTrace::empty(steps)),
            RecurrentLayer::Lstm(_) => RecurrentTrace::Lstm(LstmTrace::empty(steps)),
        }
    }

    /// Returns `h_t` of every sequence, `[batch, H]`, for step `t`.
    fn hidden(&self, t: usize) -> Option<&[f32]> {
        match self {
            RecurrentTrace::Rnn(tr) => tr.hidden(t),
            RecurrentTrace::Lstm(tr) => tr.hidden(t),
        }
    }

    /// Returns the number of sequences and of steps.
    fn shape(&self) -> (usize, usize) {
        match self {
            RecurrentTrace::Rnn(tr) => (tr.batch(), tr.steps()),
            RecurrentTrace::Lstm(tr) => (tr.batch(), tr.steps()),
        }
    }
}

impl SequenceActivations {
    /// Creates empty activations for [`SequenceClassifier::forward_train_into`]
    /// to fill.
    pub(crate) fn empty() -> Result<Self, NnError> {
        Ok(SequenceActivations {
            trace: RecurrentTrace::default(),
            last_hidden: Matrix::zeros(0, 0)?,
            logits: Matrix::zeros(0, 0)?,
        })
    }
}

/// Backward buffers that training reuses across batches.
#[derive(Clone, Debug, Default)]
pub(crate) struct SequenceScratch {
    pub(crate) recurrent: RecurrentScratch,
    /// `dL/d last_hidden` from `fc`, `[batch, H]`.
    grad_last: Vec<f32>,
    /// `dL/dh_t` from `fc`, `[T * batch, H]` time-major, non-zero only at
    /// each sequence's last true token.
    grad_hidden: Vec<f32>,
}

/// Gradients of a [`SequenceClassifier`].
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceGrads {
    /// `dL/d emb.weight`.
    pub emb: Matrix,
    /// Gradients of the recurrent layer.
    pub rnn: RecurrentGrads,
    /// Gradients of `fc`.
    pub fc: LinearGrads,
}

impl SequenceGrads {
    /// Creates zero gradients for `model`.
    ///
    /// # Errors
    ///
    /// [`NnError::Tensor`] only if a shape overflows `usize`.
    pub fn zeros_like(model: &SequenceClassifier) -> Result<Self, NnError> {
        Ok(SequenceGrads {
            emb: Matrix::zeros(model.emb.vocab(), model.emb.dim())?,
            rnn: model.rnn.zero_grads()?,
            fc: LinearGrads::zeros_like(&model.fc)?,
        })
    }

    /// Sets every gradient to 0.
    pub fn zero(&mut self) {
        self.emb.as_mut_slice().fill(0.0);
        self.rnn.zero();
        self.fc.weight.as_mut_slice().fill(0.0);
        self.fc.bias.fill(0.0);
    }

    /// Returns the gradients in the order of
    /// [`SequenceClassifier::parameter_names`].
    pub fn as_slices(&self) -> Vec<&[f32]> {
        self.as_array().to_vec()
    }

    /// Returns the gradients in the order of
    /// [`SequenceClassifier::parameter_names`], without allocating.
    pub(crate) fn as_array(&self) -> [&[f32]; PARAMETER_COUNT] {
        let [w_ih, w_hh, b_ih, b_hh] = self.rnn.as_slices();
        [
            self.emb.as_slice(),
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            self.fc.weight.as_slice(),
            &self.fc.bias,
        ]
    }
}

/// Number of parameter tensors of a [`SequenceClassifier`].
pub(crate) const PARAMETER_COUNT: usize = 7;

impl SequenceClassifier {
    /// Creates a model from given layers.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the embedding size differs from the recurrent
    /// input size or the hidden size from `fc`'s input size.
    pub fn new(emb: Embedding, rnn: RecurrentLayer, fc: Linear) -> Result<Self, NnError> {
        if emb.dim() != rnn.input_size() || rnn.hidden_size() != fc.in_features() {
            return Err(NnError::shape(
                "SequenceClassifier::new",
                format!(
                    "emb has dimension {}, rnn takes {} inputs and has {} hidden units, fc \
                     takes {} inputs; the sizes must chain",
                    emb.dim(),
                    rnn.input_size(),
                    rnn.hidden_size(),
                    fc.in_features()
                ),
            ));
        }
        Ok(SequenceClassifier { emb, rnn, fc })
    }

    /// Creates a model with PyTorch's default initialisation of each layer,
    /// drawing `emb`, then `rnn`, then `fc` from `rng`.
    ///
    /// # Errors
    ///
    /// [`NnError::InvalidConfig`] or [`NnError::Shape`] if a size is 0.
    pub fn init(
        kind: RecurrentKind,
        vocab: usize,
        embed_dim: usize,
        hidden: usize,
        classes: usize,
        rng: &mut SplitMix64,
    ) -> Result<Self, NnError> {
        let emb = Embedding::init(vocab, embed_dim, rng)?;
        let rnn = match kind {
            RecurrentKind::Rnn => RecurrentLayer::Rnn(Rnn::init(embed_dim, hidden, rng)?),
            RecurrentKind::Lstm => RecurrentLayer::Lstm(Lstm::init(embed_dim, hidden, rng)?),
        };
        let fc = Linear::init(hidden, classes, LinearInit::PyTorchDefault, rng)?;
        SequenceClassifier::new(emb, rnn, fc)
    }

    /// Returns the embedding.
    pub fn emb(&self) -> &Embedding {
        &self.emb
    }

    /// Returns the recurrent layer.
    pub fn rnn(&self) -> &RecurrentLayer {
        &self.rnn
    }

    /// Returns the output layer.
    pub fn fc(&self) -> &Linear {
        &self.fc
    }

    /// Returns the PyTorch `state_dict` names of the parameters.
    pub fn parameter_names(&self) -> Vec<String> {
        let mut names = vec!["emb.weight".to_string()];
        names.extend(RECURRENT_PARAMETER_NAMES.iter().map(|n| format!("rnn.{n}")));
        names.push("fc.weight".into());
        names.push("fc.bias".into());
        names
    }

    /// Returns the parameters in the order of
    /// [`SequenceClassifier::parameter_names`].
    pub fn parameters(&self) -> Vec<&[f32]> {
        self.parameters_array().to_vec()
    }

    /// Returns the parameters in the order of
    /// [`SequenceClassifier::parameter_names`], without allocating.
    pub(crate) fn parameters_array(&self) -> [&[f32]; PARAMETER_COUNT] {
        let [w_ih, w_hh, b_ih, b_hh] = self.rnn.parameters();
        [
            self.emb.weight().as_slice(),
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            self.fc.weight().as_slice(),
            self.fc.bias(),
        ]
    }

    /// Creates zero gradients for the recurrent layer and `fc`.
    ///
    /// # Errors
    ///
    /// [`NnError::Tensor`] only if a shape overflows `usize`.
    pub(crate) fn zero_layer_grads(&self) -> Result<(RecurrentGrads, LinearGrads), NnError> {
        Ok((self.rnn.zero_grads()?, LinearGrads::zeros_like(&self.fc)?))
    }

    /// Returns the parameters for in-place changes, in the same order.
    pub fn parameters_mut(&mut self) -> Vec<&mut [f32]> {
        self.parameters_array_mut().into()
    }

    /// Returns the parameters for in-place changes in the order of
    /// [`SequenceClassifier::parameter_names`], without allocating.
    pub(crate) fn parameters_array_mut(&mut self) -> [&mut [f32]; PARAMETER_COUNT] {
        let [w_ih, w_hh, b_ih, b_hh] = self.rnn.parameters_mut();
        let (w, b) = self.fc.parameters_mut();
        [self.emb.weight_mut(), w_ih, w_hh, b_ih, b_hh, w, b]
    }

    /// Returns the logits `[batch, classes]`. An empty batch gives `[0,
    /// classes]` logits, as [`Linear::forward`] gives `[0, out]`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] for a token id outside the vocabulary.
    pub fn forward(&self, tokens: &TokenBatch<'_>) -> Result<Matrix, NnError> {
        Ok(self.forward_train(tokens)?.logits)
    }

    /// Runs the forward pass and keeps what [`SequenceClassifier::backward`]
    /// needs.
    ///
    /// # Errors
    ///
    /// As [`SequenceClassifier::forward`].
    pub fn forward_train(&self, tokens: &TokenBatch<'_>) -> Result<SequenceActivations, NnError> {
        let mut activations = SequenceActivations::empty()?;
        self.forward_train_into(tokens, &mut activations)?;
        Ok(activations)
    }

    /// Runs [`SequenceClassifier::forward_train`] into `activations`,
    /// reusing the buffers of its recurrent trace.
    fn forward_train_into(
        &self,
        tokens: &TokenBatch<'_>,
        activations: &mut SequenceActivations,
    ) -> Result<(), NnError> {
        let batch = tokens.batch();
        if batch == 0 {
            // The recurrent layers need at least one row, so an empty batch
            // skips them and gets empty logits.
            activations.trace = RecurrentTrace::empty(&self.rnn, tokens.seq_len);
            activations.last_hidden = Matrix::zeros(0, self.rnn.hidden_size())?;
            activations.logits = Matrix::zeros(0, self.fc.out_features())?;
            return Ok(());
        }
        let gemm = Gemm::new();
        self.forward_recurrent(&gemm, tokens, &mut activations.trace)?;
        let mut last_hidden = Matrix::zeros(batch, self.rnn.hidden_size())?;
        self.last_hidden_into(tokens, &activations.trace, last_hidden.as_mut_slice());
        let mut logits = Matrix::zeros(batch, self.fc.out_features())?;
        self.fc_forward(&gemm, last_hidden.as_slice(), batch, logits.as_mut_slice())?;
        activations.last_hidden = last_hidden;
        activations.logits = logits;
        Ok(())
    }

    /// Returns the number of classes, the output size of `fc`.
    pub(crate) fn classes(&self) -> usize {
        self.fc.out_features()
    }

    /// Returns the hidden size of the recurrent layer.
    pub(crate) fn hidden_size(&self) -> usize {
        self.rnn.hidden_size()
    }

    /// Looks up the tokens and runs the recurrent layer over them into
    /// `trace`, reusing its buffers. Every GEMM runs with `gemm`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] for a token id outside the vocabulary.
    pub(crate) fn forward_recurrent(
        &self,
        gemm: &Gemm,
        tokens: &TokenBatch<'_>,
        trace: &mut RecurrentTrace,
    ) -> Result<(), NnError> {
        let batch = tokens.batch();
        let steps = tokens.seq_len;
        match (&self.rnn, &*trace) {
            (RecurrentLayer::Rnn(_), RecurrentTrace::Lstm(_)) => {
                *trace = RecurrentTrace::Rnn(RnnTrace::default());
            }
            (RecurrentLayer::Lstm(_), RecurrentTrace::Rnn(_)) => {
                *trace = RecurrentTrace::Lstm(LstmTrace::default());
            }
            _ => {}
        }
        match (&self.rnn, trace) {
            (RecurrentLayer::Rnn(r), RecurrentTrace::Rnn(tr)) => {
                self.emb
                    .forward_time_major(tokens.ids, batch, steps, &mut tr.inputs)?;
                r.forward_trace(gemm, batch, steps, tr)
            }
            (RecurrentLayer::Lstm(l), RecurrentTrace::Lstm(tr)) => {
                self.emb
                    .forward_time_major(tokens.ids, batch, steps, &mut tr.inputs)?;
                l.forward_trace(gemm, batch, steps, tr)
            }
            _ => Err(mismatched_trace()),
        }
    }

    /// Copies each sequence's hidden state at its last true token from
    /// `trace` into `out`, `[batch, H]`.
    pub(crate) fn last_hidden_into(
        &self,
        tokens: &TokenBatch<'_>,
        trace: &RecurrentTrace,
        out: &mut [f32],
    ) {
        let hidden = self.rnn.hidden_size();
        for (b, dst) in out.chunks_exact_mut(hidden).enumerate() {
            // TokenBatch::new guarantees t < seq_len, so the step exists.
            if let Some(h) = trace.hidden(tokens.lengths[b] - 1) {
                dst.copy_from_slice(&h[b * hidden..(b + 1) * hidden]);
            }
        }
    }

    /// Writes `fc(last_hidden)` (`last_hidden` `[batch, H]`) into `logits`
    /// (`[batch, classes]`), as [`Linear::forward`] computes it.
    pub(crate) fn fc_forward(
        &self,
        gemm: &Gemm,
        last_hidden: &[f32],
        batch: usize,
        logits: &mut [f32],
    ) -> Result<(), NnError> {
        run_gemm(
            gemm,
            1.0,
            MatRef::row_major(last_hidden, batch, self.fc.in_features())?,
            self.fc.weight().view().t(),
            0.0,
            MatMut::row_major(logits, batch, self.fc.out_features())?,
            Some(self.fc.bias()),
        )
    }

    /// Adds the gradients of the loss to `grads`, given the batch, the
    /// activations from [`SequenceClassifier::forward_train`] on it and
    /// `dL/dlogits`. An empty batch leaves `grads` unchanged.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the pieces do not fit together.
    pub fn backward(
        &self,
        tokens: &TokenBatch<'_>,
        activations: &SequenceActivations,
        grad_logits: &Matrix,
        grads: &mut SequenceGrads,
    ) -> Result<(), NnError> {
        const OP: &str = "SequenceClassifier::backward";
        let batch = tokens.batch();
        let classes = self.fc.out_features();
        if grad_logits.shape() != (batch, classes) {
            return Err(NnError::shape(
                OP,
                format!(
                    "the logit gradient is {}x{} but must be {batch}x{classes} (batch x classes)",
                    grad_logits.rows(),
                    grad_logits.cols()
                ),
            ));
        }
        if grads.emb.shape() != self.emb.weight().shape() {
            return Err(NnError::shape(
                OP,
                "the gradient buffers do not match the model; create them with \
                 SequenceGrads::zeros_like",
            ));
        }
        let mut scratch = SequenceScratch::default();
        self.backward_to_inputs(
            &Gemm::new(),
            tokens,
            &activations.trace,
            activations.last_hidden.as_slice(),
            grad_logits.as_slice(),
            &mut grads.rnn,
            &mut grads.fc,
            &mut scratch,
        )?;
        self.emb_backward(tokens, &scratch, &mut grads.emb)
    }

    /// Back-propagates `dL/dlogits` (`grad_logits`, `[batch, classes]`)
    /// through `fc` and the recurrent layer, adding their gradients to
    /// `rnn_grads` and `fc_grads` and leaving `dL/dx` of every step in
    /// `scratch` for [`SequenceClassifier::emb_backward`]. `trace` and
    /// `last_hidden` come from the forward pass on `tokens`. Every GEMM runs
    /// with `gemm`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the pieces do not fit together.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward_to_inputs(
        &self,
        gemm: &Gemm,
        tokens: &TokenBatch<'_>,
        trace: &RecurrentTrace,
        last_hidden: &[f32],
        grad_logits: &[f32],
        rnn_grads: &mut RecurrentGrads,
        fc_grads: &mut LinearGrads,
        scratch: &mut SequenceScratch,
    ) -> Result<(), NnError> {
        const OP: &str = "SequenceClassifier::backward";
        let batch = tokens.batch();
        let steps = tokens.seq_len;
        let hidden = self.rnn.hidden_size();
        let classes = self.fc.out_features();
        let (trace_batch, trace_steps) = trace.shape();
        if (trace_batch, trace_steps) != (batch, steps) || last_hidden.len() != batch * hidden {
            return Err(NnError::shape(
                OP,
                format!(
                    "the activations are for {trace_batch} sequences of {trace_steps} steps \
                     but the batch has {batch} of {steps}; pass the batch given to forward_train"
                ),
            ));
        }
        if fc_grads.weight.shape() != self.fc.weight().shape() || fc_grads.bias.len() != classes {
            return Err(NnError::shape(
                OP,
                "the gradient buffers do not match the model; create them with \
                 SequenceGrads::zeros_like",
            ));
        }
        if batch == 0 {
            // An empty batch adds nothing to the gradients, and forward_train
            // ran no recurrent layer on it.
            scratch.recurrent.grad_inputs.clear();
            return Ok(());
        }
        // fc: dW += dY^T X, db += column sums of dY, dX = dY W, as
        // Linear::backward computes them.
        let grad_out = MatRef::row_major(grad_logits, batch, classes)?;
        run_gemm(
            gemm,
            1.0,
            grad_out.t(),
            MatRef::row_major(last_hidden, batch, hidden)?,
            1.0,
            fc_grads.weight.view_mut(),
            None,
        )?;
        for row in grad_logits.chunks_exact(classes) {
            for (b, g) in fc_grads.bias.iter_mut().zip(row) {
                *b += g;
            }
        }
        // The GEMM with beta = 0 writes every element.
        resize_for_overwrite(&mut scratch.grad_last, batch * hidden);
        run_gemm(
            gemm,
            1.0,
            grad_out,
            self.fc.weight().view(),
            0.0,
            MatMut::row_major(&mut scratch.grad_last, batch, hidden)?,
            None,
        )?;
        scratch.grad_hidden.clear();
        scratch.grad_hidden.resize(steps * batch * hidden, 0.0);
        for (b, row) in scratch.grad_last.chunks_exact(hidden).enumerate() {
            let start = ((tokens.lengths[b] - 1) * batch + b) * hidden;
            scratch.grad_hidden[start..start + hidden].copy_from_slice(row);
        }
        let recurrent = &mut scratch.recurrent;
        match (&self.rnn, trace) {
            (RecurrentLayer::Rnn(r), RecurrentTrace::Rnn(tr)) => {
                r.backward_trace(gemm, tr, &scratch.grad_hidden, rnn_grads, recurrent)
            }
            (RecurrentLayer::Lstm(l), RecurrentTrace::Lstm(tr)) => {
                l.backward_trace(gemm, tr, &scratch.grad_hidden, rnn_grads, recurrent)
            }
            _ => Err(mismatched_trace()),
        }
    }

    /// Adds the embedding gradient of `tokens`, from the `dL/dx` that
    /// [`SequenceClassifier::backward_to_inputs`] left in `scratch`, to
    /// `grad_weight` (`[vocab, dim]`).
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the pieces do not fit together.
    pub(crate) fn emb_backward(
        &self,
        tokens: &TokenBatch<'_>,
        scratch: &SequenceScratch,
        grad_weight: &mut Matrix,
    ) -> Result<(), NnError> {
        self.emb.backward_time_major(
            tokens.ids,
            tokens.batch(),
            tokens.seq_len,
            &scratch.recurrent.grad_inputs,
            grad_weight,
        )
    }
}

fn mismatched_trace() -> NnError {
    NnError::shape(
        "SequenceClassifier::backward",
        "the activations come from a model with another recurrent layer",
    )
}
