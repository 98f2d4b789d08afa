//! Evaluation: mean loss on the fixed train and val batches (dropout off), logged to
//! `metrics.jsonl`, drawn into `loss.png`, and fed to early stopping.

use std::path::Path;

use lmforge_data::EvalBatches;
use lmforge_model::Gpt;

use super::folder::{METRICS_FILE, PLOT_FILE, SAMPLES_FILE};
use super::step::non_finite;
use super::Run;
use crate::metrics::{append_record, append_sample, plot_losses, EvalRecord, SampleRecord};
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
        let val_loss = self.loss_on(Batches::Val)?;
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
        let (improved, stop) = self.early.update(val_loss);
        self.evaluated_at = Some(self.step);
        self.last_val = Some(val_loss);
        self.progress.println(&format!(
            "step {}: train loss {train_loss:.4}, val loss {val_loss:.4}{}",
            self.step,
            if improved { " (best)" } else { "" }
        ));
        if stop {
            self.progress.println(&format!(
                "early stopping: val loss has not improved by {} for {} evaluations",
                self.cfg.min_delta, self.early.bad_evals
            ));
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

    fn loss_on(&mut self, which: Batches) -> Result<f32> {
        let batches = match which {
            Batches::Train => &self.train_eval,
            Batches::Val => &self.val_eval,
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
    let mut sum = 0.0f64;
    for i in 0..batches.len() {
        batches.fill(i, x, y)?;
        let loss = model
            .loss(x, y, b, t)
            .map_err(|e| non_finite(e, step, last_checkpoint))?;
        sum += loss as f64;
    }
    model.set_training(true);
    Ok((sum / batches.len().max(1) as f64) as f32)
}
