//! Atomic file writes.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Returns a temporary name in the directory of `path`, unique within this
/// process and across processes (through the process id).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Writes a file through `fill` to a temporary name in the same directory,
/// flushes it to disk and renames it to `path`, so a reader never sees a
/// half-written file. The temporary file is removed if anything fails.
pub(crate) fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let temp = temp_path(path);
    let result = (|| -> std::result::Result<(), (&'static str, std::io::Error)> {
        let file = File::create(&temp).map_err(|e| ("create temporary file", e))?;
        let mut writer = BufWriter::new(file);
        fill(&mut writer).map_err(|e| ("write temporary file", e))?;
        let file = writer
            .into_inner()
            .map_err(|e| ("flush temporary file", e.into_error()))?;
        file.sync_all().map_err(|e| ("sync temporary file", e))?;
        fs::rename(&temp, path).map_err(|e| ("rename temporary file", e))
    })();
    result.map_err(|(action, e)| {
        // Best effort: the temporary file may not exist if creation failed.
        let _ = fs::remove_file(&temp);
        Error::io(path, action, e)
    })
}

/// Writes all of `bytes` atomically to `path`.
pub(crate) fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}
