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
