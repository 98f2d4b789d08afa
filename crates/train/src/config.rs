//! Every model and training setting of a run, in one TOML file.
//!
//! Precedence: built-in defaults < `--config run.toml` < command-line `--key value`
//! overrides (dashes or underscores). The defaults are nanoGPT's CPU "baby" Shakespeare
//! config (examples/baby.toml spells it out). The resolved config is saved as
//! `RUN_DIR/config.toml`.

use std::path::{Path, PathBuf};

use lmforge_model::{Activation, ModelConfig, PosEncoding};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// A training run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Run name; the run folder defaults to `runs/<name>`.
    pub name: String,
    /// Run folder (default `runs/<name>`).
    pub out_dir: Option<PathBuf>,
    /// A folder prepared by `lmforge prepare`. When absent, `data` is prepared into
    /// `RUN_DIR/data` (the bundled corpus when `data` is empty too).
    pub data_dir: Option<PathBuf>,
    /// Text sources (files, folders, globs) to prepare on the fly.
    pub data: Vec<String>,
    /// Tokenizer for on-the-fly preparation: char, word, bpe, unigram (trained on the
    /// sources), a tokenizer file, or a built-in like tiktoken:o200k_base.
    pub tokenizer: String,
    /// Vocabulary size when a tokenizer is trained (word, bpe, unigram).
    pub tokenizer_vocab_size: Option<usize>,
    /// Fraction of the token stream (its end) held out for validation.
    pub val_fraction: f64,
    /// Strip Project Gutenberg licence headers from the sources.
    pub strip_gutenberg: bool,

    /// Model preset (tiny, baby, shakespeare-char, gpt2-124m, bench-s, bench-m); the
    /// fields below override it.
    pub preset: String,
    pub n_layer: Option<usize>,
    pub n_head: Option<usize>,
    pub n_embd: Option<usize>,
    pub block_size: Option<usize>,
    /// Model vocabulary (default: the tokenizer's; may be larger, e.g. padded to 64).
    pub vocab_size: Option<usize>,
    pub dropout: f32,
    pub bias: bool,
    pub tie_embeddings: bool,
    /// learned, sinusoidal or rope.
    pub pos_encoding: String,
    /// gelu (exact) or gelu_tanh.
    pub activation: String,
    pub mlp_ratio: usize,

    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Optimizer steps.
    pub max_iters: usize,
    /// When set, overrides max_iters: passes over the training tokens.
    pub max_epochs: Option<f64>,
    pub learning_rate: f32,
    pub min_lr: f32,
    pub warmup_iters: usize,
    /// Cosine decay length (default: max_iters).
    pub lr_decay_iters: Option<usize>,
    pub decay_lr: bool,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// Clip the global gradient norm to this (0 = off).
    pub grad_clip: f32,

    /// Evaluate every this many steps (and at the end).
    pub eval_interval: usize,
    /// Batches per evaluation (fixed batches, so curves are comparable).
    pub eval_iters: usize,
    /// Stop after this many evaluations without improvement (unset = never).
    pub patience: Option<usize>,
    /// Improvement smaller than this does not count.
    pub min_delta: f32,
    /// Also keep a checkpoint every this many steps (`checkpoints/step-N`).
    pub ckpt_interval: Option<usize>,
    /// How many periodic checkpoints to keep.
    pub keep_last: usize,
    pub seed: u64,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Compute device: cpu (CUDA is planned behind a cargo feature).
    pub device: String,
    /// Print a log line every this many steps (when not on a terminal).
    pub log_interval: usize,
    /// Draw loss.png with a log-scale y axis.
    pub log_scale: bool,
    /// Batch sampling: random (nanoGPT) or sequential (epochs of non-overlapping windows).
    pub sampling: String,
    /// Tokens to generate at the end of training (0 = none).
    pub sample_tokens: usize,
    pub sample_prompt: String,
    /// Start from this checkpoint's weights (fine-tuning) with a fresh optimizer.
    pub init_from: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            name: "shakespeare-char".into(),
            out_dir: None,
            data_dir: None,
            data: Vec::new(),
            tokenizer: "char".into(),
            tokenizer_vocab_size: None,
            val_fraction: 0.1,
            strip_gutenberg: false,
            preset: "baby".into(),
            n_layer: None,
            n_head: None,
            n_embd: None,
            block_size: None,
            vocab_size: None,
            dropout: 0.0,
            bias: true,
            tie_embeddings: true,
            pos_encoding: "learned".into(),
            activation: "gelu".into(),
            mlp_ratio: 4,
            batch_size: 12,
            grad_accum: 1,
            max_iters: 2000,
            max_epochs: None,
            learning_rate: 1e-3,
            min_lr: 1e-4,
            warmup_iters: 100,
            lr_decay_iters: None,
            decay_lr: true,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            grad_clip: 1.0,
            eval_interval: 250,
            eval_iters: 20,
            patience: None,
            min_delta: 0.0,
            ckpt_interval: None,
            keep_last: 3,
            seed: 1337,
            threads: None,
            device: "cpu".into(),
            log_interval: 10,
            log_scale: false,
            sampling: "random".into(),
            sample_tokens: 300,
            sample_prompt: String::new(),
            init_from: None,
        }
    }
}

/// Settings that may change when resuming a run; any other difference is refused.
pub const RESUMABLE_CHANGES: &[&str] = &[
    "max_iters",
    "max_epochs",
    "eval_interval",
    "patience",
    "min_delta",
    "ckpt_interval",
    "keep_last",
    "threads",
    "log_interval",
    "log_scale",
    "sample_tokens",
    "sample_prompt",
    "out_dir",
];

/// Settings whose values are strings even when they look like numbers.
const STRING_KEYS: &[&str] = &[
    "name",
    "tokenizer",
    "preset",
    "pos_encoding",
    "activation",
    "device",
    "sampling",
    "sample_prompt",
    "out_dir",
    "data_dir",
    "init_from",
];

impl TrainConfig {
    /// Builds a config: defaults, then `file` (if any), then `overrides` (`--key value`,
    /// `--key=value`, or a bare `--flag` meaning true).
    pub fn resolve(file: Option<&Path>, overrides: &[String]) -> Result<TrainConfig> {
        let mut table = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| TrainError::io(p, format!("cannot read config: {e}")))?;
                text.parse::<toml::Table>().map_err(|e| {
                    TrainError::Config(format!("{}: invalid TOML: {}", p.display(), e.message()))
                })?
            }
            None => toml::Table::new(),
        };
        for (key, value) in parse_overrides(overrides)? {
            table.insert(key, value);
        }
        Self::from_table(table, file)
    }

    fn from_table(table: toml::Table, file: Option<&Path>) -> Result<TrainConfig> {
        let cfg: TrainConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let origin = file
                        .map(|p| format!("{}: ", p.display()))
                        .unwrap_or_default();
                    TrainError::Config(format!("{origin}{}", e.message().replace('\n', " ")))
                })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads a resolved `config.toml` saved in a run folder.
    pub fn load(path: &Path) -> Result<TrainConfig> {
        Self::resolve(Some(path), &[])
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| TrainError::Config(format!("cannot write config: {e}")))
    }

    /// The run folder.
    pub fn run_dir(&self) -> PathBuf {
        self.out_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&self.name))
    }

    /// Checks values that are wrong regardless of the data and model.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: &str| Err(TrainError::Config(format!("{field}: {why}")));
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if self.grad_accum == 0 {
            return bad("grad_accum", "must be at least 1");
        }
        if self.eval_interval == 0 {
            return bad("eval_interval", "must be at least 1");
        }
        if self.eval_iters == 0 {
            return bad("eval_iters", "must be at least 1");
        }
        if !(0.0..1.0).contains(&self.val_fraction) || self.val_fraction == 0.0 {
            return bad("val_fraction", "must be between 0 and 1");
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 || self.min_lr < 0.0 {
            return bad("learning_rate", "must be positive (and min_lr ≥ 0)");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", "must be in [0, 1)");
        }
        if self.device != "cpu" {
            return bad("device", "only 'cpu' is available in this build");
        }
        if !matches!(self.sampling.as_str(), "random" | "sequential") {
            return bad("sampling", "must be 'random' or 'sequential'");
        }
        if let Some(e) = self.max_epochs {
            if e.is_nan() || e <= 0.0 {
                return bad("max_epochs", "must be positive");
            }
        }
        self.pos_encoding()?;
        self.activation()?;
        Ok(())
    }

    fn pos_encoding(&self) -> Result<PosEncoding> {
        match self.pos_encoding.as_str() {
            "learned" => Ok(PosEncoding::Learned),
            "sinusoidal" => Ok(PosEncoding::Sinusoidal),
            "rope" => Ok(PosEncoding::Rope),
            other => Err(TrainError::Config(format!(
                "pos_encoding: '{other}' is not one of learned, sinusoidal, rope"
            ))),
        }
    }

    fn activation(&self) -> Result<Activation> {
        match self.activation.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "gelu_tanh" => Ok(Activation::GeluTanh),
            other => Err(TrainError::Config(format!(
                "activation: '{other}' is not one of gelu, gelu_tanh"
            ))),
        }
    }

    /// The model config: the preset, overridden by the fields set here, with the
    /// vocabulary of the tokenizer (`tokenizer_vocab`) unless `vocab_size` is given.
    pub fn model_config(&self, tokenizer_vocab: usize) -> Result<ModelConfig> {
        let mut m = ModelConfig::preset(&self.preset)?;
        m.n_layer = self.n_layer.unwrap_or(m.n_layer);
        m.n_head = self.n_head.unwrap_or(m.n_head);
        m.n_embd = self.n_embd.unwrap_or(m.n_embd);
        m.block_size = self.block_size.unwrap_or(m.block_size);
        m.vocab_size = self.vocab_size.unwrap_or(tokenizer_vocab);
        if m.vocab_size < tokenizer_vocab {
            return Err(TrainError::Config(format!(
                "vocab_size: {} is smaller than the tokenizer's vocabulary ({tokenizer_vocab})",
                m.vocab_size
            )));
        }
        m.dropout = self.dropout;
        m.bias = self.bias;
        m.tie_embeddings = self.tie_embeddings;
        m.pos_encoding = self.pos_encoding()?;
        m.activation = self.activation()?;
        m.mlp_ratio = self.mlp_ratio;
        m.validate()?;
        Ok(m)
    }

    /// Names of settings that differ from `other` and may not change on resume.
    pub fn incompatible_changes(&self, other: &TrainConfig) -> Result<Vec<String>> {
        let a = toml::Value::try_from(self).map_err(|e| TrainError::Config(e.to_string()))?;
        let b = toml::Value::try_from(other).map_err(|e| TrainError::Config(e.to_string()))?;
        let (Some(a), Some(b)) = (a.as_table(), b.as_table()) else {
            return Ok(vec![]);
        };
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        Ok(keys
            .into_iter()
            .filter(|k| !RESUMABLE_CHANGES.contains(&k.as_str()) && a.get(*k) != b.get(*k))
            .map(|k| {
                let show = |v: Option<&toml::Value>| {
                    v.map(|v| v.to_string()).unwrap_or_else(|| "unset".into())
                };
                format!("{k} ({} → {})", show(a.get(k)), show(b.get(k)))
            })
            .collect())
    }
}

/// Turns `--max-iters 200 --n-layer=2 --log-scale` into TOML key/values.
pub fn parse_overrides(args: &[String]) -> Result<Vec<(String, toml::Value)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(TrainError::Config(format!(
                "unexpected argument '{arg}': settings are given as --key value"
            )));
        };
        let (key, raw) = match flag.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => {
                let next = args.get(i + 1).filter(|n| !n.starts_with("--"));
                if let Some(v) = next {
                    i += 1;
                    (flag.to_string(), Some(v.clone()))
                } else {
                    (flag.to_string(), None)
                }
            }
        };
        let mut key = key.replace('-', "_");
        if key == "out" {
            key = "out_dir".into();
        }
        if key == "data" {
            // A list: every following value up to the next --flag.
            let mut items: Vec<toml::Value> = raw.into_iter().map(toml::Value::String).collect();
            while let Some(v) = args.get(i + 1).filter(|n| !n.starts_with("--")) {
                items.push(toml::Value::String(v.clone()));
                i += 1;
            }
            out.push((key, toml::Value::Array(items)));
            i += 1;
            continue;
        }
        let known = toml::Value::try_from(TrainConfig::default())
            .ok()
            .and_then(|v| v.as_table().map(|t| t.contains_key(&key)))
            .unwrap_or(false)
            || OPTIONAL_KEYS.contains(&key.as_str());
        if !known {
            return Err(TrainError::Config(format!(
                "unknown setting --{} (see `lmforge train --help` for the list)",
                key.replace('_', "-")
            )));
        }
        let value = match raw {
            None => toml::Value::Boolean(true),
            Some(v) if STRING_KEYS.contains(&key.as_str()) => toml::Value::String(v),
            Some(v) => parse_value(&v),
        };
        out.push((key, value));
        i += 1;
    }
    Ok(out)
}

/// Settings that default to unset (so they are absent from the default TOML).
const OPTIONAL_KEYS: &[&str] = &[
    "out_dir",
    "data_dir",
    "tokenizer_vocab_size",
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
    "vocab_size",
    "max_epochs",
    "lr_decay_iters",
    "patience",
    "ckpt_interval",
    "threads",
    "init_from",
];

fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn defaults_file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.toml");
        std::fs::write(
            &file,
            "max_iters = 500\nlearning_rate = 3e-4\nname = \"from-file\"\n",
        )
        .unwrap();
        let cfg = TrainConfig::resolve(
            Some(&file),
            &s(&[
                "--max-iters",
                "200",
                "--n-layer=2",
                "--log-scale",
                "--preset",
                "tiny",
                "--data",
                "a.txt",
                "b/*.txt",
                "--out",
                "runs/x",
            ]),
        )
        .unwrap();
        assert_eq!(cfg.data, ["a.txt", "b/*.txt"]);
        assert_eq!(cfg.out_dir, Some(PathBuf::from("runs/x")));
        assert_eq!(cfg.max_iters, 200, "command line beats the file");
        assert_eq!(cfg.learning_rate, 3e-4, "file beats defaults");
        assert_eq!(cfg.name, "from-file");
        assert_eq!(cfg.n_layer, Some(2));
        assert!(cfg.log_scale);
        assert_eq!(cfg.batch_size, 12, "defaults fill the rest");
        let m = cfg.model_config(70).unwrap();
        assert_eq!((m.n_layer, m.n_embd, m.vocab_size), (2, 16, 70));
        // Round trip through the saved form.
        let saved = dir.path().join("config.toml");
        std::fs::write(&saved, cfg.to_toml().unwrap()).unwrap();
        assert_eq!(TrainConfig::load(&saved).unwrap(), cfg);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let e = TrainConfig::resolve(None, &s(&["--max-iterz", "3"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown setting --max-iterz (see `lmforge train --help` for the list)"
        );
        let e = TrainConfig::resolve(None, &s(&["--batch-size", "0"]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "batch_size: must be at least 1");
        let e = TrainConfig::resolve(None, &s(&["--pos-encoding", "alibi"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pos_encoding"), "{e}");
        let e = TrainConfig::resolve(None, &s(&["--n-head", "5"]))
            .unwrap()
            .model_config(65)
            .unwrap_err()
            .to_string();
        assert!(e.contains("n_head") || e.contains("n_embd"), "{e}");
        let e = TrainConfig::resolve(None, &s(&["--vocab-size", "10"]))
            .unwrap()
            .model_config(65)
            .unwrap_err()
            .to_string();
        assert!(e.contains("smaller than the tokenizer"), "{e}");
    }

    #[test]
    fn resume_refuses_incompatible_changes_only() {
        let a = TrainConfig::default();
        let b = TrainConfig {
            max_iters: 5000,
            patience: Some(3),
            ..a.clone()
        };
        assert!(a.incompatible_changes(&b).unwrap().is_empty());
        let c = TrainConfig {
            n_embd: Some(64),
            ..a.clone()
        };
        let diff = a.incompatible_changes(&c).unwrap();
        assert_eq!(diff.len(), 1);
        assert!(diff[0].starts_with("n_embd"), "{diff:?}");
    }
}
