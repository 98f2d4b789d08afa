//! `lmforge export`: a checkpoint as a Hugging Face `transformers` folder or a GGUF file.

use std::path::PathBuf;

use clap::Args;
use lmforge_interop::export::{export, ExportFormat, ExportOptions, WeightDtype};

/// `lmforge export --checkpoint DIR --format hf|gguf --out OUT`
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Checkpoint folder (or a run folder: its best checkpoint).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// `hf`: a folder `transformers` loads with AutoModelForCausalLM / AutoTokenizer;
    /// `gguf`: one file for llama.cpp (byte-level BPE tokenizers only).
    #[arg(long, value_name = "hf|gguf")]
    pub format: String,
    /// Output folder (hf) or file (gguf, e.g. model.gguf); must not exist unless --force.
    #[arg(long, value_name = "OUT")]
    pub out: PathBuf,
    /// Element type of the weights: fp32, bf16 or fp16.
    #[arg(long, default_value = "fp32", value_name = "fp32|bf16|fp16")]
    pub dtype: String,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
}

/// Runs `lmforge export`.
pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    let opts = ExportOptions {
        format: ExportFormat::parse(&a.format)?,
        dtype: WeightDtype::parse(&a.dtype)?,
        force: a.force,
    };
    let report = export(&a.checkpoint, &a.out, &opts)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "exported {} → {} ({}, vocabulary {}, {}): {}",
        a.checkpoint.display(),
        report.out.display(),
        report.arch,
        report.vocab_size,
        opts.dtype.torch_name(),
        report.files.join(", ")
    );
    Ok(())
}
