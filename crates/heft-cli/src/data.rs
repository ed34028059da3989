//! Loading the image and text datasets and cutting them into the training,
//! validation and test splits that `train`, `tune` and `eval` share.

use heft_data::{embedded, split_indices, Fnv1a, ImageDataset, Subset, TextCorpus};
use std::path::{Path, PathBuf};

/// Seed of the training/validation split. `train`, `tune` and `eval` use
/// the same one, so the validation images a tuned model is scored on were
/// never used to pre-train it.
pub const SPLIT_SEED: u64 = 0;

/// Dense rows (images) with one label each.
pub struct DenseSplit {
    pub features: Vec<f32>,
    pub columns: usize,
    pub labels: Vec<u32>,
}

/// The three splits of an image dataset.
pub struct ImageSplits {
    pub train: DenseSplit,
    pub valid: DenseSplit,
    pub test: DenseSplit,
    pub classes: usize,
    /// Share of the training images held out as the validation split.
    pub valid_share: f64,
    /// Description of the image source, for messages and `config.json`.
    pub source: String,
}

/// Loads the IDX image/label pairs in `dir` (or the embedded Fashion-MNIST
/// subset) and holds out `valid_share` of the training images.
pub fn load_images(
    dir: Option<&Path>,
    classes: usize,
    valid_share: f64,
) -> Result<ImageSplits, String> {
    let (train, test, source) = match dir {
        Some(dir) => {
            if !dir.is_dir() {
                return Err(format!(
                    "--data {} is not a directory; pass --data with the directory holding the IDX \
                     files of the train and test sets",
                    dir.display()
                ));
            }
            let open = |subset| {
                ImageDataset::from_dir(dir, subset, classes).map_err(|e| {
                    format!(
                        "cannot load the images in {}: {e}; pass --data with a directory holding \
                         the IDX files of the train and test sets",
                        dir.display()
                    )
                })
            };
            let (train, test) = (open(Subset::Train)?, open(Subset::Test)?);
            check_same_shape(dir, &train, &test)?;
            (train, test, dir.display().to_string())
        }
        None => {
            let open = |subset| {
                embedded::fashion_mnist(subset).map_err(|e| {
                    format!("cannot load the embedded Fashion-MNIST subset: {e}; set HEFT_DATASETS to the datasets directory")
                })
            };
            (
                open(Subset::Train)?,
                open(Subset::Test)?,
                "embedded Fashion-MNIST subset".to_string(),
            )
        }
    };
    let split = split_indices(train.len(), valid_share, SPLIT_SEED).map_err(|e| {
        format!("invalid validation share {valid_share}: {e}; pass --valid-share between 0 and 1")
    })?;
    if split.train.is_empty() || split.valid.is_empty() {
        return Err(empty_split_message(valid_share, &source, train.len()));
    }
    let all_test: Vec<usize> = (0..test.len()).collect();
    let splits = ImageSplits {
        train: gather_images(&train, &split.train)?,
        valid: gather_images(&train, &split.valid)?,
        test: gather_images(&test, &all_test)?,
        classes,
        valid_share,
        source,
    };
    for (name, part) in [
        ("training", &splits.train),
        ("validation", &splits.valid),
        ("test", &splits.test),
    ] {
        if let Some((row, &label)) = part
            .labels
            .iter()
            .enumerate()
            .find(|(_, &label)| label as usize >= classes)
        {
            let needed = part.labels.iter().max().map_or(0, |&l| l as usize + 1);
            return Err(format!(
                "label {label} of {name} image {row} in {} is not below --classes {classes}; \
                 pass --classes {needed} or more",
                splits.source
            ));
        }
    }
    Ok(splits)
}

/// Explains why `valid_share` of the `images` training images of `source`
/// leaves a split empty, and suggests a share that leaves neither empty:
/// the default when it does, else one half. No share works for fewer than
/// two images.
fn empty_split_message(valid_share: f64, source: &str, images: usize) -> String {
    if images < 2 {
        return format!(
            "the training set of {source} has {images} image, too few to hold out a validation \
             split; pass --data with at least two training images"
        );
    }
    let valid = |share: f64| ((images as f64) * share).round() as usize;
    let (empty, other) = if valid(valid_share) == 0 {
        ("validation", "training")
    } else {
        ("training", "validation")
    };
    let default = heft_data::DEFAULT_VALID_SHARE;
    let suggestion = if (1..images).contains(&valid(default)) {
        format!("the default {default}")
    } else {
        "0.5".to_string()
    };
    format!(
        "--valid-share {valid_share:?} leaves the {empty} split of {source} empty (all {images} \
         images go to the {other} split); pass a --valid-share that keeps images on both sides, \
         such as {suggestion}"
    )
}

/// Rejects train and test images of different shapes: a model trained on
/// one could not read the other, and the pixel counts may even agree
/// (14x56 and 28x28) so that nothing else would notice.
fn check_same_shape(dir: &Path, train: &ImageDataset, test: &ImageDataset) -> Result<(), String> {
    let (train_shape, test_shape) = (train.image_shape(), test.image_shape());
    if train_shape == test_shape {
        return Ok(());
    }
    let file = |subset: Subset| {
        let name = subset.file_names().0;
        heft_data::idx::find_in_dir(dir, name)
            .unwrap_or_else(|_| dir.join(name))
            .display()
            .to_string()
    };
    Err(format!(
        "the training images {} are {}x{} pixels but the test images {} are {}x{}; pass --data \
         with a directory whose train and test images have the same shape",
        file(Subset::Train),
        train_shape.0,
        train_shape.1,
        file(Subset::Test),
        test_shape.0,
        test_shape.1
    ))
}

fn gather_images(images: &ImageDataset, indices: &[usize]) -> Result<DenseSplit, String> {
    let columns = images.features();
    let mut features = vec![0.0f32; indices.len() * columns];
    let mut labels = vec![0u32; indices.len()];
    images
        .fill_batch(indices, &mut features, &mut labels)
        .map_err(|e| format!("cannot read the images: {e}"))?;
    Ok(DenseSplit {
        features,
        columns,
        labels,
    })
}

/// Token sequences with one label each, right-padded with id 0.
pub struct TokenSplit {
    pub ids: Vec<u32>,
    pub lengths: Vec<usize>,
    pub labels: Vec<u32>,
    pub seq_len: usize,
}

/// The three splits of a text corpus: the corpus's validation records are
/// the validation split, and [`TEXT_TEST_SHARE`] of its training records are held
/// out as the test split.
pub struct TextSplits {
    pub train: TokenSplit,
    pub valid: TokenSplit,
    pub test: TokenSplit,
    pub classes: usize,
    pub vocab: usize,
    /// Fingerprint of the class names and the vocabulary in id order,
    /// from [`vocabulary_hash`]. A model reads token ids and predicts class
    /// ids, so it fits only a corpus with the same ones.
    pub vocab_hash: String,
    pub source: String,
}

/// Share of a text corpus's training records held out as the test split.
pub const TEXT_TEST_SHARE: f64 = 0.2;

/// Loads a delimited text file (or the embedded sentiment corpus).
pub fn load_text(path: Option<&Path>) -> Result<TextSplits, String> {
    let options = embedded::sentiment_options();
    let fix = if path.is_some() {
        "pass --data with a delimited file that has `sentiment` and `text` columns"
    } else {
        "set HEFT_DATASETS to the repository's datasets directory, or pass --data with a \
         delimited file that has `sentiment` and `text` columns"
    };
    let path: PathBuf = path.map_or_else(embedded::sentiment_path, Path::to_path_buf);
    // The loader's error already names the file.
    let corpus = TextCorpus::load(&path, &options)
        .map_err(|e| format!("cannot load the text corpus: {e}; {fix}"))?;
    let classes = corpus.classes();
    if classes.len() < 2 {
        let found = match classes.first() {
            Some(name) => format!("only the class {name:?}"),
            None => "no class".to_string(),
        };
        return Err(format!(
            "the text corpus {} has {found} in its `sentiment` column; a classifier needs \
             at least two; pass --data with a corpus that has records of two or more classes",
            path.display()
        ));
    }
    let train_records: Vec<usize> = corpus.train_indices().iter().map(|&i| i as usize).collect();
    let valid_records: Vec<usize> = corpus.valid_indices().iter().map(|&i| i as usize).collect();
    let held_out =
        split_indices(train_records.len(), TEXT_TEST_SHARE, SPLIT_SEED).map_err(|e| {
            format!(
                "the text corpus {} is too small to split: {e}",
                path.display()
            )
        })?;
    let pick = |positions: &[usize]| -> Vec<usize> {
        positions.iter().map(|&p| train_records[p]).collect()
    };
    for (name, records) in [
        ("training", held_out.train.len()),
        ("validation", valid_records.len()),
        ("test", held_out.valid.len()),
    ] {
        if records == 0 {
            return Err(format!(
                "the text corpus {} leaves the {name} split empty ({} training and {} \
                 validation records); pass --data with a larger corpus",
                path.display(),
                train_records.len(),
                valid_records.len()
            ));
        }
    }
    Ok(TextSplits {
        train: gather_tokens(&corpus, &pick(&held_out.train))?,
        valid: gather_tokens(&corpus, &valid_records)?,
        test: gather_tokens(&corpus, &pick(&held_out.valid))?,
        classes: corpus.classes().len(),
        vocab: corpus.vocab().len(),
        vocab_hash: vocabulary_hash(corpus.classes(), corpus.vocab().tokens()),
        source: path.display().to_string(),
    })
}

/// Returns the 64-bit FNV-1a hash, as 16 hex digits, of the class names
/// and then the tokens, each prefixed with its byte length so that no two
/// lists give the same byte stream.
pub fn vocabulary_hash(classes: &[String], tokens: &[String]) -> String {
    let mut hash = Fnv1a::new();
    hash.bytes(&(classes.len() as u64).to_le_bytes());
    for text in classes.iter().chain(tokens) {
        hash.bytes(&(text.len() as u64).to_le_bytes());
        hash.bytes(text.as_bytes());
    }
    format!("{:016x}", hash.finish())
}

/// The content fingerprint of loaded splits (see
/// [`ImageSplits::fingerprint`]): FNV-1a over 32-bit words, a quarter of
/// the steps of bytes over the 47 million pixels of Fashion-MNIST.
struct WordHash(Fnv1a);

impl WordHash {
    fn new() -> Self {
        WordHash(Fnv1a::new())
    }

    /// Feeds a length, then the words, so that no two lists of lists give
    /// the same stream.
    fn words(&mut self, words: impl ExactSizeIterator<Item = u32>) {
        self.size(words.len());
        for word in words {
            self.0.word(word);
        }
    }

    fn size(&mut self, value: usize) {
        let value = value as u64;
        self.0.word(value as u32);
        self.0.word((value >> 32) as u32);
    }

    fn finish(&self) -> String {
        format!("{:016x}", self.0.finish())
    }
}

impl ImageSplits {
    /// Returns a fingerprint of every image and label of the three splits,
    /// and of the class count: two loads give the same one only if they
    /// hold the same data, split the same way (up to hash collisions).
    pub fn fingerprint(&self) -> String {
        let mut hash = WordHash::new();
        hash.size(self.classes);
        for split in [&self.train, &self.valid, &self.test] {
            hash.size(split.columns);
            hash.words(split.features.iter().map(|x| x.to_bits()));
            hash.words(split.labels.iter().copied());
        }
        hash.finish()
    }
}

impl TextSplits {
    /// Returns a fingerprint of the vocabulary and of every record's
    /// tokens and label in the three splits, as [`ImageSplits::fingerprint`]
    /// does for images.
    pub fn fingerprint(&self) -> String {
        let mut hash = WordHash::new();
        hash.words(self.vocab_hash.bytes().map(u32::from));
        hash.size(self.classes);
        for split in [&self.train, &self.valid, &self.test] {
            hash.size(split.seq_len);
            hash.words(split.ids.iter().copied());
            hash.words(split.lengths.iter().map(|&n| n as u32));
            hash.words(split.labels.iter().copied());
        }
        hash.finish()
    }
}

fn gather_tokens(corpus: &TextCorpus, indices: &[usize]) -> Result<TokenSplit, String> {
    let seq_len = corpus.max_len();
    let mut ids = vec![0u32; indices.len() * seq_len];
    let mut lengths32 = vec![0u32; indices.len()];
    let mut labels = vec![0u32; indices.len()];
    corpus
        .fill_batch(indices, &mut ids, &mut lengths32, &mut labels)
        .map_err(|e| format!("cannot read the text corpus: {e}"))?;
    // The models need at least one token per sequence, so an empty text is
    // read as one padding token.
    let lengths = lengths32.iter().map(|&l| (l as usize).max(1)).collect();
    Ok(TokenSplit {
        ids,
        lengths,
        labels,
        seq_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The suggested share leaves both splits non-empty, and never repeats
    /// the share that just failed.
    #[test]
    fn empty_split_suggests_working_share() {
        let one_image = empty_split_message(0.2, "one", 1);
        assert!(one_image.contains("has 1 image, too few"), "{one_image}");
        assert!(!one_image.contains("such as"), "{one_image}");

        let two_images = empty_split_message(0.2, "two", 2);
        assert!(
            two_images.contains("leaves the validation split of two empty"),
            "{two_images}"
        );
        assert!(two_images.contains("such as 0.5"), "{two_images}");

        let hundred_images = empty_split_message(0.999, "many", 100);
        assert!(
            hundred_images.contains("leaves the training split of many empty"),
            "{hundred_images}"
        );
        assert!(
            hundred_images.contains("such as the default 0.2"),
            "{hundred_images}"
        );
    }
}
