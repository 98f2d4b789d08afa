//! SentencePiece text normalisation: the precompiled character map (a Darts double-array
//! trie of rewrite rules, longest match wins) plus the whitespace rules of
//! `NormalizerSpec` — drop leading/trailing/repeated spaces, add the dummy prefix, and
//! escape spaces as `▁`. Mirrors `normalizer.cc` so ids match the C++ library.

/// The meta symbol SentencePiece uses for a space.
pub const SPACE_SYMBOL: &str = "\u{2581}";

/// A parsed `precompiled_charsmap`.
#[derive(Debug, Clone, Default)]
pub struct CharsMap {
    units: Vec<u32>,
    normalized: Vec<u8>,
}

impl CharsMap {
    /// Parses the blob: `u32` trie size in bytes, the trie units, then NUL-separated outputs.
    pub fn parse(blob: &[u8]) -> Option<CharsMap> {
        if blob.is_empty() {
            return Some(CharsMap::default());
        }
        let size = u32::from_le_bytes(blob.get(..4)?.try_into().ok()?) as usize;
        let trie = blob.get(4..4 + size)?;
        let units = trie
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some(CharsMap {
            units,
            normalized: blob[4 + size..].to_vec(),
        })
    }

    fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Longest rule matching a prefix of `key`: (output offset, matched length).
    fn longest_match(&self, key: &[u8]) -> Option<(usize, usize)> {
        // Darts-clone unit layout.
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let label = |u: u32| u & ((1 << 31) | 0xFF);
        let has_leaf = |u: u32| (u >> 8) & 1 == 1;
        let value = |u: u32| (u & ((1 << 31) - 1)) as usize;
        let mut best = None;
        let mut pos = offset(*self.units.first()?);
        for (i, &c) in key.iter().enumerate() {
            if c == 0 {
                break;
            }
            pos ^= c as usize;
            let unit = *self.units.get(pos)?;
            if label(unit) != c as u32 {
                break;
            }
            pos ^= offset(unit);
            if has_leaf(unit) {
                best = Some((value(*self.units.get(pos)?), i + 1));
            }
        }
        best
    }

    /// Normalises the first character(s) of `input`: (replacement, bytes consumed).
    fn normalize_prefix<'a>(&'a self, input: &'a str) -> (&'a str, usize) {
        if !self.is_empty() {
            if let Some((value, len)) = self.longest_match(input.as_bytes()) {
                if input.is_char_boundary(len) {
                    let out = &self.normalized[value.min(self.normalized.len())..];
                    let end = out.iter().position(|&b| b == 0).unwrap_or(out.len());
                    if let Ok(s) = std::str::from_utf8(&out[..end]) {
                        return (s, len);
                    }
                }
            }
        }
        let n = input.chars().next().map(char::len_utf8).unwrap_or(1);
        (&input[..n], n)
    }
}

/// Whitespace options from `NormalizerSpec` / `TrainerSpec`.
#[derive(Debug, Clone)]
pub struct Normalizer {
    /// The model's character rewrites (NFKC-like), applied before anything else.
    pub charsmap: CharsMap,
    /// Prepend a space to the text, so the first word looks like every other.
    pub add_dummy_prefix: bool,
    /// Drop leading and trailing spaces and collapse runs of spaces into one.
    pub remove_extra_whitespaces: bool,
    /// Write spaces as `▁` (U+2581).
    pub escape_whitespaces: bool,
    /// Attach the space marker to the end of a word instead of its start.
    pub treat_whitespace_as_suffix: bool,
}

impl Normalizer {
    /// Normalises `text` the way SentencePiece does before segmentation.
    pub fn normalize(&self, text: &str) -> String {
        let space = if self.escape_whitespaces {
            SPACE_SYMBOL
        } else {
            " "
        };
        let mut input = text;
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (piece, n) = self.charsmap.normalize_prefix(input);
                if piece != " " {
                    break;
                }
                input = &input[n..];
            }
        }
        let mut out = String::with_capacity(text.len() + 8);
        if input.is_empty() {
            return out;
        }
        if self.add_dummy_prefix && !self.treat_whitespace_as_suffix {
            out.push_str(space);
        }
        let mut prev_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            let (piece, n) = self.charsmap.normalize_prefix(input);
            let mut piece = piece;
            while prev_space && piece.starts_with(' ') {
                piece = &piece[1..];
            }
            if !piece.is_empty() {
                for c in piece.chars() {
                    if c == ' ' {
                        out.push_str(space);
                    } else {
                        out.push(c);
                    }
                }
                prev_space = piece.ends_with(' ');
            }
            input = &input[n..];
            if !self.remove_extra_whitespaces {
                prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        if self.add_dummy_prefix && self.treat_whitespace_as_suffix {
            out.push_str(space);
        }
        out
    }
}
