//! Strided matrix views over `f32` slices.
//!
//! A view is a slice plus a shape and two strides counted in elements:
//! element `(i, j)` is `data[i * row_stride + j * col_stride]`. A row-major
//! matrix has `col_stride == 1`, a column-major one `row_stride == 1`, and
//! [`MatRef::t`] swaps the strides, so a transposed operand costs nothing.

use std::fmt;

/// A read-only strided matrix view.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// A mutable strided matrix view whose elements do not overlap.
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// A view that does not fit its slice, whose elements overlap, or that
/// has more elements than any `f32` buffer can hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutError {
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
    len: usize,
    problem: Problem,
}

/// The kind of problem a [`LayoutError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Problem {
    OutsideSlice,
    Overlapping,
    TooLarge,
}

/// The maximum number of elements of a view: as many `f32` as one
/// allocation can hold (`isize::MAX` bytes). A view with zero strides can
/// name more elements than its slice contains, but no copy of a larger
/// view could be stored.
pub(crate) const MAX_VIEW_ELEMENTS: usize = isize::MAX as usize / std::mem::size_of::<f32>();

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, c, rs, cs) = (self.rows, self.cols, self.row_stride, self.col_stride);
        match self.problem {
            Problem::Overlapping => write!(
                f,
                "mutable view {r}x{c} with strides ({rs}, {cs}) maps two elements to one address: \
                 use row stride >= cols * col stride or col stride >= rows * row stride"
            ),
            Problem::OutsideSlice => write!(
                f,
                "view {r}x{c} with strides ({rs}, {cs}) needs more than the slice's {} elements",
                self.len
            ),
            Problem::TooLarge => write!(
                f,
                "view {r}x{c} has more elements than an f32 buffer can hold ({MAX_VIEW_ELEMENTS}): \
                 no copy or product of it could be stored; use fewer rows or columns"
            ),
        }
    }
}

impl std::error::Error for LayoutError {}

/// Returns the number of elements a view spans, or `None` on overflow.
fn span(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    let last_row = (rows - 1).checked_mul(row_stride)?;
    let last_col = (cols - 1).checked_mul(col_stride)?;
    last_row.checked_add(last_col)?.checked_add(1)
}

fn check_fits(
    len: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
) -> Result<(), LayoutError> {
    let error = |problem| LayoutError {
        rows,
        cols,
        row_stride,
        col_stride,
        len,
        problem,
    };
    if rows
        .checked_mul(cols)
        .is_none_or(|count| count > MAX_VIEW_ELEMENTS)
    {
        return Err(error(Problem::TooLarge));
    }
    match span(rows, cols, row_stride, col_stride) {
        Some(needed) if needed <= len => Ok(()),
        _ => Err(error(Problem::OutsideSlice)),
    }
}

/// Reports whether distinct `(i, j)` always map to distinct offsets.
///
/// The test is sufficient, not necessary: one stride must step over the
/// whole extent of the other dimension.
fn is_injective(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    if rows == 0 || cols == 0 || (rows == 1 && cols == 1) {
        return true;
    }
    if rows <= 1 {
        return col_stride >= 1;
    }
    if cols <= 1 {
        return row_stride >= 1;
    }
    let row_extent = cols.checked_mul(col_stride);
    let col_extent = rows.checked_mul(row_stride);
    (col_stride >= 1 && row_extent.is_some_and(|e| row_stride >= e))
        || (row_stride >= 1 && col_extent.is_some_and(|e| col_stride >= e))
}

impl<'a> MatRef<'a> {
    /// Creates a view of `rows x cols` elements with the given strides.
    ///
    /// # Errors
    ///
    /// [`LayoutError`] if the last element lies beyond `data`, or if the
    /// view has more than `isize::MAX / 4` elements (zero strides can
    /// name that many), more than any `f32` buffer can hold.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, LayoutError> {
        check_fits(data.len(), rows, cols, row_stride, col_stride)?;
        Ok(MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// Creates a dense row-major view (`row_stride == cols`).
    ///
    /// # Errors
    ///
    /// [`LayoutError`] if `data` has fewer than `rows * cols` elements.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self, LayoutError> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// Creates a dense column-major view (`col_stride == rows`).
    ///
    /// # Errors
    ///
    /// [`LayoutError`] if `data` has fewer than `rows * cols` elements.
    pub fn col_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self, LayoutError> {
        Self::new(data, rows, cols, 1, rows)
    }

    /// Returns the transpose, sharing the same elements.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
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

    /// Returns the distance in elements between consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Returns the distance in elements between consecutive columns.
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// Returns the underlying slice.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Returns element `(i, j)`, or `None` outside the shape.
    pub fn get(&self, i: usize, j: usize) -> Option<f32> {
        (i < self.rows && j < self.cols)
            .then(|| self.data[i * self.row_stride + j * self.col_stride])
    }

    /// Returns the sub-view of rows `row0..row0 + rows` and columns
    /// `col0..col0 + cols`, or `None` if it leaves the shape.
    pub fn submatrix(&self, row0: usize, col0: usize, rows: usize, cols: usize) -> Option<Self> {
        if row0.checked_add(rows)? > self.rows || col0.checked_add(cols)? > self.cols {
            return None;
        }
        let offset = if rows == 0 || cols == 0 {
            0
        } else {
            row0 * self.row_stride + col0 * self.col_stride
        };
        Some(MatRef {
            data: &self.data[offset.min(self.data.len())..],
            rows,
            cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        })
    }
}

impl fmt::Debug for MatRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MatRef({}x{}, strides ({}, {}))",
            self.rows, self.cols, self.row_stride, self.col_stride
        )
    }
}

impl<'a> MatMut<'a> {
    /// Creates a mutable view of `rows x cols` elements with the given
    /// strides.
    ///
    /// # Errors
    ///
    /// [`LayoutError`] if the last element lies beyond `data` or if two
    /// elements could share an address (see [`LayoutError`]'s message for
    /// the accepted stride patterns).
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, LayoutError> {
        check_fits(data.len(), rows, cols, row_stride, col_stride)?;
        if !is_injective(rows, cols, row_stride, col_stride) {
            return Err(LayoutError {
                rows,
                cols,
                row_stride,
                col_stride,
                len: data.len(),
                problem: Problem::Overlapping,
            });
        }
        Ok(MatMut {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// Creates a dense row-major mutable view.
    ///
    /// # Errors
    ///
    /// [`LayoutError`] if `data` has fewer than `rows * cols` elements.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self, LayoutError> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// Creates a dense column-major mutable view.
    ///
    /// # Errors
    ///
    /// [`LayoutError`] if `data` has fewer than `rows * cols` elements.
    pub fn col_major(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self, LayoutError> {
        Self::new(data, rows, cols, 1, rows)
    }

    /// Returns the transpose, sharing the same elements.
    pub fn t(self) -> Self {
        MatMut {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Reborrows the view for a shorter lifetime.
    pub fn rb(&mut self) -> MatMut<'_> {
        MatMut {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        }
    }

    /// Returns a read-only view of the same elements.
    pub fn as_ref(&self) -> MatRef<'_> {
        MatRef {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
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

    /// Returns the distance in elements between consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Returns the distance in elements between consecutive columns.
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// Returns the underlying slice.
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.data
    }
}

impl fmt::Debug for MatMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MatMut({}x{}, strides ({}, {}))",
            self.rows, self.cols, self.row_stride, self.col_stride
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_beyond_slice_rejected() {
        let data = [0.0f32; 5];
        assert!(MatRef::row_major(&data, 2, 3).is_err());
        assert!(MatRef::row_major(&data, 1, 5).is_ok());
        assert!(MatRef::new(&data, 2, 2, 3, 1).is_ok());
        assert!(MatRef::new(&data, 2, 2, 4, 1).is_err());
    }

    #[test]
    fn empty_view_accepts_any_slice() {
        assert!(MatRef::new(&[], 0, 7, 100, 1).is_ok());
        assert!(MatRef::new(&[], 7, 0, 1, 100).is_ok());
        assert!(MatMut::row_major(&mut [], 3, 0).is_ok());
        assert!(MatMut::new(&mut [], 0, 3, 0, 0).is_ok());
    }

    #[test]
    fn overlapping_mutable_view_rejected() {
        let mut data = [0.0f32; 16];
        let err = MatMut::new(&mut data, 3, 3, 1, 1).unwrap_err();
        assert!(err.to_string().contains("maps two elements"), "{err}");
        assert!(MatMut::new(&mut data, 3, 3, 3, 1).is_ok());
        assert!(MatMut::new(&mut data, 3, 3, 1, 3).is_ok());
        assert!(MatMut::new(&mut data, 3, 3, 0, 5).is_err());
    }

    /// Zero strides let a one-element slice name any number of elements,
    /// but no copy of more than `isize::MAX` bytes could be stored.
    #[test]
    fn views_larger_than_any_buffer_rejected() {
        let single = [1.0f32];
        let huge = MatRef::new(&single, 1 << 33, 1 << 33, 0, 0).unwrap_err();
        assert!(huge.to_string().contains("more elements than"), "{huge}");
        let max = MAX_VIEW_ELEMENTS;
        assert!(MatRef::new(&single, max, 1, 0, 0).is_ok());
        assert!(MatRef::new(&single, max / 2 + 1, 2, 0, 0).is_err());
        assert!(MatRef::new(&single, 1, max + 1, 0, 0).is_err());
        assert!(MatMut::new(&mut [0.0], 1, usize::MAX, 0, 0).is_err());
    }

    #[test]
    fn stride_overflow_rejected() {
        let data = [0.0f32; 4];
        assert!(MatRef::new(&data, 2, 2, usize::MAX, 1).is_err());
    }

    #[test]
    fn transpose_swaps_strides() {
        let data: Vec<f32> = (0..6).map(|x| x as f32).collect();
        let a = MatRef::row_major(&data, 2, 3).unwrap();
        let t = a.t();
        assert_eq!((t.rows(), t.cols()), (3, 2));
        assert_eq!(t.get(2, 1), Some(5.0));
        assert_eq!(t.get(3, 0), None);
    }
}
