//! Generation and evaluation for lmforge checkpoints.
//!
//! - checkpoints are opened with `lmforge-checkpoint` ([`Checkpoint`], re-exported).
//! - [`sampling`]: greedy, temperature, top-k and top-p (nucleus) sampling, seeded.
//! - [`generate`](mod@generate): KV-cached generation with streaming text, stop strings and `<eos>`.
//! - [`seq2seq`] and [`beam`]: encoder–decoder decoding (greedy, beam search, sampling)
//!   over the [`seq2seq::Seq2SeqStep`] seam; [`bleu`]: sacreBLEU-exact corpus BLEU.
//! - [`eval`]: loss, perplexity and bits per byte over text with a strided context;
//!   [`eval_text`](mod@eval_text): which text that is (the checkpoint's val split, a data folder, files).

#![warn(missing_docs)]

pub mod beam;
pub mod bleu;
pub mod error;
pub mod eval;
pub mod eval_text;
pub mod generate;
pub mod sampling;
pub mod seq2seq;
pub mod seq2seq_ckpt;
pub mod stream;

pub use error::{GenerateError, Result};
pub use eval::{evaluate_tokens, EvalOptions, EvalReport};
pub use eval_text::{eval_text, EvalText};
pub use generate::{generate, generate_steps, GenerateOptions, GenerateOutput, Step, StopReason};
pub use lmforge_checkpoint::Checkpoint;
pub use sampling::{Sampler, SamplingConfig};
