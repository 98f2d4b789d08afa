//! Finding checkpoints: by name inside `checkpoints/`, from a run folder, and pruning the
//! periodic ones.

use std::path::{Path, PathBuf};

use lmforge_model::io;

use crate::state::STATE_FILE;
use crate::{CheckpointError, Result, BEST, CHECKPOINTS_DIR, LAST};

/// The folder `root/name`, or — after a crash between the two renames of a save — the
/// moved-aside previous one (`.old-NAME-PID`).
pub fn find_checkpoint(root: &Path, name: &str) -> Option<PathBuf> {
    let direct = root.join(name);
    if direct.join(STATE_FILE).is_file() || direct.join(io::CONFIG_FILE).is_file() {
        return Some(direct);
    }
    let prefix = format!(".old-{name}-");
    let mut olds: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    olds.sort();
    olds.pop()
}

/// The checkpoint folder `dir` names: `dir` itself when it holds `config.json`, else — for a
/// run folder — its `checkpoints/best`, then `checkpoints/last` (also accepts `best`/`last`
/// directly under `dir`).
pub fn resolve_checkpoint_dir(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(CheckpointError::bad(dir, "no such folder"));
    }
    if dir.join(io::CONFIG_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    for root in [dir.join(CHECKPOINTS_DIR), dir.to_path_buf()] {
        for name in [BEST, LAST] {
            if let Some(found) = find_checkpoint(&root, name) {
                return Ok(found);
            }
        }
    }
    Ok(dir.to_path_buf())
}

/// Names of the checkpoints in `root` (`best`, `last`, `step-N`, and crash leftovers
/// `.old-*`), sorted; empty when `root` does not exist.
pub fn list_checkpoints(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".tmp-"))
        .collect();
    names.sort();
    names
}

/// Removes periodic `step-*` checkpoints beyond the newest `keep`.
pub fn prune_periodic(root: &Path, keep: usize) -> Result<()> {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| CheckpointError::io(root, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("step-"))
        .map(|e| e.path())
        .collect();
    steps.sort();
    while steps.len() > keep {
        let p = steps.remove(0);
        std::fs::remove_dir_all(&p).map_err(|e| CheckpointError::io(&p, e))?;
    }
    Ok(())
}
