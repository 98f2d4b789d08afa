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
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The sources hold no text at all.
    #[error("the corpus is empty: {what} contain no text")]
    Empty {
        /// The sources, for the message.
        what: String,
    },
    /// A file is not an lmforge token file.
    #[error("{path}: not an lmforge token file (bad magic; expected a .bin written by `lmforge prepare`)")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// A token file from a format version this lmforge cannot read.
    #[error("{path}: token file format version {found} is not supported (this lmforge reads version {supported}); run `lmforge prepare` again")]
    BadVersion {
        /// The file.
        path: PathBuf,
        /// The version in its header.
        found: u16,
        /// The version this lmforge reads.
        supported: u16,
    },
    /// A token file header names an unknown token width.
    #[error("{path}: unknown token dtype code {code} (expected 2 for u16 or 4 for u32)")]
    BadDtype {
        /// The file.
        path: PathBuf,
        /// The width code in its header.
        code: u32,
    },
    /// A token file's size does not match its header's token count.
    #[error("{path}: truncated or corrupted token file: header says {count} tokens ({expected} bytes) but the file has {actual} bytes; run `lmforge prepare` again")]
    BadLength {
        /// The file.
        path: PathBuf,
        /// Token count in the header.
        count: u64,
        /// File size that count implies.
        expected: u64,
        /// Actual file size.
        actual: u64,
    },
    /// A token id does not fit the file's token width.
    #[error("{path}: token id {id} at position {position} does not fit the file's dtype")]
    IdTooLarge {
        /// The file being written.
        path: PathBuf,
        /// The id.
        id: u32,
        /// Its position in the token stream.
        position: u64,
    },
    /// `meta.json` is missing, unreadable or inconsistent.
    #[error("{path}: {reason}")]
    BadMeta {
        /// The `meta.json` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A data folder was prepared with another tokenizer than the one expected.
    #[error("{dir}: data was prepared with tokenizer {found} but {expected} is expected; run `lmforge prepare` again with the same tokenizer, or use the tokenizer saved in {dir}")]
    FingerprintMismatch {
        /// The data folder.
        dir: PathBuf,
        /// Fingerprint recorded in the folder.
        found: String,
        /// Fingerprint of the tokenizer in use.
        expected: String,
    },
    /// Files in one data folder disagree about their tokenizer.
    #[error("{dir}: {file_a} has tokenizer {fp_a} but {file_b} has {fp_b}; the folder mixes two preparations, run `lmforge prepare` again")]
    MixedFingerprints {
        /// The data folder.
        dir: PathBuf,
        /// One file.
        file_a: String,
        /// Its tokenizer fingerprint.
        fp_a: String,
        /// The other file.
        file_b: String,
        /// Its tokenizer fingerprint.
        fp_b: String,
    },
    /// A split is too short for even one window of the block size.
    #[error("the {split} split has {tokens} tokens but block size {block_size} needs at least {needed} (block_size + 1); {hint}")]
    SplitTooSmall {
        /// `train`, `val` or `test`.
        split: String,
        /// Tokens in the split.
        tokens: u64,
        /// The block size asked for.
        block_size: usize,
        /// Tokens needed (`block_size + 1`).
        needed: u64,
        /// What to change, for the message.
        hint: String,
    },
    /// An option value that cannot work; the message says which and what to do.
    #[error("{0}")]
    InvalidOption(String),
    /// Batch buffers of the wrong length were passed to a sampler.
    #[error("batch buffers have {got} elements but batch {batch} × block {block} needs {needed}")]
    BufferSize {
        /// Length of the buffers given.
        got: usize,
        /// Length needed.
        needed: usize,
        /// Windows per batch.
        batch: usize,
        /// Tokens per window.
        block: usize,
    },
    /// A saved sampler state does not belong to this sampler (other batch, block or data).
    #[error("sampler state is for {what_state} but this sampler is {what_self}; resume with the same batch size, block size and data")]
    StateMismatch {
        /// What the state was made for, in words.
        what_state: String,
        /// What this sampler is, in words.
        what_self: String,
    },
    /// A WikiText folder lacks its split files.
    #[error("WikiText files not found: {reason}")]
    WikiTextMissing {
        /// What was looked for and where.
        reason: String,
    },
    /// Downloading the WikiText archive failed.
    #[error("cannot download {url}: {reason}; without network access, download it elsewhere and place it at {place}, then run again")]
    Download {
        /// The archive's address.
        url: String,
        /// Why it failed.
        reason: String,
        /// Where to put a copy fetched by hand.
        place: PathBuf,
    },
    /// A downloaded archive does not have the expected sha256.
    #[error("{path}: sha256 is {found} but {expected} was expected; delete the file and download it again")]
    Checksum {
        /// The archive.
        path: PathBuf,
        /// Its sha256.
        found: String,
        /// The published sha256.
        expected: String,
    },
    /// An archive could not be unpacked.
    #[error("{path}: cannot unzip: {reason}; delete it and download it again")]
    Unzip {
        /// The archive.
        path: PathBuf,
        /// Why unpacking failed.
        reason: String,
    },
    /// Two pair files do not have the same number of lines.
    #[error("pair files are not aligned: {src} has {src_lines} lines but {tgt} has {tgt_lines}; each target line must translate the source line with the same number")]
    UnalignedPairs {
        /// The source file.
        src: PathBuf,
        /// Its line count.
        src_lines: u64,
        /// The target file.
        tgt: PathBuf,
        /// Its line count.
        tgt_lines: u64,
    },
    /// A pair has an empty source or target side (or a TSV line lacks its tab).
    #[error("{path}:{line}: {reason}")]
    BadPair {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it and what to do.
        reason: String,
    },
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
