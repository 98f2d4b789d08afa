//! Hugging Face GPT-2 folders: `config.json` + `model.safetensors`, sharded safetensors
//! with `model.safetensors.index.json`, or `pytorch_model.bin` (sharded too).
//!
//! The config maps onto lmforge's: `n_positions` → `block_size`, `n_inner` → `mlp_ratio ·
//! n_embd` (default 4·C), `activation_function` `gelu_new`/`gelu_pytorch_tanh` → tanh GELU
//! and `gelu` → exact, `tie_word_embeddings`. What lmforge's GPT does not compute is refused
//! naming the field: cross-attention, `scale_attn_by_inverse_layer_idx`, unscaled attention,
//! another LayerNorm epsilon, another `model_type`.

use std::path::{Path, PathBuf};

use lmforge_model::{Activation, ModelConfig};
use serde_json::Value as Json;

use super::error::{ImportError, Result};
use super::store::Store;
use super::torch::TorchFile;

/// lmforge's LayerNorm epsilon (`crates/model/src/ops/layernorm.rs`).
const LAYER_NORM_EPS: f64 = 1e-5;

/// True when `dir/config.json` looks like a Hugging Face config (not lmforge's own).
pub fn is_hf_folder(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
        return false;
    };
    let Ok(Json::Object(map)) = serde_json::from_str::<Json>(&text) else {
        return false;
    };
    map.contains_key("model_type")
        || map.contains_key("n_positions")
        || map.contains_key("architectures")
}

/// The model config of the GPT-2 folder `dir`.
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join("config.json");
    let bad = |msg: String| ImportError::bad(&path, msg);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        bad(format!(
            "cannot read ({e}): a Hugging Face GPT-2 folder needs config.json"
        ))
    })?;
    let json: Json =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let field = |k: &str| json.get(k).filter(|v| !v.is_null());
    let size = |k: &str| -> Result<usize> {
        field(k)
            .and_then(Json::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| bad(format!("field {k} is missing or not a whole number")))
    };
    if let Some(t) = field("model_type").and_then(Json::as_str) {
        if t != "gpt2" {
            return Err(bad(format!(
                "model_type is '{t}'; lmforge imports GPT-2 ('gpt2') models"
            )));
        }
    }
    for (k, refuse_when) in [
        ("add_cross_attention", true),
        ("scale_attn_by_inverse_layer_idx", true),
        ("scale_attn_weights", false),
    ] {
        if field(k).and_then(Json::as_bool) == Some(refuse_when) {
            return Err(bad(format!(
                "{k} = {refuse_when} is not supported by lmforge's GPT"
            )));
        }
    }
    if let Some(eps) = field("layer_norm_epsilon").and_then(Json::as_f64) {
        if (eps - LAYER_NORM_EPS).abs() > 1e-12 {
            return Err(bad(format!(
                "layer_norm_epsilon = {eps}; lmforge's LayerNorm uses {LAYER_NORM_EPS}"
            )));
        }
    }
    let n_embd = size("n_embd")?;
    let block = match field("n_positions") {
        Some(_) => size("n_positions")?,
        None => size("n_ctx")?,
    };
    let mut cfg = ModelConfig::new(
        size("vocab_size")?,
        size("n_layer")?,
        size("n_head")?,
        n_embd,
        block,
    );
    let hidden = match field("n_inner") {
        Some(_) => size("n_inner")?,
        None => 4 * n_embd,
    };
    if n_embd == 0 || hidden % n_embd != 0 {
        return Err(bad(format!(
            "n_inner = {hidden} is not a multiple of n_embd = {n_embd} (lmforge's MLP width is mlp_ratio · n_embd)"
        )));
    }
    cfg.mlp_ratio = hidden / n_embd;
    cfg.activation = match field("activation_function")
        .and_then(Json::as_str)
        .unwrap_or("gelu_new")
    {
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "gelu" => Activation::Gelu,
        "relu" => Activation::Relu,
        other => {
            return Err(bad(format!(
                "activation_function '{other}' is not supported (gelu, gelu_new, relu)"
            )))
        }
    };
    cfg.tie_embeddings = field("tie_word_embeddings")
        .and_then(Json::as_bool)
        .unwrap_or(true);
    cfg.validate()?;
    Ok(cfg)
}

/// The weight files of `dir`, in the order Hugging Face looks for them.
pub fn open_weights(dir: &Path) -> Result<Store> {
    let mut store = Store::new();
    let single_st = dir.join("model.safetensors");
    let index_st = dir.join("model.safetensors.index.json");
    let single_bin = dir.join("pytorch_model.bin");
    let index_bin = dir.join("pytorch_model.bin.index.json");
    if single_st.is_file() {
        store.add_safetensors(&single_st)?;
    } else if index_st.is_file() {
        for shard in shard_files(&index_st)? {
            store.add_safetensors(&shard)?;
        }
    } else if single_bin.is_file() {
        add_torch_state_dict(&mut store, &single_bin)?;
    } else if index_bin.is_file() {
        for shard in shard_files(&index_bin)? {
            add_torch_state_dict(&mut store, &shard)?;
        }
    } else {
        return Err(ImportError::bad(
            dir,
            "no weights: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin",
        ));
    }
    Ok(store)
}

fn add_torch_state_dict(store: &mut Store, path: &Path) -> Result<()> {
    let file = TorchFile::open(path)?;
    let root = file.root.clone();
    store.add_torch(file, &root)
}

/// The distinct shard files an index's `weight_map` names, in first-use order.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let bad = |msg: String| ImportError::bad(index, msg);
    let text = std::fs::read_to_string(index).map_err(|e| bad(format!("cannot read: {e}")))?;
    let json: Json =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(Json::as_object)
        .ok_or_else(|| bad("field weight_map is missing".into()))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = Vec::new();
    for (tensor, file) in map {
        let name = file
            .as_str()
            .ok_or_else(|| bad(format!("weight_map[{tensor}] is not a file name")))?;
        if name.contains('/') || name.contains('\\') || name.starts_with("..") {
            return Err(bad(format!(
                "weight_map[{tensor}] = '{name}' is not a file in the folder"
            )));
        }
        let p = dir.join(name);
        if !files.contains(&p) {
            files.push(p);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPT2: &str = r#"{"model_type": "gpt2", "vocab_size": 64, "n_positions": 16,
        "n_embd": 24, "n_layer": 2, "n_head": 2, "n_inner": null,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05}"#;

    fn config_with(edit: impl Fn(&mut serde_json::Map<String, Json>)) -> Result<ModelConfig> {
        let dir = tempfile::tempdir().unwrap();
        let mut json: Json = serde_json::from_str(GPT2).unwrap();
        if let Json::Object(map) = &mut json {
            edit(map);
        }
        std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
        read_config(dir.path())
    }

    #[test]
    fn gpt2_config_maps_onto_lmforges() {
        let c = config_with(|_| {}).unwrap();
        assert_eq!(
            (c.vocab_size, c.block_size, c.n_embd, c.mlp_ratio),
            (64, 16, 24, 4)
        );
        assert_eq!(c.activation, Activation::GeluTanh);
        assert!(c.tie_embeddings && c.bias);
        let c = config_with(|m| {
            m.insert("n_inner".into(), 48.into());
            m.insert("activation_function".into(), "gelu".into());
            m.insert("tie_word_embeddings".into(), false.into());
            m.remove("n_positions");
            m.insert("n_ctx".into(), 32.into());
        })
        .unwrap();
        assert_eq!((c.mlp_ratio, c.block_size), (2, 32));
        assert_eq!(c.activation, Activation::Gelu);
        assert!(!c.tie_embeddings);
    }

    #[test]
    fn what_the_gpt_cannot_compute_is_refused_by_field() {
        let cases: [(&str, Json, &str); 7] = [
            ("add_cross_attention", true.into(), "add_cross_attention"),
            (
                "scale_attn_by_inverse_layer_idx",
                true.into(),
                "scale_attn_by_inverse_layer_idx",
            ),
            ("scale_attn_weights", false.into(), "scale_attn_weights"),
            ("layer_norm_epsilon", 1e-6.into(), "layer_norm_epsilon"),
            ("n_inner", 30.into(), "n_inner"),
            ("activation_function", "silu".into(), "activation_function"),
            ("model_type", "llama".into(), "model_type"),
        ];
        for (key, value, needle) in cases {
            let e = config_with(|m| {
                m.insert(key.into(), value.clone());
            })
            .err()
            .unwrap()
            .to_string();
            assert!(e.contains(needle), "{key}: {e}");
        }
        let e = config_with(|m| {
            m.remove("n_head");
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("n_head") && e.contains("missing"), "{e}");
    }
}
