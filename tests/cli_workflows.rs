//! The seeds' workflows from the command line: presets listed by `train --help`, bad
//! presets and contradicting settings as one `error:` line, and JaneLM's inference —
//! 10,000 tokens from the prompt " " at temperature 1 into a file.

mod common;
use common::{lmforge, one_error_line};

#[test]
fn train_help_lists_the_workflow_presets() {
    let out = lmforge(&["train", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "lm-arabic",
        "llm-from-scratch",
        "gpt-transformers",
        "janelm",
    ] {
        assert!(
            help.contains(&format!("  {name} ")),
            "{name} missing from:\n{help}"
        );
    }
}

#[test]
fn bad_presets_and_contradicting_settings_are_one_line() {
    let e = one_error_line(&lmforge(&["train", "--preset", "jane-lm"]));
    assert!(
        e.contains("'jane-lm' is not a preset") && e.contains("janelm"),
        "{e}"
    );
    let e = one_error_line(&lmforge(&[
        "train",
        "--val-split",
        "none",
        "--patience",
        "3",
    ]));
    assert!(e.contains("val_split = none contradicts patience"), "{e}");
    let e = one_error_line(&lmforge(&[
        "train",
        "--preset",
        "gpt-transformers",
        "--max-epochs",
        "0",
        "--max-iters",
        "10",
    ]));
    assert!(e.contains("max_epochs"), "{e}");
    let e = one_error_line(&lmforge(&[
        "train",
        "--sampling",
        "stride1",
        "--max-iters",
        "10",
    ]));
    assert!(e.contains("stride1") && e.contains("max_epochs"), "{e}");
}

#[test]
fn janelm_generates_ten_thousand_tokens_from_a_space_into_a_file() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let run_s = run.to_str().unwrap();
    let out = lmforge(&[
        "train",
        "--quiet",
        "--preset",
        "janelm",
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
        "--max-iters",
        "2",
        "--eval-iters",
        "1",
        "--sample-tokens",
        "0",
        "--data",
        "corpus/shakespeare/macbeth_gut.txt",
        "--out",
        run_s,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = d.path().join("jane.txt");
    let out = lmforge(&[
        "generate",
        "--checkpoint",
        run_s,
        "--prompt",
        " ",
        "--num-tokens",
        "10000",
        "--temperature",
        "1",
        "--top-k",
        "0",
        "--ignore-eos",
        "--json-stats",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(' ') && text.chars().count() >= 10_000,
        "{}",
        text.len()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stats = stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("the stats line");
    let stats: serde_json::Value = serde_json::from_str(stats).unwrap();
    assert_eq!(stats["tokens"], 10_000, "{stats}");
    assert_eq!(stats["stop_reason"], "max_tokens", "{stats}");
}
