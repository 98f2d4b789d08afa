//! `init_from` with an imported source: a nanoGPT `ckpt.pt` fixture (random GPT-2 weights,
//! written by tools/make_interop_fixtures.py) fine-tuned on a small text.

use std::path::{Path, PathBuf};

use lmforge_data::{DataDir, EvalBatches};
use lmforge_interop::import::{self, ImportOptions, Source};
use lmforge_tokenizer::{train as train_tokenizer, TrainKind};
use lmforge_train::{train, RunOptions, TrainConfig};

fn ckpt() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/tests/fixtures/nanogpt/ckpt.pt")
}

const TEXT: &str = "the quick brown fox jumps over the lazy dog\n";

/// A text file and a char tokenizer (32 ids, below the fixture's 64) in `dir`.
fn text_and_tokenizer(dir: &Path) -> (String, String) {
    let text = dir.join("fox.txt");
    std::fs::write(&text, TEXT.repeat(300)).unwrap();
    let tok = train_tokenizer(TrainKind::Char, None, &[TEXT]).unwrap();
    let tok_path = dir.join("fox-tokenizer.json");
    tok.save(&tok_path).unwrap();
    (text.display().to_string(), tok_path.display().to_string())
}

fn config(run: &Path, text: &str, tok: &str, extra: &[&str]) -> lmforge_train::Result<TrainConfig> {
    let mut args: Vec<String> = ["--data", text, "--tokenizer", tok, "--init-from"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(ckpt().display().to_string());
    for a in [
        "--batch-size",
        "4",
        "--max-iters",
        "3",
        "--eval-interval",
        "3",
        "--eval-iters",
        "2",
        "--warmup-iters",
        "0",
        "--learning-rate",
        "1e-3",
        "--sample-tokens",
        "0",
        // fp32: the step-0 loss is compared with an fp32 forward of the source
        "--dtype",
        "fp32",
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--out".to_string(), run.display().to_string()]);
    TrainConfig::resolve(None, &args)
}

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

#[test]
fn fine_tuning_a_nanogpt_checkpoint_starts_at_its_loss() {
    let d = tempfile::tempdir().unwrap();
    let (text, tok) = text_and_tokenizer(d.path());
    let run = d.path().join("run");
    let cfg = config(&run, &text, &tok, &[]).unwrap();
    let report = train(&cfg, &quiet()).unwrap();
    assert_eq!(report.steps, 3);
    let recs = lmforge_train::metrics::read_records(&run.join("metrics.jsonl")).unwrap();

    // The source's own loss on the run's fixed validation batches (seed ^ 0x7A1, as
    // crates/train/src/run/open.rs draws them).
    let opts = ImportOptions {
        tokenizer: Some(tok.clone()),
        n_head: None,
    };
    let mut src = import::load(
        &Source::parse(&ckpt().display().to_string()).unwrap(),
        &opts,
    )
    .unwrap();
    let data = DataDir::open(&run.join("data")).unwrap();
    assert_eq!(
        data.tokenizer().unwrap().fingerprint(),
        src.tokenizer.fingerprint()
    );
    let (b, t) = (cfg.batch_size, src.model.config().block_size);
    let batches =
        EvalBatches::new(data.val.clone(), cfg.eval_iters, b, t, cfg.seed ^ 0x7A1).unwrap();
    let (mut x, mut y) = (vec![0u32; b * t], vec![0i32; b * t]);
    let mut sum = 0.0f64;
    for i in 0..batches.len() {
        batches.fill(i, &mut x, &mut y).unwrap();
        sum += src.model.forward(&x, Some(&y), b, t).unwrap().unwrap() as f64;
    }
    let source_loss = (sum / batches.len() as f64) as f32;
    assert!(
        (recs[0].val_loss - source_loss).abs() < 1e-4,
        "step 0 evaluates the imported weights: {} vs {source_loss}",
        recs[0].val_loss
    );
    assert!(
        (recs[0].val_loss - (64f32).ln()).abs() > 0.3,
        "not a fresh model's ln V: {}",
        recs[0].val_loss
    );
    assert!(recs.last().unwrap().val_loss < recs[0].val_loss, "{recs:?}");
    // the checkpoint carries the source's shape and the run's tokenizer
    let ck = lmforge_checkpoint::Checkpoint::load(&run.join("checkpoints/last")).unwrap();
    assert_eq!(ck.model.config().n_embd, 24);
    assert_eq!(ck.tokenizer.fingerprint(), src.tokenizer.fingerprint());
}

#[test]
fn block_size_may_shrink_but_the_shape_comes_from_the_source() {
    let d = tempfile::tempdir().unwrap();
    let (text, tok) = text_and_tokenizer(d.path());
    let run = d.path().join("cropped");
    let cfg = config(&run, &text, &tok, &["--block-size", "8"]).unwrap();
    train(&cfg, &quiet()).unwrap();
    let ck = lmforge_checkpoint::Checkpoint::load(&run.join("checkpoints/last")).unwrap();
    assert_eq!(ck.model.config().block_size, 8);

    for (flag, value, key) in [
        ("--n-embd", "32", "n_embd"),
        ("--block-size", "32", "block_size"),
        ("--activation", "gelu_tanh", "activation"),
        ("--bias", "false", "bias"),
    ] {
        let run = d.path().join(key);
        let cfg = config(&run, &text, &tok, &[flag, value]).unwrap();
        let e = train(&cfg, &quiet()).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("init_from"), "{flag}: {e}");
        assert!(!run.exists(), "{flag}: no run folder is left behind");
    }
    let cfg = config(&d.path().join("w"), &text, "word", &[]).unwrap();
    let e = train(&cfg, &quiet()).unwrap_err().to_string();
    assert!(e.contains("tokenizer") && e.contains("source"), "{e}");
}

#[test]
fn an_interrupted_fine_tune_resumes_with_its_cropped_shape() {
    let d = tempfile::tempdir().unwrap();
    let (text, tok) = text_and_tokenizer(d.path());
    let run = d.path().join("run");
    let cfg = config(&run, &text, &tok, &["--block-size", "8"]).unwrap();
    let first = RunOptions {
        stop_after: Some(1),
        ..quiet()
    };
    assert_eq!(train(&cfg, &first).unwrap().steps, 1);
    // the shape comes from the run's own checkpoint now (block 8, cropped), not the source
    let resume = RunOptions {
        resume: Some(run.clone()),
        ..quiet()
    };
    let r = train(&cfg, &resume).unwrap();
    assert_eq!(r.steps, 3);
    let ck = lmforge_checkpoint::Checkpoint::load(&run.join("checkpoints/last")).unwrap();
    assert_eq!(ck.model.config().block_size, 8);
}
