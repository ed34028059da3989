//! Measurement of the machine's peak fused multiply-add throughput.
//!
//! The loop runs independent FMA chains, more of them than FMA latency
//! times the number of FMA ports, so nothing but FMA throughput limits it.
//! Benchmarks divide their GFLOP/s by this figure, measured in the same
//! run, to report a fraction of peak that does not depend on clock speed.

use crate::dispatch::Isa;
use std::time::Instant;

/// Independent accumulators: enough to cover 4-cycle FMA latency on two
/// ports (8) with margin, and few enough to stay in registers on AVX2 (16).
const CHAINS: usize = 12;

/// Runs `iterations` steps of [`CHAINS`] FMA chains with the widest vectors
/// of `isa` and returns single-thread GFLOP/s (2 flops per lane per FMA).
///
/// # Errors
///
/// [`crate::dispatch::IsaError`] if this CPU cannot run `isa`.
pub fn peak_gflops(isa: Isa, iterations: u64) -> Result<f64, crate::dispatch::IsaError> {
    isa.check_available()?;
    let start = Instant::now();
    let (sum, lanes) = match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: availability of AVX-512F was checked above.
        Isa::Avx512 => (unsafe { x86::chains_avx512(iterations) }, 16),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: availability of AVX2 and FMA was checked above.
        Isa::Avx2Fma => (unsafe { x86::chains_avx2(iterations) }, 8),
        _ => (portable_chains(iterations), 8),
    };
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    let flops = iterations as f64 * CHAINS as f64 * lanes as f64 * 2.0;
    Ok(flops / seconds / 1e9)
}

/// The result of [`microkernel_gflops`]: the register tile measured and its
/// single-thread throughput.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MicrokernelThroughput {
    /// Rows of the register tile.
    pub mr: usize,
    /// Columns of the register tile.
    pub nr: usize,
    /// Steps of k per call: the kernel's cache block depth KC.
    pub kc: usize,
    /// Single-thread GFLOP/s, 2 flops per multiply-add.
    pub gflops: f64,
}

/// Runs the packed-A microkernel of `isa` `calls` times on one A
/// micro-panel (`MR x KC`) and one B micro-panel (`KC x NR`), adding into
/// one C tile, and returns its single-thread GFLOP/s.
///
/// The panels stay in the L1 cache, so there are no cache misses, packing
/// or edge tiles. This is the ceiling of the GEMM on this core for the
/// kernel's instruction mix, which loads each B vector and broadcasts each
/// A element from memory at every step of k. A GEMM's fraction of
/// [`peak_gflops`] cannot exceed this kernel's.
///
/// # Errors
///
/// [`crate::dispatch::IsaError`] if this CPU cannot run `isa`.
pub fn microkernel_gflops(
    isa: Isa,
    calls: u64,
) -> Result<MicrokernelThroughput, crate::dispatch::IsaError> {
    isa.check_available()?;
    let spec = crate::gemm::kernel::spec(isa);
    let (mr, nr, kc) = (spec.mr, spec.nr, spec.blocking.kc);
    // Small values, so the sums in C stay far from overflow and from
    // subnormal numbers over millions of calls.
    let a = vec![1e-3f32; mr * kc];
    let b = vec![1e-3f32; kc * nr];
    let mut c = vec![0.0f32; mr * nr];

    let args = crate::gemm::kernel::TileArgs {
        kc,
        steps: std::ptr::null(),
        a: a.as_ptr(),
        a_rs: 0,
        b: b.as_ptr(),
        c: c.as_mut_ptr(),
        c_rs: nr,
        c_cs: 1,
        rows: mr,
        cols: nr,
        alpha: 1.0,
        beta: 1.0,
    };

    let start = Instant::now();
    for _ in 0..calls {
        // SAFETY: `a` holds the packed MR x KC panel, `b` the KC x NR panel
        // and `c` the contiguous MR x NR tile (the `TileArgs` contract), all
        // alive for the loop; the ISA was checked above.
        unsafe { (spec.packed_a)(std::hint::black_box(&args)) };
    }
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box(&c);
    let flops = 2.0 * calls as f64 * (mr * nr * kc) as f64;
    Ok(MicrokernelThroughput {
        mr,
        nr,
        kc,
        gflops: flops / seconds / 1e9,
    })
}

fn portable_chains(iterations: u64) -> f32 {
    use wide::f32x8;
    let mut acc = [f32x8::splat(0.0); CHAINS];
    let x = f32x8::splat(std::hint::black_box(0.999_999));
    let y = f32x8::splat(std::hint::black_box(1e-7));
    for _ in 0..iterations {
        for a in acc.iter_mut() {
            *a = a.mul_add(x, y);
        }
    }
    acc.iter().map(|a| a.reduce_add()).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use core::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn chains_avx512(iterations: u64) -> f32 {
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        let x = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let y = _mm512_set1_ps(std::hint::black_box(1e-7));
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        let mut total = 0.0;
        for a in acc {
            total += _mm512_reduce_add_ps(a);
        }
        total
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn chains_avx2(iterations: u64) -> f32 {
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        let x = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let y = _mm256_set1_ps(std::hint::black_box(1e-7));
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        let mut lanes = [0.0f32; 8];
        let mut total = 0.0;
        for a in acc {
            // SAFETY: `lanes` holds 8 floats, the width of one ymm store.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), a) };
            total += lanes.iter().sum::<f32>();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microkernel_reports_its_tile() {
        for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Portable] {
            if isa.check_available().is_err() {
                eprintln!("skipped: {isa} is not available on this CPU");
                assert!(microkernel_gflops(isa, 1).is_err());
                continue;
            }
            let spec = crate::gemm::kernel::spec(isa);
            let measured = microkernel_gflops(isa, 1000).unwrap();
            assert_eq!((measured.mr, measured.nr), (spec.mr, spec.nr), "{isa}");
            assert_eq!(measured.kc, spec.blocking.kc, "{isa}");
            assert!(
                measured.gflops.is_finite() && measured.gflops > 0.0,
                "{isa}: {} GFLOP/s",
                measured.gflops
            );
        }
    }
}
