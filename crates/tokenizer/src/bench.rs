//! Tokenizer throughput on a corpus: encode MB/s per kind and BPE training time.
//! A benchmark, not a test: `lmforge tokenizer bench` prints it; tools/bench_tokenizers.py
//! compares it with Python tiktoken and HF tokenizers in the same run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lmforge_corpus::{read::read_documents, resolve_sources, SourceFilter};
use serde::Serialize;

use crate::{train, Result, Tokenizer, TrainKind};

/// What `lmforge tokenizer bench --json` prints.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Size of the benchmark corpus in bytes (UTF-8 text).
    pub corpus_bytes: usize,
    /// Worker threads the encoders ran on.
    pub threads: usize,
    /// Encode throughput per tokenizer kind, in MB/s (10^6 bytes), best of the runs.
    pub encode_mb_per_s: BTreeMap<String, f64>,
    /// Seconds to train byte-level BPE at `bpe_vocab_size` on the corpus.
    pub bpe_train_s: f64,
    /// Vocabulary size the BPE training run targeted.
    pub bpe_vocab_size: usize,
}

/// Runs the benchmark on the text files under `corpus`. `sentencepiece_model` (a `.model`
/// file) is included when given.
pub fn run_bench(
    corpus: &Path,
    bpe_vocab_size: usize,
    sentencepiece_model: Option<PathBuf>,
    runs: usize,
) -> Result<BenchReport> {
    let paths = resolve_sources(
        &[corpus.to_string_lossy().into_owned()],
        &SourceFilter::default(),
    )?;
    let docs = read_documents(&paths, false)?;
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    let corpus_bytes: usize = texts.iter().map(|t| t.len()).sum();

    let t0 = Instant::now();
    let bpe = train(TrainKind::Bpe, Some(bpe_vocab_size), &texts)?;
    let bpe_train_s = t0.elapsed().as_secs_f64();

    let mut tokenizers: Vec<Tokenizer> = vec![
        train(TrainKind::Char, None, &texts)?,
        train(TrainKind::Word, Some(bpe_vocab_size), &texts)?,
        bpe,
        Tokenizer::load("tiktoken:gpt2")?,
        Tokenizer::load("tiktoken:cl100k_base")?,
        Tokenizer::load("tiktoken:o200k_base")?,
    ];
    if let Some(p) = sentencepiece_model {
        tokenizers.push(Tokenizer::load_file(&p)?);
    }
    let mut encode_mb_per_s = BTreeMap::new();
    for tok in &tokenizers {
        let mut best = f64::INFINITY;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let ids = tok.encode_batch(&texts)?;
            std::hint::black_box(ids);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let name = match tok {
            Tokenizer::SentencePiece(_) => "sentencepiece".to_string(),
            _ => tok.kind(),
        };
        encode_mb_per_s.insert(name, corpus_bytes as f64 / 1e6 / best);
    }
    Ok(BenchReport {
        corpus_bytes,
        threads: rayon::current_num_threads(),
        encode_mb_per_s,
        bpe_train_s,
        bpe_vocab_size,
    })
}
