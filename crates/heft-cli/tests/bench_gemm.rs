//! End-to-end tests of `heft bench gemm` on one small shape.

use std::process::{Command, Stdio};

fn heft_bench_gemm(extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heft"));
    command.args([
        "bench",
        "gemm",
        "--kernel",
        "portable",
        "--samples",
        "1",
        "--sample-ms",
        "1",
        "--filter",
        "100x128x10",
    ]);
    command.args(extra);
    command
}

/// Returns the number in a table cell such as `61.5%` or `120.3`.
fn number(cell: &str) -> f64 {
    cell.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("{cell:?} is not a number"))
}

#[test]
fn bench_gemm_prints_peak_and_bound() {
    // A repeated thread count is measured once, and an invalid
    // HEFT_KERNEL does not matter when --kernel names the kernels.
    let out = heft_bench_gemm(&["--threads", "1,2,1"])
        .env("HEFT_KERNEL", "nosuch")
        .output()
        .expect("the heft binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench gemm failed: {stderr}");
    assert!(
        !stderr.contains("HEFT_KERNEL"),
        "unexpected warning: {stderr}"
    );

    // "kernel portable: FMA peak LOW to HIGH GFLOP/s per core ...", or a
    // single figure when every row's peak rounds to the same value.
    let peak_line: Vec<&str> = stdout
        .lines()
        .find(|line| line.starts_with("kernel portable: FMA peak"))
        .unwrap_or_else(|| panic!("no peak line:\n{stdout}"))
        .split_whitespace()
        .collect();
    let lowest = number(peak_line[4]);
    let highest = if peak_line[5] == "to" {
        number(peak_line[6])
    } else {
        lowest
    };
    assert!(
        lowest > 0.0 && lowest <= highest,
        "peak range {lowest} to {highest}"
    );
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
    for (row, threads) in rows.iter().zip([1.0, 2.0]) {
        // label, threads, median ms, GFLOP/s, best, peak, % peak, read
        // GB/s, bound (two threads on a one-CPU machine show "-" for the
        // last two)
        assert_eq!(row.len(), 9, "columns of {row:?}");
        assert_eq!(number(row[1]), threads);
        let gflops = number(row[3]);
        assert!(gflops > 0.0, "{row:?}");
        let peak = number(row[5]);
        assert!(
            (lowest..=highest).contains(&peak),
            "{row:?} outside the peak range {lowest} to {highest}"
        );
        // % peak is GFLOP/s over the row's peak times the threads, up to
        // the rounding of the three printed figures (0.05 each).
        let percent = 100.0 * gflops / (peak * threads);
        let rounding = 100.0 * 0.05 * (peak + gflops) / (peak * peak * threads) + 0.05;
        assert!(
            (number(row[6]) - percent).abs() <= rounding + 1e-9,
            "{row:?} against peak {peak}"
        );
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        if threads > cpus {
            assert_eq!((row[7], row[8]), ("-", "-"), "{row:?}");
            continue;
        }
        assert!(number(row[7]) > 0.0, "read rate of {row:?}");
        let bound = number(row[8]);
        assert!(
            bound > 0.0 && bound <= 100.0,
            "bound out of range in {row:?}"
        );
    }
}

/// Writing to a closed pipe (`heft bench gemm | head -1` once head has
/// exited) ends the process with status 141 and no panic message.
#[cfg(unix)]
#[test]
fn closed_stdout_exits_quietly() {
    let mut child = heft_bench_gemm(&["--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the heft binary runs");
    // Close the reading end before heft prints its first line.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("heft finishes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

/// A failed write to standard output other than a closed pipe (here a
/// full device) ends the process with status 2 and one error line that
/// names the failure, not a panic report.
#[cfg(target_os = "linux")]
#[test]
fn full_stdout_is_an_error() {
    let full = std::fs::File::create("/dev/full").expect("/dev/full opens");
    let out = heft_bench_gemm(&["--threads", "1"])
        .stdout(full)
        .output()
        .expect("the heft binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("failed printing to stdout"), "{stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}
