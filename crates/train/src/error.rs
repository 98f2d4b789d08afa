//! Training errors: one line each, naming the file, field or step.

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

/// (Each variant's fields are the values its message names.)
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] lmforge_model::Error),
    #[error(transparent)]
    Data(#[from] lmforge_data::DataError),
    #[error(transparent)]
    Tokenizer(#[from] lmforge_tokenizer::TokenizerError),
    #[error(transparent)]
    Checkpoint(#[from] lmforge_checkpoint::CheckpointError),
    #[error(transparent)]
    Lock(#[from] lmforge_files::LockError),
    #[error("{path}: {reason}")]
    RunFolder { path: String, reason: String },
    #[error("{0}")]
    Config(String),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path}: cannot resume: {reason}")]
    Resume { path: String, reason: String },
    #[error("loss became {value} at step {step}; stopped without saving (the last good checkpoint is {last})")]
    NonFinite {
        step: usize,
        value: String,
        last: String,
    },
}

impl TrainError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        TrainError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}
