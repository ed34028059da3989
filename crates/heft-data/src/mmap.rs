//! File bytes backed by a memory map or by an owned buffer.
//!
//! [`map_file`] is the only function in the crate that uses `unsafe`.

use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{Error, ErrorKind, Result};

/// Source of a raw file's bytes in memory: a memory map or a copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backing {
    /// Memory-map the file, so pages are read on first touch and nothing is
    /// copied. The file must not be truncated or rewritten while it is
    /// mapped: the data would change under the reader, and a read past a
    /// truncated end kills the process with `SIGBUS`. If mapping fails the
    /// file is read into memory instead.
    #[default]
    Map,
    /// Read the whole file into an owned buffer. Safe against concurrent
    /// writers, at the cost of one copy.
    Read,
}

/// Bytes of a file, mapped or owned.
#[derive(Debug)]
pub(crate) enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self, Bytes::Mapped(_))
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(vec) => vec,
        }
    }
}

/// Maps `file` read-only.
///
/// Contract: the file must not be modified or truncated while the map is
/// alive. Other processes can break this, so the crate maps only files it
/// was asked to map (see [`Backing::Map`]).
#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: `Mmap::map` is unsafe because the mapped bytes change, or
    // reads fault, if the file is modified or truncated while mapped. The
    // map is read-only and the crate never writes to files it has mapped
    // (cache files are replaced by rename, which leaves an existing map on
    // the old inode). Writers outside this process are excluded by the
    // contract documented on `Backing::Map`.
    unsafe { Mmap::map(file) }
}

/// Loads the bytes of `path`, mapping them when `backing` is
/// [`Backing::Map`] and the file is not empty, and reading them otherwise
/// or when mapping fails.
pub(crate) fn load(path: &Path, backing: Backing) -> Result<Bytes> {
    check_regular_file(path)?;
    let mut file = File::open(path).map_err(|e| Error::io(path, "open file", e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(path, "read file metadata", e))?
        .len();
    if backing == Backing::Map && len > 0 {
        // NOTE: a failed map falls back silently to reading; callers can see
        // which one happened through `is_mapped` on the loaded file.
        if let Ok(map) = map_file(&file) {
            return Ok(Bytes::Mapped(map));
        }
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut buf)
        .map_err(|e| Error::io(path, "read file", e))?;
    Ok(Bytes::Owned(buf))
}

/// Rejects a path that is not a regular file (after following links)
/// before it is opened. Opening a FIFO blocks until a writer appears, and
/// reading a device such as `/dev/zero` never ends.
pub(crate) fn check_regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "read file metadata", e))?;
    if meta.is_file() {
        return Ok(());
    }
    let message = if meta.is_dir() {
        "it is a directory, not a regular file"
    } else {
        "it is not a regular file but a FIFO, socket or device"
    };
    Err(Error::new(ErrorKind::Io, message).in_file(path))
}
