//! Every model and training setting of a run, in one TOML file.
//!
//! Precedence: built-in defaults < `--config run.toml` < command-line `--key value`
//! overrides (dashes or underscores). The defaults are nanoGPT's CPU "baby" Shakespeare
//! config (examples/baby.toml spells it out). The resolved config is saved as
//! `RUN_DIR/config.toml`.

use std::path::PathBuf;

use lmforge_model::{Activation, DtypeArg, ModelConfig, Norm, PosEncoding};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// A training run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Run name; the run folder defaults to `runs/<name>`. Empty: named after the data and
    /// tokenizer ([`TrainConfig::run_name`]), e.g. `shakespeare-char` for the defaults.
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
    /// transformer blocks (default: the preset's)
    pub n_layer: Option<usize>,
    /// attention heads (default: the preset's)
    pub n_head: Option<usize>,
    /// embedding width (default: the preset's)
    pub n_embd: Option<usize>,
    /// context length (default: the preset's)
    pub block_size: Option<usize>,
    /// Model vocabulary (default: the tokenizer's; may be larger, e.g. padded to 64).
    pub vocab_size: Option<usize>,
    #[serde(serialize_with = "as_written")]
    /// dropout probability
    pub dropout: f32,
    /// biases in Linear and LayerNorm layers
    pub bias: bool,
    /// A bias on the q/k/v projection (`c_attn`); unset follows `bias`.
    pub qkv_bias: Option<bool>,
    /// share `wte` with the output head
    pub tie_embeddings: bool,
    /// A bias on the untied output layer (`lm_head.bias`; needs tie_embeddings = false).
    pub head_bias: bool,
    /// Block layout: pre (GPT-2: `x + f(LN(x))`) or post (original Transformer: `LN(x + f(x))`).
    pub norm: String,
    /// learned, sinusoidal, rope or sinusoidal+rope (the sin/cos table and RoPE on q/k).
    pub pos_encoding: String,
    /// gelu (exact), gelu_tanh or relu.
    pub activation: String,
    /// MLP width as a multiple of n_embd
    pub mlp_ratio: usize,

    /// sequences per micro-batch
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Optimizer steps.
    pub max_iters: usize,
    /// When set, overrides max_iters: passes over the training tokens.
    pub max_epochs: Option<f64>,
    #[serde(serialize_with = "as_written")]
    /// peak learning rate
    pub learning_rate: f32,
    #[serde(serialize_with = "as_written")]
    /// learning rate at the end of the cosine decay
    pub min_lr: f32,
    /// steps of linear warmup
    pub warmup_iters: usize,
    /// Cosine decay length (default: max_iters).
    pub lr_decay_iters: Option<usize>,
    /// cosine decay after warmup (false: constant rate)
    pub decay_lr: bool,
    #[serde(serialize_with = "as_written")]
    /// AdamW weight decay (≥ 2-D weights only)
    pub weight_decay: f32,
    #[serde(serialize_with = "as_written")]
    /// AdamW β1
    pub beta1: f32,
    #[serde(serialize_with = "as_written")]
    /// AdamW β2
    pub beta2: f32,
    /// Clip the global gradient norm to this (0 = off).
    #[serde(serialize_with = "as_written")]
    pub grad_clip: f32,

    /// Evaluate every this many steps (and at the end).
    pub eval_interval: usize,
    /// Batches per evaluation (fixed batches, so curves are comparable).
    pub eval_iters: usize,
    /// Stop after this many evaluations without improvement (unset = never).
    pub patience: Option<usize>,
    /// Improvement smaller than this does not count.
    #[serde(serialize_with = "as_written")]
    pub min_delta: f32,
    /// Also keep a checkpoint every this many steps (`checkpoints/step-N`).
    pub ckpt_interval: Option<usize>,
    /// How many periodic checkpoints to keep.
    pub keep_last: usize,
    /// seed of the initialisation, sampling and dropout
    pub seed: u64,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Compute device: cpu (CUDA is planned behind a cargo feature).
    pub device: String,
    /// Precision of the Linear products: auto (bf16 where the CPU's native bf16 products
    /// outpace f32 — AMX, or AVX-512 BF16 on AMD — else fp32), fp32, bf16 (the fastest bf16
    /// kernel; emulated where native is missing or slower), bf16-native, bf16-emulated.
    /// Weights, gradients, optimizer and checkpoints are fp32 in every case.
    /// The saved config.toml records the dtype that ran (fp32 or bf16).
    pub dtype: String,
    /// Print a log line every this many steps (when not on a terminal).
    pub log_interval: usize,
    /// Draw loss.png with a log-scale y axis.
    pub log_scale: bool,
    /// Batch sampling: random (nanoGPT) or sequential (epochs of non-overlapping windows).
    pub sampling: String,
    /// Tokens to generate at the end of training (0 = none).
    pub sample_tokens: usize,
    /// prompt of the sample printed after training
    pub sample_prompt: String,
    /// Fine-tune: start from these weights with a fresh optimizer — an lmforge checkpoint
    /// or run folder, `hf:DIR` (a Hugging Face GPT-2 folder), nanoGPT's `ckpt.pt` or a
    /// `.pth` state_dict. The model's shape and the tokenizer come from it (model settings
    /// must agree; block_size may shrink); the data is prepared with its tokenizer.
    pub init_from: Option<PathBuf>,

    // Settings of the seeds' workflows (issue 14): optimiser, schedule, evaluation,
    // stopping, checkpoints and data modes. Their defaults keep the behaviour above.
    #[serde(serialize_with = "as_written")]
    /// AdamW ε added to √v̂ (torch's default 1e-8; the transformer seed uses 1e-9).
    pub adam_eps: f32,
    /// Which tensors AdamW decays: matrices (nanoGPT: tensors with ≥ 2 dims) or all
    /// (torch's default: every parameter, biases and LayerNorm included).
    pub weight_decay_scope: String,
    /// cosine (warmup, then cosine decay; decay_lr = false keeps it flat), constant, or
    /// plateau (torch's ReduceLROnPlateau on the val loss of each evaluation).
    pub lr_schedule: String,
    #[serde(serialize_with = "as_written")]
    /// plateau: the rate is multiplied by this when val loss stops improving (torch: 0.1).
    pub plateau_factor: f32,
    /// plateau: evaluations without improvement tolerated before reducing (torch: 10).
    pub plateau_patience: usize,
    /// Evaluation batches: fixed (the same random windows every time), random (fresh
    /// random windows each evaluation) or full (the whole val split in consecutive windows,
    /// every token scored once; the train loss stays on eval_iters fixed batches).
    pub eval_mode: String,
    /// Also evaluate at the end of every epoch (a pass over the training windows).
    pub eval_every_epoch: bool,
    /// Stop when val loss exceeds the best so far by more than this (unset = never).
    pub stop_above_best: Option<f32>,
    /// Keep a checkpoint every this many epochs (`checkpoints/epoch-N`).
    pub ckpt_every_epochs: Option<usize>,
    /// Validation split: tail (the last val_fraction of the token stream), files (the last
    /// val_fraction of the source files, at least one) or none (no validation: early
    /// stopping and best/ are off).
    pub val_split: String,
    /// Word tokenizer: lowercase the text before splitting (training and encoding).
    pub word_lowercase: bool,
    /// Word tokenizer: keep whitespace runs as tokens (decoding is exact); false splits on
    /// `\w+|[^\w\s]` only, as the LLM-from-scratch seed, and decodes joining with spaces.
    pub word_keep_whitespace: bool,
    /// `gpt` (default) or `encoder-decoder` (trains on a pair-data folder, `data_dir`, with
    /// the `[seq2seq]` settings; n_layer/n_head/n_embd/dropout/bias/tie_embeddings/
    /// pos_encoding/activation/mlp_ratio apply to both stacks).
    pub arch: String,
    /// Encoder–decoder settings (`arch = "encoder-decoder"`).
    pub seq2seq: Seq2seqSettings,
}

/// The `[seq2seq]` table: what only an encoder–decoder has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seq2seqSettings {
    /// Encoder blocks (unset: `n_layer`).
    pub n_encoder_layer: Option<usize>,
    /// Decoder blocks (unset: `n_layer`).
    pub n_decoder_layer: Option<usize>,
    /// Longest source (unset: the pair data's source block size).
    pub src_block_size: Option<usize>,
    /// Longest `<bos>` + target (unset: the pair data's target block size).
    pub tgt_block_size: Option<usize>,
    /// `pre` or `post` (Vaswani et al.'s original) LayerNorm.
    pub norm: String,
    /// The encoder reads the target embedding (the pair data must share one tokenizer).
    pub share_embeddings: bool,
}

impl Default for Seq2seqSettings {
    fn default() -> Self {
        Seq2seqSettings {
            n_encoder_layer: None,
            n_decoder_layer: None,
            src_block_size: None,
            tgt_block_size: None,
            norm: "pre".into(),
            share_embeddings: false,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            name: String::new(),
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
            qkv_bias: None,
            tie_embeddings: true,
            head_bias: false,
            norm: "pre".into(),
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
            dtype: "auto".into(),
            log_interval: 10,
            log_scale: false,
            sampling: "random".into(),
            sample_tokens: 300,
            sample_prompt: String::new(),
            init_from: None,
            arch: "gpt".into(),
            seq2seq: Seq2seqSettings::default(),
            adam_eps: 1e-8,
            weight_decay_scope: "matrices".into(),
            lr_schedule: "cosine".into(),
            plateau_factor: 0.1,
            plateau_patience: 10,
            eval_mode: "fixed".into(),
            eval_every_epoch: false,
            stop_above_best: None,
            ckpt_every_epochs: None,
            val_split: "tail".into(),
            word_lowercase: false,
            word_keep_whitespace: true,
        }
    }
}

/// A file name or glob turned into a run-name part: `shards/wiki_books_*.txt` →
/// `wiki_books`, `data/arabic/` → `arabic`.
fn readable_stem(source: &str) -> String {
    let last = source
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(source);
    let stem = match last.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => last,
    };
    stem.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-")
        .trim_matches(['-', '_'])
        .to_string()
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
    "dtype",
    "log_interval",
    "log_scale",
    "sample_tokens",
    "sample_prompt",
    "out_dir",
    "eval_every_epoch",
    "stop_above_best",
    "ckpt_every_epochs",
];

impl TrainConfig {
    /// The config as TOML text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| TrainError::Config(format!("cannot write config: {e}")))
    }

    /// The run folder: `out_dir`, else `runs/<run_name>`.
    pub fn run_dir(&self) -> PathBuf {
        self.out_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(self.run_name()))
    }

    /// `name`, or when empty a name from the data and tokenizer: `<data>-<tokenizer>`, where
    /// data is the data folder's or first source's name (`shakespeare` for the bundled
    /// corpus) and tokenizer its kind or encoding (`char`, `o200k_base`).
    pub fn run_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let data = match (&self.data_dir, self.data.first()) {
            (Some(dir), _) => readable_stem(&dir.to_string_lossy()),
            (None, Some(source)) => readable_stem(source),
            (None, None) => "shakespeare".to_string(),
        };
        let tokenizer = match (&self.data_dir, &self.init_from) {
            (Some(_), _) => None,
            // fine-tuning with the source's tokenizer: named after the source (`gpt2`)
            (None, Some(src)) if self.tokenizer == "char" => {
                let src = src.to_string_lossy();
                Some(readable_stem(src.strip_prefix("hf:").unwrap_or(&src)))
            }
            (None, _) => Some(readable_stem(
                self.tokenizer.rsplit(':').next().unwrap_or(&self.tokenizer),
            )),
        };
        match tokenizer {
            Some(t) if !t.is_empty() && !data.is_empty() => format!("{data}-{t}"),
            _ if !data.is_empty() => data,
            _ => "run".to_string(),
        }
    }

    /// True when training on the bundled Shakespeare corpus (no data folder, no sources).
    pub fn uses_bundled_corpus(&self) -> bool {
        self.data_dir.is_none() && self.data.is_empty()
    }

    /// Checks values that are wrong regardless of the data and model.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: &str| Err(TrainError::Config(format!("{field}: {why}")));
        if !matches!(self.arch.as_str(), "gpt" | "encoder-decoder") {
            return bad("arch", "must be gpt or encoder-decoder");
        }
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
        if self.decay_lr && self.lr_schedule == "cosine" && self.min_lr > self.learning_rate {
            // cosine decay would raise the rate from learning_rate up to min_lr
            return bad(
                "min_lr",
                &format!(
                    "{} is above learning_rate {}: set --min-lr to at most the learning rate \
                     (nanoGPT uses learning_rate / 10)",
                    self.min_lr, self.learning_rate
                ),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", "must be in [0, 1)");
        }
        if self.device != "cpu" {
            return bad("device", "only 'cpu' is available in this build");
        }
        crate::modes::validate(self)?;
        let model_presets = lmforge_model::config::PRESETS;
        if crate::workflows::find(&self.preset).is_none()
            && !model_presets.contains(&self.preset.as_str())
        {
            let workflows: Vec<&str> = crate::workflows::WORKFLOWS.iter().map(|w| w.name).collect();
            return bad(
                "preset",
                &format!(
                    "'{}' is not a preset: workflows {}; models {}",
                    self.preset,
                    workflows.join(", "),
                    model_presets.join(", ")
                ),
            );
        }
        if let Some(e) = self.max_epochs {
            if e.is_nan() || e <= 0.0 {
                return bad("max_epochs", "must be positive");
            }
        }
        self.pos_encoding()?;
        self.activation()?;
        self.norm()?;
        if self.head_bias && self.tie_embeddings {
            return bad(
                "head_bias",
                "an output-layer bias needs an untied head: add --tie-embeddings false",
            );
        }
        self.dtype_arg()?;
        if self.init_from.is_none() {
            // the model's shape and switches, checked before any data is prepared (the real
            // vocabulary comes from the tokenizer later; any size ≥ 1 checks the rest)
            self.model_config(self.vocab_size.unwrap_or(1))?;
        }
        Ok(())
    }

    /// The parsed `dtype` setting.
    pub fn dtype_arg(&self) -> Result<DtypeArg> {
        self.dtype
            .parse()
            .map_err(|e| TrainError::Config(format!("dtype: {e}")))
    }

    pub(crate) fn pos_encoding(&self) -> Result<PosEncoding> {
        match self.pos_encoding.as_str() {
            "learned" => Ok(PosEncoding::Learned),
            "sinusoidal" => Ok(PosEncoding::Sinusoidal),
            "rope" => Ok(PosEncoding::Rope),
            "sinusoidal+rope" => Ok(PosEncoding::SinusoidalRope),
            other => Err(TrainError::Config(format!(
                "pos_encoding: '{other}' is not one of learned, sinusoidal, rope, sinusoidal+rope"
            ))),
        }
    }

    pub(crate) fn activation(&self) -> Result<Activation> {
        match self.activation.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "gelu_tanh" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(TrainError::Config(format!(
                "activation: '{other}' is not one of gelu, gelu_tanh, relu"
            ))),
        }
    }

    fn norm(&self) -> Result<Norm> {
        match self.norm.as_str() {
            "pre" => Ok(Norm::Pre),
            "post" => Ok(Norm::Post),
            other => Err(TrainError::Config(format!(
                "norm: '{other}' is not one of pre, post"
            ))),
        }
    }

    /// The model config: the preset, overridden by the fields set here, with the
    /// vocabulary of the tokenizer (`tokenizer_vocab`) unless `vocab_size` is given.
    pub fn model_config(&self, tokenizer_vocab: usize) -> Result<ModelConfig> {
        let mut m = ModelConfig::preset(self.model_preset())?;
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
        m.qkv_bias = self.qkv_bias;
        m.tie_embeddings = self.tie_embeddings;
        m.head_bias = self.head_bias;
        m.norm = self.norm()?;
        m.pos_encoding = self.pos_encoding()?;
        m.activation = self.activation()?;
        m.mlp_ratio = self.mlp_ratio;
        m.validate()?;
        Ok(m)
    }

    /// The model preset the shape starts from: `preset`, or for a workflow preset
    /// ([`crate::workflows`]) the base its settings override.
    pub fn model_preset(&self) -> &str {
        match crate::workflows::find(&self.preset) {
            Some(_) => crate::workflows::MODEL_BASE,
            None => &self.preset,
        }
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

/// Serialises an f32 as the shortest decimal that reads back as the same f32 (`0.001`, not
/// the f64 widening `0.0010000000474974513`), so printed and saved configs look as written.
fn as_written<S: serde::Serializer>(v: &f32, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(v.to_string().parse::<f64>().unwrap_or(f64::from(*v)))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn min_lr_above_the_learning_rate_is_refused_only_when_decaying() {
        let fine_tune = TrainConfig {
            learning_rate: 3e-5,
            ..TrainConfig::default()
        };
        let err = fine_tune.validate().unwrap_err().to_string();
        assert!(err.contains("min_lr") && err.contains("--min-lr"), "{err}");
        let constant = TrainConfig {
            decay_lr: false,
            ..fine_tune.clone()
        };
        assert!(constant.validate().is_ok());
        let lowered = TrainConfig {
            min_lr: 3e-6,
            ..fine_tune
        };
        assert!(lowered.validate().is_ok());
    }
}
