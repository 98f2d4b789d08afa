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
    /// The last fraction `f` of the source files (at least one, and at least one left for
    /// train) is val: the LLM-from-scratch seed's 90/10 split by file.
    Files(f64),
    /// No validation: `val.bin` is empty (the LM seed trains without one).
    None,
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

/// Source files that go to val when `n` files are split by file with fraction `f`: at
/// least one, and at least one left for train (`n ≥ 2`).
pub fn val_file_count(n: usize, f: f64) -> usize {
    ((n as f64 * f).round() as usize).clamp(1, n.saturating_sub(1).max(1))
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

    #[test]
    fn by_file_keeps_at_least_one_file_on_each_side() {
        assert_eq!(val_file_count(10, 0.1), 1);
        assert_eq!(val_file_count(30, 0.1), 3);
        assert_eq!(val_file_count(2, 0.1), 1);
        assert_eq!(val_file_count(3, 0.9), 2);
    }
}
