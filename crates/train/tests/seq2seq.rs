//! Encoder–decoder runs through `lmforge train`'s loop: loss goes down on a word-reversal
//! task, the checkpoints hold what generation and resume need, a resumed run equals an
//! uninterrupted one bit for bit, and bad data folders are one clear error.

use std::path::{Path, PathBuf};

use lmforge_data::pairs::{prepare_pairs, PairInput, PairPrepareOptions};
use lmforge_data::TokenizerChoice;
use lmforge_model::seq2seq::io::load_model_dir;
use lmforge_tokenizer::TrainKind;
use lmforge_train::{train, EndReason, RunOptions, TrainConfig};

/// 200 lines of 1–5 words from a 12-word vocabulary and their reversals, as a TSV prepared
/// with one word tokenizer.
fn reversal_pairs(dir: &Path) -> PathBuf {
    let words = [
        "ox", "ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "yak", "owl", "emu",
    ];
    let mut state = 7u64;
    let mut tsv = String::new();
    for _ in 0..200 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = 1 + (state >> 60) as usize % 5;
        let line: Vec<&str> = (0..n)
            .map(|i| words[(state >> (8 * i + 3)) as usize % words.len()])
            .collect();
        let rev: Vec<&str> = line.iter().rev().copied().collect();
        tsv += &format!("{}\t{}\n", line.join(" "), rev.join(" "));
    }
    let file = dir.join("pairs.tsv");
    std::fs::write(&file, tsv).unwrap();
    let out = dir.join("data");
    prepare_pairs(&PairPrepareOptions {
        input: PairInput::Tsv(file),
        tokenizer: TokenizerChoice::Train {
            kind: TrainKind::Word,
            vocab_size: None,
        },
        tgt_tokenizer: None,
        out: out.clone(),
        val_fraction: 0.1,
        src_block_size: 8,
        tgt_block_size: 8,
        lossy: false,
    })
    .unwrap();
    out
}

fn config(data: &Path, run: &Path) -> TrainConfig {
    let mut c = TrainConfig {
        arch: "encoder-decoder".into(),
        data_dir: Some(data.to_path_buf()),
        out_dir: Some(run.to_path_buf()),
        preset: "tiny".into(),
        n_embd: Some(32),
        n_layer: Some(1),
        batch_size: 8,
        max_iters: 60,
        eval_interval: 20,
        eval_iters: 4,
        warmup_iters: 5,
        learning_rate: 3e-3,
        sample_tokens: 0,
        ckpt_interval: Some(25),
        // dropout: resuming must redraw the same masks
        dropout: 0.1,
        ..TrainConfig::default()
    };
    c.seq2seq.norm = "post".into();
    c.seq2seq.share_embeddings = true;
    c
}

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

#[test]
fn trains_checkpoints_and_resumes_exactly() {
    let d = tempfile::tempdir().unwrap();
    let data = reversal_pairs(d.path());
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let full = train(&config(&data, &a), &quiet()).unwrap();
    assert_eq!((full.end, full.steps), (EndReason::Finished, 60));
    let records = lmforge_train::metrics::read_records(&a.join("metrics.jsonl")).unwrap();
    let (first, last) = (&records[0], records.last().unwrap());
    assert!(
        last.val_loss < first.val_loss * 0.7,
        "val loss {} -> {}",
        first.val_loss,
        last.val_loss
    );
    assert!(a.join("loss.png").is_file());
    for f in [
        "config.json",
        "model.safetensors",
        "pairs.json",
        "optimizer.safetensors",
        "state.json",
    ] {
        assert!(a.join("checkpoints/last").join(f).is_file(), "last/{f}");
    }
    assert!(a.join("checkpoints/best/model.safetensors").is_file());
    assert!(!a.join("checkpoints/best/optimizer.safetensors").exists());
    assert!(a.join("checkpoints/step-0000050").is_dir());
    let m = load_model_dir(&a.join("checkpoints/best")).unwrap();
    assert!(m.config().share_embeddings);

    let first = train(
        &config(&data, &b),
        &RunOptions {
            stop_after: Some(27),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!((first.end, first.steps), (EndReason::Interrupted, 27));
    let saved = TrainConfig::load(&b.join("config.toml")).unwrap();
    let second = train(
        &saved,
        &RunOptions {
            resume: Some(b.clone()),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(second.steps, 60);
    let read = |dir: &Path, f: &str| std::fs::read(dir.join("checkpoints/last").join(f)).unwrap();
    assert!(
        read(&a, "model.safetensors") == read(&b, "model.safetensors"),
        "resumed weights differ"
    );
    assert!(read(&a, "optimizer.safetensors") == read(&b, "optimizer.safetensors"));
    assert_eq!(
        full.best_val_loss.map(f32::to_bits),
        second.best_val_loss.map(f32::to_bits)
    );
}

#[test]
fn bad_data_is_one_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let mut c = config(d.path(), &run);
    c.data_dir = None;
    let e = train(&c, &quiet()).err().unwrap().to_string();
    assert!(
        e.contains("data_dir") && e.contains("prepare --pairs"),
        "{e}"
    );
    c.data_dir = Some(d.path().to_path_buf());
    let e = train(&c, &quiet()).err().unwrap().to_string();
    assert!(e.contains("pairs.json"), "{e}");
    assert!(!run.exists(), "a refused run leaves no folder");
    c.arch = "rnn".into();
    let e = train(&c, &quiet()).err().unwrap().to_string();
    assert!(e.contains("arch"), "{e}");
}

#[test]
fn an_fp32_run_resumes_in_bf16_and_back() {
    let d = tempfile::tempdir().unwrap();
    let data = reversal_pairs(d.path());
    let run = d.path().join("run");
    let dtype_of = |dir: &Path| TrainConfig::load(&dir.join("config.toml")).unwrap().dtype;
    let part = |dtype: &str, steps: usize, resume: bool| {
        // a resumed run continues its saved config.toml, dtype changed
        let base = match resume {
            true => TrainConfig::load(&run.join("config.toml")).unwrap(),
            false => config(&data, &run),
        };
        let cfg = TrainConfig {
            dtype: dtype.into(),
            ..base
        };
        let opts = RunOptions {
            resume: resume.then(|| run.clone()),
            stop_after: Some(steps),
            ..quiet()
        };
        train(&cfg, &opts).unwrap()
    };
    assert_eq!(part("fp32", 20, false).steps, 20);
    assert_eq!(dtype_of(&run), "fp32");
    assert_eq!(part("bf16-emulated", 20, true).steps, 40);
    assert_eq!(
        dtype_of(&run),
        "bf16",
        "config.toml records the dtype that ran"
    );
    let last = part("fp32", 20, true);
    assert_eq!(last.steps, 60);
    let recs = lmforge_train::metrics::read_records(&run.join("metrics.jsonl")).unwrap();
    let dtypes: Vec<(usize, &str)> = recs.iter().map(|r| (r.step, r.dtype.as_str())).collect();
    assert_eq!(
        dtypes,
        [(0, "fp32"), (20, "fp32"), (40, "bf16"), (60, "fp32")]
    );
    // f32 checkpoints whatever ran: the bf16 part's weights load as usual
    let m = load_model_dir(&run.join("checkpoints/last")).unwrap();
    assert!(m.params().iter().all(|p| p.is_finite()));

    // the same run all in fp32 ends close by (bf16 rounding moved it only a little)
    let all32 = d.path().join("all32");
    let cfg = TrainConfig {
        dtype: "fp32".into(),
        ..config(&data, &all32)
    };
    let full = train(&cfg, &quiet()).unwrap();
    let (a, b) = (full.last_val_loss.unwrap(), last.last_val_loss.unwrap());
    assert!((a - b).abs() < 0.05 * a, "fp32 {a} vs fp32→bf16→fp32 {b}");
    assert_ne!(a.to_bits(), b.to_bits(), "the bf16 part ran as fp32?");
}

#[test]
fn bf16_training_tracks_fp32_on_every_kernel_here() {
    use lmforge_model::ops::matmul::{bf16_amx_available, bf16_native_available};
    let d = tempfile::tempdir().unwrap();
    let data = reversal_pairs(d.path());
    let losses = |dtype: &str| {
        let run = d.path().join(dtype);
        let cfg = TrainConfig {
            dtype: dtype.into(),
            max_iters: 20,
            ckpt_interval: None,
            ..config(&data, &run)
        };
        train(&cfg, &quiet()).unwrap();
        let recs = lmforge_train::metrics::read_records(&run.join("metrics.jsonl")).unwrap();
        recs.iter().map(|r| r.train_loss).collect::<Vec<f32>>()
    };
    let l32 = losses("fp32");
    let mut dtypes = vec!["bf16-emulated"];
    // native: AVX-512 BF16 dot products, or AMX tiles where the CPU has them
    if bf16_native_available() || bf16_amx_available() {
        dtypes.push("bf16-native");
    }
    for dtype in dtypes {
        let l16 = losses(dtype);
        assert_eq!(l16.len(), l32.len());
        for (a, b) in l16.iter().zip(&l32) {
            assert!((a - b).abs() < 0.03 * b, "{dtype}: loss {a} vs fp32 {b}");
        }
    }
}

#[test]
fn a_bad_dtype_is_one_clear_error_and_leaves_no_folder() {
    let d = tempfile::tempdir().unwrap();
    let data = reversal_pairs(d.path());
    let run = d.path().join("run");
    let cfg = TrainConfig {
        dtype: "bogus".into(),
        ..config(&data, &run)
    };
    let e = train(&cfg, &quiet()).err().unwrap().to_string();
    assert!(
        e.contains("dtype") && e.contains("\"bogus\"") && e.contains("bf16-emulated"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    assert!(!run.exists(), "a refused run leaves no folder");
}
