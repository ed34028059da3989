//! Binary cache of an encoded text corpus.
//!
//! The cache is a machine-local file in native byte order:
//!
//! | field | type |
//! |---|---|
//! | magic `HEFTTXC1` | 8 bytes |
//! | byte-order marker `0x01020304`, format version | `u32`, `u32` |
//! | source length, mtime seconds, mtime nanoseconds, content hash | `u64`, `i64`, `u32`, `u64` |
//! | options length, record count, max length, class count, token count, train count, valid count, string block length, zero | 9 x `u32` |
//! | options fingerprint | options length bytes |
//! | class names then vocabulary tokens, each `u32` length + UTF-8 | string block |
//! | zero padding to a multiple of 4 | |
//! | train indices, valid indices, labels, lengths, token ids | `u32` arrays |
//!
//! A cache whose marker, version, source stamp or options differ, or whose
//! sizes or values do not check out, is treated as stale and rebuilt; it is
//! never an error.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::mmap::{self, Backing, Bytes};

const MAGIC: &[u8; 8] = b"HEFTTXC1";
const BYTE_ORDER_MARKER: u32 = 0x0102_0304;
const FORMAT_VERSION: u32 = 2;
const FIXED_HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8 + 4 + 8 + 9 * 4;

/// Size, modification time and a hash of the contents of a source file,
/// the key that ties a cache to the file it was built from. The hash
/// catches an edit that keeps the size and restores the modification
/// time. Reading the file for it costs far less than training on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SourceStamp {
    pub len: u64,
    pub mtime_secs: i64,
    pub mtime_nanos: u32,
    pub hash: u64,
}

impl SourceStamp {
    pub(crate) fn of(path: &Path) -> Result<SourceStamp> {
        crate::mmap::check_regular_file(path)?;
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "read file metadata", e))?;
        let (mtime_secs, mtime_nanos) = match meta.modified() {
            Ok(time) => match time.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
                Err(e) => (
                    -(e.duration().as_secs() as i64),
                    e.duration().subsec_nanos(),
                ),
            },
            // NOTE: where the platform has no mtime, only the length ties
            // the cache to its source.
            Err(_) => (0, 0),
        };
        let contents = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
        Ok(SourceStamp {
            len: meta.len(),
            mtime_secs,
            mtime_nanos,
            hash: crate::Fnv1a::of(&contents),
        })
    }
}

/// Everything a corpus consists of, as built from the source.
pub(crate) struct Encoded {
    pub classes: Vec<String>,
    pub tokens: Vec<String>,
    pub train: Vec<u32>,
    pub valid: Vec<u32>,
    pub labels: Vec<u32>,
    pub lengths: Vec<u32>,
    pub ids: Vec<u32>,
    pub max_len: usize,
}

/// Cache bytes, aligned for `u32` access.
#[derive(Debug)]
pub(crate) enum CacheBytes {
    /// A memory map (page aligned) of a cache file.
    Mapped(Bytes),
    /// Words in memory; holds a freshly built corpus or a copy of a cache
    /// file that could not be mapped.
    Words(Vec<u32>),
}

impl CacheBytes {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            CacheBytes::Mapped(bytes) => bytes,
            CacheBytes::Words(words) => bytemuck::cast_slice(words),
        }
    }
}

/// A parsed cache: the bytes plus where each part lies in them.
#[derive(Debug)]
pub(crate) struct Layout {
    pub classes: Vec<String>,
    pub tokens: Vec<String>,
    pub max_len: usize,
    pub train: Range<usize>,
    pub valid: Range<usize>,
    pub labels: Range<usize>,
    pub lengths: Range<usize>,
    pub ids: Range<usize>,
}

/// Serialises a corpus into the cache format, as words so that it can serve
/// directly as the corpus's storage.
pub(crate) fn serialize(stamp: SourceStamp, options: &[u8], corpus: &Encoded) -> Vec<u32> {
    let mut strings = Vec::new();
    for s in corpus.classes.iter().chain(&corpus.tokens) {
        strings.extend_from_slice(&(s.len() as u32).to_ne_bytes());
        strings.extend_from_slice(s.as_bytes());
    }
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    for word in [BYTE_ORDER_MARKER, FORMAT_VERSION] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out.extend_from_slice(&stamp.len.to_ne_bytes());
    out.extend_from_slice(&stamp.mtime_secs.to_ne_bytes());
    out.extend_from_slice(&stamp.mtime_nanos.to_ne_bytes());
    out.extend_from_slice(&stamp.hash.to_ne_bytes());
    for word in [
        options.len(),
        corpus.labels.len(),
        corpus.max_len,
        corpus.classes.len(),
        corpus.tokens.len(),
        corpus.train.len(),
        corpus.valid.len(),
        strings.len(),
        0,
    ] {
        out.extend_from_slice(&(word as u32).to_ne_bytes());
    }
    out.extend_from_slice(options);
    out.extend_from_slice(&strings);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    let mut words: Vec<u32> = out
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    for array in [
        &corpus.train,
        &corpus.valid,
        &corpus.labels,
        &corpus.lengths,
        &corpus.ids,
    ] {
        words.extend_from_slice(array);
    }
    words
}

/// Loads a cache file, returning `None` if it is missing, stale or invalid.
pub(crate) fn load(
    path: &Path,
    stamp: SourceStamp,
    options: &[u8],
) -> Option<(CacheBytes, Layout)> {
    let bytes = mmap::load(path, Backing::Map).ok()?;
    let aligned = (bytes.as_ptr() as usize).is_multiple_of(4);
    let storage = if aligned && bytes.is_mapped() {
        CacheBytes::Mapped(bytes)
    } else {
        // Owned bytes have no alignment guarantee: copy them into words.
        if bytes.len() % 4 != 0 {
            return None;
        }
        CacheBytes::Words(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    };
    let layout = parse(storage.bytes(), Some((stamp, options)))?;
    Some((storage, layout))
}

/// Reads fixed-size fields from the front of a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let slice = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(b);
        Some(u64::from_ne_bytes(raw))
    }

    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).ok()
    }

    fn u32_range(&mut self, count: usize) -> Option<Range<usize>> {
        let start = self.pos;
        self.take(count.checked_mul(4)?)?;
        Some(start..self.pos)
    }
}

/// Parses and validates cache bytes. With `expected` given, the source stamp
/// and options must match too.
pub(crate) fn parse(bytes: &[u8], expected: Option<(SourceStamp, &[u8])>) -> Option<Layout> {
    if bytes.len() < FIXED_HEADER_LEN || !(bytes.as_ptr() as usize).is_multiple_of(4) {
        return None;
    }
    let mut cur = Cursor { bytes, pos: 0 };
    if cur.take(8)? != MAGIC || cur.u32()? != BYTE_ORDER_MARKER || cur.u32()? != FORMAT_VERSION {
        return None;
    }
    let stamp = SourceStamp {
        len: cur.u64()?,
        mtime_secs: cur.u64()? as i64,
        mtime_nanos: cur.u32()?,
        hash: cur.u64()?,
    };
    let options_len = cur.u32()? as usize;
    let count = cur.u32()? as usize;
    let max_len = cur.u32()? as usize;
    let class_count = cur.u32()? as usize;
    let token_count = cur.u32()? as usize;
    let train_count = cur.u32()? as usize;
    let valid_count = cur.u32()? as usize;
    let strings_len = cur.u32()? as usize;
    let _zero = cur.u32()?;
    let options = cur.take(options_len)?;
    if let Some((expected_stamp, expected_options)) = expected {
        if stamp != expected_stamp || options != expected_options {
            return None;
        }
    }

    let strings_end = cur.pos.checked_add(strings_len)?;
    let mut classes = Vec::with_capacity(class_count.min(1 << 16));
    for _ in 0..class_count {
        classes.push(cur.string()?);
    }
    let mut tokens = Vec::with_capacity(token_count.min(1 << 20));
    for _ in 0..token_count {
        tokens.push(cur.string()?);
    }
    if cur.pos != strings_end {
        return None;
    }
    cur.pos = cur.pos.checked_add(3)? / 4 * 4;

    let layout = Layout {
        train: cur.u32_range(train_count)?,
        valid: cur.u32_range(valid_count)?,
        labels: cur.u32_range(count)?,
        lengths: cur.u32_range(count)?,
        ids: cur.u32_range(count.checked_mul(max_len)?)?,
        classes,
        tokens,
        max_len,
    };
    if cur.pos != bytes.len() || train_count.checked_add(valid_count)? != count {
        return None;
    }
    validate_values(bytes, &layout).then_some(layout)
}

/// Checks every stored value against its range, so that a damaged cache can
/// never hand out an index that panics later.
fn validate_values(bytes: &[u8], layout: &Layout) -> bool {
    let words = |range: &Range<usize>| -> &[u32] {
        bytemuck::try_cast_slice(&bytes[range.clone()]).unwrap_or(&[])
    };
    let count = layout.labels.len() / 4;
    let vocab_len = (layout.tokens.len() + super::vocab::RESERVED_IDS) as u64;
    let in_split = words(&layout.train)
        .iter()
        .chain(words(&layout.valid))
        .all(|&i| (i as usize) < count);
    let labels_ok = words(&layout.labels)
        .iter()
        .all(|&l| (l as usize) < layout.classes.len());
    let lengths_ok = words(&layout.lengths)
        .iter()
        .all(|&n| (n as usize) <= layout.max_len);
    let ids_ok = words(&layout.ids)
        .iter()
        .all(|&id| u64::from(id) < vocab_len);
    // Vocab::from_tokens drops a repeated token, so the vocabulary would be
    // shorter than the stored ids assume. Such a cache is damaged.
    let mut seen = HashSet::with_capacity(layout.tokens.len());
    let tokens_unique = layout.tokens.iter().all(|token| seen.insert(token));
    in_split && labels_ok && lengths_ok && ids_ok && tokens_unique
}

/// Returns the `u32` words of `range` in `bytes`, which `parse` checked to
/// be aligned and in bounds.
pub(crate) fn words<'a>(bytes: &'a [u8], range: &Range<usize>) -> &'a [u32] {
    bytes
        .get(range.clone())
        .and_then(|b| bytemuck::try_cast_slice(b).ok())
        .unwrap_or(&[])
}

/// Converts an encoding count to `u32`, the width the cache stores.
pub(crate) fn to_u32(value: usize, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} is {value}, above the cache limit of {}", u32::MAX),
        )
    })
}
