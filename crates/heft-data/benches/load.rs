//! Loading benchmarks: IDX open and pixel iteration through a memory map,
//! `.gz` decoding, batch scaling, text corpus encoding and cached reload.
//!
//! The IDX benchmarks use the complete Fashion-MNIST training images
//! (60,000 x 28 x 28) from `/usr/share/datasets/fashion-mnist` (Debian
//! package `dataset-fashion-mnist`), decompressed once into a temporary
//! directory for the raw-file case. Without that package they fall back to
//! the embedded 12,000-image subset, and the benchmark names show which.
//! Throughput is reported in bytes of pixel payload.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use heft_data::embedded::{self, datasets_dir};
use heft_data::text::CachePolicy;
use heft_data::{idx, Backing, CacheStatus, IdxFile, ImageDataset, TextCorpus, TextOptions};

const FULL_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Returns the `.gz` training images and a label for benchmark names.
fn gz_images() -> (PathBuf, &'static str) {
    let full = Path::new(FULL_DIR).join("train-images-idx3-ubyte.gz");
    if full.is_file() {
        (full, "60000x28x28")
    } else {
        (
            datasets_dir().join("fashion-mnist/train-images-idx3-ubyte.gz"),
            "12000x28x28-embedded",
        )
    }
}

/// Decompresses the training images into a temporary directory (once per
/// run) and returns the raw file's path.
fn raw_images(gz: &Path, label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("heft-data-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create benchmark directory");
    let raw = dir.join(format!("train-images-idx3-ubyte-{label}"));
    let file = IdxFile::open(gz).expect("open .gz images");
    let dims = file.dims().to_vec();
    idx::write(&raw, &dims, file.as_u8().expect("u8 images")).expect("write raw images");
    raw
}

fn bench_idx(c: &mut Criterion) {
    let (gz, label) = gz_images();
    let raw = raw_images(&gz, label);

    // Warm the page cache and report what the mapped path copies.
    let warm = IdxFile::open(&raw).expect("open raw images");
    let payload_len = warm.payload().len() as u64;
    let copied = if warm.is_mapped() { 0 } else { payload_len };
    eprintln!(
        "idx {label}: payload {payload_len} bytes, mapped = {}, payload bytes copied = {copied}",
        warm.is_mapped()
    );
    drop(warm);

    let mut group = c.benchmark_group("load/idx");
    group.throughput(Throughput::Bytes(payload_len));
    group.bench_function(format!("open_iterate_mapped/{label}"), |b| {
        b.iter(|| {
            let file = IdxFile::open_with(black_box(&raw), Backing::Map).expect("open");
            let pixels = file.as_u8().expect("u8");
            let sum: u64 = pixels.iter().map(|&p| u64::from(p)).sum();
            black_box(sum)
        })
    });
    group.bench_function(format!("open_iterate_read/{label}"), |b| {
        b.iter(|| {
            let file = IdxFile::open_with(black_box(&raw), Backing::Read).expect("open");
            let pixels = file.as_u8().expect("u8");
            let sum: u64 = pixels.iter().map(|&p| u64::from(p)).sum();
            black_box(sum)
        })
    });
    group.bench_function(format!("gunzip_open/{label}"), |b| {
        b.iter(|| {
            black_box(
                IdxFile::open(black_box(&gz))
                    .expect("open .gz")
                    .element_count(),
            )
        })
    });
    group.finish();

    // Scaling every image to f32 in batches of 256 rows.
    let dir = raw.parent().expect("temporary directory").to_path_buf();
    let labels_gz = gz.with_file_name("train-labels-idx1-ubyte.gz");
    let data = ImageDataset::from_idx(
        IdxFile::open(&raw).expect("open raw images"),
        IdxFile::open(&labels_gz).expect("open labels"),
        embedded::FASHION_MNIST_CLASSES,
    )
    .expect("image dataset");
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut pixels = vec![0.0f32; 256 * data.features()];
    let mut labels = vec![0u32; 256];
    let mut group = c.benchmark_group("load/image");
    group.throughput(Throughput::Bytes(payload_len));
    group.bench_function(format!("fill_batch_f32/256/{label}"), |b| {
        b.iter(|| {
            for batch in indices.chunks(256) {
                let rows = batch.len();
                data.fill_batch(
                    batch,
                    &mut pixels[..rows * data.features()],
                    &mut labels[..rows],
                )
                .expect("fill batch");
            }
            black_box(pixels[0])
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(dir);
}

fn bench_text(c: &mut Criterion) {
    let path = embedded::sentiment_path();
    let source_len = std::fs::metadata(&path).expect("sentiment corpus").len();
    let cache_dir =
        std::env::temp_dir().join(format!("heft-data-bench-text-{}", std::process::id()));
    let uncached = TextOptions {
        cache: CachePolicy::Off,
        ..embedded::sentiment_options()
    };
    let cached = TextOptions {
        cache: CachePolicy::Dir(cache_dir.clone()),
        ..embedded::sentiment_options()
    };
    TextCorpus::load(&path, &cached).expect("build cache");

    let mut group = c.benchmark_group("load/text");
    group.throughput(Throughput::Bytes(source_len));
    group.bench_function("encode/sentiment-6000", |b| {
        b.iter(|| {
            black_box(
                TextCorpus::load(black_box(&path), &uncached)
                    .expect("encode")
                    .len(),
            )
        })
    });
    group.bench_function("cached_reload/sentiment-6000", |b| {
        b.iter(|| {
            let corpus = TextCorpus::load(black_box(&path), &cached).expect("reload");
            assert_eq!(corpus.cache_status(), &CacheStatus::Hit);
            black_box(corpus.ids().len())
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(cache_dir);
}

criterion_group!(benches, bench_idx, bench_text);
criterion_main!(benches);
