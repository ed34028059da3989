//! Times f32 C = A B on row-major operands with the `gemm` and
//! `matrixmultiply` crates and prints one tab-separated line per library and
//! shape: library, m, k, n, threads, median GFLOP/s.
//!
//! Usage: compare-gemm THREADS SAMPLES SAMPLE_MS MxKxN...
//! matrixmultiply reads MATMUL_NUM_THREADS once per process, so the caller
//! sets it to THREADS before starting this program.

use gemm::Parallelism;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        fail("usage: compare-gemm THREADS SAMPLES SAMPLE_MS MxKxN...");
    }
    let threads: usize = parse(&args[0], "THREADS");
    let samples: usize = parse(&args[1], "SAMPLES");
    let sample_s = parse::<f64>(&args[2], "SAMPLE_MS") / 1e3;
    let matmul_threads = std::env::var("MATMUL_NUM_THREADS").unwrap_or_default();
    if matmul_threads != threads.to_string() {
        fail(&format!(
            "MATMUL_NUM_THREADS is {matmul_threads:?}, expected {threads} to match THREADS"
        ));
    }
    let parallelism = if threads == 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };

    for label in &args[3..] {
        let dims: Vec<usize> = label.split('x').map(|d| parse(d, "shape MxKxN")).collect();
        let [m, k, n] = dims[..] else {
            fail(&format!("invalid shape {label:?}: expected MxKxN"));
        };
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5).collect();
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;

        // SAFETY: the pointers cover m*k, k*n and m*n elements with the
        // row-major strides given, and C does not alias A or B.
        let seconds = time_product(samples, sample_s, || unsafe {
            gemm::gemm(
                m, n, k,
                c.as_mut_ptr(), 1, n as isize, false,
                a.as_ptr(), 1, k as isize,
                b.as_ptr(), 1, n as isize,
                0.0, 1.0, false, false, false, parallelism,
            )
        });
        check("gemm", &a, &b, &c, m, k, n);
        println!("gemm\t{m}\t{k}\t{n}\t{threads}\t{:.2}", flops / seconds / 1e9);

        c.fill(0.0);
        // SAFETY: as above.
        let seconds = time_product(samples, sample_s, || unsafe {
            matrixmultiply::sgemm(
                m, k, n, 1.0,
                a.as_ptr(), k as isize, 1,
                b.as_ptr(), n as isize, 1,
                0.0, c.as_mut_ptr(), n as isize, 1,
            )
        });
        check("matrixmultiply", &a, &b, &c, m, k, n);
        println!("matrixmultiply\t{m}\t{k}\t{n}\t{threads}\t{:.2}", flops / seconds / 1e9);
    }
}

/// Returns the median seconds per product over `samples` samples. Each
/// sample repeats the product until it lasts at least `sample_s` seconds.
fn time_product(samples: usize, sample_s: f64, mut product: impl FnMut()) -> f64 {
    // Two warm-up calls fill the caches and start the thread pool, and
    // their mean sizes the repetitions.
    let start = Instant::now();
    product();
    product();
    let per_call = start.elapsed().as_secs_f64() / 2.0;
    let reps = ((sample_s / per_call.max(1e-9)).ceil() as usize).max(1);
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                product();
            }
            start.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Compares the four corner elements of C with an f64 dot product, so a
/// wrong stride fails loudly instead of producing a fast wrong figure.
fn check(library: &str, a: &[f32], b: &[f32], c: &[f32], m: usize, k: usize, n: usize) {
    for (i, j) in [(0, 0), (0, n - 1), (m - 1, 0), (m - 1, n - 1)] {
        let expected: f64 = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
        let got = c[i * n + j] as f64;
        if (got - expected).abs() > 1e-3 * (1.0 + expected.abs()) {
            fail(&format!("{library}: C[{i}][{j}] = {got}, expected {expected} ({m}x{k}x{n})"));
        }
    }
}

fn parse<T: std::str::FromStr>(text: &str, field: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| fail(&format!("invalid {field}: {text:?}")))
}

fn fail(message: &str) -> ! {
    eprintln!("compare-gemm: {message}");
    std::process::exit(2);
}
