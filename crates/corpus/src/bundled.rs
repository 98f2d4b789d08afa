//! The bundled default corpus: 42 public-domain Shakespeare works under `corpus/shakespeare`.

use std::path::PathBuf;

use crate::{CorpusError, Result};

/// Relative location of the bundled corpus inside a checkout.
pub const BUNDLED_CORPUS_REL: &str = "corpus/shakespeare";

/// Finds the bundled corpus: `$LMFORGE_CORPUS`, then `./corpus/shakespeare`, then the
/// checkout the binary was built from (so `cargo run` works from any folder).
pub fn bundled_corpus_dir() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("LMFORGE_CORPUS") {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push(PathBuf::from(BUNDLED_CORPUS_REL));
    // crates/corpus → workspace root.
    let built_from = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    candidates.push(built_from.join(BUNDLED_CORPUS_REL));
    for dir in &candidates {
        if dir.is_dir() {
            return Ok(dir.canonicalize().unwrap_or_else(|_| dir.clone()));
        }
    }
    Err(CorpusError::BundledMissing {
        looked: candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}
