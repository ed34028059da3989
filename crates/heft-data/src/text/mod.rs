//! Text classification data from delimited files.
//!
//! [`TextCorpus::load`] reads a delimited file with a label column and a
//! text column and splits its records into training and validation parts
//! ([`crate::split_indices`]). It builds a [`Vocab`] on the training part
//! only and encodes every text as a fixed-length sequence of token ids. The
//! encoded corpus is cached in a binary file and memory mapped on later
//! loads; see [`CachePolicy`].

mod cache;
pub mod delimited;
mod vocab;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use self::cache::{CacheBytes, Encoded, Layout, SourceStamp};
use self::delimited::DelimitedReader;
pub use self::vocab::{tokenize, Vocab, PAD_ID, RESERVED_IDS, UNK_ID};
use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::write_bytes_atomic;
use crate::mmap::{self, Backing};
use crate::split::{split_indices, DEFAULT_VALID_SHARE};

/// A column of a delimited file, by zero-based position or by header name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    /// Zero-based column position.
    Index(usize),
    /// Column name as written in the header line (needs a header).
    Name(String),
}

/// Location of the encoded-corpus cache file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum CachePolicy {
    /// Beside the source, as `<source file name>.heft-cache`.
    #[default]
    BesideSource,
    /// In the given directory (created if missing), as
    /// `<source file name>-<hash of the source path>.heft-cache`.
    Dir(PathBuf),
    /// No cache: encode the source on every load.
    Off,
}

/// Options of [`TextCorpus::load`]. All of them except `cache` are part of
/// the cache key, so changing one rebuilds the cache.
#[derive(Clone, Debug, PartialEq)]
pub struct TextOptions {
    /// Field delimiter byte; default `b','`.
    pub delimiter: u8,
    /// Whether the first record is a header line; default `true`.
    pub has_header: bool,
    /// Column holding the class label; default index 0.
    pub label_column: Column,
    /// Column holding the text; default index 1.
    pub text_column: Column,
    /// Tokens kept per sequence; longer texts are truncated to their first
    /// `max_len` tokens and shorter ones padded with [`PAD_ID`]; default 64.
    pub max_len: usize,
    /// Minimum number of occurrences in the training part for a token to
    /// enter the vocabulary; default 1.
    pub min_count: u64,
    /// Maximum vocabulary size, the two reserved ids included; default 20,000.
    pub max_vocab: usize,
    /// Share of records held out for validation, in `[0, 1)`; default 0.2.
    /// [`TextCorpus::load`] rejects a share that holds out every record of
    /// the file, `round(records * valid_share) == records`.
    pub valid_share: f64,
    /// Seed of the validation split; default 0.
    pub seed: u64,
    /// Whether invalid UTF-8 is replaced by U+FFFD instead of being an
    /// [`ErrorKind::InvalidUtf8`] error; default `false`.
    pub lossy_utf8: bool,
    /// Location of the cache file; default beside the source.
    pub cache: CachePolicy,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            delimiter: b',',
            has_header: true,
            label_column: Column::Index(0),
            text_column: Column::Index(1),
            max_len: 64,
            min_count: 1,
            max_vocab: 20_000,
            valid_share: DEFAULT_VALID_SHARE,
            seed: 0,
            lossy_utf8: false,
            cache: CachePolicy::BesideSource,
        }
    }
}

impl TextOptions {
    /// Serialises the options that determine the encoding, as the cache key.
    fn fingerprint(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(self.delimiter);
        out.push(u8::from(self.has_header));
        out.push(u8::from(self.lossy_utf8));
        for column in [&self.label_column, &self.text_column] {
            match column {
                Column::Index(i) => {
                    out.push(0);
                    out.extend_from_slice(&(*i as u64).to_le_bytes());
                }
                Column::Name(name) => {
                    out.push(1);
                    out.extend_from_slice(&(name.len() as u64).to_le_bytes());
                    out.extend_from_slice(name.as_bytes());
                }
            }
        }
        for value in [
            self.max_len as u64,
            self.min_count,
            self.max_vocab as u64,
            self.valid_share.to_bits(),
            self.seed,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out
    }

    fn validate(&self) -> Result<()> {
        if self.max_len == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "max_len must be at least 1",
            ));
        }
        if self.max_vocab < 2 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "max_vocab must be at least 2 (ids 0 and 1 are reserved for padding and unknown), got {}",
                    self.max_vocab
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.valid_share) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("valid_share must be in [0, 1), got {}", self.valid_share),
            ));
        }
        Ok(())
    }
}

/// Outcome of the cache lookup in [`TextCorpus::load`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// A valid cache was found and memory mapped; the source was not parsed.
    Hit,
    /// The corpus was encoded from the source and the cache (re)written.
    Rebuilt,
    /// The corpus was encoded from the source but the cache could not be
    /// written. The message gives the reason.
    WriteFailed(String),
    /// Caching is off ([`CachePolicy::Off`]).
    Disabled,
}

/// An encoded text classification corpus.
///
/// Record `i` has label [`labels`](TextCorpus::labels)`()[i]` (an index into
/// [`classes`](TextCorpus::classes)), a true length
/// [`lengths`](TextCorpus::lengths)`()[i]` (at most `max_len`, and 0 for a
/// text with no tokens) and `max_len` token ids, padded with [`PAD_ID`].
/// Class ids follow the byte order of the label strings, so `negative`,
/// `neutral`, `positive` get 0, 1, 2 whatever order the file lists them in.
#[derive(Debug)]
pub struct TextCorpus {
    storage: CacheBytes,
    layout: Layout,
    vocab: Vocab,
    cache_status: CacheStatus,
    cache_path: Option<PathBuf>,
}

impl TextCorpus {
    /// Loads and encodes a delimited file, or maps its cache when the cache
    /// matches the file's size, modification time and content hash and the
    /// options.
    pub fn load(path: impl AsRef<Path>, options: &TextOptions) -> Result<TextCorpus> {
        let path = path.as_ref();
        options.validate().map_err(|e| e.in_file(path))?;
        let stamp = SourceStamp::of(path)?;
        let fingerprint = options.fingerprint();
        let cache_path = cache_path(path, &options.cache)?;

        if let Some(cache_path) = &cache_path {
            if let Some((storage, layout)) = cache::load(cache_path, stamp, &fingerprint) {
                return Ok(TextCorpus::from_parts(
                    storage,
                    layout,
                    CacheStatus::Hit,
                    Some(cache_path.clone()),
                ));
            }
        }

        let source = mmap::load(path, Backing::Map)?;
        let encoded = encode(&source, options).map_err(|e| e.in_file(path))?;
        let words = cache::serialize(stamp, &fingerprint, &encoded);
        let status = match &cache_path {
            None => CacheStatus::Disabled,
            Some(cache_path) => {
                match write_bytes_atomic(cache_path, bytemuck::cast_slice(&words)) {
                    Ok(()) => CacheStatus::Rebuilt,
                    Err(e) => CacheStatus::WriteFailed(format!(
                        "{e}: {}",
                        std::error::Error::source(&e)
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    )),
                }
            }
        };
        let storage = CacheBytes::Words(words);
        let layout = cache::parse(storage.bytes(), None).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "encoded corpus failed its own consistency check",
            )
            .in_file(path)
        })?;
        Ok(TextCorpus::from_parts(storage, layout, status, cache_path))
    }

    fn from_parts(
        storage: CacheBytes,
        mut layout: Layout,
        cache_status: CacheStatus,
        cache_path: Option<PathBuf>,
    ) -> TextCorpus {
        let vocab = Vocab::from_tokens(std::mem::take(&mut layout.tokens));
        TextCorpus {
            storage,
            layout,
            vocab,
            cache_status,
            cache_path,
        }
    }

    fn words(&self, range: &std::ops::Range<usize>) -> &[u32] {
        cache::words(self.storage.bytes(), range)
    }

    /// Returns the number of records.
    pub fn len(&self) -> usize {
        self.labels().len()
    }

    /// Returns whether the corpus has no records (never true after a
    /// successful load: an empty corpus is an error).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the sequence length every record is padded or truncated to.
    pub fn max_len(&self) -> usize {
        self.layout.max_len
    }

    /// Returns the class names; class id `i` is `classes()[i]`.
    pub fn classes(&self) -> &[String] {
        &self.layout.classes
    }

    /// Returns the vocabulary built on the training part.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Returns the record indices of the training part, ascending.
    pub fn train_indices(&self) -> &[u32] {
        self.words(&self.layout.train)
    }

    /// Returns the record indices of the validation part, ascending.
    pub fn valid_indices(&self) -> &[u32] {
        self.words(&self.layout.valid)
    }

    /// Returns the class id of every record.
    pub fn labels(&self) -> &[u32] {
        self.words(&self.layout.labels)
    }

    /// Returns the true (unpadded) length of every record.
    pub fn lengths(&self) -> &[u32] {
        self.words(&self.layout.lengths)
    }

    /// Returns all token ids, row-major `len() x max_len()`.
    pub fn ids(&self) -> &[u32] {
        self.words(&self.layout.ids)
    }

    /// Returns the padded token ids of record `index`, or `None` if out of
    /// range.
    pub fn sequence(&self, index: usize) -> Option<&[u32]> {
        let start = index.checked_mul(self.max_len())?;
        let end = start.checked_add(self.max_len())?;
        self.ids().get(start..end)
    }

    /// Returns whether the corpus came from the cache or was rebuilt.
    pub fn cache_status(&self) -> &CacheStatus {
        &self.cache_status
    }

    /// Returns the cache file path, or `None` when caching is off.
    pub fn cache_path(&self) -> Option<&Path> {
        self.cache_path.as_deref()
    }

    /// Copies the given records into a row-major `indices.len() x max_len()`
    /// id buffer plus length and label buffers.
    ///
    /// Errors with [`ErrorKind::InvalidArgument`] if a buffer has the wrong
    /// length or an index is out of range; the buffers are then unspecified.
    pub fn fill_batch(
        &self,
        indices: &[usize],
        ids: &mut [u32],
        lengths: &mut [u32],
        labels: &mut [u32],
    ) -> Result<()> {
        let rows = indices.len();
        let width = self.max_len();
        if ids.len() != rows.saturating_mul(width) || lengths.len() != rows || labels.len() != rows
        {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "batch of {rows} records needs {} ids, {rows} lengths and {rows} labels, \
                     got {}, {} and {}",
                    rows.saturating_mul(width),
                    ids.len(),
                    lengths.len(),
                    labels.len()
                ),
            ));
        }
        let (all_lengths, all_labels) = (self.lengths(), self.labels());
        for (row, &index) in indices.iter().enumerate() {
            let sequence = self.sequence(index).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "record index {index} is out of range for {} records",
                        self.len()
                    ),
                )
            })?;
            ids[row * width..(row + 1) * width].copy_from_slice(sequence);
            lengths[row] = all_lengths[index];
            labels[row] = all_labels[index];
        }
        Ok(())
    }
}

/// Returns the cache file path for `source` under `policy`.
fn cache_path(source: &Path, policy: &CachePolicy) -> Result<Option<PathBuf>> {
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "corpus".to_string());
    match policy {
        CachePolicy::Off => Ok(None),
        CachePolicy::BesideSource => Ok(Some(source.with_file_name(format!("{name}.heft-cache")))),
        CachePolicy::Dir(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(dir, "create cache directory", e))?;
            let absolute = std::fs::canonicalize(source)
                .map_err(|e| Error::io(source, "resolve source path", e))?;
            let hash = crate::Fnv1a::of(absolute.to_string_lossy().as_bytes());
            Ok(Some(dir.join(format!("{name}-{hash:016x}.heft-cache"))))
        }
    }
}

/// Finds the position of `column` given the header fields, if any.
fn resolve_column(
    column: &Column,
    header: Option<&[std::borrow::Cow<'_, [u8]>]>,
    role: &str,
) -> Result<usize> {
    match column {
        Column::Index(i) => Ok(*i),
        Column::Name(name) => {
            let Some(header) = header else {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("{role} column is named {name:?} but the options say the file has no header"),
                ));
            };
            header
                .iter()
                .position(|field| field.as_ref() == name.as_bytes())
                .ok_or_else(|| {
                    let names: Vec<String> = header
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect();
                    Error::new(
                        ErrorKind::MissingColumn,
                        format!("header has no {role} column {name:?}; its columns are {names:?}"),
                    )
                    .at_record(0, 0)
                })
        }
    }
}

/// Parses the delimited source and encodes it.
fn encode(source: &[u8], options: &TextOptions) -> Result<Encoded> {
    let mut reader = DelimitedReader::new(source, options.delimiter);
    let header = if options.has_header {
        match reader.next() {
            Some(record) => Some(record?),
            None => {
                return Err(Error::new(
                    ErrorKind::EmptyCorpus,
                    "file has no header line and no records",
                ))
            }
        }
    } else {
        None
    };
    let header_fields = header.as_ref().map(|h| h.fields.as_slice());
    let label_col = resolve_column(&options.label_column, header_fields, "label")?;
    let text_col = resolve_column(&options.text_column, header_fields, "text")?;

    let mut label_strings = Vec::new();
    let mut texts = Vec::new();
    for record in reader {
        let record = record?;
        // Each position is compared with the field count as it is, because
        // adding 1 to it would overflow for Column::Index(usize::MAX).
        for (role, column) in [("label", label_col), ("text", text_col)] {
            if column >= record.fields.len() {
                return Err(Error::new(
                    ErrorKind::MissingColumn,
                    format!(
                        "record on line {} has {} fields but the {role} column is {column} \
                         (counting from 0); check {role}_column and the delimiter",
                        record.line,
                        record.fields.len()
                    ),
                )
                .at_record(record.number, record.offset));
            }
        }
        let decode = |index: usize, role: &str| -> Result<String> {
            let field = &record.fields[index];
            match std::str::from_utf8(field) {
                Ok(s) => Ok(s.to_owned()),
                Err(_) if options.lossy_utf8 => Ok(String::from_utf8_lossy(field).into_owned()),
                Err(e) => Err(Error::new(
                    ErrorKind::InvalidUtf8,
                    format!(
                        "{role} field (column {index}) on line {} is not valid UTF-8 \
                         (invalid byte at position {} of the field)",
                        record.line,
                        e.valid_up_to()
                    ),
                )
                .at_record(record.number, record.offset)),
            }
        };
        label_strings.push(decode(label_col, "label")?);
        texts.push(decode(text_col, "text")?);
    }
    if texts.is_empty() {
        return Err(Error::new(
            ErrorKind::EmptyCorpus,
            "file has no data records",
        ));
    }
    let count = cache::to_u32(texts.len(), "record count")?;

    let classes: Vec<String> = label_strings
        .iter()
        .cloned()
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    let class_ids: HashMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let labels: Vec<u32> = label_strings
        .iter()
        .map(|l| class_ids[l.as_str()])
        .collect();

    let split = split_indices(count as usize, options.valid_share, options.seed)?;
    if split.train.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "the file has {count} {noun} and valid_share {share} holds out \
                 round({count} * {share}) = {valid} of them for validation, which leaves \
                 none for training; lower valid_share or add records",
                noun = if count == 1 { "record" } else { "records" },
                share = options.valid_share,
                valid = split.valid.len()
            ),
        ));
    }
    let tokenized: Vec<Vec<String>> = texts.iter().map(|t| tokenize(t).collect()).collect();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for &i in &split.train {
        for token in &tokenized[i] {
            *counts.entry(token.clone()).or_insert(0) += 1;
        }
    }
    let vocab = Vocab::from_counts(&counts, options.min_count, options.max_vocab);

    let max_len = options.max_len;
    cache::to_u32(max_len, "max_len")?;
    let total = texts.len().checked_mul(max_len).ok_or_else(|| {
        Error::new(
            ErrorKind::SizeOverflow,
            "record count times max_len overflows usize",
        )
    })?;
    let mut ids = vec![PAD_ID; total];
    let mut lengths = Vec::with_capacity(texts.len());
    for (row, tokens) in ids.chunks_exact_mut(max_len).zip(&tokenized) {
        let kept = tokens.len().min(max_len);
        for (slot, token) in row.iter_mut().zip(tokens) {
            *slot = vocab.id(token);
        }
        lengths.push(kept as u32);
    }

    let to_u32s = |v: &[usize]| v.iter().map(|&i| i as u32).collect::<Vec<u32>>();
    Ok(Encoded {
        classes,
        tokens: vocab.tokens().to_vec(),
        train: to_u32s(&split.train),
        valid: to_u32s(&split.valid),
        labels,
        lengths,
        ids,
        max_len,
    })
}
