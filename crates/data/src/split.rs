//! How the validation split is chosen.
//!
//! **Fraction** (nanoGPT): all sources are tokenized into one stream, in source order with
//! separators; its first `1 - f` is train, the last `f` is val (`n_train = ⌊n·(1−f)⌋`, as
//! `int(n*0.9)` in nanoGPT). The total is not known until everything is tokenized, and
//! memory must stay bounded, so the whole stream is written to the train temp file and
//! the tail is then copied into the val file and cut off the train file
//! ([`crate::TokenWriter::split_off_tail`]). That copies only the val part (≈ f of the
//! data) once; counting bytes first would need a second read of the corpus and would not
//! know token counts anyway.
//!
//! **Sources**: val comes from its own files (`--val`), train from the rest.
//! WikiText uses its own train/valid/test files (see [`crate::wikitext`]).

use serde::{Deserialize, Serialize};

/// The val split rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ValSplit {
    /// The last fraction (0 < f < 1) of the concatenated token stream is val.
    Fraction(f64),
    /// Val is made from these sources (files, folders, globs).
    Sources(Vec<String>),
}

impl Default for ValSplit {
    fn default() -> Self {
        ValSplit::Fraction(0.1)
    }
}

/// Tokens that go to train when `total` tokens are split with val fraction `f`.
pub fn train_count(total: u64, f: f64) -> u64 {
    ((total as f64 * (1.0 - f)) as u64).min(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_nanogpt_int_n_times_0_9() {
        // nanoGPT: n = 1115394 (tiny Shakespeare) → int(n * 0.9) = 1003854.
        assert_eq!(train_count(1_115_394, 0.1), 1_003_854);
        assert_eq!(train_count(10, 0.1), 9);
        assert_eq!(train_count(0, 0.1), 0);
    }
}
