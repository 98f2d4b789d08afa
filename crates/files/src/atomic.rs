//! Atomic file writes: temp file in the same folder → `fsync` → rename → `fsync` the folder.
//!
//! The temporary file lives next to the target so the rename never crosses a filesystem
//! (a cross-device rename is a copy, which is not atomic). Files end up mode 0644 on Unix:
//! outputs such as model folders are meant to be shared, and the temp-file API creates
//! owner-only files.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use tempfile::NamedTempFile;

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Creates `path` atomically from whatever `fill` writes into the temporary file.
///
/// `fill` may fail with its own error type (a checksum mismatch, a serialisation error);
/// then the temporary file is removed and the target is left as it was. `fill` gets the
/// file itself, so it may also seek or truncate.
pub fn write_atomic_with<T, E>(
    path: &Path,
    fill: impl FnOnce(&mut File) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<io::Error>,
{
    let dir = parent_dir(path);
    let mut tmp = NamedTempFile::with_prefix_in(temp_prefix(path), dir)?;
    let value = fill(tmp.as_file_mut())?;
    tmp.as_file_mut().flush()?;
    make_shareable(tmp.as_file())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)?;
    Ok(value)
}

/// Moves an already written file `tmp` over `path` durably: `fsync` it, make it 0644,
/// rename, `fsync` the folder. For writers that must stream into their own temporary file
/// (a library that only writes to a path, a file filled in several passes); `tmp` must be
/// in the same folder as `path`.
pub fn replace_with_synced(tmp: &Path, path: &Path) -> io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(tmp)?;
    make_shareable(&file)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)?;
    sync_dir(parent_dir(path))
}

/// `fsync`s a folder, so a rename or a new entry in it survives a power cut. A no-op where
/// folders cannot be opened as files (Windows).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The folder a path is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `.NAME.` — temporary files are hidden and say what they will become.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

fn make_shareable(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces_with_no_leftovers() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(entries(d.path()), ["a.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn a_failing_fill_keeps_the_old_file_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("model.bin");
        write_atomic(&p, b"old").unwrap();
        let r: io::Result<()> = write_atomic_with(&p, |f| {
            f.write_all(b"half of the new")?;
            Err(io::Error::other("disk full"))
        });
        assert_eq!(r.unwrap_err().to_string(), "disk full");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(d.path()), ["model.bin"]);
    }

    #[test]
    fn a_missing_folder_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        assert!(write_atomic(&d.path().join("no/such/file"), b"x").is_err());
    }

    #[test]
    fn replace_with_synced_moves_a_written_file() {
        let d = tempfile::tempdir().unwrap();
        let tmp = d.path().join("plot.tmp.png");
        std::fs::write(&tmp, b"png").unwrap();
        replace_with_synced(&tmp, &d.path().join("plot.png")).unwrap();
        assert_eq!(entries(d.path()), ["plot.png"]);
    }
}
