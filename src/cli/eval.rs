//! `lmforge eval`: loss, perplexity and bits per byte of a checkpoint on held-out text.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lmforge_corpus::{read::read_documents, resolve_sources, SourceFilter};
use lmforge_data::DataDir;
use lmforge_generate::{evaluate_tokens, Checkpoint, EvalOptions};

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
}

/// Runs `lmforge eval`.
pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let mut ckpt = Checkpoint::load(&a.checkpoint)?;
    let data_dir = match a.sources.as_slice() {
        [] => Some(ckpt.data_dir().ok_or_else(|| anyhow::anyhow!("{}: the checkpoint records no data folder that still exists; name the text to evaluate", a.checkpoint.display()))?),
        [one] if std::path::Path::new(one).join("meta.json").is_file() => Some(PathBuf::from(one)),
        _ => None,
    };
    let (tokens, bytes, what) = match data_dir {
        Some(dir) => {
            let data = DataDir::open_expecting(&dir, &ckpt.tokenizer.fingerprint())?;
            let tokens = data.val.to_vec();
            let bytes = ckpt.tokenizer.decode_bytes(&tokens)?.len();
            (tokens, bytes, format!("{}/val.bin", dir.display()))
        }
        None => {
            let paths = resolve_sources(&a.sources, &SourceFilter::default())?;
            let docs = read_documents(&paths, false)?;
            let mut tokens = Vec::new();
            let mut bytes = 0;
            for d in &docs {
                if let (Some(eos), false) = (ckpt.tokenizer.eos_id(), tokens.is_empty()) {
                    tokens.push(eos);
                }
                tokens.extend(ckpt.tokenizer.encode_parallel(&d.text)?);
                bytes += d.text.len();
            }
            (tokens, bytes, format!("{} file(s)", docs.len()))
        }
    };
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
        &tokens,
        Some(bytes),
        opts,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "evaluated {what}: {} tokens scored, block {}, stride {}",
            report.tokens_scored, report.block_size, report.stride
        );
        println!("loss:           {:.4} nats/token", report.loss);
        println!("perplexity:     {:.3}", report.perplexity);
        if let Some(b) = report.bits_per_byte {
            println!("bits per byte:  {b:.4}");
        }
    }
    Ok(())
}
