//! Experiments end to end on synthetic data: a tiny MLP pre-trained per
//! seed, two algorithms over three seeds, the results file, resuming after
//! an interruption, and the report.

use heft_nn::{train_mlp, Dataset, Mlp, SplitMix64, TrainConfig};
use heft_search::{Algorithm, Mode};
use heft_tune::experiment::{
    read_runs, run_experiment, ExperimentSpec, Report, RunRecord, SeedSetup, RUNS_FILE,
};
use heft_tune::stats::WilcoxonOptions;
use heft_tune::{Model, Split, TuneError};
use std::path::{Path, PathBuf};

const COLUMNS: usize = 8;
const CLASSES: usize = 3;

/// Features and labels of a noisy three-class problem: each class has its
/// own centre in 8 dimensions.
struct Data {
    features: Vec<f32>,
    labels: Vec<u32>,
}

impl Data {
    fn generate(rows: usize, seed: u64) -> Data {
        let mut rng = SplitMix64::new(seed);
        let mut features = Vec::with_capacity(rows * COLUMNS);
        let mut labels = Vec::with_capacity(rows);
        for _ in 0..rows {
            let label = rng.below(CLASSES as u64) as u32;
            for c in 0..COLUMNS {
                let centre = if c % CLASSES == label as usize {
                    1.0
                } else {
                    0.0
                };
                features.push(centre + rng.uniform(-1.2, 1.2));
            }
            labels.push(label);
        }
        Data { features, labels }
    }

    fn split(&self) -> Split<'_> {
        Split::Dense {
            features: &self.features,
            columns: COLUMNS,
            labels: &self.labels,
        }
    }
}

struct Splits {
    train: Data,
    validation: Data,
    test: Data,
}

fn splits() -> Splits {
    Splits {
        train: Data::generate(300, 1),
        validation: Data::generate(200, 2),
        test: Data::generate(200, 3),
    }
}

/// Pre-trains the seed's MLP 8-6-3 for one epoch.
fn pretrain(seed: u64, train: &Data) -> Model {
    let mut rng = SplitMix64::new(seed);
    let mut mlp = Mlp::init(&[COLUMNS, 6, CLASSES], &mut rng).unwrap();
    let data = Dataset::new(&train.features, &train.labels, COLUMNS).unwrap();
    let config = TrainConfig {
        epochs: 1,
        batch_size: 50,
        seed,
        progress: false,
        ..TrainConfig::default()
    };
    train_mlp(&mut mlp, &data, None, &config).unwrap();
    Model::Mlp(mlp)
}

fn small_spec() -> ExperimentSpec {
    ExperimentSpec {
        algorithms: vec![
            (Algorithm::Pso, Mode::Canonical),
            (Algorithm::De, Mode::Opytimizer214),
        ],
        seeds: vec![11, 12, 13],
        tensors: vec!["fc2.weight".to_string()],
        agents: 6,
        iterations: 4,
        bound: 0.05,
        ..ExperimentSpec::default()
    }
}

/// Returns an empty directory for one test.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("heft-experiment-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `spec` in `dir`, counting the calls of the preparation closure.
fn run(
    spec: &ExperimentSpec,
    dir: &Path,
    resume: bool,
    data: &Splits,
    prepared: &mut Vec<u64>,
) -> Result<heft_tune::experiment::ExperimentOutcome, TuneError> {
    run_experiment(
        spec,
        dir,
        resume,
        |seed| {
            prepared.push(seed);
            Ok(SeedSetup {
                model: pretrain(seed, &data.train),
                validation: data.validation.split(),
                test: data.test.split(),
            })
        },
        |_| {},
    )
}

/// Returns the records with the timing fields zeroed, since only they
/// differ between two runs of the same cell.
fn without_timing(records: &[RunRecord]) -> Vec<RunRecord> {
    records
        .iter()
        .map(|r| RunRecord {
            candidates_per_second: 0.0,
            elapsed_seconds: 0.0,
            ..r.clone()
        })
        .collect()
}

#[test]
fn small_experiment_report_rows() {
    let data = splits();
    let spec = small_spec();
    let dir = test_dir("small");
    let mut prepared = Vec::new();
    let outcome = run(&spec, &dir, false, &data, &mut prepared).unwrap();
    assert_eq!(outcome.completed, 6);
    assert_eq!(outcome.skipped, 0);
    assert_eq!(outcome.records.len(), 6);
    assert_eq!(prepared, vec![11, 12, 13]);

    for record in &outcome.records {
        // The pre-trained point is in the initial population.
        assert!(
            record.tuned_validation.correct >= record.pretrained_validation.correct,
            "{record:?}"
        );
        assert_eq!(
            record.best_fitness.len(),
            5,
            "initial population and 4 iterations"
        );
        assert!(record.evaluations > 0);
        assert!(record.candidates_per_second > 0.0);
    }

    let report = Report::build(&outcome.records, WilcoxonOptions::default()).unwrap();
    assert_eq!(report.rows.len(), 2);
    for row in &report.rows {
        assert_eq!(row.seeds, vec![11, 12, 13]);
        assert_eq!(row.mean_convergence.len(), 5);
    }
    let markdown = report.to_markdown();
    assert!(markdown.contains("## fc2.weight"), "{markdown}");
    assert!(markdown.contains("| pso | canonical | 3 |"), "{markdown}");
    assert!(
        markdown.contains("| de | opytimizer-2.1.4 | 3 |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("Friedman test over 3 seeds"),
        "{markdown}"
    );

    let csv = report.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with("fc2.weight,pso,canonical,3,"), "{csv}");
    assert!(
        lines[2].starts_with("fc2.weight,de,opytimizer-2.1.4,3,"),
        "{csv}"
    );
    let columns = lines[0].split(',').count();
    assert!(
        lines.iter().all(|l| l.split(',').count() == columns),
        "{csv}"
    );

    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
    assert_eq!(json["friedman"][0]["seeds"].as_array().unwrap().len(), 3);

    let gains = report.gains_svg();
    assert!(gains.starts_with("<svg"), "{gains}");
    assert_eq!(gains.matches("<rect x=").count(), 2, "one box per row");
    let convergence = report.convergence_svg();
    assert_eq!(
        convergence.matches("<polyline").count(),
        2,
        "one line per row"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn interrupted_experiment_resumes_same_report() {
    let data = splits();
    let spec = small_spec();

    let full_dir = test_dir("full");
    let full = run(&spec, &full_dir, false, &data, &mut Vec::new()).unwrap();

    // Interrupted after the runs of the first seed, then a crash in the
    // middle of writing the next line.
    let dir = test_dir("resumed");
    let first_seed = ExperimentSpec {
        seeds: vec![11],
        ..spec.clone()
    };
    run(&first_seed, &dir, false, &data, &mut Vec::new()).unwrap();
    let runs_path = dir.join(RUNS_FILE);
    let partial_line = full.records[3].to_json_line();
    let mut text = std::fs::read_to_string(&runs_path).unwrap();
    text.push_str(&partial_line[..partial_line.len() / 2]);
    std::fs::write(&runs_path, text).unwrap();
    assert_eq!(
        read_runs(&runs_path).unwrap().len(),
        2,
        "the partial line is ignored"
    );

    let mut prepared = Vec::new();
    let resumed = run(&spec, &dir, true, &data, &mut prepared).unwrap();
    assert_eq!(resumed.completed, 4);
    assert_eq!(resumed.skipped, 2);
    assert_eq!(prepared, vec![12, 13], "seed 11 is not prepared again");
    assert_eq!(resumed.records.len(), 6, "no run is duplicated");
    let file = std::fs::read_to_string(&runs_path).unwrap();
    assert!(file.ends_with('\n'));
    assert_eq!(file.lines().count(), 6, "{file}");

    // Resuming a finished experiment runs nothing.
    let again = run(&spec, &dir, true, &data, &mut Vec::new()).unwrap();
    assert_eq!(again.completed, 0);
    assert_eq!(again.skipped, 6);

    let options = WilcoxonOptions::default();
    let expected = Report::build(&without_timing(&full.records), options).unwrap();
    let actual = Report::build(&without_timing(&resumed.records), options).unwrap();
    assert_eq!(actual, expected);
    assert_eq!(actual.to_markdown(), expected.to_markdown());
    assert_eq!(actual.to_csv(), expected.to_csv());
    assert_eq!(actual.to_json(), expected.to_json());
    let _ = std::fs::remove_dir_all(&full_dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn existing_results_need_resume() {
    let data = splits();
    let spec = ExperimentSpec {
        seeds: vec![11],
        algorithms: vec![(Algorithm::RandomSearch, Mode::Canonical)],
        ..small_spec()
    };
    let dir = test_dir("existing");
    run(&spec, &dir, false, &data, &mut Vec::new()).unwrap();
    let error = run(&spec, &dir, false, &data, &mut Vec::new()).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");

    let other = ExperimentSpec {
        iterations: 7,
        ..spec.clone()
    };
    let error = run(&other, &dir, true, &data, &mut Vec::new()).unwrap_err();
    assert!(error.to_string().contains("7"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_complete_line_rejected() {
    let dir = test_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(RUNS_FILE);
    std::fs::write(&path, "{\"seed\": 1}\n").unwrap();
    let error = read_runs(&path).unwrap_err();
    assert!(
        matches!(error, TuneError::ResultsLine { line: 1, .. }),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn record_json_round_trip() {
    let data = splits();
    let spec = ExperimentSpec {
        seeds: vec![11],
        algorithms: vec![(Algorithm::Pso, Mode::Opytimizer214)],
        ..small_spec()
    };
    let dir = test_dir("round-trip");
    let outcome = run(&spec, &dir, false, &data, &mut Vec::new()).unwrap();
    let record = &outcome.records[0];
    let parsed = RunRecord::from_json_line(&record.to_json_line()).unwrap();
    assert_eq!(&parsed, record);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn spec_validation() {
    let default = ExperimentSpec::default();
    assert_eq!(default.algorithms.len(), 15);
    assert_eq!(default.seeds.len(), 15);
    assert_eq!(default.tensors, vec!["fc2.weight".to_string()]);
    assert_eq!(
        (default.agents, default.iterations, default.bound),
        (10, 15, 0.01)
    );
    default.validate().unwrap();

    let cases = [
        ExperimentSpec {
            seeds: vec![1, 1],
            ..small_spec()
        },
        ExperimentSpec {
            algorithms: vec![(Algorithm::Snes, Mode::Opytimizer214)],
            ..small_spec()
        },
        ExperimentSpec {
            agents: 3,
            ..small_spec()
        },
        ExperimentSpec {
            tensors: Vec::new(),
            ..small_spec()
        },
    ];
    for (i, spec) in cases.iter().enumerate() {
        assert!(
            matches!(spec.validate(), Err(TuneError::InvalidExperiment { .. })),
            "case {i}"
        );
    }
    let bad_bound = ExperimentSpec {
        bound: -1.0,
        ..small_spec()
    };
    assert_eq!(bad_bound.validate(), Err(TuneError::Bound(-1.0)));
}
