//! The microkernel contract and the table of kernels per instruction set.

use super::blocking::Blocking;
use crate::dispatch::Isa;

/// Arguments of one microkernel call: an `MR x NR` tile of C.
///
/// # Contract
///
/// - `a` points at an `MR x kc` block of A. With a packed-A kernel,
///   element `(i, p)` is `a[p * MR + i]` (one contiguous column of MR values
///   per step of k). With a direct-A kernel, element `(i, p)` is
///   `a[i * a_rs + p]` (rows of A read in place). All `MR` rows must exist.
/// - `b` points at a `kc x NR` micro-panel of B: element `(p, j)` is
///   `b[p * b_rs + j]`. Packed panels have `b_rs == NR`, with columns
///   past the matrix edge zero-filled. A panel read in place has B's row
///   stride, and all its `NR` columns lie inside B.
/// - `b_copy` is null, except for the kernels that copy B
///   ([`KernelSpec::copy_b_direct`]). These read B in place and store its
///   micro-panel, packed (`NR` floats per step of k), to the `kc * NR`
///   writable floats at `b_copy`. Nothing else touches those floats during
///   the call.
/// - `c` points at element `(0, 0)` of an `MR x NR` tile, element `(i, j)`
///   at `c[i * c_rs + j * c_cs]`. The kernel writes the `rows x cols` part
///   of the tile (`1 <= rows <= MR`, `1 <= cols <= NR`), whose elements
///   must be valid to write, and touches no other element. Edge tiles use
///   masked loads and stores, or a scalar copy where `c_cs != 1`.
/// - The kernel stores `c = c * beta + (acc * alpha)` with one rounding
///   for the multiply-add, where `acc` is the fused multiply-add chain over
///   `p = 0..kc` in increasing order. When `beta == 0`, C is never read.
/// - `kc` may be 0, which stores `c * beta` (or 0 when `beta == 0`).
/// - Sparse kernels only: `steps` points at `kc` increasing step numbers,
///   and step `t` of the chain multiplies A's column `steps[t]` by row `t`
///   of the compacted B panel (see `pack::drop_zero_steps`), whose rows are
///   `NR` apart whatever `b_rs` is. Dense kernels ignore `steps`, which may
///   then be null.
#[derive(Clone, Copy)]
pub(crate) struct TileArgs {
    pub kc: usize,
    pub steps: *const u32,
    pub a: *const f32,
    pub a_rs: usize,
    pub b: *const f32,
    pub b_rs: usize,
    pub b_copy: *mut f32,
    pub c: *mut f32,
    pub c_rs: usize,
    pub c_cs: usize,
    pub rows: usize,
    pub cols: usize,
    pub alpha: f32,
    pub beta: f32,
}

/// Arguments of one row-kernel call: `NV * LANES` consecutive elements of
/// one row of C.
///
/// # Contract
///
/// - `a` points at element 0 of a row of A; element `p < kc` is at
///   `a[p * a_stride]`.
/// - `b` points at `B[0, j0]`; row `p < kc` starts at `b[p * b_rs]` and its
///   `NV * LANES` elements are contiguous.
/// - `c` points at `NV * LANES` contiguous writable elements.
/// - The kernel stores `c = c * beta + (acc * alpha)` as [`TileArgs`]
///   describes, never reading C when `beta == 0`.
#[derive(Clone, Copy)]
pub(crate) struct RowArgs {
    pub kc: usize,
    pub a: *const f32,
    pub a_stride: usize,
    pub b: *const f32,
    pub b_rs: usize,
    pub c: *mut f32,
    pub alpha: f32,
    pub beta: f32,
}

/// A row-kernel entry point and the number of C elements it covers.
#[derive(Clone, Copy)]
pub(crate) struct RowKernel {
    pub width: usize,
    pub run: unsafe fn(&RowArgs),
}

/// A microkernel entry point. Unsafe because it reads and writes through
/// the raw pointers of [`TileArgs`] and may need CPU features.
pub(crate) type TileFn = unsafe fn(&TileArgs);

/// A kernel: its register tile, its block sizes and its two entry points.
pub(crate) struct KernelSpec {
    /// The instruction set of the kernel, which its packing copies also
    /// keep to.
    pub isa: Isa,
    /// Rows of the register tile.
    pub mr: usize,
    /// Columns of the register tile (a multiple of the vector width).
    pub nr: usize,
    /// Cache block sizes.
    pub blocking: Blocking,
    /// Entry point reading A from packed micro-panels.
    pub packed_a: TileFn,
    /// Entry point reading A's rows in place (`col_stride == 1`).
    pub direct_a: TileFn,
    /// Entry point reading A from packed micro-panels at the steps listed
    /// in `TileArgs::steps`, against a B panel without its zero steps.
    /// Only the main kernel of each ISA ([`spec`]) has one: the sparse
    /// products run that kernel alone, as its NR rows of A per group of
    /// skipped steps is the granularity [`Gemm::tile`](super::Gemm::tile)
    /// documents.
    pub sparse_a: Option<TileFn>,
    /// Kernel for matrix-vector products with B's rows read in place.
    pub row: RowKernel,
    /// `a * b + c` rounded exactly as one lane of the kernel's vector
    /// multiply-add, for the scalar edge paths.
    pub scalar_fma: fn(f32, f32, f32) -> f32,
    /// Shorter tiles of the same columns for the last, partial row panel
    /// of a block, by increasing rows: that panel takes the first whose
    /// rows it fits, or the full kernel. Empty for none.
    pub edges: &'static [EdgeKernel],
    /// The same tile and edges reading B's micro-panels in place, with
    /// `TileArgs::b_rs` as the distance between steps, or `None`.
    pub strided_b: Option<&'static KernelSpec>,
    /// Entry point reading A's rows and B's micro-panel in place, which it
    /// also stores packed to `TileArgs::b_copy`. One thread runs it for the
    /// first row panel of a block, so packing B needs no pass of its own
    /// (see `loops::copies_b_in_tiles`). `None` for a kernel without one.
    pub copy_b_direct: Option<TileFn>,
    /// Maximum number of rows of A for which one thread reads B in place
    /// with `strided_b` (see `loops::reads_b_in_place`).
    pub b_in_place_rows: usize,
    /// Widest row stride of B, in floats, that `strided_b` reads in place.
    pub b_in_place_stride: usize,
    /// Factor on the plan's estimate of the multiply-adds of this kernel
    /// (`loops::choose_plan`): 1 for the tiles whose FMAs share their
    /// loads best, more for a tile that loads more per FMA.
    pub plan_weight: f64,
    /// Deepest pass (steps of k) that runs in the BLIS order, each B
    /// micro-panel held in L1 while the block's A micro-panels stream past
    /// it, where the sizing would otherwise hold one A micro-panel in L1
    /// (`Block::a_outer`); 0 for none.
    pub b_in_l1_depth: usize,
}

/// A packed-A kernel of `mr` rows and the full kernel's columns and
/// chains: rows of at most `mr` then cost `mr` rows of multiply-adds, not
/// the full kernel's `MR` (a 4-row panel of the 12-row AVX-512 tile cost
/// three times its work). Each element is the same chain, so the bits do
/// not change.
#[derive(Clone, Copy)]
pub(crate) struct EdgeKernel {
    /// Rows of the tile, fewer than the full kernel's.
    pub mr: usize,
    /// Entry point reading A from packed micro-panels of `mr` rows.
    pub packed_a: TileFn,
}

impl KernelSpec {
    /// Checks the invariants the loop nest relies on. Compiles to nothing
    /// in release builds.
    fn debug_check(&self) -> &Self {
        debug_assert!(self.mr >= 1 && self.nr >= 1);
        debug_assert!(self.mr <= MAX_TILE_ROWS && self.mr * self.nr <= MAX_TILE);
        debug_assert!(self.blocking.mc.is_multiple_of(self.mr));
        debug_assert!(self.blocking.nc.is_multiple_of(self.nr));
        debug_assert!(self.blocking.kc >= 1);
        debug_assert!(self.edges.is_sorted_by_key(|edge| edge.mr));
        debug_assert!(self
            .edges
            .iter()
            .all(|edge| edge.mr >= 1 && edge.mr < self.mr));
        // Checked without allocating: products in steady state allocate
        // nothing, in debug builds too.
        debug_assert!(self.strided_b.is_none_or(|other| {
            (other.mr, other.nr, other.blocking.kc, other.b_in_l1_depth)
                == (self.mr, self.nr, self.blocking.kc, self.b_in_l1_depth)
                && other.edges.len() == self.edges.len()
                && other
                    .edges
                    .iter()
                    .zip(self.edges)
                    .all(|(a, b)| a.mr == b.mr)
        }));
        self
    }
}

/// Largest `MR` of any kernel.
pub(crate) const MAX_TILE_ROWS: usize = 24;
/// Largest `MR * NR` of any kernel: 12 x 32 and 6 x 64 with AVX-512.
pub(crate) const MAX_TILE: usize = 12 * 32;

/// Returns the wide kernel of `isa`, half as tall as [`spec`]'s and
/// twice as wide, for products with many columns, or `None` if the ISA
/// has none.
///
/// It computes the same sums in the same order as [`spec`] (same KC), so
/// choosing it by shape never changes a result.
pub(crate) fn wide(isa: Isa) -> Option<&'static KernelSpec> {
    let spec = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &crate::arch::x86_64::AVX512_WIDE,
        _ => return None,
    };
    debug_assert_eq!(spec.blocking.kc, self::spec(isa).blocking.kc);
    Some(spec.debug_check())
}

/// Returns the narrow kernel of `isa`, one vector wide and twice as tall,
/// for products with few columns, or `None` if the ISA has none.
///
/// It computes the same sums in the same order as [`spec`] (same KC), so
/// choosing it by shape never changes a result.
pub(crate) fn narrow(isa: Isa) -> Option<&'static KernelSpec> {
    let spec = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &crate::arch::x86_64::AVX512_NARROW,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => &crate::arch::x86_64::AVX2_FMA_NARROW,
        _ => return None,
    };
    debug_assert_eq!(spec.blocking.kc, self::spec(isa).blocking.kc);
    Some(spec.debug_check())
}

/// Returns the kernels of `isa` that a dense product chooses from by
/// shape, in the plan's order of preference: the wide tile where the ISA
/// has one, the main tile ([`spec`]), then the narrow tile where the ISA
/// has one. All of them compute the same sums.
pub(crate) fn variants(isa: Isa) -> impl Iterator<Item = &'static KernelSpec> {
    wide(isa).into_iter().chain([spec(isa)]).chain(narrow(isa))
}

/// Returns the kernel table entry for `isa`.
///
/// The caller guarantees `isa` is available on this CPU: [`Isa`] values
/// reach here only through `Gemm`, whose constructors check availability.
pub(crate) fn spec(isa: Isa) -> &'static KernelSpec {
    let spec = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &crate::arch::x86_64::AVX512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => &crate::arch::x86_64::AVX2_FMA,
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx512 | Isa::Avx2Fma => &crate::arch::portable::PORTABLE,
        Isa::Portable => &crate::arch::portable::PORTABLE,
    };
    debug_assert!(spec.sparse_a.is_some());
    spec.debug_check()
}
