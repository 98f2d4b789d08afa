//! Prepare throughput and batch-sampling cost on the bundled corpus.
//!
//! `cargo run --release -p lmforge-data --example bench_prepare [-- CORPUS_DIR]`
//!
//! Prints, per tokenizer, the best of 3 tokenize-and-write runs in MB/s of source text (the
//! time to load or train the tokenizer is shown separately), then the sampler's µs per
//! batch for nanoGPT's shakespeare_char shape (64 × 256) and a GPT-2-like one (12 × 1024).

use std::sync::Arc;
use std::time::Instant;

use lmforge_data::{prepare, BatchSampler, DataDir, PrepareOptions, Sampling, TokenizerChoice};
use lmforge_tokenizer::{Tokenizer, TrainKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = match std::env::args().nth(1) {
        Some(c) => c,
        None => lmforge_corpus::bundled_corpus_dir()?
            .to_string_lossy()
            .into_owned(),
    };
    let work = tempfile::tempdir()?;
    let threads = rayon::current_num_threads();
    println!("corpus {corpus}, {threads} threads");

    let t = Instant::now();
    let bpe = lmforge_tokenizer::train_from_sources(
        TrainKind::Bpe,
        Some(8192),
        std::slice::from_ref(&corpus),
        &Default::default(),
        false,
        true,
    )?;
    println!(
        "bpe 8192 training: {:.2}s (not included below)",
        t.elapsed().as_secs_f64()
    );
    let o200k = Arc::new(Tokenizer::load("tiktoken:o200k_base")?);

    let cases: Vec<(&str, TokenizerChoice)> = vec![
        (
            "char (vocab built in a streaming pass)",
            TokenizerChoice::Train {
                kind: TrainKind::Char,
                vocab_size: None,
            },
        ),
        (
            "bpe 8192 (trained above)",
            TokenizerChoice::Given(Arc::new(bpe)),
        ),
        ("tiktoken:o200k_base", TokenizerChoice::Given(o200k)),
    ];
    for (name, choice) in cases {
        let mut best: Option<lmforge_data::PrepareReport> = None;
        for run in 0..3 {
            let mut o = PrepareOptions::new(work.path().join(format!("{}-{run}", name.len())));
            o.sources = vec![corpus.clone()];
            o.tokenizer = choice.clone();
            o.quiet = true;
            let r = prepare(&o)?;
            if best
                .as_ref()
                .is_none_or(|b| r.total_seconds < b.total_seconds)
            {
                best = Some(r);
            }
        }
        let r = best.ok_or("no run")?;
        // Reference in the same conditions: pure in-memory encode_batch of the same texts.
        let tok = match &choice {
            TokenizerChoice::Given(t) => t.clone(),
            _ => Arc::new(
                DataDir::open(&work.path().join(format!("{}-0", name.len())))?.tokenizer()?,
            ),
        };
        let paths =
            lmforge_corpus::resolve_sources(std::slice::from_ref(&corpus), &Default::default())?;
        let texts = lmforge_corpus::read::read_documents(&paths, false)?
            .into_iter()
            .map(|d| d.text)
            .collect::<Vec<_>>();
        let t = Instant::now();
        std::hint::black_box(tok.encode_batch(&texts)?);
        let encode_only = r.bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
        let incl = r.bytes as f64 / 1e6 / r.total_seconds;
        println!(
            "{name:40} {:6.1} MB/s tokenize+write, {:6.1} MB/s incl. tokenizer, {encode_only:6.1} MB/s encode_batch only ({:.2} MB → {} + {} tokens, {:?})",
            r.mb_per_s(),
            incl,
            r.bytes as f64 / 1e6,
            r.meta.train_tokens,
            r.meta.val_tokens,
            r.meta.dtype
        );
    }

    // Sampler cost.
    let mut o = PrepareOptions::new(work.path().join("sampler"));
    o.sources = vec![corpus.clone()];
    o.quiet = true;
    prepare(&o)?;
    let dir = DataDir::open(&work.path().join("sampler"))?;
    for (b, t) in [(64usize, 256usize), (12, 1024)] {
        let mut s = BatchSampler::new(dir.train.clone(), b, t, Sampling::Random { seed: 1337 })?;
        let (mut x, mut y) = (vec![0u32; b * t], vec![0i32; b * t]);
        let n = 2000;
        let t0 = Instant::now();
        for _ in 0..n {
            s.next_batch(&mut x, &mut y)?;
        }
        let us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!(
            "sampler random {b}×{t}: {us:.1} µs/batch ({:.3}% of a 50 ms step)",
            us / 50_000.0 * 100.0
        );
    }
    Ok(())
}
