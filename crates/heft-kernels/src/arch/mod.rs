//! Microkernels, one per instruction set, all generated from one body.
//!
//! [`microkernel!`] expands the register-blocked tile loop for a vector
//! type given as a handful of operations (zero, splat, load, store, fused
//! multiply-add, multiply). Each instruction set instantiates it inside a
//! `#[target_feature]` function, so the intrinsics inline into a body
//! compiled for that instruction set while the crate stays built for the
//! baseline target.

/// Defines the vector helpers `splat`, `load`, `store`, `fmadd` and `mul`
/// that [`microkernel!`] and [`row_kernel!`] build their bodies from, each
/// compiled with the kernel's `#[target_feature]` attributes so the
/// intrinsics inline into it.
macro_rules! vector_ops {
    (
        $(#[$attr:meta])*
        vector = $v:ty,
        splat = |$sx:ident| $splat:expr,
        load = |$lp:ident| $load:expr,
        store = |$sp:ident, $sv:ident| $store:expr,
        fmadd = |$fa:ident, $fb:ident, $fc:ident| $fmadd:expr,
        mul = |$ma:ident, $mb:ident| $mul:expr $(,)?
    ) => {
        $(#[$attr])*
        #[inline]
        unsafe fn splat($sx: f32) -> $v {
            $splat
        }
        $(#[$attr])*
        #[inline]
        unsafe fn load($lp: *const f32) -> $v {
            // SAFETY: callers pass a pointer to LANES readable floats.
            unsafe { $load }
        }
        $(#[$attr])*
        #[inline]
        unsafe fn store($sp: *mut f32, $sv: $v) {
            // SAFETY: callers pass a pointer to LANES writable floats.
            unsafe { $store }
        }
        $(#[$attr])*
        #[inline]
        unsafe fn fmadd($fa: $v, $fb: $v, $fc: $v) -> $v {
            $fmadd
        }
        $(#[$attr])*
        #[inline]
        unsafe fn mul($ma: $v, $mb: $v) -> $v {
            $mul
        }
    };
}

/// Expands to an `unsafe fn(&TileArgs)` microkernel.
///
/// `mr` rows by `nv` vectors of `lanes` floats per tile row, A read from
/// packed micro-panels (`packed = true`) or in place (`packed = false`),
/// and B from packed micro-panels, `NR` floats per step
/// (`packed_b = true`), or in place, `TileArgs::b_rs` floats per step
/// (`packed_b = false`). With `copy_b = true` (B read in place only) the
/// kernel also stores each B vector it loads to `TileArgs::b_copy`, which
/// leaves there the packed micro-panel that the tiles after it read. With
/// `sparse = true` (packed A and B only) the chain runs over the steps
/// listed in `TileArgs::steps` against a compacted B panel. The contract
/// is the one documented on `TileArgs`.
macro_rules! microkernel {
    (
        $(#[$attr:meta])*
        fn $name:ident;
        packed = $packed:expr, packed_b = $packed_b:expr, copy_b = $copy_b:expr, sparse = $sparse:expr, mr = $mr:expr, nv = $nv:expr, lanes = $lanes:expr, vector = $v:ty,
        zero = $zero:expr,
        splat = |$sx:ident| $splat:expr,
        load = |$lp:ident| $load:expr,
        store = |$sp:ident, $sv:ident| $store:expr,
        fmadd = |$fa:ident, $fb:ident, $fc:ident| $fmadd:expr,
        mul = |$ma:ident, $mb:ident| $mul:expr,
        load_first = |$lfp:ident, $lfn:ident| $load_first:expr,
        store_first = |$sfp:ident, $sfn:ident, $sfv:ident| $store_first:expr,
        scalar_fma = $scalar_fma:expr $(,)?
    ) => {
        $(#[$attr])*
        pub(crate) unsafe fn $name(args: &$crate::gemm::kernel::TileArgs) {
            const MR: usize = $mr;
            const NV: usize = $nv;
            const LANES: usize = $lanes;
            const NR: usize = NV * LANES;
            const PACKED: bool = $packed;
            const PACKED_B: bool = $packed_b;
            const SPARSE: bool = $sparse;
            const COPY_B: bool = $copy_b;
            /// Steps of k per iteration of the dense loop. With B read in
            /// place, four steps spilled accumulators of the 12 x 32 AVX-512
            /// tile to the stack, because its A rows read in place take most
            /// of the general registers. Against packed B, 256^3 ran 0.964
            /// times as fast with one step and 1.011 times with two.
            const UNROLL: usize = if $packed_b { 4 } else { 2 };
            const _: () = assert!(PACKED || !SPARSE, "sparse kernels read packed A");
            const _: () = assert!(PACKED_B || !SPARSE, "sparse kernels read packed B");
            const _: () = assert!(!PACKED_B || !COPY_B, "kernels copy B read in place");

            vector_ops! {
                $(#[$attr])*
                vector = $v,
                splat = |$sx| $splat,
                load = |$lp| $load,
                store = |$sp, $sv| $store,
                fmadd = |$fa, $fb, $fc| $fmadd,
                mul = |$ma, $mb| $mul,
            }
            $(#[$attr])*
            #[inline]
            unsafe fn load_first($lfp: *const f32, $lfn: usize) -> $v {
                // SAFETY: callers pass a pointer to `n <= LANES` readable
                // floats, and the other lanes are zero.
                unsafe { $load_first }
            }
            $(#[$attr])*
            #[inline]
            unsafe fn store_first($sfp: *mut f32, $sfn: usize, $sfv: $v) {
                // SAFETY: callers pass a pointer to `n <= LANES` writable
                // floats, and the floats past them are not written.
                unsafe { $store_first }
            }

            let $crate::gemm::kernel::TileArgs {
                kc, steps, a, a_rs, b, b_rs, b_copy, c, c_rs, c_cs, rows, cols, alpha, beta,
            } = *args;
            let zero: $v = $zero;
            let mut acc: [[$v; NV]; MR] = [[zero; NV]; MR];
            let mut a_ptr = a;
            let mut b_ptr = b;
            let mut copy_ptr = b_copy;
            // One of the two loops runs: the sparse one makes the same
            // multiply-adds as the dense one for the steps kept, finding
            // A's column through the step list.
            let (sparse_steps, dense_steps) = if SPARSE { (kc, 0) } else { (0, kc) };
            for t in 0..sparse_steps {
                // SAFETY: `steps` has kc entries (TileArgs contract), and
                // each names a column of the packed A micro-panel.
                let a_col = unsafe { a.add(*steps.add(t) as usize * MR) };
                let mut bv: [$v; NV] = [zero; NV];
                for v in 0..NV {
                    // SAFETY: the compacted B panel has NR floats for each
                    // of its kc steps and this is step t < kc.
                    bv[v] = unsafe { load(b_ptr.add(v * LANES)) };
                }
                for i in 0..MR {
                    // SAFETY: row i < MR of the listed A column exists.
                    let ai = unsafe { splat(*a_col.add(i)) };
                    for v in 0..NV {
                        // SAFETY: register arithmetic on the kernel's own
                        // instruction set, which the caller has checked.
                        acc[i][v] = unsafe { fmadd(ai, bv[v], acc[i][v]) };
                    }
                }
                // SAFETY: advancing to step t + 1 <= kc stays within or one
                // past the end of the compacted B panel.
                b_ptr = unsafe { b_ptr.add(NR) };
            }
            // One step of k at `a_ptr` and `b_ptr`. The closure inherits the
            // kernel's target features and inlines into both loops.
            let mut step = |a_ptr: *const f32, b_ptr: *const f32, copy_ptr: *mut f32| {
                let mut bv: [$v; NV] = [zero; NV];
                for v in 0..NV {
                    // SAFETY: the B micro-panel has NR floats per step of k
                    // and this is step < kc (TileArgs contract).
                    bv[v] = unsafe { load(b_ptr.add(v * LANES)) };
                    if COPY_B {
                        // SAFETY: `b_copy` has NR writable floats for each
                        // step below kc (TileArgs contract).
                        unsafe { store(copy_ptr.add(v * LANES), bv[v]) };
                    }
                }
                for i in 0..MR {
                    let offset = if PACKED { i } else { i * a_rs };
                    // SAFETY: row i < MR of A exists at step < kc in either
                    // layout (TileArgs contract).
                    let ai = unsafe { splat(*a_ptr.add(offset)) };
                    for v in 0..NV {
                        // SAFETY: register arithmetic on the kernel's own
                        // instruction set, which the caller has checked.
                        acc[i][v] = unsafe { fmadd(ai, bv[v], acc[i][v]) };
                    }
                }
            };
            // The distance, in floats, from one step of k to the next in A
            // and in B. It is a constant for packed B, and B read in place
            // steps by its row stride.
            let a_step = if PACKED { MR } else { 1 };
            let b_step = if PACKED_B { NR } else { b_rs };
            // Four steps per iteration (two with B read in place, see
            // UNROLL) cut the loop overhead per step: four were 4 to 5 %
            // faster on 1024^3 with AVX-512 (BENCHMARKS.md). B's pointer
            // moves by one addition per step: multiples of a run-time
            // stride held for the four steps took registers that the A
            // rows read in place need. It moves with `wrapping_add`
            // because, read in place, step kc of B may lie past the end of
            // B's memory. It is read only at steps below kc.
            for _ in 0..dense_steps / UNROLL {
                for u in 0..UNROLL {
                    // SAFETY: steps u < UNROLL of this group are below kc,
                    // so the pointers point into their micro-panels.
                    unsafe { step(a_ptr.add(u * a_step), b_ptr, copy_ptr) };
                    b_ptr = b_ptr.wrapping_add(b_step);
                    copy_ptr = copy_ptr.wrapping_add(NR);
                }
                // SAFETY: advancing by UNROLL steps to at most kc stays
                // within or one past the end of the A micro-panel.
                a_ptr = unsafe { a_ptr.add(UNROLL * a_step) };
            }
            for _ in 0..dense_steps % UNROLL {
                step(a_ptr, b_ptr, copy_ptr);
                copy_ptr = copy_ptr.wrapping_add(NR);
                // SAFETY: advancing to step + 1 <= kc stays within or one
                // past the end of the A micro-panel.
                a_ptr = unsafe { a_ptr.add(a_step) };
                b_ptr = b_ptr.wrapping_add(b_step);
            }

            // SAFETY: register arithmetic on the kernel's instruction set.
            let alpha_v = unsafe { splat(alpha) };
            // SAFETY: as for `alpha_v`.
            let beta_v = unsafe { splat(beta) };
            if c_cs == 1 && rows == MR && cols == NR {
                for i in 0..MR {
                    for v in 0..NV {
                        // SAFETY: the tile's MR x NR elements are writable
                        // (TileArgs contract) and contiguous along a row.
                        unsafe {
                            let p = c.add(i * c_rs + v * LANES);
                            let t = mul(acc[i][v], alpha_v);
                            let r = if beta == 0.0 { t } else { fmadd(load(p), beta_v, t) };
                            store(p, r);
                        }
                    }
                }
            } else if c_cs == 1 {
                // An edge tile: whole vectors where the columns allow, the
                // first lanes of the last one, and no row past `rows`. The
                // loops run to the constants MR and NV so the accumulators
                // stay in registers.
                for i in 0..MR {
                    if i >= rows {
                        break;
                    }
                    for v in 0..NV {
                        let first = v * LANES;
                        if first >= cols {
                            break;
                        }
                        let n = (cols - first).min(LANES);
                        // SAFETY: elements (i, first..first + n) of the
                        // tile are inside its rows x cols part, writable
                        // (TileArgs contract) and contiguous along a row.
                        unsafe {
                            let p = c.add(i * c_rs + first);
                            let t = mul(acc[i][v], alpha_v);
                            if n == LANES {
                                let r = if beta == 0.0 { t } else { fmadd(load(p), beta_v, t) };
                                store(p, r);
                            } else {
                                let r = if beta == 0.0 {
                                    t
                                } else {
                                    fmadd(load_first(p, n), beta_v, t)
                                };
                                store_first(p, n, r);
                            }
                        }
                    }
                }
            } else {
                let mut tile = [0.0f32; MR * NR];
                for i in 0..MR {
                    for v in 0..NV {
                        // SAFETY: `tile` has MR * NR elements and this
                        // writes LANES of them starting at i * NR + v * LANES.
                        unsafe { store(tile.as_mut_ptr().add(i * NR + v * LANES), acc[i][v]) };
                    }
                }
                for i in 0..rows {
                    for j in 0..cols {
                        let t = tile[i * NR + j] * alpha;
                        // SAFETY: element (i, j) of the tile's rows x cols
                        // part is writable (TileArgs contract).
                        unsafe {
                            let p = c.add(i * c_rs + j * c_cs);
                            *p = if beta == 0.0 { t } else { ($scalar_fma)(*p, beta, t) };
                        }
                    }
                }
            }
        }
    };
}

/// Expands to an `unsafe fn(&RowArgs)` kernel for one row of C: `nv`
/// accumulators of `lanes` floats run along a row of B read in place, so a
/// matrix-vector product needs no packing.
///
/// Each lane computes the same fused multiply-add chain over `p` as the
/// tile kernels, so a row product rounds exactly like a GEMM row.
macro_rules! row_kernel {
    (
        $(#[$attr:meta])*
        fn $name:ident;
        nv = $nv:expr, lanes = $lanes:expr, vector = $v:ty,
        zero = $zero:expr,
        splat = |$sx:ident| $splat:expr,
        load = |$lp:ident| $load:expr,
        store = |$sp:ident, $sv:ident| $store:expr,
        fmadd = |$fa:ident, $fb:ident, $fc:ident| $fmadd:expr,
        mul = |$ma:ident, $mb:ident| $mul:expr $(,)?
    ) => {
        $(#[$attr])*
        pub(crate) unsafe fn $name(args: &$crate::gemm::kernel::RowArgs) {
            const NV: usize = $nv;
            const LANES: usize = $lanes;

            vector_ops! {
                $(#[$attr])*
                vector = $v,
                splat = |$sx| $splat,
                load = |$lp| $load,
                store = |$sp, $sv| $store,
                fmadd = |$fa, $fb, $fc| $fmadd,
                mul = |$ma, $mb| $mul,
            }

            let $crate::gemm::kernel::RowArgs { kc, a, a_stride, b, b_rs, c, alpha, beta } = *args;
            let zero: $v = $zero;
            let mut acc: [$v; NV] = [zero; NV];
            for p in 0..kc {
                // SAFETY: element p < kc of the A row and row p of B exist
                // (RowArgs contract); register arithmetic otherwise.
                unsafe {
                    let ap = splat(*a.add(p * a_stride));
                    let row = b.add(p * b_rs);
                    for v in 0..NV {
                        acc[v] = fmadd(ap, load(row.add(v * LANES)), acc[v]);
                    }
                }
            }
            // SAFETY: the NV * LANES elements at `c` are writable and
            // contiguous (RowArgs contract).
            unsafe {
                let alpha_v = splat(alpha);
                let beta_v = splat(beta);
                for v in 0..NV {
                    let p = c.add(v * LANES);
                    let t = mul(acc[v], alpha_v);
                    let r = if beta == 0.0 { t } else { fmadd(load(p), beta_v, t) };
                    store(p, r);
                }
            }
        }
    };
}

/// The cache level a prefetch brings its lines into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CacheLevel {
    /// L1 and the levels below it (`prefetcht0`).
    L1,
    /// L2 and the levels below it, not L1 (`prefetcht1`).
    L2,
}

/// Prefetches the `rows x cols` block at `p` (rows `rs` floats apart,
/// columns contiguous) into `level`. Each row gets one prefetch per 16
/// floats (a 64-byte cache line, the line size of current x86-64 cores)
/// and one at its last column, since a row that starts inside a line
/// spans one line more. A prefetch changes no value the program reads and
/// cannot fault, so any address is sound. On other architectures than
/// x86-64 this does nothing.
#[inline]
pub(crate) fn prefetch_tile(p: *const f32, rs: usize, rows: usize, cols: usize, level: CacheLevel) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        if cols == 0 {
            return;
        }
        let fetch = |line: *const f32| match level {
            // SAFETY: a prefetch dereferences nothing and cannot fault,
            // and SSE is part of x86-64.
            CacheLevel::L1 => unsafe { _mm_prefetch::<_MM_HINT_T0>(line.cast()) },
            // SAFETY: as above.
            CacheLevel::L2 => unsafe { _mm_prefetch::<_MM_HINT_T1>(line.cast()) },
        };
        for i in 0..rows {
            let row = p.wrapping_add(i * rs);
            let mut j = 0;
            while j < cols {
                fetch(row.wrapping_add(j));
                j += 16;
            }
            fetch(row.wrapping_add(cols - 1));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, rs, rows, cols, level);
}

/// Returns `a * b + c` with two roundings: the scalar twin of the
/// portable kernel's multiply-add, which `wide` fuses on some targets and
/// not others, so the portable kernel spells it out as multiply then add.
#[inline]
pub(crate) fn unfused_mul_add(a: f32, b: f32, c: f32) -> f32 {
    a * b + c
}

/// Writes the transpose of a column-major `rows x cols` block of `src`
/// (element `(p, j)` at `src[j * ld + p]`) to `dst`, element `(p, j)` at
/// `dst[p * rs + j * cs]`, and writes nothing else. With `cs == 1`, the
/// copy moves blocks of 4 rows through the registers of `isa`: 16
/// columns at a time for AVX-512, 8 and then 4 for AVX-512 and AVX2. The
/// portable kernel, any other `cs`, and a CPU without the instructions
/// copy element by element, so a kernel chosen by name runs no wider
/// vector code than its own.
///
/// # Safety
///
/// Those `rows * cols` elements of `dst` are valid for writes, and no
/// other thread accesses them during the call.
///
/// # Panics
///
/// If `src` has fewer than `(cols - 1) * ld + rows` floats.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn write_transposed(
    isa: crate::dispatch::Isa,
    src: &[f32],
    ld: usize,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    rs: usize,
    cs: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        (cols - 1) * ld + rows <= src.len(),
        "write_transposed: {cols} columns of {rows} rows (stride {ld}) do not fit a source of {}",
        src.len()
    );
    #[cfg(target_arch = "x86_64")]
    let avx512 =
        isa == crate::dispatch::Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(target_arch = "x86_64")]
    let avx = (avx512 || isa == crate::dispatch::Isa::Avx2Fma)
        && std::arch::is_x86_feature_detected!("avx");
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    #[cfg(target_arch = "x86_64")]
    if cs == 1 && cols >= 16 && avx512 {
        // SAFETY: AVX-512F is available, the assertion keeps the reads
        // inside `src`, and the copy writes exactly the elements the
        // caller vouches for.
        unsafe { transpose::pack_columns_avx512(src.as_ptr(), ld, rows, cols, rs, dst) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if cs == 1 && avx {
        // SAFETY: AVX is available, the assertion keeps the reads inside
        // `src`, and the copy writes exactly the elements the caller
        // vouches for.
        unsafe { transpose::pack_columns_avx(src.as_ptr(), ld, rows, cols, rs, dst) };
        return;
    }
    for p in 0..rows {
        for j in 0..cols {
            // SAFETY: (p, j) is one of the writable elements (contract).
            unsafe { *dst.add(p * rs + j * cs) = src[j * ld + p] };
        }
    }
}

/// Writes `dst[p * nr + j] = src[j * ld + p]` for `p < kc` and
/// `j < width`, leaving the rest of `dst` as it is: the packing of a
/// panel whose columns are contiguous in the source, through
/// [`write_transposed`] with the instructions of `isa`. Panics if a range
/// falls outside its slice.
pub(crate) fn pack_columns(
    isa: crate::dispatch::Isa,
    src: &[f32],
    ld: usize,
    kc: usize,
    width: usize,
    nr: usize,
    dst: &mut [f32],
) {
    if kc == 0 || width == 0 {
        return;
    }
    assert!(
        width <= nr && (width - 1) * ld + kc <= src.len() && (kc - 1) * nr + width <= dst.len(),
        "pack_columns: {width} columns of {kc} steps (stride {ld}) do not fit a source of {} \
         and a destination of {} floats with rows of {nr}",
        src.len(),
        dst.len()
    );
    // SAFETY: the assertion keeps every (p, j) with p < kc and j < width
    // inside `dst`, which this call borrows mutably.
    unsafe { write_transposed(isa, src, ld, kc, width, dst.as_mut_ptr(), nr, 1) };
}

/// Copies row `p` of the source to `dst[p * W..(p + 1) * W]` for every
/// row of `dst`, with the widest vector moves of `isa` that this CPU runs.
/// Compiled for x86-64 in general, a fixed-size copy takes 16-byte moves:
/// eight loads and eight stores per 32-float row where AVX-512 needs two
/// of each.
pub(crate) fn copy_rows<'s, const W: usize>(
    isa: crate::dispatch::Isa,
    source: impl Fn(usize) -> &'s [f32],
    dst: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::dispatch::Isa;
        if isa == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected on this CPU just above.
            unsafe { x86_64::copy_rows_avx512::<W>(source, dst) };
            return;
        }
        if matches!(isa, Isa::Avx512 | Isa::Avx2Fma) && std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX was detected on this CPU just above.
            unsafe { x86_64::copy_rows_avx::<W>(source, dst) };
            return;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    copy_rows_with::<W>(source, dst);
}

/// Copies as [`copy_rows`] does, inlined into each caller so that it takes
/// the caller's vector width. With `W` fixed the copy is a few vector
/// moves, where a `copy_from_slice` of run-time length calls `memmove`
/// once per row.
#[inline(always)]
pub(crate) fn copy_rows_with<'s, const W: usize>(
    source: impl Fn(usize) -> &'s [f32],
    dst: &mut [f32],
) {
    for (p, row) in dst.chunks_exact_mut(W).enumerate() {
        let row: &mut [f32; W] = row.try_into().expect("chunks_exact yields W floats");
        let src: &[f32; W] = source(p).try_into().expect("the source row has W floats");
        *row = *src;
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod class_major;
pub(crate) mod portable;
#[cfg(target_arch = "x86_64")]
mod transpose;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

#[cfg(test)]
mod tests {
    use super::{pack_columns, write_transposed};
    use crate::dispatch::Isa;

    /// The instruction sets this CPU runs, each of which the copies below
    /// must get right.
    fn available() -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .filter(|isa| isa.is_available())
            .collect()
    }

    /// The transposing copy of every available instruction set writes
    /// exactly the elements a scalar loop writes and leaves the rest of
    /// the destination untouched. The cases cover widths and depths around
    /// the 16-, 8- and 4-column and 4-step blocks, padded source columns
    /// and padded destination rows.
    #[test]
    fn pack_columns_matches_scalar_copy() {
        for isa in available() {
            pack_columns_matches_scalar_copy_with(isa);
        }
    }

    fn pack_columns_matches_scalar_copy_with(isa: Isa) {
        for width in (0..=21usize).chain([31, 32, 33, 37, 48]) {
            for kc in 0..=13 {
                for ld in [kc, kc + 3] {
                    for nr in [width, width.next_multiple_of(8) + 8] {
                        let ld = ld.max(1);
                        let src: Vec<f32> =
                            (0..width * ld + kc).map(|x| x as f32 * 0.5 - 7.0).collect();
                        let len = kc * nr.max(1);
                        let mut dst = vec![f32::NAN; len];
                        let mut expected = vec![f32::NAN; len];
                        for j in 0..width {
                            for p in 0..kc {
                                expected[p * nr + j] = src[j * ld + p];
                            }
                        }
                        pack_columns(isa, &src, ld, kc, width, nr, &mut dst);
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&dst),
                            bits(&expected),
                            "{isa}: width {width} kc {kc} ld {ld} nr {nr}"
                        );
                    }
                }
            }
        }
    }

    /// Transposes blocks of every width and depth into row-major (with
    /// padded rows) and column-major destinations, writing nothing else.
    #[test]
    fn write_transposed_matches_scalar_copy() {
        for isa in available() {
            write_transposed_matches_scalar_copy_with(isa);
        }
    }

    fn write_transposed_matches_scalar_copy_with(isa: Isa) {
        for cols in (0..=21usize).chain([32, 37]) {
            for rows in 0..=33usize {
                let ld = rows + 2;
                let src: Vec<f32> = (0..cols * ld).map(|x| x as f32 * 0.25 - 3.0).collect();
                // Row-major with padded rows, then column-major.
                for (rs, cs) in [(cols + 3, 1), (1, rows + 1)] {
                    let len = rows.max(1) * rs.max(cs) + cols * cs + 4;
                    let mut dst = vec![f32::NAN; len];
                    let mut expected = dst.clone();
                    for p in 0..rows {
                        for j in 0..cols {
                            expected[p * rs + j * cs] = src[j * ld + p];
                        }
                    }
                    // SAFETY: every (p, j) lands inside `dst`, which no other
                    // thread accesses.
                    unsafe {
                        write_transposed(isa, &src, ld, rows, cols, dst.as_mut_ptr(), rs, cs)
                    };
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&dst),
                        bits(&expected),
                        "{isa}: rows {rows} cols {cols} rs {rs} cs {cs}"
                    );
                }
            }
        }
    }

    /// Each edge kernel gives the bits of its full kernel for every row
    /// count it takes, with alpha, beta, partial columns and a padded C,
    /// and writes nothing outside the tile's rows x cols part. Kernels that
    /// read B in place get B rows 7 floats longer than the tile.
    #[test]
    fn edge_kernels_match_full_kernels() {
        use crate::dispatch::Isa;
        use crate::gemm::kernel::{variants, KernelSpec, TileArgs};
        // (kernels, distance between B's steps)
        let mut specs: Vec<(&KernelSpec, usize)> = Vec::new();
        for isa in Isa::ALL.into_iter().filter(|isa| isa.is_available()) {
            for spec in variants(isa) {
                specs.push((spec, spec.nr));
                specs.extend(spec.strided_b.map(|strided| (strided, strided.nr + 7)));
            }
        }
        let kc = 37;
        for (spec, b_rs, edge) in specs
            .into_iter()
            .flat_map(|(spec, b_rs)| spec.edges.iter().map(move |edge| (spec, b_rs, *edge)))
        {
            let (mr, nr) = (spec.mr, spec.nr);
            let value = |x: usize| ((x * 7919) % 201) as f32 / 50.0 - 2.0;
            let b: Vec<f32> = (0..kc * b_rs).map(|x| value(x + 3)).collect();
            for rows in 1..=edge.mr {
                for cols in [1, nr / 2 + 1, nr] {
                    for (alpha, beta) in [(1.0, 0.0), (-0.75, 1.5)] {
                        let c_rs = nr + 5;
                        let run = |tile_mr: usize, tile: crate::gemm::kernel::TileFn| {
                            let mut a = vec![0.0f32; tile_mr * kc];
                            for p in 0..kc {
                                for i in 0..rows {
                                    a[p * tile_mr + i] = value(p * 31 + i);
                                }
                            }
                            let mut c = vec![f32::NAN; mr * c_rs];
                            for i in 0..rows {
                                for j in 0..cols {
                                    c[i * c_rs + j] = value(i * 13 + j + 1);
                                }
                            }
                            let args = TileArgs {
                                kc,
                                steps: std::ptr::null(),
                                a: a.as_ptr(),
                                a_rs: 0,
                                b: b.as_ptr(),
                                b_rs,
                                b_copy: std::ptr::null_mut(),
                                c: c.as_mut_ptr(),
                                c_rs,
                                c_cs: 1,
                                rows,
                                cols,
                                alpha,
                                beta,
                            };
                            // SAFETY: `a` contains a packed tile_mr x kc panel,
                            // `b` kc steps of nr floats, b_rs apart, and the
                            // rows x cols part of `c` is inside it. The ISA is
                            // available.
                            unsafe { tile(&args) };
                            for (at, x) in c.iter().enumerate() {
                                let inside = at / c_rs < rows && at % c_rs < cols;
                                assert!(inside || x.is_nan(), "{mr} x {nr}: wrote {at}");
                            }
                            c.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                        };
                        assert_eq!(
                            run(edge.mr, edge.packed_a),
                            run(mr, spec.packed_a),
                            "{mr} x {nr} kernel, rows {rows} cols {cols} beta {beta}"
                        );
                    }
                }
            }
        }
    }

    /// Checks that a range outside its slice panics instead of reading
    /// past it.
    #[test]
    #[should_panic(expected = "do not fit")]
    fn pack_columns_checks_ranges() {
        let src = vec![0.0f32; 8 * 16 - 1];
        let mut dst = vec![0.0f32; 16 * 8];
        pack_columns(Isa::Portable, &src, 16, 16, 8, 8, &mut dst);
    }
}
