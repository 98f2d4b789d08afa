//! Training for lmforge: `lmforge train`.
//!
//! - [`config`]: every setting in one TOML file, with `--key value` overrides on top.
//! - [`schedule`]: linear warmup then cosine decay to `min_lr` (nanoGPT's `get_lr`).
//! - [`early_stop`]: stop when val loss stops improving.
//! - [`checkpoint`]: atomic checkpoint folders (model, optimizer, tokenizer, state).
//! - [`metrics`]: `metrics.jsonl` and the `loss.png` curve.
//! - [`trainer`]: the loop (forward → loss → backward → clip → AdamW), eval, resume.

pub mod checkpoint;
pub mod config;
pub mod early_stop;
pub mod error;
pub mod metrics;
pub mod progress;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use error::{Result, TrainError};
pub use trainer::{train, RunOptions, TrainReport};
