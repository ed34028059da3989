//! The owned row-major matrix.

use crate::TensorError;
use heft_kernels::gemm::{MatMut, MatRef};
use heft_kernels::AlignedVec;
use std::fmt;

/// An owned, dense, row-major `f32` matrix whose storage starts on a
/// 64-byte boundary.
///
/// Element `(i, j)` is `as_slice()[i * cols + j]`. Shapes with zero rows or
/// zero columns are valid and hold no elements.
#[derive(Clone, PartialEq)]
pub struct Matrix {
    data: AlignedVec,
    rows: usize,
    cols: usize,
}

/// Returns the bytes of storage for `len` elements, rounded up to whole
/// 64-byte lines of 16 `f32` each as [`AlignedVec`] allocates them.
pub(crate) fn storage_bytes(len: usize) -> u128 {
    (len as u128).div_ceil(16) * 64
}

/// Returns `rows * cols`, or [`TensorError::TooLarge`] when it overflows
/// or its [`storage_bytes`] exceed `isize::MAX`, the largest allocation
/// Rust permits.
pub(crate) fn element_count(
    op: &'static str,
    rows: usize,
    cols: usize,
) -> Result<usize, TensorError> {
    let too_large = TensorError::TooLarge {
        op,
        shape: (rows, cols),
    };
    let len = rows.checked_mul(cols).ok_or(too_large.clone())?;
    if storage_bytes(len) > isize::MAX as u128 {
        return Err(too_large);
    }
    Ok(len)
}

impl Matrix {
    /// Creates a `rows x cols` matrix of zeros.
    ///
    /// # Errors
    ///
    /// [`TensorError::TooLarge`] if `rows * cols` overflows `usize` or is
    /// beyond the largest possible allocation.
    pub fn zeros(rows: usize, cols: usize) -> Result<Self, TensorError> {
        Self::zeros_for("zeros", rows, cols)
    }

    /// Creates a `rows x cols` matrix of zeros for the operation `op`, which
    /// an error names.
    pub(crate) fn zeros_for(
        op: &'static str,
        rows: usize,
        cols: usize,
    ) -> Result<Self, TensorError> {
        let len = element_count(op, rows, cols)?;
        Ok(Matrix {
            data: AlignedVec::zeros(len),
            rows,
            cols,
        })
    }

    /// Creates a `rows x cols` matrix from row-major `data`, copying it into
    /// aligned storage.
    ///
    /// # Errors
    ///
    /// [`TensorError::TooLarge`] if `rows * cols` overflows `usize`, and
    /// [`TensorError::DataLength`] if `data.len() != rows * cols`.
    pub fn from_slice(rows: usize, cols: usize, data: &[f32]) -> Result<Self, TensorError> {
        Self::check_data("from_slice", rows, cols, data.len())?;
        Ok(Matrix {
            data: AlignedVec::from_slice(data),
            rows,
            cols,
        })
    }

    /// Creates a `rows x cols` matrix from row-major `data`.
    ///
    /// The elements are copied, because a `Vec<f32>` is only 4-byte aligned.
    ///
    /// # Errors
    ///
    /// [`TensorError::TooLarge`] if `rows * cols` overflows `usize`, and
    /// [`TensorError::DataLength`] if `data.len() != rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, TensorError> {
        Self::check_data("from_vec", rows, cols, data.len())?;
        Ok(Matrix {
            data: AlignedVec::from_slice(&data),
            rows,
            cols,
        })
    }

    /// Creates a `rows x cols` matrix with element `(i, j)` set to
    /// `f(i, j)`, calling `f` in row-major order.
    ///
    /// # Errors
    ///
    /// [`TensorError::TooLarge`] if `rows * cols` overflows `usize` or is
    /// beyond the largest possible allocation.
    pub fn from_fn(
        rows: usize,
        cols: usize,
        f: impl FnMut(usize, usize) -> f32,
    ) -> Result<Self, TensorError> {
        Self::from_fn_for("from_fn", rows, cols, f)
    }

    /// Runs [`Matrix::from_fn`] for the operation `op`, which an error names.
    fn from_fn_for(
        op: &'static str,
        rows: usize,
        cols: usize,
        mut f: impl FnMut(usize, usize) -> f32,
    ) -> Result<Self, TensorError> {
        let mut m = Self::zeros_for(op, rows, cols)?;
        if cols > 0 {
            for (i, row) in m.data.as_mut_slice().chunks_exact_mut(cols).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = f(i, j);
                }
            }
        }
        Ok(m)
    }

    /// Copies any strided view into a new dense row-major matrix.
    ///
    /// # Errors
    ///
    /// [`TensorError::TooLarge`] if the view's element count overflows
    /// `usize` (possible only with a zero stride).
    pub fn from_view(view: MatRef<'_>) -> Result<Self, TensorError> {
        let (rows, cols) = (view.rows(), view.cols());
        let (rs, cs, data) = (view.row_stride(), view.col_stride(), view.data());
        Self::from_fn_for("from_view", rows, cols, |i, j| data[i * rs + j * cs])
    }

    fn check_data(
        op: &'static str,
        rows: usize,
        cols: usize,
        len: usize,
    ) -> Result<(), TensorError> {
        match rows.checked_mul(cols) {
            Some(count) if count == len => Ok(()),
            Some(_) => Err(TensorError::DataLength {
                op,
                shape: (rows, cols),
                len,
            }),
            None => Err(TensorError::TooLarge {
                op,
                shape: (rows, cols),
            }),
        }
    }

    /// Returns the number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Returns the number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Returns `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Returns the number of elements, `rows * cols`.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Reports whether the matrix has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Returns the elements in row-major order.
    pub fn as_slice(&self) -> &[f32] {
        self.data.as_slice()
    }

    /// Returns the elements in row-major order, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        self.data.as_mut_slice()
    }

    /// Returns row `i`, or `None` if `i >= rows`.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        (i < self.rows).then(|| &self.as_slice()[i * self.cols..(i + 1) * self.cols])
    }

    /// Returns row `i` mutably, or `None` if `i >= rows`.
    pub fn row_mut(&mut self, i: usize) -> Option<&mut [f32]> {
        let cols = self.cols;
        (i < self.rows).then(move || &mut self.as_mut_slice()[i * cols..(i + 1) * cols])
    }

    /// Returns element `(i, j)`, or `None` outside the shape.
    pub fn get(&self, i: usize, j: usize) -> Option<f32> {
        (i < self.rows && j < self.cols).then(|| self.as_slice()[i * self.cols + j])
    }

    /// Returns a mutable reference to element `(i, j)`, or `None` outside
    /// the shape.
    pub fn get_mut(&mut self, i: usize, j: usize) -> Option<&mut f32> {
        let cols = self.cols;
        (i < self.rows && j < cols).then(move || &mut self.as_mut_slice()[i * cols + j])
    }

    /// Returns a read-only view of the whole matrix.
    pub fn view(&self) -> MatRef<'_> {
        // A row stride of at least 1 keeps views of `n x 0` matrices valid
        // for `MatMut`, which rejects a zero row stride; no element is
        // addressed through it.
        MatRef::new(self.as_slice(), self.rows, self.cols, self.cols.max(1), 1)
            .expect("a Matrix contains exactly rows * cols elements")
    }

    /// Returns a mutable view of the whole matrix.
    pub fn view_mut(&mut self) -> MatMut<'_> {
        let (rows, cols) = (self.rows, self.cols);
        MatMut::new(self.as_mut_slice(), rows, cols, cols.max(1), 1)
            .expect("a Matrix contains exactly rows * cols elements")
    }

    /// Returns the transpose as a new row-major matrix.
    ///
    /// Use `view().t()` instead to pass a transposed operand to
    /// [`matmul`](crate::matmul) without copying.
    pub fn transpose(&self) -> Matrix {
        const TILE: usize = 32;
        let (rows, cols) = (self.rows, self.cols);
        let mut t = Matrix {
            data: AlignedVec::zeros(self.len()),
            rows: cols,
            cols: rows,
        };
        let src = self.as_slice();
        let dst = t.data.as_mut_slice();
        // Square tiles keep both the rows read and the rows written in cache.
        for i0 in (0..rows).step_by(TILE) {
            for j0 in (0..cols).step_by(TILE) {
                for i in i0..(i0 + TILE).min(rows) {
                    for j in j0..(j0 + TILE).min(cols) {
                        dst[j * rows + i] = src[i * cols + j];
                    }
                }
            }
        }
        t
    }
}

impl fmt::Debug for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matrix {}x{} ", self.rows, self.cols)?;
        if self.cols == 0 {
            return f.write_str("[]");
        }
        f.debug_list()
            .entries(self.as_slice().chunks_exact(self.cols))
            .finish()
    }
}
