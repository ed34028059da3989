//! Golden tests against PyTorch. The fixtures in `tests/fixtures/` are
//! written by `tools/gen_nn_fixtures.py` (PyTorch's Linear, ReLU, Embedding,
//! LSTM, cross-entropy and Adam). heft must match them within 1e-5
//! relative, with an absolute floor of 1e-5 for values near 0.

use heft_nn::{
    cross_entropy, cross_entropy_with_grad, load_mlp, Adam, AdamConfig, Embedding, Linear, Lstm,
    Optimiser, RecurrentLayer, SequenceClassifier, SequenceDataset, SequenceGrads,
    SequenceWorkspace, TokenBatch,
};
use heft_tensor::Matrix;
use safetensors::tensor::{Dtype, SafeTensors};
use std::path::PathBuf;

const TOL: f32 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Golden {
    bytes: Vec<u8>,
}

impl Golden {
    fn open() -> Self {
        Golden {
            bytes: std::fs::read(fixture("golden.safetensors")).unwrap(),
        }
    }

    /// Returns the tensor's shape and values.
    fn get(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let tensors = SafeTensors::deserialize(&self.bytes).unwrap();
        let view = tensors
            .tensor(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (view.shape().to_vec(), values)
    }

    fn matrix(&self, name: &str) -> Matrix {
        let (shape, values) = self.get(name);
        assert_eq!(shape.len(), 2, "{name}");
        Matrix::from_vec(shape[0], shape[1], values).unwrap()
    }

    fn vector(&self, name: &str) -> Vec<f32> {
        self.get(name).1
    }

    fn integers<T: TryFrom<u64>>(&self, name: &str) -> Vec<T>
    where
        T::Error: std::fmt::Debug,
    {
        self.vector(name)
            .iter()
            .map(|&v| T::try_from(v as u64).unwrap())
            .collect()
    }
}

fn assert_close(what: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= TOL * e.abs().max(1.0),
            "{what}[{i}]: heft {a}, PyTorch {e}"
        );
    }
}

#[test]
fn mlp_matches_pytorch_logits_and_adam() {
    let golden = Golden::open();
    // The state_dict file has no heft metadata, so the sizes are inferred.
    let mut mlp = load_mlp(&fixture("mlp_state_dict.safetensors")).unwrap();
    assert_eq!(mlp.sizes(), [6, 5, 3]);
    let x = golden.matrix("mlp.x");
    let labels: Vec<u32> = golden.integers("mlp.labels");

    let activations = mlp.forward_train(&x).unwrap();
    assert_close(
        "logits",
        activations.logits.as_slice(),
        &golden.vector("mlp.logits"),
    );

    let mut grad_logits = Matrix::zeros(x.rows(), 3).unwrap();
    cross_entropy_with_grad(&activations.logits, &labels, &mut grad_logits).unwrap();
    let mut grads = heft_nn::MlpGrads::zeros_like(&mlp).unwrap();
    mlp.backward(&x, &activations, &grad_logits, &mut grads)
        .unwrap();
    let mut adam = Adam::new(AdamConfig::default()).unwrap();
    adam.step(&mut mlp.parameters_mut(), &grads.as_slices())
        .unwrap();
    for (name, value) in mlp.parameter_names().iter().zip(mlp.parameters()) {
        assert_close(name, value, &golden.vector(&format!("mlp.adam.{name}")));
    }
}

fn golden_lstm_classifier(golden: &Golden, prefix: &str) -> SequenceClassifier {
    let get = |n: &str| format!("{prefix}{n}");
    let emb = Embedding::new(golden.matrix(&get("emb.weight"))).unwrap();
    let lstm = Lstm::new(
        golden.matrix(&get("rnn.weight_ih_l0")),
        golden.matrix(&get("rnn.weight_hh_l0")),
        golden.vector(&get("rnn.bias_ih_l0")),
        golden.vector(&get("rnn.bias_hh_l0")),
    )
    .unwrap();
    let fc = Linear::new(
        golden.matrix(&get("fc.weight")),
        golden.vector(&get("fc.bias")),
    )
    .unwrap();
    SequenceClassifier::new(emb, RecurrentLayer::Lstm(lstm), fc).unwrap()
}

#[test]
fn lstm_matches_pytorch_hidden_states() {
    let golden = Golden::open();
    let model = golden_lstm_classifier(&golden, "seq.");
    let ids: Vec<u32> = golden.integers("seq.ids");
    let (hidden_shape, hidden) = golden.get("seq.hidden");
    let (batch, seq_len, size) = (hidden_shape[0], hidden_shape[1], hidden_shape[2]);

    let steps = model.emb().forward(&ids, batch, seq_len).unwrap();
    let RecurrentLayer::Lstm(lstm) = model.rnn() else {
        panic!("the golden model has an LSTM");
    };
    let ours = lstm.forward(&steps).unwrap();
    for (t, h) in ours.iter().enumerate() {
        for b in 0..batch {
            let start = (b * seq_len + t) * size;
            assert_close(
                &format!("h[{b}, {t}]"),
                h.row(b).unwrap(),
                &hidden[start..start + size],
            );
        }
    }
}

#[test]
fn lstm_classifier_matches_pytorch_logits_and_adam() {
    let golden = Golden::open();
    let mut model = golden_lstm_classifier(&golden, "seq.");
    let ids: Vec<u32> = golden.integers("seq.ids");
    let lengths: Vec<usize> = golden.integers("seq.lengths");
    let labels: Vec<u32> = golden.integers("seq.labels");
    let seq_len = ids.len() / lengths.len();
    let tokens = TokenBatch::new(&ids, &lengths, seq_len).unwrap();

    let activations = model.forward_train(&tokens).unwrap();
    assert_close(
        "logits",
        activations.logits.as_slice(),
        &golden.vector("seq.logits"),
    );

    let mut grad_logits = Matrix::zeros(lengths.len(), 2).unwrap();
    cross_entropy_with_grad(&activations.logits, &labels, &mut grad_logits).unwrap();
    let mut grads = SequenceGrads::zeros_like(&model).unwrap();
    model
        .backward(&tokens, &activations, &grad_logits, &mut grads)
        .unwrap();
    let mut adam = Adam::new(AdamConfig::default()).unwrap();
    adam.step(&mut model.parameters_mut(), &grads.as_slices())
        .unwrap();
    let expected = golden_lstm_classifier(&golden, "seq.adam.");
    for ((name, ours), theirs) in model
        .parameter_names()
        .iter()
        .zip(model.parameters())
        .zip(expected.parameters())
    {
        assert_close(name, ours, theirs);
    }
}

/// The golden batch repeated `COPIES` times is 18 sequences, so the
/// workspace runs it as two shards of unequal size (16 and 2). Its mean
/// loss, and so its gradient, equal those of the golden batch, so the
/// sharded step must reproduce PyTorch's Adam step.
#[test]
fn sharded_lstm_step_matches_pytorch_adam() {
    const COPIES: usize = 6;
    let golden = Golden::open();
    let mut model = golden_lstm_classifier(&golden, "seq.");
    let ids: Vec<u32> = golden.integers("seq.ids");
    let lengths: Vec<usize> = golden.integers("seq.lengths");
    let labels: Vec<u32> = golden.integers("seq.labels");
    let seq_len = ids.len() / lengths.len();
    let batch = COPIES * lengths.len();
    assert!(batch > SequenceWorkspace::SHARD_ROWS);
    assert!(!batch.is_multiple_of(SequenceWorkspace::SHARD_ROWS));

    let expected_loss = {
        let tokens = TokenBatch::new(&ids, &lengths, seq_len).unwrap();
        let logits = model.forward(&tokens).unwrap();
        assert_close("logits", logits.as_slice(), &golden.vector("seq.logits"));
        cross_entropy(&logits, &labels).unwrap()
    };

    let all_ids = ids.repeat(COPIES);
    let all_lengths = lengths.repeat(COPIES);
    let all_labels = labels.repeat(COPIES);
    let data = SequenceDataset::new(&all_ids, &all_lengths, &all_labels, seq_len).unwrap();
    let mut workspace = SequenceWorkspace::new(&model, batch).unwrap();
    let mut adam = Optimiser::Adam(Adam::new(AdamConfig::default()).unwrap());
    // Interleave the copies, so each shard contains a different mix of rows.
    let rows: Vec<usize> = (0..batch).map(|i| (i * 7) % batch).collect();
    let (loss, _) = workspace
        .train_step(&mut model, &data, &rows, &mut adam)
        .unwrap();
    assert_close("loss", &[loss], &[expected_loss]);

    let expected = golden_lstm_classifier(&golden, "seq.adam.");
    for ((name, ours), theirs) in model
        .parameter_names()
        .iter()
        .zip(model.parameters())
        .zip(expected.parameters())
    {
        assert_close(name, ours, theirs);
    }
}
