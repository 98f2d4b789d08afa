//! Errors of generation and evaluation, one line each, naming the file or flag.

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, GenerateError>;

/// (Each variant's fields are the values its message names.)
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Model(#[from] lmforge_model::Error),
    #[error(transparent)]
    Tokenizer(#[from] lmforge_tokenizer::TokenizerError),
    #[error(transparent)]
    Data(#[from] lmforge_data::DataError),
    #[error(transparent)]
    Corpus(#[from] lmforge_corpus::CorpusError),
    #[error(transparent)]
    Checkpoint(#[from] lmforge_checkpoint::CheckpointError),
    #[error("{0}")]
    InvalidOption(String),
    #[error("{0}")]
    Prompt(String),
}
