//! `prepare` end to end: token counts, dtypes, determinism, ordering, WikiText, Gutenberg.

mod common;

use common::{opts, text, tokens, write};
use lmforge_data::prepare::WikiTextOptions;
use lmforge_data::{prepare, DataDir, Dtype, TokenizerChoice, ValSplit};
use lmforge_tokenizer::Tokenizer;

/// Tokenizes documents directly, separated by `sep`, as prepare should.
fn direct(tok: &Tokenizer, docs: &[String]) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.extend(tok.eos_id());
        }
        out.extend(tok.encode(d).unwrap());
    }
    out
}

#[test]
fn char_counts_equal_direct_tokenization_and_split_is_nanogpt_style() {
    let d = tempfile::tempdir().unwrap();
    let docs: Vec<String> = (0..3).map(text).collect();
    let paths: Vec<_> = docs
        .iter()
        .enumerate()
        .map(|(i, t)| write(d.path(), &format!("src/doc{i}.txt"), t))
        .collect();
    let out = d.path().join("data");
    let mut o = opts(&out, &[&d.path().join("src")]);
    o.split = ValSplit::Fraction(0.25);
    let report = prepare(&o).unwrap();

    let dir = DataDir::open(&out).unwrap();
    let tok = dir.tokenizer().unwrap();
    assert_eq!(tok.kind(), "char");
    let expected = direct(&tok, &docs);
    let n_train = (expected.len() as f64 * 0.75) as usize;
    assert_eq!(tokens(&out.join("train.bin")), expected[..n_train]);
    assert_eq!(tokens(&out.join("val.bin")), expected[n_train..]);
    assert_eq!(dir.train.dtype(), Dtype::U16);
    assert_eq!(
        report.meta.train_tokens + report.meta.val_tokens,
        expected.len() as u64
    );
    assert_eq!(report.meta.sources.len(), 3);
    assert_eq!(report.meta.sources[1].path, paths[1].display().to_string());
    assert_eq!(report.meta.sources[1].bytes, docs[1].len() as u64);
    assert_eq!(
        report.meta.sources.iter().map(|s| s.tokens).sum::<u64>() + 2,
        expected.len() as u64
    );
    assert_eq!(dir.fingerprint(), tok.fingerprint());
    assert!(report.meta.tokenizer.separator.is_some());
    // sha256 of the source bytes.
    let sha = lmforge_data::download::sha256_file(&paths[0]).unwrap();
    assert_eq!(report.meta.sources[0].sha256, sha);
}

#[test]
fn identical_inputs_give_identical_files() {
    let d = tempfile::tempdir().unwrap();
    let src = write(d.path(), "a.txt", &text(1));
    write(d.path(), "b.txt", &text(2));
    let glob = d.path().join("*.txt");
    let (o1, o2) = (d.path().join("o1"), d.path().join("o2"));
    for o in [&o1, &o2] {
        let mut po = opts(o, &[&glob]);
        po.tokenizer = TokenizerChoice::parse("word", Some(64));
        prepare(&po).unwrap();
    }
    for f in ["train.bin", "val.bin", "meta.json", "tokenizer.json"] {
        assert_eq!(
            std::fs::read(o1.join(f)).unwrap(),
            std::fs::read(o2.join(f)).unwrap(),
            "{f} differs"
        );
    }
    // Re-running into the same folder rewrites the same bytes and leaves no temp files.
    let before = std::fs::read(o1.join("train.bin")).unwrap();
    let mut po = opts(&o1, &[&glob]);
    po.tokenizer = TokenizerChoice::parse("word", Some(64));
    prepare(&po).unwrap();
    assert_eq!(std::fs::read(o1.join("train.bin")).unwrap(), before);
    let mut names: Vec<String> = std::fs::read_dir(&o1)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["meta.json", "tokenizer.json", "train.bin", "val.bin"]
    );
    assert!(src.exists());
}

#[test]
fn large_vocabulary_is_stored_as_u32() {
    let d = tempfile::tempdir().unwrap();
    let docs = vec![text(1), "Ünïcödé and emoji 🦀 text.\n".repeat(5)];
    let a = write(d.path(), "a.txt", &docs[0]);
    let b = write(d.path(), "b.txt", &docs[1]);
    let out = d.path().join("o");
    let mut o = opts(&out, &[&a, &b]);
    o.tokenizer = TokenizerChoice::Load("tiktoken:o200k_base".into());
    let r = prepare(&o).unwrap();
    assert_eq!(r.meta.dtype, Dtype::U32);
    let tok = Tokenizer::load("tiktoken:o200k_base").unwrap();
    assert!(tok.vocab_size() > 65_536);
    let mut all = tokens(&out.join("train.bin"));
    all.extend(tokens(&out.join("val.bin")));
    assert_eq!(all, direct(&tok, &docs));
    assert!(
        all.iter().any(|&t| t > 65_535),
        "o200k ids above u16 must survive"
    );
    assert_eq!(
        std::fs::metadata(out.join("val.bin")).unwrap().len(),
        64 + 4 * r.meta.val_tokens
    );
}

#[test]
fn glob_and_folder_sources_keep_sorted_order() {
    let d = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("wiki_books_test_2.txt", "bbbb bbbb\n"),
        ("wiki_books_test_10.txt", "cccc cccc\n"),
        ("wiki_books_test_1.txt", "aaaa aaaa\n"),
        ("skip.md", "zzzz\n"),
    ] {
        write(d.path(), &format!("shards/{name}"), body);
    }
    let out = d.path().join("o");
    let mut o = opts(&out, &[&d.path().join("shards/wiki_books_test_*.txt")]);
    o.block_size = 2;
    let r = prepare(&o).unwrap();
    let names: Vec<_> = r
        .meta
        .sources
        .iter()
        .map(|s| s.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "wiki_books_test_1.txt",
            "wiki_books_test_10.txt",
            "wiki_books_test_2.txt"
        ]
    );
    let tok = DataDir::open(&out).unwrap().tokenizer().unwrap();
    let mut all = tokens(&out.join("train.bin"));
    all.extend(tokens(&out.join("val.bin")));
    let expected = direct(
        &tok,
        &[
            "aaaa aaaa\n".into(),
            "cccc cccc\n".into(),
            "bbbb bbbb\n".into(),
        ],
    );
    assert_eq!(all, expected);

    // A folder with an include filter gives the same order.
    let mut o = opts(&d.path().join("o2"), &[&d.path().join("shards")]);
    o.block_size = 2;
    o.filter.include = vec!["*.txt".into()];
    let r2 = prepare(&o).unwrap();
    assert_eq!(r2.meta.sources.len(), 3);
    assert_eq!(
        std::fs::read(out.join("train.bin")).unwrap(),
        std::fs::read(d.path().join("o2/train.bin")).unwrap()
    );
}

#[test]
fn val_from_its_own_sources() {
    let d = tempfile::tempdir().unwrap();
    let train = write(d.path(), "train.txt", &text(1));
    let val = write(d.path(), "eval.txt", &text(2));
    let out = d.path().join("o");
    let mut o = opts(&out, &[&train]);
    o.split = ValSplit::Sources(vec![val.to_string_lossy().into_owned()]);
    let r = prepare(&o).unwrap();
    let tok = DataDir::open(&out).unwrap().tokenizer().unwrap();
    assert_eq!(
        tokens(&out.join("train.bin")),
        tok.encode(&text(1)).unwrap()
    );
    assert_eq!(tokens(&out.join("val.bin")), tok.encode(&text(2)).unwrap());
    assert_eq!(r.meta.sources[1].stream, "val");
}

#[test]
fn wikitext_fixture_uses_its_own_splits() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wikitext-2");
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o");
    let mut o = opts(&out, &[]);
    o.wikitext = Some(WikiTextOptions {
        dir: fixture.clone(),
        download: false,
        url: None,
        sha256: None,
        clean: false,
    });
    let r = prepare(&o).unwrap();
    let dir = DataDir::open(&out).unwrap();
    let tok = dir.tokenizer().unwrap();
    for (split, file) in [
        ("train", "wiki.train.tokens"),
        ("val", "wiki.valid.tokens"),
        ("test", "wiki.test.tokens"),
    ] {
        let text = std::fs::read_to_string(fixture.join(file)).unwrap();
        assert_eq!(
            tokens(&out.join(format!("{split}.bin"))),
            tok.encode(&text).unwrap(),
            "{split}"
        );
    }
    assert!(dir.test.is_some());
    assert!(r.meta.test_tokens.unwrap() > 0);
    assert!(r.meta.split.starts_with("wikitext"));
    // Char vocabulary comes from the training split only.
    let train_text = std::fs::read_to_string(fixture.join("wiki.train.tokens")).unwrap();
    assert_eq!(
        tok.decode(&tokens(&out.join("train.bin"))).unwrap(),
        train_text
    );
}

#[test]
fn gutenberg_header_and_footer_are_stripped() {
    let d = tempfile::tempdir().unwrap();
    let body = text(7);
    let book = format!(
        "The Project Gutenberg eBook of Something\nLICENSE BLAH\n*** START OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\n{body}*** END OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\nMore licence text.\n"
    );
    let p = write(d.path(), "book.txt", &book);
    let decoded = |strip: bool, name: &str| {
        let out = d.path().join(name);
        let mut o = opts(&out, &[&p]);
        o.strip_gutenberg = strip;
        prepare(&o).unwrap();
        let tok = DataDir::open(&out).unwrap().tokenizer().unwrap();
        let mut all = tokens(&out.join("train.bin"));
        all.extend(tokens(&out.join("val.bin")));
        tok.decode(&all).unwrap()
    };
    let stripped = decoded(true, "s");
    assert!(
        !stripped.contains("LICENSE") && !stripped.contains("More licence"),
        "{stripped}"
    );
    assert!(stripped.contains("Line 3 of document 7"));
    assert!(decoded(false, "n").contains("LICENSE BLAH"));
}
