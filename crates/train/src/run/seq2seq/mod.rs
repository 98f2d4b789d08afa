//! An encoder–decoder training run ([`Seq2seqRun`]): the same loop as the GPT's
//! ([`super::drive`] through [`super::RunLoop`]), the same schedule, evaluation records,
//! loss plot, early stopping, checkpoint names (`best/`, `last/`, `step-N/`) and exact resume;
//! what differs is the model ([`Seq2seq`]), the data (a pair-data folder from
//! `lmforge prepare --pairs …`, drawn as padded [`PairBatch`]es) and the checkpoint contents
//! (`save.rs`: the pair data's `pairs.json` and tokenizers go along).

mod save;

use std::path::{Path, PathBuf};
use std::time::Instant;

use lmforge_checkpoint::{find_checkpoint, LAST};
use lmforge_data::pairs::{PadTo, PairBatch, PairBatches, PairDataDir, PairSampler};
use lmforge_model::seq2seq::{io as s2s_io, Norm, Seq2seq, Seq2seqBatch, Seq2seqConfig};
use lmforge_model::{AdamW, AdamWConfig, Cpu, Precision};

use super::eval::Evaluation;
use super::folder::{RunFolder, CONFIG_FILE, METRICS_FILE, PLOT_FILE};
use super::step::non_finite;
use super::{Clock, EndReason, RunLoop, RunOptions, TrainReport};
use crate::config::TrainConfig;
use crate::early_stop::EarlyStopping;
use crate::metrics::{append_record, plot_losses, retain_records, EvalRecord};
use crate::progress::Progress;
use crate::schedule::lr_at;
use crate::{Result, TrainError};
pub use save::{Seq2seqState, SEQ2SEQ_STATE_FORMAT};

/// Everything an encoder–decoder run works on.
pub struct Seq2seqRun {
    cfg: TrainConfig,
    opts: RunOptions,
    folder: RunFolder,
    data: PairDataDir,
    model: Seq2seq,
    opt: AdamW,
    dev: Cpu,
    sampler: PairSampler,
    train_eval: PairBatches,
    val_eval: PairBatches,
    batch: PairBatch,
    max_iters: usize,
    decay_iters: usize,
    step: usize,
    steps_at_start: usize,
    evaluated_at: Option<usize>,
    early: EarlyStopping,
    tokens_seen: u64,
    lr: f32,
    grad_norm: f32,
    last_val: Option<f32>,
    records: Vec<EvalRecord>,
    clock: Clock,
    progress: Progress,
}

/// The model config: the run's sizes (preset overridden by the fields set) on the pair
/// data's vocabularies and block sizes.
pub fn model_config(cfg: &TrainConfig, data: &PairDataDir) -> Result<Seq2seqConfig> {
    let p = cfg.model_config(2)?; // the GPT preset's sizes (vocabulary set below)
    let s = &cfg.seq2seq;
    let (src, tgt) = (&data.meta.src, &data.meta.tgt);
    let mut m = Seq2seqConfig::new(
        src.vocab_size,
        tgt.vocab_size,
        p.n_layer,
        p.n_head,
        p.n_embd,
        s.src_block_size.unwrap_or(src.block_size),
        s.tgt_block_size.unwrap_or(tgt.block_size),
    );
    m.n_encoder_layer = s.n_encoder_layer.unwrap_or(p.n_layer);
    m.n_decoder_layer = s.n_decoder_layer.unwrap_or(p.n_layer);
    m.norm = match s.norm.as_str() {
        "pre" => Norm::Pre,
        "post" => Norm::Post,
        other => {
            let msg = format!("seq2seq.norm: '{other}' is not one of pre, post");
            return Err(TrainError::Config(msg));
        }
    };
    m.share_embeddings = s.share_embeddings;
    if s.share_embeddings && !data.meta.shared_tokenizer {
        let msg = "seq2seq.share_embeddings: the pair data has two tokenizers; prepare it with one";
        return Err(TrainError::Config(msg.into()));
    }
    (m.activation, m.dropout, m.bias) = (p.activation, p.dropout, p.bias);
    (m.tie_embeddings, m.pos_encoding, m.mlp_ratio) =
        (p.tie_embeddings, p.pos_encoding, p.mlp_ratio);
    m.validate()?;
    Ok(m)
}

/// The pair-data folder of an encoder–decoder run (`data_dir`, required).
fn pair_data(cfg: &TrainConfig) -> Result<PairDataDir> {
    let dir = cfg.data_dir.as_ref().ok_or_else(|| {
        TrainError::Config(
            "data_dir: arch = \"encoder-decoder\" trains on a pair-data folder; create one with `lmforge prepare --pairs SRC TGT --out DIR` (or --pairs-tsv) and set data_dir".into(),
        )
    })?;
    Ok(PairDataDir::open(dir)?)
}

impl Seq2seqRun {
    /// Opens a new run (or resumes `opts.resume`) of the encoder–decoder `cfg` describes.
    pub fn open(cfg: &TrainConfig, opts: &RunOptions) -> Result<Seq2seqRun> {
        cfg.validate()?;
        // resolved before any folder is made: a dtype this CPU cannot run leaves nothing
        let dtype = cfg.dtype_arg()?;
        let precision = Precision::resolve(dtype).map_err(TrainError::Config)?;
        let (resumed, (folder, notes)) = match &opts.resume {
            Some(dir) => (
                Some(save::check_resumable(cfg, dir)?),
                RunFolder::open_existing(dir)?,
            ),
            None => {
                pair_data(cfg)?; // a bad data folder leaves no run folder
                (None, RunFolder::open_new(&cfg.run_dir(), opts.overwrite)?)
            }
        };
        for note in notes {
            eprintln!("{note}");
        }
        let data_cfg = match &resumed {
            Some((_, st)) => TrainConfig {
                data_dir: Some(PathBuf::from(&st.data_dir)),
                ..cfg.clone()
            },
            None => cfg.clone(),
        };
        let data = pair_data(&data_cfg)?;
        let mcfg = model_config(cfg, &data)?;
        let dev = Cpu::new();
        let adamw = AdamWConfig {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: 1e-8,
            weight_decay: cfg.weight_decay,
        };
        let (mut model, opt) = match &resumed {
            Some((last, st)) => {
                let mut model = s2s_io::load_model_dir(last)?;
                model.set_dropout_seed(cfg.seed);
                model.set_dropout_passes(st.dropout_passes);
                let opt = s2s_io::load_optimizer(
                    &model,
                    adamw,
                    &last.join(lmforge_model::io::OPTIMIZER_FILE),
                )?;
                (model, opt)
            }
            None => {
                let model = Seq2seq::new(mcfg.clone(), cfg.seed)?;
                let opt = AdamW::for_tensors(&dev, &model.layout().tensors, adamw);
                (model, opt)
            }
        };
        // every Linear product (self/cross-attention, memory K/V, MLP, head) takes it
        model.backend_mut().set_precision(precision);
        if let Some(notice) = precision.notice(dtype) {
            eprintln!("{notice}");
        }
        let shape = data.shape(
            cfg.batch_size,
            mcfg.src_block_size,
            mcfg.tgt_block_size,
            PadTo::Longest,
        );
        let st = resumed.as_ref().map(|(_, s)| s);
        let sampler = match st {
            Some(s) => PairSampler::resume(data.train.clone(), shape, s.sampler.clone())?,
            None => data.train_sampler(shape, cfg.seed)?,
        };
        let train_eval = PairBatches::new(data.train.clone(), shape)?;
        let val_eval = data.val_batches(shape)?;
        let max_iters = match cfg.max_epochs {
            Some(e) => {
                (e * sampler.batches_per_epoch() as f64 / cfg.grad_accum as f64).ceil() as usize
            }
            None => cfg.max_iters,
        };
        let decay_iters = cfg.lr_decay_iters.unwrap_or(max_iters);
        // config.toml records the dtype that runs, so the run can be repeated as it was
        let cfg = &TrainConfig {
            dtype: precision.dtype().into(),
            ..cfg.clone()
        };
        let config_path = folder.file(CONFIG_FILE);
        lmforge_files::write_atomic(&config_path, cfg.to_toml()?.as_bytes())
            .map_err(|e| TrainError::io(&config_path, format!("cannot write: {e}")))?;
        let step = st.map_or(0, |s| s.step);
        let evaluated_at = st.and_then(|s| s.evaluated_at);
        let mut early = match st {
            Some(s) => EarlyStopping::from(s.early_stopping.clone()),
            None => EarlyStopping::new(cfg.patience, cfg.min_delta),
        };
        (early.patience, early.min_delta) = (cfg.patience, cfg.min_delta);
        let records = retain_records(&folder.file(METRICS_FILE), |r| {
            r.step < step || (Some(r.step) == evaluated_at && resumed.is_some())
        })?;
        let run = Seq2seqRun {
            lr: lr_at(
                step,
                cfg.learning_rate,
                cfg.min_lr,
                cfg.warmup_iters,
                decay_iters,
                cfg.decay_lr,
            ),
            progress: Progress::new(max_iters, step, cfg.log_interval, opts.quiet),
            clock: Clock::new(st.map_or(0.0, |s| s.elapsed_s)),
            tokens_seen: st.map_or(0, |s| s.tokens_seen),
            cfg: cfg.clone(),
            opts: opts.clone(),
            folder,
            data,
            model,
            opt,
            dev,
            sampler,
            train_eval,
            val_eval,
            batch: PairBatch::default(),
            max_iters,
            decay_iters,
            step,
            steps_at_start: step,
            evaluated_at,
            early,
            grad_norm: 0.0,
            last_val: None,
            records,
        };
        run.say_what_it_is();
        Ok(run)
    }

    fn say_what_it_is(&self) {
        if self.opts.quiet {
            return;
        }
        let m = self.model.config();
        eprintln!(
            "model: encoder-decoder, {} parameters ({}+{} layers, {} heads, {} wide, {}-LN, source block {} vocab {}, target block {} vocab {}); data: {} train / {} val pairs",
            self.model.num_params(),
            m.n_encoder_layer,
            m.n_decoder_layer,
            m.n_head,
            m.n_embd,
            if m.norm == Norm::Pre { "pre" } else { "post" },
            m.src_block_size,
            m.src_vocab_size,
            m.tgt_block_size,
            m.tgt_vocab_size,
            self.data.train.len(),
            self.data.val.len(),
        );
        let precision = self.model.backend().precision();
        eprintln!("dtype: {}", precision.describe());
        if self.steps_at_start > 0 {
            eprintln!(
                "resuming {} at step {}",
                self.folder.path().display(),
                self.step
            );
        }
    }

    /// The model being trained.
    pub fn model(&self) -> &Seq2seq {
        &self.model
    }

    /// The model's view of the current batch.
    fn view(b: &PairBatch) -> Seq2seqBatch<'_> {
        Seq2seqBatch {
            batch: b.batch,
            src_len: b.src_len,
            tgt_len: b.tgt_len,
            src: &b.src,
            tgt_in: &b.tgt_in,
            tgt_out: &b.tgt_out,
            src_pad_id: b.src_pad_id,
        }
    }

    fn last_dir(&self) -> PathBuf {
        self.folder.checkpoints().join(LAST)
    }

    /// Mean loss (per target token) over up to `eval_iters` batches of `which`, dropout off.
    fn loss_on(&mut self, val: bool) -> Result<f32> {
        self.model.set_training(false);
        let loss = self.eval_loss(val);
        self.model.set_training(true);
        loss
    }

    /// [`Seq2seqRun::loss_on`]'s body.
    fn eval_loss(&mut self, val: bool) -> Result<f32> {
        let batches = if val {
            &self.val_eval
        } else {
            &self.train_eval
        };
        let n = batches.len().min(self.cfg.eval_iters.max(1));
        let (mut sum, mut tokens) = (0.0f64, 0usize);
        let last = self.last_dir();
        for i in 0..n {
            batches.fill(i, &mut self.batch)?;
            let loss = self
                .model
                .loss(&Self::view(&self.batch))
                .map_err(|e| non_finite(e, self.step, &last))?;
            let k = self.batch.target_tokens();
            sum += loss as f64 * k as f64;
            tokens += k;
        }
        Ok((sum / tokens.max(1) as f64) as f32)
    }
}

impl RunLoop for Seq2seqRun {
    fn eval_due(&self) -> bool {
        let due = self.step.is_multiple_of(self.cfg.eval_interval) || self.step == self.max_iters;
        due && self.evaluated_at != Some(self.step)
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let train_loss = self.loss_on(false)?;
        let val_loss = self.loss_on(true)?;
        let record = EvalRecord {
            step: self.step,
            train_loss,
            val_loss,
            lr: self.lr,
            grad_norm: self.grad_norm,
            tokens_per_s: self.clock.take_window_rate(),
            elapsed_s: self.clock.elapsed_s(),
            dtype: self.model.backend().precision().dtype().into(),
        };
        append_record(&self.folder.file(METRICS_FILE), &record)?;
        self.records.push(record);
        let title = format!("{} — loss", self.cfg.run_name());
        plot_losses(
            &self.records,
            &self.folder.file(PLOT_FILE),
            self.cfg.log_scale,
            &title,
        )?;
        let (improved, stop) = self.early.update(val_loss);
        self.evaluated_at = Some(self.step);
        self.last_val = Some(val_loss);
        let best = if improved { " (best)" } else { "" };
        self.progress.println(&format!(
            "step {}: train loss {train_loss:.4}, val loss {val_loss:.4}{best}",
            self.step
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

    fn save_evaluated(&self, improved: bool) -> Result<()> {
        let names: &[&str] = if improved {
            &[LAST, lmforge_checkpoint::BEST]
        } else {
            &[LAST]
        };
        self.save(names)
    }

    fn finished(&self) -> bool {
        self.step >= self.max_iters
    }

    fn interrupted(&self) -> bool {
        let flag = self.opts.interrupt.as_ref();
        flag.is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
            || self
                .opts
                .stop_after
                .is_some_and(|n| self.step - self.steps_at_start >= n)
    }

    fn save_last(&self) -> Result<()> {
        self.save(&[LAST])
    }

    fn step(&mut self) -> Result<()> {
        let started = Instant::now();
        let cfg = &self.cfg;
        self.lr = lr_at(
            self.step,
            cfg.learning_rate,
            cfg.min_lr,
            cfg.warmup_iters,
            self.decay_iters,
            cfg.decay_lr,
        );
        let last = self.last_dir();
        let accum = cfg.grad_accum.max(1);
        self.model.zero_grad();
        let (mut loss, mut tokens) = (0.0f32, 0u64);
        for _ in 0..accum {
            self.sampler.next_batch(&mut self.batch);
            let micro = self
                .model
                .forward(&Self::view(&self.batch))
                .map_err(|e| non_finite(e, self.step, &last))?;
            self.model.backward_scaled(1.0 / accum as f32)?;
            loss += micro / accum as f32;
            tokens += self.batch.target_tokens() as u64;
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
        let (p, g) = self.model.params_and_grads();
        self.opt.step_flat(&self.dev, p, g, self.lr)?;
        self.step += 1;
        self.tokens_seen += tokens;
        let secs = started.elapsed().as_secs_f64();
        self.clock.add_step(tokens, secs);
        self.progress.step(
            self.step,
            self.max_iters,
            loss,
            self.lr,
            tokens as f64 / secs.max(1e-9),
        );
        Ok(())
    }

    fn save_periodic_if_due(&self) -> Result<()> {
        match self.cfg.ckpt_interval {
            Some(every) if every > 0 && self.step.is_multiple_of(every) => {
                self.save(&[&format!("step-{:07}", self.step)])?;
                lmforge_checkpoint::prune_periodic(&self.folder.checkpoints(), self.cfg.keep_last)?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn finish(self, end: EndReason) -> TrainReport {
        self.progress.finish();
        TrainReport {
            run_dir: self.folder.path().to_path_buf(),
            data_dir: self.data.dir.clone(),
            steps: self.step,
            max_iters: self.max_iters,
            end,
            best_val_loss: self.early.best,
            last_val_loss: self.last_val,
            elapsed_s: self.clock.started.elapsed().as_secs_f64(),
            tokens_per_s: super::rate(self.clock.total),
            num_params: self.model.num_params(),
        }
    }
}

/// `checkpoints/last` of the run in `dir`, if it has one.
pub fn last_checkpoint(dir: &Path) -> Option<PathBuf> {
    find_checkpoint(&dir.join(lmforge_checkpoint::CHECKPOINTS_DIR), LAST)
}
