//! Splitting one large text into chunks that encode independently to exactly the same ids
//! as the whole, so encoding can run on all cores.
//!
//! A cut is placed just before a letter that follows a single newline which itself follows
//! a non-space character (`x\n|Letter`): for the GPT-2/tiktoken pre-tokeniser patterns,
//! byte-level BPE, and the char and word kinds, no token spans that point, and the lone
//! newline ends up as the same token whether or not the text ends there (a longer
//! whitespace run would not: `\s+(?!\S)` matches it differently at the end of a text).
//! (SentencePiece-style kinds are not split: their whitespace handling looks across lines.)

/// Target chunk size in bytes.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Cuts `text` into pieces of about `target` bytes at safe boundaries (see module docs).
pub fn split_for_parallel(text: &str, target: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > target {
        let mut from = target;
        while !rest.is_char_boundary(from) {
            from += 1;
        }
        match find_cut(&rest[from..]) {
            Some(i) => {
                let (head, tail) = rest.split_at(from + i);
                out.push(head);
                rest = tail;
            }
            None => break,
        }
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// True when `text[nl]` is a `\n` that is a safe cut point by the rule above: a
/// non-space character before it and a letter after it (the cut goes after the `\n`).
pub fn is_line_letter_cut(text: &str, nl: usize) -> bool {
    text.as_bytes().get(nl) == Some(&b'\n')
        && text[..nl]
            .chars()
            .next_back()
            .is_some_and(|c| !c.is_whitespace())
        && text[nl + 1..]
            .chars()
            .next()
            .is_some_and(char::is_alphabetic)
}

/// Offset of the first letter preceded by a '\n' that is preceded by a non-space (the first
/// [`is_line_letter_cut`], cut after its `\n`).
fn find_cut(s: &str) -> Option<usize> {
    s.match_indices('\n')
        .map(|(nl, _)| nl)
        .find(|&nl| is_line_letter_cut(s, nl))
        .map(|nl| nl + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_to_input_and_cut_before_letters() {
        let text = "abc\n\nHello there\n  indented\nWorld\n".repeat(100);
        // Only "there\n|indented"-style points qualify: one newline after a non-space.
        let parts = split_for_parallel(&text, 50);
        assert!(parts.len() > 10);
        assert_eq!(parts.concat(), text);
        for (prev, p) in parts.iter().zip(&parts[1..]) {
            assert!(p.starts_with(char::is_alphabetic), "{p:?}");
            assert!(
                prev.ends_with('\n') && !prev[..prev.len() - 1].ends_with(char::is_whitespace),
                "{prev:?}"
            );
        }
    }
}
