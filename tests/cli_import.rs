//! `lmforge import` as a user runs it: a fixture imports and generates at once; bad input
//! is one `error:` line, exit code 1, and no output folder.

mod common;
use common::{lmforge, one_error_line};

use std::path::{Path, PathBuf};
use std::process::Output;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/interop/tests/fixtures")
}

fn fixture(rel: &str) -> String {
    fixtures().join(rel).display().to_string()
}

fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let line = one_error_line(out);
    for n in needles {
        assert!(line.contains(n), "{n}: {line}");
    }
}

/// A char tokenizer with the fixtures' 64 ids (60 characters + 4 specials), so every id a
/// random model samples decodes.
fn small_tokenizer(dir: &Path) -> String {
    let text = dir.join("abc.txt");
    std::fs::write(
        &text,
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567",
    )
    .unwrap();
    let path = dir.join("tok.json");
    let out = lmforge(&[
        "tokenizer",
        "train",
        "--kind",
        "char",
        "--out",
        path.to_str().unwrap(),
        text.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path.display().to_string()
}

#[test]
fn a_nanogpt_checkpoint_imports_and_generates() {
    let d = tempfile::tempdir().unwrap();
    let tok = small_tokenizer(d.path());
    let out_dir = d.path().join("imported");
    let out = lmforge(&[
        "import",
        &fixture("nanogpt/ckpt.pt"),
        "--out",
        out_dir.to_str().unwrap(),
        "--tokenizer",
        &tok,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("PyTorch checkpoint") && said.contains("2 layers"),
        "{said}"
    );
    let gen = lmforge(&[
        "generate",
        "--checkpoint",
        out_dir.to_str().unwrap(),
        "--prompt",
        "abc",
        "--seed",
        "3",
        "--max-new-tokens",
        "5",
    ]);
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
}

#[test]
fn bad_sources_are_one_line_errors_and_leave_no_folder() {
    let d = tempfile::tempdir().unwrap();
    let tok = small_tokenizer(d.path());
    // a folder that is not a GPT-2 folder: config.json says so, the weights are missing
    let no_weights = d.path().join("no_weights");
    std::fs::create_dir(&no_weights).unwrap();
    std::fs::copy(
        fixtures().join("hf_fp16/config.json"),
        no_weights.join("config.json"),
    )
    .unwrap();
    // a config whose sizes disagree with the weights
    let wrong_shape = d.path().join("wrong_shape");
    std::fs::create_dir(&wrong_shape).unwrap();
    let cfg = std::fs::read_to_string(fixtures().join("hf_fp16/config.json")).unwrap();
    std::fs::write(
        wrong_shape.join("config.json"),
        cfg.replace("\"n_embd\": 24", "\"n_embd\": 32"),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("hf_fp16/model.safetensors"),
        wrong_shape.join("model.safetensors"),
    )
    .unwrap();
    // another architecture
    let llama = d.path().join("llama");
    std::fs::create_dir(&llama).unwrap();
    std::fs::write(llama.join("config.json"), r#"{"model_type": "llama"}"#).unwrap();
    let text = d.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();

    let cases: Vec<(String, Vec<&str>)> = vec![
        (text.display().to_string(), vec!["unknown source format"]),
        (
            no_weights.display().to_string(),
            vec!["no weights", "model.safetensors"],
        ),
        (
            wrong_shape.display().to_string(),
            vec!["transformer.wte.weight", "[64, 24]", "[64, 32]"],
        ),
        (
            format!("hf:{}", llama.display()),
            vec!["model_type", "llama"],
        ),
        (
            fixture("bad/calls_code.pt"),
            vec!["print", "refused", "never executes"],
        ),
        (
            fixture("bad/legacy.pt"),
            vec!["not a zip-format", "re-save"],
        ),
        (fixture("bad/no_tensors.pt"), vec!["not a dict of tensors"]),
        (
            d.path().join("missing.pt").display().to_string(),
            vec!["no such file"],
        ),
    ];
    for (i, (src, needles)) in cases.iter().enumerate() {
        let out_dir = d.path().join(format!("out{i}"));
        let out = lmforge(&[
            "import",
            src,
            "--out",
            out_dir.to_str().unwrap(),
            "--tokenizer",
            &tok,
        ]);
        assert_one_line_error(&out, needles);
        assert!(!out_dir.exists(), "{src}: no partial output folder");
    }
    // an existing output folder is never written into
    let existing = d.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let out = lmforge(&[
        "import",
        &fixture("nanogpt/ckpt.pt"),
        "--out",
        existing.to_str().unwrap(),
        "--tokenizer",
        &tok,
    ]);
    assert_one_line_error(&out, &["already exists"]);
}
