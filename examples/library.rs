//! lmforge as a library: prepare a corpus, train a tiny GPT into a temporary run folder,
//! and generate from its best checkpoint — the same steps as `lmforge train` and
//! `lmforge generate`, through the public API only.
//!
//! `cargo run --release --example library` (a few seconds).

use lmforge::checkpoint::Checkpoint;
use lmforge::data::{prepare, PrepareOptions, TokenizerChoice};
use lmforge::generate::{generate, GenerateOptions, SamplingConfig};
use lmforge::train::{train, RunOptions, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;

    // 1. Prepare: one play of the bundled corpus, char tokenizer, last 10% for validation.
    let corpus = lmforge::corpus::bundled_corpus_dir()?;
    let data_dir = work.path().join("data");
    let mut prep = PrepareOptions::new(&data_dir);
    prep.sources = vec![corpus.join("macbeth_gut.txt").display().to_string()];
    prep.tokenizer = TokenizerChoice::parse("char", None);
    prep.quiet = true;
    let prepared = prepare(&prep)?;
    println!(
        "prepared {} train / {} val tokens",
        prepared.meta.train_tokens, prepared.meta.val_tokens
    );

    // 2. Train: a tiny model for a few dozen steps, settings given as on the command line.
    let run_dir = work.path().join("run");
    let settings: Vec<String> = [
        "--preset",
        "tiny",
        "--n-embd",
        "32",
        "--block-size",
        "32",
        "--batch-size",
        "8",
        "--max-iters",
        "40",
        "--eval-interval",
        "20",
        "--eval-iters",
        "2",
        "--warmup-iters",
        "5",
        "--learning-rate",
        "3e-3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut cfg = TrainConfig::resolve(None, &settings)?;
    cfg.data_dir = Some(data_dir);
    cfg.out_dir = Some(run_dir.clone());
    let opts = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let report = train(&cfg, &opts)?;
    println!(
        "trained {} steps, best val loss {:.4}",
        report.steps,
        report.best_val_loss.unwrap_or(f32::NAN)
    );

    // 3. Generate from the best checkpoint (a run folder resolves to checkpoints/best).
    let ckpt = Checkpoint::load(&run_dir)?;
    let gen = GenerateOptions {
        max_new_tokens: 80,
        sampling: SamplingConfig::default(),
        stop: vec![],
        exact_context: false,
        ignore_eos: false,
    };
    let out = generate(&ckpt.model, &ckpt.tokenizer, "MACBETH:", &gen, &mut |_| {})?;
    println!("--- sample ---\nMACBETH:{}", out.text);
    Ok(())
}
