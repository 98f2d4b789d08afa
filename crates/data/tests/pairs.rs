//! Pair-data preparation end to end: files → folder → batches, and every bad-input path.

use std::path::{Path, PathBuf};

use lmforge_data::pairs::{
    prepare_pairs, PadTo, PairBatch, PairDataDir, PairInput, PairPrepareOptions, Specials,
};
use lmforge_data::TokenizerChoice;
use lmforge_tokenizer::TrainKind;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn opts(input: PairInput, out: &Path) -> PairPrepareOptions {
    PairPrepareOptions {
        input,
        tokenizer: TokenizerChoice::Train {
            kind: TrainKind::Char,
            vocab_size: None,
        },
        tgt_tokenizer: None,
        out: out.to_path_buf(),
        val_fraction: 0.25,
        src_block_size: 5,
        tgt_block_size: 4,
        lossy: false,
    }
}

const SRC: &str = "ab\ncabba\nabcabc\nb\n";
const TGT: &str = "x\nyy\nxyxyx\nyx\n";

#[test]
fn line_pairs_round_trip_with_specials_and_truncation_counts() {
    let d = tempfile::tempdir().unwrap();
    let (s, t) = (write(d.path(), "s.txt", SRC), write(d.path(), "t.txt", TGT));
    let out = d.path().join("data");
    let r = prepare_pairs(&opts(PairInput::Files { src: s, tgt: t }, &out)).unwrap();
    let m = &r.meta;
    assert_eq!((m.train_pairs, m.val_pairs), (3, 1));
    assert!(m.shared_tokenizer);
    // One char tokenizer over both sides; specials right after its ids.
    let v = m.src.tokenizer.vocab_size;
    assert_eq!(m.src.specials, Specials::after(v));
    assert_eq!(m.tgt.specials, m.src.specials);
    assert_eq!(m.src.vocab_size, v + 3);
    // "abcabc" (6) > 5 source tokens; "xyxyx" (5) > 4 - 1 target tokens.
    assert_eq!((m.src.truncated, m.tgt.truncated), (1, 1));
    assert!(
        r.summary().contains("1 pairs cut to 5 tokens"),
        "{}",
        r.summary()
    );

    let dir = PairDataDir::open(&out).unwrap();
    let tok = dir.src_tokenizer().unwrap();
    let text = |ids: &[u32]| tok.decode(ids).unwrap();
    let (a, b) = dir.train.pair(2);
    assert_eq!((text(&a), text(&b)), ("abcab".into(), "xyx".into()));
    let (a, b) = dir.val.pair(0);
    assert_eq!((text(&a), text(&b)), ("b".into(), "yx".into()));

    let shape = dir.shape(2, 5, 4, PadTo::Longest);
    let w = dir.val_batches(shape).unwrap();
    let mut batch = PairBatch::default();
    w.fill(0, &mut batch).unwrap();
    let sp = m.tgt.specials;
    assert_eq!(batch.tgt_in[0], sp.bos);
    assert_eq!(batch.tgt_out[2], sp.eos as i32);
    assert_eq!(text(&batch.tgt_in[1..3]), "yx");
}

#[test]
fn tsv_gives_the_same_pairs_as_two_files() {
    let d = tempfile::tempdir().unwrap();
    let (s, t) = (write(d.path(), "s.txt", SRC), write(d.path(), "t.txt", TGT));
    let tsv: String = SRC
        .lines()
        .zip(TGT.lines())
        .map(|(a, b)| format!("{a}\t{b}\r\n"))
        .collect();
    let tsv = write(d.path(), "p.tsv", &tsv);
    let (o1, o2) = (d.path().join("a"), d.path().join("b"));
    prepare_pairs(&opts(PairInput::Files { src: s, tgt: t }, &o1)).unwrap();
    prepare_pairs(&opts(PairInput::Tsv(tsv), &o2)).unwrap();
    let (a, b) = (
        PairDataDir::open(&o1).unwrap(),
        PairDataDir::open(&o2).unwrap(),
    );
    for i in 0..3 {
        assert_eq!(a.train.pair(i), b.train.pair(i));
    }
    assert_eq!(a.val.pair(0), b.val.pair(0));
}

#[test]
fn two_tokenizers_have_their_own_ids_and_files() {
    let d = tempfile::tempdir().unwrap();
    let (s, t) = (write(d.path(), "s.txt", SRC), write(d.path(), "t.txt", TGT));
    let out = d.path().join("data");
    let mut o = opts(PairInput::Files { src: s, tgt: t }, &out);
    o.tgt_tokenizer = Some(TokenizerChoice::Train {
        kind: TrainKind::Char,
        vocab_size: None,
    });
    let m = prepare_pairs(&o).unwrap().meta;
    assert!(!m.shared_tokenizer);
    assert_ne!(m.src.tokenizer.file, m.tgt.tokenizer.file);
    // Source chars a, b, c and target chars x, y (plus the char tokenizer's own specials).
    assert_eq!(m.src.tokenizer.vocab_size, m.tgt.tokenizer.vocab_size + 1);
    assert_eq!(m.tgt.specials, Specials::after(m.tgt.tokenizer.vocab_size));
    let dir = PairDataDir::open(&out).unwrap();
    let tt = dir.tgt_tokenizer().unwrap();
    assert_eq!(tt.decode(&dir.val.pair(0).1).unwrap(), "yx");
}

#[test]
fn stream_pairs_cut_consecutive_windows() {
    let d = tempfile::tempdir().unwrap();
    let src = write(d.path(), "c.txt", "abcdefghijklmnopqrstuvwxyz");
    let out = d.path().join("data");
    let input = PairInput::Stream {
        sources: vec![src.display().to_string()],
        src_len: 3,
        tgt_len: 2,
    };
    let m = prepare_pairs(&opts(input, &out)).unwrap().meta;
    // 26 letters (+ an end-of-text id) → 5 windows of 5.
    assert_eq!(m.train_pairs + m.val_pairs, 5);
    let dir = PairDataDir::open(&out).unwrap();
    let tok = dir.src_tokenizer().unwrap();
    let (a, b) = dir.train.pair(1);
    assert_eq!(tok.decode(&a).unwrap(), "fgh");
    assert_eq!(tok.decode(&b).unwrap(), "ij");
}

fn err(o: &PairPrepareOptions) -> String {
    prepare_pairs(o).unwrap_err().to_string()
}

#[test]
fn bad_input_is_one_clear_line_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("data");
    let s = write(d.path(), "s.txt", SRC);
    let short = write(d.path(), "short.txt", "x\ny\n");
    let e = err(&opts(
        PairInput::Files {
            src: s.clone(),
            tgt: short,
        },
        &out,
    ));
    assert!(e.contains("has 4 lines") && e.contains("has 2"), "{e}");

    let hole = write(d.path(), "hole.txt", "x\n\nz\nw\n");
    let e = err(&opts(PairInput::Files { src: s, tgt: hole }, &out));
    assert!(e.contains("hole.txt:2: empty target side"), "{e}");

    let tsv = write(d.path(), "p.tsv", "a\tb\nno tab here\n");
    let e = err(&opts(PairInput::Tsv(tsv), &out));
    assert!(e.contains("p.tsv:2: no tab"), "{e}");

    let tsv = write(d.path(), "q.tsv", "a\tb\n\tc\n");
    let e = err(&opts(PairInput::Tsv(tsv), &out));
    assert!(e.contains("q.tsv:2: empty source side"), "{e}");

    let one = write(d.path(), "one.tsv", "a\tb\n");
    let e = err(&opts(PairInput::Tsv(one), &out));
    assert!(
        e.contains("1 pairs cannot make a train and a val split"),
        "{e}"
    );

    let missing = d.path().join("nope.txt");
    let e = err(&opts(
        PairInput::Files {
            src: missing.clone(),
            tgt: missing,
        },
        &out,
    ));
    assert!(e.contains("nope.txt"), "{e}");
    assert!(!out.exists());
}
