//! Opening a checkpoint folder for inference, evaluation or fine-tuning. The model config
//! and tokenizer always come from the checkpoint, never from the user.

use std::path::{Path, PathBuf};

use lmforge_model::{io, Gpt};
use lmforge_tokenizer::Tokenizer;

use crate::find::resolve_checkpoint_dir;
use crate::state::{load_state, TrainState, STATE_FILE};
use crate::{CheckpointError, Result, LAST};

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The checkpoint folder (after resolving a run folder).
    pub dir: PathBuf,
    /// The model with its weights loaded.
    pub model: Gpt,
    /// The tokenizer saved beside the weights.
    pub tokenizer: Tokenizer,
    /// `state.json`, when the checkpoint is resumable (`last/`, `step-N/`).
    pub state: Option<TrainState>,
}

impl Checkpoint {
    /// Loads `dir`. A run folder is accepted too: its `checkpoints/best` (else `last`).
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        let dir = resolve_checkpoint_dir(dir)?;
        check_files(&dir)?;
        let model = io::load_model_dir(&dir)?;
        let tokenizer = Tokenizer::load(&dir.to_string_lossy())?;
        if tokenizer.vocab_size() > model.config().vocab_size {
            return Err(CheckpointError::bad(
                &dir,
                format!(
                    "the tokenizer has {} ids but the model only {}",
                    tokenizer.vocab_size(),
                    model.config().vocab_size
                ),
            ));
        }
        let state = match dir.join(STATE_FILE).exists() {
            true => Some(load_state(&dir)?),
            false => None,
        };
        Ok(Checkpoint {
            dir,
            model,
            tokenizer,
            state,
        })
    }

    /// The prepared data folder the checkpoint was trained on, when recorded and still
    /// there. An inference-only checkpoint (`best/`) carries no state, so its run's `last/`
    /// is asked (same run, same data).
    pub fn data_dir(&self) -> Option<PathBuf> {
        let recorded = match &self.state {
            Some(s) => s.data_dir.clone(),
            None => {
                let sibling = self.dir.parent()?.join(LAST);
                load_state(&sibling).ok()?.data_dir
            }
        };
        let p = PathBuf::from(recorded);
        p.is_dir().then_some(p)
    }
}

/// The files every checkpoint has, checked before parsing so the error says what is missing.
fn check_files(dir: &Path) -> Result<()> {
    for file in [io::CONFIG_FILE, io::MODEL_FILE] {
        if !dir.join(file).is_file() {
            return Err(CheckpointError::bad(
                dir,
                format!("{file} is missing (expected a folder written by `lmforge train`)"),
            ));
        }
    }
    if !dir.join("tokenizer.json").is_file() && !dir.join("tokenizer.model").is_file() {
        return Err(CheckpointError::bad(
            dir,
            "tokenizer.json / tokenizer.model is missing",
        ));
    }
    Ok(())
}
