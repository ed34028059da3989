//! Image classification data from an IDX image file and an IDX label file.

use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::idx::{find_in_dir, IdxFile};
use crate::mmap::Backing;

/// Which of the two standard MNIST-family file pairs to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subset {
    /// `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`.
    Train,
    /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`.
    Test,
}

impl Subset {
    /// Returns the canonical (hyphen-spelled, uncompressed) file names of
    /// the image and label files.
    pub fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Subset::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            Subset::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        }
    }
}

/// Images (`u8` pixels, rank 3: count x rows x cols) with one `u8` label
/// each.
///
/// Pixels stay in the IDX file's bytes (memory mapped for raw files) and are
/// scaled to `f32` in `[0, 1]` only when a batch is filled.
#[derive(Debug)]
pub struct ImageDataset {
    images: IdxFile,
    labels: IdxFile,
    classes: usize,
}

impl ImageDataset {
    /// Loads the image and label files of `subset` from `dir`, accepting
    /// either spelling of the names with or without `.gz` (see
    /// [`find_in_dir`]).
    pub fn from_dir(dir: impl AsRef<Path>, subset: Subset, classes: usize) -> Result<ImageDataset> {
        let dir = dir.as_ref();
        let (images, labels) = subset.file_names();
        ImageDataset::open(
            find_in_dir(dir, images)?,
            find_in_dir(dir, labels)?,
            classes,
        )
    }

    /// Opens an image file and a label file (raw files are memory mapped).
    pub fn open(
        images: impl AsRef<Path>,
        labels: impl AsRef<Path>,
        classes: usize,
    ) -> Result<ImageDataset> {
        ImageDataset::from_idx(
            IdxFile::open_with(images, Backing::Map)?,
            IdxFile::open_with(labels, Backing::Map)?,
            classes,
        )
    }

    /// Builds a dataset from opened IDX files.
    ///
    /// Checks: images are `u8` of rank 3, labels are `u8` of rank 1, both
    /// have the same count ([`ErrorKind::CountMismatch`]), and every label
    /// is below `classes` ([`ErrorKind::LabelOutOfRange`], naming the first
    /// bad record).
    pub fn from_idx(images: IdxFile, labels: IdxFile, classes: usize) -> Result<ImageDataset> {
        if classes == 0 || classes > 256 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("class count must be in 1..=256 for u8 labels, got {classes}"),
            ));
        }
        images.as_u8()?;
        images.expect_rank(3, "images")?;
        let label_bytes = labels.as_u8()?;
        labels.expect_rank(1, "labels")?;

        let image_count = images.dims()[0];
        let label_count = labels.dims()[0];
        if image_count != label_count {
            return Err(Error::new(
                ErrorKind::CountMismatch,
                format!(
                    "label file has {label_count} labels but image file {} has {image_count} images",
                    images.path().display()
                ),
            )
            .at_byte(4)
            .in_file(labels.path()));
        }
        let header_len = labels.header().header_len() as u64;
        if let Some((record, &label)) = label_bytes
            .iter()
            .enumerate()
            .find(|(_, &label)| usize::from(label) >= classes)
        {
            return Err(Error::new(
                ErrorKind::LabelOutOfRange,
                format!("label {label} is not below the class count {classes}"),
            )
            .at_record(record as u64, header_len + record as u64)
            .in_file(labels.path()));
        }
        Ok(ImageDataset {
            images,
            labels,
            classes,
        })
    }

    /// Returns the number of images.
    pub fn len(&self) -> usize {
        self.images.dims()[0]
    }

    /// Returns whether the dataset has no images (never true: IDX
    /// dimensions are at least 1).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the image height and width in pixels.
    pub fn image_shape(&self) -> (usize, usize) {
        (self.images.dims()[1], self.images.dims()[2])
    }

    /// Returns the number of pixels per image (the feature count of a row).
    pub fn features(&self) -> usize {
        self.images.dims()[1] * self.images.dims()[2]
    }

    /// Returns the number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Returns the image file.
    pub fn images(&self) -> &IdxFile {
        &self.images
    }

    /// Returns all pixels, image after image, in place.
    pub fn pixels(&self) -> &[u8] {
        self.images.payload()
    }

    /// Returns the pixels of image `index` in place, or `None` if out of range.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let features = self.features();
        let start = index.checked_mul(features)?;
        let end = start.checked_add(features)?;
        self.pixels().get(start..end)
    }

    /// Returns all labels, in place.
    pub fn labels(&self) -> &[u8] {
        self.labels.payload()
    }

    /// Returns the number of images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.classes];
        for &label in self.labels() {
            counts[usize::from(label)] += 1;
        }
        counts
    }

    /// Fills a row-major `indices.len() x features()` buffer with the pixels
    /// of the given images scaled to `[0, 1]`, and `labels` with their
    /// labels.
    ///
    /// Errors with [`ErrorKind::InvalidArgument`] if a buffer has the wrong
    /// length or an index is out of range; the buffers are then unspecified.
    pub fn fill_batch(
        &self,
        indices: &[usize],
        pixels: &mut [f32],
        labels: &mut [u32],
    ) -> Result<()> {
        let features = self.features();
        let rows = indices.len();
        if pixels.len() != rows.saturating_mul(features) || labels.len() != rows {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "batch of {rows} images needs {} pixels and {rows} labels, got {} and {}",
                    rows.saturating_mul(features),
                    pixels.len(),
                    labels.len()
                ),
            ));
        }
        let all_labels = self.labels();
        for ((&index, row), label) in indices
            .iter()
            .zip(pixels.chunks_exact_mut(features))
            .zip(labels.iter_mut())
        {
            let image = self.image(index).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "image index {index} is out of range for {} images",
                        self.len()
                    ),
                )
            })?;
            scale_pixels(image, row);
            *label = u32::from(all_labels[index]);
        }
        Ok(())
    }

    /// Copies all images into one row-major `len() x features()` `f32`
    /// matrix scaled to `[0, 1]`. This is the one function that makes a
    /// second full copy of the pixels.
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.pixels().len()];
        scale_pixels(self.pixels(), &mut out);
        out
    }
}

/// Scales `u8` pixels to `[0, 1]` by dividing by 255, so 0 maps to exactly
/// 0.0 and 255 to exactly 1.0.
#[inline]
pub fn scale_pixels(src: &[u8], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from(s) / 255.0;
    }
}
