//! The sequence classifier's forward pass for scoring candidates of its
//! embedding and recurrent tensors, over rows sorted by true length.
//!
//! heft-nn's `SequenceClassifier::forward` runs every row of a batch for
//! all `seq_len` steps, padding included. One GEMM computes the input
//! projection `X W_ih^T + (b_ih + b_hh)` of every step. From step 1 on,
//! each step adds `h_(t-1) W_hh^T` with a second GEMM (beta = 1) and applies
//! `tanh` (RNN) or the LSTM cell update. `fc` then maps each row's hidden
//! state at its last true token to the logits.
//!
//! [`PackedTokens`] sorts the rows by true length, longest first, and splits
//! them into blocks of [`BLOCK_ROWS`]. At step `t` the rows of a block
//! whose length exceeds `t` are a prefix of the block. So each step runs
//! its GEMMs and cell update on that prefix only, as PyTorch's packed
//! sequences do, and a row's last hidden state is read at its last true
//! step.
//!
//! The logits are the same bits as those of the model's own forward pass:
//!
//! - The GEMM calls have the same operands, `alpha`, `beta` and epilogue as
//!   heft-nn's, on fewer rows. The heft-kernels GEMM computes each element
//!   of C as one fused multiply-add chain over `k` in increasing order,
//!   restarted every `ceil(k / ceil(k / KC))` steps with KC fixed per
//!   kernel, then stores `c * beta + acc * alpha` with one rounding. The
//!   tiling, the orientation, the thread count and the number of rows do
//!   not enter that order, so a row's result does not depend on the other
//!   rows of the call.
//! - The epilogue adds the bias to the finished product as one f32
//!   addition. So the cached product `X W_ih^T` plus `b_ih + b_hh`, added
//!   per candidate, equals the GEMM with the bias epilogue.
//! - `tanh_in_place` and `sigmoid_in_place` of heft-kernels give every
//!   element the same result wherever it sits in the slice, and the LSTM
//!   update below repeats heft-nn's f32 expressions.

use crate::ce::{row_cross_entropy, CrossEntropySum};
use crate::head::layout_error;
use crate::model::Fitness;
use crate::TuneError;
use heft_kernels::elementwise as ew;
use heft_kernels::gemm::{argmax_group, Epilogue, Gemm, MatMut, MatRef};
use heft_nn::{RecurrentLayer, SequenceClassifier};

/// Rows per block of the sorted rows, which bounds the scratch memory of
/// each scoring thread (the LSTM gates of a block take `rows x 4H` floats,
/// 1 MiB for hidden size 64). On the 1,200-record LSTM case of `heft bench
/// tune` (2-core AVX-512 VM), blocks of 1,024 and 2,048 rows scored about
/// 5 % more candidates per second than blocks of 256, because each step
/// runs fewer, taller GEMMs.
pub(crate) const BLOCK_ROWS: usize = 1024;

/// Tokens per GEMM while the input projection cache is computed, which
/// bounds the embeddings looked up for it at once.
const PROJECTION_CHUNK_ROWS: usize = 4096;

/// Token rows of a split, borrowed from the caller.
#[derive(Clone, Copy)]
pub(crate) struct TokenRows<'a> {
    pub(crate) ids: &'a [u32],
    pub(crate) lengths: &'a [usize],
    pub(crate) seq_len: usize,
    pub(crate) labels: &'a [u32],
}

/// The input data [`PackedTokens`] computes once for all candidates,
/// chosen by the tuned tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputCache {
    /// Nothing: the embedding is tuned.
    None,
    /// The embedded tokens: `weight_ih_l0` is tuned, so the input
    /// projection changes with the candidate.
    Embedding,
    /// The input projection `x W_ih^T` without biases: the tuned tensor is
    /// `weight_hh_l0` or a recurrent bias, which the projection does not
    /// depend on.
    Projection,
}

/// Size limits of the caches, in floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CacheLimits {
    /// Largest embedding cache, `tokens x embedding`.
    pub(crate) embedding: usize,
    /// Largest projection cache, `tokens x gate rows`.
    pub(crate) projection: usize,
}

/// The per-step inputs of every true token, in packed order.
enum StepInputs {
    /// Looked up per candidate from the embedding table.
    Lookup,
    /// Embedded tokens, `tokens x embedding`.
    Embedded(Vec<f32>),
    /// `x W_ih^T` without biases, `tokens x gate rows`.
    Projected(Vec<f32>),
}

/// One block of sorted rows.
struct RowBlock {
    /// Sorted position of the block's first row.
    first: usize,
    rows: usize,
    /// Packed positions: step `t`'s active rows are tokens
    /// `starts[t]..starts[t + 1]`. One entry per step of the block's
    /// longest row, plus the end.
    starts: Vec<usize>,
}

impl RowBlock {
    fn steps(&self) -> usize {
        self.starts.len() - 1
    }

    /// Returns the number of rows still inside their sequence at step `t`,
    /// 0 past the last step.
    fn active(&self, t: usize) -> usize {
        if t < self.steps() {
            self.starts[t + 1] - self.starts[t]
        } else {
            0
        }
    }
}

/// Token rows sorted by true length, longest first (ties keep their
/// order), in blocks whose tokens are stored step by step: for each block,
/// for each step, the token of every row still inside its sequence.
pub(crate) struct PackedTokens {
    /// Row of the split at each sorted position.
    order: Vec<usize>,
    /// Labels in sorted order.
    labels: Vec<u32>,
    /// Token ids in packed order.
    ids: Vec<u32>,
    blocks: Vec<RowBlock>,
    inputs: StepInputs,
}

impl PackedTokens {
    /// Sorts and packs `rows` and computes `cache` for them with the
    /// model's weights, unless it would exceed `limits`. Above the limit of
    /// the projection the embeddings are cached instead, under their own
    /// limit; above that the embeddings are looked up per candidate.
    pub(crate) fn new(
        seq: &SequenceClassifier,
        rows: TokenRows<'_>,
        cache: InputCache,
        limits: CacheLimits,
    ) -> Result<Self, TuneError> {
        let count = rows.labels.len();
        let mut order: Vec<usize> = (0..count).collect();
        // A stable sort, so rows of equal length keep the split's order.
        order.sort_by_key(|&row| std::cmp::Reverse(rows.lengths[row]));
        let tokens: usize = rows.lengths.iter().sum();
        let mut ids = Vec::with_capacity(tokens);
        let mut blocks = Vec::with_capacity(count.div_ceil(BLOCK_ROWS));
        for first in (0..count).step_by(BLOCK_ROWS) {
            let members = &order[first..(first + BLOCK_ROWS).min(count)];
            let steps = rows.lengths[members[0]];
            let mut starts = Vec::with_capacity(steps + 1);
            for t in 0..steps {
                starts.push(ids.len());
                let active = members.iter().take_while(|&&row| rows.lengths[row] > t);
                ids.extend(active.map(|&row| rows.ids[row * rows.seq_len + t]));
            }
            starts.push(ids.len());
            blocks.push(RowBlock {
                first,
                rows: members.len(),
                starts,
            });
        }
        let labels = order.iter().map(|&row| rows.labels[row]).collect();

        let embedding_fits = tokens.saturating_mul(seq.emb().dim()) <= limits.embedding;
        let projection_fits = tokens.saturating_mul(gate_rows(seq)) <= limits.projection;
        let inputs = match cache {
            InputCache::Projection if projection_fits => StepInputs::Projected(project(seq, &ids)?),
            InputCache::Projection | InputCache::Embedding if embedding_fits => {
                StepInputs::Embedded(embed(seq.emb().weight().as_slice(), seq.emb().dim(), &ids))
            }
            // NOTE: without a cache the embeddings are looked up again per
            // candidate and step, which costs memory bandwidth but not
            // accuracy.
            _ => StepInputs::Lookup,
        };
        Ok(PackedTokens {
            order,
            labels,
            ids,
            blocks,
            inputs,
        })
    }

    /// Returns the number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.order.len()
    }

    /// Returns the cache in use, for tests.
    #[cfg(test)]
    fn cached(&self) -> InputCache {
        match self.inputs {
            StepInputs::Lookup => InputCache::None,
            StepInputs::Embedded(_) => InputCache::Embedding,
            StepInputs::Projected(_) => InputCache::Projection,
        }
    }
}

/// Returns the number of gate rows of the recurrent layer: `H` for the RNN,
/// `4H` for the LSTM.
fn gate_rows(seq: &SequenceClassifier) -> usize {
    match seq.rnn() {
        RecurrentLayer::Rnn(rnn) => rnn.parameters()[2].len(),
        RecurrentLayer::Lstm(lstm) => lstm.parameters()[2].len(),
    }
}

/// Returns the rows of `table` (`[vocab, dim]`) for `ids`.
fn embed(table: &[f32], dim: usize, ids: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(ids.len() * dim);
    for &id in ids {
        let row = id as usize * dim;
        out.extend_from_slice(&table[row..row + dim]);
    }
    out
}

/// Returns `x W_ih^T` without biases for the embedded `ids`, `ids.len() x
/// gate rows`, with the model's weights.
fn project(seq: &SequenceClassifier, ids: &[u32]) -> Result<Vec<f32>, TuneError> {
    let weights = Weights::of(seq);
    let (inputs, gates) = (weights.embedding_dim, weights.gate_rows);
    let w_ih = MatRef::row_major(weights.weight_ih, gates, inputs)
        .map_err(layout_error)?
        .t();
    let mut out = vec![0.0f32; ids.len() * gates];
    let gemm = Gemm::new();
    for (chunk, dst) in ids
        .chunks(PROJECTION_CHUNK_ROWS)
        .zip(out.chunks_mut(PROJECTION_CHUNK_ROWS * gates))
    {
        let x = embed(weights.embedding, inputs, chunk);
        let a = MatRef::row_major(&x, chunk.len(), inputs).map_err(layout_error)?;
        let c = MatMut::row_major(dst, chunk.len(), gates).map_err(layout_error)?;
        gemm.run_with(1.0, a, w_ih, 0.0, c, Epilogue::default())?;
    }
    Ok(out)
}

/// The embedding and recurrent tensors one candidate is scored with:
/// the model's, with the tuned tensor (and bias) read from the candidate.
#[derive(Clone, Copy)]
pub(crate) struct Weights<'a> {
    /// `[vocab, embedding]`.
    embedding: &'a [f32],
    /// `[gate rows, embedding]`.
    weight_ih: &'a [f32],
    /// `[gate rows, H]`.
    weight_hh: &'a [f32],
    bias_ih: &'a [f32],
    bias_hh: &'a [f32],
    embedding_dim: usize,
    hidden: usize,
    gate_rows: usize,
    lstm: bool,
}

impl<'a> Weights<'a> {
    /// Returns the model's own tensors.
    pub(crate) fn of(seq: &'a SequenceClassifier) -> Self {
        let (params, hidden, lstm) = match seq.rnn() {
            RecurrentLayer::Rnn(rnn) => (rnn.parameters(), rnn.hidden_size(), false),
            RecurrentLayer::Lstm(lstm) => (lstm.parameters(), lstm.hidden_size(), true),
        };
        let [weight_ih, weight_hh, bias_ih, bias_hh] = params;
        Weights {
            embedding: seq.emb().weight().as_slice(),
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            embedding_dim: seq.emb().dim(),
            hidden,
            gate_rows: bias_ih.len(),
            lstm,
        }
    }

    /// Replaces the tensor at `index` in the order of
    /// `SequenceClassifier::parameters` (0 = `emb.weight` to 4 =
    /// `rnn.bias_hh_l0`) by `values`, which must have its length.
    pub(crate) fn replace(&mut self, index: usize, values: &'a [f32]) {
        let slot = match index {
            0 => &mut self.embedding,
            1 => &mut self.weight_ih,
            2 => &mut self.weight_hh,
            3 => &mut self.bias_ih,
            _ => &mut self.bias_hh,
        };
        debug_assert_eq!(slot.len(), values.len());
        *slot = values;
    }
}

/// Buffers of one scoring thread, reused across blocks, steps and
/// candidates. Every buffer is written before it is read.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// `b_ih + b_hh`.
    bias: Vec<f32>,
    /// Looked-up inputs of one step, `rows x embedding`.
    inputs: Vec<f32>,
    /// Gate pre-activations of one step, `rows x gate rows`; for the RNN
    /// they become the hidden state.
    gates: Vec<f32>,
    /// `h_t`, `rows x H`.
    hidden: Vec<f32>,
    /// LSTM `c_t`, `rows x H`.
    cell: Vec<f32>,
    /// LSTM `tanh(c_t)` of one row.
    tanh_cell: Vec<f32>,
    /// Each row's hidden state at its last true token, `rows x H`.
    last: Vec<f32>,
    logits: Vec<f32>,
    /// Cross-entropy of every row, in the split's order.
    losses: Vec<f64>,
}

/// Sets the length of `buffer` to at least `len`, keeping its allocation.
fn reserve(buffer: &mut Vec<f32>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
}

/// Scores one candidate's `weights` on `rows`: adds its correct
/// predictions to `count` (for [`Fitness::Error`]) or its per-row losses in
/// the split's order to `sum` (for [`Fitness::CrossEntropy`]). `seq`
/// supplies `fc`. Every GEMM runs with `gemm`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn score_candidate(
    seq: &SequenceClassifier,
    weights: Weights<'_>,
    rows: &PackedTokens,
    gemm: Gemm,
    fitness: Fitness,
    scratch: &mut Scratch,
    count: &mut u64,
    sum: &mut CrossEntropySum,
) -> Result<(), TuneError> {
    let (inputs, hidden, gates) = (weights.embedding_dim, weights.hidden, weights.gate_rows);
    let classes = seq.fc().out_features();
    let block_rows = BLOCK_ROWS.min(rows.rows());
    // As heft-nn's `Cell::input_projection`: the biases summed in f32.
    scratch.bias.clear();
    scratch.bias.extend(
        weights
            .bias_ih
            .iter()
            .zip(weights.bias_hh)
            .map(|(a, b)| a + b),
    );
    if matches!(rows.inputs, StepInputs::Lookup) {
        reserve(&mut scratch.inputs, block_rows * inputs);
    }
    reserve(&mut scratch.gates, block_rows * gates);
    reserve(&mut scratch.hidden, block_rows * hidden);
    reserve(&mut scratch.last, block_rows * hidden);
    reserve(&mut scratch.logits, block_rows * classes);
    if weights.lstm {
        reserve(&mut scratch.cell, block_rows * hidden);
        reserve(&mut scratch.tanh_cell, hidden);
    }
    if fitness == Fitness::CrossEntropy {
        scratch.losses.clear();
        scratch.losses.resize(rows.rows(), 0.0);
    }

    let w_ih = MatRef::row_major(weights.weight_ih, gates, inputs)
        .map_err(layout_error)?
        .t();
    let w_hh = MatRef::row_major(weights.weight_hh, gates, hidden)
        .map_err(layout_error)?
        .t();
    let fc = seq.fc();
    let w_fc = MatRef::row_major(fc.weight().as_slice(), classes, hidden)
        .map_err(layout_error)?
        .t();

    for block in &rows.blocks {
        for t in 0..block.steps() {
            let (start, end) = (block.starts[t], block.starts[t + 1]);
            let n = end - start;
            let step_gates = &mut scratch.gates[..n * gates];
            match &rows.inputs {
                StepInputs::Projected(projection) => {
                    let cached = &projection[start * gates..end * gates];
                    for (dst, src) in step_gates
                        .chunks_exact_mut(gates)
                        .zip(cached.chunks_exact(gates))
                    {
                        for ((d, &s), &b) in dst.iter_mut().zip(src).zip(&scratch.bias) {
                            *d = s + b;
                        }
                    }
                }
                StepInputs::Embedded(embedded) => {
                    let x = &embedded[start * inputs..end * inputs];
                    project_step(gemm, x, n, w_ih, &scratch.bias, step_gates)?;
                }
                StepInputs::Lookup => {
                    let x = &mut scratch.inputs[..n * inputs];
                    for (dst, &id) in x.chunks_exact_mut(inputs).zip(&rows.ids[start..end]) {
                        let row = id as usize * inputs;
                        dst.copy_from_slice(&weights.embedding[row..row + inputs]);
                    }
                    project_step(gemm, x, n, w_ih, &scratch.bias, step_gates)?;
                }
            }
            // h_(-1) is zero, so step 0 has no recurrent term.
            if t > 0 {
                let h_prev = MatRef::row_major(&scratch.hidden[..n * hidden], n, hidden)
                    .map_err(layout_error)?;
                let c = MatMut::row_major(step_gates, n, gates).map_err(layout_error)?;
                gemm.run_with(1.0, h_prev, w_hh, 1.0, c, Epilogue::default())?;
            }
            if weights.lstm {
                let cell = &mut scratch.cell[..n * hidden];
                if t == 0 {
                    cell.fill(0.0);
                }
                lstm_cell_update(
                    step_gates,
                    cell,
                    &mut scratch.tanh_cell[..hidden],
                    &mut scratch.hidden[..n * hidden],
                    hidden,
                );
            } else {
                ew::tanh_in_place(step_gates);
                std::mem::swap(&mut scratch.gates, &mut scratch.hidden);
            }
            // Rows of length t + 1 end here: they are the active rows past
            // those still active at step t + 1.
            let done = block.active(t + 1) * hidden..n * hidden;
            scratch.last[done.clone()].copy_from_slice(&scratch.hidden[done]);
        }

        let m = block.rows;
        let logits = &mut scratch.logits[..m * classes];
        // As `Linear::forward`: `X W^T` with the bias epilogue.
        gemm.run_with(
            1.0,
            MatRef::row_major(&scratch.last[..m * hidden], m, hidden).map_err(layout_error)?,
            w_fc,
            0.0,
            MatMut::row_major(logits, m, classes).map_err(layout_error)?,
            Epilogue {
                bias: Some(fc.bias()),
                relu: false,
            },
        )?;
        let labels = &rows.labels[block.first..block.first + m];
        let rows_of_split = &rows.order[block.first..block.first + m];
        let scored = logits.chunks_exact(classes).zip(labels).zip(rows_of_split);
        for ((z, &label), &row) in scored {
            match fitness {
                Fitness::Error => {
                    *count += u64::from(argmax_group(z) == Some(label as usize));
                }
                Fitness::CrossEntropy => scratch.losses[row] = row_cross_entropy(z, label),
            }
        }
    }
    if fitness == Fitness::CrossEntropy {
        for &loss in &scratch.losses {
            sum.add(loss);
        }
    }
    Ok(())
}

/// Writes `x W_ih^T + bias` (`x` `[n, embedding]`) into `gates`, as
/// heft-nn's `Cell::input_projection` does for every step at once.
fn project_step(
    gemm: Gemm,
    x: &[f32],
    n: usize,
    w_ih: MatRef<'_>,
    bias: &[f32],
    gates: &mut [f32],
) -> Result<(), TuneError> {
    let a = MatRef::row_major(x, n, w_ih.rows()).map_err(layout_error)?;
    let c = MatMut::row_major(gates, n, w_ih.cols()).map_err(layout_error)?;
    let epilogue = Epilogue {
        bias: Some(bias),
        relu: false,
    };
    gemm.run_with(1.0, a, w_ih, 0.0, c, epilogue)?;
    Ok(())
}

/// Applies the LSTM gate nonlinearities to `gates` (`[n, 4H]`
/// pre-activations `[i, f, g, o]`, overwritten) and replaces `cell`
/// (`c_(t-1)`, `[n, H]`) by `c_t` and `hidden` by `h_t`. `tanh_cell` is
/// scratch of `H` floats.
///
/// It must compute what `lstm_cell_update` in heft-nn's `recurrent.rs`
/// computes, with the same calls and f32 expressions: heft-nn keeps that
/// function private, and any difference breaks the bitwise equality with
/// the model's forward pass.
fn lstm_cell_update(
    gates: &mut [f32],
    cell: &mut [f32],
    tanh_cell: &mut [f32],
    hidden: &mut [f32],
    size: usize,
) {
    let rows = gates
        .chunks_exact_mut(4 * size)
        .zip(cell.chunks_exact_mut(size))
        .zip(hidden.chunks_exact_mut(size));
    for ((row, c), h) in rows {
        let (ifg, o) = row.split_at_mut(3 * size);
        ew::sigmoid_in_place(&mut ifg[..2 * size]);
        ew::tanh_in_place(&mut ifg[2 * size..]);
        ew::sigmoid_in_place(o);
        let (i, fg) = ifg.split_at(size);
        let (f, g) = fg.split_at(size);
        for j in 0..size {
            c[j] = f[j] * c[j] + i[j] * g[j];
        }
        tanh_cell.copy_from_slice(c);
        ew::tanh_in_place(tanh_cell);
        for j in 0..size {
            h[j] = o[j] * tanh_cell[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{evaluate, Model, Split};
    use heft_nn::{RecurrentKind, SplitMix64};

    const LARGE: usize = usize::MAX;

    /// Returns `rows` token rows of lengths `1..=seq_len`, every fifth of
    /// the full length.
    fn token_rows(rows: usize, seq_len: usize, seed: u64) -> (Vec<u32>, Vec<usize>, Vec<u32>) {
        let mut rng = SplitMix64::new(seed);
        let lengths: Vec<usize> = (0..rows)
            .map(|row| {
                if row % 5 == 0 {
                    seq_len
                } else {
                    1 + rng.below(seq_len as u64) as usize
                }
            })
            .collect();
        let mut ids = vec![0u32; rows * seq_len];
        for (row, &length) in lengths.iter().enumerate() {
            for t in 0..length {
                ids[row * seq_len + t] = 1 + rng.below(24) as u32;
            }
        }
        let labels = (0..rows).map(|_| rng.below(3) as u32).collect();
        (ids, lengths, labels)
    }

    /// Adds uniform noise of half-width 0.2 to the tensors at `indices` of
    /// `parameters_mut()`.
    fn perturb(seq: &SequenceClassifier, indices: &[usize], seed: u64) -> SequenceClassifier {
        let mut rng = SplitMix64::new(seed);
        let mut out = seq.clone();
        let mut params = out.parameters_mut();
        for &index in indices {
            for w in params[index].iter_mut() {
                *w += rng.uniform(-0.2, 0.2);
            }
        }
        out
    }

    /// Returns the error and the mean cross-entropy from the packed path.
    fn packed_fitness(
        seq: &SequenceClassifier,
        weights: Weights<'_>,
        rows: &PackedTokens,
    ) -> (f64, f64) {
        let mut scratch = Scratch::default();
        let mut count = 0;
        let mut sum = CrossEntropySum::default();
        let gemm = Gemm::new();
        for fitness in [Fitness::Error, Fitness::CrossEntropy] {
            score_candidate(
                seq,
                weights,
                rows,
                gemm,
                fitness,
                &mut scratch,
                &mut count,
                &mut sum,
            )
            .unwrap();
        }
        let n = rows.rows() as f64;
        (1.0 - count as f64 / n, sum.total() / n)
    }

    /// Every cache, and each fallback when a limit is exceeded, gives the
    /// error and cross-entropy of `evaluate`, bit for bit.
    #[test]
    fn every_cache_and_fallback_equals_evaluate() {
        let seq_len = 8;
        let (ids, lengths, labels) = token_rows(600, seq_len, 1);
        let split = Split::Tokens {
            ids: &ids,
            lengths: &lengths,
            seq_len,
            labels: &labels,
        };
        let rows = TokenRows {
            ids: &ids,
            lengths: &lengths,
            seq_len,
            labels: &labels,
        };
        let limits = |embedding, projection| CacheLimits {
            embedding,
            projection,
        };
        for kind in [RecurrentKind::Rnn, RecurrentKind::Lstm] {
            let seq = SequenceClassifier::init(kind, 25, 5, 6, 3, &mut SplitMix64::new(2)).unwrap();
            // Candidates of weight_hh and both biases fit every cache,
            // candidates of the embedding and weight_ih only the ones that
            // store less.
            let recurrent = perturb(&seq, &[2, 3, 4], 3);
            let input = perturb(&seq, &[0, 1], 4);
            let cases = [
                (
                    &recurrent,
                    InputCache::Projection,
                    limits(LARGE, LARGE),
                    InputCache::Projection,
                ),
                (
                    &recurrent,
                    InputCache::Projection,
                    limits(LARGE, 0),
                    InputCache::Embedding,
                ),
                (
                    &recurrent,
                    InputCache::Projection,
                    limits(0, 0),
                    InputCache::None,
                ),
                (
                    &recurrent,
                    InputCache::Embedding,
                    limits(LARGE, LARGE),
                    InputCache::Embedding,
                ),
                (
                    &input,
                    InputCache::Embedding,
                    limits(0, LARGE),
                    InputCache::None,
                ),
                (
                    &input,
                    InputCache::None,
                    limits(LARGE, LARGE),
                    InputCache::None,
                ),
            ];
            for (candidate, cache, limits, expected_cache) in cases {
                let packed = PackedTokens::new(&seq, rows, cache, limits).unwrap();
                assert_eq!(
                    packed.cached(),
                    expected_cache,
                    "{kind:?} {cache:?} {limits:?}"
                );
                let evaluation = evaluate(&Model::Sequence(candidate.clone()), split).unwrap();
                let (error, cross_entropy) = packed_fitness(&seq, Weights::of(candidate), &packed);
                let context = format!("{kind:?} {cache:?} {limits:?}");
                assert_eq!(error, 1.0 - evaluation.accuracy(), "{context}");
                assert_eq!(
                    cross_entropy.to_bits(),
                    evaluation.mean_cross_entropy.to_bits(),
                    "{context}: {cross_entropy} against {}",
                    evaluation.mean_cross_entropy
                );
            }
        }
    }

    /// Sorting is stable and the blocks hold each step's active rows as a
    /// prefix.
    #[test]
    fn packing_sorts_rows_and_counts_active_ones() {
        let ids = [1, 2, 3, 4, 0, 0, 5, 6, 0, 7, 8, 0];
        let lengths = [3, 1, 2, 2];
        let labels = [0, 1, 2, 0];
        let rows = TokenRows {
            ids: &ids,
            lengths: &lengths,
            seq_len: 3,
            labels: &labels,
        };
        let seq = SequenceClassifier::init(RecurrentKind::Rnn, 9, 2, 3, 3, &mut SplitMix64::new(5))
            .unwrap();
        let limits = CacheLimits {
            embedding: LARGE,
            projection: LARGE,
        };
        let packed = PackedTokens::new(&seq, rows, InputCache::None, limits).unwrap();
        assert_eq!(packed.order, [0, 2, 3, 1]);
        assert_eq!(packed.labels, [0, 2, 0, 1]);
        // Step 0: rows 0, 2, 3, 1. Step 1: rows 0, 2, 3. Step 2: row 0.
        assert_eq!(packed.ids, [1, 5, 7, 4, 2, 6, 8, 3]);
        assert_eq!(packed.blocks.len(), 1);
        assert_eq!(packed.blocks[0].starts, [0, 4, 7, 8]);
        assert_eq!(
            (0..4)
                .map(|t| packed.blocks[0].active(t))
                .collect::<Vec<_>>(),
            [4, 3, 1, 0]
        );
    }
}
