//! Finite-difference gradient checks.
//!
//! The analytic gradients come from heft's f32 code. The numerical ones are
//! central differences `(f(p + h) - f(p - h)) / 2h` of a small f64
//! reference implementation written here, with `h = 1e-6`, whose
//! truncation and rounding errors are near 1e-9. What remains is f32
//! rounding in heft, a few ulps of values of order 1 summed over fewer than
//! 100 terms, far below the tolerance of `1e-4 * max(1, |g|)`. A wrong
//! index, sign or missing term moves a gradient by far more.

use heft_nn::{
    cross_entropy, cross_entropy_with_grad, Linear, LinearGrads, Mlp, MlpGrads, NnError, Relu,
    SplitMix64,
};
use heft_tensor::Matrix;

const H: f64 = 1e-6;
const TOL: f64 = 1e-4;

fn random_matrix(rows: usize, cols: usize, rng: &mut SplitMix64) -> Matrix {
    Matrix::from_fn(rows, cols, |_, _| rng.uniform(-1.0, 1.0)).unwrap()
}

fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

fn assert_grad(what: &str, analytic: &[f32], numeric: &[f64]) {
    assert_eq!(analytic.len(), numeric.len(), "{what}: lengths");
    for (i, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        let err = (f64::from(a) - n).abs();
        assert!(
            err <= TOL * n.abs().max(1.0),
            "{what}[{i}]: analytic {a}, numeric {n}"
        );
    }
}

/// Returns the central-difference gradient of `f` with respect to `params`.
fn numeric_grad(params: &mut [f64], mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    (0..params.len())
        .map(|i| {
            let old = params[i];
            params[i] = old + H;
            let plus = f(params);
            params[i] = old - H;
            let minus = f(params);
            params[i] = old;
            (plus - minus) / (2.0 * H)
        })
        .collect()
}

/// `Y = X W^T + b` in f64; `x` is `[batch, inputs]`, `w` is `[outputs, inputs]`.
fn linear_ref(x: &[f64], w: &[f64], b: &[f64], inputs: usize) -> Vec<f64> {
    let outputs = b.len();
    let batch = x.len() / inputs;
    let mut y = vec![0.0; batch * outputs];
    for r in 0..batch {
        for o in 0..outputs {
            let dot: f64 = (0..inputs)
                .map(|i| x[r * inputs + i] * w[o * inputs + i])
                .sum();
            y[r * outputs + o] = dot + b[o];
        }
    }
    y
}

/// Mean softmax cross-entropy in f64. Each row's loss is
/// `(max - z_label) + ln(sum(exp(z - max)))`, so the log-sum survives
/// next to logits of any magnitude.
fn cross_entropy_ref(logits: &[f64], labels: &[u32]) -> f64 {
    let classes = logits.len() / labels.len();
    let total: f64 = logits
        .chunks_exact(classes)
        .zip(labels)
        .map(|(row, &l)| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = row.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
            (max - row[l as usize]) + log_sum
        })
        .sum();
    total / labels.len() as f64
}

/// Returns the gradient `(softmax(Z_i) - onehot(y_i)) / batch` of the mean
/// softmax cross-entropy in f64.
fn cross_entropy_grad_ref(logits: &[f64], labels: &[u32]) -> Vec<f64> {
    let classes = logits.len() / labels.len();
    let batch = labels.len() as f64;
    let mut grad = Vec::with_capacity(logits.len());
    for (row, &l) in logits.chunks_exact(classes).zip(labels) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|z| (z - max).exp()).sum();
        for (j, z) in row.iter().enumerate() {
            let target = if j == l as usize { 1.0 } else { 0.0 };
            grad.push(((z - max).exp() / sum - target) / batch);
        }
    }
    grad
}

#[test]
fn linear_gradients_match_differences() {
    let mut rng = SplitMix64::new(1);
    let (batch, inputs, outputs) = (4, 5, 3);
    let w = random_matrix(outputs, inputs, &mut rng);
    let b: Vec<f32> = (0..outputs).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let x = random_matrix(batch, inputs, &mut rng);
    // The scalar checked is sum(Y .* R), so dL/dY = R.
    let r = random_matrix(batch, outputs, &mut rng);
    let layer = Linear::new(w.clone(), b.clone()).unwrap();

    let y = layer.forward(&x).unwrap();
    let y_ref = linear_ref(
        &to_f64(x.as_slice()),
        &to_f64(w.as_slice()),
        &to_f64(&b),
        inputs,
    );
    assert_grad("forward", y.as_slice(), &y_ref);

    let mut grads = LinearGrads::zeros_like(&layer).unwrap();
    let dx = layer.backward(&x, &r, &mut grads, true).unwrap().unwrap();
    let r64 = to_f64(r.as_slice());
    let objective = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
        linear_ref(x, w, b, inputs)
            .iter()
            .zip(&r64)
            .map(|(y, r)| y * r)
            .sum()
    };
    let (x64, w64, b64) = (to_f64(x.as_slice()), to_f64(w.as_slice()), to_f64(&b));

    let dw = numeric_grad(&mut w64.clone(), |w| objective(&x64, w, &b64));
    let db = numeric_grad(&mut b64.clone(), |b| objective(&x64, &w64, b));
    let dx_ref = numeric_grad(&mut x64.clone(), |x| objective(x, &w64, &b64));
    assert_grad("dW", grads.weight.as_slice(), &dw);
    assert_grad("db", &grads.bias, &db);
    assert_grad("dX", dx.as_slice(), &dx_ref);

    // A second backward call accumulates, like PyTorch's .grad.
    layer.backward(&x, &r, &mut grads, false).unwrap();
    let doubled: Vec<f64> = dw.iter().map(|g| 2.0 * g).collect();
    assert_grad("accumulated dW", grads.weight.as_slice(), &doubled);
}

#[test]
fn linear_rejects_zero_sizes() {
    for (rows, cols) in [(0, 0), (0, 3), (3, 0)] {
        let weight = Matrix::zeros(rows, cols).unwrap();
        let err = Linear::new(weight, vec![0.0; rows]).unwrap_err();
        assert!(matches!(err, NnError::Shape { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "Linear::new: the weight is {rows}x{cols} (out x in) but a Linear layer needs \
                 at least one output and one input"
            )
        );
    }
    let smallest = Linear::new(Matrix::zeros(1, 1).unwrap(), vec![0.0]).unwrap();
    assert_eq!(smallest.out_features(), 1);
    assert_eq!(smallest.in_features(), 1);
}

#[test]
fn relu_gradient_matches_differences() {
    // Values keep at least 0.1 away from the kink at 0, so h never crosses it.
    let x = Matrix::from_slice(2, 3, &[-1.5, 0.25, 2.0, 0.1, -0.1, -3.0]).unwrap();
    let r = Matrix::from_slice(2, 3, &[0.3, -0.7, 1.1, 2.0, -1.0, 0.5]).unwrap();
    let y = Relu.forward(&x);
    let dx = Relu.backward(&y, &r).unwrap();
    let r64 = to_f64(r.as_slice());
    let numeric = numeric_grad(&mut to_f64(x.as_slice()), |x| {
        x.iter().zip(&r64).map(|(x, r)| x.max(0.0) * r).sum()
    });
    assert_grad("ReLU dX", dx.as_slice(), &numeric);
}

#[test]
fn cross_entropy_gradient_matches_differences() {
    let mut rng = SplitMix64::new(2);
    let logits = Matrix::from_fn(5, 4, |_, _| rng.uniform(-3.0, 3.0)).unwrap();
    let labels = [0u32, 3, 1, 1, 2];
    let mut grad = Matrix::zeros(5, 4).unwrap();
    let loss = cross_entropy_with_grad(&logits, &labels, &mut grad).unwrap();
    let mut z = to_f64(logits.as_slice());
    let loss_ref = cross_entropy_ref(&z, &labels);
    assert!(
        (f64::from(loss) - loss_ref).abs() < 1e-6,
        "{loss} vs {loss_ref}"
    );
    assert_eq!(cross_entropy(&logits, &labels).unwrap(), loss);
    let numeric = numeric_grad(&mut z, |z| cross_entropy_ref(z, &labels));
    assert_grad("dL/dZ", grad.as_slice(), &numeric);
}

#[test]
fn cross_entropy_stable_for_large_logits() {
    let logits = Matrix::from_slice(2, 3, &[1000.0, -1000.0, 999.0, -1e30, 0.0, 88.0]).unwrap();
    let labels = [2u32, 1];
    let mut grad = Matrix::zeros(2, 3).unwrap();
    let loss = cross_entropy_with_grad(&logits, &labels, &mut grad).unwrap();
    // Row 1: ln(1 + e^-1) + 1; row 2: ln(1 + e^-88) + 88.
    let expected = ((1.0 + (-1.0f64).exp()).ln() + 1.0 + 88.0) / 2.0;
    assert!(
        (f64::from(loss) - expected).abs() < 1e-4,
        "{loss} vs {expected}"
    );
    assert!(grad.as_slice().iter().all(|g| g.is_finite()));
}

#[test]
fn cross_entropy_matches_f64_for_large_logits() {
    // Rows whose log-sum-exp is small next to their largest logit, where
    // adding the two in f32 loses the log-sum, plus ordinary rows.
    let cases: [(&[f32], u32); 9] = [
        (&[1e8, 1e8], 0),
        (&[1e7, 1e7], 1),
        (&[1e6, 1e6 - 1.0], 1),
        (&[-1e30, -1e30], 0),
        (&[1e8, 1e8 - 8.0, 1e8], 1),
        (&[1e30, 0.0], 1),
        (&[-3e5, -3e5 + 2.5, -3e5 - 1.0], 2),
        (&[0.5, -1.25, 2.0], 0),
        (&[-0.1, 0.3, 0.2], 2),
    ];
    for (row, label) in cases {
        let logits = Matrix::from_slice(1, row.len(), row).unwrap();
        let z = to_f64(row);
        let expected = cross_entropy_ref(&z, &[label]);

        let loss = cross_entropy(&logits, &[label]).unwrap();
        assert!(
            (f64::from(loss) - expected).abs() <= 1e-6 * expected.abs().max(1.0),
            "cross_entropy of {row:?} with label {label}: {loss}, f64 {expected}"
        );

        let mut grad = Matrix::zeros(1, row.len()).unwrap();
        let loss_with_grad = cross_entropy_with_grad(&logits, &[label], &mut grad).unwrap();
        assert_eq!(loss_with_grad, loss, "{row:?} with label {label}");
        let grad_expected = cross_entropy_grad_ref(&z, &[label]);
        for (j, (&g, &e)) in grad.as_slice().iter().zip(&grad_expected).enumerate() {
            assert!(
                (f64::from(g) - e).abs() <= 1e-6,
                "gradient {j} of {row:?} with label {label}: {g}, f64 {e}"
            );
        }
    }
}

#[test]
fn cross_entropy_rejects_bad_labels() {
    let logits = Matrix::zeros(2, 3).unwrap();
    let err = cross_entropy(&logits, &[0, 3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cross_entropy: label 3 in row 1 is out of range for 3 classes; labels must be in 0..3"
    );
    assert!(cross_entropy(&logits, &[0]).is_err());
}

#[test]
fn mlp_gradients_match_differences() {
    let sizes = [3usize, 6, 5, 4];
    let mut rng = SplitMix64::new(3);
    let mlp = Mlp::init(&sizes, &mut rng).unwrap();
    let x = random_matrix(6, sizes[0], &mut rng);
    let labels = [0u32, 1, 2, 3, 1, 0];

    let activations = mlp.forward_train(&x).unwrap();
    let mut grad_logits = Matrix::zeros(6, 4).unwrap();
    cross_entropy_with_grad(&activations.logits, &labels, &mut grad_logits).unwrap();
    let mut grads = MlpGrads::zeros_like(&mlp).unwrap();
    mlp.backward(&x, &activations, &grad_logits, &mut grads)
        .unwrap();

    // All parameters as one f64 vector in parameter_names() order.
    let mut flat: Vec<f64> = mlp.parameters().iter().flat_map(|p| to_f64(p)).collect();
    let x64 = to_f64(x.as_slice());
    let loss_of = |flat: &[f64]| -> f64 {
        let mut h = x64.clone();
        let mut offset = 0;
        for (k, w) in sizes.windows(2).enumerate() {
            let (inputs, outputs) = (w[0], w[1]);
            let weight = &flat[offset..offset + inputs * outputs];
            let bias = &flat[offset + inputs * outputs..offset + inputs * outputs + outputs];
            offset += inputs * outputs + outputs;
            h = linear_ref(&h, weight, bias, inputs);
            if k + 2 < sizes.len() {
                h.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        cross_entropy_ref(&h, &labels)
    };
    let logits_ref = {
        let f = flat.clone();
        let mut h = x64.clone();
        let mut offset = 0;
        for (k, w) in sizes.windows(2).enumerate() {
            let n = w[0] * w[1];
            h = linear_ref(
                &h,
                &f[offset..offset + n],
                &f[offset + n..offset + n + w[1]],
                w[0],
            );
            offset += n + w[1];
            if k + 2 < sizes.len() {
                h.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        h
    };
    assert_grad("logits", activations.logits.as_slice(), &logits_ref);
    assert_grad(
        "inference logits",
        mlp.forward(&x).unwrap().as_slice(),
        &logits_ref,
    );

    let numeric = numeric_grad(&mut flat, loss_of);
    let mut offset = 0;
    for (name, g) in mlp.parameter_names().iter().zip(grads.as_slices()) {
        assert_grad(name, g, &numeric[offset..offset + g.len()]);
        offset += g.len();
    }
    assert_eq!(offset, numeric.len());
}
