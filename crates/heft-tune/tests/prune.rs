//! Row pruning of tensors before the last layer: with pruning on, every
//! candidate's fitness must equal, bit for bit, the fitness of the full scan,
//! and pruning must actually skip rows.

use heft_data::embedded;
use heft_nn::{
    train_mlp, AdamConfig, Dataset, Mlp, OptimiserConfig, RecurrentKind, SequenceClassifier,
    SplitMix64, TrainConfig,
};
use heft_tune::{Fitness, Model, ModelObjective, Split, Target};

mod common;
use common::{dense, target, tokens, Dense};

/// Returns a seeded population around `initial`: the initial point, the
/// two uniform corners `initial + bound` and `initial - bound`, four
/// corners with random signs, and four uniform points of the box.
fn population(initial: &[f32], bound: f32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut points = initial.to_vec();
    points.extend(initial.iter().map(|&w| w + bound));
    points.extend(initial.iter().map(|&w| w - bound));
    for _ in 0..4 {
        points.extend(initial.iter().map(|&w| {
            if rng.below(2) == 0 {
                w - bound
            } else {
                w + bound
            }
        }));
    }
    for _ in 0..4 {
        points.extend(initial.iter().map(|&w| w + rng.uniform(-bound, bound)));
    }
    points
}

/// Pruned and full-scan fitness of the same population, as bit patterns,
/// and the pruned objective.
struct Comparison {
    pruned: Vec<u64>,
    full: Vec<u64>,
    objective: ModelObjective,
}

fn compare(
    model: &Model,
    split: Split<'_>,
    target: &Target,
    bound: f32,
    points: Option<&[f32]>,
) -> Comparison {
    let mut pruned = ModelObjective::new(model, target, split, bound, Fitness::Error, true)
        .unwrap_or_else(|e| panic!("{}: {e}", target.tensor));
    let mut full = ModelObjective::new(model, target, split, bound, Fitness::Error, false).unwrap();
    assert_eq!(full.pruned_fraction(), 0.0);
    let generated;
    let points = match points {
        Some(points) => points,
        None => {
            generated = population(pruned.initial_point(), bound, 17);
            &generated
        }
    };
    let candidates = points.len() / pruned.dim();
    let mut pruned_fitness = vec![0.0; candidates];
    let mut full_fitness = vec![0.0; candidates];
    pruned.score(points, &mut pruned_fitness).unwrap();
    full.score(points, &mut full_fitness).unwrap();
    let bits = |f: &[f64]| f.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    Comparison {
        pruned: bits(&pruned_fitness),
        full: bits(&full_fitness),
        objective: pruned,
    }
}

/// Checks that pruning at `bound` skips rows, that the full scans of the
/// candidates differ (so some rows change prediction inside the box), and
/// that every candidate's fitness is the same with and without pruning.
fn check_exact(model: &Model, split: Split<'_>, target: &Target, bound: f32) {
    let name = format!(
        "{} (bias {}) at bound {bound}",
        target.tensor, target.include_bias
    );
    let result = compare(model, split, target, bound, None);
    let fraction = result.objective.pruned_fraction();
    println!("{name}: pruned fraction {fraction:.3}");
    assert!(
        fraction > 0.0,
        "{name}: no row pruned, so the test proves nothing"
    );
    let distinct: std::collections::BTreeSet<u64> = result.full.iter().copied().collect();
    assert!(
        distinct.len() > 1,
        "{name}: every candidate scores the same, so no open row changes prediction"
    );
    for (p, (pruned, full)) in result.pruned.iter().zip(&result.full).enumerate() {
        assert_eq!(
            f64::from_bits(*pruned),
            f64::from_bits(*full),
            "{name}: candidate {p} differs with pruning"
        );
    }
    assert_eq!(
        result.objective.full_scans(),
        0,
        "{name}: population left the box"
    );
}

#[test]
fn mlp_fc1_matches_full_scan() {
    let model = Model::Mlp(Mlp::init(&[12, 16, 5], &mut SplitMix64::new(1)).unwrap());
    let data = dense(700, 12, 5, 2);
    for include_bias in [false, true] {
        check_exact(
            &model,
            data.split(),
            &target("fc1.weight", include_bias),
            0.01,
        );
    }
}

#[test]
fn deep_mlp_layers_match_full_scan() {
    // fc1 has two layers after it, fc2 one.
    let model = Model::Mlp(Mlp::init(&[10, 12, 8, 4], &mut SplitMix64::new(5)).unwrap());
    let data = dense(600, 10, 4, 6);
    for tensor in ["fc1.weight", "fc2.weight"] {
        for include_bias in [false, true] {
            check_exact(&model, data.split(), &target(tensor, include_bias), 0.01);
        }
    }
}

fn sequence(kind: RecurrentKind, seed: u64) -> Model {
    // vocab 20, embedding 6, hidden 8, 4 classes
    let model = SequenceClassifier::init(kind, 20, 6, 8, 4, &mut SplitMix64::new(seed)).unwrap();
    Model::Sequence(model)
}

#[test]
fn recurrent_weights_match_full_scan() {
    let data = tokens(600, 6, 20, 4, 10);
    // At bound 0.01 no candidate of this LSTM changes any prediction, so
    // its check uses a wider box.
    for (kind, bound) in [(RecurrentKind::Rnn, 0.01), (RecurrentKind::Lstm, 0.05)] {
        let model = sequence(kind, 11);
        for include_bias in [false, true] {
            check_exact(
                &model,
                data.split(),
                &target("rnn.weight_hh_l0", include_bias),
                bound,
            );
        }
    }
}

#[test]
fn other_sequence_tensors_match_full_scan() {
    let data = tokens(600, 6, 20, 4, 12);
    for kind in [RecurrentKind::Rnn, RecurrentKind::Lstm] {
        let model = sequence(kind, 13);
        for (tensor, include_bias) in [
            ("rnn.weight_ih_l0", true),
            ("rnn.bias_ih_l0", false),
            ("rnn.bias_hh_l0", false),
            ("emb.weight", false),
        ] {
            check_exact(&model, data.split(), &target(tensor, include_bias), 0.01);
        }
    }
}

#[test]
fn candidate_outside_box_falls_back_to_full_scan() {
    let mlp = Model::Mlp(Mlp::init(&[12, 16, 5], &mut SplitMix64::new(1)).unwrap());
    let mlp_data = dense(700, 12, 5, 2);
    let lstm = sequence(RecurrentKind::Lstm, 11);
    let lstm_data = tokens(600, 6, 20, 4, 10);
    let cases: [(&Model, Split<'_>, &str); 2] = [
        (&mlp, mlp_data.split(), "fc1.weight"),
        (&lstm, lstm_data.split(), "rnn.weight_hh_l0"),
    ];
    let bound = 0.01;
    for (model, split, tensor) in cases {
        let target = target(tensor, false);
        let initial = ModelObjective::new(model, &target, split, bound, Fitness::Error, true)
            .unwrap()
            .initial_point()
            .to_vec();
        // The second candidate is moved by 0.5, far outside the box, so the
        // fixed rows must be scanned again.
        let mut points = population(&initial, bound, 3);
        let dim = initial.len();
        for x in &mut points[dim..2 * dim] {
            *x += 0.5;
        }
        let result = compare(model, split, &target, bound, Some(&points));
        assert!(
            result.objective.pruned_fraction() > 0.0,
            "{tensor}: nothing pruned"
        );
        assert_eq!(result.objective.full_scans(), 1, "{tensor}");
        assert_eq!(result.pruned, result.full, "{tensor}");
    }
}

/// Trains a 784-128-10 MLP for one epoch on 80 % of the embedded
/// Fashion-MNIST training subset. Then it prunes `fc1.weight` on the other
/// 20 % (2,400 images) at bounds 0.01 and 0.001 and checks a population at
/// the smaller bound against the full scan.
#[test]
fn fashion_mnist_fc1_pruning() {
    let images = embedded::fashion_mnist(heft_data::Subset::Train).unwrap();
    let columns = images.features();
    let pixels = images.to_f32();
    let labels: Vec<u32> = images.labels().iter().map(|&l| u32::from(l)).collect();
    let split = heft_data::split_indices(images.len(), 0.2, 0).unwrap();
    let take = |rows: &[usize]| -> Dense {
        let mut features = Vec::with_capacity(rows.len() * columns);
        let mut y = Vec::with_capacity(rows.len());
        for &row in rows {
            features.extend_from_slice(&pixels[row * columns..(row + 1) * columns]);
            y.push(labels[row]);
        }
        Dense {
            features,
            columns,
            labels: y,
        }
    };
    let train = take(&split.train);
    let valid = take(&split.valid);

    let mut mlp = Mlp::init(&[columns, 128, 10], &mut SplitMix64::new(0)).unwrap();
    let config = TrainConfig {
        epochs: 1,
        batch_size: 64,
        seed: 0,
        optimiser: OptimiserConfig::Adam(AdamConfig::default()),
        patience: None,
        progress: false,
    };
    let train_set = Dataset::new(&train.features, &train.labels, columns).unwrap();
    train_mlp(&mut mlp, &train_set, None, &config).unwrap();
    let model = Model::Mlp(mlp);

    let target = target("fc1.weight", false);
    let mut fractions = Vec::new();
    for bound in [0.01f32, 0.001] {
        let objective =
            ModelObjective::new(&model, &target, valid.split(), bound, Fitness::Error, true)
                .unwrap();
        let fraction = objective.pruned_fraction();
        println!("fashion-mnist fc1.weight: pruned fraction {fraction:.4} at bound {bound}");
        fractions.push(fraction);
    }
    assert!(
        fractions[1] >= fractions[0],
        "a smaller box must fix at least as many rows: {fractions:?}"
    );

    let initial = ModelObjective::new(&model, &target, valid.split(), 0.001, Fitness::Error, false)
        .unwrap()
        .initial_point()
        .to_vec();
    let mut points = population(&initial, 0.001, 29);
    points.truncate(4 * initial.len());
    let result = compare(&model, valid.split(), &target, 0.001, Some(&points));
    assert_eq!(result.pruned, result.full);
}
