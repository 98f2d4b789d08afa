//! Export errors: one line each, naming the file, flag or tensor and what to do.

/// Result alias for the export half of the crate.
pub type Result<T> = std::result::Result<T, ExportError>;

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The checkpoint could not be loaded (names the file, field or tensor).
    #[error(transparent)]
    Checkpoint(#[from] lmforge_checkpoint::CheckpointError),
    /// The target format cannot represent something about this model or tokenizer.
    #[error("cannot export to {format}: {reason}")]
    Unsupported {
        /// `hf` or `gguf`.
        format: &'static str,
        /// What cannot be represented, and what to do instead.
        reason: String,
    },
    /// A flag or the output path is unusable.
    #[error("{flag}: {reason}")]
    Usage {
        /// The flag (`--out`, `--dtype`, ...).
        flag: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Building the tokenizer files failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Writing a file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file or folder.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl ExportError {
    /// A format that cannot represent the model or tokenizer.
    pub(crate) fn unsupported(format: &'static str, reason: impl Into<String>) -> Self {
        ExportError::Unsupported {
            format,
            reason: reason.into(),
        }
    }

    /// A file operation on `path` that failed.
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        ExportError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}
