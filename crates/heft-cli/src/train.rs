//! `heft train`: pre-train an MLP on images or a sequence classifier on
//! text with Adam and softmax cross-entropy, and write a checkpoint.

use crate::data::{self, ImageSplits, TextSplits};
use crate::engine::{Model, ModelExt};
use clap::{Args, ValueEnum};
use heft_nn::{
    AdamConfig, Dataset, Mlp, OptimiserConfig, RecurrentKind, SequenceClassifier, SequenceDataset,
    SplitMix64, TrainConfig, TrainReport,
};
use std::path::{Path, PathBuf};

/// The kind of model and dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Task {
    /// MLP on IDX images (Fashion-MNIST by default).
    Image,
    /// Embedding, recurrent layer and linear head on a delimited text file.
    Text,
}

/// Dataset options shared by `train`, `tune` and `eval`.
#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// Kind of model and dataset.
    #[arg(long, value_enum, default_value_t = Task::Image)]
    pub task: Task,
    /// Dataset: for `image` a directory with the IDX files of the train and
    /// test sets (default: the 12,000-image Fashion-MNIST subset); for
    /// `text` a delimited file with `sentiment` and `text` columns
    /// (default: the 6,000-record sentiment corpus), whose encoded form is
    /// cached beside it as `<file name>.heft-cache` and rebuilt whenever
    /// the file's content changes. The defaults are read
    /// from the repository's `datasets/` directory, found at build time, or
    /// from the directory in the HEFT_DATASETS environment variable.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Share of the training images held out as the validation split,
    /// between 0 and 1, both excluded [default: 0.2]. The split seed is
    /// fixed, so every command holds out the same images. `heft train`
    /// records the share in the checkpoint, and `tune` and `eval` of that
    /// checkpoint use the recorded share: passing another one is an error,
    /// because its validation split would overlap the training images.
    /// Checkpoints without the record (from PyTorch, say) use the default.
    /// Image task only.
    #[arg(long, value_name = "SHARE")]
    pub valid_share: Option<f64>,
    /// Number of classes of an IDX dataset (labels must be below it).
    /// Image task only.
    #[arg(long, default_value_t = DEFAULT_CLASSES)]
    pub classes: usize,
}

/// Checks a `--valid-share` value: between 0 and 1, both excluded.
fn check_valid_share(valid_share: f64) -> Result<(), String> {
    if valid_share > 0.0 && valid_share < 1.0 {
        return Ok(());
    }
    Err(format!(
        "invalid --valid-share {valid_share:?}: pass a share between 0 and 1, both excluded"
    ))
}

/// Default of `--classes`: the ten classes of Fashion-MNIST.
const DEFAULT_CLASSES: usize = 10;

/// Largest `--classes` of the image task: IDX labels are `u8`.
const MAX_IMAGE_CLASSES: usize = 256;

/// Loaded splits of either task.
pub enum Splits {
    Image(ImageSplits),
    Text(TextSplits),
}

impl Splits {
    /// Returns the content fingerprint of the loaded splits
    /// ([`ImageSplits::fingerprint`], [`TextSplits::fingerprint`]).
    pub fn fingerprint(&self) -> String {
        match self {
            Splits::Image(splits) => splits.fingerprint(),
            Splits::Text(splits) => splits.fingerprint(),
        }
    }
}

impl DataArgs {
    /// Returns the validation share: --valid-share or its default.
    pub fn valid_share(&self) -> f64 {
        self.valid_share.unwrap_or(heft_data::DEFAULT_VALID_SHARE)
    }

    pub fn load(&self) -> Result<Splits, String> {
        self.load_with_share(self.valid_share())
    }

    /// Loads the dataset for the model in `checkpoint`, with the validation
    /// share it was trained with when the checkpoint records one. An
    /// explicit --valid-share that differs from it is an error: that
    /// validation split would contain training images, or leave out some
    /// that were never trained on.
    pub fn load_for_checkpoint(&self, checkpoint: &Path) -> Result<Splits, String> {
        check_valid_share(self.valid_share())?;
        let share = match recorded_valid_share(checkpoint)? {
            Some(recorded) if self.task == Task::Image => {
                if let Some(requested) = self.valid_share {
                    if requested != recorded {
                        return Err(format!(
                            "checkpoint {} was trained with --valid-share {recorded:?}, so \
                             --valid-share {requested:?} would give a validation split that \
                             overlaps its training images or misses some of the held-out \
                             ones; leave --valid-share out or pass {recorded:?}",
                            checkpoint.display()
                        ));
                    }
                }
                recorded
            }
            _ => self.valid_share(),
        };
        self.load_with_share(share)
    }

    fn load_with_share(&self, valid_share: f64) -> Result<Splits, String> {
        check_valid_share(valid_share)?;
        if self.task == Task::Text {
            // The text corpus has a fixed split and its own class count.
            if valid_share != heft_data::DEFAULT_VALID_SHARE {
                return Err(format!(
                    "--valid-share {valid_share} applies to the image task only; the text corpus \
                     has a fixed split, so leave --valid-share out with --task text"
                ));
            }
            if self.classes != DEFAULT_CLASSES {
                return Err(format!(
                    "--classes {} applies to the image task only; the text corpus defines its \
                     classes, so leave --classes out with --task text",
                    self.classes
                ));
            }
        }
        if self.task == Task::Image && !(1..=MAX_IMAGE_CLASSES).contains(&self.classes) {
            return Err(format!(
                "invalid --classes {}: IDX labels are single bytes, so pass 1 to \
                 {MAX_IMAGE_CLASSES}",
                self.classes
            ));
        }
        match self.task {
            Task::Image => Ok(Splits::Image(data::load_images(
                self.data.as_deref(),
                self.classes,
                valid_share,
            )?)),
            Task::Text => Ok(Splits::Text(data::load_text(self.data.as_deref())?)),
        }
    }
}

/// Recurrent layer of the text model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Cell {
    Lstm,
    Rnn,
}

/// Options of `heft train`.
#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Checkpoint to write (safetensors, PyTorch `state_dict` names). Its
    /// directory must exist.
    #[arg(long, default_value = "model.safetensors", value_name = "PATH")]
    pub out: PathBuf,
    /// Replace an existing checkpoint file at --out. Only a regular file is
    /// replaced; a device, FIFO, socket or symbolic link is an error.
    #[arg(long)]
    pub force: bool,
}

/// Model and training hyperparameters; `heft tune` without a checkpoint
/// trains with their defaults.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// MLP layer sizes, input first, comma-separated. The first must equal
    /// the pixels per image and the last the class count. Image task only.
    #[arg(long, value_delimiter = ',', default_value = "784,128,10")]
    pub sizes: Vec<usize>,
    /// Recurrent layer of the text model.
    #[arg(long, value_enum, default_value_t = Cell::Lstm)]
    pub cell: Cell,
    /// Embedding width of the text model.
    #[arg(long, default_value_t = 32)]
    pub embed: usize,
    /// Hidden-state width of the text model.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Passes over the training split, 1 to 100,000.
    #[arg(long, default_value_t = DEFAULT_EPOCHS)]
    pub epochs: usize,
    /// Rows per gradient step, 1 or more. A value above the number of
    /// training rows takes all of them in one step.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Adam learning rate, a positive number.
    #[arg(long, default_value_t = 1e-3, value_parser = parse_lr)]
    pub lr: f32,
    /// Seed of the weight initialisation and the shuffling order.
    #[arg(long = "train-seed", default_value_t = 0)]
    pub seed: u64,
}

/// Parses a `--lr` value (see [`parse_f32_as_typed`]).
pub(crate) fn parse_lr(text: &str) -> Result<f32, String> {
    parse_f32_as_typed(text, "0.001").map(|value| value as f32)
}

/// Parses a number option as f64 and checks that it fits an f32. A
/// finite number beyond the f32 range is reported as typed, not as the
/// infinity that f32 parsing makes of it. A nonzero number that rounds to
/// zero in f32 is rejected too. `example` is the value the messages
/// suggest.
pub(crate) fn parse_f32_as_typed(text: &str, example: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|e| format!("{e}; pass a positive number such as {example}"))?;
    if value.is_finite() && value.abs() > f64::from(f32::MAX) {
        return Err(format!(
            "{text} is beyond the f32 range (about 3.4e38); pass a positive number such as \
             {example}"
        ));
    }
    if value != 0.0 && value as f32 == 0.0 {
        return Err(format!(
            "{text} is below the smallest positive f32 (about 1.4e-45); pass a positive number \
             such as {example}"
        ));
    }
    Ok(value)
}

/// Largest `--epochs` value accepted: far beyond any useful training of
/// these models, and small enough that the per-epoch report fits in memory.
pub const MAX_EPOCHS: usize = 100_000;

/// Checks an `--epochs` value against 1 to [`MAX_EPOCHS`].
pub fn check_epochs(epochs: usize) -> Result<(), String> {
    if epochs == 0 || epochs > MAX_EPOCHS {
        return Err(format!("invalid --epochs {epochs}: pass 1 to {MAX_EPOCHS}"));
    }
    Ok(())
}

/// Default epochs. Twenty epochs of the default MLP on the embedded
/// 9,600 training images took about 3 s on a 2-core x86-64 machine.
pub const DEFAULT_EPOCHS: usize = 20;

impl Default for ModelArgs {
    fn default() -> Self {
        ModelArgs {
            sizes: vec![784, 128, 10],
            cell: Cell::Lstm,
            embed: 32,
            hidden: 64,
            epochs: DEFAULT_EPOCHS,
            batch_size: 100,
            lr: 1e-3,
            seed: 0,
        }
    }
}

impl ModelArgs {
    /// Checks the training options that need no data, so that a bad value
    /// fails before anything is loaded or trained.
    pub fn check(&self) -> Result<(), String> {
        check_epochs(self.epochs)?;
        if self.batch_size == 0 {
            return Err("invalid --batch-size 0: pass 1 or more".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!(
                "invalid --lr {}: the learning rate must be a positive number such as 0.001",
                self.lr
            ));
        }
        Ok(())
    }

    /// Returns the training configuration for a training split of
    /// `train_rows` rows. A batch larger than the split is cut to the
    /// split's size: it trains the same way, without buffers for rows
    /// that do not exist.
    fn config(&self, train_rows: usize) -> Result<TrainConfig, String> {
        self.check()?;
        Ok(TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size.min(train_rows.max(1)),
            seed: self.seed,
            optimiser: OptimiserConfig::Adam(AdamConfig {
                lr: self.lr,
                ..AdamConfig::default()
            }),
            patience: None,
            ..TrainConfig::default()
        })
    }

    /// Builds the model these options describe for `splits`, with the
    /// initial weights that [`ModelArgs::train`] starts from.
    pub fn init(&self, splits: &Splits) -> Result<Model, String> {
        let mut rng = SplitMix64::new(self.seed);
        Ok(match splits {
            Splits::Image(images) => Model::Mlp(self.init_mlp(images, &mut rng)?),
            Splits::Text(text) => Model::Sequence(self.init_sequence(text, &mut rng)?),
        })
    }

    fn init_mlp(&self, images: &ImageSplits, rng: &mut SplitMix64) -> Result<Mlp, String> {
        check_sizes(&self.sizes, images)?;
        Mlp::init(&self.sizes, rng).map_err(|e| format!("invalid --sizes {:?}: {e}", self.sizes))
    }

    fn init_sequence(
        &self,
        text: &TextSplits,
        rng: &mut SplitMix64,
    ) -> Result<SequenceClassifier, String> {
        let kind = match self.cell {
            Cell::Lstm => RecurrentKind::Lstm,
            Cell::Rnn => RecurrentKind::Rnn,
        };
        check_sequence_size(self.cell, text, self.embed, self.hidden)?;
        SequenceClassifier::init(kind, text.vocab, self.embed, self.hidden, text.classes, rng)
            .map_err(|e| format!("invalid --embed or --hidden: {e}"))
    }

    /// Trains a model on `splits`, printing one line per epoch to stderr
    /// when `verbose`.
    pub fn train(&self, splits: &Splits, verbose: bool) -> Result<Model, String> {
        let train_rows = match splits {
            Splits::Image(images) => images.train.labels.len(),
            Splits::Text(text) => text.train.labels.len(),
        };
        let config = self.config(train_rows)?;
        let mut rng = SplitMix64::new(self.seed);
        let (model, report) = match splits {
            Splits::Image(images) => {
                let mut mlp = self.init_mlp(images, &mut rng)?;
                let train = Dataset::new(
                    &images.train.features,
                    &images.train.labels,
                    images.train.columns,
                )
                .map_err(|e| e.to_string())?;
                let valid = Dataset::new(
                    &images.valid.features,
                    &images.valid.labels,
                    images.valid.columns,
                )
                .map_err(|e| e.to_string())?;
                let report = heft_nn::train_mlp(&mut mlp, &train, Some(&valid), &config)
                    .map_err(|e| format!("training failed: {e}"))?;
                (Model::Mlp(mlp), report)
            }
            Splits::Text(text) => {
                let mut model = self.init_sequence(text, &mut rng)?;
                let train = SequenceDataset::new(
                    &text.train.ids,
                    &text.train.lengths,
                    &text.train.labels,
                    text.train.seq_len,
                )
                .map_err(|e| e.to_string())?;
                let valid = SequenceDataset::new(
                    &text.valid.ids,
                    &text.valid.lengths,
                    &text.valid.labels,
                    text.valid.seq_len,
                )
                .map_err(|e| e.to_string())?;
                let report =
                    heft_nn::train_sequence_classifier(&mut model, &train, Some(&valid), &config)
                        .map_err(|e| format!("training failed: {e}"))?;
                (Model::Sequence(model), report)
            }
        };
        if verbose {
            print_report(&report);
        }
        if let Some((name, index, value)) = first_non_finite(&model) {
            return Err(format!(
                "training diverged: tensor {name} is {value} at index {index} after training, \
                 so no checkpoint was written; pass a smaller --lr (now {})",
                self.lr
            ));
        }
        Ok(model)
    }
}

/// Largest number of parameters `heft train` builds: 2^28 floats, 1 GiB
/// per copy, of which training keeps four (weights, gradients and Adam's
/// two moments).
const MAX_PARAMETERS: usize = 1 << 28;

fn check_sizes(sizes: &[usize], images: &ImageSplits) -> Result<(), String> {
    let (first, last) = (sizes.first().copied(), sizes.last().copied());
    if sizes.len() < 2 || first != Some(images.train.columns) || last != Some(images.classes) {
        return Err(format!(
            "invalid --sizes {}: the dataset has {} pixels per image and {} classes, so pass \
             --sizes {},<hidden>,{}",
            sizes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            images.train.columns,
            images.classes,
            images.train.columns,
            images.classes
        ));
    }
    let parameters = sizes
        .windows(2)
        .map(|pair| pair[0].saturating_mul(pair[1]).saturating_add(pair[1]))
        .fold(0usize, usize::saturating_add);
    if parameters > MAX_PARAMETERS {
        return Err(format!(
            "invalid --sizes {}: the MLP would have {parameters} parameters, and heft trains at \
             most {MAX_PARAMETERS} (4 GiB of training state); pass smaller hidden sizes",
            sizes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    Ok(())
}

/// Rejects a text model with more than [`MAX_PARAMETERS`] parameters
/// before any of it is allocated, because a mistyped --embed or --hidden
/// would otherwise abort the process on a failed allocation.
fn check_sequence_size(
    cell: Cell,
    text: &TextSplits,
    embed: usize,
    hidden: usize,
) -> Result<(), String> {
    let gates: usize = match cell {
        Cell::Lstm => 4,
        Cell::Rnn => 1,
    };
    let gate_rows = gates.saturating_mul(hidden);
    let parameters = [
        text.vocab.saturating_mul(embed),
        gate_rows.saturating_mul(embed.saturating_add(hidden)),
        gate_rows.saturating_mul(2),
        text.classes.saturating_mul(hidden.saturating_add(1)),
    ]
    .into_iter()
    .fold(0usize, usize::saturating_add);
    if parameters > MAX_PARAMETERS {
        return Err(format!(
            "invalid --embed {embed} and --hidden {hidden}: with the {} tokens and {} classes of \
             {} the text model would have {parameters} parameters, and heft trains at most \
             {MAX_PARAMETERS} (4 GiB of training state); pass a smaller --embed or --hidden",
            text.vocab, text.classes, text.source
        ));
    }
    Ok(())
}

fn print_report(report: &TrainReport) {
    for epoch in &report.epochs {
        let valid = epoch
            .val_accuracy
            .map_or_else(String::new, |a| format!("  valid accuracy {:.4}", a));
        eprintln!(
            "epoch {:>3}  loss {:.4}  train accuracy {:.4}{valid}",
            epoch.epoch, epoch.train_loss, epoch.train_accuracy
        );
    }
}

/// Metadata key of the validation share a checkpoint was trained with.
const VALID_SHARE_KEY: &str = "heft.valid_share";
/// Metadata key of the seed of the training/validation split.
const SPLIT_SEED_KEY: &str = "heft.split_seed";
/// Metadata key of the fingerprint of a text model's classes and
/// vocabulary ([`data::vocabulary_hash`]).
const VOCAB_HASH_KEY: &str = "heft.vocab_hash";

/// Returns the validation share recorded in `checkpoint`, or `None` for a
/// checkpoint without the record (one written by PyTorch, or a text model).
fn recorded_valid_share(checkpoint: &Path) -> Result<Option<f64>, String> {
    let metadata = heft_nn::read_metadata(checkpoint).map_err(|e| load_error(&e))?;
    if let Some(seed) = metadata.get(SPLIT_SEED_KEY) {
        if seed.parse::<u64>() != Ok(data::SPLIT_SEED) {
            return Err(format!(
                "checkpoint {} records the split seed {seed:?}, but this heft splits with seed \
                 {}; retrain the model with this heft",
                checkpoint.display(),
                data::SPLIT_SEED
            ));
        }
    }
    let Some(text) = metadata.get(VALID_SHARE_KEY) else {
        return Ok(None);
    };
    match text.parse::<f64>() {
        Ok(share) if share > 0.0 && share < 1.0 => Ok(Some(share)),
        _ => Err(format!(
            "checkpoint {} records the validation share {text:?}, which is not a number between \
             0 and 1; retrain the model or remove the {VALID_SHARE_KEY} metadata entry",
            checkpoint.display()
        )),
    }
}

/// Writes `model` to `path` (the checkpoint functions write a temporary
/// file and rename it), recording what of `splits` it was trained on: the
/// split seed, the validation share of an image dataset and the vocabulary
/// fingerprint of a text corpus.
pub fn save(model: &Model, path: &Path, splits: &Splits) -> Result<(), String> {
    let mut extra = vec![(SPLIT_SEED_KEY, data::SPLIT_SEED.to_string())];
    match splits {
        Splits::Image(images) => extra.push((VALID_SHARE_KEY, images.valid_share.to_string())),
        Splits::Text(text) => extra.push((VOCAB_HASH_KEY, text.vocab_hash.clone())),
    }
    let result = match model {
        Model::Mlp(m) => heft_nn::save_mlp_with_metadata(m, path, &extra),
        Model::Sequence(s) => heft_nn::save_sequence_classifier_with_metadata(s, path, &extra),
    };
    result.map_err(|e| format!("cannot write the checkpoint: {e}; pass --out with a writable path"))
}

/// Checks, before any training, that a checkpoint can be written to `out`:
/// its directory exists, and `out` is not a directory, nor an existing file
/// unless `force`, nor anything other than a regular file.
fn check_out(out: &Path, force: bool) -> Result<(), String> {
    if out.is_dir() {
        return Err(format!(
            "--out {} is a directory; pass --out with a file path",
            out.display()
        ));
    }
    if let Ok(meta) = std::fs::symlink_metadata(out) {
        if !force {
            return Err(format!(
                "checkpoint {} already exists; pass --force to replace it or --out to pick \
                 another path",
                out.display()
            ));
        }
        if !meta.is_file() {
            return Err(format!(
                "--out {} is not a regular file (a device, FIFO, socket or link), and --force \
                 replaces only a regular file; pass --out with another path",
                out.display()
            ));
        }
    }
    match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(format!(
            "the directory {} of --out does not exist or is not a directory; create it or pass \
             --out with another path",
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// Reads a checkpoint of the kind `task` needs.
pub fn load(path: &Path, task: Task) -> Result<Model, String> {
    let result = match task {
        Task::Image => heft_nn::load_mlp(path).map(Model::Mlp),
        Task::Text => heft_nn::load_sequence_classifier(path).map(Model::Sequence),
    };
    let model = result.map_err(|e| load_error(&e))?;
    check_finite(&model, path)?;
    Ok(model)
}

fn load_error(error: &heft_nn::CheckpointError) -> String {
    format!(
        "cannot load the checkpoint: {error}; pass --checkpoint with a safetensors file written \
         by `heft train` or PyTorch (and --task text for a text model)"
    )
}

/// Rejects a model with a NaN or infinite parameter: its predictions and
/// any search box around it would be meaningless.
fn check_finite(model: &Model, path: &Path) -> Result<(), String> {
    match first_non_finite(model) {
        Some((name, index, value)) => Err(format!(
            "checkpoint {}: tensor {name} holds {value} at index {index}; every weight must be \
             finite, so retrain the model or pass another --checkpoint",
            path.display()
        )),
        None => Ok(()),
    }
}

/// Returns the first NaN or infinite parameter of `model`: its tensor's
/// name, its index in the tensor and its value.
fn first_non_finite(model: &Model) -> Option<(String, usize, f32)> {
    let (names, values) = match model {
        Model::Mlp(mlp) => (mlp.parameter_names(), mlp.parameters()),
        Model::Sequence(seq) => (seq.parameter_names(), seq.parameters()),
    };
    names.iter().zip(values).find_map(|(name, tensor)| {
        let index = tensor.iter().position(|x| !x.is_finite())?;
        Some((name.to_string(), index, tensor[index]))
    })
}

/// Checks that `model` takes the dataset's inputs and predicts its classes.
pub fn check_model(model: &Model, splits: &Splits, path: &Path) -> Result<(), String> {
    match (model, splits) {
        (Model::Mlp(mlp), Splits::Image(images)) => {
            let sizes = mlp.sizes();
            if sizes[0] != images.train.columns || model.classes() != images.classes {
                return Err(format!(
                    "checkpoint {} has input size {} and {} classes, but the dataset {} has {} \
                     pixels per image and {} classes; pass a checkpoint trained on this dataset \
                     or the matching --data and --classes",
                    path.display(),
                    sizes[0],
                    model.classes(),
                    images.source,
                    images.train.columns,
                    images.classes
                ));
            }
        }
        (Model::Sequence(seq), Splits::Text(text)) => {
            let vocab = seq.emb().vocab();
            if vocab != text.vocab || model.classes() != text.classes {
                return Err(format!(
                    "checkpoint {} has a vocabulary of {vocab} tokens and {} classes, but the \
                     corpus {} has {} tokens and {} classes; pass a checkpoint trained on this \
                     corpus",
                    path.display(),
                    model.classes(),
                    text.source,
                    text.vocab,
                    text.classes
                ));
            }
            check_vocabulary(path, text)?;
        }
        _ => {
            return Err(
                "the checkpoint and --task disagree; pass --task text for a text model".into(),
            )
        }
    }
    Ok(())
}

/// Rejects a text checkpoint whose recorded vocabulary fingerprint differs
/// from the corpus's. The sizes can agree while the tokens differ (another
/// corpus, or an edited one), and the model would then read every token id
/// as another word. Checkpoints without the record (from PyTorch, or an
/// older heft) are accepted as they are.
fn check_vocabulary(path: &Path, text: &TextSplits) -> Result<(), String> {
    let metadata = heft_nn::read_metadata(path).map_err(|e| load_error(&e))?;
    match metadata.get(VOCAB_HASH_KEY) {
        Some(recorded) if *recorded != text.vocab_hash => Err(format!(
            "checkpoint {} was trained on a corpus with other classes or tokens than {} (its \
             vocabulary fingerprint {recorded} differs from {}), so its token ids would mean \
             other words; pass the --data the model was trained on, or retrain it on this one",
            path.display(),
            text.source,
            text.vocab_hash
        )),
        _ => Ok(()),
    }
}

/// Runs `heft train`.
pub fn run(args: &TrainArgs) -> Result<(), String> {
    args.model.check()?;
    check_out(&args.out, args.force)?;
    let splits = args.data.load()?;
    let model = args.model.train(&splits, true)?;
    save(&model, &args.out, &splits)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
