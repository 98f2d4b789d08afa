//! The run-folder lock: one writer per run folder.
//!
//! `RUN_DIR/lmforge.lock` holds the owner's pid and an OS file lock (`flock` on Unix,
//! `LockFileEx` on Windows, through `fs4`). The OS drops the file lock when its process
//! ends however it ends, so liveness is decided by the lock itself, not by guessing from a
//! pid that may have been reused: a lock file whose lock nobody holds is stale, and the
//! next writer takes it over (and reports whose it was). Released on drop: the pid is
//! cleared and the lock given back; the empty file stays (deleting it would let a waiting
//! opener lock a file that is no longer the one at the path).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fs4::{FileExt, TryLockError};

/// An exclusive lock on a run folder, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    stale_owner: Option<String>,
}

/// Why a run folder could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another live process holds the lock.
    Held {
        /// The lock file.
        path: PathBuf,
        /// The pid written by the holder (absent if it had not written it yet).
        owner: Option<String>,
    },
    /// The lock file could not be created, read or locked.
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { path, owner } => write!(
                f,
                "{}: the run folder is in use by another lmforge process{}",
                path.display(),
                owner
                    .as_ref()
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default()
            ),
            LockError::Io { path, source } => {
                write!(
                    f,
                    "{}: cannot lock the run folder: {source}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for LockError {}

impl RunLock {
    /// The lock file's name inside a run folder.
    pub const FILE_NAME: &'static str = "lmforge.lock";

    /// Locks `dir` (creating it if needed) for this process, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock, LockError> {
        let path = dir.join(Self::FILE_NAME);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        // Called through the trait: newer std has an inherent `File::try_lock` of its own.
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let owner = read_owner(&mut file).ok().flatten();
                return Err(LockError::Held { path, owner });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let stale_owner = read_owner(&mut file).map_err(io_err)?;
        write_owner(&mut file, &std::process::id().to_string()).map_err(io_err)?;
        Ok(RunLock {
            file,
            path,
            stale_owner,
        })
    }

    /// The pid recorded by a previous owner that ended without releasing the lock (a crash,
    /// a kill, a second Ctrl-C), when this lock took its place.
    pub fn stale_owner(&self) -> Option<&str> {
        self.stale_owner.as_deref()
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Best effort: the OS releases the lock when the file closes in any case.
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}

fn read_owner(file: &mut File) -> io::Result<Option<String>> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.take(64).read_to_string(&mut text)?;
    let pid = text.trim();
    Ok((!pid.is_empty()).then(|| pid.to_string()))
}

fn write_owner(file: &mut File, pid: &str) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{pid}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_until_the_first_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(d.path()).unwrap();
        assert_eq!(first.stale_owner(), None);
        let pid = std::process::id().to_string();
        match RunLock::acquire(d.path()) {
            Err(LockError::Held { owner, .. }) => assert_eq!(owner.as_deref(), Some(&*pid)),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        let again = RunLock::acquire(d.path()).unwrap();
        assert_eq!(again.stale_owner(), None, "a released lock is not stale");
    }

    #[test]
    fn a_lock_left_by_a_dead_process_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        // What a killed process leaves: its pid in the file, no OS lock held.
        std::fs::write(d.path().join(RunLock::FILE_NAME), "4194999\n").unwrap();
        let lock = RunLock::acquire(d.path()).unwrap();
        assert_eq!(lock.stale_owner(), Some("4194999"));
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
    }

    #[test]
    fn an_unwritable_place_is_an_io_error() {
        let e = RunLock::acquire(Path::new("/proc/lmforge-no-such-run")).unwrap_err();
        assert!(matches!(e, LockError::Io { .. }), "{e}");
        assert!(e.to_string().contains("/proc/lmforge-no-such-run"), "{e}");
    }
}
