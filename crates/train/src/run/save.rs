//! Checkpoints of a run: `best/` (inference-only: weights, config, tokenizer) when val loss
//! improves, `last/` after every evaluation and on interruption, `step-N/` every
//! `ckpt_interval` steps (the newest `keep_last` kept), `epoch-N/` every `ckpt_every_epochs`
//! epochs. All but `best/` are resumable.

use lmforge_checkpoint::{
    prune_periodic, save_checkpoint, CheckpointParts, Resumable, TrainState, BEST, LAST,
    STATE_FORMAT,
};

use super::Run;
use crate::Result;

impl Run {
    /// After an evaluation: `last/`, and `best/` when val loss improved.
    pub fn save_evaluated(&self, improved: bool) -> Result<()> {
        if improved {
            self.save(&[LAST, BEST])
        } else {
            self.save(&[LAST])
        }
    }

    /// `epoch-N/` when an epoch ends and `ckpt_every_epochs` divides N (all kept); `step-N/`
    /// when `ckpt_interval` divides the step, pruning the older ones.
    pub fn save_periodic_if_due(&self) -> Result<()> {
        if let (Some(every), Some(epoch)) = (self.cfg.ckpt_every_epochs, self.epoch_ended()) {
            if epoch.is_multiple_of(every) {
                self.save(&[&format!("epoch-{epoch:04}")])?;
            }
        }
        match self.cfg.ckpt_interval {
            Some(every) if every > 0 && self.step.is_multiple_of(every) => {
                self.save(&[&format!("step-{:07}", self.step)])?;
                prune_periodic(&self.folder.checkpoints(), self.cfg.keep_last)?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Writes the checkpoints `names` of the current state (`best` inference-only).
    pub fn save(&self, names: &[&str]) -> Result<()> {
        let state = self.train_state();
        for name in names {
            let resume = (*name != BEST).then_some(Resumable {
                optimizer: &self.opt,
                state: &state,
            });
            let parts = CheckpointParts {
                model: &self.model,
                tokenizer: &self.tokenizer,
                resume,
            };
            save_checkpoint(&self.folder.checkpoints(), name, &parts)?;
        }
        Ok(())
    }

    fn train_state(&self) -> TrainState {
        let data_dir = self
            .data_dir
            .canonicalize()
            .unwrap_or(self.data_dir.clone());
        TrainState {
            format: STATE_FORMAT,
            lmforge_version: env!("CARGO_PKG_VERSION").into(),
            step: self.step,
            evaluated_at: self.evaluated_at,
            best_val_loss: self.early.best,
            early_stopping: (&self.early).into(),
            sampler: self.sampler.state().clone(),
            dropout_passes: self.model.dropout_passes(),
            tokens_seen: self.tokens_seen,
            elapsed_s: self.clock.elapsed_s(),
            lr: self.lr,
            data_dir: data_dir.display().to_string(),
            tokenizer_fingerprint: self.tokenizer.fingerprint(),
            plateau: self.plateau,
        }
    }
}
