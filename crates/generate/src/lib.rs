//! Generation and evaluation for lmforge checkpoints.
//!
//! - [`checkpoint`]: open a checkpoint folder (model, config, tokenizer) with clear errors.
//! - [`sampling`]: greedy, temperature, top-k and top-p (nucleus) sampling, seeded.
//! - [`generate`](mod@generate): KV-cached generation with streaming text, stop strings and `<eos>`.
//! - [`eval`]: loss, perplexity and bits per byte over text with a strided context.

pub mod checkpoint;
pub mod error;
pub mod eval;
pub mod generate;
pub mod sampling;
pub mod stream;

pub use checkpoint::Checkpoint;
pub use error::{GenerateError, Result};
pub use eval::{evaluate_tokens, EvalOptions, EvalReport};
pub use generate::{generate, GenerateOptions, GenerateOutput, StopReason};
pub use sampling::{Sampler, SamplingConfig};
