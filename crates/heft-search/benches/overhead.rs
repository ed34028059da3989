//! Overhead of each algorithm per candidate, objective excluded.
//!
//! One benchmark iteration is one iteration of the algorithm (all its
//! batches) with an objective that writes the row index as the fitness and
//! does nothing else. Throughput is reported in candidates (evaluations),
//! so criterion's "elements/s" inverts to ns per candidate.
//!
//! Shapes: P = 64 agents and D = 1,280 (the study's fc2 matrix, 128 x 10)
//! or D = 100,352.
//!
//! Run: `cargo bench -p heft-search --bench overhead -- --measurement-time 2`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use heft_search::{build, Algorithm, Bounds, Mode, Optimizer, Progress, Settings};
use std::hint::black_box;

const POPULATION: usize = 64;
const DIMS: [usize; 2] = [1_280, 100_352];

fn one_iteration(opt: &mut dyn Optimizer, fitness: &mut Vec<f64>) {
    loop {
        let rows = opt.ask().len() / opt.dim();
        fitness.clear();
        fitness.extend((0..rows).map(|i| i as f64));
        if opt.tell(black_box(fitness)).unwrap() == Progress::Iteration {
            return;
        }
    }
}

fn overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("search/overhead");
    group.sample_size(10);
    for d in DIMS {
        let w0: Vec<f32> = (0..d).map(|j| (j % 13) as f32 * 0.01 - 0.06).collect();
        let bounds = Bounds::around(&w0, 0.01).unwrap();
        for alg in Algorithm::ALL {
            let modes: &[Mode] = if alg.has_study_mode() {
                &[Mode::Opytimizer214, Mode::Canonical]
            } else {
                &[Mode::Canonical]
            };
            for &mode in modes {
                let settings = Settings::new(bounds.clone(), POPULATION, 1).with_mode(mode);
                let mut opt = build(alg, &settings).unwrap();
                let mut fitness = Vec::with_capacity(2 * POPULATION);
                // Score the initial population so the benchmark measures the steady state.
                let rows = opt.ask().len() / d;
                fitness.extend((0..rows).map(|i| i as f64));
                opt.tell(&fitness).unwrap();
                group.throughput(Throughput::Elements(opt.evaluations_per_iteration()));
                let id = BenchmarkId::new(
                    format!("{}/{}", alg.name(), mode.name()),
                    format!("P{POPULATION}xD{d}"),
                );
                group.bench_function(id, |b| b.iter(|| one_iteration(opt.as_mut(), &mut fitness)));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
