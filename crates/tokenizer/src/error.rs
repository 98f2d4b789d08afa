//! Tokenizer errors, phrased for the person at the command line.

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TokenizerError>;

/// What went wrong; each message names the file, name or id involved.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Corpus(#[from] lmforge_corpus::CorpusError),
    #[error("{path}: {reason}")]
    BadFile { path: String, reason: String },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown tokenizer '{name}': expected a tokenizer file or one of {known}")]
    UnknownName { name: String, known: String },
    #[error("token id {id} is out of range for this tokenizer (vocabulary size {vocab_size})")]
    IdOutOfRange { id: u64, vocab_size: usize },
    #[error("--vocab-size {got} is too small for the {kind} tokenizer: it needs at least {min}")]
    VocabTooSmall {
        kind: String,
        got: usize,
        min: usize,
    },
    #[error("unknown tokenizer kind '{0}': expected char, word, bpe, unigram, sentencepiece or tiktoken:<name>")]
    UnknownKind(String),
    #[error("{0}")]
    Invalid(String),
    #[error("tokenizer library error: {0}")]
    Hf(String),
}

impl TokenizerError {
    pub(crate) fn bad_file(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        TokenizerError::BadFile {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}
