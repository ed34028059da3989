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

    /// Fills `out` with standard normal draws, one [`normal`](RandomSource::normal) per element.
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

    fn normal_at(key: u64, index: u64) -> f32 {
        let u1 = 1.0 - (Self::at(key, index) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let u2 = (Self::at(key, index + 1) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
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

    fn fill_normal(&mut self, out: &mut [f32]) {
        let (key, base) = (self.key, self.counter);
        fill_indexed(out, |i| Self::normal_at(key, base + 1 + 2 * i as u64));
        self.counter = base.wrapping_add(2 * out.len() as u64);
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
        let mut normals = vec![0.0f32; PARALLEL_FILL_MIN + 5];
        a.fill_normal(&mut normals);
        for &x in &normals {
            assert_eq!(x, b.normal() as f32);
        }
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
