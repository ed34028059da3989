//! The recurrent scoring path against the model's own forward pass. The
//! path sorts the rows by length and runs each step on the rows still
//! inside their sequence. Every candidate's fitness must equal, bit for
//! bit, `evaluate` on the model with that candidate written in.

use heft_kernels::dispatch::Isa;
use heft_kernels::gemm::{Epilogue, Gemm, MatMut, MatRef};
use heft_nn::{RecurrentKind, SequenceClassifier, SplitMix64};
use heft_tune::{evaluate, Fitness, Model, ModelObjective, Split, Target};

mod common;
use common::{target, tokens_of_lengths, Tokens};

/// Candidates per population.
const POPULATION: usize = 6;

/// Half-width of the search box: wide enough that candidates of these
/// small untrained models predict differently, so the error fitness
/// differs between candidates.
const BOUND: f32 = 0.3;

/// Returns `rows` records of at most `seq_len` tokens. Every fourth row has
/// length 1 and every fourth the full length, so both occur many times and
/// in several blocks of the sorted rows. The others are uniform in
/// `1..=seq_len`, so every length has ties.
fn varied_tokens(rows: usize, seq_len: usize, vocab: usize, classes: usize, seed: u64) -> Tokens {
    let mut rng = SplitMix64::new(seed);
    let lengths = (0..rows)
        .map(|row| match row % 4 {
            0 => 1,
            1 => seq_len,
            _ => 1 + rng.below(seq_len as u64) as usize,
        })
        .collect();
    tokens_of_lengths(&mut rng, lengths, seq_len, vocab, classes)
}

fn sequence(kind: RecurrentKind, embedding: usize, hidden: usize, seed: u64) -> Model {
    let model =
        SequenceClassifier::init(kind, 30, embedding, hidden, 3, &mut SplitMix64::new(seed))
            .unwrap();
    Model::Sequence(model)
}

/// Returns the initial point, then `POPULATION - 1` uniform points of the
/// box, from `seed`.
fn population(initial: &[f32], seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut points = initial.to_vec();
    for _ in 1..POPULATION {
        points.extend(initial.iter().map(|&w| w + rng.uniform(-BOUND, BOUND)));
    }
    points
}

/// Returns the fitness that `evaluate` gives the model with `point`
/// written in.
fn evaluated_fitness(
    objective: &ModelObjective,
    model: &Model,
    split: Split<'_>,
    point: &[f32],
    fitness: Fitness,
) -> f64 {
    let mut tuned = model.clone();
    objective.apply(&mut tuned, point).unwrap();
    let evaluation = evaluate(&tuned, split).unwrap();
    match fitness {
        Fitness::Error => 1.0 - evaluation.accuracy(),
        Fitness::CrossEntropy => evaluation.mean_cross_entropy,
    }
}

/// Scores a seeded population under a pool of `threads` threads and checks
/// every candidate's fitness against `evaluate`, bit for bit. With
/// `require_spread`, also checks that the candidates' fitness differs.
fn check_bitwise(
    model: &Model,
    split: Split<'_>,
    target: &Target,
    fitness: Fitness,
    prune: bool,
    threads: usize,
    require_spread: bool,
) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let (objective, points, scores) = pool.install(|| {
        let mut objective =
            ModelObjective::new(model, target, split, BOUND, fitness, prune).unwrap();
        let points = population(objective.initial_point(), 3);
        let mut scores = vec![0.0; POPULATION];
        objective.score(&points, &mut scores).unwrap();
        (objective, points, scores)
    });
    let context = format!(
        "{} bias {} {fitness:?} prune {prune} threads {threads}",
        target.tensor, target.include_bias
    );
    for (p, point) in points.chunks_exact(objective.dim()).enumerate() {
        let expected = evaluated_fitness(&objective, model, split, point, fitness);
        assert_eq!(
            scores[p].to_bits(),
            expected.to_bits(),
            "{context} candidate {p}: {} against evaluate's {expected}",
            scores[p]
        );
    }
    // A path that ignored the candidates would pass only if they scored
    // alike, so check that the population spreads.
    assert!(
        !require_spread || scores.iter().any(|&s| s != scores[0]),
        "{context}: every candidate scored {}, so the check cannot tell them apart",
        scores[0]
    );
}

/// Checks every recurrent tensor, with and without its bias, with both
/// fitness kinds and 1 and 2 threads.
fn check_all_tensors(model: &Model, data: &Tokens) {
    let cases = [
        ("rnn.weight_hh_l0", false),
        ("rnn.weight_hh_l0", true),
        ("rnn.weight_ih_l0", false),
        ("rnn.weight_ih_l0", true),
        ("rnn.bias_ih_l0", false),
        ("rnn.bias_hh_l0", false),
        ("emb.weight", false),
    ];
    for (tensor, include_bias) in cases {
        let target = target(tensor, include_bias);
        for threads in [1, 2] {
            for fitness in [Fitness::Error, Fitness::CrossEntropy] {
                check_bitwise(model, data.split(), &target, fitness, false, threads, true);
            }
            check_bitwise(
                model,
                data.split(),
                &target,
                Fitness::Error,
                true,
                threads,
                true,
            );
        }
    }
}

#[test]
fn rnn_fitness_equals_evaluate() {
    // 700 rows make three blocks of sorted rows (256 each) and two blocks
    // of `evaluate` (512 each).
    let data = varied_tokens(700, 9, 30, 3, 1);
    check_all_tensors(&sequence(RecurrentKind::Rnn, 6, 8, 2), &data);
}

#[test]
fn lstm_fitness_equals_evaluate() {
    let data = varied_tokens(700, 9, 30, 3, 3);
    check_all_tensors(&sequence(RecurrentKind::Lstm, 6, 8, 4), &data);
}

#[test]
fn odd_sizes_equal_evaluate() {
    // Hidden sizes and embeddings that are not multiples of the vector
    // width put gates in the kernels' padded tails, and hidden size 1 gives
    // the RNN one-column GEMMs. Such small layers change few predictions,
    // so only the cross-entropy must differ between candidates.
    let data = varied_tokens(300, 7, 30, 3, 5);
    for (kind, embedding, hidden) in [
        (RecurrentKind::Rnn, 5, 7),
        (RecurrentKind::Rnn, 3, 1),
        (RecurrentKind::Lstm, 5, 7),
        (RecurrentKind::Lstm, 1, 3),
    ] {
        let model = sequence(kind, embedding, hidden, 6);
        for (tensor, include_bias) in [("rnn.weight_hh_l0", true), ("rnn.weight_ih_l0", true)] {
            for fitness in [Fitness::Error, Fitness::CrossEntropy] {
                check_bitwise(
                    &model,
                    data.split(),
                    &target(tensor, include_bias),
                    fitness,
                    false,
                    2,
                    fitness == Fitness::CrossEntropy,
                );
            }
        }
    }
}

#[test]
fn single_row_and_equal_lengths_equal_evaluate() {
    // One row, then rows that all have the full length, so no step skips
    // any row.
    let one = varied_tokens(1, 5, 30, 3, 7);
    let mut full = varied_tokens(40, 5, 30, 3, 8);
    full.lengths.fill(5);
    for t in 0..full.ids.len() {
        full.ids[t] = 1 + (t % 29) as u32;
    }
    let model = sequence(RecurrentKind::Lstm, 6, 8, 9);
    for data in [&one, &full] {
        for fitness in [Fitness::Error, Fitness::CrossEntropy] {
            let target = target("rnn.weight_hh_l0", false);
            let mut objective =
                ModelObjective::new(&model, &target, data.split(), BOUND, fitness, false).unwrap();
            let points = population(objective.initial_point(), 10);
            let mut scores = vec![0.0; POPULATION];
            objective.score(&points, &mut scores).unwrap();
            for (p, point) in points.chunks_exact(objective.dim()).enumerate() {
                let expected = evaluated_fitness(&objective, &model, data.split(), point, fitness);
                assert_eq!(
                    scores[p].to_bits(),
                    expected.to_bits(),
                    "{} rows {fitness:?} candidate {p}",
                    data.labels.len()
                );
            }
        }
    }
}

#[test]
fn population_scored_twice_gives_same_bits() {
    // The second population reuses the scratch buffers of the first; a
    // value left over from it would change the fitness.
    let data = varied_tokens(400, 8, 30, 3, 11);
    let model = sequence(RecurrentKind::Lstm, 6, 8, 12);
    let target = target("rnn.weight_hh_l0", true);
    let mut objective = ModelObjective::new(
        &model,
        &target,
        data.split(),
        BOUND,
        Fitness::CrossEntropy,
        false,
    )
    .unwrap();
    let points = population(objective.initial_point(), 13);
    let mut first = vec![0.0; POPULATION];
    objective.score(&points, &mut first).unwrap();
    let reversed: Vec<f32> = points
        .chunks_exact(objective.dim())
        .rev()
        .flatten()
        .copied()
        .collect();
    let mut second = vec![0.0; POPULATION];
    objective.score(&reversed, &mut second).unwrap();
    second.reverse();
    let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&first), bits(&second));
}

/// The recurrent path runs each step's GEMMs on a prefix of the rows, so it
/// relies on a row's result not depending on the rows after it. Checks
/// that contract of the heft-kernels GEMM for every kernel this CPU runs,
/// on the step shapes (`h W_hh^T` added with beta = 1, `x W_ih^T` with a
/// bias epilogue) and on inner sizes that need more than one pass.
#[test]
fn gemm_rows_do_not_depend_on_row_count() {
    let mut rng = SplitMix64::new(14);
    for isa in Isa::ALL {
        let Ok(gemm) = Gemm::with_isa(isa) else {
            println!("skipping kernel {isa:?}: not supported by this CPU");
            continue;
        };
        for (k, n) in [(64, 256), (8, 32), (7, 7), (1, 3), (300, 40), (600, 20)] {
            let rows = 300;
            let a: Vec<f32> = (0..rows * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            // B is the transpose of a row-major `[n, k]` weight, as in the
            // recurrent layers.
            let w: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let c0: Vec<f32> = (0..rows * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let b = MatRef::row_major(&w, n, k).unwrap().t();
            for (beta, epilogue_bias) in [(1.0, None), (0.0, Some(&bias[..]))] {
                let run = |m: usize, threads: usize| {
                    let mut c = c0[..m * n].to_vec();
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    pool.install(|| {
                        gemm.run_with(
                            1.0,
                            MatRef::row_major(&a[..m * k], m, k).unwrap(),
                            b,
                            beta,
                            MatMut::row_major(&mut c, m, n).unwrap(),
                            Epilogue {
                                bias: epilogue_bias,
                                relu: false,
                            },
                        )
                        .unwrap()
                    });
                    c.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
                };
                let all = run(rows, 2);
                for m in [1, 2, 5, 13, 31, 100, 257, 299] {
                    assert_eq!(
                        run(m, 1),
                        all[..m * n],
                        "{isa:?} k {k} n {n} beta {beta}: the first {m} rows differ"
                    );
                }
            }
        }
    }
}
