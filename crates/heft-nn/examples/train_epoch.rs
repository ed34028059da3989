//! Times one training epoch of the benchmark workloads and prints one line
//! per case: `heft <case> threads=<n> median_s=<seconds> runs=<n>`.
//!
//! Used by `tools/compare_training.sh`:
//!
//! ```sh
//! cargo run --release -p heft-nn --example train_epoch -- 5
//! ```
//!
//! The optional argument is the number of timed runs per case (default 5),
//! after one untimed warm-up run. `--case mlp` or `--case lstm` times one
//! case only and `--threads N` one pool size only, so runs with different
//! settings can alternate, e.g.
//!
//! ```sh
//! train_epoch 5 --case lstm --threads 2
//! ```
//!
//! With `--export-sequences FILE` it writes
//! the LSTM's training sequences instead, so PyTorch trains on the same
//! token ids: little-endian `u32` values `count, seq_len, vocab, classes`,
//! then `count * seq_len` ids, `count` lengths and `count` labels.

use std::time::Instant;

#[path = "../benches/workload/mod.rs"]
#[allow(dead_code)]
mod workload;

fn median_seconds(runs: usize, mut epoch: impl FnMut()) -> f64 {
    epoch();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            epoch();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn export_sequences(path: &str) {
    let data = workload::sentiment_train();
    let header = [data.labels.len(), data.seq_len, data.vocab, data.classes];
    let words = header
        .into_iter()
        .chain(data.ids.iter().map(|&id| id as usize))
        .chain(data.lengths.iter().copied())
        .chain(data.labels.iter().map(|&label| label as usize));
    let mut bytes = Vec::new();
    for word in words {
        let word = u32::try_from(word).expect("corpus values fit u32");
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    if let Err(e) = std::fs::write(path, bytes) {
        eprintln!("failed to write {path}: {e}");
        std::process::exit(1);
    }
}

/// Cases, pool sizes and run count, read from the command line.
struct Options {
    runs: usize,
    mlp: bool,
    lstm: bool,
    threads: Vec<usize>,
}

fn usage_error(message: &str) -> ! {
    eprintln!("{message}");
    eprintln!("usage: train_epoch [RUNS] [--case mlp|lstm] [--threads N]");
    std::process::exit(2);
}

fn parse_options(args: &[String]) -> Options {
    let mut options = Options {
        runs: 5,
        mlp: true,
        lstm: true,
        threads: vec![1, 2],
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--case" => match args.next().map(String::as_str) {
                Some("mlp") => (options.mlp, options.lstm) = (true, false),
                Some("lstm") => (options.mlp, options.lstm) = (false, true),
                other => usage_error(&format!("--case takes mlp or lstm, not {other:?}")),
            },
            "--threads" => {
                let n = args.next().and_then(|n| n.parse::<usize>().ok());
                match n.filter(|&n| n > 0) {
                    Some(n) => options.threads = vec![n],
                    None => usage_error("--threads takes a whole number of at least 1"),
                }
            }
            runs => match runs.parse::<usize>().ok().filter(|&n| n > 0) {
                Some(n) => options.runs = n,
                None => usage_error(&format!(
                    "invalid run count {runs:?}: pass a whole number of at least 1"
                )),
            },
        }
    }
    options
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--export-sequences") {
        let Some(path) = args.get(1) else {
            eprintln!("--export-sequences needs an output file path");
            std::process::exit(2);
        };
        export_sequences(path);
        return;
    }
    let options = parse_options(&args);
    let runs = options.runs;

    let images = options.mlp.then(|| {
        let images = workload::fashion_mnist_48k();
        eprintln!("MLP data: {}", images.source);
        images
    });
    let sequences = options.lstm.then(workload::sentiment_train);
    for &threads in &options.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool");
        if let Some(images) = &images {
            let initial = workload::mlp(images.columns);
            let mlp_s = pool.install(|| {
                median_seconds(runs, || {
                    let mut mlp = initial.clone();
                    workload::mlp_epoch(&mut mlp, images);
                })
            });
            println!("heft mlp threads={threads} median_s={mlp_s:.4} runs={runs}");
        }

        if let Some(sequences) = &sequences {
            let initial = workload::lstm(sequences);
            let lstm_s = pool.install(|| {
                median_seconds(runs, || {
                    let mut model = initial.clone();
                    workload::lstm_epoch(&mut model, sequences);
                })
            });
            println!("heft lstm threads={threads} median_s={lstm_s:.4} runs={runs}");
        }
    }
}
