//! The BLIS loop nest around the microkernel.
//!
//! ```text
//! jc: columns of C and B in blocks of NC       B block packed once per (jc, pc)
//!  pc: the k dimension in blocks of KC          sequential: fixes the sum order
//!   ic: rows of C and A in blocks of MC         parallel tasks (with jr chunks)
//!    jr: columns in micro-panels of NR          B micro-panel held in L1
//!     ir: rows in micro-panels of MR            one microkernel call per tile
//! ```
//!
//! With one thread, few rows of A and B rows close enough together
//! (`reads_b_in_place`), B's full micro-panels are read in place instead
//! of packed.
//!
//! When k takes several KC passes and B packed for all of k fits the
//! kernel's limit (`blocking::BSizing`, with NC reduced if needed), the pc
//! loop moves inside ic. Each MC block of C then runs all its passes while
//! it is in cache (see [`blocked`]). Otherwise, where the kernel sizes the
//! B block of a pass to fit the L2 (`BSizing::HalfL2`), the ir loop moves
//! outside jr. One A micro-panel, packed or read in place, then stays in
//! L1 while the B micro-panels stream from L2. The wide AVX-512 tile keeps
//! the BLIS order for passes short enough that its B micro-panel fits L1
//! (`KernelSpec::b_in_l1_depth`).
//!
//! Several threads may each pack the B micro-panels their tasks read into
//! buffers of their own, so that no core reads panels another core wrote.
//! They do so when the B block is dense and fits a core's L2, and the
//! tasks run all passes over k (the resident order, or k within one
//! pass).
//!
//! Where C has at least two micro-panels per thread along the side it is
//! split on, each thread runs the one-thread loops on its own slice of C
//! (see [`split_blocked`]). Otherwise threads split only the (ic, jr)
//! tiles of one jc step (and of one pc step in the BLIS order). Whatever
//! the split, each tile is computed by one microkernel call per pass, in
//! pass order. So every element of C gets the same operations in the
//! same order for any thread count.

use super::kernel::{KernelSpec, RowArgs, TileArgs, TileFn};
use super::pack;
use super::view::{MatMut, MatRef};
use super::Epilogue;
use crate::arch::CacheLevel;
use crate::AlignedVec;
use std::cell::RefCell;

/// The bias of an epilogue, along the axis it applies to in the problem the
/// loops compute (columns normally, rows when the problem was transposed).
#[derive(Clone, Copy)]
pub(crate) enum Bias<'a> {
    None,
    PerCol(&'a [f32]),
    PerRow(&'a [f32]),
}

/// The post-product operations, in the orientation of the computed problem.
#[derive(Clone, Copy)]
pub(crate) struct Post<'a> {
    pub bias: Bias<'a>,
    pub relu: bool,
}

impl Post<'_> {
    fn is_identity(&self) -> bool {
        matches!(self.bias, Bias::None) && !self.relu
    }

    #[inline]
    pub(crate) fn apply(&self, x: f32, row: usize, col: usize) -> f32 {
        let x = match self.bias {
            Bias::None => x,
            Bias::PerCol(bias) => x + bias[col],
            Bias::PerRow(bias) => x + bias[row],
        };
        // `x < 0.0` is false for NaN, so NaN passes through ReLU.
        if self.relu && x < 0.0 {
            0.0
        } else {
            x
        }
    }
}

/// Raw parts of C, shared by the tasks that write its disjoint tiles.
#[derive(Clone, Copy)]
pub(crate) struct RawC {
    pub ptr: *mut f32,
    pub rs: usize,
    pub cs: usize,
}

impl RawC {
    /// Returns the raw parts of the view `c`.
    pub(crate) fn of(c: &mut MatMut<'_>) -> RawC {
        RawC {
            ptr: c.data_mut().as_mut_ptr(),
            rs: c.row_stride(),
            cs: c.col_stride(),
        }
    }

    /// Returns the transpose: the same elements with the strides swapped.
    pub(crate) fn t(self) -> RawC {
        RawC {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Returns the pointer and the row and column strides.
    pub(crate) fn parts(&self) -> (*mut f32, usize, usize) {
        (self.ptr, self.rs, self.cs)
    }
}

// SAFETY: `RawC` is only used to write disjoint tiles of one `MatMut` from
// several threads inside a scope that outlives every task (see `gemm`).
unsafe impl Send for RawC {}
// SAFETY: as above; no two tasks touch the same element.
unsafe impl Sync for RawC {}

/// The packed B micro-panels that the tiles of a block read: `len` floats
/// at `ptr`. A pointer rather than a slice, because the kernels that copy
/// B (`KernelSpec::copy_b_direct`) fill them during the block that reads
/// them.
#[derive(Clone, Copy)]
pub(crate) struct PackedPanels {
    ptr: *mut f32,
    len: usize,
    /// Whether `ptr` comes from a mutable borrow, so that the copying
    /// kernels may write through it.
    writable: bool,
}

impl PackedPanels {
    /// Panels that are only read.
    pub(crate) fn read_only(panels: &[f32]) -> Self {
        PackedPanels {
            ptr: panels.as_ptr().cast_mut(),
            len: panels.len(),
            writable: false,
        }
    }

    /// Panels that the copying kernels may write.
    fn writable(panels: &mut [f32]) -> Self {
        PackedPanels {
            ptr: panels.as_mut_ptr(),
            len: panels.len(),
            writable: true,
        }
    }

    /// Returns the `len` floats from `start`.
    ///
    /// # Panics
    ///
    /// If they do not lie inside these panels.
    fn range(self, start: usize, len: usize) -> Self {
        assert!(
            start <= self.len && len <= self.len - start,
            "packed B range"
        );
        PackedPanels {
            ptr: self.ptr.wrapping_add(start),
            len,
            ..self
        }
    }
}

// SAFETY: the panels are written only by the one thread that runs the
// blocks of a product whose tiles copy B (`blocked`), before any tile reads
// what it wrote, and otherwise only read, inside a scope that outlives
// every task.
unsafe impl Send for PackedPanels {}
// SAFETY: as above.
unsafe impl Sync for PackedPanels {}

thread_local! {
    static B_BUFFER: RefCell<AlignedVec> = RefCell::new(AlignedVec::new());
    static A_BUFFER: RefCell<AlignedVec> = RefCell::new(AlignedVec::new());
    /// A thread's own packed copy of one B block: the block's identifier,
    /// the packed floats, and which of its micro-panels are packed.
    static OWN_B: RefCell<(u64, AlignedVec, Vec<bool>)> =
        RefCell::new((0, AlignedVec::new(), Vec::new()));
}

/// Source of the identifiers of packed B blocks: one per block of one
/// call, never reused, so a thread's [`OWN_B`] never passes for another
/// call's block.
static NEXT_B_BLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Runs `f` on this thread's copy of B block `id` (`len` floats in
/// `panels` micro-panels) and on one flag per micro-panel, set once the
/// copy contains it. `f` packs the micro-panels it reads whose flag is
/// clear, then sets their flags. A copy of another block starts with every
/// flag clear.
///
/// A nested call on the same thread gets a fresh buffer instead. No
/// caller nests today, because `f` runs no rayon task, so this branch is
/// a safeguard.
fn with_own_b<R>(
    id: u64,
    len: usize,
    panels: usize,
    f: impl FnOnce(&mut [f32], &mut [bool]) -> R,
) -> R {
    OWN_B.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            let (held, buffer, packed) = &mut *slot;
            if *held != id {
                packed.clear();
                packed.resize(panels, false);
                buffer.ensure_len(len);
            }
            // Identifier 0 names no block while `f` runs, so a copy left
            // half packed by a panic is packed again by the next task.
            *held = 0;
            let result = f(&mut buffer.as_mut_slice()[..len], packed);
            *held = id;
            result
        }
        Err(_) => f(
            AlignedVec::zeros(len).as_mut_slice(),
            &mut vec![false; panels],
        ),
    })
}

/// Runs `f` on a thread-local scratch buffer of at least `len` floats.
///
/// A nested call on the same thread (a GEMM run from inside a rayon task
/// while this thread waits in another GEMM) gets a fresh buffer instead.
pub(crate) fn with_scratch<R>(
    key: &'static std::thread::LocalKey<RefCell<AlignedVec>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.ensure_len(len);
            f(&mut buffer.as_mut_slice()[..len])
        }
        Err(_) => f(AlignedVec::zeros(len).as_mut_slice()),
    })
}

pub(crate) fn with_b_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_scratch(&B_BUFFER, len, f)
}

pub(crate) fn with_a_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_scratch(&A_BUFFER, len, f)
}

/// Returns the number of threads tasks may run on.
pub(crate) fn thread_count(parallel: bool) -> usize {
    #[cfg(feature = "parallel")]
    if parallel {
        return rayon::current_num_threads();
    }
    let _ = parallel;
    1
}

/// Runs `f(0..tasks)`, on the rayon pool when `parallel`.
pub(crate) fn for_each_task(parallel: bool, tasks: usize, f: impl Fn(usize) + Send + Sync) {
    #[cfg(feature = "parallel")]
    if parallel && tasks > 1 && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        (0..tasks).into_par_iter().for_each(f);
        return;
    }
    let _ = parallel;
    (0..tasks).for_each(f);
}

/// The step lists of the packed B panels of one pass, for the sparse path:
/// `steps` has `kc` entries per panel, and `counts` one per panel.
pub(crate) struct SparseSteps<'s> {
    pub steps: &'s mut [u32],
    pub counts: &'s mut [u32],
}

/// Packs a `kc x nc` block of B into micro-panels, on the pool when
/// `parallel` and there is more than one panel. With `sparse`, each panel
/// then drops its all-zero steps ([`pack::drop_zero_steps`]) and records
/// the steps it kept.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_b_block(
    isa: crate::dispatch::Isa,
    parallel: bool,
    b: &MatRef<'_>,
    k0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    nr: usize,
    out: &mut [f32],
    sparse: Option<SparseSteps<'_>>,
) {
    let panels = nc.div_ceil(nr);
    let pack_panel = |panel: usize, dst: &mut [f32], steps: Option<(&mut [u32], &mut u32)>| {
        let j = panel * nr;
        pack::pack_b_panel(isa, b, k0, kc, j0 + j, (nc - j).min(nr), nr, dst);
        if let Some((steps, count)) = steps {
            // The count is at most KC, far below u32::MAX.
            *count = pack::drop_zero_steps(dst, nr, steps) as u32;
        }
    };
    let out = &mut out[..panels * kc * nr];
    #[cfg(feature = "parallel")]
    if parallel && nc > nr && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        let chunks = out.par_chunks_mut(kc * nr).enumerate();
        match sparse {
            Some(SparseSteps { steps, counts }) => chunks
                .zip(steps.par_chunks_mut(kc))
                .zip(counts.par_iter_mut())
                .for_each(|(((panel, dst), steps), count)| {
                    pack_panel(panel, dst, Some((steps, count)))
                }),
            None => chunks.for_each(|(panel, dst)| pack_panel(panel, dst, None)),
        }
        return;
    }
    let _ = parallel;
    let chunks = out.chunks_exact_mut(kc * nr).enumerate();
    match sparse {
        Some(SparseSteps { steps, counts }) => {
            for (((panel, dst), steps), count) in chunks
                .zip(steps.chunks_exact_mut(kc))
                .zip(counts.iter_mut())
            {
                pack_panel(panel, dst, Some((steps, count)));
            }
        }
        None => chunks.for_each(|(panel, dst)| pack_panel(panel, dst, None)),
    }
}

/// Computes one `rows x cols` tile of C at `(row, col)` (`1 <= rows <= MR`,
/// `1 <= cols <= NR`); the kernel writes only that part of its tile.
///
/// # Safety
///
/// `a`, `a_rs`, `b`, `b_rs`, `b_copy`, `kc` and `steps` satisfy the
/// `TileArgs` contract for `tile`,
/// and elements `(row..row + rows, col..col + cols)` of `c` are valid and
/// written by no other thread during the call.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) unsafe fn run_tile(
    tile: TileFn,
    (kc, steps): (usize, *const u32),
    a: *const f32,
    a_rs: usize,
    (b, b_rs, b_copy): (*const f32, usize, *mut f32),
    c: RawC,
    (row, col, rows, cols): (usize, usize, usize, usize),
    alpha: f32,
    beta: f32,
) {
    let args = TileArgs {
        kc,
        steps,
        a,
        a_rs,
        b,
        b_rs,
        b_copy,
        // SAFETY: (row, col) is inside C (caller contract).
        c: unsafe { c.ptr.add(row * c.rs + col * c.cs) },
        c_rs: c.rs,
        c_cs: c.cs,
        rows,
        cols,
        alpha,
        beta,
    };
    // SAFETY: the rows x cols part of the tile is inside C, and the
    // operands satisfy the contract (caller contract). `tile` belongs to
    // an available ISA.
    unsafe { tile(&args) };
}

/// Applies `post` to the tile at `(row, col)`.
///
/// # Safety
///
/// As for [`run_tile`]: the tile is inside C and owned by this thread.
unsafe fn post_tile(
    post: &Post<'_>,
    c: RawC,
    (row, col, rows, cols): (usize, usize, usize, usize),
) {
    if c.cs == 1 {
        // Contiguous tile rows: the same operations per element as
        // `Post::apply`, as loops over slices the compiler vectorises.
        for i in row..row + rows {
            // SAFETY: row i of the tile has `cols` contiguous elements
            // inside C (caller contract).
            let line = unsafe { std::slice::from_raw_parts_mut(c.ptr.add(i * c.rs + col), cols) };
            match post.bias {
                Bias::None => {}
                Bias::PerCol(bias) => {
                    for (x, &b) in line.iter_mut().zip(&bias[col..col + cols]) {
                        *x += b;
                    }
                }
                Bias::PerRow(bias) => {
                    let b = bias[i];
                    for x in line.iter_mut() {
                        *x += b;
                    }
                }
            }
            if post.relu {
                for x in line.iter_mut() {
                    // `x < 0.0` is false for NaN, so NaN passes through.
                    // Storing every element lets the loop become a blend.
                    *x = if *x < 0.0 { 0.0 } else { *x };
                }
            }
        }
        return;
    }
    for i in row..row + rows {
        for j in col..col + cols {
            // SAFETY: (i, j) is inside the tile (caller contract).
            unsafe {
                let p = c.ptr.add(i * c.rs + j * c.cs);
                *p = post.apply(*p, i, j);
            }
        }
    }
}

/// Computes `C <- post(alpha * A * B + beta * C)` for checked shapes:
/// with the row kernel for one row or column of C, with the class-major
/// kernels of `isa` for a few columns (see
/// [`class_major_product`](super::fused::class_major_product)), else with
/// the kernel and orientation [`choose_plan`] picks from `kernels`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    isa: crate::dispatch::Isa,
    kernels: &[&KernelSpec],
    parallel: bool,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    mut c: MatMut<'_>,
    epilogue: Epilogue<'_>,
) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    if product_is_trivial((m, n, k), alpha, beta, &mut c, &epilogue) {
        return;
    }
    let relu = epilogue.relu;
    let whole_c = RawC::of(&mut c);
    if m == 1 && b.col_stride() == 1 {
        let bias = epilogue.bias.map_or(Bias::None, Bias::PerCol);
        let post = Post { bias, relu };
        // SAFETY: `whole_c` covers the 1 x n view `c`, borrowed mutably here.
        unsafe { row_product(kernels[0], alpha, &a, &b, beta, whole_c, &post) };
        return;
    }
    if n == 1 && a.row_stride() == 1 {
        let raw = whole_c.t();
        let bias = epilogue.bias.map_or(Bias::None, Bias::PerRow);
        // SAFETY: `raw` covers C^T, the 1 x m transpose of the view `c`.
        unsafe {
            row_product(
                kernels[0],
                alpha,
                &b.t(),
                &a.t(),
                beta,
                raw,
                &Post { bias, relu },
            )
        };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if beta == 0.0 {
        let post = Post {
            bias: epilogue.bias.map_or(Bias::None, Bias::PerCol),
            relu,
        };
        let kc = kernels[0].blocking.kc;
        // SAFETY: `whole_c` covers the view `c`, borrowed mutably here.
        let done = unsafe {
            super::fused::class_major_product(isa, kc, parallel, alpha, a, b, whole_c, post)
        };
        if done {
            return;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (isa, whole_c);
    let (spec, swap) = choose_plan(kernels, &a, &b, c.col_stride() == 1);
    if swap {
        let raw = whole_c.t();
        let bias = epilogue.bias.map_or(Bias::None, Bias::PerRow);
        let post = Post { bias, relu };
        split_blocked(spec, parallel, alpha, b.t(), a.t(), beta, raw, post);
    } else {
        let bias = epilogue.bias.map_or(Bias::None, Bias::PerCol);
        let post = Post { bias, relu };
        split_blocked(spec, parallel, alpha, a, b, beta, whole_c, post);
    }
}

/// The smallest side of a C less than four times as tall as wide that
/// several threads split by columns rather than by rows (see
/// [`split_blocked`]).
const SPLIT_COLUMNS_MIN_SIDE: usize = 384;

/// Runs the product with several threads as one single-threaded
/// [`blocked`] per thread, each on a slice of C of whole micro-panels.
/// Where the slices would be too few to share evenly (fewer than two
/// micro-panels per thread), it runs [`blocked`] on the whole product.
///
/// The slices are columns where C is wider than tall, or less than four
/// times as tall as wide with sides of at least
/// [`SPLIT_COLUMNS_MIN_SIDE`], and rows otherwise. Each slice then runs
/// the one-thread loops: with the AVX-512 sizing, A read in place where
/// its rows are contiguous, and B packed by the thread that reads it or
/// read in place. Every tile still gets the same microkernel calls in the
/// same pass order, so the bits do not change.
///
/// Measured against the whole product in one set of loops that the
/// threads share, two threads, one process, 11 rounds. In a fast phase of
/// this host, slices ran 128^3 1.13 to 1.29 times as fast, 256^3 1.09,
/// 384^3 1.03 to 1.04, 512^3 1.07, 1024^3 1.08 to 1.10 and (12000, 128,
/// 320) 0.99 to 1.08. In runs that moved into a slower phase, 512^3 to
/// 2048^3 ran 0.92 to 0.99 times as fast (BENCHMARKS.md). Column slices
/// lost on 256^3 (0.90 to 0.99) and on tall shapes (0.97 to 0.99), hence
/// rows there.
#[allow(clippy::too_many_arguments)]
fn split_blocked(
    spec: &KernelSpec,
    parallel: bool,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: RawC,
    post: Post<'_>,
) {
    let threads = thread_count(parallel);
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let by_columns = n > m || (m.min(n) >= SPLIT_COLUMNS_MIN_SIDE && m < 4 * n);
    let (length, unit) = if by_columns {
        (n, spec.nr)
    } else {
        (m, spec.mr)
    };
    let panels = length.div_ceil(unit);
    if threads <= 1 || panels < 2 * threads {
        blocked(
            spec,
            parallel,
            alpha,
            a,
            BSource::View(b),
            beta,
            c,
            post,
            false,
        );
        return;
    }
    // One slice per thread, of whole micro-panels: the first `extra`
    // slices take one micro-panel more than the others.
    let (base, extra) = (panels / threads, panels % threads);
    let first_panel = |slice: usize| slice * base + slice.min(extra);
    for_each_task(parallel, threads, |slice| {
        let start = first_panel(slice) * unit;
        let len = (first_panel(slice + 1) * unit).min(length) - start;
        // Through a method, so the closure captures `c` (Sync) and not
        // its raw pointer field.
        let (ptr, rs, cs) = c.parts();
        // The slice of A or B, the offset of the slice's first element in
        // C, and its part of the bias.
        let (a, b, offset, bias) = if by_columns {
            let b = b
                .submatrix(0, start, k, len)
                .expect("the slice lies inside B");
            let bias = match post.bias {
                Bias::PerCol(bias) => Bias::PerCol(&bias[start..start + len]),
                other => other,
            };
            (a, b, start * cs, bias)
        } else {
            let a = a
                .submatrix(start, 0, len, k)
                .expect("the slice lies inside A");
            let bias = match post.bias {
                Bias::PerRow(bias) => Bias::PerRow(&bias[start..start + len]),
                other => other,
            };
            (a, b, start * rs, bias)
        };
        let c = RawC {
            ptr: ptr.wrapping_add(offset),
            rs,
            cs,
        };
        let post = Post { bias, ..post };
        blocked(
            spec,
            false,
            alpha,
            a,
            BSource::View(b),
            beta,
            c,
            post,
            false,
        );
    });
}

/// Computes `C <- post(alpha * A * B + beta * C)` for checked shapes as
/// `C^T = B^T A^T`, with `A^T` packed as the B operand so that each NR-row
/// group of A drops the steps of k at which all its rows are zero.
///
/// A skipped step would add `b * 0`, a zero, to every sum of the group. A
/// sum that starts at +0 never becomes -0 (in round-to-nearest, `x + y` is
/// -0 only when both are -0), and adding a zero to any other value changes
/// nothing, so for finite B the result equals [`gemm`]'s bit for bit.
///
/// A is given as `A^T`, the B operand of the transposed product: a view
/// packed during the call, or panels packed in advance by
/// [`pack_sparse_panels`] with the same kernel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_sparse_a(
    spec: &KernelSpec,
    parallel: bool,
    alpha: f32,
    a_t: BSource<'_>,
    b: MatRef<'_>,
    beta: f32,
    mut c: MatMut<'_>,
    epilogue: Epilogue<'_>,
) {
    let (m, k) = match a_t {
        BSource::View(view) => (view.cols(), view.rows()),
        BSource::Packed(packed) => (packed.n, packed.k),
    };
    if product_is_trivial((m, b.cols(), k), alpha, beta, &mut c, &epilogue) {
        return;
    }
    let relu = epilogue.relu;
    let bias = epilogue.bias.map_or(Bias::None, Bias::PerRow);
    let post = Post { bias, relu };
    let raw = RawC::of(&mut c).t();
    blocked(spec, parallel, alpha, b.t(), a_t, beta, raw, post, true);
}

/// Picks the kernel and orientation (`C` or `C^T = B^T A^T`) with the
/// lowest estimated cost. Every choice computes the same sums in the same
/// order, so the choice changes speed only, never a result.
///
/// The estimate counts multiply-adds over the padded tiles, weighted by
/// the kernel's `plan_weight` (1.15 for the narrow kernels, which issue
/// one broadcast per FMA). It adds packing (12 multiply-add equivalents
/// per element copied along its contiguous dimension, 25 per element
/// gathered across a stride) and stores of C (2 per element in vectors,
/// 40 per strided scalar store). The weights are rough ratios from
/// single-core measurements on AVX-512. On a tie the earlier kernel of
/// `kernels` wins.
pub(crate) fn choose_plan<'k>(
    kernels: &[&'k KernelSpec],
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    c_rows_contiguous: bool,
) -> (&'k KernelSpec, bool) {
    let mut best = (kernels[0], false);
    let mut best_cost = f64::INFINITY;
    for &spec in kernels {
        let weight = spec.plan_weight;
        for swap in [false, true] {
            let (a, b) = if swap { (b.t(), a.t()) } else { (*a, *b) };
            // The computed C's rows are contiguous in one orientation only
            // (for a C with unit column stride, the unswapped one).
            let contiguous_c = c_rows_contiguous != swap;
            let cost = plan_cost(spec, &a, &b, contiguous_c) * weight;
            if cost < best_cost {
                best_cost = cost;
                best = (spec, swap);
            }
        }
    }
    best
}

fn plan_cost(spec: &KernelSpec, a: &MatRef<'_>, b: &MatRef<'_>, contiguous_c: bool) -> f64 {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let padded = |x: usize, t: usize| (x.div_ceil(t) * t) as f64;
    let products = padded(m, spec.mr) * padded(n, spec.nr) * k as f64;
    let copy_cost = |contiguous: bool| if contiguous { 12.0 } else { 25.0 };
    let pack_b = (k * n) as f64 * copy_cost(b.col_stride() == 1);
    let pack_a = if reads_a_in_place(a, n, spec.nr) {
        0.0
    } else {
        (m * k) as f64 * copy_cost(a.row_stride() == 1)
    };
    // Each pass over k stores every element of C once: as part of a
    // vector when the computed C's rows are contiguous, else one strided
    // scalar store each, which an fc1 scoring profile showed costing more
    // than the products.
    let passes = k.div_ceil(spec.blocking.kc) as f64;
    let store = (m * n) as f64 * passes * if contiguous_c { 2.0 } else { 40.0 };
    products + pack_b + pack_a + store
}

/// Computes the 1 x n product `C <- post(alpha * a * B + beta * C)` with
/// the row kernel, reading B's contiguous rows in place.
///
/// Each element is the same fused multiply-add chain over `p`, restarted
/// every KC steps, as in the tile kernels, so the result equals what the
/// blocked path computes. Columns past the last full kernel width use
/// the kernel's scalar multiply-add, which rounds like one vector lane.
///
/// # Safety
///
/// `a` is 1 x k, `b` is k x n with `col_stride == 1`, and `c` describes a
/// writable 1 x n matrix that no other thread touches during the call.
unsafe fn row_product(
    spec: &KernelSpec,
    alpha: f32,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    beta: f32,
    c: RawC,
    post: &Post<'_>,
) {
    let (k, n) = (a.cols(), b.cols());
    let width = spec.row.width;
    let (a_data, a_stride) = (a.data(), a.col_stride());
    let (b_data, b_rs) = (b.data(), b.row_stride());
    let kc = spec.blocking.kc_for(k);
    for pc in (0..k).step_by(kc) {
        let kcb = kc.min(k - pc);
        let beta_pass = if pc == 0 { beta } else { 1.0 };
        let full = if c.cs == 1 { n / width * width } else { 0 };
        for j0 in (0..full).step_by(width) {
            let args = RowArgs {
                kc: kcb,
                a: a_data[pc * a_stride..].as_ptr(),
                a_stride,
                b: b_data[pc * b_rs + j0..].as_ptr(),
                b_rs,
                // SAFETY: j0 + width <= n, inside the row of C.
                c: unsafe { c.ptr.add(j0) },
                alpha,
                beta: beta_pass,
            };
            // SAFETY: the A elements and B rows exist for p < kcb, the
            // width elements of C are contiguous and owned by this call.
            unsafe { (spec.row.run)(&args) };
        }
        for j in full..n {
            let mut acc = 0.0f32;
            for p in pc..pc + kcb {
                acc = (spec.scalar_fma)(a_data[p * a_stride], b_data[p * b_rs + j], acc);
            }
            let t = acc * alpha;
            // SAFETY: j < n, inside the row of C (caller contract).
            unsafe {
                let x = c.ptr.add(j * c.cs);
                *x = if beta_pass == 0.0 {
                    t
                } else {
                    (spec.scalar_fma)(*x, beta_pass, t)
                };
            }
        }
    }
    if !post.is_identity() {
        // SAFETY: the row of C is owned by this call (caller contract).
        unsafe { post_tile(post, c, (0, 0, 1, n)) };
    }
}

/// Completes the calls with nothing to multiply and returns whether it
/// did: an empty C is left as it is, and for `alpha == 0` or `k == 0`, C
/// becomes `epilogue(beta * C)`.
fn product_is_trivial(
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    beta: f32,
    c: &mut MatMut<'_>,
    epilogue: &Epilogue<'_>,
) -> bool {
    if m == 0 || n == 0 {
        return true;
    }
    if alpha == 0.0 || k == 0 {
        let bias = epilogue.bias.map_or(Bias::None, Bias::PerCol);
        scale(
            beta,
            c.rb(),
            Post {
                bias,
                relu: epilogue.relu,
            },
        );
        return true;
    }
    false
}

/// Computes `C <- post(beta * C)`, the result when the product is empty or
/// `alpha == 0`.
fn scale(beta: f32, mut c: MatMut<'_>, post: Post<'_>) {
    let (rows, cols, rs, cs) = (c.rows(), c.cols(), c.row_stride(), c.col_stride());
    let data = c.data_mut();
    for i in 0..rows {
        for j in 0..cols {
            let x = &mut data[i * rs + j * cs];
            let scaled = if beta == 0.0 { 0.0 } else { *x * beta };
            *x = post.apply(scaled, i, j);
        }
    }
}

/// B packed once for every pass over k, with the steps each micro-panel
/// kept: the layout [`blocked`] uses for a resident block covering all of
/// B's columns.
pub(crate) struct SparsePanels {
    /// Columns of B.
    pub n: usize,
    /// Rows of B (the product's k).
    pub k: usize,
    /// Columns per micro-panel, the kernel's NR.
    pub nr: usize,
    /// Pass `pc` starts at `pc * panels * NR`; each of its panels has
    /// `kcb * NR` floats, the kept steps first.
    pub data: AlignedVec,
    /// Pass `pc` starts at `pc * panels`, `kcb` entries per panel.
    pub steps: Vec<u32>,
    /// One count per panel of each pass, pass after pass.
    pub counts: Vec<u32>,
}

/// Packs all of `b` for [`blocked`]'s sparse path with kernel `spec`.
pub(crate) fn pack_sparse_panels(
    spec: &KernelSpec,
    parallel: bool,
    b: &MatRef<'_>,
) -> SparsePanels {
    let (k, n, nr) = (b.rows(), b.cols(), spec.nr);
    let kc = spec.blocking.kc_for(k);
    let panels = n.div_ceil(nr);
    let mut packed = SparsePanels {
        n,
        k,
        nr,
        data: AlignedVec::zeros(k * panels * nr),
        steps: vec![0; k * panels],
        counts: vec![0; k.div_ceil(kc) * panels],
    };
    for pc in (0..k).step_by(kc) {
        let kcb = kc.min(k - pc);
        let lists = SparseSteps {
            steps: &mut packed.steps[pc * panels..][..panels * kcb],
            counts: &mut packed.counts[pc / kc * panels..][..panels],
        };
        let out = &mut packed.data.as_mut_slice()[pc * panels * nr..][..panels * kcb * nr];
        pack_b_block(spec.isa, parallel, b, pc, kcb, 0, n, nr, out, Some(lists));
    }
    packed
}

/// The B operand of [`blocked`]: a view packed block by block during the
/// call, or panels packed once for the sparse path.
#[derive(Clone, Copy)]
pub(crate) enum BSource<'b> {
    View(MatRef<'b>),
    Packed(&'b SparsePanels),
}

/// Runs the loop nest for `m, n, k >= 1` and `alpha != 0`, with C as raw parts
/// of a `MatMut` of shape `m x n` that the caller borrows mutably for the
/// whole call.
///
/// With `sparse`, A is always packed, each packed B micro-panel drops the
/// steps of k at which it is all zero, and the kernel's sparse entry point
/// runs the steps left (see [`gemm_sparse_a`]). B packed in advance
/// ([`BSource::Packed`]) implies `sparse` and runs as one resident block.
#[allow(clippy::too_many_arguments)]
fn blocked(
    spec: &KernelSpec,
    parallel: bool,
    alpha: f32,
    a: MatRef<'_>,
    b: BSource<'_>,
    beta: f32,
    c: RawC,
    post: Post<'_>,
    sparse: bool,
) {
    let n = match b {
        BSource::View(view) => view.cols(),
        BSource::Packed(packed) => packed.n,
    };
    let prepacked = matches!(b, BSource::Packed(_));
    let sparse = sparse || prepacked;
    let (m, k) = (a.rows(), a.cols());
    let nr = spec.nr;
    let blocking = spec.blocking;
    let threads = thread_count(parallel);
    let sizes = blocking.b_blocks(nr, n);
    // With one thread and an AVX-512 sizing (`a_outer_b > 0`), A is read in
    // place whenever its rows are contiguous. In the A-outer order (below)
    // an A micro-panel then stays in L1 while B streams past it, so packing
    // A only adds a copy. That made 256^3 and 1024^3 4 to 5 % faster, and
    // 512^3 in the resident order at KC 256 1 to 2 % (BENCHMARKS.md). With
    // AVX2 (BLIS order), or with two threads sharing these loops, reading A
    // in place ran 2 to 11 % slower on large squares, so those pack A.
    // Large products with several threads now run one-thread loops per
    // slice instead (`split_blocked`). Rows 4 KiB apart share L1 sets.
    // Yet on the 8-way 32 KiB L1d of Zen 4, packing A instead ran 1024^3
    // 0.94 and 2048^3 0.92 times as fast, so they stay in place there as
    // on a 12-way 48 KiB L1d.
    let one_thread_in_place = threads == 1 && sizes.a_outer_b > 0 && a.col_stride() == 1;
    let direct_a = !sparse && (one_thread_in_place || reads_a_in_place(&a, n, spec.nr));
    let kc = blocking.kc_for(k);
    let rows = RowBlocks::new(spec, m, threads, direct_a);
    // With one thread, few rows and A read in place, the full micro-panels
    // of B are read in place too (see `reads_b_in_place`), by kernels that
    // step by B's row stride.
    let b_in_place = match b {
        BSource::View(view)
            if one_thread_in_place
                && direct_a
                && view.col_stride() == 1
                && reads_b_in_place(spec, m, view.row_stride()) =>
        {
            Some(view)
        }
        _ => None,
    };

    // With several passes over k, the (jc, pc, ic) order of BLIS loads and
    // stores every element of C once per pass, which for a C larger than
    // the caches is a round trip to memory per pass. Packing B for all of
    // k at once, with NC cut so that packed block stays within the
    // kernel's limit (`BSizing`), lets each MC block of C run all its
    // passes while it is still in cache: the (jc, ic, pc) order. Each tile
    // still gets the same microkernel calls in the same pass order, so the
    // results are the same bits.
    let resident_nc = (sizes.resident_b / k.max(1)) / nr * nr;
    let resident = prepacked || (k > kc && resident_nc >= sizes.resident_min_nc);
    let nc = if prepacked {
        n
    } else if resident {
        resident_nc.min(sizes.nc)
    } else {
        sizes.nc
    };
    let depth = if resident { k } else { kc.min(k) };
    let b_len = if prepacked {
        0
    } else {
        depth * padded_len(nc.min(n), nr)
    };
    // Outside the resident order, with a pass's B block within half of the
    // L2 (the kernel's `a_outer_b`), each A micro-panel runs against all the
    // block's B micro-panels in turn (see `Block::a_outer`). Against the
    // BLIS order, in interleaved runs with one thread on an AVX-512 core,
    // several passes with packed A ran 1024^3 5 to 6 %, 2048^3 7 to 9 % and
    // (12000, 784, 1024) 17 to 19 % faster. One pass with A read in place
    // ran 64^3 3 % faster and the other single passes within 1.5 %.
    // The wide AVX-512 tile runs passes of at most 128 steps in the BLIS
    // order instead, with its B micro-panel (32 KiB) in L1 (see
    // `KernelSpec::b_in_l1_depth`). There (12000, 128, 320) ran 1.03 times
    // as fast as in the A-outer order in a fast phase of the test host,
    // and at par in a slow one. The 12 x 32 tile lost 2 to 5 % in the BLIS
    // order (BENCHMARKS.md). On Zen 4, whose 32 KiB L1d that B micro-panel
    // fills, the prefetches of `Prefetch::for_product` ran (12000, 128,
    // 320) 1.13 times as fast in the BLIS order and 1.10 times in the
    // A-outer one, both against the BLIS order without them.
    let a_outer = !resident && b_len <= sizes.a_outer_b && depth > spec.b_in_l1_depth;
    let prefetch = Prefetch::for_product((m, k, n), kc, c.cs == 1, direct_a);
    // With several threads, a B block small enough to stay in a core's L2
    // is packed by every thread that runs its tasks, into the thread's own
    // buffer: each task packs the micro-panels it reads that its thread
    // has not packed yet. Packed once for all threads, half of the block
    // is written by one core and read by the other on every call. The
    // tasks run all passes over k, so the block covers all of k (the
    // resident order) or k fits one pass.
    let own_b =
        threads > 1 && !sparse && !prepacked && (resident || k <= kc) && b_len <= OWN_B_FLOATS;
    let shared_len = if own_b { 0 } else { b_len };
    // With one thread, the first row panel's tiles may pack B as they
    // read it (see `copies_b_in_tiles`).
    let copy_b = match b {
        BSource::View(view)
            if !resident
                && !own_b
                && !sparse
                && b_in_place.is_none()
                && copies_b_in_tiles(spec, threads, direct_a, m, &view) =>
        {
            Some(view)
        }
        _ => None,
    };
    // Step lists of the sparse path: one entry per packed row of B (depth
    // per panel) and one count per panel and pass held in b_buffer.
    let held_passes = if resident { k.div_ceil(kc) } else { 1 };
    let (mut steps_buf, mut counts_buf) = if sparse && !prepacked {
        (
            vec![0u32; b_len / nr],
            vec![0u32; held_passes * nc.min(n).div_ceil(nr)],
        )
    } else {
        (Vec::new(), Vec::new())
    };

    with_b_buffer(shared_len, |b_buffer| {
        for jc in (0..n).step_by(nc) {
            let ncb = nc.min(n - jc);
            let panels = ncb.div_ceil(nr);
            // Passes as (pc, depth, offset of its panels in b_buffer).
            let passes = (0..k).step_by(kc).map(|pc| {
                (
                    pc,
                    kc.min(k - pc),
                    if resident { pc * panels * nr } else { 0 },
                )
            });

            // Split the (ic, jr) tiles into tasks: whole MC blocks when
            // there are enough of them, else chunks of NR panels.
            let row_blocks = rows.count;
            let chunks = if threads > 1 {
                (threads * 4).div_ceil(row_blocks).clamp(1, panels)
            } else {
                1
            };
            let per_chunk = panels.div_ceil(chunks);
            let chunks = panels.div_ceil(per_chunk);
            // The step lists of one pass: its panels' steps start where its
            // panels start in b_buffer (in units of NR floats), its counts
            // at its index among the passes held.
            let lists = |pc: usize, kcb: usize, offset: usize| {
                let held = if resident { pc / kc } else { 0 };
                (
                    offset / nr..offset / nr + panels * kcb,
                    held * panels..(held + 1) * panels,
                )
            };
            let task_panels = |task: usize| {
                let first_panel = (task % chunks) * per_chunk;
                first_panel..(first_panel + per_chunk).min(panels)
            };
            let run_task =
                |b_packed: PackedPanels,
                 sparse_lists: Option<(&[u32], &[u32])>,
                 task: usize,
                 passes: &mut dyn Iterator<Item = (usize, usize, usize)>| {
                    let (i0, mcb) = rows.block(task / chunks);
                    let panel_range = task_panels(task);
                    for (pc, kcb, offset) in passes {
                        let (step_range, count_range) = lists(pc, kcb, offset);
                        let block = Block {
                            spec,
                            a: &a,
                            direct_a,
                            b_packed: b_packed.range(offset, panels * kcb * nr),
                            b_in_place: b_in_place.as_ref(),
                            // Only the first row block holds the first row
                            // panel, whose tiles then copy B.
                            copy_b: copy_b.as_ref().filter(|_| i0 == 0),
                            sparse: sparse_lists
                                .map(|(steps, counts)| (&steps[step_range], &counts[count_range])),
                            i0,
                            mcb,
                            jc,
                            ncb,
                            pc,
                            kcb,
                            alpha,
                            beta: if pc == 0 { beta } else { 1.0 },
                            post: (pc + kcb == k).then_some(&post),
                            a_outer,
                            prefetch,
                        };
                        // SAFETY: this task owns rows i0..i0 + mcb and the
                        // columns of its panel range inside C, which the
                        // caller borrows mutably for the whole call.
                        unsafe { block.run(c, panel_range.clone()) };
                    }
                };
            let pack = |(pc, kcb, offset): (usize, usize, usize),
                        out: &mut [f32],
                        steps: &mut [u32],
                        counts: &mut [u32]| {
                let BSource::View(view) = b else {
                    return;
                };
                if b_in_place.is_some() || copy_b.is_some() {
                    // Only the partial last panel is packed here: the full
                    // ones are read in place, or packed by the tiles.
                    let full = ncb / nr;
                    if full < panels {
                        let out = &mut out[full * kcb * nr..];
                        let (j, width) = (jc + full * nr, ncb - full * nr);
                        pack_b_block(spec.isa, false, &view, pc, kcb, j, width, nr, out, None);
                    }
                    return;
                }
                let (step_range, count_range) = lists(pc, kcb, offset);
                let lists = sparse.then(|| SparseSteps {
                    steps: &mut steps[step_range],
                    counts: &mut counts[count_range],
                });
                pack_b_block(spec.isa, parallel, &view, pc, kcb, jc, ncb, nr, out, lists);
            };

            if let (true, BSource::View(view)) = (own_b, b) {
                let id = NEXT_B_BLOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let len = depth * panels * nr;
                for_each_task(parallel, row_blocks * chunks, |task| {
                    with_own_b(id, len, panels, |own, packed| {
                        // The panels this task reads, for every pass, that
                        // this thread has not packed yet.
                        for jp in task_panels(task) {
                            if packed[jp] {
                                continue;
                            }
                            let j = jp * nr;
                            let width = (ncb - j).min(nr);
                            for (pc, kcb, offset) in passes.clone() {
                                let out = &mut own[offset + jp * kcb * nr..][..kcb * nr];
                                pack::pack_b_panel(
                                    spec.isa,
                                    &view,
                                    pc,
                                    kcb,
                                    jc + j,
                                    width,
                                    nr,
                                    out,
                                );
                            }
                            packed[jp] = true;
                        }
                        run_task(
                            PackedPanels::read_only(own),
                            None,
                            task,
                            &mut passes.clone(),
                        );
                    });
                });
            } else if let BSource::Packed(packed) = b {
                let lists = Some((&packed.steps[..], &packed.counts[..]));
                for_each_task(parallel, row_blocks * chunks, |task| {
                    let panels = PackedPanels::read_only(packed.data.as_slice());
                    run_task(panels, lists, task, &mut passes.clone());
                });
            } else if resident {
                for pass in passes.clone() {
                    let (_, kcb, offset) = pass;
                    let out = &mut b_buffer[offset..offset + panels * kcb * nr];
                    pack(pass, out, &mut steps_buf, &mut counts_buf);
                }
                let b_packed = PackedPanels::read_only(b_buffer);
                let sparse_lists = sparse.then_some((&steps_buf[..], &counts_buf[..]));
                for_each_task(parallel, row_blocks * chunks, |task| {
                    run_task(b_packed, sparse_lists, task, &mut passes.clone());
                });
            } else {
                for pass in passes {
                    pack(pass, b_buffer, &mut steps_buf, &mut counts_buf);
                    // Writable when the tiles copy B into it (one thread).
                    let b_packed = PackedPanels::writable(b_buffer);
                    let sparse_lists = sparse.then_some((&steps_buf[..], &counts_buf[..]));
                    for_each_task(parallel, row_blocks * chunks, |task| {
                        run_task(b_packed, sparse_lists, task, &mut std::iter::once(pass));
                    });
                }
            }
        }
    });
}

/// The blocks of A's rows that the tasks of [`blocked`] run: A's
/// micro-panels spread evenly over `count` blocks of at most MC rows.
/// With one thread, or with A read in place, that is as few blocks as MC
/// allows. With several threads and a packed A, `count` is a multiple of
/// the thread count where A has that many micro-panels, and at least four
/// blocks per thread where A has enough micro-panels (two per block).
///
/// Each task packs the A rows it runs, so splitting the rows packs every
/// row once, where splitting B's panels among tasks (the fallback when
/// there are too few rows) packs each A block once per task. A multiple
/// of the thread count keeps the threads equally loaded: 2048 rows in MC
/// blocks of 192 make 11 tasks, and two threads then wait for the
/// eleventh. Blocks start at multiples of MR, so the tiles and their
/// chains are the same whatever the split, and so is the result.
///
/// Measured with AVX-512 and two threads (`heft bench gemm`): 256^3 ran
/// slower than with one thread when its two MC blocks were cut into
/// chunks of panels, each packing its block of A again.
struct RowBlocks {
    m: usize,
    mr: usize,
    micro_panels: usize,
    count: usize,
}

impl RowBlocks {
    fn new(spec: &KernelSpec, m: usize, threads: usize, direct_a: bool) -> Self {
        let mr = spec.mr;
        let micro_panels = m.div_ceil(mr);
        let at_most_mc = micro_panels.div_ceil(spec.blocking.mc / mr);
        let count = if threads <= 1 || direct_a {
            at_most_mc
        } else {
            (micro_panels / 2)
                .min(threads * 4)
                .max(at_most_mc)
                .next_multiple_of(threads)
                .min(micro_panels)
        };
        RowBlocks {
            m,
            mr,
            micro_panels,
            count: count.max(1),
        }
    }

    /// Returns the first row and the number of rows of block `b`.
    fn block(&self, b: usize) -> (usize, usize) {
        let start_of = |b: usize| (b * self.micro_panels / self.count * self.mr).min(self.m);
        let start = start_of(b);
        (start, start_of(b + 1) - start)
    }
}

/// Largest B block, in floats, that each thread packs for itself (see
/// [`blocked`]): 1 MiB, half of a 2 MiB L2, which leaves the other half
/// for the A block and the tiles of C. A larger block would not stay in a
/// 2 MiB L2, and one copy per thread doubles the packing: with two threads,
/// 1024^3 (4 MiB of packed B) ran within the noise of the shared block.
const OWN_B_FLOATS: usize = 256 * 1024;

/// Decides whether the kernel reads A's rows in place instead of packing
/// them: for contiguous rows and C of at most four micro-panels. Each A
/// element is then reused at most `4 * NR` times, so packing it (a strided
/// copy) costs a large share of the products; in interleaved runs on
/// AVX-512, reading in place made (12000, 784, 128) about 1.5 times faster.
/// With wider C in the BLIS order the packed layout wins, as it avoids
/// cache-set conflicts between rows whose stride is a multiple of 4 KiB
/// and keeps the A block contiguous in L2. [`blocked`] also reads A in
/// place, whatever the width of C, with one thread and the AVX-512 sizing.
///
/// A of at most [`IN_PLACE_MAX_ROWS`] rows is also read in place up to
/// eight micro-panels of C, unless its row stride is a multiple of 4 KiB.
/// In five alternated runs with AVX2 on Zen 3 this took (100, 784, 128)
/// on two threads from 89-105 to 112-137 GFLOP/s and 128^3 from 85-113 to
/// 107-127, with one thread unchanged within the noise.
pub(crate) fn reads_a_in_place(a: &MatRef<'_>, n: usize, nr: usize) -> bool {
    let small =
        a.rows() <= IN_PLACE_MAX_ROWS && n <= 8 * nr && !a.row_stride().is_multiple_of(1024);
    a.col_stride() == 1 && (n <= 4 * nr || small)
}

/// The maximum number of rows of an A read in place for up to eight
/// micro-panels of C.
const IN_PLACE_MAX_ROWS: usize = 128;

/// Returns whether one thread reads B's full micro-panels in place
/// instead of packing them, for `m` rows of A and B rows `stride` floats
/// apart, with `spec`'s limits (`KernelSpec::b_in_place_rows` and
/// `KernelSpec::b_in_place_stride`).
///
/// Packing B copies it once per pass, which few rows of A do not repay,
/// while a B read in place is read again from its strided rows for every
/// row panel of A. Measured against packed B in one process (AVX-512, 11
/// to 31 rounds):
///
/// - 12 x 32, up to 256 rows: 64^3 ran 1.04 to 1.10 times as fast, 128^3
///   1.03 to 1.05, (100, 784, 128) 1.05 to 1.06 and 256^3 1.01 to 1.02,
///   while 512^3 ran 0.95 times as fast. (240, 128, 288) and (240, 512,
///   288), whose B rows are 1,152 bytes apart, ran 1.02 and 1.04.
/// - 6 x 64, up to 126 rows (21 row panels):
///   64^3 ran 1.04 to 1.07 and (100, 784, 128) 1.02 to 1.03 times as fast.
///   128^3 (22 row panels) ran 0.96 to 1.06 and 256^3 0.88 to 0.95.
/// - 6 x 64, B rows at most 1 KiB apart, four or more rows per 4 KiB page:
///   with 100 rows of A, B rows of 1,280 to 4,000 bytes ran 0.83 to 0.97
///   times as fast in place. Rows of 512 and 1,024 bytes ran 1.02 to 1.04
///   times as fast in a fast phase of the test host.
///
/// B rows 4 KiB apart are always packed, since a panel's rows would then
/// share a few L1 sets.
fn reads_b_in_place(spec: &KernelSpec, m: usize, stride: usize) -> bool {
    spec.strided_b.is_some()
        && m <= spec.b_in_place_rows
        && stride <= spec.b_in_place_stride
        && !stride.is_multiple_of(1024)
}

/// Returns whether the tiles of the first row panel of `m` rows of A pack
/// B as they read it. They then read the full micro-panels of `b` in place
/// and leave their packed copy for the tiles after them
/// (`KernelSpec::copy_b_direct`), so no separate pass packs B first.
///
/// The copy then costs stores in a kernel bound by its multiply-adds,
/// where the separate pass reads B and writes the copy while no
/// multiply-add runs. It needs one thread running the loops (a whole
/// product, or one slice of [`split_blocked`]), so the first row panel
/// runs before every other. The copying kernel reads A in place, so A
/// must be read in place with a full first micro-panel. B's rows must be
/// contiguous, and B must fit [`copy_b_max_bytes`].
///
/// Measured against packing first with the wide AVX-512 tile, one
/// thread, one process, 21 rounds (BENCHMARKS.md): on an Intel core with
/// a 2 MiB L2, 128^3 ran 1.04 times as fast, 256^3 and 512^3 1.01, 384^3
/// and (12000, 128, 320) 1.00 to 1.01. Where B lies beyond the L2 there,
/// the first row panel waits for B's rows: 1024^3 ran 0.98 times as fast
/// (with B rows 4,096 or 4,160 bytes apart alike) and (1024, 512, 1024)
/// 0.99. On Zen 4 (1 MiB L2), B of 576 KiB to 1 MiB (384^3 to 512^3,
/// (256, 1024, 256)) ran 1.008 to 1.015 times as fast, and B of 2 and 4
/// MiB within 0.5 %.
fn copies_b_in_tiles(
    spec: &KernelSpec,
    threads: usize,
    direct_a: bool,
    m: usize,
    b: &MatRef<'_>,
) -> bool {
    spec.copy_b_direct.is_some()
        && threads == 1
        && direct_a
        && m >= spec.mr
        && b.col_stride() == 1
        && b.rows()
            .saturating_mul(b.cols())
            .saturating_mul(std::mem::size_of::<f32>())
            <= copy_b_max_bytes(crate::cache::l2_bytes())
}

/// Largest B, in bytes, that [`copies_b_in_tiles`] copies on a core with
/// `l2_bytes` of L2: half of the L2, or 1 MiB where that is more, but
/// never more than the L2. The first two limits come from measurements.
/// On an Intel core with a 2 MiB L2, B of up to half of it won and B of
/// 2 MiB lost. On Zen 4 (1 MiB L2), B of 1 MiB won and larger ones stayed
/// at par. No core with a smaller L2 was measured, so there B stays
/// within the L2, as on both measured cores.
fn copy_b_max_bytes(l2_bytes: usize) -> usize {
    (l2_bytes / 2).max(1 << 20).min(l2_bytes)
}

fn padded_len(x: usize, t: usize) -> usize {
    x.div_ceil(t) * t
}

/// One MC x (panel range) block of one (jc, pc) step.
pub(crate) struct Block<'s, 'a> {
    pub spec: &'s KernelSpec,
    pub a: &'s MatRef<'a>,
    pub direct_a: bool,
    pub b_packed: PackedPanels,
    /// B itself, whose full micro-panels the tiles read in place. Only the
    /// partial last panel of the block is then packed in `b_packed`.
    pub b_in_place: Option<&'s MatRef<'a>>,
    /// B itself, whose full micro-panels the tiles of the block's first
    /// row panel read in place and copy into `b_packed`, which must then
    /// be writable, before the other tiles read them from there. Only the
    /// partial last panel was packed beforehand.
    pub copy_b: Option<&'s MatRef<'a>>,
    /// For the sparse path: the steps kept by each B panel (`kcb` entries
    /// per panel) and how many each kept.
    pub sparse: Option<(&'s [u32], &'s [u32])>,
    pub i0: usize,
    pub mcb: usize,
    pub jc: usize,
    pub ncb: usize,
    pub pc: usize,
    pub kcb: usize,
    pub alpha: f32,
    pub beta: f32,
    pub post: Option<&'s Post<'s>>,
    /// Loop order: each A micro-panel (packed or read in place) runs
    /// against every B micro-panel of the range before the next A
    /// micro-panel (held in L1 while B streams from L2), instead of each B
    /// micro-panel against every A micro-panel. Each tile gets the same
    /// call either way, so the result is the same.
    pub a_outer: bool,
    /// The prefetches each tile issues as it starts (see [`Prefetch`]).
    pub prefetch: Prefetch,
}

/// Depth of the passes (steps of k) up to which [`Prefetch::for_product`]
/// prefetches A's next row panel and sends C's prefetches to L2 rather
/// than L1. A row of A in such a pass is at most 1 KiB, which spans 16
/// cache lines, or 17 where it starts inside a line.
const SHORT_PASS: usize = 256;

/// The prefetches that each tile of [`blocked`] issues as it starts.
///
/// Prefetches change no value, so they change speed only, never a result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Prefetch {
    /// The level to which each tile prefetches its rows of C, or `None`
    /// for no prefetch. The stores at the end of its chains, and the loads
    /// for `beta != 0`, then find C in cache rather than waiting on L3 or
    /// memory.
    pub c: Option<CacheLevel>,
    /// Whether each row panel's first tile prefetches the next row panel
    /// of its block into L2 where that panel is full, so read in place.
    /// The block's last full row panel prefetches nothing.
    pub next_a: bool,
}

impl Prefetch {
    /// Returns the prefetches for the product of an `m x k` A and a `k x n`
    /// B in passes of `kc` steps. `contiguous_c` is true when C's rows are
    /// contiguous in the orientation computed (a column-major C is
    /// computed as C^T and qualifies), `direct_a` when A is read in place.
    ///
    /// - A C larger than half of the L2 is likely not in L1 or L2 when a
    ///   tile's chains end, so each tile prefetches its rows. (12000, 128,
    ///   320) writes 15 MiB of C, once per 128 steps of k. Measured in one
    ///   process, 11 rounds, one thread, on an Intel core with a 48 KiB
    ///   L1d, it ran 1.03 to 1.07 times as fast with AVX-512 and 1.06
    ///   times with AVX2. 1024^3 and (12000, 784, 128) stayed within
    ///   1 % of no prefetch. Where C fits the caches, 64^3 ran 0.95 times
    ///   as fast, as the prefetches then only add instructions.
    /// - In passes of at most [`SHORT_PASS`] steps, with A read in place
    ///   and larger than half of the L2, each row panel's first tile also
    ///   prefetches the next row panel of A, and both go to L2 only. Such
    ///   a row of A spans at most 17 lines, likely too few for the
    ///   hardware prefetchers to follow before it ends, and C's lines in a
    ///   32 KiB L1d would evict the B micro-panel that the tile reads.
    ///   Measured on Zen 4 (32 KiB L1d, 1 MiB L2), AVX-512, in one
    ///   process, 21 rounds (BENCHMARKS.md), against C into L1 and no
    ///   prefetch of A: with one thread (12000, k, 320) ran 1.11 times as
    ///   fast for k = 64, 1.09 for 128 and 1.02 for 256, and (12000, 128,
    ///   128) and (12000, 128, 64) stayed within 1 %. With two threads
    ///   (12000, 128, 320) ran 1.07 times as fast, and with AVX2 (12000,
    ///   128, 64) 1.07. In earlier runs, which moved with the host's
    ///   memory traffic, (12000, 128, 320) ran 1.07 to 1.11 times as fast
    ///   and (12000, 128, 128) 1.00 to 1.10. Deeper passes and the other
    ///   shapes of `heft bench gemm` stayed within 1 %. In trials of 11 to
    ///   15 rounds, C into L2 without A ran (12000, 128, 128) 0.93 times
    ///   as fast, and prefetching A in passes of 392 and 512 steps
    ///   ((12000, 784, 128), 1024^3) lost 1 to 3 %.
    pub(crate) fn for_product(
        (m, k, n): (usize, usize, usize),
        kc: usize,
        contiguous_c: bool,
        direct_a: bool,
    ) -> Prefetch {
        let half_l2 = crate::cache::l2_bytes() / 2;
        let bytes = |elements: usize| elements.saturating_mul(std::mem::size_of::<f32>());
        let next_a = direct_a && kc <= SHORT_PASS && bytes(m.saturating_mul(k)) > half_l2;
        let large_c = contiguous_c && bytes(m.saturating_mul(n)) > half_l2;
        Prefetch {
            c: large_c.then_some(if next_a {
                CacheLevel::L2
            } else {
                CacheLevel::L1
            }),
            next_a,
        }
    }
}

impl Block<'_, '_> {
    /// Computes the block's tiles for the NR panels in `panels`.
    ///
    /// # Safety
    ///
    /// `c` describes a matrix covering rows `i0..i0 + mcb` and columns
    /// `jc..jc + ncb`, and no other thread writes those tiles meanwhile.
    pub(crate) unsafe fn run(&self, c: RawC, panels: std::ops::Range<usize>) {
        let (mr, nr, kcb) = (self.spec.mr, self.spec.nr, self.kcb);
        let row_panels = self.mcb.div_ceil(mr);
        let full_rows = self.mcb / mr;
        // Packed A contains every micro-panel, direct A only the partial one.
        let a_len = if self.direct_a {
            mr * kcb
        } else {
            row_panels * mr * kcb
        };
        // The partial row panel, if any, takes the shortest edge kernel its
        // rows fit (the sparse kernels have no edge variant), packed with
        // that kernel's row count.
        let partial_rows = self.mcb - full_rows * mr;
        let edge =
            self.spec.edges.iter().position(|edge| {
                self.sparse.is_none() && partial_rows > 0 && partial_rows <= edge.mr
            });
        let panel_mr = |ip: usize| match edge {
            Some(e) if ip == full_rows => self.spec.edges[e].mr,
            _ => mr,
        };
        with_a_buffer(a_len, |a_buffer| {
            if self.direct_a {
                if full_rows < row_panels {
                    let i = full_rows * mr;
                    pack::pack_a_panel(
                        self.spec.isa,
                        self.a,
                        self.i0 + i,
                        partial_rows,
                        self.pc,
                        kcb,
                        panel_mr(full_rows),
                        a_buffer,
                    );
                }
            } else {
                for (ip, dst) in a_buffer.chunks_exact_mut(mr * kcb).enumerate() {
                    let i = ip * mr;
                    pack::pack_a_panel(
                        self.spec.isa,
                        self.a,
                        self.i0 + i,
                        (self.mcb - i).min(mr),
                        self.pc,
                        kcb,
                        panel_mr(ip),
                        dst,
                    );
                }
            }
            let a_data = self.a.data();
            let a_rs = self.a.row_stride();
            let first_panel = panels.start;
            let tile = |jp: usize, ip: usize| {
                let j = jp * nr;
                let cols = nr.min(self.ncb - j);
                // Full panels of a B read in place take the kernels that
                // step by B's row stride, the same tile with the same chains.
                let packed = self.b_packed.range(jp * kcb * nr, kcb * nr).ptr;
                let in_place = |b: &MatRef<'_>| {
                    let offset = self.pc * b.row_stride() + self.jc + j;
                    b.data()[offset..].as_ptr()
                };
                let full_panel = j + nr <= self.ncb;
                let (spec, b_panel) = match (self.b_in_place, self.spec.strided_b) {
                    (Some(b), Some(strided)) if full_panel => {
                        (strided, (in_place(b), b.row_stride(), std::ptr::null_mut()))
                    }
                    _ => (self.spec, (packed.cast_const(), nr, std::ptr::null_mut())),
                };
                // The first row panel reads a full B panel in place and
                // leaves its packed copy for the tiles below it.
                let copying = match (self.copy_b, self.spec.copy_b_direct) {
                    (Some(b), Some(kernel))
                        if self.direct_a && ip == 0 && ip < full_rows && full_panel =>
                    {
                        // Writing through panels borrowed shared would be
                        // undefined behaviour.
                        assert!(self.b_packed.writable, "copying into read-only panels");
                        Some((kernel, (in_place(b), b.row_stride(), packed)))
                    }
                    _ => None,
                };
                let (steps, sparse_tile) = match self.sparse {
                    Some((steps, counts)) => (
                        (counts[jp] as usize, steps[jp * kcb..][..kcb].as_ptr()),
                        Some(self.spec.sparse_a.expect(
                            "the sparse path runs the main kernel, which has a sparse entry",
                        )),
                    ),
                    None => ((kcb, std::ptr::null()), None),
                };
                let i = ip * mr;
                let rows = mr.min(self.mcb - i);
                let packed_tile = match edge {
                    Some(e) if ip == full_rows => spec.edges[e].packed_a,
                    _ => spec.packed_a,
                };
                let (a_ptr, a_stride, tile) = if self.direct_a && ip < full_rows {
                    let offset = (self.i0 + i) * a_rs + self.pc;
                    (a_data[offset..].as_ptr(), a_rs, spec.direct_a)
                } else if self.direct_a {
                    (a_buffer.as_ptr(), 0, packed_tile)
                } else {
                    (a_buffer[ip * mr * kcb..].as_ptr(), 0, packed_tile)
                };
                let tile = sparse_tile.unwrap_or(tile);
                let (tile, b_panel) = copying.unwrap_or((tile, b_panel));
                let region = (self.i0 + i, self.jc + j, rows, cols);
                // A row panel's first tile prefetches the next one's rows
                // of A, which the tiles after it read.
                if self.prefetch.next_a && self.direct_a && ip + 1 < full_rows && jp == first_panel
                {
                    let next = (self.i0 + i + mr) * a_rs + self.pc;
                    let next = a_data[next..].as_ptr();
                    crate::arch::prefetch_tile(next, a_rs, mr, kcb, CacheLevel::L2);
                }
                if let Some(level) = self.prefetch.c {
                    let first = c.ptr.wrapping_add(region.0 * c.rs + region.1);
                    crate::arch::prefetch_tile(first, c.rs, rows, cols, level);
                }
                // SAFETY: the A rows exist (full direct panels lie
                // inside A, partial ones were packed with zero rows),
                // the B panel has kcb steps of nr floats (packed, or a
                // full panel inside B), and the tile is owned by this
                // task (caller contract). A copying tile writes the kcb *
                // nr floats of its panel in `b_packed`, which are writable
                // (checked above) and which no other tile reads before it
                // ends: one thread runs the blocks, this tile first.
                unsafe {
                    run_tile(
                        tile, steps, a_ptr, a_stride, b_panel, c, region, self.alpha, self.beta,
                    );
                    if let Some(post) = self.post {
                        if !post.is_identity() {
                            post_tile(post, c, region);
                        }
                    }
                }
            };
            if self.a_outer {
                for ip in 0..row_panels {
                    for jp in panels.clone() {
                        tile(jp, ip);
                    }
                }
            } else {
                // The BLIS order: each B micro-panel (KC x NR) stays in L1
                // while the block's A micro-panels stream past it from L2.
                for jp in panels {
                    for ip in 0..row_panels {
                        tile(jp, ip);
                    }
                }
            }
        });
    }
}

impl Post<'_> {
    /// Adds the per-column bias only; used by the fused epilogue, whose
    /// logits are never ReLU'd.
    #[inline]
    pub(crate) fn apply_bias(&self, x: f32, col: usize) -> f32 {
        match self.bias {
            Bias::PerCol(bias) => x + bias[col],
            _ => x,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        copies_b_in_tiles, copy_b_max_bytes, split_blocked, Bias, Post, Prefetch, RawC, SHORT_PASS,
    };
    use crate::arch::CacheLevel;
    use crate::dispatch::Isa;
    use crate::gemm::kernel::{variants, KernelSpec};
    use crate::reference::Stored;

    /// Runs the product of small integers on one kernel, whatever the
    /// plan would choose, and compares every element with the exact sum
    /// in f64. Elements outside C must stay NaN.
    fn check_exact(
        kernel: &KernelSpec,
        (m, n, k): (usize, usize, usize),
        layout: usize,
        (alpha, beta): (f32, f32),
    ) {
        let value = |x: usize| ((x * 7919 + 13) % 9) as f32 - 4.0;
        let mut next = 0;
        let mut fill = |step: usize| {
            next += step;
            value(next)
        };
        let a = Stored::new(m, k, layout & 1 == 1, 3, || fill(31));
        // Layouts from 8 on put a row-major B's rows 300 floats apart,
        // more than the wide tile reads in place, so that one thread packs
        // B in the first row panel's tiles (`copies_b_in_tiles`).
        let b_col_major = layout & 2 == 2;
        let b_pad = if layout & 8 == 8 && !b_col_major {
            300 - n
        } else {
            5
        };
        let b = Stored::new(k, n, b_col_major, b_pad, || fill(17));
        let c0 = Stored::new(m, n, layout & 4 == 4, 2, || fill(1));
        let mut c = Stored::new(m, n, layout & 4 == 4, 2, || f32::NAN);
        for i in 0..m {
            for j in 0..n {
                c.set(i, j, if beta == 0.0 { f32::NAN } else { c0.get(i, j) });
            }
        }

        let post = Post {
            bias: Bias::None,
            relu: false,
        };
        let raw = RawC::of(&mut c.view_mut());
        split_blocked(kernel, false, alpha, a.view(), b.view(), beta, raw, post);
        let context = format!(
            "{} {} x {} kernel, m {m} n {n} k {k} layout {layout} alpha {alpha} beta {beta}",
            kernel.isa, kernel.mr, kernel.nr
        );
        for i in 0..m {
            for j in 0..n {
                let sum: f64 = (0..k)
                    .map(|p| f64::from(a.get(i, p)) * f64::from(b.get(p, j)))
                    .sum();
                let previous = if beta == 0.0 {
                    0.0
                } else {
                    f64::from(beta) * f64::from(c0.get(i, j))
                };
                let expected = (f64::from(alpha) * sum + previous) as f32;
                let got = c.get(i, j);
                assert!(
                    got == expected,
                    "{context}: C[{i}, {j}] = {got}, expected {expected}"
                );
            }
        }
        c.assert_poison_intact(&context);
    }

    /// The prefetch rule: none for a C within half of the L2, and C into
    /// L1 for a larger one. Short passes over an A read in place and larger
    /// than half of the L2 prefetch A's next row panel, and C into L2.
    #[test]
    fn prefetches_follow_sizes() {
        let half_l2 = crate::cache::l2_bytes() / 2 / std::mem::size_of::<f32>();
        let k = 128;
        let tall = half_l2 / k + 1;
        let rule = |(m, k, n), kc, contiguous_c, direct_a| {
            let got = Prefetch::for_product((m, k, n), kc, contiguous_c, direct_a);
            (got.c, got.next_a)
        };
        // C and A within half of the L2.
        assert_eq!(rule((half_l2 / k, k, k), k, true, true), (None, false));

        // C larger, A within: C into L1.
        assert_eq!(
            rule((half_l2 / k, k, 2 * k), k, true, true),
            (Some(CacheLevel::L1), false)
        );

        // Both larger, short pass, A in place: A and C into L2.
        assert_eq!(
            rule((tall, k, 320), k, true, true),
            (Some(CacheLevel::L2), true)
        );
        assert_eq!(
            rule((tall, 4 * k, 320), SHORT_PASS, true, true),
            (Some(CacheLevel::L2), true)
        );
        // A packed, or a deeper pass: C into L1 only.
        assert_eq!(
            rule((tall, k, 320), k, true, false),
            (Some(CacheLevel::L1), false)
        );
        assert_eq!(
            rule((tall, 4 * k, 320), SHORT_PASS + 1, true, true),
            (Some(CacheLevel::L1), false)
        );

        // Strided C rows: A only.
        assert_eq!(rule((tall, k, 320), k, false, true), (None, true));
        // Sizes past the address space saturate instead of wrapping.
        assert_eq!(
            rule((usize::MAX, k, usize::MAX), k, true, true),
            (Some(CacheLevel::L2), true)
        );
    }

    /// Every kernel on products whose tiles prefetch A's next row panel
    /// and C into L2. One pass of 128 steps runs over an A read in place
    /// and larger than half of the L2, with a partial last row panel and a
    /// partial last column panel.
    #[test]
    fn prefetching_products_exact() {
        let half_l2 = crate::cache::l2_bytes() / 2 / std::mem::size_of::<f32>();
        for isa in Isa::ALL.into_iter().filter(|isa| isa.is_available()) {
            for kernel in variants(isa) {
                // n is at most 4 NR, so every kernel reads A in place
                // with one thread (`reads_a_in_place`).
                let (k, n) = (128, 2 * kernel.nr + 3);
                let m = (half_l2 / n.min(k)).next_multiple_of(kernel.mr) + 1;
                let prefetch = Prefetch::for_product((m, k, n), k, true, true);
                assert_eq!(prefetch.c, Some(CacheLevel::L2));
                assert!(prefetch.next_a);
                check_exact(kernel, (m, n, k), 0, (1.0, 0.0));
                check_exact(kernel, (m, n, k), 0, (-1.5, 0.5));
            }
        }
    }

    /// Runs `kernel` on an `m x k` A whose rows are `k + 5` floats apart
    /// in a buffer that ends at A's last element, so an index past A's
    /// last row panel panics. Compares C with the exact sums of small
    /// integers, with one thread and with two slices of [`split_blocked`].
    /// A column-major C is computed as C^T, as `gemm` does when it swaps
    /// the operands: its transpose is the m x n C with contiguous rows.
    fn check_tight_a(kernel: &KernelSpec, (m, n, k): (usize, usize, usize), c_col_major: bool) {
        let value = |x: usize| ((x * 7919 + 13) % 9) as f32 - 4.0;
        let rs = k + 5;
        let mut a_data = vec![f32::NAN; (m - 1) * rs + k];
        for i in 0..m {
            for p in 0..k {
                a_data[i * rs + p] = value(i * 31 + p);
            }
        }
        let a = crate::gemm::MatRef::new(&a_data, m, k, rs, 1).unwrap();
        let mut next = 0;
        let b = Stored::new(k, n, false, 5, || {
            next += 17;
            value(next)
        });
        let unread_c = Stored::new(m, n, false, 0, || 0.0);
        let expected = crate::reference::gemm_f64(1.0, a, b.view(), 0.0, unread_c.view());

        for threads in [1, 2] {
            let context = format!(
                "{} {} x {} kernel, m {m} n {n} k {k}, C column-major {c_col_major}, \
                 {threads} threads",
                kernel.isa, kernel.mr, kernel.nr
            );
            // C, or for a column-major C its n x m transpose.
            let mut c = if c_col_major {
                Stored::new(n, m, true, 2, || f32::NAN)
            } else {
                Stored::new(m, n, false, 2, || f32::NAN)
            };
            let raw = RawC::of(&mut c.view_mut());
            let raw = if c_col_major { raw.t() } else { raw };
            let post = Post {
                bias: Bias::None,
                relu: false,
            };
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| split_blocked(kernel, true, 1.0, a, b.view(), 0.0, raw, post));
            for i in 0..m {
                for j in 0..n {
                    let got = if c_col_major {
                        c.get(j, i)
                    } else {
                        c.get(i, j)
                    };
                    let want = expected[i * n + j] as f32;
                    assert!(
                        got == want,
                        "{context}: C[{i}, {j}] = {got}, expected {want}"
                    );
                }
            }
            c.assert_poison_intact(&context);
        }
    }

    /// Every kernel on products whose tiles prefetch A's next row panel,
    /// with A's buffer ending at its last element. A has a whole number of
    /// row panels, or a last row panel of one row. k is 3, 128, or 300 in
    /// two passes of 150 for the kernels with KC 256 (one pass of 300
    /// would exceed `SHORT_PASS`). Each of the two row slices of two
    /// threads is large enough for the prefetch too.
    #[test]
    fn prefetching_a_edges_exact() {
        let half_l2 = crate::cache::l2_bytes() / 2 / std::mem::size_of::<f32>();
        for isa in Isa::ALL.into_iter().filter(|isa| isa.is_available()) {
            for kernel in variants(isa) {
                let n = kernel.nr + 3;
                for k in [3, 128, 300] {
                    let kc = kernel.blocking.kc_for(k);
                    if kc > SHORT_PASS {
                        continue;
                    }
                    // Each of two row slices, of at least m / 2 - MR rows,
                    // has more of A than half of the L2.
                    let slice_min = half_l2 / k + 1;
                    let whole = (2 * (slice_min + kernel.mr)).next_multiple_of(kernel.mr);
                    for m in [whole, whole + 1] {
                        let slice = m / 2 - kernel.mr;
                        let prefetch = Prefetch::for_product((slice, k, n), kc, true, true);
                        assert!(
                            prefetch.next_a,
                            "a {slice} x {k} slice of A, n {n}: no prefetch of A's next row panel"
                        );
                        check_tight_a(kernel, (m, n, k), false);
                    }
                    check_tight_a(kernel, (whole, n, k), true);
                }
            }
        }
    }

    /// Checks the kernels that copy B in the first row panel's tiles on
    /// products of several passes outside the resident order. There B fits
    /// half of the L2 and its padded copy does not, and every pass copies
    /// its own B.
    #[test]
    fn copied_b_exact_over_passes() {
        let half_l2 = crate::cache::l2_bytes() / 2 / std::mem::size_of::<f32>();
        for isa in Isa::ALL.into_iter().filter(|isa| isa.is_available()) {
            for kernel in variants(isa).filter(|k| k.copy_b_direct.is_some()) {
                // 230 columns pad to 256: k * 230 fits half of the L2 and
                // k * 256 does not.
                let (m, n) = (200, 230);
                let k = half_l2 / 240;
                assert!(k > kernel.blocking.kc, "{k} steps make one pass");
                let b = Stored::new(k, n, false, 5, || 0.0);
                assert!(copies_b_in_tiles(kernel, 1, true, m, &b.view()));
                for scalar in [(1.0, 0.0), (-1.5, 0.5)] {
                    check_exact(kernel, (m, n, k), 0, scalar);
                }
            }
        }
    }

    /// The copy limit on B, and the kernels that copy a B of one pass at
    /// that limit, which on a core with less than 2 MiB of L2 is more than
    /// half of the L2.
    #[test]
    fn copied_b_up_to_the_limit() {
        assert_eq!(copy_b_max_bytes(1 << 20), 1 << 20);
        assert_eq!(copy_b_max_bytes(2 << 20), 1 << 20);
        assert_eq!(copy_b_max_bytes(512 << 10), 512 << 10);
        assert_eq!(copy_b_max_bytes(1536 << 10), 1 << 20);
        assert_eq!(copy_b_max_bytes(5 << 20), 5 << 19);
        let limit = copy_b_max_bytes(crate::cache::l2_bytes()) / std::mem::size_of::<f32>();
        for isa in Isa::ALL.into_iter().filter(|isa| isa.is_available()) {
            for kernel in variants(isa).filter(|k| k.copy_b_direct.is_some()) {
                // One pass of KC steps, with B rows too far apart to read
                // in place and a partial last panel.
                let (m, k) = (2 * kernel.mr + 1, kernel.blocking.kc);
                let widest = limit / k;
                let at_limit = Stored::new(k, widest, false, 5, || 0.0);
                assert!(copies_b_in_tiles(kernel, 1, true, m, &at_limit.view()));
                let past = Stored::new(k, widest + 1, false, 5, || 0.0);
                assert!(!copies_b_in_tiles(kernel, 1, true, m, &past.view()));
                check_exact(kernel, (m, widest - 3, k), 0, (1.0, 0.0));
            }
        }
    }

    /// Every kernel the plan chooses from, forced on every m and n in
    /// `1..=2 * MR + 1` and `1..=2 * NR + 1` (an empty C never reaches the
    /// loops), with depths around the unrolled steps and two passes over k,
    /// with one thread. The layouts of A, B and C cycle through sixteen.
    /// They cover A and B read in place or packed, B read in place by the
    /// strided kernels for few rows or copied by the first row panel's
    /// tiles, and C padded or column-major. Alpha and beta cycle
    /// through {0, 1, other}. For the wide AVX-512 tile, depths 1 to 128 run
    /// the BLIS order and 129 and 200 the A-outer one. The plan would take
    /// some of these shapes to another kernel, so the tests through `Gemm`
    /// leave them out.
    #[test]
    fn every_kernel_exact_on_small_shapes() {
        let scalars = [(1.0, 0.0), (-1.5, 0.5), (0.0, 1.0), (1.0, 1.0), (2.0, -0.5)];
        for isa in Isa::ALL {
            if !isa.is_available() {
                println!("skipping kernel {isa}: this CPU cannot run it");
                continue;
            }
            for kernel in variants(isa) {
                let (mr, nr, kc) = (kernel.mr, kernel.nr, kernel.blocking.kc);
                let mut calls = 0;
                for m in 1..=2 * mr + 1 {
                    for n in 1..=2 * nr + 1 {
                        let ends = [mr, 2 * mr + 1].contains(&m) && [nr, 2 * nr + 1].contains(&n);
                        // 200 steps run the A-outer order of the wide tile,
                        // 129 its first depth past the BLIS order.
                        let deep: &[usize] = if ends { &[129, 200, kc + 3] } else { &[] };
                        for &k in [1, 2, 3, 4, 5, 6, 7, 9, 13, 37].iter().chain(deep) {
                            let layout = (m + n + k) % 16;
                            let scalar = scalars[(m + 2 * n + 3 * k) % scalars.len()];
                            check_exact(kernel, (m, n, k), layout, scalar);
                            calls += 1;
                        }
                    }
                }
                println!("{isa} {mr} x {nr}: {calls} exact products");
            }
        }
    }
}
