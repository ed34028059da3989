//! Cache block sizes and the arithmetic behind them.
//!
//! The loop nest keeps three working sets in three cache levels:
//!
//! - L1: one packed B micro-panel (`KC x NR` floats), reused by every
//!   `MR`-row micro-panel of A in the block, plus the A micro-panel being
//!   streamed (`MR x KC`).
//! - L2: the `MC x KC` block of A, reused across all `NR` panels of B.
//! - L3 (or L2 when it is large): the packed `KC x NC` block of B, reused
//!   across all `MC` blocks of A.
//!
//! When k takes several passes, B may instead be packed for all of k at
//! once (the resident order of `loops::blocked`). [`BSizing`] sets how
//! large that packed B and the B block of one pass may be. With
//! [`BSizing::HalfL2`] (AVX-512), the blocks outside the resident order
//! turn the first two levels around: one A micro-panel stays in L1 while
//! the B block's micro-panels stream from L2.
//!
//! The fixed figures assume the smallest caches common on current x86-64
//! server cores. These are 32 KiB of L1d (48 KiB on Ice Lake and later),
//! 1 MiB of L2 (2 MiB on Sapphire Rapids, 1 MiB on Zen 4), and a shared L3
//! of several MiB. The AVX-512 blocks instead take half of the L2 that the
//! CPU reports (`crate::cache::l2_bytes`).

/// Block sizes of the three outer loops, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocking {
    /// Rows of A per L2 block; a multiple of MR.
    pub mc: usize,
    /// Depth of one pass over k; also the length of the FMA chains before
    /// they are added into C.
    pub kc: usize,
    /// Columns of B per packed block, a multiple of NR: the block width,
    /// or its upper bound with [`BSizing::HalfL2`].
    pub nc: usize,
    /// The sizing of the packed B blocks.
    pub b_sizing: BSizing,
}

/// Sizing of the packed B of [`Blocking`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BSizing {
    /// Fixed sizes: blocks of NC columns per pass, and B packed for all of
    /// k (the resident order) up to `resident_b` floats, in blocks of at
    /// least `resident_min_nc` columns or all of B's columns.
    Fixed {
        resident_b: usize,
        resident_min_nc: usize,
    },
    /// Half of the core's L2 for each: the B block of one pass (NC is that
    /// over KC, at most `Blocking::nc`), and B packed for all of k, in
    /// blocks at least that wide or of all of B's columns. Outside the
    /// resident order, each A micro-panel runs against all B micro-panels
    /// of the block, and with one thread A is read in place (see
    /// `loops::blocked`).
    HalfL2,
}

/// The packed B sizes of one product, from [`Blocking::b_blocks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BBlocks {
    /// Columns of B per block of one pass, a multiple of NR.
    pub nc: usize,
    /// Largest B, in floats, packed for all of k at once.
    pub resident_b: usize,
    /// Narrowest block of B columns for the resident order, at least NR.
    pub resident_min_nc: usize,
    /// Largest B block of one pass, in floats, for which passes outside
    /// the resident order run the A micro-panels outside the B
    /// micro-panels; 0 for never.
    pub a_outer_b: usize,
}

impl Blocking {
    /// Returns the pass depth for an inner dimension of `k`: as few passes
    /// as KC allows, of equal depth, so with KC 256 `k = 784` runs 4
    /// passes of 196 rather than 3 of 256 and one of 16, whose tiles would
    /// spend more time loading and storing C than multiplying. Every code
    /// path uses this depth, so they all restart their sums at the same
    /// steps.
    pub(crate) fn kc_for(&self, k: usize) -> usize {
        if k == 0 {
            return self.kc;
        }
        k.div_ceil(k.div_ceil(self.kc))
    }

    /// Returns the packed B sizes for a kernel of `nr` columns and a B of
    /// `n` columns on this core.
    pub(crate) fn b_blocks(&self, nr: usize, n: usize) -> BBlocks {
        self.b_blocks_for(nr, n, crate::cache::l2_bytes())
    }

    /// Returns the packed B sizes for a kernel of `nr` columns and a B of
    /// `n` columns on a core with `l2_bytes` of L2.
    fn b_blocks_for(&self, nr: usize, n: usize, l2_bytes: usize) -> BBlocks {
        match self.b_sizing {
            BSizing::Fixed {
                resident_b,
                resident_min_nc,
            } => BBlocks {
                nc: self.nc,
                resident_b,
                resident_min_nc: resident_min_nc.max(nr),
                a_outer_b: 0,
            },
            BSizing::HalfL2 => {
                let half = l2_bytes / 2 / std::mem::size_of::<f32>();
                let nc = (half / self.kc / nr * nr).clamp(nr, self.nc);
                BBlocks {
                    nc,
                    resident_b: half,
                    resident_min_nc: nc.min(n.div_ceil(nr) * nr).max(nr),
                    a_outer_b: half,
                }
            }
        }
    }
}

/// Fixed sizing for L3 of the AVX2 and portable kernels: resident B up to
/// 8 MiB (2 Mi floats), a quarter of a 32 MiB L3, in blocks of at least
/// 256 columns. Narrower blocks (k above about 8,000) would pack A again
/// for too many blocks.
const FIXED_L3: BSizing = BSizing::Fixed {
    resident_b: 2 * 1024 * 1024,
    resident_min_nc: 256,
};

/// AVX-512, tile 12 x 32.
///
/// - KC = 512: the A micro-panel is 12 * 512 * 4 B = 24 KiB, half of a
///   48 KiB L1d, and stays there while the B micro-panels (512 * 32 * 4 B
///   = 64 KiB each) stream from L2 in the A-outer order of
///   `loops::blocked`: 2 B vectors and 12 A broadcasts feed 24 FMAs per
///   step of k, within 2 loads per cycle. On a 32 KiB L1d (Zen 4) the A
///   micro-panel takes three quarters of it, and there the plan's wide
///   tile ran 1024^3 1.08 and 2048^3 1.06 times as fast as this one
///   (`BENCHMARKS.md`). Against KC =
///   256, in interleaved runs with one thread (`BENCHMARKS.md`), 512^3 ran
///   4 %, 1024^3 2 % and (100, 784, 128) 2 % faster, with half as many
///   loads and stores of C. With two threads the shapes moved by -2 to
///   +2 %.
/// - MC = 192: a packed A block is 192 * 512 * 4 B = 384 KiB, which
///   with the B block below fits a 2 MiB L2. One thread reads A in place.
/// - NC: the packed B block takes half of the L2 ([`BSizing::HalfL2`]):
///   512 * 512 * 4 B = 1 MiB on the 2 MiB L2 of Sapphire Rapids and later
///   Xeon cores (NC 512) and 512 * 256 * 4 B = 512 KiB on a 1 MiB L2 (NC
///   256), at most 3072 columns. Outside the resident order, the loops
///   then hold one A micro-panel in L1 and stream the block's B
///   micro-panels from L2 (see `loops::blocked`).
/// - Resident B up to half of the L2, in blocks of at least NC columns or
///   of all of B's columns: B packed for all of k stays in L2 as well. A
///   larger B is packed one pass at a time.
///
/// Against NC = 3072 and a resident B of up to 8 MiB, in interleaved runs
/// with one thread (`BENCHMARKS.md`, with KC = 256): 1024^3 ran 8 to 18 %
/// and 2048^3 7 to 12 % faster, the other shapes of `heft bench gemm`
/// within the run's noise.
///
/// The wide 6 x 64 tile shares these sizes, so both tiles compute the
/// same sums: MC is a multiple of 6 and NC of 64. Its A micro-panel of
/// 6 * 512 * 4 B = 12 KiB stays in L1 and its B micro-panels of
/// 512 * 64 * 4 B = 128 KiB stream from L2: twice the bytes from L2 per
/// FMA of the 12 x 32 tile, for 10 loads per 24 FMAs instead of 14.
pub(crate) const AVX512: Blocking = Blocking {
    mc: 192,
    kc: 512,
    nc: 3072,
    b_sizing: BSizing::HalfL2,
};

/// AVX2, tile 6 x 16.
///
/// - KC = 256: B micro-panel 256 * 16 * 4 B = 16 KiB plus the A micro-panel
///   6 * 256 * 4 B = 6 KiB fit a 32 KiB L1d with room to spare.
/// - MC = 120: A block 120 * 256 * 4 B = 120 KiB in L2.
/// - NC = 3072: B block 3 MiB, for L3. Resident B as [`FIXED_L3`] sets.
pub(crate) const AVX2_FMA: Blocking = Blocking {
    mc: 120,
    kc: 256,
    nc: 3072,
    b_sizing: FIXED_L3,
};

/// Portable, tile 6 x 8.
///
/// - KC = 256: B micro-panel 256 * 8 * 4 B = 8 KiB plus A micro-panel
///   6 KiB in L1d.
/// - MC = 120: A block 120 KiB in L2.
/// - NC = 3072: B block 3 MiB, for L3. Resident B as for AVX2.
pub(crate) const PORTABLE: Blocking = Blocking {
    mc: 120,
    kc: 256,
    nc: 3072,
    b_sizing: FIXED_L3,
};

/// AVX-512 narrow tile 24 x 16: same KC as the wide tile, so both compute
/// identical sums. The plan takes it where it pads C less than the wide
/// tile does, as for 10, 33 or 40 columns. Its A micro-panel of
/// 24 * 512 * 4 B = 48 KiB fills a 48 KiB L1d. With one B micro-panel of
/// 512 * 16 * 4 B = 32 KiB, B stays in L1 while A streams from L2, and with
/// several both stream from L2. MC = 192 (a multiple of 24) keeps a packed
/// A block at 384 KiB. NC and the resident B as for the wide tile.
pub(crate) const AVX512_NARROW: Blocking = Blocking {
    mc: 192,
    kc: 512,
    nc: 3072,
    b_sizing: BSizing::HalfL2,
};

/// AVX2 narrow tile 12 x 8: same KC as the wide tile. B micro-panel 8 KiB,
/// A micro-panel 12 KiB in L1d, MC = 120, NC and the resident B as for
/// the wide tile.
pub(crate) const AVX2_FMA_NARROW: Blocking = Blocking {
    mc: 120,
    kc: 256,
    nc: 3072,
    b_sizing: FIXED_L3,
};

#[cfg(test)]
mod tests {
    use super::{BBlocks, AVX2_FMA, AVX512};

    #[test]
    fn half_l2_sizes_follow_l2() {
        let for_l2 = |bytes: usize| AVX512.b_blocks_for(32, 5000, bytes);
        assert_eq!(
            for_l2(2 << 20),
            BBlocks {
                nc: 512,
                resident_b: 256 << 10,
                resident_min_nc: 512,
                a_outer_b: 256 << 10,
            }
        );
        assert_eq!(for_l2(1 << 20).nc, 256);
        assert_eq!(for_l2(1 << 20).resident_b, 128 << 10);
        // A B narrower than NC is resident when all of it fits.
        assert_eq!(AVX512.b_blocks_for(32, 300, 2 << 20).resident_min_nc, 320);
        // 1.25 MiB: 320 columns, a multiple of NR.
        assert_eq!(for_l2(1280 << 10).nc, 320);
        // NC stays within one micro-panel and the upper bound.
        assert_eq!(for_l2(16 << 10).nc, 32);
        assert_eq!(for_l2(64 << 20).nc, 3072);
    }

    #[test]
    fn fixed_sizes_ignore_l2() {
        let small = AVX2_FMA.b_blocks_for(16, 70, 256 << 10);
        let large = AVX2_FMA.b_blocks_for(16, 70, 8 << 20);
        assert_eq!(small, large);
        assert_eq!(small.nc, 3072);
        assert_eq!(small.a_outer_b, 0);
        // The resident order needs blocks of 256 columns, however narrow B.
        assert_eq!(small.resident_min_nc, 256);
    }
}
