//! Writing the output without ever leaving half of it: a folder is filled as
//! `.tmp-NAME-PID` beside `--out`, then renamed into place (an existing output, with
//! `--force`, is moved aside first and deleted last); a GGUF file goes through
//! `lmforge_files::write_atomic_with`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::{ExportError, Result};

/// Refuses an existing, non-empty `out` unless `force`.
pub(crate) fn check_out(out: &Path, force: bool) -> Result<()> {
    if out.as_os_str().is_empty() {
        return Err(ExportError::Usage {
            flag: "--out",
            reason: "is empty".into(),
        });
    }
    let empty_dir = out.is_dir()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
    if out.exists() && !empty_dir && !force {
        return Err(ExportError::Usage {
            flag: "--out",
            reason: format!(
                "{} already exists; choose a new path or pass --force to replace it",
                out.display()
            ),
        });
    }
    Ok(())
}

fn parent(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sibling(out: &Path, tag: &str) -> PathBuf {
    let name = out
        .file_name()
        .map_or("export".into(), |n| n.to_string_lossy().into_owned());
    parent(out).join(format!(".{tag}-{name}-{}", std::process::id()))
}

/// Writes `files` into the folder `out` atomically.
pub(crate) fn folder(out: &Path, force: bool, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let root = parent(out);
    std::fs::create_dir_all(&root)
        .map_err(|e| ExportError::io(&root, format!("cannot create: {e}")))?;
    let tmp = sibling(out, "tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let result = fill(&tmp, files).and_then(|()| swap_into_place(&tmp, out, force));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn fill(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    std::fs::create_dir(dir).map_err(|e| ExportError::io(dir, format!("cannot create: {e}")))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        lmforge_files::write_atomic(&path, bytes)
            .map_err(|e| ExportError::io(&path, format!("cannot write: {e}")))?;
    }
    Ok(())
}

fn swap_into_place(tmp: &Path, out: &Path, force: bool) -> Result<()> {
    let old = sibling(out, "old");
    let had_old = out.exists();
    if had_old {
        check_out(out, force)?;
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(out, &old).map_err(|e| {
            ExportError::io(out, format!("cannot move the existing output aside: {e}"))
        })?;
    }
    if let Err(e) = std::fs::rename(tmp, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        return Err(ExportError::io(
            out,
            format!("cannot move the export into place: {e}"),
        ));
    }
    if had_old {
        let _ = match old.is_dir() {
            true => std::fs::remove_dir_all(&old),
            false => std::fs::remove_file(&old),
        };
    }
    lmforge_files::sync_dir(&parent(out)).map_err(|e| ExportError::io(out, e))
}

/// Writes the file `out` atomically from `fill`.
pub(crate) fn file(
    out: &Path,
    force: bool,
    fill: impl FnOnce(&mut BufWriter<&mut File>) -> std::io::Result<()>,
) -> Result<()> {
    if out.is_dir() {
        if !force {
            return Err(ExportError::Usage {
                flag: "--out",
                reason: format!(
                    "{} is a folder; a GGUF export is one file (e.g. model.gguf)",
                    out.display()
                ),
            });
        }
        std::fs::remove_dir_all(out)
            .map_err(|e| ExportError::io(out, format!("cannot replace: {e}")))?;
    }
    let root = parent(out);
    std::fs::create_dir_all(&root)
        .map_err(|e| ExportError::io(&root, format!("cannot create: {e}")))?;
    lmforge_files::write_atomic_with(out, |f: &mut File| -> std::io::Result<()> {
        let mut w = BufWriter::new(f);
        fill(&mut w)?;
        w.flush()
    })
    .map_err(|e| ExportError::io(out, format!("cannot write: {e}")))
}
