//! Encoder–decoder decoding: the [`Seq2SeqStep`] seam a cached model implements, and the
//! strategies over it: greedy, beam search ([`crate::beam`]) and sampling (the same
//! temperature/top-k/top-p [`Sampler`] as GPT generation).
//!
//! A decode encodes the source once, starts `rows` decoder rows from `<bos>`, and steps:
//! each step feeds the last token of every row and gets `[rows, V]` logits back. Beam search
//! keeps `rows = beams` fixed and tells the model which row each new row continues
//! ([`Seq2SeqStep::reorder`]), so the model can permute its self-attention KV cache in place.

use std::ops::ControlFlow;

use crate::sampling::{Sampler, SamplingConfig};
use crate::{GenerateError, Result};

/// One decoding step of a cached encoder–decoder model, batched over rows (beams).
pub trait Seq2SeqStep {
    /// Target vocabulary size `V`: the length of each logits row.
    fn vocab_size(&self) -> usize;
    /// Most decoder positions the model takes (`tgt_block_size`): at most that many steps.
    fn max_steps(&self) -> usize;
    /// Encodes `src` (source ids, already cut to `src_block_size`) and caches the
    /// cross-attention keys/values.
    fn encode(&mut self, src: &[u32]) -> Result<()>;
    /// Starts `rows` decoder rows with empty self-attention caches.
    fn start(&mut self, rows: usize) -> Result<()>;
    /// Feeds the last token of each row (`[rows]`); returns next-token logits `[rows, V]`.
    fn step(&mut self, last: &[u32]) -> Result<&[f32]>;
    /// Row `r` continues from old row `parents[r]` (`parents.len() == rows`): copy caches.
    fn reorder(&mut self, parents: &[usize]) -> Result<()>;
}

/// How tokens are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoding {
    /// The most likely token at every step.
    Greedy,
    /// Beam search with `beams` rows; finished hypotheses are ranked by
    /// `log P(y) / |y|^length_penalty` (see [`crate::beam`]).
    Beam {
        /// Beam width (≥ 1).
        beams: usize,
        /// The exponent α (0: raw log-probability; 1: per-token average; default 1).
        length_penalty: f64,
    },
    /// Sampling with temperature / top-k / top-p, seeded.
    Sample(SamplingConfig),
}

/// Everything a decode needs besides the model and the source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seq2SeqOptions {
    /// The strategy.
    pub decoding: Decoding,
    /// Most tokens to generate, `<eos>` included (clamped to the model's `max_steps`).
    pub max_new_tokens: usize,
    /// Target `<bos>`: the decoder's first input.
    pub bos: u32,
    /// Target `<eos>`: ends a hypothesis.
    pub eos: u32,
}

/// One decoded sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Generated target ids, without `<bos>` and `<eos>`.
    pub tokens: Vec<u32>,
    /// Sum of the chosen tokens' log-probabilities (`<eos>` included when it ended).
    pub log_prob: f64,
    /// True when it ended with `<eos>` (false: stopped at `max_new_tokens`).
    pub finished: bool,
}

/// Decodes `src` with `opts`; see the module docs.
pub fn decode<M: Seq2SeqStep + ?Sized>(
    model: &mut M,
    src: &[u32],
    opts: &Seq2SeqOptions,
) -> Result<Hypothesis> {
    if opts.max_new_tokens == 0 {
        return Err(GenerateError::InvalidOption(
            "--max-new-tokens must be at least 1".into(),
        ));
    }
    model.encode(src)?;
    match opts.decoding {
        Decoding::Greedy => sample(model, opts, GREEDY, &mut |_, _| ControlFlow::Continue(())),
        Decoding::Sample(cfg) => sample(model, opts, cfg, &mut |_, _| ControlFlow::Continue(())),
        Decoding::Beam {
            beams,
            length_penalty,
        } => crate::beam::beam_search(model, opts, beams, length_penalty),
    }
}

/// Temperature 0: the argmax at every step.
const GREEDY: SamplingConfig = SamplingConfig {
    temperature: 0.0,
    top_k: None,
    top_p: None,
    seed: 0,
};

/// [`decode`] for the one-row strategies (greedy, sampling), calling `on_token(id, logits)`
/// with every chosen token (the final `<eos>` included) and its step's logits `[V]` as it is
/// decoded, so a caller can stream text. `ControlFlow::Break` stops the decode there (the
/// hypothesis so far comes back, `finished` false). Beam search only knows its tokens at the
/// end, so [`Decoding::Beam`] is an error here.
pub fn decode_streaming<M: Seq2SeqStep + ?Sized>(
    model: &mut M,
    src: &[u32],
    opts: &Seq2SeqOptions,
    on_token: &mut dyn FnMut(u32, &[f32]) -> ControlFlow<()>,
) -> Result<Hypothesis> {
    let cfg = match opts.decoding {
        Decoding::Greedy => GREEDY,
        Decoding::Sample(cfg) => cfg,
        Decoding::Beam { .. } => {
            return Err(GenerateError::InvalidOption(
                "beam search cannot stream tokens as they are decoded; use greedy or sampling"
                    .into(),
            ))
        }
    };
    if opts.max_new_tokens == 0 {
        return Err(GenerateError::InvalidOption(
            "--max-new-tokens must be at least 1".into(),
        ));
    }
    model.encode(src)?;
    sample(model, opts, cfg, on_token)
}

/// Greedy (temperature 0) or sampled decoding of one row; `on_token` sees each choice.
fn sample<M: Seq2SeqStep + ?Sized>(
    model: &mut M,
    opts: &Seq2SeqOptions,
    cfg: SamplingConfig,
    on_token: &mut dyn FnMut(u32, &[f32]) -> ControlFlow<()>,
) -> Result<Hypothesis> {
    let mut sampler = Sampler::new(cfg)?;
    let steps = opts.max_new_tokens.min(model.max_steps());
    model.start(1)?;
    let mut hyp = Hypothesis {
        tokens: Vec::new(),
        log_prob: 0.0,
        finished: false,
    };
    let mut last = opts.bos;
    for _ in 0..steps {
        let logits = model.step(&[last])?;
        let next = sampler.sample(logits);
        hyp.log_prob += log_softmax_at(logits, next as usize);
        if on_token(next, logits).is_break() {
            if next != opts.eos {
                hyp.tokens.push(next);
            }
            break;
        }
        if next == opts.eos {
            hyp.finished = true;
            break;
        }
        hyp.tokens.push(next);
        last = next;
    }
    Ok(hyp)
}

/// `log softmax(logits)[i]`, in f64 (max-shifted).
pub fn log_softmax_at(logits: &[f32], i: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits[i] as f64 - max - sum.ln()
}

/// Writes `log softmax(logits)` into `out` (same length), in f64.
pub fn log_softmax(logits: &[f32], out: &mut [f64]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = l as f64 - lse;
    }
}
