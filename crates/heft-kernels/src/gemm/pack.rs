//! Packing of operand blocks into the micro-panel layouts of the kernels.
//!
//! Packing is safe code over the view's slice: the view was checked when it
//! was built, so every index below is in bounds.

use super::view::MatRef;
use crate::dispatch::Isa;

/// Packs one `kc x nr` micro-panel of `B[k0..k0 + kc, j0..j0 + width]`:
/// row `p` of the panel contains those columns at step `p`, and columns past
/// `width` are zero-filled. A transposing copy uses the vectors of `isa`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_b_panel(
    isa: Isa,
    b: &MatRef<'_>,
    k0: usize,
    kc: usize,
    j0: usize,
    width: usize,
    nr: usize,
    dst: &mut [f32],
) {
    let data = b.data();
    let (rs, cs) = (b.row_stride(), b.col_stride());
    if width < nr {
        dst.fill(0.0);
    }
    if cs == 1 {
        let source = |p: usize| &data[(k0 + p) * rs + j0..][..width];
        match (width, nr) {
            (8, 8) => crate::arch::copy_rows::<8>(isa, source, dst),
            (16, 16) => crate::arch::copy_rows::<16>(isa, source, dst),
            (32, 32) => crate::arch::copy_rows::<32>(isa, source, dst),
            (64, 64) => crate::arch::copy_rows::<64>(isa, source, dst),
            _ => {
                for (p, row) in dst.chunks_exact_mut(nr).enumerate() {
                    row[..width].copy_from_slice(source(p));
                }
            }
        }
    } else if rs == 1 {
        // Columns of B are contiguous: the transposing copy.
        crate::arch::pack_columns(isa, &data[j0 * cs + k0..], cs, kc, width, nr, dst);
    } else {
        for p in 0..kc {
            for j in 0..width {
                dst[p * nr + j] = data[(k0 + p) * rs + (j0 + j) * cs];
            }
        }
    }
}

/// Removes the all-zero steps of a packed `kc x nr` B micro-panel, where
/// `kc = steps.len()`, and returns the number of steps kept. The rows with
/// a nonzero value (NaN counts as nonzero) move to the front in order, and
/// their step numbers to the front of `steps`. A sparse kernel then runs
/// only those steps, skipping products that are exactly zero.
pub(crate) fn drop_zero_steps(panel: &mut [f32], nr: usize, steps: &mut [u32]) -> usize {
    let mut kept = 0;
    for p in 0..steps.len() {
        let row = p * nr..(p + 1) * nr;
        if panel[row.clone()].iter().any(|&x| x != 0.0) {
            panel.copy_within(row, kept * nr);
            // The panel depth is at most KC, far below u32::MAX.
            steps[kept] = p as u32;
            kept += 1;
        }
    }
    kept
}

/// Packs rows `i0..i0 + rows` (at most `mr`) and columns `k0..k0 + kc` of
/// A into one `mr x kc` micro-panel (element `(i, p)` at `p * mr + i`),
/// zero-filling rows past `rows`. A transposing copy uses the vectors of
/// `isa`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_a_panel(
    isa: Isa,
    a: &MatRef<'_>,
    i0: usize,
    rows: usize,
    k0: usize,
    kc: usize,
    mr: usize,
    dst: &mut [f32],
) {
    let data = a.data();
    let (rs, cs) = (a.row_stride(), a.col_stride());
    let dst = &mut dst[..kc * mr];
    if rows < mr {
        dst.fill(0.0);
    }
    if rs == 1 {
        for (p, col) in dst.chunks_exact_mut(mr).enumerate() {
            let start = (k0 + p) * cs + i0;
            col[..rows].copy_from_slice(&data[start..start + rows]);
        }
    } else if cs == 1 {
        // Rows of A are contiguous: the transposing copy of column-major
        // B panels applies, with A's rows as its columns.
        if rows > 0 {
            crate::arch::pack_columns(isa, &data[i0 * rs + k0..], rs, kc, rows, mr, dst);
        }
    } else {
        for p in 0..kc {
            for i in 0..rows {
                dst[p * mr + i] = data[(i0 + i) * rs + (k0 + p) * cs];
            }
        }
    }
}
