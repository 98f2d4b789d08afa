//! lmforge: from raw text to a trained GPT-style language model and generated text.
//!
//! The library is organised as one crate per stage, re-exported here; the `lmforge`
//! binary ([`cli`]) is a thin layer over these public functions.
//!
//! | stage | crate | what it does |
//! |---|---|---|
//! | [`corpus`] | `lmforge-corpus` | which files a user means, read as UTF-8 |
//! | [`tokenizer`] | `lmforge-tokenizer` | char, word, BPE, unigram, tiktoken, SentencePiece |

pub mod cli;

pub use lmforge_corpus as corpus;
pub use lmforge_tokenizer as tokenizer;
