//! Measurement of the machine's peak fused multiply-add throughput.
//!
//! The loop runs independent FMA chains, more of them than FMA latency
//! times the number of FMA ports, so nothing but FMA throughput limits it.
//! Benchmarks divide their GFLOP/s by this figure, measured in the same
//! run, to report a fraction of peak that does not depend on clock speed.

use crate::dispatch::Isa;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Independent accumulators: enough to cover 4-cycle FMA latency on two
/// ports (8) with margin, and few enough to stay in registers on AVX2 (16).
const CHAINS: usize = 12;

/// Runs `iterations` steps of `CHAINS` FMA chains with the widest vectors
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
    /// Steps of k per call: the GEMM's cache block depth KC (512 with
    /// AVX-512), cut to [`L1_TILE_DEPTH`] and to what [`L1_TILE_BYTES`]
    /// hold: 160 for the 6 x 64 AVX-512 tile.
    pub kc: usize,
    /// Single-thread GFLOP/s, 2 flops per multiply-add.
    pub gflops: f64,
}

/// The largest depth of the panels of [`microkernel_gflops`]. At 256 the
/// 12 x 32 AVX-512 panels (12 KiB of A, 32 KiB of B) fit a 48 KiB L1d
/// together. At the GEMM's KC of 512 they would not.
pub const L1_TILE_DEPTH: usize = 256;

/// The maximum size in bytes of the two panels of [`microkernel_gflops`]:
/// 44 KiB of a 48 KiB L1d. The 6 x 64 AVX-512 tile then runs 160 steps
/// (3.75 KiB of A, 40 KiB of B).
pub const L1_TILE_BYTES: usize = 44 << 10;

/// Returns the depth of the panels of [`microkernel_gflops`] for a tile of
/// `mr x nr` and a cache block depth of `kc`.
fn l1_tile_depth(mr: usize, nr: usize, kc: usize) -> usize {
    let fits = L1_TILE_BYTES / ((mr + nr) * std::mem::size_of::<f32>());
    kc.min(L1_TILE_DEPTH).min(fits).max(1)
}

/// Returns the kernel the large products of `isa` run: the first that the
/// plan prefers, the wide tile where the ISA has one.
fn large_product_kernel(isa: Isa) -> &'static crate::gemm::kernel::KernelSpec {
    crate::gemm::kernel::variants(isa)
        .next()
        .expect("every ISA has a main kernel")
}

/// Runs the packed-A microkernel of `isa` that large products run (the
/// wide 6 x 64 tile with AVX-512) `calls` times on one A micro-panel
/// (`MR x KC`) and one B micro-panel (`KC x NR`), adding into one C tile,
/// and returns its single-thread GFLOP/s. KC is the kernel's, at most
/// [`L1_TILE_DEPTH`] and at most what [`L1_TILE_BYTES`] hold.
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
    let spec = large_product_kernel(isa);
    let (mr, nr) = (spec.mr, spec.nr);
    let kc = l1_tile_depth(mr, nr, spec.blocking.kc);
    // Small values, so the sums in C stay far from overflow and from
    // subnormal numbers over millions of calls.
    // 64-byte-aligned, as the GEMM's packed panels are: from a plain
    // `Vec`, every 64-byte B load could straddle two cache lines.
    let mut a = crate::AlignedVec::zeros(mr * kc);
    a.as_mut_slice().fill(1e-3);
    let mut b = crate::AlignedVec::zeros(kc * nr);
    b.as_mut_slice().fill(1e-3);
    let mut c = crate::AlignedVec::zeros(mr * nr);

    let args = crate::gemm::kernel::TileArgs {
        kc,
        steps: std::ptr::null(),
        a: a.as_slice().as_ptr(),
        a_rs: 0,
        b: b.as_slice().as_ptr(),
        b_rs: nr,
        b_copy: std::ptr::null_mut(),
        c: c.as_mut_slice().as_mut_ptr(),
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

/// Returns the rate, in GB/s, at which `threads` threads read a buffer
/// of `bytes` bytes with the vector loads of `isa`. The buffer is rounded
/// up to whole 64-byte lines, at least one per thread, and each thread
/// reads its own contiguous part. The threads start together at a
/// barrier and each times its own reads, which leaves their start-up out
/// of the timing. A sample lasts as long as its slowest thread. The
/// result is the best of `samples` samples of at least `min_sample`
/// each: the passes over the buffer double until one sample lasts that
/// long, after an untimed pass that brings the buffer into the caches it
/// fits.
///
/// A buffer that fits a core's L1 or L2 cache reads at that cache's rate,
/// a larger one at the rate of L3 or memory. A product that must read
/// `bytes` of operands once therefore cannot finish faster than `bytes`
/// over this rate, which is what `heft bench gemm` reports as the
/// bandwidth bound of a shape. With more threads than CPUs the threads
/// take turns and the figure means little.
///
/// # Errors
///
/// [`crate::dispatch::IsaError`] if this CPU cannot run `isa`.
pub fn read_bandwidth(
    isa: Isa,
    bytes: usize,
    threads: usize,
    samples: usize,
    min_sample: Duration,
) -> Result<f64, crate::dispatch::IsaError> {
    isa.check_available()?;
    let threads = threads.max(1);
    let lines = bytes.div_ceil(64).max(threads);
    let mut buffer = crate::AlignedVec::zeros(lines * 16);
    for (i, x) in buffer.as_mut_slice().iter_mut().enumerate() {
        *x = (i % 7) as f32;
    }
    let data = buffer.as_slice();
    // Parts of whole lines, one per thread, with the remainder in the last.
    let part = |t: usize| &data[t * (lines / threads) * 16..][..part_lines(lines, threads, t) * 16];

    // Seconds of the slowest thread for `passes` passes over its part.
    let timed = |passes: usize| -> f64 {
        let start = Barrier::new(threads);
        let read = |t: usize| {
            start.wait();
            let clock = Instant::now();
            std::hint::black_box(read_passes(isa, part(t), passes));
            clock.elapsed().as_secs_f64()
        };
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..threads).map(|t| scope.spawn(move || read(t))).collect();
            let mine = read(0);
            others
                .into_iter()
                .map(|handle| handle.join().expect("a read thread does not panic"))
                .fold(mine, f64::max)
        })
    };
    timed(1);
    let min_seconds = min_sample.as_secs_f64();
    let mut passes = 1;
    while passes < 1 << 24 && timed(passes) < min_seconds {
        passes *= 2;
    }
    let best = (0..samples.max(1))
        .map(|_| timed(passes))
        .fold(f64::INFINITY, f64::min);
    Ok(lines as f64 * 64.0 * passes as f64 / best.max(1e-9) / 1e9)
}

/// Returns the lines of part `t` when `lines` lines are split over
/// `threads` parts: an equal share, and the remainder in the last part.
fn part_lines(lines: usize, threads: usize, t: usize) -> usize {
    let share = lines / threads;
    if t + 1 == threads {
        lines - share * t
    } else {
        share
    }
}

/// Reads every float of `data` `passes` times and returns the sum of the
/// last pass, so the loads cannot be removed.
fn read_passes(isa: Isa, data: &[f32], passes: usize) -> f32 {
    let mut sum = 0.0;
    for _ in 0..passes {
        sum = std::hint::black_box(read_sum(isa, std::hint::black_box(data)));
    }
    sum
}

/// Returns the sum of `data` (in an unspecified order) read with the
/// vector loads of `isa`, which the caller has checked is available.
fn read_sum(isa: Isa, data: &[f32]) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked that AVX-512F is available.
        Isa::Avx512 => unsafe { x86::sum_avx512(data) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked that AVX2 is available.
        Isa::Avx2Fma => unsafe { x86::sum_avx2(data) },
        _ => portable_sum(data),
    }
}

fn portable_sum(data: &[f32]) -> f32 {
    use wide::f32x8;
    let mut acc = [f32x8::splat(0.0); 4];
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for (a, lanes) in acc.iter_mut().zip(block.chunks_exact(8)) {
            *a += f32x8::from(<[f32; 8]>::try_from(lanes).expect("8 floats"));
        }
    }
    let tail: f32 = blocks.remainder().iter().sum();
    acc.iter().map(|a| a.reduce_add()).sum::<f32>() + tail
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

    /// Sums `data` with eight AVX-512 accumulators, 128 floats per step:
    /// enough chains to cover the add latency at two loads per cycle.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sum_avx512(data: &[f32]) -> f32 {
        let mut acc = [_mm512_setzero_ps(); 8];
        let mut blocks = data.chunks_exact(128);
        for block in &mut blocks {
            for (v, a) in acc.iter_mut().enumerate() {
                // SAFETY: `block` has 128 floats, so floats 16 * v to
                // 16 * v + 15 are inside it.
                *a = _mm512_add_ps(*a, unsafe { _mm512_loadu_ps(block.as_ptr().add(16 * v)) });
            }
        }
        let tail: f32 = blocks.remainder().iter().sum();
        let total = acc
            .iter()
            .fold(_mm512_setzero_ps(), |t, &a| _mm512_add_ps(t, a));
        _mm512_reduce_add_ps(total) + tail
    }

    /// Sums `data` with eight AVX accumulators, 64 floats per step.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sum_avx2(data: &[f32]) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut blocks = data.chunks_exact(64);
        for block in &mut blocks {
            for (v, a) in acc.iter_mut().enumerate() {
                // SAFETY: `block` has 64 floats, so floats 8 * v to
                // 8 * v + 7 are inside it.
                *a = _mm256_add_ps(*a, unsafe { _mm256_loadu_ps(block.as_ptr().add(8 * v)) });
            }
        }
        let tail: f32 = blocks.remainder().iter().sum();
        let total = acc
            .iter()
            .fold(_mm256_setzero_ps(), |t, &a| _mm256_add_ps(t, a));
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` has room for 8 floats, one ymm store.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
        lanes.iter().sum::<f32>() + tail
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

    /// Every kernel's read loop adds every float, including a tail shorter
    /// than one block: integer values keep the f32 sums exact.
    #[test]
    fn read_sum_adds_every_float() {
        for isa in Isa::ALL {
            if isa.check_available().is_err() {
                eprintln!("skipped: {isa} is not available on this CPU");
                continue;
            }
            for len in [0, 1, 15, 16, 31, 64, 65, 127, 128, 200, 1000] {
                let data: Vec<f32> = (0..len).map(|i| (i % 5) as f32).collect();
                let expected: f32 = data.iter().sum();
                assert_eq!(read_sum(isa, &data), expected, "{isa}, {len} floats");
            }
        }
    }

    /// The thread parts cover every line once.
    #[test]
    fn parts_cover_the_buffer() {
        for lines in [1, 2, 3, 7, 64, 1001] {
            for threads in 1..=4usize.min(lines) {
                let total: usize = (0..threads).map(|t| part_lines(lines, threads, t)).sum();
                assert_eq!(total, lines, "{lines} lines over {threads} threads");
            }
        }
    }

    #[test]
    fn read_bandwidth_is_positive() {
        for isa in Isa::ALL {
            if isa.check_available().is_err() {
                eprintln!("skipped: {isa} is not available on this CPU");
                assert!(read_bandwidth(isa, 4096, 1, 1, Duration::from_micros(100)).is_err());
                continue;
            }
            for threads in [1, 2] {
                let rate =
                    read_bandwidth(isa, 100_000, threads, 2, Duration::from_millis(1)).unwrap();
                assert!(rate.is_finite(), "{isa}: {rate} GB/s");
                assert!(rate > 0.0, "{isa}: {rate} GB/s");
            }
        }
    }

    #[test]
    fn microkernel_reports_its_tile() {
        for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Portable] {
            if isa.check_available().is_err() {
                eprintln!("skipped: {isa} is not available on this CPU");
                assert!(microkernel_gflops(isa, 1).is_err());
                continue;
            }
            let spec = super::large_product_kernel(isa);
            let measured = microkernel_gflops(isa, 1000).unwrap();
            assert_eq!((measured.mr, measured.nr), (spec.mr, spec.nr), "{isa}");
            let depth = spec.blocking.kc.min(L1_TILE_DEPTH);
            assert!(measured.kc <= depth, "{isa}: depth {}", measured.kc);
            let bytes = (measured.mr + measured.nr) * measured.kc * 4;
            assert!(bytes <= L1_TILE_BYTES, "{isa}: {bytes} bytes of panels");
            assert!(
                measured.kc == depth || bytes + (measured.mr + measured.nr) * 4 > L1_TILE_BYTES,
                "{isa}: depth {} could be deeper",
                measured.kc
            );
            assert!(
                measured.gflops.is_finite() && measured.gflops > 0.0,
                "{isa}: {} GFLOP/s",
                measured.gflops
            );
        }
    }
}
