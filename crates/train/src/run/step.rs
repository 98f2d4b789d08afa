//! One optimizer step: `grad_accum` micro-batches of forward → loss → backward, then
//! gradient clipping and AdamW at the scheduled learning rate.

use std::path::Path;
use std::time::Instant;

use lmforge_checkpoint::LAST;

use super::Run;
use crate::{Result, TrainError};

impl Run {
    /// Takes one optimizer step and reports progress.
    pub fn step(&mut self) -> Result<()> {
        let started = Instant::now();
        self.lr = self.scheduled_lr();
        let cfg = &self.cfg;
        let last = self.folder.checkpoints().join(LAST);
        let (b, t) = self.shape;
        let accum = cfg.grad_accum;
        self.model.zero_grad();
        let mut loss = 0.0f32;
        for _ in 0..accum {
            self.sampler.next_batch(&mut self.x, &mut self.y)?;
            let micro = self
                .model
                .forward(&self.x, Some(&self.y), b, t)
                .map_err(|e| non_finite(e, self.step, &last))?
                .unwrap_or(f32::NAN);
            self.model.backward_scaled(1.0 / accum as f32)?;
            loss += micro / accum as f32;
        }
        self.grad_norm = if cfg.grad_clip > 0.0 {
            self.model.clip_grad_norm(cfg.grad_clip)
        } else {
            self.model.grad_norm()
        };
        if !self.grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step: self.step,
                value: format!("{} (gradient norm)", self.grad_norm),
                last: last.display().to_string(),
            });
        }
        self.opt.step(&mut self.model, self.lr)?;
        self.step += 1;
        self.tokens_seen += self.tokens_per_step;
        let secs = started.elapsed().as_secs_f64();
        self.clock.add_step(self.tokens_per_step, secs);
        let tokens_per_s = self.tokens_per_step as f64 / secs.max(1e-9);
        self.progress
            .step(self.step, self.max_iters, loss, self.lr, tokens_per_s);
        Ok(())
    }
}

/// A model error, with a non-finite loss turned into the error that names the step and the
/// last good checkpoint.
pub(super) fn non_finite(e: lmforge_model::Error, step: usize, last: &Path) -> TrainError {
    match e {
        lmforge_model::Error::NonFiniteLoss(v) => TrainError::NonFinite {
            step,
            value: v.to_string(),
            last: last.display().to_string(),
        },
        other => other.into(),
    }
}
