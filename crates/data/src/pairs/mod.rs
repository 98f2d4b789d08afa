//! Sequence-to-sequence pair data: prepared folders of (source, target) token sequences,
//! padded batches with bucketing by length, and the special ids that frame them.
//!
//! # On disk (a pair-data folder, written by [`prepare_pairs`])
//! - `train.src.bin`, `train.tgt.bin`, `val.src.bin`, `val.tgt.bin`: ordinary token files
//!   ([`crate::tokfile`]) holding every pair's tokens back to back, without special ids.
//! - `train.idx`, `val.idx`: the pairs' boundaries ([`store`]): for pair `i`, source tokens
//!   `src_off[i]..src_off[i+1]` and target tokens `tgt_off[i]..tgt_off[i+1]`.
//! - `pairs.json` ([`PairsMeta`]): tokenizers, special ids, counts, truncations.
//! - the tokenizer file (one shared tokenizer) or two (`src-…`, `tgt-…`).
//!
//! # Special ids
//! Every tokenizer kind gets the same rule: the three ids after the side's tokenizer
//! vocabulary `V` are reserved, `<pad> = V`, `<bos> = V + 1`, `<eos> = V + 2`, and that side
//! of the model has a vocabulary of `V + 3` ([`Specials`]). Reserving ids after the
//! tokenizer's keeps every tokenizer id unchanged (a tiktoken `<|endoftext|>` stays an
//! ordinary token), needs no edit of the tokenizer file, and works for char, word, BPE,
//! unigram, tiktoken and SentencePiece alike. With one shared tokenizer both sides have the
//! same specials; with two, each side has its own.
//!
//! # Batches
//! A [`PairBatch`] holds `batch` pairs, each padded to the longest in the batch (or to the
//! block sizes, [`PadTo::Block`]): `src [B,S]`, `tgt_in [B,T] = <bos> + target`,
//! `tgt_out [B,T] = target + <eos>` with [`IGNORE`] (`-1`) at padded positions, as the
//! cross-entropy op expects. [`PairSampler`] draws training batches (seeded, bucketed by
//! length, resumable through [`PairSamplerState`]); [`PairBatches`] walks all pairs in order
//! for evaluation.

mod batch;
mod dir;
mod prepare;
mod sampler;
pub mod store;

pub use batch::{BatchShape, PadTo, PairBatch, IGNORE};
pub use dir::{PairDataDir, PairsMeta, SideMeta, PAIRS_META_VERSION};
pub use prepare::{prepare_pairs, PairInput, PairPrepareOptions, PairPrepareReport};
pub use sampler::{PairBatches, PairSampler, PairSamplerState};
pub use store::{PairSet, PairWriter};

use serde::{Deserialize, Serialize};

/// The reserved ids of one side: `<pad> = V`, `<bos> = V + 1`, `<eos> = V + 2` for a
/// tokenizer of `V` ids (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Specials {
    /// Padding id (never a target: padded target positions are [`IGNORE`]).
    pub pad: u32,
    /// Begin-of-sequence id: the decoder's first input.
    pub bos: u32,
    /// End-of-sequence id: the decoder's last target; decoding stops on it.
    pub eos: u32,
}

impl Specials {
    /// The specials after a tokenizer of `tokenizer_vocab` ids.
    pub fn after(tokenizer_vocab: usize) -> Specials {
        let v = tokenizer_vocab as u32;
        Specials {
            pad: v,
            bos: v + 1,
            eos: v + 2,
        }
    }

    /// The model vocabulary of this side: tokenizer ids plus the three specials.
    pub fn vocab_size(&self) -> usize {
        self.eos as usize + 1
    }

    /// True for `<pad>`, `<bos>` and `<eos>` (ids a tokenizer cannot decode).
    pub fn is_special(&self, id: u32) -> bool {
        id == self.pad || id == self.bos || id == self.eos
    }
}
