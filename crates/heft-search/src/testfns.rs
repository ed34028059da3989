//! Standard test functions for minimisation, as [`Objective`]s.
//!
//! Each is computed in f64 from f32 coordinates and has its global minimum
//! 0 at the point given in its docs. The usual search boxes are
//! `[-5.12, 5.12]` (sphere, Rastrigin), `[-5, 10]` (Rosenbrock),
//! `[-32.768, 32.768]` (Ackley) and `[-600, 600]` (Griewank).

use crate::objective::{Objective, PerPoint};

/// Sphere: `sum x_j^2`, minimum at 0.
pub fn sphere(x: &[f32]) -> f64 {
    x.iter().map(|&v| (v as f64).powi(2)).sum()
}

/// Shifted sphere: `sum (x_j - shift)^2`, minimum at `(shift, ..., shift)`.
pub fn shifted_sphere(x: &[f32], shift: f64) -> f64 {
    x.iter().map(|&v| (v as f64 - shift).powi(2)).sum()
}

/// Rastrigin: `10 D + sum (x_j^2 - 10 cos(2 pi x_j))`, minimum at 0.
pub fn rastrigin(x: &[f32]) -> f64 {
    10.0 * x.len() as f64
        + x.iter()
            .map(|&v| {
                let v = v as f64;
                v * v - 10.0 * (std::f64::consts::TAU * v).cos()
            })
            .sum::<f64>()
}

/// Rosenbrock: `sum 100 (x_{j+1} - x_j^2)^2 + (1 - x_j)^2`, minimum at `(1, ..., 1)`.
pub fn rosenbrock(x: &[f32]) -> f64 {
    x.windows(2)
        .map(|w| {
            let (a, b) = (w[0] as f64, w[1] as f64);
            100.0 * (b - a * a).powi(2) + (1.0 - a).powi(2)
        })
        .sum()
}

/// Ackley with `a = 20`, `b = 0.2`, `c = 2 pi`, minimum at 0.
pub fn ackley(x: &[f32]) -> f64 {
    let n = x.len() as f64;
    let s2 = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
    let sc = x
        .iter()
        .map(|&v| (std::f64::consts::TAU * v as f64).cos())
        .sum::<f64>()
        / n;
    -20.0 * (-0.2 * s2.sqrt()).exp() - sc.exp() + 20.0 + std::f64::consts::E
}

/// Griewank: `1 + sum x_j^2 / 4000 - prod cos(x_j / sqrt(j + 1))`, minimum at 0.
pub fn griewank(x: &[f32]) -> f64 {
    let s = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 4000.0;
    let p: f64 = x
        .iter()
        .enumerate()
        .map(|(j, &v)| (v as f64 / ((j + 1) as f64).sqrt()).cos())
        .product();
    1.0 + s - p
}

/// A named test function with its usual box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TestFunction {
    /// [`sphere`] on `[-5.12, 5.12]`.
    Sphere,
    /// [`shifted_sphere`] with the given shift on `[-5.12, 5.12]`.
    ShiftedSphere(f64),
    /// [`rastrigin`] on `[-5.12, 5.12]`.
    Rastrigin,
    /// [`rosenbrock`] on `[-5, 10]`.
    Rosenbrock,
    /// [`ackley`] on `[-32.768, 32.768]`.
    Ackley,
    /// [`griewank`] on `[-600, 600]`.
    Griewank,
}

impl TestFunction {
    /// Returns the function value at `x`.
    pub fn value(self, x: &[f32]) -> f64 {
        match self {
            TestFunction::Sphere => sphere(x),
            TestFunction::ShiftedSphere(s) => shifted_sphere(x, s),
            TestFunction::Rastrigin => rastrigin(x),
            TestFunction::Rosenbrock => rosenbrock(x),
            TestFunction::Ackley => ackley(x),
            TestFunction::Griewank => griewank(x),
        }
    }

    /// Returns the usual box `(lower, upper)`, the same in every dimension.
    pub fn domain(self) -> (f32, f32) {
        match self {
            TestFunction::Sphere | TestFunction::ShiftedSphere(_) | TestFunction::Rastrigin => {
                (-5.12, 5.12)
            }
            TestFunction::Rosenbrock => (-5.0, 10.0),
            TestFunction::Ackley => (-32.768, 32.768),
            TestFunction::Griewank => (-600.0, 600.0),
        }
    }
}

impl Objective for TestFunction {
    fn evaluate(&mut self, candidates: &[f32], dim: usize, fitness: &mut [f64]) {
        let f = *self;
        PerPoint(move |x: &[f32]| f.value(x)).evaluate(candidates, dim, fitness)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minima_are_zero() {
        let zeros = [0.0f32; 30];
        let ones = [1.0f32; 30];
        let shifted = [2.5f32; 30];
        assert_eq!(sphere(&zeros), 0.0);
        assert_eq!(shifted_sphere(&shifted, 2.5), 0.0);
        assert!(rastrigin(&zeros).abs() < 1e-12);
        assert_eq!(rosenbrock(&ones), 0.0);
        assert!(ackley(&zeros).abs() < 1e-12);
        assert!(griewank(&zeros).abs() < 1e-12);
    }

    #[test]
    fn known_values() {
        assert_eq!(sphere(&[1.0, 2.0]), 5.0);
        assert!((rastrigin(&[0.5, 0.0]) - 20.25).abs() < 1e-12);
        assert_eq!(rosenbrock(&[0.0, 0.0]), 1.0);
        assert!(
            (griewank(&[std::f32::consts::PI])
                - (1.0 + std::f64::consts::PI.powi(2) / 4000.0 + 1.0))
                .abs()
                < 1e-6
        );
    }
}
