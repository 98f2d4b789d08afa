//! The seeds' training behaviours end to end on a tiny model: the plateau schedule (and
//! its resume), no validation split, stride-1 epochs with per-epoch evaluation and
//! checkpoints, per-document sampling, evaluation modes, optimiser settings.

use std::path::Path;

use lmforge_checkpoint::{load_state, PlateauState};
use lmforge_train::metrics::{read_records, EvalRecord};
use lmforge_train::schedule::plateau_step;
use lmforge_train::{train, EndReason, RunOptions, TrainConfig};

fn play(name: &str) -> String {
    let corpus = lmforge_corpus::bundled_corpus_dir().unwrap();
    corpus.join(name).display().to_string()
}

/// A few KB of a play, so a stride-1 epoch is short.
fn small_text(dir: &Path) -> String {
    let text = std::fs::read_to_string(play("macbeth_gut.txt")).unwrap();
    let cut: String = text.chars().skip(20_000).take(1500).collect();
    let p = dir.join("small.txt");
    std::fs::write(&p, cut).unwrap();
    p.display().to_string()
}

fn config(out: &Path, data: &[String], extra: &[&str]) -> lmforge_train::Result<TrainConfig> {
    let mut args: Vec<String> = vec!["--data".into()];
    args.extend(data.iter().cloned());
    for a in [
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
        "5",
        "--eval-iters",
        "2",
        "--warmup-iters",
        "0",
        "--learning-rate",
        "3e-3",
        "--sample-tokens",
        "0",
        "--dtype",
        "fp32",
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--out".into(), out.display().to_string()]);
    TrainConfig::resolve(None, &args)
}

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

fn records(dir: &Path) -> Vec<EvalRecord> {
    read_records(&dir.join("metrics.jsonl")).unwrap()
}

fn plays() -> Vec<String> {
    vec![play("macbeth_gut.txt"), play("hamlet_gut.txt")]
}

#[test]
fn plateau_follows_torch_and_resumes_exactly() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // a high rate and no patience, so the val loss stalls and the rate is cut
    let extra = [
        "--lr-schedule",
        "plateau",
        "--plateau-patience",
        "0",
        "--plateau-factor",
        "0.5",
        "--learning-rate",
        "3e-2",
    ];
    let full = train(&config(a.path(), &plays(), &extra).unwrap(), &quiet()).unwrap();
    assert_eq!(full.steps, 30);
    // replaying torch's rule over the logged val losses gives the logged rates
    let recs = records(a.path());
    let mut state = PlateauState {
        lr: 3e-2,
        best: None,
        bad_evals: 0,
    };
    for r in &recs {
        assert_eq!(r.lr, state.lr, "step {}", r.step);
        plateau_step(&mut state, r.val_loss, 0.5, 0);
    }
    assert!(
        recs.last().unwrap().lr < 3e-2,
        "the rate was never cut: {recs:?}"
    );
    let saved = load_state(&a.path().join("checkpoints/last")).unwrap();
    assert_eq!(saved.plateau, Some(state));

    let cfg_b = config(b.path(), &plays(), &extra).unwrap();
    let stop = RunOptions {
        stop_after: Some(17),
        ..quiet()
    };
    assert_eq!(train(&cfg_b, &stop).unwrap().end, EndReason::Interrupted);
    let resume = RunOptions {
        resume: Some(b.path().to_path_buf()),
        ..quiet()
    };
    let cfg_b = TrainConfig::load(&b.path().join("config.toml")).unwrap();
    train(&cfg_b, &resume).unwrap();
    let weights = |d: &Path| std::fs::read(d.join("checkpoints/last/model.safetensors")).unwrap();
    assert!(
        weights(a.path()) == weights(b.path()),
        "resumed run differs"
    );
    let lrs = |d: &Path| records(d).iter().map(|r| r.lr).collect::<Vec<_>>();
    assert_eq!(lrs(a.path()), lrs(b.path()));
}

#[test]
fn without_validation_there_is_no_best_and_no_early_stopping() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &plays(), &["--val-split", "none"]).unwrap();
    let r = train(&cfg, &quiet()).unwrap();
    assert_eq!(r.end, EndReason::Finished);
    assert_eq!(r.best_val_loss, None);
    let recs = records(d.path());
    assert!(recs
        .iter()
        .all(|r| r.val_loss.is_nan() && r.train_loss.is_finite()));
    assert!(!d.path().join("checkpoints/best").exists());
    assert!(d
        .path()
        .join("checkpoints/last/model.safetensors")
        .is_file());
    let data = lmforge_data::DataDir::open(&r.data_dir).unwrap();
    assert_eq!(data.val.len(), 0);
    // settings that need a val loss contradict it
    for extra in [
        &["--patience", "3"][..],
        &["--stop-above-best", "0.075"],
        &["--lr-schedule", "plateau"],
    ] {
        let mut args = vec!["--val-split", "none"];
        args.extend(extra);
        let e = config(d.path(), &plays(), &args).unwrap_err().to_string();
        assert!(e.starts_with("val_split = none contradicts"), "{e}");
        assert!(e.contains(extra[0].trim_start_matches("--").split('-').next().unwrap()));
    }
}

#[test]
fn stride1_epochs_drive_evaluation_and_epoch_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let text = small_text(d.path());
    let out = d.path().join("run");
    let extra = [
        "--sampling",
        "stride1",
        "--max-epochs",
        "2",
        "--batch-size",
        "16",
        "--eval-interval",
        "100000",
        "--eval-every-epoch",
        "--ckpt-every-epochs",
        "1",
        "--eval-mode",
        "full",
    ];
    let cfg = config(&out, &[text], &extra).unwrap();
    let r = train(&cfg, &quiet()).unwrap();
    let data = lmforge_data::DataDir::open(&r.data_dir).unwrap();
    // every offset once per epoch: (train tokens - block) windows, 16 per step
    let per_epoch = (data.train.len() as usize - 32).div_ceil(16);
    assert_eq!(r.steps, 2 * per_epoch);
    let steps: Vec<usize> = records(&out).iter().map(|r| r.step).collect();
    assert_eq!(steps, [0, per_epoch, 2 * per_epoch]);
    for e in ["epoch-0001", "epoch-0002"] {
        assert!(out.join("checkpoints").join(e).join("state.json").is_file());
    }
    let state = load_state(&out.join("checkpoints/epoch-0001")).unwrap();
    assert_eq!(state.step, per_epoch);
    // stride1 without epochs is a contradiction
    let e = config(&out, &plays(), &["--sampling", "stride1"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("stride1") && e.contains("max_epochs"), "{e}");
}

#[test]
fn per_document_sampling_trains_and_resumes_with_its_documents() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut data = plays();
    data.push(play("romeo_and_juliet_gut.txt"));
    let extra = ["--sampling", "per-document", "--max-iters", "12"];
    let full = train(&config(a.path(), &data, &extra).unwrap(), &quiet()).unwrap();
    let recs = records(a.path());
    assert!(recs.last().unwrap().train_loss < recs[0].train_loss);
    let cfg_b = config(b.path(), &data, &extra).unwrap();
    let stop = RunOptions {
        stop_after: Some(7),
        ..quiet()
    };
    train(&cfg_b, &stop).unwrap();
    let resume = RunOptions {
        resume: Some(b.path().to_path_buf()),
        ..quiet()
    };
    let resumed = train(&cfg_b, &resume).unwrap();
    assert_eq!(
        resumed.best_val_loss.map(f32::to_bits),
        full.best_val_loss.map(f32::to_bits)
    );
    let state = load_state(&a.path().join("checkpoints/last")).unwrap();
    let json = serde_json::to_string(&state.sampler).unwrap();
    assert!(json.contains("per-document"), "{json}");
}

#[test]
fn eval_modes_choose_different_windows_and_full_covers_the_split() {
    let runs: Vec<(tempfile::TempDir, Vec<EvalRecord>)> = ["fixed", "random", "full"]
        .iter()
        .map(|mode| {
            let d = tempfile::tempdir().unwrap();
            let extra = ["--eval-mode", mode, "--max-iters", "10"];
            train(&config(d.path(), &plays(), &extra).unwrap(), &quiet()).unwrap();
            let recs = records(d.path());
            (d, recs)
        })
        .collect();
    let val_at =
        |i: usize, step: usize| runs[i].1.iter().find(|r| r.step == step).unwrap().val_loss;
    // same weights at step 0, different windows
    assert_ne!(val_at(0, 0).to_bits(), val_at(1, 0).to_bits());
    assert_ne!(val_at(0, 0).to_bits(), val_at(2, 0).to_bits());
    // fixed mode draws the same train windows at every evaluation, random fresh ones; the
    // train losses then differ from step 5 on (different windows, same weights)
    let train_at = |i: usize, step: usize| {
        runs[i]
            .1
            .iter()
            .find(|r| r.step == step)
            .unwrap()
            .train_loss
    };
    assert_ne!(train_at(0, 5).to_bits(), train_at(1, 5).to_bits());
    // an unknown mode names the choices
    let e = config(runs[0].0.path(), &plays(), &["--eval-mode", "all"])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "eval_mode: 'all' is not one of fixed, random, full");
}

#[test]
fn adam_eps_and_decay_scope_reach_the_optimizer() {
    let weights = |extra: &[&str]| -> Vec<u8> {
        let d = tempfile::tempdir().unwrap();
        let mut args = vec!["--max-iters", "3", "--weight-decay", "0.5"];
        args.extend(extra);
        train(&config(d.path(), &plays(), &args).unwrap(), &quiet()).unwrap();
        std::fs::read(d.path().join("checkpoints/last/model.safetensors")).unwrap()
    };
    let base = weights(&[]);
    assert!(weights(&[]) == base, "runs are deterministic");
    assert!(weights(&["--weight-decay-scope", "all"]) != base);
    assert!(weights(&["--adam-eps", "1e-3"]) != base);
    let e = config(Path::new("x"), &plays(), &["--weight-decay-scope", "some"])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("weight_decay_scope: 'some'"), "{e}");
}
