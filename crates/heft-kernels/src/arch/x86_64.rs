//! x86-64 microkernels: AVX-512F (6 x 64, 12 x 32 and 24 x 16) and
//! AVX2 + FMA (6 x 16 and 12 x 8).
//!
//! - AVX-512, wide tile: 6 rows by 4 vectors of 16 lanes is 24
//!   accumulators, plus 4 B vectors and 1 broadcast: 29 of the 32 zmm
//!   registers. Per step of k it issues 24 FMAs against 4 loads and 6
//!   broadcasts, 10 loads in all.
//! - AVX-512, 12 x 32: 24 accumulators, 2 B vectors and 1 broadcast, 27
//!   registers. The same 24 FMAs per step need 2 loads and 12 broadcasts,
//!   14 loads. In phases of the test host where the L1-resident kernel
//!   ran at 76 to 83 % of the FMA peak rather than 97 %, the wide tile's
//!   fewer loads made 1024^3 1.12 to 1.19 times as fast, and 1.01 to 1.03
//!   in its fast phase (BENCHMARKS.md). Where the 12 x 32 tile pads C
//!   less, as for 17 to 32 columns, the plan takes it
//!   (`loops::choose_plan`).
//! - AVX2: 6 rows by 2 vectors of 8 lanes is 12 accumulators, plus 2 B
//!   vectors and 1 broadcast: 15 of the 16 ymm registers. A larger tile
//!   would spill and run at about half speed.
//!
//! Each tile has edge kernels with fewer rows for the last row panel of a
//! block. These are 2 x 64 and 4 x 64 for the wide AVX-512 tile, 4 x 32
//! and 8 x 32 for the 12 x 32 tile, 8 x 16 for the narrow one, and 3 x 16
//! and 4 x 8 for AVX2. With fewer accumulators their FMA chains may wait
//! on the FMA latency, but they do a third to two thirds of the full
//! tile's multiply-adds. The 8-row AVX-512 edge made 128^3 3 % faster and
//! products of 20 or 32 rows 11 to 13 % (BENCHMARKS.md).
//!
//! The functions are only reached through `KernelSpec` entries that
//! `gemm::kernel::spec` returns for an available `Isa`.

use super::super::gemm::blocking;
use super::super::gemm::kernel::{EdgeKernel, KernelSpec, RowKernel};
use crate::dispatch::Isa;
use core::arch::x86_64::*;

/// Plan weight of the narrow kernels (`KernelSpec::plan_weight`): one
/// broadcast per FMA, against one per two or four in the wider tiles.
const NARROW_WEIGHT: f64 = 1.15;

/// Returns the mask of the first `n` of 16 lanes, `n <= 16`.
#[inline(always)]
fn first_lanes_512(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// All-ones lanes followed by zero lanes: the 8 lanes from `8 - n` on
/// are the mask of the first `n` lanes for `_mm256_maskload_ps`.
static LANE_MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// Returns the AVX2 mask vector of the first `n` of 8 lanes, `n <= 8`.
#[target_feature(enable = "avx2")]
#[inline]
fn first_lanes_256(n: usize) -> __m256i {
    // SAFETY: 8 - n <= 8, so the 8 lanes read lie inside LANE_MASKS.
    unsafe { _mm256_loadu_si256(LANE_MASKS.as_ptr().add(8 - n).cast()) }
}

/// Copies rows as [`super::copy_rows`] does, with AVX-512F moves.
///
/// # Safety
///
/// AVX-512F is available.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn copy_rows_avx512<'s, const W: usize>(
    source: impl Fn(usize) -> &'s [f32],
    dst: &mut [f32],
) {
    super::copy_rows_with::<W>(source, dst);
}

/// Copies rows as [`super::copy_rows`] does, with AVX moves.
///
/// # Safety
///
/// AVX is available.
#[target_feature(enable = "avx")]
pub(crate) unsafe fn copy_rows_avx<'s, const W: usize>(
    source: impl Fn(usize) -> &'s [f32],
    dst: &mut [f32],
) {
    super::copy_rows_with::<W>(source, dst);
}

/// Instantiates [`microkernel!`] with the AVX-512F operations on `__m512`.
macro_rules! avx512_tile {
    ($name:ident, packed = $packed:expr, sparse = $sparse:expr, mr = $mr:expr, nv = $nv:expr) => {
        avx512_tile!($name, packed = $packed, packed_b = true, sparse = $sparse, mr = $mr, nv = $nv);
    };
    ($name:ident, packed = $packed:expr, packed_b = $packed_b:expr, sparse = $sparse:expr, mr = $mr:expr, nv = $nv:expr) => {
        avx512_tile!($name, packed = $packed, packed_b = $packed_b, copy_b = false, sparse = $sparse, mr = $mr, nv = $nv);
    };
    ($name:ident, packed = $packed:expr, packed_b = $packed_b:expr, copy_b = $copy_b:expr, sparse = $sparse:expr, mr = $mr:expr, nv = $nv:expr) => {
        microkernel! {
            #[target_feature(enable = "avx512f")]
            fn $name;
            packed = $packed, packed_b = $packed_b, copy_b = $copy_b, sparse = $sparse, mr = $mr, nv = $nv, lanes = 16, vector = __m512,
            zero = _mm512_setzero_ps(),
            splat = |x| _mm512_set1_ps(x),
            load = |p| _mm512_loadu_ps(p),
            store = |p, v| _mm512_storeu_ps(p, v),
            fmadd = |a, b, c| _mm512_fmadd_ps(a, b, c),
            mul = |a, b| _mm512_mul_ps(a, b),
            load_first = |p, n| _mm512_maskz_loadu_ps(first_lanes_512(n), p),
            store_first = |p, n, v| _mm512_mask_storeu_ps(p, first_lanes_512(n), v),
            scalar_fma = f32::mul_add,
        }
    };
}

/// Instantiates [`microkernel!`] with the AVX2 + FMA operations on `__m256`.
macro_rules! avx2_tile {
    ($name:ident, packed = $packed:expr, sparse = $sparse:expr, mr = $mr:expr, nv = $nv:expr) => {
        microkernel! {
            #[target_feature(enable = "avx2,fma")]
            fn $name;
            packed = $packed, packed_b = true, copy_b = false, sparse = $sparse, mr = $mr, nv = $nv, lanes = 8, vector = __m256,
            zero = _mm256_setzero_ps(),
            splat = |x| _mm256_set1_ps(x),
            load = |p| _mm256_loadu_ps(p),
            store = |p, v| _mm256_storeu_ps(p, v),
            fmadd = |a, b, c| _mm256_fmadd_ps(a, b, c),
            mul = |a, b| _mm256_mul_ps(a, b),
            load_first = |p, n| _mm256_maskload_ps(p, first_lanes_256(n)),
            store_first = |p, n, v| _mm256_maskstore_ps(p, first_lanes_256(n), v),
            scalar_fma = f32::mul_add,
        }
    };
}

avx512_tile!(
    avx512_wide_packed,
    packed = true,
    sparse = false,
    mr = 6,
    nv = 4
);
avx512_tile!(
    avx512_wide_direct,
    packed = false,
    sparse = false,
    mr = 6,
    nv = 4
);
avx512_tile!(
    avx512_wide_edge2_packed,
    packed = true,
    sparse = false,
    mr = 2,
    nv = 4
);
avx512_tile!(
    avx512_wide_edge4_packed,
    packed = true,
    sparse = false,
    mr = 4,
    nv = 4
);
avx512_tile!(
    avx512_wide_packed_strided_b,
    packed = true,
    packed_b = false,
    sparse = false,
    mr = 6,
    nv = 4
);
avx512_tile!(
    avx512_wide_direct_strided_b,
    packed = false,
    packed_b = false,
    sparse = false,
    mr = 6,
    nv = 4
);
avx512_tile!(
    avx512_wide_direct_copy_b,
    packed = false,
    packed_b = false,
    copy_b = true,
    sparse = false,
    mr = 6,
    nv = 4
);
avx512_tile!(
    avx512_wide_edge2_strided_b,
    packed = true,
    packed_b = false,
    sparse = false,
    mr = 2,
    nv = 4
);
avx512_tile!(
    avx512_wide_edge4_strided_b,
    packed = true,
    packed_b = false,
    sparse = false,
    mr = 4,
    nv = 4
);
avx512_tile!(
    avx512_packed,
    packed = true,
    sparse = false,
    mr = 12,
    nv = 2
);
avx512_tile!(
    avx512_direct,
    packed = false,
    sparse = false,
    mr = 12,
    nv = 2
);
avx512_tile!(avx512_sparse, packed = true, sparse = true, mr = 12, nv = 2);
avx512_tile!(
    avx512_packed_strided_b,
    packed = true,
    packed_b = false,
    sparse = false,
    mr = 12,
    nv = 2
);
avx512_tile!(
    avx512_direct_strided_b,
    packed = false,
    packed_b = false,
    sparse = false,
    mr = 12,
    nv = 2
);
avx512_tile!(
    avx512_edge_strided_b,
    packed = true,
    packed_b = false,
    sparse = false,
    mr = 4,
    nv = 2
);
avx512_tile!(
    avx512_edge8_strided_b,
    packed = true,
    packed_b = false,
    sparse = false,
    mr = 8,
    nv = 2
);
avx512_tile!(
    avx512_narrow_packed,
    packed = true,
    sparse = false,
    mr = 24,
    nv = 1
);
avx512_tile!(
    avx512_narrow_direct,
    packed = false,
    sparse = false,
    mr = 24,
    nv = 1
);
avx512_tile!(
    avx512_edge_packed,
    packed = true,
    sparse = false,
    mr = 4,
    nv = 2
);
avx512_tile!(
    avx512_edge8_packed,
    packed = true,
    sparse = false,
    mr = 8,
    nv = 2
);
avx512_tile!(
    avx512_narrow_edge_packed,
    packed = true,
    sparse = false,
    mr = 8,
    nv = 1
);
avx2_tile!(avx2_packed, packed = true, sparse = false, mr = 6, nv = 2);
avx2_tile!(
    avx2_edge_packed,
    packed = true,
    sparse = false,
    mr = 3,
    nv = 2
);
avx2_tile!(
    avx2_narrow_edge_packed,
    packed = true,
    sparse = false,
    mr = 4,
    nv = 1
);
avx2_tile!(avx2_direct, packed = false, sparse = false, mr = 6, nv = 2);
avx2_tile!(avx2_sparse, packed = true, sparse = true, mr = 6, nv = 2);
avx2_tile!(
    avx2_narrow_packed,
    packed = true,
    sparse = false,
    mr = 12,
    nv = 1
);
avx2_tile!(
    avx2_narrow_direct,
    packed = false,
    sparse = false,
    mr = 12,
    nv = 1
);

row_kernel! {
    #[target_feature(enable = "avx512f")]
    fn avx512_row;
    nv = 8, lanes = 16, vector = __m512,
    zero = _mm512_setzero_ps(),
    splat = |x| _mm512_set1_ps(x),
    load = |p| _mm512_loadu_ps(p),
    store = |p, v| _mm512_storeu_ps(p, v),
    fmadd = |a, b, c| _mm512_fmadd_ps(a, b, c),
    mul = |a, b| _mm512_mul_ps(a, b),
}

row_kernel! {
    #[target_feature(enable = "avx2,fma")]
    fn avx2_row;
    nv = 8, lanes = 8, vector = __m256,
    zero = _mm256_setzero_ps(),
    splat = |x| _mm256_set1_ps(x),
    load = |p| _mm256_loadu_ps(p),
    store = |p, v| _mm256_storeu_ps(p, v),
    fmadd = |a, b, c| _mm256_fmadd_ps(a, b, c),
    mul = |a, b| _mm256_mul_ps(a, b),
}

/// Row kernel for AVX-512: 8 accumulators of 16 lanes, 128 columns of C.
const AVX512_ROW: RowKernel = RowKernel {
    width: 128,
    run: avx512_row,
};

/// Row kernel for AVX2: 8 accumulators of 8 lanes, 64 columns of C.
const AVX2_ROW: RowKernel = RowKernel {
    width: 64,
    run: avx2_row,
};

/// The AVX-512 narrow kernel (24 x 16): 24 accumulators, 1 B vector and 1
/// broadcast, 26 of 32 registers. For C with at most 16 columns it wastes
/// fewer lanes than 12 x 32, at the cost of one broadcast per FMA.
pub(crate) static AVX512_NARROW: KernelSpec = KernelSpec {
    isa: Isa::Avx512,
    mr: 24,
    nr: 16,
    blocking: blocking::AVX512_NARROW,
    packed_a: avx512_narrow_packed,
    direct_a: avx512_narrow_direct,
    sparse_a: None,
    row: AVX512_ROW,
    scalar_fma: f32::mul_add,
    edges: &[EdgeKernel {
        mr: 8,
        packed_a: avx512_narrow_edge_packed,
    }],
    strided_b: None,
    plan_weight: NARROW_WEIGHT,
    b_in_l1_depth: 0,
    copy_b_direct: None,
    b_in_place_rows: 0,
    b_in_place_stride: 0,
};

/// The AVX2 narrow kernel (12 x 8): 12 accumulators, 1 B vector and 1
/// broadcast, 14 of 16 registers.
pub(crate) static AVX2_FMA_NARROW: KernelSpec = KernelSpec {
    isa: Isa::Avx2Fma,
    mr: 12,
    nr: 8,
    blocking: blocking::AVX2_FMA_NARROW,
    packed_a: avx2_narrow_packed,
    direct_a: avx2_narrow_direct,
    sparse_a: None,
    row: AVX2_ROW,
    scalar_fma: f32::mul_add,
    edges: &[EdgeKernel {
        mr: 4,
        packed_a: avx2_narrow_edge_packed,
    }],
    strided_b: None,
    plan_weight: NARROW_WEIGHT,
    b_in_l1_depth: 0,
    copy_b_direct: None,
    b_in_place_rows: 0,
    b_in_place_stride: 0,
};

/// The wide AVX-512 kernel (6 x 64), the first the plan considers: 10
/// loads per 24 FMAs against 14 for 12 x 32 (see the module docs). Its B
/// micro-panel of 512 * 64 * 4 B = 128 KiB streams from L2 against an A
/// micro-panel of 6 * 512 * 4 B = 12 KiB held in L1 (the A-outer order),
/// except in passes of at most 128 steps, whose B micro-panel of 32 KiB
/// stays in a 48 KiB L1d (`KernelSpec::b_in_l1_depth`). Same blocking and
/// KC as 12 x 32, so both compute the same sums. The sparse products run
/// the 12 x 32 tile (`kernel::spec`), so this tile has no sparse entry.
/// It copies B in its first row panel's tiles (`copy_b_direct`). The
/// 12 x 32 tile does not, because its copying kernel spilled accumulators
/// to the stack. That kernel ran 0.95 to 0.98 times as fast as packing
/// first, in a run with other work on the host.
/// NOTE: the depth of 128 for the BLIS order was measured on a 48 KiB
/// L1d only. On a 32 KiB L1d its 32 KiB B micro-panel would fill the
/// whole cache.
pub(crate) static AVX512_WIDE: KernelSpec = KernelSpec {
    isa: Isa::Avx512,
    mr: 6,
    nr: 64,
    blocking: blocking::AVX512,
    packed_a: avx512_wide_packed,
    direct_a: avx512_wide_direct,
    sparse_a: None,
    row: AVX512_ROW,
    scalar_fma: f32::mul_add,
    edges: &[
        EdgeKernel {
            mr: 2,
            packed_a: avx512_wide_edge2_packed,
        },
        EdgeKernel {
            mr: 4,
            packed_a: avx512_wide_edge4_packed,
        },
    ],
    strided_b: Some(&AVX512_WIDE_STRIDED_B),
    plan_weight: 1.0,
    b_in_l1_depth: 128,
    copy_b_direct: Some(avx512_wide_direct_copy_b),
    b_in_place_rows: 126,
    b_in_place_stride: 256,
};

/// The wide AVX-512 tile and its edges reading B's micro-panels in place
/// (see [`AVX512_STRIDED_B`]).
static AVX512_WIDE_STRIDED_B: KernelSpec = KernelSpec {
    packed_a: avx512_wide_packed_strided_b,
    direct_a: avx512_wide_direct_strided_b,
    edges: &[
        EdgeKernel {
            mr: 2,
            packed_a: avx512_wide_edge2_strided_b,
        },
        EdgeKernel {
            mr: 4,
            packed_a: avx512_wide_edge4_strided_b,
        },
    ],
    strided_b: None,
    ..AVX512_WIDE
};

/// The AVX-512 kernel's table entry.
pub(crate) static AVX512: KernelSpec = KernelSpec {
    isa: Isa::Avx512,
    mr: 12,
    nr: 32,
    blocking: blocking::AVX512,
    packed_a: avx512_packed,
    direct_a: avx512_direct,
    sparse_a: Some(avx512_sparse),
    row: AVX512_ROW,
    scalar_fma: f32::mul_add,
    edges: &[
        EdgeKernel {
            mr: 4,
            packed_a: avx512_edge_packed,
        },
        EdgeKernel {
            mr: 8,
            packed_a: avx512_edge8_packed,
        },
    ],
    strided_b: Some(&AVX512_STRIDED_B),
    plan_weight: 1.0,
    b_in_l1_depth: 0,
    copy_b_direct: None,
    b_in_place_rows: 256,
    b_in_place_stride: usize::MAX,
};

/// The AVX-512 tile and its edges reading B's micro-panels in place, for
/// one thread on products of few rows, where packing B costs more than
/// its contiguous rows save (see `loops::reads_b_in_place`).
static AVX512_STRIDED_B: KernelSpec = KernelSpec {
    packed_a: avx512_packed_strided_b,
    direct_a: avx512_direct_strided_b,
    edges: &[
        EdgeKernel {
            mr: 4,
            packed_a: avx512_edge_strided_b,
        },
        EdgeKernel {
            mr: 8,
            packed_a: avx512_edge8_strided_b,
        },
    ],
    strided_b: None,
    // The tile, blocking and row kernel of the packed-B entry. The sparse
    // path packs B, so it never reaches this entry.
    sparse_a: None,
    ..AVX512
};

/// The AVX2 + FMA kernel's table entry.
pub(crate) static AVX2_FMA: KernelSpec = KernelSpec {
    isa: Isa::Avx2Fma,
    mr: 6,
    nr: 16,
    blocking: blocking::AVX2_FMA,
    packed_a: avx2_packed,
    direct_a: avx2_direct,
    sparse_a: Some(avx2_sparse),
    row: AVX2_ROW,
    scalar_fma: f32::mul_add,
    edges: &[EdgeKernel {
        mr: 3,
        packed_a: avx2_edge_packed,
    }],
    strided_b: None,
    plan_weight: 1.0,
    b_in_l1_depth: 0,
    copy_b_direct: None,
    b_in_place_rows: 0,
    b_in_place_stride: 0,
};
