//! Scoring of candidate weights for a classifier's final linear layer.

use crate::ce::{CrossEntropySum, CE_BLOCK_ROWS};
use crate::TuneError;
use heft_kernels::gemm::{argmax_group, Epilogue, Gemm, MatMut, MatRef};
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
    /// Features and labels of the rows pruning could not fix.
    open_features: Vec<f32>,
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
    /// Per-element box the pruning is valid for, widened for f32 rounding.
    lower: Vec<f32>,
    upper: Vec<f32>,
    stats: HeadStats,
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
                format!("{rows} x {inputs} = {} values", rows * inputs),
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
        if w0.len() != classes * inputs {
            return Err(shape(
                "weights",
                format!("{classes} x {inputs} = {} values", classes * inputs),
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

        // The box the search draws from is w0 +- bound rounded to f32; widen
        // it by a few ulps of the largest weight so every candidate inside
        // the search box is inside this one.
        let centre: Vec<f32> = if bias_candidate {
            w0.iter().chain(bias).copied().collect()
        } else {
            w0.to_vec()
        };
        let max_weight = centre.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let radius = bound + 4.0 * f32::EPSILON * (max_weight + bound);
        let lower = centre.iter().map(|&w| w - radius).collect();
        let upper = centre.iter().map(|&w| w + radius).collect();

        let mut scorer = HeadScorer {
            gemm: Gemm::new(),
            inputs,
            classes,
            rows,
            features: features.to_vec(),
            labels: labels.to_vec(),
            open_features: Vec::new(),
            open_labels: Vec::new(),
            bias: bias.to_vec(),
            bias_candidate,
            bias_tiled: Vec::new(),
            weights_stacked: Vec::new(),
            logits: Vec::new(),
            counts: Vec::new(),
            lower,
            upper,
            stats: HeadStats {
                rows,
                ..HeadStats::default()
            },
        };
        scorer.find_fixed_rows(w0, radius, prune);
        Ok(scorer)
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

    /// Returns the counters.
    pub fn stats(&self) -> HeadStats {
        self.stats
    }

    /// Splits rows into fixed ones (counted now) and open ones (scanned
    /// per population).
    ///
    /// A row is fixed when, for its top class `t` under `w0` and every
    /// other class `c`, `z_t - z_c > 2 (r |h|_1 + r_b) + err_t + err_c`:
    /// inside the box every logit moves by at most `r |h|_1 + r_b`, where
    /// `r_b` is `r` when the bias is searched and 0 otherwise, and `err`
    /// bounds the f32 rounding of the kernel, `(inputs + 2) eps (sum_i
    /// (|w0| + r) |h_i| + |bias| + r_b)`. The f32 logit of `t` then stays
    /// strictly the largest for every candidate, so the kernel's argmax is
    /// `t`.
    fn find_fixed_rows(&mut self, w0: &[f32], radius: f32, prune: bool) {
        let (inputs, classes) = (self.inputs, self.classes);
        let radius = f64::from(radius);
        let bias_radius = if self.bias_candidate { radius } else { 0.0 };
        let gamma = (inputs as f64 + 2.0) * f64::from(f32::EPSILON);
        let mut logits = vec![0.0f64; classes];
        let mut errors = vec![0.0f64; classes];
        for (row, h) in self.features.chunks_exact(inputs).enumerate() {
            let label = self.labels[row];
            let fixed = prune && h.iter().all(|x| x.is_finite()) && {
                let l1: f64 = h.iter().map(|&x| f64::from(x).abs()).sum();
                for c in 0..classes {
                    let w = &w0[c * inputs..(c + 1) * inputs];
                    let mut z = f64::from(self.bias[c]);
                    let mut scale = f64::from(self.bias[c]).abs() + bias_radius;
                    for (&wi, &hi) in w.iter().zip(h) {
                        z += f64::from(wi) * f64::from(hi);
                        scale += (f64::from(wi).abs() + radius) * f64::from(hi).abs();
                    }
                    logits[c] = z;
                    errors[c] = gamma * scale;
                }
                let top = (0..classes).fold(0, |t, c| if logits[c] > logits[t] { c } else { t });
                let fixed = (0..classes).all(|c| {
                    c == top
                        || logits[top] - logits[c]
                            > 2.0 * (radius * l1 + bias_radius) + errors[top] + errors[c]
                });
                if fixed {
                    self.stats.fixed_correct += u64::from(top == label as usize);
                }
                fixed
            };
            if fixed {
                self.stats.fixed_rows += 1;
            } else {
                self.open_features.extend_from_slice(h);
                self.open_labels.push(label);
            }
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
        let in_box = population.chunks_exact(dim).all(|w| {
            w.iter()
                .zip(&self.lower)
                .zip(&self.upper)
                .all(|((x, lo), hi)| x >= lo && x <= hi)
        });
        let (features, labels, fixed_correct) = if in_box {
            (
                &self.open_features,
                &self.open_labels,
                self.stats.fixed_correct,
            )
        } else {
            self.stats.full_scans += 1;
            (&self.features, &self.labels, 0)
        };
        let open_rows = labels.len();
        if candidates > 0 {
            let weights = if self.bias_candidate {
                &self.weights_stacked
            } else {
                population
            };
            let a = MatRef::row_major(features, open_rows, self.inputs).map_err(layout_error)?;
            let b = MatRef::row_major(weights, candidates * self.classes, self.inputs)
                .map_err(layout_error)?
                .t();
            self.gemm
                .argmax_count(
                    a,
                    b,
                    Some(&self.bias_tiled),
                    self.classes,
                    labels,
                    &mut self.counts,
                )
                .map_err(|e| TuneError::Shape {
                    what: "population scoring",
                    expected: "consistent shapes".into(),
                    actual: e.to_string(),
                })?;
        }
        for count in &mut self.counts {
            *count += fixed_correct;
        }
        self.stats.candidates += candidates as u64;
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
        self.stats.candidates += candidates as u64;
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
