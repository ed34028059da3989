//! Criterion benchmarks of the GEMM, named `gemm/<m>x<k>x<n>/<threads>`.
//!
//! Throughput is reported as `Elements` equal to the FLOP count (2 m k n),
//! so criterion's "elem/s" reads as FLOP/s. `heft bench gemm` prints the
//! same shapes as GFLOP/s and as a fraction of the FMA peak.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use heft::kernels::gemm::{Gemm, MatMut, MatRef};
use std::hint::black_box;
use std::time::Duration;

/// Square sizes and the shapes the project runs: (m, k, n).
const SHAPES: &[(usize, usize, usize)] = &[
    (64, 64, 64),
    (128, 128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (12000, 128, 10),
    (12000, 128, 320),
    (12000, 784, 128),
    (100, 784, 128),
    (100, 128, 10),
    (1, 784, 128),
];

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for &(m, k, n) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.01).collect();
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            let kernel = Gemm::new();
            group.bench_function(BenchmarkId::new(format!("{m}x{k}x{n}"), threads), |bench| {
                bench.iter(|| {
                    pool.install(|| {
                        kernel
                            .run(
                                1.0,
                                MatRef::row_major(black_box(&a), m, k).expect("sized"),
                                MatRef::row_major(black_box(&b), k, n).expect("sized"),
                                0.0,
                                MatMut::row_major(&mut out, m, n).expect("sized"),
                            )
                            .expect("valid shapes")
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, gemm);
criterion_main!(benches);
