//! Quality on standard 30-dimensional test functions within 30,000
//! evaluations (P = 30, seed 1). The thresholds are the ones documented in
//! each algorithm's module, with a margin over the values measured when
//! they were set.

use heft_search::testfns::TestFunction;
use heft_search::{
    build, Algorithm, Bounds, Callbacks, Mode, NoCallbacks, Optimizer, Search, Settings, StopRules,
};

const DIM: usize = 30;
const BUDGET: u64 = 30_000;

fn settings(f: TestFunction, mode: Mode) -> Settings {
    let (lo, hi) = f.domain();
    let mut s = Settings::new(Bounds::uniform(DIM, lo, hi).unwrap(), 30, 1).with_mode(mode);
    // FA's step decay is planned over the whole run: 30,000 / 30 iterations.
    s.fa.planned_iterations = BUDGET / 30;
    s
}

fn best_after_budget(alg: Algorithm, f: TestFunction) -> f64 {
    best_after_budget_with_seed(alg, f, 1)
}

fn best_after_budget_with_seed(alg: Algorithm, f: TestFunction, seed: u64) -> f64 {
    let mut s = settings(f, Mode::Canonical);
    s.seed = seed;
    let mut search = Search::new(build(alg, &s).unwrap());
    let report = search
        .run(
            &mut { f },
            &StopRules::evaluations(BUDGET),
            &mut NoCallbacks,
        )
        .unwrap();
    assert!(report.evaluations <= BUDGET);
    let (point, best) = search.optimizer().best().unwrap();
    assert!(
        (f.value(point) - best).abs() <= 1e-9 * best.abs().max(1.0),
        "{}: best point does not match its fitness",
        alg.name()
    );
    best
}

fn check(alg: Algorithm, f: TestFunction, threshold: f64) {
    let best = best_after_budget(alg, f);
    assert!(
        best < threshold,
        "{} on {f:?}: best {best:e}, expected < {threshold:e}",
        alg.name()
    );
}

#[test]
fn canonical_pso_functions() {
    check(Algorithm::Pso, TestFunction::Sphere, 1e-6);
    // Whether PSO leaves Ackley's local minima depends on the seed: 29 of
    // the seeds 1 to 60 reach below 1e-2, and 4 of the seeds 1 to 8.
    let reached = (1..=8)
        .filter(|&seed| {
            best_after_budget_with_seed(Algorithm::Pso, TestFunction::Ackley, seed) < 1e-2
        })
        .count();
    assert!(
        reached >= 3,
        "pso on Ackley: {reached} of the seeds 1 to 8 reach below 1e-2, expected at least 3"
    );
    check(Algorithm::Pso, TestFunction::Griewank, 0.1);
}

#[test]
fn canonical_pso_rpso_sphere() {
    check(Algorithm::Rpso, TestFunction::Sphere, 2.0);
}

#[test]
fn canonical_ga_sphere() {
    check(Algorithm::Ga, TestFunction::Sphere, 2.0);
    check(Algorithm::Ga, TestFunction::ShiftedSphere(2.5), 2.0);
}

#[test]
fn canonical_de_sphere() {
    check(Algorithm::De, TestFunction::Sphere, 1e-3);
    check(Algorithm::De, TestFunction::ShiftedSphere(2.5), 1e-3);
    check(Algorithm::De, TestFunction::Rosenbrock, 100.0);
    // Ackley depends on the seed: over the seeds 1 to 20 the best values
    // have a median of 0.039 and a maximum of 0.19 (seed 1 gives 0.13).
    check(Algorithm::De, TestFunction::Ackley, 0.3);
}

#[test]
fn canonical_ba_sphere() {
    check(Algorithm::Ba, TestFunction::Sphere, 0.1);
    check(Algorithm::Ba, TestFunction::ShiftedSphere(2.5), 0.1);
}

#[test]
fn canonical_fa_sphere() {
    check(Algorithm::Fa, TestFunction::Sphere, 10.0);
}

#[test]
fn sep_cma_es_sphere() {
    check(Algorithm::SepCmaEs, TestFunction::Sphere, 1e-10);
    check(Algorithm::SepCmaEs, TestFunction::Rastrigin, 100.0);
    check(Algorithm::SepCmaEs, TestFunction::Rosenbrock, 50.0);
    check(Algorithm::SepCmaEs, TestFunction::Ackley, 1e-6);
    check(Algorithm::SepCmaEs, TestFunction::Griewank, 1e-6);
}

#[test]
fn snes_sphere() {
    check(Algorithm::Snes, TestFunction::Sphere, 1e-10);
    check(Algorithm::Snes, TestFunction::Ackley, 1e-6);
    check(Algorithm::Snes, TestFunction::Rastrigin, 100.0);
}

#[test]
fn every_algorithm_beats_random_search() {
    let control = best_after_budget(Algorithm::RandomSearch, TestFunction::Sphere);
    assert!(
        control > 20.0,
        "random search reached {control}, the sphere is too easy to tell algorithms apart"
    );
    for alg in Algorithm::ALL
        .into_iter()
        .filter(|&a| a != Algorithm::RandomSearch)
    {
        let best = best_after_budget(alg, TestFunction::Sphere);
        assert!(
            best < control / 2.0,
            "{} reached {best}, random search {control}",
            alg.name()
        );
    }
}

/// Counts scored coordinates after the initial population.
#[derive(Default)]
struct CoordinateCounter {
    scored_batches: usize,
    total: usize,
    at_lower: usize,
    at_upper: usize,
    sum: f64,
}

impl Callbacks for CoordinateCounter {
    fn after_scoring(&mut self, candidates: &[f32], _dim: usize, _fitness: &[f64]) {
        self.scored_batches += 1;
        if self.scored_batches == 1 {
            return;
        }
        for &x in candidates {
            self.total += 1;
            self.at_lower += (x == 0.49f32) as usize;
            self.at_upper += (x == 0.51f32) as usize;
            self.sum += x as f64;
        }
    }
}

/// Runs GA for 15 iterations on a box of half-width 0.01 around `w0 = 0.5`
/// whose optimum lies at 0.505, as the study's setup does with weights.
fn ga_scored_coordinates(mode: Mode) -> CoordinateCounter {
    let w0 = vec![0.5f32; DIM];
    let mut s = Settings::new(Bounds::around(&w0, 0.01).unwrap(), 10, 3).with_mode(mode);
    s.initial_point = Some(w0);
    let mut search = Search::new(build(Algorithm::Ga, &s).unwrap());
    let mut counter = CoordinateCounter::default();
    search
        .run(
            &mut TestFunction::ShiftedSphere(0.505),
            &StopRules::iterations(15),
            &mut counter,
        )
        .unwrap();
    counter
}

#[test]
fn study_ga_pulls_toward_zero() {
    // Opytimizer 2.1.4 multiplies mutated genes by N(0, 1). On a box of
    // half-width 0.01 around 0.5 almost every product lands outside, and
    // clipping sends most of them to the bound nearer zero (0.49), away from
    // the optimum at 0.505. Canonical GA adds small Gaussian steps instead.
    let study = ga_scored_coordinates(Mode::Opytimizer214);
    let canonical = ga_scored_coordinates(Mode::Canonical);
    let study_lower = study.at_lower as f64 / study.total as f64;
    let canonical_lower = canonical.at_lower as f64 / canonical.total as f64;
    assert!(
        study_lower > 0.1,
        "study GA: {study_lower} of scored coordinates on the lower bound"
    );
    assert!(
        study.at_lower > 2 * study.at_upper,
        "study GA: {} on the lower bound, {} on the upper",
        study.at_lower,
        study.at_upper
    );
    assert!(
        canonical_lower < 0.02,
        "canonical GA: {canonical_lower} of scored coordinates on the lower bound"
    );
    let (study_mean, canonical_mean) = (
        study.sum / study.total as f64,
        canonical.sum / canonical.total as f64,
    );
    assert!(
        study_mean < canonical_mean,
        "mean scored coordinate: study {study_mean}, canonical {canonical_mean}"
    );
    assert!(
        canonical_mean > 0.5,
        "canonical GA mean {canonical_mean}, expected to move toward 0.505"
    );
}

#[test]
fn evaluation_counts_per_iteration() {
    let p = 10u64;
    let expected = [
        (Algorithm::Pso, p, p),
        (Algorithm::Rpso, p, p),
        (Algorithm::Ga, 8 + p, 8),
        (Algorithm::De, 2 * p, p),
        (Algorithm::Ba, 2 * p, p),
        (Algorithm::Fa, p, p),
    ];
    for (alg, study, canonical) in expected {
        for (mode, per_iteration) in [(Mode::Opytimizer214, study), (Mode::Canonical, canonical)] {
            let s = Settings::new(Bounds::uniform(4, -1.0, 1.0).unwrap(), p as usize, 5)
                .with_mode(mode);
            let mut search = Search::new(build(alg, &s).unwrap());
            let report = search
                .run(
                    &mut TestFunction::Sphere,
                    &StopRules::iterations(3),
                    &mut NoCallbacks,
                )
                .unwrap();
            assert_eq!(
                search.optimizer().evaluations_per_iteration(),
                per_iteration,
                "{} {}",
                alg.name(),
                mode.name()
            );
            assert_eq!(
                report.evaluations,
                p + 3 * per_iteration,
                "{} {}",
                alg.name(),
                mode.name()
            );
            let history: Vec<u64> = search.history().iter().map(|r| r.evaluations).collect();
            let expected: Vec<u64> = (0..4).map(|t| p + t * per_iteration).collect();
            assert_eq!(history, expected, "{} {}", alg.name(), mode.name());
        }
    }
}

#[test]
fn study_batches_match_library_order() {
    // DE and BA in 2.1.4 mode score one agent at a time, then the whole population.
    for alg in [Algorithm::De, Algorithm::Ba] {
        let s = Settings::new(Bounds::uniform(3, -1.0, 1.0).unwrap(), 5, 2)
            .with_mode(Mode::Opytimizer214);
        let mut opt = build(alg, &s).unwrap();
        let mut sizes = Vec::new();
        for _ in 0..12 {
            let rows = opt.ask().len() / 3;
            sizes.push(rows);
            let fit: Vec<f64> = opt
                .ask()
                .chunks(3)
                .map(heft_search::testfns::sphere)
                .collect();
            opt.tell(&fit).unwrap();
        }
        assert_eq!(
            sizes,
            [5, 1, 1, 1, 1, 1, 5, 1, 1, 1, 1, 1],
            "{}",
            alg.name()
        );
    }
    let s =
        Settings::new(Bounds::uniform(3, -1.0, 1.0).unwrap(), 10, 2).with_mode(Mode::Opytimizer214);
    let mut ga = build(Algorithm::Ga, &s).unwrap();
    let mut sizes = Vec::new();
    for _ in 0..5 {
        sizes.push(ga.ask().len() / 3);
        let fit: Vec<f64> = ga
            .ask()
            .chunks(3)
            .map(heft_search::testfns::sphere)
            .collect();
        ga.tell(&fit).unwrap();
    }
    assert_eq!(sizes, [10, 8, 10, 8, 10]);
}

#[test]
fn history_tracks_best_and_diversity() {
    let s = settings(TestFunction::Sphere, Mode::Canonical);
    let mut search = Search::new(build(Algorithm::De, &s).unwrap());
    search
        .run(
            &mut TestFunction::Sphere,
            &StopRules::iterations(50),
            &mut NoCallbacks,
        )
        .unwrap();
    let h = search.history();
    assert_eq!(h.len(), 51);
    for pair in h.windows(2) {
        assert!(
            pair[1].best <= pair[0].best,
            "best fitness must not get worse"
        );
        assert!(pair[1].elapsed >= pair[0].elapsed);
    }
    assert!(
        h[50].diversity < h[0].diversity,
        "DE should contract the population on the sphere"
    );
    assert!(h[0].std > 0.0);
    assert!(h[0].mean >= h[0].best);
    let opt: &dyn Optimizer = search.optimizer();
    assert_eq!(h[50].best, opt.best().unwrap().1);
}

/// Runs 10 generations of 8 samples around a `d`-dimensional `w0` and
/// returns the seconds taken and the search.
fn es_run(alg: Algorithm, d: usize) -> (Search, Bounds) {
    let w0: Vec<f32> = (0..d).map(|j| ((j % 17) as f32 - 8.0) * 0.01).collect();
    let bounds = Bounds::around(&w0, 0.01).unwrap();
    let s = Settings::new(bounds.clone(), 8, 4).with_initial_point(w0);
    let mut search = Search::new(build(alg, &s).unwrap());
    search
        .run(
            &mut TestFunction::Sphere,
            &StopRules::iterations(10),
            &mut NoCallbacks,
        )
        .unwrap();
    (search, bounds)
}

#[test]
fn evolution_strategies_scale_to_100k_dimensions() {
    // The state (mean, per-dimension variances, paths, population) is O(D):
    // its serialised size grows tenfold from 10,000 to 100,000 dimensions,
    // up to a fixed header. Time per sample, also O(D), is measured by the
    // overhead benchmark, not here. Progress per generation in 100,000
    // dimensions with 8 samples is about 1e-4 of the distance, too small to
    // test quality here.
    for alg in [Algorithm::SepCmaEs, Algorithm::Snes] {
        let (small_search, _) = es_run(alg, 10_000);
        let (search, bounds) = es_run(alg, 100_000);
        let small = small_search.optimizer().save_state().unwrap().len() as f64;
        let large = search.optimizer().save_state().unwrap().len() as f64;
        let ratio = large / small;
        assert!(
            (9.5..=10.0).contains(&ratio),
            "{}: state of {large} bytes at 100,000 dimensions, {small} at 10,000",
            alg.name()
        );
        let opt = search.optimizer();
        assert!(
            opt.population()
                .chunks(100_000)
                .all(|row| bounds.contains(row)),
            "{}",
            alg.name()
        );
        assert_eq!(search.history().len(), 11);
        assert!(opt.best().unwrap().1.is_finite());
    }
}
