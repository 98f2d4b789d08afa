//! Inference with a KV cache (generation).
//!
//! An [`InferenceSession`] borrows a [`Gpt`] and keeps, per layer, the keys and values of the
//! tokens seen so far (`[L, block_size, C]` each, keys already rotated when RoPE is used).
//! Feeding `m` new tokens is the model's own forward pass (`Mode::Decode` of `pass.rs`): every Linear
//! runs on an `[m, C]` matrix, attention stores the new keys and values in the cache and
//! attends each new row to the cache plus the new rows before it, and the head runs on the
//! last row only.
//!
//! Past `block_size` tokens:
//! - RoPE and sinusoidal models slide the window: the oldest cached position is dropped, new
//!   tokens keep their absolute positions (relative distances stay < block_size).
//! - Learned positions have no table entry past `block_size - 1`, so the session is reset and
//!   re-prefilled with the last `block_size` tokens (what nanoGPT's `generate` does by
//!   cropping). [`InferenceSession::next_logits`] does either automatically.

use crate::acts::{Acts, KvCache, Plan};
use crate::backend::cpu::Cpu;
use crate::backend::Backend;
use crate::config::PosEncoding;
use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::ops::embedding::sinusoidal_row;
use crate::ops::rope::angles;
use crate::pass::{self, Mode, Net, Positions, Shard};

/// A generation session over a borrowed model.
pub struct InferenceSession<'m, B: Backend = Cpu> {
    model: &'m Gpt<B>,
    cache: KvCache<B>,
    /// one layer slot of activations for up to block_size new rows
    acts: Acts<B>,
    /// tokens currently represented in the cache (oldest first)
    tokens: Vec<u32>,
    /// absolute position of cache slot 0
    start_pos: usize,
    /// index in the caller's token history of cache slot 0 (differs from `start_pos` for
    /// learned positions, which restart at 0 after a context shift)
    hist_offset: usize,
    /// learned positions: re-read the whole last block for every token past block_size
    /// (nanoGPT's behaviour) instead of shifting the context by half a block
    exact_context: bool,
    /// position rows past the fixed tables (sliding windows): sinusoidal `[block_size, C]`,
    /// RoPE cos and sin `[block_size, hs/2]`, computed on the host and staged here
    stage_pos: B::Buf,
    stage_cos: B::Buf,
    stage_sin: B::Buf,
    host_stage: Vec<f32>,
    /// logits `[V]` of the last fed position, on the device and on the host
    logits_dev: B::Buf,
    logits: Vec<f32>,
}

impl<B: Backend> Gpt<B> {
    /// Start a KV-cached generation session.
    pub fn session(&self) -> InferenceSession<'_, B> {
        InferenceSession::new(self)
    }
}

impl<'m, B: Backend> InferenceSession<'m, B> {
    /// A session with an empty cache.
    pub fn new(model: &'m Gpt<B>) -> Self {
        let (dev, c) = (model.backend(), model.config());
        let (bs, e, half) = (c.block_size, c.n_embd, c.head_size() / 2);
        let mut acts = Acts::new(dev);
        let workers = rayon::current_num_threads().max(1);
        acts.plan(dev, c, bs, bs, workers, Plan::Decoding);
        let staged = |len: usize, used: bool| dev.alloc(if used { len } else { 0 });
        InferenceSession {
            model,
            cache: KvCache::new(dev, c),
            acts,
            tokens: Vec::with_capacity(bs),
            start_pos: 0,
            hist_offset: 0,
            exact_context: false,
            stage_pos: staged(bs * e, c.pos_encoding.adds_sinusoidal()),
            stage_cos: staged(bs * half, c.pos_encoding.rotates()),
            stage_sin: staged(bs * half, c.pos_encoding.rotates()),
            host_stage: vec![0.0; bs * e.max(half)],
            logits_dev: dev.alloc(c.vocab_size),
            logits: vec![0.0; c.vocab_size],
        }
    }

    /// Forget everything (next feed starts at position 0).
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.start_pos = 0;
        self.hist_offset = 0;
    }

    /// Learned positions past `block_size`: `true` re-reads the last `block_size` tokens for
    /// every new token (nanoGPT's cropping; each token sees a full block of context, at the
    /// cost of a whole forward pass per token). `false` (default) shifts the context: the
    /// last `block_size / 2` tokens are re-read once, then generation continues from the
    /// cache, so each token sees between half a block and a block of context.
    pub fn set_exact_context(&mut self, on: bool) {
        self.exact_context = on;
    }

    /// Tokens currently in the cache.
    pub fn cached_tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Absolute position the next token will get.
    pub fn next_pos(&self) -> usize {
        self.start_pos + self.tokens.len()
    }

    /// Logits `[V]` of the last fed position.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Reset and feed `prompt` (at most `block_size` tokens); returns the last logits.
    pub fn prefill(&mut self, prompt: &[u32]) -> Result<&[f32]> {
        self.reset();
        self.feed(prompt)
    }

    /// Feed one token; returns its logits.
    pub fn step(&mut self, token: u32) -> Result<&[f32]> {
        self.feed(&[token])
    }

    /// The generator's entry point: `history` is the whole token sequence so far (prompt +
    /// generated). Feeds what the cache has not seen, sliding the window or re-prefilling
    /// the last `block_size` tokens as the position encoding requires, and returns the
    /// logits for the next token.
    pub fn next_logits(&mut self, history: &[u32]) -> Result<&[f32]> {
        let bs = self.model.config().block_size;
        let learned = self.model.config().pos_encoding == PosEncoding::Learned;
        if history.is_empty() {
            return Err(Error::Shape("next_logits needs at least one token".into()));
        }
        let seen = self.hist_offset + self.tokens.len();
        let consistent =
            seen > 0 && seen <= history.len() && history[self.hist_offset..seen] == self.tokens[..];
        if !consistent || history.len() - seen > bs {
            // Start over on (at most) the last block_size tokens.
            let from = history.len().saturating_sub(bs);
            self.reset();
            self.hist_offset = from;
            if !learned {
                self.start_pos = from;
            }
            return self.feed(&history[from..]);
        }
        let new = &history[seen..];
        if new.is_empty() {
            return Ok(&self.logits);
        }
        if learned && self.tokens.len() + new.len() > bs {
            // No position past block_size-1: re-read the last `keep` tokens from position 0.
            let keep = if self.exact_context {
                bs
            } else {
                (bs / 2).max(new.len()).min(bs)
            };
            let from = history.len() - keep;
            self.reset();
            self.hist_offset = from;
            return self.feed(&history[from..]);
        }
        self.feed(new)
    }

    /// Drop the oldest `n` cached positions (RoPE / sinusoidal sliding window).
    fn evict(&mut self, n: usize) {
        let (dev, c) = (self.model.backend(), self.model.config());
        let e = c.n_embd;
        let keep = self.tokens.len() - n;
        for l in 0..c.n_layer {
            let base = self.cache.layer(l).start;
            let from = base + n * e..base + (n + keep) * e;
            dev.copy_within(&mut self.cache.k, from.clone(), base);
            dev.copy_within(&mut self.cache.v, from, base);
        }
        self.tokens.drain(..n);
        self.start_pos += n;
        self.hist_offset += n;
    }

    /// Feed new tokens after the cached ones; returns the logits of the last one.
    pub fn feed(&mut self, new: &[u32]) -> Result<&[f32]> {
        self.check_feed(new)?;
        let dev = self.model.backend();
        if self.tokens.len() + new.len() > self.model.config().block_size {
            self.evict(self.tokens.len() + new.len() - self.model.config().block_size);
        }
        self.stage_positions(new.len());
        B::enter(|| self.forward(new));
        let v = self.logits.len();
        dev.download(B::src(&self.logits_dev, 0..v), &mut self.logits);
        self.tokens.extend_from_slice(new);
        Ok(&self.logits)
    }

    /// Refuse what the cache cannot take: empty or over-long feeds, ids outside the
    /// vocabulary, learned positions past block_size.
    fn check_feed(&self, new: &[u32]) -> Result<()> {
        let cfg = self.model.config();
        let (bs, v, m) = (cfg.block_size, cfg.vocab_size, new.len());
        if m == 0 {
            return Err(Error::Shape("feed needs at least one token".into()));
        }
        if m > bs {
            return Err(Error::Shape(format!(
                "cannot feed {m} tokens at once (block_size {bs})"
            )));
        }
        if let Some((pos, &id)) = new.iter().enumerate().find(|(_, &t)| t as usize >= v) {
            return Err(Error::TokenOutOfRange { id, pos, vocab: v });
        }
        if self.tokens.len() + m > bs && cfg.pos_encoding == PosEncoding::Learned {
            return Err(Error::Shape(format!(
                "learned positions end at block_size {bs}; re-prefill the last {bs} tokens (next_logits does)"
            )));
        }
        Ok(())
    }

    /// Positions `p0..p0+m` of the next feed that lie past the fixed tables (a sliding
    /// window's absolute positions): computed on the host into the staging buffers.
    fn stage_positions(&mut self, m: usize) {
        let (dev, cfg) = (self.model.backend(), self.model.config());
        let p0 = self.start_pos + self.tokens.len();
        if p0 + m <= cfg.block_size {
            return;
        }
        let (e, hs) = (cfg.n_embd, cfg.head_size());
        let half = hs / 2;
        let host = &mut self.host_stage;
        // `sinusoidal+rope` stages both, one after the other through the same host buffer
        if cfg.pos_encoding.adds_sinusoidal() {
            for r in 0..m {
                sinusoidal_row(p0 + r, &mut host[r * e..(r + 1) * e]);
            }
            dev.upload(B::dst(&mut self.stage_pos, 0..m * e), &host[..m * e]);
        }
        if cfg.pos_encoding.rotates() {
            let (cos, sin) = host.split_at_mut(m * half);
            for r in 0..m {
                let (c, s) = (
                    &mut cos[r * half..(r + 1) * half],
                    &mut sin[r * half..(r + 1) * half],
                );
                angles(p0 + r, hs, cfg.rope_theta, c, s);
            }
            dev.upload(B::dst(&mut self.stage_cos, 0..m * half), &cos[..m * half]);
            dev.upload(B::dst(&mut self.stage_sin, 0..m * half), &sin[..m * half]);
        }
    }

    /// The model's forward pass in decoding mode over `new` (after [`Self::stage_positions`]).
    fn forward(&mut self, new: &[u32]) {
        let model = self.model;
        let cfg = model.config();
        let (m, e, half) = (new.len(), cfg.n_embd, cfg.head_size() / 2);
        let (past, p0) = (self.tokens.len(), self.start_pos + self.tokens.len());
        let net = Net {
            dev: model.backend(),
            cfg,
            lay: model.layout(),
            p: &model.params,
        };
        // the rows of positions p0..p0+m: from the fixed tables, or staged past them
        let rows = |width: usize| p0 * width..(p0 + m) * width;
        let staged = p0 + m > cfg.block_size;
        let lay = model.layout();
        let table = match cfg.pos_encoding {
            PosEncoding::Learned => lay.wpe.map(|i| {
                let (w, r) = (lay.r(i).start, rows(e));
                B::src(&model.params, w + r.start..w + r.end)
            }),
            PosEncoding::Sinusoidal | PosEncoding::SinusoidalRope if staged => {
                Some(B::src(&self.stage_pos, 0..m * e))
            }
            PosEncoding::Sinusoidal | PosEncoding::SinusoidalRope => {
                model.tables.sin.as_ref().map(|t| B::src(t, rows(e)))
            }
            PosEncoding::Rope => None,
        };
        let rope = match (&model.tables.rope, staged) {
            (Some(_), true) => Some((
                B::src(&self.stage_cos, 0..m * half),
                B::src(&self.stage_sin, 0..m * half),
            )),
            (Some((c, s)), false) => Some((B::src(c, rows(half)), B::src(s, rows(half)))),
            (None, _) => None,
        };
        let pos = Positions { table, rope };
        let sh = Shard {
            b: 1,
            t: m,
            b0: 0,
            drop: None,
        };
        let mode = Mode::Decode {
            cache: &mut self.cache,
            past,
        };
        let logits = B::dst(&mut self.logits_dev, 0..cfg.vocab_size);
        pass::forward(&net, &mut self.acts, sh, new, pos, mode, Some(logits));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Activation, ModelConfig, Norm, PosEncoding};

    fn model(pos: PosEncoding) -> Gpt {
        let mut c = ModelConfig::new(13, 2, 2, 16, 8);
        c.pos_encoding = pos;
        Gpt::new(c, 7).unwrap()
    }

    fn seq(n: usize) -> Vec<u32> {
        (0..n).map(|i| ((i * 5 + 2) % 13) as u32).collect()
    }

    fn close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5, "{x} vs {y}");
        }
    }

    /// Issue 14's switches on top of `pos`: post-LN, ReLU, no q/k/v bias, a head bias.
    fn switched(pos: PosEncoding) -> Gpt {
        let mut c = ModelConfig::new(13, 2, 2, 16, 8);
        c.pos_encoding = pos;
        (c.norm, c.activation, c.qkv_bias) = (Norm::Post, Activation::Relu, Some(false));
        (c.tie_embeddings, c.head_bias) = (false, true);
        let mut m = Gpt::new(c, 7).unwrap();
        // a non-zero head bias, so the decode path must add it
        for (name, _, p) in m.named_parameters_mut() {
            if name == "lm_head.bias" {
                p.iter_mut()
                    .enumerate()
                    .for_each(|(i, x)| *x = i as f32 * 0.1);
            }
        }
        m
    }

    #[test]
    fn cached_logits_equal_full_recompute_at_every_position() {
        let models = [
            model(PosEncoding::Learned),
            model(PosEncoding::Rope),
            model(PosEncoding::Sinusoidal),
            switched(PosEncoding::SinusoidalRope),
            switched(PosEncoding::Learned),
        ];
        for mut m in models {
            m.set_training(false);
            let toks = seq(8);
            m.forward(&toks, None, 1, 8).unwrap();
            let full = m.logits().to_vec();
            let v = 13;
            let mut s = m.session();
            // one token at a time
            for (i, &t) in toks.iter().enumerate() {
                let got = s.step(t).unwrap().to_vec();
                close(&got, &full[i * v..(i + 1) * v]);
            }
            // chunked prefill then steps
            let got = s.prefill(&toks[..5]).unwrap().to_vec();
            close(&got, &full[4 * v..5 * v]);
            for (i, &t) in toks.iter().enumerate().skip(5) {
                close(s.step(t).unwrap(), &full[i * v..(i + 1) * v]);
            }
        }
    }

    #[test]
    fn past_block_size_windows() {
        // learned, exact context: every token re-reads the last block_size tokens (nanoGPT)
        let mut m = model(PosEncoding::Learned);
        let toks = seq(11);
        m.forward(&toks[3..], None, 1, 8).unwrap();
        let want = m.logits()[7 * 13..].to_vec();
        let mut s = m.session();
        s.set_exact_context(true);
        for n in 1..=11 {
            let got = s.next_logits(&toks[..n]).unwrap().to_vec();
            if n == 11 {
                close(&got, &want);
            }
        }
        assert!(s.feed(&[1]).is_err());
        // learned, context shift (default): the cache is always the last tokens of the
        // history, at most block_size of them, and its logits equal a full forward over them
        let toks = seq(30);
        let mut seen = Vec::new();
        let mut s = m.session();
        for n in 1..=30 {
            let got = s.next_logits(&toks[..n]).unwrap().to_vec();
            let window = s.cached_tokens().to_vec();
            assert!(!window.is_empty() && window.len() <= 8);
            assert_eq!(window[..], toks[n - window.len()..n]);
            seen.push((window, got));
        }
        assert!(
            seen.iter().any(|(w, _)| w.len() == 4),
            "a shift keeps half a block"
        );
        for (window, got) in seen {
            let l = window.len();
            m.forward(&window, None, 1, l).unwrap();
            close(&got, &m.logits()[(l - 1) * 13..l * 13]);
        }
        // rope: sliding window keeps block_size positions and stays finite
        let rope_models = [
            model(PosEncoding::Rope),
            switched(PosEncoding::SinusoidalRope),
        ];
        for m in &rope_models {
            sliding_window(m);
        }
    }

    /// A sliding window keeps block_size positions, stays finite, and recomputes a history
    /// that diverges from its cache.
    fn sliding_window(m: &Gpt) {
        let mut s = m.session();
        let toks = seq(20);
        for n in 1..=20 {
            let l = s.next_logits(&toks[..n]).unwrap();
            assert!(l.iter().all(|x| x.is_finite()));
        }
        assert_eq!(s.cached_tokens().len(), 8);
        assert_eq!(s.next_pos(), 20);
        // a history that diverges from the cache is recomputed from scratch
        let mut other = seq(5);
        other[4] = 0;
        let a = s.next_logits(&other).unwrap().to_vec();
        let b = m.session().prefill(&other).unwrap().to_vec();
        close(&a, &b);
    }
}
