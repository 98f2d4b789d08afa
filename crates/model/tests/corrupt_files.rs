//! Regression tests for corrupted `config.json` files (lmforge-fuzz): sizes a config
//! claims are checked (overflow, then against `model.safetensors`' length) before any
//! parameter buffer is allocated or any layer is laid out.

use std::time::{Duration, Instant};

use lmforge_model::io::{load_model_dir, save_model_dir, CONFIG_FILE};
use lmforge_model::{Gpt, ModelConfig};

fn load_with_config_edit(edit: impl Fn(&mut serde_json::Value)) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let m = Gpt::new(ModelConfig::preset("tiny").unwrap(), 1).unwrap();
    save_model_dir(&m, dir.path()).unwrap();
    let p = dir.path().join(CONFIG_FILE);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let t0 = Instant::now();
    let e = load_model_dir(dir.path()).expect_err("corrupt config accepted");
    (e.to_string(), t0.elapsed())
}

#[test]
fn sizes_beyond_the_weights_file_are_refused_before_allocating() {
    // 2^40 layers of a 16-wide model: without the check, laying out the layers never ends.
    let (e, took) = load_with_config_edit(|v| v["n_layer"] = (1u64 << 40).into());
    assert!(
        e.contains("model.safetensors") && e.contains("config.json"),
        "{e}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    // n_embd 2^20: ~2^46 parameters, an allocation of hundreds of terabytes.
    let (e, _) = load_with_config_edit(|v| {
        v["n_embd"] = (1u64 << 20).into();
        v["n_head"] = 1.into();
    });
    assert!(e.contains("too few"), "{e}");
    // Sizes whose parameter count overflows usize are refused by validation, naming them.
    let (e, _) = load_with_config_edit(|v| v["n_embd"] = (1u64 << 33).into());
    assert!(e.contains("too large"), "{e}");
    let (e, _) = load_with_config_edit(|v| v["block_size"] = (1u64 << 60).into());
    assert!(e.contains("block_size"), "{e}");
}
