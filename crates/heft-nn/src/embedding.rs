//! A lookup table of token vectors with a padding id, like
//! `torch.nn.Embedding(vocab, dim, padding_idx=0)`.
//!
//! Shapes: weight `[vocab, dim]`; token ids `[batch, seq_len]` row-major;
//! output one `[batch, dim]` matrix per time step, `out[t][b] =
//! weight[ids[b, t]]`. Row 0 (the padding id) is zero after
//! initialisation and receives no gradient, so training never changes it.
//! Backward adds each output gradient row to the weight row of its id.
//!
//! ```
//! use heft_nn::Embedding;
//! use heft_tensor::Matrix;
//!
//! let weight = Matrix::from_slice(3, 2, &[0.0, 0.0, 1.0, 2.0, 3.0, 4.0])?;
//! let emb = Embedding::new(weight)?;
//! // One sequence of length 2: ids 2, 1.
//! let steps = emb.forward(&[2, 1], 1, 2)?;
//! assert_eq!(steps[0].as_slice(), &[3.0, 4.0]);
//! assert_eq!(steps[1].as_slice(), &[1.0, 2.0]);
//! # Ok::<(), heft_nn::NnError>(())
//! ```

use crate::error::NnError;
use crate::rng::SplitMix64;
use heft_tensor::Matrix;

/// The token id whose vector is fixed at zero.
pub const PADDING_ID: u32 = 0;

/// An embedding table `[vocab, dim]` with padding id 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    weight: Matrix,
}

impl Embedding {
    /// Creates a table from a given weight `[vocab, dim]`. Row 0 is used as
    /// given (PyTorch also keeps a loaded padding row as it is).
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the table has no rows or no columns.
    pub fn new(weight: Matrix) -> Result<Self, NnError> {
        if weight.rows() == 0 || weight.cols() == 0 {
            return Err(NnError::shape(
                "Embedding::new",
                format!(
                    "the weight is {}x{} but needs at least one token and one dimension",
                    weight.rows(),
                    weight.cols()
                ),
            ));
        }
        Ok(Embedding { weight })
    }

    /// Creates a table initialised as PyTorch does: each entry from the
    /// standard normal distribution (Box-Muller over `rng`), then row 0 set
    /// to zero.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if `vocab` or `dim` is 0.
    pub fn init(vocab: usize, dim: usize, rng: &mut SplitMix64) -> Result<Self, NnError> {
        let mut weight = Matrix::from_fn(vocab, dim, |_, _| standard_normal(rng))?;
        if let Some(row) = weight.row_mut(PADDING_ID as usize) {
            row.fill(0.0);
        }
        Embedding::new(weight)
    }

    /// Returns the vocabulary size.
    pub fn vocab(&self) -> usize {
        self.weight.rows()
    }

    /// Returns the vector length.
    pub fn dim(&self) -> usize {
        self.weight.cols()
    }

    /// Returns the weight, `[vocab, dim]`.
    pub fn weight(&self) -> &Matrix {
        &self.weight
    }

    /// Returns the weight for in-place changes.
    pub fn weight_mut(&mut self) -> &mut [f32] {
        self.weight.as_mut_slice()
    }

    fn check_ids(
        &self,
        op: &'static str,
        ids: &[u32],
        batch: usize,
        seq_len: usize,
    ) -> Result<(), NnError> {
        if Some(ids.len()) != batch.checked_mul(seq_len) {
            return Err(NnError::shape(
                op,
                format!(
                    "{} ids cannot be {batch} sequences of {seq_len} tokens",
                    ids.len()
                ),
            ));
        }
        if let Some((i, &id)) = ids
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= self.vocab())
        {
            return Err(NnError::shape(
                op,
                format!(
                    "token id {id} at position {i} is out of range for a vocabulary of {}",
                    self.vocab()
                ),
            ));
        }
        Ok(())
    }

    /// Looks up `ids` (`[batch, seq_len]`, row-major) and returns one
    /// `[batch, dim]` matrix per time step.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if `ids.len() != batch * seq_len` or an id is
    /// `>= vocab`.
    pub fn forward(
        &self,
        ids: &[u32],
        batch: usize,
        seq_len: usize,
    ) -> Result<Vec<Matrix>, NnError> {
        self.check_ids("Embedding::forward", ids, batch, seq_len)?;
        let dim = self.dim();
        let table = self.weight.as_slice();
        (0..seq_len)
            .map(|t| {
                let mut step = Matrix::zeros(batch, dim)?;
                for (b, dst) in step.as_mut_slice().chunks_exact_mut(dim).enumerate() {
                    let id = ids[b * seq_len + t] as usize;
                    dst.copy_from_slice(&table[id * dim..(id + 1) * dim]);
                }
                Ok(step)
            })
            .collect()
    }

    /// Adds the gradient of each looked-up vector to its row of
    /// `grad_weight` (`[vocab, dim]`), skipping the padding id.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the ids, the step gradients or `grad_weight` do
    /// not fit.
    pub fn backward(
        &self,
        ids: &[u32],
        batch: usize,
        grad_steps: &[Matrix],
        grad_weight: &mut Matrix,
    ) -> Result<(), NnError> {
        const OP: &str = "Embedding::backward";
        let seq_len = grad_steps.len();
        self.check_ids(OP, ids, batch, seq_len)?;
        let dim = self.dim();
        if grad_weight.shape() != self.weight.shape()
            || grad_steps.iter().any(|g| g.shape() != (batch, dim))
        {
            return Err(NnError::shape(
                OP,
                format!(
                    "the gradients must be {seq_len} matrices of {batch}x{dim} and a {}x{dim} \
                     weight gradient",
                    self.vocab()
                ),
            ));
        }
        let grad_table = grad_weight.as_mut_slice();
        for (t, step) in grad_steps.iter().enumerate() {
            for (b, row) in step.as_slice().chunks_exact(dim).enumerate() {
                let id = ids[b * seq_len + t];
                if id == PADDING_ID {
                    continue;
                }
                let id = id as usize;
                for (g, &r) in grad_table[id * dim..(id + 1) * dim].iter_mut().zip(row) {
                    *g += r;
                }
            }
        }
        Ok(())
    }
}

impl Embedding {
    /// Looks up `ids` (`[batch, seq_len]`, row-major) into `out`, one
    /// `[seq_len * batch, dim]` time-major matrix whose row `t * batch + b`
    /// is `weight[ids[b, t]]`. Reuses the capacity of `out`.
    pub(crate) fn forward_time_major(
        &self,
        ids: &[u32],
        batch: usize,
        seq_len: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), NnError> {
        self.check_ids("Embedding::forward", ids, batch, seq_len)?;
        let dim = self.dim();
        let table = self.weight.as_slice();
        out.clear();
        for t in 0..seq_len {
            for b in 0..batch {
                let id = ids[b * seq_len + t] as usize;
                out.extend_from_slice(&table[id * dim..(id + 1) * dim]);
            }
        }
        Ok(())
    }

    /// Adds the gradient rows `grad` (`[seq_len * batch, dim]`, time-major
    /// as [`Embedding::forward_time_major`] writes them) to `grad_weight`,
    /// in the same order as [`Embedding::backward`] and skipping the
    /// padding id.
    pub(crate) fn backward_time_major(
        &self,
        ids: &[u32],
        batch: usize,
        seq_len: usize,
        grad: &[f32],
        grad_weight: &mut Matrix,
    ) -> Result<(), NnError> {
        const OP: &str = "Embedding::backward";
        self.check_ids(OP, ids, batch, seq_len)?;
        let dim = self.dim();
        if grad_weight.shape() != self.weight.shape() || grad.len() != seq_len * batch * dim {
            return Err(NnError::shape(
                OP,
                format!(
                    "the gradients must be {seq_len}x{batch}x{dim} values and a {}x{dim} \
                     weight gradient",
                    self.vocab()
                ),
            ));
        }
        let grad_table = grad_weight.as_mut_slice();
        for (row_index, row) in grad.chunks_exact(dim).enumerate() {
            let (t, b) = (row_index / batch, row_index % batch);
            let id = ids[b * seq_len + t];
            if id == PADDING_ID {
                continue;
            }
            let id = id as usize;
            for (g, &r) in grad_table[id * dim..(id + 1) * dim].iter_mut().zip(row) {
                *g += r;
            }
        }
        Ok(())
    }
}

/// Draws from N(0, 1) with the Box-Muller transform.
fn standard_normal(rng: &mut SplitMix64) -> f32 {
    // 1 - u is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - f64::from(rng.next_f32());
    let u2 = f64::from(rng.next_f32());
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}
