//! Word counting for byte-level BPE training, without going through HF's pre-tokenizer
//! objects: the same GPT-2 split HF's `ByteLevel` pre-tokenizer applies, run with the
//! `regex` crate over `&str` slices and counted in place, then mapped to HF's byte-level
//! alphabet once per distinct word. The counts are exactly what `BpeTrainer::feed` would
//! collect (checked against HF in the tests), so `BpeTrainer::do_train` learns the same
//! merges; counting this way is several times faster than HF's per-occurrence path.

use std::collections::HashMap;
use std::sync::LazyLock;

use ahash::AHashMap;
use compact_str::CompactString;
use regex::Regex;

/// HF `ByteLevel`'s pattern without its lookahead: `\s+(?!\S)` is applied by hand in
/// [`split_gpt2`] (a whitespace run followed by text gives its last character back).
static GPT2_SPLIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+")
        .unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
});

/// Splits `text` into GPT-2 pre-tokens (concatenation = input), as HF's `ByteLevel`
/// pre-tokenizer with `use_regex` does.
pub fn split_gpt2<'a>(text: &'a str, mut each: impl FnMut(&'a str)) {
    let mut pos = 0;
    while pos < text.len() {
        let Some(m) = GPT2_SPLIT.find_at(text, pos) else {
            // Every character matches one alternative; keep the rest whole regardless.
            each(&text[pos..]);
            return;
        };
        let mut end = m.end();
        let piece = &text[pos..end];
        if end < text.len() && piece.chars().all(char::is_whitespace) {
            // `\s+(?!\S)`: a run followed by text stops one character short.
            if let Some(last) = piece.chars().next_back() {
                if piece.len() > last.len_utf8() {
                    end -= last.len_utf8();
                }
            }
        }
        each(&text[pos..end]);
        pos = end;
    }
}

/// Adds the GPT-2 pre-tokens of `text` to `counts`.
pub fn count_gpt2<'a>(text: &'a str, counts: &mut HashMap<&'a str, u64>) {
    split_gpt2(text, |w| *counts.entry(w).or_default() += 1);
}

/// GPT-2's byte → printable character table (HF `ByteLevel`'s alphabet): printable
/// Latin-1 bytes map to themselves, the rest to U+0100 onwards in byte order.
fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or('\0')
        };
    }
    table
}

/// Maps raw word counts to HF's byte-level form, the input of `BpeTrainer::do_train`.
pub fn to_byte_level(counts: HashMap<String, u64>) -> AHashMap<CompactString, u64> {
    let table = byte_chars();
    counts
        .into_iter()
        .map(|(word, n)| {
            let mapped: String = word.bytes().map(|b| table[b as usize]).collect();
            (CompactString::from(mapped), n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    /// HF's own pre-tokenization of `text`, byte-level mapped.
    fn hf_words(text: &str) -> Vec<String> {
        let mut pre = PreTokenizedString::from(text);
        ByteLevel::new(false, true, true)
            .pre_tokenize(&mut pre)
            .unwrap();
        pre.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(s, _, _)| s.to_string())
            .collect()
    }

    fn ours(text: &str) -> Vec<String> {
        let table = byte_chars();
        let mut out = Vec::new();
        split_gpt2(text, |w| {
            out.push(w.bytes().map(|b| table[b as usize]).collect())
        });
        out
    }

    #[test]
    fn splits_like_hf_byte_level() {
        let cases = [
            "Hello, world! It's 42.5 o'clock   now\n\n  indented\tand\r\ntabs  ",
            "we'll they're I'd you've I'm she's can't 'quoted' ''",
            "  leading spaces and trailing   ",
            "\u{a0}nbsp\u{a0} \u{3000}ideographic\u{2028}sep\u{85}nel \u{2003}em",
            "ünïcødé — “quotes” €uro 𝄞 clef 日本語のテキスト 123４５６ Ⅻ ²³",
            "emoji 👍🏽 and ZWJ 👨‍👩‍👧 and combining e\u{301}",
            "a\u{0}b\u{7f}c\u{1b}[0m bytes",
            "\n\n\n",
            " ",
            "x",
            "",
        ];
        for text in cases {
            assert_eq!(ours(text), hf_words(text), "{text:?}");
        }
    }

    #[test]
    fn byte_table_is_hfs_alphabet() {
        let ours: std::collections::HashSet<char> = byte_chars().into_iter().collect();
        let hf: std::collections::HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        assert_eq!(ours, hf);
        assert_eq!(byte_chars()[b' ' as usize], 'Ġ');
        assert_eq!(byte_chars()[b'\n' as usize], 'Ċ');
    }
}
