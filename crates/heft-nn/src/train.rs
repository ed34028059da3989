//! Mini-batch training of an [`Mlp`] or a [`SequenceClassifier`] over
//! in-memory data.
//!
//! Each epoch shuffles the training rows with [`SplitMix64`] seeded from
//! [`TrainConfig::seed`], takes batches of [`TrainConfig::batch_size`]
//! rows in that order (the last batch may be smaller), and for each batch
//! runs forward, the mean softmax cross-entropy, backward and one optimiser
//! step. Three parts run on the rayon pool: the GEMM, the shards of a
//! sequence batch in [`SequenceWorkspace`] and the optimiser's update of
//! large parameters. Their results do not depend on the thread count, so
//! the trained weights are a function of the seed and the data alone.

use crate::error::NnError;
use crate::loss::correct_count;
use crate::mlp::Mlp;
use crate::optim::{Adam, AdamConfig, Optimiser, Sgd, SgdConfig};
use crate::rng::SplitMix64;
use crate::sequence::{SequenceClassifier, TokenBatch};
use crate::sequence_workspace::SequenceWorkspace;
use crate::workspace::MlpWorkspace;
use heft_tensor::Matrix;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Borrowed classification data: `features` is `[rows, columns]`
/// row-major and `labels` has one class per row.
#[derive(Clone, Copy, Debug)]
pub struct Dataset<'a> {
    features: &'a [f32],
    labels: &'a [u32],
    columns: usize,
}

impl<'a> Dataset<'a> {
    /// Wraps `features` (`[labels.len(), columns]`, row-major) and `labels`.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if `columns` is 0 or `features.len()` is not
    /// `labels.len() * columns`.
    pub fn new(features: &'a [f32], labels: &'a [u32], columns: usize) -> Result<Self, NnError> {
        const OP: &str = "Dataset::new";
        if columns == 0 {
            return Err(NnError::shape(
                OP,
                "columns is 0, but every row needs at least one feature; pass the number of \
                 features per row",
            ));
        }
        match labels.len().checked_mul(columns) {
            Some(needed) if needed == features.len() => {}
            Some(needed) => {
                return Err(NnError::shape(
                    OP,
                    format!(
                        "{} labels of {columns} features need {needed} values, but there are {}",
                        labels.len(),
                        features.len()
                    ),
                ));
            }
            None => {
                return Err(NnError::shape(
                    OP,
                    format!(
                        "{} labels of {columns} features need more values than usize can count, \
                         but there are {}; check columns",
                        labels.len(),
                        features.len()
                    ),
                ));
            }
        }
        Ok(Dataset {
            features,
            labels,
            columns,
        })
    }

    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Returns true if there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Returns the number of features per row.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Returns the features, `[len, columns]` row-major.
    pub fn features(&self) -> &'a [f32] {
        self.features
    }

    /// Returns the labels.
    pub fn labels(&self) -> &'a [u32] {
        self.labels
    }

    /// Copies the rows `indices` into a `[indices.len(), columns]` matrix and
    /// their labels into `labels`.
    fn gather(&self, indices: &[usize], labels: &mut Vec<u32>) -> Result<Matrix, NnError> {
        let mut x = Matrix::zeros(indices.len(), self.columns)?;
        labels.clear();
        for (dst, &i) in x.as_mut_slice().chunks_exact_mut(self.columns).zip(indices) {
            dst.copy_from_slice(&self.features[i * self.columns..(i + 1) * self.columns]);
            labels.push(self.labels[i]);
        }
        Ok(x)
    }
}

/// Borrowed sequence classification data: token ids `[len, seq_len]`
/// row-major, right-padded with id 0, the true length of each sequence in
/// `1..=seq_len`, and one class per sequence.
#[derive(Clone, Copy, Debug)]
pub struct SequenceDataset<'a> {
    ids: &'a [u32],
    lengths: &'a [usize],
    labels: &'a [u32],
    seq_len: usize,
}

/// Sequences copied out of a [`SequenceDataset`] for one batch.
#[derive(Clone, Debug, Default)]
pub(crate) struct GatheredSequences {
    pub(crate) ids: Vec<u32>,
    lengths: Vec<usize>,
    pub(crate) labels: Vec<u32>,
    seq_len: usize,
}

impl GatheredSequences {
    pub(crate) fn tokens(&self) -> Result<TokenBatch<'_>, NnError> {
        TokenBatch::new(&self.ids, &self.lengths, self.seq_len)
    }
}

impl<'a> SequenceDataset<'a> {
    /// Wraps the ids, lengths and labels.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the lengths of the slices disagree or a length
    /// is outside `1..=seq_len`.
    pub fn new(
        ids: &'a [u32],
        lengths: &'a [usize],
        labels: &'a [u32],
        seq_len: usize,
    ) -> Result<Self, NnError> {
        TokenBatch::new(ids, lengths, seq_len)?;
        if labels.len() != lengths.len() {
            return Err(NnError::shape(
                "SequenceDataset::new",
                format!(
                    "there are {} sequences but {} labels; pass one label per sequence",
                    lengths.len(),
                    labels.len()
                ),
            ));
        }
        Ok(SequenceDataset {
            ids,
            lengths,
            labels,
            seq_len,
        })
    }

    /// Returns the number of sequences.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Returns true if there are no sequences.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Returns the labels.
    pub(crate) fn labels(&self) -> &'a [u32] {
        self.labels
    }

    /// Returns the true length of sequence `index`.
    pub(crate) fn length(&self, index: usize) -> usize {
        self.lengths[index]
    }

    /// Copies the sequences `indices`, cut to their longest true length.
    pub(crate) fn gather(&self, indices: &[usize], out: &mut GatheredSequences) {
        let seq_len = indices.iter().map(|&i| self.lengths[i]).max().unwrap_or(1);
        out.ids.clear();
        out.lengths.clear();
        out.labels.clear();
        out.seq_len = seq_len;
        for &i in indices {
            let start = i * self.seq_len;
            out.ids.extend_from_slice(&self.ids[start..start + seq_len]);
            out.lengths.push(self.lengths[i]);
            out.labels.push(self.labels[i]);
        }
    }
}

/// The optimiser the training loop creates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimiserConfig {
    /// [`Adam`] with these settings.
    Adam(AdamConfig),
    /// [`Sgd`] with these settings.
    Sgd(SgdConfig),
}

impl Default for OptimiserConfig {
    fn default() -> Self {
        OptimiserConfig::Adam(AdamConfig::default())
    }
}

/// Settings of [`train_mlp`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// Maximum number of passes over the training data, at least 1.
    pub epochs: usize,
    /// Rows per batch, at least 1. A batch size above the number of
    /// training rows puts them all in one batch.
    pub batch_size: usize,
    /// Seed of the shuffling order.
    pub seed: u64,
    /// The optimiser.
    pub optimiser: OptimiserConfig,
    /// Stops after this many epochs in a row without a new best validation
    /// accuracy (at least 1), and restores the weights of the best epoch.
    /// `None` trains for all epochs. Needs validation data.
    pub patience: Option<usize>,
    /// Draws a one-line progress display on stderr while training, and a
    /// summary line per epoch, if stderr is a terminal. Nothing is printed
    /// when stderr is not a terminal, whatever this is set to.
    pub progress: bool,
}

impl Default for TrainConfig {
    /// 10 epochs, batch 100, seed 0, Adam with PyTorch's defaults, no early
    /// stop, progress display on a terminal.
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 100,
            seed: 0,
            optimiser: OptimiserConfig::default(),
            patience: None,
            progress: true,
        }
    }
}

/// Results of one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochReport {
    /// Epoch number, starting at 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches, weighted by batch size.
    pub train_loss: f32,
    /// Training rows classified correctly during the epoch, each counted
    /// with the weights before its batch's step.
    pub train_correct: usize,
    /// `train_correct / training rows`.
    pub train_accuracy: f32,
    /// Validation rows classified correctly after the epoch, if there is
    /// validation data.
    pub val_correct: Option<usize>,
    /// `val_correct / validation rows`.
    pub val_accuracy: Option<f32>,
}

/// Results of [`train_mlp`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// One report per epoch run.
    pub epochs: Vec<EpochReport>,
    /// The epoch whose weights the model contains at the end: the last epoch,
    /// or with early stopping the one with the best validation accuracy.
    pub best_epoch: usize,
    /// True if training stopped before [`TrainConfig::epochs`].
    pub stopped_early: bool,
}

/// Returns how many rows of `data` the model classifies correctly,
/// evaluating `batch_size` rows at a time.
///
/// # Errors
///
/// [`NnError::Shape`] if the data's columns differ from the model's input
/// size, [`NnError::LabelOutOfRange`] for a label `>=` the output size, and
/// [`NnError::InvalidConfig`] if `batch_size` is 0.
pub fn evaluate(mlp: &Mlp, data: &Dataset<'_>, batch_size: usize) -> Result<usize, NnError> {
    if batch_size == 0 {
        return Err(NnError::config(
            "batch_size",
            "the batch size must be at least 1",
        ));
    }
    let mut correct = 0;
    let indices: Vec<usize> = (0..data.len()).collect();
    // No chunk contains more than the data's rows, whatever the batch size.
    let mut labels = Vec::with_capacity(batch_size.min(data.len()));
    for batch in indices.chunks(batch_size) {
        let x = data.gather(batch, &mut labels)?;
        correct += correct_count(&mlp.forward(&x)?, &labels)?;
    }
    Ok(correct)
}

fn check_config(
    train_len: usize,
    val_len: Option<usize>,
    config: &TrainConfig,
) -> Result<(), NnError> {
    if config.epochs == 0 {
        return Err(NnError::config("epochs", "train for at least 1 epoch"));
    }
    if config.batch_size == 0 {
        return Err(NnError::config(
            "batch_size",
            "the batch size must be at least 1",
        ));
    }
    if train_len == 0 {
        return Err(NnError::config(
            "training data",
            "there are no training rows",
        ));
    }
    if config.patience == Some(0) {
        return Err(NnError::config(
            "patience",
            "patience counts epochs without improvement and must be at least 1",
        ));
    }
    if config.patience.is_some() && val_len.is_none_or(|n| n == 0) {
        return Err(NnError::config(
            "patience",
            "early stopping watches validation accuracy, so pass validation rows or set \
             patience to None",
        ));
    }
    Ok(())
}

/// Returns the largest number of rows in a training batch: the batch
/// size, capped at the number of training rows. The cap keeps a batch size
/// meant for full-batch training from sizing the workspace beyond the data.
fn batch_capacity(config: &TrainConfig, train_len: usize) -> usize {
    config.batch_size.min(train_len)
}

/// Trains `mlp` in place on `train` and reports per-epoch loss and
/// accuracy, with validation accuracy if `val` is given.
///
/// # Errors
///
/// [`NnError::InvalidConfig`] for 0 epochs, batch size 0, no training rows
/// or `patience` without validation rows; [`NnError::Shape`] if the data do
/// not fit the model; [`NnError::LabelOutOfRange`] for a bad label. The
/// model may be partly trained when an error occurs after the first batch.
pub fn train_mlp(
    mlp: &mut Mlp,
    train: &Dataset<'_>,
    val: Option<&Dataset<'_>>,
    config: &TrainConfig,
) -> Result<TrainReport, NnError> {
    check_config(train.len(), val.map(|v| v.len()), config)?;
    let inputs = mlp.sizes()[0];
    for (name, data) in [("training", Some(train)), ("validation", val)] {
        if let Some(data) = data {
            if data.columns() != inputs {
                return Err(NnError::shape(
                    "train_mlp",
                    format!(
                        "the {name} data has {} features per row but the model takes {inputs}",
                        data.columns()
                    ),
                ));
            }
        }
    }
    let mut workspace = MlpWorkspace::new(mlp, batch_capacity(config, train.len()))?;
    let eval_batch = config.batch_size.max(256);
    run_epochs(
        mlp,
        train.len(),
        config,
        |mlp, batch, optimiser| workspace.train_step(mlp, train, batch, optimiser),
        |mlp| {
            val.map(|v| Ok((evaluate(mlp, v, eval_batch)?, v.len())))
                .transpose()
        },
    )
}

/// Trains a sequence classifier in place, like [`train_mlp`]. Each batch
/// runs as shards of rows on the rayon pool, as [`SequenceWorkspace`]
/// describes. Each shard is cut to its longest true length, which changes
/// no result because the recurrence is causal.
///
/// # Errors
///
/// As [`train_mlp`], with [`NnError::Shape`] for a token id outside the
/// vocabulary.
pub fn train_sequence_classifier(
    model: &mut SequenceClassifier,
    train: &SequenceDataset<'_>,
    val: Option<&SequenceDataset<'_>>,
    config: &TrainConfig,
) -> Result<TrainReport, NnError> {
    check_config(train.len(), val.map(|v| v.len()), config)?;
    let mut workspace = SequenceWorkspace::new(model, batch_capacity(config, train.len()))?;
    let eval_batch = config.batch_size.max(256);
    run_epochs(
        model,
        train.len(),
        config,
        |model, batch, optimiser| workspace.train_step(model, train, batch, optimiser),
        |model| {
            val.map(|v| Ok((evaluate_sequences(model, v, eval_batch)?, v.len())))
                .transpose()
        },
    )
}

/// Returns how many sequences of `data` the model classifies correctly,
/// evaluating `batch_size` sequences at a time.
///
/// # Errors
///
/// [`NnError::InvalidConfig`] if `batch_size` is 0, [`NnError::Shape`] for
/// a token id outside the vocabulary and [`NnError::LabelOutOfRange`] for a
/// bad label.
pub fn evaluate_sequences(
    model: &SequenceClassifier,
    data: &SequenceDataset<'_>,
    batch_size: usize,
) -> Result<usize, NnError> {
    if batch_size == 0 {
        return Err(NnError::config(
            "batch_size",
            "the batch size must be at least 1",
        ));
    }
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut gathered = GatheredSequences::default();
    let mut correct = 0;
    for batch in indices.chunks(batch_size) {
        data.gather(batch, &mut gathered);
        let logits = model.forward(&gathered.tokens()?)?;
        correct += correct_count(&logits, &gathered.labels)?;
    }
    Ok(correct)
}

/// The loop shared by every model: shuffling, batching, per-epoch reports
/// and early stopping. `train_batch` runs forward, backward and one
/// optimiser step on the given training rows and returns the batch's mean
/// loss and correct count. `validate` returns the validation correct count
/// and row count, or `None` without validation data.
fn run_epochs<M: Clone>(
    model: &mut M,
    train_len: usize,
    config: &TrainConfig,
    mut train_batch: impl FnMut(&mut M, &[usize], &mut Optimiser) -> Result<(f32, usize), NnError>,
    mut validate: impl FnMut(&M) -> Result<Option<(usize, usize)>, NnError>,
) -> Result<TrainReport, NnError> {
    let mut optimiser = match config.optimiser {
        OptimiserConfig::Adam(c) => Optimiser::Adam(Adam::new(c)?),
        OptimiserConfig::Sgd(c) => Optimiser::Sgd(Sgd::new(c)?),
    };
    let mut rng = SplitMix64::new(config.seed);
    let mut order: Vec<usize> = (0..train_len).collect();
    let mut reports = Vec::with_capacity(config.epochs.min(1024));
    let mut best: Option<(usize, usize, M)> = None;
    let mut stopped_early = false;
    let mut progress = Progress::new(config, train_len);
    for epoch in 1..=config.epochs {
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0f64;
        let mut train_correct = 0;
        let mut rows_done = 0;
        for batch in order.chunks(config.batch_size) {
            let (loss, correct) = train_batch(model, batch, &mut optimiser)?;
            loss_sum += f64::from(loss) * batch.len() as f64;
            train_correct += correct;
            rows_done += batch.len();
            progress.batch(epoch, rows_done, loss_sum / rows_done as f64);
        }

        let validation = validate(model)?;
        let val_correct = validation.map(|(correct, _)| correct);
        let val_accuracy = validation.map(|(correct, rows)| correct as f32 / rows.max(1) as f32);
        reports.push(EpochReport {
            epoch,
            train_loss: (loss_sum / train_len as f64) as f32,
            train_correct,
            train_accuracy: train_correct as f32 / train_len as f32,
            val_correct,
            val_accuracy,
        });
        if let Some(report) = reports.last() {
            progress.epoch(report);
        }

        if let (Some(patience), Some(correct)) = (config.patience, val_correct) {
            let improved = best.as_ref().is_none_or(|(_, b, _)| correct > *b);
            if improved {
                best = Some((epoch, correct, model.clone()));
            } else if best.as_ref().is_some_and(|(e, _, _)| epoch - e >= patience) {
                stopped_early = epoch < config.epochs;
                break;
            }
        }
    }

    let best_epoch = match best {
        Some((epoch, _, weights)) => {
            *model = weights;
            epoch
        }
        None => reports.len(),
    };
    Ok(TrainReport {
        epochs: reports,
        best_epoch,
        stopped_early,
    })
}

/// The one-line progress display of [`run_epochs`] on stderr, active only
/// if [`TrainConfig::progress`] is set and stderr is a terminal.
struct Progress {
    active: bool,
    epochs: usize,
    rows: usize,
    last_draw: Option<Instant>,
}

impl Progress {
    /// Minimum time between two redraws, so fast batches do not flood the
    /// terminal.
    const INTERVAL: Duration = Duration::from_millis(100);
    const BAR_WIDTH: usize = 30;

    fn new(config: &TrainConfig, rows: usize) -> Self {
        Progress {
            active: config.progress && std::io::stderr().is_terminal(),
            epochs: config.epochs,
            rows,
            last_draw: None,
        }
    }

    /// Redraws the line after a batch, at most once per [`Self::INTERVAL`]
    /// and always after the last batch.
    fn batch(&mut self, epoch: usize, rows_done: usize, mean_loss: f64) {
        if !self.active {
            return;
        }
        let now = Instant::now();
        let due = self
            .last_draw
            .is_none_or(|t| now.duration_since(t) >= Self::INTERVAL);
        if !due && rows_done < self.rows {
            return;
        }
        self.last_draw = Some(now);
        let filled = Self::BAR_WIDTH * rows_done / self.rows.max(1);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\repoch {epoch}/{} [{:#<filled$}{:.<empty$}] {rows_done}/{} loss {mean_loss:.4}",
            self.epochs,
            "",
            "",
            self.rows,
            empty = Self::BAR_WIDTH - filled,
        );
        let _ = stderr.flush();
    }

    /// Replaces the line by the epoch's summary and ends it.
    fn epoch(&mut self, report: &EpochReport) {
        if !self.active {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        // `\x1b[2K` clears the bar, which is longer than some summaries.
        let _ = write!(
            stderr,
            "\r\x1b[2Kepoch {}/{}: loss {:.4}, train accuracy {:.2} %",
            report.epoch,
            self.epochs,
            report.train_loss,
            100.0 * report.train_accuracy
        );
        if let Some(val) = report.val_accuracy {
            let _ = write!(stderr, ", validation accuracy {:.2} %", 100.0 * val);
        }
        let _ = writeln!(stderr);
        self.last_draw = None;
    }
}
