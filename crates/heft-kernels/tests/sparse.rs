//! `Gemm::run_sparse_a`, which skips the steps of k at which a group of
//! A's rows is all zero, against the dense `Gemm::run_with`: the same bits
//! for finite B, in every layout, with every epilogue and thread count.

mod common;

use common::{kernels, Rng};

use heft_kernels::gemm::{Epilogue, Gemm, GemmError, MatMut, MatRef};

/// Returns an A with the zero patterns the sparse path looks for: columns
/// zero in every row, runs of rows sharing zero columns, whole zero rows,
/// and negative zeros. About a third of the other values are nonzero.
fn sparse_a(rng: &mut Rng, m: usize, k: usize) -> Vec<f32> {
    let mut a = vec![0.0f32; m * k];
    let dead_columns: Vec<bool> = (0..k).map(|_| rng.below(5) == 0).collect();
    for i in 0..m {
        // Rows in runs of 8 share a window of live columns, as images of
        // similar shape do.
        let run = (i / 8) as u64;
        let lo = (run * 37 % k.max(1) as u64) as usize;
        for p in 0..k {
            let in_window = (p + k - lo) % k.max(1) < k / 2 + 1;
            let x = &mut a[i * k + p];
            *x = if dead_columns[p] || !in_window || i % 11 == 5 {
                if rng.below(2) == 0 {
                    0.0
                } else {
                    -0.0
                }
            } else if rng.below(3) == 0 {
                rng.float()
            } else {
                0.0
            };
        }
    }
    a
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|x| x.to_bits()).collect()
}

/// Row-major or column-major storage of `rows x cols` row-major values.
fn stored(values: &[f32], rows: usize, cols: usize, col_major: bool) -> Vec<f32> {
    if !col_major {
        return values.to_vec();
    }
    let mut out = vec![0.0; values.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = values[i * cols + j];
        }
    }
    out
}

fn view(data: &[f32], rows: usize, cols: usize, col_major: bool) -> MatRef<'_> {
    if col_major {
        MatRef::col_major(data, rows, cols).unwrap()
    } else {
        MatRef::row_major(data, rows, cols).unwrap()
    }
}

fn view_mut(data: &mut [f32], rows: usize, cols: usize, col_major: bool) -> MatMut<'_> {
    if col_major {
        MatMut::col_major(data, rows, cols).unwrap()
    } else {
        MatMut::row_major(data, rows, cols).unwrap()
    }
}

/// Returns the (alpha, beta, epilogue) cases of the equality tests: alpha
/// and beta in {0, 1, other}, with and without the bias and ReLU.
fn scalings(bias: &[f32]) -> [(f32, f32, Epilogue<'_>); 5] {
    [
        (1.0, 0.0, Epilogue::default()),
        (0.7, 1.0, Epilogue::default()),
        (
            1.0,
            0.0,
            Epilogue {
                bias: Some(bias),
                relu: true,
            },
        ),
        (
            -1.5,
            0.25,
            Epilogue {
                bias: Some(bias),
                relu: false,
            },
        ),
        (
            0.0,
            2.0,
            Epilogue {
                bias: None,
                relu: true,
            },
        ),
    ]
}

/// Shapes crossing the tile sizes, KC (k = 784 takes 4 passes of KC 256
/// with AVX2 and 2 of KC 512 with AVX-512), MC, the resident-B limit
/// (k = 9,000 packs B pass by pass) and the single-row and single-column
/// cases.
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 5, 3),
    (17, 1, 9),
    (16, 16, 16),
    (37, 50, 300),
    (33, 20, 7),
    (130, 200, 784),
    (257, 70, 40),
    (40, 30, 9000),
    (5, 300, 520),
];

/// Bitwise equality with the dense product for every layout of A, B and
/// C, for alpha and beta in {0, 1, other} and with and without the bias
/// and ReLU epilogue.
#[test]
fn sparse_equals_dense_bits() {
    let mut rng = Rng::new(5);
    for gemm in kernels() {
        for &(m, n, k) in &SHAPES {
            let a = sparse_a(&mut rng, m, k);
            let b: Vec<f32> = (0..k * n).map(|_| rng.float()).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.float()).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.float()).collect();
            for layout in 0..8 {
                let (a_t, b_t, c_t) = (layout & 1 == 1, layout & 2 == 2, layout & 4 == 4);
                let a_data = stored(&a, m, k, a_t);
                let b_data = stored(&b, k, n, b_t);
                for (alpha, beta, epilogue) in scalings(&bias) {
                    let run = |sparse: bool| {
                        let mut c = stored(&c0, m, n, c_t);
                        let (a_view, b_view) = (view(&a_data, m, k, a_t), view(&b_data, k, n, b_t));
                        let c_view = view_mut(&mut c, m, n, c_t);
                        if sparse {
                            gemm.run_sparse_a(alpha, a_view, b_view, beta, c_view, epilogue)
                        } else {
                            gemm.run_with(alpha, a_view, b_view, beta, c_view, epilogue)
                        }
                        .unwrap();
                        bits(&c)
                    };
                    assert!(
                        run(true) == run(false),
                        "{} {m}x{n}x{k} layout {layout} alpha {alpha} beta {beta}: \
                         sparse differs from dense",
                        gemm.isa()
                    );
                }
            }
        }
    }
}

/// The same bits with 1, 2 and 3 threads as sequentially.
#[test]
fn sparse_thread_count_same_bits() {
    let mut rng = Rng::new(6);
    let (m, n, k) = (600, 300, 784);
    let a = sparse_a(&mut rng, m, k);
    let b: Vec<f32> = (0..k * n).map(|_| rng.float()).collect();
    for gemm in kernels() {
        let run = |gemm: Gemm| {
            let mut c = vec![0.0f32; m * n];
            gemm.run_sparse_a(
                1.0,
                MatRef::row_major(&a, m, k).unwrap(),
                MatRef::row_major(&b, k, n).unwrap(),
                0.0,
                MatMut::col_major(&mut c, m, n).unwrap(),
                Epilogue::default(),
            )
            .unwrap();
            bits(&c)
        };
        let sequential = run(gemm);
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let parallel = Gemm::with_isa(gemm.isa()).unwrap();
            assert!(
                pool.install(|| run(parallel)) == sequential,
                "{}: {threads} threads differ from sequential",
                gemm.isa()
            );
        }
    }
}

/// The steps really are skipped. A NaN row of B at a column where A is
/// zero in every row reaches every element of the dense product but none
/// of the sparse one. A NaN at a live column reaches both.
#[test]
fn sparse_skips_zero_columns() {
    let mut rng = Rng::new(7);
    let (m, n, k) = (40, 24, 30);
    let mut a: Vec<f32> = (0..m * k).map(|_| rng.float()).collect();
    for row in a.chunks_exact_mut(k) {
        row[3] = 0.0;
    }
    let run = |gemm: &Gemm, b: &[f32], sparse: bool| {
        let mut c = vec![0.0f32; m * n];
        let (a, b) = (
            MatRef::row_major(&a, m, k).unwrap(),
            MatRef::row_major(b, k, n).unwrap(),
        );
        let c_view = MatMut::row_major(&mut c, m, n).unwrap();
        if sparse {
            gemm.run_sparse_a(1.0, a, b, 0.0, c_view, Epilogue::default())
        } else {
            gemm.run_with(1.0, a, b, 0.0, c_view, Epilogue::default())
        }
        .unwrap();
        c
    };
    for gemm in kernels() {
        let mut b: Vec<f32> = (0..k * n).map(|_| rng.float()).collect();
        b[3 * n..4 * n].fill(f32::NAN);
        assert!(run(&gemm, &b, false).iter().all(|x| x.is_nan()));
        assert!(
            run(&gemm, &b, true).iter().all(|x| x.is_finite()),
            "{}: a zero column of A was not skipped",
            gemm.isa()
        );
        b[3 * n..4 * n].fill(0.5);
        b[4 * n..5 * n].fill(f32::NAN);
        assert!(
            run(&gemm, &b, true).iter().all(|x| x.is_nan()),
            "{}: a live column of A was skipped",
            gemm.isa()
        );
    }
}

/// Shape and bias errors name the operation.
#[test]
fn sparse_shape_errors() {
    let gemm = Gemm::new();
    let a = vec![0.0f32; 6];
    let b = vec![0.0f32; 12];
    let mut c = vec![0.0f32; 8];
    let err = gemm
        .run_sparse_a(
            1.0,
            MatRef::row_major(&a, 2, 3).unwrap(),
            MatRef::row_major(&b, 4, 3).unwrap(),
            0.0,
            MatMut::row_major(&mut c[..6], 2, 3).unwrap(),
            Epilogue::default(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        GemmError::Shape {
            op: "gemm_sparse_a",
            ..
        }
    ));
    assert!(err.to_string().contains("A is 2x3, B is 4x3"), "{err}");
    let bias = [0.0f32; 3];
    let err = gemm
        .run_sparse_a(
            1.0,
            MatRef::row_major(&a, 2, 3).unwrap(),
            MatRef::row_major(&b, 3, 4).unwrap(),
            0.0,
            MatMut::row_major(&mut c, 2, 4).unwrap(),
            Epilogue {
                bias: Some(&bias),
                relu: false,
            },
        )
        .unwrap_err();
    assert_eq!(
        err,
        GemmError::Length {
            op: "gemm_sparse_a",
            what: "bias",
            expected: 4,
            actual: 3
        }
    );
}

/// A packed once gives the same bits as the dense product, for every
/// shape, B and C layout and epilogue, and for repeated calls.
#[test]
fn packed_sparse_equals_dense_bits() {
    let mut rng = Rng::new(8);
    for gemm in kernels() {
        for &(m, n, k) in &SHAPES {
            let a = sparse_a(&mut rng, m, k);
            let b: Vec<f32> = (0..k * n).map(|_| rng.float()).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.float()).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.float()).collect();
            for a_t in [false, true] {
                let a_data = stored(&a, m, k, a_t);
                let packed = gemm.pack_sparse_a(view(&a_data, m, k, a_t));
                assert_eq!((packed.rows(), packed.cols()), (m, k));
                for layout in 0..4 {
                    let (b_t, c_t) = (layout & 1 == 1, layout & 2 == 2);
                    let b_data = stored(&b, k, n, b_t);
                    for (alpha, beta, epilogue) in scalings(&bias) {
                        let mut dense = stored(&c0, m, n, c_t);
                        gemm.run_with(
                            alpha,
                            view(&a_data, m, k, a_t),
                            view(&b_data, k, n, b_t),
                            beta,
                            view_mut(&mut dense, m, n, c_t),
                            epilogue,
                        )
                        .unwrap();
                        for call in 0..2 {
                            let mut c = stored(&c0, m, n, c_t);
                            gemm.run_packed_sparse_a(
                                alpha,
                                &packed,
                                view(&b_data, k, n, b_t),
                                beta,
                                view_mut(&mut c, m, n, c_t),
                                epilogue,
                            )
                            .unwrap();
                            assert!(
                                bits(&c) == bits(&dense),
                                "{} {m}x{n}x{k} A transposed {a_t} layout {layout} call {call}: \
                                 packed sparse differs from dense",
                                gemm.isa()
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The skipped fraction counts the dropped steps: A zero in every row at
/// half its columns skips half, an A of zeros skips all, and a dense A
/// skips nothing.
#[test]
fn packed_sparse_skipped_fraction() {
    let (m, k) = (100, 64);
    for gemm in kernels() {
        let dense = vec![1.0f32; m * k];
        let packed = gemm.pack_sparse_a(MatRef::row_major(&dense, m, k).unwrap());
        assert_eq!(packed.skipped_fraction(), 0.0);

        let half: Vec<f32> = (0..m * k)
            .map(|i| if i % k < k / 2 { 0.0 } else { 1.0 })
            .collect();
        let packed = gemm.pack_sparse_a(MatRef::row_major(&half, m, k).unwrap());
        assert_eq!(packed.skipped_fraction(), 0.5);

        let zeros = vec![0.0f32; m * k];
        let packed = gemm.pack_sparse_a(MatRef::row_major(&zeros, m, k).unwrap());
        assert_eq!(packed.skipped_fraction(), 1.0);
    }
}

/// A packed for one kernel is rejected by another, and shapes are checked.
#[test]
fn packed_sparse_errors() {
    let a = vec![1.0f32; 6];
    let b = vec![1.0f32; 12];
    let mut c = vec![0.0f32; 8];
    let gemms = kernels();
    let packed = gemms[0].pack_sparse_a(MatRef::row_major(&a, 2, 3).unwrap());
    assert_eq!(packed.isa(), gemms[0].isa());
    for gemm in &gemms[1..] {
        let err = gemm
            .run_packed_sparse_a(
                1.0,
                &packed,
                MatRef::row_major(&b, 3, 4).unwrap(),
                0.0,
                MatMut::row_major(&mut c, 2, 4).unwrap(),
                Epilogue::default(),
            )
            .unwrap_err();
        assert_eq!(
            err,
            GemmError::Kernel {
                op: "gemm_packed_sparse_a",
                packed: gemms[0].isa(),
                running: gemm.isa(),
            }
        );
        assert!(err.to_string().contains("pack A with the Gemm"), "{err}");
    }
    let err = gemms[0]
        .run_packed_sparse_a(
            1.0,
            &packed,
            MatRef::row_major(&b, 4, 3).unwrap(),
            0.0,
            MatMut::row_major(&mut c[..6], 2, 3).unwrap(),
            Epilogue::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("A is 2x3, B is 4x3"), "{err}");
}

/// The fused argmax count skips the features at which a chunk of samples
/// is all zero (on AVX2) and still equals "multiply with bias, then argmax
/// each group", with rounding ties from small integers, one pass over k
/// and two, and A row-major and column-major. In the mixed case every
/// other panel of 32 samples has no zero, so the dense kernel scores those
/// panels and the sparse kernel the others.
#[test]
fn fused_argmax_sparse_features_match() {
    let mut rng = Rng::new(9);
    for gemm in kernels() {
        for &(m, k, mixed) in &[
            (1000, 128, false),
            (37, 5, false),
            (70, 300, false),
            (8, 40, false),
            (1000, 128, true),
            (150, 300, true),
        ] {
            for group in [3, 10, 14] {
                let candidates = 6;
                let n = candidates * group;
                let mut a = sparse_a(&mut rng, m, k);
                for (i, row) in a.chunks_exact_mut(k).enumerate() {
                    let dense = mixed && (i / 32) % 2 == 0;
                    for x in row.iter_mut().filter(|x| dense || **x != 0.0) {
                        *x = rng.small_int();
                        if *x == 0.0 && dense {
                            *x = 1.0;
                        }
                    }
                }
                let b: Vec<f32> = (0..k * n).map(|_| rng.small_int() * 0.25).collect();
                let bias: Vec<f32> = (0..n).map(|_| rng.small_int()).collect();
                let labels: Vec<u32> = (0..m).map(|_| rng.below(group as u64) as u32).collect();

                let mut logits = vec![0.0f32; m * n];
                gemm.run_with(
                    1.0,
                    MatRef::row_major(&a, m, k).unwrap(),
                    MatRef::row_major(&b, k, n).unwrap(),
                    0.0,
                    MatMut::row_major(&mut logits, m, n).unwrap(),
                    Epilogue {
                        bias: Some(&bias),
                        relu: false,
                    },
                )
                .unwrap();
                let mut expected = vec![0u64; candidates];
                for (row, &label) in logits.chunks_exact(n).zip(&labels) {
                    for (p, count) in expected.iter_mut().enumerate() {
                        let scores = &row[p * group..(p + 1) * group];
                        if heft_kernels::gemm::argmax_group(scores) == Some(label as usize) {
                            *count += 1;
                        }
                    }
                }

                for a_t in [false, true] {
                    let a_data = stored(&a, m, k, a_t);
                    let mut counts = vec![0u64; candidates];
                    gemm.argmax_count(
                        view(&a_data, m, k, a_t),
                        MatRef::row_major(&b, k, n).unwrap(),
                        Some(&bias),
                        group,
                        &labels,
                        &mut counts,
                    )
                    .unwrap();
                    assert_eq!(
                        counts,
                        expected,
                        "{} {m}x{k} mixed {mixed} group {group} A transposed {a_t}",
                        gemm.isa()
                    );

                    let packed = gemm.pack_argmax_a(view(&a_data, m, k, a_t), group).unwrap();
                    for call in 0..2 {
                        let mut counts = vec![0u64; candidates];
                        gemm.argmax_count_packed(
                            &packed,
                            MatRef::row_major(&b, k, n).unwrap(),
                            Some(&bias),
                            &labels,
                            &mut counts,
                        )
                        .unwrap();
                        assert_eq!(
                            counts,
                            expected,
                            "{} {m}x{k} mixed {mixed} group {group} A transposed {a_t} \
                             packed, call {call}",
                            gemm.isa()
                        );
                    }
                }
            }
        }
    }
}

/// The packed count equals the count on A itself in three cases. The
/// first has a NaN weight, so the dense kernel runs on the packed panels.
/// The second has fewer candidates than the class-major kernel takes, and
/// the third a group no class-major kernel takes. A wrong kernel or group
/// size is an error.
#[test]
fn packed_argmax_other_paths() {
    let mut rng = Rng::new(10);
    let (m, k) = (300, 50);
    let a = sparse_a(&mut rng, m, k);
    for gemm in kernels() {
        for (group, candidates) in [(10, 6), (10, 2), (20, 5)] {
            let n = group * candidates;
            let mut b: Vec<f32> = (0..k * n).map(|_| rng.float()).collect();
            b[3 * n + 1] = f32::NAN;
            let labels: Vec<u32> = (0..m).map(|_| rng.below(group as u64) as u32).collect();
            let count = |packed: bool| {
                let mut counts = vec![0u64; candidates];
                let (a_view, b_view) = (
                    MatRef::row_major(&a, m, k).unwrap(),
                    MatRef::row_major(&b, k, n).unwrap(),
                );
                if packed {
                    let a_packed = gemm.pack_argmax_a(a_view, group).unwrap();
                    assert_eq!(
                        (a_packed.rows(), a_packed.cols(), a_packed.group()),
                        (m, k, group)
                    );
                    gemm.argmax_count_packed(&a_packed, b_view, None, &labels, &mut counts)
                } else {
                    gemm.argmax_count(a_view, b_view, None, group, &labels, &mut counts)
                }
                .unwrap();
                counts
            };
            assert_eq!(count(true), count(false), "{} group {group}", gemm.isa());
        }
    }

    let gemms = kernels();
    let a_view = MatRef::row_major(&a, m, k).unwrap();
    let err = gemms[0].pack_argmax_a(a_view, 0).unwrap_err();
    assert!(matches!(err, GemmError::Group { group: 0, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "pack_argmax_a: group size 0 is invalid; pass the number of classes per candidate \
         (at least 1)"
    );
    let packed = gemms[0].pack_argmax_a(a_view, 10).unwrap();
    let b = vec![0.5f32; k * 40];
    let labels = vec![0u32; m];
    let mut counts = vec![0u64; 4];
    for gemm in &gemms[1..] {
        let err = gemm
            .argmax_count_packed(
                &packed,
                MatRef::row_major(&b, k, 40).unwrap(),
                None,
                &labels,
                &mut counts,
            )
            .unwrap_err();
        assert!(matches!(err, GemmError::Kernel { .. }), "{err}");
    }
    let err = gemms[0]
        .argmax_count_packed(
            &packed,
            MatRef::row_major(&b, k, 40).unwrap(),
            None,
            &labels[1..],
            &mut counts,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("labels has 299 elements, expected 300"),
        "{err}"
    );
}

/// The packed count's skipped fraction is the share of zero steps per
/// chunk: half for features zero in every row at half the columns, none
/// for dense features, and 0 where the kernel has no sparse variant.
#[test]
fn packed_argmax_skipped_fraction() {
    let (m, k) = (100, 50);
    let half: Vec<f32> = (0..m * k)
        .map(|i| if i % k < k / 2 { 0.0 } else { 1.0 })
        .collect();
    let dense = vec![1.0f32; m * k];
    for gemm in kernels() {
        let sparse_rows = gemm.argmax_zero_rows(10);
        let packed = gemm
            .pack_argmax_a(MatRef::row_major(&half, m, k).unwrap(), 10)
            .unwrap();
        let expected = if sparse_rows > 1 { 0.5 } else { 0.0 };
        assert_eq!(packed.skipped_fraction(), expected, "{}", gemm.isa());
        let packed = gemm
            .pack_argmax_a(MatRef::row_major(&dense, m, k).unwrap(), 10)
            .unwrap();
        assert_eq!(packed.skipped_fraction(), 0.0, "{}", gemm.isa());
    }
}
