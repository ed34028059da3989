//! End-to-end tests of the `heft` binary on the embedded datasets.

mod common;

use common::write_idx;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn heft(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heft"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the heft binary runs")
}

/// Returns an empty directory under Cargo's per-target scratch folder, so
/// test runs leave nothing in the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("heft-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Trains one checkpoint for one epoch and returns its path to every test.
fn checkpoint() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = scratch("checkpoint");
        let out = heft(
            &["train", "--epochs", "1", "--out", "mlp.safetensors"],
            &dir,
        );
        assert!(
            out.status.success(),
            "train failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join("mlp.safetensors")
    })
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tune(dir: &Path, run: &str, extra: &[&str]) -> Output {
    let checkpoint = checkpoint().to_str().unwrap();
    let mut args = vec![
        "tune",
        "--checkpoint",
        checkpoint,
        "--out",
        run,
        "--iterations",
        "3",
    ];
    args.extend_from_slice(extra);
    heft(&args, dir)
}

#[test]
fn train_writes_checkpoint_and_epoch_lines() {
    let dir = scratch("train");
    let out = heft(&["train", "--epochs", "1", "--out", "m.safetensors"], &dir);
    assert!(out.status.success());
    assert!(dir.join("m.safetensors").is_file());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("epoch   1"), "{stderr}");
    assert!(stderr.contains("valid accuracy"), "{stderr}");

    // An existing checkpoint needs --force; the check runs before training.
    let before = std::fs::read(dir.join("m.safetensors")).unwrap();
    let out = heft(&["train", "--epochs", "1", "--out", "m.safetensors"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(!stderr.contains("epoch"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("m.safetensors")).unwrap(), before);
    let out = heft(
        &[
            "train",
            "--epochs",
            "1",
            "--out",
            "m.safetensors",
            "--force",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A missing directory fails before training.
    let out = heft(
        &["train", "--epochs", "1", "--out", "missing/m.safetensors"],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("missing of --out does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("epoch"), "{stderr}");
}

#[test]
fn tune_writes_every_run_file() {
    let dir = scratch("files");
    let out = tune(&dir, "run", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = dir.join("run");
    for name in [
        "config.json",
        "history.csv",
        "summary.json",
        "tuned.safetensors",
        "convergence.svg",
        "delta.svg",
    ] {
        assert!(run.join(name).is_file(), "missing {name}");
    }
    let config = read_json(&run.join("config.json"));
    assert_eq!(config["tensor"], "fc2.weight");
    assert_eq!(config["algorithm"], "pso");

    let summary = read_json(&run.join("summary.json"));
    for key in [
        "pretrained_valid",
        "pretrained_test",
        "tuned_valid",
        "tuned_test",
    ] {
        let accuracy = summary[key]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{key} = {accuracy}");
    }
    assert_eq!(summary["evaluations"], 40);
    assert_eq!(summary["mode"], "opytimizer-2.1.4");
    assert!(summary["candidates_per_second"].as_f64().unwrap() > 0.0);
    let pruned = summary["pruned_fraction"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&pruned));

    let history = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(
        lines[0],
        "iteration,best,mean,std,diversity,evaluations,elapsed_seconds"
    );
    // The initial population is iteration 0, then one row per iteration.
    assert_eq!(lines.len() - 1, 3 + 1);
    for line in &lines[1..] {
        assert_eq!(line.split(',').count(), 7, "{line}");
    }
    for name in ["convergence.svg", "delta.svg"] {
        let svg = std::fs::read_to_string(run.join(name)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("pre-trained") && stdout.contains("tuned"),
        "{stdout}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());

    // The tuned checkpoint loads back.
    let eval = heft(
        &[
            "eval",
            "--checkpoint",
            "run/tuned.safetensors",
            "--split",
            "valid",
            "--json",
        ],
        &dir,
    );
    assert!(eval.status.success());
    let report: Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(report["correct"], summary["tuned_valid"]["correct"]);
}

/// The pre-trained weights are in the initial population by default, so
/// the tuned model is never worse on validation, even with one agent.
#[test]
fn tune_with_initial_never_worse() {
    let dir = scratch("initial");
    // PSO with one agent and seed 2 ends worse than it started when the
    // pre-trained weights are left out.
    let cases = [
        ("pso", "1", "2"),
        ("pso", "10", "3"),
        ("de", "10", "3"),
        ("ga", "10", "3"),
    ];
    for (algorithm, agents, seed) in cases {
        let run = format!("run-{algorithm}-{agents}");
        let out = tune(
            &dir,
            &run,
            &["--algorithm", algorithm, "--agents", agents, "--seed", seed],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = read_json(&dir.join(&run).join("summary.json"));
        let before = summary["pretrained_valid"]["correct"].as_u64().unwrap();
        let after = summary["tuned_valid"]["correct"].as_u64().unwrap();
        assert!(after >= before, "{algorithm}: {after} < {before}");
        let config = read_json(&dir.join(&run).join("config.json"));
        assert_eq!(config["include_initial"], true);
    }
    let out = tune(&dir, "run-excluded", &["--exclude-initial"]);
    assert!(out.status.success());
    let config = read_json(&dir.join("run-excluded/config.json"));
    assert_eq!(config["include_initial"], false);
}

#[test]
fn summary_same_for_one_and_two_threads() {
    let dir = scratch("threads");
    let mut summaries = Vec::new();
    for threads in ["1", "2"] {
        let run = format!("run-{threads}");
        let out = tune(&dir, &run, &["--threads", threads, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut summary = read_json(&dir.join(&run).join("summary.json"));
        let object = summary.as_object_mut().unwrap();
        for timing in ["search_seconds", "candidates_per_second", "run_directory"] {
            object.remove(timing);
        }
        summaries.push(summary);
    }
    assert_eq!(summaries[0], summaries[1]);
}

#[test]
fn eval_prints_confusion_matrix() {
    let dir = scratch("eval");
    let checkpoint = checkpoint().to_str().unwrap();
    let out = heft(&["eval", "--checkpoint", checkpoint], &dir);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("confusion matrix"), "{stdout}");
    assert!(stdout.contains("of 2000"), "{stdout}");

    let json = heft(&["eval", "--checkpoint", checkpoint, "--json"], &dir);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let confusion = report["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 2000);
    assert_eq!(report["per_class_accuracy"].as_array().unwrap().len(), 10);
}

/// Runs `heft tune` with `extra` and checks exit status 2, a one-line
/// error containing `needle`, and no run directory.
fn assert_rejected(name: &str, extra: &[&str], needle: &str) {
    let dir = scratch(name);
    let out = tune(&dir, "run", extra);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("heft: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{name}: {stderr}");
    assert!(errors[0].contains(needle), "{name}: {stderr}");
    assert!(
        !dir.join("run").exists(),
        "{name}: run directory left behind"
    );
    let leftovers = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(leftovers, 0, "{name}: files left behind");
}

#[test]
fn unknown_tensor_lists_names() {
    assert_rejected(
        "tensor",
        &["--tensor", "fc9.weight"],
        "`fc9.weight`: this model has fc1.weight, fc2.weight",
    );
}

/// Without a checkpoint, `heft tune` trains the default model first. A
/// wrong tensor name is rejected before that training starts.
#[test]
fn unknown_tensor_rejected_before_training() {
    let dir = scratch("tensor-untrained");
    let out = heft(&["tune", "--tensor", "fc9.weight", "--out", "run"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown tensor `fc9.weight`: this model has fc1.weight, fc2.weight"),
        "{stderr}"
    );
    assert!(!stderr.contains("training the default model"), "{stderr}");
    assert!(!dir.join("run").exists(), "run directory left behind");
}

#[test]
fn bias_tensor_points_to_include_bias() {
    assert_rejected(
        "bias",
        &["--tensor", "fc2.bias"],
        "pass --tensor fc2.weight --include-bias",
    );
}

#[test]
fn bad_bounds_rejected() {
    for bound in ["0", "-0.5", "inf", "NaN"] {
        assert_rejected("bound", &["--bound", bound], "--bound");
    }
    // Beyond the f32 range: a parse error that shows the value as typed.
    let dir = scratch("bound-range");
    let out = tune(&dir, "run", &["--bound", "1e39"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("1e39 is beyond the f32 range"), "{stderr}");
    assert!(!dir.join("run").exists());
    // Below the smallest positive f32: shown as typed, not as 0.
    let out = tune(&dir, "run", &["--bound", "1e-300"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("1e-300 is below the smallest positive f32"),
        "{stderr}"
    );
    assert!(!dir.join("run").exists());
}

/// Argument errors found by the parser are one line with the value, like
/// the commands' own errors, with exit status 2.
#[test]
fn parse_errors_are_one_line() {
    let dir = scratch("parse");
    let cases = [
        (
            vec!["tune", "--bound", "abc"],
            "invalid value 'abc' for '--bound <BOUND>'",
        ),
        (
            vec!["tune", "--forse"],
            "(tip: a similar argument exists: '--force')",
        ),
        (vec!["eval"], "not provided: --checkpoint <PATH>"),
    ];
    for (args, needle) in cases {
        let out = heft(&args, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("heft: error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let help = heft(&["tune", "--help"], &dir);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: heft tune"));
}

#[test]
fn missing_data_directory_rejected() {
    assert_rejected(
        "data-missing",
        &["--data", "no-such-dir"],
        "--data no-such-dir is not a directory",
    );
}

/// A population too large for memory is an error before the search, not
/// an allocation failure.
#[test]
fn population_memory_rejected() {
    assert_rejected(
        "agents-memory",
        &["--tensor", "fc1.weight", "--agents", "100000"],
        "100000 candidates of 100352 values take 40.1 GB per population array; pass at most \
         2674 agents",
    );
}

/// `heft train` rejects, each with exit status 2 and no checkpoint: a
/// model whose weights diverge to NaN, labels beyond --classes, and a
/// model too large to train.
#[test]
fn train_bad_runs_rejected() {
    let dir = scratch("train-bad");
    let cases: [(&[&str], &str); 3] = [
        (&["--lr", "1e30"], "training diverged: tensor"),
        (
            &["--classes", "5", "--sizes", "784,128,5"],
            "is not below --classes 5; pass --classes 10 or more",
        ),
        (
            &["--sizes", "784,100000000,10"],
            "parameters, and heft trains at most 268435456",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["train", "--epochs", "1", "--out", "m.safetensors"];
        args.extend_from_slice(extra);
        let out = heft(&args, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(!dir.join("m.safetensors").exists(), "{extra:?}");
    }
}

/// A text model too large to allocate is an error naming --embed and
/// --hidden in every command that builds one, not an aborted process.
#[test]
fn huge_text_model_rejected() {
    let needle = "parameters, and heft trains at most 268435456";
    let cases: [&[&str]; 4] = [
        &["train", "--task", "text", "--embed", "100000000"],
        &["train", "--task", "text", "--hidden", "1000000"],
        &[
            "train",
            "--task",
            "text",
            "--cell",
            "rnn",
            "--hidden",
            "18446744073709551615",
        ],
        &[
            "experiment",
            "--task",
            "text",
            "--hidden",
            "1000000",
            "--seeds",
            "1",
            "--algorithms",
            "pso",
            "--out",
            "e",
        ],
    ];
    for args in cases {
        assert_command_rejected("text-size", args, needle);
    }
}

#[test]
fn bad_thread_counts_rejected() {
    for threads in ["0", "1025", "100000"] {
        assert_rejected(
            "threads",
            &["--threads", threads],
            &format!("invalid --threads {threads}: pass 1 to 1024"),
        );
    }
}

#[test]
fn out_of_range_options_rejected() {
    assert_rejected(
        "agents-max",
        &["--agents", "18446744073709551615"],
        "invalid --agents 18446744073709551615: pass at most 100000",
    );
    // `tune` passes --iterations itself, so this case calls heft directly.
    let dir = scratch("iterations-max");
    let checkpoint = checkpoint().to_str().unwrap();
    let out = heft(
        &[
            "tune",
            "--checkpoint",
            checkpoint,
            "--iterations",
            "18446744073709551615",
            "--out",
            "run",
        ],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid --iterations 18446744073709551615: pass at most 1000000"),
        "{stderr}"
    );
    assert!(!dir.join("run").exists());
    for share in ["0", "1", "-0.2", "NaN"] {
        assert_rejected("share", &["--valid-share", share], "--valid-share");
    }
    assert_rejected(
        "study-mode",
        &["--algorithm", "snes", "--mode", "opytimizer-2.1.4"],
        "it has only the canonical mode",
    );
}

/// Without --mode, algorithms that have no opytimizer-2.1.4 mode run in
/// canonical mode.
#[test]
fn mode_defaults_to_canonical_without_study_mode() {
    let dir = scratch("mode-default");
    let out = tune(
        &dir,
        "run",
        &["--algorithm", "sep-cma-es", "--agents", "8", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = read_json(&dir.join("run/config.json"));
    assert_eq!(config["mode"], "canonical");
}

#[test]
fn too_few_agents_rejected() {
    assert_rejected(
        "agents",
        &["--algorithm", "de", "--agents", "2"],
        "--agents 2",
    );
    // Without a checkpoint the population is checked before training.
    let dir = scratch("agents-untrained");
    let out = heft(&["tune", "--agents", "0", "--out", "run"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("use at least 1 agent"), "{stderr}");
    assert!(!stderr.contains("epoch"), "{stderr}");
}

#[test]
fn mismatched_checkpoint_rejected() {
    let dir = scratch("mismatch-train");
    let out = heft(
        &[
            "train",
            "--epochs",
            "1",
            "--classes",
            "10",
            "--sizes",
            "784,16,10",
            "--out",
            "m.safetensors",
        ],
        &dir,
    );
    assert!(out.status.success());
    // The same checkpoint against a dataset declared to have 12 classes.
    let run_dir = scratch("mismatch");
    let path = dir.join("m.safetensors");
    let out = heft(
        &[
            "tune",
            "--checkpoint",
            path.to_str().unwrap(),
            "--classes",
            "12",
            "--out",
            "run",
        ],
        &run_dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("10 classes") && stderr.contains("12 classes"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!run_dir.join("run").exists());
}

#[test]
fn unwritable_output_rejected() {
    let dir = scratch("unwritable");
    std::fs::write(dir.join("file"), b"not a directory").unwrap();
    let out = tune(&dir, "file/run", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--out"), "{stderr}");
}

#[test]
fn existing_run_needs_force() {
    let dir = scratch("force");
    let out = tune(&dir, "run", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = tune(&dir, "run", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");

    let out = tune(&dir, "run", &["--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("run/summary.json").exists());
}

/// `--force` replaces only a directory of run files: a foreign file, or
/// the input checkpoint inside the directory, makes it an error and stays.
#[test]
fn force_keeps_foreign_files() {
    let dir = scratch("force-foreign");
    std::fs::create_dir(dir.join("run")).unwrap();
    std::fs::write(dir.join("run/keep"), b"old").unwrap();
    let out = tune(&dir, "run", &["--force"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("keep"), "{stderr}");
    assert!(dir.join("run/keep").exists());

    std::fs::create_dir(dir.join("again")).unwrap();
    std::fs::copy(checkpoint(), dir.join("again/tuned.safetensors")).unwrap();
    let out = heft(
        &[
            "tune",
            "--checkpoint",
            "again/tuned.safetensors",
            "--out",
            "again",
            "--force",
        ],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("contains the input"), "{stderr}");
    assert!(dir.join("again/tuned.safetensors").exists());
}

#[test]
fn non_finite_checkpoint_rejected() {
    let dir = scratch("nan-checkpoint");
    let bytes = std::fs::read(checkpoint()).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let start = header["fc2.weight"]["data_offsets"][0].as_u64().unwrap() as usize;
    let mut damaged = bytes.clone();
    let at = 8 + header_len + start + 4 * 7;
    damaged[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(dir.join("nan.safetensors"), &damaged).unwrap();
    for command in [
        vec!["eval", "--checkpoint", "nan.safetensors"],
        vec!["tune", "--checkpoint", "nan.safetensors", "--out", "run"],
    ] {
        let out = heft(&command, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("tensor fc2.weight holds NaN at index 7"),
            "{command:?}: {stderr}"
        );
        assert!(!dir.join("run").exists());
    }
}

#[test]
fn help_states_defaults() {
    let out = heft(&["tune", "--help"], &std::env::temp_dir());
    let help = String::from_utf8_lossy(&out.stdout);
    for text in [
        "[default: 0.01]",
        "[default: 10]",
        "[default: 15]",
        "[default: pso]",
        "[default: opytimizer-2.1.4 for pso",
    ] {
        assert!(help.contains(text), "missing {text}");
    }
}

#[test]
fn text_train_and_tune() {
    let dir = scratch("text");
    let out = heft(
        &[
            "train",
            "--task",
            "text",
            "--epochs",
            "1",
            "--out",
            "t.safetensors",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = heft(
        &[
            "tune",
            "--task",
            "text",
            "--checkpoint",
            "t.safetensors",
            "--iterations",
            "2",
            "--out",
            "run",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = read_json(&dir.join("run/summary.json"));
    assert_eq!(summary["tensor"], "fc.weight");
    assert_eq!(summary["evaluations"], 30);
}

/// Writes a two-class corpus of 60 records whose texts use `words`.
fn write_corpus(path: &Path, words: [&str; 4]) {
    let mut text = String::from("sentiment,text\n");
    for i in 0..60 {
        let label = ["neg", "pos"][i % 2];
        text.push_str(&format!(
            "{label},{} {}\n",
            words[i % 4],
            words[(i / 4) % 4]
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// A corpus whose records all have one label trains no classifier: the
/// model would reach a loss of 0 by predicting that label.
#[test]
fn one_class_text_corpus_rejected() {
    let dir = scratch("text-one-class");
    let mut text = String::from("sentiment,text\n");
    for i in 0..60 {
        text.push_str(&format!("pos,word{} other\n", i % 7));
    }
    std::fs::write(dir.join("one.csv"), text).unwrap();
    let out = heft(
        &[
            "train", "--task", "text", "--data", "one.csv", "--epochs", "1",
        ],
        &dir,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("one.csv has only the class \"pos\"")
            && stderr.contains("a classifier needs at least two"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A text checkpoint scored on a corpus with the same number of tokens
/// but other words is rejected rather than scored with ids that name
/// other words. The corpus it was trained on is accepted.
#[test]
fn text_checkpoint_needs_its_vocabulary() {
    let dir = scratch("text-vocab");
    write_corpus(&dir.join("a.csv"), ["good", "bad", "fine", "awful"]);
    write_corpus(&dir.join("b.csv"), ["nice", "poor", "okay", "vile"]);
    let out = heft(
        &[
            "train", "--task", "text", "--data", "a.csv", "--epochs", "1", "--out", "a.st",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let eval = |data: &str| {
        heft(
            &[
                "eval",
                "--task",
                "text",
                "--data",
                data,
                "--checkpoint",
                "a.st",
            ],
            &dir,
        )
    };
    let same = eval("a.csv");
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let other = eval("b.csv");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("vocabulary fingerprint"), "{stderr}");
    assert!(stderr.contains("b.csv"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs heft in a fresh scratch directory and checks exit status 2, one
/// error line containing `needle`, no panic report, and nothing written.
fn assert_command_rejected(name: &str, args: &[&str], needle: &str) {
    let dir = scratch(name);
    let out = heft(args, &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("heft: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
    assert!(errors[0].contains(needle), "{args:?}: {stderr}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(leftovers.is_empty(), "{args:?}: left {leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A huge --epochs is an error naming the range in every command that
/// trains, before any memory is reserved for it.
#[test]
fn huge_epochs_rejected() {
    let needle = "invalid --epochs 1000000000: pass 1 to 100000";
    let cases: [&[&str]; 4] = [
        &["train", "--epochs", "1000000000"],
        &["train", "--task", "text", "--epochs", "1000000000"],
        &[
            "experiment",
            "--epochs",
            "1000000000",
            "--seeds",
            "1",
            "--algorithms",
            "pso",
            "--out",
            "e",
        ],
        &["bench", "tune", "--epochs", "1000000000", "--samples", "1"],
    ];
    for args in cases {
        assert_command_rejected("epochs", args, needle);
    }
    assert_command_rejected(
        "epochs-zero",
        &["train", "--epochs", "0"],
        "invalid --epochs 0: pass 1 to 100000",
    );
    assert_command_rejected(
        "batch-zero",
        &["train", "--batch-size", "0"],
        "invalid --batch-size 0: pass 1 or more",
    );
}

/// A batch larger than the training split takes the whole split in one
/// step instead of reserving buffers for rows that do not exist.
#[test]
fn huge_batch_uses_whole_split() {
    let dir = scratch("huge-batch");
    let out = heft(
        &[
            "train",
            "--epochs",
            "1",
            "--batch-size",
            "100000000",
            "--out",
            "m.safetensors",
        ],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(dir.join("m.safetensors").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Makes a FIFO at `path` with `mkfifo`, returning false where that
/// command is missing.
fn make_fifo(path: &Path) -> bool {
    let created = Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if !created {
        println!("mkfifo is not available: the FIFO case is skipped");
    }
    created
}

/// A checkpoint path that is a directory or a FIFO is refused at once
/// (a FIFO used to block the reader, and a device to be read without end).
#[test]
fn non_regular_checkpoint_rejected() {
    let dir = scratch("not-regular");
    std::fs::create_dir(dir.join("folder")).unwrap();
    let mut cases = vec![("folder", "it is a directory")];
    if make_fifo(&dir.join("fifo")) {
        cases.push(("fifo", "it is not a regular file"));
    }
    for (name, needle) in cases {
        let commands: [&[&str]; 2] = [
            &["eval", "--checkpoint", name],
            &["tune", "--checkpoint", name, "--out", "run"],
        ];
        for command in commands {
            let out = heft(command, &dir);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
            assert!(stderr.contains(needle), "{command:?}: {stderr}");
            assert!(
                stderr.contains("must be a regular safetensors file"),
                "{stderr}"
            );
            assert!(!dir.join("run").exists());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Returns a copy of the safetensors `bytes` without the `__metadata__`
/// entry, as `safetensors.torch.save_file` writes a `state_dict`.
fn without_metadata(bytes: &[u8]) -> Vec<u8> {
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header.as_object_mut().unwrap().remove("__metadata__");
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + len..]);
    out
}

/// `tune` and `eval` of a checkpoint use the validation share it was
/// trained with, and refuse another one, which would score training
/// images as validation. A checkpoint without the record uses
/// --valid-share or its default.
#[test]
fn checkpoint_records_valid_share() {
    let dir = scratch("valid-share");
    let out = heft(
        &[
            "train",
            "--epochs",
            "1",
            "--valid-share",
            "0.3",
            "--out",
            "m.safetensors",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let eval = |checkpoint: &str, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--checkpoint",
            checkpoint,
            "--split",
            "valid",
            "--json",
        ];
        args.extend_from_slice(extra);
        heft(&args, &dir)
    };
    // The recorded 0.3 of 12,000 images, with or without the same option.
    for extra in [&[][..], &["--valid-share", "0.3"]] {
        let out = eval("m.safetensors", extra);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["rows"], 3600, "{extra:?}");
    }
    let needle = "was trained with --valid-share 0.3, so --valid-share 0.5 would give";
    let out = eval("m.safetensors", &["--valid-share", "0.5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
    let out = heft(
        &[
            "tune",
            "--checkpoint",
            "m.safetensors",
            "--valid-share",
            "0.5",
            "--out",
            "run",
        ],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
    assert!(!dir.join("run").exists());

    // The tuned checkpoint carries the record on.
    let out = heft(
        &[
            "tune",
            "--checkpoint",
            "m.safetensors",
            "--iterations",
            "1",
            "--out",
            "run",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = eval("run/tuned.safetensors", &[]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rows"], 3600);

    // Without the record (as PyTorch writes it), --valid-share applies.
    let bytes = std::fs::read(dir.join("m.safetensors")).unwrap();
    std::fs::write(dir.join("torch.safetensors"), without_metadata(&bytes)).unwrap();
    for (extra, rows) in [(&[][..], 2400), (&["--valid-share", "0.5"][..], 6000)] {
        let out = eval("torch.safetensors", extra);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["rows"], rows, "{extra:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `train --force` replaces a regular file only: a FIFO (standing in for
/// a device such as /dev/full) or a symbolic link at --out is an error
/// that names the path, and stays as it was.
#[test]
fn force_replaces_only_regular_files() {
    let dir = scratch("force-special");
    std::fs::write(dir.join("target"), "kept").unwrap();
    std::os::unix::fs::symlink("target", dir.join("link")).unwrap();
    let mut names = vec!["link"];
    if make_fifo(&dir.join("fifo")) {
        names.push("fifo");
    }
    for name in names {
        let out = heft(&["train", "--epochs", "1", "--force", "--out", name], &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("--out {name} is not a regular file")),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("epoch"), "{name}: {stderr}");
        let kind = std::fs::symlink_metadata(dir.join(name))
            .unwrap()
            .file_type();
        assert!(!kind.is_file(), "{name} was replaced");
    }
    assert_eq!(std::fs::read_to_string(dir.join("target")).unwrap(), "kept");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Messages name the real cause and echo values as typed.
#[test]
fn messages_name_the_cause() {
    // Without the pre-trained point, every candidate of so wide a box
    // overflows the cross-entropy.
    for algorithm in ["de", "sep-cma-es", "snes"] {
        assert_rejected(
            "huge-bound",
            &[
                "--exclude-initial",
                "--bound",
                "1e38",
                "--objective",
                "cross-entropy",
                "--algorithm",
                algorithm,
            ],
            "an infinite or NaN fitness: the box of --bound 1e38 around fc2.weight reaches",
        );
    }
    let cases: [(&[&str], &str); 5] = [
        (
            &["tune", "--valid-share", "1e-9"],
            "--valid-share 1e-9 leaves the validation split of embedded Fashion-MNIST subset empty",
        ),
        (
            &["train", "--valid-share", "1e-9"],
            "--valid-share 1e-9 leaves the validation split",
        ),
        (
            &["train", "--valid-share", "0.99999"],
            "--valid-share 0.99999 leaves the training split",
        ),
        (
            &["train", "--lr", "1e39"],
            "invalid value '1e39' for '--lr <LR>': 1e39 is beyond the f32 range",
        ),
        (
            &["train", "--lr", "1e-50"],
            "invalid value '1e-50' for '--lr <LR>': 1e-50 is below the smallest positive f32",
        ),
    ];
    for (args, needle) in cases {
        assert_command_rejected("messages", args, needle);
    }

    // An unknown HEFT_KERNEL is an error, as an unknown --kernel is.
    let dir = scratch("kernel-env");
    let out = Command::new(env!("CARGO_BIN_EXE_heft"))
        .args(["train", "--epochs", "1", "--out", "m.safetensors"])
        .env("HEFT_KERNEL", "nope")
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid HEFT_KERNEL=\"nope\""), "{stderr}");
    assert!(stderr.contains("avx512, avx2, portable"), "{stderr}");
    assert!(!dir.join("m.safetensors").exists());

    // A bound is printed in its shortest form.
    let out = tune(&dir, "run", &["--bound", "1e-7"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bound 1e-7)"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes a small IDX dataset to `dir`: 20 training images of `train_shape`
/// with labels 0 to 3, and 4 test images of `test_shape` with labels 0
/// and 1 only.
fn write_small_images(dir: &Path, train_shape: (u32, u32), test_shape: (u32, u32)) {
    let pixels = |n: u32, (r, c): (u32, u32)| -> Vec<u8> {
        (0..n * r * c).map(|i| (i * 37 % 256) as u8).collect()
    };
    let train_labels: Vec<u8> = (0..20).map(|i| (i % 4) as u8).collect();
    write_idx(
        &dir.join("train-images-idx3-ubyte"),
        &[20, train_shape.0, train_shape.1],
        &pixels(20, train_shape),
    );
    write_idx(&dir.join("train-labels-idx1-ubyte"), &[20], &train_labels);
    write_idx(
        &dir.join("t10k-images-idx3-ubyte"),
        &[4, test_shape.0, test_shape.1],
        &pixels(4, test_shape),
    );
    write_idx(&dir.join("t10k-labels-idx1-ubyte"), &[4], &[0, 1, 0, 1]);
}

/// A class without test rows has no accuracy: `-` in the table and
/// `null` in the JSON, not 0.
#[test]
fn class_without_rows_has_no_accuracy() {
    let dir = scratch("empty-class");
    std::fs::create_dir(dir.join("data")).unwrap();
    write_small_images(&dir.join("data"), (28, 28), (28, 28));
    let common = ["--data", "data", "--classes", "4"];
    let mut args = vec!["train", "--epochs", "1", "--sizes", "784,8,4"];
    args.extend(common);
    args.extend(["--out", "m.safetensors"]);
    let out = heft(&args, &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut args = vec!["eval", "--checkpoint", "m.safetensors"];
    args.extend(common);
    let out = heft(&args, &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let rows: Vec<&str> = stdout.lines().skip(3).collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    for row in &rows[2..] {
        assert!(row.ends_with("  -"), "{stdout}");
    }

    args.push("--json");
    let out = heft(&args, &dir);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let per_class = report["per_class_accuracy"].as_array().unwrap();
    for class in [0, 1] {
        assert!(per_class[class].is_f64(), "{per_class:?}");
    }
    for class in [2, 3] {
        assert!(per_class[class].is_null(), "{per_class:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Train and test images of different shapes are rejected even when their
/// pixel counts agree, naming both files and shapes.
#[test]
fn mismatched_image_shapes_rejected() {
    let dir = scratch("image-shapes");
    write_small_images(&dir, (14, 56), (28, 28));
    let out = heft(
        &[
            "train",
            "--data",
            ".",
            "--classes",
            "4",
            "--sizes",
            "784,8,4",
        ],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("train-images-idx3-ubyte are 14x56 pixels but the test images"),
        "{stderr}"
    );
    assert!(
        stderr.contains("t10k-images-idx3-ubyte are 28x28"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes IDX train and test sets of `count` 2x2 images each, labels 0
/// and 1 in turn, into `dir`.
fn write_tiny_images(dir: &Path, count: u32) {
    let pixels: Vec<u8> = (0..count * 4).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..count).map(|i| (i % 2) as u8).collect();
    for prefix in ["train", "t10k"] {
        write_idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte")),
            &[count, 2, 2],
            &pixels,
        );
        write_idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte")),
            &[count],
            &labels,
        );
    }
}

/// A validation share that leaves a split empty is rejected with a share
/// that works, not with the default share that just failed, and a single
/// training image is reported as too few.
#[test]
fn empty_split_names_working_share() {
    let dir = scratch("tiny-split");
    let train = ["train", "--data", ".", "--classes", "2", "--sizes", "4,3,2"];
    write_tiny_images(&dir, 2);
    let out = heft(&train, &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("leaves the validation split"), "{stderr}");
    assert!(stderr.contains("such as 0.5"), "{stderr}");

    write_tiny_images(&dir, 1);
    let out = heft(&train, &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has 1 image, too few"), "{stderr}");
    assert!(!stderr.contains("such as the default"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A --classes that no IDX label file can hold is rejected as that
/// option, not reported as a problem with the --data directory.
#[test]
fn classes_beyond_u8_rejected() {
    for classes in ["0", "257"] {
        assert_command_rejected(
            "classes-range",
            &["train", "--classes", classes, "--sizes", "784,8,257"],
            &format!("invalid --classes {classes}: IDX labels are single bytes, so pass 1 to 256"),
        );
    }
    let dir = scratch("classes-idx");
    write_tiny_images(&dir, 10);
    let out = heft(
        &[
            "train",
            "--data",
            ".",
            "--classes",
            "300",
            "--sizes",
            "4,3,300",
        ],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid --classes 300"), "{stderr}");
    assert!(!stderr.contains("pass --data"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
