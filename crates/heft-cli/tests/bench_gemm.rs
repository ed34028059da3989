//! End-to-end test of `heft bench gemm` on one small shape.

use std::process::Command;

#[test]
fn bench_gemm_prints_peak_and_bound() {
    let out = Command::new(env!("CARGO_BIN_EXE_heft"))
        .args([
            "bench",
            "gemm",
            "--kernel",
            "portable",
            "--threads",
            "1,2",
            "--samples",
            "1",
            "--sample-ms",
            "1",
            "--filter",
            "100x128x10",
        ])
        .output()
        .expect("the heft binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench gemm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("FMA peak"), "no peak line:\n{stdout}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|line| line.starts_with("100x128x10 "))
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows.len(),
        2,
        "expected one row per thread count:\n{stdout}"
    );
    for (row, threads) in rows.iter().zip(["1", "2"]) {
        // label, threads, median ms, GFLOP/s, best, % peak, bound
        assert_eq!(row.len(), 7, "columns of {row:?}");
        assert_eq!(row[1], threads);
        let percent = |cell: &str| -> f64 {
            cell.strip_suffix('%')
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{cell:?} is not a percentage"))
        };
        let gflops: f64 = row[3].parse().expect("GFLOP/s is a number");
        assert!(gflops > 0.0, "{row:?}");
        assert!(percent(row[5]) > 0.0, "{row:?}");
        let bound = percent(row[6]);
        assert!(
            bound > 0.0 && bound <= 100.0,
            "bound out of range in {row:?}"
        );
    }
}
