//! SIMD kernels for heft: a BLIS-style single-precision GEMM with one
//! register-blocked microkernel per instruction set, fused epilogues for
//! scoring candidate weight sets, and element-wise and reduction kernels.
//!
//! This is the only heft crate with `unsafe` code. Everything it exports is
//! safe: views are checked when they are built, shapes when an operation is
//! called, and the instruction set when a kernel is chosen.
//!
//! ```
//! use heft_kernels::gemm::{sgemm, MatMut, MatRef};
//!
//! let a = [1.0, 2.0, 3.0, 4.0]; // 2x2, row-major
//! let b = [5.0, 6.0, 7.0, 8.0];
//! let mut c = [0.0; 4];
//! sgemm(
//!     1.0,
//!     MatRef::row_major(&a, 2, 2)?,
//!     MatRef::row_major(&b, 2, 2)?.t(), // B transposed, at no cost
//!     0.0,
//!     MatMut::row_major(&mut c, 2, 2)?,
//! )?;
//! assert_eq!(c, [17.0, 23.0, 39.0, 53.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate layout
//!
//! - [`dispatch`]: the [`Isa`](dispatch::Isa) enum, run-time detection and
//!   the `HEFT_KERNEL` override.
//! - [`gemm`]: views, the public GEMM entry points, the loop nest, packing
//!   and the fused argmax epilogue. The sparse entry points skip the
//!   products with exact zeros of A and give the same bits as the dense
//!   ones for finite B.
//! - `arch`: the microkernels (AVX-512F, AVX2+FMA, portable `wide`).
//! - [`elementwise`]: vectorised element-wise and reduction kernels.
//! - [`reference`](mod@reference): naive f64-accumulated GEMM and a padded
//!   matrix, used by the tests.
//!
//! # Features
//!
//! - `parallel` (default): GEMM spreads blocks of C over the rayon pool.
//!   Without it, heft-kernels depends only on `wide` and `bytemuck`.

mod aligned;
mod arch;
mod cache;
pub mod dispatch;
pub mod elementwise;
pub mod gemm;
pub mod peak;
pub mod reference;

pub use aligned::AlignedVec;
