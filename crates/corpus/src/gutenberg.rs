//! Project Gutenberg licence stripping: keep only the text between the
//! `*** START OF ...` and `*** END OF ...` markers (and the older `*END*THE SMALL PRINT`
//! header), as Gutenberg books ship with a long licence before and after the work.

/// Returns the book's body without Gutenberg's header and footer. Text without the
/// markers is returned unchanged.
pub fn strip_gutenberg(text: &str) -> &str {
    let mut start = 0;
    let mut end = text.len();
    let mut found = false;
    if let Some(pos) = find_marker_line(
        text,
        &["*** START OF", "***START OF", "*END*THE SMALL PRINT"],
    ) {
        // Body starts after the marker's line.
        start = text[pos..]
            .find('\n')
            .map(|n| pos + n + 1)
            .unwrap_or(text.len());
        found = true;
    }
    if let Some(pos) = find_marker_line(
        &text[start..],
        &[
            "*** END OF",
            "***END OF",
            "End of the Project Gutenberg",
            "End of Project Gutenberg",
        ],
    ) {
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
        let trimmed = line.trim_start();
        for m in markers {
            if trimmed.len() >= m.len() && trimmed[..m.len()].eq_ignore_ascii_case(m) {
                return Some(offset);
            }
        }
        offset += line.len();
    }
    None
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

    #[test]
    fn text_without_markers_is_unchanged() {
        assert_eq!(strip_gutenberg("just text\n"), "just text\n");
    }
}
