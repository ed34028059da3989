//! Image datasets: checks, batches, the embedded subset and the full
//! Fashion-MNIST.

mod common;

use std::io::Read;
use std::path::Path;

use common::{assert_error, TempDir, FULL_FASHION_MNIST};
use heft_data::embedded::{self, datasets_dir, FASHION_MNIST_CLASSES};
use heft_data::{idx, split_indices, Batches, ErrorKind, ImageDataset, Location, Subset};
use sha2::{Digest, Sha256};

/// Writes `count` 2x3 images whose pixels encode their index, with labels
/// `index % classes`.
fn write_pair(
    dir: &TempDir,
    count: usize,
    classes: u8,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let pixels: Vec<u8> = (0..count * 6).map(|i| (i % 256) as u8).collect();
    let labels: Vec<u8> = (0..count)
        .map(|i| (i % usize::from(classes)) as u8)
        .collect();
    let images = dir.join("train-images-idx3-ubyte");
    let label_path = dir.join("train-labels-idx1-ubyte");
    idx::write(&images, &[count, 2, 3], &pixels).unwrap();
    idx::write(&label_path, &[count], &labels).unwrap();
    (images, label_path)
}

#[test]
fn pair_loads_with_shapes_and_counts() {
    let dir = TempDir::new("pair");
    write_pair(&dir, 9, 3);
    let data = ImageDataset::from_dir(dir.path(), Subset::Train, 3).unwrap();
    assert_eq!(data.len(), 9);
    assert_eq!(data.image_shape(), (2, 3));
    assert_eq!(data.features(), 6);
    assert_eq!(data.class_counts(), vec![3, 3, 3]);
    assert_eq!(data.image(1).unwrap(), &[6, 7, 8, 9, 10, 11]);
    assert!(data.image(9).is_none());
    assert!(data.images().is_mapped());
}

#[test]
fn fill_batch_scales_to_unit_interval() {
    let dir = TempDir::new("batch");
    let pixels: Vec<u8> = vec![0, 255, 51, 102, 1, 254];
    idx::write(dir.join("train-images-idx3-ubyte"), &[1, 2, 3], &pixels).unwrap();
    idx::write(dir.join("train-labels-idx1-ubyte"), &[1], &[4u8]).unwrap();
    let data = ImageDataset::from_dir(dir.path(), Subset::Train, 5).unwrap();
    let mut out = vec![f32::NAN; 12];
    let mut labels = vec![u32::MAX; 2];
    data.fill_batch(&[0, 0], &mut out, &mut labels).unwrap();
    assert_eq!(out[0], 0.0);
    assert_eq!(out[1], 1.0);
    assert_eq!(out[2], 0.2);
    assert_eq!(out[3], 0.4);
    assert_eq!(&out[6..], &out[..6]);
    assert_eq!(labels, [4, 4]);
    assert_eq!(data.to_f32(), out[..6].to_vec());
}

#[test]
fn fill_batch_rejects_bad_buffers_and_indices() {
    let dir = TempDir::new("batch-bad");
    write_pair(&dir, 4, 2);
    let data = ImageDataset::from_dir(dir.path(), Subset::Train, 2).unwrap();
    let mut labels = [0u32; 2];
    let short = data.fill_batch(&[0, 1], &mut [0.0; 11], &mut labels);
    assert_eq!(short.unwrap_err().kind(), ErrorKind::InvalidArgument);
    let out_of_range = data.fill_batch(&[0, 4], &mut [0.0; 12], &mut labels);
    assert_eq!(out_of_range.unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn huge_image_index_is_out_of_range() {
    let dir = TempDir::new("batch-huge");
    write_pair(&dir, 4, 2);
    let data = ImageDataset::from_dir(dir.path(), Subset::Train, 2).unwrap();
    // index * 6 fits in usize, but the end of the image, 6 pixels later,
    // does not.
    let index = usize::MAX / data.features();
    assert!(data.image(index).is_none());
    assert!(data.image(usize::MAX).is_none());
    let err = data
        .fill_batch(&[0, index], &mut [0.0; 12], &mut [0; 2])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains(&index.to_string()), "{err}");
}

#[test]
fn counts_that_disagree() {
    let dir = TempDir::new("counts");
    let (images, _) = write_pair(&dir, 5, 2);
    let labels = dir.join("short-labels");
    idx::write(&labels, &[4], &[0u8, 1, 0, 1]).unwrap();
    let err = assert_error(
        ImageDataset::open(&images, &labels, 2),
        ErrorKind::CountMismatch,
        &labels,
    );
    assert!(err.message().contains("4 labels"), "{err}");
    assert!(err.message().contains("5 images"), "{err}");
}

#[test]
fn labels_out_of_range() {
    let dir = TempDir::new("labels");
    let (images, _) = write_pair(&dir, 4, 2);
    let labels = dir.join("bad-labels");
    idx::write(&labels, &[4], &[0u8, 1, 10, 1]).unwrap();
    let err = assert_error(
        ImageDataset::open(&images, &labels, 10),
        ErrorKind::LabelOutOfRange,
        &labels,
    );
    assert_eq!(
        err.location(),
        Some(Location::Record {
            record: 2,
            byte: 10
        })
    );
    assert!(err.message().contains("label 10"), "{err}");
}

#[test]
fn wrong_rank_or_type_is_rejected() {
    let dir = TempDir::new("rank");
    let images = dir.join("images");
    let labels = dir.join("labels");
    idx::write(&images, &[2, 6], &[0u8; 12]).unwrap();
    idx::write(&labels, &[2], &[0u8, 1]).unwrap();
    assert_error(
        ImageDataset::open(&images, &labels, 2),
        ErrorKind::TypeMismatch,
        &images,
    );
    let float_labels = dir.join("float-labels");
    idx::write(&images, &[2, 2, 3], &[0u8; 12]).unwrap();
    idx::write(&float_labels, &[2], &[0.0f32, 1.0]).unwrap();
    assert_error(
        ImageDataset::open(&images, &float_labels, 2),
        ErrorKind::TypeMismatch,
        &float_labels,
    );
}

#[test]
fn batches_cover_split_once() {
    let split = split_indices(103, 0.2, 11).unwrap();
    let batches = Batches::new(&split.train, 16, 11, 3).unwrap();
    assert_eq!(batches.len(), 82_usize.div_ceil(16));
    let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
    assert_ne!(seen, split.train, "batch order is not shuffled");
    seen.sort_unstable();
    assert_eq!(seen, split.train);
}

/// Returns SHA-256 hex digests listed in `datasets/SHA256SUMS`.
fn read_checksums() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(datasets_dir().join("SHA256SUMS")).unwrap();
    text.lines()
        .map(|line| {
            let (digest, name) = line.split_once("  ").expect("'<digest>  <name>' line");
            (digest.to_string(), name.to_string())
        })
        .collect()
}

#[test]
fn embedded_checksums_match() {
    let sums = read_checksums();
    assert_eq!(sums.len(), 5, "{sums:?}");
    for (digest, name) in sums {
        let mut file = std::fs::File::open(datasets_dir().join(&name)).unwrap();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(actual, digest, "checksum of {name}");
    }
}

#[test]
fn embedded_fashion_mnist_is_balanced() {
    let train = embedded::fashion_mnist(Subset::Train).unwrap();
    assert_eq!(train.len(), 12_000);
    assert_eq!(train.image_shape(), (28, 28));
    assert_eq!(train.class_counts(), vec![1_200; FASHION_MNIST_CLASSES]);
    let test = embedded::fashion_mnist(Subset::Test).unwrap();
    assert_eq!(test.len(), 2_000);
    assert_eq!(test.class_counts(), vec![200; FASHION_MNIST_CLASSES]);
    // Real images: mostly dark background with bright pixels, not a constant.
    let pixels = train.pixels();
    let zeros = pixels.iter().filter(|&&p| p == 0).count();
    assert!(zeros > pixels.len() / 10, "{zeros} zero pixels");
    assert!(zeros < pixels.len() * 9 / 10, "{zeros} zero pixels");
}

fn load_full(dir: &Path, subset: Subset, count: usize) {
    let data = ImageDataset::from_dir(dir, subset, FASHION_MNIST_CLASSES).unwrap();
    assert_eq!(data.len(), count);
    assert_eq!(data.image_shape(), (28, 28));
    assert_eq!(data.class_counts(), vec![count / 10; FASHION_MNIST_CLASSES]);
}

#[test]
fn full_fashion_mnist_when_installed() {
    let dir = Path::new(FULL_FASHION_MNIST);
    if !dir.join("train-images-idx3-ubyte.gz").is_file() {
        // Written to stderr directly, not through `println!`, so the test
        // harness does not capture it and a plain `cargo test` shows it.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: complete Fashion-MNIST not found in {FULL_FASHION_MNIST} \
             (install the Debian package dataset-fashion-mnist)"
        );
        return;
    }
    load_full(dir, Subset::Train, 60_000);
    load_full(dir, Subset::Test, 10_000);
}
