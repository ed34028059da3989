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
    Lstm, LstmTrace, RecurrentGrads, RecurrentScratch, Rnn, RnnTrace, RECURRENT_PARAMETER_NAMES,
};
use crate::rng::SplitMix64;
use heft_tensor::Matrix;

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

#[derive(Clone, Debug)]
enum RecurrentTrace {
    Rnn(RnnTrace),
    Lstm(LstmTrace),
}

impl SequenceActivations {
    /// Creates empty activations for [`SequenceClassifier::forward_train_into`]
    /// to fill.
    pub(crate) fn empty() -> Result<Self, NnError> {
        Ok(SequenceActivations {
            trace: RecurrentTrace::Lstm(LstmTrace::default()),
            last_hidden: Matrix::zeros(0, 0)?,
            logits: Matrix::zeros(0, 0)?,
        })
    }
}

/// Backward buffers that training reuses across batches.
#[derive(Clone, Debug, Default)]
pub(crate) struct SequenceScratch {
    recurrent: RecurrentScratch,
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
        let mut out = vec![self.emb.as_slice()];
        out.extend(self.rnn.as_slices());
        out.push(self.fc.weight.as_slice());
        out.push(&self.fc.bias);
        out
    }
}

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
        let mut out = vec![self.emb.weight().as_slice()];
        out.extend(self.rnn.parameters());
        out.push(self.fc.weight().as_slice());
        out.push(self.fc.bias());
        out
    }

    /// Returns the parameters for in-place changes, in the same order.
    pub fn parameters_mut(&mut self) -> Vec<&mut [f32]> {
        let mut out = vec![self.emb.weight_mut()];
        out.extend(self.rnn.parameters_mut());
        let (w, b) = self.fc.parameters_mut();
        out.push(w);
        out.push(b);
        out
    }

    /// Returns the logits `[batch, classes]`.
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
    pub(crate) fn forward_train_into(
        &self,
        tokens: &TokenBatch<'_>,
        activations: &mut SequenceActivations,
    ) -> Result<(), NnError> {
        let batch = tokens.batch();
        let steps = tokens.seq_len;
        match (&self.rnn, &activations.trace) {
            (RecurrentLayer::Rnn(_), RecurrentTrace::Lstm(_)) => {
                activations.trace = RecurrentTrace::Rnn(RnnTrace::default());
            }
            (RecurrentLayer::Lstm(_), RecurrentTrace::Rnn(_)) => {
                activations.trace = RecurrentTrace::Lstm(LstmTrace::default());
            }
            _ => {}
        }
        match (&self.rnn, &mut activations.trace) {
            (RecurrentLayer::Rnn(r), RecurrentTrace::Rnn(tr)) => {
                self.emb
                    .forward_time_major(tokens.ids, batch, steps, &mut tr.inputs)?;
                r.forward_trace(batch, steps, tr)?;
            }
            (RecurrentLayer::Lstm(l), RecurrentTrace::Lstm(tr)) => {
                self.emb
                    .forward_time_major(tokens.ids, batch, steps, &mut tr.inputs)?;
                l.forward_trace(batch, steps, tr)?;
            }
            _ => return Err(mismatched_trace()),
        }
        let hidden = self.rnn.hidden_size();
        let mut last_hidden = Matrix::zeros(batch, hidden)?;
        for (b, dst) in last_hidden
            .as_mut_slice()
            .chunks_exact_mut(hidden)
            .enumerate()
        {
            let t = tokens.lengths[b] - 1;
            let h = match &activations.trace {
                RecurrentTrace::Rnn(tr) => tr.hidden(t),
                RecurrentTrace::Lstm(tr) => tr.hidden(t),
            };
            // TokenBatch::new guarantees t < seq_len, so the step exists.
            if let Some(h) = h {
                dst.copy_from_slice(&h[b * hidden..(b + 1) * hidden]);
            }
        }
        activations.logits = self.fc.forward(&last_hidden)?;
        activations.last_hidden = last_hidden;
        Ok(())
    }

    /// Adds the gradients of the loss to `grads`, given the batch, the
    /// activations from [`SequenceClassifier::forward_train`] on it and
    /// `dL/dlogits`.
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
        let mut scratch = SequenceScratch::default();
        self.backward_with(tokens, activations, grad_logits, grads, &mut scratch)
    }

    /// Runs [`SequenceClassifier::backward`] with buffers from `scratch`.
    pub(crate) fn backward_with(
        &self,
        tokens: &TokenBatch<'_>,
        activations: &SequenceActivations,
        grad_logits: &Matrix,
        grads: &mut SequenceGrads,
        scratch: &mut SequenceScratch,
    ) -> Result<(), NnError> {
        const OP: &str = "SequenceClassifier::backward";
        let batch = tokens.batch();
        let steps = tokens.seq_len;
        let hidden = self.rnn.hidden_size();
        let (trace_batch, trace_steps) = match &activations.trace {
            RecurrentTrace::Rnn(tr) => (tr.batch(), tr.steps()),
            RecurrentTrace::Lstm(tr) => (tr.batch(), tr.steps()),
        };
        if (trace_batch, trace_steps) != (batch, steps) {
            return Err(NnError::shape(
                OP,
                format!(
                    "the activations are for {trace_batch} sequences of {trace_steps} steps \
                     but the batch has {batch} of {steps}; pass the batch given to forward_train"
                ),
            ));
        }
        let grad_last = self
            .fc
            .backward(&activations.last_hidden, grad_logits, &mut grads.fc, true)?
            .unwrap_or(Matrix::zeros(batch, hidden)?);
        scratch.grad_hidden.clear();
        scratch.grad_hidden.resize(steps * batch * hidden, 0.0);
        for (b, row) in grad_last.as_slice().chunks_exact(hidden).enumerate() {
            let start = ((tokens.lengths[b] - 1) * batch + b) * hidden;
            scratch.grad_hidden[start..start + hidden].copy_from_slice(row);
        }
        let recurrent = &mut scratch.recurrent;
        match (&self.rnn, &activations.trace) {
            (RecurrentLayer::Rnn(r), RecurrentTrace::Rnn(tr)) => {
                r.backward_trace(tr, &scratch.grad_hidden, &mut grads.rnn, recurrent)?
            }
            (RecurrentLayer::Lstm(l), RecurrentTrace::Lstm(tr)) => {
                l.backward_trace(tr, &scratch.grad_hidden, &mut grads.rnn, recurrent)?
            }
            _ => return Err(mismatched_trace()),
        }
        self.emb.backward_time_major(
            tokens.ids,
            batch,
            steps,
            &recurrent.grad_inputs,
            &mut grads.emb,
        )
    }
}

fn mismatched_trace() -> NnError {
    NnError::shape(
        "SequenceClassifier::backward",
        "the activations come from a model with another recurrent layer",
    )
}
