//! Exact row pruning: finds, once per search box, the validation rows whose
//! argmax prediction no candidate inside the box can change. The bounds are
//! carried by interval arithmetic through the layers after the tuned
//! tensor, and [`crate::interval`] explains why they hold for the f32
//! kernels.
//!
//! A fixed row is counted once, correct or not, and the scoring paths skip
//! it for every population whose candidates all lie in the box. A
//! population with a candidate outside the box is scored over every row.

use crate::interval::{
    decided_class, product_bounds, rounding_slack, sigmoid, Affine, IntervalMatrix, Intervals,
    SearchBox, ACTIVATION_ERROR,
};
use heft_nn::{Mlp, RecurrentLayer, SequenceClassifier};

/// The rows pruning fixed for one search box, and the number of
/// populations that fell outside the box.
#[derive(Clone, Debug)]
pub(crate) struct Pruning {
    search_box: SearchBox,
    rows: usize,
    fixed_rows: usize,
    fixed_correct: u64,
    full_scans: u64,
}

impl Pruning {
    /// Creates the record for `decisions` (one per row: the class every
    /// candidate predicts, or `None` where the row stays open) against
    /// `labels`.
    pub(crate) fn new(search_box: SearchBox, decisions: &[Option<usize>], labels: &[u32]) -> Self {
        debug_assert_eq!(decisions.len(), labels.len());
        let fixed_rows = decisions.iter().filter(|d| d.is_some()).count();
        let fixed_correct = decisions
            .iter()
            .zip(labels)
            .filter(|(d, &label)| **d == Some(label as usize))
            .count() as u64;
        Pruning {
            search_box,
            rows: labels.len(),
            fixed_rows,
            fixed_correct,
            full_scans: 0,
        }
    }

    /// Returns whether every candidate of `population` lies in the box, so
    /// that the fixed rows may be skipped; otherwise counts a full scan.
    pub(crate) fn admits(&mut self, population: &[f32]) -> bool {
        let inside = self.search_box.contains(population);
        if !inside {
            self.full_scans += 1;
        }
        inside
    }

    /// Returns the number of fixed rows.
    pub(crate) fn fixed_rows(&self) -> usize {
        self.fixed_rows
    }

    /// Returns the number of fixed rows predicted correctly.
    pub(crate) fn fixed_correct(&self) -> u64 {
        self.fixed_correct
    }

    /// Returns the number of populations scored over every row because a
    /// candidate lay outside the box.
    pub(crate) fn full_scans(&self) -> u64 {
        self.full_scans
    }

    /// Returns the share of rows that are fixed, in [0, 1].
    pub(crate) fn pruned_fraction(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.fixed_rows as f64 / self.rows as f64
        }
    }
}

/// Returns `decide(row)` for every row in `0..rows`, in parallel over rows
/// when the `parallel` feature is on. Each decision depends only on its
/// row, so the result does not depend on the thread count.
pub(crate) fn decide_rows(
    rows: usize,
    decide: impl Fn(usize) -> Option<usize> + Sync,
) -> Vec<Option<usize>> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        (0..rows).into_par_iter().map(&decide).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        (0..rows).map(decide).collect()
    }
}

/// A frozen linear layer in interval form.
#[derive(Clone, Debug)]
struct FrozenLinear {
    weight: IntervalMatrix,
    bias: Vec<f32>,
}

impl FrozenLinear {
    fn new(layer: &heft_nn::Linear) -> Self {
        let weight = layer.weight();
        FrozenLinear {
            weight: IntervalMatrix::exact(weight.as_slice(), weight.rows(), weight.cols()),
            bias: layer.bias().to_vec(),
        }
    }

    /// Returns the bounds on the layer's f32 output for inputs inside
    /// `input`, or `None` if they are not finite.
    fn forward(&self, input: &Intervals) -> Option<Intervals> {
        let mut sum = Affine::new(self.weight.rows());
        sum.add_product(&self.weight, input);
        sum.add_bias(&self.bias, 0.0);
        sum.finish()
    }
}

/// An MLP from a tuned layer before the last one onwards, in interval form:
/// the tuned layer's weights (and bias, if tuned) within the box radius,
/// the later layers exact.
#[derive(Clone, Debug)]
pub(crate) struct MlpBounds {
    tuned: IntervalMatrix,
    tuned_bias: Vec<f32>,
    bias_radius: f64,
    /// The layers between the tuned one and the last, each followed by
    /// ReLU.
    middle: Vec<FrozenLinear>,
    last: FrozenLinear,
}

impl MlpBounds {
    /// Prepares the bounds for tuning layer `layer` (0-based, not the last)
    /// of `mlp` within `radius` per value, its bias too if `include_bias`.
    pub(crate) fn new(mlp: &Mlp, layer: usize, radius: f64, include_bias: bool) -> Self {
        let layers = mlp.layers();
        debug_assert!(layer + 1 < layers.len());
        let tuned = &layers[layer];
        let weight = tuned.weight();
        let last = layers.len() - 1;
        MlpBounds {
            tuned: IntervalMatrix::new(weight.as_slice(), weight.rows(), weight.cols(), radius),
            tuned_bias: tuned.bias().to_vec(),
            bias_radius: if include_bias { radius } else { 0.0 },
            middle: layers[layer + 1..last]
                .iter()
                .map(FrozenLinear::new)
                .collect(),
            last: FrozenLinear::new(&layers[last]),
        }
    }

    /// Returns the bounds on the input of the last layer (after ReLU) for
    /// the row whose tuned-layer input is `x`, or `None` if they are not
    /// finite.
    pub(crate) fn last_hidden(&self, x: &[f32]) -> Option<Intervals> {
        let mut sum = Affine::new(self.tuned.rows());
        sum.add_product(&self.tuned, &Intervals::exact(x));
        sum.add_bias(&self.tuned_bias, self.bias_radius);
        let mut hidden = sum.finish()?.relu();
        for layer in &self.middle {
            hidden = layer.forward(&hidden)?.relu();
        }
        Some(hidden)
    }

    /// Returns the class that every candidate predicts for the row whose
    /// tuned-layer input is `x`, or `None` if the bounds do not decide it.
    pub(crate) fn decide(&self, x: &[f32]) -> Option<usize> {
        let hidden = self.last_hidden(x)?;
        decided_class(&self.last.weight, &self.last.bias, &hidden)
    }
}

/// Radii of a sequence classifier's tensors inside the search box: the box
/// radius for the tuned ones and 0 for the frozen ones.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct SequenceRadii {
    /// `emb.weight`.
    pub(crate) embedding: f64,
    /// `rnn.weight_ih_l0`.
    pub(crate) weight_ih: f64,
    /// `rnn.weight_hh_l0`.
    pub(crate) weight_hh: f64,
    /// `rnn.bias_ih_l0`.
    pub(crate) bias_ih: f64,
    /// `rnn.bias_hh_l0`.
    pub(crate) bias_hh: f64,
}

/// A sequence classifier with its embedding and recurrent tensors in
/// interval form and `fc` exact.
///
/// The bounds follow the forward pass of heft-nn's `Rnn` and `Lstm`. At
/// step `t` the pre-activations are one GEMM sum of `x_t W_ih^T`,
/// `h_(t-1) W_hh^T` (from step 1 on) and the biases `b_ih + b_hh`. The RNN
/// applies `tanh`. The LSTM applies `sigmoid` to the `i`, `f` and `o` gates
/// and `tanh` to `g`, then computes `c_t = f c_(t-1) + i g` and
/// `h_t = o tanh(c_t)` with separately rounded f32 products and sum. The
/// bounds on those products are the minimum and maximum over the four
/// corners of the factors' intervals.
#[derive(Clone, Debug)]
pub(crate) struct SequenceBounds {
    embedding: Vec<f32>,
    embedding_dim: usize,
    embedding_radius: f64,
    weight_ih: IntervalMatrix,
    weight_hh: IntervalMatrix,
    bias_ih: Vec<f32>,
    bias_hh: Vec<f32>,
    bias_ih_radius: f64,
    bias_hh_radius: f64,
    hidden: usize,
    lstm: bool,
    fc: FrozenLinear,
}

impl SequenceBounds {
    /// Prepares the bounds for `seq` with the tensors inside `radii`.
    pub(crate) fn new(seq: &SequenceClassifier, radii: SequenceRadii) -> Self {
        let (params, lstm) = match seq.rnn() {
            RecurrentLayer::Rnn(rnn) => (rnn.parameters(), false),
            RecurrentLayer::Lstm(lstm) => (lstm.parameters(), true),
        };
        let [weight_ih, weight_hh, bias_ih, bias_hh] = params;
        let gate_rows = bias_ih.len();
        let inputs = seq.emb().dim();
        let hidden = weight_hh.len() / gate_rows;
        SequenceBounds {
            embedding: seq.emb().weight().as_slice().to_vec(),
            embedding_dim: inputs,
            embedding_radius: radii.embedding,
            weight_ih: IntervalMatrix::new(weight_ih, gate_rows, inputs, radii.weight_ih),
            weight_hh: IntervalMatrix::new(weight_hh, gate_rows, hidden, radii.weight_hh),
            bias_ih: bias_ih.to_vec(),
            bias_hh: bias_hh.to_vec(),
            bias_ih_radius: radii.bias_ih,
            bias_hh_radius: radii.bias_hh,
            hidden,
            lstm,
            fc: FrozenLinear::new(seq.fc()),
        }
    }

    /// Returns the bounds on the hidden state after the last of `ids` (a
    /// sequence's true tokens), or `None` if they are not finite.
    pub(crate) fn last_hidden(&self, ids: &[u32]) -> Option<Intervals> {
        let dim = self.embedding_dim;
        let zero = vec![0.0f32; self.hidden];
        let mut h = Intervals::exact(&zero);
        let mut c = Intervals::exact(&zero);
        for (t, &id) in ids.iter().enumerate() {
            let row = id as usize * dim;
            let x = Intervals::around(&self.embedding[row..row + dim], self.embedding_radius);
            let mut sum = Affine::new(self.weight_ih.rows());
            sum.add_product(&self.weight_ih, &x);
            // h_(-1) is zero, and the forward pass adds no recurrent term at
            // step 0.
            if t > 0 {
                sum.add_product(&self.weight_hh, &h);
            }
            sum.add_bias(&self.bias_ih, self.bias_ih_radius);
            sum.add_bias(&self.bias_hh, self.bias_hh_radius);
            let gates = sum.finish()?;
            if self.lstm {
                (h, c) = lstm_cell(&gates, &c, self.hidden)?;
            } else {
                h = gates.map_increasing(f64::tanh, ACTIVATION_ERROR);
            }
        }
        Some(h)
    }

    /// Returns the class that every candidate predicts for the sequence of
    /// true tokens `ids`, or `None` if the bounds do not decide it.
    pub(crate) fn decide(&self, ids: &[u32]) -> Option<usize> {
        let hidden = self.last_hidden(ids)?;
        decided_class(&self.fc.weight, &self.fc.bias, &hidden)
    }

    /// Returns the bounds on the logits for the sequence `ids`, for tests.
    #[cfg(test)]
    fn logits(&self, ids: &[u32]) -> Option<Intervals> {
        self.fc.forward(&self.last_hidden(ids)?)
    }
}

/// Returns the bounds on the LSTM's `h_t` and `c_t` from the bounds on the
/// gate pre-activations `[a_i, a_f, a_g, a_o]` and on `c_(t-1)`.
fn lstm_cell(
    gates: &Intervals,
    c_prev: &Intervals,
    hidden: usize,
) -> Option<(Intervals, Intervals)> {
    let input = gates
        .slice(0, hidden)
        .map_increasing(sigmoid, ACTIVATION_ERROR);
    let forget = gates
        .slice(hidden, 2 * hidden)
        .map_increasing(sigmoid, ACTIVATION_ERROR);
    let cell = gates
        .slice(2 * hidden, 3 * hidden)
        .map_increasing(f64::tanh, ACTIVATION_ERROR);
    let output = gates
        .slice(3 * hidden, 4 * hidden)
        .map_increasing(sigmoid, ACTIVATION_ERROR);
    let c = Intervals::from_bounds((0..hidden).map(|j| {
        let (fc_lo, fc_hi) = product_bounds(forget.bounds(j), c_prev.bounds(j));
        let (ig_lo, ig_hi) = product_bounds(input.bounds(j), cell.bounds(j));
        // fl(fl(f c) + fl(i g)): two products and a sum.
        let scale = fc_lo.abs().max(fc_hi.abs()) + ig_lo.abs().max(ig_hi.abs());
        let slack = rounding_slack(2, scale);
        (fc_lo + ig_lo - slack, fc_hi + ig_hi + slack)
    }));
    let tanh_c = c.map_increasing(f64::tanh, ACTIVATION_ERROR);
    let h = Intervals::from_bounds((0..hidden).map(|j| {
        let (lo, hi) = product_bounds(output.bounds(j), tanh_c.bounds(j));
        let slack = rounding_slack(1, lo.abs().max(hi.abs()));
        (lo - slack, hi + slack)
    }));
    (h.is_finite() && c.is_finite()).then_some((h, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use heft_nn::{Mlp, RecurrentKind, SplitMix64, TokenBatch};
    use heft_tensor::Matrix;

    /// Returns a point of `centre +- radius`: a random corner for even
    /// `sample`, a uniform point otherwise.
    fn sample_point(centre: &[f32], radius: f32, sample: usize, rng: &mut SplitMix64) -> Vec<f32> {
        centre
            .iter()
            .map(|&w| {
                let offset = if sample.is_multiple_of(2) {
                    if rng.below(2) == 0 {
                        -radius
                    } else {
                        radius
                    }
                } else {
                    rng.uniform(-radius, radius)
                };
                w + offset
            })
            .collect()
    }

    fn assert_inside(bounds: &Intervals, values: &[f64], quantity: &str) {
        assert_eq!(bounds.len(), values.len());
        for (j, &v) in values.iter().enumerate() {
            let (lo, hi) = bounds.bounds(j);
            assert!(lo <= v, "{quantity} {j}: {v} below {lo}");
            assert!(v <= hi, "{quantity} {j}: {v} above {hi}");
        }
    }

    /// Computes the logits of an MLP in f64 from the input `x` of layer
    /// `from` on, with ReLU after every layer but the last.
    fn mlp_forward_f64(mlp: &Mlp, from: usize, x: &[f32]) -> Vec<f64> {
        let mut h: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let layers = &mlp.layers()[from..];
        for (i, layer) in layers.iter().enumerate() {
            let w = layer.weight();
            let mut out = Vec::with_capacity(w.rows());
            for j in 0..w.rows() {
                let row = &w.as_slice()[j * w.cols()..(j + 1) * w.cols()];
                let z: f64 = row
                    .iter()
                    .zip(&h)
                    .map(|(&a, &b)| f64::from(a) * b)
                    .sum::<f64>()
                    + f64::from(layer.bias()[j]);
                out.push(if i + 1 < layers.len() { z.max(0.0) } else { z });
            }
            h = out;
        }
        h
    }

    /// Samples candidates of fc1 of a 3-layer MLP (two layers after the
    /// tuned one) in the box. Their logits, in f64 and from the f32 forward
    /// pass, must lie inside the bounds, and decided rows must keep their
    /// prediction. Radius 0 leaves only the rounding slack between the f64
    /// centre and the f32 logits.
    #[test]
    fn mlp_bounds_contain_sampled_logits() {
        let sizes = [9, 12, 7, 4];
        let mlp = Mlp::init(&sizes, &mut SplitMix64::new(3)).unwrap();
        let mut rng = SplitMix64::new(4);
        let mut decided = 0;
        for (radius, include_bias) in [(0.0f32, false), (0.02, false), (0.02, true)] {
            let bounds = MlpBounds::new(&mlp, 0, f64::from(radius), include_bias);
            for _ in 0..5 {
                let x: Vec<f32> = (0..9).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let hidden = bounds.last_hidden(&x).unwrap();
                let logits = bounds.last.forward(&hidden).unwrap();
                let x_matrix = Matrix::from_slice(1, 9, &x).unwrap();
                for sample in 0..200 {
                    let mut candidate = mlp.clone();
                    let layer = &mut candidate.layers_mut()[0];
                    let weight = sample_point(layer.weight().as_slice(), radius, sample, &mut rng);
                    layer.weight_mut().copy_from_slice(&weight);
                    if include_bias {
                        let bias = sample_point(layer.bias(), radius, sample, &mut rng);
                        layer.bias_mut().copy_from_slice(&bias);
                    }
                    let exact = mlp_forward_f64(&candidate, 0, &x);
                    assert_inside(&logits, &exact, "f64 logit");
                    let actual = candidate.forward(&x_matrix).unwrap();
                    let actual: Vec<f64> =
                        actual.as_slice().iter().map(|&v| f64::from(v)).collect();
                    assert_inside(&logits, &actual, "f32 logit");
                    if let Some(class) = bounds.decide(&x) {
                        let predicted = heft_kernels::gemm::argmax_group(
                            candidate.forward(&x_matrix).unwrap().as_slice(),
                        );
                        assert_eq!(predicted, Some(class), "decided row changed prediction");
                        decided += 1;
                    }
                }
            }
        }
        assert!(
            decided > 0,
            "no row was decided, so the check above tested nothing"
        );
    }

    /// Computes the logits of a sequence classifier for the tokens `ids` in
    /// f64.
    fn sequence_forward_f64(seq: &SequenceClassifier, ids: &[u32]) -> Vec<f64> {
        let emb = seq.emb().weight();
        let dim = emb.cols();
        let (params, lstm) = match seq.rnn() {
            RecurrentLayer::Rnn(r) => (r.parameters(), false),
            RecurrentLayer::Lstm(l) => (l.parameters(), true),
        };
        let [w_ih, w_hh, b_ih, b_hh] = params;
        let rows = b_ih.len();
        let hidden = w_hh.len() / rows;

        let mut h = vec![0.0f64; hidden];
        let mut c = vec![0.0f64; hidden];
        for &id in ids {
            let x = &emb.as_slice()[id as usize * dim..(id as usize + 1) * dim];
            let a: Vec<f64> = (0..rows)
                .map(|j| {
                    let input: f64 = (0..dim)
                        .map(|k| f64::from(w_ih[j * dim + k]) * f64::from(x[k]))
                        .sum();
                    let recurrent: f64 = (0..hidden)
                        .map(|k| f64::from(w_hh[j * hidden + k]) * h[k])
                        .sum();
                    input + recurrent + f64::from(b_ih[j]) + f64::from(b_hh[j])
                })
                .collect();
            if lstm {
                for j in 0..hidden {
                    let i = sigmoid(a[j]);
                    let f = sigmoid(a[hidden + j]);
                    let g = a[2 * hidden + j].tanh();
                    let o = sigmoid(a[3 * hidden + j]);
                    c[j] = f * c[j] + i * g;
                    h[j] = o * c[j].tanh();
                }
            } else {
                h = a.iter().map(|v| v.tanh()).collect();
            }
        }

        let fc = seq.fc();
        let w = fc.weight();
        (0..w.rows())
            .map(|j| {
                (0..hidden)
                    .map(|k| f64::from(w.as_slice()[j * hidden + k]) * h[k])
                    .sum::<f64>()
                    + f64::from(fc.bias()[j])
            })
            .collect()
    }

    /// Samples candidates of the embedding, the input weights with their
    /// bias, and the recurrent weights of an RNN and an LSTM classifier, and
    /// checks their logits against the bounds as for the MLP.
    #[test]
    fn sequence_bounds_contain_sampled_logits() {
        let mut rng = SplitMix64::new(5);
        let mut decided = 0;
        for (kind, radius) in [
            (RecurrentKind::Rnn, 0.0f32),
            (RecurrentKind::Rnn, 0.01),
            (RecurrentKind::Lstm, 0.0),
            (RecurrentKind::Lstm, 0.01),
        ] {
            let seq = SequenceClassifier::init(kind, 12, 5, 6, 3, &mut SplitMix64::new(6)).unwrap();
            // Tuned tensors: 0 emb, 1 weight_ih (with bias_ih), 2 weight_hh.
            let cases: [(&[usize], SequenceRadii); 3] = [
                (
                    &[0],
                    SequenceRadii {
                        embedding: f64::from(radius),
                        ..SequenceRadii::default()
                    },
                ),
                (
                    &[1, 3],
                    SequenceRadii {
                        weight_ih: f64::from(radius),
                        bias_ih: f64::from(radius),
                        ..SequenceRadii::default()
                    },
                ),
                (
                    &[2],
                    SequenceRadii {
                        weight_hh: f64::from(radius),
                        ..SequenceRadii::default()
                    },
                ),
            ];
            for (tuned, radii) in cases {
                let bounds = SequenceBounds::new(&seq, radii);
                for length in [1usize, 3, 6] {
                    let ids: Vec<u32> = (0..length).map(|_| 1 + rng.below(11) as u32).collect();
                    let logits = bounds.logits(&ids).unwrap();
                    let lengths = [length];
                    let batch = TokenBatch::new(&ids, &lengths, length).unwrap();
                    for sample in 0..100 {
                        let mut candidate = seq.clone();
                        let mut params = candidate.parameters_mut();
                        for &p in tuned {
                            let point = sample_point(&params[p][..], radius, sample, &mut rng);
                            params[p].copy_from_slice(&point);
                        }
                        let exact = sequence_forward_f64(&candidate, &ids);
                        assert_inside(&logits, &exact, "f64 logit");
                        let actual = candidate.forward(&batch).unwrap();
                        let actual: Vec<f64> =
                            actual.as_slice().iter().map(|&v| f64::from(v)).collect();
                        assert_inside(&logits, &actual, "f32 logit");
                        if let Some(class) = bounds.decide(&ids) {
                            let predicted = heft_kernels::gemm::argmax_group(
                                candidate.forward(&batch).unwrap().as_slice(),
                            );
                            assert_eq!(predicted, Some(class), "{kind:?} decided row changed");
                            decided += 1;
                        }
                    }
                }
            }
        }
        assert!(
            decided > 0,
            "no row was decided, so the check above tested nothing"
        );
    }
}
