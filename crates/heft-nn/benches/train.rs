//! One training epoch of the 784-128-10 MLP on 48,000 Fashion-MNIST
//! images (batch 100, Adam) and of the LSTM classifier on the embedded
//! sentiment corpus, each on 1 and 2 rayon threads.
//!
//! `tools/compare_training.sh` times the same epochs in PyTorch.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

#[allow(dead_code)]
mod workload;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

fn bench_mlp(c: &mut Criterion) {
    let images = workload::fashion_mnist_48k();
    eprintln!("MLP data: {}", images.source);
    let initial = workload::mlp(images.columns);
    let mut group = c.benchmark_group("train/mlp_784_128_10_epoch_48000");
    group.sample_size(10);
    for threads in [1, 2] {
        let pool = pool(threads);
        group.bench_function(format!("threads={threads}"), |b| {
            b.iter(|| {
                let mut mlp = initial.clone();
                pool.install(|| workload::mlp_epoch(&mut mlp, &images));
                black_box(mlp)
            })
        });
    }
    group.finish();
}

fn bench_lstm(c: &mut Criterion) {
    let data = workload::sentiment_train();
    let initial = workload::lstm(&data);
    let mut group = c.benchmark_group("train/lstm_sentiment_epoch");
    group.sample_size(10);
    for threads in [1, 2] {
        let pool = pool(threads);
        group.bench_function(format!("threads={threads}"), |b| {
            b.iter(|| {
                let mut model = initial.clone();
                pool.install(|| workload::lstm_epoch(&mut model, &data));
                black_box(model)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_mlp, bench_lstm);
criterion_main!(benches);
