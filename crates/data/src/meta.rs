//! `meta.json`: what a data folder was made from, so a run can be traced back to its exact
//! inputs and a mismatched tokenizer refused.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{DataError, Dtype, Result};

/// Current `meta.json` format version.
pub const META_VERSION: u32 = 1;

/// One source file as it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMeta {
    /// The path as resolved from what the user named.
    pub path: String,
    /// Size in bytes on disk.
    pub bytes: u64,
    /// sha256 of the file's bytes (hex).
    pub sha256: String,
    /// Tokens it produced (separators not included).
    pub tokens: u64,
    /// Which stream it went to: `train` (then split by fraction), `val` or `test`.
    pub stream: String,
}

/// The tokenizer the data was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerMeta {
    /// Tokenizer kind (`char`, `bpe`, `tiktoken:o200k_base`, ...).
    pub kind: String,
    /// The tokenizer's fingerprint; the token files' headers carry the same.
    pub fingerprint: String,
    /// Number of token ids: the smallest vocabulary a model on this data may have.
    pub vocab_size: usize,
    /// File name of the tokenizer copy inside the folder.
    pub file: String,
    /// End-of-text id placed between documents, if the tokenizer has one.
    pub separator: Option<u32>,
}

/// Contents of `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Format version of `meta.json`.
    pub lmforge_data: u32,
    /// Version of the lmforge that prepared the folder.
    pub lmforge_version: String,
    /// The tokenizer the data was made with.
    pub tokenizer: TokenizerMeta,
    /// Width of the stored tokens.
    pub dtype: Dtype,
    /// Tokens in `train.bin`.
    pub train_tokens: u64,
    /// Tokens in `val.bin`.
    pub val_tokens: u64,
    /// Tokens in `test.bin`, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_tokens: Option<u64>,
    /// How the val split was made, in words (e.g. `last 0.1 of the token stream`).
    pub split: String,
    /// The block size the splits were checked against at preparation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<usize>,
    /// Whether Project Gutenberg headers and footers were stripped.
    pub strip_gutenberg: bool,
    /// Every source file, in the order it was tokenized.
    pub sources: Vec<SourceMeta>,
}

impl Meta {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Meta> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| DataError::BadMeta {
            path: path.to_path_buf(),
            reason: format!("corrupted meta.json: {e}"),
        })
    }

    /// The training documents' `(start, tokens)` in `train.bin`: the train-stream sources in
    /// order, a separator between them when the tokenizer has one, cut at `train_len` (a
    /// tail split moves the end of the stream to `val.bin`).
    pub fn train_documents(&self, train_len: u64) -> Vec<(u64, u64)> {
        let mut docs = Vec::new();
        let mut at = 0u64;
        let written = self
            .sources
            .iter()
            .filter(|s| s.stream == "train" && s.tokens > 0);
        for (i, src) in written.enumerate() {
            if i > 0 && self.tokenizer.separator.is_some() {
                at += 1;
            }
            let end = (at + src.tokens).min(train_len);
            if at < end {
                docs.push((at, end - at));
            }
            at += src.tokens;
        }
        docs
    }

    /// Pretty JSON bytes, newline-terminated.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self)
            .map_err(|e| DataError::InvalidOption(format!("cannot serialise meta.json: {e}")))?;
        v.push(b'\n');
        Ok(v)
    }
}
