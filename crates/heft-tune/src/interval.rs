//! Interval arithmetic in f64 that bounds the f32 values the model's
//! forward pass computes for every candidate inside the search box, so that
//! row pruning can prove a row's prediction is the same for all of them.
//!
//! # Why the bounds hold for the f32 kernels
//!
//! An interval `centre +- radius` bounds the value that the f32 kernels
//! actually compute, not only the exact real value:
//!
//! - Each GEMM element (and so each pre-activation and logit) is a sum of
//!   products and bias values, in some order, with or without FMA, restarted
//!   in passes and added into C (see `heft_kernels::gemm`). Whatever the
//!   order, each of the `n` terms passes through at most `n` roundings, so
//!   standard floating-point error analysis bounds the error of the f32
//!   result by `gamma_n * sum |terms|` with `gamma_n = n u / (1 - n u)` and
//!   the unit roundoff `u = 2^-24`. [`rounding_slack`] adds that bound with
//!   `f32::EPSILON = 2u` in place of `u`, plus `n` times the smallest
//!   normal f32, which covers gradual underflow (at most `2^-150` per
//!   operation).
//! - Using `2u` doubles the slack. The second half, at least
//!   `n 2^-24 sum |terms|`, covers the f64 rounding of the interval
//!   arithmetic itself, whose error on the same sums is a small multiple of
//!   `n 2^-53`, more than 10^8 times smaller.
//! - ReLU is exact in f32. The f32 `tanh` and `sigmoid` are within
//!   [`ACTIVATION_ERROR`] of the exact functions, which are monotone, so
//!   their output lies in `[f(lo) - e, f(hi) + e]` for input in `[lo, hi]`.
//! - No f32 value overflows: [`Affine::finish`] gives up on a row (returns
//!   `None`) when a sum of absolute terms exceeds [`MAX_MAGNITUDE`] or a
//!   bound is not finite.
//! - The pruning decision follows the tie rule of
//!   `heft_kernels::gemm::argmax_group`, where the first maximum wins. So
//!   class `t` beats a lower class only with a strictly larger logit, and a
//!   higher class with a logit at least as large. With finite logits NaN
//!   cannot occur.

/// Largest sum of absolute terms of one value for which pruning decides a
/// row. It is far below `f32::MAX` (about 3.4e38), so no f32 intermediate
/// of a decided row can overflow.
pub(crate) const MAX_MAGNITUDE: f64 = 1e30;

/// Returns whether a sum of absolute terms is at most [`MAX_MAGNITUDE`]
/// (false for NaN).
fn within_magnitude(scale: f64) -> bool {
    scale <= MAX_MAGNITUDE
}

/// Bound on the absolute error of the f32 `tanh` and `sigmoid` of
/// `heft_kernels::elementwise`, whose results lie in `[-1, 1]`. It is about
/// 17 ulp at 1, against the 2.58 ulp (tanh) and 2.41 ulp or 8.9e-8 absolute
/// (sigmoid) that heft-kernels documents for `wide` 1.7. It also covers the
/// f64 rounding of evaluating `tanh` and the logistic function here.
// NOTE: heft-kernels measures those errors over a sweep of f32 inputs; they
// are not proven. Pruning of recurrent tensors relies on this bound.
pub(crate) const ACTIVATION_ERROR: f64 = 2e-6;

/// Returns `gamma_n = n eps / (1 - n eps)` with `eps = f32::EPSILON`, twice
/// the f32 unit roundoff (see the module documentation), or infinity when
/// `n eps >= 1`.
pub(crate) fn gamma(terms: usize) -> f64 {
    let x = terms as f64 * f64::from(f32::EPSILON);
    if x < 1.0 {
        x / (1.0 - x)
    } else {
        f64::INFINITY
    }
}

/// Returns a bound on the rounding error of an f32 sum of `terms` products
/// or values whose absolute values add up to at most `scale`.
pub(crate) fn rounding_slack(terms: usize, scale: f64) -> f64 {
    gamma(terms) * scale + terms as f64 * f64::from(f32::MIN_POSITIVE)
}

/// The box `centre +- bound` that pruning is valid for, widened for f32
/// rounding, with a test of whether a population lies inside it.
#[derive(Clone, Debug)]
pub(crate) struct SearchBox {
    lower: Vec<f32>,
    upper: Vec<f32>,
    /// Bound on `|x - centre|` for every value `x` that
    /// [`SearchBox::contains`] accepts, rounded up in f64.
    radius: f64,
}

impl SearchBox {
    /// Creates the box around `centre`. The search draws from
    /// `centre +- bound` rounded to f32, so the box is widened by a few ulps
    /// of the largest value to hold every such candidate.
    pub(crate) fn around(centre: &[f32], bound: f32) -> Self {
        let max_value = centre.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let widened = bound + 4.0 * f32::EPSILON * (max_value + bound);
        let lower: Vec<f32> = centre.iter().map(|&w| w - widened).collect();
        let upper: Vec<f32> = centre.iter().map(|&w| w + widened).collect();
        // The f32 ends are rounded, so measure the distance to them in f64,
        // and round that up by a few f64 ulps.
        let radius = centre
            .iter()
            .zip(&lower)
            .zip(&upper)
            .fold(0.0f64, |r, ((&w, &lo), &hi)| {
                let w = f64::from(w);
                r.max(w - f64::from(lo)).max(f64::from(hi) - w)
            });
        SearchBox {
            lower,
            upper,
            radius: radius * (1.0 + 4.0 * f64::EPSILON),
        }
    }

    /// Returns the bound on `|x - centre|` inside the box, per value.
    pub(crate) fn radius(&self) -> f64 {
        self.radius
    }

    /// Returns whether every candidate of `population` (consecutive points
    /// of the box's dimension) lies inside the box. NaN never does.
    pub(crate) fn contains(&self, population: &[f32]) -> bool {
        let dim = self.lower.len();
        if dim == 0 {
            return population.is_empty();
        }
        population.chunks(dim).all(|point| {
            point.len() == dim
                && point
                    .iter()
                    .zip(&self.lower)
                    .zip(&self.upper)
                    .all(|((x, lo), hi)| x >= lo && x <= hi)
        })
    }
}

/// Returns the dot product of `a` and `b`, summed in four interleaved
/// partial sums so that the loop pipelines.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut sums = [0.0f64; 4];
    let mut a_chunks = a.chunks_exact(4);
    let mut b_chunks = b.chunks_exact(4);
    for (x, y) in (&mut a_chunks).zip(&mut b_chunks) {
        for lane in 0..4 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    let tail: f64 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    (sums[0] + sums[1]) + (sums[2] + sums[3]) + tail
}

/// Returns the centre and radius of an interval that contains `[lo, hi]`
/// despite the f64 rounding of the centre.
fn enclose(lo: f64, hi: f64) -> (f64, f64) {
    let centre = 0.5 * (lo + hi);
    let radius = 0.5 * (hi - lo) + 4.0 * f64::EPSILON * lo.abs().max(hi.abs());
    (centre, radius)
}

/// Returns the smallest and largest of the four products of the ends of
/// `[a_lo, a_hi]` and `[b_lo, b_hi]`, which bound `a * b` for `a` and `b`
/// inside them.
pub(crate) fn product_bounds(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let corners = [a.0 * b.0, a.0 * b.1, a.1 * b.0, a.1 * b.1];
    let lo = corners.iter().fold(f64::INFINITY, |m, &x| m.min(x));
    let hi = corners.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    (lo, hi)
}

/// A vector of intervals `centre[i] +- radius[i]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Intervals {
    centre: Vec<f64>,
    radius: Vec<f64>,
}

impl Intervals {
    /// Creates intervals of width 0 around exactly known values.
    pub(crate) fn exact(values: &[f32]) -> Self {
        Self::around(values, 0.0)
    }

    /// Creates the intervals `values[i] +- radius`.
    pub(crate) fn around(values: &[f32], radius: f64) -> Self {
        Intervals {
            centre: values.iter().map(|&x| f64::from(x)).collect(),
            radius: vec![radius; values.len()],
        }
    }

    /// Creates intervals that contain the given `(lower, upper)` bounds.
    pub(crate) fn from_bounds(bounds: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let (centre, radius) = bounds.into_iter().map(|(lo, hi)| enclose(lo, hi)).unzip();
        Intervals { centre, radius }
    }

    /// Returns the number of intervals.
    pub(crate) fn len(&self) -> usize {
        self.centre.len()
    }

    /// Returns the lower and upper end of interval `i`.
    pub(crate) fn bounds(&self, i: usize) -> (f64, f64) {
        (
            self.centre[i] - self.radius[i],
            self.centre[i] + self.radius[i],
        )
    }

    /// Returns the intervals `start..end` as a new vector.
    pub(crate) fn slice(&self, start: usize, end: usize) -> Intervals {
        Intervals {
            centre: self.centre[start..end].to_vec(),
            radius: self.radius[start..end].to_vec(),
        }
    }

    /// Returns whether every centre and radius is finite.
    pub(crate) fn is_finite(&self) -> bool {
        self.centre
            .iter()
            .chain(&self.radius)
            .all(|x| x.is_finite())
    }

    /// Returns the intervals of `max(x, 0)`, which f32 computes exactly.
    pub(crate) fn relu(&self) -> Intervals {
        Intervals::from_bounds((0..self.len()).map(|i| {
            let (lo, hi) = self.bounds(i);
            (lo.max(0.0), hi.max(0.0))
        }))
    }

    /// Returns the intervals of an increasing function `f` whose f32
    /// implementation is within `error` of it.
    pub(crate) fn map_increasing(&self, f: impl Fn(f64) -> f64, error: f64) -> Intervals {
        Intervals::from_bounds((0..self.len()).map(|i| {
            let (lo, hi) = self.bounds(i);
            (f(lo) - error, f(hi) + error)
        }))
    }
}

/// Returns the logistic function `1 / (1 + exp(-x))`.
pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A weight matrix (`rows x cols`, row-major) known up to `radius` per
/// element: the pre-trained or frozen values in f64 with their absolute
/// values, for [`Affine::add_product`] and [`decided_class`].
#[derive(Clone, Debug)]
pub(crate) struct IntervalMatrix {
    values: Vec<f64>,
    magnitudes: Vec<f64>,
    rows: usize,
    cols: usize,
    radius: f64,
}

impl IntervalMatrix {
    /// Creates the matrix `values +- radius`. `values` has `rows * cols`
    /// elements.
    pub(crate) fn new(values: &[f32], rows: usize, cols: usize, radius: f64) -> Self {
        debug_assert_eq!(values.len(), rows * cols);
        let values: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
        let magnitudes = values.iter().map(|x| x.abs()).collect();
        IntervalMatrix {
            values,
            magnitudes,
            rows,
            cols,
            radius,
        }
    }

    /// Creates a matrix of exactly known (frozen) values.
    pub(crate) fn exact(values: &[f32], rows: usize, cols: usize) -> Self {
        Self::new(values, rows, cols, 0.0)
    }

    /// Returns the number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    fn row(&self, j: usize) -> &[f64] {
        &self.values[j * self.cols..(j + 1) * self.cols]
    }

    fn magnitude_row(&self, j: usize) -> &[f64] {
        &self.magnitudes[j * self.cols..(j + 1) * self.cols]
    }
}

/// Bounds on the f32 result of `W x + bias` (one GEMM element per output),
/// built from interval weight products and biases added in any order.
///
/// For each output it keeps the centre, the radius from the weights' and
/// inputs' intervals, and the sum of the absolute values of every term,
/// from which [`Affine::finish`] derives the rounding slack.
#[derive(Clone, Debug)]
pub(crate) struct Affine {
    centre: Vec<f64>,
    radius: Vec<f64>,
    scale: Vec<f64>,
    terms: usize,
}

impl Affine {
    /// Starts a sum of `outputs` values at 0.
    pub(crate) fn new(outputs: usize) -> Self {
        Affine {
            centre: vec![0.0; outputs],
            radius: vec![0.0; outputs],
            scale: vec![0.0; outputs],
            terms: 0,
        }
    }

    /// Adds `weight * input` for weights within the matrix's radius and
    /// inputs within their intervals.
    ///
    /// With `w = w0 + dw`, `|dw| <= rw`, and `x = c + dx`, `|dx| <= r`,
    /// `w x - w0 c = w0 dx + dw c + dw dx`, so each product lies within
    /// `|w0| r + rw (|c| + r)` of `w0 c`, and its absolute value is at most
    /// `(|w0| + rw) (|c| + r)`.
    pub(crate) fn add_product(&mut self, weight: &IntervalMatrix, input: &Intervals) {
        debug_assert_eq!(weight.cols, input.len());
        debug_assert_eq!(weight.rows, self.centre.len());
        let magnitude: Vec<f64> = input
            .centre
            .iter()
            .zip(&input.radius)
            .map(|(c, r)| c.abs() + r)
            .collect();
        let total: f64 = magnitude.iter().sum();
        let exact_input = input.radius.iter().all(|&r| r == 0.0);
        for j in 0..weight.rows {
            let spread = if exact_input {
                0.0
            } else {
                dot(weight.magnitude_row(j), &input.radius)
            };
            self.centre[j] += dot(weight.row(j), &input.centre);
            self.radius[j] += spread + weight.radius * total;
            self.scale[j] += dot(weight.magnitude_row(j), &magnitude) + weight.radius * total;
        }
        self.terms += weight.cols;
    }

    /// Adds a bias within `radius` of `bias`.
    pub(crate) fn add_bias(&mut self, bias: &[f32], radius: f64) {
        debug_assert_eq!(bias.len(), self.centre.len());
        for (j, &b) in bias.iter().enumerate() {
            let b = f64::from(b);
            self.centre[j] += b;
            self.radius[j] += radius;
            self.scale[j] += b.abs() + radius;
        }
        self.terms += 1;
    }

    /// Returns the intervals widened by the rounding slack of an f32 sum of
    /// every term added, or `None` if a bound is not finite or a sum of
    /// absolute terms exceeds [`MAX_MAGNITUDE`].
    pub(crate) fn finish(mut self) -> Option<Intervals> {
        for (radius, &scale) in self.radius.iter_mut().zip(&self.scale) {
            if !within_magnitude(scale) {
                return None;
            }
            *radius += rounding_slack(self.terms, scale);
        }
        let intervals = Intervals {
            centre: self.centre,
            radius: self.radius,
        };
        intervals.is_finite().then_some(intervals)
    }
}

/// Returns the class that argmax (first maximum wins) picks from the f32
/// logits `W h + bias` of a frozen last layer `W` for every `h` inside
/// `hidden`, or `None` when the bounds do not decide it.
///
/// The candidate class `t` is the argmax of the centre logits. For every
/// other class `c`, the lower bound of `logit_t - logit_c` over the
/// interval is `d c_h + (b_t - b_c) - |d| r_h` with `d = w_t - w_c`, from
/// which the rounding slack of both f32 logits is subtracted. It must be
/// positive for `c < t` and non-negative for `c > t`. Testing the
/// difference row is tighter than comparing the two logits' intervals,
/// because both logits move with the same `h`.
pub(crate) fn decided_class(
    weight: &IntervalMatrix,
    bias: &[f32],
    hidden: &Intervals,
) -> Option<usize> {
    debug_assert_eq!(weight.radius, 0.0);
    debug_assert_eq!(weight.cols, hidden.len());
    let classes = weight.rows;
    if classes == 0 || !hidden.is_finite() {
        return None;
    }

    let magnitude: Vec<f64> = hidden
        .centre
        .iter()
        .zip(&hidden.radius)
        .map(|(c, r)| c.abs() + r)
        .collect();
    let mut logits = vec![0.0f64; classes];
    let mut slack = vec![0.0f64; classes];
    for j in 0..classes {
        let b = f64::from(bias[j]);
        let scale = dot(weight.magnitude_row(j), &magnitude) + b.abs();
        if !within_magnitude(scale) {
            return None;
        }
        logits[j] = dot(weight.row(j), &hidden.centre) + b;
        slack[j] = rounding_slack(weight.cols + 1, scale);
    }

    let top = (0..classes).fold(0, |t, c| if logits[c] > logits[t] { c } else { t });
    let w_top = weight.row(top);
    let mut difference = vec![0.0f64; weight.cols];
    let mut difference_magnitude = vec![0.0f64; weight.cols];
    for c in (0..classes).filter(|&c| c != top) {
        for (k, (&wt, &wc)) in w_top.iter().zip(weight.row(c)).enumerate() {
            difference[k] = wt - wc;
            difference_magnitude[k] = (wt - wc).abs();
        }
        let lower = dot(&difference, &hidden.centre) + (f64::from(bias[top]) - f64::from(bias[c]))
            - dot(&difference_magnitude, &hidden.radius)
            - slack[top]
            - slack[c];
        let beats = if c < top { lower > 0.0 } else { lower >= 0.0 };
        if !beats {
            return None;
        }
    }
    Some(top)
}

/// Returns the class that argmax (first maximum wins) picks for every
/// vector of logits inside `logits`, intervals of logits that vary
/// independently, or `None` when the bounds do not decide it.
pub(crate) fn decided_by_bounds(logits: &Intervals) -> Option<usize> {
    let classes = logits.len();
    if classes == 0 || !logits.is_finite() {
        return None;
    }
    let centre = &logits.centre;
    let top = (0..classes).fold(0, |t, c| if centre[c] > centre[t] { c } else { t });
    let (top_lower, _) = logits.bounds(top);
    let decided = (0..classes).filter(|&c| c != top).all(|c| {
        let (_, upper) = logits.bounds(c);
        if c < top {
            top_lower > upper
        } else {
            top_lower >= upper
        }
    });
    decided.then_some(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_grows_with_terms() {
        assert_eq!(gamma(0), 0.0);
        let eps = f64::from(f32::EPSILON);
        assert!((gamma(1) - eps / (1.0 - eps)).abs() < 1e-20);
        assert!(gamma(100) > 100.0 * eps);
        assert_eq!(gamma(1 << 23), f64::INFINITY);
    }

    #[test]
    fn search_box_holds_rounded_corners() {
        let centre = [1.0f32, -3.5, 1e-3, 0.0, 1234.5];
        let bound = 0.01f32;
        let search = SearchBox::around(&centre, bound);
        let corners: Vec<f32> = centre
            .iter()
            .flat_map(|&w| [w - bound, w + bound])
            .collect();
        for (i, &w) in centre.iter().enumerate() {
            for x in [corners[2 * i], corners[2 * i + 1], w] {
                let mut point = centre.to_vec();
                point[i] = x;
                assert!(search.contains(&point), "{x} around {w}");
                assert!((f64::from(x) - f64::from(w)).abs() <= search.radius());
            }
        }
        let mut outside = centre.to_vec();
        outside[2] += 0.02;
        assert!(!search.contains(&outside));
        outside[2] = f32::NAN;
        assert!(!search.contains(&outside));
        assert!(!search.contains(&centre[..4]), "partial point");
    }

    #[test]
    fn affine_bounds_sampled_products() {
        // Three outputs of two inputs, weights +- 0.1, inputs +- 0.5.
        let weights = [1.0f32, -2.0, 0.5, 0.25, -1.0, 3.0];
        let matrix = IntervalMatrix::new(&weights, 3, 2, 0.1);
        let input = Intervals::around(&[2.0, -1.0], 0.5);
        let mut affine = Affine::new(3);
        affine.add_product(&matrix, &input);
        affine.add_bias(&[0.5, -0.5, 0.0], 0.1);
        let out = affine.finish().unwrap();
        for a in [-0.1, 0.0, 0.1] {
            for b in [-0.5, 0.0, 0.5] {
                for j in 0..3 {
                    let w = [
                        f64::from(weights[2 * j]) + a,
                        f64::from(weights[2 * j + 1]) - a,
                    ];
                    let x = [2.0 + b, -1.0 - b];
                    let bias = [0.5, -0.5, 0.0][j] + a;
                    let y = w[0] * x[0] + w[1] * x[1] + bias;
                    let (lo, hi) = out.bounds(j);
                    assert!(lo <= y, "output {j}: {y} below {lo}");
                    assert!(y <= hi, "output {j}: {y} above {hi}");
                }
            }
        }
    }

    #[test]
    fn product_bounds_cover_intervals_across_zero() {
        let cases = [
            ((-1.0, 2.0), (-3.0, 1.0), (-6.0, 3.0)),
            ((0.25, 0.75), (-2.0, 1.0), (-1.5, 0.75)),
            ((-0.5, -0.25), (-2.0, -1.0), (0.25, 1.0)),
            ((0.5, 1.0), (2.0, 4.0), (1.0, 4.0)),
        ];
        for (a, b, expected) in cases {
            assert_eq!(product_bounds(a, b), expected, "{a:?} * {b:?}");
        }
    }

    #[test]
    fn affine_gives_up_on_overflow() {
        let matrix = IntervalMatrix::exact(&[1e20, 1e20], 1, 2);
        let mut affine = Affine::new(1);
        affine.add_product(&matrix, &Intervals::exact(&[1e20, 1.0]));
        assert!(affine.finish().is_none());
        let mut affine = Affine::new(1);
        affine.add_product(&matrix, &Intervals::exact(&[f32::NAN, 1.0]));
        assert!(affine.finish().is_none());
    }

    #[test]
    fn decided_class_needs_margin_over_slack() {
        // Identical rows give bitwise equal logits, but the bounds cannot
        // tell, so the row stays undecided.
        let tied = IntervalMatrix::exact(&[1.0, 2.0, 1.0, 2.0], 2, 2);
        let hidden = Intervals::around(&[0.5, 0.25], 0.1);
        assert_eq!(decided_class(&tied, &[0.0, 0.0], &hidden), None);
        // Class 1 is ahead by h_0 in [0.5, 1.5], so it wins for every h.
        let weight = IntervalMatrix::exact(&[0.0, 0.0, 1.0, 0.0], 2, 2);
        let near = Intervals::around(&[1.0, 0.0], 0.5);
        assert_eq!(decided_class(&weight, &[0.0, 0.0], &near), Some(1));
        // With h_0 in [0, 2] the logits can tie at h_0 = 0, where class 0
        // wins.
        let far = Intervals::around(&[1.0, 0.0], 1.0);
        assert_eq!(decided_class(&weight, &[0.0, 0.0], &far), None);
    }

    #[test]
    fn decided_by_bounds_follows_tie_rule() {
        let apart = Intervals::from_bounds([(0.0, 1.0), (2.0, 3.0), (-1.0, 0.5)]);
        assert_eq!(decided_by_bounds(&apart), Some(1));
        let overlapping = Intervals::from_bounds([(0.0, 1.0), (0.5, 3.0)]);
        assert_eq!(decided_by_bounds(&overlapping), None);
        // [2, 3] against [1, 2]: a tie at 2 goes to the lower class, so the
        // lower class is decided and the higher one is not.
        let lower_first = Intervals::around(&[2.5, 1.5], 0.5);
        assert_eq!(decided_by_bounds(&lower_first), Some(0));
        let higher_first = Intervals::around(&[1.5, 2.5], 0.5);
        assert_eq!(decided_by_bounds(&higher_first), None);
    }
}
