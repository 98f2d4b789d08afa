//! Character-level tokenizer (nanoGPT's shakespeare_char): the vocabulary is the sorted set
//! of characters seen in the corpus, after the four special tokens; characters outside it
//! encode to `<unk>`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::special::{TRAINED_SPECIALS, UNK_ID};

/// Character vocabulary: ids 0..=3 are the specials, then `chars` in sorted order.
#[derive(Debug, Clone)]
pub struct CharTokenizer {
    chars: Vec<char>,
    index: HashMap<char, u32>,
    /// Fast path for ASCII: id per byte, or `u32::MAX` when absent.
    ascii: Box<[u32; 128]>,
}

/// Character frequencies, counted chunk by chunk (ASCII in a table, the rest in a map).
#[derive(Debug, Clone)]
pub struct CharCounts {
    ascii: [u64; 128],
    other: HashMap<char, u64>,
}

impl Default for CharCounts {
    fn default() -> Self {
        CharCounts {
            ascii: [0; 128],
            other: HashMap::new(),
        }
    }
}

impl CharCounts {
    /// Counts the characters of `text`.
    pub fn add(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_ascii() {
                self.ascii[c as usize] += 1;
            } else {
                *self.other.entry(c).or_default() += 1;
            }
        }
    }

    /// Adds another count into this one.
    pub fn merge(&mut self, other: CharCounts) {
        for (a, b) in self.ascii.iter_mut().zip(other.ascii) {
            *a += b;
        }
        for (c, n) in other.other {
            *self.other.entry(c).or_default() += n;
        }
    }

    /// Every character seen, with its count.
    pub fn into_counts(self) -> HashMap<char, u64> {
        let mut all = self.other;
        for (b, &n) in self.ascii.iter().enumerate() {
            if n > 0 {
                all.insert(char::from(b as u8), n);
            }
        }
        all
    }
}

/// On-disk form (inside the lmforge tokenizer JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CharVocab {
    /// The vocabulary's characters in id order; ids start after the four specials.
    pub chars: Vec<char>,
}

impl CharTokenizer {
    /// Builds from the characters of `texts`; when more distinct characters exist than
    /// `max_vocab - 4`, the most frequent are kept (ties by code point).
    pub fn train<S: AsRef<str>>(texts: &[S], max_vocab: Option<usize>) -> Self {
        let mut counts = CharCounts::default();
        for t in texts {
            counts.add(t.as_ref());
        }
        Self::from_counts(counts, max_vocab)
    }

    /// Builds from counted characters (see [`CharTokenizer::train`] for the cap).
    pub fn from_counts(counts: CharCounts, max_vocab: Option<usize>) -> Self {
        let mut chars: Vec<(char, u64)> = counts.into_counts().into_iter().collect();
        if let Some(max) = max_vocab {
            let keep = max.saturating_sub(TRAINED_SPECIALS.len());
            if chars.len() > keep {
                chars.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                chars.truncate(keep);
            }
        }
        let mut chars: Vec<char> = chars.into_iter().map(|(c, _)| c).collect();
        chars.sort_unstable();
        Self::from_chars(chars)
    }

    /// Builds from an explicit sorted character list.
    pub fn from_chars(chars: Vec<char>) -> Self {
        let offset = TRAINED_SPECIALS.len() as u32;
        let index: HashMap<char, u32> = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, offset + i as u32))
            .collect();
        let mut ascii = Box::new([u32::MAX; 128]);
        for (&c, &id) in &index {
            if c.is_ascii() {
                ascii[c as usize] = id;
            }
        }
        CharTokenizer {
            chars,
            index,
            ascii,
        }
    }

    /// The vocabulary in its on-disk form.
    pub fn vocab(&self) -> CharVocab {
        CharVocab {
            chars: self.chars.clone(),
        }
    }

    /// Number of ids: the four specials plus one per character.
    pub fn vocab_size(&self) -> usize {
        TRAINED_SPECIALS.len() + self.chars.len()
    }

    /// Encodes every character; unknown ones become `<unk>`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            let id = if c.is_ascii() {
                self.ascii[c as usize]
            } else {
                self.index.get(&c).copied().unwrap_or(u32::MAX)
            };
            out.push(if id == u32::MAX { UNK_ID } else { id });
        }
        out
    }

    /// Characters of `text` that are not in the vocabulary (deduplicated, in order of appearance).
    pub fn unknown_chars(&self, text: &str) -> Vec<char> {
        let mut out = Vec::new();
        for c in text.chars() {
            if !self.index.contains_key(&c) && !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// Token text for `id` (specials by name), or `None` when out of range.
    pub fn token(&self, id: u32) -> Option<String> {
        let i = id as usize;
        if i < TRAINED_SPECIALS.len() {
            Some(TRAINED_SPECIALS[i].to_string())
        } else {
            self.chars
                .get(i - TRAINED_SPECIALS.len())
                .map(|c| c.to_string())
        }
    }
}
