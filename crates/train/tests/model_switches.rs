//! Issue 14's model switches through the run settings: `--norm`, `--activation relu`,
//! `--qkv-bias`, `--head-bias`, `--pos-encoding sinusoidal+rope` reach the model, contradictions
//! are one clear error, and a tiny run with all of them trains, checkpoints and reloads.

use std::path::Path;

use lmforge_checkpoint::Checkpoint;
use lmforge_model::{Activation, Norm, PosEncoding};
use lmforge_train::{train, EndReason, RunOptions, TrainConfig};

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Every switch away from its default, as the "GPT and Transformer Models" seed has them.
const SEED_003: &[&str] = &[
    "--norm",
    "post",
    "--activation",
    "relu",
    "--qkv-bias",
    "false",
    "--tie-embeddings",
    "false",
    "--head-bias",
    "true",
    "--pos-encoding",
    "sinusoidal+rope",
];

#[test]
fn switches_reach_the_model_config_and_survive_the_saved_config() {
    let cfg = TrainConfig::resolve(None, &s(SEED_003)).unwrap();
    let m = cfg.model_config(65).unwrap();
    assert_eq!(m.norm, Norm::Post);
    assert_eq!(m.activation, Activation::Relu);
    assert_eq!(m.pos_encoding, PosEncoding::SinusoidalRope);
    assert_eq!((m.qkv_bias, m.bias, m.head_bias), (Some(false), true, true));
    assert!(!m.qkv_has_bias() && !m.tie_embeddings);
    let toml = cfg.to_toml().unwrap();
    assert!(toml.contains("norm = \"post\""), "{toml}");
    assert!(
        toml.contains("pos_encoding = \"sinusoidal+rope\""),
        "{toml}"
    );
    let d = tempfile::tempdir().unwrap();
    let saved = d.path().join("config.toml");
    std::fs::write(&saved, toml).unwrap();
    assert_eq!(TrainConfig::load(&saved).unwrap(), cfg);
    // the defaults keep today's model
    let plain = TrainConfig::resolve(None, &[])
        .unwrap()
        .model_config(65)
        .unwrap();
    assert_eq!(
        (plain.norm, plain.qkv_bias, plain.head_bias),
        (Norm::Pre, None, false)
    );
}

#[test]
fn contradicting_switches_are_one_clear_error() {
    let resolve_err = |args: &[&str]| {
        TrainConfig::resolve(None, &s(args))
            .unwrap_err()
            .to_string()
    };
    let e = resolve_err(&["--head-bias", "true"]);
    assert!(
        e.starts_with("head_bias:") && e.contains("--tie-embeddings false"),
        "{e}"
    );
    let e = resolve_err(&["--norm", "sandwich"]);
    assert!(e.contains("norm") && e.contains("pre, post"), "{e}");
    let e = resolve_err(&["--activation", "swish"]);
    assert!(e.contains("relu"), "{e}");
    let e = resolve_err(&["--pos-encoding", "alibi"]);
    assert!(e.contains("sinusoidal+rope"), "{e}");
    // post-LN with RoPE and an odd head size (6 wide, 2 heads: 3 per head)
    let odd = [
        "--norm",
        "post",
        "--pos-encoding",
        "sinusoidal+rope",
        "--n-embd",
        "6",
        "--n-head",
        "2",
    ];
    let e = TrainConfig::resolve(None, &s(&odd))
        .unwrap()
        .model_config(65)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("n_head") && e.contains("even head size") && e.contains("6/2 = 3"),
        "{e}"
    );
}

#[test]
fn a_run_with_every_switch_trains_checkpoints_and_reloads() {
    let d = tempfile::tempdir().unwrap();
    let corpus = lmforge_corpus::bundled_corpus_dir().unwrap();
    let mut args = s(&[
        "--preset",
        "tiny",
        "--n-embd",
        "32",
        "--block-size",
        "32",
        "--batch-size",
        "4",
        "--max-iters",
        "30",
        "--eval-interval",
        "10",
        "--eval-iters",
        "2",
        "--warmup-iters",
        "5",
        "--learning-rate",
        "3e-3",
        "--dropout",
        "0.1",
        "--sample-tokens",
        "0",
    ]);
    args.extend(s(SEED_003));
    args.extend([
        "--data".into(),
        corpus.join("macbeth_gut.txt").display().to_string(),
        "--out".into(),
        d.path().display().to_string(),
    ]);
    let cfg = TrainConfig::resolve(None, &args).unwrap();
    let quiet = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let r = train(&cfg, &quiet).unwrap();
    assert_eq!(r.end, EndReason::Finished);
    let recs = lmforge_train::metrics::read_records(&d.path().join("metrics.jsonl")).unwrap();
    let (first, last) = (recs[0].val_loss, recs[recs.len() - 1].val_loss);
    assert!(last < first - 0.3, "{recs:?}");

    let ck = Checkpoint::load(&d.path().join("checkpoints/last")).unwrap();
    let m = ck.model.config();
    assert_eq!(
        (m.norm, m.activation, m.pos_encoding),
        (Norm::Post, Activation::Relu, PosEncoding::SinusoidalRope)
    );
    let has = |name: &str| ck.model.param(name).is_some();
    assert!(has("lm_head.bias") && has("transformer.h.0.attn.c_proj.bias"));
    assert!(!has("transformer.h.0.attn.c_attn.bias"));
    let json = std::fs::read_to_string(d.path().join("checkpoints/last/config.json")).unwrap();
    assert!(json.contains("\"norm\": \"post\"") || json.contains("\"norm\":\"post\""));
    config_json_without_switches_loads_as_before(d.path());
}

/// An old checkpoint (config.json written before the switches existed) loads as the pre-LN,
/// biased model it was.
fn config_json_without_switches_loads_as_before(tmp: &Path) {
    let old = r#"{"vocab_size":5,"n_layer":1,"n_head":1,"n_embd":4,"block_size":3,"bias":true,
        "dropout":0.0,"tie_embeddings":true,"pos_encoding":"learned","activation":"gelu",
        "mlp_ratio":4,"rope_theta":10000.0}"#;
    let cfg: lmforge_model::ModelConfig = serde_json::from_str(old).unwrap();
    assert_eq!(
        (cfg.norm, cfg.qkv_bias, cfg.head_bias),
        (Norm::Pre, None, false)
    );
    let dir = tmp.join("old");
    std::fs::create_dir_all(&dir).unwrap();
    let model = lmforge_model::Gpt::new(cfg, 1).unwrap();
    lmforge_model::io::save_model_dir(&model, &dir).unwrap();
    std::fs::write(dir.join("config.json"), old).unwrap();
    let back = lmforge_model::io::load_model_dir(&dir).unwrap();
    assert_eq!(back.params(), model.params());
    assert!(back.param("transformer.h.0.attn.c_attn.bias").is_some());
}
