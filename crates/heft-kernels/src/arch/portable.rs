//! The portable microkernel, written with `wide`: 6 x 8 tile of `f32x8`.
//!
//! Six accumulators of 8 lanes take 12 of the 16 SSE registers on baseline
//! x86-64 (where `f32x8` is two 128-bit halves) and 6 of 32 on AArch64, so
//! the tile never spills on either. The multiply-add is written as a
//! multiply then an add (two roundings) because `wide` fuses it on some
//! targets only, and the scalar edge paths must round exactly like a lane.

use super::super::gemm::blocking;
use super::super::gemm::kernel::{KernelSpec, RowKernel};
use wide::f32x8;

/// Instantiates [`microkernel!`] with the `wide` operations on `f32x8`.
macro_rules! portable_tile {
    ($name:ident, packed = $packed:expr, sparse = $sparse:expr) => {
        microkernel! {
            fn $name;
            packed = $packed, packed_b = true, copy_b = false, sparse = $sparse, mr = 6, nv = 1, lanes = 8, vector = f32x8,
            zero = f32x8::ZERO,
            splat = |x| f32x8::splat(x),
            load = |p| f32x8::new(core::ptr::read_unaligned(p as *const [f32; 8])),
            store = |p, v| core::ptr::write_unaligned(p as *mut [f32; 8], v.to_array()),
            fmadd = |a, b, c| a * b + c,
            mul = |a, b| a * b,
            load_first = |p, n| {
                let mut lanes = [0.0f32; 8];
                core::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), n);
                f32x8::new(lanes)
            },
            store_first = |p, n, v| core::ptr::copy_nonoverlapping(v.to_array().as_ptr(), p, n),
            scalar_fma = super::unfused_mul_add,
        }
    };
}

portable_tile!(tile_packed, packed = true, sparse = false);
portable_tile!(tile_sparse, packed = true, sparse = true);
portable_tile!(tile_direct, packed = false, sparse = false);

row_kernel! {
    fn row;
    nv = 4, lanes = 8, vector = f32x8,
    zero = f32x8::ZERO,
    splat = |x| f32x8::splat(x),
    load = |p| f32x8::new(core::ptr::read_unaligned(p as *const [f32; 8])),
    store = |p, v| core::ptr::write_unaligned(p as *mut [f32; 8], v.to_array()),
    fmadd = |a, b, c| a * b + c,
    mul = |a, b| a * b,
}

/// The portable kernel's table entry.
pub(crate) static PORTABLE: KernelSpec = KernelSpec {
    isa: crate::dispatch::Isa::Portable,
    mr: 6,
    nr: 8,
    blocking: blocking::PORTABLE,
    packed_a: tile_packed,
    direct_a: tile_direct,
    sparse_a: Some(tile_sparse),
    row: RowKernel {
        width: 32,
        run: row,
    },
    scalar_fma: super::unfused_mul_add,
    edges: &[],
    strided_b: None,
    plan_weight: 1.0,
    b_in_l1_depth: 0,
    copy_b_direct: None,
    b_in_place_rows: 0,
    b_in_place_stride: 0,
};
