//! Tokenizers for lmforge: one [`Tokenizer`] type over every kind the project supports.
//!
//! | kind | module | trained here | file |
//! |---|---|---|---|
//! | `char` | [`char_level`] | yes (sorted unique characters, nanoGPT-style) | lmforge JSON |
//! | `word` | [`word`] | yes (frequency-capped words, punctuation, whitespace runs) | lmforge JSON |
//! | `bpe` | [`hf`] | yes (byte-level BPE via HF `tokenizers`) | HF `tokenizer.json` |
//! | `unigram` | [`hf`] | yes (SentencePiece-style unigram via HF `tokenizers`) | HF `tokenizer.json` |
//! | `tiktoken:<name>` | [`tiktoken`] | built in (gpt2, r50k_base, p50k_base, cl100k_base, o200k_base) | lmforge JSON naming it |
//! | `sentencepiece` | [`sentencepiece`] | loaded from a SentencePiece `.model` | the `.model` itself |
//!
//! Every tokenizer has a stable [`Tokenizer::fingerprint`] so prepared data and
//! checkpoints can refuse a mismatched tokenizer, and saves to / loads from one file.
//! Trained kinds put the special tokens `<pad>`, `<unk>`, `<bos>`, `<eos>` at ids 0..=3.

#![warn(missing_docs)]

pub mod bench;
pub mod bpe_words;
pub mod char_level;
pub mod error;
pub mod hf;
pub mod ids;
pub mod metaspace_words;
pub mod parallel;
pub mod segment;
pub mod sentencepiece;
pub mod special;
pub mod stream;
pub mod tiktoken;
mod tokenizer;
pub mod train;
pub mod train_stream;
pub mod word;

pub use error::{Result, TokenizerError};
pub use ids::parse_ids;
pub use special::SpecialTokens;
pub use stream::StreamEncoder;
pub use tokenizer::{write_atomic, Tokenizer};
pub use train::{train, train_from_paths, train_from_sources, TrainKind};
pub use train_stream::StreamOptions;
pub use word::WordOptions;
