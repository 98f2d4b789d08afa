//! Training a tokenizer from text: the `char`, `word`, `bpe` and `unigram` kinds.

use std::str::FromStr;

use lmforge_corpus::{
    bundled_corpus_dir, read::read_documents, resolve_sources, CorpusError, SourceFilter,
};

use crate::char_level::CharTokenizer;
use crate::hf::HfTokenizer;
use crate::word::WordTokenizer;
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

/// Trains a tokenizer of `kind` on `texts`. `vocab_size` caps the vocabulary (`None`:
/// the kind's default). Errors on an empty corpus or a vocabulary below the kind's minimum.
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
    let vocab_size = vocab_size.or(kind.default_vocab_size());
    if let Some(v) = vocab_size {
        if v < kind.min_vocab_size() {
            return Err(TokenizerError::VocabTooSmall {
                kind: kind.name().into(),
                got: v,
                min: kind.min_vocab_size(),
            });
        }
    }
    Ok(match (kind, vocab_size) {
        (TrainKind::Char, v) => Tokenizer::Char(CharTokenizer::train(texts, v)),
        (TrainKind::Word, Some(v)) => Tokenizer::Word(WordTokenizer::train(texts, v)),
        (TrainKind::Bpe, Some(v)) => Tokenizer::Hf(Box::new(HfTokenizer::train_bpe(texts, v)?)),
        (TrainKind::Unigram, Some(v)) => {
            Tokenizer::Hf(Box::new(HfTokenizer::train_unigram(texts, v)?))
        }
        (_, None) => {
            return Err(TokenizerError::Invalid(format!(
                "--vocab-size is required for the {} tokenizer",
                kind.name()
            )))
        }
    })
}

/// Resolves sources (files, folders, globs; the bundled corpus when empty), reads them as
/// UTF-8 (`lossy` replaces invalid bytes) and trains.
pub fn train_from_sources(
    kind: TrainKind,
    vocab_size: Option<usize>,
    sources: &[String],
    filter: &SourceFilter,
    lossy: bool,
) -> Result<Tokenizer> {
    let sources = if sources.is_empty() {
        vec![bundled_corpus_dir()?.to_string_lossy().into_owned()]
    } else {
        sources.to_vec()
    };
    let paths = resolve_sources(&sources, filter)?;
    let docs = read_documents(&paths, lossy)?;
    if docs.iter().all(|d| d.text.is_empty()) {
        return Err(CorpusError::Empty {
            what: sources.join(", "),
        }
        .into());
    }
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    train(kind, vocab_size, &texts)
}
