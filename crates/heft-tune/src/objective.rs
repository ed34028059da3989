//! The model-level objective: one tensor of a model tuned inside a box,
//! scored on a validation split by the fastest exact path for that tensor.

use crate::ce::{CrossEntropySum, CE_BLOCK_ROWS};
use crate::head::layout_error;
use crate::model::{check_split, last_hidden, tensor_names, Fitness, Model, Split, Target};
use crate::{HeadScorer, TuneError};
use heft_kernels::gemm::{Epilogue, Gemm, MatMut, MatRef};
use heft_nn::{Linear, Mlp, SequenceClassifier};
use heft_search::Objective;
use heft_tensor::Matrix;

/// Maximum floats of one row block of the tuned layer's stacked output
/// (64 MiB), so that memory stays bounded for wide layers and large
/// populations.
const LAYER_BLOCK_FLOATS: usize = 16 << 20;

/// Maximum rows of one row block of the tuned layer's stacked output.
/// The GEMM packs the candidates' weights once per call and once more per
/// 3,072 rows (its column block on AVX-512 when it computes `W X^T`), so
/// taller blocks repack the weights fewer times per population: 6 times
/// instead of 24 for 12,000 rows with 64 candidates of 128 outputs.
const LAYER_BLOCK_ROWS: usize = 3072;

/// Largest embedded split, in floats (256 MiB), that the recurrent path
/// keeps in memory instead of looking the embeddings up per candidate.
const EMBEDDING_CACHE_FLOATS: usize = 64 << 20;

/// Position of the tuned values: indices into the model's
/// `parameters_mut()` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Location {
    /// The tuned tensor.
    param: usize,
    /// Its bias, when that is tuned too.
    bias_param: Option<usize>,
}

/// Finds `target` in the model.
fn locate(model: &Model, target: &Target) -> Result<Location, TuneError> {
    let names = tensor_names(model);
    if !names.contains(&target.tensor) {
        return Err(TuneError::UnknownTensor {
            name: target.tensor.clone(),
            available: names,
        });
    }
    let no_bias = || TuneError::NoBias {
        tensor: target.tensor.clone(),
    };
    let bias_of = |param: usize, bias: Option<usize>| match (target.include_bias, bias) {
        (false, _) => Ok(Location {
            param,
            bias_param: None,
        }),
        (true, Some(bias)) => Ok(Location {
            param,
            bias_param: Some(bias),
        }),
        (true, None) => Err(no_bias()),
    };
    match model {
        // parameters_mut(): fc1.weight, fc1.bias, fc2.weight, ...
        Model::Mlp(_) => {
            let layer = names
                .iter()
                .position(|n| *n == target.tensor)
                .unwrap_or_default();
            bias_of(2 * layer, Some(2 * layer + 1))
        }
        // parameters_mut(): emb.weight, rnn.weight_ih_l0, rnn.weight_hh_l0,
        // rnn.bias_ih_l0, rnn.bias_hh_l0, fc.weight, fc.bias.
        Model::Sequence(_) => match target.tensor.as_str() {
            "emb.weight" => bias_of(0, None),
            "rnn.weight_ih_l0" => bias_of(1, Some(3)),
            "rnn.weight_hh_l0" => bias_of(2, Some(4)),
            "rnn.bias_ih_l0" => bias_of(3, None),
            "rnn.bias_hh_l0" => bias_of(4, None),
            _ => bias_of(5, Some(6)),
        },
    }
}

/// Writes `point` (the tensor, then its bias if tuned) into `params`.
fn write_point(
    mut params: Vec<&mut [f32]>,
    location: Location,
    point: &[f32],
) -> Result<(), TuneError> {
    let weight_len = params[location.param].len();
    let bias_len = location.bias_param.map_or(0, |b| params[b].len());
    if point.len() != weight_len + bias_len {
        return Err(TuneError::Shape {
            what: "point",
            expected: format!("{} values", weight_len + bias_len),
            actual: format!("{} values", point.len()),
        });
    }
    let (weights, bias) = point.split_at(weight_len);
    params[location.param].copy_from_slice(weights);
    if let Some(b) = location.bias_param {
        params[b].copy_from_slice(bias);
    }
    Ok(())
}

fn parameters_mut(model: &mut Model) -> Vec<&mut [f32]> {
    match model {
        Model::Mlp(mlp) => mlp.parameters_mut(),
        Model::Sequence(seq) => seq.parameters_mut(),
    }
}

fn parameters(model: &Model) -> Vec<&[f32]> {
    match model {
        Model::Mlp(mlp) => mlp.parameters(),
        Model::Sequence(seq) => seq.parameters(),
    }
}

/// The scoring path chosen for the tuned tensor.
enum Path {
    /// The last linear layer: cached features, one fused GEMM.
    Head(HeadScorer),
    /// An earlier MLP layer: stacked GEMM, later layers per candidate.
    Layer(LayerPath),
    /// Embedding or recurrent tensors: the model's forward pass per
    /// candidate.
    Forward(ForwardPath),
}

/// One tensor of a model tuned inside the box `w0 +- bound`, scored on a
/// validation split.
///
/// The path depends on the tensor:
///
/// - The last linear layer (the last `fcK.weight` of an MLP, `fc.weight`
///   of a sequence model): the frozen layers' output is computed once, and
///   a [`HeadScorer`] scores each population with one GEMM and a fused
///   argmax count, skipping rows no candidate can change when pruning is
///   on.
/// - An earlier MLP layer: its input is computed once; one GEMM computes
///   the tuned layer's output for every candidate in blocks of rows, and
///   the later layers run per candidate on each block.
/// - Embedding and recurrent tensors: each candidate is written into a
///   copy of the model, whose forward pass runs over the split in blocks of
///   rows; for recurrent tensors the embedding lookup is cached.
///
/// Every path computes each logit with the same GEMM calls as the model's
/// own forward pass, so fitness equals that of [`crate::evaluate`] on the
/// model with the candidate applied, bit for bit, for any thread count.
pub struct ModelObjective {
    initial: Vec<f32>,
    bound: f32,
    fitness: Fitness,
    rows: usize,
    /// Whether the model is an MLP (else a sequence classifier).
    mlp: bool,
    location: Location,
    candidates: u64,
    path: Path,
}

impl ModelObjective {
    /// Prepares the objective for `target` of `model` on `split`, in the box
    /// of half-width `bound` around the pre-trained values. `prune` enables
    /// exact row pruning, which applies to the last layer with
    /// [`Fitness::Error`] only.
    ///
    /// # Errors
    ///
    /// [`TuneError::UnknownTensor`] (listing the tunable tensors),
    /// [`TuneError::NoBias`], [`TuneError::Bound`] for a bound that is not
    /// positive and finite, [`TuneError::EmptySplit`],
    /// [`TuneError::SplitMismatch`] or [`TuneError::Label`] for a split that
    /// does not fit the model, and [`TuneError::NonFinite`] for NaN or
    /// infinite pre-trained values of a last layer.
    pub fn new(
        model: &Model,
        target: &Target,
        split: Split<'_>,
        bound: f32,
        fitness: Fitness,
        prune: bool,
    ) -> Result<Self, TuneError> {
        let location = locate(model, target)?;
        if !(bound.is_finite() && bound > 0.0) {
            return Err(TuneError::Bound(bound));
        }
        let rows = check_split(model, &split)?;
        let params = parameters(model);
        let mut initial = params[location.param].to_vec();
        if let Some(b) = location.bias_param {
            initial.extend_from_slice(params[b]);
        }
        let prune = prune && fitness == Fitness::Error;
        let path = match (model, split) {
            (Model::Mlp(mlp), Split::Dense { features, .. }) => {
                let layer = location.param / 2;
                let input = mlp_input(mlp, features, rows, layer)?;
                if layer + 1 == mlp.layers().len() {
                    Path::Head(head_scorer(
                        &mlp.layers()[layer],
                        &input,
                        split.labels(),
                        bound,
                        prune,
                        target.include_bias,
                    )?)
                } else {
                    Path::Layer(LayerPath::new(
                        mlp,
                        layer,
                        input,
                        split.labels(),
                        target.include_bias,
                    ))
                }
            }
            (
                Model::Sequence(seq),
                Split::Tokens {
                    ids,
                    lengths,
                    seq_len,
                    labels,
                },
            ) => {
                if location.param == 5 {
                    let features = sequence_features(seq, ids, lengths, seq_len)?;
                    Path::Head(head_scorer(
                        seq.fc(),
                        &features,
                        labels,
                        bound,
                        prune,
                        target.include_bias,
                    )?)
                } else {
                    Path::Forward(ForwardPath::new(
                        seq, location, ids, lengths, seq_len, labels,
                    )?)
                }
            }
            // check_split rejects the other pairs.
            _ => {
                return Err(TuneError::Model(
                    "the split kind does not fit the model".into(),
                ))
            }
        };
        Ok(ModelObjective {
            initial,
            bound,
            fitness,
            rows,
            mlp: matches!(model, Model::Mlp(_)),
            location,
            candidates: 0,
            path,
        })
    }

    /// Returns the pre-trained values of the tuned tensor (then its bias if
    /// tuned), flattened row-major.
    pub fn initial_point(&self) -> &[f32] {
        &self.initial
    }

    /// Returns the number of variables of one candidate.
    pub fn dim(&self) -> usize {
        self.initial.len()
    }

    /// Returns the half-width of the search box.
    pub fn bound(&self) -> f32 {
        self.bound
    }

    /// Returns the number of rows of the split.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Returns the fitness kind being minimised.
    pub fn fitness(&self) -> Fitness {
        self.fitness
    }

    /// Returns the share of rows skipped by pruning, in [0, 1]; 0 where
    /// pruning does not apply (tensors other than the last layer, or
    /// cross-entropy fitness).
    pub fn pruned_fraction(&self) -> f64 {
        match &self.path {
            Path::Head(scorer) => scorer.stats().pruned_fraction(),
            _ => 0.0,
        }
    }

    /// Returns the number of candidates scored so far.
    pub fn candidates_scored(&self) -> u64 {
        self.candidates
    }

    /// Writes `point` (the tuned tensor, then its bias if tuned) into
    /// `model`, which must have the shapes of the model this objective was
    /// built from.
    ///
    /// # Errors
    ///
    /// [`TuneError::Shape`] if `point` does not have [`ModelObjective::dim`]
    /// values, the model is of the other kind or its tensor has another
    /// size.
    pub fn apply(&self, model: &mut Model, point: &[f32]) -> Result<(), TuneError> {
        let kind = |mlp: bool| {
            if mlp {
                "an MLP"
            } else {
                "a sequence classifier"
            }
        };
        let model_is_mlp = matches!(model, Model::Mlp(_));
        if model_is_mlp != self.mlp {
            return Err(TuneError::Shape {
                what: "model passed to apply",
                expected: kind(self.mlp).into(),
                actual: kind(model_is_mlp).into(),
            });
        }
        if point.len() != self.dim() {
            return Err(TuneError::Shape {
                what: "point",
                expected: format!("{} values", self.dim()),
                actual: format!("{} values", point.len()),
            });
        }
        let params = parameters_mut(model);
        if self.location.param >= params.len()
            || self.location.bias_param.is_some_and(|b| b >= params.len())
        {
            return Err(TuneError::Shape {
                what: "model",
                expected: "the layers of the model the objective was built from".into(),
                actual: format!("{} parameter tensors", params.len()),
            });
        }
        write_point(params, self.location, point)
    }

    /// Scores every candidate of `population` (`fitness.len()` rows of
    /// [`ModelObjective::dim`] values) into `fitness`.
    ///
    /// # Errors
    ///
    /// [`TuneError::Shape`] for a population of another size, and
    /// [`TuneError::Model`] if a layer fails.
    pub fn score(&mut self, population: &[f32], fitness: &mut [f64]) -> Result<(), TuneError> {
        let dim = self.dim();
        if Some(population.len()) != fitness.len().checked_mul(dim) {
            return Err(TuneError::Shape {
                what: "population",
                expected: format!("{} candidates of {dim} values", fitness.len()),
                actual: format!("{} values", population.len()),
            });
        }
        match (&mut self.path, self.fitness) {
            (Path::Head(scorer), Fitness::Error) => scorer.score(population, fitness)?,
            (Path::Head(scorer), Fitness::CrossEntropy) => {
                scorer.cross_entropy(population, fitness)?
            }
            (Path::Layer(layer), kind) => layer.score(population, kind, fitness)?,
            (Path::Forward(forward), kind) => forward.score(population, kind, fitness)?,
        }
        self.candidates += fitness.len() as u64;
        Ok(())
    }
}

impl Objective for ModelObjective {
    /// Scores with [`ModelObjective::score`]. A malformed population (which
    /// the search algorithms never produce) gets NaN fitness, which ranks
    /// worst.
    fn evaluate(&mut self, candidates: &[f32], dim: usize, fitness: &mut [f64]) {
        if dim != self.dim() || self.score(candidates, fitness).is_err() {
            fitness.fill(f64::NAN);
        }
    }
}

/// Returns the input of MLP layer `layer` for every row: the split itself
/// for `fc1`, else the ReLU output of the layer before, computed as
/// [`Mlp::forward`] does.
fn mlp_input(
    mlp: &Mlp,
    features: &[f32],
    rows: usize,
    layer: usize,
) -> Result<Vec<f32>, TuneError> {
    let columns = mlp.layers()[0].in_features();
    let mut current = Matrix::from_slice(rows, columns, features)?;
    for linear in &mlp.layers()[..layer] {
        let mut out = Matrix::zeros(rows, linear.out_features())?;
        linear.forward_into(&current, &mut out, true)?;
        current = out;
    }
    Ok(current.as_slice().to_vec())
}

/// Returns the sequence model's hidden state at each sequence's last true
/// token, `[rows, hidden]`, computed in blocks of rows.
fn sequence_features(
    seq: &SequenceClassifier,
    ids: &[u32],
    lengths: &[usize],
    seq_len: usize,
) -> Result<Vec<f32>, TuneError> {
    let rows = lengths.len();
    let mut features = Vec::with_capacity(rows * seq.fc().in_features());
    for row0 in (0..rows).step_by(CE_BLOCK_ROWS) {
        let n = CE_BLOCK_ROWS.min(rows - row0);
        let xs = seq
            .emb()
            .forward(&ids[row0 * seq_len..(row0 + n) * seq_len], n, seq_len)?;
        let h = last_hidden(seq.rnn(), &xs, &lengths[row0..row0 + n])?;
        features.extend_from_slice(h.as_slice());
    }
    Ok(features)
}

fn head_scorer(
    layer: &Linear,
    features: &[f32],
    labels: &[u32],
    bound: f32,
    prune: bool,
    include_bias: bool,
) -> Result<HeadScorer, TuneError> {
    let build = if include_bias {
        HeadScorer::with_bias_candidate
    } else {
        HeadScorer::new
    };
    build(
        features,
        labels.len(),
        layer.in_features(),
        labels,
        layer.weight().as_slice(),
        layer.bias(),
        bound,
        prune,
    )
}

/// Scoring of an MLP layer before the last one.
struct LayerPath {
    /// Input of the tuned layer, `rows x inputs`.
    input: Vec<f32>,
    inputs: usize,
    outputs: usize,
    labels: Vec<u32>,
    /// The frozen bias, used when the bias is not tuned.
    bias0: Vec<f32>,
    include_bias: bool,
    /// The layers after the tuned one.
    after: Vec<Linear>,
    classes: usize,
    gemm: Gemm,
    stacked: Vec<f32>,
    bias_tiled: Vec<f32>,
    block: Vec<f32>,
}

impl LayerPath {
    fn new(mlp: &Mlp, layer: usize, input: Vec<f32>, labels: &[u32], include_bias: bool) -> Self {
        let tuned = &mlp.layers()[layer];
        let after = mlp.layers()[layer + 1..].to_vec();
        let classes = after[after.len() - 1].out_features();
        LayerPath {
            input,
            inputs: tuned.in_features(),
            outputs: tuned.out_features(),
            labels: labels.to_vec(),
            bias0: tuned.bias().to_vec(),
            include_bias,
            after,
            classes,
            gemm: Gemm::new(),
            stacked: Vec::new(),
            bias_tiled: Vec::new(),
            block: Vec::new(),
        }
    }

    /// Scores the population: for each block of rows, one GEMM computes
    /// `relu(X W_p^T + b_p)` for every candidate `p` side by side, then the
    /// later layers run on each candidate's columns of that block.
    fn score(
        &mut self,
        population: &[f32],
        fitness: Fitness,
        out: &mut [f64],
    ) -> Result<(), TuneError> {
        let candidates = out.len();
        if candidates == 0 {
            return Ok(());
        }
        let (inputs, outputs) = (self.inputs, self.outputs);
        let weight_len = inputs * outputs;
        let dim = population.len() / candidates;
        self.stacked.clear();
        self.bias_tiled.clear();
        for candidate in population.chunks_exact(dim) {
            self.stacked.extend_from_slice(&candidate[..weight_len]);
            if self.include_bias {
                self.bias_tiled.extend_from_slice(&candidate[weight_len..]);
            } else {
                self.bias_tiled.extend_from_slice(&self.bias0);
            }
        }

        let rows = self.labels.len();
        let width = candidates * outputs;
        let block_rows = (LAYER_BLOCK_FLOATS / width)
            .clamp(1, LAYER_BLOCK_ROWS)
            .min(rows);
        self.block.resize(block_rows * width, 0.0);
        let b = MatRef::row_major(&self.stacked, width, inputs)
            .map_err(layout_error)?
            .t();
        let mut counts = vec![0u64; candidates];
        let mut sums = vec![CrossEntropySum::default(); candidates];
        for row0 in (0..rows).step_by(block_rows) {
            let n = block_rows.min(rows - row0);
            let a = MatRef::row_major(&self.input[row0 * inputs..(row0 + n) * inputs], n, inputs)
                .map_err(layout_error)?;
            // When the stacked output is wider than the block is tall, the
            // GEMM packs the candidates' weights as its left operand and
            // computes the transpose, `W X^T`. A column-major block makes
            // that transpose's rows contiguous, so the kernel stores whole
            // vectors. A row-major block would make it scatter every tile
            // element with a stride of `width` floats, which profiling
            // showed to cost several times the products. Both layouts give
            // the same values, because the GEMM's results do not depend on
            // the orientation it picks.
            let layout = if width > n {
                BlockLayout::ColumnMajor
            } else {
                BlockLayout::RowMajor
            };
            let block = &mut self.block[..n * width];
            let c = match layout {
                BlockLayout::ColumnMajor => MatMut::col_major(block, n, width),
                BlockLayout::RowMajor => MatMut::row_major(block, n, width),
            }
            .map_err(layout_error)?;
            let epilogue = Epilogue {
                bias: Some(&self.bias_tiled),
                relu: true,
            };
            self.gemm.run_with(1.0, a, b, 0.0, c, epilogue)?;

            let tail = Tail {
                after: &self.after,
                block: &self.block[..n * width],
                layout,
                rows: n,
                width,
                outputs,
                classes: self.classes,
                labels: &self.labels[row0..row0 + n],
                fitness,
            };
            tail.run_all(&mut counts, &mut sums)?;
        }
        write_fitness(fitness, rows, &counts, &sums, out);
        Ok(())
    }
}

/// Storage order of one block of the tuned layer's stacked output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockLayout {
    RowMajor,
    ColumnMajor,
}

/// The layers after the tuned one, run on one block of rows for each
/// candidate.
struct Tail<'a> {
    after: &'a [Linear],
    /// The tuned layer's output, `rows x width`, candidates side by side.
    block: &'a [f32],
    layout: BlockLayout,
    rows: usize,
    width: usize,
    outputs: usize,
    classes: usize,
    labels: &'a [u32],
    fitness: Fitness,
}

impl Tail<'_> {
    /// Runs every candidate, in parallel over candidates when the
    /// `parallel` feature is on. Each candidate's count and loss sum only
    /// depend on its own rows, taken in order.
    fn run_all(&self, counts: &mut [u64], sums: &mut [CrossEntropySum]) -> Result<(), TuneError> {
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            let gemm = Gemm::new().sequential();
            counts
                .par_iter_mut()
                .zip(sums.par_iter_mut())
                .enumerate()
                .try_for_each(|(p, (count, sum))| self.run(gemm, p, count, sum))
        }
        #[cfg(not(feature = "parallel"))]
        {
            let gemm = Gemm::new();
            counts
                .iter_mut()
                .zip(sums.iter_mut())
                .enumerate()
                .try_for_each(|(p, (count, sum))| self.run(gemm, p, count, sum))
        }
    }

    /// Runs the later layers on candidate `p`'s columns of the block and
    /// adds its correct predictions to `count` and its losses to `sum`.
    fn run(
        &self,
        gemm: Gemm,
        p: usize,
        count: &mut u64,
        sum: &mut CrossEntropySum,
    ) -> Result<(), TuneError> {
        let n = self.rows;
        let (row_stride, col_stride) = match self.layout {
            BlockLayout::RowMajor => (self.width, 1),
            BlockLayout::ColumnMajor => (1, n),
        };
        let first = MatRef::new(
            &self.block[p * self.outputs * col_stride..],
            n,
            self.outputs,
            row_stride,
            col_stride,
        )
        .map_err(layout_error)?;
        let mut previous: Option<Vec<f32>> = None;
        for (j, layer) in self.after.iter().enumerate() {
            let last = j + 1 == self.after.len();
            let input = match &previous {
                Some(values) => {
                    MatRef::row_major(values, n, layer.in_features()).map_err(layout_error)?
                }
                None => first,
            };
            let weights = layer.weight();
            let w = MatRef::row_major(weights.as_slice(), weights.rows(), weights.cols())
                .map_err(layout_error)?
                .t();
            if last && self.fitness == Fitness::Error {
                let mut hits = [0u64];
                gemm.argmax_count(
                    input,
                    w,
                    Some(layer.bias()),
                    self.classes,
                    self.labels,
                    &mut hits,
                )?;
                *count += hits[0];
                return Ok(());
            }
            let mut next = vec![0.0f32; n * layer.out_features()];
            let c = MatMut::row_major(&mut next, n, layer.out_features()).map_err(layout_error)?;
            let epilogue = Epilogue {
                bias: Some(layer.bias()),
                relu: !last,
            };
            gemm.run_with(1.0, input, w, 0.0, c, epilogue)?;
            if last {
                sum.add_rows(&next, self.classes, self.labels);
            }
            previous = Some(next);
        }
        Ok(())
    }
}

fn write_fitness(
    fitness: Fitness,
    rows: usize,
    counts: &[u64],
    sums: &[CrossEntropySum],
    out: &mut [f64],
) {
    for ((f, &count), sum) in out.iter_mut().zip(counts).zip(sums) {
        *f = match fitness {
            Fitness::Error => 1.0 - count as f64 / rows as f64,
            Fitness::CrossEntropy => sum.total() / rows as f64,
        };
    }
}

/// Scoring of embedding and recurrent tensors by the model's forward pass.
struct ForwardPath {
    model: SequenceClassifier,
    location: Location,
    ids: Vec<u32>,
    lengths: Vec<usize>,
    seq_len: usize,
    labels: Vec<u32>,
    classes: usize,
    /// Embedded inputs per block of [`CE_BLOCK_ROWS`] rows, when the tuned
    /// tensor is recurrent and the cache fits [`EMBEDDING_CACHE_FLOATS`].
    embedded: Option<Vec<Vec<Matrix>>>,
}

impl ForwardPath {
    fn new(
        seq: &SequenceClassifier,
        location: Location,
        ids: &[u32],
        lengths: &[usize],
        seq_len: usize,
        labels: &[u32],
    ) -> Result<Self, TuneError> {
        let rows = labels.len();
        let cache_floats = ids.len().saturating_mul(seq.emb().dim());
        // NOTE: above the cache limit the embeddings are looked up again per
        // candidate and block, which costs memory bandwidth but not accuracy.
        let embedded = if location.param != 0 && cache_floats <= EMBEDDING_CACHE_FLOATS {
            let mut blocks = Vec::new();
            for row0 in (0..rows).step_by(CE_BLOCK_ROWS) {
                let n = CE_BLOCK_ROWS.min(rows - row0);
                blocks.push(seq.emb().forward(
                    &ids[row0 * seq_len..(row0 + n) * seq_len],
                    n,
                    seq_len,
                )?);
            }
            Some(blocks)
        } else {
            None
        };
        Ok(ForwardPath {
            model: seq.clone(),
            location,
            ids: ids.to_vec(),
            lengths: lengths.to_vec(),
            seq_len,
            labels: labels.to_vec(),
            classes: seq.fc().out_features(),
            embedded,
        })
    }

    fn score(
        &mut self,
        population: &[f32],
        fitness: Fitness,
        out: &mut [f64],
    ) -> Result<(), TuneError> {
        let candidates = out.len();
        if candidates == 0 {
            return Ok(());
        }
        let dim = population.len() / candidates;
        let mut counts = vec![0u64; candidates];
        let mut sums = vec![CrossEntropySum::default(); candidates];
        let this = &*self;
        let run = |(point, (count, sum)): (&[f32], (&mut u64, &mut CrossEntropySum))| {
            this.run(point, fitness, count, sum)
        };
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            population
                .par_chunks_exact(dim)
                .zip(counts.par_iter_mut().zip(sums.par_iter_mut()))
                .try_for_each(run)?;
        }
        #[cfg(not(feature = "parallel"))]
        population
            .chunks_exact(dim)
            .zip(counts.iter_mut().zip(sums.iter_mut()))
            .try_for_each(run)?;
        write_fitness(fitness, self.labels.len(), &counts, &sums, out);
        Ok(())
    }

    /// Scores one candidate: writes it into a copy of the model and runs
    /// the forward pass block by block, exactly as
    /// [`SequenceClassifier::forward`] does.
    fn run(
        &self,
        point: &[f32],
        fitness: Fitness,
        count: &mut u64,
        sum: &mut CrossEntropySum,
    ) -> Result<(), TuneError> {
        let mut model = self.model.clone();
        write_point(model.parameters_mut(), self.location, point)?;
        let rows = self.labels.len();
        let seq_len = self.seq_len;
        for (block, row0) in (0..rows).step_by(CE_BLOCK_ROWS).enumerate() {
            let n = CE_BLOCK_ROWS.min(rows - row0);
            let looked_up;
            let xs = match &self.embedded {
                Some(blocks) => &blocks[block],
                None => {
                    looked_up = model.emb().forward(
                        &self.ids[row0 * seq_len..(row0 + n) * seq_len],
                        n,
                        seq_len,
                    )?;
                    &looked_up
                }
            };
            let h = last_hidden(model.rnn(), xs, &self.lengths[row0..row0 + n])?;
            let logits = model.fc().forward(&h)?;
            let labels = &self.labels[row0..row0 + n];
            match fitness {
                Fitness::Error => {
                    for (z, &label) in logits.as_slice().chunks_exact(self.classes).zip(labels) {
                        let predicted = heft_kernels::gemm::argmax_group(z);
                        *count += u64::from(predicted == Some(label as usize));
                    }
                }
                Fitness::CrossEntropy => sum.add_rows(logits.as_slice(), self.classes, labels),
            }
        }
        Ok(())
    }
}
