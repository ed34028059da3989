//! Checkpoint round trips and the errors for damaged or mismatched files.

use heft_nn::{
    load_mlp, load_mlp_with_sizes, load_sequence_classifier, read_metadata, save_mlp,
    save_mlp_with_metadata, save_sequence_classifier, CheckpointError, Mlp, Problem, RecurrentKind,
    RecurrentLayer, SequenceClassifier, SplitMix64,
};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An empty directory under the system temp directory for one test,
/// removed with its contents when the test ends.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates an empty directory under the system temp directory for one test.
fn temp_dir(test: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("heft-nn-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn bits(mlp: &Mlp) -> Vec<u32> {
    mlp.parameters()
        .iter()
        .flat_map(|p| p.iter().map(|v| v.to_bits()))
        .collect()
}

/// Writes `tensors` (name, dtype, shape, raw bytes) as safetensors, the way
/// `safetensors.torch.save_file` does when `metadata` is `None`.
fn write_raw(
    path: &PathBuf,
    tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)],
    metadata: Option<HashMap<String, String>>,
) {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            (
                *name,
                TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, metadata).unwrap()).unwrap();
}

fn f32_bytes(n: usize, value: f32) -> Vec<u8> {
    (0..n).flat_map(|_| value.to_le_bytes()).collect()
}

fn mismatch_problems(err: CheckpointError) -> Vec<Problem> {
    match err {
        CheckpointError::Mismatch { problems, .. } => problems,
        other => panic!("expected a mismatch, got {other}"),
    }
}

#[test]
fn round_trip_is_bit_exact() {
    let dir = temp_dir("round-trip");
    let path = dir.join("model.safetensors");
    let mut mlp = Mlp::init(&[7, 5, 4, 3], &mut SplitMix64::new(9)).unwrap();
    // Values whose bits a lossy path would change.
    let w = mlp.layers_mut()[0].weight_mut();
    w[0] = -0.0;
    w[1] = f32::from_bits(1); // smallest subnormal
    w[2] = f32::MAX;
    save_mlp(&mlp, &path).unwrap();
    let loaded = load_mlp(&path).unwrap();
    assert_eq!(loaded.sizes(), [7, 5, 4, 3]);
    assert_eq!(bits(&loaded), bits(&mlp));

    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["model.safetensors"], "no temporary file may remain");

    // Saving again replaces the file.
    let other = Mlp::init(&[7, 2], &mut SplitMix64::new(1)).unwrap();
    save_mlp(&other, &path).unwrap();
    assert_eq!(load_mlp(&path).unwrap().sizes(), [7, 2]);
}

/// Writes one model to a path.
type Saver<'a> = &'a dyn Fn(&Path);

/// Saving the same model gives the same bytes every time: the header's
/// metadata keys, which the safetensors writer orders by a per-process
/// hash, are written sorted. Eight saves each of an MLP and a sequence
/// classifier would all agree by chance with probability 1/128 each.
#[test]
fn same_model_gives_same_bytes() {
    let dir = temp_dir("same-bytes");
    let mlp = Mlp::init(&[6, 4, 3], &mut SplitMix64::new(3)).unwrap();
    let seq =
        SequenceClassifier::init(RecurrentKind::Lstm, 9, 4, 5, 3, &mut SplitMix64::new(4)).unwrap();
    let save_mlp_to = |path: &Path| save_mlp(&mlp, path).unwrap();
    let save_sequence_to = |path: &Path| save_sequence_classifier(&seq, path).unwrap();
    let savers: [(&str, Saver); 2] = [("mlp", &save_mlp_to), ("sequence", &save_sequence_to)];
    for (kind, save) in savers {
        let files: Vec<Vec<u8>> = (0..8)
            .map(|i| {
                let path = dir.join(format!("{kind}-{i}.safetensors"));
                save(&path);
                std::fs::read(&path).unwrap()
            })
            .collect();
        for (i, file) in files.iter().enumerate() {
            assert!(file == &files[0], "{kind}: save {i} differs from save 0");
        }
    }
    assert_eq!(
        load_mlp(&dir.join("mlp-7.safetensors")).unwrap().sizes(),
        [6, 4, 3]
    );
    load_sequence_classifier(&dir.join("sequence-7.safetensors")).unwrap();
}

#[test]
fn metadata_records_architecture() {
    let dir = temp_dir("metadata");
    let path = dir.join("m.safetensors");
    let mlp = Mlp::init(&[784, 16, 10], &mut SplitMix64::new(0)).unwrap();
    save_mlp(&mlp, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["heft.arch"], "mlp");
    assert_eq!(meta["heft.sizes"], "784,16,10");
}

#[test]
fn loads_pytorch_file_without_metadata() {
    let dir = temp_dir("pytorch");
    let path = dir.join("torch.safetensors");
    write_raw(
        &path,
        &[
            ("fc1.weight", Dtype::F32, vec![3, 2], f32_bytes(6, 0.5)),
            ("fc1.bias", Dtype::F32, vec![3], f32_bytes(3, -1.0)),
            ("fc2.weight", Dtype::F32, vec![4, 3], f32_bytes(12, 2.0)),
            ("fc2.bias", Dtype::F32, vec![4], f32_bytes(4, 0.25)),
        ],
        None,
    );
    let mlp = load_mlp(&path).unwrap();
    assert_eq!(mlp.sizes(), [2, 3, 4]);
    assert_eq!(mlp.layers()[0].weight().as_slice(), &[0.5; 6]);
    assert_eq!(mlp.layers()[1].bias(), &[0.25; 4]);
    assert_eq!(load_mlp_with_sizes(&path, &[2, 3, 4]).unwrap(), mlp);
}

/// A PyTorch file with a transposed later weight names the tensor, the
/// shape it needs and the [out, in] convention.
#[test]
fn transposed_weight_is_explained() {
    let dir = temp_dir("transposed");
    let path = dir.join("torch.safetensors");
    write_raw(
        &path,
        &[
            ("fc1.weight", Dtype::F32, vec![3, 2], f32_bytes(6, 0.5)),
            ("fc1.bias", Dtype::F32, vec![3], f32_bytes(3, -1.0)),
            ("fc2.weight", Dtype::F32, vec![3, 4], f32_bytes(12, 2.0)),
            ("fc2.bias", Dtype::F32, vec![4], f32_bytes(4, 0.25)),
        ],
        None,
    );
    let message = load_mlp(&path).unwrap_err().to_string();
    assert!(
        message.contains("fc2.weight has shape [3, 4] but fc1.weight has 3 outputs"),
        "{message}"
    );
    assert!(message.contains("it must be [out, 3]"), "{message}");
}

#[test]
fn truncated_file_is_rejected() {
    let dir = temp_dir("truncated");
    let path = dir.join("t.safetensors");
    let mlp = Mlp::init(&[4, 3, 2], &mut SplitMix64::new(0)).unwrap();
    save_mlp(&mlp, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for keep in [0, 5, 8, 40, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = load_mlp(&path).unwrap_err();
        assert!(
            matches!(err, CheckpointError::Format { .. }),
            "{keep} bytes: {err}"
        );
        assert!(err.to_string().contains("t.safetensors"), "{err}");
    }
}

#[test]
fn wrong_dtype_is_rejected() {
    let dir = temp_dir("dtype");
    let path = dir.join("d.safetensors");
    write_raw(
        &path,
        &[
            ("fc1.weight", Dtype::F64, vec![3, 2], vec![0; 48]),
            ("fc1.bias", Dtype::F32, vec![3], f32_bytes(3, 0.0)),
        ],
        None,
    );
    let err = load_mlp(&path).unwrap_err();
    let text = err.to_string();
    assert_eq!(
        mismatch_problems(err),
        [Problem::Dtype {
            name: "fc1.weight".into(),
            actual: "F64".into()
        }]
    );
    assert!(text.contains("d.safetensors"), "{text}");
    assert!(text.contains("only F32"), "{text}");
}

#[test]
fn wrong_shape_and_missing_are_listed() {
    let dir = temp_dir("shape");
    let path = dir.join("s.safetensors");
    write_raw(
        &path,
        &[
            ("fc1.weight", Dtype::F32, vec![3, 2], f32_bytes(6, 0.0)),
            ("fc1.bias", Dtype::F32, vec![4], f32_bytes(4, 0.0)),
            ("fc2.weight", Dtype::F32, vec![2, 3], f32_bytes(6, 0.0)),
            ("head.weight", Dtype::F32, vec![1], f32_bytes(1, 0.0)),
        ],
        None,
    );
    let err = load_mlp(&path).unwrap_err();
    let text = err.to_string();
    assert_eq!(
        mismatch_problems(err),
        [
            Problem::Shape {
                name: "fc1.bias".into(),
                expected: vec![3],
                actual: vec![4]
            },
            Problem::Missing {
                name: "fc2.bias".into(),
                expected: vec![2]
            },
            Problem::Unexpected {
                name: "head.weight".into()
            },
        ]
    );
    assert_eq!(
        text,
        format!(
            "checkpoint {} does not match the model: fc1.bias has shape [4] but expected [3]; \
             missing fc2.bias (expected shape [2]); unexpected head.weight",
            path.display()
        )
    );
}

#[test]
fn given_sizes_check_every_tensor() {
    let dir = temp_dir("sizes");
    let path = dir.join("z.safetensors");
    let mlp = Mlp::init(&[4, 3, 2], &mut SplitMix64::new(0)).unwrap();
    save_mlp(&mlp, &path).unwrap();
    let problems = mismatch_problems(load_mlp_with_sizes(&path, &[4, 5, 2]).unwrap_err());
    assert_eq!(problems.len(), 3, "{problems:?}");
    let problems = mismatch_problems(load_mlp_with_sizes(&path, &[4, 3, 2, 2]).unwrap_err());
    assert!(problems.contains(&Problem::Missing {
        name: "fc3.weight".into(),
        expected: vec![2, 2]
    }));
}

#[test]
fn missing_file_and_other_arch_are_errors() {
    let dir = temp_dir("arch");
    let missing = dir.join("absent.safetensors");
    let err = load_mlp(&missing).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert!(err.to_string().contains("absent.safetensors"), "{err}");

    let path = dir.join("lstm.safetensors");
    let meta = HashMap::from([("heft.arch".to_string(), "lstm".to_string())]);
    write_raw(
        &path,
        &[("rnn.weight_ih_l0", Dtype::F32, vec![1], f32_bytes(1, 0.0))],
        Some(meta),
    );
    let err = load_mlp(&path).unwrap_err();
    assert!(matches!(err, CheckpointError::Architecture { .. }), "{err}");
    assert!(err.to_string().contains("\"lstm\""), "{err}");

    let path = dir.join("empty.safetensors");
    write_raw(&path, &[], None);
    let err = load_mlp(&path).unwrap_err();
    assert!(err.to_string().contains("no fc1.weight"), "{err}");
}

#[test]
fn sequence_round_trip_is_bit_exact() {
    let dir = temp_dir("sequence");
    for (kind, arch) in [(RecurrentKind::Rnn, "rnn"), (RecurrentKind::Lstm, "lstm")] {
        let path = dir.join(format!("{arch}.safetensors"));
        let model = SequenceClassifier::init(kind, 11, 4, 3, 2, &mut SplitMix64::new(5)).unwrap();
        save_sequence_classifier(&model, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["heft.arch"], arch);
        assert_eq!(meta["heft.sizes"], "11,4,3,2");
        let loaded = load_sequence_classifier(&path).unwrap();
        let bits = |m: &SequenceClassifier| -> Vec<u32> {
            m.parameters()
                .iter()
                .flat_map(|p| p.iter().map(|v| v.to_bits()))
                .collect()
        };
        assert_eq!(bits(&loaded), bits(&model), "{arch}");
        assert_eq!(loaded, model);

        // An MLP loader rejects the file and names both architectures.
        let err = load_mlp(&path).unwrap_err();
        assert!(err.to_string().contains(&format!("\"{arch}\"")), "{err}");
    }
}

#[test]
fn sequence_loads_pytorch_state_dict() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lstm_state_dict.safetensors");
    let model = load_sequence_classifier(&path).unwrap();
    assert!(matches!(model.rnn(), RecurrentLayer::Lstm(_)));
    assert_eq!(model.emb().vocab(), 10);
    assert_eq!(model.emb().dim(), 4);
    assert_eq!(model.fc().in_features(), 3);
    assert_eq!(model.fc().out_features(), 2);
}

#[test]
fn sequence_mismatch_lists_problems() {
    let dir = temp_dir("sequence-mismatch");
    let path = dir.join("bad.safetensors");
    // An LSTM with H = 2 (weight_hh [8, 2]) whose bias_hh is missing and
    // whose fc takes 3 inputs.
    write_raw(
        &path,
        &[
            ("emb.weight", Dtype::F32, vec![5, 3], f32_bytes(15, 0.0)),
            (
                "rnn.weight_ih_l0",
                Dtype::F32,
                vec![8, 3],
                f32_bytes(24, 0.0),
            ),
            (
                "rnn.weight_hh_l0",
                Dtype::F32,
                vec![8, 2],
                f32_bytes(16, 0.0),
            ),
            ("rnn.bias_ih_l0", Dtype::F32, vec![8], f32_bytes(8, 0.0)),
            ("fc.weight", Dtype::F32, vec![2, 3], f32_bytes(6, 0.0)),
            ("fc.bias", Dtype::F32, vec![2], f32_bytes(2, 0.0)),
        ],
        None,
    );
    let problems = mismatch_problems(load_sequence_classifier(&path).unwrap_err());
    assert_eq!(
        problems,
        [
            Problem::Shape {
                name: "fc.weight".into(),
                expected: vec![2, 2],
                actual: vec![2, 3]
            },
            Problem::Missing {
                name: "rnn.bias_hh_l0".into(),
                expected: vec![8]
            },
        ]
    );
}

#[test]
fn sequence_sizes_overflowing_usize_are_errors() {
    let dir = temp_dir("sequence-overflow");
    let huge = 1usize << 62;

    // heft.sizes whose hidden size times the LSTM's 4 gates overflows.
    let path = dir.join("huge-hidden.safetensors");
    let meta = HashMap::from([
        ("heft.arch".to_string(), "lstm".to_string()),
        ("heft.sizes".to_string(), format!("2,2,{huge},2")),
    ]);
    write_raw(
        &path,
        &[("emb.weight", Dtype::F32, vec![2, 2], f32_bytes(4, 0.0))],
        Some(meta),
    );
    let err = load_sequence_classifier(&path).unwrap_err();
    assert!(matches!(err, CheckpointError::Architecture { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("huge-hidden.safetensors"), "{err}");
    assert!(
        message.contains(&format!("4 x {huge} gate rows, more than usize can count")),
        "{err}"
    );
    assert!(message.contains("correct heft.sizes"), "{err}");

    // No metadata and a weight_hh of shape [0, 2^62]. 4 * 2^62 wraps to 0
    // in usize, but the file is neither an RNN nor an LSTM.
    let path = dir.join("huge-weight-hh.safetensors");
    write_raw(
        &path,
        &[
            ("emb.weight", Dtype::F32, vec![2, 2], f32_bytes(4, 0.0)),
            ("rnn.weight_hh_l0", Dtype::F32, vec![0, huge], Vec::new()),
            ("fc.weight", Dtype::F32, vec![2, 2], f32_bytes(4, 0.0)),
        ],
        None,
    );
    let err = load_sequence_classifier(&path).unwrap_err();
    assert!(matches!(err, CheckpointError::Architecture { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("huge-weight-hh.safetensors"), "{err}");
    assert!(
        message.contains(&format!(
            "rnn.weight_hh_l0 has shape [0, {huge}], which is neither [H, H] (RNN) nor [4H, H] \
             (LSTM)"
        )),
        "{err}"
    );
}

/// Extra metadata entries are written beside the architecture's, which
/// they cannot replace, and read back.
#[test]
fn extra_metadata_round_trips() {
    let dir = temp_dir("extra-metadata");
    let path = dir.join("m.safetensors");
    let mlp = Mlp::init(&[4, 3, 2], &mut SplitMix64::new(0)).unwrap();
    let extra = [
        ("heft.valid_share", "0.5".to_string()),
        ("heft.arch", "rnn".to_string()),
    ];
    save_mlp_with_metadata(&mlp, &path, &extra).unwrap();
    let meta = read_metadata(&path).unwrap();
    assert_eq!(meta["heft.valid_share"], "0.5");
    assert_eq!(meta["heft.arch"], "mlp");
    load_mlp(&path).unwrap();
}

/// A path that is not a regular file is refused before it is read: a
/// FIFO would block the reader and a device could be read without end.
#[test]
fn non_regular_files_refused() {
    let dir = temp_dir("not-regular");
    let fifo = dir.join("fifo.safetensors");
    let created = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    let mut paths = vec![(dir.to_path_buf(), "it is a directory")];
    if created {
        paths.push((fifo, "it is not a regular file"));
    } else {
        println!("mkfifo is not available: the FIFO case is skipped");
    }
    for (path, needle) in paths {
        for err in [
            load_mlp(&path).unwrap_err(),
            load_sequence_classifier(&path).unwrap_err(),
            read_metadata(&path).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(needle), "{text}");
            assert!(
                text.contains("must be a regular safetensors file"),
                "{text}"
            );
        }
    }
}
