//! WikiText-2 / WikiText-103: the standard `wiki.{train,valid,test}.tokens` files (or the
//! raw variants `wiki.*.raw`), used with their own splits: train → `train.bin`,
//! valid → `val.bin`, test → `test.bin`.

use std::path::{Path, PathBuf};

use crate::{DataError, Result};

/// The public archives. Their sha256 is not pinned here (no verified value was at hand);
/// pass one with `--sha256` to verify, and the hash of what was used is printed and kept.
pub const VARIANTS: &[(&str, &str)] = &[
    (
        "wikitext-2",
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
    ),
    (
        "wikitext-2-raw",
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip",
    ),
    (
        "wikitext-103",
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip",
    ),
    (
        "wikitext-103-raw",
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip",
    ),
];

/// Archive URL of a variant name (`wikitext-2`, `wikitext-103`, `…-raw`).
pub fn variant_url(name: &str) -> Result<&'static str> {
    VARIANTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, u)| *u)
        .ok_or_else(|| {
            let known: Vec<&str> = VARIANTS.iter().map(|(n, _)| *n).collect();
            DataError::InvalidOption(format!(
                "unknown WikiText variant '{name}': expected one of {}",
                known.join(", ")
            ))
        })
}

/// The three split files of one WikiText folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WikiTextFiles {
    /// The training split (`wiki.train.tokens`, or `wiki.train.raw`).
    pub train: PathBuf,
    /// The validation split.
    pub valid: PathBuf,
    /// The test split.
    pub test: PathBuf,
}

fn in_dir(dir: &Path) -> Option<WikiTextFiles> {
    ["tokens", "raw"].iter().find_map(|ext| {
        let f = |split: &str| dir.join(format!("wiki.{split}.{ext}"));
        let files = WikiTextFiles {
            train: f("train"),
            valid: f("valid"),
            test: f("test"),
        };
        (files.train.is_file() && files.valid.is_file() && files.test.is_file()).then_some(files)
    })
}

/// Finds the split files in `dir` or one of its sub-folders (the archives unzip into
/// `wikitext-2/` etc.), preferring `.tokens` over `.raw` and `dir` over sub-folders.
pub fn find(dir: &Path) -> Result<WikiTextFiles> {
    if let Some(f) = in_dir(dir) {
        return Ok(f);
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut subs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        subs.sort();
        if let Some(f) = subs.iter().find_map(|d| in_dir(d)) {
            return Ok(f);
        }
    }
    Err(DataError::WikiTextMissing {
        reason: format!(
            "{} has no wiki.train.tokens, wiki.valid.tokens and wiki.test.tokens (nor wiki.*.raw), itself or in a sub-folder; unzip wikitext-2-v1.zip there (or pass --download)",
            dir.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tokens_in_subfolder_and_names_missing_folder() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("wikitext-2");
        std::fs::create_dir(&sub).unwrap();
        for s in ["train", "valid", "test"] {
            std::fs::write(sub.join(format!("wiki.{s}.tokens")), "x").unwrap();
        }
        assert_eq!(find(d.path()).unwrap().valid, sub.join("wiki.valid.tokens"));
        let e = find(&d.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("nope has no wiki.train.tokens"), "{e}");
        assert!(variant_url("wikitext-103")
            .unwrap()
            .ends_with("wikitext-103-v1.zip"));
        assert!(variant_url("wikitext-7").is_err());
    }
}
