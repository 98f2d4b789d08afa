//! Opening a checkpoint folder: `config.json` + `model.safetensors` (nanoGPT names) + the
//! tokenizer file, as written by `lmforge train`. The model config and tokenizer always come
//! from the checkpoint, never from the user.

use std::path::{Path, PathBuf};

use lmforge_model::{io, Gpt};
use lmforge_tokenizer::Tokenizer;

use crate::{GenerateError, Result};

/// A loaded checkpoint.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub model: Gpt,
    pub tokenizer: Tokenizer,
    /// `state.json`, when the checkpoint came from training (holds the data folder, step, ...).
    pub state: Option<serde_json::Value>,
}

impl Checkpoint {
    /// Loads `dir`. A run folder is accepted too: its `checkpoints/best` (else `last`) is used.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        let dir = resolve_dir(dir)?;
        let bad = |reason: String| GenerateError::BadCheckpoint {
            path: dir.display().to_string(),
            reason,
        };
        for file in ["config.json", "model.safetensors"] {
            if !dir.join(file).is_file() {
                return Err(bad(format!(
                    "{file} is missing (expected a folder written by `lmforge train`)"
                )));
            }
        }
        if !dir.join("tokenizer.json").is_file() && !dir.join("tokenizer.model").is_file() {
            return Err(bad("tokenizer.json / tokenizer.model is missing".into()));
        }
        let model = io::load_model_dir(&dir)?;
        let tokenizer = Tokenizer::load(&dir.to_string_lossy())?;
        if tokenizer.vocab_size() > model.config().vocab_size {
            return Err(bad(format!(
                "the tokenizer has {} ids but the model only {}",
                tokenizer.vocab_size(),
                model.config().vocab_size
            )));
        }
        let state = match std::fs::read_to_string(dir.join("state.json")) {
            Ok(s) => Some(
                serde_json::from_str(&s)
                    .map_err(|e| bad(format!("state.json is corrupted: {e}")))?,
            ),
            Err(_) => None,
        };
        Ok(Checkpoint {
            dir,
            model,
            tokenizer,
            state,
        })
    }

    /// The prepared data folder the checkpoint was trained on, when recorded and present.
    pub fn data_dir(&self) -> Option<PathBuf> {
        let p = PathBuf::from(self.state.as_ref()?.get("data_dir")?.as_str()?);
        p.is_dir().then_some(p)
    }
}

fn resolve_dir(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(GenerateError::BadCheckpoint {
            path: dir.display().to_string(),
            reason: "no such folder".into(),
        });
    }
    if dir.join("config.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    for sub in ["checkpoints/best", "checkpoints/last", "best", "last"] {
        if dir.join(sub).join("config.json").is_file() {
            return Ok(dir.join(sub));
        }
    }
    Ok(dir.to_path_buf())
}
