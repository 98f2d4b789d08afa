//! `init_from`: the weights, shape and tokenizer a fine-tuning run starts from.
//!
//! The source is anything `lmforge import` reads (`hf:DIR`, a GPT-2 folder, nanoGPT's
//! `ckpt.pt`, a `.pth` state_dict, an lmforge checkpoint or run folder). The model's shape
//! comes from the source; a model setting given explicitly must agree with it (one error
//! naming the setting), except `block_size`, which may be smaller (the position table is
//! cropped, as nanoGPT's `crop_block_size`). The tokenizer comes from the source too — its
//! ids are the model's — and the data is prepared with it; `tokenizer` may name a file or
//! built-in to use instead (a nanoGPT checkpoint trained on a char vocabulary, say).
//! `dropout` is the run's. The optimizer starts fresh.

use std::path::Path;

use lmforge_interop::import::{self, ImportOptions, Source};
use lmforge_model::{Gpt, ModelConfig};
use lmforge_tokenizer::Tokenizer;

use crate::config::TrainConfig;
use crate::{Result, TrainError};

/// What a new run takes from `init_from`.
pub(super) struct Init {
    /// The weights, shaped as the run will train them (cropped context, the run's dropout).
    pub model: Gpt,
    /// The source's tokenizer (or the `tokenizer` setting's), which the data must use.
    pub tokenizer: Tokenizer,
    /// What was loaded, for the opening message.
    pub description: String,
}

/// Loads `cfg.init_from` (see the module docs).
pub(super) fn load(cfg: &TrainConfig, spec: &Path) -> Result<Init> {
    let tokenizer = tokenizer_override(cfg)?;
    let source = Source::parse(&spec.to_string_lossy()).map_err(import_error)?;
    let opts = ImportOptions {
        tokenizer,
        n_head: cfg.n_head,
    };
    let mut imported = import::load(&source, &opts).map_err(import_error)?;
    check_model_settings(cfg, imported.model.config())?;
    if let Some(t) = cfg.block_size {
        imported.crop_block_size(t).map_err(import_error)?;
    }
    let mut mcfg = imported.model.config().clone();
    mcfg.dropout = cfg.dropout;
    let mut model = Gpt::new(mcfg, cfg.seed)?;
    model.params_mut().copy_from_slice(imported.model.params());
    Ok(Init {
        model,
        tokenizer: imported.tokenizer,
        description: imported.description,
    })
}

fn import_error(e: import::ImportError) -> TrainError {
    TrainError::Config(format!("init_from: {e}"))
}

/// The `tokenizer` setting as an override of the source's: unset (the default `char`)
/// means the source's; a kind to *train* (word, bpe, unigram) cannot give the model's ids.
fn tokenizer_override(cfg: &TrainConfig) -> Result<Option<String>> {
    match cfg.tokenizer.as_str() {
        "char" => Ok(None),
        "word" | "bpe" | "unigram" => Err(TrainError::Config(format!(
            "tokenizer: '{}' would train a new tokenizer, but with init_from the tokenizer comes from the source (its ids are the model's); give a tokenizer file or built-in only to replace the source's",
            cfg.tokenizer
        ))),
        spec => Ok(Some(spec.to_string())),
    }
}

/// Refuses model settings that contradict the source's shape, naming the first.
fn check_model_settings(cfg: &TrainConfig, src: &ModelConfig) -> Result<()> {
    let d = TrainConfig::default();
    let clash = |key: &str, ours: String, theirs: String| {
        Err(TrainError::Config(format!(
            "{key}: the init_from model has {theirs}, the run asks for {ours} (the model's shape comes from init_from: drop the setting)"
        )))
    };
    let sizes = [
        ("n_layer", cfg.n_layer, src.n_layer),
        ("n_head", cfg.n_head, src.n_head),
        ("n_embd", cfg.n_embd, src.n_embd),
        ("vocab_size", cfg.vocab_size, src.vocab_size),
    ];
    for (key, ours, theirs) in sizes {
        if let Some(v) = ours.filter(|&v| v != theirs) {
            return clash(key, v.to_string(), theirs.to_string());
        }
    }
    if let Some(t) = cfg.block_size.filter(|&t| t > src.block_size) {
        return clash(
            "block_size",
            t.to_string(),
            format!("{} (it may only shrink)", src.block_size),
        );
    }
    let (src_pos, src_act) = (src.pos_encoding.name(), src.activation.name());
    // Flags with defaults: only a value changed from the default is an explicit choice.
    let flags = [
        (
            "bias",
            cfg.bias != d.bias && cfg.bias != src.bias,
            cfg.bias.to_string(),
            src.bias.to_string(),
        ),
        (
            "tie_embeddings",
            cfg.tie_embeddings != d.tie_embeddings && cfg.tie_embeddings != src.tie_embeddings,
            cfg.tie_embeddings.to_string(),
            src.tie_embeddings.to_string(),
        ),
        (
            "pos_encoding",
            cfg.pos_encoding != d.pos_encoding && cfg.pos_encoding != src_pos,
            cfg.pos_encoding.clone(),
            src_pos.to_string(),
        ),
        (
            "activation",
            cfg.activation != d.activation && cfg.activation != src_act,
            cfg.activation.clone(),
            src_act.to_string(),
        ),
        (
            "qkv_bias",
            cfg.qkv_bias.is_some_and(|q| q != src.qkv_has_bias()),
            cfg.qkv_bias.map_or_else(String::new, |q| q.to_string()),
            src.qkv_has_bias().to_string(),
        ),
        (
            "head_bias",
            cfg.head_bias != d.head_bias && cfg.head_bias != src.head_bias,
            cfg.head_bias.to_string(),
            src.head_bias.to_string(),
        ),
        (
            "norm",
            cfg.norm != d.norm && cfg.norm != src.norm.name(),
            cfg.norm.clone(),
            src.norm.name().to_string(),
        ),
        (
            "mlp_ratio",
            cfg.mlp_ratio != d.mlp_ratio && cfg.mlp_ratio != src.mlp_ratio,
            cfg.mlp_ratio.to_string(),
            src.mlp_ratio.to_string(),
        ),
    ];
    for (key, clashes, ours, theirs) in flags {
        if clashes {
            return clash(key, ours, theirs);
        }
    }
    Ok(())
}
