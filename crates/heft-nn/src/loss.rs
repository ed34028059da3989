//! Softmax cross-entropy loss and accuracy.
//!
//! For logits `Z` of shape `[batch, classes]` and labels `y` of length
//! `batch`, the loss is the mean over rows of
//! `logsumexp(Z_i) - Z_i[y_i]`, as `torch.nn.functional.cross_entropy`
//! computes it. The log-sum-exp subtracts the row maximum first, so large
//! logits do not overflow. Its gradient is
//! `dL/dZ_ij = (softmax(Z_i)_j - [j == y_i]) / batch`.
//!
//! ```
//! use heft_nn::{correct_count, cross_entropy};
//! use heft_tensor::Matrix;
//!
//! // Two equal logits: each class has probability 1/2, so the loss is ln 2.
//! let z = Matrix::from_slice(1, 2, &[3.0, 3.0])?;
//! let loss = cross_entropy(&z, &[1])?;
//! assert!((loss - std::f32::consts::LN_2).abs() < 1e-6);
//!
//! let z = Matrix::from_slice(2, 2, &[0.0, 1.0, 5.0, -5.0])?;
//! assert_eq!(correct_count(&z, &[1, 1])?, 1);
//! # Ok::<(), heft_nn::NnError>(())
//! ```

use crate::error::NnError;
use heft_tensor::Matrix;

fn check_labels(op: &'static str, logits: &Matrix, labels: &[u32]) -> Result<(), NnError> {
    if labels.len() != logits.rows() {
        return Err(NnError::shape(
            op,
            format!(
                "the logits have {} rows but there are {} labels; pass one label per row",
                logits.rows(),
                labels.len()
            ),
        ));
    }
    if logits.cols() == 0 {
        return Err(NnError::shape(
            op,
            format!(
                "the logits are {}x0, so there are no classes",
                logits.rows()
            ),
        ));
    }
    let classes = logits.cols();
    if let Some((row, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        return Err(NnError::LabelOutOfRange {
            op,
            row,
            label,
            classes,
        });
    }
    Ok(())
}

/// Computes the loss of one row and, if `grad` is given, writes
/// `softmax(row) - onehot(label)` scaled by `scale` into it.
///
/// The loss is `(max - row[label]) + log_sum`, added in that order in f64.
/// `log_sum` is between 0 and `ln(classes)`, so adding it to `max` first,
/// in f32, would round it away for logits of large magnitude (an f32 ulp
/// at 1e8 is 8).
fn row_loss(row: &[f32], label: usize, grad: Option<(&mut [f32], f32)>) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&z| (z - max).exp()).sum();
    let log_sum = sum.ln();
    if let Some((grad, scale)) = grad {
        for (j, (g, &z)) in grad.iter_mut().zip(row).enumerate() {
            let p = (z - max - log_sum).exp();
            let target = if j == label { 1.0 } else { 0.0 };
            *g = (p - target) * scale;
        }
    }
    (f64::from(max) - f64::from(row[label])) + f64::from(log_sum)
}

/// Returns the mean softmax cross-entropy of `logits` (`[batch, classes]`)
/// against `labels`. An empty batch has loss 0.
///
/// # Errors
///
/// [`NnError::Shape`] if there is not one label per row or there are no
/// classes, and [`NnError::LabelOutOfRange`] for a label `>= classes`.
pub fn cross_entropy(logits: &Matrix, labels: &[u32]) -> Result<f32, NnError> {
    check_labels("cross_entropy", logits, labels)?;
    if labels.is_empty() {
        return Ok(0.0);
    }
    let total: f64 = logits
        .as_slice()
        .chunks_exact(logits.cols())
        .zip(labels)
        .map(|(row, &label)| row_loss(row, label as usize, None))
        .sum();
    Ok((total / labels.len() as f64) as f32)
}

/// Returns the mean softmax cross-entropy like [`cross_entropy`] and writes
/// its gradient with respect to the logits into `grad` (same shape as
/// `logits`), overwriting it.
///
/// # Errors
///
/// As [`cross_entropy`], and [`NnError::Shape`] if `grad` is not shaped
/// like `logits`.
pub fn cross_entropy_with_grad(
    logits: &Matrix,
    labels: &[u32],
    grad: &mut Matrix,
) -> Result<f32, NnError> {
    const OP: &str = "cross_entropy_with_grad";
    check_labels(OP, logits, labels)?;
    if grad.shape() != logits.shape() {
        return Err(NnError::shape(
            OP,
            format!(
                "the gradient is {}x{} but the logits are {}x{}",
                grad.rows(),
                grad.cols(),
                logits.rows(),
                logits.cols()
            ),
        ));
    }
    Ok(mean_loss_with_grad(
        logits.as_slice(),
        logits.cols(),
        labels,
        grad.as_mut_slice(),
    ))
}

/// Returns the mean loss of the row-major `[labels.len(), classes]` logits
/// and writes its gradient into `grad` of the same length. The caller has
/// checked the lengths and that every label is below `classes`.
pub(crate) fn mean_loss_with_grad(
    logits: &[f32],
    classes: usize,
    labels: &[u32],
    grad: &mut [f32],
) -> f32 {
    if labels.is_empty() {
        return 0.0;
    }
    let scale = 1.0 / labels.len() as f32;
    let mut total = 0.0f64;
    for ((row, g), &label) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(labels)
    {
        total += row_loss(row, label as usize, Some((g, scale)));
    }
    (total / labels.len() as f64) as f32
}

/// Writes the loss of each row of the row-major `[labels.len(), classes]`
/// logits into `losses` and `(softmax - onehot) * scale` into `grad` of
/// the same length as the logits. The caller has checked the lengths and
/// that every label is below `classes`.
///
/// For a batch of `n` rows split into parts, pass `scale = 1 / n`. Then
/// each part's `grad` is its rows of the gradient of the whole batch's mean
/// loss. Summing the parts' `losses` in row order gives exactly the sum
/// that [`mean_loss_with_grad`] divides by `n`.
pub(crate) fn row_losses_with_grad(
    logits: &[f32],
    classes: usize,
    labels: &[u32],
    scale: f32,
    grad: &mut [f32],
    losses: &mut [f64],
) {
    for (((row, g), &label), loss) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(labels)
        .zip(losses)
    {
        *loss = row_loss(row, label as usize, Some((g, scale)));
    }
}

/// Returns how many rows of `logits` have their largest logit at the
/// label's column. Ties go to the lowest column, as `torch.argmax` does.
///
/// # Errors
///
/// As [`cross_entropy`].
pub fn correct_count(logits: &Matrix, labels: &[u32]) -> Result<usize, NnError> {
    check_labels("correct_count", logits, labels)?;
    let predicted = logits.argmax_rows()?;
    Ok(predicted
        .iter()
        .zip(labels)
        .filter(|(&p, &l)| p == l as usize)
        .count())
}
