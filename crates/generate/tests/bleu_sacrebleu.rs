//! lmforge's BLEU against sacreBLEU's own figures (fixture written by
//! `tools/make_bleu_fixture.py` with sacreBLEU 2.6.0, default `BLEU()`).

use lmforge_generate::bleu::{corpus_bleu, tokenize_13a};
use serde_json::Value;

fn fixture() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bleu.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tokenize_13a_matches_sacrebleu() {
    let f = fixture();
    for case in f["tokenize_13a"].as_array().unwrap() {
        let line = case["line"].as_str().unwrap();
        assert_eq!(
            tokenize_13a(line),
            case["tokens"].as_str().unwrap(),
            "{line:?}"
        );
    }
}

#[test]
fn corpus_bleu_matches_sacrebleu() {
    let f = fixture();
    let cases = f["corpus"].as_array().unwrap();
    assert!(cases.len() >= 16);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let b = corpus_bleu(&strings(&case["hyps"]), &strings(&case["refs"]));
        let ints = |k: &str| -> Vec<u64> {
            case[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect()
        };
        assert_eq!(b.correct.to_vec(), ints("correct"), "{name}");
        assert_eq!(b.total.to_vec(), ints("total"), "{name}");
        assert_eq!(b.sys_len, case["sys_len"].as_u64().unwrap(), "{name}");
        assert_eq!(b.ref_len, case["ref_len"].as_u64().unwrap(), "{name}");
        let want = case["score"].as_f64().unwrap();
        assert!(
            (b.score - want).abs() < 1e-9,
            "{name}: {} vs sacreBLEU {want}",
            b.score
        );
        assert!(
            (b.bp - case["bp"].as_f64().unwrap()).abs() < 1e-12,
            "{name}"
        );
        assert_eq!(b.to_string(), case["line"].as_str().unwrap(), "{name}");
    }
}
