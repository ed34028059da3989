//! Models, validation splits, tensor names and whole-model evaluation.

use crate::ce::{CrossEntropySum, CE_BLOCK_ROWS};
use crate::TuneError;
use heft_kernels::gemm::argmax_group;
use heft_nn::{Mlp, RecurrentLayer, SequenceClassifier, TokenBatch};
use heft_tensor::Matrix;

/// A classifier whose weights are tuned.
// The variants hold the models unboxed so callers can match and build them
// directly. A model is created once per run, so the size difference costs
// nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Model {
    /// An MLP with layers `fc1` to `fcL`.
    Mlp(Mlp),
    /// An `emb -> rnn -> fc` sequence classifier.
    Sequence(SequenceClassifier),
}

/// A labelled split the model is scored on, borrowed from the caller.
#[derive(Clone, Copy, Debug)]
pub enum Split<'a> {
    /// Row-major features [rows x columns] with one label per row.
    Dense {
        /// Features, `rows * columns` values.
        features: &'a [f32],
        /// Features per row.
        columns: usize,
        /// One class index per row.
        labels: &'a [u32],
    },
    /// Token ids [rows x seq_len], true lengths, labels.
    Tokens {
        /// Token ids, `rows * seq_len` values, right-padded with id 0.
        ids: &'a [u32],
        /// True length of each sequence, in `1..=seq_len`.
        lengths: &'a [usize],
        /// Tokens per row of `ids`.
        seq_len: usize,
        /// One class index per row.
        labels: &'a [u32],
    },
}

impl Split<'_> {
    /// Returns the labels.
    pub fn labels(&self) -> &[u32] {
        match self {
            Split::Dense { labels, .. } | Split::Tokens { labels, .. } => labels,
        }
    }

    /// Returns the number of rows.
    pub fn rows(&self) -> usize {
        self.labels().len()
    }
}

/// The value a candidate is scored by, minimised by the search.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fitness {
    /// `1 - accuracy`, with accuracy an exact count of correct argmax
    /// predictions over the split.
    #[default]
    Error,
    /// Mean softmax cross-entropy over the rows of the split.
    CrossEntropy,
}

/// The tensor a search tunes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// A name from [`tensor_names`], such as `fc2.weight`.
    pub tensor: String,
    /// Whether the tensor's own bias (`fcK.bias` for `fcK.weight`,
    /// `rnn.bias_ih_l0` for `rnn.weight_ih_l0`, ...) is tuned too.
    pub include_bias: bool,
}

/// Whole-model scores on a split.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Rows whose argmax prediction equals the label.
    pub correct: u64,
    /// Rows in the split.
    pub rows: usize,
    /// Mean softmax cross-entropy over the rows.
    pub mean_cross_entropy: f64,
    /// Counts of (true label, prediction) pairs, `classes x classes`
    /// row-major, row = true label.
    pub confusion: Vec<u64>,
    /// Number of classes.
    pub classes: usize,
}

impl Evaluation {
    /// Returns `correct / rows`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.rows as f64
    }
}

/// Returns every tensor that can be tuned, in the model's parameter order.
///
/// These are the weight matrices of every layer and, for a sequence model,
/// the recurrent biases. The bias of a linear layer (`fcK.bias`,
/// `fc.bias`) is tuned together with its weight through
/// [`Target::include_bias`].
pub fn tensor_names(model: &Model) -> Vec<String> {
    match model {
        Model::Mlp(mlp) => (1..=mlp.layers().len())
            .map(|k| format!("fc{k}.weight"))
            .collect(),
        Model::Sequence(seq) => seq
            .parameter_names()
            .into_iter()
            .filter(|name| name != "fc.bias")
            .collect(),
    }
}

/// Returns the number of classes of the model.
pub(crate) fn classes(model: &Model) -> usize {
    match model {
        Model::Mlp(mlp) => mlp.layers()[mlp.layers().len() - 1].out_features(),
        Model::Sequence(seq) => seq.fc().out_features(),
    }
}

/// Checks that `split` fits `model` and returns its number of rows.
pub(crate) fn check_split(model: &Model, split: &Split<'_>) -> Result<usize, TuneError> {
    let rows = split.rows();
    match (model, split) {
        (
            Model::Mlp(mlp),
            Split::Dense {
                features, columns, ..
            },
        ) => {
            let inputs = mlp.layers()[0].in_features();
            if *columns != inputs {
                return Err(TuneError::SplitMismatch {
                    what: "the number of input columns",
                    model: inputs.to_string(),
                    split: columns.to_string(),
                    fix: "use the checkpoint trained on this dataset or a dataset with that many features",
                });
            }
            if Some(features.len()) != rows.checked_mul(*columns) {
                return Err(TuneError::Shape {
                    what: "split features",
                    expected: format!("{rows} rows x {columns} columns"),
                    actual: format!("{} values", features.len()),
                });
            }
        }
        (
            Model::Sequence(seq),
            Split::Tokens {
                ids,
                lengths,
                seq_len,
                ..
            },
        ) => {
            if lengths.len() != rows {
                return Err(TuneError::Shape {
                    what: "split lengths",
                    expected: format!("{rows} lengths, one per label"),
                    actual: format!("{}", lengths.len()),
                });
            }
            TokenBatch::new(ids, lengths, *seq_len)?;
            let vocab = seq.emb().vocab();
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(TuneError::SplitMismatch {
                    what: "the vocabulary size",
                    model: vocab.to_string(),
                    split: format!("a token id of {id}"),
                    fix: "use the checkpoint trained with this corpus's vocabulary",
                });
            }
        }
        (Model::Mlp(_), Split::Tokens { .. }) | (Model::Sequence(_), Split::Dense { .. }) => {
            let kind = |dense: bool| if dense { "dense features" } else { "token ids" };
            let model_dense = matches!(model, Model::Mlp(_));
            return Err(TuneError::SplitMismatch {
                what: "the input kind",
                model: kind(model_dense).into(),
                split: kind(!model_dense).into(),
                fix:
                    "use an MLP with an image dataset and a sequence classifier with a text corpus",
            });
        }
    }
    if rows == 0 {
        return Err(TuneError::EmptySplit);
    }
    let classes = classes(model);
    if let Some(row) = split.labels().iter().position(|&l| l as usize >= classes) {
        return Err(TuneError::Label {
            row,
            label: split.labels()[row],
            classes,
        });
    }
    Ok(rows)
}

/// Returns the logits of rows `row0..row0 + rows` of the split from the
/// model's own forward pass.
pub(crate) fn forward_rows(
    model: &Model,
    split: &Split<'_>,
    row0: usize,
    rows: usize,
) -> Result<Matrix, TuneError> {
    match (model, split) {
        (
            Model::Mlp(mlp),
            Split::Dense {
                features, columns, ..
            },
        ) => {
            let x = Matrix::from_slice(
                rows,
                *columns,
                &features[row0 * columns..(row0 + rows) * columns],
            )?;
            Ok(mlp.forward(&x)?)
        }
        (
            Model::Sequence(seq),
            Split::Tokens {
                ids,
                lengths,
                seq_len,
                ..
            },
        ) => {
            let batch = TokenBatch::new(
                &ids[row0 * seq_len..(row0 + rows) * seq_len],
                &lengths[row0..row0 + rows],
                *seq_len,
            )?;
            Ok(seq.forward(&batch)?)
        }
        _ => Err(TuneError::Model(
            "the split kind does not fit the model".into(),
        )),
    }
}

/// Scores the model on the split: exact correct count, confusion matrix
/// and mean cross-entropy. Rows run through the model's forward pass in
/// blocks; predictions are the argmax of each row's logits with ties to
/// the lowest class and NaN first, as the fused scorers count them.
///
/// # Errors
///
/// [`TuneError`] for an empty split or one that does not fit the model.
pub fn evaluate(model: &Model, split: Split<'_>) -> Result<Evaluation, TuneError> {
    let rows = check_split(model, &split)?;
    let classes = classes(model);
    let labels = split.labels();
    let mut confusion = vec![0u64; classes * classes];
    let mut correct = 0u64;
    let mut loss = CrossEntropySum::default();
    for row0 in (0..rows).step_by(CE_BLOCK_ROWS) {
        let block = CE_BLOCK_ROWS.min(rows - row0);
        let logits = forward_rows(model, &split, row0, block)?;
        let block_labels = &labels[row0..row0 + block];
        for (z, &label) in logits.as_slice().chunks_exact(classes).zip(block_labels) {
            let predicted = argmax_group(z).unwrap_or(0);
            confusion[label as usize * classes + predicted] += 1;
            correct += u64::from(predicted == label as usize);
        }
        loss.add_rows(logits.as_slice(), classes, block_labels);
    }
    Ok(Evaluation {
        correct,
        rows,
        mean_cross_entropy: loss.total() / rows as f64,
        confusion,
        classes,
    })
}

/// Returns the hidden state at each sequence's last true token for the
/// time-major embedded inputs `xs` (`seq_len` matrices of
/// `[batch, embedding]`), as [`SequenceClassifier::forward`] computes it.
pub(crate) fn last_hidden(
    rnn: &RecurrentLayer,
    xs: &[Matrix],
    lengths: &[usize],
) -> Result<Matrix, TuneError> {
    let states = match rnn {
        RecurrentLayer::Rnn(r) => r.forward(xs)?,
        RecurrentLayer::Lstm(l) => l.forward(xs)?,
    };
    let hidden = states[0].cols();
    let mut out = Matrix::zeros(lengths.len(), hidden)?;
    for (b, dst) in out.as_mut_slice().chunks_exact_mut(hidden).enumerate() {
        let state = &states[lengths[b] - 1];
        dst.copy_from_slice(&state.as_slice()[b * hidden..(b + 1) * hidden]);
    }
    Ok(out)
}
