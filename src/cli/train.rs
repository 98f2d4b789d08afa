//! `lmforge train`: runs [`lmforge_train::train`] with a config file and `--key value`
//! overrides, Ctrl-C handling, and a summary at the end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use lmforge_train::{trainer::EndReason, RunOptions, TrainConfig};

/// `lmforge train [--config run.toml] [--resume RUN_DIR] [--key value ...]`
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
    /// No progress output (errors and the final summary only).
    #[arg(long)]
    pub quiet: bool,
    /// Any setting as --key value (dashes or underscores), e.g. --max-iters 200 --n-layer 2
    /// --preset baby --out runs/mine --data 'shards/*.txt' --tokenizer tiktoken:o200k_base
    /// --init-from CHECKPOINT. `lmforge train --help` lists them all with their defaults.
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
        "Settings (keys of the config file; give them as --key value). Unset by default: out_dir, data_dir, tokenizer_vocab_size, n_layer, n_head, n_embd, block_size, vocab_size (from the preset / tokenizer), max_epochs, lr_decay_iters (= max_iters), patience, ckpt_interval, threads, init_from.\nDefaults (nanoGPT's CPU 'baby' Shakespeare config):\n\n{defaults}"
    )
}

/// Runs `lmforge train`.
pub fn run(mut a: TrainArgs, threads: Option<usize>) -> anyhow::Result<()> {
    // Flags given after the first setting land in `settings`; pick ours out.
    let mut rest = Vec::new();
    let mut it = std::mem::take(&mut a.settings).into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" => a.config = it.next().map(PathBuf::from),
            "--resume" => a.resume = it.next().map(PathBuf::from),
            "--quiet" => a.quiet = true,
            _ => rest.push(arg),
        }
    }
    if let Some(n) = threads {
        rest.push("--threads".into());
        rest.push(n.to_string());
    }
    let base = match (&a.resume, &a.config) {
        (Some(dir), None) => Some(dir.join("config.toml")),
        (_, c) => c.clone(),
    };
    if let Some(dir) = &a.resume {
        anyhow::ensure!(
            dir.is_dir(),
            "--resume {}: no such run folder",
            dir.display()
        );
    }
    let cfg = TrainConfig::resolve(base.as_deref(), &rest)?;
    if let (None, Some(n)) = (threads, cfg.threads) {
        // A pool set up earlier (e.g. by --threads) stays; otherwise the config decides.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
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
    if !a.quiet {
        println!(
            "# resolved config (saved as RUN_DIR/config.toml)\n{}",
            cfg.to_toml()?
        );
    }
    let opts = RunOptions {
        resume: a.resume.clone(),
        interrupt: Some(interrupt),
        stop_after: None,
        quiet: a.quiet,
    };
    let report = lmforge_train::train(&cfg, &opts)?;
    let run = report.run_dir.display();
    if let Some(sample) = &report.sample {
        println!(
            "--- sample ({} tokens, temperature 0.8, top-k 200) ---\n{sample}\n---",
            cfg.sample_tokens
        );
    }
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
    eprintln!("checkpoints: {run}/checkpoints/best (lowest val loss) and {run}/checkpoints/last");
    eprintln!("metrics: {run}/metrics.jsonl   plot: {run}/loss.png   config: {run}/config.toml");
    eprintln!("generate: lmforge generate --checkpoint {run}/checkpoints/best --prompt \"ROMEO:\"");
    Ok(())
}
