//! Sequence-to-sequence through the `lmforge` binary: prepare pair data, generate from and
//! evaluate an encoder–decoder checkpoint, and every bad-input path as one `error:` line.

mod common;
use common::{assert_one_line_error, lmforge};

use std::path::{Path, PathBuf};
use std::process::Output;

use lmforge_data::pairs::PairsMeta;
use lmforge_model::seq2seq::{io, Seq2seq, Seq2seqConfig};

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Pair data from a TSV through the CLI, and a random encoder–decoder checkpoint on it.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let tsv: String = [
        "ab ba", "ba", "aab b", "b a b", "ab", "bb aa", "a b", "ba ab",
    ]
    .iter()
    .map(|l| {
        format!(
            "{l}\t{}\n",
            l.split(' ').rev().collect::<Vec<_>>().join(" ")
        )
    })
    .collect();
    std::fs::write(dir.join("p.tsv"), tsv).unwrap();
    let data = dir.join("data");
    let out = lmforge(&[
        "prepare",
        "--pairs-tsv",
        s(&dir.join("p.tsv")),
        "--out",
        s(&data),
        "--src-block-size",
        "4",
        "--tgt-block-size",
        "8",
        "--val-fraction",
        "0.25",
    ]);
    ok(&out);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("6 train pairs, 2 val pairs"), "{summary}");
    // Char-level: 5 of the 8 sources are longer than 4 characters.
    assert!(summary.contains("5 pairs cut to 4 tokens"), "{summary}");
    let meta = PairsMeta::read(&data.join("pairs.json")).unwrap();
    let cfg = Seq2seqConfig::new(meta.src.vocab_size, meta.tgt.vocab_size, 1, 2, 16, 4, 8);
    let ckpt = dir.join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    io::save_model_dir(&Seq2seq::new(cfg, 3).unwrap(), &ckpt).unwrap();
    for f in ["pairs.json", meta.src.tokenizer.file.as_str()] {
        std::fs::copy(data.join(f), ckpt.join(f)).unwrap();
    }
    (ckpt, data)
}

#[test]
fn generate_and_eval_an_encoder_decoder_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let (ckpt, data) = setup(d.path());
    let greedy = ok(&lmforge(&[
        "generate",
        "--checkpoint",
        s(&ckpt),
        "--source",
        "ab ba",
    ]));
    assert_eq!(greedy.lines().count(), 1);
    // Same input, same greedy output.
    let again = ok(&lmforge(&[
        "generate",
        "--checkpoint",
        s(&ckpt),
        "--source",
        "ab ba",
    ]));
    assert_eq!(greedy, again);
    ok(&lmforge(&[
        "generate",
        "--checkpoint",
        s(&ckpt),
        "--source",
        "ab",
        "--beams",
        "3",
    ]));
    ok(&lmforge(&[
        "generate",
        "--checkpoint",
        s(&ckpt),
        "--source",
        "ab",
        "--sample",
        "--seed",
        "5",
    ]));
    // A file, line by line, blank lines kept, long lines cut with a warning naming the line.
    std::fs::write(d.path().join("in.txt"), "ab ba\n\nab ab ab\n").unwrap();
    let outf = d.path().join("out.txt");
    let out = lmforge(&[
        "generate",
        "--checkpoint",
        s(&ckpt),
        "--source-file",
        s(&d.path().join("in.txt")),
        "--output",
        s(&outf),
    ]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: ") && err.contains("in.txt:3: the source has 8 tokens"),
        "{err}"
    );
    let written = std::fs::read_to_string(&outf).unwrap();
    assert_eq!(written.lines().count(), 3);
    assert_eq!(
        written.lines().next().unwrap(),
        greedy.trim_end_matches('\n')
    );
    assert_eq!(written.lines().nth(1).unwrap(), "");

    // bf16 (emulated: any CPU) decodes on the same f32 weights and says so
    let out = lmforge(&[
        "generate",
        "--checkpoint",
        s(&ckpt),
        "--source",
        "ab ba",
        "--dtype",
        "bf16-emulated",
    ]);
    assert_eq!(ok(&out).lines().count(), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dtype: bf16 mixed precision (emulated"),
        "{err}"
    );

    let eval_json = |dtype: &str| {
        let json = ok(&lmforge(&[
            "eval",
            "--checkpoint",
            s(&ckpt),
            s(&data),
            "--json",
            "--dtype",
            dtype,
        ]));
        serde_json::from_str::<serde_json::Value>(json.trim()).unwrap()
    };
    let v16 = eval_json("bf16-emulated");
    assert_eq!(v16["dtype"], "bf16");
    let v = eval_json("fp32");
    assert_eq!(v["dtype"], "fp32");
    let (l16, l32) = (v16["loss"].as_f64().unwrap(), v["loss"].as_f64().unwrap());
    assert!(
        l16 != l32 && (l16 - l32).abs() < 1e-2 * l32,
        "bf16 {l16} vs fp32 {l32}"
    );
    assert_eq!(v["pairs"], 2);
    assert_eq!(v["decoded"], 2);
    let loss = v["loss"].as_f64().unwrap();
    assert!(loss > 0.0 && (v["perplexity"].as_f64().unwrap() - loss.exp()).abs() < 1e-6);
    let text = ok(&lmforge(&[
        "eval",
        "--checkpoint",
        s(&ckpt),
        s(&data),
        "--beams",
        "2",
    ]));
    assert!(
        text.contains("exact match:") && text.contains("BLEU = "),
        "{text}"
    );
}

#[test]
fn seq2seq_bad_input_is_one_error_line() {
    let d = tempfile::tempdir().unwrap();
    let (ckpt, data) = setup(d.path());
    let g = |extra: &[&str]| {
        let mut args = vec!["generate", "--checkpoint", s(&ckpt)];
        args.extend_from_slice(extra);
        lmforge(&args)
    };
    assert_one_line_error(
        &g(&["--prompt", "ab"]),
        "encoder-decoder checkpoint: give the text to translate with --source",
    );
    assert_one_line_error(&g(&[]), "give --source TEXT or --source-file FILE");
    assert_one_line_error(&g(&["--source", ""]), "the source is empty");
    assert_one_line_error(
        &g(&["--source", "ab", "--beams", "0"]),
        "--beams must be at least 1",
    );
    // --dtype is checked for encoder-decoder checkpoints too: one line naming the flag.
    assert_one_line_error(
        &g(&["--source", "ab", "--dtype", "bogus"]),
        "--dtype: unknown dtype \"bogus\"",
    );
    assert_one_line_error(
        &lmforge(&[
            "eval",
            "--checkpoint",
            s(&ckpt),
            s(&data),
            "--dtype",
            "bogus",
        ]),
        "--dtype: unknown dtype \"bogus\"",
    );
    // A GPT checkpoint refuses --source.
    let gpt = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shakespeare-char");
    assert_one_line_error(
        &lmforge(&["generate", "--checkpoint", gpt, "--source", "hello"]),
        "is not an encoder-decoder checkpoint",
    );
    // Unaligned pair files name both counts.
    std::fs::write(d.path().join("a.txt"), "x\ny\nz\n").unwrap();
    std::fs::write(d.path().join("b.txt"), "x\ny\n").unwrap();
    let out = lmforge(&[
        "prepare",
        "--pairs",
        s(&d.path().join("a.txt")),
        s(&d.path().join("b.txt")),
        "--out",
        s(&d.path().join("bad")),
    ]);
    assert_one_line_error(&out, "has 3 lines but");
    assert!(!d.path().join("bad").exists());
    // Pair-only flags without pairs.
    let out = lmforge(&[
        "prepare",
        "--out",
        s(&d.path().join("x")),
        "--tgt-block-size",
        "8",
    ]);
    assert_one_line_error(&out, "are for pair data");
    // A GPT run pointed at pair data is told what the folder is.
    let out = lmforge(&["eval", "--checkpoint", gpt, s(&data)]);
    assert_one_line_error(&out, "holds sequence-to-sequence pairs");
}

#[test]
fn train_then_generate_and_eval_from_the_run_folder() {
    let d = tempfile::tempdir().unwrap();
    let words = ["ox", "ant", "bee", "cat", "dog", "eel", "fox", "gnu"];
    let tsv: String = (0..120usize)
        .map(|i| {
            let line: Vec<&str> = (0..1 + i % 4).map(|j| words[(i * 7 + j * 3) % 8]).collect();
            let rev: Vec<&str> = line.iter().rev().copied().collect();
            format!("{}\t{}\n", line.join(" "), rev.join(" "))
        })
        .collect();
    std::fs::write(d.path().join("p.tsv"), tsv).unwrap();
    let data = d.path().join("data");
    ok(&lmforge(&[
        "prepare",
        "--pairs-tsv",
        s(&d.path().join("p.tsv")),
        "--tokenizer",
        "word",
        "--out",
        s(&data),
        "--block-size",
        "8",
    ]));
    let run = d.path().join("run");
    ok(&lmforge(&[
        "train",
        "--arch",
        "encoder-decoder",
        "--data-dir",
        s(&data),
        "--out",
        s(&run),
        "--preset",
        "tiny",
        "--n-embd",
        "32",
        "--n-layer",
        "1",
        "--max-iters",
        "30",
        "--eval-interval",
        "15",
        "--eval-iters",
        "2",
        "--batch-size",
        "8",
        "--sample-tokens",
        "0",
    ]));
    // The run folder resolves to its best checkpoint; eval finds the data from state.json.
    let out = ok(&lmforge(&[
        "generate",
        "--checkpoint",
        s(&run),
        "--source",
        "cat dog",
    ]));
    assert_eq!(out.lines().count(), 1);
    let json = ok(&lmforge(&[
        "eval",
        "--checkpoint",
        s(&run),
        "--json",
        "--decode",
        "5",
    ]));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["decoded"], 5);
    assert!(v["loss"].as_f64().unwrap().is_finite());
}
