//! Bad input: each a one-line error naming what is wrong, and no half-written `.bin`.

mod common;

use common::{opts, text, write};
use lmforge_data::{prepare, DataDir, DataError, TokenFile, ValSplit};

fn one_line(e: &DataError) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "multi-line error: {s}");
    s
}

/// No final or temp token file exists in `dir`.
fn no_bins(dir: &std::path::Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".bin"), "left behind: {name}");
        }
    }
}

#[test]
fn empty_sources_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "empty.txt", "");
    let out = d.path().join("o");
    let e = prepare(&opts(&out, &[&a])).unwrap_err();
    assert!(
        one_line(&e).contains("corpus is empty") && e.to_string().contains("empty.txt"),
        "{e}"
    );
    no_bins(&out);

    // Also with a loaded tokenizer (nothing to train on is not what catches it).
    let mut o = opts(&out, &[&a]);
    o.tokenizer = lmforge_data::TokenizerChoice::Load("tiktoken:gpt2".into());
    let e = prepare(&o).unwrap_err();
    assert!(one_line(&e).contains("corpus is empty"), "{e}");
    no_bins(&out);
}

#[test]
fn glob_matching_nothing_and_missing_file_are_named() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o");
    let e = prepare(&opts(&out, &[&d.path().join("shards/wiki_*.txt")])).unwrap_err();
    assert!(
        one_line(&e).contains("matches no files") && e.to_string().contains("wiki_*.txt"),
        "{e}"
    );
    let e = prepare(&opts(&out, &[&d.path().join("missing.txt")])).unwrap_err();
    assert!(one_line(&e).contains("missing.txt: no such file"), "{e}");
}

#[test]
fn unreadable_source_is_named() {
    // A folder where a file is expected after resolution: reading it fails with an I/O
    // error that names the path (chmod 000 does not stop root, so use a dangling glob hit).
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.txt", &text(1));
    let out = d.path().join("o");
    let mut o = opts(&out, &[&a]);
    o.split = ValSplit::Sources(vec![d
        .path()
        .join("gone.txt")
        .to_string_lossy()
        .into_owned()]);
    let e = prepare(&o).unwrap_err();
    assert!(one_line(&e).contains("gone.txt"), "{e}");
    no_bins(&out);
}

#[test]
fn non_utf8_names_file_and_offset_and_lossy_replaces() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("latin1.txt");
    let mut bytes = text(1).into_bytes();
    bytes[37] = 0xE9;
    std::fs::write(&p, &bytes).unwrap();
    let out = d.path().join("o");
    let e = prepare(&opts(&out, &[&p])).unwrap_err();
    let s = one_line(&e);
    assert!(
        s.contains("latin1.txt") && s.contains("byte offset 37") && s.contains("--lossy"),
        "{s}"
    );
    no_bins(&out);
    let mut o = opts(&out, &[&p]);
    o.lossy = true;
    let r = prepare(&o).unwrap();
    assert!(r.meta.train_tokens > 0);
}

#[test]
fn val_split_too_small_says_how_many_and_what_is_needed() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.txt", &"x".repeat(1000));
    let out = d.path().join("o");
    let mut o = opts(&out, &[&a]);
    o.block_size = 256;
    o.split = ValSplit::Fraction(0.1);
    let e = prepare(&o).unwrap_err();
    let s = one_line(&e);
    assert!(
        s.contains("val split has 100 tokens") && s.contains("at least 257"),
        "{s}"
    );
    no_bins(&out);
    assert!(!out.join("meta.json").exists());

    o.split = ValSplit::Fraction(1.5);
    assert!(prepare(&o)
        .unwrap_err()
        .to_string()
        .contains("--val-fraction"));
}

#[test]
fn truncated_and_foreign_bins_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.txt", &text(1));
    let out = d.path().join("o");
    prepare(&opts(&out, &[&a])).unwrap();
    let train = out.join("train.bin");
    let bytes = std::fs::read(&train).unwrap();

    std::fs::write(&train, &bytes[..bytes.len() - 3]).unwrap();
    let e = DataDir::open(&out).unwrap_err();
    assert!(matches!(e, DataError::BadLength { .. }), "{e}");
    assert!(one_line(&e).contains("truncated"), "{e}");

    std::fs::write(&train, b"\x93NUMPY not ours at all, a foreign file with enough bytes to pass the header length check").unwrap();
    let e = TokenFile::open(&train).unwrap_err();
    assert!(
        matches!(e, DataError::BadMagic { .. })
            && one_line(&e).contains("not an lmforge token file"),
        "{e}"
    );

    std::fs::write(&train, b"abc").unwrap();
    assert!(matches!(
        TokenFile::open(&train).unwrap_err(),
        DataError::BadMagic { .. }
    ));

    std::fs::write(&train, &bytes[..40]).unwrap();
    assert!(matches!(
        TokenFile::open(&train).unwrap_err(),
        DataError::BadMagic { .. }
    ));
}

#[test]
fn data_made_with_another_tokenizer_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.txt", &text(1));
    let out = d.path().join("o");
    let r = prepare(&opts(&out, &[&a])).unwrap();
    let fp = r.meta.tokenizer.fingerprint.clone();
    assert!(DataDir::open_expecting(&out, &fp).is_ok());
    let e = DataDir::open_expecting(&out, "0123456789abcdef").unwrap_err();
    let s = one_line(&e);
    assert!(
        s.contains(&fp) && s.contains("0123456789abcdef") && s.contains("prepare"),
        "{s}"
    );

    // A val.bin from another preparation in the same folder is caught too.
    let b = write(
        d.path(),
        "b.txt",
        "completely different characters: QZJX 12345 ~~~ !!!\n",
    );
    let other = d.path().join("other");
    let mut o = opts(&other, &[&b]);
    o.block_size = 2;
    prepare(&o).unwrap();
    std::fs::copy(other.join("val.bin"), out.join("val.bin")).unwrap();
    let e = DataDir::open(&out).unwrap_err();
    assert!(matches!(e, DataError::MixedFingerprints { .. }), "{e}");
}

#[test]
fn a_folder_that_is_not_prepared_is_explained() {
    let d = tempfile::tempdir().unwrap();
    let e = DataDir::open(d.path()).unwrap_err();
    assert!(one_line(&e).contains("lmforge prepare"), "{e}");
}
