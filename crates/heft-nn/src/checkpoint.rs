//! Checkpoints as safetensors files with PyTorch `state_dict` names.
//!
//! An MLP is stored as `fc1.weight` (`[n1, n0]`), `fc1.bias` (`[n1]`),
//! `fc2.weight`, ... in F32, plus the metadata entries `heft.arch = "mlp"`
//! and `heft.sizes = "n0,n1,...,nL"`. A file without metadata, such as one
//! written by `safetensors.torch.save_file(model.state_dict(), path)`, is
//! read by inferring the sizes from the `fcK.weight` shapes.
//!
//! A sequence classifier is stored as `emb.weight`, `rnn.weight_ih_l0`,
//! `rnn.weight_hh_l0`, `rnn.bias_ih_l0`, `rnn.bias_hh_l0`, `fc.weight` and
//! `fc.bias`, with `heft.arch` `"rnn"` or `"lstm"` and `heft.sizes =
//! "vocab,embed,hidden,classes"`. Without metadata the kind and sizes are
//! inferred from the shapes.
//!
//! Files are written to a temporary file in the target's directory and then
//! renamed over the target, so a crash never leaves a half-written
//! checkpoint under the target's name.

use crate::embedding::Embedding;
use crate::error::NnError;
use crate::linear::Linear;
use crate::mlp::Mlp;
use crate::recurrent::{Lstm, Rnn};
use crate::sequence::{RecurrentLayer, SequenceClassifier};
use heft_tensor::Matrix;
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const ARCH_KEY: &str = "heft.arch";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);
const SIZES_KEY: &str = "heft.sizes";
const MLP_ARCH: &str = "mlp";
const RNN_ARCH: &str = "rnn";
const LSTM_ARCH: &str = "lstm";

/// One tensor of a checkpoint that does not match the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The model needs this tensor but the file lacks it.
    Missing {
        /// Tensor name.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
    },
    /// The file has a tensor the model does not use.
    Unexpected {
        /// Tensor name.
        name: String,
    },
    /// The tensor's shape differs from the model's.
    Shape {
        /// Tensor name.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        actual: Vec<usize>,
    },
    /// The tensor is not F32, the only dtype heft reads.
    Dtype {
        /// Tensor name.
        name: String,
        /// The dtype in the file, such as `"F16"`.
        actual: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { name, expected } => {
                write!(f, "missing {name} (expected shape {expected:?})")
            }
            Problem::Unexpected { name } => write!(f, "unexpected {name}"),
            Problem::Shape {
                name,
                expected,
                actual,
            } => write!(f, "{name} has shape {actual:?} but expected {expected:?}"),
            Problem::Dtype { name, actual } => {
                write!(f, "{name} has dtype {actual} but only F32 is supported")
            }
        }
    }
}

/// A checkpoint that could not be written or read. Every variant names the
/// file.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading, writing or renaming the file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not valid safetensors, for example because it is
    /// truncated.
    Format {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: SafeTensorError,
    },
    /// The file's tensors do not match the model.
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Every problem found, sorted by tensor name.
        problems: Vec<Problem>,
    },
    /// The architecture could not be read from the metadata or inferred
    /// from the tensor names.
    Architecture {
        /// The file.
        path: PathBuf,
        /// Description of the problem.
        message: String,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => {
                write!(f, "checkpoint {}: {source}", path.display())
            }
            CheckpointError::Format { path, source } => write!(
                f,
                "checkpoint {} is not a valid safetensors file (truncated or damaged?): {source}",
                path.display()
            ),
            CheckpointError::Mismatch { path, problems } => {
                write!(
                    f,
                    "checkpoint {} does not match the model: ",
                    path.display()
                )?;
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
            CheckpointError::Architecture { path, message } => {
                write!(f, "checkpoint {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            CheckpointError::Format { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the checkpoint at `path`, after checking that it is a regular
/// file: a device such as `/dev/zero` would be read without end, and a
/// FIFO would block until a writer appears.
fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(CheckpointError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("it is {kind}; a checkpoint must be a regular safetensors file"),
            ),
        });
    }
    std::fs::read(path).map_err(io_error(path))
}

/// Returns the metadata entries of the safetensors file at `path`, such as
/// `heft.arch`, or an empty map when it has none.
///
/// # Errors
///
/// [`CheckpointError::Io`] if the file cannot be read or is not a regular
/// file, [`CheckpointError::Format`] if it is not safetensors.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, CheckpointError> {
    let bytes = read_file(path)?;
    let (_, metadata) =
        SafeTensors::read_metadata(&bytes).map_err(|source| CheckpointError::Format {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(metadata.metadata().clone().unwrap_or_default())
}

fn to_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, which replaces the target in one step on POSIX systems.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| CheckpointError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    // The process id and a per-process counter keep concurrent writers,
    // including threads of one process, off each other's temporary files.
    let serial = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    tmp_name.push(format!(".tmp-{}-{serial}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        // The temporary file may or may not exist; either way it is garbage.
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(path)(source));
    }
    Ok(())
}

/// Serialises F32 tensors with `metadata` and writes them atomically.
fn save_tensors(
    path: &Path,
    names: &[String],
    shapes: &[Vec<usize>],
    values: &[&[f32]],
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let format_error = |source| CheckpointError::Format {
        path: path.to_path_buf(),
        source,
    };
    let buffers: Vec<Vec<u8>> = values.iter().map(|v| to_le_bytes(v)).collect();
    let mut views = Vec::with_capacity(names.len());
    for ((name, shape), bytes) in names.iter().zip(shapes).zip(&buffers) {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(format_error)?;
        views.push((name.as_str(), view));
    }
    let mut bytes = safetensors::serialize(views, Some(metadata)).map_err(format_error)?;
    sort_header_keys(&mut bytes);
    write_atomically(path, &bytes)
}

/// Rewrites the JSON header of serialised safetensors `bytes` with the keys
/// of its objects sorted, so that equal models give byte-identical files:
/// the safetensors writer orders the metadata by a per-process hash. The
/// compact JSON keeps its length when only the key order changes, so the
/// header keeps its size and the tensor offsets stay valid. A header that
/// does not parse is left as it is (it came from the writer just above).
fn sort_header_keys(bytes: &mut [u8]) {
    let Some(prefix) = bytes.get(..8) else {
        return;
    };
    let len = u64::from_le_bytes(prefix.try_into().expect("8 bytes")) as usize;
    let Some(header) = bytes.get(8..8 + len) else {
        return;
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(header) else {
        return;
    };
    if let Some(top) = value.as_object_mut() {
        top.sort_keys();
        for entry in top.values_mut() {
            if let Some(inner) = entry.as_object_mut() {
                inner.sort_keys();
            }
        }
    }
    let Ok(sorted) = serde_json::to_vec(&value) else {
        return;
    };
    if sorted.len() <= len {
        bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
        // safetensors pads the header with spaces to its stated length.
        bytes[8 + sorted.len()..8 + len].fill(b' ');
    }
}

fn architecture_metadata(arch: &str, sizes: &[usize]) -> HashMap<String, String> {
    let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
    HashMap::from([
        (ARCH_KEY.to_string(), arch.to_string()),
        (SIZES_KEY.to_string(), sizes.join(",")),
    ])
}

/// Adds the `extra` entries to `metadata`, keeping its own entry when a
/// key is in both.
fn with_extra(
    mut metadata: HashMap<String, String>,
    extra: &[(&str, String)],
) -> HashMap<String, String> {
    for (key, value) in extra {
        metadata
            .entry((*key).to_string())
            .or_insert_with(|| value.clone());
    }
    metadata
}

/// Writes `mlp` to `path` as safetensors with names `fc1.weight`,
/// `fc1.bias`, ... and the metadata `heft.arch = "mlp"`, `heft.sizes =
/// "n0,...,nL"`. An existing file is replaced.
///
/// # Errors
///
/// [`CheckpointError::Io`] if the file cannot be written.
pub fn save_mlp(mlp: &Mlp, path: &Path) -> Result<(), CheckpointError> {
    save_mlp_with_metadata(mlp, path, &[])
}

/// As [`save_mlp`], with the metadata entries `extra` beside the
/// architecture's. An entry with a key the architecture uses
/// (`heft.arch`, `heft.sizes`) is ignored.
///
/// # Errors
///
/// [`CheckpointError::Io`] if the file cannot be written.
pub fn save_mlp_with_metadata(
    mlp: &Mlp,
    path: &Path,
    extra: &[(&str, String)],
) -> Result<(), CheckpointError> {
    let mut shapes = Vec::new();
    for layer in mlp.layers() {
        shapes.push(vec![layer.out_features(), layer.in_features()]);
        shapes.push(vec![layer.out_features()]);
    }
    save_tensors(
        path,
        &mlp.parameter_names(),
        &shapes,
        &mlp.parameters(),
        with_extra(architecture_metadata(MLP_ARCH, &mlp.sizes()), extra),
    )
}

/// Writes a sequence classifier to `path` with names `emb.weight`,
/// `rnn.weight_ih_l0`, ..., `fc.bias` and the metadata `heft.arch` (`"rnn"`
/// or `"lstm"`) and `heft.sizes = "vocab,embed,hidden,classes"`.
///
/// # Errors
///
/// [`CheckpointError::Io`] if the file cannot be written.
pub fn save_sequence_classifier(
    model: &SequenceClassifier,
    path: &Path,
) -> Result<(), CheckpointError> {
    save_sequence_classifier_with_metadata(model, path, &[])
}

/// As [`save_sequence_classifier`], with the metadata entries `extra`
/// beside the architecture's. An entry with a key the architecture uses
/// (`heft.arch`, `heft.sizes`) is ignored.
///
/// # Errors
///
/// [`CheckpointError::Io`] if the file cannot be written.
pub fn save_sequence_classifier_with_metadata(
    model: &SequenceClassifier,
    path: &Path,
    extra: &[(&str, String)],
) -> Result<(), CheckpointError> {
    let emb = model.emb();
    let fc = model.fc();
    let (arch, shapes_rnn, hidden) = match model.rnn() {
        RecurrentLayer::Rnn(r) => (RNN_ARCH, r.parameter_shapes(), r.hidden_size()),
        RecurrentLayer::Lstm(l) => (LSTM_ARCH, l.parameter_shapes(), l.hidden_size()),
    };
    let mut shapes = vec![vec![emb.vocab(), emb.dim()]];
    shapes.extend(shapes_rnn);
    shapes.push(vec![fc.out_features(), fc.in_features()]);
    shapes.push(vec![fc.out_features()]);
    let sizes = [emb.vocab(), emb.dim(), hidden, fc.out_features()];
    save_tensors(
        path,
        &model.parameter_names(),
        &shapes,
        &model.parameters(),
        with_extra(architecture_metadata(arch, &sizes), extra),
    )
}

/// Reads a sequence classifier from `path`, taking the kind and sizes from
/// the metadata or, without it, from the shapes of `emb.weight`
/// (`[vocab, embed]`), `rnn.weight_hh_l0` (`[H, H]` for an RNN, `[4H, H]`
/// for an LSTM) and `fc.weight` (`[classes, H]`).
///
/// # Errors
///
/// As [`load_mlp`].
pub fn load_sequence_classifier(path: &Path) -> Result<SequenceClassifier, CheckpointError> {
    let bytes = read_file(path)?;
    let file = File::parse(path, &bytes)?;
    let (arch, sizes) = match file.recorded_architecture(&[RNN_ARCH, LSTM_ARCH])? {
        Some(found) => found,
        None => infer_sequence(&file)?,
    };
    let [vocab, embed, hidden, classes] = sizes[..] else {
        return Err(file.architecture_error(format!(
            "{SIZES_KEY} must be vocab,embed,hidden,classes but it is {sizes:?}"
        )));
    };
    if sizes.contains(&0) {
        return Err(file.architecture_error(format!("the sizes {sizes:?} must all be above 0")));
    }
    let gates: usize = if arch == LSTM_ARCH { 4 } else { 1 };
    let gate_rows = gates.checked_mul(hidden).ok_or_else(|| {
        file.architecture_error(format!(
            "the sizes {sizes:?} (vocab, embed, hidden, classes) give the {arch} layer \
             {gates} x {hidden} gate rows, more than usize can count; correct {SIZES_KEY}"
        ))
    })?;
    let expected: BTreeMap<String, Vec<usize>> = [
        ("emb.weight", vec![vocab, embed]),
        ("rnn.weight_ih_l0", vec![gate_rows, embed]),
        ("rnn.weight_hh_l0", vec![gate_rows, hidden]),
        ("rnn.bias_ih_l0", vec![gate_rows]),
        ("rnn.bias_hh_l0", vec![gate_rows]),
        ("fc.weight", vec![classes, hidden]),
        ("fc.bias", vec![classes]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    let mut values = file.read_expected(&expected)?;

    let layer_error = |e: NnError| file.architecture_error(e.to_string());
    let emb_weight = take_matrix(&file, &mut values, "emb.weight", vocab, embed)?;
    let emb = Embedding::new(emb_weight).map_err(layer_error)?;
    let w_ih = take_matrix(&file, &mut values, "rnn.weight_ih_l0", gate_rows, embed)?;
    let w_hh = take_matrix(&file, &mut values, "rnn.weight_hh_l0", gate_rows, hidden)?;
    let b_ih = values.remove("rnn.bias_ih_l0").unwrap_or_default();
    let b_hh = values.remove("rnn.bias_hh_l0").unwrap_or_default();
    let rnn = if gates == 4 {
        RecurrentLayer::Lstm(Lstm::new(w_ih, w_hh, b_ih, b_hh).map_err(layer_error)?)
    } else {
        RecurrentLayer::Rnn(Rnn::new(w_ih, w_hh, b_ih, b_hh).map_err(layer_error)?)
    };
    let fc_weight = take_matrix(&file, &mut values, "fc.weight", classes, hidden)?;
    let fc_bias = values.remove("fc.bias").unwrap_or_default();
    let fc = Linear::new(fc_weight, fc_bias).map_err(layer_error)?;
    SequenceClassifier::new(emb, rnn, fc).map_err(layer_error)
}

/// Infers the kind and sizes of a sequence classifier from its shapes.
fn infer_sequence(file: &File<'_>) -> Result<(String, Vec<usize>), CheckpointError> {
    let shape = |name: &str| -> Result<Vec<usize>, CheckpointError> {
        match file.shape_of(name) {
            Some(s) if s.len() == 2 => Ok(s),
            Some(s) => Err(file.architecture_error(format!(
                "{name} has shape {s:?} but must be 2-D to infer the architecture"
            ))),
            None => Err(file.architecture_error(format!(
                "there is no architecture metadata and no {name} to infer a sequence \
                 classifier from"
            ))),
        }
    };
    let emb = shape("emb.weight")?;
    let hh = shape("rnn.weight_hh_l0")?;
    let fc = shape("fc.weight")?;
    let hidden = hh[1];
    let arch = if hh[0] == hidden {
        RNN_ARCH
    } else if hidden.checked_mul(4) == Some(hh[0]) {
        LSTM_ARCH
    } else {
        return Err(file.architecture_error(format!(
            "rnn.weight_hh_l0 has shape {hh:?}, which is neither [H, H] (RNN) nor [4H, H] (LSTM)"
        )));
    };
    Ok((arch.to_string(), vec![emb[0], emb[1], hidden, fc[0]]))
}

/// Reads an MLP from `path`, taking the sizes from the `heft.sizes`
/// metadata or, without it, from the shapes of `fc1.weight`,
/// `fc2.weight`, ...
///
/// # Errors
///
/// [`CheckpointError::Io`] if the file cannot be read,
/// [`CheckpointError::Format`] if it is not safetensors,
/// [`CheckpointError::Architecture`] if the metadata names another
/// architecture or the sizes cannot be determined, and
/// [`CheckpointError::Mismatch`] listing every missing, unexpected,
/// mis-shaped or non-F32 tensor.
pub fn load_mlp(path: &Path) -> Result<Mlp, CheckpointError> {
    load(path, None)
}

/// Reads an MLP with the given sizes (input, hidden..., output) from
/// `path`, ignoring any architecture metadata.
///
/// # Errors
///
/// As [`load_mlp`].
pub fn load_mlp_with_sizes(path: &Path, sizes: &[usize]) -> Result<Mlp, CheckpointError> {
    load(path, Some(sizes))
}

/// The contents of a safetensors file, parsed once.
struct File<'a> {
    path: &'a Path,
    tensors: SafeTensors<'a>,
    metadata: Option<HashMap<String, String>>,
}

impl<'a> File<'a> {
    fn parse(path: &'a Path, bytes: &'a [u8]) -> Result<Self, CheckpointError> {
        let format_error = |source| CheckpointError::Format {
            path: path.to_path_buf(),
            source,
        };
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(format_error)?;
        let tensors = SafeTensors::deserialize(bytes).map_err(format_error)?;
        Ok(File {
            path,
            tensors,
            metadata: metadata.metadata().clone(),
        })
    }

    fn architecture_error(&self, message: String) -> CheckpointError {
        CheckpointError::Architecture {
            path: self.path.to_path_buf(),
            message,
        }
    }

    fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.tensor(name).ok().map(|v| v.shape().to_vec())
    }

    /// Returns the metadata's architecture and sizes if it names either,
    /// after checking that the architecture is one of `expected`.
    fn recorded_architecture(
        &self,
        expected: &[&str],
    ) -> Result<Option<(String, Vec<usize>)>, CheckpointError> {
        let Some(meta) = &self.metadata else {
            return Ok(None);
        };
        if !meta.contains_key(ARCH_KEY) && !meta.contains_key(SIZES_KEY) {
            return Ok(None);
        }
        let arch = meta.get(ARCH_KEY).ok_or_else(|| {
            self.architecture_error(format!("the metadata has {SIZES_KEY} but no {ARCH_KEY}"))
        })?;
        if !expected.contains(&arch.as_str()) {
            return Err(self.architecture_error(format!(
                "the metadata says {ARCH_KEY} = {arch:?} but {expected:?} was requested"
            )));
        }
        let text = meta.get(SIZES_KEY).ok_or_else(|| {
            self.architecture_error(format!("the metadata has {ARCH_KEY} but no {SIZES_KEY}"))
        })?;
        let sizes = text
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                self.architecture_error(format!(
                    "the metadata {SIZES_KEY} = {text:?} is not a comma-separated list of sizes: {e}"
                ))
            })?;
        Ok(Some((arch.clone(), sizes)))
    }

    /// Checks every tensor against `expected` (name to shape) and returns
    /// the values, or every problem found.
    fn read_expected(
        &self,
        expected: &BTreeMap<String, Vec<usize>>,
    ) -> Result<BTreeMap<String, Vec<f32>>, CheckpointError> {
        let mut problems = Vec::new();
        let mut values = BTreeMap::new();
        let mut names: Vec<&str> = self.tensors.names();
        names.sort_unstable();
        for name in names {
            let view = self
                .tensors
                .tensor(name)
                .map_err(|source| CheckpointError::Format {
                    path: self.path.to_path_buf(),
                    source,
                })?;
            let Some(shape) = expected.get(name) else {
                problems.push(Problem::Unexpected { name: name.into() });
                continue;
            };
            if view.dtype() != Dtype::F32 {
                problems.push(Problem::Dtype {
                    name: name.into(),
                    actual: format!("{:?}", view.dtype()),
                });
            } else if view.shape() != shape.as_slice() {
                problems.push(Problem::Shape {
                    name: name.into(),
                    expected: shape.clone(),
                    actual: view.shape().to_vec(),
                });
            } else {
                let data = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                values.insert(name.to_string(), data);
            }
        }
        for (name, shape) in expected {
            if self.tensors.tensor(name).is_err() {
                problems.push(Problem::Missing {
                    name: name.clone(),
                    expected: shape.clone(),
                });
            }
        }
        if problems.is_empty() {
            Ok(values)
        } else {
            problems.sort_by(|a, b| problem_name(a).cmp(problem_name(b)));
            Err(CheckpointError::Mismatch {
                path: self.path.to_path_buf(),
                problems,
            })
        }
    }
}

/// Takes a checked tensor out of `values` as a matrix.
fn take_matrix(
    file: &File<'_>,
    values: &mut BTreeMap<String, Vec<f32>>,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Matrix, CheckpointError> {
    let data = values.remove(name).unwrap_or_default();
    Matrix::from_vec(rows, cols, data).map_err(|e| file.architecture_error(e.to_string()))
}

fn load(path: &Path, sizes: Option<&[usize]>) -> Result<Mlp, CheckpointError> {
    let bytes = read_file(path)?;
    let file = File::parse(path, &bytes)?;
    let sizes = match sizes {
        Some(s) => s.to_vec(),
        None => match file.recorded_architecture(&[MLP_ARCH])? {
            Some((_, sizes)) => sizes,
            None => infer_sizes(&file.tensors).map_err(|m| file.architecture_error(m))?,
        },
    };
    if sizes.len() < 2 || sizes.contains(&0) {
        return Err(file.architecture_error(format!(
            "the MLP sizes {sizes:?} are invalid; they need an input and an output size, all \
             above 0"
        )));
    }

    let mut expected: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (k, w) in sizes.windows(2).enumerate() {
        expected.insert(format!("fc{}.weight", k + 1), vec![w[1], w[0]]);
        expected.insert(format!("fc{}.bias", k + 1), vec![w[1]]);
    }
    let mut values = file.read_expected(&expected)?;
    let mut layers = Vec::with_capacity(sizes.len() - 1);
    for (k, w) in sizes.windows(2).enumerate() {
        let weight = take_matrix(
            &file,
            &mut values,
            &format!("fc{}.weight", k + 1),
            w[1],
            w[0],
        )?;
        let bias = values
            .remove(&format!("fc{}.bias", k + 1))
            .unwrap_or_default();
        layers.push(Linear::new(weight, bias).map_err(|e| file.architecture_error(e.to_string()))?);
    }
    Mlp::new(layers).map_err(|e| file.architecture_error(e.to_string()))
}

fn problem_name(p: &Problem) -> &str {
    match p {
        Problem::Missing { name, .. }
        | Problem::Unexpected { name }
        | Problem::Shape { name, .. }
        | Problem::Dtype { name, .. } => name,
    }
}

/// Infers the sizes from `fc1.weight`, `fc2.weight`, ... up to the first
/// missing layer. Gaps and other names are reported later as unexpected.
fn infer_sizes(tensors: &SafeTensors<'_>) -> Result<Vec<usize>, String> {
    let mut sizes = Vec::new();
    for k in 1.. {
        let Ok(view) = tensors.tensor(&format!("fc{k}.weight")) else {
            break;
        };
        let shape = view.shape();
        if shape.len() != 2 {
            return Err(format!(
                "fc{k}.weight has shape {shape:?} but a Linear weight is 2-D [out, in]"
            ));
        }
        match sizes.last() {
            None => sizes.push(shape[1]),
            Some(&previous) if previous != shape[1] => {
                return Err(format!(
                    "fc{k}.weight has shape {shape:?} but fc{}.weight has {previous} outputs, so \
                     it must be [out, {previous}] (Linear weights are stored [out, in], as \
                     PyTorch stores them)",
                    k - 1
                ));
            }
            Some(_) => {}
        }
        sizes.push(shape[0]);
    }
    if sizes.is_empty() {
        let mut names = tensors.names();
        names.sort_unstable();
        return Err(format!(
            "there is no architecture metadata and no fc1.weight to infer an MLP from; the \
             tensors are {names:?}"
        ));
    }
    Ok(sizes)
}
