//! The four workflow presets end to end on the bundled corpus at tiny sizes: each keeps its
//! workflow's behaviour (split, sampling, evaluation, schedule, optimiser) while the sizes
//! are overridden so a run takes a second or two.

use std::path::Path;

use lmforge_checkpoint::load_state;
use lmforge_train::metrics::{read_records, EvalRecord};
use lmforge_train::{train, EndReason, RunOptions, TrainConfig, TrainReport};

fn plays(names: &[&str]) -> Vec<String> {
    let corpus = lmforge_corpus::bundled_corpus_dir().unwrap();
    names
        .iter()
        .map(|n| corpus.join(n).display().to_string())
        .collect()
}

/// Tiny sizes on top of a preset; `extra` last.
fn run(preset: &str, out: &Path, data: &[String], extra: &[&str]) -> (TrainConfig, TrainReport) {
    let mut args: Vec<String> = vec!["--preset".into(), preset.into(), "--data".into()];
    args.extend(data.iter().cloned());
    for a in [
        "--n-layer",
        "1",
        "--n-embd",
        "32",
        "--n-head",
        "2",
        "--block-size",
        "16",
        "--batch-size",
        "4",
        "--eval-iters",
        "2",
        "--sample-tokens",
        "0",
        "--dtype",
        "fp32",
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--out".into(), out.display().to_string()]);
    let cfg = TrainConfig::resolve(None, &args).unwrap();
    let quiet = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let report = train(&cfg, &quiet).unwrap();
    (cfg, report)
}

fn records(dir: &Path) -> Vec<EvalRecord> {
    read_records(&dir.join("metrics.jsonl")).unwrap()
}

#[test]
fn lm_arabic_trains_without_validation_one_window_per_file() {
    let d = tempfile::tempdir().unwrap();
    let data = plays(&["macbeth_gut.txt", "hamlet_gut.txt", "othello_gut.txt"]);
    let extra = ["--max-iters", "6", "--eval-interval", "3"];
    let (cfg, r) = run("lm-arabic", d.path(), &data, &extra);
    assert_eq!(cfg.tokenizer, "tiktoken:o200k_base");
    assert_eq!((cfg.learning_rate, cfg.weight_decay), (1e-4, 0.01));
    assert_eq!(cfg.weight_decay_scope, "all");
    assert_eq!(r.end, EndReason::Finished);
    assert_eq!(r.best_val_loss, None, "no validation");
    assert!(!d.path().join("checkpoints/best").exists());
    let recs = records(d.path());
    assert!(recs.iter().all(|r| r.val_loss.is_nan() && r.lr == 1e-4));
    let state = load_state(&d.path().join("checkpoints/last")).unwrap();
    assert!(serde_json::to_string(&state.sampler)
        .unwrap()
        .contains("per-document"));
}

#[test]
fn llm_from_scratch_splits_by_file_and_validates_the_whole_split() {
    let d = tempfile::tempdir().unwrap();
    let data = plays(&["macbeth_gut.txt", "hamlet_gut.txt", "othello_gut.txt"]);
    let extra = ["--max-epochs", "0.004", "--tokenizer-vocab-size", "2000"];
    let (cfg, r) = run("llm-from-scratch", d.path(), &data, &extra);
    assert_eq!(
        (cfg.pos_encoding.as_str(), cfg.dropout),
        ("sinusoidal", 0.1)
    );
    assert_eq!(r.end, EndReason::Finished);
    let meta = lmforge_data::DataDir::open(&r.data_dir).unwrap().meta;
    let val_files: Vec<&str> = meta
        .sources
        .iter()
        .filter(|s| s.stream == "val")
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(val_files, [data[2].as_str()], "the last of 3 files is val");
    assert_eq!(meta.tokenizer.kind, "word");
    let tok = lmforge_data::DataDir::open(&r.data_dir)
        .unwrap()
        .tokenizer()
        .unwrap();
    let ids = tok.encode("The KING, my lord").unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), "the king , my lord");
    let recs = records(d.path());
    assert_eq!(recs.first().unwrap().step, 0);
    assert_eq!(recs.last().unwrap().step, r.steps);
    assert!(recs.iter().all(|r| r.val_loss.is_finite()));
}

#[test]
fn gpt_transformers_runs_post_ln_relu_on_stride1_windows() {
    let d = tempfile::tempdir().unwrap();
    let data = plays(&["macbeth_gut.txt"]);
    let extra = [
        "--max-epochs",
        "0.0003",
        "--tokenizer-vocab-size",
        "300",
        "--eval-interval",
        "4",
    ];
    let (cfg, r) = run("gpt-transformers", d.path(), &data, &extra);
    assert_eq!(
        (cfg.norm.as_str(), cfg.activation.as_str()),
        ("post", "relu")
    );
    assert_eq!((cfg.adam_eps, cfg.beta2, cfg.grad_clip), (1e-9, 0.98, 0.0));
    assert_eq!(r.end, EndReason::Finished);
    assert!(r.steps >= 4, "{}", r.steps);
    let state = load_state(&d.path().join("checkpoints/last")).unwrap();
    assert!(serde_json::to_string(&state.sampler)
        .unwrap()
        .contains("stride1"));
    let recs = records(d.path());
    assert!(recs.iter().all(|r| r.lr == 1e-4 && r.val_loss.is_finite()));
}

#[test]
fn janelm_stops_above_the_best_with_fresh_eval_batches() {
    let d = tempfile::tempdir().unwrap();
    let data = plays(&["macbeth_gut.txt"]);
    let extra = ["--max-iters", "8", "--eval-interval", "4"];
    let (cfg, r) = run("janelm", d.path(), &data, &extra);
    assert_eq!(cfg.stop_above_best, Some(0.075));
    assert_eq!((cfg.head_bias, cfg.tie_embeddings), (true, false));
    assert_eq!(cfg.eval_mode, "random");
    assert_eq!(r.end, EndReason::Finished);
    assert_eq!(
        records(d.path()).iter().map(|r| r.step).collect::<Vec<_>>(),
        [0, 4, 8]
    );
    assert!(d
        .path()
        .join("checkpoints/best/model.safetensors")
        .is_file());
}

#[test]
fn an_unknown_preset_lists_the_names() {
    let e = TrainConfig::resolve(None, &["--preset".into(), "jane".into()])
        .unwrap_err()
        .to_string();
    for name in [
        "lm-arabic",
        "llm-from-scratch",
        "gpt-transformers",
        "janelm",
        "baby",
    ] {
        assert!(e.contains(name), "{e}");
    }
    assert!(e.starts_with("preset: 'jane' is not a preset"), "{e}");
}

#[test]
fn a_preset_value_can_be_overridden_and_the_saved_config_reloads() {
    let d = tempfile::tempdir().unwrap();
    let args: Vec<String> = ["--preset", "janelm", "--max-iters", "500"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cfg = TrainConfig::resolve(None, &args).unwrap();
    assert_eq!(
        (cfg.max_iters, cfg.n_embd, cfg.block_size),
        (500, Some(512), Some(96))
    );
    let m = cfg.model_config(50257).unwrap();
    // JaneLM's ≈70M parameters with gpt2's vocabulary
    let params = lmforge_model::Gpt::new(m, 1).unwrap().num_params();
    assert!((69_000_000..72_000_000).contains(&params), "{params}");
    let saved = d.path().join("config.toml");
    std::fs::write(&saved, cfg.to_toml().unwrap()).unwrap();
    assert_eq!(TrainConfig::load(&saved).unwrap(), cfg);
}
