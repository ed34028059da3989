//! Tests of heft-tensor through its public API, against naive f64
//! computations.

use heft_tensor::{matmul, matmul_into, matmul_into_with, MatMut, MatRef, Matrix, TensorError};

/// A small xorshift generator, so the tests need no dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let unit = ((self.0 >> 40) as f32) / (1u32 << 24) as f32;
        lo + (hi - lo) * unit
    }

    fn matrix(&mut self, rows: usize, cols: usize) -> Matrix {
        Matrix::from_fn(rows, cols, |_, _| self.uniform(-1.0, 1.0)).unwrap()
    }
}

/// `alpha * op(A) * op(B) + beta * C` in f64, and the sum of `|terms|`
/// per element for the error bound.
fn naive_gemm(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: &Matrix,
) -> (Vec<f64>, Vec<f64>) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut value = vec![0.0; m * n];
    let mut magnitude = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            let mut s_abs = 0.0f64;
            for p in 0..k {
                let t = a.get(i, p).unwrap() as f64 * b.get(p, j).unwrap() as f64;
                s += t;
                s_abs += t.abs();
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c.get(i, j).unwrap() as f64
            };
            value[i * n + j] = alpha as f64 * s + old;
            magnitude[i * n + j] = (alpha as f64).abs() * s_abs + old.abs();
        }
    }
    (value, magnitude)
}

/// Checks `got` against the f64 result with a bound of `(k + 2)` roundings
/// of the magnitude of the terms.
fn assert_close(got: &Matrix, expected: &(Vec<f64>, Vec<f64>), k: usize, what: &str) {
    let tol_per_unit = (k + 2) as f64 * f32::EPSILON as f64;
    for (idx, (&g, (&e, &mag))) in got
        .as_slice()
        .iter()
        .zip(expected.0.iter().zip(&expected.1))
        .enumerate()
    {
        let err = (g as f64 - e).abs();
        assert!(
            err <= tol_per_unit * mag + 1e-30,
            "{what}: element {idx} is {g}, expected {e}"
        );
    }
}

const DIMS: [usize; 9] = [0, 1, 2, 3, 7, 8, 17, 33, 70];

#[test]
fn matmul_against_f64_with_transposes() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for &m in &DIMS {
        for &k in &DIMS {
            for &n in &DIMS {
                let a = rng.matrix(m, k);
                let b = rng.matrix(k, n);
                let at = a.transpose();
                let bt = b.transpose();
                let zero = Matrix::zeros(m, n).unwrap();
                let expected = naive_gemm(1.0, a.view(), b.view(), 0.0, &zero);
                let cases = [
                    ("A B", a.view(), b.view()),
                    ("A^T^T B", at.view().t(), b.view()),
                    ("A B^T^T", a.view(), bt.view().t()),
                    ("A^T^T B^T^T", at.view().t(), bt.view().t()),
                ];
                for (name, av, bv) in cases {
                    let c = matmul(av, bv).unwrap();
                    assert_eq!(c.shape(), (m, n), "{name} {m}x{k}x{n}");
                    assert_close(&c, &expected, k, &format!("{name} {m}x{k}x{n}"));
                }
            }
        }
    }
}

#[test]
fn matmul_into_alpha_beta_and_padded_output() {
    let mut rng = Rng(3);
    for (m, k, n) in [(5, 9, 11), (1, 1, 1), (16, 3, 17), (4, 0, 6)] {
        let a = rng.matrix(m, k);
        let b = rng.matrix(k, n);
        for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25), (0.0, -1.5)] {
            let c0 = rng.matrix(m, n);
            let expected = naive_gemm(alpha, a.view(), b.view(), beta, &c0);

            // C lives in a buffer with 3 padding columns per row, poisoned
            // with NaN; the padding must stay NaN.
            let stride = n + 3;
            let mut buffer = vec![f32::NAN; m * stride];
            for i in 0..m {
                buffer[i * stride..i * stride + n].copy_from_slice(c0.row(i).unwrap());
            }
            let c = MatMut::new(&mut buffer, m, n, stride, 1).unwrap();
            matmul_into(alpha, a.view(), b.view(), beta, c).unwrap();

            let got = Matrix::from_view(MatRef::new(&buffer, m, n, stride, 1).unwrap()).unwrap();
            assert_close(
                &got,
                &expected,
                k,
                &format!("{m}x{k}x{n} alpha {alpha} beta {beta}"),
            );
            for i in 0..m {
                for j in n..stride {
                    assert!(
                        buffer[i * stride + j].is_nan(),
                        "padding ({i}, {j}) written"
                    );
                }
            }
        }
    }
}

#[test]
fn matmul_into_beta_zero_ignores_nan_in_output() {
    let a = Matrix::from_slice(2, 2, &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let b = Matrix::from_slice(2, 2, &[1.0, 0.0, 0.0, 1.0]).unwrap();
    let mut c = Matrix::from_slice(2, 2, &[f32::NAN; 4]).unwrap();
    matmul_into(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap();
    assert_eq!(c.as_slice(), &[1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn matmul_bias_and_relu_epilogue() {
    let mut rng = Rng(5);
    let (m, k, n) = (7, 13, 9);
    let a = rng.matrix(m, k);
    let b = rng.matrix(k, n);
    let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 1.0).collect();
    let mut c = Matrix::zeros(m, n).unwrap();
    matmul_into_with(
        1.0,
        a.view(),
        b.view(),
        0.0,
        c.view_mut(),
        Some(&bias),
        true,
    )
    .unwrap();

    let plain = matmul(a.view(), b.view()).unwrap();
    for i in 0..m {
        for (j, &bias_j) in bias.iter().enumerate() {
            let expected = (plain.get(i, j).unwrap() + bias_j).max(0.0);
            let got = c.get(i, j).unwrap();
            assert!(
                (got - expected).abs() <= 1e-6,
                "({i}, {j}): {got} vs {expected}"
            );
        }
    }
}

#[test]
fn matmul_shape_errors_name_both_shapes() {
    let a = Matrix::zeros(3, 4).unwrap();
    let b = Matrix::zeros(5, 6).unwrap();
    let err = matmul(a.view(), b.view()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul: A is 3x4 but B is 5x6: inner dimensions differ"
    );

    let b = Matrix::zeros(4, 6).unwrap();
    let mut c = Matrix::zeros(2, 6).unwrap();
    let err = matmul_into(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul_into: A * B is 3x6 but C is 2x6: the output must have the product's shape"
    );
    assert_eq!(c.as_slice(), &[0.0; 12], "a rejected call must not write");

    let mut c = Matrix::zeros(3, 6).unwrap();
    let err = matmul_into_with(
        1.0,
        a.view(),
        b.view(),
        0.0,
        c.view_mut(),
        Some(&[0.0; 5]),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TensorError::VectorLength {
            op: "matmul_into",
            what: "bias",
            shape: (3, 6),
            expected: 6,
            actual: 5
        }
    );
    assert_eq!(
        err.to_string(),
        "matmul_into: bias has 5 elements but the matrix is 3x6, so it needs 6"
    );
}

#[test]
fn empty_shapes() {
    for (m, k, n) in [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0)] {
        let a = Matrix::zeros(m, k).unwrap();
        let b = Matrix::zeros(k, n).unwrap();
        let c = matmul(a.view(), b.view()).unwrap();
        assert_eq!(c.shape(), (m, n));
        assert!(c.as_slice().iter().all(|&v| v == 0.0), "{m}x{k}x{n}: {c:?}");
        assert_eq!(a.transpose().shape(), (k, m));
    }

    let empty_rows = Matrix::zeros(0, 5).unwrap();
    assert!(empty_rows.is_empty());
    assert_eq!(empty_rows.softmax_rows().shape(), (0, 5));
    assert_eq!(empty_rows.logsumexp_rows(), Vec::<f32>::new());
    assert_eq!(empty_rows.argmax_rows().unwrap(), Vec::<usize>::new());
    assert_eq!(empty_rows.sum(), 0.0);
    assert_eq!(empty_rows.row(0), None);

    let empty_cols = Matrix::zeros(3, 0).unwrap();
    assert_eq!(empty_cols.row(2), Some(&[][..]));
    assert_eq!(empty_cols.softmax_rows().shape(), (3, 0));
    assert_eq!(empty_cols.logsumexp_rows(), vec![f32::NEG_INFINITY; 3]);
    let err = empty_cols.argmax_rows().unwrap_err();
    assert_eq!(
        err.to_string(),
        "argmax_rows: the matrix is 3x0, so its rows have no elements and no maximum"
    );
    assert_eq!(empty_cols.add(&empty_cols).unwrap().shape(), (3, 0));
}

#[test]
fn constructors_and_accessors() {
    let m = Matrix::from_fn(3, 5, |i, j| (10 * i + j) as f32).unwrap();
    assert_eq!(m.shape(), (3, 5));
    assert_eq!(m.as_slice().as_ptr() as usize % 64, 0, "storage alignment");
    assert_eq!(m.get(2, 4), Some(24.0));
    assert_eq!(m.get(3, 0), None);
    assert_eq!(m.get(0, 5), None);
    assert_eq!(m.row(1), Some(&[10.0, 11.0, 12.0, 13.0, 14.0][..]));
    assert_eq!(m.row(3), None);
    assert_eq!(Matrix::from_vec(3, 5, m.as_slice().to_vec()).unwrap(), m);

    let mut m2 = m.clone();
    *m2.get_mut(1, 1).unwrap() = -1.0;
    m2.row_mut(2).unwrap()[0] = -2.0;
    assert_eq!(m2.get(1, 1), Some(-1.0));
    assert_eq!(m2.get(2, 0), Some(-2.0));
    assert!(m2.get_mut(0, 5).is_none());

    let err = Matrix::from_slice(2, 3, &[0.0; 5]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "from_slice: a 2x3 matrix needs 6 elements but the data has 5"
    );
    let err = Matrix::zeros(usize::MAX, 2).unwrap_err();
    assert_eq!(
        err,
        TensorError::TooLarge {
            op: "zeros",
            shape: (usize::MAX, 2)
        }
    );
    assert!(Matrix::from_vec(usize::MAX, 2, vec![]).is_err());
    // No overflow in rows * cols, but more bytes than any allocation allows.
    let err = Matrix::zeros(1 << 61, 1).unwrap_err();
    assert_eq!(
        err,
        TensorError::TooLarge {
            op: "zeros",
            shape: (1 << 61, 1)
        }
    );
}

#[test]
fn too_large_errors_name_operation_and_reason() {
    const MAX: usize = usize::MAX;
    let too_large = |op: &'static str, rows: usize, cols: usize| TensorError::TooLarge {
        op,
        shape: (rows, cols),
    };

    // rows * cols overflows usize.
    let cases = [
        (
            Matrix::from_fn(MAX, 3, |_, _| 0.0).unwrap_err(),
            too_large("from_fn", MAX, 3),
            "from_fn: a 18446744073709551615x3 matrix has more elements than usize can count",
        ),
        (
            Matrix::from_slice(MAX, 2, &[1.0; 5]).unwrap_err(),
            too_large("from_slice", MAX, 2),
            "from_slice: a 18446744073709551615x2 matrix has more elements than usize can count",
        ),
        (
            Matrix::from_vec(MAX, 2, vec![]).unwrap_err(),
            too_large("from_vec", MAX, 2),
            "from_vec: a 18446744073709551615x2 matrix has more elements than usize can count",
        ),
    ];
    for (err, expected, message) in cases {
        assert_eq!(err, expected);
        assert_eq!(err.to_string(), message);
    }

    // The count fits, but 2^61 elements of 4 bytes are 2^63 bytes, one more
    // than isize::MAX.
    let err = Matrix::zeros(1 << 61, 1).unwrap_err();
    assert_eq!(err, too_large("zeros", 1 << 61, 1));
    assert_eq!(
        err.to_string(),
        "zeros: a 2305843009213693952x1 matrix has 2305843009213693952 elements, whose \
         9223372036854775808 bytes of storage exceed isize::MAX (9223372036854775807), the \
         largest allocation Rust permits"
    );
    // 2^61 - 1 elements are 2^63 - 4 bytes, but storage comes in 64-byte
    // lines, so it rounds up to 2^63 bytes.
    let err = Matrix::from_fn((1 << 61) - 1, 1, |_, _| 0.0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "from_fn: a 2305843009213693951x1 matrix has 2305843009213693951 elements, whose \
         9223372036854775808 bytes of storage exceed isize::MAX (9223372036854775807), the \
         largest allocation Rust permits"
    );

    // Zero strides let one element stand for a view of up to 2^61 - 1
    // elements (views with more are rejected when they are made).
    let single = [1.0f32];
    assert!(MatRef::new(&single, MAX, 2, 0, 0).is_err());
    let tall = (1 << 61) - 1;
    let huge = MatRef::new(&single, tall, 1, 0, 0).unwrap();
    assert_eq!(
        Matrix::from_view(huge).unwrap_err(),
        too_large("from_view", tall, 1)
    );
    let row = MatRef::new(&single, 1, 2, 0, 0).unwrap();
    assert_eq!(matmul(huge, row).unwrap_err(), too_large("matmul", tall, 2));

    // A DataLength built by hand with an overflowing shape names no
    // saturated count.
    let err = TensorError::DataLength {
        op: "from_slice",
        shape: (MAX, 2),
        len: 5,
    };
    assert_eq!(
        err.to_string(),
        "from_slice: a 18446744073709551615x2 matrix has more elements than usize can count, so \
         the data (5 elements) cannot fill it"
    );
}

#[test]
fn transpose_and_strided_views() {
    for (rows, cols) in [(1, 1), (2, 3), (33, 65), (64, 31), (0, 4), (4, 0)] {
        let m = Matrix::from_fn(rows, cols, |i, j| (i * 1000 + j) as f32).unwrap();
        let t = m.transpose();
        assert_eq!(t.shape(), (cols, rows));
        for i in 0..rows {
            for j in 0..cols {
                assert_eq!(t.get(j, i), m.get(i, j), "{rows}x{cols} at ({i}, {j})");
            }
        }
        assert_eq!(Matrix::from_view(m.view().t()).unwrap(), t);
    }

    let m = Matrix::from_fn(6, 7, |i, j| (i * 10 + j) as f32).unwrap();
    let view = m.view();
    let sub = view.submatrix(2, 3, 3, 2).unwrap();
    let copy = Matrix::from_view(sub).unwrap();
    assert_eq!(copy.as_slice(), &[23.0, 24.0, 33.0, 34.0, 43.0, 44.0]);
    assert!(view.submatrix(5, 0, 2, 1).is_none());

    let col_major = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let v = MatRef::col_major(&col_major, 2, 3).unwrap();
    let copy = Matrix::from_view(v).unwrap();
    assert_eq!(copy.as_slice(), &[1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
}

#[test]
fn elementwise_against_f64() {
    let mut rng = Rng(9);
    for (rows, cols) in [(1, 1), (3, 7), (5, 17), (2, 67), (9, 10)] {
        let a = rng.matrix(rows, cols);
        let b = rng.matrix(rows, cols);
        let pairs = a.as_slice().iter().zip(b.as_slice());

        let sum = a.add(&b).unwrap();
        let diff = a.sub(&b).unwrap();
        let prod = a.mul(&b).unwrap();
        for (idx, (&x, &y)) in pairs.enumerate() {
            assert_eq!(sum.as_slice()[idx], x + y);
            assert_eq!(diff.as_slice()[idx], x - y);
            assert_eq!(prod.as_slice()[idx], x * y);
        }
        let mut acc = a.clone();
        acc.add_assign(&b).unwrap();
        assert_eq!(acc, sum);
        let mut acc = a.clone();
        acc.sub_assign(&b).unwrap();
        assert_eq!(acc, diff);
        let mut acc = a.clone();
        acc.mul_assign(&b).unwrap();
        assert_eq!(acc, prod);
        let mut acc = a.clone();
        acc.axpy(-0.5, &b).unwrap();
        let expected = Matrix::from_fn(rows, cols, |i, j| {
            a.get(i, j).unwrap() + -0.5 * b.get(i, j).unwrap()
        })
        .unwrap();
        assert_eq!(acc, expected);
        assert_eq!(a.scaled(3.0).get(0, 0), Some(a.get(0, 0).unwrap() * 3.0));

        let relu = a.relu();
        let grad = a.relu_backward(&b).unwrap();
        let tanh = a.tanh();
        let sigmoid = a.sigmoid();
        for idx in 0..a.len() {
            let x = a.as_slice()[idx];
            assert_eq!(relu.as_slice()[idx], x.max(0.0));
            let g = if x > 0.0 { b.as_slice()[idx] } else { 0.0 };
            assert_eq!(grad.as_slice()[idx], g);
            let t = (x as f64).tanh();
            assert!((tanh.as_slice()[idx] as f64 - t).abs() <= 3e-7 * t.abs().max(1e-30));
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((sigmoid.as_slice()[idx] as f64 - s).abs() <= 3e-7 * s);
        }

        let p = a.softmax_rows();
        let lse = a.logsumexp_rows();
        let argmax = a.argmax_rows().unwrap();
        for i in 0..rows {
            let row: Vec<f64> = a.row(i).unwrap().iter().map(|&v| v as f64).collect();
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = row.iter().map(|v| (v - max).exp()).sum();
            for (j, &x) in row.iter().enumerate() {
                let expected = (x - max).exp() / total;
                let got = p.get(i, j).unwrap() as f64;
                assert!(
                    (got - expected).abs() <= 1e-6 * expected,
                    "softmax ({i}, {j})"
                );
            }
            let expected_lse = max + total.ln();
            assert!(
                (lse[i] as f64 - expected_lse).abs() <= 1e-6,
                "logsumexp row {i}"
            );
            let first_max = row.iter().position(|&v| v == max).unwrap();
            assert_eq!(argmax[i], first_max, "argmax row {i}");
        }
        let exact: f64 = a.as_slice().iter().map(|&v| v as f64).sum();
        let bound = 8.0 * f32::EPSILON as f64 * a.len() as f64;
        assert!((a.sum() as f64 - exact).abs() <= bound, "sum");
    }
}

#[test]
fn elementwise_shape_errors() {
    let a = Matrix::zeros(2, 3).unwrap();
    let b = Matrix::zeros(3, 2).unwrap();
    let err = a.add(&b).unwrap_err();
    assert_eq!(
        err.to_string(),
        "add: the left operand is 2x3 but the right operand is 3x2: element-wise operands \
         must have the same shape"
    );
    assert!(a.sub(&b).is_err());
    assert!(a.mul(&b).is_err());
    assert!(a.relu_backward(&b).is_err());
    let mut c = a.clone();
    assert!(c.add_assign(&b).is_err());
    assert!(c.sub_assign(&b).is_err());
    assert!(c.mul_assign(&b).is_err());
    let err = c.axpy(1.0, &b).unwrap_err();
    assert!(err.to_string().starts_with("axpy: "), "{err}");
}
