//! The Wilcoxon and Friedman tests and the incomplete gamma function against
//! hand-computed cases and values pinned from scipy 1.17.1 (numpy 2.4.6),
//! printed by `tools/stats_reference.py`.

use heft_tune::stats::{
    chi_square_sf, friedman, ln_gamma, regularized_gamma_p, regularized_gamma_q,
    two_sided_normal_p, wilcoxon, wilcoxon_differences, WilcoxonMethod, WilcoxonOptions,
    ZeroMethod,
};
use heft_tune::TuneError;

fn options(zero_method: ZeroMethod, method: WilcoxonMethod, continuity: bool) -> WilcoxonOptions {
    WilcoxonOptions {
        zero_method,
        method,
        continuity,
    }
}

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance * expected.abs().max(1e-300),
        "{what}: got {actual}, expected {expected} (relative tolerance {tolerance})"
    );
}

/// Returns the exact two-sided p-value by enumerating all 2^n sign
/// patterns of the given ranks.
fn brute_force_p(ranks: &[f64], w_plus: f64) -> f64 {
    let n = ranks.len();
    let (mut lower, mut upper) = (0u64, 0u64);
    for mask in 0u64..(1 << n) {
        let sum: f64 = (0..n)
            .filter(|i| mask >> i & 1 == 1)
            .map(|i| ranks[i])
            .sum();
        lower += u64::from(sum <= w_plus + 1e-9);
        upper += u64::from(sum >= w_plus - 1e-9);
    }
    (2.0 * lower.min(upper) as f64 / (1u64 << n) as f64).min(1.0)
}

#[test]
fn wilcoxon_hand_all_positive() {
    let result = wilcoxon_differences(&[1.0, 2.0, 3.0], WilcoxonOptions::default()).unwrap();
    assert_eq!(result.w_plus, 6.0);
    assert_eq!(result.w_minus, 0.0);
    assert_eq!(result.statistic, 0.0);
    assert_eq!(result.method, WilcoxonMethod::Exact);
    // P(W+ >= 6) = 1/8 for three ranks, doubled.
    assert_eq!(result.p_value, 0.25);
}

#[test]
fn wilcoxon_hand_four_ranks() {
    let result = wilcoxon_differences(&[1.0, -2.0, 3.0, 4.0], WilcoxonOptions::default()).unwrap();
    assert_eq!(result.w_plus, 8.0);
    assert_eq!(result.w_minus, 2.0);
    // Subsets of {1, 2, 3, 4} summing to 8 or more: {1,3,4}, {2,3,4}, all.
    assert_eq!(result.p_value, 6.0 / 16.0);
}

#[test]
fn wilcoxon_hand_tied_midranks() {
    // |d| = 1, 1, 1, 2 get midranks 2, 2, 2, 4, and W+ = 2 + 2 + 4 = 8.
    // Sign patterns with W+ >= 8: three choices of two 2s with the 4, and
    // all four, so P = 4/16 and p = 0.5.
    let result = wilcoxon_differences(&[1.0, 1.0, -1.0, 2.0], WilcoxonOptions::default()).unwrap();
    assert!(result.ties);
    assert_eq!(result.w_plus, 8.0);
    assert_eq!(result.w_minus, 2.0);
    assert_eq!(result.p_value, 0.5);
}

#[test]
fn wilcoxon_exact_matches_enumeration() {
    let samples: [&[f64]; 4] = [
        &[0.5, -1.5, 1.5, 2.0, -0.5, 3.0, 3.0, -3.0, 4.0],
        &[1.0, 1.0, 1.0, 1.0, -1.0, 2.0, 2.0],
        &[0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8, 0.9, 1.0, 1.1],
        &[0.0, 0.0, 1.0, -1.0, 2.0, 2.0, 3.0, 0.0, -4.0],
    ];
    for (i, d) in samples.iter().enumerate() {
        for zero_method in [ZeroMethod::Wilcox, ZeroMethod::Pratt] {
            let result =
                wilcoxon_differences(d, options(zero_method, WilcoxonMethod::Exact, true)).unwrap();
            // Ranks of the non-zero differences, with zeros ranked first
            // for Pratt.
            let kept: Vec<f64> = match zero_method {
                ZeroMethod::Wilcox => d.iter().copied().filter(|&x| x != 0.0).collect(),
                ZeroMethod::Pratt => d.to_vec(),
            };
            let ranks: Vec<f64> = kept
                .iter()
                .filter(|&&x| x != 0.0)
                .map(|x| {
                    let below = kept.iter().filter(|y| y.abs() < x.abs()).count() as f64;
                    let equal = kept.iter().filter(|y| y.abs() == x.abs()).count() as f64;
                    below + (equal + 1.0) / 2.0
                })
                .collect();
            let expected = brute_force_p(&ranks, result.w_plus);
            assert_close(
                result.p_value,
                expected,
                1e-12,
                &format!("sample {i}, {zero_method:?}"),
            );
        }
    }
}

#[test]
fn wilcoxon_all_zero_differences() {
    let x = [0.8, 0.7, 0.9];
    for zero_method in [ZeroMethod::Wilcox, ZeroMethod::Pratt] {
        for method in [WilcoxonMethod::Exact, WilcoxonMethod::Normal] {
            let result = wilcoxon(&x, &x, options(zero_method, method, true)).unwrap();
            assert_eq!(result.n, 0);
            assert_eq!(result.zeros, 3);
            assert_eq!(result.statistic, 0.0);
            assert_eq!(result.p_value, 1.0);
        }
    }
}

#[test]
fn wilcoxon_invalid_samples() {
    let default = WilcoxonOptions::default();
    let mismatch = wilcoxon(&[1.0, 2.0], &[1.0], default).unwrap_err();
    assert!(mismatch.to_string().contains("(2 and 1)"), "{mismatch}");
    let empty = wilcoxon(&[], &[], default).unwrap_err();
    assert!(matches!(empty, TuneError::InvalidSample { .. }));
    let nan = wilcoxon_differences(&[1.0, f64::NAN], default).unwrap_err();
    assert!(nan.to_string().contains("value 1 is NaN"), "{nan}");
}

#[test]
fn wilcoxon_auto_switches_at_25() {
    let d25: Vec<f64> = (1..=25)
        .map(|i| i as f64 * if i % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let d26: Vec<f64> = (1..=26)
        .map(|i| i as f64 * if i % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let default = WilcoxonOptions::default();
    assert_eq!(
        wilcoxon_differences(&d25, default).unwrap().method,
        WilcoxonMethod::Exact
    );
    let large = wilcoxon_differences(&d26, default).unwrap();
    assert_eq!(large.method, WilcoxonMethod::Normal);
    assert!(large.z.is_some());
}

/// One pinned scipy case: data, zero method, method, continuity,
/// statistic, p-value.
type Pinned = (&'static str, ZeroMethod, WilcoxonMethod, bool, f64, f64);

fn wilcoxon_data(name: &str) -> (Vec<f64>, Vec<f64>) {
    match name {
        "plain" => (
            vec![
                0.12, -0.31, 0.45, 0.08, 0.66, -0.02, 0.91, 0.27, -0.15, 0.39,
            ],
            vec![0.0; 10],
        ),
        "ties" => (
            vec![1.0, 2.0, -2.0, 3.0, 3.0, 3.0, -1.0, 4.0, 5.0, 5.0],
            vec![0.0; 10],
        ),
        "zeros" => (
            vec![0.0, 1.0, -1.0, 0.0, 2.0, 3.0, 3.0, -4.0, 0.0, 5.0, 6.0, 2.0],
            vec![0.0; 12],
        ),
        "large" => (
            (0..30)
                .map(|i| ((i * 37) % 61 - 25) as f64 + 0.01 * i as f64)
                .collect(),
            vec![0.0; 30],
        ),
        "accuracy" => (
            (0..40)
                .map(|i| 0.8 + ((i * 7) % 11) as f64 / 2000.0)
                .collect(),
            (0..40)
                .map(|i| 0.8 + ((i * 5) % 9) as f64 / 2000.0)
                .collect(),
        ),
        _ => unreachable!("no data set {name}"),
    }
}

#[test]
fn wilcoxon_matches_scipy() {
    use WilcoxonMethod::{Exact, Normal};
    use ZeroMethod::{Pratt, Wilcox};
    // scipy's "exact" rows are method="exact" (no ties or zeros), its
    // "auto" rows with ties or zeros are its permutation test, which is
    // the exact distribution over the tied ranks. "Normal" rows are
    // method="asymptotic".
    let pinned: [Pinned; 28] = [
        ("plain", Wilcox, Exact, true, 11.0, 0.10546875),
        ("plain", Wilcox, Normal, true, 11.0, 0.10291753940285298),
        ("plain", Wilcox, Normal, false, 11.0, 0.09260069782067576),
        ("plain", Pratt, Exact, true, 11.0, 0.10546875),
        ("plain", Pratt, Normal, true, 11.0, 0.10291753940285298),
        ("plain", Pratt, Normal, false, 11.0, 0.09260069782067576),
        ("ties", Wilcox, Exact, true, 5.0, 0.01953125),
        ("ties", Wilcox, Normal, true, 5.0, 0.02427740126269545),
        ("ties", Wilcox, Normal, false, 5.0, 0.021227775818154337),
        ("ties", Pratt, Exact, true, 5.0, 0.01953125),
        ("ties", Pratt, Normal, true, 5.0, 0.02427740126269545),
        ("ties", Pratt, Normal, false, 5.0, 0.021227775818154337),
        ("zeros", Wilcox, Exact, true, 8.5, 0.10546875),
        ("zeros", Wilcox, Normal, true, 8.5, 0.10880943004054568),
        ("zeros", Wilcox, Normal, false, 8.5, 0.09632067516219299),
        ("zeros", Pratt, Exact, true, 14.5, 0.0859375),
        ("zeros", Pratt, Normal, true, 14.5, 0.09543971556742788),
        ("zeros", Pratt, Normal, false, 14.5, 0.08780808379266489),
        ("large", Wilcox, Exact, true, 161.0, 0.1459994912147522),
        ("large", Wilcox, Normal, true, 161.0, 0.14419333166922274),
        ("large", Wilcox, Normal, false, 161.0, 0.14138951131633032),
        ("large", Pratt, Exact, true, 161.0, 0.1459994912147522),
        ("large", Pratt, Normal, true, 161.0, 0.14419333166922274),
        ("large", Pratt, Normal, false, 161.0, 0.14138951131633032),
        ("accuracy", Wilcox, Normal, true, 235.0, 0.07960990546867411),
        (
            "accuracy",
            Wilcox,
            Normal,
            false,
            235.0,
            0.07832140336882978,
        ),
        ("accuracy", Pratt, Normal, true, 277.0, 0.08124199500185551),
        ("accuracy", Pratt, Normal, false, 277.0, 0.08007406250503257),
    ];
    for (name, zero_method, method, continuity, statistic, p_value) in pinned {
        let (x, y) = wilcoxon_data(name);
        let result = wilcoxon(&x, &y, options(zero_method, method, continuity)).unwrap();
        let what = format!("{name} {zero_method:?} {method:?} continuity={continuity}");
        assert_eq!(result.statistic, statistic, "{what}: statistic");
        assert_close(result.p_value, p_value, 1e-9, &what);
    }
}

#[test]
fn friedman_hand_consistent_order() {
    // Ranks 1, 2, 3 in each of 3 blocks: R = 3, 6, 9, so
    // 12 / (3 * 3 * 4) * 126 - 3 * 3 * 4 = 6 and p = exp(-3).
    let blocks = vec![vec![1.0, 2.0, 3.0]; 3];
    let result = friedman(&blocks).unwrap();
    assert_close(result.statistic, 6.0, 1e-12, "statistic");
    assert_close(result.p_value, (-3.0f64).exp(), 1e-12, "p-value");
    assert_eq!(result.average_ranks, vec![1.0, 2.0, 3.0]);
    assert_eq!(result.df, 2);
}

#[test]
fn friedman_all_tied_blocks() {
    let result = friedman(&[vec![0.5, 0.5], vec![0.7, 0.7]]).unwrap();
    assert_eq!(result.statistic, 0.0);
    assert_eq!(result.p_value, 1.0);
    assert_eq!(result.average_ranks, vec![1.5, 1.5]);
}

#[test]
fn friedman_invalid_samples() {
    assert!(friedman(&[]).is_err());
    let one = friedman(&[vec![1.0]]).unwrap_err();
    assert!(one.to_string().contains("1 treatments"), "{one}");
    let ragged = friedman(&[vec![1.0, 2.0], vec![1.0]]).unwrap_err();
    assert!(
        ragged.to_string().contains("block 1 holds 1 values"),
        "{ragged}"
    );
}

#[test]
fn friedman_matches_scipy() {
    let plain = vec![
        vec![0.81, 0.83, 0.80],
        vec![0.79, 0.84, 0.82],
        vec![0.85, 0.86, 0.83],
        vec![0.80, 0.82, 0.81],
        vec![0.78, 0.83, 0.79],
    ];
    let ties = vec![
        vec![1.0, 2.0, 2.0, 3.0],
        vec![2.0, 2.0, 2.0, 1.0],
        vec![3.0, 1.0, 2.0, 2.0],
        vec![1.0, 1.0, 2.0, 3.0],
        vec![4.0, 3.0, 3.0, 1.0],
        vec![2.0, 3.0, 1.0, 3.0],
    ];
    let wide: Vec<Vec<f64>> = (0..10)
        .map(|b| {
            (0..5)
                .map(|t| ((b * 13 + t * 7) % 17) as f64 + 0.1 * t as f64)
                .collect()
        })
        .collect();
    let cases = [
        (
            plain,
            7.6000000000000085,
            0.0223707718561655,
            vec![1.4, 3.0, 1.6],
        ),
        (
            ties,
            0.29411764705882354,
            0.961130969135613,
            vec![
                2.5833333333333335,
                2.3333333333333335,
                2.4166666666666665,
                2.6666666666666665,
            ],
        ),
        (wide, 2.0, 0.7357588823428847, vec![3.0, 3.0, 3.5, 2.5, 3.0]),
    ];
    for (i, (blocks, statistic, p_value, ranks)) in cases.into_iter().enumerate() {
        let result = friedman(&blocks).unwrap();
        assert_close(
            result.statistic,
            statistic,
            1e-12,
            &format!("case {i} statistic"),
        );
        assert_close(result.p_value, p_value, 1e-10, &format!("case {i} p-value"));
        for (j, (&actual, &expected)) in result.average_ranks.iter().zip(&ranks).enumerate() {
            assert_close(actual, expected, 1e-12, &format!("case {i} rank {j}"));
        }
    }
}

#[test]
fn gamma_closed_forms() {
    for x in [0.01, 0.5, 1.0, 3.0, 10.0, 40.0] {
        // Q(1, x) = exp(-x).
        assert_close(regularized_gamma_q(1.0, x), (-x).exp(), 1e-13, "Q(1, x)");
        // Q(2, x) = (1 + x) exp(-x).
        assert_close(
            regularized_gamma_q(2.0, x),
            (1.0 + x) * (-x).exp(),
            1e-13,
            "Q(2, x)",
        );
        let sum = regularized_gamma_p(3.5, x) + regularized_gamma_q(3.5, x);
        assert_close(sum, 1.0, 1e-14, "P + Q");
    }
    assert_close(
        ln_gamma(0.5),
        std::f64::consts::PI.sqrt().ln(),
        1e-14,
        "ln Gamma(1/2)",
    );
    assert_close(ln_gamma(10.0), 362_880.0f64.ln(), 1e-14, "ln 9!");
    assert_close(ln_gamma(0.1), 2.252_712_651_734_206, 1e-13, "ln Gamma(0.1)");
    assert_eq!(regularized_gamma_q(2.0, 0.0), 1.0);
    assert!(regularized_gamma_q(-1.0, 1.0).is_nan());
    // The two-sided 5 % point of the standard normal.
    assert_close(
        two_sided_normal_p(1.959_963_984_540_054),
        0.05,
        1e-12,
        "normal 5 %",
    );
}

#[test]
fn gamma_matches_scipy() {
    let gammaincc = [
        (0.5, 0.1, 0.6547208460185768),
        (0.5, 2.0, 0.04550026389635857),
        (1.0, 3.0, 0.04978706836786395),
        (2.5, 1.0, 0.8491450360846096),
        (3.0, 10.0, 0.0027693957155115775),
        (10.0, 5.0, 0.9681719426937951),
        (10.0, 15.0, 0.06985366069940986),
        (50.0, 45.0, 0.7531979655998298),
        (0.1, 0.01, 0.3373787400455204),
        (7.5, 30.0, 2.522085078696141e-07),
    ];
    for (a, x, expected) in gammaincc {
        assert_close(
            regularized_gamma_q(a, x),
            expected,
            1e-12,
            &format!("Q({a}, {x})"),
        );
    }
    let chi2 = [
        (3.841458820694124, 1.0, 0.04999999999999989),
        (5.991464547107979, 2.0, 0.05000000000000007),
        (7.814727903251178, 3.0, 0.05),
        (12.5, 4.0, 0.013995792487650894),
        (0.3, 5.0, 0.9976430862605289),
        (40.0, 20.0, 0.0049954123083075785),
    ];
    for (x, df, expected) in chi2 {
        assert_close(
            chi_square_sf(x, df),
            expected,
            1e-12,
            &format!("chi2 sf({x}, {df})"),
        );
    }
}
