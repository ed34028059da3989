//! Naive reference GEMM accumulated in f64, for tests and accuracy checks.
//!
//! Not optimised in any way: three loops and f64 sums, so its result is
//! accurate to about 1e-16 relative and independent of every kernel.

use crate::gemm::MatRef;

/// Returns `alpha * A * B + beta * C` as a row-major `m x n` f64 matrix,
/// with products and sums in f64. When `beta == 0`, C is not read, and
/// when `alpha == 0` the product is skipped, as [`crate::gemm::Gemm`] does.
///
/// # Panics
///
/// If the shapes do not chain (this is test code).
pub fn gemm_f64(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatRef<'_>) -> Vec<f64> {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert_eq!(b.rows(), k, "reference gemm: inner dimensions differ");
    assert_eq!(
        (c.rows(), c.cols()),
        (m, n),
        "reference gemm: C has the wrong shape"
    );
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f64;
            if alpha != 0.0 {
                for p in 0..k {
                    sum += f64::from(value(&a, i, p)) * f64::from(value(&b, p, j));
                }
            }
            let scaled = if alpha == 0.0 {
                0.0
            } else {
                f64::from(alpha) * sum
            };
            let previous = if beta == 0.0 {
                0.0
            } else {
                f64::from(beta) * f64::from(value(&c, i, j))
            };
            out[i * n + j] = scaled + previous;
        }
    }
    out
}

/// Returns `|alpha| * |A| * |B| + |beta| * |C|` element by element: the
/// scale of the rounding error of any f32 evaluation of the same GEMM.
/// Terms that [`gemm_f64`] skips (the product when `alpha == 0`, C when
/// `beta == 0`) count as zero.
///
/// # Panics
///
/// If the shapes do not chain (this is test code).
pub fn magnitude(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatRef<'_>) -> Vec<f64> {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert_eq!(b.rows(), k, "reference magnitude: inner dimensions differ");
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f64;
            if alpha != 0.0 {
                for p in 0..k {
                    sum += f64::from(value(&a, i, p).abs()) * f64::from(value(&b, p, j).abs());
                }
            }
            let previous = if beta == 0.0 {
                0.0
            } else {
                f64::from(beta.abs()) * f64::from(value(&c, i, j).abs())
            };
            out[i * n + j] = f64::from(alpha.abs()) * sum + previous;
        }
    }
    out
}

fn value(m: &MatRef<'_>, i: usize, j: usize) -> f32 {
    m.data()[i * m.row_stride() + j * m.col_stride()]
}
