// Shared helpers for the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lmforge_data::{PrepareOptions, TokenFile};

/// Writes `content` to `dir/name`, creating folders.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    p
}

/// Options for a quiet, small-block prepare of `sources` into `out`.
pub fn opts(out: &Path, sources: &[&Path]) -> PrepareOptions {
    let mut o = PrepareOptions::new(out);
    o.sources = sources
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    o.block_size = 4;
    o.quiet = true;
    o
}

/// All tokens of a token file.
pub fn tokens(path: &Path) -> Vec<u32> {
    TokenFile::open(path).unwrap().to_vec()
}

/// A few paragraphs of text with enough characters for small splits.
pub fn text(seed: usize) -> String {
    (0..40)
        .map(|i| {
            format!("Line {i} of document {seed}: the quick brown fox jumps over the lazy dog.\n")
        })
        .collect()
}
