//! The default datasets shipped in the repository's `datasets/` directory.
//!
//! - `datasets/fashion-mnist/`: a class-balanced subset of Fashion-MNIST,
//!   12,000 training images (1,200 per class) and 2,000 test images (200 per
//!   class), as IDX `.gz`.
//! - `datasets/sentiment/sentiment-6000.csv`: 6,000 records (2,000 per class)
//!   of a 3-class English sentiment corpus, columns `sentiment,confidence,text`.
//!
//! The directory is found at compile time relative to this crate's sources,
//! so these functions work from a checkout of the repository. Set the
//! environment variable `HEFT_DATASETS` to use another directory.

use std::path::PathBuf;

use crate::error::Result;
use crate::image::{ImageDataset, Subset};
use crate::text::{Column, TextCorpus, TextOptions};

/// Number of Fashion-MNIST classes.
pub const FASHION_MNIST_CLASSES: usize = 10;

/// Fashion-MNIST class names, by label.
pub const FASHION_MNIST_CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// File name of the embedded sentiment subset inside `sentiment/`.
pub const SENTIMENT_FILE: &str = "sentiment-6000.csv";

/// Returns the `datasets/` directory: `HEFT_DATASETS` if set, otherwise
/// the repository's `datasets/` two levels above this crate.
pub fn datasets_dir() -> PathBuf {
    match std::env::var_os("HEFT_DATASETS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets")),
    }
}

/// Loads the embedded Fashion-MNIST subset.
pub fn fashion_mnist(subset: Subset) -> Result<ImageDataset> {
    ImageDataset::from_dir(
        datasets_dir().join("fashion-mnist"),
        subset,
        FASHION_MNIST_CLASSES,
    )
}

/// Returns options for the embedded sentiment corpus: label column
/// `sentiment`, text column `text`, other options at their defaults.
pub fn sentiment_options() -> TextOptions {
    TextOptions {
        label_column: Column::Name("sentiment".to_string()),
        text_column: Column::Name("text".to_string()),
        ..TextOptions::default()
    }
}

/// Returns the path of the embedded sentiment corpus.
pub fn sentiment_path() -> PathBuf {
    datasets_dir().join("sentiment").join(SENTIMENT_FILE)
}

/// Loads the embedded sentiment corpus with the given options (start from
/// [`sentiment_options`]).
pub fn sentiment(options: &TextOptions) -> Result<TextCorpus> {
    TextCorpus::load(sentiment_path(), options)
}
