//! Behaviour shared by all kinds: training, save/load, fingerprints, parallel encoding,
//! round trips over arbitrary Unicode, and clear errors on bad input.

use lmforge_corpus::{bundled_corpus_dir, read::read_documents, resolve_sources, SourceFilter};
use lmforge_tokenizer::{train, Tokenizer, TrainKind};
use proptest::prelude::*;
use std::sync::OnceLock;

/// A slice of the bundled corpus, small enough to train on quickly.
fn sample_corpus() -> &'static Vec<String> {
    static CORPUS: OnceLock<Vec<String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = bundled_corpus_dir().unwrap().to_string_lossy().into_owned();
        let paths = resolve_sources(&[dir], &SourceFilter::default()).unwrap();
        read_documents(&paths[..3], false)
            .unwrap()
            .into_iter()
            .map(|d| d.text)
            .collect()
    })
}

/// The whole bundled corpus, one string per work.
fn full_corpus() -> &'static Vec<String> {
    static CORPUS: OnceLock<Vec<String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = bundled_corpus_dir().unwrap().to_string_lossy().into_owned();
        let paths = resolve_sources(&[dir], &SourceFilter::default()).unwrap();
        read_documents(&paths, false)
            .unwrap()
            .into_iter()
            .map(|d| d.text)
            .collect()
    })
}

fn bpe() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| train(TrainKind::Bpe, Some(600), sample_corpus()).unwrap())
}

#[test]
fn bpe_training_is_deterministic() {
    let a = train(TrainKind::Bpe, Some(600), sample_corpus()).unwrap();
    let b = train(TrainKind::Bpe, Some(600), sample_corpus()).unwrap();
    assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.vocab_size(), 600);
    let sp = a.special_tokens();
    assert_eq!(
        (sp.pad, sp.unk, sp.bos, sp.eos),
        (Some(0), Some(1), Some(2), Some(3))
    );
}

#[test]
fn every_kind_saves_and_loads_with_the_same_ids_and_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let text = "To be, or not to be: that is the question.\n  Whether 'tis nobler…";
    let kinds: Vec<Tokenizer> = vec![
        train(TrainKind::Char, None, sample_corpus()).unwrap(),
        train(TrainKind::Word, Some(2000), sample_corpus()).unwrap(),
        train(TrainKind::Bpe, Some(600), sample_corpus()).unwrap(),
        train(TrainKind::Unigram, Some(400), sample_corpus()).unwrap(),
        Tokenizer::load("tiktoken:cl100k_base").unwrap(),
        Tokenizer::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sp_unigram.model"
        ))
        .unwrap(),
    ];
    let mut fingerprints = std::collections::HashSet::new();
    for tok in &kinds {
        let path = dir.path().join(format!(
            "{}.{}",
            tok.kind().replace(':', "_"),
            tok.file_name()
        ));
        tok.save(&path).unwrap();
        let back = Tokenizer::load(path.to_str().unwrap()).unwrap();
        assert_eq!(back.kind(), tok.kind());
        assert_eq!(back.fingerprint(), tok.fingerprint(), "{}", tok.kind());
        assert_eq!(
            back.encode(text).unwrap(),
            tok.encode(text).unwrap(),
            "{}",
            tok.kind()
        );
        assert_eq!(back.vocab_size(), tok.vocab_size());
        assert!(
            fingerprints.insert(tok.fingerprint()),
            "fingerprints must differ between tokenizers"
        );
    }
}

#[test]
fn char_kind_is_nanogpt_style_with_unk() {
    let tok = train(TrainKind::Char, None, &["hello world"]).unwrap();
    // 4 specials + " dehlorw"
    assert_eq!(tok.vocab_size(), 4 + 8);
    let ids = tok.encode("hold!").unwrap();
    assert_eq!(ids[4], 1, "unknown '!' maps to <unk>");
    assert_eq!(
        tok.encode(" ").unwrap(),
        [4],
        "sorted: space first after the specials"
    );
    assert_eq!(tok.decode(&tok.encode("hello").unwrap()).unwrap(), "hello");
}

#[test]
fn parallel_encoding_equals_sequential_on_the_corpus() {
    let text = full_corpus().concat();
    assert!(text.len() > 4_000_000, "needs many chunks");
    for tok in [
        train(TrainKind::Char, None, sample_corpus()).unwrap(),
        train(TrainKind::Word, Some(3000), sample_corpus()).unwrap(),
        bpe_clone(),
        Tokenizer::load("tiktoken:o200k_base").unwrap(),
        Tokenizer::load("tiktoken:gpt2").unwrap(),
    ] {
        let (par, seq) = (
            tok.encode_parallel(&text).unwrap(),
            tok.encode(&text).unwrap(),
        );
        if let Some(i) = par
            .iter()
            .zip(&seq)
            .position(|(a, b)| a != b)
            .or((par.len() != seq.len()).then_some(par.len().min(seq.len())))
        {
            let lo = i.saturating_sub(5);
            panic!(
                "{}: parallel encoding differs at token {i}: {:?} vs {:?}",
                tok.kind(),
                tok.decode(&par[lo..(i + 5).min(par.len())]).unwrap(),
                tok.decode(&seq[lo..(i + 5).min(seq.len())]).unwrap()
            );
        }
    }
}

fn bpe_clone() -> Tokenizer {
    Tokenizer::load_file(&{
        let dir = std::env::temp_dir().join(format!("lmf-bpe-{}.json", std::process::id()));
        bpe().save(&dir).unwrap();
        dir
    })
    .unwrap()
}

#[test]
fn bad_input_gives_clear_errors() {
    let e = train(TrainKind::Bpe, Some(100), sample_corpus())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "--vocab-size 100 is too small for the bpe tokenizer: it needs at least 260"
    );
    let e = train(TrainKind::Word, Some(100), &[""])
        .unwrap_err()
        .to_string();
    assert!(e.contains("corpus is empty"), "{e}");
    let e = Tokenizer::load("tiktoken:nope").unwrap_err().to_string();
    assert!(
        e.contains("unknown tokenizer 'tiktoken:nope'") && e.contains("tiktoken:o200k_base"),
        "{e}"
    );
    let e = Tokenizer::load("no-such-tokenizer.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no file or folder 'no-such-tokenizer.json'"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("tok.json");
    std::fs::write(
        &corrupt,
        "{\"lmforge_tokenizer\": 1, \"kind\": \"char\", \"chars\": [",
    )
    .unwrap();
    let e = Tokenizer::load(corrupt.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("tok.json") && e.contains("corrupted"), "{e}");
    let garbage = dir.path().join("tok.model");
    std::fs::write(&garbage, [0xffu8, 0x13, 0x00, 0x42]).unwrap();
    let e = Tokenizer::load(garbage.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tok.model") && e.contains("not a SentencePiece model"),
        "{e}"
    );

    let tok = Tokenizer::load("tiktoken:gpt2").unwrap();
    let e = tok.decode(&[50_300]).unwrap_err().to_string();
    assert_eq!(
        e,
        "token id 50300 is out of range for this tokenizer (vocabulary size 50257)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn bpe_round_trips_any_unicode(text in "\\PC{0,40}|[\\u{0600}-\\u{06FF} \\u{1F300}-\\u{1F6FF}\\u{200D}]{0,40}") {
        let ids = bpe().encode(&text).unwrap();
        prop_assert_eq!(bpe().decode(&ids).unwrap(), text);
    }

    #[test]
    fn tiktoken_round_trips_any_unicode(text in "(\\PC|\\s){0,40}|[\\u{0600}-\\u{06FF} \\u{1F300}-\\u{1F6FF}\\u{200D}\\n]{0,40}") {
        for name in ["gpt2", "p50k_base", "cl100k_base", "o200k_base"] {
            let tok = Tokenizer::load(&format!("tiktoken:{name}")).unwrap();
            let ids = tok.encode(&text).unwrap();
            prop_assert_eq!(tok.decode(&ids).unwrap(), text.clone());
        }
    }

    #[test]
    fn char_round_trips_text_from_its_vocabulary(text in "[a-zA-Z ,.;:!?'\\n]{0,80}") {
        let tok = train(TrainKind::Char, None, full_corpus()).unwrap();
        let ids = tok.encode(&text).unwrap();
        prop_assert!(!ids.contains(&1));
        prop_assert_eq!(tok.decode(&ids).unwrap(), text);
    }

    #[test]
    fn word_round_trips_in_vocabulary_text(words in proptest::collection::vec(("(the|king|lord)", "(,| |\\n|  |\\.\\n)"), 0..30)) {
        let tok = train(TrainKind::Word, Some(5000), sample_corpus()).unwrap();
        let text: String = words.iter().map(|(w, sep)| format!("{w}{sep}")).collect();
        let ids = tok.encode(&text).unwrap();
        prop_assert_eq!(tok.decode(&ids).unwrap(), text);
    }
}
