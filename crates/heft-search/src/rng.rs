//! Random sources.
//!
//! Every algorithm draws through the [`RandomSource`] trait. The default
//! source, [`SplitMix`], is counter-based: draw number `n` is a hash of the
//! key and `n`, so a long buffer can be filled in parallel chunks and still
//! hold exactly the values a sequential fill would produce. Algorithms make
//! their draws in a fixed order on one thread, which is why a run depends on
//! its seed and not on the thread count.
//!
//! [`Scripted`] replays a list of draws and checks that each draw is of the
//! expected kind. Tests use it to compare an update step by step with values
//! computed by hand.

use std::collections::VecDeque;
use wide::f32x8;

/// A source of random draws.
///
/// Only [`next_u64`](RandomSource::next_u64) is required. The provided
/// methods define how every other draw is derived from it, so two sources
/// that return the same `u64` stream give the same draws.
pub trait RandomSource: Send {
    /// Returns the next 64 random bits.
    fn next_u64(&mut self) -> u64;

    /// Returns a uniform draw in `[0, 1)` with 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Returns a standard normal draw (Box-Muller, cosine branch, two uniform draws).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Returns an integer draw in `0..n`. `n` must be at least 1.
    fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// Fills `out` with uniform draws in `[0, 1)`, one draw per element.
    fn fill_uniform(&mut self, out: &mut [f32]) {
        for x in out {
            *x = (self.uniform() as f32).min(ONE_BELOW_F32);
        }
    }

    /// Fills `out` with uniform draws in `[0, 1)` for the canonical modes.
    ///
    /// The default is [`fill_uniform`](RandomSource::fill_uniform). A source
    /// may derive the values differently (with fewer random bits each, for
    /// speed), so the stream may differ from that of `fill_uniform`.
    fn fill_uniform_fast(&mut self, out: &mut [f32]) {
        self.fill_uniform(out);
    }

    /// Fills `out` with standard normal draws.
    ///
    /// The default takes one [`normal`](RandomSource::normal) per element.
    /// [`SplitMix`] uses a faster f32 sampler with other values.
    fn fill_normal(&mut self, out: &mut [f32]) {
        for x in out {
            *x = self.normal() as f32;
        }
    }

    /// Returns the state to store in a checkpoint, or `None` if the source cannot be saved.
    fn state(&self) -> Option<[u64; 2]> {
        None
    }

    /// Restores a state returned by [`state`](RandomSource::state).
    /// Returns `false` if the source cannot be restored.
    fn set_state(&mut self, state: [u64; 2]) -> bool {
        let _ = state;
        false
    }
}

/// The largest f32 below 1.
pub(crate) const ONE_BELOW_F32: f32 = 1.0 - f32::EPSILON / 2.0;

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Buffers at least this long are filled in parallel chunks with the
/// `parallel` feature. Below it the rayon dispatch costs more than it saves.
const PARALLEL_FILL_MIN: usize = 1 << 16;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The default random source: SplitMix64 (Steele, Lea and Flood, 2014) used
/// as a counter-based generator.
///
/// Draw `n` is `mix64(key + n * golden_gamma)`. Because any draw can be
/// computed from its index, [`fill_uniform`](RandomSource::fill_uniform) and
/// [`fill_normal`](RandomSource::fill_normal) split large buffers across
/// threads and still return the values of a sequential fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix {
    key: u64,
    counter: u64,
}

impl SplitMix {
    /// Creates a source from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix {
            key: mix64(seed ^ 0x6865_6674_7365_6172),
            counter: 0,
        }
    }

    #[inline]
    fn at(key: u64, index: u64) -> u64 {
        mix64(key.wrapping_add(index.wrapping_mul(GOLDEN_GAMMA)))
    }

    fn uniform_f32_at(key: u64, index: u64) -> f32 {
        (Self::at(key, index) >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Returns the two 24-bit uniform draws in `[0, 1)` of draw `index`:
    /// bits 40 to 63, then bits 16 to 39.
    #[inline]
    fn uniform_pair_at(key: u64, index: u64) -> [f32; 2] {
        let h = Self::at(key, index);
        [
            (h >> 40) as f32 * UNIT_24,
            ((h >> 16) & 0xff_ffff) as f32 * UNIT_24,
        ]
    }

    /// Returns the 8 uniform draws in `[0, 1)` of draw `index`, 24 bits each.
    ///
    /// Draw `index` gives a 64-bit seed `s`. Lane `l` is the murmur3 32-bit
    /// finaliser (`fmix32`) of `low(s) ^ LANE_KEYS[l]`, xored with `high(s)`,
    /// and its top 24 bits make the value. The lane loop has no branches, so
    /// the compiler runs it on vector registers.
    #[inline]
    fn uniform_octet_at(key: u64, index: u64) -> [f32; UNIFORM_BLOCK] {
        let seed = Self::at(key, index);
        let (low, high) = (seed as u32, (seed >> 32) as u32);
        let mut values = [0.0f32; UNIFORM_BLOCK];
        for (value, &lane_key) in values.iter_mut().zip(&LANE_KEYS) {
            let h = fmix32(low ^ lane_key) ^ high;
            *value = (h >> 8) as f32 * UNIT_24;
        }
        values
    }

    /// Returns the normal block that starts at draw `first`: Box-Muller in
    /// f32 on the draws `first..first + 8`, cosine values in lanes 0 to 7
    /// and sine values in lanes 8 to 15.
    ///
    /// The radius takes `u1 = 1 - k / 2^24` from bits 40 to 63 (so `u1 > 0`
    /// and `|z| <= sqrt(2 ln 2^24) = 5.77`) and the angle `2 pi u2` from bits
    /// 16 to 39. `ln` and `sin_cos` are the polynomial approximations of
    /// `wide` 1.7, which use fused multiply-adds only when the build enables
    /// FMA, so the last bits can differ between builds, never between runs.
    fn normal_block_at(key: u64, first: u64) -> [f32; NORMAL_BLOCK] {
        let mut u1 = [0.0f32; HASHES_PER_NORMAL_BLOCK];
        let mut angle = [0.0f32; HASHES_PER_NORMAL_BLOCK];
        for (lane, (a, b)) in u1.iter_mut().zip(&mut angle).enumerate() {
            let [high, low] = Self::uniform_pair_at(key, first.wrapping_add(lane as u64));
            *a = 1.0 - high;
            *b = std::f32::consts::TAU * low;
        }
        let radius = (f32x8::splat(-2.0) * f32x8::from(u1).ln()).sqrt();
        let (sin, cos) = f32x8::from(angle).sin_cos();
        let mut block = [0.0f32; NORMAL_BLOCK];
        let (cos_half, sin_half) = block.split_at_mut(HASHES_PER_NORMAL_BLOCK);
        cos_half.copy_from_slice(&(radius * cos).to_array());
        sin_half.copy_from_slice(&(radius * sin).to_array());
        block
    }
}

/// Uniform draws per 64-bit draw in [`SplitMix::fill_uniform_fast`].
const UNIFORM_BLOCK: usize = 8;

/// The multiples 1 to 8 of the 32-bit golden ratio `0x9e37_79b9`, which
/// separate the lanes of [`SplitMix::uniform_octet_at`].
const LANE_KEYS: [u32; UNIFORM_BLOCK] = [
    0x9e37_79b9,
    0x3c6e_f372,
    0xdaa6_6d2b,
    0x78dd_e6e4,
    0x1715_609d,
    0xb54c_da56,
    0x5384_540f,
    0xf1bb_cdc8,
];

/// The 32-bit finaliser of MurmurHash3 (Appleby), a bijection with full avalanche.
#[inline]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// `2^-24`, the step of a 24-bit uniform draw.
const UNIT_24: f32 = 1.0 / (1u32 << 24) as f32;

/// Normal draws per block of [`SplitMix::fill_normal`].
const NORMAL_BLOCK: usize = 16;

/// 64-bit draws per normal block: each gives a cosine and a sine value.
const HASHES_PER_NORMAL_BLOCK: usize = NORMAL_BLOCK / 2;

/// Returns the 64-bit draws that `SplitMix::fill_normal` takes for `len` values.
/// A last block of at most 8 values uses its cosine lanes only.
fn normal_draw_count(len: usize) -> u64 {
    (HASHES_PER_NORMAL_BLOCK * (len / NORMAL_BLOCK)
        + (len % NORMAL_BLOCK).min(HASHES_PER_NORMAL_BLOCK)) as u64
}

impl RandomSource for SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        Self::at(self.key, self.counter)
    }

    fn fill_uniform(&mut self, out: &mut [f32]) {
        let (key, base) = (self.key, self.counter);
        fill_indexed(out, |i| Self::uniform_f32_at(key, base + 1 + i as u64));
        self.counter = base.wrapping_add(out.len() as u64);
    }

    /// Takes one 64-bit draw for every 8 values, see [`uniform_octet_at`](SplitMix::uniform_octet_at).
    fn fill_uniform_fast(&mut self, out: &mut [f32]) {
        let (key, base) = (self.key, self.counter);
        fill_runs(out, UNIFORM_BLOCK, |first_block, run| {
            let first = base.wrapping_add(1 + first_block as u64);
            let last = (run.len() / UNIFORM_BLOCK) as u64;
            let mut blocks = run.chunks_exact_mut(UNIFORM_BLOCK);
            for (k, values) in blocks.by_ref().enumerate() {
                values.copy_from_slice(&Self::uniform_octet_at(key, first.wrapping_add(k as u64)));
            }
            let rest = blocks.into_remainder();
            if !rest.is_empty() {
                let uniforms = Self::uniform_octet_at(key, first.wrapping_add(last));
                rest.copy_from_slice(&uniforms[..rest.len()]);
            }
        });
        self.counter = base.wrapping_add(out.len().div_ceil(UNIFORM_BLOCK) as u64);
    }

    /// Fills `out` block by block with [`normal_block_at`](SplitMix::normal_block_at):
    /// values `16 b .. 16 b + 16` come from the draws `8 b + 1 .. 8 b + 9`
    /// after the counter.
    fn fill_normal(&mut self, out: &mut [f32]) {
        let (key, base) = (self.key, self.counter);
        fill_runs(out, NORMAL_BLOCK, |first_block, run| {
            let draw_at =
                |block: usize| base.wrapping_add(1 + (HASHES_PER_NORMAL_BLOCK * block) as u64);
            let last = first_block + run.len() / NORMAL_BLOCK;
            let mut blocks = run.chunks_exact_mut(NORMAL_BLOCK);
            for (k, values) in blocks.by_ref().enumerate() {
                values.copy_from_slice(&Self::normal_block_at(key, draw_at(first_block + k)));
            }
            let rest = blocks.into_remainder();
            if !rest.is_empty() {
                let normals = Self::normal_block_at(key, draw_at(last));
                rest.copy_from_slice(&normals[..rest.len()]);
            }
        });
        self.counter = base.wrapping_add(normal_draw_count(out.len()));
    }

    fn state(&self) -> Option<[u64; 2]> {
        Some([self.key, self.counter])
    }

    fn set_state(&mut self, state: [u64; 2]) -> bool {
        self.key = state[0];
        self.counter = state[1];
        true
    }
}

/// Calls `fill(first_block, run)` on runs of `out` that start at a block
/// boundary (blocks of `block_len` elements): the whole buffer, or parallel
/// chunks of it for long buffers. Each call fills `run` with the values of
/// the blocks `first_block..`, so the result does not depend on the split.
fn fill_runs(out: &mut [f32], block_len: usize, fill: impl Fn(usize, &mut [f32]) + Sync) {
    const CHUNK: usize = 1 << 14;
    debug_assert_eq!(CHUNK % block_len, 0);
    #[cfg(feature = "parallel")]
    if out.len() >= PARALLEL_FILL_MIN {
        use rayon::prelude::*;
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| fill(c * (CHUNK / block_len), chunk));
        return;
    }
    fill(0, out);
}

fn fill_indexed(out: &mut [f32], value: impl Fn(usize) -> f32 + Sync) {
    #[cfg(feature = "parallel")]
    if out.len() >= PARALLEL_FILL_MIN {
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 14;
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (k, x) in chunk.iter_mut().enumerate() {
                    *x = value(c * CHUNK + k);
                }
            });
        return;
    }
    let _ = PARALLEL_FILL_MIN;
    for (i, x) in out.iter_mut().enumerate() {
        *x = value(i);
    }
}

/// One scripted draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Draw {
    /// The value of the next [`RandomSource::uniform`] call.
    Uniform(f64),
    /// The value of the next [`RandomSource::normal`] call.
    Normal(f64),
    /// The value of the next [`RandomSource::below`] call.
    Below(usize),
}

/// A random source that replays a script of draws, for tests.
///
/// # Panics
///
/// Every method panics when the script is exhausted or when the next
/// scripted draw is of another kind than the one requested. Both mean the
/// algorithm's draw order differs from the script, which is what a trace
/// test is there to detect.
#[derive(Debug, Clone, Default)]
pub struct Scripted {
    draws: VecDeque<Draw>,
    taken: usize,
}

impl Scripted {
    /// Creates a source that returns `draws` in order.
    pub fn new(draws: impl IntoIterator<Item = Draw>) -> Self {
        Scripted {
            draws: draws.into_iter().collect(),
            taken: 0,
        }
    }

    /// Returns the number of draws not yet taken.
    pub fn remaining(&self) -> usize {
        self.draws.len()
    }

    fn take(&mut self, kind: &str) -> Draw {
        let index = self.taken;
        self.taken += 1;
        match self.draws.pop_front() {
            Some(d) => d,
            None => panic!(
                "scripted random source exhausted at draw {index} (a {kind} draw was requested)"
            ),
        }
    }
}

impl RandomSource for Scripted {
    fn next_u64(&mut self) -> u64 {
        panic!(
            "scripted random source cannot return raw bits; script uniform, normal or below draws"
        )
    }

    fn uniform(&mut self) -> f64 {
        match self.take("uniform") {
            Draw::Uniform(u) => u,
            other => panic!(
                "draw {} requested uniform but the script has {other:?}",
                self.taken - 1
            ),
        }
    }

    fn normal(&mut self) -> f64 {
        match self.take("normal") {
            Draw::Normal(z) => z,
            other => panic!(
                "draw {} requested normal but the script has {other:?}",
                self.taken - 1
            ),
        }
    }

    fn below(&mut self, n: usize) -> usize {
        match self.take("below") {
            Draw::Below(k) if k < n => k,
            other => panic!(
                "draw {} requested below({n}) but the script has {other:?}",
                self.taken - 1
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_fill_matches_sequential() {
        let mut a = SplitMix::new(7);
        let mut b = a.clone();
        let mut buf = vec![0.0f32; PARALLEL_FILL_MIN + 123];
        a.fill_uniform(&mut buf);
        for (i, &x) in buf.iter().enumerate() {
            let expected = (b.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32);
            assert_eq!(x, expected, "element {i}");
        }
        assert_eq!(a, b);
    }

    #[test]
    fn splitmix_fast_fills_match_blockwise() {
        let mut whole = SplitMix::new(7);
        let mut pieces = whole.clone();
        let len = PARALLEL_FILL_MIN + 13;
        let mut buf = vec![0.0f32; len];
        whole.fill_uniform_fast(&mut buf);
        let mut piece = [0.0f32; UNIFORM_BLOCK];
        for (b, chunk) in buf.chunks(UNIFORM_BLOCK).enumerate() {
            pieces.fill_uniform_fast(&mut piece[..chunk.len()]);
            assert_eq!(chunk, &piece[..chunk.len()], "uniform block {b}");
        }
        assert_eq!(whole, pieces);

        let mut normals = vec![0.0f32; len];
        whole.fill_normal(&mut normals);
        let mut piece = [0.0f32; NORMAL_BLOCK];
        for (b, chunk) in normals.chunks(NORMAL_BLOCK).enumerate() {
            pieces.fill_normal(&mut piece[..chunk.len()]);
            assert_eq!(chunk, &piece[..chunk.len()], "normal block {b}");
        }
        assert_eq!(whole, pieces);
        assert_eq!(whole.next_u64(), pieces.next_u64());
    }

    #[test]
    fn splitmix_fast_fill_moments() {
        let mut r = SplitMix::new(3);
        let n = 200_003;
        let mut z = vec![0.0f32; n];
        r.fill_normal(&mut z);
        let mean = z.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = z.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let kurtosis = z.iter().map(|&x| (x as f64 - mean).powi(4)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        assert!((kurtosis - 3.0).abs() < 0.1, "fourth moment {kurtosis}");
        assert!(
            z.iter().all(|x| x.abs() <= 5.8),
            "a value beyond the 5.77 bound"
        );

        let mut u = vec![0.0f32; n];
        r.fill_uniform_fast(&mut u);
        let mean_u = u.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.005, "uniform mean {mean_u}");
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn splitmix_uniform_moments() {
        let mut r = SplitMix::new(1);
        let n = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let z = r.normal();
            s += z;
            s2 += z * z;
        }
        assert!((s / n as f64).abs() < 0.01);
        assert!((s2 / n as f64 - 1.0).abs() < 0.02);
        let mean_u: f64 = (0..n).map(|_| r.uniform()).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.005);
    }

    #[test]
    #[should_panic(expected = "requested uniform")]
    fn scripted_rejects_wrong_kind() {
        let mut s = Scripted::new([Draw::Normal(0.1)]);
        s.uniform();
    }
}
