//! Errors for preparing and loading token data. Every variant is one line that names the
//! file, the numbers involved, and what to do about it.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DataError>;

/// What went wrong while preparing or loading token data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A source could not be resolved or read (missing file, empty glob, non-UTF-8 …).
    #[error(transparent)]
    Corpus(#[from] lmforge_corpus::CorpusError),
    /// The tokenizer could not be loaded, trained or run.
    #[error(transparent)]
    Tokenizer(#[from] lmforge_tokenizer::TokenizerError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the corpus is empty: {what} contain no text")]
    Empty { what: String },
    #[error("{path}: not an lmforge token file (bad magic; expected a .bin written by `lmforge prepare`)")]
    BadMagic { path: PathBuf },
    #[error("{path}: token file format version {found} is not supported (this lmforge reads version {supported}); run `lmforge prepare` again")]
    BadVersion {
        path: PathBuf,
        found: u16,
        supported: u16,
    },
    #[error("{path}: unknown token dtype code {code} (expected 2 for u16 or 4 for u32)")]
    BadDtype { path: PathBuf, code: u32 },
    #[error("{path}: truncated or corrupted token file: header says {count} tokens ({expected} bytes) but the file has {actual} bytes; run `lmforge prepare` again")]
    BadLength {
        path: PathBuf,
        count: u64,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: token id {id} at position {position} does not fit the file's dtype")]
    IdTooLarge {
        path: PathBuf,
        id: u32,
        position: u64,
    },
    #[error("{path}: {reason}")]
    BadMeta { path: PathBuf, reason: String },
    #[error("{dir}: data was prepared with tokenizer {found} but {expected} is expected; run `lmforge prepare` again with the same tokenizer, or use the tokenizer saved in {dir}")]
    FingerprintMismatch {
        dir: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{dir}: {file_a} has tokenizer {fp_a} but {file_b} has {fp_b}; the folder mixes two preparations, run `lmforge prepare` again")]
    MixedFingerprints {
        dir: PathBuf,
        file_a: String,
        fp_a: String,
        file_b: String,
        fp_b: String,
    },
    #[error("the {split} split has {tokens} tokens but block size {block_size} needs at least {needed} (block_size + 1); {hint}")]
    SplitTooSmall {
        split: String,
        tokens: u64,
        block_size: usize,
        needed: u64,
        hint: String,
    },
    #[error("{0}")]
    InvalidOption(String),
    #[error("batch buffers have {got} elements but batch {batch} × block {block} needs {needed}")]
    BufferSize {
        got: usize,
        needed: usize,
        batch: usize,
        block: usize,
    },
    #[error("sampler state is for {what_state} but this sampler is {what_self}; resume with the same batch size, block size and data")]
    StateMismatch {
        what_state: String,
        what_self: String,
    },
    #[error("WikiText files not found: {reason}")]
    WikiTextMissing { reason: String },
    #[error("cannot download {url}: {reason}; without network access, download it elsewhere and place it at {place}, then run again")]
    Download {
        url: String,
        reason: String,
        place: PathBuf,
    },
    #[error("{path}: sha256 is {found} but {expected} was expected; delete the file and download it again")]
    Checksum {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: cannot unzip: {reason}; delete it and download it again")]
    Unzip { path: PathBuf, reason: String },
}

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
