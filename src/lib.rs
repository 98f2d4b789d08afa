//! lmforge
pub mod cli;
pub use lmforge_tokenizer as tokenizer;
