//! Text sources for lmforge: which files a user means, and their text.
//!
//! Every stage that reads raw text (tokenizer training, `prepare`, `eval`) resolves its
//! sources through [`resolve_sources`] and reads them with [`read_text`], so files, folders
//! and glob patterns behave the same everywhere and errors always name the file.
//!
//! - [`sources`]: files, folders (recursive, text files only), globs → sorted paths.
//! - [`read`]: UTF-8 reading with the byte offset of the first bad byte, or lossy.
//! - [`stream`]: the same, chunk by chunk in bounded memory ([`TextChunks`]); every
//!   command that reads a corpus reads it this way.
//! - [`progress`]: a progress bar with MB/s for long reads.
//! - [`gutenberg`]: Project Gutenberg licence header/footer stripping.
//! - [`bundled`]: where the bundled Shakespeare corpus lives.

#![warn(missing_docs)]

pub mod bundled;
pub mod clean;
pub mod error;
pub mod gutenberg;
pub mod progress;
pub mod read;
pub mod sources;
pub mod stream;

pub use bundled::bundled_corpus_dir;
pub use clean::LineCleaner;
pub use error::{CorpusError, Result};
pub use progress::Progress;
pub use read::{read_text, Document};
pub use sources::{resolve_sources, SourceFilter};
pub use stream::{DocChunks, TextChunks, DEFAULT_CHUNK_BYTES};
