//! Hugging Face `tokenizers`-backed kinds: byte-level BPE (GPT-2 style) and
//! SentencePiece-style unigram, both trained here and saved as a standard
//! `tokenizer.json` that Python `tokenizers` loads and encodes identically.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainerBuilder};
use tokenizers::models::ModelWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::AddedToken;

use crate::special::{SpecialTokens, TRAINED_SPECIALS};
use crate::{Result, TokenizerError};

/// Which HF model a `tokenizer.json` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfKind {
    /// A BPE model (lmforge's `bpe` kind is byte-level BPE).
    Bpe,
    /// A unigram model (lmforge's `unigram` kind).
    Unigram,
    /// Any other HF model (WordPiece, WordLevel, ...): used as is, reported as `huggingface`.
    Other,
}

/// A Hugging Face tokenizer plus what lmforge needs to know about it.
#[derive(Clone)]
pub struct HfTokenizer {
    /// The Hugging Face tokenizer that does the work.
    pub inner: tokenizers::Tokenizer,
    /// Which model `inner` holds.
    pub kind: HfKind,
    /// Canonical JSON (compact), used for saving and the fingerprint.
    pub json: String,
}

fn hf_err(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Hf(e.to_string())
}

impl HfTokenizer {
    fn wrap(inner: tokenizers::Tokenizer) -> Result<Self> {
        let kind = match inner.get_model() {
            ModelWrapper::BPE(_) => HfKind::Bpe,
            ModelWrapper::Unigram(_) => HfKind::Unigram,
            _ => HfKind::Other,
        };
        let json = inner.to_string(false).map_err(hf_err)?;
        Ok(HfTokenizer { inner, kind, json })
    }

    /// Parses a `tokenizer.json` (already read into memory).
    pub fn from_json(path: &Path, json: &str) -> Result<Self> {
        let inner: tokenizers::Tokenizer = json.parse().map_err(|e| {
            TokenizerError::bad_file(path, format!("not a valid tokenizer.json: {e}"))
        })?;
        check_ids_dense(path, &inner)?;
        Self::wrap(inner)
    }

    /// Trains byte-level BPE (no normaliser, GPT-2 byte-level pre-tokeniser without prefix
    /// space, so any UTF-8 text round-trips) with the four special tokens at ids 0..=3.
    pub fn train_bpe<S: AsRef<str> + Send + Sync>(texts: &[S], vocab_size: usize) -> Result<Self> {
        let mut counts = std::collections::HashMap::new();
        for t in texts {
            crate::bpe_words::count_gpt2(t.as_ref(), &mut counts);
        }
        let owned = counts.into_iter().map(|(w, n)| (w.to_string(), n));
        Self::bpe_from_counts(owned.collect(), vocab_size)
    }

    /// Trains byte-level BPE (see [`HfTokenizer::train_bpe`]) from GPT-2 pre-token counts
    /// ([`crate::bpe_words::count_gpt2`]): the same result as HF's `Tokenizer::train` on
    /// the text they were counted from.
    pub fn bpe_from_counts(
        counts: std::collections::HashMap<String, u64>,
        vocab_size: usize,
    ) -> Result<Self> {
        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(specials())
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut model = BPE::default();
        let added = trainer
            .do_train(&crate::bpe_words::to_byte_level(counts), &mut model)
            .map_err(hf_err)?;
        let mut tok = tokenizers::Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tok.with_decoder(Some(ByteLevelDecoder::default()));
        tok.add_special_tokens(&added);
        Self::wrap(tok)
    }

    /// Trains a SentencePiece-style unigram model (Metaspace `▁` pre-tokeniser) from
    /// Metaspace word counts ([`crate::metaspace_words::count_metaspace`]), given to the
    /// trainer in sorted order so the result does not depend on hash-map order.
    pub fn unigram_from_counts(
        counts: std::collections::HashMap<String, u64>,
        vocab_size: usize,
    ) -> Result<Self> {
        let trainer = UnigramTrainerBuilder::default()
            .vocab_size(vocab_size as u32)
            .show_progress(false)
            .special_tokens(specials())
            .unk_token(Some(TRAINED_SPECIALS[1].to_string()))
            .build()
            .map_err(hf_err)?;
        let mut model = Unigram::default();
        let sentences = crate::metaspace_words::to_sentences(counts);
        let added = trainer.do_train(sentences, &mut model).map_err(hf_err)?;
        let mut tok = tokenizers::Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
        tok.with_decoder(Some(MetaspaceDecoder::new(
            '▁',
            PrependScheme::Always,
            true,
        )));
        tok.add_special_tokens(&added);
        Self::wrap(tok)
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Special tokens found by their usual names (`<eos>`, `</s>`, `<|endoftext|>`, ...).
    pub fn specials(&self) -> SpecialTokens {
        let find = |names: &[&str]| names.iter().find_map(|n| self.inner.token_to_id(n));
        SpecialTokens {
            pad: find(&["<pad>", "[PAD]"]),
            unk: find(&["<unk>", "[UNK]"]),
            bos: find(&["<bos>", "<s>"]),
            eos: find(&["<eos>", "</s>", "<|endoftext|>"]),
        }
    }

    /// Encodes `text` without adding special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode_fast(text, false)
            .map_err(hf_err)?
            .get_ids()
            .to_vec())
    }

    /// Decodes, keeping special tokens as text.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(hf_err)
    }

    /// Token text for an id as stored in the vocabulary.
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}

/// Refuses token ids far beyond the number of tokens. `tokenizers` re-serialises a
/// vocabulary by walking every id up to the largest one (and listing the gaps), so one id
/// of 4 000 000 000 in a corrupted file would cost minutes and gigabytes (u32::MAX even
/// overflows). Gaps are allowed, up to as many missing ids as tokens.
fn check_ids_dense(path: &Path, tok: &tokenizers::Tokenizer) -> Result<()> {
    let vocab = tok.get_vocab(true);
    let limit = vocab.len().saturating_mul(2).max(1);
    match vocab.iter().max_by_key(|(_, &id)| id) {
        Some((token, &id)) if id as usize >= limit => Err(TokenizerError::bad_file(
            path,
            format!(
                "token {token:?} has id {id}, far beyond the {} tokens the file defines (corrupted tokenizer.json?)",
                vocab.len()
            ),
        )),
        _ => Ok(()),
    }
}

fn specials() -> Vec<AddedToken> {
    TRAINED_SPECIALS
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect()
}
