//! The `lmforge` binary as a user runs it: each job works, and bad input gives one `error:`
//! line with exit code 1 and no panic.

mod common;
use common::{assert_one_line_error, lmforge};

#[test]
fn tokenizer_round_trip_through_the_cli() {
    let out = lmforge(&[
        "tokenizer",
        "encode",
        "--tokenizer",
        "tiktoken:o200k_base",
        "مرحبا بالعالم",
    ]);
    assert!(out.status.success());
    let ids = String::from_utf8(out.stdout).unwrap();
    let out = lmforge(&[
        "tokenizer",
        "decode",
        "--tokenizer",
        "tiktoken:o200k_base",
        ids.trim(),
    ]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "مرحبا بالعالم\n");
}

#[test]
fn train_generate_eval_on_a_tiny_run() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/corpus/shakespeare/macbeth_gut.txt"
    );
    let run_s = run.to_str().unwrap();
    let out = lmforge(&[
        "train",
        "--quiet",
        "--data",
        corpus,
        "--preset",
        "tiny",
        "--max-iters",
        "6",
        "--eval-interval",
        "3",
        "--eval-iters",
        "1",
        "--batch-size",
        "2",
        "--sample-tokens",
        "5",
        "--out",
        run_s,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("checkpoints/best"));
    let out = lmforge(&[
        "generate",
        "--checkpoint",
        run_s,
        "--prompt",
        "The",
        "--max-new-tokens",
        "10",
        "--seed",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("The"));
    let out = lmforge(&["eval", "--checkpoint", run_s, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["perplexity"].as_f64().unwrap() - v["loss"].as_f64().unwrap().exp()).abs() < 1e-6);

    // Resuming with a changed model shape is refused, naming the field.
    let out = lmforge(&["train", "--resume", run_s, "--n-embd", "32"]);
    assert_one_line_error(&out, "n_embd");
}

#[test]
fn bad_input_is_one_line_and_exit_code_1() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.txt");
    std::fs::write(&bad, b"ok \xfe\xff").unwrap();
    let out_file = d.path().join("t.json");
    let out_s = out_file.to_str().unwrap();
    assert_one_line_error(
        &lmforge(&[
            "tokenizer",
            "train",
            "--kind",
            "char",
            "--out",
            out_s,
            bad.to_str().unwrap(),
        ]),
        "byte offset 3",
    );
    assert!(!out_file.exists(), "no partial output");
    assert_one_line_error(
        &lmforge(&["tokenizer", "info", "tiktoken:nope"]),
        "unknown tokenizer",
    );
    assert_one_line_error(
        &lmforge(&["train", "--max-iterz", "3"]),
        "unknown setting --max-iterz",
    );
    assert_one_line_error(
        &lmforge(&["train", "--data-dir", "/no/such/data"]),
        "/no/such/data",
    );
    assert_one_line_error(
        &lmforge(&["generate", "--checkpoint", "/no/such/ckpt"]),
        "/no/such/ckpt",
    );
    assert_one_line_error(&lmforge(&["generate", "--top-p", "0"]), "--top-p");
    for cmd in [
        &["train", "--dtype", "fp16"][..],
        &["bench", "train", "--dtype", "fp16"],
        &["generate", "--dtype", "fp16"],
        &[
            "eval",
            "--checkpoint",
            "models/shakespeare-char",
            "--dtype",
            "fp16",
        ],
    ] {
        assert_one_line_error(&lmforge(cmd), "unknown dtype \"fp16\"");
    }
    assert_one_line_error(
        &lmforge(&[
            "prepare",
            "--out",
            d.path().join("p").to_str().unwrap(),
            "/no/such/*.txt",
        ]),
        "matches no files",
    );
}

#[test]
fn a_second_train_into_the_same_folder_is_refused_unless_overwrite() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/corpus/shakespeare/macbeth_gut.txt"
    );
    let args = [
        "train",
        "--data",
        corpus,
        "--preset",
        "tiny",
        "--max-iters",
        "2",
        "--eval-iters",
        "1",
        "--batch-size",
        "2",
        "--sample-tokens",
        "0",
        "--learning-rate",
        "0.001",
        "--out",
        run.to_str().unwrap(),
    ];
    let first = lmforge(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // The resolved config shows floats as written.
    let printed = String::from_utf8_lossy(&first.stdout);
    assert!(printed.contains("learning_rate = 0.001\n"), "{printed}");
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        // no f64 widening of an f32 (0.0010000000474974513; adam_eps 1e-8 is 0.00000001)
        saved.contains("learning_rate = 0.001\n") && !saved.contains("00000004"),
        "{saved}"
    );
    // The closing hint does not suggest a Shakespeare prompt for other data.
    assert!(!String::from_utf8_lossy(&first.stderr).contains("ROMEO"));

    let best = std::fs::read(run.join("checkpoints/best/model.safetensors")).unwrap();
    let second = lmforge(&args);
    assert_one_line_error(&second, "already holds a run");
    let err = String::from_utf8_lossy(&second.stderr);
    for needle in ["--resume", "--out", "--overwrite"] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert_eq!(
        std::fs::read(run.join("checkpoints/best/model.safetensors")).unwrap(),
        best,
        "the earlier run is untouched"
    );
    // --overwrite may come anywhere, also after the settings.
    let mut again = args.to_vec();
    again.push("--overwrite");
    let third = lmforge(&again);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert!(String::from_utf8_lossy(&third.stderr).contains("--overwrite: deleted"));
}

#[test]
fn a_bad_setting_value_names_the_setting() {
    assert_one_line_error(
        &lmforge(&["train", "--learning-rate", "abc"]),
        "--learning-rate abc: invalid type: string \"abc\", expected f32",
    );
}

#[test]
fn bench_train_takes_a_custom_shape() {
    let shape = [
        "--n-layer",
        "1",
        "--n-embd",
        "16",
        "--n-head",
        "2",
        "--block-size",
        "4",
        "--vocab-size",
        "300",
        "--batch",
        "3",
    ];
    let mut args = vec!["bench", "train", "--preset", "tiny", "--steps", "1"];
    args.extend(["--warmup", "0", "--json"]);
    args.extend(shape);
    let out = lmforge(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for field in [
        "\"n_layer\":1,",
        "\"n_head\":2,",
        "\"n_embd\":16,",
        "\"block_size\":4,",
        "\"vocab_size\":300,",
        "\"batch\":3,",
    ] {
        assert!(stdout.contains(field), "{field} in {stdout}");
    }
    let out = lmforge(&["bench", "train", "--n-embd", "30", "--n-head", "4"]);
    assert_one_line_error(&out, "--n-embd: 30 is not divisible by n_head = 4");
    let out = lmforge(&["bench", "train", "--vocab-size", "0"]);
    assert_one_line_error(&out, "--vocab-size");
    let out = lmforge(&["bench", "train", "--batch", "0"]);
    assert_one_line_error(&out, "--batch");
}
