//! Naive reference GEMM accumulated in f64, for tests and accuracy checks,
//! and a padded test matrix whose padding shows stray writes.
//!
//! Not optimised in any way: three loops and f64 sums, so its result is
//! accurate to about 1e-16 relative and independent of every kernel.

use crate::gemm::{MatMut, MatRef};

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

/// A matrix stored inside a larger buffer, for tests: `rows x cols` at
/// the given strides, with every element outside the logical region set
/// to NaN, so a write outside it shows.
pub struct Stored {
    /// The buffer, NaN outside the matrix.
    pub data: Vec<f32>,
    /// Rows of the matrix.
    pub rows: usize,
    /// Columns of the matrix.
    pub cols: usize,
    /// Distance between rows, in floats.
    pub rs: usize,
    /// Distance between columns, in floats.
    pub cs: usize,
}

impl Stored {
    /// Lays out `rows x cols` row-major (`col_major == false`) or
    /// column-major, with `pad` unused elements after each row or column,
    /// and sets the elements, row by row, to the values of `fill`.
    pub fn new(
        rows: usize,
        cols: usize,
        col_major: bool,
        pad: usize,
        fill: impl FnMut() -> f32,
    ) -> Self {
        let (rs, cs) = if col_major {
            (1, rows + pad)
        } else {
            (cols + pad, 1)
        };
        let len = if col_major {
            (rows + pad) * cols.max(1)
        } else {
            (cols + pad) * rows.max(1)
        } + pad;
        let mut data = vec![f32::NAN; len];
        let mut fill = fill;
        for i in 0..rows {
            for j in 0..cols {
                data[i * rs + j * cs] = fill();
            }
        }
        Stored {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// Returns the matrix as a view.
    pub fn view(&self) -> MatRef<'_> {
        MatRef::new(&self.data, self.rows, self.cols, self.rs, self.cs).unwrap()
    }

    /// Returns the matrix as a mutable view.
    pub fn view_mut(&mut self) -> MatMut<'_> {
        MatMut::new(&mut self.data, self.rows, self.cols, self.rs, self.cs).unwrap()
    }

    /// Returns element `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }

    /// Sets element `(i, j)` to `x`.
    pub fn set(&mut self, i: usize, j: usize, x: f32) {
        self.data[i * self.rs + j * self.cs] = x;
    }

    /// Asserts that every element outside the logical region is still NaN.
    pub fn assert_poison_intact(&self, context: &str) {
        let mut inside = vec![false; self.data.len()];
        for i in 0..self.rows {
            for j in 0..self.cols {
                inside[i * self.rs + j * self.cs] = true;
            }
        }
        for (idx, (&x, &is_inside)) in self.data.iter().zip(&inside).enumerate() {
            assert!(
                is_inside || x.is_nan(),
                "{context}: element {idx} outside C was written ({x})"
            );
        }
    }
}
