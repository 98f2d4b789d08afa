//! Errors for reading text sources. Every variant names the file or pattern involved.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CorpusError>;

/// Something wrong with a text source, phrased for the person who named it.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A named file or folder does not exist.
    #[error("{path}: no such file or folder")]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A file or folder exists but could not be read.
    #[error("{path}: cannot read: {source}")]
    Unreadable {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A file holds bytes that are not UTF-8 (and lossy reading was not asked for).
    #[error("{path}: not valid UTF-8 at byte offset {offset} (convert the file to UTF-8, or pass --lossy to replace invalid bytes)")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// A glob pattern matched nothing.
    #[error("pattern '{pattern}' matches no files")]
    NoMatch {
        /// The pattern as given.
        pattern: String,
    },
    /// A glob or include/exclude pattern does not parse.
    #[error("invalid pattern '{pattern}': {reason}")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
        /// The parser's reason.
        reason: String,
    },
    /// A folder holds no file that passes the text-file test and the filters.
    #[error("{path}: folder contains no text files{hint}")]
    NoTextFiles {
        /// The folder.
        path: PathBuf,
        /// Words appended to the message (starting with a space): why nothing matched.
        hint: String,
    },
    /// Every source resolved, but together they hold no text.
    #[error("the corpus is empty: no text in {what}")]
    Empty {
        /// What was read, for the message.
        what: String,
    },
    /// The bundled corpus folder is not where the build or the binary expects it.
    #[error(
        "bundled corpus not found (looked in {looked}); name a corpus file or folder explicitly"
    )]
    BundledMissing {
        /// The places searched, for the message.
        looked: String,
    },
}
