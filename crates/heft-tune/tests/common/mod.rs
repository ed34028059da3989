//! Seeded random splits and targets shared by the objective tests.

#![allow(dead_code)]

use heft_nn::SplitMix64;
use heft_tune::{Split, Target};

/// A dense split: `labels.len()` rows of `columns` features.
pub struct Dense {
    pub features: Vec<f32>,
    pub columns: usize,
    pub labels: Vec<u32>,
}

impl Dense {
    pub fn split(&self) -> Split<'_> {
        Split::Dense {
            features: &self.features,
            columns: self.columns,
            labels: &self.labels,
        }
    }
}

/// A token split: `lengths.len()` rows of `seq_len` ids, padded with 0.
pub struct Tokens {
    pub ids: Vec<u32>,
    pub lengths: Vec<usize>,
    pub seq_len: usize,
    pub labels: Vec<u32>,
}

impl Tokens {
    pub fn split(&self) -> Split<'_> {
        Split::Tokens {
            ids: &self.ids,
            lengths: &self.lengths,
            seq_len: self.seq_len,
            labels: &self.labels,
        }
    }
}

/// Returns `rows` rows of features uniform in `[-1, 1)` with uniform labels.
pub fn dense(rows: usize, columns: usize, classes: usize, seed: u64) -> Dense {
    let mut rng = SplitMix64::new(seed);
    let features = (0..rows * columns)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let labels = uniform_labels(&mut rng, rows, classes);
    Dense {
        features,
        columns,
        labels,
    }
}

/// Returns `rows` records with lengths uniform in `1..=seq_len`.
pub fn tokens(rows: usize, seq_len: usize, vocab: usize, classes: usize, seed: u64) -> Tokens {
    let mut rng = SplitMix64::new(seed);
    let lengths = (0..rows)
        .map(|_| 1 + rng.below(seq_len as u64) as usize)
        .collect();
    tokens_of_lengths(&mut rng, lengths, seq_len, vocab, classes)
}

/// Returns records of the given lengths, with ids uniform in `1..vocab`
/// (0 is the padding id) and uniform labels, drawn from `rng`.
pub fn tokens_of_lengths(
    rng: &mut SplitMix64,
    lengths: Vec<usize>,
    seq_len: usize,
    vocab: usize,
    classes: usize,
) -> Tokens {
    let mut ids = vec![0u32; lengths.len() * seq_len];
    for (row, &length) in lengths.iter().enumerate() {
        for t in 0..length {
            ids[row * seq_len + t] = 1 + rng.below(vocab as u64 - 1) as u32;
        }
    }
    let labels = uniform_labels(rng, lengths.len(), classes);
    Tokens {
        ids,
        lengths,
        seq_len,
        labels,
    }
}

fn uniform_labels(rng: &mut SplitMix64, rows: usize, classes: usize) -> Vec<u32> {
    (0..rows)
        .map(|_| rng.below(classes as u64) as u32)
        .collect()
}

pub fn target(tensor: &str, include_bias: bool) -> Target {
    Target {
        tensor: tensor.into(),
        include_bias,
    }
}
