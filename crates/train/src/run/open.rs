//! Opening a run: a new one (prepare or open the data, build the model, fresh optimizer) or
//! a resumed one (everything from `checkpoints/last`).

use std::path::{Path, PathBuf};

use std::sync::Arc;

use lmforge_checkpoint::{find_checkpoint, load_state, PlateauState, TrainState, LAST};
use lmforge_data::{
    prepare, BatchSampler, DataDir, EvalBatches, PrepareOptions, Sampling, TokenizerChoice,
    ValSplit,
};
use lmforge_model::{io, AdamW, AdamWConfig, Gpt, ModelConfig, Precision};
use lmforge_tokenizer::Tokenizer;

use super::folder::{RunFolder, CONFIG_FILE, METRICS_FILE, SAMPLES_FILE};
use super::init;
use super::{Clock, Run, RunOptions};
use crate::config::TrainConfig;
use crate::early_stop::EarlyStopping;
use crate::metrics::{retain_records, retain_samples};
use crate::modes::{DecayScope, EvalMode, LrSchedule, ValSplitMode};
use crate::progress::Progress;
use crate::tb::{TbWriter, CONFIG_TAG};
use crate::{Result, TrainError};

/// A run being resumed: its `last/` checkpoint and state.
struct Resumed {
    last: PathBuf,
    state: TrainState,
}

impl Run {
    /// Opens the run `cfg` describes: resumes `opts.resume`, or starts a new run in
    /// `cfg.run_dir()` (refused if that holds an earlier run, unless `opts.overwrite`).
    pub fn open(cfg: &TrainConfig, opts: &RunOptions) -> Result<Run> {
        // A new fine-tuning run reads its source first: a bad source leaves no run folder.
        let init = match (&opts.resume, &cfg.init_from) {
            (None, Some(spec)) => Some(init::load(cfg, spec)?),
            _ => None,
        };
        let (resumed, (folder, notes)) = match &opts.resume {
            Some(dir) => {
                let resumed = check_resumable(cfg, dir)?;
                (Some(resumed), RunFolder::open_existing(dir)?)
            }
            None => (None, RunFolder::open_new(&cfg.run_dir(), opts.overwrite)?),
        };
        for note in notes {
            eprintln!("{note}");
        }
        let (init_model, init_tokenizer) = match init {
            Some(i) => {
                if !opts.quiet {
                    eprintln!("initialising from {}", i.description);
                }
                (Some(i.model), Some(Arc::new(i.tokenizer)))
            }
            None => (None, None),
        };
        let data_dir = match &resumed {
            Some(r) => PathBuf::from(&r.state.data_dir),
            None => {
                let block = init_model.as_ref().map(|m| m.config().block_size);
                data_for_new_run(
                    cfg,
                    folder.path(),
                    opts.quiet,
                    init_tokenizer.clone(),
                    block,
                )?
            }
        };
        if let (Some(tok), Some(_)) = (&init_tokenizer, &cfg.data_dir) {
            DataDir::open(&data_dir)?.check_fingerprint(&tok.fingerprint())?;
        }
        Run::build(cfg, opts, folder, data_dir, resumed, init_model)
    }

    /// Everything after the run folder and data folder are settled.
    fn build(
        cfg: &TrainConfig,
        opts: &RunOptions,
        folder: RunFolder,
        data_dir: PathBuf,
        resumed: Option<Resumed>,
        init_model: Option<Gpt>,
    ) -> Result<Run> {
        let data = DataDir::open(&data_dir)?;
        let tokenizer = data.tokenizer()?;
        if let Some(r) = &resumed {
            data.check_fingerprint(&r.state.tokenizer_fingerprint)?;
        }
        let mcfg = match (&init_model, &resumed) {
            (Some(m), _) => m.config().clone(),
            // a fine-tuning run's shape is its source's, as saved in its checkpoints
            (None, Some(r)) if cfg.init_from.is_some() => {
                io::load_config(&r.last.join(io::CONFIG_FILE))?
            }
            (None, _) => cfg.model_config(tokenizer.vocab_size())?,
        };
        if tokenizer.vocab_size() > mcfg.vocab_size {
            return Err(TrainError::Config(format!(
                "vocab_size: the model has {} ids but the data's tokenizer {}",
                mcfg.vocab_size,
                tokenizer.vocab_size()
            )));
        }
        let (b, t) = (cfg.batch_size, mcfg.block_size);
        if cfg.has_validation() && (data.val.len() as usize) < t + 1 {
            return Err(TrainError::Config(format!(
                "block_size: {t} is larger than the validation split allows ({} tokens; need at least {})",
                data.val.len(),
                t + 1
            )));
        }
        let (mut model, opt) = model_and_optimizer(cfg, mcfg, resumed.as_ref(), init_model)?;
        let dtype = cfg.dtype_arg()?;
        let precision = Precision::resolve(dtype).map_err(TrainError::Config)?;
        model.set_precision(precision);
        if let Some(notice) = precision.notice(dtype) {
            eprintln!("{notice}");
        }
        // config.toml records the dtype that runs, so the run can be repeated as it was
        let cfg = &TrainConfig {
            dtype: precision.dtype().into(),
            ..cfg.clone()
        };
        let mut sampler = match &resumed {
            Some(r) => BatchSampler::resume(data.train.clone(), r.state.sampler.clone())?,
            None => BatchSampler::new(data.train.clone(), b, t, sampling(cfg))?,
        };
        if cfg.sampling == "per-document" {
            let docs = data.meta.train_documents(data.train.len());
            sampler = sampler.with_documents(docs)?;
        }
        let train_eval =
            EvalBatches::new(data.train.clone(), cfg.eval_iters, b, t, cfg.seed ^ 0x7EA1)?;
        let val_eval = match (cfg.has_validation(), cfg.eval_mode()?) {
            (false, _) => None,
            (true, EvalMode::Full) => Some(EvalBatches::full(data.val.clone(), b, t)?),
            (true, _) => Some(EvalBatches::new(
                data.val.clone(),
                cfg.eval_iters,
                b,
                t,
                cfg.seed ^ 0x7A1,
            )?),
        };

        let tokens_per_step = (b * t * cfg.grad_accum) as u64;
        let (steps_per_epoch, max_iters) = epochs(cfg, &sampler, data.train.len(), tokens_per_step);
        let decay_iters = cfg.lr_decay_iters.unwrap_or(max_iters);

        let config_path = folder.file(CONFIG_FILE);
        lmforge_files::write_atomic(&config_path, cfg.to_toml()?.as_bytes())
            .map_err(|e| TrainError::io(&config_path, format!("cannot write: {e}")))?;
        let st = resumed.as_ref().map(|r| &r.state);
        let step = st.map_or(0, |s| s.step);
        let evaluated_at = st.and_then(|s| s.evaluated_at);
        let mut early = match st {
            Some(s) => EarlyStopping::from(s.early_stopping.clone()),
            None => EarlyStopping::new(cfg.patience, cfg.min_delta),
        };
        early.patience = cfg.patience;
        early.min_delta = cfg.min_delta;
        early.stop_above_best = cfg.stop_above_best;
        let plateau = (cfg.schedule()? == LrSchedule::Plateau).then(|| {
            st.and_then(|s| s.plateau).unwrap_or(PlateauState {
                lr: cfg.learning_rate,
                best: None,
                bad_evals: 0,
            })
        });
        // A resumed run drops metrics logged after its checkpoint (they will be redone).
        // So do its samples and TensorBoard events (the same steps kept).
        let kept = |s: usize| s < step || (Some(s) == evaluated_at && resumed.is_some());
        let records = retain_records(&folder.file(METRICS_FILE), |r| kept(r.step))?;
        retain_samples(&folder.file(SAMPLES_FILE), |r| kept(r.step))?;
        // The config is logged at each (re)start; a restart at the same step replaces it.
        let mut tb = TbWriter::open(folder.path(), |e| {
            let s = e.step.max(0) as usize;
            kept(s) && !(s == step && e.has_tag(CONFIG_TAG))
        })?;
        tb.text(step, CONFIG_TAG, &toml_as_markdown(&cfg.to_toml()?))?;
        let mut run = Run {
            lr: 0.0,
            progress: Progress::new(max_iters, step, cfg.log_interval, opts.quiet),
            clock: Clock::new(st.map_or(0.0, |s| s.elapsed_s)),
            tokens_seen: st.map_or(0, |s| s.tokens_seen),
            cfg: cfg.clone(),
            opts: opts.clone(),
            folder,
            data_dir,
            shape: (b, t),
            x: vec![0; b * t],
            y: vec![0; b * t],
            tokenizer,
            model,
            opt,
            sampler,
            train_eval,
            val_eval,
            train_file: data.train.clone(),
            val_file: data.val.clone(),
            steps_per_epoch,
            plateau,
            max_iters,
            decay_iters,
            tokens_per_step,
            step,
            steps_at_start: step,
            evaluated_at,
            early,
            grad_norm: 0.0,
            last_val: None,
            records,
            tb,
        };
        run.lr = run.scheduled_lr();
        run.say_what_it_is(&data);
        if !run.cfg.has_validation() {
            run.say("val_split = none: no validation split; early stopping and best/ are off");
        }
        Ok(run)
    }

    fn say_what_it_is(&self, data: &DataDir) {
        let m = self.model.config();
        self.say(&format!(
            "model: {} parameters ({} layers, {} heads, {} wide, block {}, vocab {}); data: {} train / {} val tokens; tokenizer {}",
            self.model.num_params(),
            m.n_layer,
            m.n_head,
            m.n_embd,
            m.block_size,
            m.vocab_size,
            data.train.len(),
            data.val.len(),
            self.tokenizer.kind()
        ));
        self.say(&format!("dtype: {}", self.model.precision().describe()));
        if self.steps_at_start > 0 {
            self.say(&format!(
                "resuming {} at step {}",
                self.folder.path().display(),
                self.step
            ));
        }
    }
}

/// TOML as a markdown code block (TensorBoard renders texts as markdown).
fn toml_as_markdown(toml: &str) -> String {
    toml.lines().map(|l| format!("    {l}\n")).collect()
}

/// Checks that `dir` holds a run that `cfg` may continue; returns its `last/` state.
fn check_resumable(cfg: &TrainConfig, dir: &Path) -> Result<Resumed> {
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
    let state = load_state(&last)?;
    Ok(Resumed { last, state })
}

/// The data folder of a new run: `data_dir`, or the sources prepared into `RUN_DIR/data`
/// (with `tokenizer` and `block_size` when given: a fine-tuning source's).
fn data_for_new_run(
    cfg: &TrainConfig,
    run_dir: &Path,
    quiet: bool,
    tokenizer: Option<Arc<Tokenizer>>,
    block_size: Option<usize>,
) -> Result<PathBuf> {
    if let Some(d) = &cfg.data_dir {
        return Ok(d.clone());
    }
    let dir = run_dir.join("data");
    let mut p = PrepareOptions::new(&dir);
    p.sources = cfg.data.clone();
    p.tokenizer = match tokenizer {
        Some(t) => TokenizerChoice::Given(t),
        None => TokenizerChoice::parse(&cfg.tokenizer, cfg.tokenizer_vocab_size),
    };
    p.split = match cfg.val_split_mode()? {
        ValSplitMode::Tail => ValSplit::Fraction(cfg.val_fraction),
        ValSplitMode::Files => ValSplit::Files(cfg.val_fraction),
        ValSplitMode::None => ValSplit::None,
    };
    p.block_size = match block_size.or(cfg.block_size) {
        Some(t) => t,
        None => ModelConfig::preset(cfg.model_preset())?.block_size,
    };
    p.strip_gutenberg = cfg.strip_gutenberg;
    p.word = lmforge_tokenizer::WordOptions {
        lowercase: cfg.word_lowercase,
        keep_whitespace: cfg.word_keep_whitespace,
    };
    p.quiet = quiet;
    let report = prepare(&p)?;
    if !quiet {
        eprintln!("prepared {} in {:.1}s", dir.display(), report.total_seconds);
    }
    Ok(dir)
}

/// The model (weights from `last/`, `init_from` or fresh) and its optimizer.
fn model_and_optimizer(
    cfg: &TrainConfig,
    mcfg: ModelConfig,
    resumed: Option<&Resumed>,
    init_model: Option<Gpt>,
) -> Result<(Gpt, AdamW)> {
    let mut model = match init_model {
        Some(m) => m,
        None => Gpt::new(mcfg, cfg.seed)?,
    };
    let adamw = AdamWConfig {
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.adam_eps,
        weight_decay: cfg.weight_decay,
    };
    let mut opt = match resumed {
        Some(r) => {
            io::load_params(&mut model, &r.last.join(io::MODEL_FILE))?;
            model.set_dropout_passes(r.state.dropout_passes);
            io::load_optimizer(&model, adamw, &r.last.join(io::OPTIMIZER_FILE))?
        }
        None => AdamW::new(&model, adamw),
    };
    if cfg.decay_scope()? == DecayScope::All {
        opt.decay_every_tensor();
    }
    model.set_training(true);
    Ok((model, opt))
}

fn sampling(cfg: &TrainConfig) -> Sampling {
    let seed = cfg.seed;
    match cfg.sampling.as_str() {
        "sequential" => Sampling::Sequential,
        "stride1" => Sampling::Stride1 { seed },
        "per-document" => Sampling::PerDocument { seed },
        _ => Sampling::Random { seed },
    }
}

/// Optimizer steps per epoch (at least 1) and the run's length in steps. An epoch is a pass
/// over the training tokens (random, sequential), over every window (stride1) or over the
/// documents (per-document).
fn epochs(
    cfg: &TrainConfig,
    sampler: &BatchSampler,
    train_tokens: u64,
    tokens_per_step: u64,
) -> (usize, usize) {
    // stride1, per-document: whole batches per epoch, the last one topped up from the next
    // epoch's windows (a DataLoader's last partial batch, filled)
    let per_epoch = match cfg.sampling.as_str() {
        "stride1" | "per-document" => {
            let rows = (cfg.batch_size * cfg.grad_accum) as u64;
            sampler.windows_per_epoch().div_ceil(rows) as f64
        }
        _ => train_tokens as f64 / tokens_per_step as f64,
    };
    let max_iters = match cfg.max_epochs {
        Some(e) => (e * per_epoch).ceil() as usize,
        None => cfg.max_iters,
    };
    (per_epoch.ceil().max(1.0) as usize, max_iters)
}
