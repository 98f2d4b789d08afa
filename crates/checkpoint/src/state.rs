//! `state.json`: everything besides weights and optimizer moments that a resumed run needs
//! to continue with the same numbers as an uninterrupted one.

use std::path::Path;

use lmforge_data::SamplerState;
use serde::{Deserialize, Serialize};

use crate::{CheckpointError, Result};

/// File name of the training state inside a resumable checkpoint.
pub const STATE_FILE: &str = "state.json";

/// Version of `state.json`.
pub const STATE_FORMAT: u32 = 1;

/// Everything besides weights and optimizer moments needed to continue a run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// [`STATE_FORMAT`] of the writer.
    pub format: u32,
    /// lmforge version of the writer.
    pub lmforge_version: String,
    /// Optimizer steps completed.
    pub step: usize,
    /// The step whose evaluation already ran (and was logged) before this save.
    pub evaluated_at: Option<usize>,
    /// Lowest validation loss so far.
    pub best_val_loss: Option<f32>,
    /// Early-stopping counters.
    pub early_stopping: EarlyStopState,
    /// The batch sampler's position and RNG.
    pub sampler: SamplerState,
    /// Dropout-mask position (`Gpt::dropout_passes`).
    pub dropout_passes: u64,
    /// Training tokens consumed so far.
    pub tokens_seen: u64,
    /// Training wall time so far, over all invocations.
    pub elapsed_s: f64,
    /// Learning rate of the last step taken.
    pub lr: f32,
    /// The prepared data folder (absolute).
    pub data_dir: String,
    /// Fingerprint of the tokenizer the data was prepared with.
    pub tokenizer_fingerprint: String,
    /// `lr_schedule = plateau`: the scheduler's state (absent in other runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plateau: Option<PlateauState>,
}

/// `ReduceLROnPlateau` state as saved (the policy lives in `lmforge-train`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlateauState {
    /// The current (possibly reduced) learning rate.
    pub lr: f32,
    /// Lowest val loss so far (torch's `best`; unset before the first evaluation).
    pub best: Option<f32>,
    /// Evaluations since the last improvement (torch's `num_bad_epochs`).
    pub bad_evals: usize,
}

/// Early-stopping counters as saved (the policy lives in `lmforge-train`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopState {
    /// Evaluations without improvement before stopping (unset = never stop).
    pub patience: Option<usize>,
    /// Improvements smaller than this do not count.
    pub min_delta: f32,
    /// Lowest validation loss so far.
    pub best: Option<f32>,
    /// Evaluations since the last improvement.
    pub bad_evals: usize,
}

impl TrainState {
    /// Parses `state.json` text; `path` names the file in errors.
    pub fn from_json(path: &Path, text: &str) -> Result<TrainState> {
        let state: TrainState = serde_json::from_str(text).map_err(|e| {
            CheckpointError::bad(
                path,
                format!(
                    "corrupted ({e}); resume from another checkpoint (step-N/) or start a new run"
                ),
            )
        })?;
        if state.format != STATE_FORMAT {
            return Err(CheckpointError::bad(
                path,
                format!(
                    "state format {} is not supported (expected {STATE_FORMAT})",
                    state.format
                ),
            ));
        }
        Ok(state)
    }

    /// The state as pretty JSON; `path` names the file in errors.
    pub fn to_json(&self, path: &Path) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| CheckpointError::io(path, e))
    }
}

/// Reads `state.json` of the resumable checkpoint `dir`.
pub fn load_state(dir: &Path) -> Result<TrainState> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CheckpointError::bad(
                &path,
                "missing: this checkpoint holds weights only (best/ is for inference); resume from last/ or step-N/",
            )
        } else {
            CheckpointError::io(&path, format!("cannot read: {e}"))
        }
    })?;
    TrainState::from_json(&path, &text)
}
