//! The lmforge checkpoint folder, in one place: written by training, read by generation,
//! evaluation and resume.
//!
//! A checkpoint is a folder holding what inference needs — `model.safetensors` (nanoGPT's
//! `state_dict` names, tied head stored once), `config.json` and the tokenizer file — and,
//! for a *resumable* checkpoint, `optimizer.safetensors` (AdamW moments) and `state.json`
//! ([`TrainState`]: step, RNG and schedule positions). In a run folder,
//! `checkpoints/best/` is inference-only; `checkpoints/last/` and `checkpoints/step-N/` are
//! resumable.
//!
//! - [`write`](mod@write): [`save_checkpoint`] writes a folder atomically (temp folder, then renames).
//! - [`find`]: [`find_checkpoint`] (with the crash fallback), run folder → checkpoint,
//!   pruning of periodic checkpoints.
//! - [`load`]: [`Checkpoint::load`] (model + tokenizer + optional state), checked.
//! - [`state`]: the typed [`TrainState`] of `state.json`.
#![warn(missing_docs)]

pub mod error;
pub mod find;
pub mod load;
pub mod state;
pub mod write;

pub use error::{CheckpointError, Result};
pub use find::{find_checkpoint, list_checkpoints, prune_periodic, resolve_checkpoint_dir};
pub use load::Checkpoint;
pub use state::{load_state, EarlyStopState, PlateauState, TrainState, STATE_FILE, STATE_FORMAT};
pub use write::{save_checkpoint, CheckpointParts, Resumable};

/// Name of the checkpoint with the lowest validation loss (inference-only).
pub const BEST: &str = "best";
/// Name of the checkpoint of the latest evaluation or interruption (resumable).
pub const LAST: &str = "last";
/// The folder of checkpoints inside a run folder.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
