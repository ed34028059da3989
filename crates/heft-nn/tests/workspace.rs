//! `MlpWorkspace::train_step` and `SequenceWorkspace::train_step` against
//! the step built from the public layer functions, and their allocation
//! counts in steady state.

use heft_nn::{
    cross_entropy, cross_entropy_with_grad, Adam, AdamConfig, Dataset, Mlp, MlpGrads, MlpWorkspace,
    Optimiser, RecurrentKind, SequenceClassifier, SequenceDataset, SequenceGrads,
    SequenceWorkspace, Sgd, SgdConfig, SplitMix64, TokenBatch,
};
use heft_tensor::Matrix;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The system allocator, counting allocations made on a thread while that
/// thread's `COUNTING` is set, so tests running in parallel do not count.
struct CountingAllocator;

thread_local! {
    // Const-initialised, so reading it from the allocator never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Held by each test that reads `ALLOCATIONS`, so that tests running at
/// the same time do not add to each other's count.
static COUNTER: Mutex<()> = Mutex::new(());

fn lock_counter() -> MutexGuard<'static, ()> {
    COUNTER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn counting() -> bool {
    COUNTING.with(Cell::get)
}

// SAFETY: every method forwards to `System` with the caller's arguments,
// so `System`'s guarantees hold; the counter has no effect on memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged from the caller, who upholds
        // `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const FEATURES: usize = 20;
const CLASSES: usize = 5;

fn data(rows: usize) -> (Vec<f32>, Vec<u32>) {
    let mut rng = SplitMix64::new(9);
    let x = (0..rows * FEATURES)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let y = (0..rows)
        .map(|_| rng.below(CLASSES as u64) as u32)
        .collect();
    (x, y)
}

/// Runs one step through `forward_train`, `cross_entropy_with_grad`,
/// `backward` and `Optimiser::step`, the path `train_mlp` used before the
/// workspace existed.
fn reference_step(
    mlp: &mut Mlp,
    data: &Dataset<'_>,
    rows: &[usize],
    optimiser: &mut Optimiser,
) -> (f32, usize) {
    let mut x = Matrix::zeros(rows.len(), FEATURES).unwrap();
    let mut labels = Vec::new();
    for (dst, &row) in x.as_mut_slice().chunks_exact_mut(FEATURES).zip(rows) {
        dst.copy_from_slice(&data.features()[row * FEATURES..(row + 1) * FEATURES]);
        labels.push(data.labels()[row]);
    }
    let activations = mlp.forward_train(&x).unwrap();
    let mut grad_logits = Matrix::zeros(rows.len(), CLASSES).unwrap();
    let loss = cross_entropy_with_grad(&activations.logits, &labels, &mut grad_logits).unwrap();
    let correct = heft_nn::correct_count(&activations.logits, &labels).unwrap();
    let mut grads = MlpGrads::zeros_like(mlp).unwrap();
    mlp.backward(&x, &activations, &grad_logits, &mut grads)
        .unwrap();
    optimiser
        .step(&mut mlp.parameters_mut(), &grads.as_slices())
        .unwrap();
    (loss, correct)
}

fn bits(mlp: &Mlp) -> Vec<u32> {
    mlp.parameters()
        .iter()
        .flat_map(|p| p.iter().map(|v| v.to_bits()))
        .collect()
}

fn optimisers() -> [Optimiser; 2] {
    [
        Optimiser::Adam(Adam::new(AdamConfig::default()).unwrap()),
        Optimiser::Sgd(
            Sgd::new(SgdConfig {
                lr: 0.05,
                momentum: 0.9,
                ..SgdConfig::default()
            })
            .unwrap(),
        ),
    ]
}

#[test]
fn workspace_step_matches_reference_bitwise() {
    let (x, y) = data(100);
    let data = Dataset::new(&x, &y, FEATURES).unwrap();
    // Full batches of 16 and a last batch of 4, over two hidden layers.
    let batches: Vec<Vec<usize>> = (0..100)
        .rev()
        .collect::<Vec<_>>()
        .chunks(16)
        .map(<[usize]>::to_vec)
        .collect();
    for (mut fast_opt, mut slow_opt) in optimisers().into_iter().zip(optimisers()) {
        let mut fast = Mlp::init(&[FEATURES, 12, 7, CLASSES], &mut SplitMix64::new(4)).unwrap();
        let mut slow = fast.clone();
        let mut workspace = MlpWorkspace::new(&fast, 16).unwrap();
        for batch in &batches {
            let got = workspace
                .train_step(&mut fast, &data, batch, &mut fast_opt)
                .unwrap();
            let expected = reference_step(&mut slow, &data, batch, &mut slow_opt);
            assert_eq!(got.0.to_bits(), expected.0.to_bits());
            assert_eq!(got.1, expected.1);
            assert_eq!(bits(&fast), bits(&slow));
        }
    }
}

#[test]
fn workspace_step_allocates_nothing_in_steady_state() {
    let _counter = lock_counter();
    let (x, y) = data(64);
    let data = Dataset::new(&x, &y, FEATURES).unwrap();
    let mut mlp = Mlp::init(&[FEATURES, 32, CLASSES], &mut SplitMix64::new(4)).unwrap();
    let mut workspace = MlpWorkspace::new(&mlp, 32).unwrap();
    let mut optimiser = Optimiser::Adam(Adam::new(AdamConfig::default()).unwrap());
    let full: Vec<usize> = (0..32).collect();
    let tail: Vec<usize> = (32..40).collect();
    // One thread, so the GEMM runs on this thread and reuses its
    // thread-local packing buffers after the first call.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        for rows in [&full, &tail] {
            workspace
                .train_step(&mut mlp, &data, rows, &mut optimiser)
                .unwrap();
        }
        // The counter registers an allocation, so a 0 below means none happened.
        COUNTING.with(|c| c.set(true));
        std::hint::black_box(vec![0u8; 16]);
        COUNTING.with(|c| c.set(false));
        assert!(ALLOCATIONS.load(Ordering::Relaxed) > 0);

        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.with(|c| c.set(true));
        for rows in [&full, &tail, &full] {
            workspace
                .train_step(&mut mlp, &data, rows, &mut optimiser)
                .unwrap();
        }
        COUNTING.with(|c| c.set(false));
    });
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0);
}

#[test]
fn workspace_rejects_oversized_batch() {
    let (x, y) = data(10);
    let data = Dataset::new(&x, &y, FEATURES).unwrap();
    let mut mlp = Mlp::init(&[FEATURES, 8, CLASSES], &mut SplitMix64::new(4)).unwrap();
    let mut workspace = MlpWorkspace::new(&mlp, 4).unwrap();
    let mut optimiser = Optimiser::Adam(Adam::new(AdamConfig::default()).unwrap());
    let before = bits(&mlp);
    let rows: Vec<usize> = (0..5).collect();
    assert!(workspace
        .train_step(&mut mlp, &data, &rows, &mut optimiser)
        .is_err());
    assert!(workspace
        .train_step(&mut mlp, &data, &[10], &mut optimiser)
        .is_err());
    assert_eq!(bits(&mlp), before);
}

const VOCAB: usize = 30;
const SEQ_LEN: usize = 12;
const SEQ_CLASSES: u64 = 3;

/// Right-padded token ids, lengths in `1..=SEQ_LEN` and labels of `n`
/// random sequences.
fn sequences(n: usize) -> (Vec<u32>, Vec<usize>, Vec<u32>) {
    let mut rng = SplitMix64::new(11);
    let mut ids = vec![0u32; n * SEQ_LEN];
    let mut lengths = Vec::with_capacity(n);
    for row in ids.chunks_exact_mut(SEQ_LEN) {
        let len = 1 + rng.below(SEQ_LEN as u64) as usize;
        for id in &mut row[..len] {
            *id = 1 + rng.below(VOCAB as u64 - 1) as u32;
        }
        lengths.push(len);
    }
    let labels = (0..n).map(|_| rng.below(SEQ_CLASSES) as u32).collect();
    (ids, lengths, labels)
}

fn sequence_model(kind: RecurrentKind) -> SequenceClassifier {
    SequenceClassifier::init(
        kind,
        VOCAB,
        6,
        10,
        SEQ_CLASSES as usize,
        &mut SplitMix64::new(5),
    )
    .unwrap()
}

/// Asserts `actual` is within 1e-5 relative of `expected`, with an
/// absolute floor of 1e-5 for values near 0 (the tolerance of the golden
/// tests).
fn assert_close(name: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{name}: lengths");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 1e-5 * e.abs().max(1.0),
            "{name}[{i}]: sharded {a}, whole batch {e}"
        );
    }
}

/// A batch of 37 rows runs as shards of 16, 16 and 5. The summed shard
/// gradients must be the gradient of the whole batch's mean loss (not a
/// mean of the shards' means), and the loss and correct count those of
/// the whole batch.
#[test]
fn sequence_workspace_matches_whole_batch_step() {
    let (ids, lengths, labels) = sequences(50);
    let data = SequenceDataset::new(&ids, &lengths, &labels, SEQ_LEN).unwrap();
    let rows: Vec<usize> = (0..37).map(|i| (i * 3 + 5) % 50).collect();
    assert_eq!(rows.len().div_ceil(SequenceWorkspace::SHARD_ROWS), 3);
    let batch_ids: Vec<u32> = rows
        .iter()
        .flat_map(|&r| ids[r * SEQ_LEN..(r + 1) * SEQ_LEN].iter().copied())
        .collect();
    let batch_lengths: Vec<usize> = rows.iter().map(|&r| lengths[r]).collect();
    let batch_labels: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
    let tokens = TokenBatch::new(&batch_ids, &batch_lengths, SEQ_LEN).unwrap();

    for kind in [RecurrentKind::Lstm, RecurrentKind::Rnn] {
        let mut model = sequence_model(kind);
        let activations = model.forward_train(&tokens).unwrap();
        let expected_loss = cross_entropy(&activations.logits, &batch_labels).unwrap();
        let expected_correct = heft_nn::correct_count(&activations.logits, &batch_labels).unwrap();
        let mut grad_logits = activations.logits.clone();
        cross_entropy_with_grad(&activations.logits, &batch_labels, &mut grad_logits).unwrap();
        let mut expected = SequenceGrads::zeros_like(&model).unwrap();
        model
            .backward(&tokens, &activations, &grad_logits, &mut expected)
            .unwrap();

        let mut workspace = SequenceWorkspace::new(&model, 40).unwrap();
        let mut sgd = Optimiser::Sgd(Sgd::new(SgdConfig::default()).unwrap());
        let before = model.clone();
        let (loss, correct) = workspace
            .train_step(&mut model, &data, &rows, &mut sgd)
            .unwrap();
        assert_close("loss", &[loss], &[expected_loss]);
        assert_eq!(correct, expected_correct, "{kind:?}");
        for ((name, ours), theirs) in model
            .parameter_names()
            .iter()
            .zip(workspace.grads().as_slices())
            .zip(expected.as_slices())
        {
            assert_close(&format!("{kind:?} {name}"), ours, theirs);
        }
        assert_ne!(model, before, "the step changes the weights");
    }
}

/// Trains on a pool of `threads` threads and returns how many allocations
/// the pool's threads made during three steps in steady state.
fn sequence_step_allocations(threads: usize) -> usize {
    let _counter = lock_counter();
    let (ids, lengths, labels) = sequences(64);
    let data = SequenceDataset::new(&ids, &lengths, &labels, SEQ_LEN).unwrap();
    let mut model = sequence_model(RecurrentKind::Lstm);
    let mut workspace = SequenceWorkspace::new(&model, 40).unwrap();
    let mut optimiser = Optimiser::Adam(Adam::new(AdamConfig::default()).unwrap());
    // A full batch of three shards and a last batch of two.
    let full: Vec<usize> = (0..40).collect();
    let tail: Vec<usize> = (40..64).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let set_counting = |on: bool| {
        pool.broadcast(|_| COUNTING.with(|c| c.set(on)));
    };
    // The shards' buffers reach their final size in the first round. The
    // GEMM's packing buffers belong to the pool threads instead, and each
    // grows to the largest product its thread has run. After 30 rounds
    // every thread has run every shard.
    for _ in 0..30 {
        for rows in [&full, &tail] {
            pool.install(|| workspace.train_step(&mut model, &data, rows, &mut optimiser))
                .unwrap();
        }
    }
    // The counter registers an allocation, so a 0 below means none happened.
    set_counting(true);
    pool.install(|| std::hint::black_box(vec![0u8; 16]));
    set_counting(false);
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > 0);

    // With several threads, work stealing decides which thread runs which
    // shard, so a thread may meet its largest product only now and grow
    // its buffers once. An allocation on every step shows in every
    // measurement, so the fewest of five is the steady-state count.
    let mut fewest = usize::MAX;
    for _ in 0..5 {
        ALLOCATIONS.store(0, Ordering::Relaxed);
        set_counting(true);
        for rows in [&full, &tail, &full] {
            pool.install(|| workspace.train_step(&mut model, &data, rows, &mut optimiser))
                .unwrap();
        }
        set_counting(false);
        fewest = fewest.min(ALLOCATIONS.load(Ordering::Relaxed));
        if fewest == 0 {
            break;
        }
    }
    fewest
}

#[test]
fn sequence_workspace_step_allocates_nothing_in_steady_state() {
    assert_eq!(sequence_step_allocations(1), 0);
}

#[test]
fn sequence_workspace_rejects_bad_input() {
    let (ids, lengths, labels) = sequences(10);
    let data = SequenceDataset::new(&ids, &lengths, &labels, SEQ_LEN).unwrap();
    let mut model = sequence_model(RecurrentKind::Lstm);
    let mut workspace = SequenceWorkspace::new(&model, 4).unwrap();
    let mut optimiser = Optimiser::Adam(Adam::new(AdamConfig::default()).unwrap());
    let before = model.clone();

    // Too many rows, a row out of range, no rows.
    let rows: Vec<usize> = (0..5).collect();
    assert!(workspace
        .train_step(&mut model, &data, &rows, &mut optimiser)
        .is_err());
    assert!(workspace
        .train_step(&mut model, &data, &[10], &mut optimiser)
        .is_err());
    assert!(workspace
        .train_step(&mut model, &data, &[], &mut optimiser)
        .is_err());

    // A label out of range, a token id out of range.
    let bad_labels = [0, 0, 0, 0, 0, 0, 0, 0, 0, SEQ_CLASSES as u32];
    let bad = SequenceDataset::new(&ids, &lengths, &bad_labels, SEQ_LEN).unwrap();
    assert!(workspace
        .train_step(&mut model, &bad, &[0, 9], &mut optimiser)
        .is_err());
    let mut bad_ids = ids.clone();
    bad_ids[0] = VOCAB as u32;
    let bad = SequenceDataset::new(&bad_ids, &lengths, &labels, SEQ_LEN).unwrap();
    assert!(workspace
        .train_step(&mut model, &bad, &[1, 0], &mut optimiser)
        .is_err());

    // A workspace made for another model.
    let other = SequenceClassifier::init(
        RecurrentKind::Rnn,
        VOCAB,
        6,
        10,
        SEQ_CLASSES as usize,
        &mut SplitMix64::new(5),
    )
    .unwrap();
    let mut other_workspace = SequenceWorkspace::new(&other, 4).unwrap();
    assert!(other_workspace
        .train_step(&mut model, &data, &[0], &mut optimiser)
        .is_err());
    assert_eq!(model, before);

    // The workspace still trains after the errors.
    workspace
        .train_step(&mut model, &data, &[0, 1, 2], &mut optimiser)
        .unwrap();
}

#[test]
fn sequence_workspace_step_allocates_nothing_on_two_threads() {
    assert_eq!(sequence_step_allocations(2), 0);
}
