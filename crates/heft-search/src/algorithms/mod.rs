//! One module per algorithm. Each documents its rules in both modes and its
//! evaluation count per iteration.

pub mod ba;
pub mod cmaes;
pub mod de;
pub mod fa;
pub mod ga;
pub mod pso;
pub mod random;
pub mod snes;
