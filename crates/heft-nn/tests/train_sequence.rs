//! Training the sequence classifier on a synthetic padded task: label 1 if
//! the sequence contains token 3, else 0.

use heft_nn::{
    evaluate_sequences, train_sequence_classifier, AdamConfig, OptimiserConfig, RecurrentKind,
    SequenceClassifier, SequenceDataset, SequenceWorkspace, SplitMix64, TrainConfig,
};

const VOCAB: usize = 8;
const SEQ_LEN: usize = 10;
const MARKER: u32 = 3;

/// Returns right-padded ids, lengths in `3..=SEQ_LEN` and labels. Half of
/// the sequences hold the marker once at a random position; the others
/// never hold it.
fn synthetic(n: usize, seed: u64) -> (Vec<u32>, Vec<usize>, Vec<u32>) {
    let mut rng = SplitMix64::new(seed);
    let mut ids = vec![0u32; n * SEQ_LEN];
    let mut lengths = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for row in ids.chunks_exact_mut(SEQ_LEN) {
        let len = 3 + rng.below((SEQ_LEN - 2) as u64) as usize;
        for id in &mut row[..len] {
            // Tokens 1..VOCAB except the marker.
            let mut token = 1 + rng.below(VOCAB as u64 - 2) as u32;
            if token >= MARKER {
                token += 1;
            }
            *id = token;
        }
        let label = rng.below(2) as u32;
        if label == 1 {
            row[rng.below(len as u64) as usize] = MARKER;
        }
        lengths.push(len);
        labels.push(label);
    }
    (ids, lengths, labels)
}

fn config(batch_size: usize) -> TrainConfig {
    TrainConfig {
        epochs: 8,
        batch_size,
        seed: 2,
        optimiser: OptimiserConfig::Adam(AdamConfig {
            lr: 1e-2,
            ..AdamConfig::default()
        }),
        patience: None,
        progress: false,
    }
}

/// Trains on 1,000 synthetic sequences on a pool of `threads` threads and
/// returns the model and the final validation accuracy.
fn train(kind: RecurrentKind, threads: usize, config: &TrainConfig) -> (SequenceClassifier, f32) {
    let (ids, lengths, labels) = synthetic(1000, 1);
    let (vids, vlengths, vlabels) = synthetic(300, 2);
    let train = SequenceDataset::new(&ids, &lengths, &labels, SEQ_LEN).unwrap();
    let val = SequenceDataset::new(&vids, &vlengths, &vlabels, SEQ_LEN).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut model =
            SequenceClassifier::init(kind, VOCAB, 8, 16, 2, &mut SplitMix64::new(4)).unwrap();
        let report = train_sequence_classifier(&mut model, &train, Some(&val), config).unwrap();
        let accuracy = report.epochs.last().unwrap().val_accuracy.unwrap();
        assert_eq!(
            evaluate_sequences(&model, &val, 7).unwrap(),
            report.epochs.last().unwrap().val_correct.unwrap()
        );
        (model, accuracy)
    })
}

#[test]
fn lstm_learns_marker_task() {
    let (_, accuracy) = train(RecurrentKind::Lstm, 1, &config(32));
    // The classes are balanced, so the majority class scores about 0.5.
    assert!(accuracy > 0.9, "validation accuracy {accuracy}");
}

#[test]
fn rnn_learns_marker_task() {
    let (_, accuracy) = train(RecurrentKind::Rnn, 1, &config(32));
    assert!(accuracy > 0.9, "validation accuracy {accuracy}");
}

fn bits(model: &SequenceClassifier) -> Vec<u32> {
    model
        .parameters()
        .iter()
        .flat_map(|p| p.iter().map(|v| v.to_bits()))
        .collect()
}

/// Batches of 36 run as shards of 16, 16 and 4 rows, and the last batch
/// of each epoch (28 rows) as 16 and 12, so the shards are uneven and
/// outnumber the threads. The weights must not depend on the pool size.
#[test]
fn sequence_training_same_on_1_2_and_3_threads() {
    let config = config(36);
    assert!(config.batch_size > 2 * SequenceWorkspace::SHARD_ROWS);
    assert!(1000 % config.batch_size > SequenceWorkspace::SHARD_ROWS);
    for kind in [RecurrentKind::Lstm, RecurrentKind::Rnn] {
        let (one, _) = train(kind, 1, &config);
        for threads in [2, 3] {
            let (many, _) = train(kind, threads, &config);
            assert!(
                bits(&one) == bits(&many),
                "{kind:?}: the weights trained on 1 and {threads} threads differ"
            );
        }
    }
}

#[test]
fn sequence_dataset_rejects_bad_input() {
    let (ids, lengths, labels) = synthetic(10, 1);
    assert!(SequenceDataset::new(&ids, &lengths, &labels[..9], SEQ_LEN).is_err());
    assert!(SequenceDataset::new(&ids, &lengths, &labels, SEQ_LEN - 1).is_err());
    let mut long = lengths.clone();
    long[0] = SEQ_LEN + 1;
    assert!(SequenceDataset::new(&ids, &long, &labels, SEQ_LEN).is_err());
}

/// A batch size above the number of sequences trains on the whole set per
/// step, as a batch size equal to it does, without allocating shards for
/// the batch size.
#[test]
fn batch_larger_than_data_trains_full_batch() {
    let (ids, lengths, labels) = synthetic(40, 1);
    let train = SequenceDataset::new(&ids, &lengths, &labels, SEQ_LEN).unwrap();
    let run = |batch_size| {
        let mut model = SequenceClassifier::init(
            RecurrentKind::Lstm,
            VOCAB,
            8,
            16,
            2,
            &mut SplitMix64::new(4),
        )
        .unwrap();
        let config = TrainConfig {
            epochs: 2,
            ..config(batch_size)
        };
        let report = train_sequence_classifier(&mut model, &train, None, &config).unwrap();
        (model, report)
    };

    let (full_model, full_report) = run(40);
    let (huge_model, huge_report) = run(usize::MAX);
    assert_eq!(huge_report, full_report);
    assert!(bits(&huge_model) == bits(&full_model));
}
