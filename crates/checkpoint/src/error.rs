//! Checkpoint errors: one line each, naming the folder or file.

use std::path::Path;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CheckpointError>;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Weights, config or optimizer file (names the tensor or field).
    #[error(transparent)]
    Model(#[from] lmforge_model::Error),
    /// The tokenizer file.
    #[error(transparent)]
    Tokenizer(#[from] lmforge_tokenizer::TokenizerError),
    /// The folder is not a loadable checkpoint.
    #[error("{path}: not a usable checkpoint: {reason}")]
    Bad {
        /// The folder or file.
        path: String,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A file operation failed.
    #[error("{path}: {reason}")]
    Io {
        /// The folder or file.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl CheckpointError {
    pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        CheckpointError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }

    pub(crate) fn bad(path: &Path, reason: impl Into<String>) -> Self {
        CheckpointError::Bad {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }
}
