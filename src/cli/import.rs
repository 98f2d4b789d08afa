//! `lmforge import`: a Hugging Face GPT-2 folder or a nanoGPT / PyTorch checkpoint → an
//! lmforge checkpoint folder that `generate`, `eval` and `train --init-from` use at once.

use std::path::PathBuf;

use clap::Args;
use lmforge_interop::import::{self, ImportOptions, Source};

/// `lmforge import SOURCE --out DIR [--tokenizer SPEC] [--n-head N]`
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// `hf:DIR` or a Hugging Face GPT-2 folder (config.json + model.safetensors, sharded
    /// safetensors or pytorch_model.bin); a nanoGPT `ckpt.pt` or a `.pth`/`.bin` state_dict
    /// (read without Python; pickled code is refused, never run); a `.safetensors`
    /// state_dict; or an lmforge checkpoint.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The checkpoint folder to write (must not exist).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The tokenizer the model's ids belong to (default: tiktoken:gpt2 for a GPT-2
    /// vocabulary, else the source's tokenizer.json).
    #[arg(long, value_name = "SPEC")]
    pub tokenizer: Option<String>,
    /// Attention heads, for a bare state_dict (its shapes do not say; default n_embd / 64).
    #[arg(long, value_name = "N")]
    pub n_head: Option<usize>,
}

/// Runs `lmforge import`.
pub fn run(a: ImportArgs) -> anyhow::Result<()> {
    let source = Source::parse(&a.source)?;
    let opts = ImportOptions {
        tokenizer: a.tokenizer,
        n_head: a.n_head,
    };
    let imported = import::load(&source, &opts)?;
    let dir = import::write_checkpoint(&imported, &a.out)?;
    let m = imported.model.config();
    println!(
        "imported {}: {} parameters ({} layers, {} heads, {} wide, block {}, vocab {}, {:?}), tokenizer {}",
        imported.description,
        imported.model.num_params(),
        m.n_layer,
        m.n_head,
        m.n_embd,
        m.block_size,
        m.vocab_size,
        m.activation,
        imported.tokenizer.kind()
    );
    println!("wrote {}", dir.display());
    println!(
        "try: lmforge generate --checkpoint {} --prompt \"Hello\"",
        dir.display()
    );
    Ok(())
}
