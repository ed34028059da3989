//! Dataset loaders for heft: IDX images and labels (the MNIST family) and
//! delimited text, with strict format checks, seeded splits and batches.
//!
//! Loaders are built to be fast and strict:
//! - Raw IDX files are memory mapped and their `u8` payload is read in place;
//!   `.gz` files are decompressed once. Each header is checked against the
//!   file length before any element is read, so a damaged file is an error,
//!   never silently wrong data.
//! - A text corpus is encoded once and cached in a binary file that later
//!   loads memory map.
//! - Splits and batch orders come from a generator defined in this crate, so
//!   they are identical for a given seed on every machine.
//!
//! Batches are written into caller-provided buffers: row-major `f32`
//! features (rows x features) for images, `u32` token ids (rows x max_len)
//! for text, plus label slices.
//!
//! # Example
//!
//! ```
//! use heft_data::{embedded, split_indices, Batches, Subset};
//!
//! let train = embedded::fashion_mnist(Subset::Train)?;
//! let split = split_indices(train.len(), 0.2, 7)?;
//! let batches = Batches::new(&split.train, 32, 7, 0)?;
//! let batch = batches.iter().next().unwrap();
//! let mut pixels = vec![0.0f32; batch.len() * train.features()];
//! let mut labels = vec![0u32; batch.len()];
//! train.fill_batch(batch, &mut pixels, &mut labels)?;
//! assert!(pixels.iter().all(|&p| (0.0..=1.0).contains(&p)));
//! # Ok::<(), heft_data::Error>(())
//! ```
//!
//! # Crate layout
//!
//! - [`idx`]: IDX header parsing ([`IdxHeader::parse`]), [`IdxFile`],
//!   writer ([`idx::write`]) and file lookup ([`idx::find_in_dir`]).
//! - [`ImageDataset`]: an image/label IDX pair, batches scaled to `[0, 1]`.
//! - [`text`]: the delimited reader, tokeniser, vocabulary, [`TextCorpus`]
//!   and its cache.
//! - [`split_indices`], [`Batches`], [`SplitMix64`]: seeded splits and
//!   mini-batches.
//! - [`embedded`]: the default datasets shipped in `datasets/`.
//! - [`Error`]: the one error type, with [`ErrorKind`] and [`Location`].
//!
//! # Memory maps
//!
//! The only `unsafe` code in the crate maps a file (in `mmap.rs`). A mapped
//! file must not be modified or truncated while it is in use (see
//! [`Backing::Map`]); pass [`Backing::Read`] to [`IdxFile::open_with`] to
//! read files into memory instead.
//!
//! # Fuzzing
//!
//! `crates/heft-data/fuzz/` holds cargo-fuzz targets for the IDX header
//! parser (`idx_header`) and the delimited reader (`delimited`). With a
//! nightly toolchain and `cargo install cargo-fuzz`:
//!
//! ```text
//! cd crates/heft-data/fuzz
//! cargo +nightly fuzz run idx_header -- -max_total_time=60
//! cargo +nightly fuzz run delimited -- -max_total_time=60
//! ```
//!
//! The test `no_panic_on_random_inputs` (in `tests/robustness.rs`) runs the
//! same entry points over seeded random and mutated inputs on stable.

#![deny(unsafe_code)]

mod error;
mod fsutil;
mod hash;
mod mmap;

pub mod embedded;
pub mod idx;
mod image;
mod split;
pub mod text;

pub use crate::error::{Error, ErrorKind, Location, Result};
pub use crate::hash::Fnv1a;
pub use crate::idx::{DType, Element, IdxFile, IdxHeader};
pub use crate::image::{scale_pixels, ImageDataset, Subset};
pub use crate::mmap::Backing;
pub use crate::split::{shuffled, split_indices, Batches, Split, SplitMix64, DEFAULT_VALID_SHARE};
pub use crate::text::{CachePolicy, CacheStatus, Column, TextCorpus, TextOptions};
