//! Bridges between lmforge checkpoints and the rest of the ecosystem.
//!
//! - [`export`]: an lmforge checkpoint → a Hugging Face `transformers` folder or a GGUF file
//!   for llama.cpp.
//! - [`import`]: a Hugging Face GPT-2 folder or a nanoGPT / PyTorch checkpoint → an lmforge
//!   checkpoint (and the weights `lmforge train --init-from` starts from).
//! - [`gpt2`]: the naming contract both directions share.
#![warn(missing_docs)]

pub mod export;
pub mod gpt2;
pub mod import;
