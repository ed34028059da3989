//! The fused argmax-and-count epilogue used to score candidate weight sets.
//!
//! For `P` candidates of `g` classes each, `B` contains the candidates' weight
//! matrices side by side (`k x P*g`). Rows of A are processed in blocks
//! whose product rows fit in L2: each block's logits are computed into a
//! thread-local scratch with the same tiles as [`Gemm::run`], reduced to
//! per-candidate hit counts, and overwritten by the next block, so the
//! `m x P*g` product never reaches memory.
//!
//! The class-major kernels also compute plain products with few columns
//! of B with AVX-512 or AVX2 ([`class_major_product`]), where they fill
//! every lane.
//!
//! [`Gemm::run`]: super::Gemm::run

use super::kernel::KernelSpec;
use super::loops::{self, Bias, Block, PackedPanels, Post, RawC};
use super::view::MatRef;
use crate::AlignedVec;
use std::cell::RefCell;

/// Scratch rows of logits per block are capped at this many floats, 256 KiB:
/// an eighth to a quarter of a 1-2 MiB L2, beside the A block.
const SCRATCH_FLOATS: usize = 64 * 1024;

thread_local! {
    static LOGITS: RefCell<AlignedVec> = RefCell::new(AlignedVec::new());
}

/// Returns the index of the largest value: the first one on ties, and the
/// first NaN if there is one (NaN counts as larger than any number, as in
/// `torch.argmax`). `None` for an empty slice.
pub fn argmax_group(values: &[f32]) -> Option<usize> {
    let (&first, rest) = values.split_first()?;
    if first.is_nan() {
        return Some(0);
    }
    let mut best = 0;
    let mut best_value = first;
    for (j, &x) in rest.iter().enumerate() {
        if x.is_nan() {
            return Some(j + 1);
        }
        if x > best_value {
            best = j + 1;
            best_value = x;
        }
    }
    Some(best)
}

/// Fills `counts[p]` with the rows whose argmax over columns
/// `p * group..(p + 1) * group` of `A * B + bias` equals the label.
/// Arguments were checked by `Gemm::argmax_count`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn argmax_count(
    isa: crate::dispatch::Isa,
    spec: &KernelSpec,
    parallel: bool,
    a: MatRef<'_>,
    b: MatRef<'_>,
    bias: Option<&[f32]>,
    group: usize,
    labels: &[u32],
    counts: &mut [u64],
    prepacked: Option<&ClassPanels>,
) {
    counts.fill(0);
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    if m == 0 || n == 0 {
        return;
    }
    // The class-major kernel packs each 32-sample panel once for all
    // candidates, which pays off from a few candidates on. With one to
    // three candidates it still beats the tile path, which fills only `g`
    // of every 8 or 16 lanes, when the panels are cheap to pack. That is
    // the case for a column-major A (32 contiguous floats per step of k)
    // and for a row-major A with enough rows (an in-register transpose,
    // with the next panel's rows prefetched while the current one is
    // scored). Measured with AVX2 on Zen 3, the row-major case starts to
    // win at 128 rows. With AVX-512 on a Xeon, (12000, 128, 10) with one
    // candidate went from 43-46 to 92-95 GFLOP/s (`heft bench gemm`).
    #[cfg(target_arch = "x86_64")]
    if n / group >= CLASS_MAJOR_MIN_CANDIDATES
        || (k > 1 && a.row_stride() == 1 && m > 1)
        || (k > 1 && a.col_stride() == 1 && m >= CLASS_MAJOR_MIN_ROWS)
    {
        if let Some(kernel) = crate::arch::class_major::kernel_for(isa, group) {
            class_major(
                isa,
                kernel,
                spec.blocking.kc_for(k),
                parallel,
                a,
                b,
                bias,
                group,
                labels,
                counts,
                prepacked,
            );
            return;
        }
    }
    let _ = prepacked;
    let spec = match crate::gemm::kernel::narrow(isa) {
        Some(narrow) if n <= narrow.nr => narrow,
        _ => spec,
    };
    let (mr, nr) = (spec.mr, spec.nr);
    let kc = spec.blocking.kc_for(k);
    let panels = n.div_ceil(nr);
    let direct_a = loops::reads_a_in_place(&a, n, nr);
    let post = Post {
        bias: bias.map_or(Bias::None, Bias::PerCol),
        relu: false,
    };

    // Rows per block: a multiple of MR whose logits fit the scratch cap,
    // and no more than the MC block the A panels are sized for.
    let rows_per_block = (SCRATCH_FLOATS / (n * mr)).max(1) * mr;
    let rows_per_block = rows_per_block.min(spec.blocking.mc.max(mr));
    let blocks = m.div_ceil(rows_per_block);

    // Pack all of B once: one set of panels per KC step, shared read-only.
    let k_steps: Vec<usize> = (0..k).step_by(kc).collect();
    let step_len = |kcb: usize| panels * kcb * nr;
    let b_len: usize = k_steps.iter().map(|&pc| step_len(kc.min(k - pc))).sum();

    loops::with_b_buffer(b_len, |b_buffer| {
        let mut offset = 0;
        for &pc in &k_steps {
            let kcb = kc.min(k - pc);
            let len = step_len(kcb);
            loops::pack_b_block(
                spec.isa,
                parallel,
                &b,
                pc,
                kcb,
                0,
                n,
                nr,
                &mut b_buffer[offset..offset + len],
                None,
            );
            offset += len;
        }
        let b_packed: &[f32] = b_buffer;

        let tally = |block: usize, local: &mut [u64]| {
            let i0 = block * rows_per_block;
            let rows = rows_per_block.min(m - i0);
            let Some(rows_of_a) = a.submatrix(i0, 0, rows, k) else {
                return;
            };
            with_logits(rows * n, |logits| {
                let c = RawC {
                    ptr: logits.as_mut_ptr(),
                    rs: n,
                    cs: 1,
                };
                if k == 0 {
                    logits.fill(0.0);
                }
                let mut offset = 0;
                for &pc in &k_steps {
                    let kcb = kc.min(k - pc);
                    let len = step_len(kcb);
                    let block = Block {
                        spec,
                        a: &rows_of_a,
                        direct_a,
                        b_packed: PackedPanels::read_only(&b_packed[offset..offset + len]),
                        b_in_place: None,
                        copy_b: None,
                        sparse: None,
                        i0: 0,
                        mcb: rows,
                        jc: 0,
                        ncb: n,
                        pc,
                        kcb,
                        alpha: 1.0,
                        beta: if pc == 0 { 0.0 } else { 1.0 },
                        post: None,
                        a_outer: false,
                        prefetch: super::loops::Prefetch::default(),
                    };
                    // SAFETY: `logits` is a rows x n row-major buffer owned
                    // by this thread, which is exactly the region written.
                    unsafe { block.run(c, 0..panels) };
                    offset += len;
                }
                for (i, row) in logits.chunks_exact_mut(n).enumerate() {
                    if !matches!(post.bias, Bias::None) {
                        for (j, x) in row.iter_mut().enumerate() {
                            *x = post.apply_bias(*x, j);
                        }
                    }
                    let label = labels[i0 + i] as usize;
                    for (p, logits_p) in row.chunks_exact(group).enumerate() {
                        if argmax_group(logits_p) == Some(label) {
                            local[p] += 1;
                        }
                    }
                }
            });
        };

        let threads = loops::thread_count(parallel);
        if threads <= 1 || blocks == 1 {
            for block in 0..blocks {
                tally(block, counts);
            }
            return;
        }
        // One partial count vector per task, summed afterwards: integer
        // sums, so the order of addition cannot change the result.
        let tasks = (threads * 4).min(blocks);
        let per_task = blocks.div_ceil(tasks);
        let tasks = blocks.div_ceil(per_task);
        let partial: Vec<std::sync::Mutex<Vec<u64>>> = (0..tasks)
            .map(|_| std::sync::Mutex::new(vec![0; counts.len()]))
            .collect();
        loops::for_each_task(parallel, tasks, |task| {
            let mut local = partial[task].lock().unwrap_or_else(|e| e.into_inner());
            for block in task * per_task..((task + 1) * per_task).min(blocks) {
                tally(block, &mut local);
            }
        });
        for part in partial {
            let part = part.into_inner().unwrap_or_else(|e| e.into_inner());
            for (total, x) in counts.iter_mut().zip(part) {
                *total += x;
            }
        }
    });
}

fn with_logits<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    loops::with_scratch(&LOGITS, len, f)
}

/// One panel of 32 samples for the class-major kernels: `raw` is
/// `k x 32` (feature `p` of sample `i` at `p * 32 + i`). For the sparse
/// kernel with chunks of `width` samples, chunk `c` has `counts[c]` kept
/// steps, their features at `chunks[c * k * width..]` (`width` per step)
/// and their step numbers at `steps[c * k..]`.
pub(crate) struct PanelRef<'p> {
    pub raw: &'p [f32],
    pub chunks: &'p [f32],
    pub steps: &'p [u32],
    pub counts: &'p [u32],
}

/// The writable form of [`PanelRef`], for packing.
struct PanelMut<'p> {
    raw: &'p mut [f32],
    chunks: &'p mut [f32],
    steps: &'p mut [u32],
    counts: &'p mut [u32],
}

impl<'p> PanelMut<'p> {
    fn into_ref(self) -> PanelRef<'p> {
        PanelRef {
            raw: self.raw,
            chunks: self.chunks,
            steps: self.steps,
            counts: self.counts,
        }
    }
}

/// Packs samples `i0..i0 + valid` (columns of `samples_t`, `k x m`) into
/// `out`, zero-filling the samples past `valid`, and with `width > 0` cuts
/// the panel into chunks of `width` samples without their all-zero steps
/// (NaN counts as nonzero).
fn pack_class_panel(
    isa: crate::dispatch::Isa,
    samples_t: &MatRef<'_>,
    i0: usize,
    valid: usize,
    width: usize,
    out: &mut PanelMut<'_>,
) {
    let k = samples_t.rows();
    if k == 0 {
        return;
    }
    let raw = &mut out.raw[..k * PANEL_SAMPLES];
    super::pack::pack_b_panel(isa, samples_t, 0, k, i0, valid, PANEL_SAMPLES, raw);
    if width == 0 {
        return;
    }
    for c in 0..PANEL_SAMPLES / width {
        let dst = &mut out.chunks[c * k * width..][..k * width];
        let source = |p: usize| &raw[p * PANEL_SAMPLES + c * width..][..width];
        match width {
            8 => crate::arch::copy_rows::<8>(isa, source, dst),
            16 => crate::arch::copy_rows::<16>(isa, source, dst),
            _ => {
                for (p, row) in dst.chunks_exact_mut(width).enumerate() {
                    row.copy_from_slice(source(p));
                }
            }
        }
        let kept = super::pack::drop_zero_steps(dst, width, &mut out.steps[c * k..][..k]);
        // The count is at most k, a GEMM depth far below u32::MAX.
        out.counts[c] = kept as u32;
    }
}

/// Returns the kept and the total steps of one panel's chunks of `width`
/// samples. Only chunks with one of the panel's `valid` samples count, and
/// chunk `c` kept `counts[c]` of its `k` steps.
fn panel_steps(counts: &[u32], valid: usize, width: usize, k: usize) -> (u64, u64) {
    let chunks = valid.div_ceil(width);
    let kept = counts[..chunks].iter().map(|&c| u64::from(c)).sum();
    (kept, (chunks * k) as u64)
}

/// All panels of an A packed once for the class-major kernels, each laid
/// out as [`PanelRef`] describes.
pub(crate) struct ClassPanels {
    /// Samples (rows of A).
    rows: usize,
    k: usize,
    /// Samples per chunk of the sparse kernel, 0 without one.
    width: usize,
    raw: AlignedVec,
    chunks: AlignedVec,
    steps: Vec<u32>,
    counts: Vec<u32>,
}

impl ClassPanels {
    /// Packs `a` for `group` classes on `isa`, or returns `None` where no
    /// class-major kernel takes that group.
    pub(crate) fn new(isa: crate::dispatch::Isa, a: &MatRef<'_>, group: usize) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        let width = {
            use crate::arch::class_major::{kernel_for, sparse_kernel_for};
            kernel_for(isa, group)?;
            sparse_kernel_for(isa, group).map_or(0, |(_, width)| width)
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (isa, a, group);
            return None;
        }

        let (m, k) = (a.rows(), a.cols());
        if k == 0 {
            return None;
        }
        let panels = m.div_ceil(PANEL_SAMPLES);
        let panel_len = k * PANEL_SAMPLES;
        // Without a sparse kernel only the raw panels are read, so the
        // chunks and their steps take no memory.
        let sparse = width > 0;
        let sparse_panels = if sparse { panels } else { 0 };
        let mut packed = ClassPanels {
            rows: m,
            k,
            width,
            raw: AlignedVec::zeros(panels * panel_len),
            chunks: AlignedVec::zeros(sparse_panels * panel_len),
            steps: vec![0; sparse_panels * k * MAX_CHUNKS],
            counts: vec![0; panels * MAX_CHUNKS],
        };

        let samples_t = a.t();
        for index in 0..panels {
            let i0 = index * PANEL_SAMPLES;
            let mut out = PanelMut {
                raw: &mut packed.raw.as_mut_slice()[index * panel_len..][..panel_len],
                chunks: if sparse {
                    &mut packed.chunks.as_mut_slice()[index * panel_len..][..panel_len]
                } else {
                    &mut []
                },
                steps: if sparse {
                    &mut packed.steps[index * k * MAX_CHUNKS..][..k * MAX_CHUNKS]
                } else {
                    &mut []
                },
                counts: &mut packed.counts[index * MAX_CHUNKS..][..MAX_CHUNKS],
            };
            pack_class_panel(
                isa,
                &samples_t,
                i0,
                PANEL_SAMPLES.min(m - i0),
                width,
                &mut out,
            );
        }
        Some(packed)
    }

    /// Returns the share of the (chunk, step) pairs that the sparse kernel
    /// skips, over the chunks it runs (those with a real sample), or 0
    /// without a sparse kernel.
    pub(crate) fn skipped_fraction(&self) -> f64 {
        if self.width == 0 {
            return 0.0;
        }
        let (mut steps, mut kept) = (0u64, 0u64);
        for (index, counts) in self.counts.chunks_exact(MAX_CHUNKS).enumerate() {
            let valid = PANEL_SAMPLES.min(self.rows - index * PANEL_SAMPLES);
            let (panel_kept, panel_steps) = panel_steps(counts, valid, self.width, self.k);
            kept += panel_kept;
            steps += panel_steps;
        }
        if steps == 0 {
            0.0
        } else {
            1.0 - kept as f64 / steps as f64
        }
    }

    /// Returns panel `index`; its chunks and steps are empty without a
    /// sparse kernel.
    fn panel(&self, index: usize) -> PanelRef<'_> {
        let panel_len = self.k * PANEL_SAMPLES;
        let step_len = self.k * MAX_CHUNKS;
        let (chunks, steps) = if self.width > 0 {
            (
                &self.chunks.as_slice()[index * panel_len..][..panel_len],
                &self.steps[index * step_len..][..step_len],
            )
        } else {
            (&[][..], &[][..])
        };
        PanelRef {
            raw: &self.raw.as_slice()[index * panel_len..][..panel_len],
            chunks,
            steps,
            counts: &self.counts[index * MAX_CHUNKS..][..MAX_CHUNKS],
        }
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    static PANEL: RefCell<AlignedVec> = RefCell::new(AlignedVec::new());
    static SPARSE_PANEL: RefCell<AlignedVec> = RefCell::new(AlignedVec::new());
    static CLASS_WEIGHTS: RefCell<AlignedVec> = RefCell::new(AlignedVec::new());
}

/// Minimum number of candidates for which the class-major kernel is used.
#[cfg(target_arch = "x86_64")]
const CLASS_MAJOR_MIN_CANDIDATES: usize = 4;

/// Minimum number of rows of a row-major A for which the class-major
/// kernel is used with fewer than [`CLASS_MAJOR_MIN_CANDIDATES`]
/// candidates.
#[cfg(target_arch = "x86_64")]
const CLASS_MAJOR_MIN_ROWS: usize = 128;

/// Samples per panel of the class-major kernels: two AVX-512 vectors of 16,
/// or four AVX2 vectors of 8.
const PANEL_SAMPLES: usize = 32;

/// Maximum number of chunks a panel is cut into for the sparse kernel:
/// chunks of one AVX2 vector of 8 samples.
const MAX_CHUNKS: usize = PANEL_SAMPLES / 8;

/// Writes B's candidates step by step, as the class-major kernels read
/// them: element `(p, q * group + c)` of B at
/// `weights[q * k * group + p * group + c]`.
#[cfg(target_arch = "x86_64")]
fn class_weights(b: &MatRef<'_>, group: usize, weights: &mut [f32]) {
    let (k, n) = (b.rows(), b.cols());
    if k == 0 || group == 0 {
        return;
    }
    let (data, rs, cs) = (b.data(), b.row_stride(), b.col_stride());
    for (q, candidate) in weights[..k * n].chunks_exact_mut(k * group).enumerate() {
        for (p, step) in candidate.chunks_exact_mut(group).enumerate() {
            let first = p * rs + q * group * cs;
            for (c, w) in step.iter_mut().enumerate() {
                *w = data[first + c * cs];
            }
        }
    }
}

/// Returns the rows of a row-major A that the panel after the one at row
/// `i0` packs, for the kernels to prefetch, or nothing for another layout
/// or the last panel.
#[cfg(target_arch = "x86_64")]
fn next_panel_rows(a: &MatRef<'_>, i0: usize) -> crate::arch::class_major::Ahead {
    use crate::arch::class_major::Ahead;
    let next = i0 + PANEL_SAMPLES;
    if a.col_stride() != 1 || next >= a.rows() || a.cols() == 0 {
        return Ahead::NONE;
    }
    // A view with no columns may end before its strided rows would start,
    // so it was excluded above. Every row of a view with columns is inside
    // the data.
    Ahead {
        first: a.data()[next * a.row_stride()..].as_ptr(),
        stride: a.row_stride(),
        len: a.cols(),
        rows: PANEL_SAMPLES.min(a.rows() - next),
    }
}

/// Computes `C <- post(alpha * A * B)` with the class-major kernels
/// when B has 2 to 14 columns, k takes one pass of `kc` and A has at least
/// [`CLASS_MAJOR_MIN_ROWS`] rows with contiguous rows or columns, and
/// returns whether it did. There the tile path fills only `n` of every 8
/// or 16 lanes. Each element of C is the chain of the tile path with one
/// pass (`alpha` times the sum, then the bias and ReLU), so the result is
/// the same bit for bit. `beta` is 0: C is only written.
///
/// # Safety
///
/// `c` describes a writable `m x n` matrix that no other thread touches
/// during the call.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn class_major_product(
    isa: crate::dispatch::Isa,
    kc: usize,
    parallel: bool,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: RawC,
    post: Post<'_>,
) -> bool {
    use crate::arch::class_major::{logits_for, ClassArgs};

    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let Some(kernel) = logits_for(isa, n) else {
        return false;
    };
    let contiguous = a.col_stride() == 1 || a.row_stride() == 1;
    if !contiguous || k < 2 || k > kc || m < CLASS_MAJOR_MIN_ROWS {
        return false;
    }
    let samples_t = a.t();
    let panels = m.div_ceil(PANEL_SAMPLES);
    let bias = match post.bias {
        Bias::PerCol(bias) => Some(bias),
        _ => None,
    };
    loops::with_scratch(&CLASS_WEIGHTS, n * k, |weights| {
        class_weights(&b, n, weights);
        let weights: &[f32] = weights;
        let run_panels = |range: std::ops::Range<usize>| {
            loops::with_scratch(&PANEL, k * PANEL_SAMPLES, |panel| {
                let mut logits = [0.0f32; PANEL_SAMPLES * MAX_CLASSES];
                for index in range {
                    let i0 = index * PANEL_SAMPLES;
                    let valid = PANEL_SAMPLES.min(m - i0);
                    super::pack::pack_b_panel(
                        isa,
                        &samples_t,
                        0,
                        k,
                        i0,
                        valid,
                        PANEL_SAMPLES,
                        panel,
                    );
                    let args = ClassArgs {
                        k,
                        kc,
                        weights: weights.as_ptr(),
                        panel: panel.as_ptr(),
                        bias: std::ptr::null(),
                        labels: std::ptr::null(),
                        valid,
                        ahead: next_panel_rows(&a, i0),
                        stream: false,
                    };
                    // SAFETY: `logits_for` returns a kernel only for the ISA
                    // of a `Gemm`, whose constructor checked that the CPU has
                    // it. `weights` has k * n floats, the panel k * 32, and
                    // `logits` 32 * n.
                    unsafe { kernel(&args, logits.as_mut_ptr()) };
                    // The epilogue of the tile path, class by class over
                    // the panel's 32 contiguous logits: alpha, bias, ReLU.
                    // These are the operations of `Post::apply`, written
                    // out because its match on the bias per element kept
                    // this loop from vectorizing: (12000, 128, 10) fell
                    // from about 82 to 62-65 GFLOP/s through it (`heft
                    // bench gemm`, AVX-512 on a Xeon).
                    for (j, column) in logits.chunks_exact_mut(PANEL_SAMPLES).take(n).enumerate() {
                        let b = bias.map(|bias| bias[j]);
                        for x in column.iter_mut() {
                            let mut v = *x * alpha;
                            if let Some(b) = b {
                                v += b;
                            }
                            // `v < 0.0` is false for NaN, so NaN passes.
                            if post.relu && v < 0.0 {
                                v = 0.0;
                            }
                            *x = v;
                        }
                    }
                    // A method call borrows the whole `RawC`, which is
                    // `Sync`, where a field would capture the raw pointer.
                    let (ptr, rs, cs) = c.parts();
                    // SAFETY: rows i0..i0 + valid and columns 0..n are
                    // inside the m x n matrix `c` (caller contract), and
                    // only the task of this panel writes those rows.
                    unsafe {
                        crate::arch::write_transposed(
                            isa,
                            &logits,
                            PANEL_SAMPLES,
                            valid,
                            n,
                            ptr.add(i0 * rs),
                            rs,
                            cs,
                        );
                    }
                }
            });
        };
        let threads = loops::thread_count(parallel);
        if threads <= 1 || panels <= 1 {
            run_panels(0..panels);
            return;
        }
        let tasks = (threads * 4).min(panels);
        let per_task = panels.div_ceil(tasks);
        loops::for_each_task(parallel, panels.div_ceil(per_task), |task| {
            run_panels(task * per_task..((task + 1) * per_task).min(panels));
        });
    });
    true
}

/// The maximum number of classes of a class-major kernel.
#[cfg(target_arch = "x86_64")]
const MAX_CLASSES: usize = 14;

/// Counts hits with a class-major kernel: panels of 32 samples are packed
/// once and scored against every candidate while they sit in L1, and
/// candidates' weights stream from L2. `kc` must be the KC of the same
/// ISA's GEMM so the partial sums round identically.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn class_major(
    isa: crate::dispatch::Isa,
    kernel: crate::arch::class_major::CountFn,
    kc: usize,
    parallel: bool,
    a: MatRef<'_>,
    b: MatRef<'_>,
    bias: Option<&[f32]>,
    group: usize,
    labels: &[u32],
    counts: &mut [u64],
    prepacked: Option<&ClassPanels>,
) {
    use crate::arch::class_major::{
        sparse_kernel_for, sparse_min_skipped, Ahead, ClassArgs, SparseChunk,
    };

    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let candidates = n / group;
    let samples_t = a.t();
    let panels = m.div_ceil(PANEL_SAMPLES);
    let weights_per_candidate = k * group;

    loops::with_scratch(&CLASS_WEIGHTS, n * k, |weights| {
        class_weights(&b, group, weights);
        let weights: &[f32] = weights;
        // With finite weights, skipping the steps at which a chunk's
        // samples are all zero leaves every count unchanged (see
        // `count_hits_avx2_sparse`); NaN or infinity takes the dense kernel.
        // Cutting a panel into chunks costs about a pass of the dense kernel,
        // so panels packed here take the sparse kernel only when enough
        // candidates share them.
        let sparse = sparse_kernel_for(isa, group).filter(|_| {
            k > 0
                && (prepacked.is_some() || candidates >= CLASS_MAJOR_MIN_CANDIDATES)
                && weights.iter().all(|w| w.is_finite())
        });
        let width = sparse.map_or(0, |(_, width)| width);
        let score_panels = |range: std::ops::Range<usize>, local: &mut [u64]| {
            // Scratch for packing when the panels were not packed in advance.
            let scratch_len = if prepacked.is_some() {
                0
            } else {
                k * PANEL_SAMPLES
            };
            let mut scratch_steps = vec![0u32; scratch_len / PANEL_SAMPLES * MAX_CHUNKS];
            let mut scratch_counts = [0u32; MAX_CHUNKS];
            loops::with_scratch(&PANEL, scratch_len, |scratch_panel| {
                loops::with_scratch(&SPARSE_PANEL, scratch_len, |scratch_chunks| {
                    let mut panel_labels = [0i32; PANEL_SAMPLES];
                    for index in range {
                        let i0 = index * PANEL_SAMPLES;
                        let valid = PANEL_SAMPLES.min(m - i0);
                        let slices = match prepacked {
                            Some(packed) => packed.panel(index),
                            None => {
                                let mut out = PanelMut {
                                    raw: scratch_panel,
                                    chunks: scratch_chunks,
                                    steps: &mut scratch_steps,
                                    counts: &mut scratch_counts,
                                };
                                pack_class_panel(isa, &samples_t, i0, valid, width, &mut out);
                                out.into_ref()
                            }
                        };
                        let ahead = if prepacked.is_none() {
                            next_panel_rows(&a, i0)
                        } else {
                            Ahead::NONE
                        };
                        panel_labels.fill(0);
                        for (dst, &label) in panel_labels.iter_mut().zip(&labels[i0..i0 + valid]) {
                            *dst = label as i32;
                        }
                        let mut chunks = [SparseChunk {
                            panel: std::ptr::null(),
                            steps: std::ptr::null(),
                            count: 0,
                        }; MAX_CHUNKS];
                        let chunk_count = PANEL_SAMPLES.checked_div(width).unwrap_or(0);
                        for (c, chunk) in chunks.iter_mut().enumerate().take(chunk_count) {
                            *chunk = SparseChunk {
                                panel: slices.chunks[c * k * width..].as_ptr(),
                                steps: slices.steps[c * k..].as_ptr(),
                                count: slices.counts[c] as usize,
                            };
                        }
                        // The sparse kernel runs narrower chunks than the
                        // dense one, so it pays only on panels where it
                        // skips enough. Both give the same counts.
                        let sparse = sparse.filter(|_| {
                            let (kept, steps) = panel_steps(slices.counts, valid, width, k);
                            1.0 - kept as f64 / steps as f64 >= sparse_min_skipped(group)
                        });
                        for (p, hits) in local.iter_mut().enumerate() {
                            let args = ClassArgs {
                                k,
                                kc,
                                weights: weights[p * weights_per_candidate..].as_ptr(),
                                panel: slices.raw.as_ptr(),
                                bias: bias
                                    .map_or(std::ptr::null(), |bias| bias[p * group..].as_ptr()),
                                labels: panel_labels.as_ptr(),
                                valid,
                                ahead: if p == 0 { ahead } else { Ahead::NONE },
                                // The first candidate loads the panel from
                                // memory; later ones find it in L1.
                                stream: p == 0 && prepacked.is_some(),
                            };
                            *hits += u64::from(match sparse {
                                // SAFETY: as for the dense kernel below, and
                                // each chunk points at its `kept * width`
                                // features and steps, which live until the
                                // end of this panel.
                                Some((sparse_kernel, _)) => unsafe {
                                    sparse_kernel(&args, &chunks[..chunk_count])
                                },
                                // SAFETY: `kernel_for` returns a kernel only
                                // for the ISA of this `Gemm`, whose constructor
                                // checked that the CPU has it. `weights`
                                // contains k * group floats from p * k * group
                                // on, and the panel k * 32 floats. A bias slice
                                // has n floats, so group remain from p * group.
                                // The labels array has 32 values.
                                None => unsafe { kernel(&args) },
                            });
                        }
                    }
                });
            });
        };

        let threads = loops::thread_count(parallel);
        if threads <= 1 || panels <= 1 {
            score_panels(0..panels, counts);
            return;
        }
        let tasks = (threads * 4).min(panels);
        let per_task = panels.div_ceil(tasks);
        let tasks = panels.div_ceil(per_task);
        let partial: Vec<std::sync::Mutex<Vec<u64>>> = (0..tasks)
            .map(|_| std::sync::Mutex::new(vec![0; candidates]))
            .collect();
        loops::for_each_task(parallel, tasks, |task| {
            let mut local = partial[task].lock().unwrap_or_else(|e| e.into_inner());
            score_panels(
                task * per_task..((task + 1) * per_task).min(panels),
                &mut local,
            );
        });
        for part in partial {
            let part = part.into_inner().unwrap_or_else(|e| e.into_inner());
            for (total, x) in counts.iter_mut().zip(part) {
                *total += x;
            }
        }
    });
}
