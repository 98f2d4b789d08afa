//! Word counting for unigram training: the split HF's `Metaspace` pre-tokenizer (`▁`,
//! prepend always, split on) applies, counted over `&str` slices of the text and mapped to
//! `▁` form once per distinct word, for `UnigramTrainer::do_train` (sorted by word).
//! HF's unigram trainer itself is not deterministic: two runs on the same counts can give
//! different vocabularies (so can two runs of HF's own `train`), which is why unigram
//! tokenizers, unlike the other kinds, are not reproducible run to run.

use std::collections::HashMap;

/// The word-boundary character.
const META: char = '▁';

/// Adds the raw pieces of `text` to `counts`: a piece starts at every space or `▁` (the
/// delimiter merged with what follows); the first piece may start with neither.
pub fn count_metaspace<'a>(text: &'a str, counts: &mut HashMap<&'a str, u64>) {
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if (c == ' ' || c == META) && i > start {
            *counts.entry(&text[start..i]).or_default() += 1;
            start = i;
        }
    }
    if start < text.len() {
        *counts.entry(&text[start..]).or_default() += 1;
    }
}

/// Maps raw piece counts to HF's `▁` words (spaces replaced, `▁` prepended where a piece
/// does not start with one), sorted by word so the trainer sees a fixed order.
pub fn to_sentences(counts: HashMap<String, u64>) -> Vec<(String, u32)> {
    let mut words: HashMap<String, u64> = HashMap::new();
    for (piece, n) in counts {
        let mut word = piece.replace(' ', "▁");
        if !word.starts_with(META) {
            word.insert(0, META);
        }
        *words.entry(word).or_default() += n;
    }
    let mut sentences: Vec<(String, u32)> = words
        .into_iter()
        .map(|(w, n)| (w, u32::try_from(n).unwrap_or(u32::MAX)))
        .collect();
    sentences.sort_unstable();
    sentences
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    fn hf_words(text: &str) -> Vec<(String, u32)> {
        let mut pre = PreTokenizedString::from(text);
        Metaspace::new(META, PrependScheme::Always, true)
            .pre_tokenize(&mut pre)
            .unwrap();
        let mut counts: HashMap<String, u64> = HashMap::new();
        for (s, _, _) in pre.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            *counts.entry(s.to_string()).or_default() += 1;
        }
        let mut v: Vec<(String, u32)> = counts.into_iter().map(|(w, n)| (w, n as u32)).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn counts_like_hf_metaspace() {
        let cases = [
            "Hello world, hello  world\nand more\tof it ",
            " leading space and   runs of spaces   ",
            "literal ▁ marks▁inside and ▁▁ doubled",
            "▁starts with the mark",
            "ünïcødé 日本語 👍🏽\r\n\r\nline",
            "x",
        ];
        for text in cases {
            let mut raw = HashMap::new();
            count_metaspace(text, &mut raw);
            let owned = raw.into_iter().map(|(w, n)| (w.to_string(), n)).collect();
            assert_eq!(to_sentences(owned), hf_words(text), "{text:?}");
        }
    }
}
