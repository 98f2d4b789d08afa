//! `prepare`: sources → tokenizer → `train.bin` / `val.bin` (/ `test.bin`), `meta.json`
//! and a copy of the tokenizer, in one self-contained folder.
//!
//! Streaming: every file is read chunk by chunk ([`DocChunks`]: decoded, hashed, optionally
//! Gutenberg-stripped), cut into segments where the tokenizer's ids cannot change, and
//! encoded in parallel batches ([`StreamEncoder`]), then written in source order; training a
//! tokenizer first streams the same way ([`lmforge_tokenizer::train_from_paths`]). Memory is
//! bounded by one batch whatever the file and corpus sizes (except for tokenizers that
//! cannot be cut, SentencePiece and unigram, which hold one document). Token files are
//! written under temp names and renamed only when complete (see [`crate::split`] for how
//! the val tail is cut without knowing the total in advance). Nothing depends on time or
//! thread scheduling, so the same inputs give byte-identical files, the same as reading
//! each file whole (except with a freshly trained `unigram` tokenizer: HF's unigram trainer
//! is not deterministic).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use lmforge_corpus::{
    bundled_corpus_dir, resolve_sources, CorpusError, DocChunks, Progress, SourceFilter,
    DEFAULT_CHUNK_BYTES,
};
use lmforge_tokenizer::{
    write_atomic, StreamEncoder, StreamOptions, Tokenizer, TokenizerError, TrainKind, WordOptions,
};

use crate::download::fetch_archive;
use crate::meta::{Meta, SourceMeta, TokenizerMeta, META_VERSION};
use crate::split::{train_count, val_file_count};
use crate::{wikitext, DataError, Dtype, Result, TokenWriter, ValSplit};

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
    /// Strip every line and drop empty ones, as the LLM-from-scratch seed does.
    pub clean: bool,
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
    /// How a trained `word` tokenizer splits (lowercase, whitespace kept or dropped).
    pub word: WordOptions,
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
            word: WordOptions::default(),
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
    if let ValSplit::Fraction(f) | ValSplit::Files(f) = opts.split {
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
    if opts.split == ValSplit::None && opts.wikitext.is_none() {
        let val = TokenWriter::create(&opts.out.join("val.bin"), dtype, &fingerprint)?;
        writers.push(("val", val));
    }
    for (name, w) in &writers {
        let no_val = *name == "val" && opts.split == ValSplit::None;
        if *name != "test" && !no_val {
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
        ValSplit::Files(f) => {
            if train.len() < 2 {
                return Err(DataError::InvalidOption(format!(
                    "val_split = files needs at least 2 source files (found {}); use \
                     val_split = tail to hold out the end of the text instead",
                    train.len()
                )));
            }
            let mut train = train;
            let val = train.split_off(train.len() - val_file_count(train.len(), *f));
            let rule = format!(
                "files: the last {} of {} source files are val",
                val.len(),
                train.len() + val.len()
            );
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
                rule,
            ))
        }
        ValSplit::None => Ok((
            vec![Stream {
                name: "train",
                files: train,
            }],
            "none: no validation split".into(),
        )),
    }
}

/// Loads, or trains on the first stream's files (streamed), the tokenizer.
fn load_tokenizer(opts: &PrepareOptions, train_files: &[PathBuf]) -> Result<Arc<Tokenizer>> {
    match &opts.tokenizer {
        TokenizerChoice::Given(t) => Ok(t.clone()),
        TokenizerChoice::Load(spec) => Ok(Arc::new(Tokenizer::load(spec)?)),
        TokenizerChoice::Train { kind, vocab_size } => {
            let stream = StreamOptions {
                lossy: opts.lossy,
                strip_gutenberg: opts.strip_gutenberg,
                quiet: opts.quiet,
                word: opts.word,
                clean_lines: clean_lines(opts),
                ..StreamOptions::default()
            };
            match lmforge_tokenizer::train_from_paths(*kind, *vocab_size, train_files, &stream) {
                Ok(tok) => Ok(Arc::new(tok)),
                Err(TokenizerError::Corpus(CorpusError::Empty { .. })) => Err(empty(train_files)),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// WikiText cleaning was asked for.
fn clean_lines(opts: &PrepareOptions) -> bool {
    opts.wikitext.as_ref().is_some_and(|w| w.clean)
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

/// Where encoded ids go: the token file (with a separator between documents) and each
/// document's token count.
struct Sink<'w> {
    w: &'w mut TokenWriter,
    sources: &'w mut Vec<SourceMeta>,
    sep: Option<u32>,
    /// The last document that wrote ids (a separator goes before the next one's first).
    last_doc: Option<usize>,
}

impl Sink<'_> {
    fn put(&mut self, doc: usize, ids: Vec<u32>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        if self.last_doc != Some(doc) {
            if let (Some(s), Some(_)) = (self.sep, self.last_doc) {
                self.w.push(&[s])?;
            }
            self.last_doc = Some(doc);
        }
        self.w.push(&ids)?;
        self.sources[doc].tokens += ids.len() as u64;
        Ok(())
    }
}

/// Tokenizes one stream's files into `w`, chunk by chunk, separators between documents.
fn encode_stream(
    opts: &PrepareOptions,
    tok: &Tokenizer,
    sep: Option<u32>,
    stream: &Stream,
    w: &mut TokenWriter,
    sources: &mut Vec<SourceMeta>,
    progress: &mut Progress,
) -> Result<()> {
    let mut sink = Sink {
        w,
        sources,
        sep,
        last_doc: None,
    };
    let mut enc = StreamEncoder::new(tok);
    for path in &stream.files {
        let doc = sink.sources.len();
        sink.sources.push(SourceMeta {
            path: path.display().to_string(),
            bytes: 0,
            sha256: String::new(),
            tokens: 0,
            stream: stream.name.to_string(),
        });
        let mut reader = DocChunks::open(
            path,
            opts.lossy,
            opts.strip_gutenberg,
            true,
            DEFAULT_CHUNK_BYTES,
        )?
        .clean_lines(clean_lines(opts));
        let mut read = 0;
        while let Some(chunk) = reader.next() {
            let chunk = chunk?;
            progress.inc(reader.bytes_read() - read);
            read = reader.bytes_read();
            enc.push(doc, &chunk, &mut |d, ids| sink.put(d, ids))?;
        }
        let meta = &mut sink.sources[doc];
        meta.bytes = reader.bytes_read();
        meta.sha256 = reader.sha256().unwrap_or_default();
        enc.end_doc(doc, &mut |d, ids| sink.put(d, ids))?;
    }
    enc.flush(&mut |d, ids| sink.put(d, ids))?;
    Ok(())
}
