//! One split of pair data on disk: two token files and the offsets file that keeps the
//! pairs' boundaries.
//!
//! `NAME.src.bin` and `NAME.tgt.bin` are ordinary token files (memory-mapped on reading).
//! `NAME.idx` layout, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..6 | magic `LMFIDX` |
//! | 6..8 | format version (u16, 1) |
//! | 8..16 | number of pairs `n` (u64) |
//! | 16.. | `n + 1` entries of (source offset u64, target offset u64) |
//!
//! Entry `i` is where pair `i` starts in each token file; entry `n` is each file's token
//! count. One file for both sides means a source and a target can never drift apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{DataError, Dtype, Result, TokenFile, TokenWriter};

/// Offsets file magic.
pub const IDX_MAGIC: &[u8; 6] = b"LMFIDX";
/// Offsets file format version.
pub const IDX_VERSION: u16 = 1;
const IDX_HEADER: usize = 16;

/// Paths of split `name`'s three files inside `dir`: (source, target, offsets).
pub fn split_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.src.bin")),
        dir.join(format!("{name}.tgt.bin")),
        dir.join(format!("{name}.idx")),
    )
}

/// Writes one split: tokens stream into the two token files (temp names), offsets are
/// kept in memory (16 bytes a pair) and written on [`PairWriter::finish`], which renames
/// all three into place. Dropped unfinished, nothing appears under the final names.
pub struct PairWriter {
    src: TokenWriter,
    tgt: TokenWriter,
    idx_path: PathBuf,
    offsets: Vec<(u64, u64)>,
}

impl PairWriter {
    /// Starts split `name` in `dir`; each side has its own dtype and tokenizer fingerprint.
    pub fn create(
        dir: &Path,
        name: &str,
        src: (Dtype, &str),
        tgt: (Dtype, &str),
    ) -> Result<PairWriter> {
        let (sp, tp, ip) = split_paths(dir, name);
        Ok(PairWriter {
            src: TokenWriter::create(&sp, src.0, src.1)?,
            tgt: TokenWriter::create(&tp, tgt.0, tgt.1)?,
            idx_path: ip,
            offsets: vec![(0, 0)],
        })
    }

    /// Appends one pair (tokens without special ids).
    pub fn push(&mut self, src: &[u32], tgt: &[u32]) -> Result<()> {
        self.src.push(src)?;
        self.tgt.push(tgt)?;
        self.offsets.push((self.src.count(), self.tgt.count()));
        Ok(())
    }

    /// Pairs written so far.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// True before the first pair.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the offsets file and renames everything into place; returns the pair count.
    pub fn finish(self) -> Result<usize> {
        let n = self.len();
        let mut b = Vec::with_capacity(IDX_HEADER + 16 * self.offsets.len());
        b.extend_from_slice(IDX_MAGIC);
        b.extend_from_slice(&IDX_VERSION.to_le_bytes());
        b.extend_from_slice(&(n as u64).to_le_bytes());
        for &(s, t) in &self.offsets {
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&t.to_le_bytes());
        }
        self.src.finish()?;
        self.tgt.finish()?;
        lmforge_files::write_atomic(&self.idx_path, &b)
            .map_err(|e| DataError::io(&self.idx_path, e))?;
        Ok(n)
    }
}

/// One split of pairs, opened and validated: memory-mapped tokens, offsets in memory.
#[derive(Debug, Clone)]
pub struct PairSet {
    src: Arc<TokenFile>,
    tgt: Arc<TokenFile>,
    /// `n + 1` (source, target) start offsets.
    offsets: Arc<Vec<(u64, u64)>>,
}

impl PairSet {
    /// Opens split `name` in `dir`, checking the offsets file against both token files.
    pub fn open(dir: &Path, name: &str) -> Result<PairSet> {
        let (sp, tp, ip) = split_paths(dir, name);
        let src = TokenFile::open(&sp)?;
        let tgt = TokenFile::open(&tp)?;
        let bytes = std::fs::read(&ip).map_err(|e| DataError::io(&ip, e))?;
        let offsets = parse_idx(&ip, &bytes, src.len(), tgt.len())?;
        Ok(PairSet {
            src: Arc::new(src),
            tgt: Arc::new(tgt),
            offsets: Arc::new(offsets),
        })
    }

    /// A pair set held in memory (tests, and `--stream-pairs` previews).
    pub fn from_pairs(dir: &Path, name: &str, pairs: &[(Vec<u32>, Vec<u32>)]) -> Result<PairSet> {
        let mut w = PairWriter::create(dir, name, (Dtype::U32, "mem"), (Dtype::U32, "mem"))?;
        for (s, t) in pairs {
            w.push(s, t)?;
        }
        w.finish()?;
        PairSet::open(dir, name)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// True when the split holds no pairs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Source length of pair `i` in tokens.
    pub fn src_len(&self, i: usize) -> usize {
        (self.offsets[i + 1].0 - self.offsets[i].0) as usize
    }

    /// Target length of pair `i` in tokens (without `<bos>`/`<eos>`).
    pub fn tgt_len(&self, i: usize) -> usize {
        (self.offsets[i + 1].1 - self.offsets[i].1) as usize
    }

    /// Copies the first `out.len()` source tokens of pair `i` (`out.len() <= src_len(i)`).
    pub fn read_src(&self, i: usize, out: &mut [u32]) {
        self.src.read_into(self.offsets[i].0, out);
    }

    /// Copies the first `out.len()` target tokens of pair `i` (`out.len() <= tgt_len(i)`).
    pub fn read_tgt(&self, i: usize, out: &mut [u32]) {
        self.tgt.read_into(self.offsets[i].1, out);
    }

    /// Pair `i` as two vectors (evaluation and tests).
    pub fn pair(&self, i: usize) -> (Vec<u32>, Vec<u32>) {
        let mut s = vec![0; self.src_len(i)];
        let mut t = vec![0; self.tgt_len(i)];
        self.read_src(i, &mut s);
        self.read_tgt(i, &mut t);
        (s, t)
    }

    /// The source token file (its header carries the source tokenizer's fingerprint).
    pub fn src_file(&self) -> &TokenFile {
        &self.src
    }

    /// The target token file.
    pub fn tgt_file(&self) -> &TokenFile {
        &self.tgt
    }
}

fn parse_idx(path: &Path, b: &[u8], src_tokens: u64, tgt_tokens: u64) -> Result<Vec<(u64, u64)>> {
    let bad = |reason: String| DataError::BadMeta {
        path: path.to_path_buf(),
        reason: format!("{reason}; run `lmforge prepare` again"),
    };
    if b.len() < IDX_HEADER || &b[0..6] != IDX_MAGIC {
        return Err(bad("not an lmforge pair offsets file (bad magic)".into()));
    }
    let version = u16::from_le_bytes([b[6], b[7]]);
    if version != IDX_VERSION {
        return Err(bad(format!(
            "offsets format version {version} is not supported (this lmforge reads {IDX_VERSION})"
        )));
    }
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let n = u64_at(8);
    let expected = n
        .checked_add(1)
        .and_then(|e| e.checked_mul(16))
        .and_then(|e| e.checked_add(IDX_HEADER as u64));
    if expected != Some(b.len() as u64) {
        return Err(bad(format!(
            "truncated or corrupted: header says {n} pairs but the file has {} bytes",
            b.len()
        )));
    }
    let offsets: Vec<(u64, u64)> = (0..=n as usize)
        .map(|i| (u64_at(IDX_HEADER + 16 * i), u64_at(IDX_HEADER + 16 * i + 8)))
        .collect();
    if offsets[0] != (0, 0)
        || offsets
            .windows(2)
            .any(|w| w[1].0 < w[0].0 || w[1].1 < w[0].1)
    {
        return Err(bad("offsets do not start at 0 or go backwards".into()));
    }
    if offsets[n as usize] != (src_tokens, tgt_tokens) {
        return Err(bad(format!(
            "offsets end at {:?} but the token files hold ({src_tokens}, {tgt_tokens}) tokens",
            offsets[n as usize]
        )));
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Vec<(Vec<u32>, Vec<u32>)> {
        vec![
            (vec![1, 2, 3], vec![4]),
            (vec![5], vec![6, 7, 8, 9]),
            (vec![10, 11], vec![12, 13]),
        ]
    }

    #[test]
    fn round_trips_pairs_and_boundaries() {
        let d = tempfile::tempdir().unwrap();
        let set = PairSet::from_pairs(d.path(), "train", &pairs()).unwrap();
        assert_eq!(set.len(), 3);
        for (i, p) in pairs().iter().enumerate() {
            assert_eq!(&set.pair(i), p);
        }
        assert_eq!((set.src_len(1), set.tgt_len(1)), (1, 4));
    }

    #[test]
    fn refuses_corrupted_offsets() {
        let d = tempfile::tempdir().unwrap();
        PairSet::from_pairs(d.path(), "train", &pairs()).unwrap();
        let idx = d.path().join("train.idx");
        let good = std::fs::read(&idx).unwrap();
        // Truncated.
        std::fs::write(&idx, &good[..good.len() - 1]).unwrap();
        let e = PairSet::open(d.path(), "train").unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        // Last offset disagrees with the token files.
        let mut bad = good.clone();
        let last = bad.len() - 16;
        bad[last] = 99;
        std::fs::write(&idx, &bad).unwrap();
        let e = PairSet::open(d.path(), "train").unwrap_err().to_string();
        assert!(e.contains("token files hold (6, 7)"), "{e}");
        // Going backwards.
        let mut bad = good.clone();
        bad[IDX_HEADER + 16] = 200;
        std::fs::write(&idx, &bad).unwrap();
        let e = PairSet::open(d.path(), "train").unwrap_err().to_string();
        assert!(e.contains("backwards"), "{e}");
        // Bad magic.
        std::fs::write(&idx, b"nonsense-nonsense").unwrap();
        let e = PairSet::open(d.path(), "train").unwrap_err().to_string();
        assert!(e.contains("magic"), "{e}");
    }

    #[test]
    fn unfinished_writer_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut w =
            PairWriter::create(d.path(), "val", (Dtype::U16, "a"), (Dtype::U16, "b")).unwrap();
        w.push(&[1], &[2]).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
