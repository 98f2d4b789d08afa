//! lmforge's tokenizers as Hugging Face `tokenizer.json` + `tokenizer_config.json`, built
//! through the `tokenizers` crate so the file is exactly what `transformers` loads.
//!
//! | kind | Hugging Face form |
//! |---|---|
//! | `bpe`, `unigram` (and any HF file) | the `tokenizer.json` itself |
//! | `char` | WordLevel, a Split pre-tokenizer isolating each character, Fuse decoder |
//! | `word` | WordLevel, a Split pre-tokenizer with [`word`]'s classes, Fuse decoder |
//! | `tiktoken:*` | byte-level BPE, merges derived from the ranks, `ignore_merges` |
//! | `sentencepiece` | refused: its whitespace normalisation has no exact `tokenizer.json` form |
//!
//! One difference is kept on purpose: lmforge encodes special-token text (`<eos>`) found in
//! plain text as ordinary text, while `transformers` matches its special tokens in text.
//!
//! [`word`]: lmforge_tokenizer::word

use std::collections::HashMap;

use lmforge_tokenizer::special::TRAINED_SPECIALS;
use lmforge_tokenizer::tiktoken::TiktokenTokenizer;
use lmforge_tokenizer::Tokenizer;
use serde_json::{json, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::error::{ExportError, Result};
use super::tiktoken_vocab::{byte_level, byte_to_unicode, split_pattern, TiktokenVocab};

fn hf_err(e: impl std::fmt::Display) -> ExportError {
    ExportError::Tokenizer(e.to_string())
}

/// The Hugging Face equivalent of `tok`, or why there is none.
pub fn to_hf_tokenizer(tok: &Tokenizer) -> Result<tokenizers::Tokenizer> {
    match tok {
        Tokenizer::Hf(t) => Ok(t.inner.clone()),
        Tokenizer::Char(t) => {
            let chars = (0..t.vocab_size() as u32).filter_map(|i| t.token(i)).collect();
            word_level(chars, r"[\s\S]")
        }
        Tokenizer::Word(t) => {
            let words: Vec<String> = (0..t.vocab_size() as u32)
                .filter_map(|i| t.token(i).map(str::to_string))
                .collect();
            let pattern = word_split_pattern(&words[TRAINED_SPECIALS.len()..]);
            word_level(words, &pattern)
        }
        Tokenizer::Tiktoken(t) => tiktoken_bpe(t),
        Tokenizer::SentencePiece(_) => Err(ExportError::Tokenizer(format!(
            "{} tokenizers cannot be exported exactly: tokenizer.json has no equivalent of SentencePiece's whitespace normalisation (leading, trailing and repeated spaces removed before segmentation), so ids would differ; train the model with the bpe or unigram kind to export it",
            tok.kind()
        ))),
    }
}

/// A WordLevel model over `tokens` (ids in order; the first four are the trained
/// specials), pieces cut by `pattern` (each match one piece), decoded by concatenation.
fn word_level(tokens: Vec<String>, pattern: &str) -> Result<tokenizers::Tokenizer> {
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab)
        .unk_token(TRAINED_SPECIALS[1].to_string())
        .build()
        .map_err(hf_err)?;
    let mut out = tokenizers::Tokenizer::new(model);
    let split = Split::new(
        SplitPattern::Regex(pattern.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(hf_err)?;
    out.with_pre_tokenizer(Some(split));
    out.with_decoder(Some(Fuse::new()));
    add_specials(&mut out, TRAINED_SPECIALS.iter().map(|s| s.to_string()));
    Ok(out)
}

fn add_specials(tok: &mut tokenizers::Tokenizer, names: impl Iterator<Item = String>) {
    let added: Vec<AddedToken> = names.map(|n| AddedToken::from(n, true)).collect();
    tok.add_special_tokens(&added);
}

/// The Split regex that cuts text as [`lmforge_tokenizer::word::split_words`] does and
/// then as the word tokenizer encodes: a run of letters/digits/`_`, one punctuation
/// character, a whole whitespace run when that run is in the vocabulary, else single
/// whitespace characters. `words` is the vocabulary after the specials.
pub fn word_split_pattern(words: &[String]) -> String {
    const WORD: &str = r"[\p{Alphabetic}\p{N}_]";
    const SPACE: &str = r"[\p{White_Space}]";
    let mut runs: Vec<&String> = words
        .iter()
        .filter(|w| w.chars().count() > 1 && w.chars().all(char::is_whitespace))
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.chars().count()));
    let escaped: Vec<String> = runs
        .iter()
        .map(|r| {
            r.chars()
                .map(|c| format!(r"\x{{{:x}}}", c as u32))
                .collect()
        })
        .collect();
    let mut p = format!(r"{WORD}+|[^\p{{Alphabetic}}\p{{N}}_\p{{White_Space}}]|");
    if !escaped.is_empty() {
        p += &format!("(?<!{SPACE})(?:{})(?!{SPACE})|", escaped.join("|"));
    }
    p + SPACE
}

/// A tiktoken encoding as byte-level BPE (module [`super::tiktoken_vocab`]).
fn tiktoken_bpe(t: &TiktokenTokenizer) -> Result<tokenizers::Tokenizer> {
    let name = t.name();
    let vocab = TiktokenVocab::load(name, t.vocab_size())?;
    let table = byte_to_unicode();
    // Specials sit in the model's vocabulary too, so registering them as added tokens
    // keeps their ids. cl100k and o200k leave unused ids before them: those get
    // placeholders (a vocabulary with holes is refused by some readers), which no piece
    // of split text can equal.
    let specials: HashMap<u32, &str> = vocab
        .specials
        .iter()
        .map(|(id, s)| (*id, s.as_str()))
        .collect();
    let ids: Vocab = vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(id, b)| {
            let text = match (b, specials.get(&(id as u32))) {
                (Some(b), _) => byte_level(b, &table),
                (None, Some(s)) => s.to_string(),
                (None, None) => unused_token(id as u32),
            };
            (text, id as u32)
        })
        .collect();
    let merges = vocab
        .merges()
        .iter()
        .map(|(l, r)| (byte_level(l, &table), byte_level(r, &table)))
        .collect();
    let model = BPE::builder()
        .vocab_and_merges(ids, merges)
        .ignore_merges(true)
        .build()
        .map_err(hf_err)?;
    let mut out = tokenizers::Tokenizer::new(model);
    let pattern = split_pattern(name)
        .ok_or_else(|| ExportError::Tokenizer(format!("no split pattern for tiktoken:{name}")))?;
    let split = Split::new(
        SplitPattern::Regex(pattern.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(hf_err)?;
    out.with_pre_tokenizer(Some(Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
    ])));
    out.with_decoder(Some(ByteLevelDecoder::default()));
    add_specials(&mut out, vocab.specials.into_iter().map(|(_, s)| s));
    Ok(out)
}

/// The placeholder for an id a tiktoken encoding does not use (llama.cpp's convention).
pub fn unused_token(id: u32) -> String {
    format!("[PAD{id}]")
}

/// `tokenizer_config.json`: a `PreTrainedTokenizerFast` over `tokenizer.json`, with the
/// special tokens named and `model_max_length` the model's context.
pub fn tokenizer_config(hf: &tokenizers::Tokenizer, tok: &Tokenizer, block_size: usize) -> Value {
    let s = tok.special_tokens();
    let name = |id: Option<u32>| id.and_then(|i| hf.id_to_token(i));
    json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": block_size,
        "clean_up_tokenization_spaces": false,
        "bos_token": name(s.bos),
        "eos_token": name(s.eos),
        "unk_token": name(s.unk),
        "pad_token": name(s.pad),
        "lmforge_kind": tok.kind(),
    })
}
