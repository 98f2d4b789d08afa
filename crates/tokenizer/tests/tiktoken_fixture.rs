//! Token ids from OpenAI's Python tiktoken (tools/make_tokenizer_fixtures.py) must match
//! ours exactly, for every encoding, including Arabic, emoji and CJK text.

use lmforge_tokenizer::Tokenizer;
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tiktoken_ids.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn ids_match_python_tiktoken_for_every_encoding() {
    let fx = fixture();
    let encodings = fx["encodings"].as_object().unwrap();
    assert_eq!(encodings.len(), 5);
    let mut checked = 0;
    for (name, cases) in encodings {
        let tok = Tokenizer::load(&format!("tiktoken:{name}")).unwrap();
        assert_eq!(
            tok.eos_id(),
            fx["eot_id"][name].as_u64().map(|v| v as u32),
            "{name} eot"
        );
        for case in cases.as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let want: Vec<u32> = case["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(tok.encode(text).unwrap(), want, "{name}: {text:?}");
            assert_eq!(tok.decode(&want).unwrap(), text, "{name} decode: {text:?}");
            checked += 1;
        }
    }
    assert!(checked >= 40);
}

#[test]
fn arabic_text_round_trips_with_o200k() {
    let tok = Tokenizer::load("tiktoken:o200k_base").unwrap();
    let text = "مرحبا بالعالم، هذه تجربة للترميز. 🇸🇦 👨‍👩‍👧";
    let ids = tok.encode(text).unwrap();
    assert!(
        ids.len() < text.chars().count(),
        "o200k should merge Arabic characters"
    );
    assert_eq!(tok.decode(&ids).unwrap(), text);
}
