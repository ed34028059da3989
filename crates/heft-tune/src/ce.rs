//! Softmax cross-entropy summed in a fixed order.
//!
//! Every path that reports cross-entropy feeds one candidate's per-row
//! losses, in row order, into a [`CrossEntropySum`]. The sum runs in f64
//! over blocks of [`CE_BLOCK_ROWS`] rows, and the block sums are added in
//! block order. The result therefore depends only on the logits, not on how
//! a path splits the rows for its GEMMs or over threads.

/// Rows per partial sum.
pub(crate) const CE_BLOCK_ROWS: usize = 512;

/// Returns `logsumexp(z) - z[label]` in f64, with the row maximum
/// subtracted first so large logits do not overflow. NaN in the row gives
/// NaN.
pub(crate) fn row_cross_entropy(logits: &[f32], label: u32) -> f64 {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &z| m.max(f64::from(z)));
    if logits.iter().any(|z| z.is_nan()) || !max.is_finite() {
        return f64::NAN;
    }
    let sum: f64 = logits.iter().map(|&z| (f64::from(z) - max).exp()).sum();
    max + sum.ln() - f64::from(logits[label as usize])
}

/// A running sum of per-row losses of one candidate, in row order.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CrossEntropySum {
    total: f64,
    block: f64,
    rows_in_block: usize,
}

impl CrossEntropySum {
    /// Adds the loss of the next row.
    pub(crate) fn add(&mut self, loss: f64) {
        self.block += loss;
        self.rows_in_block += 1;
        if self.rows_in_block == CE_BLOCK_ROWS {
            self.total += self.block;
            self.block = 0.0;
            self.rows_in_block = 0;
        }
    }

    /// Adds the losses of consecutive rows of `logits` (`classes` values
    /// per row) with their labels.
    pub(crate) fn add_rows(&mut self, logits: &[f32], classes: usize, labels: &[u32]) {
        for (row, &label) in logits.chunks_exact(classes).zip(labels) {
            self.add(row_cross_entropy(row, label));
        }
    }

    /// Returns the sum of every loss added.
    pub(crate) fn total(&self) -> f64 {
        self.total + self.block
    }
}
