//! The IDX format of the MNIST family: reader, writer and file lookup.
//!
//! An IDX file is a header followed by a dense row-major array:
//!
//! | bytes | content |
//! |---|---|
//! | 0..2 | `00 00` |
//! | 2 | element type code ([`DType::code`]) |
//! | 3 | rank `ndim` |
//! | 4..4+4·ndim | dimensions, big-endian `u32`, outermost first |
//! | rest | elements, big-endian, exactly the product of the dimensions |
//!
//! [`IdxHeader::parse`] checks all of this against the length of the file
//! before any element is read. Files whose name ends in `.gz` are
//! decompressed once into memory; other files are memory mapped (see
//! [`Backing`]). Byte offsets in errors about a `.gz` file count bytes of
//! the decompressed stream.

use std::fmt;
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::write_atomic;
use crate::mmap::{self, Backing, Bytes};

/// The first two bytes of every gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The two zero bytes that open every IDX magic number.
pub const IDX_MAGIC_PREFIX: [u8; 2] = [0x00, 0x00];

/// Length of the magic number (prefix, type code, rank).
const MAGIC_LEN: usize = 4;

/// Largest capacity reserved up front from a gzip trailer's size field.
/// The field is the size modulo 2^32 and untrusted, so it is only a hint.
const MAX_GZIP_PREALLOC: usize = 1 << 30;

/// Element type of an IDX file, named by its type code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// Unsigned byte, code `0x08`.
    U8,
    /// Signed byte, code `0x09`.
    I8,
    /// Big-endian `i16`, code `0x0B`.
    I16,
    /// Big-endian `i32`, code `0x0C`.
    I32,
    /// Big-endian IEEE 754 `f32`, code `0x0D`.
    F32,
    /// Big-endian IEEE 754 `f64`, code `0x0E`.
    F64,
}

impl DType {
    /// Every element type, in type-code order.
    pub const ALL: [DType; 6] = [
        DType::U8,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::F32,
        DType::F64,
    ];

    /// Returns the type code stored in byte 2 of the magic number.
    pub const fn code(self) -> u8 {
        match self {
            DType::U8 => 0x08,
            DType::I8 => 0x09,
            DType::I16 => 0x0B,
            DType::I32 => 0x0C,
            DType::F32 => 0x0D,
            DType::F64 => 0x0E,
        }
    }

    /// Returns the type with the given code, or `None` for an unknown code.
    pub const fn from_code(code: u8) -> Option<DType> {
        match code {
            0x08 => Some(DType::U8),
            0x09 => Some(DType::I8),
            0x0B => Some(DType::I16),
            0x0C => Some(DType::I32),
            0x0D => Some(DType::F32),
            0x0E => Some(DType::F64),
            _ => None,
        }
    }

    /// Returns the size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::I16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// Returns the Rust name of the element type (`"u8"`, `"f32"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DType::U8 => "u8",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that matches one IDX element type.
///
/// Implemented for `u8`, `i8`, `i16`, `i32`, `f32` and `f64` only.
pub trait Element: Copy + sealed::Sealed {
    /// The IDX element type of `Self`.
    const DTYPE: DType;

    /// Decodes one big-endian element from exactly `DTYPE.size()` bytes.
    fn from_be_slice(bytes: &[u8]) -> Self;

    /// Appends the big-endian encoding of `self` to `out`.
    fn extend_be(self, out: &mut Vec<u8>);
}

macro_rules! impl_element {
    ($ty:ty, $dtype:expr) => {
        impl sealed::Sealed for $ty {}

        impl Element for $ty {
            const DTYPE: DType = $dtype;

            #[inline]
            fn from_be_slice(bytes: &[u8]) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$ty>()];
                raw.copy_from_slice(bytes);
                <$ty>::from_be_bytes(raw)
            }

            #[inline]
            fn extend_be(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
    };
}

impl_element!(u8, DType::U8);
impl_element!(i8, DType::I8);
impl_element!(i16, DType::I16);
impl_element!(i32, DType::I32);
impl_element!(f32, DType::F32);
impl_element!(f64, DType::F64);

/// A validated IDX header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxHeader {
    dtype: DType,
    dims: Vec<usize>,
    element_count: usize,
    header_len: usize,
    payload_len: usize,
}

impl IdxHeader {
    /// Parses the header at the start of `bytes`, the complete contents of an
    /// IDX file, and checks that the payload after it is exactly as long as
    /// the dimensions and element type require.
    ///
    /// The errors carry no path, because file-level callers add it. They are
    /// [`ErrorKind::Empty`], [`ErrorKind::TruncatedHeader`],
    /// [`ErrorKind::BadMagic`] (also for gzip data and byte-swapped
    /// headers), [`ErrorKind::ZeroDimension`], [`ErrorKind::SizeOverflow`],
    /// [`ErrorKind::TruncatedPayload`] and [`ErrorKind::TrailingBytes`].
    pub fn parse(bytes: &[u8]) -> Result<IdxHeader> {
        if bytes.is_empty() {
            return Err(Error::new(
                ErrorKind::Empty,
                "file is empty; expected an IDX header",
            ));
        }
        if bytes.starts_with(&GZIP_MAGIC) {
            return Err(Error::new(
                ErrorKind::BadMagic,
                "file starts with the gzip magic 1f 8b, not an IDX magic; \
                 decompress it or give it a name ending in .gz",
            )
            .at_byte(0));
        }
        if bytes.len() < MAGIC_LEN {
            return Err(Error::new(
                ErrorKind::TruncatedHeader,
                format!(
                    "file is {} bytes, shorter than the 4-byte IDX magic",
                    bytes.len()
                ),
            )
            .at_byte(bytes.len() as u64));
        }
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        let dtype = parse_magic(magic)?;
        let rank = usize::from(magic[3]);

        let header_len = MAGIC_LEN + 4 * rank;
        if bytes.len() < header_len {
            return Err(Error::new(
                ErrorKind::TruncatedHeader,
                format!(
                    "file is {} bytes but a rank-{rank} IDX header needs {header_len}",
                    bytes.len()
                ),
            )
            .at_byte(bytes.len() as u64));
        }

        let mut dims = Vec::with_capacity(rank);
        for axis in 0..rank {
            let offset = MAGIC_LEN + 4 * axis;
            let raw = [
                bytes[offset],
                bytes[offset + 1],
                bytes[offset + 2],
                bytes[offset + 3],
            ];
            let dim = u32::from_be_bytes(raw);
            if dim == 0 {
                return Err(Error::new(
                    ErrorKind::ZeroDimension,
                    format!("dimension {axis} is zero; IDX dimensions must be at least 1"),
                )
                .at_byte(offset as u64));
            }
            let dim = usize::try_from(dim).map_err(|_| overflow_error(&dims, dim))?;
            dims.push(dim);
        }

        let element_count = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::new(ErrorKind::SizeOverflow, overflow_message(&dims)))?;
        let payload_len = element_count
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::new(ErrorKind::SizeOverflow, overflow_message(&dims)))?;
        let expected_len = header_len
            .checked_add(payload_len)
            .ok_or_else(|| Error::new(ErrorKind::SizeOverflow, overflow_message(&dims)))?;

        let header = IdxHeader {
            dtype,
            dims,
            element_count,
            header_len,
            payload_len,
        };
        if bytes.len() < expected_len {
            return Err(Error::new(
                ErrorKind::TruncatedPayload,
                format!(
                    "file is {} bytes but the header ({}) promises {expected_len}; \
                     the payload is {} bytes short",
                    bytes.len(),
                    header.describe(),
                    expected_len - bytes.len()
                ),
            )
            .at_byte(bytes.len() as u64));
        }
        if bytes.len() > expected_len {
            return Err(Error::new(
                ErrorKind::TrailingBytes,
                format!(
                    "file has {} bytes after the {expected_len} bytes its header ({}) promises",
                    bytes.len() - expected_len,
                    header.describe()
                ),
            )
            .at_byte(expected_len as u64));
        }
        Ok(header)
    }

    /// Returns the element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Returns the dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Returns the number of elements (product of the dimensions; 1 for rank 0).
    pub fn element_count(&self) -> usize {
        self.element_count
    }

    /// Returns the header length in bytes (`4 + 4 * rank`).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Returns the payload length in bytes.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// Returns a short description such as `u8 60000x28x28`.
    fn describe(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        format!("{} {}", self.dtype, dims.join("x"))
    }
}

/// Checks the 4-byte magic and returns the element type.
fn parse_magic(magic: [u8; 4]) -> Result<DType> {
    if magic[..2] != IDX_MAGIC_PREFIX {
        // A little-endian writer stores the magic 0x0000TTNN as NN TT 00 00.
        let message = if magic[2..] == [0, 0] && DType::from_code(magic[1]).is_some() {
            format!(
                "magic {} is a byte-swapped (little-endian) IDX header; \
                 IDX headers are big-endian: 00 00 {:02x} {:02x}",
                hex(&magic),
                magic[1],
                magic[0]
            )
        } else {
            format!(
                "magic {} is not an IDX magic; expected 00 00 <type> <rank>",
                hex(&magic)
            )
        };
        return Err(Error::new(ErrorKind::BadMagic, message).at_byte(0));
    }
    DType::from_code(magic[2]).ok_or_else(|| {
        Error::new(
            ErrorKind::BadMagic,
            format!(
                "unknown IDX type code {:02x}; expected 08 (u8), 09 (i8), 0b (i16), \
                 0c (i32), 0d (f32) or 0e (f64)",
                magic[2]
            ),
        )
        .at_byte(2)
    })
}

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

fn overflow_message(dims: &[usize]) -> String {
    format!("the size of an IDX array with dimensions {dims:?} overflows usize")
}

#[cold]
fn overflow_error(dims: &[usize], next: u32) -> Error {
    let mut all = dims.to_vec();
    all.push(next as usize);
    Error::new(ErrorKind::SizeOverflow, overflow_message(&all))
}

/// An IDX file whose header has been checked against its length.
///
/// Raw files are memory mapped by default ([`Backing::Map`]); `.gz` files are
/// decompressed once into memory. The payload is then available without
/// further copies: [`IdxFile::as_u8`] and [`IdxFile::as_i8`] view single-byte
/// payloads in place, and [`IdxFile::values`] decodes multi-byte payloads
/// element by element.
#[derive(Debug)]
pub struct IdxFile {
    path: PathBuf,
    bytes: Bytes,
    header: IdxHeader,
}

impl IdxFile {
    /// Opens an IDX file, memory-mapping it unless its name ends in `.gz`.
    ///
    /// The file must not change while the returned value is alive (see
    /// [`Backing::Map`]); use [`IdxFile::open_with`] and [`Backing::Read`] to
    /// read it into memory instead.
    pub fn open(path: impl AsRef<Path>) -> Result<IdxFile> {
        IdxFile::open_with(path, Backing::Map)
    }

    /// Opens an IDX file with the given backing for raw files. A name ending
    /// in `.gz` (any case) is always read and decompressed.
    pub fn open_with(path: impl AsRef<Path>, backing: Backing) -> Result<IdxFile> {
        let path = path.as_ref();
        let bytes = if is_gz_name(path) {
            let compressed = mmap::load(path, Backing::Read)?;
            Bytes::Owned(gunzip(&compressed).map_err(|e| e.in_file(path))?)
        } else {
            mmap::load(path, backing)?
        };
        let header = IdxHeader::parse(&bytes).map_err(|e| e.in_file(path))?;
        Ok(IdxFile {
            path: path.to_path_buf(),
            bytes,
            header,
        })
    }

    /// Builds an IDX file from raw (not gzip) bytes held in memory. `name`
    /// appears in errors in place of a path.
    pub fn from_bytes(bytes: Vec<u8>, name: impl Into<PathBuf>) -> Result<IdxFile> {
        let path = name.into();
        let header = IdxHeader::parse(&bytes).map_err(|e| e.in_file(&path))?;
        Ok(IdxFile {
            path,
            bytes: Bytes::Owned(bytes),
            header,
        })
    }

    /// Returns the path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the validated header.
    pub fn header(&self) -> &IdxHeader {
        &self.header
    }

    /// Returns the element type.
    pub fn dtype(&self) -> DType {
        self.header.dtype
    }

    /// Returns the dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.header.dims
    }

    /// Returns the number of elements.
    pub fn element_count(&self) -> usize {
        self.header.element_count
    }

    /// Returns whether the bytes are memory mapped rather than owned.
    pub fn is_mapped(&self) -> bool {
        self.bytes.is_mapped()
    }

    /// Returns the payload bytes (big-endian elements), without the header.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.header.header_len..]
    }

    /// Returns the payload as `u8` elements, in place.
    pub fn as_u8(&self) -> Result<&[u8]> {
        self.expect_dtype(DType::U8)?;
        Ok(self.payload())
    }

    /// Returns the payload as `i8` elements, in place.
    pub fn as_i8(&self) -> Result<&[i8]> {
        self.expect_dtype(DType::I8)?;
        Ok(bytemuck::cast_slice(self.payload()))
    }

    /// Returns an iterator that decodes each element from big-endian.
    pub fn values<T: Element>(&self) -> Result<Values<'_, T>> {
        self.expect_dtype(T::DTYPE)?;
        Ok(Values {
            chunks: self.payload().chunks_exact(T::DTYPE.size()),
            marker: PhantomData,
        })
    }

    /// Returns element `index` (row-major order) decoded from big-endian, or
    /// `None` if `index` is out of range.
    pub fn get<T: Element>(&self, index: usize) -> Result<Option<T>> {
        self.expect_dtype(T::DTYPE)?;
        let size = T::DTYPE.size();
        let start = match index.checked_mul(size) {
            Some(start) if index < self.header.element_count => start,
            _ => return Ok(None),
        };
        Ok(Some(T::from_be_slice(&self.payload()[start..start + size])))
    }

    /// Decodes all elements into a new vector.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        Ok(self.values::<T>()?.collect())
    }

    /// Checks the rank, returning a [`ErrorKind::TypeMismatch`] error that
    /// names `what` the file was expected to hold.
    pub(crate) fn expect_rank(&self, rank: usize, what: &str) -> Result<()> {
        if self.header.dims.len() != rank {
            return Err(Error::new(
                ErrorKind::TypeMismatch,
                format!(
                    "expected {what} of rank {rank}, found rank {} with dimensions {:?}",
                    self.header.dims.len(),
                    self.header.dims
                ),
            )
            .at_byte(3)
            .in_file(&self.path));
        }
        Ok(())
    }

    fn expect_dtype(&self, dtype: DType) -> Result<()> {
        if self.header.dtype != dtype {
            return Err(Error::new(
                ErrorKind::TypeMismatch,
                format!(
                    "expected {dtype} elements, the file holds {} (type code {:02x})",
                    self.header.dtype,
                    self.header.dtype.code()
                ),
            )
            .at_byte(2)
            .in_file(&self.path));
        }
        Ok(())
    }
}

/// Iterator over the decoded elements of an [`IdxFile`].
#[derive(Clone, Debug)]
pub struct Values<'a, T> {
    chunks: std::slice::ChunksExact<'a, u8>,
    marker: PhantomData<T>,
}

impl<T: Element> Iterator for Values<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        self.chunks.next().map(T::from_be_slice)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl<T: Element> ExactSizeIterator for Values<'_, T> {}

/// Returns whether `path`'s name ends in `.gz`, ignoring case.
pub(crate) fn is_gz_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"))
}

/// Decompresses a complete gzip stream (one or more members).
///
/// Errors are [`ErrorKind::Empty`] for no bytes and [`ErrorKind::Gzip`] for
/// data that is not gzip, ends early or fails its CRC. They carry no path.
pub fn gunzip(compressed: &[u8]) -> Result<Vec<u8>> {
    if compressed.is_empty() {
        return Err(Error::new(
            ErrorKind::Empty,
            "file is empty; expected a gzip stream",
        ));
    }
    if !compressed.starts_with(&GZIP_MAGIC) {
        let head = &compressed[..compressed.len().min(4)];
        return Err(Error::new(
            ErrorKind::Gzip,
            format!(
                "not a gzip stream: expected magic 1f 8b, found {} ({} bytes in all); \
                 a failed download often saves an HTML page under the .gz name",
                hex(head),
                compressed.len()
            ),
        )
        .at_byte(0));
    }
    let mut out = Vec::with_capacity(gzip_size_hint(compressed));
    let mut decoder = MultiGzDecoder::new(compressed);
    if let Err(e) = decoder.read_to_end(&mut out) {
        return Err(Error::new(
            ErrorKind::Gzip,
            format!(
                "gzip stream is truncated or corrupt after {} decompressed bytes ({} compressed bytes in all)",
                out.len(),
                compressed.len()
            ),
        )
        .with_source(e));
    }
    Ok(out)
}

/// Reads the size field of the last gzip trailer (decompressed size modulo
/// 2^32), capped so that a damaged trailer cannot reserve much memory.
fn gzip_size_hint(compressed: &[u8]) -> usize {
    let n = compressed.len();
    if n < 18 {
        return 0;
    }
    let raw = [
        compressed[n - 4],
        compressed[n - 3],
        compressed[n - 2],
        compressed[n - 1],
    ];
    usize::try_from(u32::from_le_bytes(raw))
        .unwrap_or(0)
        .min(MAX_GZIP_PREALLOC)
}

/// Encodes an IDX file (header and big-endian payload) in memory.
///
/// `dims` must have at most 255 entries, each in `1..=u32::MAX`, and their
/// product must equal `data.len()`; otherwise the error is
/// [`ErrorKind::InvalidArgument`].
pub fn encode<T: Element>(dims: &[usize], data: &[T]) -> Result<Vec<u8>> {
    let rank = u8::try_from(dims.len()).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("IDX rank is at most 255, got {}", dims.len()),
        )
    })?;
    let mut count = 1usize;
    for (axis, &dim) in dims.iter().enumerate() {
        if dim == 0 || u32::try_from(dim).is_err() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("IDX dimension {axis} is {dim}; expected 1..=4294967295"),
            ));
        }
        count = count
            .checked_mul(dim)
            .ok_or_else(|| Error::new(ErrorKind::SizeOverflow, overflow_message(dims)))?;
    }
    if count != data.len() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "dimensions {dims:?} hold {count} elements but {} were given",
                data.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(MAGIC_LEN + 4 * dims.len() + count * T::DTYPE.size());
    out.extend_from_slice(&IDX_MAGIC_PREFIX);
    out.push(T::DTYPE.code());
    out.push(rank);
    for &dim in dims {
        // Checked above: every dim fits in u32.
        out.extend_from_slice(&(dim as u32).to_be_bytes());
    }
    for &value in data {
        value.extend_be(&mut out);
    }
    Ok(out)
}

/// Writes an IDX file atomically (temporary name, then rename). A name
/// ending in `.gz` is written gzip-compressed at the best compression level.
///
/// See [`encode`] for the checks on `dims` and `data`.
pub fn write<T: Element>(path: impl AsRef<Path>, dims: &[usize], data: &[T]) -> Result<()> {
    let path = path.as_ref();
    let bytes = encode(dims, data).map_err(|e| e.in_file(path))?;
    if is_gz_name(path) {
        write_atomic(path, |w| {
            let mut encoder = GzEncoder::new(w, Compression::best());
            encoder.write_all(&bytes)?;
            encoder.finish().map(|_| ())
        })
    } else {
        write_atomic(path, |w| w.write_all(&bytes))
    }
}

/// Finds an IDX file in `dir` under either common spelling of its name,
/// with or without `.gz`.
///
/// `name` is given in either spelling, e.g. `train-images-idx3-ubyte` or
/// `train-images.idx3-ubyte`. The candidates are tried in this order:
/// hyphen spelling, dot spelling, then both with `.gz`, so a raw file that
/// can be mapped wins over a compressed one.
pub fn find_in_dir(dir: impl AsRef<Path>, name: &str) -> Result<PathBuf> {
    let dir = dir.as_ref();
    let candidates = candidate_names(name);
    // A candidate that exists but is no regular file (a directory, FIFO or
    // device) is named rather than reported as missing.
    let mut other = None;
    for candidate in &candidates {
        let path = dir.join(candidate);
        if path.is_file() {
            return Ok(path);
        }
        if other.is_none() && path.exists() {
            other = Some(path);
        }
    }
    if let Some(path) = other {
        return crate::mmap::check_regular_file(&path).map(|()| path);
    }
    Err(Error::new(
        ErrorKind::NotFound,
        format!("no IDX file found; tried {}", candidates.join(", ")),
    )
    .in_file(dir))
}

/// Returns the names [`find_in_dir`] tries for `name`, in order.
pub fn candidate_names(name: &str) -> Vec<String> {
    let base = name.strip_suffix(".gz").unwrap_or(name);
    let hyphen = base.replacen(".idx", "-idx", 1);
    let dot = hyphen.replacen("-idx", ".idx", 1);
    let mut names = vec![hyphen.clone()];
    if dot != hyphen {
        names.push(dot.clone());
    }
    names.push(format!("{hyphen}.gz"));
    if dot != hyphen {
        names.push(format!("{dot}.gz"));
    }
    names
}
