//! [`PairBatch`]: pairs padded into the three row-major arrays an encoder–decoder trains on.

use serde::{Deserialize, Serialize};

use super::{PairSet, Specials};
use crate::{DataError, Result};

/// Target value at padded positions: the cross-entropy op skips it (nanoGPT's `-1`, the
/// same as `lmforge_model`'s ignore index).
pub const IGNORE: i32 = -1;

/// How far a batch is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PadTo {
    /// To the longest source and target in the batch (fewest wasted positions; shapes vary
    /// from batch to batch, never above the block sizes).
    #[default]
    Longest,
    /// Always to `src_block` × `tgt_block` (one shape for every batch).
    Block,
}

/// The shape rules a batch is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchShape {
    /// Pairs per batch.
    pub batch: usize,
    /// Longest source the model takes (`src_block_size`); longer sources are cut.
    pub src_block: usize,
    /// Longest decoder sequence (`tgt_block_size`): targets keep `tgt_block - 1` tokens so
    /// that `<bos>` + target and target + `<eos>` fit.
    pub tgt_block: usize,
    /// Padding rule.
    pub pad_to: PadTo,
    /// Source special ids (its `pad` fills source padding).
    pub src: Specials,
    /// Target special ids.
    pub tgt: Specials,
}

impl BatchShape {
    /// Errors unless the sizes can hold a pair (`batch, src_block ≥ 1`, `tgt_block ≥ 2`).
    pub fn check(&self) -> Result<()> {
        if self.batch == 0 || self.src_block == 0 || self.tgt_block < 2 {
            return Err(DataError::InvalidOption(format!(
                "pair batches need batch ≥ 1 (got {}), src_block_size ≥ 1 (got {}) and tgt_block_size ≥ 2 (got {}: <bos>/<eos> plus one token)",
                self.batch, self.src_block, self.tgt_block
            )));
        }
        Ok(())
    }
}

/// A padded batch of pairs. Row-major arrays; `B = batch`, `S = src_len`, `T = tgt_len`.
/// Vectors keep their capacity between fills, so refilling allocates nothing once the
/// largest shape has been seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairBatch {
    /// Pairs in this batch (`B`; an evaluation batch's last may be smaller).
    pub batch: usize,
    /// Padded source length `S` (≤ `src_block`).
    pub src_len: usize,
    /// Padded decoder length `T` (≤ `tgt_block`).
    pub tgt_len: usize,
    /// Source tokens `[B,S]`, padded with the source `<pad>`.
    pub src: Vec<u32>,
    /// Real source length of each row `[B]` (the encoder's key padding mask).
    pub src_lens: Vec<usize>,
    /// Decoder input `[B,T]`: `<bos>` + target, padded with the target `<pad>`.
    pub tgt_in: Vec<u32>,
    /// Decoder targets `[B,T]`: target + `<eos>`, [`IGNORE`] at padded positions.
    pub tgt_out: Vec<i32>,
    /// Real decoder length of each row `[B]` (target tokens + 1).
    pub tgt_lens: Vec<usize>,
    /// Source `<pad>` id.
    pub src_pad_id: u32,
    /// Target `<pad>` id.
    pub tgt_pad_id: u32,
    /// Rows whose source or target was cut to fit the block sizes.
    pub truncated: usize,
}

impl PairBatch {
    /// Non-padded target positions (the loss's denominator).
    pub fn target_tokens(&self) -> usize {
        self.tgt_lens.iter().sum()
    }

    /// Fills the batch with pairs `rows` of `set` under `shape`.
    pub fn fill(&mut self, set: &PairSet, rows: &[usize], shape: &BatchShape) {
        let b = rows.len();
        let (sb, tb) = (shape.src_block, shape.tgt_block);
        self.batch = b;
        self.src_pad_id = shape.src.pad;
        self.tgt_pad_id = shape.tgt.pad;
        self.truncated = 0;
        self.src_lens.clear();
        self.tgt_lens.clear();
        for &i in rows {
            let (s, t) = (set.src_len(i), set.tgt_len(i));
            if s > sb || t + 1 > tb {
                self.truncated += 1;
            }
            self.src_lens.push(s.min(sb));
            self.tgt_lens.push(t.min(tb - 1) + 1);
        }
        (self.src_len, self.tgt_len) = match shape.pad_to {
            PadTo::Block => (sb, tb),
            PadTo::Longest => (
                self.src_lens.iter().copied().max().unwrap_or(0).max(1),
                self.tgt_lens.iter().copied().max().unwrap_or(1),
            ),
        };
        let (s_len, t_len) = (self.src_len, self.tgt_len);
        self.src.clear();
        self.src.resize(b * s_len, shape.src.pad);
        self.tgt_in.clear();
        self.tgt_in.resize(b * t_len, shape.tgt.pad);
        self.tgt_out.clear();
        self.tgt_out.resize(b * t_len, IGNORE);
        for (r, &i) in rows.iter().enumerate() {
            let sl = self.src_lens[r];
            set.read_src(i, &mut self.src[r * s_len..r * s_len + sl]);
            // [T] row: in = <bos> t0 .. t(n-1), out = t0 .. t(n-1) <eos>, n = tgt_lens - 1.
            let n = self.tgt_lens[r] - 1;
            let row_in = &mut self.tgt_in[r * t_len..(r + 1) * t_len];
            row_in[0] = shape.tgt.bos;
            set.read_tgt(i, &mut row_in[1..1 + n]);
            let row_out = &mut self.tgt_out[r * t_len..(r + 1) * t_len];
            for j in 0..n {
                row_out[j] = row_in[j + 1] as i32;
            }
            row_out[n] = shape.tgt.eos as i32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(pad_to: PadTo, src_block: usize, tgt_block: usize) -> BatchShape {
        BatchShape {
            batch: 2,
            src_block,
            tgt_block,
            pad_to,
            src: Specials::after(100),
            tgt: Specials::after(50),
        }
    }

    #[test]
    fn pads_shifts_and_ignores() {
        let d = tempfile::tempdir().unwrap();
        let set = PairSet::from_pairs(
            d.path(),
            "t",
            &[(vec![1, 2, 3], vec![7]), (vec![4], vec![8, 9])],
        )
        .unwrap();
        let mut b = PairBatch::default();
        b.fill(&set, &[0, 1], &shape(PadTo::Longest, 8, 8));
        let (sp, bos, eos, tp) = (100, 51, 52, 50);
        assert_eq!((b.batch, b.src_len, b.tgt_len), (2, 3, 3));
        assert_eq!(b.src, vec![1, 2, 3, 4, sp, sp]);
        assert_eq!(b.src_lens, vec![3, 1]);
        assert_eq!(b.tgt_in, vec![bos, 7, tp, bos, 8, 9]);
        assert_eq!(b.tgt_out, vec![7, eos, IGNORE, 8, 9, eos]);
        assert_eq!(b.tgt_lens, vec![2, 3]);
        assert_eq!((b.target_tokens(), b.truncated), (5, 0));

        b.fill(&set, &[1], &shape(PadTo::Block, 4, 5));
        assert_eq!((b.batch, b.src_len, b.tgt_len), (1, 4, 5));
        assert_eq!(b.src, vec![4, sp, sp, sp]);
        assert_eq!(b.tgt_out, vec![8, 9, eos, IGNORE, IGNORE]);
    }

    #[test]
    fn truncates_to_the_block_sizes_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let set = PairSet::from_pairs(
            d.path(),
            "t",
            &[(vec![1, 2, 3], vec![7, 8, 9]), (vec![4], vec![8])],
        )
        .unwrap();
        let mut b = PairBatch::default();
        b.fill(&set, &[0, 1], &shape(PadTo::Longest, 2, 3));
        assert_eq!((b.src_len, b.tgt_len, b.truncated), (2, 3, 1));
        assert_eq!(b.src, vec![1, 2, 4, 100]);
        // Target cut to tgt_block - 1 = 2 tokens, then <eos>.
        assert_eq!(b.tgt_in, vec![51, 7, 8, 51, 8, 50]);
        assert_eq!(b.tgt_out, vec![7, 8, 52, 8, 52, IGNORE]);
    }
}
