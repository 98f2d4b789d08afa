//! nanoGPT checkpoints (`ckpt.pt`: `model`, `model_args`, …) and bare state_dicts (`.pth`,
//! `.pt`, `.bin`, `.safetensors`) with nanoGPT or GPT-2 names.
//!
//! A `ckpt.pt`'s `model_args` (n_layer, n_head, n_embd, block_size, bias, vocab_size) give
//! the config; nanoGPT's MLP is exact GELU with width 4·C and a tied head. A bare
//! state_dict's config is read off its shapes ([`super::weights::infer_config`]).

use std::path::Path;

use lmforge_model::ModelConfig;

use super::error::{ImportError, Result};
use super::pickle::Value;
use super::store::Store;
use super::torch::TorchFile;
use super::weights::infer_config;

/// A torch file's weights and config.
pub fn open_torch(path: &Path, n_head: Option<usize>) -> Result<(ModelConfig, Store)> {
    let file = TorchFile::open(path)?;
    let root = file.root.clone();
    let mut store = Store::new();
    match (root.get("model"), root.get("model_args")) {
        (Some(model), Some(args)) => {
            store.add_torch(file, model)?;
            let mut cfg = model_args(path, args)?;
            if let Some(h) = n_head {
                if h != cfg.n_head {
                    return Err(ImportError::bad(
                        path,
                        format!(
                            "--n-head {h} disagrees with the checkpoint's model_args.n_head = {}",
                            cfg.n_head
                        ),
                    ));
                }
            }
            cfg.tie_embeddings = true;
            Ok((cfg, store))
        }
        (Some(_), None) => Err(ImportError::bad(
            path,
            "the checkpoint has 'model' but no 'model_args' (expected nanoGPT's ckpt.pt layout)",
        )),
        _ => {
            if !matches!(root, Value::Dict(_)) {
                return Err(ImportError::bad(
                    path,
                    format!(
                        "holds a {}, not a state_dict or a nanoGPT checkpoint",
                        root.kind()
                    ),
                ));
            }
            store.add_torch(file, &root)?;
            let cfg = infer_config(&store, path, n_head)?;
            Ok((cfg, store))
        }
    }
}

/// A bare safetensors state_dict's weights and config.
pub fn open_safetensors(path: &Path, n_head: Option<usize>) -> Result<(ModelConfig, Store)> {
    let mut store = Store::new();
    store.add_safetensors(path)?;
    let cfg = infer_config(&store, path, n_head)?;
    Ok((cfg, store))
}

/// nanoGPT's `model_args` dict as a config.
fn model_args(path: &Path, args: &Value) -> Result<ModelConfig> {
    let size = |k: &str| -> Result<usize> {
        match args.get(k) {
            Some(Value::Int(n)) if *n >= 0 => Ok(*n as usize),
            Some(other) => Err(ImportError::bad(
                path,
                format!("model_args.{k} is a {}, not a size", other.kind()),
            )),
            None => Err(ImportError::bad(path, format!("model_args.{k} is missing"))),
        }
    };
    let mut cfg = ModelConfig::new(
        size("vocab_size")?,
        size("n_layer")?,
        size("n_head")?,
        size("n_embd")?,
        size("block_size")?,
    );
    cfg.bias = match args.get("bias") {
        Some(Value::Bool(b)) => *b,
        None => true,
        Some(other) => {
            return Err(ImportError::bad(
                path,
                format!("model_args.bias is a {}, not a bool", other.kind()),
            ))
        }
    };
    Ok(cfg)
}
