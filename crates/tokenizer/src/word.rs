//! Word-level tokenizer: text splits into words (runs of letters/digits/underscore),
//! single punctuation characters and whitespace runs; the `vocab_size - 4` most frequent
//! pieces form the vocabulary, everything else is `<unk>`. Whitespace is kept as tokens,
//! so decoding in-vocabulary text gives the original back exactly.
//!
//! [`WordOptions`] give the LLM-from-scratch seed's variant: `lowercase` folds the text
//! first; `keep_whitespace = false` splits with the seed's own pattern `\w+|[^\w\s]`
//! (whitespace dropped) and decodes by joining the tokens with single spaces.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::special::{TRAINED_SPECIALS, UNK_ID};

/// Word vocabulary: ids 0..=3 are the specials, then `words` in id order.
#[derive(Debug, Clone)]
pub struct WordTokenizer {
    words: Vec<String>,
    index: HashMap<String, u32>,
    options: WordOptions,
}

/// How text is split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordOptions {
    /// Lowercase the text before splitting (training and encoding).
    pub lowercase: bool,
    /// Keep whitespace runs as tokens (exact decoding); false: the seed's `\w+|[^\w\s]`,
    /// decoded by joining with spaces.
    pub keep_whitespace: bool,
}

impl Default for WordOptions {
    /// lmforge's word tokenizer: case kept, whitespace kept.
    fn default() -> Self {
        WordOptions {
            lowercase: false,
            keep_whitespace: true,
        }
    }
}

/// The seed's split, `re.findall(r"\w+|[^\w\s]", text)`.
fn seed_pattern() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\w+|[^\w\s]").expect("a valid constant pattern"))
}

/// The pieces of `text` under `options` (whitespace dropped unless kept; not lowercased).
pub fn pieces<'a>(text: &'a str, options: WordOptions) -> Box<dyn Iterator<Item = &'a str> + 'a> {
    if options.keep_whitespace {
        Box::new(split_words(text))
    } else {
        Box::new(seed_pattern().find_iter(text).map(|m| m.as_str()))
    }
}

/// Adds the seed-pattern pieces of `text` to `counts` (no whitespace pieces).
pub fn count_seed_pieces<'a>(text: &'a str, counts: &mut HashMap<&'a str, u64>) {
    for piece in seed_pattern().find_iter(text) {
        *counts.entry(piece.as_str()).or_default() += 1;
    }
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
        WordTokenizer {
            words,
            index,
            options: WordOptions::default(),
        }
    }

    /// The same vocabulary, splitting with `options`.
    pub fn with_options(mut self, options: WordOptions) -> Self {
        self.options = options;
        self
    }

    /// How this tokenizer splits text.
    pub fn options(&self) -> WordOptions {
        self.options
    }

    /// Text of `ids` (specials and unknown ids skipped): concatenated, or joined with
    /// spaces when whitespace is not kept.
    pub fn decode(&self, ids: &[u32]) -> String {
        let tokens = ids.iter().filter_map(|&i| self.token(i));
        if self.options.keep_whitespace {
            tokens.collect()
        } else {
            tokens.collect::<Vec<_>>().join(" ")
        }
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
        let lowered;
        let text = if self.options.lowercase {
            lowered = text.to_lowercase();
            &lowered
        } else {
            text
        };
        let mut out = Vec::with_capacity(text.len() / 3);
        for piece in pieces(text, self.options) {
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

    #[test]
    fn seed_options_lowercase_drop_whitespace_and_join_with_spaces() {
        let seed = WordOptions {
            lowercase: true,
            keep_whitespace: false,
        };
        let text = "Hello,  World!\nIt's  42.";
        let got: Vec<&str> = pieces(text, seed).collect();
        assert_eq!(got, ["Hello", ",", "World", "!", "It", "'", "s", "42", "."]);
        let mut counts = HashMap::new();
        count_seed_pieces("hello, world! hello", &mut counts);
        let counts = counts
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let t = WordTokenizer::from_counts(counts, 4 + 4).with_options(seed);
        let ids = t.encode("HELLO ,\n\tWorld  hello");
        assert!(!ids.contains(&UNK_ID), "{ids:?}");
        assert_eq!(ids.len(), 4);
        assert_eq!(t.decode(&ids), "hello , world hello");
        // a combining mark stays inside its word, as Python's \w does
        let arabic: Vec<&str> = pieces("كَتَبَ ولد", seed).collect();
        assert_eq!(arabic, ["كَتَبَ", "ولد"]);
    }
}
