//! [`CachedDecoder`]: generation with the encoder–decoder. The source is encoded once and each
//! decoder layer's cross-attention keys/values `[S, 2C]` are computed once from it; each step
//! then feeds one token per beam through the decoder with a self-attention KV cache per beam
//! and layer (`[beams, L, tgt_block_size, C]` for keys and for values).
//!
//! Use: `encode(src)`, `start(beams)`, then `step(last_tokens)` → logits `[beams, V]` for the
//! next position (the first step feeds `<bos>`), and `reorder(parents)` between steps when beam
//! search keeps beam `parents[i]` as the new beam `i`. All beams share the one source, so
//! cross-attention runs as one call of `beams` query rows over the source keys.

use super::acts::{Acts, Work};
use super::branch::{mlp_forward, Ctx, MlpActs};
use super::config::Norm;
use super::model::{pos_table, Seq2seq};
use super::sublayer::{self, wb, Sub};
use crate::backend::{Backend, CrossDims, Dims};
use crate::error::{Error, Result};
use crate::ops::rope;

/// Per-step buffers for `beams` rows.
struct Rows {
    beams: usize,
    x: Vec<f32>,
    subs: Vec<Sub>,
    fin: Sub,
    qkv: Vec<f32>,
    att: Vec<f32>,
    lse: Vec<f32>,
    q: Vec<f32>,
    mlp: MlpActs,
    branch: Vec<f32>,
    logits: Vec<f32>,
}

/// Encode once, then decode token by token with cached keys and values (see the module docs).
pub struct CachedDecoder<'m> {
    model: &'m Seq2seq,
    /// the encoded source's length, and per decoder layer its cross-attention `[S, 2C]`
    src_len: usize,
    cross_kv: Vec<Vec<f32>>,
    /// self-attention caches `[beams, L, Tb, C]`, and the spare `reorder` copies into
    k: Vec<f32>,
    v: Vec<f32>,
    spare: Vec<f32>,
    /// positions decoded so far
    pos: usize,
    rows: Option<Rows>,
    /// attention scratch
    work: Vec<f32>,
}

impl Seq2seq {
    /// A cached decoder over this model (encode a source before starting).
    pub fn decoder(&self) -> CachedDecoder<'_> {
        CachedDecoder {
            model: self,
            src_len: 0,
            cross_kv: Vec::new(),
            k: Vec::new(),
            v: Vec::new(),
            spare: Vec::new(),
            pos: 0,
            rows: None,
            work: Vec::new(),
        }
    }
}

impl Seq2seq {
    /// Greedy decoding of one source: the most likely token at each step, from `bos` until
    /// `eos` (not included) or `max_new` tokens (at most `tgt_block_size`).
    pub fn greedy(&self, src: &[u32], bos: u32, eos: u32, max_new: usize) -> Result<Vec<u32>> {
        let mut d = self.decoder();
        d.encode(src)?;
        d.start(1);
        let (mut last, mut out) = (bos, Vec::new());
        for _ in 0..max_new.min(self.config().tgt_block_size) {
            let logits = d.step(&[last])?;
            last = argmax(logits);
            if last == eos {
                break;
            }
            out.push(last);
        }
        Ok(out)
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

impl CachedDecoder<'_> {
    /// Encode one source (`1 ≤ len ≤ src_block_size`, ids `< src_vocab_size`; no padding) and
    /// cache every decoder layer's cross-attention keys and values. Resets the decoding.
    pub fn encode(&mut self, src: &[u32]) -> Result<()> {
        let m = self.model;
        let cfg = m.config();
        if src.is_empty() || src.len() > cfg.src_block_size {
            return Err(Error::Shape(format!(
                "source of {} tokens: needs 1 to src_block_size = {}",
                src.len(),
                cfg.src_block_size
            )));
        }
        if let Some(pos) = src.iter().position(|&i| i as usize >= cfg.src_vocab_size) {
            let vocab = cfg.src_vocab_size;
            return Err(Error::TokenOutOfRange {
                id: src[pos],
                pos,
                vocab,
            });
        }
        let (s, c) = (src.len(), cfg.n_embd);
        let mut a = Acts::new(cfg, 1, s, 1);
        let mut w = Work::new(cfg, m.backend(), &a, rayon::current_num_threads());
        a.src.copy_from_slice(src);
        m.encoder_forward(&mut a, &mut w, None);
        let (l, p, dev) = (m.layout(), m.params(), m.backend());
        self.cross_kv = l
            .decoder
            .iter()
            .map(|blk| {
                let mut kv = vec![0.0; s * 2 * c];
                let (wt, bs) = wb(&l.tensors, p, blk.kv_proj);
                dev.linear_forward(&mut kv, a.enc_out(), wt, bs, c);
                if let Some(r) = &m.rope {
                    let hs = cfg.head_size();
                    rope::apply_cols(&mut kv, &r.cos, &r.sin, s, 2 * c, c, hs, 1.0);
                }
                kv
            })
            .collect();
        self.src_len = s;
        self.rows = None;
        self.pos = 0;
        Ok(())
    }

    /// Start decoding `beams` hypotheses of the encoded source from position 0.
    pub fn start(&mut self, beams: usize) {
        let cfg = self.model.config();
        let beams = beams.max(1);
        let (c, nh, ld) = (cfg.n_embd, cfg.n_head, cfg.n_decoder_layer);
        let cache = beams * ld * cfg.tgt_block_size * c;
        for buf in [&mut self.k, &mut self.v, &mut self.spare] {
            buf.clear();
            buf.resize(cache, 0.0);
        }
        let cross = CrossDims {
            b: 1,
            tq: beams,
            tk: self.src_len.max(1),
            c,
            nh,
            qs: c,
            kvs: 2 * c,
        };
        let ws = self.model.backend().cross_attention_workspace(cross, 1);
        self.work = vec![0.0; ws.max(cfg.tgt_block_size)];
        self.rows = Some(Rows {
            beams,
            x: vec![0.0; beams * c],
            subs: (0..3 * ld).map(|_| Sub::new(cfg.norm, beams, c)).collect(),
            fin: Sub::new(Norm::Post, beams, c),
            qkv: vec![0.0; beams * 3 * c],
            att: vec![0.0; beams * c],
            lse: vec![0.0; beams * nh],
            q: vec![0.0; beams * c],
            mlp: MlpActs::new(beams, cfg.hidden()),
            branch: vec![0.0; beams * c],
            logits: vec![0.0; beams * cfg.tgt_vocab_size],
        });
        self.pos = 0;
    }

    /// Positions decoded so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Feed each beam's last token (`<bos>` first) and return the logits `[beams, V]` of the
    /// next position.
    pub fn step(&mut self, last_tokens: &[u32]) -> Result<&[f32]> {
        let m = self.model;
        let cfg = m.config();
        let Some(r) = self.rows.as_mut() else {
            return Err(Error::Shape("step() before encode() and start()".into()));
        };
        if self.cross_kv.is_empty() && cfg.n_decoder_layer > 0 {
            return Err(Error::Shape("step() before encode()".into()));
        }
        if last_tokens.len() != r.beams {
            let msg = format!("{} tokens for {} beams", last_tokens.len(), r.beams);
            return Err(Error::Shape(msg));
        }
        if self.pos >= cfg.tgt_block_size {
            let msg = format!("decoded the whole tgt_block_size = {}", cfg.tgt_block_size);
            return Err(Error::Shape(msg));
        }
        if let Some(pos) = last_tokens
            .iter()
            .position(|&i| i as usize >= cfg.tgt_vocab_size)
        {
            let vocab = cfg.tgt_vocab_size;
            return Err(Error::TokenOutOfRange {
                id: last_tokens[pos],
                pos,
                vocab,
            });
        }
        let (l, p, dev) = (m.layout(), m.params(), m.backend());
        let (c, nh, tn) = (cfg.n_embd, cfg.n_head, &l.tensors[..]);
        let (pos, tb, nb) = (self.pos, cfg.tgt_block_size, r.beams);
        let table = pos_table(p, l, l.tgt_pos, &m.tgt_table).map(|t| &t[pos * c..(pos + 1) * c]);
        dev.embedding_forward(&mut r.x, last_tokens, &p[l.r(l.tgt_embed)], table, 1, c);
        let x = Ctx {
            dev,
            tensors: tn,
            p,
            b: 1,
            t: nb,
            c,
            nh,
            rope: m.rope.as_ref(),
        };
        for (li, blk) in l.decoder.iter().enumerate() {
            let (done, rest) = r.subs.split_at_mut(3 * li);
            let input = done.last().map_or(&r.x[..], |s| &s.out[..]);
            let (sa, rest) = rest.split_at_mut(1);
            let (xa, ff) = rest.split_at_mut(1);
            let (qkv, att, lse, work) = (&mut r.qkv, &mut r.att, &mut r.lse, &mut self.work);
            let (kc, vc) = (&mut self.k, &mut self.v);
            sublayer::forward(
                dev,
                cfg.norm,
                tn,
                p,
                blk.base.ln_1,
                None,
                input,
                &mut sa[0],
                &mut r.branch,
                |h, br| {
                    let (wt, bs) = wb(tn, p, blk.base.c_attn);
                    dev.linear_forward(qkv, h, wt, bs, c);
                    x.rotate_at(qkv, pos, 3 * c, 2 * c);
                    for bi in 0..nb {
                        let slot = (bi * cfg.n_decoder_layer + li) * tb * c;
                        let (k, v) = (&mut kc[slot..slot + tb * c], &mut vc[slot..slot + tb * c]);
                        let row = &qkv[bi * 3 * c..(bi + 1) * 3 * c];
                        let d = Dims { b: 1, t: 1, c, nh };
                        dev.attention_decode(
                            &mut att[bi * c..(bi + 1) * c],
                            &mut lse[..nh],
                            row,
                            k,
                            v,
                            work,
                            pos,
                            d,
                        );
                    }
                    let (wt, bs) = wb(tn, p, blk.base.attn_proj);
                    dev.linear_forward(br, att, wt, bs, c);
                },
            );
            let (q, kv, s) = (&mut r.q, &self.cross_kv[li], self.src_len);
            sublayer::forward(
                dev,
                cfg.norm,
                tn,
                p,
                blk.ln_x,
                None,
                &sa[0].out,
                &mut xa[0],
                &mut r.branch,
                |h, br| {
                    let (wt, bs) = wb(tn, p, blk.q_proj);
                    dev.linear_forward(q, h, wt, bs, c);
                    x.rotate_at(q, pos, c, c);
                    let d = CrossDims {
                        b: 1,
                        tq: nb,
                        tk: s,
                        c,
                        nh,
                        qs: c,
                        kvs: 2 * c,
                    };
                    dev.cross_attention_forward(att, lse, q, kv, &kv[c..], None, work, d, None);
                    let (wt, bs) = wb(tn, p, blk.cross_proj);
                    dev.linear_forward(br, att, wt, bs, c);
                },
            );
            let mlp = &mut r.mlp;
            sublayer::forward(
                dev,
                cfg.norm,
                tn,
                p,
                blk.base.ln_2,
                None,
                &xa[0].out,
                &mut ff[0],
                &mut r.branch,
                |h, br| mlp_forward(x, &blk.base, cfg.activation, h, mlp, br),
            );
        }
        let last = r.subs.last().map_or(&r.x[..], |s| &s.out[..]);
        let h = match l.dec_ln_f {
            Some(ln) => {
                let (wt, bs) = wb(tn, p, ln);
                let f = &mut r.fin;
                dev.layernorm_forward(&mut f.out, &mut f.mean, &mut f.rstd, last, wt, bs);
                &r.fin.out[..]
            }
            None => last,
        };
        dev.linear_forward(&mut r.logits, h, &p[l.r(l.head())], None, c);
        self.pos += 1;
        Ok(&r.logits)
    }

    /// Beam `i` continues beam `parents[i]`: permute the self-attention caches (positions
    /// decoded so far). `parents.len()` must be the beam count and each parent `< beams`.
    pub fn reorder(&mut self, parents: &[usize]) -> Result<()> {
        let Some(r) = self.rows.as_ref() else {
            return Err(Error::Shape("reorder() before start()".into()));
        };
        if parents.len() != r.beams || parents.iter().any(|&p| p >= r.beams) {
            let msg = format!(
                "reorder: {parents:?} is not a list of {} beam indices",
                r.beams
            );
            return Err(Error::Shape(msg));
        }
        let cfg = self.model.config();
        let per_layer = cfg.tgt_block_size * cfg.n_embd;
        let used = self.pos * cfg.n_embd;
        let per_beam = cfg.n_decoder_layer * per_layer;
        for cache in [&mut self.k, &mut self.v] {
            for (i, &from) in parents.iter().enumerate() {
                for li in 0..cfg.n_decoder_layer {
                    let (src, dst) = (
                        from * per_beam + li * per_layer,
                        i * per_beam + li * per_layer,
                    );
                    self.spare[dst..dst + used].copy_from_slice(&cache[src..src + used]);
                }
            }
            std::mem::swap(cache, &mut self.spare);
        }
        Ok(())
    }
}
