//! Step-by-step traces of the `opytimizer-2.1.4` rules.
//!
//! For each of PSO, RPSO, GA, DE, BA and FA, a 3-agent (DE: 4-agent),
//! 4-variable sphere in `[-1, 1]^4` is run for two iterations with every
//! random draw scripted. After every scored batch the population and the
//! best fitness are compared with `tests/traces/data.rs`, which
//! `tools/search_traces.py` computes with an independent NumPy
//! implementation of the same rules. The script also fixes the draw order:
//! the scripted source fails the test if the algorithm requests a draw of
//! another kind, or for more or fewer draws than the script holds.

#![allow(non_snake_case)]

#[path = "traces/data.rs"]
mod data;

use heft_search::rng::{Draw, Scripted};
use heft_search::testfns::sphere;
use heft_search::{build_with_source, Algorithm, Bounds, Mode, Progress, RandomSource, Settings};
use std::sync::{Arc, Mutex};

const fn U(v: f64) -> Draw {
    Draw::Uniform(v)
}

const fn N(v: f64) -> Draw {
    Draw::Normal(v)
}

const fn B(v: usize) -> Draw {
    Draw::Below(v)
}

/// A scripted source the test can still inspect after the optimizer took it.
struct Shared(Arc<Mutex<Scripted>>);

impl RandomSource for Shared {
    fn next_u64(&mut self) -> u64 {
        self.0.lock().unwrap().next_u64()
    }
    fn uniform(&mut self) -> f64 {
        self.0.lock().unwrap().uniform()
    }
    fn normal(&mut self) -> f64 {
        self.0.lock().unwrap().normal()
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.lock().unwrap().below(n)
    }
}

fn replay(alg: Algorithm, population: usize, draws: &[Draw], steps: &[(&[f64], f64)]) {
    let script = Arc::new(Mutex::new(Scripted::new(draws.iter().copied())));
    let settings = Settings::new(Bounds::uniform(4, -1.0, 1.0).unwrap(), population, 0)
        .with_mode(Mode::Opytimizer214);
    let mut opt = build_with_source(alg, &settings, Box::new(Shared(script.clone()))).unwrap();
    for (step, (expected, best)) in steps.iter().enumerate() {
        let fitness: Vec<f64> = opt.ask().chunks(4).map(sphere).collect();
        let progress = opt.tell(&fitness).unwrap();
        if step == 0 {
            assert_eq!(progress, Progress::Initialized);
        }
        let pos = opt.population();
        assert_eq!(pos.len(), expected.len());
        for (k, (&got, &want)) in pos.iter().zip(expected.iter()).enumerate() {
            assert!(
                (got as f64 - want).abs() <= 2e-6,
                "{} step {step}: agent {} variable {} is {got}, expected {want}",
                alg.name(),
                k / 4,
                k % 4
            );
        }
        let got_best = opt.best().map_or(f64::INFINITY, |b| b.1);
        assert!(
            (got_best - best).abs() <= 1e-5 * best.max(1e-3),
            "{} step {step}: best {got_best}, expected {best}",
            alg.name()
        );
    }
    assert_eq!(opt.iterations(), 2, "{}", alg.name());
    assert_eq!(
        script.lock().unwrap().remaining(),
        0,
        "{}: draws left unused",
        alg.name()
    );
}

#[test]
fn pso_trace() {
    replay(Algorithm::Pso, 3, data::PSO_DRAWS, data::PSO_STEPS);
}

#[test]
fn rpso_trace() {
    replay(Algorithm::Rpso, 3, data::RPSO_DRAWS, data::RPSO_STEPS);
}

#[test]
fn ga_trace() {
    replay(Algorithm::Ga, 3, data::GA_DRAWS, data::GA_STEPS);
}

#[test]
fn de_trace() {
    replay(Algorithm::De, 4, data::DE_DRAWS, data::DE_STEPS);
}

#[test]
fn ba_trace() {
    replay(Algorithm::Ba, 3, data::BA_DRAWS, data::BA_STEPS);
}

#[test]
fn fa_trace() {
    replay(Algorithm::Fa, 3, data::FA_DRAWS, data::FA_STEPS);
}

#[test]
fn pso_first_move_by_hand() {
    // One agent, worked by hand: x = 0.5, v = 0, p = x (so the cognitive
    // term is 0), and g = x too. With r1 = 0.2, r2 = 0.8 the velocity stays
    // 0. A second agent at -0.5 with the better fitness becomes g, so agent
    // 0 moves by c2 r2 (g - x) = 1.7 * 0.8 * (-1.0) = -1.36 to -0.86.
    let draws = [U(0.75), U(0.25), U(0.2), U(0.8), U(0.5), U(0.5)];
    let settings =
        Settings::new(Bounds::uniform(1, -1.0, 1.0).unwrap(), 2, 0).with_mode(Mode::Opytimizer214);
    let mut opt =
        build_with_source(Algorithm::Pso, &settings, Box::new(Scripted::new(draws))).unwrap();
    assert_eq!(opt.ask(), &[0.5, -0.5]);
    opt.tell(&[0.25, 0.1]).unwrap();
    let moved = opt.ask().to_vec();
    assert!(
        (moved[0] - (0.5 - 1.36)).abs() < 1e-6,
        "agent 0 at {}",
        moved[0]
    );
    assert_eq!(moved[1], -0.5, "the best agent has no reason to move");
}
