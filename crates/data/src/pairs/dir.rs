//! [`PairDataDir`]: a prepared pair-data folder, and its `pairs.json` ([`PairsMeta`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::batch::BatchShape;
use super::{PadTo, PairBatches, PairSampler, PairSet, Specials};
use crate::meta::TokenizerMeta;
use crate::{DataError, Result};

/// Current `pairs.json` format version.
pub const PAIRS_META_VERSION: u32 = 1;

/// One side (source or target) of the pair data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideMeta {
    /// The side's tokenizer (`file` names its copy inside the folder).
    pub tokenizer: TokenizerMeta,
    /// The side's reserved ids.
    pub specials: Specials,
    /// Model vocabulary of the side: tokenizer ids + 3 specials.
    pub vocab_size: usize,
    /// Longest sequence kept at preparation (source: tokens; target: tokens + 1 for
    /// `<bos>`/`<eos>`), i.e. the block size the data was cut for.
    pub block_size: usize,
    /// Train pairs whose side was cut to fit `block_size`.
    pub truncated: u64,
    /// Tokens in this side's train and val token files.
    pub tokens: [u64; 2],
}

/// Contents of `pairs.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsMeta {
    /// Format version.
    pub lmforge_pairs: u32,
    /// Version of the lmforge that prepared the folder.
    pub lmforge_version: String,
    /// How pairs were made: `pairs` (two line-aligned files), `pairs-tsv`, `stream-pairs`.
    pub mode: String,
    /// One tokenizer for both sides (then `src.tokenizer == tgt.tokenizer`).
    pub shared_tokenizer: bool,
    /// Source side.
    pub src: SideMeta,
    /// Target side.
    pub tgt: SideMeta,
    /// Pairs in `train.*`.
    pub train_pairs: u64,
    /// Pairs in `val.*`.
    pub val_pairs: u64,
    /// How the val split was made, in words.
    pub split: String,
    /// The input files, as named.
    pub sources: Vec<String>,
}

impl PairsMeta {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<PairsMeta> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| DataError::BadMeta {
            path: path.to_path_buf(),
            reason: format!("corrupted pairs.json: {e}"),
        })
    }

    /// Pretty JSON bytes, newline-terminated.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self)
            .map_err(|e| DataError::InvalidOption(format!("cannot serialise pairs.json: {e}")))?;
        v.push(b'\n');
        Ok(v)
    }
}

/// A pair-data folder, opened and validated: `pairs.json`, train and val [`PairSet`]s.
#[derive(Debug, Clone)]
pub struct PairDataDir {
    /// The folder.
    pub dir: PathBuf,
    /// Its parsed `pairs.json`.
    pub meta: PairsMeta,
    /// Training pairs.
    pub train: PairSet,
    /// Validation pairs.
    pub val: PairSet,
}

impl PairDataDir {
    /// True when `dir` holds pair data (has `pairs.json`).
    pub fn is_pair_dir(dir: &Path) -> bool {
        dir.join("pairs.json").is_file()
    }

    /// Opens `dir`, checking every token file against the tokenizers in `pairs.json`.
    pub fn open(dir: &Path) -> Result<PairDataDir> {
        let meta_path = dir.join("pairs.json");
        if !meta_path.is_file() {
            return Err(DataError::BadMeta {
                path: dir.to_path_buf(),
                reason: "not a pair-data folder (no pairs.json); create it with `lmforge prepare --pairs SRC TGT --out DIR` or `--pairs-tsv FILE`".into(),
            });
        }
        let meta = PairsMeta::read(&meta_path)?;
        for side in [&meta.src, &meta.tgt] {
            super::prepare::check_file_name(&meta_path, &side.tokenizer.file)?;
        }
        let train = PairSet::open(dir, "train")?;
        let val = PairSet::open(dir, "val")?;
        for (set, name) in [(&train, "train"), (&val, "val")] {
            for (file, side, tag) in [
                (set.src_file(), &meta.src, "src"),
                (set.tgt_file(), &meta.tgt, "tgt"),
            ] {
                if file.fingerprint() != side.tokenizer.fingerprint {
                    return Err(DataError::MixedFingerprints {
                        dir: dir.to_path_buf(),
                        file_a: "pairs.json".into(),
                        fp_a: side.tokenizer.fingerprint.clone(),
                        file_b: format!("{name}.{tag}.bin"),
                        fp_b: file.fingerprint().to_string(),
                    });
                }
            }
        }
        Ok(PairDataDir {
            dir: dir.to_path_buf(),
            meta,
            train,
            val,
        })
    }

    /// The batch shape for `batch` pairs and the model's block sizes.
    pub fn shape(
        &self,
        batch: usize,
        src_block: usize,
        tgt_block: usize,
        pad_to: PadTo,
    ) -> BatchShape {
        BatchShape {
            batch,
            src_block,
            tgt_block,
            pad_to,
            src: self.meta.src.specials,
            tgt: self.meta.tgt.specials,
        }
    }

    /// A seeded training sampler over the train split.
    pub fn train_sampler(&self, shape: BatchShape, seed: u64) -> Result<PairSampler> {
        PairSampler::new(self.train.clone(), shape, seed)
    }

    /// The in-order walk over the val split.
    pub fn val_batches(&self, shape: BatchShape) -> Result<PairBatches> {
        PairBatches::new(self.val.clone(), shape)
    }

    /// Path of the source tokenizer's copy.
    pub fn src_tokenizer_path(&self) -> PathBuf {
        self.dir.join(&self.meta.src.tokenizer.file)
    }

    /// Path of the target tokenizer's copy.
    pub fn tgt_tokenizer_path(&self) -> PathBuf {
        self.dir.join(&self.meta.tgt.tokenizer.file)
    }

    /// Loads the source tokenizer.
    pub fn src_tokenizer(&self) -> Result<lmforge_tokenizer::Tokenizer> {
        Ok(lmforge_tokenizer::Tokenizer::load_file(
            &self.src_tokenizer_path(),
        )?)
    }

    /// Loads the target tokenizer.
    pub fn tgt_tokenizer(&self) -> Result<lmforge_tokenizer::Tokenizer> {
        Ok(lmforge_tokenizer::Tokenizer::load_file(
            &self.tgt_tokenizer_path(),
        )?)
    }
}
