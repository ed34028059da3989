//! End-to-end tests of `heft experiment` on the embedded Fashion-MNIST
//! subset: a small grid runs and reports every row, and an interrupted
//! experiment resumes to the same report as an uninterrupted one.

mod common;

use common::write_idx;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The small grid: 2 algorithms, 3 iterations, 1 training epoch. The seeds
/// are added per test.
const GRID: [&str; 8] = [
    "experiment",
    "--algorithms",
    "pso:canonical,de:opytimizer-2.1.4",
    "--iterations",
    "3",
    "--epochs",
    "1",
    "--threads=2",
];

const REPORT_FILES: [&str; 5] = [
    "report.md",
    "report.csv",
    "report.json",
    "gains.svg",
    "convergence.svg",
];

fn heft(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heft"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the heft binary runs")
}

/// Runs the small grid with `extra` options in `dir` and returns the output.
fn experiment(dir: &Path, extra: &[&str]) -> Output {
    let mut args = GRID.to_vec();
    args.extend_from_slice(extra);
    heft(&args, dir)
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Returns an empty directory under Cargo's per-target scratch folder.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "heft-experiment-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the uninterrupted 3-seed experiment once and returns its directory
/// and output to every test.
fn uninterrupted() -> &'static (PathBuf, Output) {
    static RUN: OnceLock<(PathBuf, Output)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("uninterrupted");
        let out = experiment(&dir, &["--seeds", "3", "--out", "exp"]);
        assert_success(&out, "the uninterrupted experiment");
        (dir.join("exp"), out)
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Returns `report.md` without the candidates/s column, the only one that
/// depends on timing.
fn markdown_without_timing(dir: &Path) -> String {
    let mut lines = Vec::new();
    for line in read(&dir.join("report.md")).lines() {
        // Rows of the accuracy table have 12 cells, so 13 bars.
        if line.matches('|').count() == 13 {
            let cells: Vec<&str> = line.trim_end_matches('|').split('|').collect();
            lines.push(cells[..cells.len() - 1].join("|"));
        } else {
            lines.push(line.to_string());
        }
    }
    lines.join("\n")
}

/// Returns `report.csv` without its last column, candidates per second.
fn csv_without_timing(dir: &Path) -> String {
    read(&dir.join("report.csv"))
        .lines()
        .map(|line| line.rsplit_once(',').expect("a CSV line has commas").0)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Returns `report.json` without the candidates-per-second fields.
fn json_without_timing(dir: &Path) -> Value {
    let mut value: Value = serde_json::from_str(&read(&dir.join("report.json"))).unwrap();
    for row in value["rows"].as_array_mut().expect("a rows array") {
        row.as_object_mut()
            .expect("a row object")
            .remove("mean_candidates_per_second");
    }
    value
}

fn assert_same_report(resumed: &Path, what: &str) {
    let (reference, _) = uninterrupted();
    assert_eq!(
        markdown_without_timing(resumed),
        markdown_without_timing(reference),
        "report.md of the {what} experiment"
    );
    assert_eq!(
        csv_without_timing(resumed),
        csv_without_timing(reference),
        "report.csv of the {what} experiment"
    );
    assert_eq!(
        json_without_timing(resumed),
        json_without_timing(reference),
        "report.json of the {what} experiment"
    );
}

fn run_lines(dir: &Path) -> usize {
    read(&dir.join("runs.jsonl")).lines().count()
}

#[test]
fn small_experiment_reports_every_row() {
    let (dir, out) = uninterrupted();
    for name in REPORT_FILES {
        assert!(dir.join(name).is_file(), "{name} is missing");
    }
    assert_eq!(run_lines(dir), 6, "runs.jsonl has one line per run");

    let report = read(&dir.join("report.md"));
    assert!(report.contains("## fc2.weight"), "{report}");
    assert!(report.contains("| pso | canonical | 3 |"), "{report}");
    assert!(report.contains("| de | opytimizer-2.1.4 | 3 |"), "{report}");
    assert!(report.contains("Friedman test over 3 seeds"), "{report}");
    assert!(report.contains("| pso | canonical | "), "{report}");
    assert!(report.contains("- Seeds: 0, 1, 2"), "{report}");

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, report, "stdout is the Markdown report");

    let stderr = String::from_utf8_lossy(&out.stderr);
    let progress = stderr.lines().filter(|l| l.starts_with('[')).count();
    assert_eq!(progress, 6, "one progress line per run: {stderr}");
    assert!(
        stderr.contains("[6/6] seed 2 fc2.weight de opytimizer-2.1.4"),
        "{stderr}"
    );

    let csv = read(&dir.join("report.csv"));
    assert_eq!(csv.lines().count(), 3, "header and two rows: {csv}");
    let json = json_without_timing(dir);
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
}

#[test]
fn resume_after_subset_of_seeds() {
    let dir = scratch("subset");
    let first = experiment(&dir, &["--seeds", "0,1", "--out", "exp"]);
    assert_success(&first, "the 2-seed experiment");
    assert_eq!(run_lines(&dir.join("exp")), 4);

    let resumed = experiment(&dir, &["--seeds", "3", "--out", "exp", "--resume"]);
    assert_success(&resumed, "the resumed experiment");
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(stderr.contains("4 already finished"), "{stderr}");
    assert!(
        stderr.contains("2 new runs, 4 kept from before"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("seed 0: training"),
        "seed 0 retrained: {stderr}"
    );
    assert_eq!(run_lines(&dir.join("exp")), 6);
    assert_same_report(&dir.join("exp"), "seed-subset");
}

#[test]
fn resume_after_truncated_last_line() {
    let dir = scratch("truncated");
    let first = experiment(&dir, &["--seeds", "3", "--out", "exp"]);
    assert_success(&first, "the experiment");

    // Cut the last record in half, as a crash during its write would.
    let runs = dir.join("exp").join("runs.jsonl");
    let text = read(&runs);
    let last_start = text.trim_end_matches('\n').rfind('\n').unwrap() + 1;
    let cut = last_start + (text.len() - last_start) / 2;
    std::fs::write(&runs, &text[..cut]).unwrap();
    for name in REPORT_FILES {
        std::fs::remove_file(dir.join("exp").join(name)).unwrap();
    }

    let resumed = experiment(&dir, &["--seeds", "3", "--out", "exp", "--resume"]);
    assert_success(&resumed, "the resumed experiment");
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        stderr.contains("1 new runs, 5 kept from before"),
        "{stderr}"
    );
    assert_eq!(run_lines(&dir.join("exp")), 6, "no run lost or repeated");
    assert_same_report(&dir.join("exp"), "truncated");
}

#[test]
fn existing_results_need_resume_or_force() {
    let dir = scratch("existing");
    let first = experiment(&dir, &["--seeds", "1", "--out", "exp"]);
    assert_success(&first, "the experiment");

    let again = experiment(&dir, &["--seeds", "1", "--out", "exp"]);
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("runs.jsonl"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");

    let forced = experiment(&dir, &["--seeds", "1", "--out", "exp", "--force"]);
    assert_success(&forced, "the forced experiment");
    assert_eq!(run_lines(&dir.join("exp")), 2, "--force starts over");
}

#[test]
fn invalid_options_exit_2() {
    let dir = scratch("invalid");
    let cases: [(&[&str], &str); 6] = [
        (&["experiment", "--algorithms", "sgd"], "\"sgd\""),
        (&["experiment", "--algorithms", "pso:fast"], "\"fast\""),
        (
            &["experiment", "--algorithms", "snes:opytimizer-2.1.4"],
            "snes has no opytimizer-2.1.4 mode",
        ),
        (&["experiment", "--seeds", "zero"], "invalid --seeds"),
        (&["experiment", "--bound", "-1"], "invalid --bound -1"),
        (
            &[
                "experiment",
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--tensors",
                "fc9.weight",
            ],
            "unknown tensor `fc9.weight`",
        ),
    ];
    for (args, expected) in cases {
        let out = heft(args, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("heft: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: one error line in {stderr}");
        assert!(errors[0].contains(expected), "{args:?}: {stderr}");
    }
}

/// Resuming with any setting that changes the results is an error. It
/// names each differing setting with its stored and requested values, and
/// the finished runs and the report stay as they were.
#[test]
fn resume_with_other_settings_rejected() {
    let dir = scratch("resume-settings");
    let first = experiment(&dir, &["--seeds", "1", "--out", "exp"]);
    assert_success(&first, "the experiment");
    assert!(dir.join("exp/settings.json").is_file());
    let runs = read(&dir.join("exp/runs.jsonl"));
    let report = read(&dir.join("exp/report.md"));

    let cases: [(&[&str], &[&str]); 7] = [
        (&["--epochs", "2"], &["--epochs 1 (requested 2)"]),
        (&["--lr", "0.01"], &["--lr 0.001 (requested 0.01)"]),
        (
            &["--batch-size", "50"],
            &["--batch-size 100 (requested 50)"],
        ),
        (
            &["--sizes", "784,64,10", "--valid-share", "0.3"],
            &[
                "--sizes 784,128,10 (requested 784,64,10)",
                "--valid-share 0.2 (requested 0.3)",
            ],
        ),
        (
            &["--objective", "cross-entropy"],
            &["--objective error (requested cross-entropy)"],
        ),
        (
            &["--exclude-initial"],
            &["--exclude-initial false (requested true)"],
        ),
        (&["--bound", "0.02"], &["--bound 0.01 (requested 0.02)"]),
    ];
    for (extra, needles) in cases {
        // GRID passes --epochs 1, which a case may replace.
        let mut args: Vec<&str> = GRID
            .iter()
            .copied()
            .map(|a| {
                if a == "1" && extra[0] == "--epochs" {
                    extra[1]
                } else {
                    a
                }
            })
            .collect();
        args.extend(["--seeds", "2", "--out", "exp", "--resume"]);
        if extra[0] != "--epochs" {
            args.extend_from_slice(extra);
        }
        let out = heft(&args, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{extra:?}: {stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        }
        assert!(stderr.contains("--out with a new directory"), "{stderr}");
        assert_eq!(read(&dir.join("exp/runs.jsonl")), runs, "{extra:?}");
        assert_eq!(read(&dir.join("exp/report.md")), report, "{extra:?}");
    }
    // The embedded data read from another HEFT_DATASETS directory (here
    // the same files, named by another path) is another setting.
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/.");
    let mut args = GRID.to_vec();
    args.extend(["--seeds", "2", "--out", "exp", "--resume"]);
    let out = Command::new(env!("CARGO_BIN_EXE_heft"))
        .args(&args)
        .env("HEFT_DATASETS", &datasets)
        .current_dir(&dir)
        .output()
        .expect("the heft binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("(requested embedded, HEFT_DATASETS="),
        "{stderr}"
    );
    assert_eq!(read(&dir.join("exp/runs.jsonl")), runs);

    // The same settings with another seed resume.
    let resumed = experiment(&dir, &["--seeds", "2", "--out", "exp", "--resume"]);
    assert_success(&resumed, "the resumed experiment");
    assert_eq!(run_lines(&dir.join("exp")), 4);
}

/// Options that fail only once the data is loaded (a tensor name, a
/// validation share) fail before any training. A run that fails before
/// any run finished (here training diverges) leaves no directory behind,
/// not even the parents it created.
#[test]
fn failed_experiment_leaves_no_directory() {
    let dir = scratch("no-leftovers");
    let out = experiment(&dir, &["--seeds", "1", "--lr", "1e30", "--out", "deep/e14"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("training diverged"), "{stderr}");
    assert!(!dir.join("deep").exists(), "{stderr}");
    let cases: [(&[&str], &str); 3] = [
        (
            &["--seeds", "1", "--tensors", "nope", "--out", "e14"],
            "unknown tensor `nope`",
        ),
        (
            &["--seeds", "1", "--tensors", "nope", "--name", "n"],
            "unknown tensor `nope`",
        ),
        (
            &["--seeds", "1", "--valid-share", "0.99999", "--out", "e14"],
            "--valid-share 0.99999",
        ),
    ];
    for (extra, needle) in cases {
        let out = experiment(&dir, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(
            !stderr.contains("training the pre-trained model"),
            "{extra:?}: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "{extra:?}: left {left:?}");
    }
}

/// `--name` must be one plain path component.
#[test]
fn unsafe_names_rejected() {
    let dir = scratch("names");
    for name in ["", ".", "..", "../../escape", "/abs", "a/b"] {
        let out = experiment(&dir, &["--seeds", "1", "--name", name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name:?}: {stderr}");
        assert!(
            stderr.contains(&format!("invalid --name {name:?}")),
            "{name:?}: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "{name:?}: left {left:?}");
    }
}

/// The results file stores the bound as the f32's shortest decimal.
#[test]
fn runs_file_stores_shortest_bound() {
    let (dir, _) = uninterrupted();
    let runs = read(&dir.join("runs.jsonl"));
    assert!(runs.contains("\"bound\":0.01,"), "{runs}");
}

/// A damaged record in the middle of the results file is named with its
/// line and one fix, and resuming keeps the file as it is.
#[test]
fn damaged_record_named_once() {
    let dir = scratch("damaged");
    let first = experiment(&dir, &["--seeds", "1", "--out", "exp"]);
    assert_success(&first, "the experiment");
    let runs = dir.join("exp").join("runs.jsonl");
    let text = read(&runs);
    std::fs::write(&runs, format!("{{\"seed\": 0}}\n{text}")).unwrap();

    let resumed = experiment(&dir, &["--seeds", "1", "--out", "exp", "--resume"]);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("runs.jsonl at line 1"), "{stderr}");
    assert!(
        stderr.contains("repair or delete that line, then resume, or pass --force"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("delete").count(), 1, "{stderr}");
    assert_eq!(read(&runs), format!("{{\"seed\": 0}}\n{text}"));
}

/// A seed count beyond the limit, or a list with no seed, is an error
/// naming --seeds and the range, not a panic or gigabytes of seeds.
#[test]
fn seed_count_out_of_range_rejected() {
    let dir = scratch("seed-count");
    for seeds in ["18446744073709551615", "10001", ",", " , "] {
        let out = heft(&["experiment", "--seeds", seeds, "--out", "e"], &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{seeds:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "invalid --seeds {seeds:?}: pass a count from 1 to 10000"
            )),
            "{seeds:?}: {stderr}"
        );
        assert!(!dir.join("e").exists(), "{seeds:?}");
    }
}

/// Writes 40 training and 8 test images of 28 x 28 with labels 0 to 3,
/// the first training label being `first_label`.
fn write_images(dir: &Path, first_label: u8) {
    std::fs::create_dir_all(dir).unwrap();
    let pixels = |n: u32| -> Vec<u8> { (0..n * 784).map(|i| (i * 37 % 256) as u8).collect() };
    let mut train_labels: Vec<u8> = (0..40).map(|i| (i % 4) as u8).collect();
    train_labels[0] = first_label;
    write_idx(
        &dir.join("train-images-idx3-ubyte"),
        &[40, 28, 28],
        &pixels(40),
    );
    write_idx(&dir.join("train-labels-idx1-ubyte"), &[40], &train_labels);
    write_idx(
        &dir.join("t10k-images-idx3-ubyte"),
        &[8, 28, 28],
        &pixels(8),
    );
    let test_labels: Vec<u8> = (0..8).map(|i| (i % 4) as u8).collect();
    write_idx(&dir.join("t10k-labels-idx1-ubyte"), &[8], &test_labels);
}

/// Data files that change under the same --data path stop a resume: the
/// settings record a fingerprint of the loaded data. An experiment whose
/// settings predate the fingerprint still resumes.
#[test]
fn resume_notices_changed_data() {
    let dir = scratch("changed-data");
    write_images(&dir.join("data"), 0);
    let common = ["--data", "data", "--classes", "4", "--sizes", "784,8,4"];
    let run = |seeds: &str, resume: bool| {
        let mut args = GRID.to_vec();
        args.extend(common);
        args.extend(["--seeds", seeds, "--out", "exp"]);
        if resume {
            args.push("--resume");
        }
        heft(&args, &dir)
    };
    assert_success(&run("1", false), "the first experiment");
    let settings: Value = serde_json::from_str(&read(&dir.join("exp/settings.json"))).unwrap();
    let recorded = settings["data content"].as_str().unwrap().to_string();
    assert_eq!(recorded.len(), 16, "{recorded}");

    // One training label changed: the same path, other data.
    write_images(&dir.join("data"), 3);
    let runs = read(&dir.join("exp/runs.jsonl"));
    let out = run("2", true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("data content {recorded}")) && stderr.contains("changed"),
        "{stderr}"
    );
    assert_eq!(read(&dir.join("exp/runs.jsonl")), runs);

    // Back to the original files, the resume goes on.
    write_images(&dir.join("data"), 0);
    assert_success(&run("2", true), "the resume on the original data");

    // Settings written before the fingerprint existed have no entry for
    // it; such an experiment resumes without the check.
    let mut old: serde_json::Map<String, Value> =
        serde_json::from_str(&read(&dir.join("exp/settings.json"))).unwrap();
    old.remove("data content");
    std::fs::write(
        dir.join("exp/settings.json"),
        serde_json::to_string_pretty(&old).unwrap(),
    )
    .unwrap();
    write_images(&dir.join("data"), 3);
    assert_success(&run("3", true), "the resume of an older experiment");
}
