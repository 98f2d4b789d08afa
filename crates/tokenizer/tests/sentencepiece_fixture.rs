//! A `.model` written by the Python sentencepiece library (tools/make_tokenizer_fixtures.py)
//! must give the same ids, and decode to the same text, as the library itself.

use lmforge_tokenizer::Tokenizer;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn check_model(file: &str) {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/sp_expected.json")).unwrap())
            .unwrap();
    let model = &expected["models"][file];
    let tok = Tokenizer::load(&format!("{DIR}/{file}")).unwrap();
    assert_eq!(
        tok.vocab_size() as u64,
        model["vocab_size"].as_u64().unwrap()
    );
    let sp = tok.special_tokens();
    assert_eq!(sp.pad, Some(0));
    assert_eq!(sp.unk, Some(1));
    assert_eq!(sp.bos, Some(2));
    assert_eq!(sp.eos, Some(3));
    let cases = model["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text).unwrap(), want, "{file}: ids for {text:?}");
        assert_eq!(
            tok.decode(&want).unwrap(),
            case["decoded"].as_str().unwrap(),
            "{file}: decode of {text:?}"
        );
    }
}

#[test]
fn unigram_model_matches_sentencepiece() {
    check_model("sp_unigram.model");
}

#[test]
fn bpe_model_with_byte_fallback_matches_sentencepiece() {
    check_model("sp_bpe.model");
}
