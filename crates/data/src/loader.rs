//! [`DataDir`]: a prepared data folder, opened and validated once, for training and eval.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::meta::Meta;
use crate::{DataError, Result, TokenFile};

/// A data folder written by [`crate::prepare()`]: `train.bin`, `val.bin`, optional
/// `test.bin`, `meta.json` and the tokenizer file. Token files are memory-mapped and shared
/// (`Arc`) with the samplers built on them.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The folder.
    pub dir: PathBuf,
    /// Its parsed `meta.json`.
    pub meta: Meta,
    /// `train.bin`, memory-mapped.
    pub train: Arc<TokenFile>,
    /// `val.bin`, memory-mapped.
    pub val: Arc<TokenFile>,
    /// `test.bin`, when the preparation kept a test split (WikiText).
    pub test: Option<Arc<TokenFile>>,
}

/// The tokenizer copy must be a plain file inside the folder: `meta.json` naming
/// `../../x` or `/dev/zero` would otherwise make opening the folder read any file.
fn check_tokenizer_file_name(meta_path: &Path, name: &str) -> Result<()> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(_)), None) => Ok(()),
        _ => Err(DataError::BadMeta {
            path: meta_path.to_path_buf(),
            reason: format!(
                "tokenizer.file {name:?} is not a file name inside the folder (expected e.g. \"tokenizer.json\")"
            ),
        }),
    }
}

impl DataDir {
    /// Opens `dir`, validating every token file's header and length, and checking that all
    /// of them and `meta.json` name the same tokenizer fingerprint.
    pub fn open(dir: &Path) -> Result<DataDir> {
        let meta_path = dir.join("meta.json");
        if !meta_path.is_file() && crate::pairs::PairDataDir::is_pair_dir(dir) {
            return Err(DataError::BadMeta {
                path: dir.to_path_buf(),
                reason: "holds sequence-to-sequence pairs (pairs.json), not a token stream; use it with an encoder-decoder model (arch = \"encoder-decoder\")".into(),
            });
        }
        if !meta_path.is_file() {
            return Err(DataError::BadMeta {
                path: dir.to_path_buf(),
                reason: "not a prepared data folder (no meta.json); create it with `lmforge prepare --out DIR`".into(),
            });
        }
        let meta = Meta::read(&meta_path)?;
        check_tokenizer_file_name(&meta_path, &meta.tokenizer.file)?;
        let train = Arc::new(TokenFile::open(&dir.join("train.bin"))?);
        let val = Arc::new(TokenFile::open(&dir.join("val.bin"))?);
        let test_path = dir.join("test.bin");
        let test = if test_path.is_file() {
            Some(Arc::new(TokenFile::open(&test_path)?))
        } else {
            None
        };
        let fp = &meta.tokenizer.fingerprint;
        for f in [Some(&train), Some(&val), test.as_ref()]
            .into_iter()
            .flatten()
        {
            if f.fingerprint() != fp {
                return Err(DataError::MixedFingerprints {
                    dir: dir.to_path_buf(),
                    file_a: "meta.json".into(),
                    fp_a: fp.clone(),
                    file_b: f
                        .path()
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    fp_b: f.fingerprint().to_string(),
                });
            }
        }
        Ok(DataDir {
            dir: dir.to_path_buf(),
            meta,
            train,
            val,
            test,
        })
    }

    /// [`DataDir::open`], then refuse the folder unless it was made with the tokenizer
    /// whose fingerprint is `expected` (e.g. the one a checkpoint was trained with).
    pub fn open_expecting(dir: &Path, expected: &str) -> Result<DataDir> {
        let d = DataDir::open(dir)?;
        d.check_fingerprint(expected)?;
        Ok(d)
    }

    /// Errors (naming both fingerprints) unless the data's tokenizer is `expected`.
    pub fn check_fingerprint(&self, expected: &str) -> Result<()> {
        if self.fingerprint() != expected {
            return Err(DataError::FingerprintMismatch {
                dir: self.dir.clone(),
                found: self.fingerprint().to_string(),
                expected: expected.to_string(),
            });
        }
        Ok(())
    }

    /// The tokenizer fingerprint the data was made with.
    pub fn fingerprint(&self) -> &str {
        &self.meta.tokenizer.fingerprint
    }

    /// Vocabulary size of the data's tokenizer (the model's minimum `vocab_size`).
    pub fn vocab_size(&self) -> usize {
        self.meta.tokenizer.vocab_size
    }

    /// Path of the tokenizer copy saved in the folder.
    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join(&self.meta.tokenizer.file)
    }

    /// Loads the tokenizer saved in the folder.
    pub fn tokenizer(&self) -> Result<lmforge_tokenizer::Tokenizer> {
        Ok(lmforge_tokenizer::Tokenizer::load_file(
            &self.tokenizer_path(),
        )?)
    }
}
