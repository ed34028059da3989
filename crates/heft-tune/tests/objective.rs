//! The model-level objective against a slow reference: each candidate
//! written into the model, the model's own forward pass over the whole
//! split, then an argmax per row.

use heft_kernels::gemm::argmax_group;
use heft_nn::{Mlp, RecurrentKind, SequenceClassifier, SplitMix64, TokenBatch};
use heft_search::Objective;
use heft_tensor::Matrix;
use heft_tune::{evaluate, tensor_names, Fitness, Model, ModelObjective, Split, Target, TuneError};

mod common;
use common::{dense, target, tokens};

/// Candidates per population in the reference comparisons.
const POPULATION: usize = 8;

fn mlp(sizes: &[usize], seed: u64) -> Model {
    Model::Mlp(Mlp::init(sizes, &mut SplitMix64::new(seed)).unwrap())
}

fn sequence(kind: RecurrentKind, seed: u64) -> Model {
    // vocab 20, embedding 6, hidden 8, 4 classes
    let model = SequenceClassifier::init(kind, 20, 6, 8, 4, &mut SplitMix64::new(seed)).unwrap();
    Model::Sequence(model)
}

/// Returns the initial point, then `count - 1` random points inside the box.
fn population(initial: &[f32], bound: f32, count: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut points = initial.to_vec();
    for _ in 1..count {
        points.extend(initial.iter().map(|&w| {
            let x = w + rng.uniform(-bound, bound);
            x.clamp(w - bound, w + bound)
        }));
    }
    points
}

/// Returns the logits of the model's own forward pass over the whole split.
fn full_forward(model: &Model, split: &Split<'_>) -> Matrix {
    match (model, split) {
        (
            Model::Mlp(mlp),
            Split::Dense {
                features, columns, ..
            },
        ) => {
            let x = Matrix::from_slice(features.len() / columns, *columns, features).unwrap();
            mlp.forward(&x).unwrap()
        }
        (
            Model::Sequence(seq),
            Split::Tokens {
                ids,
                lengths,
                seq_len,
                ..
            },
        ) => seq
            .forward(&TokenBatch::new(ids, lengths, *seq_len).unwrap())
            .unwrap(),
        _ => panic!("split kind does not fit the model"),
    }
}

fn reference_correct(model: &Model, split: &Split<'_>) -> u64 {
    let logits = full_forward(model, split);
    logits
        .as_slice()
        .chunks_exact(logits.cols())
        .zip(split.labels())
        .filter(|(z, &label)| argmax_group(z) == Some(label as usize))
        .count() as u64
}

/// Mean cross-entropy of the full forward pass, summed row by row in f64.
fn reference_cross_entropy(model: &Model, split: &Split<'_>) -> f64 {
    let logits = full_forward(model, split);
    let total: f64 = logits
        .as_slice()
        .chunks_exact(logits.cols())
        .zip(split.labels())
        .map(|(z, &label)| {
            let max = z
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let sum: f64 = z.iter().map(|&v| (f64::from(v) - max).exp()).sum();
            max + sum.ln() - f64::from(z[label as usize])
        })
        .sum();
    total / split.rows() as f64
}

/// Scores a population of random candidates inside the box and checks each
/// fitness against the reference: the exact correct count for
/// [`Fitness::Error`], and both `evaluate` (bit for bit) and a plain f64
/// sum (to 1e-9 relative) for [`Fitness::CrossEntropy`].
fn check_against_reference(
    model: &Model,
    split: Split<'_>,
    target: &Target,
    fitness_kind: Fitness,
    prune: bool,
) -> ModelObjective {
    let bound = 0.05;
    let mut objective = ModelObjective::new(model, target, split, bound, fitness_kind, prune)
        .unwrap_or_else(|e| panic!("{}: {e}", target.tensor));
    let points = population(objective.initial_point(), bound, POPULATION, 7);
    let mut fitness = vec![0.0; POPULATION];
    objective.score(&points, &mut fitness).unwrap();
    assert_eq!(objective.candidates_scored(), POPULATION as u64);

    let rows = split.rows();
    for (p, point) in points.chunks_exact(objective.dim()).enumerate() {
        let mut tuned = model.clone();
        objective.apply(&mut tuned, point).unwrap();
        let evaluation = evaluate(&tuned, split).unwrap();
        match fitness_kind {
            Fitness::Error => {
                let correct = reference_correct(&tuned, &split);
                assert_eq!(
                    fitness[p],
                    1.0 - correct as f64 / rows as f64,
                    "{} candidate {p}: fitness against the reference count {correct}",
                    target.tensor
                );
                assert_eq!(
                    evaluation.correct, correct,
                    "{} candidate {p}",
                    target.tensor
                );
            }
            Fitness::CrossEntropy => {
                assert_eq!(
                    fitness[p].to_bits(),
                    evaluation.mean_cross_entropy.to_bits(),
                    "{} candidate {p}: {} against evaluate's {}",
                    target.tensor,
                    fitness[p],
                    evaluation.mean_cross_entropy
                );
                let reference = reference_cross_entropy(&tuned, &split);
                assert!(
                    (fitness[p] - reference).abs() <= 1e-9 * reference.abs(),
                    "{} candidate {p}: {} against {reference}",
                    target.tensor,
                    fitness[p]
                );
            }
        }
    }
    // A path that ignored the candidate would pass the comparisons above
    // only if the candidates were equal, so check that they differ.
    assert_ne!(
        points[..objective.dim()],
        points[objective.dim()..2 * objective.dim()]
    );
    objective
}

#[test]
fn fc2_matches_reference() {
    // 700 rows cross the 512-row block boundary of every path.
    let model = mlp(&[12, 16, 5], 1);
    let data = dense(700, 12, 5, 2);
    for include_bias in [false, true] {
        for prune in [false, true] {
            let objective = check_against_reference(
                &model,
                data.split(),
                &target("fc2.weight", include_bias),
                Fitness::Error,
                prune,
            );
            if !prune {
                assert_eq!(objective.pruned_fraction(), 0.0);
            }
        }
        let objective = check_against_reference(
            &model,
            data.split(),
            &target("fc2.weight", include_bias),
            Fitness::CrossEntropy,
            true,
        );
        assert_eq!(
            objective.pruned_fraction(),
            0.0,
            "no pruning for cross-entropy"
        );
    }
}

#[test]
fn fc2_pruning_skips_rows() {
    let model = mlp(&[12, 16, 5], 1);
    let data = dense(700, 12, 5, 2);
    let objective = ModelObjective::new(
        &model,
        &target("fc2.weight", true),
        data.split(),
        1e-4,
        Fitness::Error,
        true,
    )
    .unwrap();
    assert!(
        objective.pruned_fraction() > 0.5,
        "pruned fraction {} at bound 1e-4",
        objective.pruned_fraction()
    );
}

#[test]
fn fc1_matches_reference() {
    let model = mlp(&[12, 16, 5], 3);
    let data = dense(700, 12, 5, 4);
    for include_bias in [false, true] {
        for fitness in [Fitness::Error, Fitness::CrossEntropy] {
            let objective = check_against_reference(
                &model,
                data.split(),
                &target("fc1.weight", include_bias),
                fitness,
                true,
            );
            if fitness == Fitness::CrossEntropy {
                assert_eq!(
                    objective.pruned_fraction(),
                    0.0,
                    "no pruning for cross-entropy"
                );
            }
            // Uniform random features have no zeros to skip.
            assert_eq!(objective.skipped_fraction(), 0.0);
        }
    }
}

/// Returns features shaped like images for the sparse GEMM. Each row is
/// zero outside a window of half the columns, whose position cycles
/// through three places, and a third of the values inside it are zero.
fn image_like(rows: usize, columns: usize, classes: usize, seed: u64) -> common::Dense {
    let mut data = dense(rows, columns, classes, seed);
    for (i, row) in data.features.chunks_exact_mut(columns).enumerate() {
        let lo = (i % 3) * columns / 4;
        for (j, x) in row.iter_mut().enumerate() {
            let inside = j >= lo && j < lo + columns / 2;
            if !inside || (i * 31 + j * 17) % 3 == 0 {
                *x = if j % 2 == 0 { 0.0 } else { -0.0 };
            }
        }
    }
    data
}

/// On inputs with many zeros, which the sparse GEMM skips and the error
/// path reorders, every candidate still matches the forward pass, with 1
/// and 2 threads alike.
#[test]
fn fc1_sparse_inputs_match_reference() {
    let model = mlp(&[40, 24, 6], 11);
    // 1,000 rows: many groups of 8, 16 and 32 rows with a partial last one.
    let data = image_like(1000, 40, 6, 12);
    for include_bias in [false, true] {
        let target = target("fc1.weight", include_bias);
        for fitness in [Fitness::Error, Fitness::CrossEntropy] {
            let objective = check_against_reference(&model, data.split(), &target, fitness, true);
            assert!(
                objective.skipped_fraction() > 0.1,
                "{fitness:?}: skipped {}",
                objective.skipped_fraction()
            );
            let one = fitness_with_threads(&model, data.split(), &target, fitness, 1);
            let two = fitness_with_threads(&model, data.split(), &target, fitness, 2);
            assert_eq!(one, two, "{fitness:?}");
        }
    }
}

/// A candidate with a NaN weight takes the dense product, because the
/// sparse one would drop the NaN's products with zero inputs. Its fitness
/// and every other candidate's equal the forward pass of the model with
/// that candidate written in.
#[test]
fn fc1_nan_candidate_matches_reference() {
    let model = mlp(&[40, 24, 6], 13);
    let mut data = image_like(300, 40, 6, 14);
    for row in data.features.chunks_exact_mut(40) {
        row[0] = 0.0;
    }
    let split = data.split();
    for fitness_kind in [Fitness::Error, Fitness::CrossEntropy] {
        let mut objective = ModelObjective::new(
            &model,
            &target("fc1.weight", false),
            split,
            0.05,
            fitness_kind,
            false,
        )
        .unwrap();
        let dim = objective.dim();
        let mut points = population(objective.initial_point(), 0.05, 3, 15);
        // Column 0 is zero in every row, so only the dense product carries
        // this NaN into hidden unit 2 of candidate 1.
        points[dim + 2 * 40] = f32::NAN;
        let mut fitness = vec![0.0; 3];
        objective.score(&points, &mut fitness).unwrap();
        for (p, point) in points.chunks_exact(dim).enumerate() {
            let mut tuned = model.clone();
            objective.apply(&mut tuned, point).unwrap();
            let expected = match fitness_kind {
                Fitness::Error => 1.0 - reference_correct(&tuned, &split) as f64 / 300.0,
                Fitness::CrossEntropy => evaluate(&tuned, split).unwrap().mean_cross_entropy,
            };
            assert_eq!(
                fitness[p].to_bits(),
                expected.to_bits(),
                "{fitness_kind:?} candidate {p}: {} against {expected}",
                fitness[p]
            );
        }
    }
}

#[test]
fn fc1_block_layouts_match_reference() {
    // 8 candidates of 40 outputs make the stacked output 320 columns wide.
    // With 150 rows every block is stored column-major. With 3,200 rows the
    // first block (3,072 rows) is row-major and the second (128 rows)
    // column-major.
    let model = mlp(&[12, 40, 5], 8);
    for rows in [150, 3200] {
        let data = dense(rows, 12, 5, 9);
        for fitness in [Fitness::Error, Fitness::CrossEntropy] {
            check_against_reference(
                &model,
                data.split(),
                &target("fc1.weight", true),
                fitness,
                true,
            );
            let target = target("fc1.weight", true);
            let one = fitness_with_threads(&model, data.split(), &target, fitness, 1);
            let two = fitness_with_threads(&model, data.split(), &target, fitness, 2);
            assert_eq!(one, two, "{rows} rows {fitness:?}");
        }
    }
}

#[test]
fn middle_layer_of_deep_mlp_matches_reference() {
    let model = mlp(&[10, 12, 8, 4], 5);
    let data = dense(300, 10, 4, 6);
    for tensor in ["fc1.weight", "fc2.weight", "fc3.weight"] {
        for fitness in [Fitness::Error, Fitness::CrossEntropy] {
            check_against_reference(&model, data.split(), &target(tensor, true), fitness, true);
        }
    }
}

#[test]
fn single_layer_mlp_matches_reference() {
    let model = mlp(&[10, 3], 5);
    let data = dense(200, 10, 3, 6);
    check_against_reference(
        &model,
        data.split(),
        &target("fc1.weight", true),
        Fitness::Error,
        true,
    );
}

#[test]
fn sequence_fc_matches_reference() {
    let data = tokens(600, 7, 20, 4, 8);
    for kind in [RecurrentKind::Lstm, RecurrentKind::Rnn] {
        let model = sequence(kind, 9);
        for include_bias in [false, true] {
            for fitness in [Fitness::Error, Fitness::CrossEntropy] {
                check_against_reference(
                    &model,
                    data.split(),
                    &target("fc.weight", include_bias),
                    fitness,
                    true,
                );
            }
        }
    }
}

#[test]
fn recurrent_weights_match_reference() {
    let data = tokens(600, 7, 20, 4, 10);
    for kind in [RecurrentKind::Lstm, RecurrentKind::Rnn] {
        let model = sequence(kind, 11);
        for fitness in [Fitness::Error, Fitness::CrossEntropy] {
            check_against_reference(
                &model,
                data.split(),
                &target("rnn.weight_hh_l0", false),
                fitness,
                false,
            );
        }
        check_against_reference(
            &model,
            data.split(),
            &target("rnn.weight_ih_l0", true),
            Fitness::Error,
            false,
        );
        check_against_reference(
            &model,
            data.split(),
            &target("rnn.bias_hh_l0", false),
            Fitness::Error,
            false,
        );
    }
}

#[test]
fn embedding_matches_reference() {
    let data = tokens(200, 5, 20, 4, 12);
    let model = sequence(RecurrentKind::Lstm, 13);
    for fitness in [Fitness::Error, Fitness::CrossEntropy] {
        let objective = check_against_reference(
            &model,
            data.split(),
            &target("emb.weight", false),
            fitness,
            true,
        );
        if fitness == Fitness::CrossEntropy {
            assert_eq!(
                objective.pruned_fraction(),
                0.0,
                "no pruning for cross-entropy"
            );
        }
    }
}

/// Fitness of one population under a rayon pool of `threads` threads.
fn fitness_with_threads(
    model: &Model,
    split: Split<'_>,
    target: &Target,
    fitness_kind: Fitness,
    threads: usize,
) -> Vec<u64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut objective =
            ModelObjective::new(model, target, split, 0.05, fitness_kind, true).unwrap();
        let points = population(objective.initial_point(), 0.05, POPULATION, 21);
        let mut fitness = vec![0.0; POPULATION];
        objective.evaluate(&points, objective.dim(), &mut fitness);
        fitness.iter().map(|f| f.to_bits()).collect()
    })
}

#[test]
fn fitness_same_with_one_and_two_threads() {
    let mlp_model = mlp(&[12, 16, 5], 14);
    let mlp_data = dense(700, 12, 5, 15);
    let seq_model = sequence(RecurrentKind::Lstm, 16);
    let seq_data = tokens(600, 6, 20, 4, 17);
    let cases: [(&Model, Split<'_>, &str); 4] = [
        (&mlp_model, mlp_data.split(), "fc2.weight"),
        (&mlp_model, mlp_data.split(), "fc1.weight"),
        (&seq_model, seq_data.split(), "fc.weight"),
        (&seq_model, seq_data.split(), "rnn.weight_hh_l0"),
    ];
    for (model, split, tensor) in cases {
        for fitness in [Fitness::Error, Fitness::CrossEntropy] {
            let target = target(tensor, true);
            let one = fitness_with_threads(model, split, &target, fitness, 1);
            let two = fitness_with_threads(model, split, &target, fitness, 2);
            assert_eq!(one, two, "{tensor} {fitness:?}");
        }
    }
}

#[test]
fn apply_then_evaluate_reproduces_fitness() {
    let model = mlp(&[12, 16, 5], 18);
    let data = dense(300, 12, 5, 19);
    let target = target("fc2.weight", true);
    let mut objective =
        ModelObjective::new(&model, &target, data.split(), 0.05, Fitness::Error, true).unwrap();
    let points = population(objective.initial_point(), 0.05, 4, 20);
    let mut fitness = vec![0.0; 4];
    objective.score(&points, &mut fitness).unwrap();
    let best = (0..4)
        .min_by(|&a, &b| fitness[a].total_cmp(&fitness[b]))
        .unwrap();
    let mut tuned = model.clone();
    objective
        .apply(
            &mut tuned,
            &points[best * objective.dim()..(best + 1) * objective.dim()],
        )
        .unwrap();
    let evaluation = evaluate(&tuned, data.split()).unwrap();
    assert_eq!(1.0 - evaluation.accuracy(), fitness[best]);
    assert_eq!(evaluation.confusion.iter().sum::<u64>(), 300);
    let diagonal: u64 = (0..5).map(|c| evaluation.confusion[c * 5 + c]).sum();
    assert_eq!(diagonal, evaluation.correct);
}

#[test]
fn initial_point_is_tensor_then_bias() {
    let model = mlp(&[12, 16, 5], 22);
    let data = dense(50, 12, 5, 23);
    let Model::Mlp(net) = &model else {
        unreachable!()
    };
    let objective = ModelObjective::new(
        &model,
        &target("fc2.weight", true),
        data.split(),
        0.01,
        Fitness::Error,
        false,
    )
    .unwrap();
    assert_eq!(objective.dim(), 16 * 5 + 5);
    assert_eq!(
        &objective.initial_point()[..80],
        net.layers()[1].weight().as_slice()
    );
    assert_eq!(&objective.initial_point()[80..], net.layers()[1].bias());
    assert_eq!(objective.bound(), 0.01);
}

#[test]
fn tensor_names_list_weights() {
    assert_eq!(
        tensor_names(&mlp(&[4, 3, 2], 0)),
        ["fc1.weight", "fc2.weight"]
    );
    assert_eq!(
        tensor_names(&sequence(RecurrentKind::Rnn, 0)),
        [
            "emb.weight",
            "rnn.weight_ih_l0",
            "rnn.weight_hh_l0",
            "rnn.bias_ih_l0",
            "rnn.bias_hh_l0",
            "fc.weight"
        ]
    );
}

fn new_error(model: &Model, target: &Target, split: Split<'_>, bound: f32) -> TuneError {
    match ModelObjective::new(model, target, split, bound, Fitness::Error, true) {
        Ok(_) => panic!("expected an error for {target:?} at bound {bound}"),
        Err(e) => e,
    }
}

#[test]
fn unknown_tensor_lists_names() {
    let model = mlp(&[4, 3, 2], 0);
    let data = dense(10, 4, 2, 0);
    let error = new_error(&model, &target("fc3.weight", false), data.split(), 0.01);
    assert!(
        matches!(error, TuneError::UnknownTensor { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("fc3.weight"), "{message}");
    assert!(message.contains("fc1.weight, fc2.weight"), "{message}");
}

#[test]
fn bias_option_without_bias_rejected() {
    let model = sequence(RecurrentKind::Lstm, 0);
    let data = tokens(10, 4, 20, 4, 0);
    for tensor in ["emb.weight", "rnn.bias_hh_l0"] {
        let error = new_error(&model, &target(tensor, true), data.split(), 0.01);
        assert!(matches!(error, TuneError::NoBias { .. }), "{error:?}");
    }
}

#[test]
fn invalid_bound_rejected() {
    let model = mlp(&[4, 3, 2], 0);
    let data = dense(10, 4, 2, 0);
    for bound in [0.0, -0.01, f32::NAN, f32::INFINITY] {
        let error = new_error(&model, &target("fc2.weight", false), data.split(), bound);
        assert!(matches!(error, TuneError::Bound(_)), "{bound}: {error:?}");
    }
}

#[test]
fn mismatched_split_rejected() {
    let model = mlp(&[4, 3, 2], 0);
    let wrong_columns = dense(10, 5, 2, 0);
    let error = new_error(
        &model,
        &target("fc1.weight", false),
        wrong_columns.split(),
        0.01,
    );
    let message = error.to_string();
    assert!(
        matches!(error, TuneError::SplitMismatch { .. }),
        "{error:?}"
    );
    assert!(message.contains('4') && message.contains('5'), "{message}");

    let too_many_classes = dense(10, 4, 3, 1);
    let error = new_error(
        &model,
        &target("fc1.weight", false),
        too_many_classes.split(),
        0.01,
    );
    assert!(
        matches!(error, TuneError::Label { classes: 2, .. }),
        "{error:?}"
    );

    let text = tokens(10, 4, 20, 2, 0);
    let error = new_error(&model, &target("fc1.weight", false), text.split(), 0.01);
    assert!(
        matches!(error, TuneError::SplitMismatch { .. }),
        "{error:?}"
    );

    let seq = sequence(RecurrentKind::Lstm, 0);
    let large_ids = tokens(10, 4, 40, 4, 0);
    let error = new_error(&seq, &target("fc.weight", false), large_ids.split(), 0.01);
    assert!(
        matches!(error, TuneError::SplitMismatch { .. }),
        "{error:?}"
    );
}

#[test]
fn empty_split_rejected() {
    let model = mlp(&[4, 3, 2], 0);
    let empty = Split::Dense {
        features: &[],
        columns: 4,
        labels: &[],
    };
    let error = new_error(&model, &target("fc2.weight", false), empty, 0.01);
    assert_eq!(error, TuneError::EmptySplit);
    assert!(evaluate(&model, empty).is_err());
}

#[test]
fn malformed_population_rejected() {
    let model = mlp(&[4, 3, 2], 0);
    let data = dense(10, 4, 2, 0);
    let mut objective = ModelObjective::new(
        &model,
        &target("fc1.weight", false),
        data.split(),
        0.01,
        Fitness::Error,
        false,
    )
    .unwrap();
    let mut fitness = vec![0.0; 2];
    assert!(objective.score(&[0.0; 5], &mut fitness).is_err());
    objective.evaluate(&[0.0; 22], 11, &mut fitness);
    assert!(fitness.iter().all(|f| f.is_nan()));
    let mut wrong_kind = sequence(RecurrentKind::Rnn, 0);
    assert!(objective.apply(&mut wrong_kind, &[0.0; 12]).is_err());
    let mut same = model.clone();
    assert!(objective.apply(&mut same, &[0.0; 11]).is_err());
}
