//! Class-major fused scoring kernels for AVX-512 and AVX2: logits of one
//! candidate for a panel of 32 samples, reduced to an argmax per sample and
//! a hit count.
//!
//! The product is computed transposed: `G` accumulator rows (one per class
//! of the candidate) by vectors of samples, with the candidate's weights
//! broadcast and a packed panel of 32 samples' features streamed. The
//! argmax over classes is then a vertical comparison across the `G` rows,
//! with no shuffle, and the logits never leave the registers. AVX-512
//! covers the 32 samples with two vectors of 16. AVX2, with 16 registers,
//! runs the panel in chunks of two vectors of 8 samples, where `2 * G`
//! accumulators, two panel vectors and one broadcast must fit. From 7
//! classes on, the classes therefore go in two or three blocks, each a
//! pass over the chunk, and the argmax carries over from block to block.
//! The sparse AVX2 kernel runs chunks of one vector for 7 classes and
//! more, all classes at once.
//!
//! Every logit is the same fused multiply-add chain over `k`, restarted
//! every `kc` steps and added, as in the GEMM tile kernels, so the counts
//! equal those of computing the logits with `Gemm::run` and taking
//! `argmax_group` of each row.

use crate::dispatch::Isa;
use core::arch::x86_64::*;
use std::ptr::null;

/// Arguments of one call: one candidate against one panel of 32 samples.
///
/// # Contract
///
/// - `weights` points at the candidate's `k * G` weights, step by step:
///   the weight of class `c` at step `p` is `weights[p * G + c]`, so one
///   step's broadcasts read one short contiguous run at fixed offsets.
/// - `panel` points at `k * 32` floats: feature `p` of sample `i` at
///   `panel[p * 32 + i]`.
/// - `bias` is null or points at `G` floats.
/// - `labels` points at 32 `i32`; lanes at or past `valid` are ignored.
/// - `ahead` names memory to prefetch; any address is allowed, since a
///   prefetch reads nothing.
/// - `stream` is true when the next panel follows this one in memory, as
///   in panels packed in advance. The AVX-512 kernel then prefetches
///   [`STREAM_STEPS`] steps past the one it reads, which runs into the
///   next panel. Prefetching past the end of the memory is allowed.
#[derive(Clone, Copy)]
pub(crate) struct ClassArgs {
    pub k: usize,
    pub kc: usize,
    pub weights: *const f32,
    pub panel: *const f32,
    pub bias: *const f32,
    pub labels: *const i32,
    pub valid: usize,
    pub ahead: Ahead,
    pub stream: bool,
}

/// Steps of k that the AVX-512 kernel prefetches ahead of the step it
/// reads when panels follow one another in memory: 32 steps of 32 floats
/// are 4 KiB, 64 lines. A (12000, 128, 10) count with A packed in advance
/// reads its panels from L3, where one core reads about 27 GB/s, and waits
/// on them without this prefetch. Measured with one thread, in one
/// process, variants in a random order per round (11 rounds, three runs).
/// Prefetching 16, 32 or 48 steps ahead ran 1.21 to 1.36 times as fast
/// as none, and 0.97 to 1.01 times on 1200 rows, whose panels fit in L2.
/// Prefetching the whole next panel through [`Prefetcher`] instead ran at
/// 0.63 times none on 1200 rows.
pub(crate) const STREAM_STEPS: usize = 32;

/// Rows of A that the next panel will pack, prefetched into L1 a line at
/// a time while the kernels score the current panel, so that packing
/// reads from cache instead of waiting on L3. `rows` rows of `len` floats,
/// row `r` at `first + r * stride`; `rows == 0` prefetches nothing.
#[derive(Clone, Copy)]
pub(crate) struct Ahead {
    pub first: *const f32,
    pub stride: usize,
    pub len: usize,
    pub rows: usize,
}

impl Ahead {
    /// Nothing to prefetch.
    pub(crate) const NONE: Ahead = Ahead {
        first: std::ptr::null(),
        stride: 0,
        len: 0,
        rows: 0,
    };
}

/// Walks part of an [`Ahead`], one line every `every` steps of k.
struct Prefetcher {
    row: *const f32,
    stride: usize,
    line: usize,
    lines: usize,
    rows_left: usize,
    every: usize,
    burst: usize,
    countdown: usize,
}

impl Prefetcher {
    /// Covers part `part` of `parts` equal parts of the rows of `ahead`,
    /// spread over `k` steps.
    fn new(ahead: &Ahead, part: usize, parts: usize, k: usize) -> Self {
        if ahead.rows == 0 || ahead.len == 0 {
            return Prefetcher {
                row: ahead.first,
                stride: 0,
                line: 0,
                lines: 0,
                rows_left: 0,
                every: 1,
                burst: 1,
                countdown: 1,
            };
        }
        let per_part = ahead.rows.div_ceil(parts);
        let first_row = (part * per_part).min(ahead.rows);
        let rows = per_part.min(ahead.rows - first_row);
        let lines = ahead.len.div_ceil(16);
        Prefetcher {
            row: ahead.first.wrapping_add(first_row * ahead.stride),
            stride: ahead.stride,
            line: 0,
            lines,
            rows_left: if lines == 0 { 0 } else { rows },
            every: (k / (rows * lines).max(1)).max(1),
            burst: (rows * lines).div_ceil(k.max(1)).max(1),
            countdown: 1,
        }
    }

    /// Counts one step of k, and prefetches the next line on every
    /// `every`-th step, or the next `burst` lines on every step when
    /// there are more lines than steps.
    #[inline(always)]
    fn step(&mut self) {
        if self.rows_left == 0 {
            return;
        }
        self.countdown -= 1;
        if self.countdown != 0 {
            return;
        }
        self.countdown = self.every;
        for _ in 0..self.burst {
            if self.rows_left == 0 {
                return;
            }
            let address = self.row.wrapping_add(self.line * 16);
            // SAFETY: a prefetch dereferences nothing and cannot fault, and
            // SSE is part of x86-64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast()) };
            self.line += 1;
            if self.line == self.lines {
                self.line = 0;
                self.row = self.row.wrapping_add(self.stride);
                self.rows_left -= 1;
            }
        }
    }
}

/// Returns the number of valid samples whose argmax over the `G` logits
/// (ties to the lowest class, the first NaN wins) equals their label.
///
/// # Safety
///
/// AVX-512F is available and `args` satisfies the [`ClassArgs`] contract.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn count_hits<const G: usize>(args: &ClassArgs) -> u32 {
    // SAFETY: the caller's contract, and no logits are stored.
    unsafe { panel_avx512::<G, false>(args, std::ptr::null_mut()) }
}

/// Writes the logits without bias of the panel's samples, class by class,
/// as [`logits_avx2`] does, with AVX-512F: the logit of sample `i` for
/// class `c` at `out[c * 32 + i]`. Each is the chain [`count_hits`]
/// compares.
///
/// # Safety
///
/// AVX-512F is available, `args` satisfies the [`ClassArgs`] contract for
/// `G` classes, and `out` is valid for writes of `32 * G` floats.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn logits_avx512<const G: usize>(args: &ClassArgs, out: *mut f32) {
    // SAFETY: the caller's contract.
    unsafe { panel_avx512::<G, true>(args, out) };
}

/// Runs [`panel_steps_avx512`] with the prefetcher only when there are
/// rows to prefetch, and with the stream prefetch only for panels that
/// follow one another. Without them, the version without the prefetcher
/// saves its test on every step, which costs about a tenth of the time
/// with 3 classes (3 cycles per step).
///
/// # Safety
///
/// As for [`count_hits`], and with `STORE` as for [`logits_avx512`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn panel_avx512<const G: usize, const STORE: bool>(args: &ClassArgs, out: *mut f32) -> u32 {
    // SAFETY: the caller's contract.
    unsafe {
        if args.ahead.rows > 0 {
            panel_steps_avx512::<G, STORE, PREFETCH_ROWS>(args, out)
        } else if args.stream {
            panel_steps_avx512::<G, STORE, PREFETCH_STREAM>(args, out)
        } else {
            panel_steps_avx512::<G, STORE, PREFETCH_NONE>(args, out)
        }
    }
}

/// Prefetch modes of [`panel_steps_avx512`]: nothing, the next panel's
/// rows of A (`args.ahead`) or the panel's own stream (`args.stream`).
const PREFETCH_NONE: u8 = 0;
const PREFETCH_ROWS: u8 = 1;
const PREFETCH_STREAM: u8 = 2;

/// Computes the `G` logits of all 32 samples of the panel in `2 * G`
/// accumulators, prefetching in mode `PREFETCH` as it goes, then stores
/// them (`STORE`) or returns the hit count.
///
/// # Safety
///
/// As for [`count_hits`], and with `STORE` as for [`logits_avx512`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn panel_steps_avx512<const G: usize, const STORE: bool, const PREFETCH: u8>(
    args: &ClassArgs,
    out: *mut f32,
) -> u32 {
    let ClassArgs {
        k,
        kc,
        weights,
        panel,
        bias,
        labels,
        valid,
        ahead,
        stream: _,
    } = *args;
    let mut prefetch = Prefetcher::new(&ahead, 0, 1, k);
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
            if PREFETCH == PREFETCH_ROWS {
                prefetch.step();
            }
            if PREFETCH == PREFETCH_STREAM {
                // A prefetch dereferences nothing and cannot fault. The
                // step's 32 floats are two lines in a 64-byte aligned panel.
                let line = panel.wrapping_add((p + STREAM_STEPS) * 32);
                _mm_prefetch::<_MM_HINT_T0>(line.cast());
                _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(16).cast());
            }
            for (c, row) in acc.iter_mut().enumerate() {
                // SAFETY: p < k and c < G index the k * G weights (contract).
                let w = _mm512_set1_ps(unsafe { *weights.add(p * G + c) });
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
    if STORE {
        for (c, row) in z.iter().enumerate() {
            for (v, &lanes) in row.iter().enumerate() {
                // SAFETY: `out` has 32 * G floats (contract).
                unsafe { _mm512_storeu_ps(out.add(c * 32 + v * 16), lanes) };
            }
        }
        return 0;
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

/// Samples per AVX2 vector.
const AVX2_LANES: usize = 8;

/// One chunk of `V` vectors of 8 samples of a panel, without the steps of
/// k at which all its samples are zero, for [`count_hits_avx2_sparse`].
#[derive(Clone, Copy)]
pub(crate) struct SparseChunk {
    /// `count * 8 * V` floats: the kept steps' features, step after step.
    pub panel: *const f32,
    /// `count` increasing step numbers, below the `k` of the call.
    pub steps: *const u32,
    /// Steps kept.
    pub count: usize,
}

/// Returns what [`count_hits_avx2`] returns for the panel the chunks were
/// cut from, running only the steps each chunk kept. A skipped step would
/// add a product with zero features, and adding a zero never changes a
/// sum that starts at +0, so the counts are equal when the weights are
/// finite.
///
/// # Safety
///
/// AVX2 and FMA are available, `args` satisfies the [`ClassArgs`]
/// contract except for `panel`, which is unused, and `chunks` has one
/// [`SparseChunk`] per chunk of `8 * V` samples that starts before `valid`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn count_hits_avx2_sparse<const G: usize, const V: usize>(
    args: &ClassArgs,
    chunks: &[SparseChunk],
) -> u32 {
    let mut hits = 0u32;
    for (index, chunk) in chunks.iter().enumerate() {
        let first_sample = index * AVX2_LANES * V;
        if first_sample >= args.valid {
            break;
        }
        // SAFETY: step t < count of the chunk names a step below k and has
        // 8 * V floats (SparseChunk contract); the rest is the caller's.
        unsafe {
            let z = chunk_logits_avx2::<G, V, true>(
                args,
                args.weights,
                G,
                Steps {
                    features: chunk.panel,
                    stride: AVX2_LANES * V,
                    list: chunk.steps,
                    count: chunk.count,
                },
                &mut Prefetcher::new(&Ahead::NONE, 0, 1, args.k),
            );
            hits += chunk_hits_avx2::<G, V>(z, args, first_sample);
        }
    }
    hits
}

/// The steps of k that a chunk runs: step `t` reads `8 * V` features at
/// `features + t * stride`, and is step `t` of k (dense) or step
/// `list[t]` (sparse, `count` increasing steps).
#[derive(Clone, Copy)]
struct Steps {
    features: *const f32,
    stride: usize,
    list: *const u32,
    count: usize,
}

impl Steps {
    /// Returns all `k` steps of the chunk of a panel starting at `columns`.
    fn dense(columns: *const f32, k: usize) -> Self {
        Steps {
            features: columns,
            stride: 32,
            list: null(),
            count: k,
        }
    }
}

/// Returns the `G x V` logit vectors of one chunk without bias, over the
/// dense or (`SPARSE`) listed `steps`. The weight of class `c` at step `p` is
/// `weights[p * weight_stride + c]`. The chains restart every `kc` of k in
/// both cases, as in the GEMM.
///
/// # Safety
///
/// AVX2 and FMA are available, `weights` has the `G` weights of every step
/// below `args.k` at that layout, and the features of all `k` steps
/// (dense) or of the `count` listed steps exist.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn chunk_logits_avx2<const G: usize, const V: usize, const SPARSE: bool>(
    args: &ClassArgs,
    weights: *const f32,
    weight_stride: usize,
    steps: Steps,
    prefetch: &mut Prefetcher,
) -> [[__m256; V]; G] {
    let Steps {
        features,
        stride,
        list: steps,
        count,
    } = steps;
    let zero = _mm256_setzero_ps();
    let mut z = [[zero; V]; G];
    let mut t = 0;
    let mut start = 0;
    while start < args.k {
        let end = start + args.kc.min(args.k - start);
        let mut acc = [[zero; V]; G];
        while t < count {
            let p = if SPARSE {
                // SAFETY: the sparse list has `count` entries (caller
                // contract) and t < count.
                unsafe { *steps.add(t) as usize }
            } else {
                t
            };
            if p >= end {
                break;
            }
            let mut b = [zero; V];
            for (v, lanes) in b.iter_mut().enumerate() {
                // SAFETY: the step's 8 * V features exist (caller contract).
                *lanes = unsafe { _mm256_loadu_ps(features.add(t * stride + v * AVX2_LANES)) };
            }
            prefetch.step();
            t += 1;
            for (c, row) in acc.iter_mut().enumerate() {
                // SAFETY: p < k and c < G index the weights (caller
                // contract).
                let w = _mm256_set1_ps(unsafe { *weights.add(p * weight_stride + c) });
                for v in 0..V {
                    row[v] = _mm256_fmadd_ps(w, b[v], row[v]);
                }
            }
        }
        for c in 0..G {
            for v in 0..V {
                z[c][v] = if start == 0 {
                    acc[c][v]
                } else {
                    _mm256_add_ps(z[c][v], acc[c][v])
                };
            }
        }
        start = end;
    }
    z
}

/// Adds the bias to the logits of the chunk starting at sample
/// `first_sample` and returns how many of its valid samples have their
/// label as argmax (ties to the lowest class, the first NaN wins).
///
/// # Safety
///
/// AVX2 is available and `args.bias` and `args.labels` satisfy the
/// [`ClassArgs`] contract.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn chunk_hits_avx2<const G: usize, const V: usize>(
    z: [[__m256; V]; G],
    args: &ClassArgs,
    first_sample: usize,
) -> u32 {
    let mut best = Best::new();
    // SAFETY: the bias contract is the caller's.
    unsafe { best.fold(&z, args.bias, 0) };
    // SAFETY: the labels contract is the caller's.
    unsafe { best.hits(args, first_sample) }
}

/// The running argmax of `V` vectors of 8 samples over the classes folded
/// so far. It keeps the largest logit, its class and whether a NaN was
/// seen, after which nothing is taken. The class is an `i32` bit pattern in
/// a float vector, which blends copy without interpreting.
#[derive(Clone, Copy)]
struct Best<const V: usize> {
    value: [__m256; V],
    index: [__m256; V],
    nan: [__m256; V],
}

impl<const V: usize> Best<V> {
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn new() -> Self {
        let zero = _mm256_setzero_ps();
        Best {
            value: [zero; V],
            index: [zero; V],
            nan: [zero; V],
        }
    }

    /// Folds classes `class0..class0 + z.len()` in order, with logits `z`
    /// before bias; `class0 == 0` starts a new argmax.
    ///
    /// # Safety
    ///
    /// AVX2 is available, and `bias` is null or points at the `z.len()`
    /// biases of these classes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn fold(&mut self, z: &[[__m256; V]], bias: *const f32, class0: usize) {
        for v in 0..V {
            for (c, row) in z.iter().enumerate() {
                let x = if bias.is_null() {
                    row[v]
                } else {
                    // SAFETY: a non-null bias has z.len() floats (contract).
                    _mm256_add_ps(row[v], _mm256_set1_ps(unsafe { *bias.add(c) }))
                };
                let is_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
                if class0 + c == 0 {
                    self.value[v] = x;
                    self.index[v] = _mm256_setzero_ps();
                    self.nan[v] = is_nan;
                    continue;
                }
                let greater = _mm256_cmp_ps::<_CMP_GT_OQ>(x, self.value[v]);
                let take = _mm256_andnot_ps(self.nan[v], _mm256_or_ps(is_nan, greater));
                self.value[v] = _mm256_blendv_ps(self.value[v], x, take);
                let index = _mm256_castsi256_ps(_mm256_set1_epi32((class0 + c) as i32));
                self.index[v] = _mm256_blendv_ps(self.index[v], index, take);
                self.nan[v] = _mm256_or_ps(self.nan[v], is_nan);
            }
        }
    }

    /// Returns how many valid samples of the chunk starting at
    /// `first_sample` have their label as argmax.
    ///
    /// # Safety
    ///
    /// AVX2 is available, `args.labels` satisfies the [`ClassArgs`]
    /// contract, and `first_sample + 8 * V <= 32`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn hits(&self, args: &ClassArgs, first_sample: usize) -> u32 {
        let mut hits = 0;
        for v in 0..V {
            let sample = first_sample + v * AVX2_LANES;
            // SAFETY: `labels` has 32 i32 (contract) and `sample + 8 <= 32`.
            let label = unsafe { _mm256_loadu_si256(args.labels.add(sample) as *const __m256i) };
            let equal = _mm256_cmpeq_epi32(_mm256_castps_si256(self.index[v]), label);
            let lanes = args.valid.saturating_sub(sample).min(AVX2_LANES);
            let in_range = (1u32 << lanes) - 1;
            let mask = _mm256_movemask_ps(_mm256_castsi256_ps(equal)) as u32;
            hits += (mask & in_range).count_ones();
        }
        hits
    }
}

/// Returns what [`count_hits`] returns, with AVX2 and FMA, for
/// `H1 + H2 + H3` classes in blocks of `H1`, `H2` and `H3` classes (`H2`
/// and `H3` may be 0) over chunks of two vectors of 16 samples.
///
/// # Safety
///
/// AVX2 and FMA are available and `args` satisfies the [`ClassArgs`]
/// contract for `H1 + H2 + H3` classes.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn count_hits_avx2<const H1: usize, const H2: usize, const H3: usize>(
    args: &ClassArgs,
) -> u32 {
    // SAFETY: the caller's contract, and no logits are stored.
    unsafe { blocks_avx2::<H1, H2, H3, false>(args, std::ptr::null_mut()) }
}

/// Writes the logits without bias of the panel's valid samples for
/// `H1 + H2 + H3` classes, class by class: the logit of sample `i` for
/// class `c` at `out[c * 32 + i]`. `labels` and `bias` are not read. Each
/// logit is the chain [`count_hits_avx2`] compares, so a product computed
/// from these equals `Gemm::run`'s when k takes one pass of KC.
///
/// # Safety
///
/// AVX2 and FMA are available, `args` satisfies the [`ClassArgs`]
/// contract for `H1 + H2 + H3` classes, and `out` is valid for writes of
/// `32 * (H1 + H2 + H3)` floats.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn logits_avx2<const H1: usize, const H2: usize, const H3: usize>(
    args: &ClassArgs,
    out: *mut f32,
) {
    // SAFETY: the caller's contract.
    unsafe { blocks_avx2::<H1, H2, H3, true>(args, out) };
}

/// Runs the panel in chunks of two vectors of 16 samples and the classes
/// in blocks of `H1`, `H2` and `H3`. Each block's logits are stored
/// (`STORE`, see [`logits_avx2`]) or folded into the argmax, and then the
/// hit count is returned. With one vector of samples, each step would
/// broadcast one weight per multiply-add. With two, one weight serves two
/// multiply-adds, which leaves the broadcasts room beside the multiply-adds.
/// Later blocks repeat the panel's loads from L1, and the argmax carries
/// over between blocks in class order, so ties and NaN resolve as in one
/// block.
///
/// # Safety
///
/// As for [`count_hits_avx2`], and with `STORE` as for [`logits_avx2`].
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn blocks_avx2<const H1: usize, const H2: usize, const H3: usize, const STORE: bool>(
    args: &ClassArgs,
    out: *mut f32,
) -> u32 {
    const V: usize = 2;
    let classes = H1 + H2 + H3;
    let blocks = [H1, H2, H3].iter().filter(|&&h| h > 0).count();
    let chunks = 32 / (AVX2_LANES * V);
    let mut hits = 0u32;
    for chunk in 0..chunks {
        let first_sample = chunk * AVX2_LANES * V;
        if first_sample >= args.valid {
            break;
        }
        let mut best = Best::<V>::new();
        let mut prefetch = [0, 1, 2].map(|block| {
            Prefetcher::new(&args.ahead, blocks * chunk + block, blocks * chunks, args.k)
        });
        // SAFETY: the chunk's samples lie inside the panel's 32 columns.
        let columns = unsafe { args.panel.add(first_sample) };
        let offsets = |class0: usize| {
            // SAFETY: class0 < classes, so the block's weights start inside
            // every step's `classes` weights and its biases inside a
            // non-null bias (caller contract).
            unsafe {
                let bias = if args.bias.is_null() {
                    args.bias
                } else {
                    args.bias.add(class0)
                };
                (args.weights.add(class0), bias)
            }
        };
        // SAFETY: `offsets` keeps every pointer inside the caller's ranges.
        unsafe {
            let (weights, bias) = offsets(0);
            let z = chunk_logits_avx2::<H1, V, false>(
                args,
                weights,
                classes,
                Steps::dense(columns, args.k),
                &mut prefetch[0],
            );
            take_block::<V, STORE>(&z, bias, 0, &mut best, out, first_sample);
            if H2 > 0 {
                let (weights, bias) = offsets(H1);
                let z = chunk_logits_avx2::<H2, V, false>(
                    args,
                    weights,
                    classes,
                    Steps::dense(columns, args.k),
                    &mut prefetch[1],
                );
                take_block::<V, STORE>(&z, bias, H1, &mut best, out, first_sample);
            }
            if H3 > 0 {
                let (weights, bias) = offsets(H1 + H2);
                let z = chunk_logits_avx2::<H3, V, false>(
                    args,
                    weights,
                    classes,
                    Steps::dense(columns, args.k),
                    &mut prefetch[2],
                );
                take_block::<V, STORE>(&z, bias, H1 + H2, &mut best, out, first_sample);
            }
        }
        if !STORE {
            // SAFETY: the labels contract is the caller's.
            hits += unsafe { best.hits(args, first_sample) };
        }
    }
    hits
}

/// Stores block `class0..` of a chunk's logits as [`logits_avx2`] lays
/// them out (`STORE`), or folds it into `best`.
///
/// # Safety
///
/// AVX2 is available. With `STORE`, `out` has room for the panel's logits
/// of classes `class0..class0 + z.len()` and of the chunk's samples from
/// `first_sample` on. Without, `bias` is null or has `z.len()` floats.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn take_block<const V: usize, const STORE: bool>(
    z: &[[__m256; V]],
    bias: *const f32,
    class0: usize,
    best: &mut Best<V>,
    out: *mut f32,
    first_sample: usize,
) {
    if STORE {
        for (c, row) in z.iter().enumerate() {
            for (v, &lanes) in row.iter().enumerate() {
                let at = (class0 + c) * 32 + first_sample + v * AVX2_LANES;
                // SAFETY: inside `out` (contract).
                unsafe { _mm256_storeu_ps(out.add(at), lanes) };
            }
        }
    } else {
        // SAFETY: `bias` is null or has the block's biases (contract).
        unsafe { best.fold(z, bias, class0) };
    }
}

/// Expands to `f::<H1, H2, H3>` with the blocks of classes of the AVX2
/// kernels for `classes` (see [`kernel_for`]), or returns `None` from the
/// enclosing function for a class count they do not take.
macro_rules! avx2_blocks {
    ($f:ident, $classes:expr) => {
        match $classes {
            2 => $f::<2, 0, 0>,
            3 => $f::<3, 0, 0>,
            4 => $f::<4, 0, 0>,
            5 => $f::<5, 0, 0>,
            6 => $f::<6, 0, 0>,
            7 => $f::<4, 3, 0>,
            8 => $f::<4, 4, 0>,
            9 => $f::<5, 4, 0>,
            10 => $f::<5, 5, 0>,
            11 => $f::<6, 5, 0>,
            12 => $f::<6, 6, 0>,
            13 => $f::<5, 4, 4>,
            14 => $f::<5, 5, 4>,
            _ => return None,
        }
    };
}

/// Expands to `f::<G>` for the class counts of the AVX-512 kernels (see
/// [`kernel_for`]), or returns `None` from the enclosing function for
/// another.
macro_rules! avx512_classes {
    ($f:ident, $classes:expr) => {
        match $classes {
            2 => $f::<2>,
            3 => $f::<3>,
            4 => $f::<4>,
            5 => $f::<5>,
            6 => $f::<6>,
            7 => $f::<7>,
            8 => $f::<8>,
            9 => $f::<9>,
            10 => $f::<10>,
            11 => $f::<11>,
            12 => $f::<12>,
            13 => $f::<13>,
            14 => $f::<14>,
            _ => return None,
        }
    };
}

/// A monomorphised [`count_hits`] or [`count_hits_avx2`] for one class
/// count.
pub(crate) type CountFn = unsafe fn(&ClassArgs) -> u32;

/// Returns the kernel of `isa` for `classes`, or `None` where the
/// accumulators would not fit the vector registers. AVX-512 takes
/// `classes` in `2..=14`: `2 * G` accumulators plus two panel vectors and
/// one broadcast in 32 registers. AVX2 takes `2..=14` in 16 registers, with
/// two vectors of samples per class (`2 * H + 3 <= 15` for a block of `H`
/// classes): all classes at once up to 6, two blocks from 7 to 12, three
/// for 13 and 14. Two vectors per broadcast weight leave the load ports
/// room, where one vector for all classes (the layout before the blocks)
/// reached 86 % of the FMA peak on a single candidate against 97 %.
pub(crate) fn kernel_for(isa: Isa, classes: usize) -> Option<CountFn> {
    match isa {
        Isa::Avx512 => avx512_kernel_for(classes),
        Isa::Avx2Fma => avx2_kernel_for(classes),
        Isa::Portable => None,
    }
}

/// A monomorphised [`logits_avx2`] for one class count.
pub(crate) type LogitsFn = unsafe fn(&ClassArgs, *mut f32);

/// Returns the logits kernel for `classes` on `isa`: AVX-512 and AVX2 for
/// 2 to 14 classes, AVX2 with the blocks of [`kernel_for`].
pub(crate) fn logits_for(isa: Isa, classes: usize) -> Option<LogitsFn> {
    let f: LogitsFn = match isa {
        Isa::Avx512 => avx512_classes!(logits_avx512, classes),
        Isa::Avx2Fma => avx2_blocks!(logits_avx2, classes),
        Isa::Portable => return None,
    };
    Some(f)
}

/// A monomorphised [`count_hits_avx2_sparse`] for one class count.
pub(crate) type SparseCountFn = unsafe fn(&ClassArgs, &[SparseChunk]) -> u32;

/// Returns the sparse kernel of `isa` for `classes` and the samples of one
/// of its chunks, or `None` where there is none: AVX2 for the classes
/// [`kernel_for`] takes. AVX-512 and the portable kernel have no sparse
/// variant.
pub(crate) fn sparse_kernel_for(isa: Isa, classes: usize) -> Option<(SparseCountFn, usize)> {
    if isa != Isa::Avx2Fma {
        return None;
    }
    let f: SparseCountFn = match classes {
        2 => count_hits_avx2_sparse::<2, 2>,
        3 => count_hits_avx2_sparse::<3, 2>,
        4 => count_hits_avx2_sparse::<4, 2>,
        5 => count_hits_avx2_sparse::<5, 2>,
        6 => count_hits_avx2_sparse::<6, 2>,
        7 => count_hits_avx2_sparse::<7, 1>,
        8 => count_hits_avx2_sparse::<8, 1>,
        9 => count_hits_avx2_sparse::<9, 1>,
        10 => count_hits_avx2_sparse::<10, 1>,
        11 => count_hits_avx2_sparse::<11, 1>,
        12 => count_hits_avx2_sparse::<12, 1>,
        13 => count_hits_avx2_sparse::<13, 1>,
        14 => count_hits_avx2_sparse::<14, 1>,
        _ => return None,
    };
    let vectors = if classes <= 6 { 2 } else { 1 };
    Some((f, vectors * AVX2_LANES))
}

/// Returns the share of skipped steps from which the sparse kernel for
/// `classes` is used on a panel. Up to 6 classes both kernels run two
/// vectors of samples and the sparse one, reading compact chunks, is at
/// least as fast with nothing skipped (measured with AVX2 on AMD Zen 3),
/// so it always runs. From 7 classes the sparse kernel runs one vector of
/// 8 samples per chunk and one broadcast per multiply-add. That runs at
/// about 0.8 times the speed of the dense kernel's blocks of classes over
/// two vectors, so it must skip a fifth of the steps.
pub(crate) fn sparse_min_skipped(classes: usize) -> f64 {
    if classes <= 6 {
        0.0
    } else {
        0.2
    }
}

fn avx2_kernel_for(classes: usize) -> Option<CountFn> {
    Some(avx2_blocks!(count_hits_avx2, classes))
}

fn avx512_kernel_for(classes: usize) -> Option<CountFn> {
    Some(avx512_classes!(count_hits, classes))
}
