//! [`Seq2seq`]: the encoder–decoder's parameters, init, and the training forward/backward
//! (teacher forcing: `<bos> + target` in, `target + <eos>` out, padding ignored).

use super::acts::{Acts, Work};
use super::branch::{self, Ctx, SelfMask};
use super::config::Seq2seqConfig;
use super::params::Seq2seqLayout;
use super::sublayer::{self, wb, wb_mut};
use crate::backend::cpu::{AlignedBuf, Cpu};
use crate::backend::{Backend, Mask};
use crate::error::{Error, Result};
use crate::ops::embedding::sinusoidal_table;
use crate::ops::rope::RopeTable;

/// RoPE's frequency base (the GPT's default `rope_theta`).
pub const ROPE_THETA: f32 = 10000.0;
use crate::rng::{mix64, Rng};

/// One padded batch of pairs (the shape of `lmforge_data::pairs::PairBatch`).
#[derive(Clone, Copy, Debug)]
pub struct Seq2seqBatch<'a> {
    /// pairs B
    pub batch: usize,
    /// source positions S
    pub src_len: usize,
    /// decoder positions T
    pub tgt_len: usize,
    /// `[B,S]` source ids, padded with `src_pad_id`
    pub src: &'a [u32],
    /// `[B,T]` decoder input: `<bos>` + target, padded
    pub tgt_in: &'a [u32],
    /// `[B,T]` what each position predicts: target + `<eos>`, `-1` at padding (ignored)
    pub tgt_out: &'a [i32],
    /// the source padding id (source keys with it are masked out of every attention)
    pub src_pad_id: u32,
}

/// The encoder–decoder Transformer on the CPU backend.
pub struct Seq2seq {
    pub(crate) cfg: Seq2seqConfig,
    pub(crate) layout: Seq2seqLayout,
    pub(crate) dev: Cpu,
    pub(crate) params: AlignedBuf,
    pub(crate) grads: AlignedBuf,
    /// sinusoidal position tables `[src_block_size, C]`, `[tgt_block_size, C]`
    pub(crate) src_table: Vec<f32>,
    pub(crate) tgt_table: Vec<f32>,
    /// RoPE angles for positions `0..max(src_block_size, tgt_block_size)` (`rope`,
    /// `sinusoidal+rope`)
    pub(crate) rope: Option<RopeTable>,
    /// dropout on (training) or off (evaluation)
    training: bool,
    /// the seed the dropout masks derive from, and forward passes so far (mask position)
    seed: u64,
    passes: u64,
    /// `(mask seed, p)` of the last pass, None without dropout (its backward reuses it)
    drop: Option<(u64, f32)>,
    acts: Option<Acts>,
    work: Option<Work>,
    /// the last forward computed a loss (its `dlogits` are staged)
    staged: bool,
}

impl std::fmt::Debug for Seq2seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seq2seq")
            .field("cfg", &self.cfg)
            .field("params", &self.params.len())
            .finish_non_exhaustive()
    }
}

impl Seq2seq {
    /// A model with GPT-2-style init (weights N(0, 0.02), output projections of the residual
    /// branches N(0, 0.02/√(2·layers)), biases 0, LayerNorms 1/0), seeded.
    pub fn new(cfg: Seq2seqConfig, seed: u64) -> Result<Self> {
        let mut m = Self::zeroed(cfg)?;
        m.seed = seed;
        let mut rng = Rng::new(seed);
        let layers = (m.cfg.n_encoder_layer + m.cfg.n_decoder_layer) as f64;
        let proj_std = 0.02 / (2.0 * layers).sqrt();
        for t in &m.layout.tensors {
            let p = &mut m.params[t.range()];
            let name = t.name.as_str();
            if name.contains(".ln_") {
                p.fill(if name.ends_with(".weight") { 1.0 } else { 0.0 });
            } else if name.ends_with(".bias") {
                p.fill(0.0);
            } else {
                let std = if name.ends_with("c_proj.weight") {
                    proj_std
                } else {
                    0.02
                };
                p.iter_mut().for_each(|x| *x = (rng.normal() * std) as f32);
            }
        }
        m.dev.weights_changed();
        Ok(m)
    }

    /// A model with every parameter 0 (to be loaded).
    pub fn zeroed(cfg: Seq2seqConfig) -> Result<Self> {
        cfg.validate()?;
        let layout = Seq2seqLayout::new(&cfg);
        let sin = cfg.pos_encoding.adds_sinusoidal();
        let rows = cfg.src_block_size.max(cfg.tgt_block_size);
        let rope =
            (cfg.pos_encoding.rotates()).then(|| RopeTable::new(rows, cfg.head_size(), ROPE_THETA));
        let table = |rows| {
            if sin {
                sinusoidal_table(rows, cfg.n_embd)
            } else {
                Vec::new()
            }
        };
        Ok(Seq2seq {
            src_table: table(cfg.src_block_size),
            tgt_table: table(cfg.tgt_block_size),
            rope,
            params: AlignedBuf::zeros(layout.total),
            grads: AlignedBuf::zeros(layout.total),
            layout,
            cfg,
            dev: {
                // every parameter write goes through a method that calls `weights_changed`
                let mut dev = Cpu::new();
                dev.keep_prepared_weights(true);
                dev
            },
            training: true,
            seed: 0,
            passes: 0,
            drop: None,
            acts: None,
            work: None,
            staged: false,
        })
    }

    /// Dropout on (`true`, the default, like a fresh `nn.Module`) or off (evaluation). The
    /// cached decoder never drops.
    pub fn set_training(&mut self, on: bool) {
        self.training = on;
    }

    /// Whether dropout is on.
    pub fn training(&self) -> bool {
        self.training
    }

    /// Dropout-mask position: forward passes run so far (saved by a resumable trainer).
    pub fn dropout_passes(&self) -> u64 {
        self.passes
    }

    /// The seed dropout masks derive from ([`Seq2seq::new`]'s; a loaded model has 0 until a
    /// resumed trainer sets its run's seed).
    pub fn set_dropout_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Restores the position saved by [`Seq2seq::dropout_passes`]; with [`Seq2seq::new`]'s
    /// seed it fixes the masks of the following passes.
    pub fn set_dropout_passes(&mut self, passes: u64) {
        self.passes = passes;
    }

    /// The config.
    pub fn config(&self) -> &Seq2seqConfig {
        &self.cfg
    }
    /// The parameter layout.
    pub fn layout(&self) -> &Seq2seqLayout {
        &self.layout
    }
    /// The backend.
    pub fn backend(&self) -> &Cpu {
        &self.dev
    }
    /// The backend, to change its precision between steps.
    pub fn backend_mut(&mut self) -> &mut Cpu {
        &mut self.dev
    }
    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }
    /// The flat parameters.
    pub fn params(&self) -> &[f32] {
        &self.params
    }
    /// The flat parameters, writable.
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.dev.weights_changed();
        &mut self.params
    }
    /// The flat gradients.
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }
    /// The parameters and gradients together (the optimizer's view).
    pub fn params_and_grads(&mut self) -> (&mut AlignedBuf, &AlignedBuf) {
        self.dev.weights_changed();
        (&mut self.params, &self.grads)
    }
    /// The tensor called `name`.
    pub fn param(&self, name: &str) -> Option<&[f32]> {
        self.layout
            .find(name)
            .map(|i| &self.params[self.layout.r(i)])
    }
    /// The gradient of the tensor called `name`.
    pub fn grad(&self, name: &str) -> Option<&[f32]> {
        self.layout
            .find(name)
            .map(|i| &self.grads[self.layout.r(i)])
    }

    /// Gradients to 0.
    pub fn zero_grad(&mut self) {
        self.dev.zero(&mut self.grads);
    }
    /// The gradients' global L2 norm.
    pub fn grad_norm(&self) -> f32 {
        self.dev.sum_squares(&self.grads).sqrt() as f32
    }
    /// torch's `clip_grad_norm_`: scales the gradients to norm ≤ `max_norm`; returns the
    /// norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> f32 {
        let norm = self.grad_norm();
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            self.dev.scale(&mut self.grads, coef);
        }
        norm
    }

    /// Check `batch` against the model and copy its ids, mask and targets into the plan.
    fn stage(&mut self, x: &Seq2seqBatch<'_>) -> Result<()> {
        let (b, s, t) = (x.batch, x.src_len, x.tgt_len);
        let cfg = &self.cfg;
        if b == 0 || s == 0 || t == 0 {
            return Err(Error::Shape(format!("empty batch (B={b}, S={s}, T={t})")));
        }
        if s > cfg.src_block_size || t > cfg.tgt_block_size {
            let msg = format!(
                "source length {s} / target length {t} exceed src_block_size {} / tgt_block_size {}",
                cfg.src_block_size, cfg.tgt_block_size
            );
            return Err(Error::Shape(msg));
        }
        if x.src.len() != b * s || x.tgt_in.len() != b * t || x.tgt_out.len() != b * t {
            return Err(Error::Shape(format!(
                "batch of {b}×{s} source and {b}×{t} target ids has {}, {} and {} ids",
                x.src.len(),
                x.tgt_in.len(),
                x.tgt_out.len()
            )));
        }
        let check = |ids: &[u32], vocab: usize| match ids.iter().position(|&i| i as usize >= vocab)
        {
            Some(pos) => Err(Error::TokenOutOfRange {
                id: ids[pos],
                pos,
                vocab,
            }),
            None => Ok(()),
        };
        check(x.src, cfg.src_vocab_size)?;
        check(x.tgt_in, cfg.tgt_vocab_size)?;
        let v = cfg.tgt_vocab_size;
        if let Some(pos) = x.tgt_out.iter().position(|&t| t < -1 || t >= v as i32) {
            let target = x.tgt_out[pos];
            return Err(Error::TargetOutOfRange {
                target,
                pos,
                vocab: v,
            });
        }
        if self
            .acts
            .as_ref()
            .is_none_or(|a| (a.b, a.s, a.t) != (b, s, t))
        {
            let acts = Acts::new(&self.cfg, b, s, t);
            let workers = rayon::current_num_threads();
            self.work = Some(Work::new(&self.cfg, &self.dev, &acts, workers));
            self.acts = Some(acts);
        }
        let a = self.acts.as_mut().ok_or(Error::NoForward)?;
        a.src.copy_from_slice(x.src);
        a.tgt_in.copy_from_slice(x.tgt_in);
        for (m, &id) in a.key_pad.iter_mut().zip(x.src) {
            *m = id == x.src_pad_id;
        }
        a.targets.copy_from_slice(x.tgt_out);
        a.n_valid = a.targets.iter().filter(|&&t| t >= 0).count();
        if a.key_pad.chunks(s).any(|row| row.iter().all(|&p| p)) {
            return Err(Error::Shape("a source in the batch is all padding".into()));
        }
        Ok(())
    }

    /// The logits `[B·T, Vt]` of `batch` (a forward without the loss).
    pub fn logits(&mut self, batch: &Seq2seqBatch<'_>) -> Result<&[f32]> {
        self.stage(batch)?;
        self.staged = false;
        self.forward_staged();
        Ok(&self.acts.as_ref().ok_or(Error::NoForward)?.logits)
    }

    /// Forward with the loss (mean cross-entropy over the non-padding targets); stages the
    /// logits' gradient for [`Seq2seq::backward`].
    pub fn forward(&mut self, batch: &Seq2seqBatch<'_>) -> Result<f32> {
        self.stage(batch)?;
        self.forward_staged();
        let a = self.acts.as_mut().ok_or(Error::NoForward)?;
        if a.n_valid == 0 {
            return Err(Error::Shape("every target in the batch is padding".into()));
        }
        let v = self.cfg.tgt_vocab_size;
        let sum = self
            .dev
            .cross_entropy(&mut a.logits, &mut a.row_loss, &a.targets, v, a.n_valid);
        let loss = (sum / a.n_valid as f64) as f32;
        self.staged = true;
        if !loss.is_finite() {
            return Err(Error::NonFiniteLoss(loss));
        }
        Ok(loss)
    }

    /// The loss of `batch` without staging gradients (evaluation).
    pub fn loss(&mut self, batch: &Seq2seqBatch<'_>) -> Result<f32> {
        let loss = self.forward(batch);
        self.staged = false;
        loss
    }

    /// Embedding, encoder, decoder and output layer over the staged batch.
    fn forward_staged(&mut self) {
        let (Some(mut a), Some(mut w)) = (self.acts.take(), self.work.take()) else {
            return;
        };
        self.passes += 1;
        let p = self.cfg.dropout;
        self.drop = (self.training && p > 0.0).then(|| (mix64(self.seed ^ mix64(self.passes)), p));
        self.encoder_forward(&mut a, &mut w, self.drop);
        self.decoder_forward(&mut a, &mut w, self.drop);
        (self.acts, self.work) = (Some(a), Some(w));
    }

    /// The encoder over the staged source ids: fills `a.enc_*` (its output: [`Acts::enc_out`]).
    /// `drop`: the pass's `(mask seed, p)`, None without dropout.
    pub(crate) fn encoder_forward(&self, a: &mut Acts, w: &mut Work, drop: Option<(u64, f32)>) {
        let (cfg, l, p, dev) = (&self.cfg, &self.layout, &self.params[..], &self.dev);
        let (c, nh, act) = (cfg.n_embd, cfg.n_head, cfg.activation);
        let (b, s) = (a.b, a.s);
        let tn = &l.tensors[..];
        let src_pos = pos_table(p, l, l.src_pos, &self.src_table);
        // ---- encoder
        dev.embedding_forward(&mut a.enc_in, &a.src, &p[l.r(l.src_table())], src_pos, s, c);
        if let Some(m) = drop_mask(drop, SITE_SRC_EMB) {
            dev.dropout(&mut a.enc_in, m);
        }
        let ex = Ctx {
            dev,
            tensors: tn,
            p,
            b,
            t: s,
            c,
            nh,
            rope: self.rope.as_ref(),
        };
        for (i, blk) in l.encoder.iter().enumerate() {
            let (done, rest) = a.enc_subs.split_at_mut(2 * i);
            let x = done.last().map_or(&a.enc_in[..], |s| &s.out[..]);
            let (sa, ff) = rest.split_at_mut(1);
            let (attn, mlp, mask) = (
                &mut a.enc_attn[i],
                &mut a.enc_mlp[i],
                SelfMask::KeyPad(&a.key_pad),
            );
            let (br, ws) = (&mut w.branch[..b * s * c], &mut w.attn[..]);
            sublayer::forward(
                dev,
                cfg.norm,
                tn,
                p,
                blk.ln_1,
                drop_mask(drop, enc_site(i, 0)),
                x,
                &mut sa[0],
                br,
                |h, br| {
                    branch::self_attn_forward(
                        ex,
                        blk,
                        h,
                        attn,
                        mask,
                        ws,
                        br,
                        drop_mask(drop, ATTN + enc_site(i, 0)),
                    )
                },
            );
            let br = &mut w.branch[..b * s * c];
            sublayer::forward(
                dev,
                cfg.norm,
                tn,
                p,
                blk.ln_2,
                drop_mask(drop, enc_site(i, 1)),
                &sa[0].out,
                &mut ff[0],
                br,
                |h, br| branch::mlp_forward(ex, blk, act, h, mlp, br),
            );
        }
        if let (Some(f), Some(ln)) = (a.enc_final.as_mut(), l.enc_ln_f) {
            let x = a.enc_subs.last().map_or(&a.enc_in[..], |s| &s.out[..]);
            let (wt, bs) = wb(tn, p, ln);
            dev.layernorm_forward(&mut f.out, &mut f.mean, &mut f.rstd, x, wt, bs);
        }
    }

    /// The decoder and output layer over the staged decoder input and encoder output.
    fn decoder_forward(&self, a: &mut Acts, w: &mut Work, drop: Option<(u64, f32)>) {
        let (cfg, l, p, dev) = (&self.cfg, &self.layout, &self.params[..], &self.dev);
        let (c, nh, act) = (cfg.n_embd, cfg.n_head, cfg.activation);
        let (b, s, t) = (a.b, a.s, a.t);
        let tn = &l.tensors[..];
        let tgt_pos = pos_table(p, l, l.tgt_pos, &self.tgt_table);
        dev.embedding_forward(
            &mut a.dec_in,
            &a.tgt_in,
            &p[l.r(l.tgt_embed)],
            tgt_pos,
            t,
            c,
        );
        if let Some(m) = drop_mask(drop, SITE_TGT_EMB) {
            dev.dropout(&mut a.dec_in, m);
        }
        let dx = Ctx {
            dev,
            tensors: tn,
            p,
            b,
            t,
            c,
            nh,
            rope: self.rope.as_ref(),
        };
        let enc = match &a.enc_final {
            Some(f) => &f.out[..],
            None => a.enc_subs.last().map_or(&a.enc_in[..], |s| &s.out[..]),
        };
        for (i, blk) in l.decoder.iter().enumerate() {
            let (done, rest) = a.dec_subs.split_at_mut(3 * i);
            let x = done.last().map_or(&a.dec_in[..], |s| &s.out[..]);
            let (sa, rest) = rest.split_at_mut(1);
            let (xa, ff) = rest.split_at_mut(1);
            let (attn, cross, mlp) = (&mut a.dec_attn[i], &mut a.dec_cross[i], &mut a.dec_mlp[i]);
            let ws = &mut w.attn[..];
            let br = &mut w.branch[..b * t * c];
            sublayer::forward(
                dev,
                cfg.norm,
                tn,
                p,
                blk.base.ln_1,
                drop_mask(drop, dec_site(i, 0)),
                x,
                &mut sa[0],
                br,
                |h, br| {
                    branch::self_attn_forward(
                        dx,
                        &blk.base,
                        h,
                        attn,
                        SelfMask::Causal,
                        ws,
                        br,
                        drop_mask(drop, ATTN + dec_site(i, 0)),
                    )
                },
            );
            let (br, kp) = (&mut w.branch[..b * t * c], &a.key_pad[..]);
            sublayer::forward(
                dev,
                cfg.norm,
                tn,
                p,
                blk.ln_x,
                drop_mask(drop, dec_site(i, 1)),
                &sa[0].out,
                &mut xa[0],
                br,
                |h, br| {
                    branch::cross_forward(
                        dx,
                        blk,
                        h,
                        enc,
                        s,
                        cross,
                        kp,
                        ws,
                        br,
                        drop_mask(drop, ATTN + dec_site(i, 1)),
                    )
                },
            );
            let br = &mut w.branch[..b * t * c];
            sublayer::forward(
                dev,
                cfg.norm,
                tn,
                p,
                blk.base.ln_2,
                drop_mask(drop, dec_site(i, 2)),
                &xa[0].out,
                &mut ff[0],
                br,
                |h, br| branch::mlp_forward(dx, &blk.base, act, h, mlp, br),
            );
        }
        if let (Some(f), Some(ln)) = (a.dec_final.as_mut(), l.dec_ln_f) {
            let x = a.dec_subs.last().map_or(&a.dec_in[..], |s| &s.out[..]);
            let (wt, bs) = wb(tn, p, ln);
            dev.layernorm_forward(&mut f.out, &mut f.mean, &mut f.rstd, x, wt, bs);
        }
        let h = match &a.dec_final {
            Some(f) => &f.out[..],
            None => a.dec_subs.last().map_or(&a.dec_in[..], |s| &s.out[..]),
        };
        dev.linear_forward(&mut a.logits, h, &p[l.r(l.head())], None, c);
    }

    /// [`Seq2seq::backward`] of `scale × loss` (gradient accumulation over `k` micro-batches:
    /// `scale = 1/k`).
    pub fn backward_scaled(&mut self, scale: f32) -> Result<()> {
        if scale != 1.0 && self.staged {
            if let Some(a) = self.acts.as_mut() {
                self.dev.scale(&mut a.logits, scale);
            }
        }
        self.backward()
    }

    /// Backward of the last [`Seq2seq::forward`]: adds the gradients into [`Seq2seq::grads`].
    pub fn backward(&mut self) -> Result<()> {
        if !self.staged {
            return Err(Error::NoForward);
        }
        self.staged = false;
        let (Some(a), Some(w)) = (self.acts.as_ref(), self.work.as_mut()) else {
            return Err(Error::NoForward);
        };
        let (cfg, l, p, dev) = (&self.cfg, &self.layout, &self.params[..], &self.dev);
        let drop = self.drop;
        let g = &mut self.grads[..];
        let (c, nh, norm) = (cfg.n_embd, cfg.n_head, cfg.norm);
        let (b, s, t) = (a.b, a.s, a.t);
        let (ns, nt) = (b * s, b * t);
        let tn = &l.tensors[..];
        // ---- output layer and final decoder LayerNorm
        let (dy, dx) = (&mut w.dec_a, &mut w.dec_b);
        let dec_last = a.dec_subs.last().map_or(&a.dec_in[..], |s| &s.out[..]);
        let head_in = a.dec_out();
        {
            let hr = l.r(l.head());
            let dh = &mut w.dh[..nt * c];
            dev.linear_backward(
                Some(&mut *dh),
                &mut g[hr.clone()],
                None,
                &a.logits,
                head_in,
                &p[hr],
                c,
                false,
            );
            match (&a.dec_final, l.dec_ln_f) {
                (Some(f), Some(ln)) => {
                    let (wt, _) = wb(tn, p, ln);
                    let (dw, db) = wb_mut(tn, g, ln);
                    dev.layernorm_backward(dy, dw, db, dh, dec_last, wt, &f.mean, &f.rstd, false);
                }
                _ => dev.copy(dy, dh),
            }
        }
        // ---- decoder blocks, last first
        let enc = a.enc_out();
        dev.zero(&mut w.d_enc);
        let dxc = Ctx {
            dev,
            tensors: tn,
            p,
            b,
            t,
            c,
            nh,
            rope: self.rope.as_ref(),
        };
        for (i, blk) in l.decoder.iter().enumerate().rev() {
            let subs = &a.dec_subs[3 * i..3 * i + 3];
            let x0 = if i == 0 {
                &a.dec_in[..]
            } else {
                &a.dec_subs[3 * i - 1].out[..]
            };
            let dh = &mut w.dh[..nt * c];
            let dfc = &mut w.dfc[..nt * cfg.hidden()];
            let mlp = &a.dec_mlp[i];
            sublayer::backward(
                dev,
                norm,
                tn,
                p,
                g,
                blk.base.ln_2,
                drop_mask(drop, dec_site(i, 2)),
                &subs[1].out,
                &subs[2],
                dy,
                dx,
                dh,
                |hin, db, di, g| branch::mlp_backward(dxc, g, &blk.base, hin, mlp, db, di, dfc),
            );
            std::mem::swap(dy, dx);
            let cross = &a.dec_cross[i];
            let sc = branch::CrossScratch {
                datt: &mut w.datt[..nt * c],
                dq: &mut w.dq[..],
                dkv: &mut w.dkv[..],
                work: &mut w.attn[..],
            };
            let (d_enc, kp) = (&mut w.d_enc[..], &a.key_pad[..]);
            sublayer::backward(
                dev,
                norm,
                tn,
                p,
                g,
                blk.ln_x,
                drop_mask(drop, dec_site(i, 1)),
                &subs[0].out,
                &subs[1],
                dy,
                dx,
                dh,
                |hin, db, di, g| {
                    branch::cross_backward(
                        dxc,
                        g,
                        blk,
                        hin,
                        enc,
                        s,
                        cross,
                        kp,
                        db,
                        di,
                        d_enc,
                        sc,
                        drop_mask(drop, ATTN + dec_site(i, 1)),
                    )
                },
            );
            std::mem::swap(dy, dx);
            let attn = &a.dec_attn[i];
            let (datt, dqkv, ws) = (
                &mut w.datt[..nt * c],
                &mut w.dqkv[..nt * 3 * c],
                &mut w.attn[..],
            );
            sublayer::backward(
                dev,
                norm,
                tn,
                p,
                g,
                blk.base.ln_1,
                drop_mask(drop, dec_site(i, 0)),
                x0,
                &subs[0],
                dy,
                dx,
                dh,
                |hin, db, di, g| {
                    branch::self_attn_backward(
                        dxc,
                        g,
                        &blk.base,
                        hin,
                        attn,
                        SelfMask::Causal,
                        db,
                        di,
                        datt,
                        dqkv,
                        ws,
                        drop_mask(drop, ATTN + dec_site(i, 0)),
                    )
                },
            );
            std::mem::swap(dy, dx);
        }
        let te = l.r(l.tgt_embed);
        let tp = l.tgt_pos.map(|i| l.r(i));
        if let Some(m) = drop_mask(drop, SITE_TGT_EMB) {
            dev.dropout(dy, m);
        }
        embedding_backward(dev, g, te, tp, dy, &a.tgt_in, t, c);
        // ---- final encoder LayerNorm, encoder blocks
        let (dy, dx) = (&mut w.enc_a, &mut w.enc_b);
        let enc_last = a.enc_subs.last().map_or(&a.enc_in[..], |s| &s.out[..]);
        match (&a.enc_final, l.enc_ln_f) {
            (Some(f), Some(ln)) => {
                let (wt, _) = wb(tn, p, ln);
                let (dw, db) = wb_mut(tn, g, ln);
                dev.layernorm_backward(dy, dw, db, &w.d_enc, enc_last, wt, &f.mean, &f.rstd, false);
            }
            _ => dev.copy(dy, &w.d_enc),
        }
        let exc = Ctx {
            dev,
            tensors: tn,
            p,
            b,
            t: s,
            c,
            nh,
            rope: self.rope.as_ref(),
        };
        let mask = SelfMask::KeyPad(&a.key_pad);
        for (i, blk) in l.encoder.iter().enumerate().rev() {
            let subs = &a.enc_subs[2 * i..2 * i + 2];
            let x0 = if i == 0 {
                &a.enc_in[..]
            } else {
                &a.enc_subs[2 * i - 1].out[..]
            };
            let dh = &mut w.dh[..ns * c];
            let dfc = &mut w.dfc[..ns * cfg.hidden()];
            let mlp = &a.enc_mlp[i];
            sublayer::backward(
                dev,
                norm,
                tn,
                p,
                g,
                blk.ln_2,
                drop_mask(drop, enc_site(i, 1)),
                &subs[0].out,
                &subs[1],
                dy,
                dx,
                dh,
                |hin, db, di, g| branch::mlp_backward(exc, g, blk, hin, mlp, db, di, dfc),
            );
            std::mem::swap(dy, dx);
            let attn = &a.enc_attn[i];
            let (datt, dqkv, ws) = (
                &mut w.datt[..ns * c],
                &mut w.dqkv[..ns * 3 * c],
                &mut w.attn[..],
            );
            sublayer::backward(
                dev,
                norm,
                tn,
                p,
                g,
                blk.ln_1,
                drop_mask(drop, enc_site(i, 0)),
                x0,
                &subs[0],
                dy,
                dx,
                dh,
                |hin, db, di, g| {
                    branch::self_attn_backward(
                        exc,
                        g,
                        blk,
                        hin,
                        attn,
                        mask,
                        db,
                        di,
                        datt,
                        dqkv,
                        ws,
                        drop_mask(drop, ATTN + enc_site(i, 0)),
                    )
                },
            );
            std::mem::swap(dy, dx);
        }
        let se = l.r(l.src_table());
        let sp = l.src_pos.map(|i| l.r(i));
        if let Some(m) = drop_mask(drop, SITE_SRC_EMB) {
            dev.dropout(dy, m);
        }
        embedding_backward(dev, g, se, sp, dy, &a.src, s, c);
        Ok(())
    }
}

// Dropout sites (mask streams) of one pass: the two embeddings, then each residual branch.
const SITE_SRC_EMB: u64 = 0;
const SITE_TGT_EMB: u64 = 1;
/// Added to a branch's site for its attention probabilities.
const ATTN: u64 = 1 << 40;
/// Encoder block `i`'s branch `k` (0 self-attention, 1 MLP).
fn enc_site(i: usize, k: u64) -> u64 {
    2 + 2 * i as u64 + k
}
/// Decoder block `i`'s branch `k` (0 self-attention, 1 cross-attention, 2 MLP).
fn dec_site(i: usize, k: u64) -> u64 {
    (1 << 32) + 3 * i as u64 + k
}
/// The mask of `site` in a pass with dropout `drop = (seed, p)` (elements of the whole batch).
fn drop_mask(drop: Option<(u64, f32)>, site: u64) -> Option<Mask> {
    drop.map(|(seed, p)| Mask {
        seed,
        stream: site,
        p,
        offset: 0,
    })
}

/// The position table an embedding adds: the learned tensor `learned` or the fixed `table`
/// (none: no positions added).
pub(crate) fn pos_table<'a>(
    p: &'a [f32],
    l: &Seq2seqLayout,
    learned: Option<usize>,
    table: &'a [f32],
) -> Option<&'a [f32]> {
    match learned {
        Some(i) => Some(&p[l.r(i)]),
        None => (!table.is_empty()).then_some(table),
    }
}

/// `dtable[idx[n]] += dout[n]` and, with learned positions, `dpos[n % t] += dout[n]`.
#[allow(clippy::too_many_arguments)]
fn embedding_backward(
    dev: &Cpu,
    g: &mut [f32],
    table: std::ops::Range<usize>,
    pos: Option<std::ops::Range<usize>>,
    dout: &[f32],
    idx: &[u32],
    t: usize,
    c: usize,
) {
    match pos {
        Some(pr) if pr.start >= table.end => {
            let (head, tail) = g.split_at_mut(pr.start);
            let dpos = &mut tail[..pr.len()];
            dev.embedding_backward(&mut head[table], Some(dpos), dout, idx, t, c);
        }
        Some(pr) => {
            let (head, tail) = g.split_at_mut(table.start);
            let dtab = &mut tail[..table.len()];
            let dpos = &mut head[pr];
            dev.embedding_backward(dtab, Some(dpos), dout, idx, t, c);
        }
        None => dev.embedding_backward(&mut g[table], None, dout, idx, t, c),
    }
}
