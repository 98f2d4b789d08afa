//! The three branches a sublayer wraps, forward and backward side by side, all through the
//! [`Backend`] seam: self-attention (the encoder's with a key padding mask, the decoder's
//! causal), cross-attention over the encoder output, and the MLP.
//!
//! Shapes: `h [N,C]` the branch input (`N = B·T` rows), `branch [N,C]` its output,
//! `enc [B·S, C]` the encoder output. Backward functions accumulate into `dh` (and `d_enc`).

use super::params::{DecoderBlock, EncoderBlock};
use super::sublayer::{wb, wb_mut};
use crate::backend::cpu::{AlignedBuf, Cpu};
use crate::backend::{Backend, CrossDims, Dims, Mask};
use crate::config::Activation;
use crate::ops::rope::{self, RopeTable};
use crate::params::TensorInfo;

/// Self-attention activations: `qkv [N,3C]`, `att [N,C]`, `lse [B,H,T]`.
#[derive(Debug, Default)]
pub(crate) struct AttnActs {
    pub qkv: AlignedBuf,
    pub att: AlignedBuf,
    pub lse: AlignedBuf,
}

impl AttnActs {
    pub fn new(n: usize, c: usize, b: usize, nh: usize, t: usize) -> Self {
        AttnActs {
            qkv: AlignedBuf::zeros(n * 3 * c),
            att: AlignedBuf::zeros(n * c),
            lse: AlignedBuf::zeros(b * nh * t),
        }
    }
}

/// Cross-attention activations: `q [B·T,C]`, `kv [B·S,2C]`, `att [B·T,C]`, `lse [B,H,T]`.
#[derive(Debug, Default)]
pub(crate) struct CrossActs {
    pub q: AlignedBuf,
    pub kv: AlignedBuf,
    pub att: AlignedBuf,
    pub lse: AlignedBuf,
}

impl CrossActs {
    pub fn new(nt: usize, ns: usize, c: usize, b: usize, nh: usize, t: usize) -> Self {
        CrossActs {
            q: AlignedBuf::zeros(nt * c),
            kv: AlignedBuf::zeros(ns * 2 * c),
            att: AlignedBuf::zeros(nt * c),
            lse: AlignedBuf::zeros(b * nh * t),
        }
    }
}

/// MLP activations: `fc [N,hidden]` (after forward: the activation's derivative),
/// `act [N,hidden]`.
#[derive(Debug, Default)]
pub(crate) struct MlpActs {
    pub fc: AlignedBuf,
    pub act: AlignedBuf,
}

impl MlpActs {
    pub fn new(n: usize, hidden: usize) -> Self {
        MlpActs {
            fc: AlignedBuf::zeros(n * hidden),
            act: AlignedBuf::zeros(n * hidden),
        }
    }
}

/// Which keys a self-attention row sees.
#[derive(Clone, Copy)]
pub(crate) enum SelfMask<'a> {
    /// the decoder's: keys `0..=i`
    Causal,
    /// the encoder's: every key not marked as padding in `[B,T]`
    KeyPad(&'a [bool]),
}

/// The parameters and the geometry a branch call needs.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub dev: &'a Cpu,
    pub tensors: &'a [TensorInfo],
    pub p: &'a [f32],
    /// sequences, query rows per sequence, channels, heads
    pub b: usize,
    pub t: usize,
    pub c: usize,
    pub nh: usize,
    /// RoPE angles by position (`rope`, `sinusoidal+rope`): q and k of every attention are
    /// rotated by their own positions (cross-attention: q by the decoder's, k by the encoder's)
    pub rope: Option<&'a RopeTable>,
}

impl Ctx<'_> {
    /// Rotate the first `width` columns of every row of `buf [N,stride]` (row `n` is position
    /// `n % t`) by `sign ×` the RoPE angles; a no-op without RoPE.
    pub fn rotate(&self, buf: &mut [f32], t: usize, stride: usize, width: usize, sign: f32) {
        if let Some(r) = self.rope {
            let hs = self.c / self.nh;
            rope::apply_cols(buf, &r.cos, &r.sin, t, stride, width, hs, sign);
        }
    }

    /// [`Ctx::rotate`] with every row at position `pos` (the cached decoder's one step).
    pub fn rotate_at(&self, buf: &mut [f32], pos: usize, stride: usize, width: usize) {
        if let Some(r) = self.rope {
            let (hs, h) = (self.c / self.nh, r.half);
            let (cos, sin) = (&r.cos[pos * h..][..h], &r.sin[pos * h..][..h]);
            rope::apply_cols(buf, cos, sin, 1, stride, width, hs, 1.0);
        }
    }

    fn self_dims(&self) -> CrossDims {
        let (t, c) = (self.t, self.c);
        let (b, nh) = (self.b, self.nh);
        CrossDims {
            b,
            tq: t,
            tk: t,
            c,
            nh,
            qs: 3 * c,
            kvs: 3 * c,
        }
    }
    fn dims(&self) -> Dims {
        Dims {
            b: self.b,
            t: self.t,
            c: self.c,
            nh: self.nh,
        }
    }
    fn cross_dims(&self, s: usize) -> CrossDims {
        let (b, t, c, nh) = (self.b, self.t, self.c, self.nh);
        CrossDims {
            b,
            tq: t,
            tk: s,
            c,
            nh,
            qs: c,
            kvs: 2 * c,
        }
    }
}

/// `branch = Attn(h·Wqkvᵀ + b)·Woᵀ + bo` (`drop`: the attention probabilities' mask).
#[allow(clippy::too_many_arguments)]
pub(crate) fn self_attn_forward(
    x: Ctx<'_>,
    blk: &EncoderBlock,
    h: &[f32],
    a: &mut AttnActs,
    mask: SelfMask<'_>,
    work: &mut [f32],
    branch: &mut [f32],
    drop: Option<Mask>,
) {
    let (dev, c) = (x.dev, x.c);
    let (w, b) = wb(x.tensors, x.p, blk.c_attn);
    dev.linear_forward(&mut a.qkv, h, w, b, c);
    x.rotate(&mut a.qkv, x.t, 3 * c, 2 * c, 1.0);
    match mask {
        SelfMask::Causal => {
            dev.attention_forward(&mut a.att, &mut a.lse, &a.qkv, work, x.dims(), drop)
        }
        SelfMask::KeyPad(m) => {
            let (q, k, v) = (&a.qkv[..], &a.qkv[c..], &a.qkv[2 * c..]);
            dev.cross_attention_forward(
                &mut a.att,
                &mut a.lse,
                q,
                k,
                v,
                Some(m),
                work,
                x.self_dims(),
                drop,
            )
        }
    }
    let (w, b) = wb(x.tensors, x.p, blk.attn_proj);
    dev.linear_forward(branch, &a.att, w, b, c);
}

/// Backward of [`self_attn_forward`]; `datt [N,C]`, `dqkv [N,3C]` are scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn self_attn_backward(
    x: Ctx<'_>,
    g: &mut [f32],
    blk: &EncoderBlock,
    h: &[f32],
    a: &AttnActs,
    mask: SelfMask<'_>,
    dbranch: &[f32],
    dh: &mut [f32],
    datt: &mut [f32],
    dqkv: &mut [f32],
    work: &mut [f32],
    drop: Option<Mask>,
) {
    let (dev, c) = (x.dev, x.c);
    let (w, _) = wb(x.tensors, x.p, blk.attn_proj);
    let (dw, db) = wb_mut(x.tensors, g, blk.attn_proj);
    dev.linear_backward(Some(&mut *datt), dw, db, dbranch, &a.att, w, c, false);
    match mask {
        SelfMask::Causal => {
            dev.attention_backward(dqkv, datt, &a.att, &a.lse, &a.qkv, work, x.dims(), drop)
        }
        SelfMask::KeyPad(m) => {
            let (q, k, v) = (&a.qkv[..], &a.qkv[c..], &a.qkv[2 * c..]);
            let (att, lse) = (&a.att[..], &a.lse[..]);
            dev.cross_attention_backward(
                dqkv,
                None,
                datt,
                att,
                lse,
                q,
                k,
                v,
                Some(m),
                work,
                x.self_dims(),
                drop,
            )
        }
    }
    x.rotate(dqkv, x.t, 3 * c, 2 * c, -1.0);
    let (w, _) = wb(x.tensors, x.p, blk.c_attn);
    let (dw, db) = wb_mut(x.tensors, g, blk.c_attn);
    dev.linear_backward(Some(dh), dw, db, dqkv, h, w, c, true);
}

/// `branch = Attn(q = h·Wqᵀ + bq; k, v = enc·Wkvᵀ + bkv)·Woᵀ + bo` over the source keys not
/// marked in `key_pad [B,S]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cross_forward(
    x: Ctx<'_>,
    blk: &DecoderBlock,
    h: &[f32],
    enc: &[f32],
    s: usize,
    a: &mut CrossActs,
    key_pad: &[bool],
    work: &mut [f32],
    branch: &mut [f32],
    drop: Option<Mask>,
) {
    let (dev, c) = (x.dev, x.c);
    let (w, b) = wb(x.tensors, x.p, blk.q_proj);
    dev.linear_forward(&mut a.q, h, w, b, c);
    let (w, b) = wb(x.tensors, x.p, blk.kv_proj);
    dev.linear_forward(&mut a.kv, enc, w, b, c);
    x.rotate(&mut a.q, x.t, c, c, 1.0);
    x.rotate(&mut a.kv, s, 2 * c, c, 1.0);
    let (k, v) = (&a.kv[..], &a.kv[c..]);
    dev.cross_attention_forward(
        &mut a.att,
        &mut a.lse,
        &a.q,
        k,
        v,
        Some(key_pad),
        work,
        x.cross_dims(s),
        drop,
    );
    let (w, b) = wb(x.tensors, x.p, blk.cross_proj);
    dev.linear_forward(branch, &a.att, w, b, c);
}

/// The scratch [`cross_backward`] writes: `datt, dq [B·T,C]`, `dkv [B·S,2C]`, the workspace.
pub(crate) struct CrossScratch<'a> {
    pub datt: &'a mut [f32],
    pub dq: &'a mut [f32],
    pub dkv: &'a mut [f32],
    pub work: &'a mut [f32],
}

/// Backward of [`cross_forward`]: accumulates into `dh` and into `d_enc [B·S,C]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cross_backward(
    x: Ctx<'_>,
    g: &mut [f32],
    blk: &DecoderBlock,
    h: &[f32],
    enc: &[f32],
    s: usize,
    a: &CrossActs,
    key_pad: &[bool],
    dbranch: &[f32],
    dh: &mut [f32],
    d_enc: &mut [f32],
    sc: CrossScratch<'_>,
    drop: Option<Mask>,
) {
    let (dev, c) = (x.dev, x.c);
    let (w, _) = wb(x.tensors, x.p, blk.cross_proj);
    let (dw, db) = wb_mut(x.tensors, g, blk.cross_proj);
    dev.linear_backward(Some(&mut *sc.datt), dw, db, dbranch, &a.att, w, c, false);
    let (k, v) = (&a.kv[..], &a.kv[c..]);
    let d = x.cross_dims(s);
    let dkv = Some(&mut *sc.dkv);
    dev.cross_attention_backward(
        sc.dq,
        dkv,
        sc.datt,
        &a.att,
        &a.lse,
        &a.q,
        k,
        v,
        Some(key_pad),
        sc.work,
        d,
        drop,
    );
    x.rotate(sc.dq, x.t, c, c, -1.0);
    x.rotate(sc.dkv, s, 2 * c, c, -1.0);
    let (w, _) = wb(x.tensors, x.p, blk.q_proj);
    let (dw, db) = wb_mut(x.tensors, g, blk.q_proj);
    dev.linear_backward(Some(dh), dw, db, sc.dq, h, w, c, true);
    let (w, _) = wb(x.tensors, x.p, blk.kv_proj);
    let (dw, db) = wb_mut(x.tensors, g, blk.kv_proj);
    dev.linear_backward(Some(d_enc), dw, db, sc.dkv, enc, w, c, true);
}

/// `branch = act(h·W1ᵀ + b1)·W2ᵀ + b2`.
pub(crate) fn mlp_forward(
    x: Ctx<'_>,
    blk: &EncoderBlock,
    act: Activation,
    h: &[f32],
    m: &mut MlpActs,
    branch: &mut [f32],
) {
    let (dev, c) = (x.dev, x.c);
    let (w, b) = wb(x.tensors, x.p, blk.c_fc);
    dev.linear_forward(&mut m.fc, h, w, None, c);
    dev.gelu_forward_keep_derivative(&mut m.act, &mut m.fc, b, act);
    let (w, b) = wb(x.tensors, x.p, blk.mlp_proj);
    dev.linear_forward(branch, &m.act, w, b, m.fc.len() / (h.len() / c));
}

/// Backward of [`mlp_forward`]; `dfc [N,hidden]` is scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mlp_backward(
    x: Ctx<'_>,
    g: &mut [f32],
    blk: &EncoderBlock,
    h: &[f32],
    m: &MlpActs,
    dbranch: &[f32],
    dh: &mut [f32],
    dfc: &mut [f32],
) {
    let (dev, c) = (x.dev, x.c);
    let hidden = m.fc.len() / (h.len() / c);
    let (w, _) = wb(x.tensors, x.p, blk.mlp_proj);
    let (dw, db) = wb_mut(x.tensors, g, blk.mlp_proj);
    dev.linear_backward(Some(&mut *dfc), dw, db, dbranch, &m.act, w, hidden, false);
    dev.gelu_backward(dfc, &m.fc);
    let (w, _) = wb(x.tensors, x.p, blk.c_fc);
    let (dw, db) = wb_mut(x.tensors, g, blk.c_fc);
    dev.linear_backward(Some(dh), dw, db, dfc, h, w, c, true);
}
