//! The one error type of importing: every message names the file, tensor or field at fault.

use std::path::Path;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source (a file or folder) is not something lmforge can import, or is broken;
    /// `msg` says which file, field or tensor and what to do.
    #[error("{path}: {msg}")]
    Bad {
        /// The file or folder at fault.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// Building or checking the model failed.
    #[error(transparent)]
    Model(#[from] lmforge_model::Error),
    /// Reading an lmforge checkpoint or writing the imported one failed.
    #[error(transparent)]
    Checkpoint(#[from] lmforge_checkpoint::CheckpointError),
    /// Loading the tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] lmforge_tokenizer::TokenizerError),
}

impl ImportError {
    /// An error about `path`.
    pub fn bad(path: &Path, msg: impl Into<String>) -> ImportError {
        ImportError::Bad {
            path: path.display().to_string(),
            msg: msg.into(),
        }
    }
}

/// Result of an import step.
pub type Result<T> = std::result::Result<T, ImportError>;
