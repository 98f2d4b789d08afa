//! Encoder–decoder checkpoints and resume. A checkpoint folder holds `config.json`
//! (`"arch": "encoder-decoder"`), `model.safetensors`, the pair data's `pairs.json` and
//! tokenizer file(s) (what generation needs: the specials and both tokenizers), and when
//! resumable `optimizer.safetensors` and `state.json` ([`Seq2seqState`]). A folder is written
//! as `.tmp-NAME-PID/` and renamed into place.

use std::path::{Path, PathBuf};

use lmforge_checkpoint::{find_checkpoint, EarlyStopState, BEST, LAST, STATE_FILE};
use lmforge_data::pairs::PairSamplerState;
use lmforge_model::io::OPTIMIZER_FILE;
use lmforge_model::seq2seq::io as s2s_io;
use serde::{Deserialize, Serialize};

use super::Seq2seqRun;
use crate::config::TrainConfig;
use crate::run::folder::CONFIG_FILE;
use crate::{Result, TrainError};

/// Version of an encoder–decoder `state.json`.
pub const SEQ2SEQ_STATE_FORMAT: u32 = 1;

/// What a resumed encoder–decoder run needs besides weights and moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seq2seqState {
    /// [`SEQ2SEQ_STATE_FORMAT`]
    pub format: u32,
    /// always `encoder-decoder`
    pub arch: String,
    /// optimizer steps completed
    pub step: usize,
    /// the step whose evaluation already ran
    pub evaluated_at: Option<usize>,
    /// dropout-mask position (forward passes so far; absent in older states: 0)
    #[serde(default)]
    pub dropout_passes: u64,
    /// early-stopping counters
    pub early_stopping: EarlyStopState,
    /// the pair sampler's position
    pub sampler: PairSamplerState,
    /// target tokens trained on
    pub tokens_seen: u64,
    /// training wall time over all invocations
    pub elapsed_s: f64,
    /// learning rate of the last step
    pub lr: f32,
    /// the pair-data folder (absolute)
    pub data_dir: String,
}

impl Seq2seqRun {
    /// Writes the checkpoints `names` (`best` inference-only).
    pub(super) fn save(&self, names: &[&str]) -> Result<()> {
        let root = self.folder.checkpoints();
        std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
        for name in names {
            let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
            self.write_into(&tmp, *name != BEST)?;
            let dst = root.join(name);
            let old = root.join(format!(".old-{name}-{}", std::process::id()));
            if dst.exists() {
                std::fs::rename(&dst, &old).map_err(|e| TrainError::io(&dst, e))?;
            }
            std::fs::rename(&tmp, &dst).map_err(|e| TrainError::io(&dst, e))?;
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(())
    }

    fn write_into(&self, dir: &Path, resumable: bool) -> Result<()> {
        s2s_io::save_model_dir(&self.model, dir)?;
        let d = &self.data;
        let mut files = vec![
            PathBuf::from("pairs.json"),
            PathBuf::from(&d.meta.src.tokenizer.file),
            PathBuf::from(&d.meta.tgt.tokenizer.file),
        ];
        files.dedup();
        for f in files {
            let from = d.dir.join(&f);
            let to = dir.join(from.file_name().unwrap_or_default());
            std::fs::copy(&from, &to).map_err(|e| {
                TrainError::io(&from, format!("cannot copy into the checkpoint: {e}"))
            })?;
        }
        if !resumable {
            return Ok(());
        }
        s2s_io::save_optimizer(&self.opt, &self.model, &dir.join(OPTIMIZER_FILE))?;
        let data_dir = d.dir.canonicalize().unwrap_or(d.dir.clone());
        let state = Seq2seqState {
            format: SEQ2SEQ_STATE_FORMAT,
            arch: "encoder-decoder".into(),
            step: self.step,
            evaluated_at: self.evaluated_at,
            dropout_passes: self.model.dropout_passes(),
            early_stopping: (&self.early).into(),
            sampler: self.sampler.state().clone(),
            tokens_seen: self.tokens_seen,
            elapsed_s: self.clock.elapsed_s(),
            lr: self.lr,
            data_dir: data_dir.display().to_string(),
        };
        let path = dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(&state).map_err(|e| TrainError::io(&path, e))?;
        lmforge_files::write_atomic(&path, &json).map_err(|e| TrainError::io(&path, e))
    }
}

/// Checks that `dir` holds an encoder–decoder run `cfg` may continue; returns its `last/`
/// folder and state.
pub(super) fn check_resumable(cfg: &TrainConfig, dir: &Path) -> Result<(PathBuf, Seq2seqState)> {
    let refuse = |reason: String| TrainError::Resume {
        path: dir.display().to_string(),
        reason,
    };
    let saved = TrainConfig::load(&dir.join(CONFIG_FILE)).map_err(|e| refuse(e.to_string()))?;
    let changes = saved.incompatible_changes(cfg)?;
    if !changes.is_empty() {
        return Err(refuse(format!(
            "the config changed incompatibly: {}",
            changes.join(", ")
        )));
    }
    let root = dir.join(lmforge_checkpoint::CHECKPOINTS_DIR);
    let last = find_checkpoint(&root, LAST)
        .ok_or_else(|| refuse("no checkpoints/last (the run saved nothing yet)".into()))?;
    let path = last.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let state: Seq2seqState = serde_json::from_str(&text)
        .map_err(|e| TrainError::io(&path, format!("not an encoder-decoder state: {e}")))?;
    Ok((last, state))
}
