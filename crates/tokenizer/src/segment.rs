//! Cutting a stream of text into segments that encode independently: the ids of the
//! segments, concatenated, equal the ids of the whole text. This is what lets every command
//! read a corpus chunk by chunk and still write exactly the tokens whole-file encoding gives.
//!
//! Where a cut is safe depends on the tokenizer ([`CutRule`]); the [`Segmenter`] buffers
//! streamed text and hands out segments of about `target` bytes that end at safe cuts.

use crate::hf::HfKind;
use crate::parallel::is_line_letter_cut;
use crate::Tokenizer;

/// A buffered stretch longer than this is cut even without a safe point, so memory stays
/// bounded on text with no line breaks at all (tokens can then differ from whole-text
/// encoding at that one cut; see `docs/performance.md`).
pub const MAX_CARRY_BYTES: usize = 64 << 20;

/// Where a text may be cut without changing its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutRule {
    /// Anywhere between two characters (the char tokenizer).
    Anywhere,
    /// Before a letter that follows a single `\n` after a non-space character (word, BPE
    /// and tiktoken kinds; see [`crate::parallel`] for why this is safe).
    LineThenLetter,
    /// Before a space (U+0020): the Metaspace pre-tokeniser of the `unigram` kind splits
    /// there and only prefixes `▁` to a piece that does not already start with one.
    BeforeSpace,
    /// Never: the text is encoded whole (SentencePiece models and foreign HF tokenizers).
    Nowhere,
}

impl CutRule {
    /// The rule for encoding with `tok`: the same cuts [`Tokenizer::encode_parallel`] uses.
    pub fn for_encoding(tok: &Tokenizer) -> CutRule {
        match tok {
            Tokenizer::Char(_) => CutRule::Anywhere,
            Tokenizer::Word(_) | Tokenizer::Tiktoken(_) => CutRule::LineThenLetter,
            Tokenizer::Hf(t) if t.kind == HfKind::Bpe => CutRule::LineThenLetter,
            Tokenizer::Hf(_) | Tokenizer::SentencePiece(_) => CutRule::Nowhere,
        }
    }

    /// Offset of the last safe cut in `text[from..]` (as an offset into `text`), if any.
    /// A cut at 0 or at `text.len()` is not reported (it would give an empty segment).
    fn last_cut(self, text: &str, from: usize) -> Option<usize> {
        let bytes = text.as_bytes();
        match self {
            CutRule::Anywhere => (!text.is_empty()).then_some(text.len()),
            CutRule::Nowhere => None,
            CutRule::BeforeSpace => bytes[from..]
                .iter()
                .rposition(|&b| b == b' ')
                .map(|i| from + i)
                .filter(|&i| i > 0),
            CutRule::LineThenLetter => {
                let mut end = bytes.len();
                while let Some(nl) = bytes[from..end].iter().rposition(|&b| b == b'\n') {
                    let nl = from + nl;
                    if is_line_letter_cut(text, nl) {
                        return Some(nl + 1);
                    }
                    end = nl;
                }
                None
            }
        }
    }
}

/// Buffers streamed text of one document and hands out segments that end at safe cuts.
#[derive(Debug)]
pub struct Segmenter {
    rule: CutRule,
    target: usize,
    carry: String,
    /// `carry[..scanned]` holds no safe cut (so it is not searched again).
    scanned: usize,
}

impl Segmenter {
    /// Segments of at least `target` bytes (except a document's last) cut by `rule`.
    pub fn new(rule: CutRule, target: usize) -> Segmenter {
        Segmenter {
            rule,
            target: target.max(1),
            carry: String::new(),
            scanned: 0,
        }
    }

    /// Appends `text`; returns a segment once `target` bytes are buffered and a safe cut
    /// exists (or the buffer passed [`MAX_CARRY_BYTES`]).
    pub fn push(&mut self, text: &str) -> Option<String> {
        self.carry.push_str(text);
        if self.carry.len() < self.target {
            return None;
        }
        let cut = match self.rule.last_cut(&self.carry, self.scanned) {
            Some(cut) => cut,
            None if self.carry.len() >= MAX_CARRY_BYTES && self.rule != CutRule::Nowhere => {
                self.carry.len()
            }
            None => {
                // Keep a few bytes: a cut needs the characters around a newline.
                self.scanned = floor_char_boundary(&self.carry, self.carry.len().saturating_sub(8));
                return None;
            }
        };
        let rest = self.carry[cut..].to_string();
        let mut segment = std::mem::replace(&mut self.carry, rest);
        segment.truncate(cut);
        self.scanned = 0;
        Some(segment)
    }

    /// The document ended: whatever is buffered (`None` when nothing is).
    pub fn finish(&mut self) -> Option<String> {
        self.scanned = 0;
        (!self.carry.is_empty()).then(|| std::mem::take(&mut self.carry))
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(rule: CutRule, target: usize, pieces: &[&str]) -> Vec<String> {
        let mut s = Segmenter::new(rule, target);
        let mut out: Vec<String> = pieces.iter().filter_map(|p| s.push(p)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn segments_concatenate_to_the_input_and_end_at_safe_cuts() {
        let text = "Some words\nMore words here\n\n  indented\nLast line é\n".repeat(20);
        let pieces: Vec<&str> = text.split_inclusive(' ').collect();
        for rule in [
            CutRule::Anywhere,
            CutRule::LineThenLetter,
            CutRule::BeforeSpace,
            CutRule::Nowhere,
        ] {
            let segs = segments(rule, 64, &pieces);
            assert_eq!(segs.concat(), text, "{rule:?}");
            for (a, b) in segs.iter().zip(&segs[1..]) {
                match rule {
                    CutRule::LineThenLetter => {
                        assert!(b.starts_with(char::is_alphabetic), "{b:?}");
                        assert!(a.ends_with('\n') && !a.ends_with("\n\n"), "{a:?}");
                    }
                    CutRule::BeforeSpace => assert!(b.starts_with(' '), "{b:?}"),
                    _ => {}
                }
            }
            match rule {
                CutRule::Nowhere => assert_eq!(segs.len(), 1),
                _ => assert!(segs.len() > 10, "{rule:?}: {}", segs.len()),
            }
        }
    }

    #[test]
    fn text_without_a_safe_cut_stays_whole() {
        let text = "x".repeat(1000);
        let segs = segments(CutRule::LineThenLetter, 10, &[&text[..500], &text[500..]]);
        assert_eq!(segs, [text]);
    }
}
