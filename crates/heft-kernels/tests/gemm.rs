//! GEMM against a naive f64 reference, for every kernel this CPU runs.

mod common;

use common::{kernels, Rng};

use heft_kernels::dispatch::Isa;
use heft_kernels::gemm::{argmax_group, Epilogue, Gemm, GemmError, MatMut, MatRef};
use heft_kernels::reference::{self, Stored};

/// Every m, n, k in 0..=2 * max(MR, NR) with small integers, so every
/// result is exact and compared bit for bit. Layouts alternate between
/// row-major and column-major with padding, and alpha and beta cycle
/// through 0, 1 and other values.
#[test]
fn exhaustive_small_shapes_exact() {
    for gemm in kernels() {
        let (mr, nr) = gemm.tile();
        let limit = 2 * mr.max(nr);
        let mut rng = Rng::new(0x5EED ^ limit as u64);
        let mut calls = 0usize;
        for m in 0..=limit {
            let a = Stored::new(m, limit, m % 2 == 1, 3, || rng.small_int());
            for n in 0..=limit {
                let b = Stored::new(limit, n, n % 2 == 1, 2, || rng.small_int());
                let c0 = Stored::new(m, n, (m + n) % 2 == 1, 1, || rng.small_int());
                // Running sums over k of A[i, p] * B[p, j], exact in f64.
                let mut prefix = vec![0.0f64; m * n];
                for k in 0..=limit {
                    if k > 0 {
                        for i in 0..m {
                            for j in 0..n {
                                prefix[i * n + j] +=
                                    f64::from(a.get(i, k - 1)) * f64::from(b.get(k - 1, j));
                            }
                        }
                    }
                    let (alpha, beta) =
                        [(1.0, 0.0), (-1.5, 0.5), (0.0, 1.0), (1.0, 1.0), (2.0, -0.5)]
                            [(m + 2 * n + 3 * k) % 5];
                    let mut c = Stored {
                        data: c0.data.clone(),
                        ..c0
                    };
                    if beta == 0.0 {
                        for i in 0..m {
                            for j in 0..n {
                                c.set(i, j, f32::NAN);
                            }
                        }
                    }
                    let a_view = a.view().submatrix(0, 0, m, k).unwrap();
                    let b_view = b.view().submatrix(0, 0, k, n).unwrap();
                    gemm.run(alpha, a_view, b_view, beta, c.view_mut()).unwrap();
                    calls += 1;
                    for i in 0..m {
                        for j in 0..n {
                            let product = if alpha == 0.0 {
                                0.0
                            } else {
                                f64::from(alpha) * prefix[i * n + j]
                            };
                            let previous = if beta == 0.0 {
                                0.0
                            } else {
                                f64::from(beta) * f64::from(c0.get(i, j))
                            };
                            let expected = (product + previous) as f32;
                            let got = c.get(i, j);
                            assert!(
                                got == expected,
                                "{}: m={m} n={n} k={k} alpha={alpha} beta={beta}: C[{i},{j}] = {got}, expected {expected}",
                                gemm.isa()
                            );
                        }
                    }
                    c.assert_poison_intact(&format!("{} m={m} n={n} k={k}", gemm.isa()));
                }
            }
        }
        println!("{}: {calls} exact GEMMs up to {limit}", gemm.isa());
    }
}

/// Random floats on shapes that cross MR, NR, MC, KC and NC, in every
/// combination of transposed operands, padded strides and alpha and beta
/// in {0, 1, other}, within the f32 error bound `2 k eps |A||B|`.
#[test]
fn block_crossing_shapes_all_layouts() {
    // (m, n, k)
    let shapes = [
        (1, 1, 1),
        (13, 33, 257),
        (193, 35, 300),
        (7, 3073, 17),
        (385, 70, 513),
        (200, 1, 90),
        (1, 200, 90),
        (1, 300, 600),
        (600, 1, 300),
        (45, 33, 33),
        // A C of few rows, which the plan swaps to C^T on the narrow tile
        // with AVX-512: one pass (k = 300), and several with B packed for
        // all of k (k = 600). With AVX2 (KC 256) both take several passes.
        (13, 3100, 600),
        (13, 3100, 300),
        // One pass with A micro-panels outer, with AVX-512.
        (100, 700, 300),
        // Several passes with B packed for all of k (750 KiB), with AVX-512
        // where half of the L2 has room for it.
        (50, 300, 600),
        // Several passes with B packed one pass at a time, NC block
        // boundaries at columns 512 and 1024 with AVX-512 on a 2 MiB L2, and
        // A micro-panels outer.
        (40, 1100, 600),
        // n wide enough for several NC blocks of every kernel.
        (9, 40, 9000),
    ];
    let mut rng = Rng::new(42);
    for gemm in kernels() {
        for &(m, n, k) in &shapes {
            for layout in 0..8 {
                let (a_t, b_t, c_t) = (layout & 1 == 1, layout & 2 == 2, layout & 4 == 4);
                for (alpha, beta) in [
                    (1.0, 0.0),
                    (0.0, 0.5),
                    (-1.25, 1.0),
                    (1.0, 1.0),
                    (0.0, 0.0),
                    (0.75, -2.0),
                ] {
                    let mut a = Stored::new(m, k, a_t, 5, || rng.float());
                    let b = Stored::new(k, n, b_t, 3, || rng.float());
                    let mut c = Stored::new(m, n, c_t, 2, || rng.float());
                    if alpha == 0.0 && m > 0 && k > 0 {
                        a.set(0, 0, f32::NAN);
                    }
                    if beta == 0.0 && m > 0 && n > 0 {
                        c.set(m - 1, n - 1, f32::NAN);
                    }
                    let expected = reference::gemm_f64(alpha, a.view(), b.view(), beta, c.view());
                    let scale = reference::magnitude(alpha, a.view(), b.view(), beta, c.view());
                    gemm.run(alpha, a.view(), b.view(), beta, c.view_mut())
                        .unwrap();
                    let context = format!(
                        "{} {m}x{n}x{k} layout {layout} alpha {alpha} beta {beta}",
                        gemm.isa()
                    );
                    assert_within_error_bound(&context, (m, n, k), &expected, &scale, |i, j| {
                        c.get(i, j)
                    });
                    c.assert_poison_intact(&context);
                }
            }
        }
    }
}

/// Products that several threads split into one-thread products over
/// slices of C (by columns for a wide or large C, by rows for a tall one)
/// give the sequential bits with a bias and ReLU. Each slice takes its
/// part of the bias. C is row-major, or column-major and so computed as
/// C^T, where the bias runs along the rows.
#[test]
fn split_products_keep_epilogue_bits() {
    let mut rng = Rng::new(5);
    for gemm in kernels() {
        for &(m, n, k) in &[(530, 541, 70), (1700, 150, 40), (150, 1700, 40)] {
            for c_t in [false, true] {
                let a = Stored::new(m, k, false, 0, || rng.float());
                let b = Stored::new(k, n, false, 0, || rng.float());
                let bias: Vec<f32> = (0..n).map(|_| rng.float()).collect();
                let run = |gemm: Gemm| {
                    let mut c = Stored::new(m, n, c_t, 1, || f32::NAN);
                    let epilogue = Epilogue {
                        bias: Some(&bias),
                        relu: true,
                    };
                    gemm.run_with(1.0, a.view(), b.view(), 0.0, c.view_mut(), epilogue)
                        .unwrap();
                    c.assert_poison_intact("split product");
                    bits(&c.data)
                };
                // `kernels()` gives sequential instances.
                let sequential = run(gemm);
                let parallel = Gemm::with_isa(gemm.isa()).unwrap();
                for threads in [2, 3] {
                    let result = pool(threads).install(|| run(parallel));
                    assert!(
                        result == sequential,
                        "{} {m}x{n}x{k} C transposed {c_t}: {threads} threads differ",
                        gemm.isa()
                    );
                }
            }
        }
    }
}

/// A C of 2.7 MiB, more than half of a 2 MiB L2, whose full and edge
/// tiles prefetch their rows before the chains run, against the
/// reference with beta 0 (NaN in C ignored) and beta != 0, and with C
/// transposed (computed as C^T, whose rows are contiguous). A prefetch
/// changes no value, so this guards the prefetching code against
/// out-of-range arithmetic (overflow checks are on in tests), not the
/// results.
#[test]
fn large_c_prefetched_tiles() {
    let (m, n, k) = (641, 1101, 5);
    let mut rng = Rng::new(7);
    for gemm in kernels() {
        for (c_t, alpha, beta) in [(false, 1.0, 0.0), (false, -1.25, 0.5), (true, 1.0, 1.0)] {
            let a = Stored::new(m, k, false, 3, || rng.float());
            let b = Stored::new(k, n, false, 0, || rng.float());
            let mut c = Stored::new(m, n, c_t, 2, || rng.float());
            if beta == 0.0 {
                c.set(m - 1, n - 1, f32::NAN);
            }
            let expected = reference::gemm_f64(alpha, a.view(), b.view(), beta, c.view());
            let scale = reference::magnitude(alpha, a.view(), b.view(), beta, c.view());
            gemm.run(alpha, a.view(), b.view(), beta, c.view_mut())
                .unwrap();
            let context = format!("{} C transposed {c_t} beta {beta}", gemm.isa());
            assert_within_error_bound(&context, (m, n, k), &expected, &scale, |i, j| c.get(i, j));
            c.assert_poison_intact(&context);
        }
    }
}

/// Bias and ReLU epilogue against the reference, including NaN passing
/// through ReLU unchanged.
#[test]
fn epilogue_bias_relu() {
    let mut rng = Rng::new(7);
    for gemm in kernels() {
        for &(m, n, k) in &[(1, 1, 1), (31, 45, 70), (200, 10, 128), (10, 200, 128)] {
            let a = Stored::new(m, k, false, 0, || rng.float());
            let b = Stored::new(k, n, true, 0, || rng.float());
            let bias: Vec<f32> = (0..n).map(|_| rng.float()).collect();
            let mut c = Stored::new(m, n, false, 0, || 0.0);
            let epilogue = Epilogue {
                bias: Some(&bias),
                relu: true,
            };
            gemm.run_with(1.0, a.view(), b.view(), 0.0, c.view_mut(), epilogue)
                .unwrap();
            let expected = reference::gemm_f64(1.0, a.view(), b.view(), 0.0, c.view());
            for i in 0..m {
                for j in 0..n {
                    let want = (expected[i * n + j] + f64::from(bias[j])).max(0.0);
                    let got = f64::from(c.get(i, j));
                    assert!(
                        (got - want).abs() <= 1e-4,
                        "{} {m}x{n}x{k}: C[{i},{j}] = {got}, expected {want}",
                        gemm.isa()
                    );
                }
            }
        }
        let a = [f32::NAN, 1.0];
        let b = [1.0, -1.0];
        let mut c = [0.0f32; 2];
        let epilogue = Epilogue {
            bias: None,
            relu: true,
        };
        let a = MatRef::row_major(&a, 2, 1).unwrap();
        let b = MatRef::row_major(&b, 1, 2).unwrap();
        let mut c4 = [0.0f32; 4];
        gemm.run_with(
            1.0,
            a,
            b,
            0.0,
            MatMut::row_major(&mut c4, 2, 2).unwrap(),
            epilogue,
        )
        .unwrap();
        assert!(
            c4[0].is_nan() && c4[1].is_nan(),
            "NaN row must stay NaN through ReLU: {c4:?}"
        );
        assert_eq!(&c4[2..], &[1.0, 0.0]);
        c[0] = 1.0;
        assert_eq!(c[0], 1.0);
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|x| x.to_bits()).collect()
}

/// Asserts that every element `got(i, j)` of an m x n result lies within
/// the f32 error bound `2 (k + 2) eps` times `scale` of the f64 reference
/// `expected`, both row-major.
fn assert_within_error_bound(
    context: &str,
    (m, n, k): (usize, usize, usize),
    expected: &[f64],
    scale: &[f64],
    got: impl Fn(usize, usize) -> f32,
) {
    let bound = 2.0 * (k as f64 + 2.0) * f64::from(f32::EPSILON);
    for i in 0..m {
        for j in 0..n {
            let got = f64::from(got(i, j));
            let want = expected[i * n + j];
            let tolerance = bound * scale[i * n + j] + 1e-30;
            assert!(
                (got - want).abs() <= tolerance,
                "{context}: C[{i},{j}] = {got}, expected {want} within {tolerance}"
            );
        }
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// Returns a NaN buffer and the offset in it of a `rows x cols` matrix
/// with row stride `row_stride`, filled from `rng`, that ends at the
/// buffer's last element.
fn view_in_nan(rng: &mut Rng, rows: usize, cols: usize, row_stride: usize) -> (Vec<f32>, usize) {
    let offset = row_stride % 7;
    let mut data = vec![f32::NAN; offset + (rows - 1) * row_stride + cols];
    for i in 0..rows {
        for j in 0..cols {
            data[offset + i * row_stride + j] = rng.float();
        }
    }
    (data, offset)
}

/// GEMM on A and B views that one thread reads in place and several
/// threads pack. Their row strides are tight, padded or a multiple of
/// 4 KiB, and they start inside a NaN buffer and end at its last element.
/// k falls around the kernels' four-step groups and around KC, and n
/// around whole panels of columns. Each result must stay within the f64
/// reference's error bound and keep its bits with 2 and 3 threads.
#[test]
fn gemm_views_read_in_place() {
    let mut rng = Rng::new(31);
    // (m, n, k)
    let shapes: [(usize, usize, usize); 6] = [
        (13, 200, 513),
        (25, 129, 1030),
        (205, 33, 257),
        (24, 1100, 7),
        (5, 70, 3),
        (64, 96, 300),
    ];
    for gemm in kernels() {
        for &(m, n, k) in &shapes {
            let a_strides = [k, k + 3, k.next_multiple_of(1024)];
            let b_strides = [n, n + 5, n.next_multiple_of(1024)];
            for (a_stride, b_stride) in a_strides.into_iter().zip(b_strides) {
                let (a_data, a_offset) = view_in_nan(&mut rng, m, k, a_stride);
                let a = MatRef::new(&a_data[a_offset..], m, k, a_stride, 1).unwrap();
                let (b_data, b_offset) = view_in_nan(&mut rng, k, n, b_stride);
                let b = MatRef::new(&b_data[b_offset..], k, n, b_stride, 1).unwrap();
                let c0: Vec<f32> = (0..m * n).map(|_| rng.float()).collect();
                let run = |gemm: Gemm| {
                    let mut c = c0.clone();
                    let c_view = MatMut::row_major(&mut c, m, n).unwrap();
                    gemm.run(0.5, a, b, 1.5, c_view).unwrap();
                    c
                };
                let context = format!(
                    "{} {m}x{n}x{k} row strides {a_stride} (A) and {b_stride} (B)",
                    gemm.isa()
                );
                let sequential = run(gemm.sequential());
                let c_before = MatRef::row_major(&c0, m, n).unwrap();
                let expected = reference::gemm_f64(0.5, a, b, 1.5, c_before);
                let scale = reference::magnitude(0.5, a, b, 1.5, c_before);
                assert_within_error_bound(&context, (m, n, k), &expected, &scale, |i, j| {
                    sequential[i * n + j]
                });
                for threads in [2, 3] {
                    let threaded = pool(threads).install(|| run(gemm));
                    assert!(
                        bits(&threaded) == bits(&sequential),
                        "{context}: {threads} threads changed the bits"
                    );
                }
            }
        }
    }
}

/// Bitwise-identical results with 1, 2 and 3 threads, and with the
/// sequential configuration. With several threads, (300, 600, 300) and
/// (500, 300, 64) have fewer MC blocks of packed A rows than tasks, so
/// their rows are split evenly over the tasks. With AVX-512,
/// (97, 3100, 600) runs its passes with A micro-panels outer.
#[test]
fn thread_count_does_not_change_bits() {
    let mut rng = Rng::new(99);
    for isa in Isa::ALL {
        let Ok(gemm) = Gemm::with_isa(isa) else {
            common::report_skip(&format!("skipping kernel {isa}: not supported by this CPU"));
            continue;
        };
        for &(m, n, k, b_t) in &[
            (300, 600, 300, false),
            (500, 300, 64, false),
            (1000, 128, 10, true),
            (2000, 10, 128, true),
            (97, 3100, 600, false),
            (50, 70, 9000, false),
            // Several threads split these into one-thread products, by
            // columns and by rows.
            (530, 541, 70, false),
            (1700, 150, 40, true),
        ] {
            let a = Stored::new(m, k, false, 0, || rng.float());
            let b = Stored::new(k, n, b_t, 0, || rng.float());
            let c0 = Stored::new(m, n, false, 0, || rng.float());
            let run = |gemm: Gemm| {
                let mut c = Stored {
                    data: c0.data.clone(),
                    ..c0
                };
                gemm.run(0.5, a.view(), b.view(), 2.0, c.view_mut())
                    .unwrap();
                bits(&c.data)
            };
            let sequential = run(gemm.sequential());
            for threads in [1, 2, 3] {
                let result = pool(threads).install(|| run(gemm));
                assert!(
                    result == sequential,
                    "{isa} {m}x{n}x{k}: {threads} threads differ from sequential"
                );
            }
        }
    }
}

/// Products running at once on a two-thread pool, each with a B block
/// small enough that every thread packs a copy of its own. A thread that
/// takes tasks of several products in turn must pack each product's B
/// again. Two products joined inside one task must not take each other's
/// panels. A product of the same shape with new values must not reuse the
/// panels of the last one. Every result must equal the sequential one.
#[test]
fn concurrent_products_pack_their_own_b() {
    use rayon::prelude::*;
    let mut rng = Rng::new(7);
    // (m, k, n): one pass over k (k <= KC), several passes held at once
    // (the resident order), a C of several row blocks per thread, A of at
    // most 128 rows, whose tasks split B's panels among them, and a C wider
    // than one NC block of the AVX-512 kernel.
    let shapes = [
        (300, 200, 100),
        (250, 64, 300),
        (400, 700, 90),
        (130, 300, 260),
        (100, 300, 128),
        (120, 100, 250),
        (200, 32, 3500),
    ];
    let run = |gemm: Gemm, (a, b): &(Stored, Stored)| {
        let mut c = Stored::new(a.rows, b.cols, false, 0, || 0.0);
        gemm.run(1.0, a.view(), b.view(), 0.0, c.view_mut())
            .unwrap();
        bits(&c.data)
    };
    for isa in Isa::ALL {
        let Ok(gemm) = Gemm::with_isa(isa) else {
            common::report_skip(&format!("skipping kernel {isa}: not supported by this CPU"));
            continue;
        };
        let pool = pool(2);
        // Every round draws new operands of the same shapes.
        for round in 0..3 {
            let inputs: Vec<(Stored, Stored)> = shapes
                .iter()
                .map(|&(m, k, n)| {
                    (
                        Stored::new(m, k, false, 0, || rng.float()),
                        Stored::new(k, n, false, 0, || rng.float()),
                    )
                })
                .collect();
            let expected: Vec<Vec<u32>> =
                inputs.iter().map(|x| run(gemm.sequential(), x)).collect();
            let concurrent: Vec<Vec<u32>> =
                pool.install(|| inputs.par_iter().map(|x| run(gemm, x)).collect());
            let joined: Vec<(Vec<u32>, Vec<u32>)> = pool.install(|| {
                (0..inputs.len())
                    .into_par_iter()
                    .map(|i| {
                        let next = &inputs[(i + 1) % inputs.len()];
                        rayon::join(|| run(gemm, &inputs[i]), || run(gemm, next))
                    })
                    .collect()
            });
            for (i, (m, k, n)) in shapes.into_iter().enumerate() {
                let next = (i + 1) % inputs.len();
                assert!(
                    concurrent[i] == expected[i],
                    "{isa} {m}x{k}x{n}, round {round}: concurrent run differs"
                );
                assert!(
                    joined[i].0 == expected[i],
                    "{isa} {m}x{k}x{n}, round {round}: first joined run differs"
                );
                assert!(
                    joined[i].1 == expected[next],
                    "{isa} {m}x{k}x{n}, round {round}: second joined run differs"
                );
            }
        }
    }
}

/// The fused argmax count equals "multiply with bias, then argmax each
/// group" on data with frequent ties (small integers), NaN rows of A and a
/// NaN column of B, with A row-major and column-major, for 1, 2 and 3
/// threads. One and two candidates on a row-major A cover every class
/// count of the class-major kernels. The A has 301 rows, past the
/// class-major threshold and not a multiple of the 32-sample panel, and
/// 130 features, not a multiple of the 4-step transpose. With 100 rows the
/// tile path runs.
#[test]
fn fused_argmax_matches_multiply_then_argmax() {
    let mut rng = Rng::new(2024);
    let mut few_candidates = Vec::new();
    for classes in 2..=15 {
        few_candidates.push((301, 130, classes, 1, false));
        few_candidates.push((301, 33, classes, 2, false));
        few_candidates.push((100, 19, classes, 1, false));
    }
    for isa in Isa::ALL {
        let Ok(gemm) = Gemm::with_isa(isa) else {
            common::report_skip(&format!("skipping kernel {isa}: not supported by this CPU"));
            continue;
        };
        for &(m, k, classes, candidates, a_col_major) in few_candidates.iter().chain(&[
            (1, 1, 1, 1, false),
            (37, 5, 3, 7, false),
            (500, 128, 10, 10, false),
            (1003, 64, 10, 64, false),
            (250, 300, 7, 3, false),
            (250, 300, 7, 5, false),
            (97, 520, 2, 6, false),
            (66, 40, 14, 4, false),
            (33, 17, 5, 9, false),
            (45, 9, 6, 5, false),
            (40, 0, 4, 2, false),
            (40, 0, 4, 8, false),
            (1, 1, 1, 1, true),
            (2, 3, 4, 1, true),
            (37, 5, 3, 7, true),
            (500, 128, 10, 1, true),
            (1003, 64, 10, 64, true),
            (250, 300, 7, 1, true),
            (97, 520, 2, 2, true),
            (66, 40, 14, 1, true),
            (40, 0, 4, 1, true),
        ]) {
            let n = classes * candidates;
            let mut a = Stored::new(m, k, a_col_major, 0, || rng.small_int());
            let mut b = Stored::new(k, n, false, 0, || (rng.small_int() / 2.0).round());
            if m > 3 && k > 0 {
                for p in 0..k {
                    a.set(3, p, f32::NAN);
                }
            }
            if n > 2 && k > 0 {
                for p in 0..k {
                    b.set(p, 2, f32::NAN);
                }
            }
            let bias: Vec<f32> = (0..n).map(|_| rng.small_int()).collect();
            let labels: Vec<u32> = (0..m).map(|_| rng.below(classes as u64) as u32).collect();

            let mut logits = vec![0.0f32; m * n];
            let epilogue = Epilogue {
                bias: Some(&bias),
                relu: false,
            };
            gemm.sequential()
                .run_with(
                    1.0,
                    a.view(),
                    b.view(),
                    0.0,
                    MatMut::row_major(&mut logits, m, n).unwrap(),
                    epilogue,
                )
                .unwrap();
            let mut expected = vec![0u64; candidates];
            if n > 0 {
                for (i, row) in logits.chunks_exact(n).enumerate() {
                    for (p, group) in row.chunks_exact(classes).enumerate() {
                        if argmax_group(group) == Some(labels[i] as usize) {
                            expected[p] += 1;
                        }
                    }
                }
            }
            for threads in [1, 2, 3] {
                let mut counts = vec![u64::MAX; candidates];
                pool(threads)
                    .install(|| {
                        gemm.argmax_count(
                            a.view(),
                            b.view(),
                            Some(&bias),
                            classes,
                            &labels,
                            &mut counts,
                        )
                    })
                    .unwrap();
                assert_eq!(
                    counts, expected,
                    "{isa} m={m} k={k} classes={classes} candidates={candidates} \
                     A column-major {a_col_major} threads={threads}"
                );
            }
        }
    }
}

/// The fused argmax count breaks rounding ties as "multiply, then argmax"
/// does. Every row of A is one repeated value and, in each candidate,
/// class `2j + 1` has the weights of class `2j` in reverse order, so the
/// two logits are equal in exact arithmetic and differ by rounding only,
/// which depends on the order of the sums and on where they restart
/// (k = 700 takes three passes of KC with AVX2 and two with AVX-512).
/// Class counts 2, 7, 10 and 13 cover the register layouts of the AVX2
/// class-major kernels: all classes at once, two blocks of unequal and of
/// equal size, and three blocks. Six candidates, a column-major A and a
/// row-major A with one candidate all select those kernels.
#[test]
fn fused_argmax_breaks_rounding_ties_like_gemm() {
    let mut rng = Rng::new(77);
    let (m, k) = (301, 700);
    for isa in Isa::ALL {
        let Ok(gemm) = Gemm::with_isa(isa) else {
            common::report_skip(&format!("skipping kernel {isa}: not supported by this CPU"));
            continue;
        };
        for (classes, candidates, a_col_major) in [
            (2, 6, false),
            (7, 6, false),
            (7, 1, true),
            (10, 1, false),
            (10, 6, false),
            (13, 1, false),
            (13, 6, false),
        ] {
            let n = classes * candidates;
            let row_values: Vec<f32> = (0..m).map(|_| rng.float()).collect();
            let mut a = Stored::new(m, k, a_col_major, 0, || 0.0);
            for (i, &x) in row_values.iter().enumerate() {
                for p in 0..k {
                    a.set(i, p, x);
                }
            }
            let mut b = Stored::new(k, n, false, 0, || rng.float());
            for first in (0..n).filter(|j| j % classes % 2 == 0 && j % classes + 1 < classes) {
                for p in 0..k {
                    let w = b.data[(k - 1 - p) * b.rs + first * b.cs];
                    b.set(p, first + 1, w);
                }
            }
            let labels: Vec<u32> = (0..m).map(|_| rng.below(classes as u64) as u32).collect();

            let mut logits = vec![0.0f32; m * n];
            gemm.sequential()
                .run(
                    1.0,
                    a.view(),
                    b.view(),
                    0.0,
                    MatMut::row_major(&mut logits, m, n).unwrap(),
                )
                .unwrap();
            let rounded_apart = logits
                .chunks_exact(n)
                .filter(|row| row[0] != row[1])
                .count();
            assert!(
                rounded_apart > m / 4,
                "{isa} classes={classes}: only {rounded_apart} of {m} rows round the mirrored pair apart"
            );
            let mut expected = vec![0u64; candidates];
            for (i, row) in logits.chunks_exact(n).enumerate() {
                for (p, group) in row.chunks_exact(classes).enumerate() {
                    if argmax_group(group) == Some(labels[i] as usize) {
                        expected[p] += 1;
                    }
                }
            }
            for threads in [1, 2] {
                let mut counts = vec![u64::MAX; candidates];
                pool(threads)
                    .install(|| {
                        gemm.argmax_count(a.view(), b.view(), None, classes, &labels, &mut counts)
                    })
                    .unwrap();
                assert_eq!(
                    counts, expected,
                    "{isa} classes={classes} threads={threads}"
                );
            }
        }
    }
}

#[test]
fn argmax_group_ties_and_nan() {
    assert_eq!(argmax_group(&[]), None);
    assert_eq!(argmax_group(&[1.0, 3.0, 3.0]), Some(1));
    assert_eq!(argmax_group(&[0.0, -0.0]), Some(0));
    assert_eq!(argmax_group(&[1.0, f32::NAN, 5.0, f32::NAN]), Some(1));
    assert_eq!(argmax_group(&[f32::NAN, 1.0]), Some(0));
    assert_eq!(
        argmax_group(&[f32::NEG_INFINITY, f32::NEG_INFINITY]),
        Some(0)
    );
    assert_eq!(argmax_group(&[-1.0, f32::INFINITY, 2.0]), Some(1));
}

/// A = 0..1484 as 45 x 33 times the 33 x 33 identity must give A exactly.
#[test]
fn identity_product_is_exact() {
    let a: Vec<f32> = (0..45 * 33).map(|x| x as f32).collect();
    let mut identity = vec![0.0f32; 33 * 33];
    for i in 0..33 {
        identity[i * 33 + i] = 1.0;
    }
    for gemm in kernels() {
        let mut c = vec![f32::NAN; 45 * 33];
        gemm.run(
            1.0,
            MatRef::row_major(&a, 45, 33).unwrap(),
            MatRef::row_major(&identity, 33, 33).unwrap(),
            0.0,
            MatMut::row_major(&mut c, 45, 33).unwrap(),
        )
        .unwrap();
        assert_eq!(c, a, "{}", gemm.isa());
    }
}

/// A^T A sums the same products in the same order for (i, j) and (j, i),
/// so it must be exactly symmetric with a non-negative diagonal.
#[test]
fn gram_matrix_is_symmetric() {
    let mut rng = Rng::new(5);
    let a: Vec<f32> = (0..50 * 50).map(|_| rng.float()).collect();
    for gemm in kernels() {
        let view = MatRef::row_major(&a, 50, 50).unwrap();
        let mut c = vec![0.0f32; 50 * 50];
        gemm.run(
            1.0,
            view.t(),
            view,
            0.0,
            MatMut::row_major(&mut c, 50, 50).unwrap(),
        )
        .unwrap();
        for i in 0..50 {
            assert!(c[i * 50 + i] >= 0.0);
            for j in 0..i {
                assert_eq!(
                    c[i * 50 + j].to_bits(),
                    c[j * 50 + i].to_bits(),
                    "{} ({i}, {j})",
                    gemm.isa()
                );
            }
        }
    }
}

/// Operands starting 0..8 floats past a 64-byte boundary give bitwise the
/// same result.
#[test]
fn misaligned_operands_same_bits() {
    let (m, n, k) = (37, 45, 70);
    let mut rng = Rng::new(11);
    let a: Vec<f32> = (0..m * k).map(|_| rng.float()).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.float()).collect();
    for gemm in kernels() {
        let mut first: Option<Vec<u32>> = None;
        for offset in 0..8 {
            let mut a_buf = heft_kernels::AlignedVec::zeros(m * k + offset);
            a_buf.as_mut_slice()[offset..].copy_from_slice(&a);
            let mut b_buf = heft_kernels::AlignedVec::zeros(k * n + offset);
            b_buf.as_mut_slice()[offset..].copy_from_slice(&b);
            let mut c_buf = heft_kernels::AlignedVec::zeros(m * n + offset);
            gemm.run(
                1.0,
                MatRef::row_major(&a_buf.as_slice()[offset..], m, k).unwrap(),
                MatRef::row_major(&b_buf.as_slice()[offset..], k, n).unwrap(),
                0.0,
                MatMut::row_major(&mut c_buf.as_mut_slice()[offset..], m, n).unwrap(),
            )
            .unwrap();
            let result = bits(&c_buf.as_slice()[offset..]);
            match &first {
                None => first = Some(result),
                Some(expected) => assert!(&result == expected, "{} offset {offset}", gemm.isa()),
            }
        }
    }
}

#[test]
fn shape_errors_name_operation_and_shapes() {
    let data = [0.0f32; 64];
    let mut out = [0.0f32; 64];
    let gemm = Gemm::new();
    let err = gemm
        .run(
            1.0,
            MatRef::row_major(&data, 3, 4).unwrap(),
            MatRef::row_major(&data, 5, 6).unwrap(),
            0.0,
            MatMut::row_major(&mut out, 3, 6).unwrap(),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("gemm:"), "{text}");
    assert!(
        text.contains("A is 3x4") && text.contains("B is 5x6") && text.contains("C is 3x6"),
        "{text}"
    );

    let bias = [0.0f32; 5];
    let err = gemm
        .run_with(
            1.0,
            MatRef::row_major(&data, 3, 4).unwrap(),
            MatRef::row_major(&data, 4, 6).unwrap(),
            0.0,
            MatMut::row_major(&mut out, 3, 6).unwrap(),
            Epilogue {
                bias: Some(&bias),
                relu: false,
            },
        )
        .unwrap_err();
    assert_eq!(
        err,
        GemmError::Length {
            op: "gemm",
            what: "bias",
            expected: 6,
            actual: 5
        }
    );

    let a = MatRef::row_major(&data, 2, 4).unwrap();
    let b = MatRef::row_major(&data, 4, 6).unwrap();
    let mut counts = [0u64; 2];
    let err = gemm
        .argmax_count(a, b, None, 4, &[0, 0], &mut counts)
        .unwrap_err();
    assert_eq!(
        err,
        GemmError::Group {
            op: "argmax_count",
            cols: 6,
            group: 4
        }
    );
    assert!(
        err.to_string()
            .contains("group size 4 does not divide the 6 columns of B"),
        "{err}"
    );
    let err = gemm
        .argmax_count(a, b, None, 3, &[0, 3], &mut counts)
        .unwrap_err();
    assert_eq!(
        err,
        GemmError::Label {
            row: 1,
            label: 3,
            group: 3
        }
    );
    assert!(err.to_string().contains("label 3 at row 1"), "{err}");
    // With several labels out of range, the first one is named, not the
    // largest.
    let four_rows = MatRef::row_major(&data, 4, 4).unwrap();
    let err = gemm
        .argmax_count(four_rows, b, None, 3, &[0, 4, 2, 9], &mut counts)
        .unwrap_err();
    assert_eq!(
        err,
        GemmError::Label {
            row: 1,
            label: 4,
            group: 3
        }
    );
    let err = gemm
        .argmax_count(a, b, None, 3, &[0], &mut counts)
        .unwrap_err();
    assert!(
        matches!(
            err,
            GemmError::Length {
                what: "labels",
                expected: 2,
                actual: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn empty_inner_dimension_scales_c() {
    for gemm in kernels() {
        let mut c = [1.0f32, f32::NAN, 3.0, 4.0];
        gemm.run(
            1.0,
            MatRef::row_major(&[], 2, 0).unwrap(),
            MatRef::row_major(&[], 0, 2).unwrap(),
            0.0,
            MatMut::row_major(&mut c, 2, 2).unwrap(),
        )
        .unwrap();
        assert_eq!(
            c,
            [0.0; 4],
            "{}: beta = 0 with k = 0 must zero C, NaN included",
            gemm.isa()
        );
        let mut c = [1.0f32, 2.0, 3.0, 4.0];
        gemm.run(
            1.0,
            MatRef::row_major(&[], 2, 0).unwrap(),
            MatRef::row_major(&[], 0, 2).unwrap(),
            0.5,
            MatMut::row_major(&mut c, 2, 2).unwrap(),
        )
        .unwrap();
        assert_eq!(c, [0.5, 1.0, 1.5, 2.0]);
    }
}

/// Storing A, B and C row-major or column-major (which changes the tile
/// orientation the GEMM picks) gives bitwise the same C, with alpha and
/// beta away from 0 and 1 so every rounding step is exercised.
#[test]
fn layout_does_not_change_bits() {
    let mut rng = Rng::new(31);
    for gemm in kernels() {
        for &(m, n, k) in &[
            (6, 8, 4),
            (12, 16, 8),
            (7, 9, 5),
            (6, 100, 4),
            (37, 70, 300),
            (300, 10, 129),
        ] {
            let a_values: Vec<f32> = (0..m * k).map(|_| rng.float()).collect();
            let b_values: Vec<f32> = (0..k * n).map(|_| rng.float()).collect();
            let c_values: Vec<f32> = (0..m * n).map(|_| rng.float()).collect();
            let results =
                bits_in_every_layout(&a_values, &b_values, &c_values, (m, n, k), |a, b, c| {
                    gemm.run(0.8, a, b, 0.3, c).unwrap();
                });
            for (layout, result) in results.iter().enumerate() {
                assert!(
                    result == &results[0],
                    "{} {m}x{n}x{k}: layout {layout} differs from layout 0",
                    gemm.isa()
                );
            }
        }
    }
}

/// Stores A, B and C (given row-major) in each of the 8 combinations of
/// row- and column-major layouts, runs `product` on them, and returns C's
/// bits in row-major order for each layout.
fn bits_in_every_layout(
    a_values: &[f32],
    b_values: &[f32],
    c_values: &[f32],
    (m, n, k): (usize, usize, usize),
    product: impl Fn(MatRef<'_>, MatRef<'_>, MatMut<'_>),
) -> Vec<Vec<u32>> {
    (0..8)
        .map(|layout| {
            let (a_t, b_t, c_t) = (layout & 1 == 1, layout & 2 == 2, layout & 4 == 4);
            let mut next = a_values.iter().copied();
            let a = Stored::new(m, k, a_t, 0, || next.next().unwrap());
            let mut next = b_values.iter().copied();
            let b = Stored::new(k, n, b_t, 0, || next.next().unwrap());
            let mut next = c_values.iter().copied();
            let mut c = Stored::new(m, n, c_t, 0, || next.next().unwrap());
            product(a.view(), b.view(), c.view_mut());
            (0..m)
                .flat_map(|i| (0..n).map(move |j| (i, j)))
                .map(|(i, j)| c.get(i, j).to_bits())
                .collect()
        })
        .collect()
}

/// The bias and ReLU epilogue gives the same bits in every layout: the
/// loops apply it per column or, for the transposed problem, per row, and
/// on contiguous or strided tile rows.
#[test]
fn epilogue_layout_does_not_change_bits() {
    let mut rng = Rng::new(41);
    for gemm in kernels() {
        for &(m, n, k) in &[(7, 9, 5), (6, 100, 4), (100, 6, 4), (37, 70, 300)] {
            let mut a_values: Vec<f32> = (0..m * k).map(|_| rng.float()).collect();
            // A NaN row, which ReLU must pass through.
            a_values[k..2 * k].fill(f32::NAN);
            let b_values: Vec<f32> = (0..k * n).map(|_| rng.float()).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.float()).collect();
            let epilogue = Epilogue {
                bias: Some(&bias),
                relu: true,
            };
            let zeros = vec![0.0f32; m * n];
            let results =
                bits_in_every_layout(&a_values, &b_values, &zeros, (m, n, k), |a, b, c| {
                    gemm.run_with(1.0, a, b, 0.0, c, epilogue).unwrap();
                });
            assert!(
                results[0][n..2 * n]
                    .iter()
                    .all(|&x| f32::from_bits(x).is_nan()),
                "{} {m}x{n}x{k}: the NaN row did not stay NaN",
                gemm.isa()
            );
            assert!(
                results[0]
                    .iter()
                    .map(|&x| f32::from_bits(x))
                    .all(|x| x.is_nan() || x >= 0.0),
                "{} {m}x{n}x{k}: ReLU left a negative value",
                gemm.isa()
            );
            for (layout, result) in results.iter().enumerate() {
                assert!(
                    result == &results[0],
                    "{} {m}x{n}x{k}: layout {layout} differs from layout 0",
                    gemm.isa()
                );
            }
        }
    }
}

/// A product with 2 to 14 columns, one pass over k and a row-major or
/// column-major A of at least 128 rows takes the class-major kernels on
/// AVX-512 and AVX2. It gives the bits of the sequential tile path, which
/// an A with no unit stride takes, with rounding that depends on the order
/// of the sums (random floats), a NaN row of A, a NaN column of B, alpha
/// other than 1, the bias and ReLU epilogue, NaN in C ignored with beta =
/// 0, padded and column-major C, and pools of 1 to 3 threads. From 5
/// columns on, (2100, 200) is large enough for the product to use the
/// threads. 15 columns and k = 257 (two passes) stay on the tile path and
/// check the comparison itself.
#[test]
fn few_columns_match_tile_path() {
    let mut rng = Rng::new(515);
    for gemm in kernels() {
        let parallel = Gemm::with_isa(gemm.isa()).unwrap();
        for &(m, k) in &[(300, 130), (128, 2), (161, 256), (140, 257), (2100, 200)] {
            for n in 2..=15 {
                let mut a_values: Vec<f32> = (0..m * k).map(|_| rng.float()).collect();
                a_values[5 * k..6 * k].fill(f32::NAN);
                let mut b_values: Vec<f32> = (0..k * n).map(|_| rng.float()).collect();
                for p in 0..k {
                    b_values[p * n + 1] = if n > 2 { f32::NAN } else { b_values[p * n + 1] };
                }
                let bias: Vec<f32> = (0..n).map(|_| rng.float()).collect();
                // A with strides 2k and 2: no unit stride, so the tile path.
                let mut strided = vec![f32::NAN; 2 * m * k];
                for i in 0..m {
                    for p in 0..k {
                        strided[i * 2 * k + 2 * p] = a_values[i * k + p];
                    }
                }
                let strided_a = MatRef::new(&strided, m, k, 2 * k, 2).unwrap();
                let b = MatRef::row_major(&b_values, k, n).unwrap();
                for (alpha, epilogue) in [
                    (1.0, Epilogue::default()),
                    (
                        -0.75,
                        Epilogue {
                            bias: Some(&bias),
                            relu: true,
                        },
                    ),
                ] {
                    let mut expected = vec![f32::NAN; m * n];
                    gemm.sequential()
                        .run_with(
                            alpha,
                            strided_a,
                            b,
                            0.0,
                            MatMut::row_major(&mut expected, m, n).unwrap(),
                            epilogue,
                        )
                        .unwrap();
                    for (a_t, c_t) in [(false, false), (true, false), (false, true)] {
                        let mut next = a_values.iter().copied();
                        let a = Stored::new(m, k, a_t, 0, || next.next().unwrap());
                        for threads in [1, 2, 3] {
                            let mut c = Stored::new(m, n, c_t, 1, || f32::NAN);
                            pool(threads)
                                .install(|| {
                                    parallel.run_with(
                                        alpha,
                                        a.view(),
                                        b,
                                        0.0,
                                        c.view_mut(),
                                        epilogue,
                                    )
                                })
                                .unwrap();
                            let context = format!(
                                "{} {m}x{k}x{n} alpha {alpha} A column-major {a_t} \
                                 C column-major {c_t} threads {threads}",
                                gemm.isa()
                            );
                            c.assert_poison_intact(&context);
                            for i in 0..m {
                                for j in 0..n {
                                    assert_eq!(
                                        c.get(i, j).to_bits(),
                                        expected[i * n + j].to_bits(),
                                        "{context}: element ({i}, {j})"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// With k = 0 every logit is 0 (plus the bias), so every row predicts
/// class 0. A view with no columns may have a row stride past the end of
/// its (empty) data, which the class-major path must not index.
#[test]
fn fused_argmax_empty_k_strided_rows() {
    for gemm in kernels() {
        for (m, candidates) in [(33, 4), (300, 4), (300, 1)] {
            let a = MatRef::new(&[], m, 0, 5, 1).unwrap();
            let b = MatRef::row_major(&[], 0, 2 * candidates).unwrap();
            let labels: Vec<u32> = (0..m).map(|i| (i % 2) as u32).collect();
            let mut counts = vec![u64::MAX; candidates];
            gemm.argmax_count(a, b, None, 2, &labels, &mut counts)
                .unwrap();
            let expected = labels.iter().filter(|&&l| l == 0).count() as u64;
            assert_eq!(
                counts,
                vec![expected; candidates],
                "{} m={m} candidates={candidates}",
                gemm.isa()
            );
        }
    }
}
