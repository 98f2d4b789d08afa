//! The command line of a training run: the run flags (`--config`, `--resume`, `--quiet`,
//! `--overwrite`) and the `--key value` settings.
//!
//! Settings are free-form (`--max-iters 200`), so a command-line parser stops recognising
//! flags at the first setting; [`RunArgs::from_args`] picks the run flags out wherever they
//! appear.

use std::path::PathBuf;

use crate::config::TrainConfig;
use crate::run::RunOptions;
use crate::{Result, TrainError};

/// What `lmforge train` was asked to do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunArgs {
    /// `--config FILE`: a TOML file of settings.
    pub config: Option<PathBuf>,
    /// `--resume RUN_DIR`: continue that run.
    pub resume: Option<PathBuf>,
    /// `--quiet`: no progress output.
    pub quiet: bool,
    /// `--overwrite`: replace an earlier run in the run folder.
    pub overwrite: bool,
    /// The `--key value` settings, in order.
    pub settings: Vec<String>,
}

impl RunArgs {
    /// Splits `args` into run flags and settings (flags may come anywhere).
    pub fn from_args(args: &[String]) -> Result<RunArgs> {
        let mut out = RunArgs::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |flag: &str| {
                it.next().map(PathBuf::from).ok_or_else(|| {
                    TrainError::Config(format!("{flag} needs a value (a file or folder)"))
                })
            };
            match arg.as_str() {
                "--config" => out.config = Some(value("--config")?),
                "--resume" => out.resume = Some(value("--resume")?),
                "--quiet" => out.quiet = true,
                "--overwrite" => out.overwrite = true,
                _ => out.settings.push(arg.clone()),
            }
        }
        Ok(out)
    }

    /// Adds `other`'s flags and settings (e.g. flags a parser recognised before the first
    /// setting) to these.
    pub fn merged(mut self, other: RunArgs) -> RunArgs {
        self.config = other.config.or(self.config);
        self.resume = other.resume.or(self.resume);
        self.quiet |= other.quiet;
        self.overwrite |= other.overwrite;
        self.settings.extend(other.settings);
        self
    }

    /// The run's config: the resumed run's saved config (or `--config`), then the settings.
    pub fn config(&self) -> Result<TrainConfig> {
        if let Some(dir) = &self.resume {
            if !dir.is_dir() {
                return Err(TrainError::Config(format!(
                    "--resume {}: no such run folder",
                    dir.display()
                )));
            }
            if self.overwrite {
                return Err(TrainError::Config(
                    "--resume and --overwrite contradict each other: --resume continues the run, --overwrite deletes it".into(),
                ));
            }
        }
        let base = match (&self.resume, &self.config) {
            (Some(dir), None) => Some(dir.join(crate::run::folder::CONFIG_FILE)),
            (_, file) => file.clone(),
        };
        TrainConfig::resolve(base.as_deref(), &self.settings)
    }

    /// The run options these flags ask for (no interrupt flag yet).
    pub fn options(&self) -> RunOptions {
        RunOptions {
            resume: self.resume.clone(),
            overwrite: self.overwrite,
            quiet: self.quiet,
            ..RunOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn run_flags_are_found_anywhere() {
        let a = RunArgs::from_args(&s(&[
            "--max-iters",
            "5",
            "--quiet",
            "--config",
            "a.toml",
            "--n-layer",
            "2",
            "--overwrite",
        ]))
        .unwrap();
        assert_eq!(a.config, Some(PathBuf::from("a.toml")));
        assert!(a.quiet && a.overwrite && a.resume.is_none());
        assert_eq!(a.settings, s(&["--max-iters", "5", "--n-layer", "2"]));
        let e = RunArgs::from_args(&s(&["--resume"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--resume needs a value"), "{e}");
    }

    #[test]
    fn resume_and_overwrite_are_refused_together() {
        let d = tempfile::tempdir().unwrap();
        let a = RunArgs {
            resume: Some(d.path().to_path_buf()),
            overwrite: true,
            ..RunArgs::default()
        };
        assert!(a.config().unwrap_err().to_string().contains("contradict"));
    }
}
