//! Objectives: what the search minimises.

/// A function to minimise, scored a whole batch at a time.
///
/// `candidates` contains `fitness.len()` points of `dim` coordinates each, in
/// row-major order. The implementation writes one fitness per point. A
/// point that cannot be scored may get NaN or an infinity: the search ranks
/// such values below every finite one and never reports them as the best.
pub trait Objective {
    /// Scores every row of `candidates` into `fitness`.
    fn evaluate(&mut self, candidates: &[f32], dim: usize, fitness: &mut [f64]);
}

impl<T: Objective + ?Sized> Objective for &mut T {
    fn evaluate(&mut self, candidates: &[f32], dim: usize, fitness: &mut [f64]) {
        (**self).evaluate(candidates, dim, fitness)
    }
}

/// An [`Objective`] built from a function of one point.
///
/// With the `parallel` feature, rows are scored on the rayon thread pool.
/// Each fitness depends only on its own row, so the result does not depend
/// on the number of threads.
#[derive(Debug, Clone, Copy)]
pub struct PerPoint<F>(pub F);

impl<F: Fn(&[f32]) -> f64 + Sync> Objective for PerPoint<F> {
    fn evaluate(&mut self, candidates: &[f32], dim: usize, fitness: &mut [f64]) {
        let f = &self.0;
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            fitness
                .par_iter_mut()
                .zip(candidates.par_chunks(dim))
                .with_min_len(4)
                .for_each(|(out, row)| *out = f(row));
        }
        #[cfg(not(feature = "parallel"))]
        for (out, row) in fitness.iter_mut().zip(candidates.chunks(dim)) {
            *out = f(row);
        }
    }
}
