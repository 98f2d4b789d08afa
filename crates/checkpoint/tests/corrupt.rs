//! Deterministic mutation test of checkpoint loading: a checkpoint folder whose `state.json`
//! or `config.json` is truncated, garbled or replaced gives a clear error naming the file —
//! never a panic, and never a silently wrong checkpoint.

use std::path::Path;

use lmforge_checkpoint::{
    load_state, save_checkpoint, Checkpoint, CheckpointParts, EarlyStopState, Resumable,
    TrainState, STATE_FORMAT,
};
use lmforge_data::sampler::Rng;
use lmforge_data::{SamplerState, Sampling};
use lmforge_model::{AdamW, AdamWConfig, Gpt, ModelConfig};
use lmforge_tokenizer::char_level::CharTokenizer;
use lmforge_tokenizer::Tokenizer;

fn state() -> TrainState {
    TrainState {
        format: STATE_FORMAT,
        lmforge_version: "test".into(),
        step: 7,
        evaluated_at: Some(5),
        best_val_loss: Some(2.5),
        early_stopping: EarlyStopState {
            patience: Some(3),
            min_delta: 0.01,
            best: Some(2.5),
            bad_evals: 1,
        },
        sampler: SamplerState {
            sampling: Sampling::Random { seed: 1 },
            batch: 2,
            block: 8,
            tokens: 100,
            rng: Rng::new(1),
            epoch: 0,
            next_window: 0,
            batches: 7,
        },
        dropout_passes: 3,
        tokens_seen: 112,
        elapsed_s: 1.5,
        lr: 1e-3,
        data_dir: "/nowhere".into(),
        tokenizer_fingerprint: "abc".into(),
        plateau: None,
    }
}

/// A resumable checkpoint of a tiny model in `root/last`.
fn write_checkpoint(root: &Path) -> std::path::PathBuf {
    let tokenizer = Tokenizer::Char(CharTokenizer::train(&["abcdefgh "], None));
    let mut cfg = ModelConfig::preset("tiny").unwrap();
    cfg.vocab_size = tokenizer.vocab_size();
    let model = Gpt::new(cfg, 1).unwrap();
    let opt = AdamW::new(&model, AdamWConfig::default());
    let st = state();
    let parts = CheckpointParts {
        model: &model,
        tokenizer: &tokenizer,
        resume: Some(Resumable {
            optimizer: &opt,
            state: &st,
        }),
    };
    save_checkpoint(root, "last", &parts).unwrap()
}

/// Deterministic damage to a file's bytes: truncations, flipped bytes, garbage, wrong types.
fn mutations(original: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("empty".to_string(), vec![]),
        ("not json".to_string(), b"\x00\xff garbage".to_vec()),
        ("a number".to_string(), b"42".to_vec()),
        ("an empty object".to_string(), b"{}".to_vec()),
        ("null".to_string(), b"null".to_vec()),
    ];
    for cut in [
        1,
        original.len() / 3,
        original.len() / 2,
        original.len() - 2,
    ] {
        out.push((format!("truncated at {cut}"), original[..cut].to_vec()));
    }
    for at in (0..original.len()).step_by(7) {
        let mut bytes = original.to_vec();
        bytes[at] = bytes[at].wrapping_add(0x5a);
        out.push((format!("byte {at} changed"), bytes));
    }
    let text = String::from_utf8_lossy(original);
    for (from, to) in [
        ("7", "-7"),
        ("7", "1e99"),
        ("\"format\": 1", "\"format\": 9"),
        ("true", "\"yes\""),
        ("64", "0"),
        ("4", "3"),
        (":", ": [],"),
    ] {
        if text.contains(from) {
            out.push((
                format!("'{from}' → '{to}'"),
                text.replacen(from, to, 1).into_bytes(),
            ));
        }
    }
    out
}

#[test]
fn a_damaged_state_json_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let dir = write_checkpoint(d.path());
    let path = dir.join("state.json");
    let original = std::fs::read(&path).unwrap();
    assert_eq!(
        load_state(&dir).unwrap(),
        state(),
        "the intact state round-trips"
    );
    let mut refused = 0;
    for (what, bytes) in mutations(&original) {
        std::fs::write(&path, &bytes).unwrap();
        match load_state(&dir) {
            // A change that still parses must parse to a state that differs (never garbage
            // silently accepted as the original).
            Ok(s) => assert_ne!(s, state(), "{what}: a damaged file read as the original"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("state.json"), "{what}: {msg}");
                assert!(!msg.contains('\n'), "{what}: one line: {msg}");
                refused += 1;
            }
        }
        // Loading the whole checkpoint must not panic either.
        let _ = Checkpoint::load(&dir);
    }
    assert!(refused >= 10, "most mutations must be refused ({refused})");
    std::fs::remove_file(&path).unwrap();
    let e = load_state(&dir).unwrap_err().to_string();
    assert!(e.contains("state.json") && e.contains("missing"), "{e}");
}

#[test]
fn a_damaged_config_json_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let dir = write_checkpoint(d.path());
    let path = dir.join("config.json");
    let original = std::fs::read(&path).unwrap();
    assert!(Checkpoint::load(&dir).is_ok());
    let mut refused = 0;
    for (what, bytes) in mutations(&original) {
        std::fs::write(&path, &bytes).unwrap();
        match Checkpoint::load(&dir) {
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("config.json") || msg.contains("model.safetensors"),
                    "{what}: the error names the file: {msg}"
                );
                refused += 1;
            }
        }
    }
    assert!(refused >= 10, "most mutations must be refused ({refused})");
    std::fs::remove_file(&path).unwrap();
    let e = Checkpoint::load(&dir).err().unwrap().to_string();
    assert!(e.contains("config.json is missing"), "{e}");
}

#[test]
fn best_is_inference_only_and_finding_falls_back_after_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let last = write_checkpoint(d.path());
    let ck = Checkpoint::load(&last).unwrap();
    let parts = CheckpointParts {
        model: &ck.model,
        tokenizer: &ck.tokenizer,
        resume: None,
    };
    let best = save_checkpoint(d.path(), "best", &parts).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&best)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    assert!(Checkpoint::load(&best).unwrap().state.is_none());
    // A crash between the renames of a save leaves `.old-last-PID`; it is found.
    std::fs::rename(&last, d.path().join(".old-last-123")).unwrap();
    assert_eq!(
        lmforge_checkpoint::find_checkpoint(d.path(), "last"),
        Some(d.path().join(".old-last-123"))
    );
}
