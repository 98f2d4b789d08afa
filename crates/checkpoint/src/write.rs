//! Writing a checkpoint folder atomically.
//!
//! The folder is written as `ROOT/.tmp-NAME-PID/` (every file itself written atomically),
//! then the previous `NAME/` is moved to `.old-NAME-PID/`, the new one renamed into place,
//! and the old one deleted. A crash at any moment leaves a loadable checkpoint: `NAME/`,
//! or the moved-aside `.old-NAME-*` that [`crate::find_checkpoint`] falls back to.

use std::path::{Path, PathBuf};

use lmforge_model::{io, AdamW, Gpt};
use lmforge_tokenizer::Tokenizer;

use crate::state::{TrainState, STATE_FILE};
use crate::{CheckpointError, Result};

/// What goes into a checkpoint folder.
pub struct CheckpointParts<'a> {
    /// Weights and `config.json`.
    pub model: &'a Gpt,
    /// Saved beside the weights: a checkpoint is self-contained for inference.
    pub tokenizer: &'a Tokenizer,
    /// `None`: inference-only (`best/`); `Some`: resumable (`last/`, `step-N/`).
    pub resume: Option<Resumable<'a>>,
}

/// The extra parts of a resumable checkpoint.
pub struct Resumable<'a> {
    /// AdamW moments and step, saved as `optimizer.safetensors`.
    pub optimizer: &'a AdamW,
    /// Saved as `state.json`.
    pub state: &'a TrainState,
}

/// Writes `root/name` atomically (see module docs). Returns the folder's path.
pub fn save_checkpoint(root: &Path, name: &str, parts: &CheckpointParts) -> Result<PathBuf> {
    save_checkpoint_failing_after(root, name, parts, None)
}

/// [`save_checkpoint`] that fails after writing `fail_after` files (a simulated crash or
/// full disk, for tests).
#[doc(hidden)]
pub fn save_checkpoint_failing_after(
    root: &Path,
    name: &str,
    parts: &CheckpointParts,
    fail_after: Option<usize>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(root)
        .map_err(|e| CheckpointError::io(root, format!("cannot create checkpoint folder: {e}")))?;
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result =
        write_parts(&tmp, parts, fail_after).and_then(|_| swap_into_place(root, name, &tmp));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes every file of `parts` into the new folder `dir`, counting files for tests.
fn write_parts(dir: &Path, parts: &CheckpointParts, fail_after: Option<usize>) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CheckpointError::io(dir, format!("cannot create: {e}")))?;
    let mut written = 0;
    let mut check = |file: &str| -> Result<()> {
        written += 1;
        match fail_after {
            Some(n) if written > n => Err(CheckpointError::io(
                &dir.join(file),
                "simulated failure while writing the checkpoint",
            )),
            _ => Ok(()),
        }
    };
    check(io::CONFIG_FILE)?;
    io::save_config(parts.model.config(), &dir.join(io::CONFIG_FILE))?;
    check(io::MODEL_FILE)?;
    io::save_params(parts.model, &dir.join(io::MODEL_FILE))?;
    check("tokenizer")?;
    parts
        .tokenizer
        .save(&dir.join(parts.tokenizer.file_name()))?;
    if let Some(resume) = &parts.resume {
        check(io::OPTIMIZER_FILE)?;
        io::save_optimizer(resume.optimizer, parts.model, &dir.join(io::OPTIMIZER_FILE))?;
        check(STATE_FILE)?;
        let path = dir.join(STATE_FILE);
        lmforge_files::write_atomic(&path, &resume.state.to_json(&path)?)
            .map_err(|e| CheckpointError::io(&path, format!("cannot write: {e}")))?;
    }
    Ok(())
}

/// Replaces `root/name` by the finished folder `tmp` (old one aside, new one in, old gone).
fn swap_into_place(root: &Path, name: &str, tmp: &Path) -> Result<PathBuf> {
    let target = root.join(name);
    let old = root.join(format!(".old-{name}-{}", std::process::id()));
    let had_old = target.exists();
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&target, &old).map_err(|e| {
            CheckpointError::io(
                &target,
                format!("cannot move the previous checkpoint aside: {e}"),
            )
        })?;
    }
    if let Err(e) = std::fs::rename(tmp, &target) {
        if had_old {
            let _ = std::fs::rename(&old, &target);
        }
        return Err(CheckpointError::io(
            &target,
            format!("cannot move the new checkpoint into place: {e}"),
        ));
    }
    lmforge_files::sync_dir(root).map_err(|e| CheckpointError::io(root, e))?;
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(target)
}
