//! Evaluation: mean loss on the train and val batches (dropout off; fixed, fresh random or
//! the whole val split by `eval_mode`), logged to `metrics.jsonl`, drawn into `loss.png`,
//! and fed to early stopping and the plateau schedule. Without a val split only the train
//! loss is measured.

use std::path::Path;

use lmforge_data::EvalBatches;
use lmforge_model::Gpt;

use super::folder::{METRICS_FILE, PLOT_FILE, SAMPLES_FILE};
use super::step::non_finite;
use super::Run;
use crate::metrics::{append_record, append_sample, plot_losses, EvalRecord, SampleRecord};
use crate::modes::EvalMode;
use crate::schedule::plateau_step;
use crate::tb::{SAMPLE_TAG, SCALAR_TAGS};
use crate::Result;

/// The outcome of one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation {
    /// Mean loss over the fixed train batches.
    pub train_loss: f32,
    /// Mean loss over the fixed val batches.
    pub val_loss: f32,
    /// Lowest val loss so far (save `best/`).
    pub improved: bool,
    /// Early stopping says stop.
    pub stop: bool,
}

impl Run {
    /// Evaluates at the current step: losses, a metrics line, the plot, early stopping.
    pub fn evaluate(&mut self) -> Result<Evaluation> {
        let train_loss = self.loss_on(Batches::Train)?;
        let val_loss = match self.val_eval.is_some() {
            true => self.loss_on(Batches::Val)?,
            false => f32::NAN,
        };
        let record = EvalRecord {
            step: self.step,
            train_loss,
            val_loss,
            lr: self.lr,
            grad_norm: self.grad_norm,
            tokens_per_s: self.clock.take_window_rate(),
            elapsed_s: self.clock.elapsed_s(),
            dtype: self.model.precision().dtype().into(),
        };
        append_record(&self.folder.file(METRICS_FILE), &record)?;
        self.log_scalars(&record)?;
        self.records.push(record);
        self.log_sample()?;
        plot_losses(
            &self.records,
            &self.folder.file(PLOT_FILE),
            self.cfg.log_scale,
            &format!("{} — loss", self.cfg.run_name()),
        )?;
        self.evaluated_at = Some(self.step);
        if self.val_eval.is_none() {
            self.progress
                .println(&format!("step {}: train loss {train_loss:.4}", self.step));
            return Ok(Evaluation {
                train_loss,
                val_loss,
                improved: false,
                stop: false,
            });
        }
        let (improved, stop) = self.early.update(val_loss);
        self.last_val = Some(val_loss);
        let (cfg, plateau) = (&self.cfg, self.plateau.as_mut());
        let reduced = plateau
            .is_some_and(|p| plateau_step(p, val_loss, cfg.plateau_factor, cfg.plateau_patience));
        self.progress.println(&format!(
            "step {}: train loss {train_loss:.4}, val loss {val_loss:.4}{}",
            self.step,
            if improved { " (best)" } else { "" }
        ));
        if reduced {
            self.lr = self.scheduled_lr();
            self.progress
                .println(&format!("plateau: learning rate reduced to {:e}", self.lr));
        }
        if stop {
            self.progress.println(&self.stop_reason(val_loss));
        }
        Ok(Evaluation {
            train_loss,
            val_loss,
            improved,
            stop,
        })
    }

    /// The record's series as TensorBoard scalars.
    fn log_scalars(&mut self, r: &EvalRecord) -> Result<()> {
        let values = [
            r.train_loss,
            r.val_loss,
            r.lr,
            r.grad_norm,
            r.tokens_per_s as f32,
        ];
        let tagged: Vec<(&str, f32)> = SCALAR_TAGS.iter().copied().zip(values).collect();
        self.tb.scalars(self.step, &tagged)
    }

    /// Generates a sample with the caller's sampler (dropout off) into `samples.jsonl` and
    /// TensorBoard. A failed generation is reported and training goes on.
    fn log_sample(&mut self) -> Result<()> {
        let Some(sampler) = self.opts.sampler.clone() else {
            return Ok(());
        };
        self.model.set_training(false);
        let sample = (sampler.0)(&self.model, &self.tokenizer);
        self.model.set_training(true);
        let text = match sample {
            Ok(text) => text,
            Err(e) => {
                self.progress
                    .println(&format!("warning: no sample at step {}: {e}", self.step));
                return Ok(());
            }
        };
        let rec = SampleRecord {
            step: self.step,
            text,
        };
        append_sample(&self.folder.file(SAMPLES_FILE), &rec)?;
        self.tb.text(self.step, SAMPLE_TAG, &rec.text)
    }

    fn stop_reason(&self, val_loss: f32) -> String {
        match (self.cfg.stop_above_best, self.early.best) {
            (Some(tol), Some(best)) if val_loss > best + tol => format!(
                "early stopping: val loss {val_loss:.4} is more than {tol} above the best {best:.4}"
            ),
            _ => format!(
                "early stopping: val loss has not improved by {} for {} evaluations",
                self.cfg.min_delta, self.early.bad_evals
            ),
        }
    }

    fn loss_on(&mut self, which: Batches) -> Result<f32> {
        let fresh;
        let batches = match (which, self.cfg.eval_mode()?) {
            (_, EvalMode::Random) => {
                // fresh windows each evaluation, from (seed, step): a resumed run redraws
                // the same ones
                let (file, salt) = match which {
                    Batches::Train => (&self.train_file, 0x7EA1),
                    Batches::Val => (&self.val_file, 0x7A1),
                };
                let step = self.step as u64 + 1;
                let seed = self.cfg.seed ^ salt ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let (b, t) = self.shape;
                fresh = EvalBatches::new(file.clone(), self.cfg.eval_iters, b, t, seed)?;
                &fresh
            }
            (Batches::Train, _) => &self.train_eval,
            (Batches::Val, _) => match &self.val_eval {
                Some(v) => v,
                None => return Ok(f32::NAN),
            },
        };
        let last = self.folder.checkpoints().join(lmforge_checkpoint::LAST);
        estimate_loss(
            &mut self.model,
            batches,
            (&mut self.x, &mut self.y),
            self.shape,
            self.step,
            &last,
        )
    }
}

#[derive(Clone, Copy)]
enum Batches {
    Train,
    Val,
}

/// Mean loss over the fixed evaluation batches, dropout off; `(b, t)` is the batch shape.
fn estimate_loss(
    model: &mut Gpt,
    batches: &EvalBatches,
    (x, y): (&mut [u32], &mut [i32]),
    (b, t): (usize, usize),
    step: usize,
    last_checkpoint: &Path,
) -> Result<f32> {
    model.set_training(false);
    // each batch's mean weighted by its scored targets (all of them except in full mode)
    let (mut sum, mut scored) = (0.0f64, 0usize);
    for i in 0..batches.len() {
        batches.fill(i, x, y)?;
        let loss = model
            .loss(x, y, b, t)
            .map_err(|e| non_finite(e, step, last_checkpoint))?;
        sum += loss as f64 * batches.scored(i) as f64;
        scored += batches.scored(i);
    }
    model.set_training(true);
    Ok((sum / scored.max(1) as f64) as f32)
}
