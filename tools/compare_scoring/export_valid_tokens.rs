//! Writes the validation split of the embedded sentiment corpus exactly as
//! `heft train --task text` and `heft bench tune` encode it (the corpus's
//! validation records, right-padded with id 0, an empty text read as one
//! padding token), so PyTorch scores the same token ids.
//!
//! Output: little-endian `u32` values `count, seq_len, vocab, classes`,
//! then `count * seq_len` ids, `count` lengths and `count` labels (the
//! layout of `train_epoch --export-sequences`, which writes the training
//! records instead).
//!
//! Built by `tools/compare_scoring.sh` as a throw-away package in its
//! temporary directory, with a path dependency on `crates/heft-data`.

use heft_data::{embedded, TextCorpus};

fn main() {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: export_valid_tokens OUT_FILE");
        std::process::exit(2);
    };
    let options = embedded::sentiment_options();
    let corpus = TextCorpus::load(&embedded::sentiment_path(), &options)
        .unwrap_or_else(|e| fail(&format!("cannot load the embedded sentiment corpus: {e}")));
    let records: Vec<usize> = corpus.valid_indices().iter().map(|&i| i as usize).collect();
    let seq_len = corpus.max_len();
    let mut ids = vec![0u32; records.len() * seq_len];
    let mut lengths = vec![0u32; records.len()];
    let mut labels = vec![0u32; records.len()];
    corpus
        .fill_batch(&records, &mut ids, &mut lengths, &mut labels)
        .unwrap_or_else(|e| fail(&format!("cannot read the corpus: {e}")));
    let header = [records.len(), seq_len, corpus.vocab().len(), corpus.classes().len()]
        .map(|v| u32::try_from(v).expect("corpus sizes fit u32"));
    let words = header
        .into_iter()
        .chain(ids)
        .chain(lengths.into_iter().map(|l| l.max(1)))
        .chain(labels);
    let bytes: Vec<u8> = words.flat_map(u32::to_le_bytes).collect();
    if let Err(e) = std::fs::write(&out, bytes) {
        fail(&format!("failed to write {out}: {e}"));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("export_valid_tokens: {message}");
    std::process::exit(1);
}
