//! Adam and SGD steps against values computed by hand from the
//! `torch.optim` update rules in f64 (the expected numbers below). f32
//! arithmetic changes them by a few ulps, so the tolerance is 1e-6.

use heft_nn::{Adam, AdamConfig, NnError, Sgd, SgdConfig};

const TOL: f32 = 1e-6;

fn assert_close(actual: &[f32], expected: &[f64], step: usize) {
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (f64::from(a) - e).abs() <= f64::from(TOL) * e.abs().max(1.0),
            "step {step}, parameter {i}: got {a}, expected {e}"
        );
    }
}

#[test]
fn adam_defaults_three_steps() {
    let mut adam = Adam::new(AdamConfig::default()).unwrap();
    let mut p = vec![1.0f32, -2.0];
    let grads: [[f32; 2]; 3] = [[0.5, 0.1], [-1.0, 0.1], [0.25, -3.0]];
    let expected = [
        [0.99900000002, -2.0009999999],
        [0.9993661035424056, -2.0019999997999998],
        [0.9995027942033897, -2.0013982658000997],
    ];
    for (step, (g, e)) in grads.iter().zip(&expected).enumerate() {
        adam.step(&mut [&mut p[..]], &[&g[..]]).unwrap();
        assert_close(&p, e, step + 1);
    }
    assert_eq!(adam.steps(), 3);
}

#[test]
fn adam_weight_decay_three_steps() {
    let config = AdamConfig {
        lr: 0.01,
        weight_decay: 0.1,
        ..AdamConfig::default()
    };
    let mut adam = Adam::new(config).unwrap();
    let mut p = vec![1.0f32];
    let expected = [0.9900000001666667, 0.9885662224165238, 0.9821645703289923];
    for (step, (g, e)) in [0.5f32, -0.5, 2.0].iter().zip(expected).enumerate() {
        adam.step(&mut [&mut p[..]], &[&[*g][..]]).unwrap();
        assert_close(&p, &[e], step + 1);
    }
}

#[test]
fn adam_defaults_match_pytorch() {
    let c = AdamConfig::default();
    assert_eq!(c.lr, 1e-3);
    assert_eq!(c.beta1, 0.9);
    assert_eq!(c.beta2, 0.999);
    assert_eq!(c.eps, 1e-8);
    assert_eq!(c.weight_decay, 0.0);
}

#[test]
fn sgd_momentum_dampening_decay() {
    let config = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.1,
        weight_decay: 0.01,
        nesterov: false,
    };
    let mut sgd = Sgd::new(config).unwrap();
    let mut p = vec![1.0f32];
    // The first step puts the whole gradient in the buffer, without dampening.
    let expected = [0.899, 0.9872909000000001, 1.02086414819];
    for (step, (g, e)) in [1.0f32, -2.0, 0.5].iter().zip(expected).enumerate() {
        sgd.step(&mut [&mut p[..]], &[&[*g][..]]).unwrap();
        assert_close(&p, &[e], step + 1);
    }
}

#[test]
fn sgd_nesterov_three_steps() {
    let config = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.01,
        nesterov: true,
    };
    let mut sgd = Sgd::new(config).unwrap();
    let mut p = vec![1.0f32];
    let expected = [0.8081, 1.10475461, 1.095372015241];
    for (step, (g, e)) in [1.0f32, -2.0, 0.5].iter().zip(expected).enumerate() {
        sgd.step(&mut [&mut p[..]], &[&[*g][..]]).unwrap();
        assert_close(&p, &[e], step + 1);
    }
}

#[test]
fn sgd_plain_step() {
    let mut sgd = Sgd::new(SgdConfig {
        lr: 0.5,
        ..SgdConfig::default()
    })
    .unwrap();
    let mut p = vec![1.0f32, 2.0];
    sgd.step(&mut [&mut p[..]], &[&[2.0, -4.0][..]]).unwrap();
    assert_eq!(p, [0.0, 4.0]);
}

#[test]
fn optimiser_rejects_mismatched_lists() {
    let mut adam = Adam::new(AdamConfig::default()).unwrap();
    let mut p = vec![1.0f32, 2.0];
    let err = adam.step(&mut [&mut p[..]], &[&[1.0][..]]).unwrap_err();
    assert!(matches!(err, NnError::Shape { .. }), "{err}");
    assert_eq!(p, [1.0, 2.0], "a rejected step must not write");
    assert_eq!(adam.steps(), 0);

    adam.step(&mut [&mut p[..]], &[&[1.0, 1.0][..]]).unwrap();
    let mut q = [0.0f32; 3];
    let err = adam.step(&mut [&mut q[..]], &[&[1.0; 3][..]]).unwrap_err();
    assert!(err.to_string().contains("[2]"), "{err}");
}

#[test]
fn optimiser_rejects_bad_config() {
    for lr in [0.0, -1.0, f32::NAN] {
        let config = AdamConfig {
            lr,
            ..AdamConfig::default()
        };
        assert!(Adam::new(config).is_err(), "lr {lr}");
    }
    let config = AdamConfig {
        beta1: 1.0,
        ..AdamConfig::default()
    };
    assert!(Adam::new(config).is_err());
    let config = SgdConfig {
        nesterov: true,
        ..SgdConfig::default()
    };
    let err = Sgd::new(config).unwrap_err();
    assert!(err.to_string().contains("Nesterov"), "{err}");
}
