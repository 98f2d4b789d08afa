//! Batch sampling from a token file: random windows (nanoGPT's `get_batch`) or sequential
//! epochs, written into caller-provided buffers, with a serialisable state for resuming.
//!
//! A batch is `x: [batch, block]` (u32 token ids) and `y: [batch, block]` (i32 targets, `x`
//! shifted by one). Nothing is allocated per batch: the model's planned buffers are filled
//! in place straight from the memory map.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{DataError, Result, TokenFile};

/// xoshiro256** (Blackman & Vigna): small, fast, and its whole state is four u64s, so it
/// serialises into `state.json` exactly. Seeded through SplitMix64 as its authors advise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2⁻⁶⁴·n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// How windows are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Sampling {
    /// Independent uniformly random windows (nanoGPT): start in `0..len - block`.
    Random {
        /// Seeds the window generator: the same seed gives the same batches.
        seed: u64,
    },
    /// Non-overlapping windows in file order (`start = k·block`), wrapping into a new epoch.
    Sequential,
}

/// Everything needed to continue sampling exactly where a run stopped. Store it in the
/// trainer's `state.json` ([`BatchSampler::state`]) and pass it to
/// [`BatchSampler::resume`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// How windows are chosen (with the seed, in random mode).
    pub sampling: Sampling,
    /// Windows per batch.
    pub batch: usize,
    /// Tokens per window (the model's block size).
    pub block: usize,
    /// Tokens in the file the state was made on (a different file cannot resume it).
    pub tokens: u64,
    /// Random mode: the generator's state.
    pub rng: Rng,
    /// Sequential mode: completed epochs.
    pub epoch: u64,
    /// Sequential mode: index of the next window within the epoch.
    pub next_window: u64,
    /// Batches drawn so far.
    pub batches: u64,
}

/// Draws `(x, y)` batches from a token file. See the module docs.
#[derive(Debug)]
pub struct BatchSampler {
    file: Arc<TokenFile>,
    state: SamplerState,
}

impl BatchSampler {
    /// A sampler of `batch` rows of `block` tokens. Errors when the file is shorter than
    /// `block + 1` tokens (one input window plus its shifted target).
    pub fn new(
        file: Arc<TokenFile>,
        batch: usize,
        block: usize,
        sampling: Sampling,
    ) -> Result<BatchSampler> {
        if batch == 0 || block == 0 {
            return Err(DataError::InvalidOption(format!(
                "batch ({batch}) and block ({block}) must be at least 1"
            )));
        }
        check_len(&file, block)?;
        let seed = match sampling {
            Sampling::Random { seed } => seed,
            Sampling::Sequential => 0,
        };
        let state = SamplerState {
            sampling,
            batch,
            block,
            tokens: file.len(),
            rng: Rng::new(seed),
            epoch: 0,
            next_window: 0,
            batches: 0,
        };
        Ok(BatchSampler { file, state })
    }

    /// Continues from a saved [`SamplerState`]; errors if it was made for another shape or
    /// another file length.
    pub fn resume(file: Arc<TokenFile>, state: SamplerState) -> Result<BatchSampler> {
        let fresh = BatchSampler::new(file, state.batch, state.block, state.sampling)?;
        if fresh.state.tokens != state.tokens {
            return Err(DataError::StateMismatch {
                what_state: format!("a file of {} tokens", state.tokens),
                what_self: format!("on a file of {} tokens", fresh.state.tokens),
            });
        }
        Ok(BatchSampler {
            file: fresh.file,
            state,
        })
    }

    /// The current state (cheap to clone; serialise it with serde).
    pub fn state(&self) -> &SamplerState {
        &self.state
    }

    /// Completed epochs (sequential mode; in random mode, tokens seen / file length).
    pub fn epoch(&self) -> u64 {
        match self.state.sampling {
            Sampling::Sequential => self.state.epoch,
            Sampling::Random { .. } => {
                self.state.batches * (self.state.batch * self.state.block) as u64
                    / self.state.tokens.max(1)
            }
        }
    }

    /// Windows per sequential epoch: `(len - 1) / block`.
    pub fn windows_per_epoch(&self) -> u64 {
        (self.file.len() - 1) / self.state.block as u64
    }

    /// Fills `x` and `y` (each `batch × block`, row-major) with the next batch.
    pub fn next_batch(&mut self, x: &mut [u32], y: &mut [i32]) -> Result<()> {
        let (batch, block) = (self.state.batch, self.state.block);
        check_buffers(x, y, batch, block)?;
        let windows = self.windows_per_epoch();
        let random_range = self.file.len() - block as u64;
        for (xr, yr) in x.chunks_exact_mut(block).zip(y.chunks_exact_mut(block)) {
            let start = match self.state.sampling {
                Sampling::Random { .. } => self.state.rng.below(random_range),
                Sampling::Sequential => {
                    let s = self.state.next_window * block as u64;
                    self.state.next_window += 1;
                    if self.state.next_window == windows {
                        self.state.next_window = 0;
                        self.state.epoch += 1;
                    }
                    s
                }
            };
            self.file.read_xy(start, xr, yr);
        }
        self.state.batches += 1;
        Ok(())
    }
}

fn check_len(file: &TokenFile, block: usize) -> Result<()> {
    if file.len() < block as u64 + 1 {
        return Err(DataError::SplitTooSmall {
            split: file.path().display().to_string(),
            tokens: file.len(),
            block_size: block,
            needed: block as u64 + 1,
            hint: "use a smaller block size or more text".into(),
        });
    }
    Ok(())
}

fn check_buffers(x: &[u32], y: &[i32], batch: usize, block: usize) -> Result<()> {
    let needed = batch * block;
    for got in [x.len(), y.len()] {
        if got != needed {
            return Err(DataError::BufferSize {
                got,
                needed,
                batch,
                block,
            });
        }
    }
    Ok(())
}

/// A fixed set of validation batches, determined by a seed, so every evaluation of a run
/// (and of runs with the same seed) sees the same windows and loss curves are comparable.
#[derive(Debug, Clone)]
pub struct EvalBatches {
    file: Arc<TokenFile>,
    batch: usize,
    block: usize,
    starts: Vec<u64>,
}

impl EvalBatches {
    /// `n_batches` batches of random windows drawn from `seed`.
    pub fn new(
        file: Arc<TokenFile>,
        n_batches: usize,
        batch: usize,
        block: usize,
        seed: u64,
    ) -> Result<EvalBatches> {
        if batch == 0 || block == 0 || n_batches == 0 {
            return Err(DataError::InvalidOption(
                "eval batches, batch and block must be at least 1".into(),
            ));
        }
        check_len(&file, block)?;
        let mut rng = Rng::new(seed);
        let range = file.len() - block as u64;
        let starts = (0..n_batches * batch).map(|_| rng.below(range)).collect();
        Ok(EvalBatches {
            file,
            batch,
            block,
            starts,
        })
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.starts.len() / self.batch
    }

    /// True when there are no batches (the split is shorter than one).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Fills `x`, `y` with batch `i` (`i < len()`).
    pub fn fill(&self, i: usize, x: &mut [u32], y: &mut [i32]) -> Result<()> {
        check_buffers(x, y, self.batch, self.block)?;
        let starts = self
            .starts
            .get(i * self.batch..(i + 1) * self.batch)
            .ok_or_else(|| {
                DataError::InvalidOption(format!(
                    "eval batch {i} out of range (have {})",
                    self.len()
                ))
            })?;
        for ((xr, yr), &s) in x
            .chunks_exact_mut(self.block)
            .zip(y.chunks_exact_mut(self.block))
            .zip(starts)
        {
            self.file.read_xy(s, xr, yr);
        }
        Ok(())
    }
}
