//! Training an MLP on a synthetic problem: accuracy, reproducibility across
//! thread counts, early stopping and input checks.

use heft_nn::{
    evaluate, train_mlp, AdamConfig, Dataset, Mlp, NnError, OptimiserConfig, SgdConfig, SplitMix64,
    TrainConfig,
};

const FEATURES: usize = 32;
const CLASSES: usize = 4;

/// Returns `n` rows of `FEATURES` features and their labels. Each class is a
/// cloud around its own random centre with coordinates in `[-1, 1]`, so two
/// centres are about `sqrt(32 * 2/3) = 4.6` apart. The noise per axis is a
/// sum of three `U(-0.5, 0.5)` with standard deviation 0.5, so the classes
/// barely overlap.
fn synthetic(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut centres_rng = SplitMix64::new(1000);
    let centres: Vec<f32> = (0..CLASSES * FEATURES)
        .map(|_| centres_rng.uniform(-1.0, 1.0))
        .collect();
    let mut rng = SplitMix64::new(seed);
    let mut x = Vec::with_capacity(n * FEATURES);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let class = rng.below(CLASSES as u64) as usize;
        for f in 0..FEATURES {
            let noise: f32 = (0..3).map(|_| rng.uniform(-0.5, 0.5)).sum();
            x.push(centres[class * FEATURES + f] + noise);
        }
        y.push(class as u32);
    }
    (x, y)
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 64,
        seed: 5,
        optimiser: OptimiserConfig::Adam(AdamConfig::default()),
        patience: None,
        progress: false,
    }
}

fn train_once(threads: usize) -> (Mlp, Vec<f32>) {
    let (x, y) = synthetic(2000, 1);
    let (vx, vy) = synthetic(500, 2);
    let train = Dataset::new(&x, &y, FEATURES).unwrap();
    let val = Dataset::new(&vx, &vy, FEATURES).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut mlp = Mlp::init(&[FEATURES, 128, CLASSES], &mut SplitMix64::new(3)).unwrap();
        let report = train_mlp(&mut mlp, &train, Some(&val), &config()).unwrap();
        let losses = report.epochs.iter().map(|e| e.train_loss).collect();
        (mlp, losses)
    })
}

fn bits(mlp: &Mlp) -> Vec<u32> {
    mlp.parameters()
        .iter()
        .flat_map(|p| p.iter().map(|v| v.to_bits()))
        .collect()
}

#[test]
fn mlp_learns_separable_problem() {
    let (x, y) = synthetic(2000, 1);
    let (vx, vy) = synthetic(500, 2);
    let train = Dataset::new(&x, &y, FEATURES).unwrap();
    let val = Dataset::new(&vx, &vy, FEATURES).unwrap();
    let mut mlp = Mlp::init(&[FEATURES, 128, CLASSES], &mut SplitMix64::new(3)).unwrap();
    let before = evaluate(&mlp, &val, 100).unwrap();
    let report = train_mlp(&mut mlp, &train, Some(&val), &config()).unwrap();

    assert_eq!(report.epochs.len(), 3);
    assert!(!report.stopped_early);
    let last = report.epochs.last().unwrap();
    let val_accuracy = last.val_accuracy.unwrap();
    assert!(val_accuracy > 0.95, "validation accuracy {val_accuracy}");
    assert!(
        last.train_accuracy > 0.95,
        "train accuracy {}",
        last.train_accuracy
    );
    assert!(
        report.epochs[0].train_loss > last.train_loss,
        "loss must fall: {:?}",
        report.epochs
    );
    assert_eq!(evaluate(&mlp, &val, 7).unwrap(), last.val_correct.unwrap());
    assert!(
        before < 400,
        "the untrained model already scores {before} of 500"
    );
}

#[test]
fn training_bitwise_same_on_1_and_2_threads() {
    let (one, losses_one) = train_once(1);
    let (two, losses_two) = train_once(2);
    assert_eq!(bits(&one), bits(&two));
    assert_eq!(losses_one, losses_two);
}

#[test]
fn sgd_momentum_also_learns() {
    let (x, y) = synthetic(1000, 4);
    let train = Dataset::new(&x, &y, FEATURES).unwrap();
    let mut mlp = Mlp::init(&[FEATURES, 32, CLASSES], &mut SplitMix64::new(3)).unwrap();
    let config = TrainConfig {
        epochs: 3,
        batch_size: 32,
        optimiser: OptimiserConfig::Sgd(SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            ..SgdConfig::default()
        }),
        ..TrainConfig::default()
    };
    let report = train_mlp(&mut mlp, &train, None, &config).unwrap();
    let last = report.epochs.last().unwrap();
    assert!(last.train_accuracy > 0.95, "{:?}", report.epochs);
    assert_eq!(last.val_accuracy, None);
}

#[test]
fn early_stop_restores_best_epoch() {
    // Random labels: validation accuracy cannot keep improving, so training
    // stops long before 50 epochs.
    let (x, _) = synthetic(300, 6);
    let mut rng = SplitMix64::new(8);
    let y: Vec<u32> = (0..300).map(|_| rng.below(CLASSES as u64) as u32).collect();
    let (vx, _) = synthetic(200, 7);
    let vy: Vec<u32> = (0..200).map(|_| rng.below(CLASSES as u64) as u32).collect();
    let train = Dataset::new(&x, &y, FEATURES).unwrap();
    let val = Dataset::new(&vx, &vy, FEATURES).unwrap();
    let mut mlp = Mlp::init(&[FEATURES, 16, CLASSES], &mut SplitMix64::new(3)).unwrap();
    let config = TrainConfig {
        epochs: 50,
        batch_size: 50,
        patience: Some(2),
        ..TrainConfig::default()
    };
    let report = train_mlp(&mut mlp, &train, Some(&val), &config).unwrap();
    assert!(report.stopped_early, "{:?}", report.epochs);
    assert_eq!(report.epochs.len(), report.best_epoch + 2);
    let best = report.epochs[report.best_epoch - 1].val_correct.unwrap();
    assert!(report.epochs.iter().all(|e| e.val_correct.unwrap() <= best));
    assert_eq!(
        evaluate(&mlp, &val, 64).unwrap(),
        best,
        "best weights restored"
    );
}

#[test]
fn training_rejects_bad_input() {
    let (x, y) = synthetic(10, 1);
    assert!(Dataset::new(&x, &y, FEATURES + 1).is_err());
    assert!(Dataset::new(&x, &y, 0).is_err());
    let err = Dataset::new(&[], &[], 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dataset::new: columns is 0, but every row needs at least one feature; pass the number \
         of features per row"
    );
    let err = Dataset::new(&x, &y, usize::MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Dataset::new: {} labels of {} features need more values than usize can count, but \
             there are {}; check columns",
            y.len(),
            usize::MAX,
            x.len()
        )
    );
    let train = Dataset::new(&x, &y, FEATURES).unwrap();
    let mut mlp = Mlp::init(&[FEATURES, 4, CLASSES], &mut SplitMix64::new(3)).unwrap();

    let zero_batch = TrainConfig {
        batch_size: 0,
        ..TrainConfig::default()
    };
    assert!(matches!(
        train_mlp(&mut mlp, &train, None, &zero_batch),
        Err(NnError::InvalidConfig {
            name: "batch_size",
            ..
        })
    ));
    let no_val = TrainConfig {
        patience: Some(3),
        ..TrainConfig::default()
    };
    let err = train_mlp(&mut mlp, &train, None, &no_val).unwrap_err();
    assert!(err.to_string().contains("validation"), "{err}");

    let mut narrow = Mlp::init(&[FEATURES - 1, 4, CLASSES], &mut SplitMix64::new(3)).unwrap();
    let err = train_mlp(&mut narrow, &train, None, &TrainConfig::default()).unwrap_err();
    assert!(err.to_string().contains("model takes 31"), "{err}");

    let bad_labels = vec![9u32; 10];
    let bad = Dataset::new(&x, &bad_labels, FEATURES).unwrap();
    let err = train_mlp(&mut mlp, &bad, None, &TrainConfig::default()).unwrap_err();
    assert!(
        matches!(err, NnError::LabelOutOfRange { label: 9, .. }),
        "{err}"
    );
}

/// A batch size above the number of rows trains on the whole set per step,
/// as a batch size equal to it does, without sizing buffers for the
/// batch size.
#[test]
fn batch_larger_than_data_trains_full_batch() {
    let (x, y) = synthetic(50, 1);
    let train = Dataset::new(&x, &y, FEATURES).unwrap();
    let run = |batch_size| {
        let mut mlp = Mlp::init(&[FEATURES, 8, CLASSES], &mut SplitMix64::new(3)).unwrap();
        let config = TrainConfig {
            batch_size,
            ..config()
        };
        let report = train_mlp(&mut mlp, &train, None, &config).unwrap();
        (mlp, report)
    };

    let (full_mlp, full_report) = run(50);
    let (huge_mlp, huge_report) = run(usize::MAX);
    assert_eq!(huge_report, full_report);
    assert_eq!(huge_mlp, full_mlp);
}

#[test]
fn evaluate_accepts_batch_above_rows() {
    let (x, y) = synthetic(50, 1);
    let data = Dataset::new(&x, &y, FEATURES).unwrap();
    let mlp = Mlp::init(&[FEATURES, 8, CLASSES], &mut SplitMix64::new(3)).unwrap();

    let expected = evaluate(&mlp, &data, 50).unwrap();
    assert_eq!(evaluate(&mlp, &data, usize::MAX).unwrap(), expected);
}

#[test]
fn validation_with_batch_above_rows() {
    let (x, y) = synthetic(50, 1);
    let (vx, vy) = synthetic(20, 2);
    let train = Dataset::new(&x, &y, FEATURES).unwrap();
    let val = Dataset::new(&vx, &vy, FEATURES).unwrap();
    let mut mlp = Mlp::init(&[FEATURES, 8, CLASSES], &mut SplitMix64::new(3)).unwrap();
    let config = TrainConfig {
        batch_size: usize::MAX,
        ..config()
    };

    let report = train_mlp(&mut mlp, &train, Some(&val), &config).unwrap();
    let last = report.epochs.last().unwrap();
    assert_eq!(last.val_correct, Some(evaluate(&mlp, &val, 7).unwrap()));
}
