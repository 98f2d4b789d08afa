//! Token ids written as text: `[1, 2]`, `1,2`, `1 2\n3` (what `tokenizer encode` prints, in
//! either of its formats).

use crate::{Result, TokenizerError};

/// Parses a list of token ids, naming the first entry that is not one.
pub fn parse_ids(text: &str) -> Result<Vec<u32>> {
    let trimmed = text.trim().trim_start_matches('[').trim_end_matches(']');
    trimmed
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u32>().map_err(|_| {
                TokenizerError::Invalid(format!(
                    "'{p}' is not a token id (expected non-negative integers)"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printed_format_parses_and_bad_entries_are_named() {
        assert_eq!(parse_ids("[1, 2,3]").unwrap(), [1, 2, 3]);
        assert_eq!(parse_ids("4\n5 6\n").unwrap(), [4, 5, 6]);
        assert!(parse_ids("  ").unwrap().is_empty());
        let e = parse_ids("1, -2").unwrap_err().to_string();
        assert!(e.contains("'-2' is not a token id"), "{e}");
    }
}
