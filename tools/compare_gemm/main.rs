//! Times f32 C = A B on row-major operands with heft, the `gemm` crate and
//! the `matrixmultiply` crate in one process, and prints tab-separated lines:
//!
//! - `library m k n threads gflops`: each library's median GFLOP/s, with
//!   heft labelled `heft-inproc`;
//! - `ratio m k n threads heft/gemm heft/matrixmultiply`: the medians of
//!   the per-round ratios of heft's figure to the other two.
//!
//! Each round times one sample of every library, in an order drawn at
//! random for that round, so a change in the machine's speed during the
//! run touches all three alike. A ratio of two figures from the same round
//! is then far steadier than the ratio of two medians taken minutes apart.
//!
//! Usage: compare-gemm THREADS SAMPLES SAMPLE_MS MxKxN...
//! matrixmultiply reads MATMUL_NUM_THREADS once per process, and heft and
//! gemm run on rayon's global pool, so the caller sets MATMUL_NUM_THREADS
//! and RAYON_NUM_THREADS to THREADS before starting this program.

use gemm::Parallelism;
use heft_kernels::gemm::{Gemm, MatMut, MatRef};
use std::time::Instant;

/// The labels of the output lines. `heft-inproc` distinguishes heft's
/// figure here from the one `heft bench gemm` prints in its own process.
const LIBRARIES: [&str; 3] = ["heft-inproc", "gemm", "matrixmultiply"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        fail("usage: compare-gemm THREADS SAMPLES SAMPLE_MS MxKxN...");
    }
    let threads: usize = parse(&args[0], "THREADS");
    let samples: usize = parse(&args[1], "SAMPLES");
    let sample_s = parse::<f64>(&args[2], "SAMPLE_MS") / 1e3;
    for variable in ["MATMUL_NUM_THREADS", "RAYON_NUM_THREADS"] {
        let value = std::env::var(variable).unwrap_or_default();
        if value != threads.to_string() {
            fail(&format!(
                "{variable} is {value:?}, expected {threads} to match THREADS"
            ));
        }
    }
    let parallelism = if threads == 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };
    let heft = if threads == 1 {
        Gemm::new().sequential()
    } else {
        Gemm::new()
    };
    let mut order = Order(0x9E37_79B9_7F4A_7C15);

    for label in &args[3..] {
        let dims: Vec<usize> = label.split('x').map(|d| parse(d, "shape MxKxN")).collect();
        let [m, k, n] = dims[..] else {
            fail(&format!("invalid shape {label:?}: expected MxKxN"));
        };
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5).collect();
        let mut c = [vec![0.0f32; m * n], vec![0.0f32; m * n], vec![0.0f32; m * n]];
        let flops = 2.0 * (m * k * n) as f64;

        let [c_heft, c_gemm, c_mm] = &mut c;
        let mut products: [Box<dyn FnMut() + '_>; 3] = [
            Box::new(|| {
                let a = MatRef::row_major(&a, m, k).expect("A has m * k floats");
                let b = MatRef::row_major(&b, k, n).expect("B has k * n floats");
                let c = MatMut::row_major(c_heft, m, n).expect("C has m * n floats");
                heft.run(1.0, a, b, 0.0, c).expect("the shapes agree");
            }),
            // SAFETY: the pointers cover m*k, k*n and m*n elements with the
            // row-major strides given, and C does not alias A or B.
            Box::new(|| unsafe {
                gemm::gemm(
                    m, n, k,
                    c_gemm.as_mut_ptr(), 1, n as isize, false,
                    a.as_ptr(), 1, k as isize,
                    b.as_ptr(), 1, n as isize,
                    0.0, 1.0, false, false, false, parallelism,
                )
            }),
            // SAFETY: as above.
            Box::new(|| unsafe {
                matrixmultiply::sgemm(
                    m, k, n, 1.0,
                    a.as_ptr(), k as isize, 1,
                    b.as_ptr(), n as isize, 1,
                    0.0, c_mm.as_mut_ptr(), n as isize, 1,
                )
            }),
        ];

        // Two warm-up calls per library fill the caches and start the
        // thread pool, and their mean sizes that library's repetitions.
        let reps: Vec<usize> = products
            .iter_mut()
            .map(|product| {
                let start = Instant::now();
                product();
                product();
                let per_call = start.elapsed().as_secs_f64() / 2.0;
                ((sample_s / per_call.max(1e-9)).ceil() as usize).max(1)
            })
            .collect();
        let mut gflops = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..samples {
            for library in order.next() {
                let start = Instant::now();
                for _ in 0..reps[library] {
                    products[library]();
                }
                let seconds = start.elapsed().as_secs_f64() / reps[library] as f64;
                gflops[library].push(flops / seconds / 1e9);
            }
        }
        drop(products);

        for (library, c) in LIBRARIES.iter().zip(&c) {
            check(library, &a, &b, c, m, k, n);
        }
        for (library, figures) in LIBRARIES.iter().zip(&gflops) {
            println!("{library}\t{m}\t{k}\t{n}\t{threads}\t{:.2}", median(figures.clone()));
        }
        let ratio = |other: usize| {
            median(gflops[0].iter().zip(&gflops[other]).map(|(h, o)| h / o).collect())
        };
        println!("ratio\t{m}\t{k}\t{n}\t{threads}\t{:.3}\t{:.3}", ratio(1), ratio(2));
    }
}

/// The order of the libraries in each round: a Fisher-Yates shuffle
/// driven by a 64-bit linear congruential generator, fixed by its seed so
/// that runs are repeatable.
struct Order(u64);

impl Order {
    fn next(&mut self) -> [usize; 3] {
        let mut order = [0, 1, 2];
        for i in (1..order.len()).rev() {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            order.swap(i, (self.0 >> 33) as usize % (i + 1));
        }
        order
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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
