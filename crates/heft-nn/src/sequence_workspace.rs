//! Training steps of a [`SequenceClassifier`] that split each batch into
//! shards of rows and run the shards on the rayon pool. The documentation
//! of [`SequenceWorkspace`] describes the shards.

use crate::error::NnError;
use crate::linear::LinearGrads;
use crate::loss::row_losses_with_grad;
use crate::optim::Optimiser;
use crate::recurrent::{resize_for_overwrite, RecurrentGrads};
use crate::sequence::{RecurrentTrace, SequenceClassifier, SequenceGrads, SequenceScratch};
use crate::train::{GatheredSequences, SequenceDataset};
use heft_kernels::elementwise::argmax_rows;
use heft_kernels::gemm::Gemm;

/// Buffers for training steps of one [`SequenceClassifier`] on batches of
/// up to [`SequenceWorkspace::capacity`] sequences, split into shards that
/// run on the rayon pool.
///
/// The rows of a batch of `n` are ordered by true length (ties by their
/// position in the batch) and cut into shards of
/// [`SequenceWorkspace::SHARD_ROWS`] consecutive rows of that order, the
/// last shard possibly shorter. The shards depend on the batch alone, never
/// on the thread count. Each shard gathers its sequences and cuts them to
/// its own longest true length, so ordering by length leaves less padding
/// in every shard but the last. Then it runs the embedding, the recurrent
/// layer, `fc` and the loss, and back-propagates into its own gradient
/// buffers. With the `parallel` feature and more than one thread in the
/// pool the shards run in parallel. Afterwards, on the calling thread, the
/// shards' gradients are added in shard order (shard 0, then 1, ...), the
/// embedding gradient is scattered shard by shard, and the optimiser takes
/// one step.
///
/// Every shard runs the same sequential code on any thread, and the
/// reduction order is fixed, so the trained weights are bitwise identical
/// for every thread count. The gradient of each row's loss is scaled by
/// `1 / n`, so the summed gradient is that of the batch's mean loss even
/// when the last shard is shorter. The reported loss is the sum of the row
/// losses in the batch's row order divided by `n`, as [`cross_entropy`]
/// computes it.
///
/// [`cross_entropy`]: crate::cross_entropy
///
/// ```
/// use heft_nn::{
///     Adam, AdamConfig, Optimiser, RecurrentKind, SequenceClassifier, SequenceDataset,
///     SequenceWorkspace, SplitMix64,
/// };
///
/// let mut model =
///     SequenceClassifier::init(RecurrentKind::Lstm, 6, 3, 4, 2, &mut SplitMix64::new(1))?;
/// // Three sequences of up to 3 tokens, right-padded with id 0.
/// let ids = [1, 2, 3, 4, 0, 0, 5, 1, 0];
/// let lengths = [3, 1, 2];
/// let labels = [0, 1, 1];
/// let data = SequenceDataset::new(&ids, &lengths, &labels, 3)?;
/// let mut workspace = SequenceWorkspace::new(&model, 3)?;
/// let mut optimiser = Optimiser::Adam(Adam::new(AdamConfig::default())?);
/// let (loss, correct) = workspace.train_step(&mut model, &data, &[2, 0, 1], &mut optimiser)?;
/// assert!(loss.is_finite() && correct <= 3);
/// # Ok::<(), heft_nn::NnError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SequenceWorkspace {
    capacity: usize,
    /// One entry per shard of a full batch.
    shards: Vec<Shard>,
    /// Positions in the batch, ordered by true length, then position.
    order: Vec<usize>,
    /// The batch's rows of the data in that order.
    sorted_rows: Vec<usize>,
    /// Loss of each row of the batch, in the batch's order.
    row_losses: Vec<f64>,
    /// Gradients of the whole batch of the last step.
    grads: SequenceGrads,
}

/// The buffers of one shard, reused across batches.
#[derive(Clone, Debug)]
struct Shard {
    sequences: GatheredSequences,
    trace: RecurrentTrace,
    /// Hidden state at each sequence's last true token, `[rows, H]`.
    last_hidden: Vec<f32>,
    /// `[rows, classes]`.
    logits: Vec<f32>,
    /// Rows of `dL/dlogits` of the whole batch's mean loss.
    grad_logits: Vec<f32>,
    predicted: Vec<usize>,
    /// Loss of each row.
    losses: Vec<f64>,
    correct: usize,
    scratch: SequenceScratch,
    rnn: RecurrentGrads,
    fc: LinearGrads,
    /// Outcome of the shard's last run.
    result: Result<(), NnError>,
}

impl Shard {
    fn new(model: &SequenceClassifier) -> Result<Self, NnError> {
        let (rnn, fc) = model.zero_layer_grads()?;
        Ok(Shard {
            sequences: GatheredSequences::default(),
            trace: RecurrentTrace::default(),
            last_hidden: Vec::new(),
            logits: Vec::new(),
            grad_logits: Vec::new(),
            predicted: Vec::new(),
            losses: Vec::new(),
            correct: 0,
            scratch: SequenceScratch::default(),
            rnn,
            fc,
            result: Ok(()),
        })
    }

    /// Runs forward, loss and backward down to the embedding's output on
    /// the rows `rows` of `data`, part of a batch of `batch` rows. Leaves
    /// the gradients of the recurrent layer and `fc` in `self.rnn` and
    /// `self.fc`, and `dL/dx` in `self.scratch`.
    fn run(
        &mut self,
        gemm: &Gemm,
        model: &SequenceClassifier,
        data: &SequenceDataset<'_>,
        rows: &[usize],
        batch: usize,
    ) -> Result<(), NnError> {
        data.gather(rows, &mut self.sequences);
        let tokens = self.sequences.tokens()?;
        let n = rows.len();
        let hidden = model.hidden_size();
        let classes = model.classes();
        model.forward_recurrent(gemm, &tokens, &mut self.trace)?;
        // Each of these is written in full before it is read.
        resize_for_overwrite(&mut self.last_hidden, n * hidden);
        model.last_hidden_into(&tokens, &self.trace, &mut self.last_hidden);
        resize_for_overwrite(&mut self.logits, n * classes);
        model.fc_forward(gemm, &self.last_hidden, n, &mut self.logits)?;

        resize_for_overwrite(&mut self.grad_logits, n * classes);
        self.losses.clear();
        self.losses.resize(n, 0.0);
        row_losses_with_grad(
            &self.logits,
            classes,
            &self.sequences.labels,
            1.0 / batch as f32,
            &mut self.grad_logits,
            &mut self.losses,
        );
        self.predicted.clear();
        self.predicted.resize(n, 0);
        argmax_rows(&self.logits, classes, &mut self.predicted)?;
        self.correct = self
            .predicted
            .iter()
            .zip(&self.sequences.labels)
            .filter(|(&p, &l)| p == l as usize)
            .count();

        self.rnn.zero();
        self.fc.weight.as_mut_slice().fill(0.0);
        self.fc.bias.fill(0.0);
        model.backward_to_inputs(
            gemm,
            &tokens,
            &self.trace,
            &self.last_hidden,
            &self.grad_logits,
            &mut self.rnn,
            &mut self.fc,
            &mut self.scratch,
        )
    }
}

/// Runs `f(index, shard, gemm)` for every shard, on the rayon pool when
/// there is more than one shard and more than one thread.
///
/// Shards that run in parallel get a GEMM that stays on their own thread.
/// A shard that finishes early would otherwise be woken to share the large
/// GEMMs of a longer one. In the LSTM epoch of `examples/train_epoch.rs` on
/// 2 threads, that nesting made the epoch about 6 % slower. The GEMM's
/// result is the same on any number of threads, so this changes speed
/// only.
fn for_each_shard(shards: &mut [Shard], f: impl Fn(usize, &mut Shard, &Gemm) + Send + Sync) {
    #[cfg(feature = "parallel")]
    if shards.len() > 1 && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        let gemm = Gemm::new().sequential();
        shards
            .par_iter_mut()
            .enumerate()
            .for_each(|(index, shard)| f(index, shard, &gemm));
        return;
    }
    let gemm = Gemm::new();
    for (index, shard) in shards.iter_mut().enumerate() {
        f(index, shard, &gemm);
    }
}

/// Adds `src` to `dst` element by element.
fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

impl SequenceWorkspace {
    /// Rows per shard. A batch of `n` rows runs as `n.div_ceil(SHARD_ROWS)`
    /// shards, whatever the thread count. Smaller shards spread a batch over
    /// more threads but make every per-step GEMM smaller. With 8 rows the
    /// LSTM epoch of `examples/train_epoch.rs` (batch 32) ran about 20 %
    /// slower than with 16, on 1 and on 2 threads of a 2-core x86-64
    /// virtual machine with AVX-512.
    pub const SHARD_ROWS: usize = 16;

    /// Allocates buffers for training `model` on batches of up to
    /// `capacity` sequences. The buffers that depend on the sequence
    /// length grow on first use and are kept.
    ///
    /// # Errors
    ///
    /// [`NnError::InvalidConfig`] if `capacity` is 0, and
    /// [`NnError::Tensor`] only if a buffer size overflows `usize`.
    pub fn new(model: &SequenceClassifier, capacity: usize) -> Result<Self, NnError> {
        if capacity == 0 {
            return Err(NnError::config(
                "batch_size",
                "the batch size must be at least 1",
            ));
        }
        let shards = (0..capacity.div_ceil(Self::SHARD_ROWS))
            .map(|_| Shard::new(model))
            .collect::<Result<_, _>>()?;
        Ok(SequenceWorkspace {
            capacity,
            shards,
            order: Vec::with_capacity(capacity),
            sorted_rows: Vec::with_capacity(capacity),
            row_losses: Vec::with_capacity(capacity),
            grads: SequenceGrads::zeros_like(model)?,
        })
    }

    /// Returns the maximum sequences per batch.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Returns the gradients of the last step's batch.
    pub fn grads(&self) -> &SequenceGrads {
        &self.grads
    }

    /// Runs one training step on the sequences `rows` of `data`: forward,
    /// mean softmax cross-entropy, backward and one `optimiser` step.
    /// Returns the batch's mean loss and how many of its sequences the
    /// weights before the step classify correctly. A step allocates nothing
    /// once the buffers have grown to the longest sequences and the
    /// optimiser has created its state in its first step.
    /// `tests/workspace.rs` checks this on 1 and 2 threads.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the workspace was made for another model or a
    /// token id is outside the vocabulary, [`NnError::InvalidConfig`] for
    /// more rows than [`SequenceWorkspace::capacity`] or none, and
    /// [`NnError::LabelOutOfRange`] for a bad label. `model` is unchanged
    /// then.
    pub fn train_step(
        &mut self,
        model: &mut SequenceClassifier,
        data: &SequenceDataset<'_>,
        rows: &[usize],
        optimiser: &mut Optimiser,
    ) -> Result<(f32, usize), NnError> {
        self.check(model, data, rows)?;
        self.clear_emb_grad();
        let batch = rows.len();
        // The keys are distinct, so the unstable sort gives one order.
        self.order.clear();
        self.order.extend(0..batch);
        self.order
            .sort_unstable_by_key(|&position| (data.length(rows[position]), position));
        self.sorted_rows.clear();
        self.sorted_rows
            .extend(self.order.iter().map(|&position| rows[position]));

        let sorted_rows = &self.sorted_rows;
        let shards = &mut self.shards[..batch.div_ceil(Self::SHARD_ROWS)];
        {
            let model: &SequenceClassifier = model;
            for_each_shard(shards, |index, shard, gemm| {
                let start = index * Self::SHARD_ROWS;
                let end = (start + Self::SHARD_ROWS).min(batch);
                shard.result = shard.run(gemm, model, data, &sorted_rows[start..end], batch);
            });
        }
        // The first error in shard order, whichever thread met it first.
        for shard in shards.iter_mut() {
            std::mem::replace(&mut shard.result, Ok(()))?;
        }

        // Sum the row losses in the batch's order, as cross_entropy does.
        self.row_losses.clear();
        self.row_losses.resize(batch, 0.0);
        let mut correct = 0;
        for (index, shard) in shards.iter().enumerate() {
            let positions = &self.order[index * Self::SHARD_ROWS..];
            for (&position, &loss) in positions.iter().zip(&shard.losses) {
                self.row_losses[position] = loss;
            }
            correct += shard.correct;
        }
        let mut loss_sum = 0.0f64;
        for &loss in &self.row_losses {
            loss_sum += loss;
        }

        let grads = &mut self.grads;
        for (index, shard) in shards.iter().enumerate() {
            let pairs = [
                (
                    grads.rnn.weight_ih.as_mut_slice(),
                    shard.rnn.weight_ih.as_slice(),
                ),
                (
                    grads.rnn.weight_hh.as_mut_slice(),
                    shard.rnn.weight_hh.as_slice(),
                ),
                (&mut grads.rnn.bias_ih[..], &shard.rnn.bias_ih[..]),
                (&mut grads.rnn.bias_hh[..], &shard.rnn.bias_hh[..]),
                (grads.fc.weight.as_mut_slice(), shard.fc.weight.as_slice()),
                (&mut grads.fc.bias[..], &shard.fc.bias[..]),
            ];
            for (dst, src) in pairs {
                if index == 0 {
                    dst.copy_from_slice(src);
                } else {
                    add_into(dst, src);
                }
            }
        }
        for shard in shards.iter() {
            model.emb_backward(&shard.sequences.tokens()?, &shard.scratch, &mut grads.emb)?;
        }

        let lens = model.parameters_array().map(<[f32]>::len);
        let scalars = optimiser.begin_step(lens.into_iter())?;
        let params = model.parameters_array_mut();
        for (index, (param, grad)) in params.into_iter().zip(grads.as_array()).enumerate() {
            optimiser.update(index, &scalars, param, grad);
        }
        Ok(((loss_sum / batch as f64) as f32, correct))
    }

    fn check(
        &self,
        model: &SequenceClassifier,
        data: &SequenceDataset<'_>,
        rows: &[usize],
    ) -> Result<(), NnError> {
        const OP: &str = "SequenceWorkspace::train_step";
        let lens = model.parameters_array().map(<[f32]>::len);
        let fits = self.grads.as_array().map(<[f32]>::len) == lens
            && self.grads.emb.shape() == model.emb().weight().shape()
            && self.grads.fc.weight.shape() == model.fc().weight().shape();
        if !fits {
            return Err(NnError::shape(
                OP,
                "the workspace was made for another model; create it with \
                 SequenceWorkspace::new for this model",
            ));
        }
        if rows.is_empty() || rows.len() > self.capacity {
            return Err(NnError::config(
                "batch_size",
                format!(
                    "a step takes 1 to {} sequences with this workspace, but got {}",
                    self.capacity,
                    rows.len()
                ),
            ));
        }
        if let Some(&row) = rows.iter().find(|&&row| row >= data.len()) {
            return Err(NnError::shape(
                OP,
                format!("row {row} is out of range for {} sequences", data.len()),
            ));
        }
        let classes = model.classes();
        let labels = data.labels();
        if let Some((index, &row)) = rows
            .iter()
            .enumerate()
            .find(|(_, &row)| labels[row] as usize >= classes)
        {
            return Err(NnError::LabelOutOfRange {
                op: OP,
                row: index,
                label: labels[row],
                classes,
            });
        }
        Ok(())
    }

    /// Zeroes the rows of the embedding gradient that the last step wrote,
    /// which are those of the token ids the shards gathered. Every other
    /// row is zero already, so this replaces clearing the whole `[vocab,
    /// dim]` table.
    fn clear_emb_grad(&mut self) {
        let emb = &mut self.grads.emb;
        for shard in &mut self.shards {
            for &id in &shard.sequences.ids {
                if let Some(row) = emb.row_mut(id as usize) {
                    row.fill(0.0);
                }
            }
            shard.sequences.ids.clear();
        }
    }
}
