//! Special tokens: which ids a tokenizer reserves for padding, unknown text and sequence ends.

use serde::{Deserialize, Serialize};

/// Names of the special tokens every tokenizer trained by lmforge reserves, at ids 0..=3.
pub const TRAINED_SPECIALS: [&str; 4] = ["<pad>", "<unk>", "<bos>", "<eos>"];
/// Id of `<pad>` in trained kinds.
pub const PAD_ID: u32 = 0;
/// Id of `<unk>` in trained kinds: replaces text outside the vocabulary.
pub const UNK_ID: u32 = 1;
/// Id of `<bos>` in trained kinds.
pub const BOS_ID: u32 = 2;
/// Id of `<eos>` in trained kinds: the end of a document.
pub const EOS_ID: u32 = 3;

/// The ids of a tokenizer's special tokens, where it has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialTokens {
    /// Padding.
    pub pad: Option<u32>,
    /// Stands for text outside the vocabulary.
    pub unk: Option<u32>,
    /// Beginning of a sequence.
    pub bos: Option<u32>,
    /// End of text: separates documents in prepared data and stops generation.
    pub eos: Option<u32>,
}

impl SpecialTokens {
    /// The fixed layout of kinds trained by lmforge.
    pub const TRAINED: SpecialTokens = SpecialTokens {
        pad: Some(PAD_ID),
        unk: Some(UNK_ID),
        bos: Some(BOS_ID),
        eos: Some(EOS_ID),
    };
}
