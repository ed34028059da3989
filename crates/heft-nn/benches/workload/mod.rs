//! The training workloads timed by `benches/train.rs` and
//! `examples/train_epoch.rs`, shared so both time the same thing.

use heft_data::{embedded, ImageDataset, Subset};
use heft_nn::{
    train_mlp, train_sequence_classifier, AdamConfig, Dataset, Mlp, OptimiserConfig, RecurrentKind,
    SequenceClassifier, SequenceDataset, SplitMix64, TrainConfig,
};
use std::path::Path;

/// Rows of the MLP epoch, as in the comparison with PyTorch.
pub const MLP_ROWS: usize = 48_000;
/// Directory of the complete Fashion-MNIST from the Debian package
/// `dataset-fashion-mnist`.
pub const FULL_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// Images `[MLP_ROWS, 784]` scaled to `[0, 1]`, their labels and where they
/// came from.
pub struct Images {
    /// Pixels, `[MLP_ROWS, columns]` row-major.
    pub features: Vec<f32>,
    /// One class per image.
    pub labels: Vec<u32>,
    /// Pixels per image, 784.
    pub columns: usize,
    /// Source of the images, for the benchmark output.
    pub source: String,
}

/// Loads the first 48,000 images of the complete Fashion-MNIST training
/// set if it is installed, else the embedded 12,000-image subset repeated
/// four times.
pub fn fashion_mnist_48k() -> Images {
    let full = Path::new(FULL_FASHION_MNIST);
    let (images, source) = match ImageDataset::from_dir(full, Subset::Train, 10) {
        Ok(images) => (
            images,
            format!("{FULL_FASHION_MNIST} (first {MLP_ROWS} images)"),
        ),
        Err(_) => (
            embedded::fashion_mnist(Subset::Train).expect("the embedded Fashion-MNIST subset"),
            format!("embedded subset repeated to {MLP_ROWS} images"),
        ),
    };
    let columns = images.features();
    let pixels = images.to_f32();
    let mut features = Vec::with_capacity(MLP_ROWS * columns);
    let mut labels = Vec::with_capacity(MLP_ROWS);
    for row in (0..images.len()).cycle().take(MLP_ROWS) {
        features.extend_from_slice(&pixels[row * columns..(row + 1) * columns]);
        labels.push(u32::from(images.labels()[row]));
    }
    Images {
        features,
        labels,
        columns,
        source,
    }
}

/// Returns the MLP settings: one epoch, batch 100, Adam with PyTorch's defaults, no validation.
pub fn mlp_config() -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch_size: 100,
        seed: 0,
        optimiser: OptimiserConfig::Adam(AdamConfig::default()),
        patience: None,
        progress: false,
    }
}

/// Creates a 784-128-10 MLP with seeded PyTorch-default initialisation.
pub fn mlp(columns: usize) -> Mlp {
    Mlp::init(&[columns, 128, 10], &mut SplitMix64::new(1)).expect("valid sizes")
}

/// Trains `mlp` for one epoch on `images`.
pub fn mlp_epoch(mlp: &mut Mlp, images: &Images) {
    let data = Dataset::new(&images.features, &images.labels, images.columns).expect("valid data");
    train_mlp(mlp, &data, None, &mlp_config()).expect("training runs");
}

/// The training part of the embedded sentiment corpus, right-padded to the
/// corpus's sequence length, with texts of no tokens given length 1.
pub struct Sequences {
    /// Token ids, `[len, seq_len]` row-major.
    pub ids: Vec<u32>,
    /// True length of each sequence, at least 1.
    pub lengths: Vec<usize>,
    /// One class per sequence.
    pub labels: Vec<u32>,
    /// Padded sequence length.
    pub seq_len: usize,
    /// Vocabulary size, the reserved ids included.
    pub vocab: usize,
    /// Number of classes.
    pub classes: usize,
}

/// Loads the training part of the embedded sentiment corpus.
pub fn sentiment_train() -> Sequences {
    let options = heft_data::TextOptions {
        cache: heft_data::CachePolicy::Off,
        ..embedded::sentiment_options()
    };
    let corpus = embedded::sentiment(&options).expect("the embedded sentiment corpus");
    let seq_len = corpus.max_len();
    let mut out = Sequences {
        ids: Vec::new(),
        lengths: Vec::new(),
        labels: Vec::new(),
        seq_len,
        vocab: corpus.vocab().len(),
        classes: corpus.classes().len(),
    };
    for &i in corpus.train_indices() {
        let i = i as usize;
        out.ids
            .extend_from_slice(&corpus.ids()[i * seq_len..(i + 1) * seq_len]);
        out.lengths.push((corpus.lengths()[i] as usize).max(1));
        out.labels.push(corpus.labels()[i]);
    }
    out
}

/// Embedding size of the LSTM classifier.
pub const LSTM_EMBED: usize = 32;
/// Hidden size of the LSTM.
pub const LSTM_HIDDEN: usize = 64;
/// Sequences per batch in the LSTM epoch.
pub const LSTM_BATCH: usize = 32;

/// Creates an LSTM classifier for `data` with seeded initialisation.
pub fn lstm(data: &Sequences) -> SequenceClassifier {
    SequenceClassifier::init(
        RecurrentKind::Lstm,
        data.vocab,
        LSTM_EMBED,
        LSTM_HIDDEN,
        data.classes,
        &mut SplitMix64::new(1),
    )
    .expect("valid sizes")
}

/// Trains `model` for one epoch on `data`, batch 32, Adam with lr 5e-3.
pub fn lstm_epoch(model: &mut SequenceClassifier, data: &Sequences) {
    let train = SequenceDataset::new(&data.ids, &data.lengths, &data.labels, data.seq_len)
        .expect("valid data");
    let config = TrainConfig {
        epochs: 1,
        batch_size: LSTM_BATCH,
        seed: 0,
        optimiser: OptimiserConfig::Adam(AdamConfig {
            lr: 5e-3,
            ..AdamConfig::default()
        }),
        patience: None,
        progress: false,
    };
    train_sequence_classifier(model, &train, None, &config).expect("training runs");
}
