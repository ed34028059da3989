//! Scoring of candidate weights for a classifier's final linear layer.

use crate::ce::{CrossEntropySum, CE_BLOCK_ROWS};
use crate::interval::{decided_by_bounds, Affine, IntervalMatrix, Intervals, SearchBox};
use crate::prune::{decide_rows, Pruning};
use crate::zeros::grouped_by_zeros;
use crate::TuneError;
use heft_kernels::gemm::{argmax_group, ArgmaxA, Epilogue, Gemm, MatMut, MatRef};
use heft_search::Objective;

/// Counters describing a [`HeadScorer`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HeadStats {
    /// Validation rows.
    pub rows: usize,
    /// Rows whose prediction no candidate inside the box can change.
    pub fixed_rows: usize,
    /// Of the fixed rows, those predicted correctly.
    pub fixed_correct: u64,
    /// Candidates scored so far.
    pub candidates: u64,
    /// Populations scored with the full scan because a candidate lay
    /// outside the box the pruning assumed.
    pub full_scans: u64,
}

impl HeadStats {
    /// Returns the share of rows skipped by pruning, in [0, 1].
    pub fn pruned_fraction(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.fixed_rows as f64 / self.rows as f64
        }
    }
}

/// Scores candidate weight matrices `W` (`classes x inputs`, row-major, as
/// PyTorch's `Linear.weight`) of a classifier's last layer by the exact
/// accuracy of `argmax(h W^T + bias)` over cached input features `h`.
///
/// A population of `P` candidates is one row-major `P x (classes * inputs)`
/// slice. Its transpose view is the `inputs x (classes * P)` right-hand
/// side of one GEMM, so scoring copies no weights.
///
/// A scorer made by [`HeadScorer::with_bias_candidate`] also searches the
/// bias: each candidate is then `classes * inputs` weights followed by
/// `classes` bias values, and the weights are copied into one contiguous
/// stack per population before the GEMM.
pub struct HeadScorer {
    gemm: Gemm,
    inputs: usize,
    classes: usize,
    rows: usize,
    features: Vec<f32>,
    labels: Vec<u32>,
    /// Features of the rows pruning could not fix, packed once for the
    /// fused count, and their labels.
    open_features: ArgmaxA,
    open_labels: Vec<u32>,
    bias: Vec<f32>,
    /// Whether each candidate ends with its own bias.
    bias_candidate: bool,
    bias_tiled: Vec<f32>,
    /// Candidates' weights side by side when they carry a bias.
    weights_stacked: Vec<f32>,
    /// Logits of one row block, for cross-entropy.
    logits: Vec<f32>,
    counts: Vec<u64>,
    /// The fixed rows and the box they are fixed for.
    pruning: Pruning,
    /// Candidates scored so far.
    candidates: u64,
}

impl HeadScorer {
    /// Creates a scorer over `rows x inputs` row-major `features` with one
    /// label per row, for the box `w0 +- bound` around the pre-trained
    /// weights `w0` (`classes x inputs`) with fixed `bias` (`classes`).
    ///
    /// With `prune`, rows whose prediction cannot change for any candidate
    /// in that box are found here and skipped by [`HeadScorer::score`];
    /// results are identical either way.
    ///
    /// # Errors
    ///
    /// [`TuneError`] for mismatched sizes, an empty split, labels not below
    /// `classes`, a bound that is not positive and finite, or NaN or
    /// infinite weights or bias.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        features: &[f32],
        rows: usize,
        inputs: usize,
        labels: &[u32],
        w0: &[f32],
        bias: &[f32],
        bound: f32,
        prune: bool,
    ) -> Result<Self, TuneError> {
        Self::build(
            features, rows, inputs, labels, w0, bias, bound, prune, false,
        )
    }

    /// Creates a scorer like [`HeadScorer::new`] whose candidates also
    /// carry the bias: `classes * inputs` weights, then `classes` bias
    /// values, searched in the box `(w0, bias) +- bound`. Pruning widens
    /// each logit's interval by `bound` for the bias.
    ///
    /// # Errors
    ///
    /// As [`HeadScorer::new`].
    #[allow(clippy::too_many_arguments)]
    pub fn with_bias_candidate(
        features: &[f32],
        rows: usize,
        inputs: usize,
        labels: &[u32],
        w0: &[f32],
        bias: &[f32],
        bound: f32,
        prune: bool,
    ) -> Result<Self, TuneError> {
        Self::build(features, rows, inputs, labels, w0, bias, bound, prune, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        features: &[f32],
        rows: usize,
        inputs: usize,
        labels: &[u32],
        w0: &[f32],
        bias: &[f32],
        bound: f32,
        prune: bool,
        bias_candidate: bool,
    ) -> Result<Self, TuneError> {
        let classes = bias.len();
        let shape = |what, expected: String, actual: String| TuneError::Shape {
            what,
            expected,
            actual,
        };
        if rows == 0 || inputs == 0 || classes == 0 {
            return Err(shape(
                "head scorer",
                "at least one row, input and class".into(),
                format!("{rows} rows, {inputs} inputs, {classes} classes"),
            ));
        }
        if Some(features.len()) != rows.checked_mul(inputs) {
            return Err(shape(
                "features",
                product_values(rows, inputs),
                format!("{} values", features.len()),
            ));
        }
        if labels.len() != rows {
            return Err(shape(
                "labels",
                format!("{rows} labels"),
                format!("{}", labels.len()),
            ));
        }
        if Some(w0.len()) != classes.checked_mul(inputs) {
            return Err(shape(
                "weights",
                product_values(classes, inputs),
                format!("{} values", w0.len()),
            ));
        }
        if !(bound.is_finite() && bound > 0.0) {
            return Err(TuneError::Bound(bound));
        }
        if let Some(row) = labels.iter().position(|&l| l as usize >= classes) {
            return Err(TuneError::Label {
                row,
                label: labels[row],
                classes,
            });
        }
        for (what, values) in [("weights", w0), ("bias", bias)] {
            if let Some(index) = values.iter().position(|x| !x.is_finite()) {
                return Err(TuneError::NonFinite { what, index });
            }
        }

        let centre: Vec<f32> = if bias_candidate {
            w0.iter().chain(bias).copied().collect()
        } else {
            w0.to_vec()
        };
        let search_box = SearchBox::around(&centre, bound);
        let decisions = if prune {
            let weights = IntervalMatrix::new(w0, classes, inputs, search_box.radius());
            let bias_radius = if bias_candidate {
                search_box.radius()
            } else {
                0.0
            };
            fixed_predictions(features, inputs, &weights, bias, bias_radius)
        } else {
            vec![None; rows]
        };
        let pruning = Pruning::new(search_box, &decisions, labels);
        let mut open_features = Vec::new();
        let mut open_labels = Vec::new();
        for ((h, &label), decision) in features.chunks_exact(inputs).zip(labels).zip(&decisions) {
            if decision.is_none() {
                open_features.extend_from_slice(h);
                open_labels.push(label);
            }
        }

        // The counts do not depend on the order of the rows, so the open
        // rows go in the order that lets the fused count skip the most
        // zero features.
        let gemm = Gemm::new();
        let zero_rows = gemm.argmax_zero_rows(classes);
        let (open_features, open_labels) = if zero_rows > 1 {
            grouped_by_zeros(&open_features, inputs, &open_labels, zero_rows)
        } else {
            (open_features, open_labels)
        };
        let open_view =
            MatRef::row_major(&open_features, open_labels.len(), inputs).map_err(layout_error)?;
        let open_features = gemm
            .pack_argmax_a(open_view, classes)
            .map_err(|e| scoring_error(&e))?;
        Ok(HeadScorer {
            gemm,
            inputs,
            classes,
            rows,
            features: features.to_vec(),
            labels: labels.to_vec(),
            open_features,
            open_labels,
            bias: bias.to_vec(),
            bias_candidate,
            bias_tiled: Vec::new(),
            weights_stacked: Vec::new(),
            logits: Vec::new(),
            counts: Vec::new(),
            pruning,
            candidates: 0,
        })
    }

    /// Returns the number of variables of one candidate: the weights, plus
    /// the bias for a scorer made by [`HeadScorer::with_bias_candidate`].
    pub fn dim(&self) -> usize {
        self.classes * self.inputs + if self.bias_candidate { self.classes } else { 0 }
    }

    /// Returns the number of validation rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Returns the share of multiply-adds the fused count skips over the
    /// open rows because their features are zero (see
    /// [`ArgmaxA::skipped_fraction`]).
    pub fn skipped_fraction(&self) -> f64 {
        self.open_features.skipped_fraction()
    }

    /// Returns the record of the fixed rows.
    pub(crate) fn pruning(&self) -> &Pruning {
        &self.pruning
    }

    /// Returns the counters.
    pub fn stats(&self) -> HeadStats {
        HeadStats {
            rows: self.rows,
            fixed_rows: self.pruning.fixed_rows(),
            fixed_correct: self.pruning.fixed_correct(),
            candidates: self.candidates,
            full_scans: self.pruning.full_scans(),
        }
    }

    /// Counts correct predictions of each candidate of `population` over
    /// all rows into the returned slice.
    ///
    /// # Errors
    ///
    /// [`TuneError::Shape`] if the population is not a whole number of
    /// candidates of [`HeadScorer::dim`] values.
    pub fn correct_counts(&mut self, population: &[f32]) -> Result<&[u64], TuneError> {
        let dim = self.dim();
        if !population.len().is_multiple_of(dim) {
            return Err(TuneError::Shape {
                what: "population",
                expected: format!("a multiple of {dim} values"),
                actual: format!("{} values", population.len()),
            });
        }
        let candidates = population.len() / dim;
        self.counts.resize(candidates, 0);
        self.stack(population);
        let admitted = self.pruning.admits(population);
        let fixed_correct = if admitted {
            self.pruning.fixed_correct()
        } else {
            0
        };
        if candidates > 0 {
            let weights = if self.bias_candidate {
                &self.weights_stacked
            } else {
                population
            };
            let b = MatRef::row_major(weights, candidates * self.classes, self.inputs)
                .map_err(layout_error)?
                .t();
            let bias = Some(&self.bias_tiled[..]);
            if admitted {
                self.gemm.argmax_count_packed(
                    &self.open_features,
                    b,
                    bias,
                    &self.open_labels,
                    &mut self.counts,
                )
            } else {
                let a = MatRef::row_major(&self.features, self.rows, self.inputs)
                    .map_err(layout_error)?;
                self.gemm
                    .argmax_count(a, b, bias, self.classes, &self.labels, &mut self.counts)
            }
            .map_err(|e| scoring_error(&e))?;
        }
        for count in &mut self.counts {
            *count += fixed_correct;
        }
        self.candidates += candidates as u64;
        Ok(&self.counts)
    }

    /// Fills `bias_tiled` with each candidate's bias and, when candidates
    /// carry a bias, `weights_stacked` with their weights side by side.
    fn stack(&mut self, population: &[f32]) {
        let dim = self.dim();
        let weights = self.classes * self.inputs;
        self.bias_tiled.clear();
        self.weights_stacked.clear();
        for candidate in population.chunks_exact(dim) {
            if self.bias_candidate {
                self.weights_stacked
                    .extend_from_slice(&candidate[..weights]);
                self.bias_tiled.extend_from_slice(&candidate[weights..]);
            } else {
                self.bias_tiled.extend_from_slice(&self.bias);
            }
        }
    }

    /// Writes the mean softmax cross-entropy over all rows of each
    /// candidate into `mean_loss`. Logits are computed by one GEMM per
    /// block of rows into a scratch buffer; the per-row losses are summed
    /// in f64 in a fixed order, so the result does not depend on the
    /// thread count. Pruning does not apply: every row is scanned.
    ///
    /// # Errors
    ///
    /// [`TuneError::Shape`] if the population is not a whole number of
    /// candidates or `mean_loss` does not have one value per candidate.
    pub fn cross_entropy(
        &mut self,
        population: &[f32],
        mean_loss: &mut [f64],
    ) -> Result<(), TuneError> {
        let dim = self.dim();
        if !population.len().is_multiple_of(dim) || population.len() / dim != mean_loss.len() {
            return Err(TuneError::Shape {
                what: "population",
                expected: format!("{} candidates of {dim} values", mean_loss.len()),
                actual: format!("{} values", population.len()),
            });
        }
        let candidates = mean_loss.len();
        if candidates == 0 {
            return Ok(());
        }
        self.stack(population);
        let (inputs, classes) = (self.inputs, self.classes);
        let width = candidates * classes;
        let weights = if self.bias_candidate {
            &self.weights_stacked
        } else {
            population
        };
        let b = MatRef::row_major(weights, width, inputs)
            .map_err(layout_error)?
            .t();
        let mut sums = vec![CrossEntropySum::default(); candidates];
        let block_rows = CE_BLOCK_ROWS.min(self.rows);
        self.logits.resize(block_rows * width, 0.0);
        for row0 in (0..self.rows).step_by(block_rows) {
            let rows = block_rows.min(self.rows - row0);
            let a = MatRef::row_major(
                &self.features[row0 * inputs..(row0 + rows) * inputs],
                rows,
                inputs,
            )
            .map_err(layout_error)?;
            let c = MatMut::row_major(&mut self.logits[..rows * width], rows, width)
                .map_err(layout_error)?;
            let epilogue = Epilogue {
                bias: Some(&self.bias_tiled),
                relu: false,
            };
            self.gemm
                .run_with(1.0, a, b, 0.0, c, epilogue)
                .map_err(|e| TuneError::Shape {
                    what: "cross-entropy scoring",
                    expected: "consistent shapes".into(),
                    actual: e.to_string(),
                })?;
            let labels = &self.labels[row0..row0 + rows];
            for (row, &label) in self.logits[..rows * width].chunks_exact(width).zip(labels) {
                for (sum, logits) in sums.iter_mut().zip(row.chunks_exact(classes)) {
                    sum.add(crate::ce::row_cross_entropy(logits, label));
                }
            }
        }
        for (out, sum) in mean_loss.iter_mut().zip(&sums) {
            *out = sum.total() / self.rows as f64;
        }
        self.candidates += candidates as u64;
        Ok(())
    }

    /// Writes `1 - accuracy` of each candidate into `fitness`.
    ///
    /// # Errors
    ///
    /// [`TuneError::Shape`] if `fitness` does not have one value per
    /// candidate or the population is malformed.
    pub fn score(&mut self, population: &[f32], fitness: &mut [f64]) -> Result<(), TuneError> {
        let rows = self.rows as f64;
        let counts = self.correct_counts(population)?;
        if counts.len() != fitness.len() {
            return Err(TuneError::Shape {
                what: "fitness",
                expected: format!("{} values", counts.len()),
                actual: format!("{} values", fitness.len()),
            });
        }
        for (f, &count) in fitness.iter_mut().zip(counts) {
            *f = 1.0 - count as f64 / rows;
        }
        Ok(())
    }

    /// Counts the correct predictions of one candidate the slow way: its
    /// logits for every row through a plain GEMM with the bias epilogue,
    /// then an argmax per row. Used to check [`HeadScorer::correct_counts`].
    ///
    /// # Errors
    ///
    /// [`TuneError::Shape`] if `weights` does not have [`HeadScorer::dim`]
    /// values.
    pub fn reference_count(&self, weights: &[f32]) -> Result<u64, TuneError> {
        if weights.len() != self.dim() {
            return Err(TuneError::Shape {
                what: "weights",
                expected: format!("{} values", self.dim()),
                actual: format!("{} values", weights.len()),
            });
        }
        let (weights, bias) = weights.split_at(self.classes * self.inputs);
        let bias = if self.bias_candidate {
            bias
        } else {
            &self.bias
        };
        let mut logits = vec![0.0f32; self.rows * self.classes];
        let a = MatRef::row_major(&self.features, self.rows, self.inputs).map_err(layout_error)?;
        let b = MatRef::row_major(weights, self.classes, self.inputs)
            .map_err(layout_error)?
            .t();
        let c = MatMut::row_major(&mut logits, self.rows, self.classes).map_err(layout_error)?;
        let epilogue = Epilogue {
            bias: Some(bias),
            relu: false,
        };
        self.gemm
            .run_with(1.0, a, b, 0.0, c, epilogue)
            .map_err(|e| TuneError::Shape {
                what: "reference scoring",
                expected: "consistent shapes".into(),
                actual: e.to_string(),
            })?;
        let correct = logits
            .chunks_exact(self.classes)
            .zip(&self.labels)
            .filter(|(row, &label)| argmax_group(row) == Some(label as usize))
            .count();
        Ok(correct as u64)
    }
}

/// Returns the error for a GEMM call that rejected the scorer's own
/// arguments, which their construction rules out.
fn scoring_error(e: &heft_kernels::gemm::GemmError) -> TuneError {
    TuneError::Shape {
        what: "population scoring",
        expected: "consistent shapes".into(),
        actual: e.to_string(),
    }
}

/// Describes the `rows x cols` values a shape check expected, without
/// overflowing when the product exceeds `usize`.
fn product_values(rows: usize, cols: usize) -> String {
    match rows.checked_mul(cols) {
        Some(count) => format!("{rows} x {cols} = {count} values"),
        None => format!("{rows} x {cols} values, more than usize can count"),
    }
}

pub(crate) fn layout_error(e: heft_kernels::gemm::LayoutError) -> TuneError {
    TuneError::Shape {
        what: "matrix view",
        expected: "a view inside its buffer".into(),
        actual: e.to_string(),
    }
}

impl Objective for HeadScorer {
    /// Scores with [`HeadScorer::score`]. A malformed population (which
    /// the search algorithms never produce) gets NaN fitness, which ranks
    /// worst.
    fn evaluate(&mut self, candidates: &[f32], _dim: usize, fitness: &mut [f64]) {
        if self.score(candidates, fitness).is_err() {
            fitness.fill(f64::NAN);
        }
    }
}

/// Returns, for each row of `features` (`inputs` values per row), the class
/// that every candidate of the tuned last layer predicts, or `None` where
/// the row stays open.
///
/// The weights lie within their matrix's radius and the bias within
/// `bias_radius`, so each logit lies in an interval (see
/// [`Affine::add_product`]) widened by the f32 rounding slack. The rows of
/// `W` vary independently, so the logits' intervals are compared directly.
fn fixed_predictions(
    features: &[f32],
    inputs: usize,
    weights: &IntervalMatrix,
    bias: &[f32],
    bias_radius: f64,
) -> Vec<Option<usize>> {
    decide_rows(features.len() / inputs, |row| {
        let h = &features[row * inputs..(row + 1) * inputs];
        let mut logits = Affine::new(weights.rows());
        logits.add_product(weights, &Intervals::exact(h));
        logits.add_bias(bias, bias_radius);
        decided_by_bounds(&logits.finish()?)
    })
}
