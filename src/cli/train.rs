//! `lmforge train`: runs [`lmforge_train::train`] with a config file and `--key value`
//! overrides, Ctrl-C handling, a sample from the trained model, and a summary at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use lmforge_checkpoint::{Checkpoint, CHECKPOINTS_DIR, LAST};
use lmforge_generate::{generate, GenerateOptions, SamplingConfig};
use lmforge_train::{settings, EndReason, EvalSampler, RunArgs, TrainConfig, TrainReport};

/// `lmforge train [--config run.toml] [--resume RUN_DIR] [--overwrite] [--key value ...]`
#[derive(Args, Debug)]
#[command(after_long_help = settings_help())]
pub struct TrainArgs {
    /// TOML file with run settings (see examples/baby.toml); --key value flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Continue the run in RUN_DIR from checkpoints/last (same step, optimizer, LR schedule,
    /// data order and RNG state). Only settings such as --max-iters may change.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Start a new run even if the run folder holds one: deletes its checkpoints/,
    /// metrics.jsonl, samples.jsonl, loss.png, tb/ and config.toml first. Without it, such a folder is refused.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress output (errors and the final summary only).
    #[arg(long)]
    pub quiet: bool,
    /// Serve the live dashboard of the run's folder on 127.0.0.1:PORT (default 8081) while
    /// it trains (`lmforge dashboard` keeps serving after it ends).
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "8081")]
    pub dashboard: Option<u16>,
    /// Any setting as --key value (dashes or underscores), e.g. --max-iters 200 --n-layer 2
    /// --preset baby --out runs/mine --data 'shards/*.txt' --tokenizer tiktoken:o200k_base
    /// --init-from SOURCE (fine-tune: an lmforge checkpoint, hf:DIR, nanoGPT's ckpt.pt, a .pth).
    /// `lmforge train --help` lists them all with their defaults.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--KEY VALUE"
    )]
    pub settings: Vec<String>,
}

fn settings_help() -> String {
    let defaults = TrainConfig::default().to_toml().unwrap_or_default();
    format!(
        "Workflow presets (--preset NAME sets every setting of the workflow; --key value \
         still overrides; see docs/recipes/):\n{}\n\n\
         Settings (keys of the config file; give them as --key value). Unset by default: {} \
         (n_layer, n_head, n_embd, block_size, vocab_size come from the preset / tokenizer; \
         lr_decay_iters = max_iters). An empty name is made from the data and tokenizer \
         (shakespeare-char for the defaults).\nDefaults (nanoGPT's CPU 'baby' Shakespeare config):\n\n{defaults}",
        lmforge_train::workflows::help(),
        settings::optional_keys().join(", ")
    )
}

/// Runs `lmforge train`.
pub fn run(a: TrainArgs, threads: Option<usize>) -> anyhow::Result<()> {
    // clap stops recognising our flags at the first setting; the rest are picked out here.
    let (settings, late_dashboard) = take_dashboard_flag(a.settings)?;
    let dashboard = a.dashboard.or(late_dashboard);
    let flags = RunArgs {
        config: a.config,
        resume: a.resume,
        quiet: a.quiet,
        overwrite: a.overwrite,
        settings: Vec::new(),
    };
    let mut args = flags.merged(RunArgs::from_args(&settings)?);
    if let Some(n) = threads {
        args.settings.extend(["--threads".into(), n.to_string()]);
    }
    let cfg = args.config()?;
    if let (None, Some(n)) = (threads, cfg.threads) {
        // A pool set up earlier (e.g. by --threads) stays; otherwise the config decides.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    let mut opts = args.options();
    opts.interrupt = Some(ctrl_c_flag()?);
    if cfg.sample_tokens > 0 {
        opts.sampler = Some(eval_sampler(&cfg));
    }
    if !args.quiet {
        println!(
            "# resolved config (saved as RUN_DIR/config.toml)\n{}",
            cfg.to_toml()?
        );
    }
    if let Some(port) = dashboard {
        let run_dir = args.resume.clone().unwrap_or_else(|| cfg.run_dir());
        let url = crate::cli::dashboard::beside_run(&run_dir, port)?;
        eprintln!("dashboard: {url}");
    }
    let report = lmforge_train::train(&cfg, &opts)?;
    if report.end != EndReason::Interrupted
        && cfg.sample_tokens > 0
        && cfg.arch != "encoder-decoder"
    {
        print_sample(&cfg, &report.run_dir)?;
    }
    print_summary(&cfg, &report);
    Ok(())
}

/// Picks `--dashboard [PORT]` out of the settings (clap leaves flags after the first
/// setting there).
fn take_dashboard_flag(settings: Vec<String>) -> anyhow::Result<(Vec<String>, Option<u16>)> {
    let mut rest = Vec::with_capacity(settings.len());
    let mut port = None;
    let mut it = settings.into_iter().peekable();
    while let Some(s) = it.next() {
        if s != "--dashboard" {
            rest.push(s);
            continue;
        }
        port = Some(crate::cli::dashboard::DEFAULT_PORT);
        if let Some(next) = it.next_if(|n| !n.starts_with("--")) {
            let p = next.parse().map_err(|_| {
                anyhow::anyhow!("--dashboard: `{next}` is not a port (a number up to 65535)")
            })?;
            port = Some(p);
        }
    }
    Ok((rest, port))
}

/// Ctrl-C sets the returned flag (the run saves `last/` and returns); a second one exits.
fn ctrl_c_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting without saving");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing this step and saving checkpoints/last (Ctrl-C again to quit at once)");
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(interrupt)
}

/// The sample logged at each evaluation (`samples.jsonl`, TensorBoard, the dashboard):
/// `sample_tokens` after `sample_prompt`, default sampling with the run's seed.
fn eval_sampler(cfg: &TrainConfig) -> EvalSampler {
    let (prompt, opts) = (cfg.sample_prompt.clone(), sample_options(cfg));
    EvalSampler(Arc::new(move |model, tokenizer| {
        generate(model, tokenizer, &prompt, &opts, &mut |_| {})
            .map(|out| format!("{prompt}{}", out.text))
            .map_err(|e| e.to_string())
    }))
}

fn sample_options(cfg: &TrainConfig) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: cfg.sample_tokens,
        sampling: SamplingConfig {
            seed: cfg.seed,
            ..SamplingConfig::default()
        },
        stop: vec![],
        exact_context: false,
        ignore_eos: false,
    }
}

/// Generates `sample_tokens` from the final model (`checkpoints/last`, saved at the final
/// evaluation) with the default sampling settings and the run's seed.
fn print_sample(cfg: &TrainConfig, run_dir: &Path) -> anyhow::Result<()> {
    let ckpt = Checkpoint::load(&run_dir.join(CHECKPOINTS_DIR).join(LAST))?;
    let opts = sample_options(cfg);
    let sampling = opts.sampling;
    let out = generate(
        &ckpt.model,
        &ckpt.tokenizer,
        &cfg.sample_prompt,
        &opts,
        &mut |_| {},
    )?;
    println!(
        "--- sample ({} tokens, temperature {}, top-k {}) ---\n{}{}\n---",
        cfg.sample_tokens,
        sampling.temperature,
        sampling.top_k.map_or("off".into(), |k| k.to_string()),
        cfg.sample_prompt,
        out.text
    );
    Ok(())
}

fn print_summary(cfg: &TrainConfig, report: &TrainReport) {
    let run = report.run_dir.display();
    match report.end {
        EndReason::Interrupted => eprintln!(
            "interrupted at step {}/{}; resume with: lmforge train --resume {run}",
            report.steps, report.max_iters
        ),
        EndReason::EarlyStopped => eprintln!(
            "early stopping at step {}/{}",
            report.steps, report.max_iters
        ),
        EndReason::Finished => {}
    }
    eprintln!(
        "done: {} steps in {:.1}s ({:.0} tokens/s), {} parameters; best val loss {}",
        report.steps,
        report.elapsed_s,
        report.tokens_per_s,
        report.num_params,
        report
            .best_val_loss
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "n/a".into())
    );
    let best = if cfg.has_validation() { "best" } else { "last" };
    if cfg.has_validation() {
        eprintln!(
            "checkpoints: {run}/checkpoints/best (lowest val loss) and {run}/checkpoints/last"
        );
    } else {
        eprintln!("checkpoints: {run}/checkpoints/last (no validation split, so no best/)");
    }
    eprintln!("metrics: {run}/metrics.jsonl   plot: {run}/loss.png   config: {run}/config.toml");
    let runs = report
        .run_dir
        .parent()
        .map_or(".".into(), |p| p.display().to_string());
    eprintln!("watch: tensorboard --logdir {runs}   or   lmforge dashboard {runs}");
    let prompt = if cfg.uses_bundled_corpus() {
        "\"ROMEO:\""
    } else {
        "\"<your text>\""
    };
    eprintln!("generate: lmforge generate --checkpoint {run}/checkpoints/{best} --prompt {prompt}");
}
