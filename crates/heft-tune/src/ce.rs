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
    // The difference first: for logits near 1e17 and above, `max +
    // sum.ln()` rounds the log-sum away.
    (max - f64::from(logits[label as usize])) + sum.ln()
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

#[cfg(test)]
mod tests {
    use super::row_cross_entropy;

    #[test]
    fn large_logits_keep_log_sum() {
        let ln2 = std::f64::consts::LN_2;
        for z in [1.0f32, 1e8, 1e17, 1e30, -1e30] {
            let loss = row_cross_entropy(&[z, z], 0);
            assert!((loss - ln2).abs() < 1e-12, "logits {z}: {loss}");
        }
        // Label below the maximum by 8: 8 + ln(2 + e^-8).
        let loss = row_cross_entropy(&[1e8, 1e8 - 8.0, 1e8], 1);
        let expected = 8.0 + (2.0 + (-8.0f64).exp()).ln();
        assert!((loss - expected).abs() < 1e-12, "{loss} against {expected}");
    }
}
