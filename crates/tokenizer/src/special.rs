//! Special tokens: which ids a tokenizer reserves for padding, unknown text and sequence ends.

use serde::{Deserialize, Serialize};

/// Names of the special tokens every tokenizer trained by lmforge reserves, at ids 0..=3.
pub const TRAINED_SPECIALS: [&str; 4] = ["<pad>", "<unk>", "<bos>", "<eos>"];
pub const PAD_ID: u32 = 0;
pub const UNK_ID: u32 = 1;
pub const BOS_ID: u32 = 2;
pub const EOS_ID: u32 = 3;

/// The ids of a tokenizer's special tokens, where it has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialTokens {
    pub pad: Option<u32>,
    pub unk: Option<u32>,
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
