//! Training batches of pairs (seeded, bucketed by length, resumable) and the in-order
//! walk over all pairs for evaluation.
//!
//! Bucketing, as fairseq and tensor2tensor do it in spirit: each epoch shuffles all pairs,
//! cuts the shuffled order into pools of `batch × POOL_BATCHES` pairs, sorts each pool by
//! (source length, target length), cuts it into batches, and shuffles the batches. Pairs of
//! similar length then share a batch (little padding) while every epoch still visits every
//! pair once in a random order. The epoch's plan is a pure function of (seed, epoch), so the
//! state to resume is just the position in it.

use serde::{Deserialize, Serialize};

use super::batch::BatchShape;
use super::{PairBatch, PairSet};
use crate::sampler::Rng;
use crate::{DataError, Result};

/// Batches per sorting pool.
pub const POOL_BATCHES: usize = 50;

/// Everything needed to continue drawing exactly where a run stopped (store it in the
/// trainer's `state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairSamplerState {
    /// Seeds every epoch's shuffle.
    pub seed: u64,
    /// Pairs per batch.
    pub batch: usize,
    /// Pairs in the split the state was made on.
    pub pairs: usize,
    /// Completed epochs.
    pub epoch: u64,
    /// Index of the next batch within the epoch.
    pub next_batch: usize,
    /// Batches drawn so far.
    pub batches: u64,
}

/// Draws training batches from a [`PairSet`]; see the module docs.
#[derive(Debug, Clone)]
pub struct PairSampler {
    set: PairSet,
    shape: BatchShape,
    state: PairSamplerState,
    /// This epoch's plan: batch `k` is `plan[k·B..(k+1)·B]`.
    plan: Vec<usize>,
}

impl PairSampler {
    /// A sampler of batches shaped by `shape`, shuffled from `seed`.
    pub fn new(set: PairSet, shape: BatchShape, seed: u64) -> Result<PairSampler> {
        shape.check()?;
        if set.is_empty() {
            return Err(DataError::InvalidOption(
                "the pair split is empty; prepare more pairs".into(),
            ));
        }
        let state = PairSamplerState {
            seed,
            batch: shape.batch,
            pairs: set.len(),
            epoch: 0,
            next_batch: 0,
            batches: 0,
        };
        let plan = epoch_plan(&set, shape.batch, seed, 0);
        Ok(PairSampler {
            set,
            shape,
            state,
            plan,
        })
    }

    /// Continues from a saved state; errors if it was made for another batch size or split.
    pub fn resume(set: PairSet, shape: BatchShape, state: PairSamplerState) -> Result<PairSampler> {
        let mut s = PairSampler::new(set, shape, state.seed)?;
        if (s.state.batch, s.state.pairs) != (state.batch, state.pairs)
            || state.next_batch >= s.batches_per_epoch()
        {
            return Err(DataError::StateMismatch {
                what_state: format!("batch {} on {} pairs", state.batch, state.pairs),
                what_self: format!("batch {} on {} pairs", s.state.batch, s.state.pairs),
            });
        }
        s.plan = epoch_plan(&s.set, state.batch, state.seed, state.epoch);
        s.state = state;
        Ok(s)
    }

    /// The current state (serialise it with serde).
    pub fn state(&self) -> &PairSamplerState {
        &self.state
    }

    /// Completed epochs.
    pub fn epoch(&self) -> u64 {
        self.state.epoch
    }

    /// Batches in one epoch: `⌈pairs / batch⌉` (the last is topped up from the epoch's start).
    pub fn batches_per_epoch(&self) -> usize {
        self.plan.len() / self.shape.batch
    }

    /// The shape rules batches are built with.
    pub fn shape(&self) -> &BatchShape {
        &self.shape
    }

    /// Fills `out` with the next batch.
    pub fn next_batch(&mut self, out: &mut PairBatch) {
        let b = self.shape.batch;
        let k = self.state.next_batch;
        out.fill(&self.set, &self.plan[k * b..(k + 1) * b], &self.shape);
        self.state.batches += 1;
        self.state.next_batch += 1;
        if self.state.next_batch == self.batches_per_epoch() {
            self.state.next_batch = 0;
            self.state.epoch += 1;
            self.plan = epoch_plan(&self.set, b, self.state.seed, self.state.epoch);
        }
    }
}

/// Epoch `epoch`'s order: shuffled, topped up to whole batches, length-sorted within pools,
/// batches shuffled.
fn epoch_plan(set: &PairSet, batch: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let n = set.len();
    let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, &mut rng);
    let whole = n.div_ceil(batch) * batch;
    for k in n..whole {
        order.push(order[k % n]);
    }
    for pool in order.chunks_mut(batch * POOL_BATCHES) {
        pool.sort_by_key(|&i| (set.src_len(i), set.tgt_len(i)));
    }
    let mut batches: Vec<usize> = (0..whole / batch).collect();
    shuffle(&mut batches, &mut rng);
    batches
        .iter()
        .flat_map(|&k| order[k * batch..(k + 1) * batch].iter().copied())
        .collect()
}

/// Fisher–Yates.
fn shuffle(v: &mut [usize], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// Every pair once, in file order, `batch` at a time (the last batch may be smaller): the
/// evaluation walk, so losses and BLEU cover the whole split deterministically.
#[derive(Debug, Clone)]
pub struct PairBatches {
    set: PairSet,
    shape: BatchShape,
}

impl PairBatches {
    /// The walk over `set` in batches shaped by `shape`.
    pub fn new(set: PairSet, shape: BatchShape) -> Result<PairBatches> {
        shape.check()?;
        Ok(PairBatches { set, shape })
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.set.len().div_ceil(self.shape.batch)
    }

    /// True when the split holds no pairs.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The pair indices of batch `i`.
    pub fn rows(&self, i: usize) -> std::ops::Range<usize> {
        let b = self.shape.batch;
        (i * b).min(self.set.len())..((i + 1) * b).min(self.set.len())
    }

    /// Fills `out` with batch `i`; errors when `i >= len()`.
    pub fn fill(&self, i: usize, out: &mut PairBatch) -> Result<()> {
        if i >= self.len() {
            return Err(DataError::InvalidOption(format!(
                "pair batch {i} out of range (have {})",
                self.len()
            )));
        }
        let rows: Vec<usize> = self.rows(i).collect();
        out.fill(&self.set, &rows, &self.shape);
        Ok(())
    }

    /// The pair set walked.
    pub fn set(&self) -> &PairSet {
        &self.set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::{PadTo, Specials};

    fn set(dir: &std::path::Path, n: usize) -> PairSet {
        // Pair i: source of 1 + i % 7 tokens (all = i), target of 1 + i % 3 tokens.
        let pairs: Vec<_> = (0..n)
            .map(|i| (vec![i as u32; 1 + i % 7], vec![i as u32; 1 + i % 3]))
            .collect();
        PairSet::from_pairs(dir, "t", &pairs).unwrap()
    }

    fn shape(batch: usize) -> BatchShape {
        BatchShape {
            batch,
            src_block: 16,
            tgt_block: 16,
            pad_to: PadTo::Longest,
            src: Specials::after(1000),
            tgt: Specials::after(1000),
        }
    }

    fn first_tokens(b: &PairBatch) -> Vec<u32> {
        (0..b.batch).map(|r| b.src[r * b.src_len]).collect()
    }

    #[test]
    fn an_epoch_visits_every_pair_and_buckets_lengths() {
        let d = tempfile::tempdir().unwrap();
        let s = set(d.path(), 1000);
        let mut sampler = PairSampler::new(s, shape(10), 7).unwrap();
        assert_eq!(sampler.batches_per_epoch(), 100);
        let mut seen = vec![0; 1000];
        let mut b = PairBatch::default();
        let (mut padded, mut real) = (0, 0);
        for _ in 0..100 {
            sampler.next_batch(&mut b);
            for id in first_tokens(&b) {
                seen[id as usize] += 1;
            }
            padded += b.batch * b.src_len;
            real += b.src_lens.iter().sum::<usize>();
        }
        assert!(seen.iter().all(|&c| c == 1));
        assert_eq!(sampler.epoch(), 1);
        // Sorted pools of 500 pairs over 7 lengths: almost no source padding (unsorted
        // batches of 10 would pad to ~7 everywhere: real/padded ≈ 4/7).
        assert!(real as f64 / padded as f64 > 0.95, "{real}/{padded}");
    }

    #[test]
    fn seeded_resumable_and_topped_up() {
        let d = tempfile::tempdir().unwrap();
        let s = set(d.path(), 23);
        let mut a = PairSampler::new(s.clone(), shape(5), 3).unwrap();
        assert_eq!(a.batches_per_epoch(), 5);
        let mut b = PairBatch::default();
        for _ in 0..7 {
            a.next_batch(&mut b);
        }
        let saved = a.state().clone();
        let json = serde_json::to_string(&saved).unwrap();
        let mut resumed =
            PairSampler::resume(s.clone(), shape(5), serde_json::from_str(&json).unwrap()).unwrap();
        let mut c = PairBatch::default();
        for _ in 0..6 {
            a.next_batch(&mut b);
            resumed.next_batch(&mut c);
            assert_eq!(b, c);
        }
        // Another seed gives another order.
        let mut x = PairSampler::new(s.clone(), shape(5), 3).unwrap();
        let mut y = PairSampler::new(s.clone(), shape(5), 4).unwrap();
        let (mut bx, mut by) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            x.next_batch(&mut b);
            bx.extend(first_tokens(&b));
            y.next_batch(&mut b);
            by.extend(first_tokens(&b));
        }
        assert_ne!(bx, by);
        // 23 pairs in batches of 5: every pair once plus 2 repeats.
        let mut sorted = bx.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!((bx.len(), sorted.len()), (25, 23));
        // A state for another batch size is refused.
        assert!(PairSampler::resume(s, shape(4), saved).is_err());
    }

    #[test]
    fn eval_walk_is_in_order_with_a_short_last_batch() {
        let d = tempfile::tempdir().unwrap();
        let w = PairBatches::new(set(d.path(), 11), shape(4)).unwrap();
        assert_eq!(w.len(), 3);
        let mut b = PairBatch::default();
        let mut all = Vec::new();
        for i in 0..w.len() {
            w.fill(i, &mut b).unwrap();
            all.extend(first_tokens(&b));
        }
        assert_eq!(all, (0..11).collect::<Vec<u32>>());
        assert_eq!(b.batch, 3);
        assert!(w.fill(3, &mut b).is_err());
    }
}
