//! `heft bench`: GEMM throughput per shape, kernel and thread count, as
//! GFLOP/s and as a fraction of the FMA peak measured in the same run,
//! beside the bound that the read rate of the shape's operands sets, and
//! (`heft bench tune`, in `bench_tune.rs`) candidates scored per second by
//! the tuning objective.

use clap::{Args, ValueEnum};
use heft_kernels::dispatch::Isa;
use heft_kernels::gemm::{Gemm, MatMut, MatRef};
use heft_kernels::peak::{microkernel_gflops, peak_gflops, read_bandwidth, MicrokernelThroughput};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options of `heft bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// The benchmark family to run.
    #[arg(value_enum, default_value_t = Target::Gemm)]
    target: Target,
    /// Kernels to measure: `auto` (the one heft selects: `HEFT_KERNEL` or
    /// the fastest available), `all` (every kernel this CPU runs) or a
    /// comma-separated list of avx512, avx2, portable. `tune` takes only
    /// `auto`.
    #[arg(long, default_value = "auto")]
    pub kernel: String,
    /// Thread counts to measure, comma-separated, each 1 to 1024.
    #[arg(long, default_value = "1,2", value_delimiter = ',', value_parser = parse_thread_count)]
    pub threads: Vec<usize>,
    /// Timed samples per shape, 1 to 10,000; the table reports their median
    /// and best.
    #[arg(long, default_value_t = 7)]
    pub samples: usize,
    /// Minimum duration of one sample, in milliseconds, 1 to 60,000; short
    /// products are repeated until a sample lasts this long.
    #[arg(long, default_value_t = 40)]
    pub sample_ms: u64,
    /// Only shapes (or `tune` cases) whose label contains this text,
    /// ignoring case (for example `12000`, `argmax` or `fc2.weight`).
    #[arg(long)]
    pub filter: Option<String>,
    /// `tune` only: directory with the Fashion-MNIST IDX files [default:
    /// /usr/share/datasets/fashion-mnist when present, else the embedded
    /// subset].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// `tune` only: use the embedded Fashion-MNIST subset even when the
    /// complete dataset is installed.
    #[arg(long, conflicts_with = "data")]
    pub embedded_data: bool,
    /// `tune` only: training epochs of the benchmarked models, 1 to
    /// 100,000 [default: 1].
    #[arg(long)]
    pub epochs: Option<usize>,
}

/// A benchmark family.
#[derive(Clone, Copy, ValueEnum)]
enum Target {
    /// Single-precision GEMM on square and project shapes, plus the fused
    /// argmax epilogue, against the FMA peak and a bandwidth bound.
    Gemm,
    /// Candidates scored per second by the tuning objective on the MLP's
    /// `fc2.weight` and `fc1.weight` and the LSTM classifier's `fc.weight`
    /// and `rnn.weight_hh_l0`, with pruning on and off.
    Tune,
}

/// One measured shape: C (m x n) = A (m x k) * B (k x n); with `group`,
/// the fused argmax count over groups of that many columns.
struct Shape {
    m: usize,
    k: usize,
    n: usize,
    group: Option<usize>,
    /// B is read transposed, as `X * W^T` reads a PyTorch `[out, in]`
    /// weight.
    b_transposed: bool,
    /// The fused count reads A packed once by `Gemm::pack_argmax_a`
    /// outside the timed calls, as the tuning objective scores its
    /// candidates, instead of packing it in every call.
    a_packed: bool,
}

impl Shape {
    fn label(&self) -> String {
        let layout = if self.b_transposed { " B^T" } else { "" };
        let packed = if self.a_packed { " A packed" } else { "" };
        match self.group {
            Some(g) => format!(
                "{}x{}x{}{layout} argmax/{g}{packed}",
                self.m, self.k, self.n
            ),
            None => format!("{}x{}x{}{layout}", self.m, self.k, self.n),
        }
    }

    fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }

    /// Bytes every call must read at least once: A and B, and the labels
    /// of the fused count. C's writes are left out, so the bandwidth bound
    /// drawn from these bytes is an upper bound.
    fn bytes_read(&self) -> usize {
        let labels = if self.group.is_some() { self.m } else { 0 };
        4 * (self.m * self.k + self.k * self.n + labels)
    }
}

fn shapes() -> Vec<Shape> {
    let plain = |m, k, n| Shape {
        m,
        k,
        n,
        group: None,
        b_transposed: false,
        a_packed: false,
    };
    let mut list: Vec<Shape> = [64, 128, 256, 512, 1024, 2048]
        .into_iter()
        .map(|s| plain(s, s, s))
        .collect();
    for (m, k, n) in [
        (12000, 128, 10),
        (12000, 128, 320),
        (12000, 784, 128),
        (100, 784, 128),
        (100, 128, 10),
        (1, 784, 128),
    ] {
        list.push(plain(m, k, n));
    }
    list.push(Shape {
        m: 12000,
        k: 784,
        n: 128,
        group: None,
        b_transposed: true,
        a_packed: false,
    });
    for (n, a_packed) in [(10, false), (10, true), (640, false), (640, true)] {
        list.push(Shape {
            m: 12000,
            k: 128,
            n,
            group: Some(10),
            b_transposed: false,
            a_packed,
        });
    }
    list
}

/// Parses one entry of `--threads`, ignoring spaces around it (the range
/// is checked later, with the other options).
fn parse_thread_count(text: &str) -> Result<usize, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not a thread count; pass whole numbers separated by commas, such as 1,2"
        )
    })
}

pub(crate) fn parse_kernels(text: &str) -> Result<Vec<Isa>, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        let isa =
            Isa::from_env().map_err(|e| format!("{}: {e}", heft_kernels::dispatch::KERNEL_ENV))?;
        return Ok(vec![isa.unwrap_or_else(Isa::detect)]);
    }
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(Isa::ALL
            .into_iter()
            .filter(|isa| isa.is_available())
            .collect());
    }
    let mut kernels = Vec::new();
    for name in text.split(',') {
        if name.trim().is_empty() {
            return Err(format!(
                "--kernel: {text:?} has an empty name; pass auto, all or names such as avx2,portable \
                 without an empty entry"
            ));
        }
        if ["auto", "all"]
            .iter()
            .any(|keyword| name.trim().eq_ignore_ascii_case(keyword))
        {
            return Err(format!(
                "--kernel: {text:?} mixes {:?} with other names; pass {:?} alone or list kernel \
                 names such as avx2,portable",
                name.trim(),
                name.trim()
            ));
        }
        let isa: Isa = name.parse().map_err(|e| format!("--kernel: {e}"))?;
        isa.check_available()
            .map_err(|e| format!("--kernel: {e}"))?;
        // A kernel named twice is measured once, in the place of its first
        // mention.
        if !kernels.contains(&isa) {
            kernels.push(isa);
        }
    }
    Ok(kernels)
}

/// Runs `heft bench`.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    match args.target {
        Target::Gemm => bench_gemm(args),
        Target::Tune => crate::bench_tune::bench_tune(args),
    }
}

fn bench_gemm(args: &BenchArgs) -> Result<(), String> {
    let kernels = parse_kernels(&args.kernel)?;
    check_common(args)?;
    check_gemm_options(args)?;
    let thread_list = thread_counts(args);
    let selected: Vec<Shape> = shapes()
        .into_iter()
        .filter(|shape| label_matches(&shape.label(), args.filter.as_deref()))
        .collect();
    if selected.is_empty() {
        let labels: Vec<String> = shapes().iter().map(Shape::label).collect();
        return Err(format!(
            "--filter: no shape label contains {:?}; labels are: {}",
            args.filter.as_deref().unwrap_or(""),
            labels.join(", ")
        ));
    }
    println!(
        "heft bench gemm: f32, median and best of {} of at least {} ms",
        count(args.samples, "sample", "samples"),
        args.sample_ms
    );
    for &isa in &kernels {
        let first_peak = measure_peak(isa);
        let tile = measure_microkernel(isa)?;
        // The peak before each row, which is also the peak after the row
        // (or the microkernel) before it. The speed of a shared machine
        // drifts over minutes, so each measurement is divided by the better
        // of the peaks on its two sides rather than by one figure for the
        // whole run.
        let mut peak_before = measure_row_peak(isa);
        let tile_peak = first_peak.max(peak_before);
        let mut rows = Vec::new();
        let mut rates: HashMap<(usize, usize), f64> = HashMap::new();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        for shape in &selected {
            for &threads in &thread_list {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .map_err(|e| format!("failed to start {threads} threads: {e}"))?;
                let gemm = Gemm::with_isa(isa).map_err(|e| e.to_string())?;
                let bytes = shape.bytes_read();
                // The read rate, measured before and after the shape's
                // samples the first time its size and thread count come
                // up: the faster of the two is the closer to what the
                // machine can do, as for the peak.
                let read_rate = || {
                    read_bandwidth(isa, bytes, threads, 5, BANDWIDTH_SAMPLE)
                        .map_err(|e| e.to_string())
                };
                // With more threads than CPUs the threads take turns, so the
                // rate means little and the row gets no bound.
                let measure = threads <= cpus && !rates.contains_key(&(bytes, threads));
                let before = if measure { Some(read_rate()?) } else { None };
                let times = pool.install(|| time_shape(gemm, shape, args));
                if let Some(before) = before {
                    rates.insert((bytes, threads), before.max(read_rate()?));
                }
                let rate = rates.get(&(bytes, threads)).copied();
                let peak_after = measure_row_peak(isa);
                let peak = peak_before.max(peak_after);
                peak_before = peak_after;
                let median = median(&times);
                let best = times.iter().cloned().fold(f64::INFINITY, f64::min);
                rows.push(Row {
                    label: shape.label(),
                    threads,
                    median,
                    gflops: shape.flops() / median / 1e9,
                    best_gflops: shape.flops() / best / 1e9,
                    peak,
                    read_gbps: rate,
                    flops_per_byte: shape.flops() / bytes as f64,
                });
            }
        }
        print_gemm_table(isa, tile_peak, &tile, &rows);
    }
    Ok(())
}

/// Prints the range of the row peaks, the microkernel ceiling and one line
/// per row. The ceiling is a fraction of `tile_peak`, the better of the
/// peaks measured just before and just after it. Each row is a fraction of
/// its own peak (per core) times its threads.
fn print_gemm_table(isa: Isa, tile_peak: f64, tile: &MicrokernelThroughput, rows: &[Row]) {
    let range = peak_range(rows.iter().map(|row| row.peak));
    println!();
    println!("kernel {isa}: FMA peak {range}");
    let tile_percent = 100.0 * tile.gflops / tile_peak;
    println!(
        "microkernel {} x {} on L1-resident panels (KC {}): {:.1} GFLOP/s per core, \
         {tile_percent:.1}% of the peak of {tile_peak:.1} measured beside it, the ceiling of the \
         % peak column",
        tile.mr, tile.nr, tile.kc, tile.gflops,
    );
    if tile_percent > 100.0 {
        println!(
            "  warning: above the measured peak, so another process slowed the peak \
             measurement; rerun on an idle machine"
        );
    }
    println!(
        "best: GFLOP/s of the fastest sample; % peak: GFLOP/s over the row's peak times its \
         threads"
    );
    println!(
        "read GB/s: the rate at which the row's threads together read a buffer the size of the \
         shape's operands (A, B and the fused count's labels) with this kernel's vector loads"
    );
    println!(
        "bound: the lower of the FMA peak and the shape's flops per byte read times that rate, \
         in % of peak; a product that reads its operands once cannot run faster (- with more \
         threads than CPUs)"
    );
    println!(
        "{:<32} {:>7} {:>10} {:>10} {:>9} {:>7} {:>9} {:>10} {:>9}",
        "shape (m x k x n)",
        "threads",
        "median ms",
        "GFLOP/s",
        "best",
        "peak",
        "% peak",
        "read GB/s",
        "bound"
    );
    for row in rows {
        let peak = row.peak;
        let top = peak * row.threads as f64;
        let fraction = 100.0 * row.gflops / top;
        let bound = row
            .read_gbps
            .map(|rate| bound_percent(row.flops_per_byte * rate, top));
        let read = row
            .read_gbps
            .map_or("-".to_string(), |rate| format!("{rate:.1}"));
        let bound_cell = bound.map_or("-".to_string(), |bound| format!("{bound:.1}%"));
        println!(
            "{:<32} {:>7} {:>10.4} {:>10.1} {:>9.1} {peak:>7.1} {fraction:>8.1}% {read:>10} \
             {bound_cell:>9}",
            row.label,
            row.threads,
            row.median * 1e3,
            row.gflops,
            row.best_gflops,
        );
        if fraction > 100.0 {
            println!(
                "  warning: above the measured peak ({peak:.1} GFLOP/s per core), so another \
                 process slowed the peak measurement; rerun on an idle machine"
            );
        } else if bound.is_some_and(|bound| fraction > bound) {
            println!(
                "  warning: above the bandwidth bound, so the read rate was measured at a slower \
                 moment than the product; rerun on an idle machine"
            );
        }
    }
}

/// Returns the bound of a row in % of `top` (the FMA peak of its
/// threads): the lower of the peak and `bandwidth_gflops`.
fn bound_percent(bandwidth_gflops: f64, top: f64) -> f64 {
    100.0 * bandwidth_gflops.min(top) / top
}

/// Minimum duration of one sample of the read rate behind the bound.
const BANDWIDTH_SAMPLE: Duration = Duration::from_millis(5);

/// One measured shape and thread count of `heft bench gemm`.
struct Row {
    label: String,
    threads: usize,
    /// Median seconds per call.
    median: f64,
    gflops: f64,
    best_gflops: f64,
    /// Single-thread FMA peak in GFLOP/s: the better of the measurements
    /// just before and just after the row's samples.
    peak: f64,
    /// Rate at which the row's threads read a buffer of its operands' size,
    /// or `None` with more threads than CPUs.
    read_gbps: Option<f64>,
    /// Flops per byte the product must read: times `read_gbps`, the
    /// GFLOP/s it cannot exceed while reading its operands.
    flops_per_byte: f64,
}

/// Returns whether `label` contains `filter`, ignoring ASCII case.
/// Without a filter, every label matches.
pub(crate) fn label_matches(label: &str, filter: Option<&str>) -> bool {
    filter.is_none_or(|f| label.to_ascii_lowercase().contains(&f.to_ascii_lowercase()))
}

/// Checks the options that every target shares.
pub(crate) fn check_common(args: &BenchArgs) -> Result<(), String> {
    if args.threads.is_empty() {
        return Err("--threads: the list is empty; pass thread counts such as 1,2".into());
    }
    for &threads in &args.threads {
        crate::tune::check_threads(Some(threads))?;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(&threads) = args.threads.iter().find(|&&t| t > cpus) {
        eprintln!(
            "note: --threads {threads} is more than the {cpus} CPUs available; those threads \
             share cores, while the % peak column assumes one core per thread"
        );
    }
    if args.samples == 0 || args.samples > MAX_SAMPLES {
        return Err(format!(
            "--samples: {} is outside 1..={MAX_SAMPLES}",
            args.samples
        ));
    }
    if args.sample_ms == 0 || args.sample_ms > MAX_SAMPLE_MS {
        return Err(format!(
            "--sample-ms: {} is outside 1..={MAX_SAMPLE_MS} milliseconds",
            args.sample_ms
        ));
    }
    if let Some(epochs) = args.epochs {
        crate::train::check_epochs(epochs)?;
    }
    Ok(())
}

/// Returns the `--threads` list without repeats, in the order of first
/// mention, so a count given twice is measured once.
pub(crate) fn thread_counts(args: &BenchArgs) -> Vec<usize> {
    let mut counts = Vec::new();
    for &threads in &args.threads {
        if !counts.contains(&threads) {
            counts.push(threads);
        }
    }
    counts
}

/// Rejects the options that only `heft bench tune` reads, which `gemm`
/// would otherwise ignore without a word.
fn check_gemm_options(args: &BenchArgs) -> Result<(), String> {
    let tune_options = [
        ("--data", args.data.is_some()),
        ("--embedded-data", args.embedded_data),
        ("--epochs", args.epochs.is_some()),
    ];
    match tune_options.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(format!(
            "{name} applies to `heft bench tune` only; drop it from `heft bench gemm`"
        )),
        None => Ok(()),
    }
}

/// Largest sample count `--samples` accepts.
const MAX_SAMPLES: usize = 10_000;
/// Maximum sample duration `--sample-ms` accepts: one minute.
const MAX_SAMPLE_MS: u64 = 60_000;

/// Returns the best of five single-thread measurements of the microkernel
/// of `isa` on L1-resident panels, 20,000 calls each (about 20 ms with AVX-512).
fn measure_microkernel(isa: Isa) -> Result<MicrokernelThroughput, String> {
    let mut best: Option<MicrokernelThroughput> = None;
    for _ in 0..5 {
        let run = microkernel_gflops(isa, 20_000).map_err(|e| e.to_string())?;
        if best.is_none_or(|b| run.gflops > b.gflops) {
            best = Some(run);
        }
    }
    best.ok_or_else(|| "no microkernel measurement".to_string())
}

/// Returns the best of five single-thread peak measurements of `isa`.
fn measure_peak(isa: Isa) -> f64 {
    best_of(5, || peak_gflops(isa, 20_000_000).unwrap_or(0.0))
}

/// Returns the range of the row peaks `peaks` (one figure when they all
/// round to it) and what the peak column means, for a table's header.
pub(crate) fn peak_range(peaks: impl Iterator<Item = f64> + Clone) -> String {
    let lowest = peaks.clone().fold(f64::INFINITY, f64::min);
    let highest = peaks.fold(0.0, f64::max);
    let range = if format!("{lowest:.1}") == format!("{highest:.1}") {
        format!("{highest:.1}")
    } else {
        format!("{lowest:.1} to {highest:.1}")
    };
    format!(
        "{range} GFLOP/s per core (column peak: the better of the measurements just before and \
         just after each row)"
    )
}

/// Returns the best of three shorter single-thread peak measurements of
/// `isa`, taken between the rows of a table. Each runs 3.84 GFLOP with
/// AVX-512, 16 ms at 246 GFLOP/s.
pub(crate) fn measure_row_peak(isa: Isa) -> f64 {
    best_of(3, || peak_gflops(isa, 10_000_000).unwrap_or(0.0))
}

fn best_of(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..runs).map(|_| f()).fold(0.0, f64::max)
}

/// Returns `n` followed by the singular or plural noun: "1 sample", "7
/// samples".
pub(crate) fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// Returns the median of `values` (at least one): the middle value, or
/// the mean of the two middle values for an even count.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// Returns the seconds per product of `samples` timed samples.
fn time_shape(gemm: Gemm, shape: &Shape, args: &BenchArgs) -> Vec<f64> {
    let (m, k, n) = (shape.m, shape.k, shape.n);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let mut c = vec![0.0f32; m * n];
    let labels: Vec<u32> = (0..m)
        .map(|i| (i % shape.group.unwrap_or(1)) as u32)
        .collect();
    let mut counts = vec![0u64; shape.group.map_or(0, |g| n / g)];
    let a_view = MatRef::row_major(&a, m, k).expect("buffer sized for the shape");
    let b_view = if shape.b_transposed {
        MatRef::row_major(&b, n, k)
            .expect("buffer sized for the shape")
            .t()
    } else {
        MatRef::row_major(&b, k, n).expect("buffer sized for the shape")
    };
    let packed = match shape.group {
        Some(g) if shape.a_packed => Some(gemm.pack_argmax_a(a_view, g).expect("group above 0")),
        _ => None,
    };
    let mut once = || match (shape.group, &packed) {
        (Some(_), Some(packed)) => gemm
            .argmax_count_packed(packed, b_view, None, &labels, &mut counts)
            .expect("valid shapes"),
        (Some(g), None) => gemm
            .argmax_count(a_view, b_view, None, g, &labels, &mut counts)
            .expect("valid shapes"),
        (None, _) => gemm
            .run(
                1.0,
                a_view,
                b_view,
                0.0,
                MatMut::row_major(&mut c, m, n).expect("buffer sized for the shape"),
            )
            .expect("valid shapes"),
    };
    // Warm up caches and thread pools, then size the repetitions.
    let start = Instant::now();
    once();
    once();
    let per_call = start.elapsed().as_secs_f64() / 2.0;
    let min_sample = Duration::from_millis(args.sample_ms).as_secs_f64();
    let reps = ((min_sample / per_call.max(1e-9)).ceil() as usize).max(1);
    (0..args.samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                once();
            }
            start.elapsed().as_secs_f64() / reps as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{bound_percent, label_matches, BenchArgs};
    use clap::Parser;

    /// `heft bench` arguments without the rest of the command line.
    #[derive(Parser)]
    struct BenchOnly {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn bench_args(args: &[&str]) -> BenchArgs {
        let line = std::iter::once("bench").chain(args.iter().copied());
        BenchOnly::try_parse_from(line)
            .expect("valid arguments")
            .bench
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(super::median(&[7.0]), 7.0);
    }

    #[test]
    fn bound_is_capped_at_peak() {
        assert_eq!(bound_percent(500.0, 200.0), 100.0);
        assert_eq!(bound_percent(200.0, 200.0), 100.0);
    }

    #[test]
    fn bound_follows_read_rate() {
        // 5 flops per byte at 29 GB/s against a 235 GFLOP/s peak.
        let bound = bound_percent(5.0 * 29.0, 235.0);
        assert!((bound - 61.70).abs() < 0.01, "{bound}");
    }

    #[test]
    fn repeated_thread_counts_run_once() {
        let args = bench_args(&["gemm", "--threads", "2,1,2,1"]);
        assert_eq!(super::thread_counts(&args), vec![2, 1]);
    }

    /// The options of `heft bench tune` only, each with a value where it
    /// takes one: the training epochs of both models, then the two that
    /// choose the MLP's images.
    const TUNE_OPTIONS: [&[&str]; 3] = [
        &["--epochs", "2"],
        &["--data", "/nonexistent"],
        &["--embedded-data"],
    ];

    #[test]
    fn gemm_rejects_tune_options() {
        for extra in TUNE_OPTIONS {
            let mut line = vec!["gemm"];
            line.extend_from_slice(extra);
            let message = super::check_gemm_options(&bench_args(&line)).unwrap_err();
            assert!(message.contains(extra[0]), "{message}");
        }
        assert!(super::check_gemm_options(&bench_args(&["gemm"])).is_ok());
    }

    #[test]
    fn tune_rejects_kernel_choice() {
        let args = bench_args(&["tune", "--kernel", "portable"]);
        let message = crate::bench_tune::bench_tune(&args).unwrap_err();
        assert!(message.contains("HEFT_KERNEL"), "{message}");
    }

    #[test]
    fn tune_rejects_image_options_for_lstm_cases() {
        for extra in &TUNE_OPTIONS[1..] {
            let mut line = vec!["tune", "--filter", "lstm"];
            line.extend_from_slice(extra);
            let message = crate::bench_tune::bench_tune(&bench_args(&line)).unwrap_err();
            assert!(message.contains(extra[0]), "{message}");
            assert!(message.contains("LSTM cases only"), "{message}");
        }
    }

    #[test]
    fn keywords_stand_alone_in_kernel_lists() {
        for text in ["all,avx2", "portable,AUTO"] {
            let message = super::parse_kernels(text).unwrap_err();
            assert!(message.contains("alone"), "{message}");
        }
    }

    #[test]
    fn thread_lists_allow_spaces_and_name_bad_entries() {
        let args = bench_args(&["gemm", "--threads", "1, 2"]);
        assert_eq!(args.threads, vec![1, 2]);
        for text in ["1,,2", "two"] {
            let line = ["bench", "gemm", "--threads", text];
            let error = BenchOnly::try_parse_from(line).err().expect("an error");
            assert!(error.to_string().contains("such as 1,2"), "{error}");
        }
    }

    #[test]
    fn kernel_keywords_ignore_case() {
        let all = super::parse_kernels("all").unwrap();
        assert_eq!(super::parse_kernels("ALL").unwrap(), all);
        assert_eq!(
            super::parse_kernels(" Auto ").unwrap(),
            super::parse_kernels("auto").unwrap()
        );
    }

    #[test]
    fn empty_kernel_name_rejected() {
        for text in ["portable,", ",portable", "portable,,portable", ""] {
            let message = super::parse_kernels(text).unwrap_err();
            assert!(message.contains("empty name"), "{text:?}: {message}");
        }
    }

    #[test]
    fn filter_ignores_case() {
        assert!(label_matches("12000x128x10 argmax/10", Some("ARGMAX")));
        assert!(label_matches("12000x784x128 B^T", Some("b^t")));
        assert!(label_matches("mlp fc2.weight P=10", Some("p=10")));
    }

    #[test]
    fn filter_rejects_other_labels() {
        assert!(!label_matches("64x64x64", Some("argmax")));
        assert!(!label_matches("64x64x64", Some("64x64x64x")));
    }

    #[test]
    fn bytes_read_counts_operands_and_labels() {
        let shapes = super::shapes();
        let find = |label: &str| {
            shapes
                .iter()
                .find(|s| s.label() == label)
                .expect("listed shape")
        };
        assert_eq!(find("100x128x10").bytes_read(), 4 * (100 * 128 + 128 * 10));
        assert_eq!(
            find("12000x128x10 argmax/10").bytes_read(),
            4 * (12000 * 128 + 128 * 10 + 12000)
        );
    }

    #[test]
    fn kernel_list_drops_repeats() {
        let kernels = super::parse_kernels("portable,portable").unwrap();
        assert_eq!(kernels, vec![heft_kernels::dispatch::Isa::Portable]);
    }

    #[test]
    fn no_filter_matches_all() {
        assert!(label_matches("64x64x64", None));
        assert!(label_matches("", None));
    }
}
