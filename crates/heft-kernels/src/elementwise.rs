//! Element-wise and reduction kernels on `f32` slices, written with `wide`.
//!
//! Every function takes plain slices. Functions whose slices must agree in
//! length check them and return [`ElementwiseError`]; nothing here panics on
//! bad input. Row-wise kernels read row-major data: row `r` is
//! `x[r * cols..(r + 1) * cols]`.
//!
//! # Numerical contract
//!
//! - The arithmetic kernels (`add`, `sub`, `mul`, `scale`, `axpy`) round
//!   each operation separately and never fuse a multiply and an add. So
//!   each element equals the scalar formula in the function's doc bit for
//!   bit, on every target with or without FMA, in vector lanes and in the
//!   scalar tail alike.
//! - [`sum`] and [`dot`] add element `i` into partial sum `i % 32`, in
//!   increasing `i`. The 32 partial sums are four vectors of eight lanes,
//!   combined as `(v0 + v1) + (v2 + v3)`, and the eight lanes of that vector
//!   as `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`. The order
//!   depends only on the length, so results are deterministic and the same
//!   on every target.
//! - [`tanh`], [`sigmoid`], [`softmax_rows`] and [`logsumexp_rows`] use the
//!   polynomial `exp`, `exp_m1` and `tanh` of `wide` 1.7. Each function's
//!   doc states the maximum error measured against `f64` by this module's
//!   tests. Those functions run the tail of a slice through the same vector
//!   code (padded to a full vector), so an element's result does not depend
//!   on its position.

use std::fmt;
use wide::f32x8;

/// Lanes per vector.
const LANES: usize = 8;

/// Elements per step of a reduction: four vector accumulators, enough
/// independent additions to hide the latency of a vector add.
const BLOCK: usize = 4 * LANES;

/// Invalid arguments to an element-wise or row-wise kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElementwiseError {
    /// Two slices that must have the same length do not.
    LengthMismatch {
        /// The function that was called.
        op: &'static str,
        /// Name of the first slice argument.
        first: &'static str,
        /// Its length.
        first_len: usize,
        /// Name of the second slice argument.
        second: &'static str,
        /// Its length.
        second_len: usize,
    },
    /// Row-major data whose length is not a multiple of the row length.
    NotMultiple {
        /// The function that was called.
        op: &'static str,
        /// Length of the data.
        len: usize,
        /// Requested row length.
        cols: usize,
    },
    /// Row-major data whose length is not `rows * cols`, where `rows` is
    /// the length of the output (one value per row).
    RowCount {
        /// The function that was called.
        op: &'static str,
        /// Length of the data.
        len: usize,
        /// Number of rows, taken from the output length.
        rows: usize,
        /// Requested row length.
        cols: usize,
    },
    /// A row with no elements, which has no maximum.
    EmptyRow {
        /// The function that was called.
        op: &'static str,
    },
}

impl fmt::Display for ElementwiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElementwiseError::LengthMismatch {
                op,
                first,
                first_len,
                second,
                second_len,
            } => write!(
                f,
                "{op}: {first} has {first_len} elements but {second} has {second_len}; \
                 both must have the same length"
            ),
            ElementwiseError::NotMultiple { op, len, cols } => {
                if *cols == 0 {
                    write!(
                        f,
                        "{op}: input has {len} elements but rows of 0 columns can only \
                         hold an empty input"
                    )
                } else {
                    write!(
                        f,
                        "{op}: input has {len} elements, which is not a multiple of the \
                         row length {cols}"
                    )
                }
            }
            ElementwiseError::RowCount {
                op,
                len,
                rows,
                cols,
            } => write!(
                f,
                "{op}: input has {len} elements but the output has {rows} rows of {cols} \
                 columns; pass an output with one element per input row"
            ),
            ElementwiseError::EmptyRow { op } => write!(
                f,
                "{op}: a row has no elements, so it has no maximum; use rows of at least \
                 one column"
            ),
        }
    }
}

impl std::error::Error for ElementwiseError {}

// ---------------------------------------------------------------------------
// Argument checks

fn check_same_len(
    op: &'static str,
    first: (&'static str, usize),
    second: (&'static str, usize),
) -> Result<(), ElementwiseError> {
    if first.1 == second.1 {
        Ok(())
    } else {
        Err(ElementwiseError::LengthMismatch {
            op,
            first: first.0,
            first_len: first.1,
            second: second.0,
            second_len: second.1,
        })
    }
}

/// Checks that `len` elements split into whole rows of `cols`.
fn check_whole_rows(op: &'static str, len: usize, cols: usize) -> Result<(), ElementwiseError> {
    let whole = if cols == 0 {
        len == 0
    } else {
        len.is_multiple_of(cols)
    };
    if whole {
        Ok(())
    } else {
        Err(ElementwiseError::NotMultiple { op, len, cols })
    }
}

/// Checks that `len == rows * cols`.
fn check_row_count(
    op: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
) -> Result<(), ElementwiseError> {
    if rows.checked_mul(cols) == Some(len) {
        Ok(())
    } else {
        Err(ElementwiseError::RowCount {
            op,
            len,
            rows,
            cols,
        })
    }
}

// ---------------------------------------------------------------------------
// Vector helpers

#[inline(always)]
fn load(chunk: &[f32]) -> f32x8 {
    let mut lanes = [0.0; LANES];
    lanes.copy_from_slice(chunk);
    f32x8::new(lanes)
}

#[inline(always)]
fn store(chunk: &mut [f32], v: f32x8) {
    chunk.copy_from_slice(&v.to_array());
}

/// Applies `vector` to whole vectors of `x` and `scalar` to the tail,
/// writing `out`. The caller has checked that the lengths agree.
#[inline(always)]
fn map_into(
    x: &[f32],
    out: &mut [f32],
    vector: impl Fn(f32x8) -> f32x8,
    scalar: impl Fn(f32) -> f32,
) {
    let mut xs = x.chunks_exact(LANES);
    let mut outs = out.chunks_exact_mut(LANES);
    for (xc, oc) in (&mut xs).zip(&mut outs) {
        store(oc, vector(load(xc)));
    }
    for (xv, ov) in xs.remainder().iter().zip(outs.into_remainder()) {
        *ov = scalar(*xv);
    }
}

#[inline(always)]
fn map_in_place(x: &mut [f32], vector: impl Fn(f32x8) -> f32x8, scalar: impl Fn(f32) -> f32) {
    let mut xs = x.chunks_exact_mut(LANES);
    for xc in &mut xs {
        let v = vector(load(xc));
        store(xc, v);
    }
    for xv in xs.into_remainder() {
        *xv = scalar(*xv);
    }
}

/// Runs `vector` over the tail too, padded to a full vector, so that the
/// tail gets exactly the same approximation as the other elements.
#[inline(always)]
fn map_padded_in_place(x: &mut [f32], vector: impl Fn(f32x8) -> f32x8) {
    let mut xs = x.chunks_exact_mut(LANES);
    for xc in &mut xs {
        let v = vector(load(xc));
        store(xc, v);
    }
    let tail = xs.into_remainder();
    if !tail.is_empty() {
        let mut lanes = [0.0; LANES];
        lanes[..tail.len()].copy_from_slice(tail);
        let v = vector(f32x8::new(lanes)).to_array();
        tail.copy_from_slice(&v[..tail.len()]);
    }
}

/// Applies `vector`/`scalar` to pairs `(y[i], x[i])` and stores into `y`.
#[inline(always)]
fn zip_in_place(
    y: &mut [f32],
    x: &[f32],
    vector: impl Fn(f32x8, f32x8) -> f32x8,
    scalar: impl Fn(f32, f32) -> f32,
) {
    let mut ys = y.chunks_exact_mut(LANES);
    let mut xs = x.chunks_exact(LANES);
    for (yc, xc) in (&mut ys).zip(&mut xs) {
        let v = vector(load(yc), load(xc));
        store(yc, v);
    }
    for (yv, xv) in ys.into_remainder().iter_mut().zip(xs.remainder()) {
        *yv = scalar(*yv, *xv);
    }
}

/// Applies `vector`/`scalar` to pairs `(a[i], b[i])` and writes `out`.
#[inline(always)]
fn zip_into(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    vector: impl Fn(f32x8, f32x8) -> f32x8,
    scalar: impl Fn(f32, f32) -> f32,
) {
    let mut a_chunks = a.chunks_exact(LANES);
    let mut b_chunks = b.chunks_exact(LANES);
    let mut outs = out.chunks_exact_mut(LANES);
    for ((ac, bc), oc) in (&mut a_chunks).zip(&mut b_chunks).zip(&mut outs) {
        store(oc, vector(load(ac), load(bc)));
    }
    let tails = a_chunks.remainder().iter().zip(b_chunks.remainder());
    for ((av, bv), ov) in tails.zip(outs.into_remainder()) {
        *ov = scalar(*av, *bv);
    }
}

// ---------------------------------------------------------------------------
// Arithmetic

/// Computes `y[i] = y[i] + alpha * x[i]` (BLAS `saxpy`), rounding the
/// product and the sum separately.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `y` differ in length.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) -> Result<(), ElementwiseError> {
    check_same_len("axpy", ("x", x.len()), ("y", y.len()))?;
    let a = f32x8::splat(alpha);
    zip_in_place(y, x, |yv, xv| yv + a * xv, |yv, xv| yv + alpha * xv);
    Ok(())
}

/// Multiplies every element of `x` by `alpha` in place.
pub fn scale(alpha: f32, x: &mut [f32]) {
    let a = f32x8::splat(alpha);
    map_in_place(x, |v| v * a, |v| v * alpha);
}

/// Writes `out[i] = alpha * x[i]`.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `out` differ in length.
pub fn scale_into(alpha: f32, x: &[f32], out: &mut [f32]) -> Result<(), ElementwiseError> {
    check_same_len("scale_into", ("x", x.len()), ("out", out.len()))?;
    let a = f32x8::splat(alpha);
    map_into(x, out, |v| v * a, |v| v * alpha);
    Ok(())
}

/// Writes `out[i] = a[i] + b[i]`.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if the three lengths differ.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) -> Result<(), ElementwiseError> {
    check_same_len("add", ("a", a.len()), ("b", b.len()))?;
    check_same_len("add", ("a", a.len()), ("out", out.len()))?;
    zip_into(a, b, out, |u, v| u + v, |u, v| u + v);
    Ok(())
}

/// Computes `y[i] = y[i] + x[i]`.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `y` differ in length.
pub fn add_assign(y: &mut [f32], x: &[f32]) -> Result<(), ElementwiseError> {
    check_same_len("add_assign", ("y", y.len()), ("x", x.len()))?;
    zip_in_place(y, x, |u, v| u + v, |u, v| u + v);
    Ok(())
}

/// Writes `out[i] = a[i] - b[i]`.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if the three lengths differ.
pub fn sub(a: &[f32], b: &[f32], out: &mut [f32]) -> Result<(), ElementwiseError> {
    check_same_len("sub", ("a", a.len()), ("b", b.len()))?;
    check_same_len("sub", ("a", a.len()), ("out", out.len()))?;
    zip_into(a, b, out, |u, v| u - v, |u, v| u - v);
    Ok(())
}

/// Computes `y[i] = y[i] - x[i]`.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `y` differ in length.
pub fn sub_assign(y: &mut [f32], x: &[f32]) -> Result<(), ElementwiseError> {
    check_same_len("sub_assign", ("y", y.len()), ("x", x.len()))?;
    zip_in_place(y, x, |u, v| u - v, |u, v| u - v);
    Ok(())
}

/// Writes the element-wise (Hadamard) product `out[i] = a[i] * b[i]`.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if the three lengths differ.
pub fn mul(a: &[f32], b: &[f32], out: &mut [f32]) -> Result<(), ElementwiseError> {
    check_same_len("mul", ("a", a.len()), ("b", b.len()))?;
    check_same_len("mul", ("a", a.len()), ("out", out.len()))?;
    zip_into(a, b, out, |u, v| u * v, |u, v| u * v);
    Ok(())
}

/// Computes `y[i] = y[i] * x[i]`.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `y` differ in length.
pub fn mul_assign(y: &mut [f32], x: &[f32]) -> Result<(), ElementwiseError> {
    check_same_len("mul_assign", ("y", y.len()), ("x", x.len()))?;
    zip_in_place(y, x, |u, v| u * v, |u, v| u * v);
    Ok(())
}

// ---------------------------------------------------------------------------
// Activations

#[inline(always)]
fn relu_vec(v: f32x8) -> f32x8 {
    v.simd_lt(f32x8::ZERO).select(f32x8::ZERO, v)
}

#[inline(always)]
fn relu_scalar(v: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

/// Writes `out[i] = max(x[i], 0)`, replacing negative values by `+0.0`.
///
/// NaN and `-0.0` pass through unchanged (neither is below zero), as in the
/// GEMM's ReLU epilogue.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `out` differ in length.
pub fn relu(x: &[f32], out: &mut [f32]) -> Result<(), ElementwiseError> {
    check_same_len("relu", ("x", x.len()), ("out", out.len()))?;
    map_into(x, out, relu_vec, relu_scalar);
    Ok(())
}

/// Applies [`relu`] in place.
pub fn relu_in_place(x: &mut [f32]) {
    map_in_place(x, relu_vec, relu_scalar);
}

/// Writes the ReLU gradient `grad_in[i] = if x[i] > 0 { grad_out[i] } else { 0 }`,
/// where `x` is the ReLU's input.
///
/// The derivative at `x == 0` is taken as 0, and a NaN input blocks the
/// gradient (NaN is not greater than 0).
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if the three lengths differ.
pub fn relu_backward(
    x: &[f32],
    grad_out: &[f32],
    grad_in: &mut [f32],
) -> Result<(), ElementwiseError> {
    check_same_len(
        "relu_backward",
        ("x", x.len()),
        ("grad_out", grad_out.len()),
    )?;
    check_same_len("relu_backward", ("x", x.len()), ("grad_in", grad_in.len()))?;
    zip_into(
        x,
        grad_out,
        grad_in,
        |xv, g| xv.simd_gt(f32x8::ZERO).select(g, f32x8::ZERO),
        |xv, g| if xv > 0.0 { g } else { 0.0 },
    );
    Ok(())
}

/// Applies the ReLU gradient mask to `grad` in place: `grad[i] = 0` where
/// `x[i] > 0` is false.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `grad` differ in length.
pub fn relu_backward_in_place(x: &[f32], grad: &mut [f32]) -> Result<(), ElementwiseError> {
    check_same_len(
        "relu_backward_in_place",
        ("x", x.len()),
        ("grad", grad.len()),
    )?;
    zip_in_place(
        grad,
        x,
        |g, xv| xv.simd_gt(f32x8::ZERO).select(g, f32x8::ZERO),
        |g, xv| if xv > 0.0 { g } else { 0.0 },
    );
    Ok(())
}

#[inline(always)]
fn tanh_vec(v: f32x8) -> f32x8 {
    v.tanh()
}

/// Writes `out[i] = tanh(x[i])`.
///
/// Uses `wide`'s `f32x8::tanh` (`x` itself below `|x| = 2e-4`, a rational
/// expression in `exp_m1(-2|x|)` up to `|x| = 9.011`, `±1` above).
/// Maximum error against `f64` `tanh`: 2.58 ulp, measured over every third
/// f32 bit pattern on x86-64 without FMA; the tests check 3 ulp over every
/// 1021st pattern on the build that runs them.
/// `tanh(±0) = ±0`, `tanh(±inf) = ±1`, NaN stays NaN, and finite input never
/// gives NaN.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `out` differ in length.
pub fn tanh(x: &[f32], out: &mut [f32]) -> Result<(), ElementwiseError> {
    check_same_len("tanh", ("x", x.len()), ("out", out.len()))?;
    out.copy_from_slice(x);
    tanh_in_place(out);
    Ok(())
}

/// Applies [`tanh`] in place.
pub fn tanh_in_place(x: &mut [f32]) {
    map_padded_in_place(x, tanh_vec);
}

#[inline(always)]
fn sigmoid_vec(v: f32x8) -> f32x8 {
    // With e = exp(-|x|) in (0, 1], sigmoid(x) = 1 / (1 + e) for x >= 0 and
    // e / (1 + e) for x < 0. Neither branch overflows, and the negative
    // branch keeps full relative accuracy down to the subnormal range.
    let e = (-v.abs()).exp();
    let d = f32x8::ONE + e;
    v.simd_lt(f32x8::ZERO).select(e / d, f32x8::ONE / d)
}

/// Writes the logistic function `out[i] = 1 / (1 + exp(-x[i]))`.
///
/// Computed from `exp(-|x|)` (`wide`'s `f32x8::exp`) so that no
/// intermediate overflows. Maximum error against `f64`: 2.41 ulp wherever
/// the result is a normal number and 8.9e-8 absolute everywhere, measured
/// over every third f32 bit pattern on x86-64 without FMA; the tests check
/// 3 ulp and 1.2e-7 over every 1021st pattern on the build that runs them.
/// Below about `x = -87.3` the result is subnormal and its relative error
/// grows, up to returning 0 below `x = -103.6`. `sigmoid(+inf) = 1`,
/// `sigmoid(-inf) = 0`, NaN stays NaN, and finite input never gives NaN.
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `out` differ in length.
pub fn sigmoid(x: &[f32], out: &mut [f32]) -> Result<(), ElementwiseError> {
    check_same_len("sigmoid", ("x", x.len()), ("out", out.len()))?;
    out.copy_from_slice(x);
    sigmoid_in_place(out);
    Ok(())
}

/// Applies [`sigmoid`] in place.
pub fn sigmoid_in_place(x: &mut [f32]) {
    map_padded_in_place(x, sigmoid_vec);
}

// ---------------------------------------------------------------------------
// Reductions

/// Combines the four partial-sum vectors in the documented order.
#[inline(always)]
fn combine(acc: [f32x8; 4]) -> f32 {
    let l = ((acc[0] + acc[1]) + (acc[2] + acc[3])).to_array();
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// Copies `tail` (shorter than a block) into a zero-padded block.
#[inline(always)]
fn padded_block(tail: &[f32]) -> [f32; BLOCK] {
    let mut block = [0.0; BLOCK];
    block[..tail.len()].copy_from_slice(tail);
    block
}

/// Returns the sum of `x`, 0 for an empty slice.
///
/// Summation order: see the module documentation. The error is at most
/// about `(len / 32 + 5) * f32::EPSILON / 2 * sum(|x|)`.
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [f32x8::ZERO; 4];
    let mut blocks = x.chunks_exact(BLOCK);
    for block in &mut blocks {
        for (j, a) in acc.iter_mut().enumerate() {
            *a += load(&block[j * LANES..(j + 1) * LANES]);
        }
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let block = padded_block(tail);
        for (j, a) in acc.iter_mut().enumerate() {
            *a += load(&block[j * LANES..(j + 1) * LANES]);
        }
    }
    combine(acc)
}

/// Returns the dot product `sum(x[i] * y[i])`, 0 for empty slices.
///
/// Each product is rounded, then added in the order of [`sum`].
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `y` differ in length.
pub fn dot(x: &[f32], y: &[f32]) -> Result<f32, ElementwiseError> {
    check_same_len("dot", ("x", x.len()), ("y", y.len()))?;
    let mut acc = [f32x8::ZERO; 4];
    let mut xb = x.chunks_exact(BLOCK);
    let mut yb = y.chunks_exact(BLOCK);
    for (bx, by) in (&mut xb).zip(&mut yb) {
        for (j, a) in acc.iter_mut().enumerate() {
            let lanes = j * LANES..(j + 1) * LANES;
            *a += load(&bx[lanes.clone()]) * load(&by[lanes]);
        }
    }
    if !xb.remainder().is_empty() {
        let (bx, by) = (padded_block(xb.remainder()), padded_block(yb.remainder()));
        for (j, a) in acc.iter_mut().enumerate() {
            let lanes = j * LANES..(j + 1) * LANES;
            *a += load(&bx[lanes.clone()]) * load(&by[lanes]);
        }
    }
    Ok(combine(acc))
}

/// Returns the maximum of `row` ignoring NaN (`-inf` if there is none), and
/// whether `row` contains a NaN.
fn max_and_nan(row: &[f32]) -> (f32, bool) {
    let mut max = f32x8::splat(f32::NEG_INFINITY);
    let mut nan = f32x8::ZERO;
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        let v = load(chunk);
        nan |= v.simd_ne(v);
        max = v.simd_gt(max).select(v, max);
    }
    let mut max_scalar = max.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max);
    let mut nan_scalar = nan.any();
    for &v in chunks.remainder() {
        nan_scalar |= v.is_nan();
        if v > max_scalar {
            max_scalar = v;
        }
    }
    (max_scalar, nan_scalar)
}

/// Returns the argmax of a non-empty row: the first NaN if there is one,
/// else the lowest index holding the maximum.
fn argmax_nonempty(row: &[f32]) -> usize {
    let (max, has_nan) = max_and_nan(row);
    let found = if has_nan {
        row.iter().position(|v| v.is_nan())
    } else {
        row.iter().position(|&v| v == max)
    };
    // `found` is always `Some` for a non-empty row: the maximum, or the NaN
    // that `max_and_nan` saw, is one of its elements.
    found.unwrap_or(0)
}

/// Returns the index of the maximum of `x`.
///
/// Ties go to the lowest index (`-0.0` and `+0.0` tie), and NaN counts as
/// larger than any number, so the first NaN wins. This is what
/// `torch.argmax` returns.
///
/// # Errors
///
/// [`ElementwiseError::EmptyRow`] if `x` is empty.
pub fn argmax(x: &[f32]) -> Result<usize, ElementwiseError> {
    if x.is_empty() {
        return Err(ElementwiseError::EmptyRow { op: "argmax" });
    }
    Ok(argmax_nonempty(x))
}

/// Writes the [`argmax`] of each row of the row-major `x` (rows of `cols`
/// elements) into `out`, one index per row; the number of rows is
/// `out.len()`.
///
/// # Errors
///
/// [`ElementwiseError::RowCount`] if `x.len() != out.len() * cols`, and
/// [`ElementwiseError::EmptyRow`] if `cols == 0` while there is at least
/// one row.
pub fn argmax_rows(x: &[f32], cols: usize, out: &mut [usize]) -> Result<(), ElementwiseError> {
    const OP: &str = "argmax_rows";
    check_row_count(OP, x.len(), out.len(), cols)?;
    if out.is_empty() {
        return Ok(());
    }
    if cols == 0 {
        return Err(ElementwiseError::EmptyRow { op: OP });
    }
    for (row, index) in x.chunks_exact(cols).zip(out.iter_mut()) {
        *index = argmax_nonempty(row);
    }
    Ok(())
}

#[inline(always)]
fn exp_vec(v: f32x8) -> f32x8 {
    v.exp()
}

/// Replaces a row by its softmax, handling non-finite rows as
/// [`softmax_rows`] documents.
fn softmax_row(row: &mut [f32]) {
    let (max, has_nan) = max_and_nan(row);
    if has_nan {
        row.fill(f32::NAN);
    } else if max == f32::INFINITY {
        let count = row.iter().filter(|&&v| v == f32::INFINITY).count();
        let share = 1.0 / count as f32;
        for v in row.iter_mut() {
            *v = if *v == f32::INFINITY { share } else { 0.0 };
        }
    } else if max == f32::NEG_INFINITY {
        row.fill(1.0 / row.len() as f32);
    } else {
        let shift = f32x8::splat(max);
        map_padded_in_place(row, |v| exp_vec(v - shift));
        // The maximum contributes exp(0) = 1, so the sum is at least 1.
        let total = sum(row);
        let t = f32x8::splat(total);
        map_in_place(row, |v| v / t, |v| v / total);
    }
}

/// Replaces each row of the row-major `x` (rows of `cols` elements) by its
/// softmax `exp(x[j] - m) / sum_k exp(x[k] - m)`, where `m` is the row
/// maximum, so no `exp` overflows.
///
/// Special rows, in order of precedence:
/// - a row containing NaN becomes all NaN;
/// - a row containing `+inf` shares the mass equally among its `+inf`
///   elements (the limit as they grow together) and gives 0 elsewhere;
/// - a row of only `-inf` becomes uniform, `1 / cols` each (the limit as all
///   elements fall together; `torch.softmax` returns NaN there).
///
/// So every row without NaN sums to 1 up to rounding. Against `f64`, the
/// relative error of an element is dominated by the rounding of `x[j] - m`
/// in f32, which is up to `|x[j] - m| * f32::EPSILON / 2` in the exponent:
/// the tests measured 2.1e-6 on rows drawn from `[-20, 20)` and check
/// `(8 + cols) * f32::EPSILON` plus twice the spacing of f32 at `|x|`.
///
/// # Errors
///
/// [`ElementwiseError::NotMultiple`] if `cols` does not divide `x.len()`.
pub fn softmax_rows_in_place(x: &mut [f32], cols: usize) -> Result<(), ElementwiseError> {
    check_whole_rows("softmax_rows_in_place", x.len(), cols)?;
    if cols == 0 {
        return Ok(());
    }
    for row in x.chunks_exact_mut(cols) {
        softmax_row(row);
    }
    Ok(())
}

/// Writes the row softmax of `x` into `out`; see [`softmax_rows_in_place`].
///
/// # Errors
///
/// [`ElementwiseError::LengthMismatch`] if `x` and `out` differ in length,
/// [`ElementwiseError::NotMultiple`] if `cols` does not divide their length.
pub fn softmax_rows(x: &[f32], cols: usize, out: &mut [f32]) -> Result<(), ElementwiseError> {
    const OP: &str = "softmax_rows";
    check_same_len(OP, ("x", x.len()), ("out", out.len()))?;
    check_whole_rows(OP, x.len(), cols)?;
    out.copy_from_slice(x);
    if cols == 0 {
        return Ok(());
    }
    for row in out.chunks_exact_mut(cols) {
        softmax_row(row);
    }
    Ok(())
}

/// Returns `ln(sum(exp(row)))` computed as `m + ln(sum(exp(row - m)))`.
fn logsumexp_row(row: &[f32]) -> f32 {
    let (max, has_nan) = max_and_nan(row);
    if has_nan {
        return f32::NAN;
    }
    if max.is_infinite() {
        // +inf: the sum is infinite. -inf (or an empty row): the sum is 0.
        return max;
    }
    let shift = f32x8::splat(max);
    let mut acc = [f32x8::ZERO; 4];
    let mut blocks = row.chunks_exact(BLOCK);
    for block in &mut blocks {
        for (j, a) in acc.iter_mut().enumerate() {
            *a += exp_vec(load(&block[j * LANES..(j + 1) * LANES]) - shift);
        }
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        // Pad with -inf, whose exp is exactly 0.
        let mut block = [f32::NEG_INFINITY; BLOCK];
        block[..tail.len()].copy_from_slice(tail);
        for (j, a) in acc.iter_mut().enumerate() {
            *a += exp_vec(load(&block[j * LANES..(j + 1) * LANES]) - shift);
        }
    }
    max + combine(acc).ln()
}

/// Writes `ln(sum_j exp(x[r][j]))` for each row `r` of the row-major `x`
/// (rows of `cols` elements) into `out`; the number of rows is `out.len()`.
///
/// Computed as `m + ln(sum_j exp(x[r][j] - m))` with `m` the row maximum, so
/// no `exp` overflows. A row containing NaN gives NaN, a row containing
/// `+inf` gives `+inf`, and a row of only `-inf` or an empty row (`cols ==
/// 0`) gives `-inf`, as `torch.logsumexp` does.
///
/// # Errors
///
/// [`ElementwiseError::RowCount`] if `x.len() != out.len() * cols`.
pub fn logsumexp_rows(x: &[f32], cols: usize, out: &mut [f32]) -> Result<(), ElementwiseError> {
    check_row_count("logsumexp_rows", x.len(), out.len(), cols)?;
    if cols == 0 {
        out.fill(f32::NEG_INFINITY);
        return Ok(());
    }
    for (row, value) in x.chunks_exact(cols).zip(out.iter_mut()) {
        *value = logsumexp_row(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small xorshift generator, so the tests need no dependency.
    struct Rng(u64);

    impl Rng {
        fn next_u32(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 32) as u32
        }

        /// Uniform in `[lo, hi)`.
        fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
            let unit = (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
            lo + (hi - lo) * unit
        }

        fn vec(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
            (0..len).map(|_| self.uniform(lo, hi)).collect()
        }
    }

    /// Bitwise equality that treats every NaN as equal to every NaN.
    fn same(a: f32, b: f32) -> bool {
        (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
    }

    /// The spacing of f32 values at `r`'s magnitude.
    fn ulp(r: f64) -> f64 {
        let a = (r.abs() as f32).min(f32::MAX);
        let below = f32::from_bits(a.to_bits().saturating_sub(1));
        let above = f32::from_bits(a.to_bits() + 1);
        if a == f32::MAX || a == 0.0 {
            (a - below) as f64
        } else {
            (above - a) as f64
        }
        .max(f32::from_bits(1) as f64)
    }

    /// Error of `y` against the exact `r` in units of f32 spacing at `r`.
    fn ulp_error(y: f32, r: f64) -> f64 {
        (y as f64 - r).abs() / ulp(r)
    }

    const SPECIALS: [f32; 14] = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
        1e30,
        -1e30,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];

    #[test]
    fn arithmetic_matches_scalar_formula_bitwise() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for len in 0..=67 {
            let mut a = rng.vec(len, -4.0, 4.0);
            let b = rng.vec(len, -4.0, 4.0);
            if len > 3 {
                a[len / 2] = f32::NAN;
                a[len / 3] = f32::INFINITY;
            }
            let alpha = 0.3f32;
            let mut out = vec![0.0; len];

            add(&a, &b, &mut out).unwrap();
            for i in 0..len {
                assert!(same(out[i], a[i] + b[i]), "add len {len} i {i}");
            }
            sub(&a, &b, &mut out).unwrap();
            for i in 0..len {
                assert!(same(out[i], a[i] - b[i]), "sub len {len} i {i}");
            }
            mul(&a, &b, &mut out).unwrap();
            for i in 0..len {
                assert!(same(out[i], a[i] * b[i]), "mul len {len} i {i}");
            }
            scale_into(alpha, &a, &mut out).unwrap();
            for i in 0..len {
                assert!(same(out[i], alpha * a[i]), "scale_into len {len} i {i}");
            }

            let mut y = b.clone();
            axpy(alpha, &a, &mut y).unwrap();
            for i in 0..len {
                assert!(same(y[i], b[i] + alpha * a[i]), "axpy len {len} i {i}");
            }
            let mut y = b.clone();
            add_assign(&mut y, &a).unwrap();
            for i in 0..len {
                assert!(same(y[i], b[i] + a[i]), "add_assign len {len} i {i}");
            }
            let mut y = b.clone();
            sub_assign(&mut y, &a).unwrap();
            for i in 0..len {
                assert!(same(y[i], b[i] - a[i]), "sub_assign len {len} i {i}");
            }
            let mut y = b.clone();
            mul_assign(&mut y, &a).unwrap();
            for i in 0..len {
                assert!(same(y[i], b[i] * a[i]), "mul_assign len {len} i {i}");
            }
            let mut y = b.clone();
            scale(alpha, &mut y);
            for i in 0..len {
                assert!(same(y[i], alpha * b[i]), "scale len {len} i {i}");
            }
        }
    }

    #[test]
    fn length_mismatch_names_op_and_lengths() {
        let mut y = [0.0; 4];
        let err = axpy(1.0, &[1.0; 3], &mut y).unwrap_err();
        assert_eq!(
            err.to_string(),
            "axpy: x has 3 elements but y has 4; both must have the same length"
        );
        let err = add(&[1.0; 2], &[1.0; 2], &mut y).unwrap_err();
        assert_eq!(
            err,
            ElementwiseError::LengthMismatch {
                op: "add",
                first: "a",
                first_len: 2,
                second: "out",
                second_len: 4
            }
        );
        assert!(mul(&[1.0; 4], &[1.0; 5], &mut y).is_err());
        assert!(sub(&[1.0; 4], &[1.0; 5], &mut y).is_err());
        assert!(dot(&[1.0; 4], &[1.0; 5]).is_err());
        assert!(tanh(&[1.0; 5], &mut y).is_err());
        assert!(sigmoid(&[1.0; 5], &mut y).is_err());
        assert!(relu(&[1.0; 5], &mut y).is_err());
        assert!(relu_backward(&[1.0; 4], &[1.0; 3], &mut y).is_err());
        assert!(relu_backward_in_place(&[1.0; 3], &mut y).is_err());
        assert_eq!(y, [0.0; 4], "a rejected call must not write");
    }

    #[test]
    fn row_shape_errors_name_op_and_shape() {
        let mut out = [0.0; 2];
        let err = logsumexp_rows(&[0.0; 7], 3, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "logsumexp_rows: input has 7 elements but the output has 2 rows of 3 columns; \
             pass an output with one element per input row"
        );
        let mut x = [0.0; 7];
        let err = softmax_rows_in_place(&mut x, 3).unwrap_err();
        assert_eq!(
            err,
            ElementwiseError::NotMultiple {
                op: "softmax_rows_in_place",
                len: 7,
                cols: 3
            }
        );
        assert!(softmax_rows_in_place(&mut x, 0).is_err());
        let mut out7 = [0.0; 7];
        assert!(softmax_rows(&x, 2, &mut out7).is_err());
        let mut idx = [0usize; 2];
        assert!(argmax_rows(&[0.0; 7], 3, &mut idx).is_err());
        let err = argmax_rows(&[], 0, &mut idx).unwrap_err();
        assert_eq!(err, ElementwiseError::EmptyRow { op: "argmax_rows" });
        assert!(err.to_string().contains("at least one column"), "{err}");
        assert_eq!(
            argmax(&[]).unwrap_err(),
            ElementwiseError::EmptyRow { op: "argmax" }
        );
        // Huge shapes whose product overflows are rejected, not wrapped.
        assert!(argmax_rows(&[0.0; 4], usize::MAX, &mut idx).is_err());
    }

    #[test]
    fn relu_and_gradient() {
        let x = [
            -2.0,
            -0.0,
            0.0,
            1.5,
            f32::NAN,
            f32::NEG_INFINITY,
            f32::INFINITY,
            -1e-45,
        ];
        for len in 0..=67 {
            let input: Vec<f32> = (0..len).map(|i| x[i % x.len()]).collect();
            let mut out = vec![7.0; len];
            relu(&input, &mut out).unwrap();
            let mut in_place = input.clone();
            relu_in_place(&mut in_place);
            for i in 0..len {
                let v = input[i];
                let expected = if v < 0.0 { 0.0 } else { v };
                assert!(same(out[i], expected), "relu({v}) = {}", out[i]);
                assert!(same(in_place[i], expected), "relu_in_place({v})");
                assert!(out[i] >= 0.0 || out[i].is_nan(), "relu({v}) is negative");
            }

            let grad_out: Vec<f32> = (0..len).map(|i| i as f32 + 1.0).collect();
            let mut grad_in = vec![7.0; len];
            relu_backward(&input, &grad_out, &mut grad_in).unwrap();
            let mut grad = grad_out.clone();
            relu_backward_in_place(&input, &mut grad).unwrap();
            for i in 0..len {
                let expected = if input[i] > 0.0 { grad_out[i] } else { 0.0 };
                assert_eq!(grad_in[i], expected, "relu_backward at x = {}", input[i]);
                assert_eq!(
                    grad[i], expected,
                    "relu_backward_in_place at x = {}",
                    input[i]
                );
            }
        }
    }

    /// Every `stride`-th f32 bit pattern, then the special values.
    fn sweep(stride: usize) -> Vec<f32> {
        let mut xs: Vec<f32> = (0..=u32::MAX).step_by(stride).map(f32::from_bits).collect();
        xs.extend_from_slice(&SPECIALS);
        xs.push(f32::NAN);
        xs.push(-f32::NAN);
        xs
    }

    #[test]
    fn tanh_error_against_f64() {
        let xs = sweep(1021);
        let mut ys = vec![0.0; xs.len()];
        tanh(&xs, &mut ys).unwrap();
        let mut worst = (0.0f64, 0.0f32);
        for (&x, &y) in xs.iter().zip(&ys) {
            if x.is_nan() {
                assert!(y.is_nan(), "tanh(NaN) = {y}");
                continue;
            }
            assert!(!y.is_nan(), "tanh({x}) is NaN");
            assert!(y.abs() <= 1.0, "tanh({x}) = {y} leaves [-1, 1]");
            assert_eq!(
                y.is_sign_negative(),
                x.is_sign_negative(),
                "sign of tanh({x})"
            );
            let e = ulp_error(y, (x as f64).tanh());
            if e > worst.0 {
                worst = (e, x);
            }
        }
        println!("tanh: max error {:.3} ulp at x = {:e}", worst.0, worst.1);
        assert!(worst.0 <= 3.0, "tanh error {} ulp at {}", worst.0, worst.1);

        let mut special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 20.0, -20.0];
        tanh_in_place(&mut special);
        assert_eq!(special[0].to_bits(), 0.0f32.to_bits());
        assert_eq!(special[1].to_bits(), (-0.0f32).to_bits());
        assert_eq!(&special[2..], &[1.0, -1.0, 1.0, -1.0]);
    }

    #[test]
    fn sigmoid_error_against_f64() {
        let xs = sweep(1021);
        let mut ys = vec![0.0; xs.len()];
        sigmoid(&xs, &mut ys).unwrap();
        let mut worst = (0.0f64, 0.0f32);
        let mut worst_abs = 0.0f64;
        for (&x, &y) in xs.iter().zip(&ys) {
            if x.is_nan() {
                assert!(y.is_nan(), "sigmoid(NaN) = {y}");
                continue;
            }
            assert!(!y.is_nan(), "sigmoid({x}) is NaN");
            assert!((0.0..=1.0).contains(&y), "sigmoid({x}) = {y} leaves [0, 1]");
            let r = 1.0 / (1.0 + (-(x as f64)).exp());
            worst_abs = worst_abs.max((y as f64 - r).abs());
            if r >= f32::MIN_POSITIVE as f64 {
                let e = ulp_error(y, r);
                if e > worst.0 {
                    worst = (e, x);
                }
            }
        }
        println!(
            "sigmoid: max error {:.3} ulp at x = {:e} (normal results), max absolute error {:e}",
            worst.0, worst.1, worst_abs
        );
        assert!(
            worst.0 <= 3.0,
            "sigmoid error {} ulp at {}",
            worst.0,
            worst.1
        );
        assert!(worst_abs <= 1.2e-7, "sigmoid absolute error {worst_abs}");

        let mut special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 200.0, -200.0];
        sigmoid_in_place(&mut special);
        assert_eq!(special, [0.5, 0.5, 1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn activations_same_in_tail_and_body() {
        // The element at position 0 is in a full vector, at position 8 in the
        // tail; both must give the same bits.
        let mut rng = Rng(7);
        for _ in 0..1000 {
            let v = rng.uniform(-12.0, 12.0);
            let mut t = [v; 9];
            tanh_in_place(&mut t);
            assert_eq!(t[0].to_bits(), t[8].to_bits(), "tanh({v})");
            let mut s = [v; 9];
            sigmoid_in_place(&mut s);
            assert_eq!(s[0].to_bits(), s[8].to_bits(), "sigmoid({v})");
        }
    }

    /// The documented summation order, written out with scalars.
    fn sum_in_documented_order(terms: &[f32]) -> f32 {
        let mut partial = [0.0f32; BLOCK];
        for (i, &t) in terms.iter().enumerate() {
            partial[i % BLOCK] += t;
        }
        let mut lanes = [0.0f32; LANES];
        for (l, lane) in lanes.iter_mut().enumerate() {
            let p = |v: usize| partial[v * LANES + l];
            *lane = (p(0) + p(1)) + (p(2) + p(3));
        }
        let l = lanes;
        ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
    }

    #[test]
    fn sum_and_dot_follow_documented_order() {
        let mut rng = Rng(11);
        for len in (0..=67).chain([100, 1000, 4099]) {
            let x = rng.vec(len, -1.0, 1.0);
            let y = rng.vec(len, -1.0, 1.0);
            let products: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
            assert_eq!(
                sum(&x).to_bits(),
                sum_in_documented_order(&x).to_bits(),
                "sum, len {len}"
            );
            assert_eq!(
                dot(&x, &y).unwrap().to_bits(),
                sum_in_documented_order(&products).to_bits(),
                "dot, len {len}"
            );
        }
    }

    #[test]
    fn sum_and_dot_against_f64() {
        let mut rng = Rng(13);
        for len in (0..=67).chain([1000, 100_003]) {
            let x = rng.vec(len, -1.0, 1.0);
            let y = rng.vec(len, 0.0, 2.0);
            let exact_sum: f64 = x.iter().map(|&v| v as f64).sum();
            let abs_sum: f64 = x.iter().map(|&v| v.abs() as f64).sum();
            // Each element passes through at most len / 32 + 5 additions.
            let depth = (len / BLOCK + 5) as f64;
            let tol = depth * f32::EPSILON as f64 * abs_sum;
            let got = sum(&x) as f64;
            assert!(
                (got - exact_sum).abs() <= tol,
                "sum len {len}: {got} vs {exact_sum}"
            );

            let exact_dot: f64 = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum();
            let abs_dot: f64 = x.iter().zip(&y).map(|(&a, &b)| (a * b).abs() as f64).sum();
            let tol = (depth + 1.0) * f32::EPSILON as f64 * abs_dot;
            let got = dot(&x, &y).unwrap() as f64;
            assert!(
                (got - exact_dot).abs() <= tol,
                "dot len {len}: {got} vs {exact_dot}"
            );
        }
        assert!(sum(&[1.0, f32::NAN, 2.0]).is_nan());
        assert_eq!(sum(&[1.0, f32::INFINITY]), f32::INFINITY);
        assert!(sum(&[f32::INFINITY, f32::NEG_INFINITY]).is_nan());
    }

    fn softmax_f64(row: &[f32]) -> Vec<f64> {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    fn logsumexp_f64(row: &[f32]) -> f64 {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
    }

    #[test]
    fn softmax_and_logsumexp_against_f64() {
        let mut rng = Rng(17);
        let mut worst_softmax = 0.0f64;
        let mut worst_lse = 0.0f64;
        for cols in 0..=67 {
            for offset in [0.0f32, 1000.0, -1000.0] {
                let rows = 3;
                let x: Vec<f32> = rng
                    .vec(rows * cols, -20.0, 20.0)
                    .iter()
                    .map(|v| v + offset)
                    .collect();
                let mut out = vec![0.0; x.len()];
                softmax_rows(&x, cols, &mut out).unwrap();
                let mut in_place = x.clone();
                softmax_rows_in_place(&mut in_place, cols).unwrap();
                assert_eq!(out, in_place, "in place differs, cols {cols}");
                let mut lse = vec![0.0; rows];
                logsumexp_rows(&x, cols, &mut lse).unwrap();

                for r in 0..rows {
                    let row = &x[r * cols..(r + 1) * cols];
                    let got = &out[r * cols..(r + 1) * cols];
                    for (j, (&g, e)) in got.iter().zip(softmax_f64(row)).enumerate() {
                        // exp is within a few ulp; the input shift x - m adds
                        // up to ulp(|x|) absolute error to the exponent, and
                        // the sum adds cols roundings.
                        let rel = (g as f64 - e).abs() / e.max(f64::MIN_POSITIVE);
                        let shift_err = ulp(offset.abs() as f64 + 20.0);
                        let tol = (8.0 + cols as f64) * f32::EPSILON as f64 + 2.0 * shift_err;
                        assert!(rel <= tol, "softmax cols {cols} row {r} j {j}: {g} vs {e}");
                        if offset == 0.0 {
                            worst_softmax = worst_softmax.max(rel);
                        }
                    }
                    if cols > 0 {
                        let s: f64 = got.iter().map(|&v| v as f64).sum();
                        assert!((s - 1.0).abs() <= 1e-5, "softmax row sums to {s}");
                    }
                    let e = logsumexp_f64(row);
                    let err = (lse[r] as f64 - e).abs();
                    if cols == 0 {
                        assert_eq!(lse[r], f32::NEG_INFINITY);
                    } else {
                        let tol = ulp(e) + 4.0 * f32::EPSILON as f64;
                        assert!(err <= tol, "logsumexp cols {cols}: {} vs {e}", lse[r]);
                        worst_lse = worst_lse.max(err);
                    }
                }
            }
        }
        println!(
            "softmax: max relative error {worst_softmax:e}; logsumexp: max absolute error \
             {worst_lse:e}"
        );
    }

    #[test]
    fn softmax_and_logsumexp_non_finite_rows() {
        let inf = f32::INFINITY;
        let cases: [(&[f32], &[f32], f32); 6] = [
            (&[1.0, f32::NAN, 2.0], &[f32::NAN; 3], f32::NAN),
            (&[inf, f32::NAN, 2.0], &[f32::NAN; 3], f32::NAN),
            (&[1.0, inf, 2.0, inf], &[0.0, 0.5, 0.0, 0.5], inf),
            (&[-inf, inf, -inf], &[0.0, 1.0, 0.0], inf),
            (&[-inf; 4], &[0.25; 4], -inf),
            (&[-inf, 0.0, -inf], &[0.0, 1.0, 0.0], 0.0),
        ];
        for (row, expected, expected_lse) in cases {
            for copies in [1, 5, 13] {
                // Repeat the row inside a longer one to reach the vector path.
                let cols = row.len();
                let x: Vec<f32> = row.iter().copied().cycle().take(cols * copies).collect();
                let mut out = vec![0.0; x.len()];
                softmax_rows(&x, cols, &mut out).unwrap();
                for (g, e) in out.iter().zip(expected.iter().cycle()) {
                    assert!(same(*g, *e), "softmax({row:?}) gave {out:?}");
                }
                let mut lse = vec![0.0; copies];
                logsumexp_rows(&x, cols, &mut lse).unwrap();
                for v in &lse {
                    assert!(same(*v, expected_lse), "logsumexp({row:?}) = {v}");
                }
            }
        }
        // One long row with several +inf entries, crossing vector boundaries.
        let mut long = vec![0.0f32; 40];
        long[3] = inf;
        long[17] = inf;
        long[39] = inf;
        softmax_rows_in_place(&mut long, 40).unwrap();
        for (j, &v) in long.iter().enumerate() {
            let expected = if [3, 17, 39].contains(&j) {
                1.0 / 3.0
            } else {
                0.0
            };
            assert_eq!(v, expected, "long row element {j}");
        }
    }

    fn argmax_naive(row: &[f32]) -> usize {
        let mut best = 0;
        for (i, &v) in row.iter().enumerate() {
            if row[best].is_nan() {
                break;
            }
            if v.is_nan() || v > row[best] {
                best = i;
            }
        }
        best
    }

    #[test]
    fn argmax_ties_and_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Ok(1));
        assert_eq!(argmax(&[1.0, f32::NAN, 5.0, f32::NAN]), Ok(1));
        assert_eq!(argmax(&[f32::INFINITY, f32::NAN]), Ok(1));
        assert_eq!(argmax(&[-0.0, 0.0]), Ok(0));
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), Ok(0));

        // Small integers make ties frequent; NaN lands in about one row of
        // ten, in any lane or in the tail.
        let mut rng = Rng(19);
        for cols in 1..=67 {
            let rows = 20;
            let mut x: Vec<f32> = (0..rows * cols)
                .map(|_| (rng.next_u32() % 5) as f32)
                .collect();
            for _ in 0..2 {
                let i = rng.next_u32() as usize % (rows * cols * 5);
                if i < x.len() {
                    x[i] = f32::NAN;
                }
            }
            let mut out = vec![usize::MAX; rows];
            argmax_rows(&x, cols, &mut out).unwrap();
            for r in 0..rows {
                let row = &x[r * cols..(r + 1) * cols];
                assert_eq!(out[r], argmax_naive(row), "cols {cols} row {row:?}");
                let fused = crate::gemm::argmax_group(row);
                assert_eq!(Some(out[r]), fused, "GEMM epilogue argmax, row {row:?}");
            }
        }
        let mut none: [usize; 0] = [];
        assert_eq!(argmax_rows(&[], 0, &mut none), Ok(()));
    }
}
