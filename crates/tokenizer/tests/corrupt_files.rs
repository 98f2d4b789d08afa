//! Regression tests for corrupted tokenizer files found by (or written for) lmforge-fuzz:
//! each must be refused with an error naming the file, quickly and without a large
//! allocation.

use std::time::{Duration, Instant};

use lmforge_tokenizer::sentencepiece::proto::{ModelProto, Piece};
use lmforge_tokenizer::{Tokenizer, TrainKind};
use prost::Message;

const TEXT: &str = "the quick brown fox jumps over the lazy dog, again and again and again. ";

fn hf_bpe_json() -> serde_json::Value {
    let t = lmforge_tokenizer::train(TrainKind::Bpe, Some(280), &[TEXT.repeat(20)]).unwrap();
    serde_json::from_slice(&t.to_bytes().unwrap()).unwrap()
}

fn load_json(v: &serde_json::Value) -> (Result<Tokenizer, String>, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokenizer.json");
    std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
    let t0 = Instant::now();
    let r = Tokenizer::load_file(&p).map_err(|e| e.to_string());
    (r, t0.elapsed())
}

/// Found by the fuzzer: one vocab id of u32::MAX overflowed inside `tokenizers` (debug) or
/// made it walk 4 billion ids (release) when the tokenizer was re-serialised.
#[test]
fn hf_vocab_id_near_u32_max_is_refused() {
    for id in [u32::MAX as u64, 4_000_000_000, 1 << 30] {
        let mut v = hf_bpe_json();
        v["model"]["vocab"]["e"] = id.into();
        let (r, took) = load_json(&v);
        let e = r.expect_err("huge id accepted");
        assert!(
            e.contains("tokenizer.json") && e.contains("far beyond"),
            "{e}"
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
    // An added token's id in the file is not trusted: `tokenizers` re-assigns it.
    let mut v = hf_bpe_json();
    v["added_tokens"][3]["id"] = 3_000_000_000u64.into();
    let (r, _) = load_json(&v);
    assert!(r.unwrap().vocab_size() < 1000);
    // A file with small gaps still loads.
    let mut v = hf_bpe_json();
    v["model"]["vocab"]["e"] = 300.into();
    let (r, _) = load_json(&v);
    r.unwrap();
}

fn sp_with_piece(piece: String) -> Vec<u8> {
    let bytes = include_bytes!("fixtures/sp_bpe.model");
    let mut m = ModelProto::decode(&bytes[..]).unwrap();
    m.pieces.push(Piece {
        piece: Some(piece),
        score: Some(-1.0),
        r#type: Some(1),
    });
    m.encode_to_vec()
}

/// A single very long piece must not make loading quadratic in its length.
#[test]
fn sentencepiece_long_piece_loads_fast() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokenizer.model");
    std::fs::write(&p, sp_with_piece("ab".repeat(100_000))).unwrap();
    let t0 = Instant::now();
    let _ = Tokenizer::load_file(&p);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// Found by the fuzzer (in the first version of the merge fix): an empty piece.
#[test]
fn sentencepiece_empty_piece_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokenizer.model");
    std::fs::write(&p, sp_with_piece(String::new())).unwrap();
    let _ = Tokenizer::load_file(&p);
}
