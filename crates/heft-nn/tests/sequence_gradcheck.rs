//! Finite-difference gradient checks for the embedding, RNN and LSTM
//! through the sequence classifier, with padded sequences, against an f64
//! reference written here. The step size and tolerance are those of
//! `gradcheck.rs`: central differences with `h = 1e-6` in f64 leave errors
//! near 1e-9, and heft's f32 rounding over a few short sequences stays far
//! below `1e-4 * max(1, |g|)`.

use heft_nn::{
    cross_entropy_with_grad, Embedding, RecurrentKind, SequenceClassifier, SequenceGrads,
    SplitMix64, TokenBatch,
};
use heft_tensor::Matrix;

const H: f64 = 1e-6;
const TOL: f64 = 1e-4;
const VOCAB: usize = 7;
const EMBED: usize = 3;
const HIDDEN: usize = 4;
const CLASSES: usize = 3;
const SEQ_LEN: usize = 5;

/// Right-padded ids of three sequences with true lengths 5, 2 and 3.
const IDS: [u32; 15] = [1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 3, 3, 2, 0, 0];
const LENGTHS: [usize; 3] = [5, 2, 3];
const LABELS: [u32; 3] = [2, 0, 1];

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Computes the classifier's mean cross-entropy in f64 from parameters
/// flattened in `parameter_names()` order.
fn loss_ref(flat: &[f64], kind: RecurrentKind) -> f64 {
    let gates = match kind {
        RecurrentKind::Rnn => 1,
        RecurrentKind::Lstm => 4,
    };
    let rows = gates * HIDDEN;
    let mut rest = flat;
    let mut take = |n: usize| {
        let (head, tail) = rest.split_at(n);
        rest = tail;
        head
    };
    let emb = take(VOCAB * EMBED);
    let w_ih = take(rows * EMBED);
    let w_hh = take(rows * HIDDEN);
    let b_ih = take(rows);
    let b_hh = take(rows);
    let fc_w = take(CLASSES * HIDDEN);
    let fc_b = take(CLASSES);

    let mut total = 0.0;
    for (b, &len) in LENGTHS.iter().enumerate() {
        let mut h = vec![0.0; HIDDEN];
        let mut c = [0.0; HIDDEN];
        for t in 0..len {
            let id = IDS[b * SEQ_LEN + t] as usize;
            let x = &emb[id * EMBED..(id + 1) * EMBED];
            let pre: Vec<f64> = (0..rows)
                .map(|r| {
                    let xi: f64 = (0..EMBED).map(|e| x[e] * w_ih[r * EMBED + e]).sum();
                    let hh: f64 = (0..HIDDEN).map(|k| h[k] * w_hh[r * HIDDEN + k]).sum();
                    xi + hh + b_ih[r] + b_hh[r]
                })
                .collect();
            if gates == 1 {
                h = pre.iter().map(|a| a.tanh()).collect();
            } else {
                for j in 0..HIDDEN {
                    let i = sigmoid(pre[j]);
                    let f = sigmoid(pre[HIDDEN + j]);
                    let g = pre[2 * HIDDEN + j].tanh();
                    let o = sigmoid(pre[3 * HIDDEN + j]);
                    c[j] = f * c[j] + i * g;
                    h[j] = o * c[j].tanh();
                }
            }
        }
        let logits: Vec<f64> = (0..CLASSES)
            .map(|k| {
                (0..HIDDEN)
                    .map(|j| h[j] * fc_w[k * HIDDEN + j])
                    .sum::<f64>()
                    + fc_b[k]
            })
            .collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = logits.iter().map(|z| (z - max).exp()).sum::<f64>().ln() + max;
        total += lse - logits[LABELS[b] as usize];
    }
    total / LENGTHS.len() as f64
}

fn check_kind(kind: RecurrentKind) {
    let mut rng = SplitMix64::new(11);
    let model = SequenceClassifier::init(kind, VOCAB, EMBED, HIDDEN, CLASSES, &mut rng).unwrap();
    let tokens = TokenBatch::new(&IDS, &LENGTHS, SEQ_LEN).unwrap();
    let activations = model.forward_train(&tokens).unwrap();
    let mut grad_logits = Matrix::zeros(3, CLASSES).unwrap();
    let loss = cross_entropy_with_grad(&activations.logits, &LABELS, &mut grad_logits).unwrap();
    let mut grads = SequenceGrads::zeros_like(&model).unwrap();
    model
        .backward(&tokens, &activations, &grad_logits, &mut grads)
        .unwrap();

    let mut flat: Vec<f64> = model
        .parameters()
        .iter()
        .flat_map(|p| p.iter().map(|&v| f64::from(v)))
        .collect();
    let reference = loss_ref(&flat, kind);
    assert!(
        (f64::from(loss) - reference).abs() < 1e-5,
        "{kind:?} loss {loss} vs reference {reference}"
    );

    let numeric: Vec<f64> = (0..flat.len())
        .map(|i| {
            let old = flat[i];
            flat[i] = old + H;
            let plus = loss_ref(&flat, kind);
            flat[i] = old - H;
            let minus = loss_ref(&flat, kind);
            flat[i] = old;
            (plus - minus) / (2.0 * H)
        })
        .collect();
    let mut offset = 0;
    for (name, g) in model.parameter_names().iter().zip(grads.as_slices()) {
        for (i, &a) in g.iter().enumerate() {
            let n = numeric[offset + i];
            assert!(
                (f64::from(a) - n).abs() <= TOL * n.abs().max(1.0),
                "{kind:?} {name}[{i}]: analytic {a}, numeric {n}"
            );
        }
        offset += g.len();
    }
    assert_eq!(offset, numeric.len());
    // The padding row of the embedding never gets a gradient.
    assert!(grads.emb.row(0).unwrap().iter().all(|&g| g == 0.0));
}

#[test]
fn rnn_classifier_gradients_match_differences() {
    check_kind(RecurrentKind::Rnn);
}

#[test]
fn lstm_classifier_gradients_match_differences() {
    check_kind(RecurrentKind::Lstm);
}

#[test]
fn padding_never_changes_prediction() {
    for kind in [RecurrentKind::Rnn, RecurrentKind::Lstm] {
        let mut rng = SplitMix64::new(4);
        let model =
            SequenceClassifier::init(kind, VOCAB, EMBED, HIDDEN, CLASSES, &mut rng).unwrap();
        let padded = TokenBatch::new(&IDS, &LENGTHS, SEQ_LEN).unwrap();
        let logits = model.forward(&padded).unwrap();
        // Each sequence alone, without padding, gives the same logits.
        for (b, &len) in LENGTHS.iter().enumerate() {
            let ids = &IDS[b * SEQ_LEN..b * SEQ_LEN + len];
            let lengths = [len];
            let alone = TokenBatch::new(ids, &lengths, len).unwrap();
            let single = model.forward(&alone).unwrap();
            assert_eq!(
                single.row(0).unwrap(),
                logits.row(b).unwrap(),
                "{kind:?} row {b}"
            );
        }
        // Garbage after the true length is ignored too.
        let mut noisy = IDS;
        noisy[SEQ_LEN + 3] = 5;
        let noisy = TokenBatch::new(&noisy, &LENGTHS, SEQ_LEN).unwrap();
        assert_eq!(model.forward(&noisy).unwrap(), logits, "{kind:?}");
    }
}

#[test]
fn empty_batch_gives_empty_logits() {
    for kind in [RecurrentKind::Rnn, RecurrentKind::Lstm] {
        let mut rng = SplitMix64::new(6);
        let model =
            SequenceClassifier::init(kind, VOCAB, EMBED, HIDDEN, CLASSES, &mut rng).unwrap();
        for seq_len in [SEQ_LEN, 0] {
            let empty = TokenBatch::new(&[], &[], seq_len).unwrap();
            let logits = model.forward(&empty).unwrap();
            assert_eq!(logits.shape(), (0, CLASSES), "{kind:?}, seq_len {seq_len}");

            // Backward through an empty batch adds nothing.
            let activations = model.forward_train(&empty).unwrap();
            assert_eq!(activations.logits.shape(), (0, CLASSES), "{kind:?}");
            let mut grads = SequenceGrads::zeros_like(&model).unwrap();
            let grad_logits = Matrix::zeros(0, CLASSES).unwrap();
            model
                .backward(&empty, &activations, &grad_logits, &mut grads)
                .unwrap();
            assert_eq!(
                grads,
                SequenceGrads::zeros_like(&model).unwrap(),
                "{kind:?}, seq_len {seq_len}"
            );

            // Activations of an empty batch do not fit a batch of three.
            let full = TokenBatch::new(&IDS, &LENGTHS, SEQ_LEN).unwrap();
            let grad_logits = Matrix::zeros(LENGTHS.len(), CLASSES).unwrap();
            let err = model
                .backward(&full, &activations, &grad_logits, &mut grads)
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains("pass the batch given to forward_train"),
                "{err}"
            );
        }
    }
}

#[test]
fn token_batch_rejects_bad_lengths() {
    assert!(TokenBatch::new(&IDS, &[5, 0, 3], SEQ_LEN).is_err());
    assert!(TokenBatch::new(&IDS, &[5, 6, 3], SEQ_LEN).is_err());
    assert!(TokenBatch::new(&IDS, &[5, 2], SEQ_LEN).is_err());
    let model = SequenceClassifier::init(
        RecurrentKind::Lstm,
        3,
        EMBED,
        HIDDEN,
        CLASSES,
        &mut SplitMix64::new(0),
    )
    .unwrap();
    let tokens = TokenBatch::new(&IDS, &LENGTHS, SEQ_LEN).unwrap();
    let err = model.forward(&tokens).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn embedding_init_zeroes_padding_row() {
    let emb = Embedding::init(50, 8, &mut SplitMix64::new(1)).unwrap();
    assert!(emb.weight().row(0).unwrap().iter().all(|&v| v == 0.0));
    let rest = &emb.weight().as_slice()[8..];
    let mean = rest.iter().sum::<f32>() / rest.len() as f32;
    let var = rest.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / rest.len() as f32;
    // 392 draws from N(0, 1): the sample mean's standard error is 0.05.
    assert!(mean.abs() < 0.2, "mean {mean}");
    assert!((var - 1.0).abs() < 0.3, "variance {var}");
}
