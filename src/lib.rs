//! heft improves pre-trained neural-network weights with meta-heuristics on
//! the CPU. This facade re-exports the workspace crates under short names.
//!
//! - [`kernels`]: SIMD GEMM with runtime ISA dispatch, fused epilogues and
//!   element-wise kernels. The only crate with `unsafe`.
//! - [`tensor`]: owned aligned matrices, strided views and shape-checked
//!   operations over the kernels.
#![forbid(unsafe_code)]

pub use heft_kernels as kernels;
pub use heft_tensor as tensor;
