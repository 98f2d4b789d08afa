//! Project Gutenberg licence stripping: keep only the text between the
//! `*** START OF ...` and `*** END OF ...` markers (and the older `*END*THE SMALL PRINT`
//! header), as Gutenberg books ship with a long licence before and after the work.
//!
//! [`strip_gutenberg`] works on a whole text; [`GutenbergScan`] and [`GutenbergBody`] do the
//! same on a text streamed in chunks, in two passes: the scan finds the body's byte range,
//! the second pass keeps only that range (and trims the same newlines).

/// Lines that end the licence header (the body starts on the next line).
const START_MARKERS: &[&str] = &["*** START OF", "***START OF", "*END*THE SMALL PRINT"];
/// Lines that start the licence footer.
const END_MARKERS: &[&str] = &[
    "*** END OF",
    "***END OF",
    "End of the Project Gutenberg",
    "End of Project Gutenberg",
];
/// Longest marker, in bytes: how much of a line's start a streamed scan keeps.
const MARKER_BYTES: usize = 28;

/// Returns the book's body without Gutenberg's header and footer. Text without the
/// markers is returned unchanged.
pub fn strip_gutenberg(text: &str) -> &str {
    let mut start = 0;
    let mut end = text.len();
    let mut found = false;
    if let Some(pos) = find_marker_line(text, START_MARKERS) {
        // Body starts after the marker's line.
        start = text[pos..]
            .find('\n')
            .map(|n| pos + n + 1)
            .unwrap_or(text.len());
        found = true;
    }
    if let Some(pos) = find_marker_line(&text[start..], END_MARKERS) {
        end = start + pos;
        found = true;
    }
    if !found {
        return text;
    }
    text[start..end].trim_matches(|c: char| c == '\n' || c == '\r')
}

/// Byte offset of the start of the first line that begins with one of `markers`
/// (case-insensitive).
fn find_marker_line(text: &str, markers: &[&str]) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if starts_with_marker(line.trim_start(), markers) {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

/// True when `trimmed` starts with one of `markers`, ASCII case-insensitively (compared as
/// bytes, so a multi-byte character at the marker's length cannot split a slice).
fn starts_with_marker(trimmed: &str, markers: &[&str]) -> bool {
    markers.iter().any(|m| {
        trimmed
            .as_bytes()
            .get(..m.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(m.as_bytes()))
    })
}

/// First pass over a streamed text: finds the body's byte range as [`strip_gutenberg`]
/// would (before its newline trimming). Keeps only the start of the current line.
#[derive(Debug, Default)]
pub struct GutenbergScan {
    /// Bytes of text seen so far.
    offset: u64,
    /// Offset where the current line starts.
    line_start: u64,
    /// The current line's first bytes after its leading whitespace (at most `MARKER_BYTES`).
    head: String,
    /// Still inside the current line's leading whitespace.
    in_indent: bool,
    /// The current line has already been checked against the markers.
    checked: bool,
    /// End of the first start-marker line.
    start: Option<u64>,
    /// First end-marker line anywhere (used when there is no start marker).
    end_any: Option<u64>,
    /// First end-marker line after the start marker's line.
    end_after_start: Option<u64>,
}

impl GutenbergScan {
    /// A scan at the start of a text.
    pub fn new() -> GutenbergScan {
        GutenbergScan {
            in_indent: true,
            ..GutenbergScan::default()
        }
    }

    /// Scans the next piece of the text.
    pub fn feed(&mut self, chunk: &str) {
        for line in chunk.split_inclusive('\n') {
            if !self.checked {
                let mut rest = line;
                if self.in_indent {
                    rest = rest.trim_start();
                    self.in_indent = rest.is_empty();
                }
                for c in rest.chars() {
                    if self.head.len() + c.len_utf8() > MARKER_BYTES {
                        // The head is as long as any marker: decide now.
                        self.check_line();
                        break;
                    }
                    self.head.push(c);
                }
                if !self.checked && line.ends_with('\n') {
                    self.check_line();
                }
            }
            self.offset += line.len() as u64;
            if line.ends_with('\n') {
                if self.checked && self.start == Some(u64::MAX) {
                    self.start = Some(self.offset);
                }
                self.new_line();
            }
        }
    }

    /// Matches the current line's head against the markers (once per line).
    fn check_line(&mut self) {
        self.checked = true;
        if self.start.is_none() && starts_with_marker(&self.head, START_MARKERS) {
            // The body starts after this line's newline (or at the end of the text).
            self.start = Some(u64::MAX);
        } else if starts_with_marker(&self.head, END_MARKERS) {
            if self.end_any.is_none() {
                self.end_any = Some(self.line_start);
            }
            if self.start.is_some() && self.end_after_start.is_none() {
                self.end_after_start = Some(self.line_start);
            }
        }
    }

    fn new_line(&mut self) {
        self.line_start = self.offset;
        self.head.clear();
        self.in_indent = true;
        self.checked = false;
    }

    /// The body's range `[start, end)` in bytes of text, or `None` when there is no marker
    /// (the text is kept whole).
    pub fn finish(mut self) -> Option<(u64, u64)> {
        if !self.checked && !self.head.is_empty() {
            self.check_line();
        }
        let len = self.offset;
        match self.start {
            Some(start) => Some((start.min(len), self.end_after_start.unwrap_or(len))),
            None => self.end_any.map(|end| (0, end)),
        }
    }
}

/// Second pass over a streamed text: keeps the body range found by [`GutenbergScan`] and
/// trims `\n`/`\r` from both of its ends, as [`strip_gutenberg`] does.
#[derive(Debug)]
pub struct GutenbergBody {
    range: (u64, u64),
    offset: u64,
    /// Text has been handed out (so leading newlines are no longer trimmed).
    started: bool,
    /// A run of `\n`/`\r` held back: kept only if more text follows.
    held: String,
}

impl GutenbergBody {
    /// Keeps `range` (from [`GutenbergScan::finish`]).
    pub fn new(range: (u64, u64)) -> GutenbergBody {
        GutenbergBody {
            range,
            offset: 0,
            started: false,
            held: String::new(),
        }
    }

    /// The part of the next chunk that belongs to the body (possibly empty).
    pub fn filter(&mut self, chunk: &str) -> String {
        let (lo, hi) = self.range;
        let from = lo.saturating_sub(self.offset).min(chunk.len() as u64) as usize;
        let to = hi.saturating_sub(self.offset).min(chunk.len() as u64) as usize;
        self.offset += chunk.len() as u64;
        let is_newline = |c: char| c == '\n' || c == '\r';
        let mut piece = chunk.get(from..to.max(from)).unwrap_or("");
        if !self.started {
            piece = piece.trim_start_matches(is_newline);
            if piece.is_empty() {
                return String::new();
            }
            self.started = true;
        }
        let body = piece.trim_end_matches(is_newline);
        if body.is_empty() {
            self.held.push_str(piece);
            return String::new();
        }
        let mut out = std::mem::take(&mut self.held);
        out.push_str(body);
        self.held.push_str(&piece[body.len()..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_header_and_footer() {
        let book = "The Project Gutenberg eBook of Emma\nlicence blah\n*** START OF THE PROJECT GUTENBERG EBOOK EMMA ***\n\nEMMA\nChapter 1\n\n*** END OF THE PROJECT GUTENBERG EBOOK EMMA ***\nmore licence\n";
        assert_eq!(strip_gutenberg(book), "EMMA\nChapter 1");
    }

    #[test]
    fn old_small_print_header() {
        let book = "legal\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\nBody text\nEnd of the Project Gutenberg Etext of X\n";
        assert_eq!(strip_gutenberg(book), "Body text");
    }

    /// The streamed two-pass version, fed in pieces of `step` bytes (at char boundaries).
    fn strip_streamed(text: &str, step: usize) -> String {
        let pieces = split_every(text, step);
        let mut scan = GutenbergScan::new();
        for p in &pieces {
            scan.feed(p);
        }
        let Some(range) = scan.finish() else {
            return text.to_string();
        };
        let mut body = GutenbergBody::new(range);
        pieces.iter().map(|p| body.filter(p)).collect()
    }

    fn split_every(text: &str, step: usize) -> Vec<&str> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let mut n = step.min(rest.len());
            while !rest.is_char_boundary(n) {
                n += 1;
            }
            out.push(&rest[..n]);
            rest = &rest[n..];
        }
        out
    }

    #[test]
    fn streamed_stripping_equals_whole_text_stripping() {
        let cases = [
            "The Project Gutenberg eBook of Emma\r\nlicence\r\n*** START OF THE PROJECT GUTENBERG EBOOK EMMA ***\r\n\r\nEMMA\r\nChapter 1\r\n\r\n*** END OF THE PROJECT GUTENBERG EBOOK EMMA ***\r\nmore\r\n",
            "legal\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN*END*\nBody text\nEnd of the Project Gutenberg Etext of X\n",
            "no markers at all\n\nstill none",
            "*** END OF before any start\nbody\n*** START OF x\nreal body\n\n\n",
            "body first\n   \t   End of Project Gutenberg's X\nfooter",
            "*** START OF x\n\n\n\n",
            "*** START OF the end of the text",
            "    *** start of lower case\n\u{e9}t\u{e9}\n\u{2003}*** END OF it\n",
            "*** START OF x\nEnd of the Project Gutenber\u{20ac}\u{20ac}\ntext\r\n\r\n\r\nEnd of Project Gutenberg\n",
            "",
        ];
        for text in cases {
            let whole = strip_gutenberg(text);
            for step in [1, 2, 3, 5, 7, 16, 1000] {
                assert_eq!(strip_streamed(text, step), whole, "{text:?} step {step}");
            }
        }
    }

    #[test]
    fn text_without_markers_is_unchanged() {
        assert_eq!(strip_gutenberg("just text\n"), "just text\n");
    }
}
