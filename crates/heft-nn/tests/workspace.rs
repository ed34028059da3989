//! `MlpWorkspace::train_step` against the step built from the public
//! layer functions, and its allocation count in steady state.

use heft_nn::{
    cross_entropy_with_grad, Adam, AdamConfig, Dataset, Mlp, MlpGrads, MlpWorkspace, Optimiser,
    Sgd, SgdConfig, SplitMix64,
};
use heft_tensor::Matrix;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting allocations made on a thread while that
/// thread's `COUNTING` is set, so tests running in parallel do not count.
struct CountingAllocator;

thread_local! {
    // Const-initialised, so reading it from the allocator never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

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
