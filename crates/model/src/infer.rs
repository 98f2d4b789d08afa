//! Inference with a KV cache (generation).
//!
//! An [`InferenceSession`] borrows a [`Gpt`] and keeps, per layer, the keys and values of the
//! tokens seen so far (`[L, block_size, C]` each, keys already rotated when RoPE is used).
//! Feeding `m` new tokens runs every Linear on an `[m, C]` matrix and attends each new row to
//! the cache plus the new rows before it; the logits of the last position come back.
//!
//! Past `block_size` tokens:
//! - RoPE and sinusoidal models slide the window: the oldest cached position is dropped, new
//!   tokens keep their absolute positions (relative distances stay < block_size).
//! - Learned positions have no table entry past `block_size - 1`, so the session is reset and
//!   re-prefilled with the last `block_size` tokens (what nanoGPT's `generate` does by
//!   cropping). [`InferenceSession::next_logits`] does either automatically.

use crate::config::PosEncoding;
use crate::device::active as dev;
use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::ops::math::{dot, exp};
use crate::params::wb;

/// A generation session over a borrowed model.
pub struct InferenceSession<'m> {
    model: &'m Gpt,
    /// `[L, block_size, C]`
    k: Vec<f32>,
    v: Vec<f32>,
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
    // scratch for up to block_size new rows
    x: Vec<f32>,
    ln: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    fc: Vec<f32>,
    fc_gelu: Vec<f32>,
    stat: Vec<f32>,
    stat2: Vec<f32>,
    scores: Vec<f32>,
    /// prefill attention: per-row logsumexp `[H, block_size]` and the kernel's scratch
    lse: Vec<f32>,
    attn_scratch: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    logits: Vec<f32>,
}

impl Gpt {
    /// Start a KV-cached generation session.
    pub fn session(&self) -> InferenceSession<'_> {
        InferenceSession::new(self)
    }
}

impl<'m> InferenceSession<'m> {
    pub fn new(model: &'m Gpt) -> Self {
        let c = model.config();
        let (bs, e, l, h) = (c.block_size, c.n_embd, c.n_layer, c.hidden());
        InferenceSession {
            model,
            k: vec![0.0; l * bs * e],
            v: vec![0.0; l * bs * e],
            tokens: Vec::with_capacity(bs),
            start_pos: 0,
            hist_offset: 0,
            exact_context: false,
            x: vec![0.0; bs * e],
            ln: vec![0.0; bs * e],
            qkv: vec![0.0; bs * 3 * e],
            att: vec![0.0; bs * e],
            fc: vec![0.0; bs * h],
            fc_gelu: vec![0.0; bs * h],
            stat: vec![0.0; bs],
            stat2: vec![0.0; bs],
            scores: vec![0.0; bs],
            lse: vec![0.0; c.n_head * bs],
            attn_scratch: vec![
                0.0;
                rayon::current_num_threads().max(1)
                    * dev::attention::scratch_per_worker(bs)
            ],
            cos: vec![0.0; c.head_size() / 2],
            sin: vec![0.0; c.head_size() / 2],
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
        let c = self.model.config();
        let (bs, e) = (c.block_size, c.n_embd);
        let keep = self.tokens.len() - n;
        for l in 0..c.n_layer {
            let base = l * bs * e;
            self.k
                .copy_within(base + n * e..base + (n + keep) * e, base);
            self.v
                .copy_within(base + n * e..base + (n + keep) * e, base);
        }
        self.tokens.drain(..n);
        self.start_pos += n;
        self.hist_offset += n;
    }

    /// Feed new tokens after the cached ones; returns the logits of the last one.
    pub fn feed(&mut self, new: &[u32]) -> Result<&[f32]> {
        crate::model::on_pool(|| self.feed_impl(new))?;
        Ok(&self.logits)
    }

    fn feed_impl(&mut self, new: &[u32]) -> Result<()> {
        let model = self.model;
        let cfg = model.config();
        let (bs, e, nh, hd, v) = (
            cfg.block_size,
            cfg.n_embd,
            cfg.n_head,
            cfg.hidden(),
            cfg.vocab_size,
        );
        let hs = cfg.head_size();
        let m = new.len();
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
        if self.tokens.len() + m > bs {
            if cfg.pos_encoding == PosEncoding::Learned {
                return Err(Error::Shape(format!(
                    "learned positions end at block_size {bs}; re-prefill the last {bs} tokens (next_logits does)"
                )));
            }
            self.evict(self.tokens.len() + m - bs);
        }
        let past = self.tokens.len();
        let p0 = self.start_pos + past;
        let (lay, p) = (model.layout(), model.params());

        // embeddings
        let wte = &p[lay.r(lay.wte)];
        for (r, &tok) in new.iter().enumerate() {
            let row = &mut self.x[r * e..(r + 1) * e];
            row.copy_from_slice(&wte[tok as usize * e..(tok as usize + 1) * e]);
            match cfg.pos_encoding {
                PosEncoding::Learned => {
                    let wpe = lay.wpe.map(|i| &p[lay.r(i)]).unwrap_or(&[]);
                    let pos = p0 + r;
                    for (x, w) in row.iter_mut().zip(&wpe[pos * e..(pos + 1) * e]) {
                        *x += w;
                    }
                }
                PosEncoding::Sinusoidal => {
                    let pe = &mut self.ln[..e];
                    dev::embedding::sinusoidal_row(p0 + r, pe);
                    for (x, w) in row.iter_mut().zip(pe.iter()) {
                        *x += w;
                    }
                }
                PosEncoding::Rope => {}
            }
        }

        let scale = 1.0 / (hs as f32).sqrt();
        for (l, bp) in lay.blocks.iter().enumerate() {
            let (me, mh) = (m * e, m * hd);
            let (w, b) = wb(lay, p, bp.ln_1);
            dev::layernorm::forward(
                &mut self.ln[..me],
                &mut self.stat[..m],
                &mut self.stat2[..m],
                &self.x[..me],
                w,
                b,
            );
            let (w, b) = wb(lay, p, bp.c_attn);
            dev::linear::forward(&mut self.qkv[..3 * me], &self.ln[..me], w, b, None, e);
            for r in 0..m {
                let row = &mut self.qkv[r * 3 * e..(r + 1) * 3 * e];
                if cfg.pos_encoding == PosEncoding::Rope {
                    dev::rope::angles(p0 + r, hs, cfg.rope_theta, &mut self.cos, &mut self.sin);
                    for head in row[..2 * e].chunks_mut(hs) {
                        dev::rope::rotate(head, &self.cos, &self.sin, 1.0);
                    }
                }
                let slot = (l * bs + past + r) * e;
                self.k[slot..slot + e].copy_from_slice(&row[e..2 * e]);
                self.v[slot..slot + e].copy_from_slice(&row[2 * e..3 * e]);
            }
            // attention of each new row over cache slots 0..=past+r
            let kl = &self.k[l * bs * e..(l + 1) * bs * e];
            let vl = &self.v[l * bs * e..(l + 1) * bs * e];
            if past == 0 && m > 1 {
                // a prefill from an empty cache is the training pass's causal attention over
                // `[1, m]` (parallel over heads, tiled products): no per-row loop needed
                let dims = dev::attention::Dims {
                    b: 1,
                    t: m,
                    c: e,
                    nh,
                };
                dev::attention::forward(
                    &mut self.att[..me],
                    &mut self.lse[..nh * m],
                    &self.qkv[..3 * me],
                    &mut self.attn_scratch,
                    dims,
                    None,
                );
            } else {
                for r in 0..m {
                    let n_keys = past + r + 1;
                    for h in 0..nh {
                        let q = &self.qkv[r * 3 * e + h * hs..r * 3 * e + (h + 1) * hs];
                        let sc = &mut self.scores[..n_keys];
                        let mut mx = f32::NEG_INFINITY;
                        for (j, s) in sc.iter_mut().enumerate() {
                            *s = dot(q, &kl[j * e + h * hs..j * e + (h + 1) * hs]) * scale;
                            mx = mx.max(*s);
                        }
                        let mut sum = 0.0;
                        for s in sc.iter_mut() {
                            *s = exp(*s - mx);
                            sum += *s;
                        }
                        let out = &mut self.att[r * e + h * hs..r * e + (h + 1) * hs];
                        out.fill(0.0);
                        for (j, s) in sc.iter().enumerate() {
                            let pj = s / sum;
                            for (o, vv) in out
                                .iter_mut()
                                .zip(&vl[j * e + h * hs..j * e + (h + 1) * hs])
                            {
                                *o += pj * vv;
                            }
                        }
                    }
                }
            }
            // x = x + c_proj(att); x = x + mlp(ln_2(x))
            let (w, b) = wb(lay, p, bp.attn_proj);
            self.ln[..me].copy_from_slice(&self.x[..me]);
            dev::linear::forward(
                &mut self.x[..me],
                &self.att[..me],
                w,
                b,
                Some(&self.ln[..me]),
                e,
            );
            let (w, b) = wb(lay, p, bp.ln_2);
            dev::layernorm::forward(
                &mut self.ln[..me],
                &mut self.stat[..m],
                &mut self.stat2[..m],
                &self.x[..me],
                w,
                b,
            );
            let (w, b) = wb(lay, p, bp.c_fc);
            dev::linear::forward(&mut self.fc[..mh], &self.ln[..me], w, None, None, e);
            dev::gelu::forward(&mut self.fc_gelu[..mh], &self.fc[..mh], b, cfg.activation);
            let (w, b) = wb(lay, p, bp.mlp_proj);
            self.ln[..me].copy_from_slice(&self.x[..me]);
            dev::linear::forward(
                &mut self.x[..me],
                &self.fc_gelu[..mh],
                w,
                b,
                Some(&self.ln[..me]),
                hd,
            );
        }
        // final LayerNorm and head for the last row only
        let last = &self.x[(m - 1) * e..m * e];
        let (w, b) = wb(lay, p, lay.ln_f);
        dev::layernorm::forward(
            &mut self.ln[..e],
            &mut self.stat[..1],
            &mut self.stat2[..1],
            last,
            w,
            b,
        );
        dev::linear::forward(
            &mut self.logits,
            &self.ln[..e],
            &p[lay.r(lay.head())],
            None,
            None,
            e,
        );
        self.tokens.extend_from_slice(new);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, PosEncoding};

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

    #[test]
    fn cached_logits_equal_full_recompute_at_every_position() {
        for pos in [
            PosEncoding::Learned,
            PosEncoding::Rope,
            PosEncoding::Sinusoidal,
        ] {
            let mut m = model(pos);
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
        let m = model(PosEncoding::Rope);
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
