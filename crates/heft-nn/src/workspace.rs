//! Preallocated buffers for MLP training steps that allocate nothing once
//! the buffers exist.
//!
//! [`MlpWorkspace`] contains the batch input, every layer's output, the
//! gradients and scratch for backward, sized for a maximum batch. Smaller
//! batches use the leading rows of each buffer. A step computes exactly
//! what [`Mlp::forward_train`], [`cross_entropy_with_grad`],
//! [`Mlp::backward`] and [`Optimiser::step`] compute one after the other,
//! in the same order, so the results are bitwise identical.
//!
//! [`cross_entropy_with_grad`]: crate::cross_entropy_with_grad

use crate::error::NnError;
use crate::loss::mean_loss_with_grad;
use crate::mlp::{Mlp, MlpGrads};
use crate::optim::Optimiser;
use crate::train::Dataset;
use heft_kernels::elementwise::{argmax_rows, relu_backward_in_place};
use heft_tensor::{matmul_into, matmul_into_with, MatMut, MatRef};

/// Buffers for training steps of one [`Mlp`] on batches of up to
/// [`MlpWorkspace::capacity`] rows.
///
/// ```
/// use heft_nn::{AdamConfig, Adam, Dataset, Mlp, MlpWorkspace, Optimiser, SplitMix64};
///
/// let mut mlp = Mlp::init(&[3, 4, 2], &mut SplitMix64::new(1))?;
/// let features = [0.0, 1.0, 2.0, 1.0, 0.0, -1.0];
/// let labels = [0, 1];
/// let data = Dataset::new(&features, &labels, 3)?;
/// let mut workspace = MlpWorkspace::new(&mlp, 2)?;
/// let mut optimiser = Optimiser::Adam(Adam::new(AdamConfig::default())?);
/// let (loss, correct) = workspace.train_step(&mut mlp, &data, &[1, 0], &mut optimiser)?;
/// assert!(loss.is_finite() && correct <= 2);
/// # Ok::<(), heft_nn::NnError>(())
/// ```
#[derive(Clone, Debug)]
pub struct MlpWorkspace {
    /// Layer sizes of the model the buffers fit: input, hidden..., output.
    sizes: Vec<usize>,
    capacity: usize,
    /// Batch input, `[capacity, sizes[0]]`.
    input: Vec<f32>,
    labels: Vec<u32>,
    /// Output of each hidden layer after ReLU, `[capacity, sizes[k]]`.
    hidden: Vec<Vec<f32>>,
    /// `[capacity, classes]`.
    logits: Vec<f32>,
    predicted: Vec<usize>,
    /// Gradient with respect to the output of the layer being
    /// back-propagated, starting with the logits; `[capacity, max size]`.
    grad_output: Vec<f32>,
    /// Gradient with respect to that layer's input, swapped with
    /// `grad_output` after each layer.
    grad_input: Vec<f32>,
    grads: MlpGrads,
}

impl MlpWorkspace {
    /// Allocates buffers for training `mlp` on batches of up to `capacity`
    /// rows.
    ///
    /// # Errors
    ///
    /// [`NnError::InvalidConfig`] if `capacity` is 0, and
    /// [`NnError::Tensor`] only if a buffer size overflows `usize`.
    pub fn new(mlp: &Mlp, capacity: usize) -> Result<Self, NnError> {
        if capacity == 0 {
            return Err(NnError::config(
                "batch_size",
                "the batch size must be at least 1",
            ));
        }
        let sizes = mlp.sizes();
        let buffer = |columns: usize| -> Result<Vec<f32>, NnError> {
            let len = capacity.checked_mul(columns).ok_or_else(|| {
                NnError::config(
                    "batch_size",
                    format!("{capacity} rows of {columns} values overflow usize"),
                )
            })?;
            Ok(vec![0.0; len])
        };
        let last = sizes.len() - 1;
        let widest = sizes[1..].iter().copied().max().unwrap_or(0);
        Ok(MlpWorkspace {
            capacity,
            input: buffer(sizes[0])?,
            labels: Vec::with_capacity(capacity),
            hidden: sizes[1..last]
                .iter()
                .map(|&n| buffer(n))
                .collect::<Result<_, _>>()?,
            logits: buffer(sizes[last])?,
            predicted: vec![0; capacity],
            grad_output: buffer(widest)?,
            grad_input: buffer(widest)?,
            grads: MlpGrads::zeros_like(mlp)?,
            sizes,
        })
    }

    /// Returns the maximum rows per batch.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Returns the gradients of the last step, in layer order.
    pub fn grads(&self) -> &MlpGrads {
        &self.grads
    }

    /// Runs one training step on the rows `rows` of `data`: forward, mean
    /// softmax cross-entropy, backward and one `optimiser` step. Returns
    /// the batch's mean loss and how many of its rows the weights before
    /// the step classify correctly. Allocates nothing after the
    /// optimiser's first step, which creates its state.
    ///
    /// # Errors
    ///
    /// [`NnError::Shape`] if the workspace was made for another layout or
    /// `data` has another column count, [`NnError::InvalidConfig`] for more
    /// rows than [`MlpWorkspace::capacity`] or none, and
    /// [`NnError::LabelOutOfRange`] for a bad label. `mlp` is unchanged
    /// then.
    pub fn train_step(
        &mut self,
        mlp: &mut Mlp,
        data: &Dataset<'_>,
        rows: &[usize],
        optimiser: &mut Optimiser,
    ) -> Result<(f32, usize), NnError> {
        self.check(mlp, data, rows)?;
        self.gather(data, rows);
        self.forward(mlp, rows.len())?;

        let batch = rows.len();
        let classes = *self.sizes.last().unwrap_or(&0);
        let logits = &self.logits[..batch * classes];
        let loss = mean_loss_with_grad(
            logits,
            classes,
            &self.labels,
            &mut self.grad_output[..batch * classes],
        );
        argmax_rows(logits, classes, &mut self.predicted[..batch])?;
        let correct = self.predicted[..batch]
            .iter()
            .zip(&self.labels)
            .filter(|(&p, &l)| p == l as usize)
            .count();

        self.backward(mlp, batch)?;
        self.step(mlp, optimiser)?;
        Ok((loss, correct))
    }

    fn check(&self, mlp: &Mlp, data: &Dataset<'_>, rows: &[usize]) -> Result<(), NnError> {
        const OP: &str = "MlpWorkspace::train_step";
        let layers = mlp.layers();
        let fits = layers.len() + 1 == self.sizes.len()
            && layers[0].in_features() == self.sizes[0]
            && layers
                .iter()
                .zip(&self.sizes[1..])
                .all(|(layer, &n)| layer.out_features() == n);
        if !fits {
            return Err(NnError::shape(
                OP,
                format!(
                    "the workspace was made for layer sizes {:?} but the model has {:?}; \
                     create it with MlpWorkspace::new for this model",
                    self.sizes,
                    mlp.sizes()
                ),
            ));
        }
        if data.columns() != self.sizes[0] {
            return Err(NnError::shape(
                OP,
                format!(
                    "the data has {} features per row but the model takes {}",
                    data.columns(),
                    self.sizes[0]
                ),
            ));
        }
        if rows.is_empty() || rows.len() > self.capacity {
            return Err(NnError::config(
                "batch_size",
                format!(
                    "a step takes 1 to {} rows with this workspace, but got {}",
                    self.capacity,
                    rows.len()
                ),
            ));
        }
        if let Some(&row) = rows.iter().find(|&&row| row >= data.len()) {
            return Err(NnError::shape(
                OP,
                format!("row {row} is out of range for {} rows", data.len()),
            ));
        }
        let classes = *self.sizes.last().unwrap_or(&0);
        if let Some((index, &row)) = rows
            .iter()
            .enumerate()
            .find(|(_, &row)| data.labels()[row] as usize >= classes)
        {
            return Err(NnError::LabelOutOfRange {
                op: OP,
                row: index,
                label: data.labels()[row],
                classes,
            });
        }
        Ok(())
    }

    fn gather(&mut self, data: &Dataset<'_>, rows: &[usize]) {
        let columns = data.columns();
        let features = data.features();
        self.labels.clear();
        for (dst, &row) in self.input.chunks_exact_mut(columns).zip(rows) {
            dst.copy_from_slice(&features[row * columns..(row + 1) * columns]);
            self.labels.push(data.labels()[row]);
        }
    }

    /// Runs the forward pass on the first `batch` rows of `input`, with
    /// bias and ReLU in the GEMM epilogue as [`Mlp::forward_train`] does.
    fn forward(&mut self, mlp: &Mlp, batch: usize) -> Result<(), NnError> {
        let layers = mlp.layers();
        let last = layers.len() - 1;
        for (k, layer) in layers.iter().enumerate() {
            let n_in = self.sizes[k];
            let n_out = self.sizes[k + 1];
            let (input, output): (&[f32], &mut [f32]) = if k == 0 {
                let output = if last == 0 {
                    &mut self.logits[..]
                } else {
                    &mut self.hidden[0][..]
                };
                (&self.input[..], output)
            } else if k == last {
                (&self.hidden[k - 1][..], &mut self.logits[..])
            } else {
                let (before, after) = self.hidden.split_at_mut(k);
                (&before[k - 1][..], &mut after[0][..])
            };
            matmul_into_with(
                1.0,
                MatRef::row_major(&input[..batch * n_in], batch, n_in)?,
                layer.weight().view().t(),
                0.0,
                MatMut::row_major(&mut output[..batch * n_out], batch, n_out)?,
                Some(layer.bias()),
                k < last,
            )?;
        }
        Ok(())
    }

    /// Computes every layer's gradients from `dL/dlogits` in
    /// `grad_output`, as [`Mlp::backward`] does.
    fn backward(&mut self, mlp: &Mlp, batch: usize) -> Result<(), NnError> {
        self.grads.zero();
        let layers = mlp.layers();
        for k in (0..layers.len()).rev() {
            let n_in = self.sizes[k];
            let n_out = self.sizes[k + 1];
            let input: &[f32] = if k == 0 {
                &self.input
            } else {
                &self.hidden[k - 1]
            };
            let input = &input[..batch * n_in];
            let grad_output = &self.grad_output[..batch * n_out];
            let grads = &mut self.grads.layers[k];

            matmul_into(
                1.0,
                MatRef::row_major(grad_output, batch, n_out)?.t(),
                MatRef::row_major(input, batch, n_in)?,
                1.0,
                grads.weight.view_mut(),
            )?;
            for row in grad_output.chunks_exact(n_out) {
                for (b, g) in grads.bias.iter_mut().zip(row) {
                    *b += g;
                }
            }

            if k == 0 {
                break;
            }
            let grad_input = &mut self.grad_input[..batch * n_in];
            matmul_into(
                1.0,
                MatRef::row_major(grad_output, batch, n_out)?,
                layers[k].weight().view(),
                0.0,
                MatMut::row_major(grad_input, batch, n_in)?,
            )?;
            relu_backward_in_place(input, grad_input)?;
            std::mem::swap(&mut self.grad_output, &mut self.grad_input);
        }
        Ok(())
    }

    fn step(&self, mlp: &mut Mlp, optimiser: &mut Optimiser) -> Result<(), NnError> {
        let lens = mlp
            .layers()
            .iter()
            .flat_map(|layer| [layer.weight().len(), layer.bias().len()]);
        let scalars = optimiser.begin_step(lens)?;
        for (k, (layer, grads)) in mlp
            .layers_mut()
            .iter_mut()
            .zip(&self.grads.layers)
            .enumerate()
        {
            let (weight, bias) = layer.parameters_mut();
            optimiser.update(2 * k, &scalars, weight, grads.weight.as_slice());
            optimiser.update(2 * k + 1, &scalars, bias, &grads.bias);
        }
        Ok(())
    }
}
