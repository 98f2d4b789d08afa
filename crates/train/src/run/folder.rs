//! The run folder: locked for one writer, and never silently reused.
//!
//! A new run into a folder that already holds a run (checkpoints or `metrics.jsonl`) is
//! refused, naming the ways forward: `--resume`, another `--out`, or `--overwrite` (which
//! deletes the earlier run's checkpoints, metrics, plot and config, and says so). While a run
//! is open its folder is locked ([`RunLock`]); a second writer is refused.

use std::path::{Path, PathBuf};

use lmforge_checkpoint::{list_checkpoints, CHECKPOINTS_DIR};
use lmforge_files::RunLock;

use crate::{Result, TrainError};

/// What `--overwrite` deletes: everything a run writes except prepared data (`data/` is
/// prepared again anyway, atomically).
pub const OVERWRITTEN: &[&str] = &[
    CHECKPOINTS_DIR,
    METRICS_FILE,
    SAMPLES_FILE,
    PLOT_FILE,
    CONFIG_FILE,
    crate::tb::TB_DIR,
];

/// `RUN_DIR/metrics.jsonl`: one line per evaluation.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// `RUN_DIR/samples.jsonl`: the sample generated at each evaluation (when sampling).
pub const SAMPLES_FILE: &str = "samples.jsonl";
/// `RUN_DIR/loss.png`: train and val loss against step.
pub const PLOT_FILE: &str = "loss.png";
/// `RUN_DIR/config.toml`: the resolved config of the run.
pub const CONFIG_FILE: &str = "config.toml";

/// A locked run folder.
#[derive(Debug)]
pub struct RunFolder {
    path: PathBuf,
    _lock: RunLock,
}

impl RunFolder {
    /// Locks `path` for a new run. Refuses when it holds an earlier run, unless `overwrite`,
    /// which deletes that run's files (listed in the returned notes).
    pub fn open_new(path: &Path, overwrite: bool) -> Result<(RunFolder, Vec<String>)> {
        let (folder, mut notes) = Self::lock(path)?;
        let earlier = earlier_run(path);
        if !earlier.is_empty() {
            if !overwrite {
                return Err(refusal(path, &earlier));
            }
            notes.push(delete_earlier_run(path)?);
        }
        Ok((folder, notes))
    }

    /// Locks `path` to continue the run in it.
    pub fn open_existing(path: &Path) -> Result<(RunFolder, Vec<String>)> {
        Self::lock(path)
    }

    fn lock(path: &Path) -> Result<(RunFolder, Vec<String>)> {
        let lock = RunLock::acquire(path).map_err(|e| match e {
            held @ lmforge_files::LockError::Held { .. } => TrainError::Config(format!(
                "{held}; wait for it to finish, or train into another folder with --out"
            )),
            other => other.into(),
        })?;
        let notes = lock
            .stale_owner()
            .map(|pid| {
                format!(
                    "note: took over {}: its owner (pid {pid}) ended without releasing it",
                    lock.path().display()
                )
            })
            .into_iter()
            .collect();
        let folder = RunFolder {
            path: path.to_path_buf(),
            _lock: lock,
        };
        Ok((folder, notes))
    }

    /// The run folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `RUN_DIR/checkpoints`.
    pub fn checkpoints(&self) -> PathBuf {
        self.path.join(CHECKPOINTS_DIR)
    }

    /// `RUN_DIR/<file>`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// What of an earlier run `path` holds: its checkpoint names and `metrics.jsonl`.
fn earlier_run(path: &Path) -> Vec<String> {
    let mut found: Vec<String> = list_checkpoints(&path.join(CHECKPOINTS_DIR))
        .into_iter()
        .map(|name| format!("{CHECKPOINTS_DIR}/{name}"))
        .collect();
    if path.join(METRICS_FILE).exists() {
        found.push(METRICS_FILE.to_string());
    }
    found
}

fn refusal(path: &Path, earlier: &[String]) -> TrainError {
    let run = path.display();
    TrainError::RunFolder {
        path: run.to_string(),
        reason: format!(
            "already holds a run ({}); continue it with `lmforge train --resume {run}`, \
             start a new one in another folder with --out NEW_DIR, or pass --overwrite to \
             delete its {}",
            earlier.join(", "),
            OVERWRITTEN.join(", ")
        ),
    }
}

fn delete_earlier_run(path: &Path) -> Result<String> {
    let mut deleted = Vec::new();
    for name in OVERWRITTEN {
        let p = path.join(name);
        let removed = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else if p.exists() {
            std::fs::remove_file(&p)
        } else {
            continue;
        };
        removed.map_err(|e| TrainError::io(&p, format!("--overwrite cannot delete: {e}")))?;
        deleted.push(*name);
    }
    Ok(format!(
        "--overwrite: deleted the earlier run's {} in {}",
        deleted.join(", "),
        path.display()
    ))
}
