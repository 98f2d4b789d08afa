//! Tokenizer errors, phrased for the person at the command line.

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TokenizerError>;

/// What went wrong; each message names the file, name or id involved.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A training corpus could not be resolved or read.
    #[error(transparent)]
    Corpus(#[from] lmforge_corpus::CorpusError),
    /// A tokenizer file is missing, unreadable, or not a tokenizer lmforge understands.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Saving a tokenizer failed.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The file being written.
        path: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A tokenizer spec is neither a file nor a built-in encoding.
    #[error("unknown tokenizer '{name}': expected a tokenizer file or one of {known}")]
    UnknownName {
        /// The spec as given.
        name: String,
        /// The built-in names, for the message.
        known: String,
    },
    /// Decoding was given an id the vocabulary does not have.
    #[error("token id {id} is out of range for this tokenizer (vocabulary size {vocab_size})")]
    IdOutOfRange {
        /// The id as given.
        id: u64,
        /// The tokenizer's number of ids.
        vocab_size: usize,
    },
    /// Training was asked for fewer ids than the kind needs.
    #[error("--vocab-size {got} is too small for the {kind} tokenizer: it needs at least {min}")]
    VocabTooSmall {
        /// The tokenizer kind.
        kind: String,
        /// The requested vocabulary size.
        got: usize,
        /// The smallest size that works.
        min: usize,
    },
    /// A tokenizer kind name that lmforge does not know.
    #[error("unknown tokenizer kind '{0}': expected char, word, bpe, unigram, sentencepiece or tiktoken:<name>")]
    UnknownKind(String),
    /// Any other invalid request; the message says what and what to do.
    #[error("{0}")]
    Invalid(String),
    /// An error reported by the Hugging Face `tokenizers` library.
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
