//! Class-major fused scoring kernel for AVX-512: logits of one candidate
//! for 32 samples, reduced to an argmax per sample and a hit count.
//!
//! The product is computed transposed: `G` accumulator rows (one per class
//! of the candidate) by two vectors of 16 samples, with the candidate's
//! weights broadcast and a packed panel of 32 samples' features streamed.
//! The argmax over classes is then a vertical comparison across the `G`
//! rows, with no shuffle, and the logits never leave the registers.
//!
//! Every logit is the same fused multiply-add chain over `k`, restarted
//! every `kc` steps and added, as in the GEMM tile kernels, so the counts
//! equal those of computing the logits with `Gemm::run` and taking
//! `argmax_group` of each row.

use core::arch::x86_64::*;

/// Arguments of one call: one candidate against one panel of 32 samples.
///
/// # Contract
///
/// - `weights` points at `G` rows of `k` contiguous floats, row `c` at
///   `weights[c * weights_rs]`.
/// - `panel` points at `k * 32` floats: feature `p` of sample `i` at
///   `panel[p * 32 + i]`.
/// - `bias` is null or points at `G` floats.
/// - `labels` points at 32 `i32`; lanes at or past `valid` are ignored.
#[derive(Clone, Copy)]
pub(crate) struct ClassArgs {
    pub k: usize,
    pub kc: usize,
    pub weights: *const f32,
    pub weights_rs: usize,
    pub panel: *const f32,
    pub bias: *const f32,
    pub labels: *const i32,
    pub valid: usize,
}

/// Returns the number of valid samples whose argmax over the `G` logits
/// (ties to the lowest class, the first NaN wins) equals their label.
///
/// # Safety
///
/// AVX-512F is available and `args` satisfies the [`ClassArgs`] contract.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn count_hits<const G: usize>(args: &ClassArgs) -> u32 {
    let ClassArgs {
        k,
        kc,
        weights,
        weights_rs,
        panel,
        bias,
        labels,
        valid,
    } = *args;
    let zero = _mm512_setzero_ps();
    let mut z = [[zero; 2]; G];
    let mut start = 0;
    while start < k {
        let steps = kc.min(k - start);
        let mut acc = [[zero; 2]; G];
        for p in start..start + steps {
            // SAFETY: step p < k of the panel has 32 floats (contract).
            let (b0, b1) = unsafe {
                (
                    _mm512_loadu_ps(panel.add(p * 32)),
                    _mm512_loadu_ps(panel.add(p * 32 + 16)),
                )
            };
            for (c, row) in acc.iter_mut().enumerate() {
                // SAFETY: row c < G of the weights has k floats (contract).
                let w = _mm512_set1_ps(unsafe { *weights.add(c * weights_rs + p) });
                row[0] = _mm512_fmadd_ps(w, b0, row[0]);
                row[1] = _mm512_fmadd_ps(w, b1, row[1]);
            }
        }
        for c in 0..G {
            for v in 0..2 {
                z[c][v] = if start == 0 {
                    acc[c][v]
                } else {
                    _mm512_add_ps(z[c][v], acc[c][v])
                };
            }
        }
        start += steps;
    }
    if !bias.is_null() {
        for (c, row) in z.iter_mut().enumerate() {
            // SAFETY: a non-null bias has G floats (contract).
            let b = _mm512_set1_ps(unsafe { *bias.add(c) });
            row[0] = _mm512_add_ps(row[0], b);
            row[1] = _mm512_add_ps(row[1], b);
        }
    }

    let mut hits = 0u32;
    for v in 0..2 {
        let mut best = z[0][v];
        let mut best_index = _mm512_setzero_si512();
        let mut seen_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(best, best);
        for (c, row) in z.iter().enumerate().skip(1) {
            let x = row[v];
            let is_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
            let greater = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, best);
            let take = !seen_nan & (is_nan | greater);
            best = _mm512_mask_mov_ps(best, take, x);
            best_index = _mm512_mask_mov_epi32(best_index, take, _mm512_set1_epi32(c as i32));
            seen_nan |= is_nan;
        }
        // SAFETY: `labels` has 32 i32 (contract).
        let label = unsafe { _mm512_loadu_si512(labels.add(v * 16) as *const _) };
        let lanes = valid.saturating_sub(v * 16).min(16);
        let in_range: __mmask16 = if lanes == 16 {
            0xFFFF
        } else {
            (1u16 << lanes) - 1
        };
        hits += (_mm512_cmpeq_epi32_mask(best_index, label) & in_range).count_ones();
    }
    hits
}

/// A monomorphised [`count_hits`] for one class count.
pub(crate) type CountFn = unsafe fn(&ClassArgs) -> u32;

/// Returns the kernel for `classes` in `2..=14`, or `None`: `2 * G`
/// accumulators plus two panel vectors and one broadcast must fit in the
/// 32 vector registers.
pub(crate) fn kernel_for(classes: usize) -> Option<CountFn> {
    let f: CountFn = match classes {
        2 => count_hits::<2>,
        3 => count_hits::<3>,
        4 => count_hits::<4>,
        5 => count_hits::<5>,
        6 => count_hits::<6>,
        7 => count_hits::<7>,
        8 => count_hits::<8>,
        9 => count_hits::<9>,
        10 => count_hits::<10>,
        11 => count_hits::<11>,
        12 => count_hits::<12>,
        13 => count_hits::<13>,
        14 => count_hits::<14>,
        _ => return None,
    };
    Some(f)
}
