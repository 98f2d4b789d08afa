//! Training for lmforge: `lmforge train`.
//!
//! - [`config`]: every setting in one TOML file; [`settings`]: reading it, with `--key value`
//!   overrides on top; [`args`]: the command line of a run (`--config`, `--resume`, ...).
//! - [`run`]: the run — [`train`] is the loop (evaluate → checkpoint → step), [`Run`] what it
//!   works on; the run folder is locked and never silently reused.
//! - [`schedule`]: linear warmup then cosine decay to `min_lr` (nanoGPT's `get_lr`), and
//!   torch's ReduceLROnPlateau.
//! - [`early_stop`]: stop when val loss stops improving (patience) or rises above the best
//!   by more than `stop_above_best`.
//! - [`modes`]: the seeds' workflow settings parsed, and the settings that contradict each other.
//! - [`workflows`]: the workflow presets (`--preset janelm`, …), a layer of settings.
//! - [`metrics`]: `metrics.jsonl`, `samples.jsonl` and the `loss.png` curve.
//! - [`tb`]: TensorBoard event files under `RUN_DIR/tb` (same series, samples, config).
//!
//! Checkpoint folders themselves are `lmforge-checkpoint`'s.

#![warn(missing_docs)]

pub mod args;
pub mod config;
pub mod early_stop;
pub mod error;
pub mod metrics;
pub mod modes;
pub mod progress;
pub mod run;
pub mod schedule;
pub mod settings;
pub mod tb;
pub mod workflows;

pub use args::RunArgs;
pub use config::TrainConfig;
pub use error::{Result, TrainError};
pub use run::{train, EndReason, EvalSampler, Run, RunOptions, TrainReport};
