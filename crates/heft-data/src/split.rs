//! Seeded train/validation splits and shuffled mini-batches.
//!
//! Everything here draws from [`SplitMix64`], a generator defined in this
//! file whose output depends only on the seed. A split or batch order is
//! therefore identical for a given seed on every machine and every version
//! of the crate's dependencies. Changing the algorithm would change every
//! split, so the test suite pins its output.

use crate::error::{Error, ErrorKind, Result};

/// Default share of the training records held out for validation.
pub const DEFAULT_VALID_SHARE: f64 = 0.2;

/// The SplitMix64 generator (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014), as in Vigna's reference
/// `splitmix64.c`.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// Creates a generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a uniform integer in `0..bound` without modulo bias
    /// (Lemire's multiply-and-reject method).
    ///
    /// # Panics
    ///
    /// If `bound` is 0, because the range `0..0` has no value to return.
    /// Debug and release builds panic alike.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(
            bound > 0,
            "SplitMix64::below: bound is 0, so the range 0..0 is empty; pass a bound of at least 1"
        );
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Shuffles `items` in place with the Fisher-Yates algorithm.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Record indices of a training set divided into a training part and a
/// validation part. Both lists are in ascending order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Indices kept for training.
    pub train: Vec<usize>,
    /// Indices held out for validation.
    pub valid: Vec<usize>,
}

/// Splits the records `0..count` at random into training and validation
/// parts, `round(count * valid_share)` records going to validation.
///
/// `valid_share` must lie in `[0, 1)`; the error is
/// [`ErrorKind::InvalidArgument`] otherwise.
pub fn split_indices(count: usize, valid_share: f64, seed: u64) -> Result<Split> {
    if !(0.0..1.0).contains(&valid_share) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("validation share must be in [0, 1), got {valid_share}"),
        ));
    }
    let valid_count = ((count as f64) * valid_share).round() as usize;
    let mut order: Vec<usize> = (0..count).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let mut valid = order[..valid_count].to_vec();
    let mut train = order[valid_count..].to_vec();
    valid.sort_unstable();
    train.sort_unstable();
    Ok(Split { train, valid })
}

/// Returns `indices` shuffled for the given seed and epoch.
///
/// Each epoch gets its own order; the orders of two epochs with the same
/// seed are independent draws.
pub fn shuffled(indices: &[usize], seed: u64, epoch: u64) -> Vec<usize> {
    // Mix the epoch through one SplitMix64 step so that nearby (seed, epoch)
    // pairs start from unrelated states.
    let epoch_seed = SplitMix64::new(seed ^ epoch.wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64();
    let mut order = indices.to_vec();
    SplitMix64::new(epoch_seed).shuffle(&mut order);
    order
}

/// A shuffled order of record indices, cut into mini-batches.
#[derive(Clone, Debug)]
pub struct Batches {
    order: Vec<usize>,
    batch_size: usize,
}

impl Batches {
    /// Shuffles `indices` for `seed` and `epoch` (see [`shuffled`]) and cuts
    /// the order into batches of `batch_size`; the last batch may be
    /// shorter. `batch_size` must be positive.
    pub fn new(indices: &[usize], batch_size: usize, seed: u64, epoch: u64) -> Result<Batches> {
        if batch_size == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "batch size must be at least 1",
            ));
        }
        Ok(Batches {
            order: shuffled(indices, seed, epoch),
            batch_size,
        })
    }

    /// Returns the shuffled order of all indices.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Returns the number of batches.
    pub fn len(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// Returns whether there are no batches.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Returns an iterator over the batches, each a slice of indices.
    pub fn iter(&self) -> std::slice::Chunks<'_, usize> {
        self.order.chunks(self.batch_size)
    }
}

impl<'a> IntoIterator for &'a Batches {
    type Item = &'a [usize];
    type IntoIter = std::slice::Chunks<'a, usize>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
