//! `lmforge eval`: loss, perplexity and bits per byte of a checkpoint on held-out text.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lmforge_generate::{eval_text, evaluate_tokens, Checkpoint, EvalOptions};

/// `lmforge eval --checkpoint DIR [SOURCES...]`
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint folder (or a run folder).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Context tokens per window (default: the model's block size).
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Window step; smaller = more context per scored token (default: half the block).
    #[arg(long)]
    pub stride: Option<usize>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Text files, folders, globs, or a prepared data folder (its val.bin). Default: the
    /// checkpoint's own validation split.
    #[arg(value_name = "SOURCES")]
    pub sources: Vec<String>,
    #[command(flatten)]
    pub dtype: super::dtype::DtypeFlag,
    /// Encoder–decoder checkpoints: which split of the pair-data folder to score.
    #[arg(long, value_name = "SPLIT", default_value = "val", value_parser = ["train", "val"])]
    pub split: String,
    /// Encoder–decoder checkpoints: decode the first N pairs for exact match and BLEU
    /// (0 = loss and perplexity only; default: all).
    #[arg(long, value_name = "N")]
    pub decode: Option<usize>,
    /// Encoder–decoder checkpoints: decode with beam search of K beams (default: greedy).
    #[arg(long, value_name = "K")]
    pub beams: Option<usize>,
}

/// Runs `lmforge eval`.
pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    if lmforge_generate::seq2seq_ckpt::is_seq2seq_checkpoint(&a.checkpoint).unwrap_or(false) {
        return super::eval_seq2seq::run(a);
    }
    let precision = a.dtype.resolve()?;
    let mut ckpt = Checkpoint::load(&a.checkpoint)?;
    ckpt.model.set_precision(precision);
    let text = eval_text(&ckpt, &a.sources)?;
    eprintln!("dtype: {}", precision.describe());
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("eval {bar:30} {pos}/{len} windows [{eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let opts = EvalOptions {
        block_size: a.block_size,
        stride: a.stride,
        batch: a.batch,
    };
    let report = evaluate_tokens(
        &mut ckpt.model,
        &text.tokens,
        Some(text.bytes),
        opts,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("dtype".into(), precision.dtype().into());
        }
        println!("{v}");
    } else {
        println!(
            "evaluated {}: {} tokens scored, block {}, stride {}",
            text.what, report.tokens_scored, report.block_size, report.stride
        );
        println!("dtype:          {}", precision.dtype());
        println!("loss:           {:.4} nats/token", report.loss);
        println!("perplexity:     {:.3}", report.perplexity);
        if let Some(b) = report.bits_per_byte {
            println!("bits per byte:  {b:.4}");
        }
    }
    Ok(())
}
