//! Errors for reading text sources. Every variant names the file or pattern involved.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CorpusError>;

/// Something wrong with a text source, phrased for the person who named it.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: no such file or folder")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid UTF-8 at byte offset {offset} (convert the file to UTF-8, or pass --lossy to replace invalid bytes)")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("pattern '{pattern}' matches no files")]
    NoMatch { pattern: String },
    #[error("invalid pattern '{pattern}': {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("{path}: folder contains no text files{hint}")]
    NoTextFiles { path: PathBuf, hint: String },
    #[error("the corpus is empty: no text in {what}")]
    Empty { what: String },
    #[error(
        "bundled corpus not found (looked in {looked}); name a corpus file or folder explicitly"
    )]
    BundledMissing { looked: String },
}
