//! Turning a growing list of token ids into text chunks as soon as they are complete.
//!
//! Byte-level tokenizers can end a token in the middle of a UTF-8 character, and
//! SentencePiece-style decoders treat the first piece specially, so ids cannot simply be
//! decoded one at a time. [`TextStream`] decodes `[anchor] + pending` (anchor = the last id
//! already emitted) and emits what follows `decode([anchor])` once it is whole UTF-8 text.
//! Stop strings are honoured without ever printing past them.

use lmforge_tokenizer::Tokenizer;

use crate::Result;

/// Gives up waiting for a character to complete after this many tokens.
const MAX_PENDING: usize = 16;

/// Incremental decoder with stop-string detection.
pub struct TextStream<'t> {
    tokenizer: &'t Tokenizer,
    anchor: Option<u32>,
    pending: Vec<u32>,
    /// Text decoded but held back because it could be the start of a stop string.
    held: String,
    /// All text released so far.
    pub text: String,
    stops: Vec<String>,
    /// Set once a stop string was found.
    pub stopped: bool,
}

impl<'t> TextStream<'t> {
    /// a decoder over `tokenizer` that watches for the `stops` strings
    pub fn new(tokenizer: &'t Tokenizer, stops: Vec<String>) -> Self {
        TextStream {
            tokenizer,
            anchor: None,
            pending: Vec::new(),
            held: String::new(),
            text: String::new(),
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            stopped: false,
        }
    }

    /// Bytes of the pending ids: `decode([anchor] + pending)` minus `decode([anchor])`.
    fn pending_bytes(&self) -> Result<Vec<u8>> {
        let mut ids: Vec<u32> = self.anchor.into_iter().collect();
        ids.extend_from_slice(&self.pending);
        let mut full = self.tokenizer.decode_bytes(&ids)?;
        if let Some(a) = self.anchor {
            let prefix = self.tokenizer.decode_bytes(&[a])?;
            if full.starts_with(&prefix) {
                full.drain(..prefix.len());
            }
        }
        Ok(full)
    }

    /// Adds one id; returns the text that became final (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.pending.push(id);
        let new = self.pending_bytes()?;
        let complete = match std::str::from_utf8(&new) {
            Ok(s) => !s.ends_with('\u{FFFD}'),
            Err(e) => e.error_len().is_some(),
        };
        if !complete && self.pending.len() < MAX_PENDING {
            return Ok(String::new());
        }
        let chunk = String::from_utf8_lossy(&new).into_owned();
        self.anchor = self.pending.last().copied();
        self.pending.clear();
        Ok(self.release(chunk))
    }

    /// Emits what is still pending (an incomplete character becomes U+FFFD) and the
    /// held-back text, once no more tokens will come.
    pub fn finish(&mut self) -> Result<String> {
        if self.stopped {
            return Ok(String::new());
        }
        let mut out = String::new();
        if !self.pending.is_empty() {
            let chunk = String::from_utf8_lossy(&self.pending_bytes()?).into_owned();
            self.pending.clear();
            out.push_str(&self.release(chunk));
            if self.stopped {
                return Ok(out);
            }
        }
        let rest = std::mem::take(&mut self.held);
        self.text.push_str(&rest);
        out.push_str(&rest);
        Ok(out)
    }

    fn release(&mut self, chunk: String) -> String {
        if self.stopped {
            return String::new();
        }
        self.held.push_str(&chunk);
        if self.stops.is_empty() {
            let out = std::mem::take(&mut self.held);
            self.text.push_str(&out);
            return out;
        }
        let candidate = format!("{}{}", self.text, self.held);
        let search_from = self
            .text
            .len()
            .saturating_sub(self.stops.iter().map(|s| s.len()).max().unwrap_or(0));
        let search_from = (0..=search_from)
            .rev()
            .find(|&i| candidate.is_char_boundary(i))
            .unwrap_or(0);
        if let Some(pos) = self
            .stops
            .iter()
            .filter_map(|s| {
                candidate[search_from..]
                    .find(s.as_str())
                    .map(|p| p + search_from)
            })
            .min()
        {
            self.stopped = true;
            let out = candidate[self.text.len().min(pos)..pos].to_string();
            self.text.truncate(pos.min(self.text.len()));
            self.text.push_str(&out);
            self.held.clear();
            return out;
        }
        // Hold back a tail that could still grow into a stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| {
                (1..s.len()).filter(|&n| s.is_char_boundary(n) && self.held.ends_with(&s[..n]))
            })
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out: String = self.held[..cut].to_string();
        self.held.drain(..cut);
        self.text.push_str(&out);
        out
    }
}
