//! lmforge-data: corpus preparation into memory-mapped token files, and batch sampling.
//!
//! nanoGPT's lesson: tokenize once into binary token files, memory-map them, and sample
//! windows. This crate does that for every source lmforge accepts:
//!
//! - [`tokfile`]: the `.bin` format (64-byte header + u16/u32 tokens), streaming writer,
//!   memory-mapped reader.
//! - [`prepare`](mod@prepare): sources → tokenizer → `train.bin` / `val.bin` / `meta.json`.
//! - [`split`]: how the validation split is chosen.
//! - [`wikitext`] and [`download`]: the WikiText-2/-103 layout and fetching its archive.
//! - [`loader`]: [`DataDir`], a validated prepared folder.
//! - [`sampler`]: [`BatchSampler`] (random or sequential windows, resumable state) and
//!   [`EvalBatches`] (a fixed validation set).

#![warn(missing_docs)]

pub mod download;
pub mod error;
pub mod loader;
pub mod meta;
pub mod pairs;
pub mod prepare;
pub mod sampler;
pub mod split;
pub mod tokfile;
pub mod wikitext;

pub use error::{DataError, Result};
pub use loader::DataDir;
pub use prepare::{prepare, PrepareOptions, PrepareReport, TokenizerChoice};
pub use sampler::{BatchSampler, EvalBatches, SamplerState, Sampling};
pub use split::ValSplit;
pub use tokfile::{Dtype, TokenFile, TokenWriter};
