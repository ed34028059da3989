//! Delimited reader, tokeniser, vocabulary, text corpus and its cache.

mod common;

use std::borrow::Cow;

use common::{assert_error, TempDir};
use heft_data::embedded;
use heft_data::text::delimited::DelimitedReader;
use heft_data::text::{tokenize, Vocab, PAD_ID, UNK_ID};
use heft_data::{CachePolicy, CacheStatus, Column, ErrorKind, Location, TextCorpus, TextOptions};

fn fields(data: &[u8], delimiter: u8) -> Vec<Vec<String>> {
    DelimitedReader::new(data, delimiter)
        .map(|r| {
            r.unwrap()
                .fields
                .iter()
                .map(|f| String::from_utf8(f.to_vec()).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn reader_handles_quotes_delimiters_and_newlines() {
    let data = b"a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\n2,\"two\r\nlines\",\n\n3,,\"\"";
    assert_eq!(
        fields(data, b','),
        vec![
            vec!["a", "b", "c"],
            vec!["1", "x, y", "say \"hi\""],
            vec!["2", "two\r\nlines", ""],
            vec!["3", "", ""],
        ]
    );
}

#[test]
fn reader_reports_lines_and_offsets() {
    let data = b"h1\th2\n\"a\nb\"\tc\nd\te\n";
    let records: Vec<_> = DelimitedReader::new(data, b'\t')
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(
        (records[1].number, records[1].line, records[1].offset),
        (1, 2, 6)
    );
    assert_eq!(
        (records[2].number, records[2].line, records[2].offset),
        (2, 4, 14)
    );
    assert!(matches!(records[1].fields[0], Cow::Borrowed(_)));
}

#[test]
fn reader_keeps_lone_cr_and_inner_quotes() {
    assert_eq!(fields(b"a\rb,c\"d\n", b','), vec![vec!["a\rb", "c\"d"]]);
}

#[test]
fn reader_rejects_unterminated_quote() {
    let mut reader = DelimitedReader::new(b"a,b\n1,\"open\n2,3\n", b',');
    reader.next().unwrap().unwrap();
    let err = reader.next().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert_eq!(
        err.location(),
        Some(Location::Record { record: 1, byte: 4 })
    );
    assert!(reader.next().is_none(), "reader continues after an error");
}

#[test]
fn reader_rejects_text_after_closing_quote() {
    let err = DelimitedReader::new(b"\"ab\"c,d\n", b',')
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
}

#[test]
fn reader_rejects_quote_delimiter() {
    let err = DelimitedReader::new(b"a", b'"')
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn tokenize_lowercases_and_splits() {
    let tokens: Vec<String> = tokenize("Don't STOP—it's 2024! 'Great' café’s e-mail ''").collect();
    assert_eq!(
        tokens,
        [
            "don't",
            "stop",
            "it's",
            "2024",
            "great",
            "café’s",
            "e",
            "mail"
        ]
    );
}

#[test]
fn vocab_orders_by_count_then_token() {
    let counts = [("b", 3), ("a", 3), ("c", 5), ("rare", 1), ("d", 2)]
        .into_iter()
        .map(|(t, c)| (t.to_string(), c))
        .collect();
    let vocab = Vocab::from_counts(&counts, 2, 5);
    assert_eq!(vocab.tokens(), ["c", "a", "b"]);
    assert_eq!(vocab.len(), 5);
    assert_eq!(vocab.id("c"), 2);
    assert_eq!(vocab.id("d"), UNK_ID);
    assert_eq!(vocab.id("rare"), UNK_ID);
    assert_eq!(vocab.token(PAD_ID), Some("<pad>"));
    assert_eq!(vocab.token(4), Some("b"));
    assert_eq!(vocab.token(5), None);
}

#[test]
fn vocab_repeated_tokens_take_no_ids() {
    let vocab = Vocab::from_tokens(vec!["a".into(), "a".into(), "b".into(), "a".into()]);
    assert_eq!(vocab.tokens(), ["a", "b"]);
    assert_eq!(vocab.len(), 4);
    assert_eq!(vocab.id("a"), 2);
    assert_eq!(vocab.id("b"), 3);
    assert_eq!(vocab.token(2), Some("a"));
    assert_eq!(vocab.token(3), Some("b"));
    assert_eq!(vocab.token(4), None);
}

fn options(cache: CachePolicy) -> TextOptions {
    TextOptions {
        label_column: Column::Name("label".into()),
        text_column: Column::Name("text".into()),
        max_len: 4,
        valid_share: 0.25,
        seed: 5,
        cache,
        ..TextOptions::default()
    }
}

/// The texts of `SMALL_CSV`, in record order.
const SMALL_TEXTS: [&str; 8] = [
    "Good good film",
    "Bad, bad, bad film; truly bad",
    "It was\nfine",
    "good",
    "awful and bad",
    "ok",
    "great good",
    "",
];

const SMALL_CSV: &[u8] = b"id,label,text\n\
1,pos,Good good film\n\
2,neg,\"Bad, bad, bad film; truly bad\"\n\
3,neu,\"It was\nfine\"\n\
4,pos,good\n\
5,neg,awful and bad\n\
6,neu,ok\n\
7,pos,great good\n\
8,neg,\"\"\n";

#[test]
fn corpus_encodes_labels_lengths_and_ids() {
    let dir = TempDir::new("corpus");
    let path = dir.write("small.csv", SMALL_CSV);
    let corpus = TextCorpus::load(&path, &options(CachePolicy::Off)).unwrap();
    assert_eq!(corpus.cache_status(), &CacheStatus::Disabled);
    assert_eq!(corpus.len(), 8);
    assert_eq!(corpus.classes(), ["neg", "neu", "pos"]);
    assert_eq!(corpus.labels(), [2, 0, 1, 2, 0, 1, 2, 0]);
    assert_eq!(corpus.lengths(), [3, 4, 3, 1, 3, 1, 2, 0]);
    assert_eq!(corpus.valid_indices().len(), 2);
    assert_eq!(corpus.train_indices().len(), 6);

    // The vocabulary comes from the training records only: every token of
    // a training record has an id, and a token seen only in validation
    // records is unknown.
    let vocab = corpus.vocab();
    let train_tokens: std::collections::HashSet<String> = corpus
        .train_indices()
        .iter()
        .flat_map(|&i| tokenize(SMALL_TEXTS[i as usize]))
        .collect();
    assert_eq!(vocab.len(), train_tokens.len() + 2);
    for &v in corpus.valid_indices() {
        let length = corpus.lengths()[v as usize] as usize;
        let row = corpus.sequence(v as usize).unwrap();
        for (token, &id) in tokenize(SMALL_TEXTS[v as usize]).zip(row) {
            let expected = if train_tokens.contains(&token) {
                vocab.id(&token)
            } else {
                UNK_ID
            };
            assert_eq!(id, expected, "token {token:?} of validation record {v}");
        }
        assert!(
            row[length..].iter().all(|&id| id == PAD_ID),
            "padding after length"
        );
    }

    // Record 1: "bad bad bad film" truncated to 4 tokens.
    let row = corpus.sequence(1).unwrap();
    if vocab.id("bad") != UNK_ID {
        assert_eq!(&row[..3], &[vocab.id("bad"); 3]);
    }
    assert_eq!(corpus.sequence(7).unwrap(), &[PAD_ID; 4]);
}

#[test]
fn corpus_split_is_seeded() {
    let dir = TempDir::new("seeded");
    let path = dir.write("small.csv", SMALL_CSV);
    let a = TextCorpus::load(&path, &options(CachePolicy::Off)).unwrap();
    let b = TextCorpus::load(&path, &options(CachePolicy::Off)).unwrap();
    assert_eq!(a.valid_indices(), b.valid_indices());
    let other_seed = TextOptions {
        seed: 6,
        ..options(CachePolicy::Off)
    };
    let splits: Vec<Vec<u32>> = (0..8)
        .map(|seed| {
            let opts = TextOptions {
                seed,
                ..other_seed.clone()
            };
            TextCorpus::load(&path, &opts)
                .unwrap()
                .valid_indices()
                .to_vec()
        })
        .collect();
    assert!(splits.iter().any(|s| s != &splits[0]), "seed has no effect");
}

#[test]
fn fill_batch_copies_rows() {
    let dir = TempDir::new("text-batch");
    let path = dir.write("small.csv", SMALL_CSV);
    let corpus = TextCorpus::load(&path, &options(CachePolicy::Off)).unwrap();
    let mut ids = vec![9u32; 8];
    let mut lengths = [9u32; 2];
    let mut labels = [9u32; 2];
    corpus
        .fill_batch(&[1, 6], &mut ids, &mut lengths, &mut labels)
        .unwrap();
    assert_eq!(&ids[..4], corpus.sequence(1).unwrap());
    assert_eq!(&ids[4..], corpus.sequence(6).unwrap());
    assert_eq!(lengths, [4, 2]);
    assert_eq!(labels, [0, 2]);
    let err = corpus
        .fill_batch(&[8], &mut [0; 4], &mut [0], &mut [0])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn huge_record_index_is_out_of_range() {
    let dir = TempDir::new("text-huge-index");
    let path = dir.write("small.csv", SMALL_CSV);
    let corpus = TextCorpus::load(&path, &options(CachePolicy::Off)).unwrap();
    // index * max_len fits in usize, but the end of the record, max_len
    // ids later, does not.
    let index = usize::MAX / corpus.max_len();
    assert!(corpus.sequence(index).is_none());
    assert!(corpus.sequence(usize::MAX).is_none());
    let err = corpus
        .fill_batch(&[index], &mut [0; 4], &mut [0], &mut [0])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains(&index.to_string()), "{err}");
}

#[test]
fn cache_is_hit_then_rebuilt_on_change() {
    let dir = TempDir::new("cache");
    let path = dir.write("small.csv", SMALL_CSV);
    let opts = options(CachePolicy::BesideSource);

    let first = TextCorpus::load(&path, &opts).unwrap();
    assert_eq!(first.cache_status(), &CacheStatus::Rebuilt);
    let cache_path = first.cache_path().unwrap().to_path_buf();
    assert_eq!(cache_path, dir.join("small.csv.heft-cache"));

    let second = TextCorpus::load(&path, &opts).unwrap();
    assert_eq!(second.cache_status(), &CacheStatus::Hit);
    assert_eq!(second.ids(), first.ids());
    assert_eq!(second.lengths(), first.lengths());
    assert_eq!(second.labels(), first.labels());
    assert_eq!(second.train_indices(), first.train_indices());
    assert_eq!(second.classes(), first.classes());
    assert_eq!(second.vocab(), first.vocab());
    // `second` maps the cache file, which the steps below rewrite.
    drop(second);

    // Changing an option rebuilds.
    let longer = TextOptions {
        max_len: 5,
        ..opts.clone()
    };
    let third = TextCorpus::load(&path, &longer).unwrap();
    assert_eq!(third.cache_status(), &CacheStatus::Rebuilt);
    assert_eq!(third.max_len(), 5);

    // Changing the source (size and content) rebuilds.
    let mut grown = SMALL_CSV.to_vec();
    grown.extend_from_slice(b"9,neu,meh\n");
    std::fs::write(&path, &grown).unwrap();
    let fourth = TextCorpus::load(&path, &longer).unwrap();
    assert_eq!(fourth.cache_status(), &CacheStatus::Rebuilt);
    assert_eq!(fourth.len(), 9);

    // An edit that keeps the size and restores the modification time
    // rebuilds too.
    drop(fourth);
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let edited: Vec<u8> = grown
        .iter()
        .map(|&b| if b == b'm' { b'x' } else { b })
        .collect();
    assert_eq!(edited.len(), grown.len());
    std::fs::write(&path, &edited).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let edited_corpus = TextCorpus::load(&path, &longer).unwrap();
    assert_eq!(edited_corpus.cache_status(), &CacheStatus::Rebuilt);
    drop(edited_corpus);
    std::fs::write(&path, &grown).unwrap();
    let fourth = TextCorpus::load(&path, &longer).unwrap();

    // A damaged cache is rebuilt, not trusted.
    let mut bytes = std::fs::read(&cache_path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = 0xff;
    std::fs::write(&cache_path, &bytes).unwrap();
    let fifth = TextCorpus::load(&path, &longer).unwrap();
    assert_eq!(fifth.cache_status(), &CacheStatus::Rebuilt);
    assert_eq!(fifth.ids(), fourth.ids());

    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn cache_with_repeated_token_is_rebuilt() {
    let dir = TempDir::new("cache-repeated-token");
    let path = dir.write("small.csv", SMALL_CSV);
    let opts = options(CachePolicy::BesideSource);
    let first = TextCorpus::load(&path, &opts).unwrap();
    let cache_path = first.cache_path().unwrap().to_path_buf();

    // Overwrite a token in the cache's string block with an earlier token
    // of the same length, so the block keeps its size.
    let tokens = first.vocab().tokens();
    let (earlier, later) = (0..tokens.len())
        .flat_map(|i| (i + 1..tokens.len()).map(move |j| (i, j)))
        .find(|&(i, j)| tokens[i].len() == tokens[j].len())
        .expect("two vocabulary tokens of the same length");
    let encoded = |token: &str| -> Vec<u8> {
        let mut bytes = (token.len() as u32).to_ne_bytes().to_vec();
        bytes.extend_from_slice(token.as_bytes());
        bytes
    };
    let (from, to) = (encoded(&tokens[later]), encoded(&tokens[earlier]));
    let mut bytes = std::fs::read(&cache_path).unwrap();
    let positions: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, window)| *window == from.as_slice())
        .map(|(position, _)| position)
        .collect();
    assert_eq!(positions.len(), 1, "token {:?} in the cache", tokens[later]);
    bytes[positions[0]..positions[0] + to.len()].copy_from_slice(&to);
    std::fs::write(&cache_path, &bytes).unwrap();

    let second = TextCorpus::load(&path, &opts).unwrap();
    assert_eq!(second.cache_status(), &CacheStatus::Rebuilt);
    assert_eq!(second.vocab(), first.vocab());
    assert_eq!(second.ids(), first.ids());
}

#[test]
fn cache_in_chosen_directory() {
    let dir = TempDir::new("cache-dir");
    let path = dir.write("small.csv", SMALL_CSV);
    let cache_dir = dir.join("cache/nested");
    let opts = options(CachePolicy::Dir(cache_dir.clone()));
    let first = TextCorpus::load(&path, &opts).unwrap();
    assert_eq!(first.cache_status(), &CacheStatus::Rebuilt);
    assert!(first.cache_path().unwrap().starts_with(&cache_dir));
    let second = TextCorpus::load(&path, &opts).unwrap();
    assert_eq!(second.cache_status(), &CacheStatus::Hit);
    assert!(!dir.join("small.csv.heft-cache").exists());
}

#[test]
fn cache_dir_creation_failure_is_io_error() {
    let dir = TempDir::new("cache-fail");
    let path = dir.write("small.csv", SMALL_CSV);
    // A regular file where the cache directory should be.
    let blocker = dir.write("blocker", b"");
    let opts = options(CachePolicy::Dir(blocker.join("sub")));
    let err = TextCorpus::load(&path, &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
}

#[test]
fn missing_named_column() {
    let dir = TempDir::new("missing-name");
    let path = dir.write("c.csv", b"label,body\npos,fine\n");
    let err = assert_error(
        TextCorpus::load(&path, &options(CachePolicy::Off)),
        ErrorKind::MissingColumn,
        &path,
    );
    assert!(err.message().contains("\"text\""), "{err}");
}

#[test]
fn missing_field_in_record() {
    let dir = TempDir::new("missing-field");
    let path = dir.write("c.csv", b"label,text\npos,fine\nneg\nneu,ok\n");
    let err = assert_error(
        TextCorpus::load(&path, &options(CachePolicy::Off)),
        ErrorKind::MissingColumn,
        &path,
    );
    assert_eq!(
        err.location(),
        Some(Location::Record {
            record: 2,
            byte: 20
        })
    );
    assert!(err.message().contains("line 3"), "{err}");
}

#[test]
fn column_index_beyond_fields() {
    let dir = TempDir::new("column-index");
    let path = dir.write("c.csv", b"label,text\npos,fine\n");
    // (label column, text column, the message's missing column)
    let cases = [
        (0, usize::MAX, "the text column is 18446744073709551615"),
        (usize::MAX, 1, "the label column is 18446744073709551615"),
        (0, 2, "the text column is 2"),
    ];
    for (label_column, text_column, expected) in cases {
        let opts = TextOptions {
            label_column: Column::Index(label_column),
            text_column: Column::Index(text_column),
            ..options(CachePolicy::Off)
        };
        let err = assert_error(
            TextCorpus::load(&path, &opts),
            ErrorKind::MissingColumn,
            &path,
        );
        assert_eq!(
            err.location(),
            Some(Location::Record {
                record: 1,
                byte: 11
            })
        );
        assert!(err.message().contains(expected), "{err}");
    }
}

#[test]
fn invalid_utf8_names_record() {
    let dir = TempDir::new("utf8");
    let path = dir.write("c.csv", b"label,text\npos,fine\nneg,caf\xe9 bad\n");
    let err = assert_error(
        TextCorpus::load(&path, &options(CachePolicy::Off)),
        ErrorKind::InvalidUtf8,
        &path,
    );
    assert!(
        matches!(err.location(), Some(Location::Record { record: 2, .. })),
        "{err}"
    );
    let lossy = TextOptions {
        lossy_utf8: true,
        ..options(CachePolicy::Off)
    };
    let corpus = TextCorpus::load(&path, &lossy).unwrap();
    assert_eq!(corpus.len(), 2);
}

#[test]
fn empty_corpus() {
    let dir = TempDir::new("empty-corpus");
    let header_only = dir.write("h.csv", b"label,text\n\r\n");
    assert_error(
        TextCorpus::load(&header_only, &options(CachePolicy::Off)),
        ErrorKind::EmptyCorpus,
        &header_only,
    );
    let empty = dir.write("e.csv", b"");
    assert_error(
        TextCorpus::load(&empty, &options(CachePolicy::Off)),
        ErrorKind::EmptyCorpus,
        &empty,
    );
}

#[test]
fn malformed_csv_names_file() {
    let dir = TempDir::new("malformed");
    let path = dir.write("m.csv", b"label,text\npos,\"never closed\n");
    assert_error(
        TextCorpus::load(&path, &options(CachePolicy::Off)),
        ErrorKind::Malformed,
        &path,
    );
}

#[test]
fn invalid_options_are_rejected() {
    let dir = TempDir::new("bad-options");
    let path = dir.write("s.csv", SMALL_CSV);
    let zero_len = TextOptions {
        max_len: 0,
        ..options(CachePolicy::Off)
    };
    assert_error(
        TextCorpus::load(&path, &zero_len),
        ErrorKind::InvalidArgument,
        &path,
    );
    let share = TextOptions {
        valid_share: 1.0,
        ..options(CachePolicy::Off)
    };
    assert_error(
        TextCorpus::load(&path, &share),
        ErrorKind::InvalidArgument,
        &path,
    );
}

#[test]
fn valid_share_leaving_no_training_records() {
    let dir = TempDir::new("no-training-records");
    let one_record = dir.write("one.csv", b"label,text\npos,hi\n");
    let two_records = dir.write("two.csv", b"label,text\npos,hi\nneg,bye\n");
    // (file, records, share): round(records * share) is every record.
    for (path, count, share) in [
        (&one_record, 1, 0.5),
        (&two_records, 2, 0.75),
        (&two_records, 2, 0.99),
    ] {
        let opts = TextOptions {
            valid_share: share,
            cache: CachePolicy::Off,
            ..TextOptions::default()
        };
        let err = assert_error(
            TextCorpus::load(path, &opts),
            ErrorKind::InvalidArgument,
            path,
        );
        let expected =
            format!("valid_share {share} holds out round({count} * {share}) = {count} of them");
        assert!(err.message().contains(&expected), "{err}");
        assert!(err.message().contains("lower valid_share"), "{err}");
    }

    // A share that leaves one record for training is accepted.
    let opts = TextOptions {
        valid_share: 0.7,
        cache: CachePolicy::Off,
        ..TextOptions::default()
    };
    let corpus = TextCorpus::load(&two_records, &opts).unwrap();
    assert_eq!(corpus.train_indices().len(), 1);
    assert_eq!(corpus.valid_indices().len(), 1);
}

#[test]
fn tab_delimited_without_header() {
    let dir = TempDir::new("tsv");
    let path = dir.write("t.tsv", b"b\tHello world\na\thello\n");
    let opts = TextOptions {
        delimiter: b'\t',
        has_header: false,
        max_len: 3,
        valid_share: 0.0,
        cache: CachePolicy::Off,
        ..TextOptions::default()
    };
    let corpus = TextCorpus::load(&path, &opts).unwrap();
    assert_eq!(corpus.classes(), ["a", "b"]);
    assert_eq!(corpus.labels(), [1, 0]);
    assert_eq!(corpus.vocab().tokens(), ["hello", "world"]);
    assert_eq!(corpus.sequence(0).unwrap(), &[2, 3, PAD_ID]);
}

#[test]
fn embedded_sentiment_loads_balanced() {
    let dir = TempDir::new("embedded-sentiment");
    let opts = TextOptions {
        cache: CachePolicy::Dir(dir.path().to_path_buf()),
        ..embedded::sentiment_options()
    };
    let corpus = embedded::sentiment(&opts).unwrap();
    assert_eq!(corpus.len(), 6_000);
    assert_eq!(corpus.classes(), ["negative", "neutral", "positive"]);
    let mut counts = [0usize; 3];
    for &label in corpus.labels() {
        counts[label as usize] += 1;
    }
    assert_eq!(counts, [2_000; 3]);
    assert_eq!(corpus.valid_indices().len(), 1_200);
    assert!(
        corpus.vocab().len() > 5_000,
        "vocabulary of {}",
        corpus.vocab().len()
    );
    let reloaded = embedded::sentiment(&opts).unwrap();
    assert_eq!(reloaded.cache_status(), &CacheStatus::Hit);
}

#[test]
fn byte_order_mark_before_header_is_skipped() {
    let dir = TempDir::new("bom");
    let mut data = b"\xEF\xBB\xBF".to_vec();
    data.extend_from_slice(SMALL_CSV);
    let path = dir.write("bom.csv", &data);
    let corpus = TextCorpus::load(&path, &options(CachePolicy::Off)).unwrap();
    assert_eq!(corpus.len(), 8);
    assert_eq!(corpus.classes(), ["neg", "neu", "pos"]);
}

#[test]
fn vocabulary_below_reserved_ids_rejected() {
    let dir = TempDir::new("tiny-vocab");
    let path = dir.write("small.csv", SMALL_CSV);
    for max_vocab in [0, 1] {
        let opts = TextOptions {
            max_vocab,
            ..options(CachePolicy::Off)
        };
        let err = TextCorpus::load(&path, &opts).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(
            err.to_string().contains("max_vocab must be at least 2"),
            "{err}"
        );
    }
}

/// An IDX or text file that cannot be opened is reported with the
/// operating system's reason, not only the failed action.
#[test]
fn io_errors_give_the_reason() {
    let dir = TempDir::new("io-reason");
    let missing = dir.join("missing.csv");
    let reason = std::fs::metadata(&missing).unwrap_err().to_string();

    let text = TextCorpus::load(&missing, &TextOptions::default());
    let error = assert_error(text, ErrorKind::Io, &missing);
    assert!(error.to_string().contains(&reason), "{error}");

    let idx = heft_data::IdxFile::open(&missing);
    let error = assert_error(idx, ErrorKind::Io, &missing);
    assert!(error.to_string().contains(&reason), "{error}");
}

/// A FIFO given as a text corpus or an IDX file is rejected at once,
/// rather than blocking until a writer appears. The load runs on its own
/// thread so that a regression fails the test instead of hanging it.
#[test]
fn fifo_rejected_without_blocking() {
    let dir = TempDir::new("fifo");
    let fifo = dir.join("corpus.csv");
    let mkfifo_status = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !mkfifo_status.is_ok_and(|status| status.success()) {
        println!("skipped: mkfifo is not available");
        return;
    }
    for loader in ["text", "idx"] {
        let path = fifo.clone();
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let error = match loader {
                "text" => TextCorpus::load(&path, &TextOptions::default()).map(|_| ()),
                _ => heft_data::IdxFile::open(&path).map(|_| ()),
            };
            let _ = send.send(error);
        });
        let result = receive
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the {loader} loader blocked on a FIFO"));
        let error = assert_error(result, ErrorKind::Io, &fifo);
        assert!(
            error.to_string().contains("not a regular file"),
            "{loader}: {error}"
        );
    }
}

/// A FIFO where a dataset directory should hold an IDX file is named as
/// what it is, not reported as a missing file.
#[test]
fn fifo_in_idx_directory_named() {
    let dir = TempDir::new("fifo-dir");
    let fifo = dir.join("train-images-idx3-ubyte");
    let mkfifo_status = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !mkfifo_status.is_ok_and(|status| status.success()) {
        println!("skipped: mkfifo is not available");
        return;
    }
    let result = heft_data::idx::find_in_dir(dir.path(), "train-images-idx3-ubyte");
    let error = assert_error(result, ErrorKind::Io, &fifo);
    assert!(error.to_string().contains("not a regular file"), "{error}");
    // A directory under the name is named too.
    std::fs::create_dir(dir.join("t10k-images-idx3-ubyte")).unwrap();
    let result = heft_data::idx::find_in_dir(dir.path(), "t10k-images-idx3-ubyte");
    let error = assert_error(result, ErrorKind::Io, &dir.join("t10k-images-idx3-ubyte"));
    assert!(error.to_string().contains("directory"), "{error}");
}
