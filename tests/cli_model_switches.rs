//! Issue 14's model switches at the command line: a contradiction is one `error:` line before
//! any work, and a checkpoint with a switch no export target computes is refused in one line
//! with nothing written.

mod common;
use common::{assert_one_line_error, lmforge_in};

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
    assert_one_line_error(&lmforge_in(d.path(), &odd_rope), "even head size");
    let tied = ["train", "--head-bias", "true", "--out", "run"];
    assert_one_line_error(&lmforge_in(d.path(), &tied), "--tie-embeddings false");
    let norm = ["train", "--norm", "middle", "--out", "run"];
    assert_one_line_error(&lmforge_in(d.path(), &norm), "pre, post");
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
    let out = lmforge_in(d.path(), &train);
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
        assert_one_line_error(&lmforge_in(d.path(), &args), "norm = post");
        assert!(!d.path().join(out).exists());
    }
}
