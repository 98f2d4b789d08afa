//! `prepare`: sources → tokenizer → `train.bin` / `val.bin` (/ `test.bin`), `meta.json`
//! and a copy of the tokenizer, in one self-contained folder.
//!
//! Streaming: files are read in groups of about [`GROUP_BYTES`]; each group is read,
//! hashed, decoded and tokenized in parallel (rayon across files, and
//! `Tokenizer::encode_parallel` inside big files), then written in source order. Memory is
//! bounded by one group (or the largest single file), whatever the corpus size. Token files
//! are written under temp names and renamed only when complete (see [`crate::split`] for
//! how the val tail is cut without knowing the total in advance). Nothing depends on time
//! or thread scheduling, so the same inputs give byte-identical files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use lmforge_corpus::{
    bundled_corpus_dir, gutenberg::strip_gutenberg, read::decode_utf8, resolve_sources,
    SourceFilter,
};
use lmforge_tokenizer::{char_level::CharTokenizer, write_atomic, Tokenizer, TrainKind};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::download::fetch_archive;
use crate::meta::{Meta, SourceMeta, TokenizerMeta, META_VERSION};
use crate::progress::Progress;
use crate::split::train_count;
use crate::{wikitext, DataError, Dtype, Result, TokenWriter, ValSplit};

/// Bytes of source text read and tokenized together (bounds memory; big enough to keep
/// every core busy on many small files).
pub const GROUP_BYTES: u64 = 16 << 20;

/// Which tokenizer to use.
#[derive(Debug, Clone)]
pub enum TokenizerChoice {
    /// Train this kind on the training sources first.
    Train {
        /// The kind to train.
        kind: TrainKind,
        /// Target vocabulary size (`None`: the kind's default).
        vocab_size: Option<usize>,
    },
    /// Load a tokenizer file, folder or built-in name (`tiktoken:o200k_base`).
    Load(String),
    /// Use a tokenizer the caller already has (e.g. the trainer's).
    Given(Arc<Tokenizer>),
}

impl TokenizerChoice {
    /// Parses the CLI's `--tokenizer`: `char`, `word`, `bpe`, `unigram` mean "train that
    /// kind" (with `vocab_size`); anything else is loaded.
    pub fn parse(spec: &str, vocab_size: Option<usize>) -> TokenizerChoice {
        match spec {
            "char" | "word" | "bpe" | "unigram" => match spec.parse() {
                Ok(kind) => TokenizerChoice::Train { kind, vocab_size },
                Err(_) => TokenizerChoice::Load(spec.to_string()),
            },
            _ => TokenizerChoice::Load(spec.to_string()),
        }
    }
}

/// WikiText input: a folder holding (or to receive) the standard split files.
#[derive(Debug, Clone)]
pub struct WikiTextOptions {
    /// Folder with `wiki.*.tokens` (itself or a sub-folder); also the download cache.
    pub dir: PathBuf,
    /// Fetch the archive into `dir` when the files are not there.
    pub download: bool,
    /// Archive URL (default: WikiText-2's).
    pub url: Option<String>,
    /// Expected sha256 of the archive.
    pub sha256: Option<String>,
}

/// Everything `prepare` needs. Start from [`PrepareOptions::new`].
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Files, folders or glob patterns; empty means the bundled Shakespeare corpus.
    pub sources: Vec<String>,
    /// Include/exclude globs for files found in folders and globs.
    pub filter: SourceFilter,
    /// The tokenizer to load, train or reuse.
    pub tokenizer: TokenizerChoice,
    /// Output folder (created if missing).
    pub out: PathBuf,
    /// How the validation split is chosen.
    pub split: ValSplit,
    /// Use WikiText's own splits instead of `sources` and `split`.
    pub wikitext: Option<WikiTextOptions>,
    /// Each split must hold at least `block_size + 1` tokens.
    pub block_size: usize,
    /// Strip Project Gutenberg headers and footers from every source.
    pub strip_gutenberg: bool,
    /// Replace invalid UTF-8 with U+FFFD instead of failing.
    pub lossy: bool,
    /// No progress output.
    pub quiet: bool,
}

impl PrepareOptions {
    /// Defaults: bundled corpus, char tokenizer, last 10% is val, block size 256.
    pub fn new(out: impl Into<PathBuf>) -> PrepareOptions {
        PrepareOptions {
            sources: Vec::new(),
            filter: SourceFilter::default(),
            tokenizer: TokenizerChoice::Train {
                kind: TrainKind::Char,
                vocab_size: None,
            },
            out: out.into(),
            split: ValSplit::default(),
            wikitext: None,
            block_size: 256,
            strip_gutenberg: false,
            lossy: false,
            quiet: false,
        }
    }
}

/// What `prepare` did.
#[derive(Debug, Clone)]
pub struct PrepareReport {
    /// The folder written.
    pub out: PathBuf,
    /// The `meta.json` written.
    pub meta: Meta,
    /// Source bytes read.
    pub bytes: u64,
    /// Time spent loading or training the tokenizer.
    pub tokenizer_seconds: f64,
    /// Time spent tokenizing and writing.
    pub tokenize_seconds: f64,
    /// Wall time of the whole call.
    pub total_seconds: f64,
}

impl PrepareReport {
    /// Tokenize-and-write throughput in MB/s (10⁶ bytes of source text per second).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.tokenize_seconds.max(1e-9)
    }
}

/// One output stream: the files that go, in order, into one token file.
struct Stream {
    name: &'static str,
    files: Vec<PathBuf>,
}

/// Prepares a data folder; see the module docs. Errors are one line and leave no
/// half-written `.bin` under a final name.
pub fn prepare(opts: &PrepareOptions) -> Result<PrepareReport> {
    let t0 = Instant::now();
    if opts.block_size == 0 {
        return Err(DataError::InvalidOption(
            "--block-size must be at least 1".into(),
        ));
    }
    if let ValSplit::Fraction(f) = opts.split {
        if !(f > 0.0 && f < 1.0) {
            return Err(DataError::InvalidOption(format!(
                "--val-fraction must be between 0 and 1 (exclusive), got {f}"
            )));
        }
    }
    let (streams, split_rule) = resolve_streams(opts)?;

    let tok = load_tokenizer(opts, &streams[0].files)?;
    let tokenizer_seconds = t0.elapsed().as_secs_f64();

    std::fs::create_dir_all(&opts.out).map_err(|e| DataError::io(&opts.out, e))?;
    let dtype = Dtype::for_vocab(tok.vocab_size());
    let fingerprint = tok.fingerprint();
    let sep = tok.eos_id();
    let total_bytes: u64 = streams
        .iter()
        .flat_map(|s| &s.files)
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();

    let t1 = Instant::now();
    let mut progress = Progress::new("prepare", total_bytes, opts.quiet);
    let mut sources = Vec::new();
    let mut writers: Vec<(&'static str, TokenWriter)> = Vec::new();
    for stream in &streams {
        let mut w = TokenWriter::create(
            &opts.out.join(format!("{}.bin", stream.name)),
            dtype,
            &fingerprint,
        )?;
        encode_stream(opts, &tok, sep, stream, &mut w, &mut sources, &mut progress)?;
        writers.push((stream.name, w));
    }
    if writers.iter().all(|(_, w)| w.count() == 0) {
        let what = streams
            .iter()
            .flat_map(|s| &s.files)
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(DataError::Empty { what });
    }
    if let ValSplit::Fraction(f) = opts.split {
        if opts.wikitext.is_none() {
            let mut val = TokenWriter::create(&opts.out.join("val.bin"), dtype, &fingerprint)?;
            let train = &mut writers[0].1;
            let keep = train_count(train.count(), f);
            check_size(
                "val",
                train.count() - keep,
                opts.block_size,
                "raise --val-fraction or add text",
            )?;
            train.split_off_tail(keep, &mut val)?;
            writers.push(("val", val));
        }
    }
    for (name, w) in &writers {
        if *name != "test" {
            check_size(
                name,
                w.count(),
                opts.block_size,
                "lower --block-size or add text",
            )?;
        }
    }
    progress.finish();
    let count_of = |n: &str| {
        writers
            .iter()
            .find(|(name, _)| *name == n)
            .map(|(_, w)| w.count())
    };
    let (train_tokens, val_tokens, test_tokens) = (
        count_of("train").unwrap_or(0),
        count_of("val").unwrap_or(0),
        count_of("test"),
    );
    for (_, w) in writers {
        w.finish()?;
    }
    let stale_test = opts.out.join("test.bin");
    if test_tokens.is_none() && stale_test.exists() {
        std::fs::remove_file(&stale_test).map_err(|e| DataError::io(&stale_test, e))?;
    }
    let tokenize_seconds = t1.elapsed().as_secs_f64();

    tok.save(&opts.out.join(tok.file_name()))?;
    let meta = Meta {
        lmforge_data: META_VERSION,
        lmforge_version: env!("CARGO_PKG_VERSION").to_string(),
        tokenizer: TokenizerMeta {
            kind: tok.kind(),
            fingerprint,
            vocab_size: tok.vocab_size(),
            file: tok.file_name().to_string(),
            separator: sep,
        },
        dtype,
        train_tokens,
        val_tokens,
        test_tokens,
        split: split_rule,
        block_size: Some(opts.block_size),
        strip_gutenberg: opts.strip_gutenberg,
        sources,
    };
    let meta_path = opts.out.join("meta.json");
    write_atomic(&meta_path, &meta.to_bytes()?)?;
    Ok(PrepareReport {
        out: opts.out.clone(),
        meta,
        bytes: total_bytes,
        tokenizer_seconds,
        tokenize_seconds,
        total_seconds: t0.elapsed().as_secs_f64(),
    })
}

fn check_size(split: &str, tokens: u64, block_size: usize, hint: &str) -> Result<()> {
    let needed = block_size as u64 + 1;
    if tokens < needed {
        return Err(DataError::SplitTooSmall {
            split: split.to_string(),
            tokens,
            block_size,
            needed,
            hint: hint.to_string(),
        });
    }
    Ok(())
}

/// Works out which files feed which token file, and the split rule in words.
fn resolve_streams(opts: &PrepareOptions) -> Result<(Vec<Stream>, String)> {
    if let Some(wt) = &opts.wikitext {
        let files = match wikitext::find(&wt.dir) {
            Ok(f) => f,
            Err(_) if wt.download => {
                let url = match &wt.url {
                    Some(u) => u.clone(),
                    None => wikitext::variant_url("wikitext-2")?.to_string(),
                };
                let hash = fetch_archive(&url, &wt.dir, wt.sha256.as_deref(), opts.quiet)?;
                if !opts.quiet {
                    eprintln!("{url}: sha256 {hash}");
                }
                wikitext::find(&wt.dir)?
            }
            Err(e) => return Err(e),
        };
        let streams = vec![
            Stream {
                name: "train",
                files: vec![files.train],
            },
            Stream {
                name: "val",
                files: vec![files.valid],
            },
            Stream {
                name: "test",
                files: vec![files.test],
            },
        ];
        return Ok((
            streams,
            "wikitext: wiki.train → train, wiki.valid → val, wiki.test → test".into(),
        ));
    }
    let specs = if opts.sources.is_empty() {
        vec![bundled_corpus_dir()?.to_string_lossy().into_owned()]
    } else {
        opts.sources.clone()
    };
    let train = resolve_sources(&specs, &opts.filter)?;
    match &opts.split {
        ValSplit::Fraction(f) => Ok((
            vec![Stream {
                name: "train",
                files: train,
            }],
            format!("fraction: last {f} of the token stream is val"),
        )),
        ValSplit::Sources(val_specs) => {
            if val_specs.is_empty() {
                return Err(DataError::InvalidOption(
                    "--val needs at least one file, folder or pattern".into(),
                ));
            }
            let val = resolve_sources(val_specs, &opts.filter)?;
            Ok((
                vec![
                    Stream {
                        name: "train",
                        files: train,
                    },
                    Stream {
                        name: "val",
                        files: val,
                    },
                ],
                format!("sources: val from {}", val_specs.join(", ")),
            ))
        }
    }
}

/// A source read and decoded: its bytes' size and hash, and its text.
fn read_source(path: &Path, opts: &PrepareOptions) -> Result<(u64, String, String)> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let size = bytes.len() as u64;
    let hash = hex::encode(Sha256::digest(&bytes));
    let text = decode_utf8(path, bytes, opts.lossy)?;
    let text = if opts.strip_gutenberg {
        strip_gutenberg(&text).to_string()
    } else {
        text
    };
    Ok((size, hash, text))
}

/// Loads, or trains on the first stream's files, the tokenizer.
fn load_tokenizer(opts: &PrepareOptions, train_files: &[PathBuf]) -> Result<Arc<Tokenizer>> {
    match &opts.tokenizer {
        TokenizerChoice::Given(t) => Ok(t.clone()),
        TokenizerChoice::Load(spec) => Ok(Arc::new(Tokenizer::load(spec)?)),
        // A char vocabulary is just the set of characters: gather it file by file, in
        // bounded memory, instead of holding the corpus.
        TokenizerChoice::Train {
            kind: TrainKind::Char,
            vocab_size: None,
        } => {
            let sets = train_files
                .par_iter()
                .map(|p| {
                    let (_, _, text) = read_source(p, opts)?;
                    let mut ascii = [false; 128];
                    let mut other = BTreeSet::new();
                    for c in text.chars() {
                        if c.is_ascii() {
                            ascii[c as usize] = true;
                        } else {
                            other.insert(c);
                        }
                    }
                    other.extend((0u8..128).filter(|&b| ascii[b as usize]).map(char::from));
                    Ok(other)
                })
                .collect::<Result<Vec<BTreeSet<char>>>>()?;
            let chars: BTreeSet<char> = sets.into_iter().flatten().collect();
            if chars.is_empty() {
                return Err(empty(train_files));
            }
            Ok(Arc::new(Tokenizer::Char(CharTokenizer::from_chars(
                chars.into_iter().collect(),
            ))))
        }
        // Other kinds (and a capped char vocabulary) need the whole training text at once.
        TokenizerChoice::Train { kind, vocab_size } => {
            let texts = train_files
                .par_iter()
                .map(|p| read_source(p, opts).map(|(_, _, t)| t))
                .collect::<Result<Vec<String>>>()?;
            if texts.iter().all(|t| t.is_empty()) {
                return Err(empty(train_files));
            }
            Ok(Arc::new(lmforge_tokenizer::train(
                *kind,
                *vocab_size,
                &texts,
            )?))
        }
    }
}

fn empty(files: &[PathBuf]) -> DataError {
    DataError::Empty {
        what: files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Tokenizes one stream's files into `w`, group by group, separators between documents.
fn encode_stream(
    opts: &PrepareOptions,
    tok: &Tokenizer,
    sep: Option<u32>,
    stream: &Stream,
    w: &mut TokenWriter,
    sources: &mut Vec<SourceMeta>,
    progress: &mut Progress,
) -> Result<()> {
    let mut rest: &[PathBuf] = &stream.files;
    let mut first_doc = true;
    while !rest.is_empty() {
        let mut n = 0;
        let mut bytes = 0u64;
        while n < rest.len() && (n == 0 || bytes < GROUP_BYTES) {
            bytes += std::fs::metadata(&rest[n]).map(|m| m.len()).unwrap_or(0);
            n += 1;
        }
        let (group, tail) = rest.split_at(n);
        rest = tail;
        let encoded = group
            .par_iter()
            .map(|p| {
                let (size, hash, text) = read_source(p, opts)?;
                let ids = tok.encode_parallel(&text)?;
                Ok((p, size, hash, ids))
            })
            .collect::<Result<Vec<_>>>()?;
        for (path, size, sha256, ids) in encoded {
            if !ids.is_empty() {
                if let (Some(s), false) = (sep, first_doc) {
                    w.push(&[s])?;
                }
                first_doc = false;
                w.push(&ids)?;
            }
            progress.inc(size);
            sources.push(SourceMeta {
                path: path.display().to_string(),
                bytes: size,
                sha256,
                tokens: ids.len() as u64,
                stream: stream.name.to_string(),
            });
        }
    }
    Ok(())
}
