//! Issue 14's model switches at the command line: a contradiction is one `error:` line before
//! any work, and a checkpoint with a switch no export target computes is refused in one line
//! with nothing written.

use std::path::Path;
use std::process::{Command, Output};

fn lmforge(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmforge"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run lmforge")
}

fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{err}"
    );
}

#[test]
fn contradictions_are_refused_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let odd_rope = [
        "train",
        "--norm",
        "post",
        "--pos-encoding",
        "sinusoidal+rope",
        "--n-embd",
        "6",
        "--n-head",
        "2",
        "--out",
        "run",
    ];
    assert_one_line_error(&lmforge(d.path(), &odd_rope), "even head size");
    let tied = ["train", "--head-bias", "true", "--out", "run"];
    assert_one_line_error(&lmforge(d.path(), &tied), "--tie-embeddings false");
    let norm = ["train", "--norm", "middle", "--out", "run"];
    assert_one_line_error(&lmforge(d.path(), &norm), "pre, post");
    assert!(
        !d.path().join("run").exists(),
        "nothing prepared or written"
    );
}

#[test]
fn export_refuses_a_post_ln_checkpoint_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/corpus/shakespeare/macbeth_gut.txt"
    );
    let train = [
        "train",
        "--preset",
        "tiny",
        "--norm",
        "post",
        "--activation",
        "relu",
        "--max-iters",
        "2",
        "--eval-interval",
        "2",
        "--eval-iters",
        "1",
        "--sample-tokens",
        "5",
        "--data",
        corpus,
        "--out",
        "run",
    ];
    let out = lmforge(d.path(), &train);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (format, out) in [("hf", "hf"), ("gguf", "m.gguf")] {
        let args = [
            "export",
            "--checkpoint",
            "run",
            "--format",
            format,
            "--out",
            out,
        ];
        assert_one_line_error(&lmforge(d.path(), &args), "norm = post");
        assert!(!d.path().join(out).exists());
    }
}
