//! End-to-end test of `heft bench tune` with tiny settings on the embedded
//! Fashion-MNIST subset.

use std::process::Command;

#[test]
fn bench_tune_prints_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_heft"))
        .args([
            "bench",
            "tune",
            "--embedded-data",
            "--threads",
            "1",
            "--samples",
            "1",
            "--sample-ms",
            "1",
            "--filter",
            "fc2.weight P=10",
        ])
        .output()
        .expect("the heft binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench tune failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("candidates/s"),
        "no table header:\n{stdout}"
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("mlp fc2.weight P=10"))
        .collect();
    assert_eq!(rows.len(), 2, "expected pruning on and off rows:\n{stdout}");
    for row in rows {
        let rate: f64 = row
            .split_whitespace()
            .nth(6)
            .and_then(|field| field.parse().ok())
            .unwrap_or_else(|| panic!("no candidates/s field in {row:?}"));
        assert!(rate > 0.0, "candidates/s not positive in {row:?}");
        // "mlp fc2.weight P=10 prune on", threads, candidates/s, pruned,
        // zeros, MFLOP/candidate, peak, % peak: the last is the useful
        // GFLOP/s over the row's peak, up to the rounding of the printed
        // figures.
        let fields: Vec<f64> = row
            .split_whitespace()
            .skip(9)
            .map(|field| field.trim_end_matches('%').parse().unwrap())
            .collect();
        let [mflop, peak, percent] = fields[..] else {
            panic!("expected MFLOP/candidate, peak and % peak in {row:?}");
        };
        assert!(peak > 0.0, "peak not positive in {row:?}");
        let expected = 100.0 * mflop * 1e6 * rate / 1e9 / peak;
        assert!(
            (percent - expected).abs() <= 0.02 * expected + 0.1,
            "{row:?}: % peak {percent} against {expected}"
        );
    }
}
