//! Validation split by file and no validation split; documents' boundaries in train.bin.

mod common;

use common::{opts, text, tokens, write};
use lmforge_data::{prepare, DataDir, ValSplit};

fn sources(dir: &std::path::Path, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let t = text(i);
            write(dir, &format!("src/doc{i:02}.txt"), &t);
            t
        })
        .collect()
}

#[test]
fn files_split_puts_the_last_tenth_of_the_files_in_val() {
    let d = tempfile::tempdir().unwrap();
    let docs = sources(d.path(), 10);
    let out = d.path().join("data");
    let mut o = opts(&out, &[&d.path().join("src")]);
    o.split = ValSplit::Files(0.1);
    o.block_size = 8;
    let report = prepare(&o).unwrap();
    let streams: Vec<&str> = report
        .meta
        .sources
        .iter()
        .map(|s| s.stream.as_str())
        .collect();
    assert_eq!(streams[..9], ["train"; 9]);
    assert_eq!(streams[9], "val");
    let dir = DataDir::open(&out).unwrap();
    let tok = dir.tokenizer().unwrap();
    assert_eq!(tokens(&out.join("val.bin")), tok.encode(&docs[9]).unwrap());
    // the train documents' boundaries: doc i starts after i docs and i separators
    let starts: Vec<u64> = dir
        .meta
        .train_documents(dir.train.len())
        .iter()
        .map(|d| d.0)
        .collect();
    let mut at = 0;
    for (i, doc) in docs[..9].iter().enumerate() {
        assert_eq!(starts[i], at);
        at += tok.encode(doc).unwrap().len() as u64 + 1;
    }
    // a single file cannot be split by file
    let one = d.path().join("one");
    write(&one, "a.txt", &text(0));
    let mut o = opts(&d.path().join("d1"), &[&one]);
    o.split = ValSplit::Files(0.1);
    let e = prepare(&o).unwrap_err().to_string();
    assert!(
        e.contains("val_split = files needs at least 2 source files"),
        "{e}"
    );
}

#[test]
fn no_split_keeps_everything_in_train_and_an_empty_val() {
    let d = tempfile::tempdir().unwrap();
    let docs = sources(d.path(), 3);
    let out = d.path().join("data");
    let mut o = opts(&out, &[&d.path().join("src")]);
    o.split = ValSplit::None;
    o.block_size = 8;
    prepare(&o).unwrap();
    let dir = DataDir::open(&out).unwrap();
    assert_eq!(dir.val.len(), 0);
    let tok = dir.tokenizer().unwrap();
    let total: usize = docs.iter().map(|t| tok.encode(t).unwrap().len()).sum();
    assert_eq!(
        dir.train.len() as usize,
        total + 2,
        "documents and 2 separators"
    );
    let docs = dir.meta.train_documents(dir.train.len());
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[2].0 + docs[2].1, dir.train.len());
}

#[test]
fn wikitext_cleaning_strips_lines_and_drops_empty_ones() {
    use lmforge_data::prepare::WikiTextOptions;
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wikitext-2");
    let d = tempfile::tempdir().unwrap();
    let prepared = |clean: bool| {
        let out = d.path().join(format!("clean-{clean}"));
        let mut o = opts(&out, &[]);
        o.tokenizer = lmforge_data::TokenizerChoice::Load("tiktoken:gpt2".into());
        o.wikitext = Some(WikiTextOptions {
            dir: fixture.clone(),
            download: false,
            url: None,
            sha256: None,
            clean,
        });
        prepare(&o).unwrap();
        tokens(&out.join("train.bin"))
    };
    let raw = std::fs::read_to_string(fixture.join("wiki.train.tokens")).unwrap();
    let lines: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        lines.len() < raw.lines().count(),
        "the fixture has empty lines"
    );
    let tok = lmforge_tokenizer::Tokenizer::load("tiktoken:gpt2").unwrap();
    assert_eq!(prepared(true), tok.encode(&lines.join("\n")).unwrap());
    assert_eq!(prepared(false), tok.encode(&raw).unwrap());
}
