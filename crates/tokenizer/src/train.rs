//! Training a tokenizer from text: the `char`, `word`, `bpe` and `unigram` kinds.
//!
//! Training streams: sources are read chunk by chunk ([`crate::train_stream`]), cut into
//! segments where the kind's pre-tokenisation cannot change ([`CutRule`]), and counted in
//! parallel batches; the trainers then learn from the counts. The result equals training on
//! the whole texts at once, and memory depends on the vocabulary of the corpus, not its size.

use std::str::FromStr;

use std::collections::HashMap;
use std::path::PathBuf;

use lmforge_corpus::{bundled_corpus_dir, resolve_sources, CorpusError, SourceFilter};
use rayon::prelude::*;

use crate::bpe_words::count_gpt2;
use crate::char_level::{CharCounts, CharTokenizer};
use crate::hf::HfTokenizer;
use crate::metaspace_words::count_metaspace;
use crate::segment::CutRule;
use crate::train_stream::{Segments, StreamOptions};
use crate::word::{count_pieces, count_seed_pieces, WordOptions, WordTokenizer};
use crate::{Result, Tokenizer, TokenizerError};

/// A kind of tokenizer that can be trained from a corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainKind {
    /// Every distinct character.
    Char,
    /// Words, punctuation and whitespace runs.
    Word,
    /// Byte-level BPE (GPT-2 style, no prefix space).
    Bpe,
    /// SentencePiece-style unigram.
    Unigram,
}

impl FromStr for TrainKind {
    type Err = TokenizerError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "char" => Ok(TrainKind::Char),
            "word" => Ok(TrainKind::Word),
            "bpe" => Ok(TrainKind::Bpe),
            "unigram" | "sentencepiece" => Ok(TrainKind::Unigram),
            other if other.starts_with("tiktoken") => Err(TokenizerError::Invalid(format!(
                "'{other}' is a built-in encoding and needs no training: use --tokenizer {other} directly"
            ))),
            other => Err(TokenizerError::UnknownKind(other.to_string())),
        }
    }
}

impl TrainKind {
    /// Where this kind's training text may be cut without changing what is counted.
    pub fn cut_rule(self) -> CutRule {
        match self {
            TrainKind::Char => CutRule::Anywhere,
            TrainKind::Word | TrainKind::Bpe => CutRule::LineThenLetter,
            TrainKind::Unigram => CutRule::BeforeSpace,
        }
    }

    /// The name used on the command line and in files (`char`, `word`, `bpe`, `unigram`).
    pub fn name(self) -> &'static str {
        match self {
            TrainKind::Char => "char",
            TrainKind::Word => "word",
            TrainKind::Bpe => "bpe",
            TrainKind::Unigram => "unigram",
        }
    }

    /// Smallest vocabulary that makes sense: the 4 specials plus, for BPE, all 256 bytes.
    pub fn min_vocab_size(self) -> usize {
        match self {
            TrainKind::Char => 5,
            TrainKind::Word => 8,
            TrainKind::Bpe => 260,
            TrainKind::Unigram => 16,
        }
    }

    /// Vocabulary used when the user gives none (`char` then keeps every character).
    pub fn default_vocab_size(self) -> Option<usize> {
        match self {
            TrainKind::Char => None,
            _ => Some(8192),
        }
    }
}

/// Trains a tokenizer of `kind` on `texts` (each a whole document, in memory).
/// `vocab_size` caps the vocabulary (`None`: the kind's default). Errors on an empty corpus
/// or a vocabulary below the kind's minimum.
pub fn train<S: AsRef<str> + Send + Sync>(
    kind: TrainKind,
    vocab_size: Option<usize>,
    texts: &[S],
) -> Result<Tokenizer> {
    if texts.iter().all(|t| t.as_ref().is_empty()) {
        return Err(CorpusError::Empty {
            what: "the training sources".into(),
        }
        .into());
    }
    let vocab_size = checked_vocab(kind, vocab_size)?;
    let mut counts = Counts::new(kind, WordOptions::default());
    counts.add_batch(texts);
    counts.into_tokenizer(vocab_size)
}

/// Resolves sources (files, folders, globs; the bundled corpus when empty), streams them
/// as UTF-8 (`lossy` replaces invalid bytes) and trains, with a progress bar unless `quiet`.
pub fn train_from_sources(
    kind: TrainKind,
    vocab_size: Option<usize>,
    sources: &[String],
    filter: &SourceFilter,
    lossy: bool,
    quiet: bool,
) -> Result<Tokenizer> {
    let sources = if sources.is_empty() {
        vec![bundled_corpus_dir()?.to_string_lossy().into_owned()]
    } else {
        sources.to_vec()
    };
    let paths = resolve_sources(&sources, filter)?;
    let opts = StreamOptions {
        lossy,
        quiet,
        ..StreamOptions::default()
    };
    train_from_paths(kind, vocab_size, &paths, &opts).map_err(|e| match e {
        TokenizerError::Corpus(CorpusError::Empty { .. }) => CorpusError::Empty {
            what: sources.join(", "),
        }
        .into(),
        e => e,
    })
}

/// Streams `paths` (see [`StreamOptions`]) and trains; the corpus is never held whole.
pub fn train_from_paths(
    kind: TrainKind,
    vocab_size: Option<usize>,
    paths: &[PathBuf],
    opts: &StreamOptions,
) -> Result<Tokenizer> {
    let vocab_size = checked_vocab(kind, vocab_size)?;
    let mut segments = Segments::new(paths, kind.cut_rule(), opts);
    let empty = || -> TokenizerError {
        CorpusError::Empty {
            what: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into()
    };
    let mut counts = Counts::new(kind, opts.word);
    while let Some(batch) = segments.next_batch() {
        counts.add_batch(&batch);
    }
    if segments.finish()? == 0 {
        return Err(empty());
    }
    counts.into_tokenizer(vocab_size)
}

/// The vocabulary size to train (the kind's default when `None`), checked against the
/// kind's minimum.
fn checked_vocab(kind: TrainKind, vocab_size: Option<usize>) -> Result<Option<usize>> {
    let vocab_size = vocab_size.or(kind.default_vocab_size());
    match vocab_size {
        Some(v) if v < kind.min_vocab_size() => Err(TokenizerError::VocabTooSmall {
            kind: kind.name().into(),
            got: v,
            min: kind.min_vocab_size(),
        }),
        _ => Ok(vocab_size),
    }
}

fn required(kind: TrainKind, vocab_size: Option<usize>) -> Result<usize> {
    vocab_size.ok_or_else(|| {
        TokenizerError::Invalid(format!(
            "--vocab-size is required for the {} tokenizer",
            kind.name()
        ))
    })
}

/// What the counting kinds gather while the corpus streams past.
enum Counts {
    Char(Box<CharCounts>),
    Word(HashMap<String, u64>, WordOptions),
    Bpe(HashMap<String, u64>),
    Unigram(HashMap<String, u64>),
}

impl Counts {
    fn new(kind: TrainKind, word: WordOptions) -> Counts {
        match kind {
            TrainKind::Char => Counts::Char(Box::default()),
            TrainKind::Word => Counts::Word(HashMap::new(), word),
            TrainKind::Bpe => Counts::Bpe(HashMap::new()),
            TrainKind::Unigram => Counts::Unigram(HashMap::new()),
        }
    }

    /// Counts a batch of segments on all cores and adds the counts.
    fn add_batch<S: AsRef<str> + Sync>(&mut self, batch: &[S]) {
        match self {
            Counts::Char(total) => {
                let parts: Vec<CharCounts> = batch
                    .par_iter()
                    .map(|t| {
                        let mut c = CharCounts::default();
                        c.add(t.as_ref());
                        c
                    })
                    .collect();
                for part in parts {
                    total.merge(part);
                }
            }
            Counts::Word(total, o) => {
                let count = match o.keep_whitespace {
                    true => count_pieces,
                    false => count_seed_pieces,
                };
                if o.lowercase {
                    let lowered: Vec<String> =
                        batch.iter().map(|t| t.as_ref().to_lowercase()).collect();
                    add_pieces(total, &lowered, count)
                } else {
                    add_pieces(total, batch, count)
                }
            }
            Counts::Bpe(total) => add_pieces(total, batch, count_gpt2),
            Counts::Unigram(total) => add_pieces(total, batch, count_metaspace),
        }
    }

    fn into_tokenizer(self, vocab_size: Option<usize>) -> Result<Tokenizer> {
        Ok(match self {
            Counts::Char(c) => Tokenizer::Char(CharTokenizer::from_counts(*c, vocab_size)),
            Counts::Word(c, o) => Tokenizer::Word(
                WordTokenizer::from_counts(c, required(TrainKind::Word, vocab_size)?)
                    .with_options(o),
            ),
            Counts::Bpe(c) => Tokenizer::Hf(Box::new(HfTokenizer::bpe_from_counts(
                c,
                required(TrainKind::Bpe, vocab_size)?,
            )?)),
            Counts::Unigram(c) => Tokenizer::Hf(Box::new(HfTokenizer::unigram_from_counts(
                c,
                required(TrainKind::Unigram, vocab_size)?,
            )?)),
        })
    }
}

/// Counts the pieces `count` finds in each segment (in parallel, borrowing the text) and
/// adds them to `total` (allocating only for pieces not seen before).
fn add_pieces<S: AsRef<str> + Sync>(
    total: &mut HashMap<String, u64>,
    batch: &[S],
    count: for<'a> fn(&'a str, &mut HashMap<&'a str, u64>),
) {
    let parts: Vec<HashMap<&str, u64>> = batch
        .par_iter()
        .map(|t| {
            let mut local = HashMap::new();
            count(t.as_ref(), &mut local);
            local
        })
        .collect();
    for part in parts {
        for (piece, n) in part {
            match total.get_mut(piece) {
                Some(c) => *c += n,
                None => {
                    total.insert(piece.to_string(), n);
                }
            }
        }
    }
}
