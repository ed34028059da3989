//! The model-level objective: one tensor of a model tuned inside a box,
//! scored on a validation split by the fastest exact path for that tensor.

use crate::ce::{CrossEntropySum, CE_BLOCK_ROWS};
use crate::head::layout_error;
use crate::interval::SearchBox;
use crate::model::{check_split, last_hidden, tensor_names, Fitness, Model, Split, Target};
use crate::prune::{decide_rows, MlpBounds, Pruning, SequenceBounds, SequenceRadii};
use crate::recurrent::{
    score_candidate, CacheLimits, InputCache, PackedTokens, Scratch, TokenRows, Weights,
};
use crate::zeros::grouped_by_zeros;
use crate::{HeadScorer, TuneError};
use heft_kernels::gemm::{Epilogue, Gemm, MatMut, MatRef, SparseA};
use heft_nn::{Linear, Mlp, SequenceClassifier};
use heft_search::Objective;
use heft_tensor::Matrix;
use std::sync::{Mutex, PoisonError};

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

/// Largest embedded split (true tokens times the embedding size), in floats
/// (256 MiB), that the recurrent path keeps in memory instead of looking
/// the embeddings up per candidate. With pruning, the rows left open get a
/// cache of their own under the same limit, so the two caches take at most
/// twice this.
const EMBEDDING_CACHE_FLOATS: usize = 64 << 20;

/// Largest input projection `x W_ih^T` of a split (true tokens times the
/// gate rows, `4H` for the LSTM), in floats (256 MiB), that the recurrent
/// path keeps in memory when tuning `weight_hh_l0` or a recurrent bias.
/// Above it the path caches the embeddings and recomputes the projection
/// per candidate. With pruning, the open rows get their own cache under
/// the same limit, as for [`EMBEDDING_CACHE_FLOATS`].
const PROJECTION_CACHE_FLOATS: usize = 64 << 20;

/// The cache limits of the recurrent path.
const CACHE_LIMITS: CacheLimits = CacheLimits {
    embedding: EMBEDDING_CACHE_FLOATS,
    projection: PROJECTION_CACHE_FLOATS,
};

/// Position of the tuned values: indices into the model's
/// `parameters_mut()` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Location {
    /// The tuned tensor.
    param: usize,
    /// Its bias, when that is tuned too.
    bias_param: Option<usize>,
}

/// Checks that `model` has the tensor `target` names, and its bias when
/// `target.include_bias`, without building an objective.
///
/// # Errors
///
/// [`TuneError::UnknownTensor`] or [`TuneError::NoBias`], as
/// [`ModelObjective::new`] returns them.
pub fn check_target(model: &Model, target: &Target) -> Result<(), TuneError> {
    locate(model, target).map(|_| ())
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
    /// candidate over rows sorted by length. Boxed because it contains a
    /// copy of the model and two row sets.
    Forward(Box<ForwardPath>),
}

/// One tensor of a model tuned inside the box `w0 +- bound`, scored on a
/// validation split.
///
/// The path depends on the tensor:
///
/// - The last linear layer (the last `fcK.weight` of an MLP, `fc.weight`
///   of a sequence model): the frozen layers' output is computed once, and
///   a [`HeadScorer`] scores each population with one GEMM and a fused
///   argmax count.
/// - An earlier MLP layer: its input is computed once; one GEMM computes
///   the tuned layer's output for every candidate in blocks of rows, and
///   the later layers run per candidate on each block.
/// - Embedding and recurrent tensors: the model's forward pass runs for
///   each candidate, with the tuned tensor read from the candidate, over
///   the rows sorted by true length so that each step skips the rows that
///   have ended. The input projection `x W_ih^T` is computed once when
///   the tuned tensor is `weight_hh_l0` or a recurrent bias, and the
///   embedding lookup once when it is `weight_ih_l0`.
///
/// With pruning on and [`Fitness::Error`], every path first finds the rows
/// whose prediction no candidate inside the box can change, by interval
/// arithmetic through the layers after the tuned tensor with bounds on the
/// f32 rounding. Those rows are counted once and skipped for every
/// population that lies inside the box. A population with a candidate
/// outside the box is scored over every row.
///
/// Every path computes each logit with the same GEMM calls as the model's
/// own forward pass, so fitness equals that of [`crate::evaluate`] on the
/// model with the candidate applied, bit for bit, for any thread count.
/// The recurrent path runs those GEMMs on fewer rows at a time. That does
/// not change a row's result, because the GEMM computes each element from
/// its own row and column in an order that depends on the inner size only.
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
    /// exact row pruning, which applies with [`Fitness::Error`] only.
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
        let pruning_box = prune.then(|| SearchBox::around(&initial, bound));
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
                        pruning_box,
                        fitness,
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
                    let rows = TokenRows {
                        ids,
                        lengths,
                        seq_len,
                        labels,
                    };
                    Path::Forward(Box::new(ForwardPath::new(
                        seq,
                        location,
                        rows,
                        pruning_box,
                        CACHE_LIMITS,
                    )?))
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

    /// Returns the share of rows skipped by pruning, in [0, 1]: the rows
    /// whose prediction no candidate inside the box can change. It is 0
    /// with pruning off or cross-entropy fitness. Every tensor is pruned,
    /// but how many rows the interval bounds can fix depends on the tensor:
    /// bounds through recurrent steps widen with every step, so recurrent
    /// and embedding tensors may fix few or no rows of long sequences.
    pub fn pruned_fraction(&self) -> f64 {
        self.pruning().map_or(0.0, Pruning::pruned_fraction)
    }

    /// Returns the share of the tuned layer's multiply-adds skipped because
    /// their inputs are zero, in [0, 1]. For the last MLP layer it covers
    /// the open rows. For an earlier layer it covers the rows of the last
    /// population scored, and is 0 before the first. The recurrent tensors
    /// of the sequence model skip none.
    pub fn skipped_fraction(&self) -> f64 {
        match &self.path {
            Path::Head(scorer) => scorer.skipped_fraction(),
            Path::Layer(layer) => layer.skipped_fraction(),
            Path::Forward(_) => 0.0,
        }
    }

    /// Returns the number of populations scored over every row, skipping
    /// none, because a candidate lay outside the box that pruning assumed.
    pub fn full_scans(&self) -> u64 {
        self.pruning().map_or(0, Pruning::full_scans)
    }

    fn pruning(&self) -> Option<&Pruning> {
        match &self.path {
            Path::Head(scorer) => Some(scorer.pruning()),
            Path::Layer(layer) => layer.pruned.as_ref().map(|p| &p.pruning),
            Path::Forward(forward) => forward.pruned.as_ref().map(|p| &p.pruning),
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
    /// The rows pruning could not fix, when pruning is on.
    pruned: Option<PrunedRows>,
    /// The frozen bias, used when the bias is not tuned.
    bias0: Vec<f32>,
    include_bias: bool,
    /// The layers after the tuned one.
    after: Vec<Linear>,
    classes: usize,
    gemm: Gemm,
    /// The input packed for the sparse GEMM, for all rows (index 0) and
    /// for the open rows (index 1), built at the first population that
    /// needs it.
    packed: [Option<PackedBlocks>; 2],
    /// The slot of `packed` the last population used.
    last_packed: Option<usize>,
    stacked: Vec<f32>,
    bias_tiled: Vec<f32>,
    block: Vec<f32>,
}

/// The tuned layer's input packed by [`Gemm::pack_sparse_a`], one packed
/// matrix per block of rows.
struct PackedBlocks {
    block_rows: usize,
    blocks: Vec<SparseA>,
}

impl PackedBlocks {
    fn new(
        gemm: &Gemm,
        input: &[f32],
        inputs: usize,
        block_rows: usize,
    ) -> Result<Self, TuneError> {
        let rows = input.len() / inputs;
        let mut blocks = Vec::new();
        for row0 in (0..rows).step_by(block_rows.max(1)) {
            let n = block_rows.min(rows - row0);
            let a = MatRef::row_major(&input[row0 * inputs..(row0 + n) * inputs], n, inputs)
                .map_err(layout_error)?;
            blocks.push(gemm.pack_sparse_a(a));
        }
        Ok(PackedBlocks { block_rows, blocks })
    }
}

/// The rows of a dense split that pruning left open, with the record of the
/// fixed ones.
struct PrunedRows {
    pruning: Pruning,
    /// Input of the tuned layer for the open rows, `open rows x inputs`.
    input: Vec<f32>,
    labels: Vec<u32>,
}

impl PrunedRows {
    /// Decides every row of `input` (the tuned layer's input) with
    /// [`MlpBounds`] and keeps the open ones.
    fn new(
        mlp: &Mlp,
        layer: usize,
        input: &[f32],
        labels: &[u32],
        include_bias: bool,
        search_box: SearchBox,
    ) -> Self {
        let inputs = mlp.layers()[layer].in_features();
        let bounds = MlpBounds::new(mlp, layer, search_box.radius(), include_bias);
        let decisions = decide_rows(labels.len(), |row| {
            bounds.decide(&input[row * inputs..(row + 1) * inputs])
        });
        let mut open_input = Vec::new();
        let mut open_labels = Vec::new();
        for ((x, &label), decision) in input.chunks_exact(inputs).zip(labels).zip(&decisions) {
            if decision.is_none() {
                open_input.extend_from_slice(x);
                open_labels.push(label);
            }
        }
        PrunedRows {
            pruning: Pruning::new(search_box, &decisions, labels),
            input: open_input,
            labels: open_labels,
        }
    }
}

impl LayerPath {
    /// With [`Fitness::Error`], whose count does not depend on the order of
    /// the rows, the rows are reordered so that the sparse GEMM skips more
    /// of the tuned layer's zero inputs (see [`grouped_by_zeros`]).
    fn new(
        mlp: &Mlp,
        layer: usize,
        input: Vec<f32>,
        labels: &[u32],
        include_bias: bool,
        pruning_box: Option<SearchBox>,
        fitness: Fitness,
    ) -> Self {
        let tuned = &mlp.layers()[layer];
        let after = mlp.layers()[layer + 1..].to_vec();
        let classes = after[after.len() - 1].out_features();
        let mut pruned = pruning_box.map(|search_box| {
            PrunedRows::new(mlp, layer, &input, labels, include_bias, search_box)
        });
        let gemm = Gemm::new();
        let inputs = tuned.in_features();
        let (input, labels) = if fitness == Fitness::Error {
            let group = gemm.tile().1;
            if let Some(open) = &mut pruned {
                (open.input, open.labels) =
                    grouped_by_zeros(&open.input, inputs, &open.labels, group);
            }
            grouped_by_zeros(&input, inputs, labels, group)
        } else {
            (input, labels.to_vec())
        };
        LayerPath {
            input,
            inputs,
            outputs: tuned.out_features(),
            labels,
            pruned,
            bias0: tuned.bias().to_vec(),
            include_bias,
            after,
            classes,
            gemm,
            packed: [None, None],
            last_packed: None,
            stacked: Vec::new(),
            bias_tiled: Vec::new(),
            block: Vec::new(),
        }
    }

    /// Scores the population: for each block of rows (the open rows when
    /// the population lies inside the pruning box), one GEMM computes
    /// `relu(X W_p^T + b_p)` for every candidate `p` side by side, then the
    /// later layers run on each candidate's columns of that block.
    ///
    /// For a finite population the GEMM skips the zeros of X, packed once
    /// per run ([`Gemm::run_packed_sparse_a`]), which gives the same bits
    /// as the dense product. A population with NaN or infinity takes the dense product,
    /// so its NaN reaches the logits as in the model's forward pass.
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

        let use_open = match &mut self.pruned {
            Some(pruned) => pruned.pruning.admits(population),
            None => false,
        };
        let (input, labels, fixed_correct) = match &self.pruned {
            Some(pruned) if use_open => (
                &pruned.input,
                &pruned.labels,
                pruned.pruning.fixed_correct(),
            ),
            _ => (&self.input, &self.labels, 0),
        };
        let mut counts = vec![fixed_correct; candidates];
        let mut sums = vec![CrossEntropySum::default(); candidates];
        let rows = labels.len();
        let width = candidates * outputs;
        let block_rows = (LAYER_BLOCK_FLOATS / width)
            .clamp(1, LAYER_BLOCK_ROWS)
            .min(rows);
        self.block.resize(block_rows * width, 0.0);
        let b = MatRef::row_major(&self.stacked, width, inputs)
            .map_err(layout_error)?
            .t();
        let finite = population.iter().all(|x| x.is_finite());
        self.last_packed = finite.then_some(usize::from(use_open));
        let packed = if finite {
            let slot = &mut self.packed[usize::from(use_open)];
            if slot.as_ref().map(|p| p.block_rows) != Some(block_rows) {
                *slot = Some(PackedBlocks::new(&self.gemm, input, inputs, block_rows)?);
            }
            slot.as_ref()
        } else {
            None
        };
        // With every row fixed, block_rows is 0 and nothing is scanned.
        for (index, row0) in (0..rows).step_by(block_rows.max(1)).enumerate() {
            let n = block_rows.min(rows - row0);
            let a = MatRef::row_major(&input[row0 * inputs..(row0 + n) * inputs], n, inputs)
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
            // The sparse product computes the transpose whatever the shape.
            let layout = if packed.is_some() || width > n {
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
            if let Some(packed) = packed {
                let a = &packed.blocks[index];
                self.gemm.run_packed_sparse_a(1.0, a, b, 0.0, c, epilogue)?;
            } else {
                self.gemm.run_with(1.0, a, b, 0.0, c, epilogue)?;
            }

            let tail = Tail {
                after: &self.after,
                block: &self.block[..n * width],
                layout,
                rows: n,
                width,
                outputs,
                classes: self.classes,
                labels: &labels[row0..row0 + n],
                fitness,
            };
            tail.run_all(&mut counts, &mut sums)?;
        }
        write_fitness(fitness, self.labels.len(), &counts, &sums, out);
        Ok(())
    }
}

impl LayerPath {
    /// Returns the share of multiply-adds the sparse GEMM skipped for the
    /// last population, over all its blocks of rows.
    fn skipped_fraction(&self) -> f64 {
        let Some(packed) = self.last_packed.and_then(|slot| self.packed[slot].as_ref()) else {
            return 0.0;
        };
        let rows: usize = packed.blocks.iter().map(SparseA::rows).sum();
        if rows == 0 {
            return 0.0;
        }
        let weighted: f64 = packed
            .blocks
            .iter()
            .map(|block| block.skipped_fraction() * block.rows() as f64)
            .sum();
        weighted / rows as f64
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

/// The token rows that pruning left open, with the record of the fixed
/// ones.
struct PrunedTokens {
    pruning: Pruning,
    open: PackedTokens,
}

impl PrunedTokens {
    /// Decides every row with [`SequenceBounds`] and keeps the open ones,
    /// packed with `cache` under `limits`.
    fn new(
        seq: &SequenceClassifier,
        location: Location,
        rows: TokenRows<'_>,
        search_box: SearchBox,
        cache: InputCache,
        limits: CacheLimits,
    ) -> Result<Self, TuneError> {
        let bounds = SequenceBounds::new(seq, sequence_radii(location, search_box.radius()));
        let seq_len = rows.seq_len;
        let decisions = decide_rows(rows.labels.len(), |row| {
            let start = row * seq_len;
            bounds.decide(&rows.ids[start..start + rows.lengths[row]])
        });
        let mut ids = Vec::new();
        let mut lengths = Vec::new();
        let mut labels = Vec::new();
        for (row, decision) in decisions.iter().enumerate() {
            if decision.is_none() {
                ids.extend_from_slice(&rows.ids[row * seq_len..(row + 1) * seq_len]);
                lengths.push(rows.lengths[row]);
                labels.push(rows.labels[row]);
            }
        }
        let open = TokenRows {
            ids: &ids,
            lengths: &lengths,
            seq_len,
            labels: &labels,
        };
        Ok(PrunedTokens {
            pruning: Pruning::new(search_box, &decisions, rows.labels),
            open: PackedTokens::new(seq, open, cache, limits)?,
        })
    }
}

/// Returns the radii of the sequence model's tensors in the box: `radius`
/// for the tuned tensor and its bias, 0 for the others.
fn sequence_radii(location: Location, radius: f64) -> SequenceRadii {
    let mut radii = SequenceRadii::default();
    for param in std::iter::once(location.param).chain(location.bias_param) {
        match param {
            0 => radii.embedding = radius,
            1 => radii.weight_ih = radius,
            2 => radii.weight_hh = radius,
            3 => radii.bias_ih = radius,
            4 => radii.bias_hh = radius,
            // fc.weight and fc.bias are scored by the head path.
            _ => {}
        }
    }
    radii
}

/// Scoring of embedding and recurrent tensors by the sequence model's
/// forward pass over rows sorted by length ([`crate::recurrent`]).
struct ForwardPath {
    /// The pre-trained model; each candidate replaces the tuned tensor
    /// (and bias) by reference, without copying the model.
    model: SequenceClassifier,
    location: Location,
    all: PackedTokens,
    /// The rows pruning could not fix, when pruning is on.
    pruned: Option<PrunedTokens>,
    /// Scratch buffers, one per candidate being scored at a time, kept
    /// across populations.
    scratch: Mutex<Vec<Scratch>>,
}

impl ForwardPath {
    fn new(
        seq: &SequenceClassifier,
        location: Location,
        rows: TokenRows<'_>,
        pruning_box: Option<SearchBox>,
        limits: CacheLimits,
    ) -> Result<Self, TuneError> {
        // Cache what does not depend on the tuned tensor: the input
        // projection `x W_ih^T` unless the embedding or `weight_ih` is tuned
        // (the recurrent biases are added per candidate), and the embedded
        // tokens unless the embedding is tuned.
        let cache = match location.param {
            0 => InputCache::None,
            1 => InputCache::Embedding,
            _ => InputCache::Projection,
        };
        let pruned = pruning_box
            .map(|search_box| PrunedTokens::new(seq, location, rows, search_box, cache, limits))
            .transpose()?;
        Ok(ForwardPath {
            model: seq.clone(),
            location,
            all: PackedTokens::new(seq, rows, cache, limits)?,
            pruned,
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// Scores the population over the open rows when it lies inside the
    /// pruning box, else over every row.
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
        let use_open = match &mut self.pruned {
            Some(pruned) => pruned.pruning.admits(population),
            None => false,
        };
        let (rows, fixed_correct) = match &self.pruned {
            Some(pruned) if use_open => (&pruned.open, pruned.pruning.fixed_correct()),
            _ => (&self.all, 0),
        };
        let mut counts = vec![fixed_correct; candidates];
        let mut sums = vec![CrossEntropySum::default(); candidates];
        let this = &*self;
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            // With fewer candidates than threads, the GEMMs of each
            // candidate may use the idle threads. Either way the results
            // are the same bits.
            let gemm = if candidates >= rayon::current_num_threads() {
                Gemm::new().sequential()
            } else {
                Gemm::new()
            };
            population
                .par_chunks_exact(dim)
                .zip(counts.par_iter_mut().zip(sums.par_iter_mut()))
                .try_for_each(|(point, (count, sum))| {
                    this.run(rows, point, gemm, fitness, count, sum)
                })?;
        }
        #[cfg(not(feature = "parallel"))]
        {
            let gemm = Gemm::new();
            population
                .chunks_exact(dim)
                .zip(counts.iter_mut().zip(sums.iter_mut()))
                .try_for_each(|(point, (count, sum))| {
                    this.run(rows, point, gemm, fitness, count, sum)
                })?;
        }
        write_fitness(fitness, self.all.rows(), &counts, &sums, out);
        Ok(())
    }

    /// Scores one candidate on `rows` with the model's tensors, the tuned
    /// one (and its bias) read from `point`.
    fn run(
        &self,
        rows: &PackedTokens,
        point: &[f32],
        gemm: Gemm,
        fitness: Fitness,
        count: &mut u64,
        sum: &mut CrossEntropySum,
    ) -> Result<(), TuneError> {
        let params = self.model.parameters();
        let weight_len = params[self.location.param].len();
        let bias_len = self.location.bias_param.map_or(0, |b| params[b].len());
        if point.len() != weight_len + bias_len {
            return Err(TuneError::Shape {
                what: "point",
                expected: format!("{} values", weight_len + bias_len),
                actual: format!("{} values", point.len()),
            });
        }
        let (tensor, bias) = point.split_at(weight_len);
        let mut weights = Weights::of(&self.model);
        weights.replace(self.location.param, tensor);
        if let Some(b) = self.location.bias_param {
            weights.replace(b, bias);
        }
        let mut scratch = self.take_scratch();
        let result = score_candidate(
            &self.model,
            weights,
            rows,
            gemm,
            fitness,
            &mut scratch,
            count,
            sum,
        );
        self.return_scratch(scratch);
        result
    }

    fn take_scratch(&self) -> Scratch {
        let mut pool = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        pool.pop().unwrap_or_default()
    }

    fn return_scratch(&self, scratch: Scratch) {
        let mut pool = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        pool.push(scratch);
    }
}
