//! Shape-checked operations over the heft-kernels GEMM and element-wise
//! kernels.

use crate::matrix::Matrix;
use crate::TensorError;
use heft_kernels::elementwise as ew;
use heft_kernels::gemm::{Epilogue, Gemm, MatMut, MatRef};

fn shape_of(m: &MatRef<'_>) -> (usize, usize) {
    (m.rows(), m.cols())
}

#[cold]
#[inline(never)]
fn shape_error(
    op: &'static str,
    left: (&'static str, (usize, usize)),
    right: (&'static str, (usize, usize)),
    problem: &'static str,
) -> TensorError {
    TensorError::Shape {
        op,
        left_name: left.0,
        left: left.1,
        right_name: right.0,
        right: right.1,
        problem,
    }
}

fn check_inner(op: &'static str, a: &MatRef<'_>, b: &MatRef<'_>) -> Result<(), TensorError> {
    if a.cols() == b.rows() {
        Ok(())
    } else {
        Err(shape_error(
            op,
            ("A", shape_of(a)),
            ("B", shape_of(b)),
            "inner dimensions differ",
        ))
    }
}

/// Returns the product `A * B` as a new matrix.
///
/// Pass `m.view().t()` for a transposed operand; the GEMM reads it through
/// its strides without copying.
///
/// # Errors
///
/// [`TensorError::Shape`] if `A.cols() != B.rows()`, and
/// [`TensorError::TooLarge`] if the product cannot be allocated (possible
/// only with zero strides, which let small slices stand for huge operands).
pub fn matmul(a: MatRef<'_>, b: MatRef<'_>) -> Result<Matrix, TensorError> {
    check_inner("matmul", &a, &b)?;
    let mut c = Matrix::zeros_for("matmul", a.rows(), b.cols())?;
    Gemm::new().run(1.0, a, b, 0.0, c.view_mut())?;
    Ok(c)
}

/// Computes `C <- alpha * A * B + beta * C` into an existing view.
///
/// With `beta == 0` the old contents of C are never read, so NaN in C is
/// overwritten.
///
/// # Errors
///
/// [`TensorError::Shape`] if `A.cols() != B.rows()` or C is not
/// `A.rows() x B.cols()`.
pub fn matmul_into(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
) -> Result<(), TensorError> {
    matmul_into_with(alpha, a, b, beta, c, None, false)
}

/// Computes `C <- alpha * A * B + beta * C`, then adds `bias[j]` to column
/// `j` if a bias is given, then applies ReLU (`max(x, 0)`, NaN kept) if
/// `relu` is set, in one pass over C.
///
/// # Errors
///
/// [`TensorError::Shape`] for shapes that do not chain and
/// [`TensorError::VectorLength`] for a bias whose length is not C's column
/// count.
pub fn matmul_into_with(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    bias: Option<&[f32]>,
    relu: bool,
) -> Result<(), TensorError> {
    const OP: &str = "matmul_into";
    check_inner(OP, &a, &b)?;
    let product = (a.rows(), b.cols());
    let c_shape = (c.rows(), c.cols());
    if product != c_shape {
        return Err(shape_error(
            OP,
            ("A * B", product),
            ("C", c_shape),
            "the output must have the product's shape",
        ));
    }
    if let Some(bias) = bias {
        if bias.len() != c_shape.1 {
            return Err(TensorError::VectorLength {
                op: OP,
                what: "bias",
                shape: c_shape,
                expected: c_shape.1,
                actual: bias.len(),
            });
        }
    }
    Gemm::new().run_with(alpha, a, b, beta, c, Epilogue { bias, relu })?;
    Ok(())
}

/// Element-wise operations, all shape-checked.
impl Matrix {
    fn check_same_shape(&self, op: &'static str, other: &Matrix) -> Result<(), TensorError> {
        if self.shape() == other.shape() {
            Ok(())
        } else {
            Err(shape_error(
                op,
                ("the left operand", self.shape()),
                ("the right operand", other.shape()),
                "element-wise operands must have the same shape",
            ))
        }
    }

    /// Returns `self + other`, element by element.
    ///
    /// # Errors
    ///
    /// [`TensorError::Shape`] if the shapes differ.
    pub fn add(&self, other: &Matrix) -> Result<Matrix, TensorError> {
        self.check_same_shape("add", other)?;
        let mut out = self.clone();
        ew::add_assign(out.as_mut_slice(), other.as_slice())?;
        Ok(out)
    }

    /// Adds `other` to `self`, element by element.
    ///
    /// # Errors
    ///
    /// [`TensorError::Shape`] if the shapes differ.
    pub fn add_assign(&mut self, other: &Matrix) -> Result<(), TensorError> {
        self.check_same_shape("add_assign", other)?;
        ew::add_assign(self.as_mut_slice(), other.as_slice())?;
        Ok(())
    }

    /// Returns `self - other`, element by element.
    ///
    /// # Errors
    ///
    /// [`TensorError::Shape`] if the shapes differ.
    pub fn sub(&self, other: &Matrix) -> Result<Matrix, TensorError> {
        self.check_same_shape("sub", other)?;
        let mut out = self.clone();
        ew::sub_assign(out.as_mut_slice(), other.as_slice())?;
        Ok(out)
    }

    /// Subtracts `other` from `self`, element by element.
    ///
    /// # Errors
    ///
    /// [`TensorError::Shape`] if the shapes differ.
    pub fn sub_assign(&mut self, other: &Matrix) -> Result<(), TensorError> {
        self.check_same_shape("sub_assign", other)?;
        ew::sub_assign(self.as_mut_slice(), other.as_slice())?;
        Ok(())
    }

    /// Returns the element-wise (Hadamard) product.
    ///
    /// # Errors
    ///
    /// [`TensorError::Shape`] if the shapes differ.
    pub fn mul(&self, other: &Matrix) -> Result<Matrix, TensorError> {
        self.check_same_shape("mul", other)?;
        let mut out = self.clone();
        ew::mul_assign(out.as_mut_slice(), other.as_slice())?;
        Ok(out)
    }

    /// Multiplies `self` by `other`, element by element.
    ///
    /// # Errors
    ///
    /// [`TensorError::Shape`] if the shapes differ.
    pub fn mul_assign(&mut self, other: &Matrix) -> Result<(), TensorError> {
        self.check_same_shape("mul_assign", other)?;
        ew::mul_assign(self.as_mut_slice(), other.as_slice())?;
        Ok(())
    }

    /// Computes `self <- self + alpha * x`.
    ///
    /// # Errors
    ///
    /// [`TensorError::Shape`] if the shapes differ.
    pub fn axpy(&mut self, alpha: f32, x: &Matrix) -> Result<(), TensorError> {
        self.check_same_shape("axpy", x)?;
        ew::axpy(alpha, x.as_slice(), self.as_mut_slice())?;
        Ok(())
    }

    /// Multiplies every element by `alpha`.
    pub fn scale(&mut self, alpha: f32) {
        ew::scale(alpha, self.as_mut_slice());
    }

    /// Returns `alpha * self`.
    pub fn scaled(&self, alpha: f32) -> Matrix {
        let mut out = self.clone();
        out.scale(alpha);
        out
    }

    /// Returns `max(x, 0)` of every element; NaN and `-0.0` pass through
    /// (see [`heft_kernels::elementwise::relu`]).
    pub fn relu(&self) -> Matrix {
        let mut out = self.clone();
        out.relu_in_place();
        out
    }

    /// Applies ReLU in place.
    pub fn relu_in_place(&mut self) {
        ew::relu_in_place(self.as_mut_slice());
    }

    /// Returns the gradient through a ReLU whose input was `self`:
    /// `grad_out` where `self > 0`, 0 elsewhere (including NaN inputs).
    ///
    /// # Errors
    ///
    /// [`TensorError::Shape`] if `grad_out` has another shape.
    pub fn relu_backward(&self, grad_out: &Matrix) -> Result<Matrix, TensorError> {
        self.check_same_shape("relu_backward", grad_out)?;
        let mut grad = grad_out.clone();
        ew::relu_backward_in_place(self.as_slice(), grad.as_mut_slice())?;
        Ok(grad)
    }

    /// Returns `tanh` of every element; see
    /// [`heft_kernels::elementwise::tanh`] for the error bound.
    pub fn tanh(&self) -> Matrix {
        let mut out = self.clone();
        out.tanh_in_place();
        out
    }

    /// Applies `tanh` in place.
    pub fn tanh_in_place(&mut self) {
        ew::tanh_in_place(self.as_mut_slice());
    }

    /// Returns the logistic sigmoid of every element; see
    /// [`heft_kernels::elementwise::sigmoid`] for the error bound.
    pub fn sigmoid(&self) -> Matrix {
        let mut out = self.clone();
        out.sigmoid_in_place();
        out
    }

    /// Applies the logistic sigmoid in place.
    pub fn sigmoid_in_place(&mut self) {
        ew::sigmoid_in_place(self.as_mut_slice());
    }

    /// Returns the softmax of each row, computed stably; see
    /// [`heft_kernels::elementwise::softmax_rows_in_place`] for rows with
    /// NaN or infinities.
    pub fn softmax_rows(&self) -> Matrix {
        let mut out = self.clone();
        out.softmax_rows_in_place();
        out
    }

    /// Replaces each row by its softmax.
    pub fn softmax_rows_in_place(&mut self) {
        let cols = self.cols();
        // The data of a Matrix always splits into whole rows.
        let split = ew::softmax_rows_in_place(self.as_mut_slice(), cols);
        debug_assert!(split.is_ok(), "{split:?}");
    }

    /// Returns `ln(sum(exp(row)))` for each row, computed stably; `-inf`
    /// for every row of a matrix with zero columns.
    pub fn logsumexp_rows(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.rows()];
        let split = ew::logsumexp_rows(self.as_slice(), self.cols(), &mut out);
        debug_assert!(split.is_ok(), "{split:?}");
        out
    }

    /// Returns the index of the maximum of each row: ties go to the lowest
    /// index and the first NaN wins, as `torch.argmax` does.
    ///
    /// # Errors
    ///
    /// [`TensorError::EmptyRows`] if the matrix has rows but zero columns.
    pub fn argmax_rows(&self) -> Result<Vec<usize>, TensorError> {
        if self.cols() == 0 && self.rows() > 0 {
            return Err(TensorError::EmptyRows {
                op: "argmax_rows",
                shape: self.shape(),
            });
        }
        let mut out = vec![0; self.rows()];
        ew::argmax_rows(self.as_slice(), self.cols(), &mut out)?;
        Ok(out)
    }

    /// Returns the sum of all elements, in the fixed order documented in
    /// [`heft_kernels::elementwise::sum`].
    pub fn sum(&self) -> f32 {
        ew::sum(self.as_slice())
    }
}
