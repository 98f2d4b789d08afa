//! End-to-end training runs on a tiny model (seconds): loss goes down, resume equals an
//! uninterrupted run bit for bit, early stopping, atomic checkpoints, bad input.

use std::path::Path;

use lmforge_checkpoint::write::save_checkpoint_failing_after;
use lmforge_checkpoint::{
    find_checkpoint, load_state, save_checkpoint, Checkpoint, CheckpointParts, Resumable,
};
use lmforge_files::RunLock;
use lmforge_model::{AdamW, AdamWConfig};
use lmforge_train::{train, EndReason, RunOptions, TrainConfig};

/// A small corpus (a few plays) prepared once per test into its own folder.
fn tiny_config(dir: &Path, extra: &[&str]) -> TrainConfig {
    let corpus = lmforge_corpus::bundled_corpus_dir().unwrap();
    let mut args: Vec<String> = vec![
        "--data".into(),
        corpus.join("macbeth_gut.txt").display().to_string(),
        corpus.join("hamlet_gut.txt").display().to_string(),
    ];
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
        "40",
        "--eval-interval",
        "10",
        "--eval-iters",
        "2",
        "--warmup-iters",
        "5",
        "--learning-rate",
        "3e-3",
        "--sample-tokens",
        "0",
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("--out".into());
    args.push(dir.display().to_string());
    TrainConfig::resolve(None, &args).unwrap()
}

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

#[test]
fn loss_goes_down_and_run_folder_is_complete() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tiny_config(d.path(), &[]);
    let r = train(&cfg, &quiet()).unwrap();
    assert_eq!(r.end, EndReason::Finished);
    assert_eq!(r.steps, 40);
    let recs = lmforge_train::metrics::read_records(&d.path().join("metrics.jsonl")).unwrap();
    assert_eq!(
        recs.iter().map(|r| r.step).collect::<Vec<_>>(),
        [0, 10, 20, 30, 40]
    );
    assert!(recs[4].val_loss < recs[0].val_loss - 0.5, "{recs:?}");
    for f in [
        "config.toml",
        "loss.png",
        "checkpoints/best/model.safetensors",
        "checkpoints/last/optimizer.safetensors",
        "checkpoints/last/state.json",
        "checkpoints/best/tokenizer.json",
    ] {
        assert!(d.path().join(f).is_file(), "{f} missing");
    }
    // best/ is what inference needs, no more.
    for f in ["optimizer.safetensors", "state.json"] {
        assert!(
            !d.path().join("checkpoints/best").join(f).exists(),
            "best/{f}"
        );
    }
    let ck = Checkpoint::load(&d.path().join("checkpoints/best")).unwrap();
    assert_eq!(ck.model.config().n_embd, 32);
    assert_eq!(
        ck.data_dir(),
        Some(d.path().join("data").canonicalize().unwrap())
    );
}

#[test]
fn resume_after_interruption_equals_uninterrupted_training() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // Dropout on, so the dropout-mask position must be restored too.
    let extra = ["--dropout", "0.1", "--ckpt-interval", "15"];
    let full = train(&tiny_config(a.path(), &extra), &quiet()).unwrap();

    let cfg_b = tiny_config(b.path(), &extra);
    let first = train(
        &cfg_b,
        &RunOptions {
            stop_after: Some(17),
            quiet: true,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(first.end, EndReason::Interrupted);
    assert_eq!(first.steps, 17);
    let resumed_cfg = TrainConfig::load(&b.path().join("config.toml")).unwrap();
    let second = train(
        &resumed_cfg,
        &RunOptions {
            resume: Some(b.path().to_path_buf()),
            quiet: true,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(second.steps, 40);
    assert_eq!(
        second.best_val_loss.map(f32::to_bits),
        full.best_val_loss.map(f32::to_bits)
    );

    let weights =
        |dir: &Path| std::fs::read(dir.join("checkpoints/last/model.safetensors")).unwrap();
    assert!(
        weights(a.path()) == weights(b.path()),
        "resumed weights differ from uninterrupted ones"
    );
    let opt =
        |dir: &Path| std::fs::read(dir.join("checkpoints/last/optimizer.safetensors")).unwrap();
    assert!(opt(a.path()) == opt(b.path()));
    let metrics = |dir: &Path| {
        lmforge_train::metrics::read_records(&dir.join("metrics.jsonl"))
            .unwrap()
            .iter()
            .map(|r| (r.step, r.train_loss.to_bits(), r.val_loss.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(metrics(a.path()), metrics(b.path()));
    assert!(b.path().join("checkpoints/step-0000030").is_dir());
}

#[test]
fn resume_refuses_incompatible_config_and_missing_run() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tiny_config(d.path(), &["--max-iters", "10"]);
    train(&cfg, &quiet()).unwrap();
    let changed = TrainConfig {
        n_embd: Some(64),
        ..cfg.clone()
    };
    let e = train(
        &changed,
        &RunOptions {
            resume: Some(d.path().to_path_buf()),
            quiet: true,
            ..RunOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot resume") && e.contains("n_embd"), "{e}");
    let more = TrainConfig {
        max_iters: 20,
        ..cfg.clone()
    };
    let r = train(
        &more,
        &RunOptions {
            resume: Some(d.path().to_path_buf()),
            quiet: true,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.steps, 20, "max_iters may grow on resume");

    let empty = tempfile::tempdir().unwrap();
    let e = train(
        &cfg,
        &RunOptions {
            resume: Some(empty.path().to_path_buf()),
            quiet: true,
            ..RunOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot resume"), "{e}");
}

#[test]
fn early_stopping_ends_the_run() {
    let d = tempfile::tempdir().unwrap();
    // A learning rate this small cannot improve val loss by min_delta = 10.
    let cfg = tiny_config(
        d.path(),
        &[
            "--patience",
            "2",
            "--min-delta",
            "10",
            "--eval-interval",
            "5",
        ],
    );
    let r = train(&cfg, &quiet()).unwrap();
    assert_eq!(r.end, EndReason::EarlyStopped);
    assert_eq!(
        r.steps, 10,
        "evals at 0 (best), 5 (bad 1), 10 (bad 2 → stop)"
    );
}

#[test]
fn a_failed_checkpoint_write_leaves_the_previous_one_loadable() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tiny_config(d.path(), &["--max-iters", "10"]);
    train(&cfg, &quiet()).unwrap();
    let root = d.path().join("checkpoints");
    let before = std::fs::read(root.join("last/model.safetensors")).unwrap();
    let Checkpoint {
        mut model,
        tokenizer: tok,
        ..
    } = Checkpoint::load(&root.join("last")).unwrap();
    for p in model.params_mut() {
        *p += 1.0;
    }
    let state = load_state(&root.join("last")).unwrap();
    let opt = AdamW::new(&model, AdamWConfig::default());
    let parts = CheckpointParts {
        model: &model,
        tokenizer: &tok,
        resume: Some(Resumable {
            optimizer: &opt,
            state: &state,
        }),
    };
    for fail_after in 0..5 {
        assert!(save_checkpoint_failing_after(&root, "last", &parts, Some(fail_after)).is_err());
        assert_eq!(
            std::fs::read(root.join("last/model.safetensors")).unwrap(),
            before,
            "old checkpoint must survive"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    assert!(Checkpoint::load(&root.join("last")).is_ok());
    save_checkpoint(&root, "last", &parts).unwrap();
    assert_ne!(
        std::fs::read(root.join("last/model.safetensors")).unwrap(),
        before
    );
    assert_eq!(find_checkpoint(&root, "last"), Some(root.join("last")));
}

#[test]
fn bad_input_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let missing = TrainConfig {
        data_dir: Some(d.path().join("nope")),
        ..tiny_config(d.path(), &[])
    };
    let e = train(&missing, &quiet()).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
    let too_long = tiny_config(d.path(), &["--block-size", "100000"]);
    let e = train(&too_long, &quiet()).unwrap_err().to_string();
    assert!(e.contains("block"), "{e}");
    let unwritable = TrainConfig {
        out_dir: Some("/proc/lmforge-cannot-write".into()),
        ..tiny_config(d.path(), &[])
    };
    let e = train(&unwritable, &quiet()).unwrap_err().to_string();
    assert!(e.contains("/proc/lmforge-cannot-write"), "{e}");
    let nan = tiny_config(
        d.path(),
        &[
            "--learning-rate",
            "1e30",
            "--max-iters",
            "30",
            "--grad-clip",
            "0",
        ],
    );
    let e = train(&nan, &quiet()).unwrap_err().to_string();
    assert!(
        e.contains("at step") && (e.contains("NaN") || e.contains("inf")),
        "{e}"
    );
}

#[test]
fn init_from_starts_from_the_checkpoint_weights_with_a_fresh_optimizer() {
    let a = tempfile::tempdir().unwrap();
    train(&tiny_config(a.path(), &["--max-iters", "20"]), &quiet()).unwrap();
    let best = a.path().join("checkpoints/best");
    let b = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(b.path(), &["--max-iters", "5", "--eval-interval", "5"]);
    // Fine-tune on the same prepared data (same tokenizer), from the first run's weights.
    cfg.data_dir = Some(a.path().join("data"));
    cfg.init_from = Some(best.clone());
    let r = train(&cfg, &quiet()).unwrap();
    assert_eq!(r.steps, 5);
    let recs = lmforge_train::metrics::read_records(&b.path().join("metrics.jsonl")).unwrap();
    let first_run = lmforge_train::metrics::read_records(&a.path().join("metrics.jsonl")).unwrap();
    let best_val = first_run
        .iter()
        .map(|r| r.val_loss)
        .fold(f32::MAX, f32::min);
    assert!(
        (recs[0].val_loss - best_val).abs() < 1e-5,
        "step 0 of the fine-tune evaluates the loaded weights: {} vs {best_val}",
        recs[0].val_loss
    );
    let state = load_state(&b.path().join("checkpoints/last")).unwrap();
    assert_eq!(state.step, 5, "the optimizer and step count start fresh");

    // A checkpoint made with another tokenizer is refused.
    let c = tempfile::tempdir().unwrap();
    let mut other = tiny_config(
        c.path(),
        &["--tokenizer", "tiktoken:gpt2", "--max-iters", "1"],
    );
    other.init_from = Some(best);
    let e = train(&other, &quiet()).unwrap_err().to_string();
    assert!(e.contains("fingerprint") || e.contains("tokenizer"), "{e}");
}

fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["checkpoints/best", "checkpoints/last"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out.push((
        "metrics".into(),
        std::fs::read(dir.join("metrics.jsonl")).unwrap(),
    ));
    out.sort();
    out
}

#[test]
fn a_second_run_into_the_same_folder_is_refused_and_nothing_is_lost() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tiny_config(d.path(), &["--max-iters", "10"]);
    train(&cfg, &quiet()).unwrap();
    let before = files_of(d.path());
    let e = train(&cfg, &quiet()).unwrap_err().to_string();
    for needle in [
        "already holds a run",
        "--resume",
        "--out",
        "--overwrite",
        "checkpoints/best",
    ] {
        assert!(e.contains(needle), "{needle}: {e}");
    }
    assert!(
        files_of(d.path()) == before,
        "the earlier run must be untouched"
    );
    // The refusal released the lock: resuming works.
    let more = TrainConfig {
        max_iters: 12,
        ..cfg.clone()
    };
    let resume = RunOptions {
        resume: Some(d.path().to_path_buf()),
        ..quiet()
    };
    assert_eq!(train(&more, &resume).unwrap().steps, 12);
}

#[test]
fn overwrite_replaces_the_earlier_run() {
    let d = tempfile::tempdir().unwrap();
    train(&tiny_config(d.path(), &["--max-iters", "20"]), &quiet()).unwrap();
    std::fs::create_dir_all(d.path().join("checkpoints/step-0000010")).unwrap();
    let cfg = tiny_config(d.path(), &["--max-iters", "5", "--eval-interval", "5"]);
    let opts = RunOptions {
        overwrite: true,
        ..quiet()
    };
    assert_eq!(train(&cfg, &opts).unwrap().steps, 5);
    let recs = lmforge_train::metrics::read_records(&d.path().join("metrics.jsonl")).unwrap();
    assert_eq!(recs.iter().map(|r| r.step).collect::<Vec<_>>(), [0, 5]);
    assert!(!d.path().join("checkpoints/step-0000010").exists());
    assert_eq!(
        load_state(&d.path().join("checkpoints/last")).unwrap().step,
        5
    );
}

#[test]
fn a_second_writer_is_refused_while_the_folder_is_locked() {
    let d = tempfile::tempdir().unwrap();
    let held = RunLock::acquire(d.path()).unwrap();
    let e = train(&tiny_config(d.path(), &[]), &quiet())
        .unwrap_err()
        .to_string();
    assert!(e.contains("in use by another lmforge process"), "{e}");
    assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
    assert!(
        !d.path().join("checkpoints").exists(),
        "the refused run wrote nothing"
    );
    drop(held);
    // Released on error and on interruption alike: each later run gets the lock.
    let bad = TrainConfig {
        data_dir: Some(d.path().join("nope")),
        ..tiny_config(d.path(), &[])
    };
    assert!(train(&bad, &quiet()).is_err());
    let stopped = RunOptions {
        stop_after: Some(3),
        ..quiet()
    };
    let r = train(&tiny_config(d.path(), &[]), &stopped).unwrap();
    assert_eq!(r.end, EndReason::Interrupted);
    let lock = RunLock::acquire(d.path()).unwrap();
    assert_eq!(lock.stale_owner(), None, "released cleanly, not left stale");
}

#[test]
fn a_stale_lock_is_taken_over() {
    let d = tempfile::tempdir().unwrap();
    // A killed run leaves its pid in the lock file but holds no lock.
    std::fs::write(d.path().join(RunLock::FILE_NAME), "999999\n").unwrap();
    let r = train(&tiny_config(d.path(), &["--max-iters", "2"]), &quiet()).unwrap();
    assert_eq!(r.steps, 2);
}

#[test]
fn an_fp32_run_resumes_in_bf16_and_back() {
    let d = tempfile::tempdir().unwrap();
    let dtype_of = |dir: &Path| TrainConfig::load(&dir.join("config.toml")).unwrap().dtype;
    let part = |dtype: &str, steps: usize, resume: bool| {
        let cfg = tiny_config(d.path(), &["--dtype", dtype]);
        let opts = RunOptions {
            resume: resume.then(|| d.path().to_path_buf()),
            stop_after: Some(steps),
            quiet: true,
            ..RunOptions::default()
        };
        train(&cfg, &opts).unwrap()
    };
    assert_eq!(part("fp32", 10, false).steps, 10);
    assert_eq!(dtype_of(d.path()), "fp32");
    assert_eq!(part("bf16-emulated", 10, true).steps, 20);
    assert_eq!(
        dtype_of(d.path()),
        "bf16",
        "config.toml records the dtype that ran"
    );
    let last = part("fp32", 20, true);
    assert_eq!(last.steps, 40);
    let recs = lmforge_train::metrics::read_records(&d.path().join("metrics.jsonl")).unwrap();
    let dtypes: Vec<(usize, &str)> = recs.iter().map(|r| (r.step, r.dtype.as_str())).collect();
    assert_eq!(
        dtypes,
        [
            (0, "fp32"),
            (10, "fp32"),
            (20, "bf16"),
            (30, "fp32"),
            (40, "fp32")
        ]
    );
    assert!(recs[4].val_loss < recs[0].val_loss - 0.5, "{recs:?}");
    // The checkpoints are f32 whatever ran: the bf16 part's weights load as usual.
    let ck = Checkpoint::load(&d.path().join("checkpoints/last")).unwrap();
    assert!(ck.model.params().iter().all(|p| p.is_finite()));

    // The same run all in fp32 ends close by (bf16 rounding only moved it a little).
    let e = tempfile::tempdir().unwrap();
    let all32 = train(&tiny_config(e.path(), &["--dtype", "fp32"]), &quiet()).unwrap();
    let (a, b) = (all32.best_val_loss.unwrap(), last.best_val_loss.unwrap());
    assert!((a - b).abs() < 0.05, "fp32 {a} vs fp32→bf16→fp32 {b}");
}

#[test]
fn a_bad_dtype_is_one_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let args = ["--dtype".to_string(), "fp16".to_string()];
    let e = match TrainConfig::resolve(None, &args) {
        Err(e) => e.to_string(),
        Ok(cfg) => train(
            &TrainConfig {
                out_dir: Some(d.path().into()),
                ..cfg
            },
            &quiet(),
        )
        .unwrap_err()
        .to_string(),
    };
    assert!(
        e.contains("dtype") && e.contains("\"fp16\"") && e.contains("bf16-emulated"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    assert!(!d.path().join("config.toml").exists(), "nothing written");
}
