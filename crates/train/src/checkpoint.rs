//! Checkpoint folders, written atomically.
//!
//! A checkpoint is a folder: `model.safetensors` + `config.json` (nanoGPT names, loadable by
//! `lmforge generate` and by PyTorch nanoGPT code), the tokenizer file, and for training
//! checkpoints `optimizer.safetensors` + `state.json`. It is written under a temporary name
//! and renamed into place; the previous folder of the same name is moved aside first and
//! deleted last, so a crash at any moment leaves a loadable checkpoint (`last`, or the moved
//! `.old-last-*` that [`find_checkpoint`] falls back to).

use std::path::{Path, PathBuf};

use lmforge_data::SamplerState;
use lmforge_model::{io, AdamW, Gpt};
use lmforge_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::early_stop::EarlyStopping;
use crate::{Result, TrainError};

/// Version of `state.json`.
pub const STATE_FORMAT: u32 = 1;

/// Everything besides weights and optimizer moments needed to continue a run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub format: u32,
    pub lmforge_version: String,
    /// Optimizer steps completed.
    pub step: usize,
    /// The step whose evaluation already ran (and was logged) before this save.
    pub evaluated_at: Option<usize>,
    pub best_val_loss: Option<f32>,
    pub early_stopping: EarlyStopping,
    pub sampler: SamplerState,
    /// Dropout-mask position ([`Gpt::dropout_passes`]).
    pub dropout_passes: u64,
    pub tokens_seen: u64,
    pub elapsed_s: f64,
    /// Learning rate of the last step taken.
    pub lr: f32,
    pub data_dir: String,
    pub tokenizer_fingerprint: String,
}

/// What goes into a checkpoint folder.
pub struct CheckpointParts<'a> {
    pub model: &'a Gpt,
    pub tokenizer: &'a Tokenizer,
    pub optimizer: Option<&'a AdamW>,
    pub state: Option<&'a TrainState>,
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
        .map_err(|e| TrainError::io(root, format!("cannot create checkpoint folder: {e}")))?;
    let pid = std::process::id();
    let tmp = root.join(format!(".tmp-{name}-{pid}"));
    let _ = std::fs::remove_dir_all(&tmp);
    let result =
        write_parts(&tmp, parts, fail_after).and_then(|_| swap_into_place(root, name, &tmp));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn write_parts(dir: &Path, parts: &CheckpointParts, fail_after: Option<usize>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, format!("cannot create: {e}")))?;
    let mut written = 0;
    let mut check = |what: &str| -> Result<()> {
        written += 1;
        if fail_after.is_some_and(|n| written > n) {
            return Err(TrainError::io(
                &dir.join(what),
                "simulated failure while writing the checkpoint",
            ));
        }
        Ok(())
    };
    check("config.json")?;
    io::save_config(parts.model.config(), &dir.join(io::CONFIG_FILE))?;
    check("model.safetensors")?;
    io::save_params(parts.model, &dir.join(io::MODEL_FILE))?;
    check("tokenizer")?;
    parts
        .tokenizer
        .save(&dir.join(parts.tokenizer.file_name()))?;
    if let Some(opt) = parts.optimizer {
        check("optimizer.safetensors")?;
        io::save_optimizer(opt, parts.model, &dir.join("optimizer.safetensors"))?;
    }
    if let Some(state) = parts.state {
        check("state.json")?;
        let json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::io(dir, e))?;
        lmforge_tokenizer::write_atomic(&dir.join("state.json"), &json)?;
    }
    Ok(())
}

fn swap_into_place(root: &Path, name: &str, tmp: &Path) -> Result<PathBuf> {
    let target = root.join(name);
    let old = root.join(format!(".old-{name}-{}", std::process::id()));
    let had_old = target.exists();
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&target, &old).map_err(|e| {
            TrainError::io(
                &target,
                format!("cannot move the previous checkpoint aside: {e}"),
            )
        })?;
    }
    if let Err(e) = std::fs::rename(tmp, &target) {
        if had_old {
            let _ = std::fs::rename(&old, &target);
        }
        return Err(TrainError::io(
            &target,
            format!("cannot move the new checkpoint into place: {e}"),
        ));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(target)
}

/// The folder `root/name`, or — after a crash between the two renames — the moved-aside
/// previous one.
pub fn find_checkpoint(root: &Path, name: &str) -> Option<PathBuf> {
    let direct = root.join(name);
    if direct.join("state.json").is_file() || direct.join("config.json").is_file() {
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

/// Reads `state.json` of a training checkpoint.
pub fn load_state(dir: &Path) -> Result<TrainState> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| TrainError::io(&path, format!("cannot read: {e}")))?;
    let state: TrainState = serde_json::from_str(&text)
        .map_err(|e| TrainError::io(&path, format!("corrupted: {e}")))?;
    if state.format != STATE_FORMAT {
        return Err(TrainError::io(
            &path,
            format!(
                "state format {} is not supported (expected {STATE_FORMAT})",
                state.format
            ),
        ));
    }
    Ok(state)
}

/// Removes periodic `step-*` checkpoints beyond the newest `keep`.
pub fn prune_periodic(root: &Path, keep: usize) -> Result<()> {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| TrainError::io(root, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("step-"))
        .map(|e| e.path())
        .collect();
    steps.sort();
    while steps.len() > keep {
        let p = steps.remove(0);
        std::fs::remove_dir_all(&p).map_err(|e| TrainError::io(&p, e))?;
    }
    Ok(())
}
