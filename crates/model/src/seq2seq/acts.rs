//! The activation plan of one batch shape `(B, S, T)`: every buffer the forward keeps for the
//! backward, and the backward's scratch. Planned once per shape and reused (no allocation in
//! a training step after the first).

use super::branch::{AttnActs, CrossActs, MlpActs};
use super::config::Seq2seqConfig;
use super::sublayer::Sub;
use crate::backend::cpu::{AlignedBuf, Cpu};
use crate::backend::{Backend, CrossDims};

/// Forward activations. Sublayers are flat: encoder layer `l` owns `enc_subs[2l..2l+2]`
/// (self-attention, MLP), decoder layer `l` owns `dec_subs[3l..3l+3]` (self-attention,
/// cross-attention, MLP); a sublayer's input is the previous one's `out` (or the embedding).
#[derive(Debug)]
pub(crate) struct Acts {
    /// sequences, source length, target length
    pub b: usize,
    pub s: usize,
    pub t: usize,
    /// `[B,S]`: source position is padding
    pub key_pad: Vec<bool>,
    /// targets `[B,T]` (`-1` at padding), and how many are not
    pub targets: Vec<i32>,
    pub n_valid: usize,
    /// source ids `[B,S]` and decoder input ids `[B,T]` (the embedding backward reads them)
    pub src: Vec<u32>,
    pub tgt_in: Vec<u32>,
    /// embeddings `[B·S,C]`, `[B·T,C]`
    pub enc_in: AlignedBuf,
    pub dec_in: AlignedBuf,
    pub enc_subs: Vec<Sub>,
    pub enc_attn: Vec<AttnActs>,
    pub enc_mlp: Vec<MlpActs>,
    /// pre-LN: the final LayerNorms (`out` = the normalised stream)
    pub enc_final: Option<Sub>,
    pub dec_subs: Vec<Sub>,
    pub dec_attn: Vec<AttnActs>,
    pub dec_cross: Vec<CrossActs>,
    pub dec_mlp: Vec<MlpActs>,
    pub dec_final: Option<Sub>,
    /// `[B·T, Vt]`: logits, or after a loss forward the logits' gradient
    pub logits: AlignedBuf,
    pub row_loss: AlignedBuf,
}

/// Backward scratch and the attention workspaces (also used by the forward).
#[derive(Debug)]
pub(crate) struct Work {
    /// branch output `[max(N),C]`
    pub branch: AlignedBuf,
    /// attention workspace (the largest of the three attentions')
    pub attn: AlignedBuf,
    /// stream gradients, ping-pong: decoder `[B·T,C]`, encoder `[B·S,C]`
    pub dec_a: AlignedBuf,
    pub dec_b: AlignedBuf,
    pub enc_a: AlignedBuf,
    pub enc_b: AlignedBuf,
    /// gradient of the encoder output `[B·S,C]`
    pub d_enc: AlignedBuf,
    /// branch-input gradient `[max(N),C]`, attention output gradient, `dqkv [max(N),3C]`
    pub dh: AlignedBuf,
    pub datt: AlignedBuf,
    pub dqkv: AlignedBuf,
    /// `dq [B·T,C]`, `dkv [B·S,2C]`, `dfc [max(N),hidden]`
    pub dq: AlignedBuf,
    pub dkv: AlignedBuf,
    pub dfc: AlignedBuf,
}

/// Stream buffers of a sublayer sequence with `per_layer` sublayers per block.
fn subs(cfg: &Seq2seqConfig, layers: usize, per_layer: usize, n: usize) -> Vec<Sub> {
    (0..layers * per_layer)
        .map(|_| Sub::new(cfg.norm, n, cfg.n_embd))
        .collect()
}

/// A final LayerNorm's buffers (its `out` is the normalised stream).
fn final_ln(cfg: &Seq2seqConfig, n: usize) -> Option<Sub> {
    (cfg.norm == super::config::Norm::Pre).then(|| Sub {
        mean: AlignedBuf::zeros(n),
        rstd: AlignedBuf::zeros(n),
        out: AlignedBuf::zeros(n * cfg.n_embd),
        ..Sub::default()
    })
}

impl Acts {
    /// Buffers for `b` sequences of `s` source and `t` target positions.
    pub fn new(cfg: &Seq2seqConfig, b: usize, s: usize, t: usize) -> Self {
        let (c, nh, hid) = (cfg.n_embd, cfg.n_head, cfg.hidden());
        let (ns, nt) = (b * s, b * t);
        let (le, ld) = (cfg.n_encoder_layer, cfg.n_decoder_layer);
        Acts {
            b,
            s,
            t,
            key_pad: vec![false; ns],
            targets: vec![-1; nt],
            n_valid: 0,
            src: vec![0; ns],
            tgt_in: vec![0; nt],
            enc_in: AlignedBuf::zeros(ns * c),
            dec_in: AlignedBuf::zeros(nt * c),
            enc_subs: subs(cfg, le, 2, ns),
            enc_attn: (0..le).map(|_| AttnActs::new(ns, c, b, nh, s)).collect(),
            enc_mlp: (0..le).map(|_| MlpActs::new(ns, hid)).collect(),
            enc_final: final_ln(cfg, ns),
            dec_subs: subs(cfg, ld, 3, nt),
            dec_attn: (0..ld).map(|_| AttnActs::new(nt, c, b, nh, t)).collect(),
            dec_cross: (0..ld)
                .map(|_| CrossActs::new(nt, ns, c, b, nh, t))
                .collect(),
            dec_mlp: (0..ld).map(|_| MlpActs::new(nt, hid)).collect(),
            dec_final: final_ln(cfg, nt),
            logits: AlignedBuf::zeros(nt * cfg.tgt_vocab_size),
            row_loss: AlignedBuf::zeros(nt),
        }
    }

    /// The encoder's output `[B·S,C]` (what the cross-attentions read).
    pub fn enc_out(&self) -> &[f32] {
        match &self.enc_final {
            Some(f) => &f.out,
            None => self.enc_subs.last().map_or(&self.enc_in, |s| &s.out),
        }
    }

    /// The decoder's output `[B·T,C]` (what the output layer reads).
    pub fn dec_out(&self) -> &[f32] {
        match &self.dec_final {
            Some(f) => &f.out,
            None => self.dec_subs.last().map_or(&self.dec_in, |s| &s.out),
        }
    }
}

impl Work {
    /// Scratch for the shape of `a`, with attention workspaces for `workers` tasks at once.
    pub fn new(cfg: &Seq2seqConfig, dev: &Cpu, a: &Acts, workers: usize) -> Self {
        let (c, nh, hid) = (cfg.n_embd, cfg.n_head, cfg.hidden());
        let (b, s, t) = (a.b, a.s, a.t);
        let (ns, nt) = (b * s, b * t);
        let n = ns.max(nt);
        let enc = CrossDims {
            b,
            tq: s,
            tk: s,
            c,
            nh,
            qs: 3 * c,
            kvs: 3 * c,
        };
        let cross = CrossDims {
            b,
            tq: t,
            tk: s,
            c,
            nh,
            qs: c,
            kvs: 2 * c,
        };
        let attn = dev
            .attention_workspace(t, workers)
            .max(dev.cross_attention_workspace(enc, workers))
            .max(dev.cross_attention_workspace(cross, workers));
        Work {
            branch: AlignedBuf::zeros(n * c),
            attn: AlignedBuf::zeros(attn),
            dec_a: AlignedBuf::zeros(nt * c),
            dec_b: AlignedBuf::zeros(nt * c),
            enc_a: AlignedBuf::zeros(ns * c),
            enc_b: AlignedBuf::zeros(ns * c),
            d_enc: AlignedBuf::zeros(ns * c),
            dh: AlignedBuf::zeros(n * c),
            datt: AlignedBuf::zeros(n * c),
            dqkv: AlignedBuf::zeros(n * 3 * c),
            dq: AlignedBuf::zeros(nt * c),
            dkv: AlignedBuf::zeros(ns * 2 * c),
            dfc: AlignedBuf::zeros(n * hid),
        }
    }
}
