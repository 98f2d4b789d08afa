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
    /// A window at every token offset (`start = 0..len - block`), each once per epoch, in
    /// an order shuffled per epoch (the transformer seed's Dataset with `shuffle=True`).
    Stride1 {
        /// Seeds the per-epoch order.
        seed: u64,
    },
    /// Each row takes the next document of a per-epoch shuffled order and a uniformly random
    /// window inside it (the LM seed: one random window per shard file per item). Needs the
    /// documents' boundaries ([`BatchSampler::with_documents`]).
    #[serde(rename = "per-document")]
    PerDocument {
        /// Seeds the document order and the windows.
        seed: u64,
    },
}

/// A pseudo-random permutation of `0..n` for one epoch: `i ↦ (a·i + c) mod n` with `a`
/// coprime to `n`, drawn from `(seed, epoch)`. A bijection that needs no memory, so an epoch
/// over millions of windows costs nothing to set up and a resumed run recomputes it.
fn epoch_permutation(seed: u64, epoch: u64, n: u64) -> impl Fn(u64) -> u64 {
    let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let c = rng.below(n.max(1));
    let mut a = 1;
    if n > 2 {
        loop {
            a = 1 + rng.below(n - 1);
            if gcd(a, n) == 1 {
                break;
            }
        }
    }
    move |i| ((a as u128 * i as u128 + c as u128) % n.max(1) as u128) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
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
    /// Per-document mode: each document's `(start, tokens)` in the file.
    documents: Vec<(u64, u64)>,
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
            Sampling::Random { seed }
            | Sampling::Stride1 { seed }
            | Sampling::PerDocument { seed } => seed,
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
        Ok(BatchSampler {
            file,
            state,
            documents: Vec::new(),
        })
    }

    /// Gives per-document sampling its documents: `(start, tokens)` ranges of the file
    /// (e.g. [`crate::meta::Meta::train_documents`]). Empty documents are dropped; a range
    /// past the end of the file is refused.
    pub fn with_documents(mut self, documents: Vec<(u64, u64)>) -> Result<BatchSampler> {
        let len = self.file.len();
        if let Some(&(s, n)) = documents.iter().find(|&&(s, n)| s + n > len) {
            return Err(DataError::InvalidOption(format!(
                "document {s}..{} is past the end of {} ({len} tokens)",
                s + n,
                self.file.path().display()
            )));
        }
        self.documents = documents.into_iter().filter(|&(_, n)| n > 0).collect();
        Ok(self)
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
            documents: Vec::new(),
        })
    }

    /// The current state (cheap to clone; serialise it with serde).
    pub fn state(&self) -> &SamplerState {
        &self.state
    }

    /// Completed epochs (sequential mode; in random mode, tokens seen / file length).
    pub fn epoch(&self) -> u64 {
        match self.state.sampling {
            Sampling::Sequential | Sampling::Stride1 { .. } | Sampling::PerDocument { .. } => {
                self.state.epoch
            }
            Sampling::Random { .. } => {
                self.state.batches * (self.state.batch * self.state.block) as u64
                    / self.state.tokens.max(1)
            }
        }
    }

    /// Windows per epoch: `(len - 1) / block` (sequential and random), `len - block`
    /// (stride 1), the number of documents (per-document).
    pub fn windows_per_epoch(&self) -> u64 {
        match self.state.sampling {
            Sampling::Stride1 { .. } => self.file.len() - self.state.block as u64,
            Sampling::PerDocument { .. } => self.documents.len() as u64,
            _ => (self.file.len() - 1) / self.state.block as u64,
        }
    }

    /// Moves to the next window of the epoch; returns the index of the current one.
    fn advance(&mut self, windows: u64) -> u64 {
        let i = self.state.next_window;
        self.state.next_window += 1;
        if self.state.next_window >= windows {
            self.state.next_window = 0;
            self.state.epoch += 1;
        }
        i
    }

    /// Start of the next window in stride-1 or per-document mode.
    fn next_shuffled_start(&mut self, seed: u64, windows: u64) -> u64 {
        let block = self.state.block as u64;
        let epoch = self.state.epoch;
        let i = epoch_permutation(seed, epoch, windows)(self.advance(windows));
        let Sampling::PerDocument { .. } = self.state.sampling else {
            return i;
        };
        let (start, tokens) = self.documents[i as usize];
        // a window inside the document; a short one spills into what follows it
        let inside = if tokens > block {
            self.state.rng.below(tokens - block)
        } else {
            0
        };
        (start + inside).min(self.file.len() - block - 1)
    }

    /// Fills `x` and `y` (each `batch × block`, row-major) with the next batch.
    pub fn next_batch(&mut self, x: &mut [u32], y: &mut [i32]) -> Result<()> {
        let (batch, block) = (self.state.batch, self.state.block);
        check_buffers(x, y, batch, block)?;
        let windows = self.windows_per_epoch();
        if windows == 0 {
            return Err(DataError::InvalidOption(
                "per-document sampling needs the documents' boundaries (none were given)".into(),
            ));
        }
        let random_range = self.file.len() - block as u64;
        for (xr, yr) in x.chunks_exact_mut(block).zip(y.chunks_exact_mut(block)) {
            let start = match self.state.sampling {
                Sampling::Random { .. } => self.state.rng.below(random_range),
                Sampling::Sequential => self.advance(windows) * block as u64,
                Sampling::Stride1 { seed } | Sampling::PerDocument { seed } => {
                    self.next_shuffled_start(seed, windows)
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
    /// Per row: leading targets not scored (set to -1). Empty: every target is scored.
    skip: Vec<usize>,
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
            skip: Vec::new(),
        })
    }

    /// The whole file in consecutive windows (`start = k·block`), every target scored once:
    /// the tail that does not fill a window is scored by one last window ending at the
    /// file's end (its already-scored targets masked), and the last batch is padded with
    /// fully masked rows. Mean loss over it is the loss of the whole split.
    pub fn full(file: Arc<TokenFile>, batch: usize, block: usize) -> Result<EvalBatches> {
        if batch == 0 || block == 0 {
            return Err(DataError::InvalidOption(
                "eval batches, batch and block must be at least 1".into(),
            ));
        }
        check_len(&file, block)?;
        let targets = file.len() - 1;
        let whole = targets / block as u64;
        let mut starts: Vec<u64> = (0..whole).map(|k| k * block as u64).collect();
        let mut skip = vec![0; starts.len()];
        let rest = (targets - whole * block as u64) as usize;
        if rest > 0 {
            starts.push(targets - block as u64);
            skip.push(block - rest);
        }
        while !starts.len().is_multiple_of(batch) {
            starts.push(0);
            skip.push(block);
        }
        Ok(EvalBatches {
            file,
            batch,
            block,
            starts,
            skip,
        })
    }

    /// Targets scored in batch `i` (`batch × block` unless some are masked).
    pub fn scored(&self, i: usize) -> usize {
        let rows = i * self.batch..(i + 1) * self.batch;
        match self.skip.get(rows.clone()) {
            Some(skip) => skip.iter().map(|s| self.block - s).sum(),
            None => self.batch * self.block,
        }
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
        for (row, ((xr, yr), &s)) in x
            .chunks_exact_mut(self.block)
            .zip(y.chunks_exact_mut(self.block))
            .zip(starts)
            .enumerate()
        {
            self.file.read_xy(s, xr, yr);
            let masked = self.skip.get(i * self.batch + row).copied().unwrap_or(0);
            yr[..masked].fill(-1);
        }
        Ok(())
    }
}
