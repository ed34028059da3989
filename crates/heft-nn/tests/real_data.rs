//! Training on the embedded datasets: the Fashion-MNIST subset (12,000
//! training and 2,000 test images) and the sentiment corpus (6,000 texts,
//! three balanced classes).

use heft_data::embedded;
use heft_nn::{
    evaluate, evaluate_sequences, train_mlp, train_sequence_classifier, AdamConfig, Dataset, Mlp,
    OptimiserConfig, RecurrentKind, SequenceClassifier, SequenceDataset, SplitMix64, TrainConfig,
};

/// A 784-128-10 MLP trained for 5 epochs with Adam (lr 1e-3, batch 64) on
/// 80 % of the embedded training subset reaches 83.40 % accuracy on the
/// embedded 2,000-image test set (1,668 correct with these seeds). It
/// scores 84.25 % on the held-out 20 %. The test requires more than 80 %.
#[test]
fn mlp_fashion_mnist_above_80_percent() {
    let train_images = embedded::fashion_mnist(heft_data::Subset::Train).unwrap();
    let test_images = embedded::fashion_mnist(heft_data::Subset::Test).unwrap();
    assert_eq!(train_images.len(), 12_000);
    assert_eq!(test_images.len(), 2_000);
    let columns = train_images.features();
    let pixels = train_images.to_f32();
    let labels: Vec<u32> = train_images
        .labels()
        .iter()
        .map(|&l| u32::from(l))
        .collect();

    // Train on 80 % and validate on 20 % of the training subset.
    let split = heft_data::split_indices(train_images.len(), 0.2, 7).unwrap();
    let take = |rows: &[usize]| -> (Vec<f32>, Vec<u32>) {
        let mut x = Vec::with_capacity(rows.len() * columns);
        let mut y = Vec::with_capacity(rows.len());
        for &row in rows {
            x.extend_from_slice(&pixels[row * columns..(row + 1) * columns]);
            y.push(labels[row]);
        }
        (x, y)
    };
    let (train_x, train_y) = take(&split.train);
    let (val_x, val_y) = take(&split.valid);
    let train = Dataset::new(&train_x, &train_y, columns).unwrap();
    let val = Dataset::new(&val_x, &val_y, columns).unwrap();

    let test_x = test_images.to_f32();
    let test_y: Vec<u32> = test_images.labels().iter().map(|&l| u32::from(l)).collect();
    let test = Dataset::new(&test_x, &test_y, columns).unwrap();

    let mut mlp = Mlp::init(&[columns, 128, 10], &mut SplitMix64::new(1)).unwrap();
    let config = TrainConfig {
        epochs: 5,
        batch_size: 64,
        seed: 3,
        optimiser: OptimiserConfig::Adam(AdamConfig::default()),
        patience: None,
        progress: false,
    };
    let report = train_mlp(&mut mlp, &train, Some(&val), &config).unwrap();
    let correct = evaluate(&mlp, &test, 500).unwrap();
    let accuracy = correct as f64 / test.len() as f64;
    eprintln!(
        "fashion-mnist: validation {:?}, test {correct}/{} = {:.2} %",
        report.epochs.last().and_then(|e| e.val_accuracy),
        test.len(),
        100.0 * accuracy
    );
    assert!(accuracy > 0.80, "test accuracy {accuracy}");
}

/// An LSTM classifier (embedding 32, hidden 64) trained for 4 epochs with
/// Adam (lr 5e-3, batch 32) on the training part of the embedded sentiment
/// corpus reaches 65.67 % on its 1,200-text validation part (788 correct).
/// Always predicting the most frequent training class scores 32.50 % there.
/// The test requires 10 points above the majority class.
#[test]
fn lstm_sentiment_beats_majority_class() {
    let options = heft_data::TextOptions {
        cache: heft_data::CachePolicy::Off,
        ..embedded::sentiment_options()
    };
    let corpus = embedded::sentiment(&options).unwrap();
    let seq_len = corpus.max_len();
    let classes = corpus.classes().len();

    // heft-nn needs a true length of at least 1, so a text with no tokens
    // becomes one padding token, which the model reads like any other id.
    let take = |indices: &[u32]| -> (Vec<u32>, Vec<usize>, Vec<u32>) {
        let mut ids = Vec::with_capacity(indices.len() * seq_len);
        let mut lengths = Vec::with_capacity(indices.len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let i = i as usize;
            ids.extend_from_slice(&corpus.ids()[i * seq_len..(i + 1) * seq_len]);
            lengths.push((corpus.lengths()[i] as usize).max(1));
            labels.push(corpus.labels()[i]);
        }
        (ids, lengths, labels)
    };
    let (train_ids, train_lengths, train_labels) = take(corpus.train_indices());
    let (val_ids, val_lengths, val_labels) = take(corpus.valid_indices());
    let train = SequenceDataset::new(&train_ids, &train_lengths, &train_labels, seq_len).unwrap();
    let val = SequenceDataset::new(&val_ids, &val_lengths, &val_labels, seq_len).unwrap();

    // The majority class of the training part, scored on the validation part.
    let mut counts = vec![0usize; classes];
    for &label in &train_labels {
        counts[label as usize] += 1;
    }
    let majority = (0..classes).max_by_key(|&c| counts[c]).unwrap() as u32;
    let majority_correct = val_labels.iter().filter(|&&l| l == majority).count();
    let majority_accuracy = majority_correct as f64 / val.len() as f64;

    let mut model = SequenceClassifier::init(
        RecurrentKind::Lstm,
        corpus.vocab().len(),
        32,
        64,
        classes,
        &mut SplitMix64::new(1),
    )
    .unwrap();
    let config = TrainConfig {
        epochs: 4,
        batch_size: 32,
        seed: 3,
        optimiser: OptimiserConfig::Adam(AdamConfig {
            lr: 5e-3,
            ..AdamConfig::default()
        }),
        patience: None,
        progress: false,
    };
    let report = train_sequence_classifier(&mut model, &train, Some(&val), &config).unwrap();
    let correct = evaluate_sequences(&model, &val, 256).unwrap();
    let accuracy = correct as f64 / val.len() as f64;
    eprintln!(
        "sentiment: per-epoch validation {:?}, final {correct}/{} = {:.2} %, majority {:.2} %",
        report
            .epochs
            .iter()
            .map(|e| e.val_accuracy)
            .collect::<Vec<_>>(),
        val.len(),
        100.0 * accuracy,
        100.0 * majority_accuracy
    );
    assert!(
        accuracy > majority_accuracy + 0.10,
        "validation accuracy {accuracy}, majority class {majority_accuracy}"
    );
}
