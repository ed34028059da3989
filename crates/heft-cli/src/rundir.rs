//! The run directory, built under a temporary name and renamed into place
//! when complete, so an interrupted run leaves no half-written directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A run directory under construction at `<final>.tmp-<pid>`.
pub struct RunDir {
    staging: PathBuf,
    target: PathBuf,
    finished: bool,
}

impl RunDir {
    /// Checks that `target` can be created (or replaced, with `force`) and
    /// creates the staging directory next to it.
    pub fn create(target: &Path, force: bool) -> Result<RunDir, String> {
        if target.exists() && !force {
            return Err(format!(
                "run directory {} already exists; pass --force to replace it or --out to pick another",
                target.display()
            ));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| {
            format!(
                "cannot create the output directory {}: {e}; pass --out with a writable path",
                parent.display()
            )
        })?;
        let name = target
            .file_name()
            .ok_or_else(|| format!("invalid run directory {}; pass --out DIR", target.display()))?;
        let mut staging_name = name.to_os_string();
        staging_name.push(format!(".tmp-{}", std::process::id()));
        let staging = parent.join(staging_name);
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|e| {
                format!(
                    "cannot remove the stale staging directory {}: {e}",
                    staging.display()
                )
            })?;
        }
        fs::create_dir(&staging).map_err(|e| {
            format!(
                "cannot create the run directory in {}: {e}; pass --out with a writable path",
                parent.display()
            )
        })?;
        Ok(RunDir {
            staging,
            target: target.to_path_buf(),
            finished: false,
        })
    }

    /// Returns the path `name` will have inside the staging directory.
    pub fn staging_path(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// Writes `bytes` to `name` through a temporary file and a rename.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        write_atomically(&self.staging, name, bytes)
    }

    /// Renames the staging directory to the final name, replacing an
    /// existing run directory (only reachable with `--force`).
    pub fn finish(mut self) -> Result<PathBuf, String> {
        if self.target.exists() {
            fs::remove_dir_all(&self.target).map_err(|e| {
                format!(
                    "cannot replace the run directory {}: {e}",
                    self.target.display()
                )
            })?;
        }
        fs::rename(&self.staging, &self.target).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                self.staging.display(),
                self.target.display()
            )
        })?;
        self.finished = true;
        Ok(self.target.clone())
    }
}

impl Drop for RunDir {
    /// Removes the staging directory of a run that failed.
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Writes `bytes` to `dir/name` through a synced temporary file in the same
/// directory and a rename, so a reader never sees a half-written file.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    let result = fs::File::create(&temporary)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, &path));
    result.map_err(|e| format!("cannot write {}: {e}", path.display()))
}
