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

    /// Fills `out` with sparse normal draws: for each element in order, one
    /// uniform draw, and when it is below `p` a standard normal draw becomes
    /// the element; otherwise the element is `otherwise`.
    ///
    /// The default makes exactly these scalar draws in this order, which is
    /// what a [`Scripted`] trace replays. [`SplitMix`] draws the gaps
    /// between chosen elements instead, which gives the same distribution
    /// several times faster for small `p`.
    fn fill_sparse_normal(&mut self, p: f64, otherwise: f32, out: &mut [f32]) {
        for x in out {
            *x = if self.uniform() < p {
                self.normal() as f32
            } else {
                otherwise
            };
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
/// `parallel` feature. Below it the rayon dispatch costs more than it saves:
/// on a 2-core VM, sep-CMA-ES at P = 64 (fills of 81,920 normals) and GA at
/// D = 100,352 (fills of 200,704 uniforms) ran 5 to 25 % slower per
/// iteration with 2 threads than sequentially, and sep-CMA-ES at D = 100,352
/// (6.4 million normals) 15 % faster.
const PARALLEL_FILL_MIN: usize = 1 << 20;

/// Returns whether a fill of `len` values runs in parallel chunks: long
/// enough, and a pool of more than one thread. With one thread the chunks
/// would only add a hand-off to the pool's worker.
#[cfg(feature = "parallel")]
fn parallel_fill(len: usize) -> bool {
    len >= PARALLEL_FILL_MIN && rayon::current_num_threads() > 1
}

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

    /// Returns the 8 hashed 32-bit lanes of draw `index`.
    ///
    /// Draw `index` gives a 64-bit seed `s`. Lane `l` is the murmur3 32-bit
    /// finaliser (`fmix32`) of `low(s) ^ LANE_KEYS[l]`, xored with `high(s)`.
    /// The lane loop has no branches, so the compiler runs it on vector
    /// registers.
    #[inline]
    fn octet_bits_at(key: u64, index: u64) -> [u32; UNIFORM_BLOCK] {
        let seed = Self::at(key, index);
        let (low, high) = (seed as u32, (seed >> 32) as u32);
        LANE_KEYS.map(|lane_key| fmix32(low ^ lane_key) ^ high)
    }

    /// Returns the 8 uniform draws in `[0, 1)` of draw `index`: the top 24
    /// bits of each lane of `octet_bits_at`.
    ///
    /// Not inlined: inlined into a fill loop, the compiler vectorises the
    /// 64-bit multiplies of consecutive draws, which SSE2 lacks, and the
    /// emulation made canonical PSO about 10 % slower than scalar ones.
    #[inline(never)]
    fn uniform_octet_at(key: u64, index: u64) -> [f32; UNIFORM_BLOCK] {
        Self::octet_bits_at(key, index).map(|h| (h >> 8) as f32 * UNIT_24)
    }

    /// Returns the normal block that starts at draw `first`: Box-Muller in
    /// f32 on 8 pairs of 32-bit words (see `box_muller`), cosine values
    /// in lanes 0 to 7 and sine values in lanes 8 to 15. The radii come from
    /// the lanes of draw `first` and the angles from those of draw
    /// `first + 1`.
    #[inline]
    fn normal_block_at(key: u64, first: u64) -> [f32; NORMAL_BLOCK] {
        let radius_bits = Self::octet_bits_at(key, first);
        let angle_bits = Self::octet_bits_at(key, first.wrapping_add(1));
        let mut block = [0.0f32; NORMAL_BLOCK];
        let (cos_half, sin_half) = block.split_at_mut(HASHES_PER_NORMAL_BLOCK);
        for lane in 0..HASHES_PER_NORMAL_BLOCK {
            (cos_half[lane], sin_half[lane]) = box_muller(radius_bits[lane], angle_bits[lane]);
        }
        block
    }
}

/// Returns the Box-Muller pair `(r cos a, r sin a)` of two 32-bit words.
///
/// The radius `r = sqrt(-2 ln u1)` takes `u1 = 1 - k / 2^24` with `k` the top
/// 24 bits of `radius_bits`, so `u1 > 0` and `r <= sqrt(2 ln 2^24) = 5.77`.
/// In `angle_bits` the top 2 bits pick a quadrant `q` and the next 22 bits
/// an offset `x` in `[-pi/4, pi/4)`, so the angle `a = q pi/2 + x` is uniform
/// on the circle in 2^24 steps. `ln_unit` and [`sin_cos_quarter`] are
/// polynomials built from additions, multiplications and one division, each
/// rounded once by IEEE 754, so the values are the same on every target and
/// instruction set. The body has no branches and vectorises in a loop.
#[inline]
fn box_muller(radius_bits: u32, angle_bits: u32) -> (f32, f32) {
    let u1 = 1.0 - (radius_bits >> 8) as f32 * UNIT_24;
    let radius = (-2.0 * ln_unit(u1)).sqrt();
    let quadrant = angle_bits >> 30;
    let offset = ((angle_bits >> 8) & 0x3f_ffff) as f32 * UNIT_22 - 0.5;
    let (sin, cos) = sin_cos_quarter(offset * std::f32::consts::FRAC_PI_2);
    // Rotate (cos x, sin x) by q * 90 degrees: odd quadrants swap the two,
    // quadrants 1 and 2 negate the cosine, quadrants 2 and 3 the sine.
    let (c, s) = if quadrant & 1 == 1 {
        (sin, cos)
    } else {
        (cos, sin)
    };
    let negate_c = ((quadrant + 1) >> 1) & 1;
    let negate_s = quadrant >> 1;
    (
        radius * f32::from_bits(c.to_bits() ^ (negate_c << 31)),
        radius * f32::from_bits(s.to_bits() ^ (negate_s << 31)),
    )
}

/// Returns `ln(u)` for `u` in `(0, 1]`, with an error below `2e-7 * |ln u| + 1e-7`.
///
/// `u = 2^e * m` with `m` in `[sqrt(1/2), sqrt(2))`, then `ln m = 2 atanh(t)`
/// with `t = (m - 1) / (m + 1)`, `|t| <= 0.172`, summed to the `t^9` term
/// (the first omitted term is below `3e-9`).
#[inline]
fn ln_unit(u: f32) -> f32 {
    let bits = u.to_bits();
    let mut exponent = ((bits >> 23) as i32 - 127) as f32;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let high = m > std::f32::consts::SQRT_2;
    m = if high { m * 0.5 } else { m };
    exponent += if high { 1.0 } else { 0.0 };
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = 1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 * (1.0 / 9.0))));
    exponent * std::f32::consts::LN_2 + 2.0 * t * series
}

/// Returns `(sin x, cos x)` for `|x| <= pi/4` by their Taylor series to the
/// `x^9` and `x^8` terms; the omitted terms are below `1e-8` and `3e-8`.
#[inline]
fn sin_cos_quarter(x: f32) -> (f32, f32) {
    let x2 = x * x;
    let sin = x
        * (1.0
            + x2 * (-1.0 / 6.0
                + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362_880.0)))));
    let cos = 1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40_320.0))));
    (sin, cos)
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

/// `2^-22`, the step of the 22-bit angle offset of a normal draw.
const UNIT_22: f32 = 1.0 / (1u32 << 22) as f32;

/// Normal draws per block of [`SplitMix::fill_normal`].
const NORMAL_BLOCK: usize = 16;

/// Normal pairs per block: each gives a cosine and a sine value.
const HASHES_PER_NORMAL_BLOCK: usize = NORMAL_BLOCK / 2;

/// 64-bit draws per normal block, one for the radii and one for the angles.
const DRAWS_PER_NORMAL_BLOCK: u64 = 2;

/// Returns the 64-bit draws that `SplitMix::fill_normal` takes for `len`
/// values: two per started block of 16.
fn normal_draw_count(len: usize) -> u64 {
    DRAWS_PER_NORMAL_BLOCK * len.div_ceil(NORMAL_BLOCK) as u64
}

impl RandomSource for SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        Self::at(self.key, self.counter)
    }

    /// Takes one 64-bit draw: the cosine value of `box_muller` on its
    /// high and low halves. Accurate to about 1e-7 relative and bounded by
    /// 5.77 in magnitude, like [`fill_normal`](RandomSource::fill_normal),
    /// and several times faster than the default's f64 `ln` and `cos`.
    fn normal(&mut self) -> f64 {
        let h = self.next_u64();
        f64::from(box_muller((h >> 32) as u32, h as u32).0)
    }

    fn fill_uniform(&mut self, out: &mut [f32]) {
        let (key, base) = (self.key, self.counter);
        fill_indexed(out, |i| Self::uniform_f32_at(key, base + 1 + i as u64));
        self.counter = base.wrapping_add(out.len() as u64);
    }

    /// Takes one 64-bit draw for every 8 values, see `uniform_octet_at`.
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

    /// Fills `out` block by block with `normal_block_at`:
    /// values `16 b .. 16 b + 16` come from the draws `2 b + 1` and `2 b + 2`
    /// after the counter.
    fn fill_normal(&mut self, out: &mut [f32]) {
        let (key, base) = (self.key, self.counter);
        fill_runs(out, NORMAL_BLOCK, |first_block, run| {
            let draw_at =
                |block: usize| base.wrapping_add(1 + DRAWS_PER_NORMAL_BLOCK * block as u64);
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

    /// Draws the gaps between chosen elements rather than one uniform per
    /// element: with `q = 1 - p`, the number of unchosen elements before
    /// the next chosen one is geometric, `P(gap = g) = q^g p`, and
    /// `floor(ln u / ln q)` for a uniform `u` in `(0, 1]` has that law. So
    /// the work is proportional to the chosen elements. `u = 1 - k / 2^24`
    /// comes from the lanes of `octet_bits_at`
    /// and the normals from `normal_block_at`,
    /// each block or octet drawn from the counter when the previous one is
    /// used up, so the probabilities carry the 2^-24 resolution of `u` and
    /// the 2e-7 relative error of `ln_unit`. With `p >= 1` every element
    /// is chosen and `out` gets the values of `fill_normal`; with `p <= 0`,
    /// NaN or below about 1e-45 none is, and no draw is made.
    fn fill_sparse_normal(&mut self, p: f64, otherwise: f32, out: &mut [f32]) {
        if p >= 1.0 {
            self.fill_normal(out);
            return;
        }
        out.fill(otherwise);
        // ln(1 - p), which is 0 in f32 only for p below about 1e-45, where
        // no element is chosen in practice.
        let log_q = (-p).ln_1p() as f32;
        // NaN p gives NaN, which also chooses nothing.
        if log_q.is_nan() || log_q >= 0.0 || out.is_empty() {
            return;
        }
        let key = self.key;
        let (mut gaps, mut gaps_used) = ([0.0f32; UNIFORM_BLOCK], UNIFORM_BLOCK);
        let (mut normals, mut normals_used) = ([0.0f32; NORMAL_BLOCK], NORMAL_BLOCK);
        let mut position = 0usize;
        loop {
            if gaps_used == UNIFORM_BLOCK {
                // Eight gaps at once: the lane loop has no branches, so the
                // logarithms run on vector registers. ln u <= 0 and
                // log_q < 0, so each quotient is >= 0.
                self.counter = self.counter.wrapping_add(1);
                let bits = Self::octet_bits_at(key, self.counter);
                for (gap, h) in gaps.iter_mut().zip(bits) {
                    *gap = ln_unit(1.0 - (h >> 8) as f32 * UNIT_24) / log_q;
                }
                gaps_used = 0;
            }
            // The cast truncates to the floor, saturating a huge quotient
            // to usize::MAX.
            let gap = gaps[gaps_used] as usize;
            gaps_used += 1;
            position = position.saturating_add(gap);
            if position >= out.len() {
                return;
            }
            if normals_used == NORMAL_BLOCK {
                normals = Self::normal_block_at(key, self.counter.wrapping_add(1));
                self.counter = self.counter.wrapping_add(DRAWS_PER_NORMAL_BLOCK);
                normals_used = 0;
            }
            out[position] = normals[normals_used];
            normals_used += 1;
            position += 1;
        }
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
    if parallel_fill(out.len()) {
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
    if parallel_fill(out.len()) {
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
    fn ln_unit_matches_f64() {
        // Every 24-bit radius draw the samplers can produce, strided.
        let mut worst = 0.0f64;
        for k in (0..1u32 << 24).step_by(97).chain([(1 << 24) - 1]) {
            let u = 1.0 - k as f32 * UNIT_24;
            let exact = (u as f64).ln();
            let err = (ln_unit(u) as f64 - exact).abs();
            worst = worst.max(err / (exact.abs() + 1.0));
            assert!(
                err <= 2e-7 * exact.abs() + 1e-7,
                "ln({u}): {} vs {exact}",
                ln_unit(u)
            );
        }
        assert!(worst > 0.0, "the comparison saw no rounding at all");
    }

    #[test]
    fn box_muller_matches_f64() {
        let mut r = SplitMix::new(11);
        let corners = [
            0u32,
            1 << 8,
            (1 << 30) - 1,
            1 << 30,
            1 << 31,
            3 << 30,
            u32::MAX,
        ];
        let pairs = (0..100_000)
            .map(|_| {
                let h = r.next_u64();
                ((h >> 32) as u32, h as u32)
            })
            .chain(
                corners
                    .iter()
                    .flat_map(|&a| corners.iter().map(move |&b| (a, b))),
            );
        for (radius_bits, angle_bits) in pairs {
            let u1 = 1.0 - (radius_bits >> 8) as f64 / (1u64 << 24) as f64;
            let radius = (-2.0 * u1.ln()).sqrt();
            let quadrant = (angle_bits >> 30) as f64;
            let offset = ((angle_bits >> 8) & 0x3f_ffff) as f64 / (1u64 << 22) as f64 - 0.5;
            let angle = (quadrant + offset) * std::f64::consts::FRAC_PI_2;
            let (c, s) = box_muller(radius_bits, angle_bits);
            let tolerance = 1e-6 * (1.0 + radius);
            assert!(
                (c as f64 - radius * angle.cos()).abs() <= tolerance
                    && (s as f64 - radius * angle.sin()).abs() <= tolerance,
                "words {radius_bits:#x} {angle_bits:#x}: ({c}, {s}) vs ({}, {})",
                radius * angle.cos(),
                radius * angle.sin()
            );
        }
    }

    #[test]
    fn fill_normal_follows_the_normal_cdf() {
        let mut r = SplitMix::new(5);
        let n = 400_000;
        let mut z = vec![0.0f32; n];
        r.fill_normal(&mut z);
        let scalar: Vec<f32> = (0..n).map(|_| r.normal() as f32).collect();
        // Phi(x) from tables, to 6 decimals.
        let cdf = [
            (-3.0, 0.001350),
            (-2.0, 0.022750),
            (-1.0, 0.158655),
            (-0.5, 0.308538),
            (0.0, 0.5),
            (0.5, 0.691462),
            (1.0, 0.841345),
            (2.0, 0.977250),
            (3.0, 0.998650),
        ];
        for (name, values) in [("fill_normal", &z), ("normal", &scalar)] {
            for &(x, phi) in &cdf {
                let below = values.iter().filter(|&&v| v < x).count() as f64 / n as f64;
                // Five standard deviations of a proportion over n draws.
                let tolerance = 5.0 * (phi * (1.0 - phi) / n as f64).sqrt();
                assert!(
                    (below - phi).abs() <= tolerance,
                    "{name}: P(z < {x}) = {below}, expected {phi}"
                );
            }
        }
    }

    #[test]
    fn sparse_normal_draws() {
        let len = 100_003;
        // p = 1: every element is the normal that fill_normal gives.
        let mut a = SplitMix::new(9);
        let mut b = a.clone();
        let mut sparse = vec![0.0f32; len];
        a.fill_sparse_normal(1.0, 7.0, &mut sparse);
        let mut dense = vec![0.0f32; len];
        b.fill_normal(&mut dense);
        assert_eq!(sparse, dense);
        assert_eq!(a, b);

        // p = 0, NaN or too small for f32: nothing is chosen and nothing drawn.
        for p in [0.0, f64::NAN, 1e-300] {
            a.fill_sparse_normal(p, 7.0, &mut sparse);
            assert!(sparse.iter().all(|&x| x == 7.0), "p {p}");
            assert_eq!(a, b, "p {p}");
        }

        // p = 0.25: about a quarter chosen, with standard normal values.
        a.fill_sparse_normal(0.25, 7.0, &mut sparse);
        let chosen: Vec<f64> = sparse
            .iter()
            .filter(|&&x| x != 7.0)
            .map(|&x| x as f64)
            .collect();
        let share = chosen.len() as f64 / len as f64;
        assert!((share - 0.25).abs() < 0.006, "chosen share {share}");
        let mean = chosen.iter().sum::<f64>() / chosen.len() as f64;
        let var = chosen.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / chosen.len() as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "mean {mean}, variance {var}"
        );

        // The default implementation makes scalar draws in element order.
        let mut scripted = Scripted::new([
            Draw::Uniform(0.1),
            Draw::Normal(-1.5),
            Draw::Uniform(0.9),
            Draw::Uniform(0.2),
            Draw::Normal(0.5),
        ]);
        let mut out = [0.0f32; 3];
        scripted.fill_sparse_normal(0.25, 1.0, &mut out);
        assert_eq!(out, [-1.5, 1.0, 0.5]);
        assert_eq!(scripted.remaining(), 0);
    }

    #[test]
    #[should_panic(expected = "requested uniform")]
    fn scripted_rejects_wrong_kind() {
        let mut s = Scripted::new([Draw::Normal(0.1)]);
        s.uniform();
    }
}
