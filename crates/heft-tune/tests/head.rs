//! The fused, pruned head scorer against a per-candidate reference.

use heft_search::{
    build, Algorithm, Bounds, Mode, NoCallbacks, Objective, Search, Settings, StopRules,
};
use heft_tune::{HeadScorer, TuneError};

/// SplitMix64, so the test needs no random-number dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// A head problem with learnable structure: labels come from a hidden
/// "teacher" matrix, and `w0` is the teacher plus noise, so most rows have
/// clear margins and some are close calls.
struct Problem {
    features: Vec<f32>,
    labels: Vec<u32>,
    w0: Vec<f32>,
    bias: Vec<f32>,
    rows: usize,
    inputs: usize,
}

fn problem(rows: usize, inputs: usize, classes: usize, seed: u64, relu: bool) -> Problem {
    let mut rng = Rng(seed);
    let teacher: Vec<f32> = (0..classes * inputs).map(|_| rng.float()).collect();
    let features: Vec<f32> = (0..rows * inputs)
        .map(|_| {
            let x = rng.float();
            if relu {
                x.max(0.0)
            } else {
                x
            }
        })
        .collect();
    let labels = features
        .chunks_exact(inputs)
        .map(|h| {
            let score = |c: usize| -> f32 {
                teacher[c * inputs..(c + 1) * inputs]
                    .iter()
                    .zip(h)
                    .map(|(w, x)| w * x)
                    .sum()
            };
            (0..classes).fold(0, |t, c| if score(c) > score(t) { c } else { t }) as u32
        })
        .collect();
    let w0 = teacher.iter().map(|w| w + 0.3 * rng.float()).collect();
    let bias = (0..classes).map(|_| 0.1 * rng.float()).collect();
    Problem {
        features,
        labels,
        w0,
        bias,
        rows,
        inputs,
    }
}

fn scorer(p: &Problem, bound: f32, prune: bool) -> HeadScorer {
    HeadScorer::new(
        &p.features,
        p.rows,
        p.inputs,
        &p.labels,
        &p.w0,
        &p.bias,
        bound,
        prune,
    )
    .unwrap()
}

fn population(p: &Problem, bound: f32, count: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let mut pop = Vec::with_capacity(count * p.w0.len());
    for i in 0..count {
        for &w in &p.w0 {
            // Candidate 0 is w0 itself and candidate 1 sits on the corners.
            let offset = match i {
                0 => 0.0,
                1 => {
                    bound
                        * if rng.next().is_multiple_of(2) {
                            1.0
                        } else {
                            -1.0
                        }
                }
                _ => bound * rng.float(),
            };
            pop.push(w + offset);
        }
    }
    pop
}

#[test]
fn fused_counts_match_reference_per_candidate() {
    for (rows, inputs, classes, relu) in [
        (1, 1, 1, true),
        (37, 5, 3, false),
        (1500, 128, 10, true),
        (700, 64, 7, false),
    ] {
        let p = problem(rows, inputs, classes, rows as u64, relu);
        for bound in [0.01f32, 0.2] {
            let pop = population(&p, bound, 13, 3);
            let mut pruned = scorer(&p, bound, true);
            let mut full = scorer(&p, bound, false);
            let fast: Vec<u64> = pruned.correct_counts(&pop).unwrap().to_vec();
            let unpruned: Vec<u64> = full.correct_counts(&pop).unwrap().to_vec();
            let reference: Vec<u64> = pop
                .chunks_exact(p.w0.len())
                .map(|w| full.reference_count(w).unwrap())
                .collect();
            assert_eq!(
                fast, reference,
                "pruned scan, {rows}x{inputs}x{classes} bound {bound}"
            );
            assert_eq!(
                unpruned, reference,
                "full scan, {rows}x{inputs}x{classes} bound {bound}"
            );
            assert_eq!(pruned.stats().full_scans, 0);
        }
    }
}

#[test]
fn pruning_skips_rows_at_small_bound() {
    let p = problem(2000, 128, 10, 9, true);
    let tight = scorer(&p, 0.001, true).stats().pruned_fraction();
    let wide = scorer(&p, 0.5, true).stats().pruned_fraction();
    let off = scorer(&p, 0.001, false).stats().pruned_fraction();
    println!("pruned fraction: {tight:.3} at bound 0.001, {wide:.3} at bound 0.5");
    assert!(
        tight > 0.3,
        "expected many fixed rows at a tight bound, got {tight}"
    );
    assert!(
        wide < tight,
        "a wider box must fix fewer rows ({wide} vs {tight})"
    );
    assert_eq!(off, 0.0);
}

#[test]
fn candidates_outside_box_fall_back_to_full_scan() {
    let p = problem(800, 32, 5, 4, true);
    let bound = 0.01;
    let mut pruned = scorer(&p, bound, true);
    let mut pop = population(&p, bound, 4, 8);
    for x in &mut pop[p.w0.len()..2 * p.w0.len()] {
        *x += 1.0;
    }
    let counts = pruned.correct_counts(&pop).unwrap().to_vec();
    let reference: Vec<u64> = pop
        .chunks_exact(p.w0.len())
        .map(|w| pruned.reference_count(w).unwrap())
        .collect();
    assert_eq!(counts, reference);
    assert_eq!(pruned.stats().full_scans, 1);
}

#[test]
fn thread_count_does_not_change_fitness() {
    let p = problem(3000, 128, 10, 21, true);
    let pop = population(&p, 0.01, 64, 5);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut s = scorer(&p, 0.01, true);
            let mut fitness = vec![0.0; 64];
            s.score(&pop, &mut fitness).unwrap();
            fitness.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        })
    };
    let one = run(1);
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}

#[test]
fn search_never_worse_than_start_when_seeded_with_w0() {
    let p = problem(1200, 64, 10, 77, true);
    let bound = 0.05;
    let mut s = scorer(&p, bound, true);
    let start = 1.0 - s.reference_count(&p.w0).unwrap() as f64 / p.rows as f64;
    let bounds = Bounds::around(&p.w0, bound).unwrap();
    let settings = Settings::new(bounds, 10, 1)
        .with_mode(Mode::Opytimizer214)
        .with_initial_point(p.w0.clone());
    let mut search = Search::new(build("pso".parse::<Algorithm>().unwrap(), &settings).unwrap());
    let report = search
        .run(&mut s, &StopRules::iterations(5), &mut NoCallbacks)
        .unwrap();
    assert!(
        report.best_fitness <= start,
        "best {} worse than the start {start}",
        report.best_fitness
    );
}

#[test]
fn bad_inputs_are_rejected() {
    let p = problem(10, 4, 3, 1, true);
    let err = HeadScorer::new(
        &p.features,
        10,
        4,
        &p.labels,
        &p.w0,
        &p.bias,
        f32::NAN,
        true,
    )
    .err()
    .unwrap();
    assert!(matches!(err, TuneError::Bound(b) if b.is_nan()));
    assert!(err.to_string().contains("positive finite"), "{err}");
    let err = HeadScorer::new(&p.features, 10, 4, &p.labels, &p.w0, &p.bias, -0.1, true)
        .err()
        .unwrap();
    assert!(matches!(err, TuneError::Bound(b) if b == -0.1));
    let err = HeadScorer::new(
        &p.features,
        10,
        4,
        &p.labels[..9],
        &p.w0,
        &p.bias,
        0.1,
        true,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("labels"), "{err}");
    let mut labels = p.labels.clone();
    labels[4] = 3;
    let err = HeadScorer::new(&p.features, 10, 4, &labels, &p.w0, &p.bias, 0.1, true)
        .err()
        .unwrap();
    assert_eq!(
        err,
        TuneError::Label {
            row: 4,
            label: 3,
            classes: 3
        }
    );
    let mut w0 = p.w0.clone();
    w0[2] = f32::INFINITY;
    let err = HeadScorer::new(&p.features, 10, 4, &p.labels, &w0, &p.bias, 0.1, true)
        .err()
        .unwrap();
    assert_eq!(
        err,
        TuneError::NonFinite {
            what: "weights",
            index: 2
        }
    );
    let mut s = scorer(&p, 0.1, true);
    let mut fitness = [0.0; 2];
    assert!(s.score(&p.w0[..5], &mut fitness).is_err());
    s.evaluate(&p.w0[..5], 12, &mut fitness);
    assert!(fitness.iter().all(|f| f.is_nan()));
}

#[test]
fn overflowing_row_count_rejected() {
    let p = problem(10, 4, 3, 1, true);
    let err = HeadScorer::new(
        &p.features,
        usize::MAX,
        4,
        &p.labels,
        &p.w0,
        &p.bias,
        0.1,
        true,
    )
    .err()
    .unwrap();
    let TuneError::Shape {
        what,
        expected,
        actual,
    } = err
    else {
        panic!("expected a shape error, got {err:?}");
    };
    assert_eq!(what, "features");
    assert_eq!(
        expected,
        format!("{} x 4 values, more than usize can count", usize::MAX)
    );
    assert_eq!(actual, "40 values");
}
