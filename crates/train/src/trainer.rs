//! The training loop: data → model → (forward → loss → backward → clip → AdamW) with
//! evaluation on fixed batches, early stopping, checkpoints, metrics, and exact resume.
//!
//! Resume is exact: `checkpoints/last` holds the weights, AdamW moments and step, the
//! sampler's RNG state, the dropout-mask position and which step's evaluation already ran,
//! so a resumed run continues with the same numbers as an uninterrupted one (same seed and
//! thread count).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lmforge_data::{
    prepare, BatchSampler, DataDir, EvalBatches, PrepareOptions, Sampling, TokenizerChoice,
    ValSplit,
};
use lmforge_generate::{generate, GenerateOptions, SamplingConfig};
use lmforge_model::{io, AdamW, AdamWConfig, Gpt, ModelConfig};
use lmforge_tokenizer::Tokenizer;

use crate::checkpoint::{
    find_checkpoint, load_state, prune_periodic, save_checkpoint, CheckpointParts, TrainState,
    STATE_FORMAT,
};
use crate::config::TrainConfig;
use crate::early_stop::EarlyStopping;
use crate::metrics::{append_record, plot_losses, retain_records, EvalRecord};
use crate::progress::Progress;
use crate::schedule::lr_at;
use crate::{Result, TrainError};

/// How to run (beyond the config).
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Continue the run in this folder from `checkpoints/last`.
    pub resume: Option<PathBuf>,
    /// Set (e.g. by Ctrl-C) to finish the current step, save `last/` and return.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Behave as if interrupted after this many steps of this invocation (tests).
    pub stop_after: Option<usize>,
    /// No progress output.
    pub quiet: bool,
}

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Finished,
    EarlyStopped,
    Interrupted,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub run_dir: PathBuf,
    pub data_dir: PathBuf,
    pub steps: usize,
    pub max_iters: usize,
    pub end: EndReason,
    pub best_val_loss: Option<f32>,
    pub last_val_loss: Option<f32>,
    pub elapsed_s: f64,
    pub tokens_per_s: f64,
    pub num_params: usize,
    /// Text generated at the end (config `sample_tokens`).
    pub sample: Option<String>,
}

/// Trains according to `cfg`; see the module docs. With `opts.resume`, `cfg` must be the
/// run's saved config plus only resumable changes (see [`crate::config::RESUMABLE_CHANGES`]).
pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> Result<TrainReport> {
    let t_start = Instant::now();
    let run_dir = opts.resume.clone().unwrap_or_else(|| cfg.run_dir());
    let ckpt_root = run_dir.join("checkpoints");
    let progress_quiet = opts.quiet;
    let say = |line: &str| {
        if !progress_quiet {
            eprintln!("{line}");
        }
    };

    // --- resume: state and config compatibility -------------------------------------------
    let resumed: Option<(PathBuf, TrainState)> = match &opts.resume {
        Some(dir) => {
            let saved =
                TrainConfig::load(&dir.join("config.toml")).map_err(|e| TrainError::Resume {
                    path: dir.display().to_string(),
                    reason: e.to_string(),
                })?;
            let changes = saved.incompatible_changes(cfg)?;
            if !changes.is_empty() {
                return Err(TrainError::Resume {
                    path: dir.display().to_string(),
                    reason: format!("the config changed incompatibly: {}", changes.join(", ")),
                });
            }
            let last = find_checkpoint(&ckpt_root, "last").ok_or_else(|| TrainError::Resume {
                path: dir.display().to_string(),
                reason: "no checkpoints/last (the run saved nothing yet)".into(),
            })?;
            let state = load_state(&last)?;
            Some((last, state))
        }
        None => None,
    };

    std::fs::create_dir_all(&run_dir)
        .map_err(|e| TrainError::io(&run_dir, format!("cannot create the run folder: {e}")))?;

    // --- data ----------------------------------------------------------------------------------
    let data_dir = match (&resumed, &cfg.data_dir) {
        (Some((_, st)), _) => PathBuf::from(&st.data_dir),
        (None, Some(d)) => d.clone(),
        (None, None) => {
            let dir = run_dir.join("data");
            let block = cfg
                .block_size
                .unwrap_or(ModelConfig::preset(&cfg.preset)?.block_size);
            let mut p = PrepareOptions::new(&dir);
            p.sources = cfg.data.clone();
            p.tokenizer = TokenizerChoice::parse(&cfg.tokenizer, cfg.tokenizer_vocab_size);
            p.split = ValSplit::Fraction(cfg.val_fraction);
            p.block_size = block;
            p.strip_gutenberg = cfg.strip_gutenberg;
            p.quiet = opts.quiet;
            let report = prepare(&p)?;
            say(&format!(
                "prepared {} in {:.1}s",
                dir.display(),
                report.total_seconds
            ));
            dir
        }
    };
    let data = DataDir::open(&data_dir)?;
    let tokenizer = data.tokenizer()?;
    if let Some((_, st)) = &resumed {
        data.check_fingerprint(&st.tokenizer_fingerprint)?;
    }

    // --- model and optimizer ---------------------------------------------------------------
    let mcfg = match &cfg.init_from {
        Some(dir) => {
            let src = lmforge_generate::Checkpoint::load(dir)?;
            data.check_fingerprint(&src.tokenizer.fingerprint())?;
            let mut c = src.model.config().clone();
            c.dropout = cfg.dropout;
            c
        }
        None => cfg.model_config(tokenizer.vocab_size())?,
    };
    mcfg.validate()?;
    let (b, t) = (cfg.batch_size, mcfg.block_size);
    if (data.val.len() as usize) < t + 1 {
        return Err(TrainError::Config(format!(
            "block_size: {t} is larger than the validation split allows ({} tokens; need at least {})",
            data.val.len(),
            t + 1
        )));
    }
    let mut model = Gpt::new(mcfg.clone(), cfg.seed)?;
    let adamw = AdamWConfig {
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: 1e-8,
        weight_decay: cfg.weight_decay,
    };
    if let Some(dir) = &cfg.init_from {
        let dir = lmforge_generate::Checkpoint::load(dir)?.dir;
        io::load_params(&mut model, &dir.join(io::MODEL_FILE))?;
        say(&format!("initialised from {}", dir.display()));
    }
    let mut opt = match &resumed {
        Some((last, st)) => {
            io::load_params(&mut model, &last.join(io::MODEL_FILE))?;
            model.set_dropout_passes(st.dropout_passes);
            io::load_optimizer(&model, adamw, &last.join("optimizer.safetensors"))?
        }
        None => AdamW::new(&model, adamw),
    };
    model.set_training(true);

    let sampling = match cfg.sampling.as_str() {
        "sequential" => Sampling::Sequential,
        _ => Sampling::Random { seed: cfg.seed },
    };
    let mut sampler = match &resumed {
        Some((_, st)) => BatchSampler::resume(data.train.clone(), st.sampler.clone())?,
        None => BatchSampler::new(data.train.clone(), b, t, sampling)?,
    };
    let train_eval = EvalBatches::new(data.train.clone(), cfg.eval_iters, b, t, cfg.seed ^ 0x7EA1)?;
    let val_eval = EvalBatches::new(data.val.clone(), cfg.eval_iters, b, t, cfg.seed ^ 0x7A1)?;

    let tokens_per_step = (b * t * cfg.grad_accum) as u64;
    let max_iters = match cfg.max_epochs {
        Some(e) => ((e * data.train.len() as f64) / tokens_per_step as f64).ceil() as usize,
        None => cfg.max_iters,
    };
    let decay_iters = cfg.lr_decay_iters.unwrap_or(max_iters);

    // --- run folder files ------------------------------------------------------------------
    lmforge_tokenizer::write_atomic(&run_dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    let metrics_path = run_dir.join("metrics.jsonl");
    let (mut step, mut evaluated_at, mut early, mut tokens_seen, elapsed_before) = match &resumed {
        Some((_, st)) => (
            st.step,
            st.evaluated_at,
            st.early_stopping.clone(),
            st.tokens_seen,
            st.elapsed_s,
        ),
        None => (
            0,
            None,
            EarlyStopping::new(cfg.patience, cfg.min_delta),
            0,
            0.0,
        ),
    };
    early.patience = cfg.patience;
    early.min_delta = cfg.min_delta;
    let mut records = retain_records(&metrics_path, |r| {
        r.step < step || (Some(r.step) == evaluated_at && resumed.is_some())
    })?;
    say(&format!(
        "model: {} parameters ({} layers, {} heads, {} wide, block {}, vocab {}); data: {} train / {} val tokens; tokenizer {}",
        model.num_params(),
        mcfg.n_layer,
        mcfg.n_head,
        mcfg.n_embd,
        t,
        mcfg.vocab_size,
        data.train.len(),
        data.val.len(),
        tokenizer.kind()
    ));
    if resumed.is_some() {
        say(&format!("resuming {} at step {step}", run_dir.display()));
    }

    let data_dir_abs = data_dir.canonicalize().unwrap_or(data_dir.clone());
    // Writes checkpoint folders `names` holding the run's current state.
    let save = |names: &[&str],
                step: usize,
                evaluated_at: Option<usize>,
                early: &EarlyStopping,
                sampler: &BatchSampler,
                model: &Gpt,
                opt: &AdamW,
                tokens_seen: u64,
                lr: f32|
     -> Result<()> {
        let state = TrainState {
            format: STATE_FORMAT,
            lmforge_version: env!("CARGO_PKG_VERSION").into(),
            step,
            evaluated_at,
            best_val_loss: early.best,
            early_stopping: early.clone(),
            sampler: sampler.state().clone(),
            dropout_passes: model.dropout_passes(),
            tokens_seen,
            elapsed_s: elapsed_before + t_start.elapsed().as_secs_f64(),
            lr,
            data_dir: data_dir_abs.display().to_string(),
            tokenizer_fingerprint: tokenizer.fingerprint(),
        };
        let parts = CheckpointParts {
            model,
            tokenizer: &tokenizer,
            optimizer: Some(opt),
            state: Some(&state),
        };
        for name in names {
            save_checkpoint(&ckpt_root, name, &parts)?;
        }
        Ok(())
    };

    // --- the loop --------------------------------------------------------------------------
    let progress = Progress::new(max_iters, step, cfg.log_interval, opts.quiet);
    let mut x = vec![0u32; b * t];
    let mut y = vec![0i32; b * t];
    let mut end = EndReason::Finished;
    let (mut lr, mut grad_norm, mut last_val) = (
        lr_at(
            step,
            cfg.learning_rate,
            cfg.min_lr,
            cfg.warmup_iters,
            decay_iters,
            cfg.decay_lr,
        ),
        0.0f32,
        None,
    );
    let (mut window_tokens, mut window_secs, mut all_tokens, mut all_secs) =
        (0u64, 0f64, 0u64, 0f64);
    let steps_at_start = step;
    let last_ckpt_name = ckpt_root.join("last");
    loop {
        let due = step.is_multiple_of(cfg.eval_interval) || step == max_iters;
        if due && evaluated_at != Some(step) {
            let train_loss = estimate_loss(&mut model, &train_eval, &mut x, &mut y, b, t, step)?;
            let val_loss = estimate_loss(&mut model, &val_eval, &mut x, &mut y, b, t, step)?;
            let tps = if window_secs > 0.0 {
                window_tokens as f64 / window_secs
            } else {
                0.0
            };
            let rec = EvalRecord {
                step,
                train_loss,
                val_loss,
                lr,
                grad_norm,
                tokens_per_s: tps,
                elapsed_s: elapsed_before + t_start.elapsed().as_secs_f64(),
            };
            append_record(&metrics_path, &rec)?;
            records.push(rec);
            plot_losses(
                &records,
                &run_dir.join("loss.png"),
                cfg.log_scale,
                &format!("{} — loss", cfg.name),
            )?;
            let (improved, stop) = early.update(val_loss);
            evaluated_at = Some(step);
            last_val = Some(val_loss);
            (window_tokens, window_secs) = (0, 0.0);
            let names: &[&str] = if improved {
                &["last", "best"]
            } else {
                &["last"]
            };
            save(
                names,
                step,
                evaluated_at,
                &early,
                &sampler,
                &model,
                &opt,
                tokens_seen,
                lr,
            )?;
            progress.println(&format!(
                "step {step}: train loss {train_loss:.4}, val loss {val_loss:.4}{}",
                if improved { " (best)" } else { "" }
            ));
            if stop {
                progress.println(&format!(
                    "early stopping: val loss has not improved by {} for {} evaluations",
                    cfg.min_delta, early.bad_evals
                ));
                end = EndReason::EarlyStopped;
                break;
            }
        }
        if step >= max_iters {
            break;
        }
        let interrupted = opts
            .interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
            || opts.stop_after.is_some_and(|n| step - steps_at_start >= n);
        if interrupted {
            save(
                &["last"],
                step,
                evaluated_at,
                &early,
                &sampler,
                &model,
                &opt,
                tokens_seen,
                lr,
            )?;
            end = EndReason::Interrupted;
            break;
        }

        // One optimizer step over `grad_accum` micro-batches.
        let t0 = Instant::now();
        lr = lr_at(
            step,
            cfg.learning_rate,
            cfg.min_lr,
            cfg.warmup_iters,
            decay_iters,
            cfg.decay_lr,
        );
        model.zero_grad();
        let mut loss = 0.0f32;
        for _ in 0..cfg.grad_accum {
            sampler.next_batch(&mut x, &mut y)?;
            let l = model
                .forward(&x, Some(&y), b, t)
                .map_err(|e| non_finite(e, step, &last_ckpt_name))?
                .unwrap_or(f32::NAN);
            model.backward_scaled(1.0 / cfg.grad_accum as f32)?;
            loss += l / cfg.grad_accum as f32;
        }
        grad_norm = if cfg.grad_clip > 0.0 {
            model.clip_grad_norm(cfg.grad_clip)
        } else {
            model.grad_norm()
        };
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step,
                value: format!("{grad_norm} (gradient norm)"),
                last: last_ckpt_name.display().to_string(),
            });
        }
        opt.step(&mut model, lr)?;
        step += 1;
        tokens_seen += tokens_per_step;
        let dt = t0.elapsed().as_secs_f64();
        (window_tokens, window_secs) = (window_tokens + tokens_per_step, window_secs + dt);
        (all_tokens, all_secs) = (all_tokens + tokens_per_step, all_secs + dt);
        progress.step(
            step,
            max_iters,
            loss,
            lr,
            tokens_per_step as f64 / dt.max(1e-9),
        );

        if let Some(every) = cfg.ckpt_interval {
            if every > 0 && step.is_multiple_of(every) {
                let name = format!("step-{step:07}");
                save(
                    &[name.as_str()],
                    step,
                    evaluated_at,
                    &early,
                    &sampler,
                    &model,
                    &opt,
                    tokens_seen,
                    lr,
                )?;
                prune_periodic(&ckpt_root, cfg.keep_last)?;
            }
        }
    }
    progress.finish();

    let sample = if cfg.sample_tokens > 0 && end != EndReason::Interrupted {
        model.set_training(false);
        let gopts = GenerateOptions {
            max_new_tokens: cfg.sample_tokens,
            sampling: SamplingConfig {
                temperature: 0.8,
                top_k: Some(200),
                top_p: None,
                seed: cfg.seed,
            },
            stop: vec![],
            exact_context: false,
        };
        Some(generate(&model, &tokenizer, &cfg.sample_prompt, &gopts, &mut |_| {})?.text)
    } else {
        None
    };
    Ok(TrainReport {
        run_dir,
        data_dir,
        steps: step,
        max_iters,
        end,
        best_val_loss: early.best,
        last_val_loss: last_val,
        elapsed_s: t_start.elapsed().as_secs_f64(),
        tokens_per_s: if all_secs > 0.0 {
            all_tokens as f64 / all_secs
        } else {
            0.0
        },
        num_params: model.num_params(),
        sample,
    })
}

fn non_finite(e: lmforge_model::Error, step: usize, last: &Path) -> TrainError {
    match e {
        lmforge_model::Error::NonFiniteLoss(v) => TrainError::NonFinite {
            step,
            value: v.to_string(),
            last: last.display().to_string(),
        },
        other => other.into(),
    }
}

/// Mean loss over the fixed evaluation batches (dropout off).
fn estimate_loss(
    model: &mut Gpt,
    batches: &EvalBatches,
    x: &mut [u32],
    y: &mut [i32],
    b: usize,
    t: usize,
    step: usize,
) -> Result<f32> {
    model.set_training(false);
    let mut sum = 0.0f64;
    for i in 0..batches.len() {
        batches.fill(i, x, y)?;
        let l = model
            .forward(x, Some(y), b, t)
            .map_err(|e| non_finite(e, step, Path::new("checkpoints/last")))?
            .unwrap_or(f32::NAN);
        sum += l as f64;
    }
    model.set_training(true);
    Ok((sum / batches.len().max(1) as f64) as f32)
}

/// Loads a trained model and its tokenizer from a checkpoint folder (convenience for callers).
pub fn load_trained(dir: &Path) -> Result<(Gpt, Tokenizer)> {
    let ck = lmforge_generate::Checkpoint::load(dir)?;
    Ok((ck.model, ck.tokenizer))
}
