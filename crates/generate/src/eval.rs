//! Held-out evaluation: mean cross-entropy, perplexity and bits per byte, with the context
//! strided over the text (each window re-reads `block - stride` tokens of context and scores
//! only tokens not scored before, as in Hugging Face's perplexity recipe).

use lmforge_model::Gpt;

use crate::{GenerateError, Result};

/// Windowing options.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    /// Tokens of context per window (default: the model's block size).
    pub block_size: Option<usize>,
    /// How far each window moves (default: half the block; = block for no overlap).
    pub stride: Option<usize>,
    /// Windows per forward pass.
    pub batch: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            block_size: None,
            stride: None,
            batch: 8,
        }
    }
}

/// Evaluation results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    /// Mean negative log-likelihood per scored token, in nats.
    pub loss: f64,
    /// exp(loss)
    pub perplexity: f64,
    /// Total bits ÷ UTF-8 bytes of the text, when the byte count is known.
    pub bits_per_byte: Option<f64>,
    /// tokens whose loss was counted
    pub tokens_scored: usize,
    /// UTF-8 bytes of the scored text, when known (for bits per byte)
    pub bytes: Option<usize>,
    /// context length used
    pub block_size: usize,
    /// how far the context window moved each time
    pub stride: usize,
}

/// Scores `tokens` (each token predicted from up to `block_size` previous ones). `bytes` is
/// the text's UTF-8 length for bits per byte. `progress(done, total)` is called per batch.
pub fn evaluate_tokens(
    model: &mut Gpt,
    tokens: &[u32],
    bytes: Option<usize>,
    opts: EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport> {
    let model_block = model.config().block_size;
    let block = opts.block_size.unwrap_or(model_block);
    if block == 0 || block > model_block {
        return Err(GenerateError::InvalidOption(format!(
            "--block-size must be in 1..={model_block} (the model's block size), got {block}"
        )));
    }
    let stride = opts.stride.unwrap_or((block / 2).max(1));
    if stride == 0 || stride > block {
        return Err(GenerateError::InvalidOption(format!(
            "--stride must be in 1..={block}, got {stride}"
        )));
    }
    if tokens.len() < 2 {
        return Err(GenerateError::InvalidOption(format!(
            "the evaluation text has {} tokens; at least 2 are needed",
            tokens.len()
        )));
    }
    // Windows: inputs tokens[s..s+t], targets tokens[s+1..s+t+1], scoring targets ≥ scored_upto.
    let mut windows: Vec<(usize, usize, usize)> = Vec::new(); // (start, len, first scored target index)
    let mut scored_upto = 1;
    let mut s = 0;
    loop {
        let len = block.min(tokens.len() - 1 - s);
        windows.push((s, len, scored_upto));
        scored_upto = s + len + 1;
        if s + len + 1 >= tokens.len() {
            break;
        }
        s += stride;
    }
    let was_training = model.training();
    model.set_training(false);
    let (mut nats, mut count) = (0.0f64, 0usize);
    let total = windows.len();
    let mut done = 0;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for group in windows.chunk_by(|a, b| a.1 == b.1) {
        for batch in group.chunks(opts.batch.max(1)) {
            let t = batch[0].1;
            x.clear();
            y.clear();
            let mut n_scored = 0;
            for &(start, len, first) in batch {
                x.extend_from_slice(&tokens[start..start + len]);
                for j in 0..len {
                    let target_pos = start + 1 + j;
                    if target_pos >= first {
                        y.push(tokens[target_pos] as i32);
                        n_scored += 1;
                    } else {
                        y.push(-1);
                    }
                }
            }
            let loss = model.loss(&x, &y, batch.len(), t)?;
            nats += loss as f64 * n_scored as f64;
            count += n_scored;
            done += batch.len();
            progress(done, total);
        }
    }
    model.set_training(was_training);
    let loss = nats / count.max(1) as f64;
    Ok(EvalReport {
        loss,
        perplexity: loss.exp(),
        bits_per_byte: bytes.map(|b| nats / std::f64::consts::LN_2 / b.max(1) as f64),
        tokens_scored: count,
        bytes,
        block_size: block,
        stride,
    })
}
