//! Word-level tokenizer: text splits into words (runs of letters/digits/underscore),
//! single punctuation characters and whitespace runs; the `vocab_size - 4` most frequent
//! pieces form the vocabulary, everything else is `<unk>`. Whitespace is kept as tokens,
//! so decoding in-vocabulary text gives the original back exactly.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::special::{TRAINED_SPECIALS, UNK_ID};

/// Word vocabulary: ids 0..=3 are the specials, then `words` in id order.
#[derive(Debug, Clone)]
pub struct WordTokenizer {
    words: Vec<String>,
    index: HashMap<String, u32>,
}

/// On-disk form (inside the lmforge tokenizer JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WordVocab {
    /// The vocabulary's words in id order; ids start after the four specials.
    pub words: Vec<String>,
}

#[derive(PartialEq, Clone, Copy)]
enum Class {
    Word,
    Space,
    Punct,
}

fn class(c: char) -> Class {
    if c.is_alphanumeric() || c == '_' {
        Class::Word
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Punct
    }
}

/// Splits text into word, whitespace-run and punctuation pieces (concatenation = input).
pub fn split_words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let mut chars = rest.char_indices();
        let (_, first) = chars.next()?;
        let k = class(first);
        let end = if k == Class::Punct {
            first.len_utf8()
        } else {
            chars
                .find(|&(_, c)| class(c) != k)
                .map(|(i, _)| i)
                .unwrap_or(rest.len())
        };
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// Adds the pieces of `text` to `counts`, and every single whitespace character in it
/// (with no count of its own) so that training keeps them.
pub fn count_pieces<'a>(text: &'a str, counts: &mut HashMap<&'a str, u64>) {
    for piece in split_words(text) {
        *counts.entry(piece).or_default() += 1;
    }
    for run in text.split(|c: char| !c.is_whitespace()) {
        for (i, ch) in run.char_indices() {
            counts.entry(&run[i..i + ch.len_utf8()]).or_default();
        }
    }
}

impl WordTokenizer {
    /// Keeps the `vocab_size - 4` most frequent pieces (ties broken by the piece text, so
    /// training is deterministic). Single whitespace characters seen in the corpus are always
    /// kept, so unknown whitespace runs still decode to the right spacing.
    pub fn train<S: AsRef<str>>(texts: &[S], vocab_size: usize) -> Self {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for t in texts {
            count_pieces(t.as_ref(), &mut counts);
        }
        let owned = counts.into_iter().map(|(w, n)| (w.to_string(), n));
        Self::from_counts(owned.collect(), vocab_size)
    }

    /// Builds from counted pieces (see [`count_pieces`] and [`WordTokenizer::train`]).
    pub fn from_counts(counts: HashMap<String, u64>, vocab_size: usize) -> Self {
        let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
        // Single whitespace chars first (always kept), then by frequency.
        let is_single_space =
            |s: &str| s.chars().count() == 1 && s.chars().all(char::is_whitespace);
        ranked.sort_by(|a, b| {
            is_single_space(&b.0)
                .cmp(&is_single_space(&a.0))
                .then(b.1.cmp(&a.1))
                .then(a.0.cmp(&b.0))
        });
        ranked.truncate(vocab_size.saturating_sub(TRAINED_SPECIALS.len()));
        Self::from_words(ranked.into_iter().map(|(w, _)| w).collect())
    }

    /// Builds from a saved vocabulary (`words` in id order).
    pub fn from_words(words: Vec<String>) -> Self {
        let offset = TRAINED_SPECIALS.len() as u32;
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), offset + i as u32))
            .collect();
        WordTokenizer { words, index }
    }

    /// The vocabulary in its on-disk form.
    pub fn vocab(&self) -> WordVocab {
        WordVocab {
            words: self.words.clone(),
        }
    }

    /// Number of ids: the four specials plus one per word.
    pub fn vocab_size(&self) -> usize {
        TRAINED_SPECIALS.len() + self.words.len()
    }

    /// Encodes pieces; an unknown whitespace run falls back to its single characters.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        for piece in split_words(text) {
            if let Some(&id) = self.index.get(piece) {
                out.push(id);
            } else if piece.starts_with(char::is_whitespace) {
                for (i, c) in piece.char_indices() {
                    out.push(
                        self.index
                            .get(&piece[i..i + c.len_utf8()])
                            .copied()
                            .unwrap_or(UNK_ID),
                    );
                }
            } else {
                out.push(UNK_ID);
            }
        }
        out
    }

    /// Token text for `id` (specials by name), or `None` when out of range.
    pub fn token(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        if i < TRAINED_SPECIALS.len() {
            Some(TRAINED_SPECIALS[i])
        } else {
            self.words
                .get(i - TRAINED_SPECIALS.len())
                .map(String::as_str)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_punctuation_and_space_runs() {
        let pieces: Vec<_> = split_words("Hello,  world!\n\nIt's 42.").collect();
        assert_eq!(
            pieces,
            ["Hello", ",", "  ", "world", "!", "\n\n", "It", "'", "s", " ", "42", "."]
        );
    }

    #[test]
    fn caps_vocab_and_maps_rest_to_unk() {
        let t = WordTokenizer::train(&["a a a b b c\n"], 4 + 4);
        // " " and "\n" are always kept, then "a", "b".
        assert_eq!(t.vocab_size(), 8);
        let ids = t.encode("a b c");
        assert_eq!(ids[4], UNK_ID);
        assert_ne!(ids[0], UNK_ID);
    }
}
