//! Properties that hold for every algorithm, mode and bound handler. Scored
//! points stay in the box and non-finite fitness never becomes the best.
//! Runs do not depend on the thread count, and a resumed run repeats an
//! uninterrupted one bit for bit.

use heft_search::rng::SplitMix;
use heft_search::testfns::{sphere, TestFunction};
use heft_search::{
    build, build_with_source, Algorithm, BoundHandler, Bounds, Callbacks, Mode, NoCallbacks,
    Objective, Optimizer, PerPoint, RandomSource, Search, Settings, StopRules, VelocityHandling,
};

fn modes(alg: Algorithm) -> Vec<Mode> {
    if alg.has_study_mode() {
        vec![Mode::Opytimizer214, Mode::Canonical]
    } else {
        vec![Mode::Canonical]
    }
}

fn population_for(alg: Algorithm) -> usize {
    if alg == Algorithm::Snes {
        6
    } else {
        5
    }
}

/// An objective that fails the test if any scored point leaves the box.
struct InsideBox {
    bounds: Bounds,
    scored: usize,
    /// Every coordinate of the optimum.
    centre: f64,
}

impl Objective for InsideBox {
    fn evaluate(&mut self, candidates: &[f32], dim: usize, fitness: &mut [f64]) {
        for (row, f) in candidates.chunks(dim).zip(fitness.iter_mut()) {
            for (j, &x) in row.iter().enumerate() {
                let (lo, hi) = (self.bounds.lower()[j], self.bounds.upper()[j]);
                assert!(x >= lo, "coordinate {j} = {x} below the lower bound {lo}");
                assert!(x <= hi, "coordinate {j} = {x} above the upper bound {hi}");
            }
            self.scored += 1;
            *f = row.iter().map(|&x| (x as f64 - self.centre).powi(2)).sum();
        }
    }
}

fn boxes(rng: &mut SplitMix) -> Vec<(&'static str, Bounds)> {
    let d = 6;
    let mut out = vec![
        ("unit", Bounds::uniform(d, -1.0, 1.0).unwrap()),
        ("degenerate", Bounds::uniform(d, 0.25, 0.25).unwrap()),
        (
            "partly degenerate",
            Bounds::new(
                vec![0.0, -1.0, 3.0, 3.0, -2.0, 5.0],
                vec![0.0, 1.0, 3.0, 4.0, -2.0, 6.0],
            )
            .unwrap(),
        ),
        (
            "huge asymmetric",
            Bounds::uniform(d, -1.0e30, 1.0e5).unwrap(),
        ),
        (
            "near f32 range",
            Bounds::uniform(d, -3.0e38, 3.0e38).unwrap(),
        ),
        (
            "narrow around w0",
            Bounds::around(&[0.3, -0.7, 1.5, 0.0, 2.0, -0.01], 0.01).unwrap(),
        ),
    ];
    for _ in 0..4 {
        let lower: Vec<f32> = (0..d)
            .map(|_| (rng.normal() * 10.0f64.powf(4.0 * rng.uniform())) as f32)
            .collect();
        let upper: Vec<f32> = lower
            .iter()
            .map(|&l| l + (rng.uniform() * 10.0f64.powf(3.0 * rng.uniform() - 1.0)) as f32)
            .collect();
        out.push(("random", Bounds::new(lower, upper).unwrap()));
    }
    out
}

#[test]
fn scored_points_stay_in_box() {
    let mut case_rng = SplitMix::new(99);
    for (name, bounds) in boxes(&mut case_rng) {
        for alg in Algorithm::ALL {
            for mode in modes(alg) {
                for handler in [
                    BoundHandler::Clip,
                    BoundHandler::Reflect,
                    BoundHandler::Random,
                ] {
                    for velocity in [VelocityHandling::Keep, VelocityHandling::Reverse] {
                        let mut s = Settings::new(bounds.clone(), population_for(alg), 7)
                            .with_mode(mode)
                            .with_bound_handler(handler);
                        s.velocity_handling = velocity;
                        let mut objective = InsideBox {
                            bounds: bounds.clone(),
                            scored: 0,
                            centre: 1.0e3,
                        };
                        let mut search = Search::new(build(alg, &s).unwrap());
                        search
                            .run(&mut objective, &StopRules::iterations(8), &mut NoCallbacks)
                            .unwrap();
                        assert!(objective.scored > 0);
                        let (best, f) = search
                            .optimizer()
                            .best()
                            .unwrap_or_else(|| panic!("{name} {}: no best", alg.name()));
                        assert!(
                            bounds.contains(best),
                            "{name} {} {}: best outside the box",
                            alg.name(),
                            mode.name()
                        );
                        assert!(f.is_finite());
                    }
                }
            }
        }
    }
}

/// Makes the first `n` draws return all ones, so the first uniforms are the
/// largest f32 below 1. In the box `[2, 3]` those round to the upper bound,
/// which puts the initial population on it. Later draws are ordinary.
struct UpperFirst {
    left: usize,
    inner: SplitMix,
}

impl RandomSource for UpperFirst {
    fn next_u64(&mut self) -> u64 {
        if self.left > 0 {
            self.left -= 1;
            u64::MAX
        } else {
            self.inner.next_u64()
        }
    }
}

#[test]
fn population_on_one_bound() {
    let (p, d) = (6, 5);
    let bounds = Bounds::uniform(d, 2.0, 3.0).unwrap();
    for alg in Algorithm::ALL {
        for mode in modes(alg) {
            let s = Settings::new(bounds.clone(), p, 11).with_mode(mode);
            let rng = Box::new(UpperFirst {
                left: p * d,
                inner: SplitMix::new(11),
            });
            let mut opt = build_with_source(alg, &s, rng).unwrap();
            if !matches!(alg, Algorithm::SepCmaEs | Algorithm::Snes) {
                assert!(
                    opt.ask().iter().all(|&x| x == 3.0),
                    "{}: initial population not on the upper bound",
                    alg.name()
                );
            }
            let mut search = Search::new(opt);
            let mut objective = InsideBox {
                bounds: bounds.clone(),
                scored: 0,
                centre: 2.5,
            };
            search
                .run(&mut objective, &StopRules::iterations(20), &mut NoCallbacks)
                .unwrap();
            let moved = search.history().iter().any(|r| r.diversity > 0.0);
            // PSO and DE cannot leave a population of identical agents: every
            // term of their updates is a difference of agents (or a velocity
            // that starts at zero). RPSO in 2.1.4 mode starts with velocity
            // one, which pushes every agent past the upper bound, and clipping
            // with the velocity kept returns them all to it. In FA no firefly
            // is brighter than another, so none moves.
            let stuck = matches!(
                alg,
                Algorithm::Pso | Algorithm::Rpso | Algorithm::De | Algorithm::Fa
            );
            assert_eq!(
                moved,
                !stuck,
                "{} {}: diversity recovered = {moved}",
                alg.name(),
                mode.name()
            );
        }
    }
}

/// Returns NaN, +inf or -inf for some points and the sphere for the rest.
fn poisoned(x: &[f32]) -> f64 {
    let s = sphere(x);
    match (x[0].to_bits() % 4, x[1] > 0.0) {
        (0, _) => f64::NAN,
        (1, true) => f64::INFINITY,
        (2, true) => f64::NEG_INFINITY,
        _ => s,
    }
}

#[test]
fn nan_fitness_never_best() {
    for alg in Algorithm::ALL {
        for mode in modes(alg) {
            let s = Settings::new(
                Bounds::uniform(4, -3.0, 3.0).unwrap(),
                population_for(alg),
                13,
            )
            .with_mode(mode);
            let mut search = Search::new(build(alg, &s).unwrap());
            search
                .run(
                    &mut PerPoint(poisoned),
                    &StopRules::iterations(25),
                    &mut NoCallbacks,
                )
                .unwrap();
            let (point, best) = search
                .optimizer()
                .best()
                .expect("some points have finite fitness");
            assert!(
                best.is_finite(),
                "{} {}: best {best}",
                alg.name(),
                mode.name()
            );
            assert_eq!(
                poisoned(point),
                best,
                "{} {}: best point does not score its fitness",
                alg.name(),
                mode.name()
            );
            assert!(search.optimizer().fitness().iter().all(|f| !f.is_nan()));
            for r in search.history() {
                assert!(
                    !r.best.is_nan(),
                    "{} {}: NaN best in history",
                    alg.name(),
                    mode.name()
                );
                let all_non_finite = r.non_finite == search.optimizer().population_size() as u64;
                assert_eq!(
                    r.mean.is_nan(),
                    all_non_finite,
                    "{} {}: mean {}",
                    alg.name(),
                    mode.name(),
                    r.mean
                );
            }
        }
    }
}

#[test]
fn all_nan_objective_has_no_best() {
    for alg in Algorithm::ALL {
        for mode in modes(alg) {
            let s = Settings::new(
                Bounds::uniform(3, -1.0, 1.0).unwrap(),
                population_for(alg),
                1,
            )
            .with_mode(mode);
            let mut search = Search::new(build(alg, &s).unwrap());
            let report = search
                .run(
                    &mut PerPoint(|_: &[f32]| f64::NAN),
                    &StopRules::iterations(5),
                    &mut NoCallbacks,
                )
                .unwrap();
            assert!(
                search.optimizer().best().is_none(),
                "{} {}",
                alg.name(),
                mode.name()
            );
            assert_eq!(report.best_fitness, f64::INFINITY);
            assert_eq!(search.history()[5].non_finite, population_for(alg) as u64);
        }
    }
}

fn run_in_pool(threads: usize, alg: Algorithm, mode: Mode) -> (Vec<u32>, u64) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        // 20,000 dimensions x 4 agents makes the random buffers long enough
        // for the parallel fill.
        let d = 20_000;
        let s = Settings::new(
            Bounds::uniform(d, -1.0, 1.0).unwrap(),
            4.max(population_for(alg) - 1) / 2 * 2,
            21,
        )
        .with_mode(mode);
        let mut search = Search::new(build(alg, &s).unwrap());
        search
            .run(
                &mut TestFunction::Rastrigin,
                &StopRules::iterations(3),
                &mut NoCallbacks,
            )
            .unwrap();
        let bits = search
            .optimizer()
            .population()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        (bits, search.optimizer().best().unwrap().1.to_bits())
    })
}

#[test]
fn same_seed_same_result_any_thread_count() {
    for alg in Algorithm::ALL {
        for mode in modes(alg) {
            let one = run_in_pool(1, alg, mode);
            let two = run_in_pool(2, alg, mode);
            assert!(
                one == two,
                "{} {}: results differ between 1 and 2 threads",
                alg.name(),
                mode.name()
            );
        }
    }
}

/// Bit patterns of population, fitness, best point and fitness, and history
/// rows (iteration, best, diversity, evaluations).
type Snapshot = (
    Vec<u32>,
    Vec<u64>,
    Option<(Vec<u32>, u64)>,
    Vec<(u64, u64, u64, u64)>,
);

fn snapshot(search: &Search) -> Snapshot {
    let opt = search.optimizer();
    (
        opt.population().iter().map(|x| x.to_bits()).collect(),
        opt.fitness().iter().map(|x| x.to_bits()).collect(),
        opt.best()
            .map(|(p, f)| (p.iter().map(|x| x.to_bits()).collect(), f.to_bits())),
        search
            .history()
            .iter()
            .map(|r| {
                (
                    r.iteration,
                    r.best.to_bits(),
                    r.diversity.to_bits(),
                    r.evaluations,
                )
            })
            .collect(),
    )
}

#[test]
fn resume_matches_uninterrupted_run() {
    let bounds = Bounds::uniform(7, -5.0, 5.0).unwrap();
    for alg in Algorithm::ALL {
        for mode in modes(alg) {
            for handler in [BoundHandler::Clip, BoundHandler::Random] {
                let s = Settings::new(bounds.clone(), population_for(alg) + 1, 5)
                    .with_mode(mode)
                    .with_bound_handler(handler);
                let s = if alg == Algorithm::Snes {
                    Settings { population: 6, ..s }
                } else {
                    s
                };
                let mut full = Search::new(build(alg, &s).unwrap());
                full.run(
                    &mut TestFunction::Rastrigin,
                    &StopRules::iterations(12),
                    &mut NoCallbacks,
                )
                .unwrap();

                let mut first = Search::new(build(alg, &s).unwrap());
                first
                    .run(
                        &mut TestFunction::Rastrigin,
                        &StopRules::iterations(5),
                        &mut NoCallbacks,
                    )
                    .unwrap();
                let bytes = first.checkpoint().unwrap();
                let mut resumed = Search::resume(build(alg, &s).unwrap(), &bytes).unwrap();
                resumed
                    .run(
                        &mut TestFunction::Rastrigin,
                        &StopRules::iterations(12),
                        &mut NoCallbacks,
                    )
                    .unwrap();
                assert!(
                    snapshot(&full) == snapshot(&resumed),
                    "{} {} {:?}: resumed run differs",
                    alg.name(),
                    mode.name(),
                    handler
                );
            }
        }
    }
}

#[test]
fn resume_inside_an_iteration() {
    // DE and BA in 2.1.4 mode: save after some single-agent batches.
    for alg in [Algorithm::De, Algorithm::Ba, Algorithm::Ga] {
        let s = Settings::new(Bounds::uniform(5, -1.0, 1.0).unwrap(), 6, 8)
            .with_mode(Mode::Opytimizer214);
        let step = |opt: &mut dyn Optimizer| {
            let fit: Vec<f64> = opt.ask().chunks(5).map(sphere).collect();
            opt.tell(&fit).unwrap();
        };
        let mut a = build(alg, &s).unwrap();
        for _ in 0..20 {
            step(a.as_mut());
        }
        let mut b = build(alg, &s).unwrap();
        for _ in 0..9 {
            step(b.as_mut());
        }
        let bytes = b.save_state().unwrap();
        let mut c = build(alg, &s).unwrap();
        c.load_state(&bytes).unwrap();
        for _ in 9..20 {
            step(c.as_mut());
        }
        assert_eq!(a.population(), c.population(), "{}", alg.name());
        assert_eq!(a.best(), c.best(), "{}", alg.name());
    }
}

#[test]
fn checkpoint_rejects_damage() {
    let s = Settings::new(Bounds::uniform(3, -1.0, 1.0).unwrap(), 5, 8);
    let mut search = Search::new(build(Algorithm::Pso, &s).unwrap());
    search
        .run(
            &mut TestFunction::Sphere,
            &StopRules::iterations(2),
            &mut NoCallbacks,
        )
        .unwrap();
    let bytes = search.checkpoint().unwrap();
    let fresh = || build(Algorithm::Pso, &s).unwrap();
    for cut in [0, 5, 11, 20, bytes.len() / 2, bytes.len() - 1] {
        let err =
            Search::resume(fresh(), &bytes[..cut]).expect_err("truncated checkpoint accepted");
        let msg = err.to_string();
        assert!(
            msg.contains("truncated") || msg.contains("corrupted") || msg.contains("magic"),
            "cut {cut}: {msg}"
        );
    }
    let mut flipped = bytes.clone();
    flipped[40] ^= 0x10;
    assert!(Search::resume(fresh(), &flipped)
        .unwrap_err()
        .to_string()
        .contains("hash mismatch"));
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(Search::resume(fresh(), &magic)
        .unwrap_err()
        .to_string()
        .contains("magic"));
    let other = build(Algorithm::De, &s).unwrap();
    assert!(Search::resume(other, &bytes)
        .unwrap_err()
        .to_string()
        .contains("algorithm \"pso\""));
    let bigger = build(
        Algorithm::Pso,
        &Settings {
            population: 6,
            ..s.clone()
        },
    )
    .unwrap();
    assert!(Search::resume(bigger, &bytes)
        .unwrap_err()
        .to_string()
        .contains("population"));
}

#[test]
fn bad_input_errors() {
    let b = Bounds::uniform(3, -1.0, 1.0).unwrap();
    let err = build(Algorithm::De, &Settings::new(b.clone(), 3, 0))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "population of 3 is too small for de: use at least 4 agents"
    );
    let err = "simplex".parse::<Algorithm>().unwrap_err().to_string();
    assert!(
        err.contains("pso, rpso, ga, de, ba, fa, sep-cma-es, snes, random"),
        "{err}"
    );
    let err = "opytimizer-3".parse::<Mode>().unwrap_err().to_string();
    assert!(err.contains("opytimizer-2.1.4, canonical"), "{err}");
    assert_eq!("opytimizer-2.1.4".parse::<Mode>(), Ok(Mode::Opytimizer214));
    assert_eq!(" PSO ".parse::<Algorithm>(), Ok(Algorithm::Pso));
    let err = build(Algorithm::Snes, &Settings::new(b.clone(), 5, 0))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("even"), "{err}");
    let err = build(
        Algorithm::SepCmaEs,
        &Settings::new(b.clone(), 4, 0).with_mode(Mode::Opytimizer214),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("no opytimizer-2.1.4 mode"), "{err}");
    let mut s = Settings::new(b.clone(), 4, 0);
    s.ga.p_mutation = 1.5;
    assert!(build(Algorithm::Ga, &s)
        .err()
        .unwrap()
        .to_string()
        .contains("p_mutation = 1.5"));
    let mut s = Settings::new(b.clone(), 4, 0);
    s.pso.w = f64::NAN;
    assert!(build(Algorithm::Pso, &s).is_err());
    let err = build(
        Algorithm::Pso,
        &Settings::new(b.clone(), 4, 0).with_initial_point(vec![0.0, 2.0, 0.0]),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("coordinate 1 of the initial point is 2"),
        "{err}"
    );
    let err = build(
        Algorithm::Pso,
        &Settings::new(b.clone(), 4, 0).with_initial_point(vec![0.0]),
    )
    .err()
    .unwrap();
    assert!(matches!(
        err,
        heft_search::SearchError::InitialPointLength {
            expected: 3,
            found: 1
        }
    ));
    assert!(build(Algorithm::Pso, &Settings::new(b.clone(), 0, 0)).is_err());

    let mut opt = build(Algorithm::Pso, &Settings::new(b, 4, 0)).unwrap();
    assert_eq!(
        opt.tell(&[1.0; 4]),
        Err(heft_search::SearchError::NoPendingBatch)
    );
    opt.ask();
    assert_eq!(
        opt.save_state().unwrap_err(),
        heft_search::SearchError::CheckpointWhilePending
    );
    assert!(matches!(
        opt.tell(&[1.0; 3]),
        Err(heft_search::SearchError::FitnessLength {
            expected: 4,
            found: 3
        })
    ));
    assert!(opt.tell(&[1.0; 4]).is_ok());
}

#[test]
fn initial_point_is_scored_first() {
    let w0 = vec![0.1f32, -0.2, 0.3];
    let bounds = Bounds::around(&w0, 0.01).unwrap();
    for alg in Algorithm::ALL {
        let s = Settings::new(bounds.clone(), 6, 3).with_initial_point(w0.clone());
        let mut opt = build(alg, &s).unwrap();
        assert_eq!(&opt.ask()[..3], &w0[..], "{}", alg.name());
    }
}

struct Counter {
    starts: usize,
    ends: usize,
    iteration_starts: Vec<u64>,
    iteration_ends: usize,
    before: usize,
    after: usize,
}

impl Callbacks for Counter {
    fn on_run_start(&mut self, _: &dyn Optimizer) {
        self.starts += 1;
    }
    fn on_run_end(&mut self, _: &dyn Optimizer, _: heft_search::StopReason) {
        self.ends += 1;
    }
    fn on_iteration_start(&mut self, iteration: u64) {
        self.iteration_starts.push(iteration);
    }
    fn on_iteration_end(&mut self, record: &heft_search::Record, _: &dyn Optimizer) -> bool {
        self.iteration_ends += 1;
        record.iteration < 3
    }
    fn before_scoring(&mut self, _: &[f32], _: usize) {
        self.before += 1;
    }
    fn after_scoring(&mut self, _: &[f32], _: usize, _: &[f64]) {
        self.after += 1;
    }
}

#[test]
fn callbacks_and_stopping_rules() {
    let s =
        Settings::new(Bounds::uniform(4, -1.0, 1.0).unwrap(), 5, 3).with_mode(Mode::Opytimizer214);
    let mut search = Search::new(build(Algorithm::De, &s).unwrap());
    let mut c = Counter {
        starts: 0,
        ends: 0,
        iteration_starts: vec![],
        iteration_ends: 0,
        before: 0,
        after: 0,
    };
    let report = search
        .run(
            &mut TestFunction::Sphere,
            &StopRules::iterations(100),
            &mut c,
        )
        .unwrap();
    assert_eq!(report.reason, heft_search::StopReason::Callback);
    assert_eq!((c.starts, c.ends), (1, 1));
    assert_eq!(c.iteration_starts, [0, 1, 2, 3]);
    assert_eq!(c.iteration_ends, 4);
    // Initial batch, then per iteration 5 single trials and one rescoring batch.
    assert_eq!((c.before, c.after), (1 + 3 * 6, 1 + 3 * 6));

    let mut search = Search::new(build(Algorithm::De, &s).unwrap());
    let report = search
        .run(
            &mut TestFunction::Sphere,
            &StopRules::evaluations(23),
            &mut NoCallbacks,
        )
        .unwrap();
    assert_eq!(report.reason, heft_search::StopReason::Evaluations);
    // 5 initial, 5 trials, 5 rescored, 5 trials: the next rescoring would reach 25.
    assert_eq!(report.evaluations, 20);

    let mut search = Search::new(build(Algorithm::Ga, &s).unwrap());
    let report = search
        .run(
            &mut TestFunction::Sphere,
            &StopRules::evaluations(12),
            &mut NoCallbacks,
        )
        .unwrap();
    // 5 initial and 4 children; rescoring the 5 survivors would reach 14.
    assert_eq!(report.evaluations, 9);

    let mut search = Search::new(build(Algorithm::Pso, &s).unwrap());
    let target = StopRules {
        target_fitness: Some(10.0),
        max_iterations: Some(1000),
        ..StopRules::default()
    };
    let report = search
        .run(&mut TestFunction::Sphere, &target, &mut NoCallbacks)
        .unwrap();
    assert_eq!(report.reason, heft_search::StopReason::Target);
    assert_eq!(
        report.iterations, 0,
        "the initial population of the unit box already scores below 10"
    );

    let mut search = Search::new(build(Algorithm::Pso, &s).unwrap());
    let timed = StopRules {
        time_limit: Some(std::time::Duration::ZERO),
        ..StopRules::default()
    };
    let report = search
        .run(&mut TestFunction::Sphere, &timed, &mut NoCallbacks)
        .unwrap();
    assert_eq!(report.reason, heft_search::StopReason::Time);
    assert_eq!(report.evaluations, 5);
}
