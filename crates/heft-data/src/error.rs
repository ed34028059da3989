//! The crate's one error type.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The category of an [`Error`], for callers and tests that branch on it.
///
/// The message of the error carries the details (expected and actual values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Opening, reading, writing or renaming a file failed.
    Io,
    /// No file with any of the accepted names exists in a directory.
    NotFound,
    /// The file has no bytes at all.
    Empty,
    /// The file ends inside the IDX header (magic or dimensions).
    TruncatedHeader,
    /// The first four bytes are not an IDX magic `00 00 <type> <ndim>`: a gzip
    /// stream given as a raw file, a byte-swapped header, an unknown type code.
    BadMagic,
    /// An IDX dimension is zero.
    ZeroDimension,
    /// The product of the dimensions, or the payload size, overflows `usize`.
    SizeOverflow,
    /// The file is shorter than its header promises.
    TruncatedPayload,
    /// The file has bytes after the payload its header promises.
    TrailingBytes,
    /// A `.gz` file is not a gzip stream, ends early or fails its checksum.
    Gzip,
    /// The element type or rank of an IDX file is not the one requested.
    TypeMismatch,
    /// Two files that must describe the same records have different counts.
    CountMismatch,
    /// A label is not below the number of classes.
    LabelOutOfRange,
    /// A delimited record is malformed (unterminated quote, text after a
    /// closing quote).
    Malformed,
    /// A delimited record has no field for a requested column, or the header
    /// has no column with the requested name.
    MissingColumn,
    /// A field is not valid UTF-8.
    InvalidUtf8,
    /// A delimited file has no data records.
    EmptyCorpus,
    /// An argument is outside its domain (an option, or a buffer of the wrong
    /// length).
    InvalidArgument,
}

/// Position in a file at which an error was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A byte offset from the start of the (decompressed) file.
    Byte(u64),
    /// A zero-based data record number (header line excluded), with the byte
    /// offset at which that record starts.
    Record {
        /// Zero-based record number, not counting a header line.
        record: u64,
        /// Byte offset of the record's first byte.
        byte: u64,
    },
}

/// The error type of every fallible function in this crate.
///
/// It names the file (when there is one), the byte offset or record number,
/// and what was expected. [`Error::kind`] gives the category.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    path: Option<PathBuf>,
    location: Option<Location>,
    message: String,
    source: Option<io::Error>,
}

/// Shorthand for `Result<T, heft_data::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    #[cold]
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            path: None,
            location: None,
            message: message.into(),
            source: None,
        }
    }

    /// Builds an [`ErrorKind::Io`] error whose message gives the
    /// operating system's reason, such as "No such file or directory",
    /// because callers print the message and not the source chain.
    #[cold]
    pub(crate) fn io(path: &Path, action: &str, source: io::Error) -> Self {
        Error {
            kind: ErrorKind::Io,
            path: Some(path.to_path_buf()),
            location: None,
            message: format!("failed to {action}: {source}"),
            source: Some(source),
        }
    }

    pub(crate) fn at_byte(mut self, offset: u64) -> Self {
        self.location = Some(Location::Byte(offset));
        self
    }

    pub(crate) fn at_record(mut self, record: u64, byte: u64) -> Self {
        self.location = Some(Location::Record { record, byte });
        self
    }

    pub(crate) fn with_source(mut self, source: io::Error) -> Self {
        self.source = Some(source);
        self
    }

    /// Sets the path if the error has none yet.
    pub(crate) fn in_file(mut self, path: &Path) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_path_buf());
        }
        self
    }

    /// Returns the category of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Returns the file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Returns the byte offset or record number the error is about, if any.
    pub fn location(&self) -> Option<Location> {
        self.location
    }

    /// Returns the message without the path and location prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        match self.location {
            Some(Location::Byte(offset)) => write!(f, "at byte {offset}: ")?,
            Some(Location::Record { record, byte }) => {
                write!(f, "record {record} (byte {byte}): ")?
            }
            None => {}
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
