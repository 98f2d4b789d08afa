//! A tiktoken encoding as a byte-level BPE vocabulary with merges, the form Hugging Face
//! `tokenizers` and llama.cpp need.
//!
//! tiktoken stores only ranks: token bytes → id. Its encoder merges, at every step, the
//! adjacent pair whose concatenation has the lowest rank. The equivalent merge list lists,
//! for every token, each split into two tokens (`left + right == token`, both in the
//! vocabulary), ordered by the token's rank (ties by the ranks of the parts, as
//! `transformers`' `TikTokenConverter` does); with `ignore_merges` (a whole piece that is a
//! token is taken as is, like tiktoken's first lookup) the BPE then gives tiktoken's ids.

use std::collections::HashMap;

use super::error::{ExportError, Result};

/// GPT-2's byte → printable character table (`bytes_to_unicode`): printable Latin-1 bytes
/// map to themselves, the other 68 to U+0100 onwards, in byte order.
pub fn byte_to_unicode() -> [char; 256] {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let b = b as u32;
        let code = if printable(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(code).unwrap_or('\u{fffd}');
    }
    table
}

/// Token bytes as GPT-2's byte-level string.
pub fn byte_level(bytes: &[u8], table: &[char; 256]) -> String {
    bytes.iter().map(|&b| table[b as usize]).collect()
}

/// A merge with its sort key: the token's rank, then the ranks of its two parts.
type RankedMerge<'a> = (u32, u32, u32, &'a [u8], &'a [u8]);

/// A tiktoken encoding, id by id.
pub struct TiktokenVocab {
    /// Token bytes by id; `None` for special tokens and unused ids (gaps in the ranks).
    pub tokens: Vec<Option<Vec<u8>>>,
    /// Special tokens (`<|endoftext|>`, ...) and their ids.
    pub specials: Vec<(u32, String)>,
}

impl TiktokenVocab {
    /// Reads the encoding `name` (as in `tiktoken:<name>`) with ids `0..n_vocab`.
    pub fn load(name: &str, n_vocab: usize) -> Result<Self> {
        let bpe = match name {
            "gpt2" | "r50k_base" => tiktoken_rs::r50k_base_singleton(),
            "p50k_base" => tiktoken_rs::p50k_base_singleton(),
            "cl100k_base" => tiktoken_rs::cl100k_base_singleton(),
            "o200k_base" => tiktoken_rs::o200k_base_singleton(),
            other => {
                return Err(ExportError::Tokenizer(format!(
                    "unknown tiktoken encoding '{other}'"
                )))
            }
        };
        let mut specials: Vec<(u32, String)> = bpe
            .special_tokens()
            .into_iter()
            .filter_map(|s| match bpe.encode_with_special_tokens(s).as_slice() {
                [id] if (*id as usize) < n_vocab => Some((*id, s.to_string())),
                _ => None,
            })
            .collect();
        specials.sort();
        let tokens = (0..n_vocab as u32)
            .map(|id| match specials.iter().any(|(s, _)| *s == id) {
                true => None,
                false => bpe.decode_bytes(&[id]).ok(),
            })
            .collect();
        Ok(TiktokenVocab { tokens, specials })
    }

    /// The merges equivalent to the ranks (see the module docs), as byte strings.
    pub fn merges(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let ranks: HashMap<&[u8], u32> = self
            .tokens
            .iter()
            .enumerate()
            .filter_map(|(id, t)| t.as_deref().map(|t| (t, id as u32)))
            .collect();
        // (rank of the token, rank of left, rank of right, left, right)
        let mut merges: Vec<RankedMerge> = Vec::new();
        for (&token, &rank) in &ranks {
            for split in 1..token.len() {
                let (l, r) = token.split_at(split);
                if let (Some(&rl), Some(&rr)) = (ranks.get(l), ranks.get(r)) {
                    merges.push((rank, rl, rr, l, r));
                }
            }
        }
        merges.sort_unstable();
        merges
            .into_iter()
            .map(|(_, _, _, l, r)| (l.to_vec(), r.to_vec()))
            .collect()
    }
}

/// The encoding's split regex as tiktoken's Python sources write it (Oniguruma, which
/// `tokenizers` uses, reads these the same way; the `\s++$` speed-up of newer tiktoken
/// versions is left out: it matches what `\s+(?!\S)` already matches at the end).
pub fn split_pattern(name: &str) -> Option<&'static str> {
    Some(match name {
        "gpt2" | "r50k_base" | "p50k_base" => {
            r"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
        }
        "cl100k_base" => {
            r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"
        }
        "o200k_base" => concat!(
            r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        ),
        _ => return None,
    })
}

/// llama.cpp's name for the pre-tokenizer that splits like `name` (`tokenizer.ggml.pre`).
pub fn llama_cpp_pre(name: &str) -> Option<&'static str> {
    Some(match name {
        "gpt2" | "r50k_base" | "p50k_base" => "gpt-2",
        "cl100k_base" => "llama-bpe",
        "o200k_base" => "gpt-4o",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let t = byte_to_unicode();
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[b' ' as usize], 'Ġ'); // U+0120
        assert_eq!(t[b'\n' as usize], 'Ċ'); // U+010A
        assert_eq!(t[0], 'Ā'); // U+0100
        let mut seen: Vec<char> = t.to_vec();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 256);
    }

    #[test]
    fn gpt2_vocab_has_its_special_and_every_byte() {
        let v = TiktokenVocab::load("gpt2", 50257).unwrap();
        assert_eq!(v.specials, vec![(50256, "<|endoftext|>".to_string())]);
        assert!(v.tokens[50256].is_none());
        assert_eq!(v.tokens[0].as_deref(), Some(&b"!"[..]));
        let merges = v.merges();
        // GPT-2's first merge is "Ġ t".
        assert_eq!(merges[0], (b" ".to_vec(), b"t".to_vec()));
    }
}
