//! OpenAI's tiktoken encodings (gpt2/r50k_base, p50k_base, cl100k_base, o200k_base), offline:
//! `tiktoken-rs` bundles the rank files, so ids are identical to Python `tiktoken`.

use tiktoken_rs::CoreBPE;

use crate::special::SpecialTokens;
use crate::{Result, TokenizerError};

/// Encodings lmforge knows, as `tiktoken:<name>`.
pub const ENCODINGS: [&str; 5] = [
    "gpt2",
    "r50k_base",
    "p50k_base",
    "cl100k_base",
    "o200k_base",
];

/// A built-in tiktoken encoding.
#[derive(Clone)]
pub struct TiktokenTokenizer {
    name: &'static str,
    bpe: &'static CoreBPE,
    /// One past the largest token id, specials included (tiktoken's `n_vocab`).
    n_vocab: usize,
    eot: u32,
}

impl TiktokenTokenizer {
    /// Looks up an encoding by name (`o200k_base`, ...).
    pub fn new(name: &str) -> Result<Self> {
        let (name, bpe, n_vocab, eot): (&'static str, &'static CoreBPE, usize, u32) = match name {
            // gpt2 and r50k_base share ranks, pattern and specials.
            "gpt2" => ("gpt2", tiktoken_rs::r50k_base_singleton(), 50257, 50256),
            "r50k_base" => (
                "r50k_base",
                tiktoken_rs::r50k_base_singleton(),
                50257,
                50256,
            ),
            "p50k_base" => (
                "p50k_base",
                tiktoken_rs::p50k_base_singleton(),
                50281,
                50256,
            ),
            "cl100k_base" => (
                "cl100k_base",
                tiktoken_rs::cl100k_base_singleton(),
                100277,
                100257,
            ),
            "o200k_base" => (
                "o200k_base",
                tiktoken_rs::o200k_base_singleton(),
                200019,
                199999,
            ),
            other => {
                return Err(TokenizerError::UnknownName {
                    name: format!("tiktoken:{other}"),
                    known: ENCODINGS
                        .iter()
                        .map(|e| format!("tiktoken:{e}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        Ok(TiktokenTokenizer {
            name,
            bpe,
            n_vocab,
            eot,
        })
    }

    /// The encoding's name, e.g. `o200k_base`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One past the largest id, special tokens included (tiktoken's `n_vocab`).
    pub fn vocab_size(&self) -> usize {
        self.n_vocab
    }

    /// Only `eos` is set: `<|endoftext|>`.
    pub fn specials(&self) -> SpecialTokens {
        SpecialTokens {
            eos: Some(self.eot),
            ..SpecialTokens::default()
        }
    }

    /// Encodes ordinary text: special-token strings in the text are treated as text,
    /// like tiktoken's `encode_ordinary`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.bpe.encode_ordinary(text)
    }

    /// The bytes the ids stand for (may end inside a UTF-8 character).
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        self.bpe.decode_bytes(ids).map_err(|e| {
            TokenizerError::Invalid(format!("cannot decode with tiktoken:{}: {e}", self.name))
        })
    }
}
