//! A training run: [`train`] is the loop, [`Run`] holds everything it works on.
//!
//! The loop reads like nanoGPT's `train.py`: evaluate when due (log, plot, checkpoint,
//! early stopping), stop when done or interrupted, else take one optimizer step. The parts
//! live in their own files:
//! - [`open`]: a new run or a resumed one — run folder, data, model, optimizer, sampler;
//! - `init`: `init_from` — the source a fine-tuning run starts from (any `lmforge import` source);
//! - [`folder`]: the run folder's lock and its refusal to overwrite an earlier run;
//! - [`eval`]: loss on the fixed evaluation batches, metrics and the loss plot;
//! - [`step`]: one optimizer step over `grad_accum` micro-batches;
//! - [`save`]: checkpoints (`best/` inference-only; `last/`, `step-N/` resumable).
//!
//! Resume is exact: `checkpoints/last` holds the weights, AdamW moments and step, the
//! sampler's RNG state, the dropout-mask position and which step's evaluation already ran,
//! so a resumed run continues with the same numbers as an uninterrupted one (same seed and
//! thread count).

pub mod eval;
pub mod folder;
mod init;
pub mod open;
pub mod save;
pub mod seq2seq;
pub mod step;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lmforge_checkpoint::PlateauState;
use lmforge_checkpoint::LAST;
use lmforge_data::{BatchSampler, EvalBatches, TokenFile};
use lmforge_model::{AdamW, Gpt};
use lmforge_tokenizer::Tokenizer;

use crate::config::TrainConfig;
use crate::early_stop::EarlyStopping;
use crate::metrics::EvalRecord;
use crate::progress::Progress;
use crate::tb::TbWriter;
use crate::Result;
use folder::RunFolder;

/// How to run (beyond the config).
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Continue the run in this folder from `checkpoints/last`.
    pub resume: Option<PathBuf>,
    /// Start a new run even if the run folder holds an earlier one, deleting its
    /// checkpoints, metrics, plot and config first.
    pub overwrite: bool,
    /// Set (e.g. by Ctrl-C) to finish the current step, save `last/` and return.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Behave as if interrupted after this many steps of this invocation (tests).
    pub stop_after: Option<usize>,
    /// No progress output.
    pub quiet: bool,
    /// Generates the sample logged at each evaluation (`samples.jsonl`, TensorBoard); none:
    /// no samples during training.
    pub sampler: Option<EvalSampler>,
}

/// A sample generator for evaluations: given the model and tokenizer, the sample text or an
/// error message. The caller supplies it because generation is `lmforge-generate`'s, which
/// this crate does not depend on.
pub type SampleFn = dyn Fn(&Gpt, &Tokenizer) -> std::result::Result<String, String> + Send + Sync;

/// [`SampleFn`], shareable and printable.
#[derive(Clone)]
pub struct EvalSampler(pub Arc<SampleFn>);

impl std::fmt::Debug for EvalSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvalSampler(..)")
    }
}

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Reached `max_iters` (or `max_epochs`).
    Finished,
    /// Validation loss stopped improving (`patience`).
    EarlyStopped,
    /// Ctrl-C (or `stop_after`): `last/` was saved for `--resume`.
    Interrupted,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The run folder.
    pub run_dir: PathBuf,
    /// The prepared data folder trained on.
    pub data_dir: PathBuf,
    /// Optimizer steps completed (over all invocations).
    pub steps: usize,
    /// The step count the run aims for.
    pub max_iters: usize,
    /// Why it ended.
    pub end: EndReason,
    /// Lowest validation loss.
    pub best_val_loss: Option<f32>,
    /// Validation loss of the latest evaluation of this invocation.
    pub last_val_loss: Option<f32>,
    /// Wall time of this invocation.
    pub elapsed_s: f64,
    /// Training throughput of this invocation (evaluation excluded).
    pub tokens_per_s: f64,
    /// Model parameters.
    pub num_params: usize,
}

/// Trains according to `cfg`; see the module docs. With `opts.resume`, `cfg` must be the
/// run's saved config plus only resumable changes (see [`crate::config::RESUMABLE_CHANGES`]).
/// `arch = "encoder-decoder"` runs a [`seq2seq::Seq2seqRun`] through the same loop.
pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> Result<TrainReport> {
    match cfg.arch.as_str() {
        "encoder-decoder" => drive(seq2seq::Seq2seqRun::open(cfg, opts)?),
        "gpt" => drive(Run::open(cfg, opts)?),
        other => Err(crate::TrainError::Config(format!(
            "arch: '{other}' is not one of gpt, encoder-decoder"
        ))),
    }
}

/// The seam between the loop and a model kind: what [`drive`] needs from a run.
pub trait RunLoop {
    /// An evaluation is due at this step and has not run yet.
    fn eval_due(&self) -> bool;
    /// Evaluate: losses, a metrics line, the plot, early stopping.
    fn evaluate(&mut self) -> Result<eval::Evaluation>;
    /// After an evaluation: `last/`, and `best/` when val loss improved.
    fn save_evaluated(&self, improved: bool) -> Result<()>;
    /// The run took its last step.
    fn finished(&self) -> bool;
    /// Ctrl-C, or `stop_after` steps of this invocation are done.
    fn interrupted(&self) -> bool;
    /// Save `last/` (on interruption).
    fn save_last(&self) -> Result<()>;
    /// One optimizer step.
    fn step(&mut self) -> Result<()>;
    /// `step-N/` when due.
    fn save_periodic_if_due(&self) -> Result<()>;
    /// End the run and report.
    fn finish(self, end: EndReason) -> TrainReport;
}

/// The loop: evaluate when due (log, plot, checkpoint, early stopping), stop when done or
/// interrupted, else take one optimizer step.
pub fn drive<R: RunLoop>(mut run: R) -> Result<TrainReport> {
    let end = loop {
        if run.eval_due() {
            let eval = run.evaluate()?;
            run.save_evaluated(eval.improved)?;
            if eval.stop {
                break EndReason::EarlyStopped;
            }
        }
        if run.finished() {
            break EndReason::Finished;
        }
        if run.interrupted() {
            run.save_last()?;
            break EndReason::Interrupted;
        }
        run.step()?;
        run.save_periodic_if_due()?;
    };
    Ok(run.finish(end))
}

impl RunLoop for Run {
    fn eval_due(&self) -> bool {
        Run::eval_due(self)
    }
    fn evaluate(&mut self) -> Result<eval::Evaluation> {
        Run::evaluate(self)
    }
    fn save_evaluated(&self, improved: bool) -> Result<()> {
        Run::save_evaluated(self, improved)
    }
    fn finished(&self) -> bool {
        self.step >= self.max_iters
    }
    fn interrupted(&self) -> bool {
        Run::interrupted(self)
    }
    fn save_last(&self) -> Result<()> {
        self.save(&[LAST])
    }
    fn step(&mut self) -> Result<()> {
        Run::step(self)
    }
    fn save_periodic_if_due(&self) -> Result<()> {
        Run::save_periodic_if_due(self)
    }
    fn finish(self, end: EndReason) -> TrainReport {
        Run::finish(self, end)
    }
}

/// Everything a run works on: the model and optimizer, data, counters, and the run folder
/// (held locked while the run is open).
pub struct Run {
    cfg: TrainConfig,
    opts: RunOptions,
    folder: RunFolder,
    data_dir: PathBuf,
    tokenizer: Tokenizer,
    model: Gpt,
    opt: AdamW,
    sampler: BatchSampler,
    train_eval: EvalBatches,
    /// The val batches (fixed or full mode); none without a val split.
    val_eval: Option<EvalBatches>,
    /// The splits, for fresh batches each evaluation (`eval_mode = random`).
    train_file: Arc<TokenFile>,
    val_file: Arc<TokenFile>,
    /// Optimizer steps per epoch (epoch evaluations and checkpoints).
    steps_per_epoch: usize,
    /// `lr_schedule = plateau`: ReduceLROnPlateau's state.
    plateau: Option<PlateauState>,
    /// Batch rows and block length.
    shape: (usize, usize),
    /// Input and target token buffers, `batch × block` each.
    x: Vec<u32>,
    y: Vec<i32>,
    max_iters: usize,
    decay_iters: usize,
    tokens_per_step: u64,
    /// Optimizer steps completed.
    step: usize,
    steps_at_start: usize,
    /// The step whose evaluation already ran.
    evaluated_at: Option<usize>,
    early: EarlyStopping,
    tokens_seen: u64,
    lr: f32,
    grad_norm: f32,
    last_val: Option<f32>,
    records: Vec<EvalRecord>,
    /// TensorBoard events of this run.
    tb: TbWriter,
    clock: Clock,
    progress: Progress,
}

/// Wall time and throughput: since the last evaluation (logged) and over this invocation.
struct Clock {
    started: Instant,
    /// Training time of earlier invocations (resume).
    elapsed_before: f64,
    window: (u64, f64),
    total: (u64, f64),
}

impl Clock {
    fn new(elapsed_before: f64) -> Clock {
        Clock {
            started: Instant::now(),
            elapsed_before,
            window: (0, 0.0),
            total: (0, 0.0),
        }
    }

    /// Training time over all invocations.
    fn elapsed_s(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    fn add_step(&mut self, tokens: u64, secs: f64) {
        self.window = (self.window.0 + tokens, self.window.1 + secs);
        self.total = (self.total.0 + tokens, self.total.1 + secs);
    }

    /// Tokens per second since the last call (0 when no step ran), and restart the window.
    fn take_window_rate(&mut self) -> f64 {
        let rate = rate(self.window);
        self.window = (0, 0.0);
        rate
    }
}

fn rate((tokens, secs): (u64, f64)) -> f64 {
    if secs > 0.0 {
        tokens as f64 / secs
    } else {
        0.0
    }
}

impl Run {
    /// Optimizer steps completed.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// True when an evaluation is due at this step and has not run yet.
    pub fn eval_due(&self) -> bool {
        let due = self.step.is_multiple_of(self.cfg.eval_interval)
            || self.step == self.max_iters
            || (self.cfg.eval_every_epoch && self.epoch_ended().is_some());
        due && self.evaluated_at != Some(self.step)
    }

    /// The epoch (1-based) that ended with the last step, if one did.
    pub fn epoch_ended(&self) -> Option<usize> {
        let spe = self.steps_per_epoch;
        (self.step > 0 && self.step.is_multiple_of(spe)).then_some(self.step / spe)
    }

    /// The learning rate of the next step, by `lr_schedule`.
    fn scheduled_lr(&self) -> f32 {
        let cfg = &self.cfg;
        match (&self.plateau, cfg.lr_schedule.as_str()) {
            (Some(p), _) => p.lr,
            (None, "constant") => cfg.learning_rate,
            _ => crate::schedule::lr_at(
                self.step,
                cfg.learning_rate,
                cfg.min_lr,
                cfg.warmup_iters,
                self.decay_iters,
                cfg.decay_lr,
            ),
        }
    }

    /// Ctrl-C was pressed, or `stop_after` steps of this invocation are done.
    pub fn interrupted(&self) -> bool {
        let flag = self.opts.interrupt.as_ref();
        flag.is_some_and(|f| f.load(Ordering::SeqCst))
            || self
                .opts
                .stop_after
                .is_some_and(|n| self.step - self.steps_at_start >= n)
    }

    /// Ends the run (clears the progress bar, releases the run folder) and reports.
    pub fn finish(self, end: EndReason) -> TrainReport {
        self.progress.finish();
        TrainReport {
            run_dir: self.folder.path().to_path_buf(),
            data_dir: self.data_dir,
            steps: self.step,
            max_iters: self.max_iters,
            end,
            best_val_loss: self.early.best,
            last_val_loss: self.last_val,
            elapsed_s: self.clock.started.elapsed().as_secs_f64(),
            tokens_per_s: rate(self.clock.total),
            num_params: self.model.num_params(),
        }
    }

    fn say(&self, line: &str) {
        if !self.opts.quiet {
            eprintln!("{line}");
        }
    }
}
