//! The run directory, built under a temporary name and renamed into place
//! when complete, so an interrupted run leaves no half-written directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A run directory under construction at `<final>.tmp-<pid>`.
pub struct RunDir {
    staging: PathBuf,
    target: PathBuf,
    force: bool,
    finished: bool,
}

/// The file that marks a directory as a staging directory of heft, so
/// that only those are removed when their process has died. It is deleted
/// before the directory is renamed into place.
const STAGING_MARKER: &str = ".heft-staging";

/// The files `heft tune` writes into a run directory: the only entries
/// that `--force` deletes when it replaces one.
pub const RUN_FILES: [&str; 6] = [
    "config.json",
    "summary.json",
    "history.csv",
    "tuned.safetensors",
    "convergence.svg",
    "delta.svg",
];

/// Checks that `target` is free or, with `force`, a run directory that may
/// be replaced: a directory that contains only [`RUN_FILES`] and none of
/// `inputs`.
pub fn check_target(target: &Path, force: bool, inputs: &[&Path]) -> Result<(), String> {
    let Ok(meta) = fs::symlink_metadata(target) else {
        return Ok(());
    };
    if !force {
        return Err(format!(
            "run directory {} already exists; pass --force to replace it or --out to pick another",
            target.display()
        ));
    }
    if !meta.is_dir() {
        return Err(format!(
            "--out {} is not a directory, and --force replaces only a run directory; pass --out \
             with another path",
            target.display()
        ));
    }
    let entries = fs::read_dir(target)
        .map_err(|e| format!("cannot read the run directory {}: {e}", target.display()))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| format!("cannot read the run directory {}: {e}", target.display()))?;
        let name = entry.file_name();
        let is_run_file = name.to_str().is_some_and(|n| RUN_FILES.contains(&n));
        if !is_run_file || !entry.file_type().is_ok_and(|t| t.is_file()) {
            return Err(format!(
                "--force would delete {}, which is not a file of a heft run directory; pass --out \
                 with another path or remove it yourself",
                entry.path().display()
            ));
        }
    }
    let target = target
        .canonicalize()
        .map_err(|e| format!("cannot resolve the run directory {}: {e}", target.display()))?;
    for input in inputs {
        if input
            .canonicalize()
            .is_ok_and(|path| path.starts_with(&target))
        {
            return Err(format!(
                "--out {} contains the input {}, which --force would delete; pass --out with \
                 another path",
                target.display(),
                input.display()
            ));
        }
    }
    Ok(())
}

impl RunDir {
    /// Checks that `target` can be created (or replaced, with `force`, as
    /// [`check_target`] allows) and creates the staging directory next to
    /// it.
    pub fn create(target: &Path, force: bool) -> Result<RunDir, String> {
        check_target(target, force, &[])?;
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
        remove_stale_staging(&parent, name);
        let mut staging_name = name.to_os_string();
        staging_name.push(format!(".tmp-{}", std::process::id()));
        let staging = parent.join(staging_name);
        // A directory under this process's staging name is left from an
        // earlier process with the same pid. It is removed only when heft
        // made it.
        if fs::symlink_metadata(&staging).is_ok() {
            let pid = std::process::id().to_string();
            if !is_staging_of(&staging, &pid) {
                return Err(format!(
                    "{} already exists and is not a staging directory of heft; move it away or \
                     pass --out with another path",
                    staging.display()
                ));
            }
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
        let run = RunDir {
            staging,
            target: target.to_path_buf(),
            force,
            finished: false,
        };
        run.write(STAGING_MARKER, std::process::id().to_string().as_bytes())?;
        Ok(run)
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
    /// existing run directory with `--force` as [`check_target`] allows.
    ///
    /// Without `--force`, a directory that another process created at the
    /// final name during the run is left alone: this run's files stay in
    /// the staging directory, which the error names.
    pub fn finish(mut self) -> Result<PathBuf, String> {
        fs::remove_file(self.staging.join(STAGING_MARKER)).map_err(|e| {
            format!(
                "cannot finish the run directory {}: {e}",
                self.staging.display()
            )
        })?;
        if fs::symlink_metadata(&self.target).is_ok() && !self.force {
            self.finished = true;
            return Err(format!(
                "run directory {} was created by another process during this run; this run's \
                 files are in {}: rename that directory, or pass --force to replace the other",
                self.target.display(),
                self.staging.display()
            ));
        }
        if let Err(e) = check_target(&self.target, self.force, &[]) {
            self.finished = true;
            return Err(format!(
                "{e}; this run's files are in {}",
                self.staging.display()
            ));
        }
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

/// Removes the staging directories `<name>.tmp-<pid>` in `parent` that a
/// run killed before it could clean up (SIGINT, SIGKILL, power loss) left
/// behind: those whose process no longer runs and which contain heft's
/// staging marker, run files and their temporary copies only. Anything
/// else is left in place. Process liveness is read from `/proc`, so where
/// it is missing (systems other than Linux) nothing is removed. Only the
/// run's own name is cleaned, because a live run of another name in
/// another PID namespace (a container sharing the directory) would look
/// dead here. NOTE: a run of the same name in such a namespace still
/// does.
fn remove_stale_staging(parent: &Path, name: &std::ffi::OsStr) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Some(prefix) = name.to_str().map(|n| format!("{n}.tmp-")) else {
        return;
    };
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid).exists();
        let path = entry.path();
        if !alive && is_staging_of(&path, pid) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Returns whether `dir` is a staging directory that heft made for process
/// `pid`: a real directory (not a link) whose marker names that pid, with
/// nothing but run files and their temporary copies beside it.
fn is_staging_of(dir: &Path, pid: &str) -> bool {
    let is_dir = fs::symlink_metadata(dir).is_ok_and(|meta| meta.is_dir());
    let marker = fs::read_to_string(dir.join(STAGING_MARKER));
    is_dir && marker.is_ok_and(|text| text == pid) && contains_only_run_files(dir)
}

/// Returns whether `dir` contains only regular files named as [`RUN_FILES`],
/// their temporary copies `.<name>.tmp`, or [`STAGING_MARKER`].
fn contains_only_run_files(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.into_iter().all(|entry| {
        entry.is_ok_and(|entry| {
            let name = entry.file_name();
            let name = name.to_str().unwrap_or("");
            let base = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".tmp"))
                .unwrap_or(name);
            (RUN_FILES.contains(&base) || name == STAGING_MARKER)
                && entry.file_type().is_ok_and(|t| t.is_file())
        })
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("heft-rundir-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A staging directory of a dead process with only run files goes.
    /// One of a live process, one with another file, and names that only
    /// look alike stay.
    #[test]
    fn stale_staging_removed() {
        let dir = scratch("stale");
        // Linux pids stay below 2^22, so this process cannot exist.
        let dead = dir.join("run.tmp-999999999");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("config.json"), "{}").unwrap();
        fs::write(dead.join(".summary.json.tmp"), "{").unwrap();
        fs::write(dead.join(STAGING_MARKER), "999999999").unwrap();
        // A marker that names another process is not heft's.
        let forged = dir.join("run.tmp-999999996");
        fs::create_dir(&forged).unwrap();
        fs::write(forged.join(STAGING_MARKER), "not a pid").unwrap();
        // Run files without the marker were not made by heft's staging.
        let unmarked = dir.join("run.tmp-999999997");
        fs::create_dir(&unmarked).unwrap();
        fs::write(unmarked.join("config.json"), "{\"my\": \"notes\"}").unwrap();
        let foreign = dir.join("run.tmp-999999998");
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("notes.txt"), "mine").unwrap();
        let live = dir.join(format!("run.tmp-{}", std::process::id()));
        let other_run = dir.join("other.tmp-999999999");
        let not_pid = dir.join("run.tmp-12a");
        for kept in [&other_run, &not_pid] {
            fs::create_dir(kept).unwrap();
        }

        let run = RunDir::create(&dir.join("run"), false).unwrap();
        let proc_fs = Path::new("/proc/self").exists();
        assert_eq!(dead.exists(), !proc_fs, "dead staging directory");
        assert!(foreign.exists(), "a directory with a foreign file");
        assert!(unmarked.exists(), "run files without the staging marker");
        assert!(forged.exists(), "a marker naming another process");
        assert!(live.exists(), "this process's own staging directory");
        assert!(other_run.exists(), "another run's name");
        assert!(not_pid.exists(), "a suffix that is not a pid");
        drop(run);
        assert!(!live.exists(), "a failed run removes its staging directory");
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod finish_tests {
    use super::*;

    /// A directory that appears at the final name during a run is kept
    /// without --force, and the run's files stay in the staging directory.
    /// With --force a run directory is replaced, and the marker is gone.
    #[test]
    fn finish_keeps_concurrent_run() {
        let dir = std::env::temp_dir().join(format!("heft-finish-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("run");

        let run = RunDir::create(&target, false).unwrap();
        run.write("summary.json", b"{}").unwrap();
        let staging = run.staging.clone();
        fs::create_dir(&target).unwrap();
        fs::write(target.join("config.json"), "other").unwrap();
        let err = run.finish().unwrap_err();
        assert!(err.contains("created by another process"), "{err}");
        assert!(err.contains(&staging.display().to_string()), "{err}");
        assert_eq!(
            fs::read_to_string(target.join("config.json")).unwrap(),
            "other"
        );
        assert!(
            staging.join("summary.json").is_file(),
            "the run's files stay"
        );
        assert!(
            !staging.join(STAGING_MARKER).exists(),
            "kept files lose the marker"
        );
        fs::remove_dir_all(&staging).unwrap();

        let run = RunDir::create(&target, true).unwrap();
        run.write("summary.json", b"{}").unwrap();
        let finished = run.finish().unwrap();
        assert!(finished.join("summary.json").is_file());
        assert!(
            !finished.join("config.json").exists(),
            "the old run was replaced"
        );
        assert!(!finished.join(STAGING_MARKER).exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod own_pid_tests {
    use super::*;

    /// A directory of someone else's under this process's staging name is
    /// an error, not removed; heft's own leftover under that name is.
    #[test]
    fn own_staging_name_checked() {
        let dir = std::env::temp_dir().join(format!("heft-own-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("run");
        let staging = dir.join(format!("run.tmp-{}", std::process::id()));
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("notes.txt"), "mine").unwrap();

        let err = RunDir::create(&target, false).err().unwrap();
        assert!(err.contains("is not a staging directory of heft"), "{err}");
        assert!(
            staging.join("notes.txt").is_file(),
            "the foreign file stays"
        );

        fs::remove_file(staging.join("notes.txt")).unwrap();
        fs::write(staging.join(STAGING_MARKER), std::process::id().to_string()).unwrap();
        fs::write(staging.join("config.json"), "{}").unwrap();
        let run = RunDir::create(&target, false).unwrap();
        assert!(
            !staging.join("config.json").exists(),
            "the leftover was replaced"
        );
        drop(run);
        fs::remove_dir_all(&dir).unwrap();
    }
}
