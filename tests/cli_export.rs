//! `lmforge export` as a user runs it: the bundled sample model exported to a Hugging Face
//! folder, and bad input as one `error:` line, exit code 1, and no output.

mod common;
use common::lmforge;

use std::path::Path;

fn sample_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/shakespeare-char")
        .to_string_lossy()
        .into_owned()
}

fn assert_refused(args: &[&str], out: &Path, needle: &str) {
    let o = lmforge(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{err}"
    );
    assert!(!out.exists(), "{} was written", out.display());
}

#[test]
fn sample_model_exports_to_a_hugging_face_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf");
    let o = lmforge(&[
        "export",
        "--checkpoint",
        &sample_model(),
        "--format",
        "hf",
        "--out",
        out.to_str().unwrap(),
        "--dtype",
        "bf16",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("GPT2LMHeadModel") && said.contains("bfloat16"),
        "{said}"
    );
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // A second export into the same folder is refused, then allowed with --force.
    let again = [
        "export",
        "--checkpoint",
        &sample_model(),
        "--format",
        "hf",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = lmforge(&again);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    let mut forced = again.to_vec();
    forced.push("--force");
    assert!(lmforge(&forced).status.success());
}

#[test]
fn bad_export_input_is_one_line_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let model = sample_model();
    let args = |format: &'static str, dtype: &'static str, ckpt: &str| -> Vec<String> {
        [
            "export",
            "--checkpoint",
            ckpt,
            "--format",
            format,
            "--out",
            o,
            "--dtype",
            dtype,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: Vec<String>, needle: &str| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_refused(&a, &out, needle);
    };
    run(args("onnx", "fp32", &model), "--format");
    run(args("hf", "int8", &model), "--dtype");
    run(args("gguf", "fp32", &model), "byte-level BPE");
    let missing = dir.path().join("no-such-checkpoint");
    run(
        args("hf", "fp32", missing.to_str().unwrap()),
        "no-such-checkpoint",
    );
}
