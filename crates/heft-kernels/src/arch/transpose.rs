//! Transposing copy for packing with AVX and AVX-512: columns that are
//! contiguous in memory (a column-major source) written step by step into
//! a packed panel.
//!
//! A scalar transposing copy issues one load and one store per float. Here
//! blocks of 16 columns (AVX-512) or 8 columns (AVX) by 4 steps go through
//! the registers, and a last block of 4 columns through 128-bit registers. The 4 steps of
//! columns `j` and `j + 4` share one vector (two 128-bit loads), two
//! in-lane 4 x 4 transposes take 8 shuffles, and 4 vector stores write the
//! block. On AVX2 machines this is several times faster than the scalar
//! copy, so a single candidate's fused count and `A * B^T` products pack
//! their operands without the copy dominating the product.

use core::arch::x86_64::*;

/// Writes `dst[p * nr + j] = src[j * ld + p]` for `p < kc` and
/// `j < width`, leaving the other elements of `dst` as they are.
///
/// # Safety
///
/// AVX is available, `src` is valid for reads of `(width - 1) * ld + kc`
/// floats when `width > 0` and `kc > 0`, and the elements
/// `dst[p * nr + j]` with `p < kc` and `j < width` are valid for writes
/// (the floats between them need not be).
#[target_feature(enable = "avx")]
pub(crate) unsafe fn pack_columns_avx(
    src: *const f32,
    ld: usize,
    kc: usize,
    width: usize,
    nr: usize,
    dst: *mut f32,
) {
    let full_width = width / 8 * 8;
    let full_steps = kc / 4 * 4;
    for j in (0..full_width).step_by(8) {
        for p in (0..full_steps).step_by(4) {
            // SAFETY: columns j + r and j + r + 4 (r < 4) are below width,
            // and their steps p..p + 4 <= kc lie inside the readable range.
            let halves: [__m256; 4] = core::array::from_fn(|r| unsafe {
                let low = _mm_loadu_ps(src.add((j + r) * ld + p));
                let high = _mm_loadu_ps(src.add((j + r + 4) * ld + p));
                _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(low), high)
            });
            let out = transpose4x2(halves);
            for (q, &v) in out.iter().enumerate() {
                // SAFETY: step p + q < kc and columns j..j + 8 <= width end
                // at (p + q) * nr + j + 8 <= (kc - 1) * nr + width.
                unsafe { _mm256_storeu_ps(dst.add((p + q) * nr + j), v) };
            }
        }
        // SAFETY: columns j..j + 8 are below width, and steps
        // full_steps..kc are inside both ranges (caller contract).
        unsafe { copy_steps(src, ld, full_steps..kc, j..j + 8, nr, dst) };
    }
    let quad_width = if width - full_width >= 4 {
        full_width + 4
    } else {
        full_width
    };
    if quad_width > full_width {
        let j = full_width;
        for p in (0..full_steps).step_by(4) {
            // SAFETY: columns j..j + 4 are below width, and their steps
            // p..p + 4 <= kc lie inside the readable range.
            let rows: [__m128; 4] =
                core::array::from_fn(|r| unsafe { _mm_loadu_ps(src.add((j + r) * ld + p)) });
            let out = transpose4(rows);
            for (q, &v) in out.iter().enumerate() {
                // SAFETY: step p + q < kc and columns j..j + 4 <= width end
                // at (p + q) * nr + j + 4 <= (kc - 1) * nr + width.
                unsafe { _mm_storeu_ps(dst.add((p + q) * nr + j), v) };
            }
        }
        // SAFETY: columns j..j + 4 are below width, and steps
        // full_steps..kc are inside both ranges (caller contract).
        unsafe { copy_steps(src, ld, full_steps..kc, j..j + 4, nr, dst) };
    }
    // SAFETY: the last columns below width at steps below kc are inside
    // both ranges (caller contract).
    unsafe { copy_steps(src, ld, 0..kc, quad_width..width, nr, dst) };
}

/// Writes `dst[p * nr + j] = src[j * ld + p]` for `p < kc` and
/// `j < width`, as [`pack_columns_avx`] does, through blocks of 16
/// columns by 4 steps in AVX-512 registers. Register `r` carries the 4
/// steps of columns `j + r`, `j + r + 4`, `j + r + 8` and `j + r + 12` in
/// its four 128-bit lanes. The 8 in-lane shuffles of the AVX block then
/// move twice as many floats, and each store writes 16 columns of one
/// step. The columns past the last block of 16 go to [`pack_columns_avx`].
///
/// # Safety
///
/// AVX-512F is available, and `src` and `dst` are valid as
/// [`pack_columns_avx`] requires.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pack_columns_avx512(
    src: *const f32,
    ld: usize,
    kc: usize,
    width: usize,
    nr: usize,
    dst: *mut f32,
) {
    let full_width = width / 16 * 16;
    let full_steps = kc / 4 * 4;
    for j in (0..full_width).step_by(16) {
        for p in (0..full_steps).step_by(4) {
            // SAFETY: columns j + r + 4 * l (r, l < 4) are below width, and
            // their steps p..p + 4 <= kc lie inside the readable range.
            let rows: [__m512; 4] = core::array::from_fn(|r| unsafe {
                let column = |l: usize| _mm_loadu_ps(src.add((j + r + 4 * l) * ld + p));
                let v = _mm512_castps128_ps512(column(0));
                let v = _mm512_insertf32x4::<1>(v, column(1));
                let v = _mm512_insertf32x4::<2>(v, column(2));
                _mm512_insertf32x4::<3>(v, column(3))
            });
            let [r0, r1, r2, r3] = rows;
            let t0 = _mm512_unpacklo_ps(r0, r1);
            let t1 = _mm512_unpackhi_ps(r0, r1);
            let t2 = _mm512_unpacklo_ps(r2, r3);
            let t3 = _mm512_unpackhi_ps(r2, r3);
            let out = [
                _mm512_shuffle_ps::<0x44>(t0, t2),
                _mm512_shuffle_ps::<0xEE>(t0, t2),
                _mm512_shuffle_ps::<0x44>(t1, t3),
                _mm512_shuffle_ps::<0xEE>(t1, t3),
            ];
            for (q, &v) in out.iter().enumerate() {
                // SAFETY: step p + q < kc and columns j..j + 16 <= width
                // end at (p + q) * nr + j + 16 <= (kc - 1) * nr + width.
                unsafe { _mm512_storeu_ps(dst.add((p + q) * nr + j), v) };
            }
        }
        // SAFETY: columns j..j + 16 are below width, and steps
        // full_steps..kc are inside both ranges (caller contract).
        unsafe { copy_steps(src, ld, full_steps..kc, j..j + 16, nr, dst) };
    }
    if full_width < width {
        // SAFETY: the columns from full_width on are a block of the same
        // source and destination, which the caller's ranges cover. Every
        // CPU with AVX-512F has AVX.
        unsafe {
            pack_columns_avx(
                src.add(full_width * ld),
                ld,
                kc,
                width - full_width,
                nr,
                dst.add(full_width),
            )
        };
    }
}

/// Copies `dst[p * nr + j] = src[j * ld + p]` for the steps and columns
/// given, one float at a time: the steps left after the blocks of 4.
///
/// # Safety
///
/// Every such element of `src` is readable and of `dst` writable.
#[inline]
unsafe fn copy_steps(
    src: *const f32,
    ld: usize,
    steps: core::ops::Range<usize>,
    columns: core::ops::Range<usize>,
    nr: usize,
    dst: *mut f32,
) {
    for p in steps {
        for j in columns.clone() {
            // SAFETY: (p, j) is one of the elements the caller vouches for.
            unsafe { *dst.add(p * nr + j) = *src.add(j * ld + p) };
        }
    }
}

/// Transposes the 4 x 4 block in `rows`: lane `r` of output `q` is lane
/// `q` of input `r`.
#[target_feature(enable = "avx")]
#[inline]
fn transpose4(rows: [__m128; 4]) -> [__m128; 4] {
    let [r0, r1, r2, r3] = rows;
    let t0 = _mm_unpacklo_ps(r0, r1);
    let t1 = _mm_unpackhi_ps(r0, r1);
    let t2 = _mm_unpacklo_ps(r2, r3);
    let t3 = _mm_unpackhi_ps(r2, r3);
    [
        _mm_movelh_ps(t0, t2),
        _mm_movehl_ps(t2, t0),
        _mm_movelh_ps(t1, t3),
        _mm_movehl_ps(t3, t1),
    ]
}

/// Transposes the two 4 x 4 blocks held in the 128-bit halves of `rows`:
/// lane `r` of output `q` in each half is lane `q` of input `r` in that
/// half.
#[target_feature(enable = "avx")]
#[inline]
fn transpose4x2(rows: [__m256; 4]) -> [__m256; 4] {
    let [r0, r1, r2, r3] = rows;
    let t0 = _mm256_unpacklo_ps(r0, r1);
    let t1 = _mm256_unpackhi_ps(r0, r1);
    let t2 = _mm256_unpacklo_ps(r2, r3);
    let t3 = _mm256_unpackhi_ps(r2, r3);
    [
        _mm256_shuffle_ps::<0x44>(t0, t2),
        _mm256_shuffle_ps::<0xEE>(t0, t2),
        _mm256_shuffle_ps::<0x44>(t1, t3),
        _mm256_shuffle_ps::<0xEE>(t1, t3),
    ]
}
