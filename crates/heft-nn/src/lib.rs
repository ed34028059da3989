//! Neural-network layers, models, gradient optimisers, a training loop and
//! safetensors checkpoints for heft, with PyTorch's layouts and parameter
//! names so that weights move between heft and PyTorch both ways.
//!
//! ```
//! use heft_nn::{cross_entropy, Mlp, SplitMix64};
//! use heft_tensor::Matrix;
//!
//! let mut rng = SplitMix64::new(42);
//! let mlp = Mlp::init(&[4, 8, 3], &mut rng)?;
//! assert_eq!(mlp.parameter_names(), ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
//! let x = Matrix::zeros(5, 4)?;
//! let logits = mlp.forward(&x)?;
//! assert_eq!(logits.shape(), (5, 3));
//! let loss = cross_entropy(&logits, &[0, 1, 2, 0, 1])?;
//! assert!(loss.is_finite());
//! # Ok::<(), heft_nn::NnError>(())
//! ```
//!
//! # Crate layout
//!
//! - `linear`: [`Linear`] (`Y = X W^T + b`) and its gradients.
//! - `activation`: [`Relu`].
//! - `loss`: [`cross_entropy`], [`cross_entropy_with_grad`] and
//!   [`correct_count`].
//! - `embedding`: [`Embedding`] with padding id 0.
//! - `recurrent`: [`Rnn`] and [`Lstm`] with backward through time.
//! - `mlp`: [`Mlp`] with layers `fc1`, `fc2`, ...
//! - `sequence`: [`SequenceClassifier`] (`emb`, `rnn`, `fc`) on the last
//!   true token of each sequence.
//! - `optim`: the gradient optimisers [`Adam`] and [`Sgd`].
//! - `checkpoint`: safetensors files with PyTorch `state_dict` names.
//! - `train`: [`train_mlp`] and [`train_sequence_classifier`] over
//!   in-memory data.
//! - `workspace`: [`MlpWorkspace`], preallocated buffers for MLP training
//!   steps that allocate nothing in steady state.
//! - `sequence_workspace`: [`SequenceWorkspace`], reused buffers for
//!   sequence-classifier training steps that split each batch into fixed
//!   shards of rows and run them on the rayon pool.
//! - `rng`: [`SplitMix64`], the seeded generator for initialisation and
//!   shuffling.
//!
//! # Features
//!
//! - `parallel` (default): the GEMM under every layer, the shards of a
//!   sequence-classifier batch and the optimiser's update of large
//!   parameters run on the rayon thread pool. Results do not depend on the
//!   thread count.

#![forbid(unsafe_code)]

mod activation;
mod checkpoint;
mod embedding;
mod error;
mod linear;
mod loss;
mod mlp;
mod optim;
mod recurrent;
mod rng;
mod sequence;
mod sequence_workspace;
mod train;
mod workspace;

pub use activation::Relu;
pub use checkpoint::{
    load_mlp, load_mlp_with_sizes, load_sequence_classifier, read_metadata, save_mlp,
    save_mlp_with_metadata, save_sequence_classifier, save_sequence_classifier_with_metadata,
    CheckpointError, Problem,
};
pub use embedding::{Embedding, PADDING_ID};
pub use error::NnError;
pub use linear::{Linear, LinearGrads, LinearInit};
pub use loss::{correct_count, cross_entropy, cross_entropy_with_grad};
pub use mlp::{Mlp, MlpActivations, MlpGrads};
pub use optim::{Adam, AdamConfig, Optimiser, Sgd, SgdConfig};
pub use recurrent::{
    Lstm, LstmState, LstmTrace, RecurrentGrads, Rnn, RnnTrace, RECURRENT_PARAMETER_NAMES,
};
pub use rng::SplitMix64;
pub use sequence::{
    RecurrentKind, RecurrentLayer, SequenceActivations, SequenceClassifier, SequenceGrads,
    TokenBatch,
};
pub use sequence_workspace::SequenceWorkspace;
pub use train::{
    evaluate, evaluate_sequences, train_mlp, train_sequence_classifier, Dataset, EpochReport,
    OptimiserConfig, SequenceDataset, TrainConfig, TrainReport,
};
pub use workspace::MlpWorkspace;
