//! Helpers shared by the kernel tests: a seeded generator and the list of
//! kernels this CPU can run.

#![allow(dead_code)]

use heft_kernels::dispatch::Isa;
use heft_kernels::gemm::Gemm;

/// SplitMix64: a tiny seeded generator, so tests need no dependency and
/// every failure replays from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn float(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// A small integer in [-4, 4], so sums of up to thousands of products
    /// are exact in f32.
    pub fn small_int(&mut self) -> f32 {
        (self.next_u64() % 9) as f32 - 4.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Returns a sequential GEMM for every kernel this CPU runs, printing a
/// line for each kernel it cannot run.
pub fn kernels() -> Vec<Gemm> {
    Isa::ALL
        .into_iter()
        .filter_map(|isa| match Gemm::with_isa(isa) {
            Ok(gemm) => Some(gemm.sequential()),
            Err(err) => {
                report_skip(&format!("skipping kernel {isa}: {err}"));
                None
            }
        })
        .collect()
}

/// Prints a line that the test harness does not capture, so a skipped
/// kernel shows in the output of a plain `cargo test`.
pub fn report_skip(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
