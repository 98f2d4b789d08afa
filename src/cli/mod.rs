//! The `lmforge` command line: one subcommand per job. Each subcommand module parses its
//! flags (clap) and calls the library; no logic lives here beyond argument plumbing.

pub mod bench;
pub mod dashboard;
pub mod dtype;
pub mod eval;
pub mod eval_seq2seq;
pub mod export;
pub mod generate;
pub mod generate_seq2seq;
pub mod import;
pub mod prepare;
pub mod prepare_pairs;
pub mod serve;
pub mod tokenizer;
pub mod train;

use clap::{Parser, Subcommand};

/// From raw text to a trained GPT and generated text, in one binary.
#[derive(Parser, Debug)]
#[command(name = "lmforge", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Worker threads for tokenization and the compute engine (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    #[command(subcommand)]
    pub command: Command,
}

/// The jobs lmforge does.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train, inspect and use tokenizers (char, word, bpe, unigram, tiktoken, sentencepiece).
    #[command(subcommand)]
    Tokenizer(tokenizer::TokenizerCommand),
    /// Tokenize a corpus once into memory-mapped token files (train.bin, val.bin, meta.json).
    Prepare(prepare::PrepareArgs),
    /// Train a GPT (with no arguments: a small char-level model on the bundled corpus).
    Train(train::TrainArgs),
    /// Generate text from a checkpoint (KV cache, temperature/top-k/top-p, streaming).
    Generate(generate::GenerateArgs),
    /// Serve a checkpoint over OpenAI's HTTP API, with a web playground at `/`.
    Serve(serve::ServeArgs),
    /// Loss, perplexity and bits per byte of a checkpoint on held-out text.
    Eval(eval::EvalArgs),
    /// Import a Hugging Face GPT-2 folder or a nanoGPT / PyTorch checkpoint as an lmforge checkpoint.
    Import(import::ImportArgs),
    /// Export a checkpoint to Hugging Face transformers (--format hf) or GGUF (--format gguf).
    Export(export::ExportArgs),
    /// A live training dashboard in the browser: runs, curves, samples, checkpoints.
    Dashboard(dashboard::DashboardArgs),
    /// Benchmarks of the compute engine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs the CLI and returns the process exit code: 0 on success, 1 on an error (printed as
/// one line on stderr), 2 on a usage error (printed by clap).
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
    }
}

/// Error chain as a single line (`outer: inner: root`), without repeating messages.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        if n == 0 {
            anyhow::bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    match cli.command {
        Command::Tokenizer(cmd) => tokenizer::run(cmd),
        Command::Prepare(args) => prepare::run(args),
        Command::Train(args) => train::run(args, cli.threads),
        Command::Generate(args) => generate::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Import(args) => import::run(args),
        Command::Export(args) => export::run(args),
        Command::Dashboard(args) => dashboard::run(args),
        Command::Bench(cmd) => bench::run(cmd),
    }
}
