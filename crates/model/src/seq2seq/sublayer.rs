//! One residual sublayer, pre- or post-LN, around a branch `F` (attention, cross-attention or
//! MLP), forward and backward side by side. Shapes: the stream `x, out [N,C]`.
//!
//! Pre-LN:  `h = LN(x)`, `out = x + F(h)`;   backward: `dx = dy + LN'(F'(dy))`.
//! Post-LN: `r = x + F(x)`, `out = LN(r)`;   backward: `dr = LN'(dy)`, `dx = dr + F'(dr)`.
//! `F'` accumulates into the gradient of its input (`dinput += ∂F/∂input · dbranch`) and
//! into its parameters' gradients.

use super::config::Norm;
use crate::backend::cpu::{AlignedBuf, Cpu};
use crate::backend::Backend;
use crate::backend::Mask;
use crate::params::TensorInfo;
use crate::params::Wb;

/// A sublayer's saved activations.
#[derive(Debug, Default)]
pub(crate) struct Sub {
    /// pre-LN: `LN(x)` (the branch input) `[N,C]`; post-LN: unused
    pub ln: AlignedBuf,
    /// LayerNorm row means `[N]`
    pub mean: AlignedBuf,
    /// LayerNorm row reciprocal standard deviations `[N]`
    pub rstd: AlignedBuf,
    /// post-LN: `x + F(x)` (the LayerNorm input) `[N,C]`; pre-LN: unused
    pub sum: AlignedBuf,
    /// the stream after the sublayer `[N,C]`
    pub out: AlignedBuf,
}

impl Sub {
    /// Buffers for `n` rows of `c` channels.
    pub fn new(norm: Norm, n: usize, c: usize) -> Self {
        let (ln, sum) = match norm {
            Norm::Pre => (AlignedBuf::zeros(n * c), AlignedBuf::default()),
            Norm::Post => (AlignedBuf::default(), AlignedBuf::zeros(n * c)),
        };
        Sub {
            ln,
            mean: AlignedBuf::zeros(n),
            rstd: AlignedBuf::zeros(n),
            sum,
            out: AlignedBuf::zeros(n * c),
        }
    }
}

/// `(w, b)` of a weight and optional bias in the flat buffer `p`.
pub(crate) fn wb<'a>(t: &[TensorInfo], p: &'a [f32], x: Wb) -> (&'a [f32], Option<&'a [f32]>) {
    (&p[t[x.w].range()], x.b.map(|b| &p[t[b].range()]))
}

/// Mutable `(dw, db)` of a weight and its bias (the bias follows the weight in the layout).
pub(crate) fn wb_mut<'a>(
    t: &[TensorInfo],
    g: &'a mut [f32],
    x: Wb,
) -> (&'a mut [f32], Option<&'a mut [f32]>) {
    let rw = t[x.w].range();
    match x.b {
        Some(b) => {
            let rb = t[b].range();
            let (head, tail) = g.split_at_mut(rb.start);
            (&mut head[rw], Some(&mut tail[..rb.len()]))
        }
        None => (&mut g[rw], None),
    }
}

/// Forward: `branch` is scratch `[N,C]`; `f(h, branch)` writes `F(h)` into `branch`, which
/// goes through `drop` (inverted dropout, training only) before the residual add.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    dev: &Cpu,
    norm: Norm,
    tensors: &[TensorInfo],
    p: &[f32],
    ln: Wb,
    drop: Option<Mask>,
    x: &[f32],
    s: &mut Sub,
    branch: &mut [f32],
    f: impl FnOnce(&[f32], &mut [f32]),
) {
    let (w, b) = wb(tensors, p, ln);
    match norm {
        Norm::Pre => {
            dev.layernorm_forward(&mut s.ln, &mut s.mean, &mut s.rstd, x, w, b);
            f(&s.ln, branch);
            if let Some(m) = drop {
                dev.dropout(branch, m);
            }
            dev.residual(&mut s.out, x, branch);
        }
        Norm::Post => {
            f(x, branch);
            if let Some(m) = drop {
                dev.dropout(branch, m);
            }
            dev.residual(&mut s.sum, x, branch);
            dev.layernorm_forward(&mut s.out, &mut s.mean, &mut s.rstd, &s.sum, w, b);
        }
    }
}

/// The input the branch saw in [`forward`]: `LN(x)` (pre-LN, saved in `s.ln`) or the stream
/// `x` itself (post-LN). `[N,C]`
pub(crate) fn branch_input<'a>(norm: Norm, x: &'a [f32], s: &'a Sub) -> &'a [f32] {
    match norm {
        Norm::Pre => &s.ln,
        Norm::Post => x,
    }
}

/// Backward from `dy` (the gradient of `out`) to `dx` (overwritten); `dh` is scratch `[N,C]`;
/// `f_back(h, dbranch, dinput, grads)` accumulates the branch's input and parameter gradients
/// (`h`: the branch's input, [`branch_input`]; `dbranch` through the forward's dropout mask
/// `drop`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    dev: &Cpu,
    norm: Norm,
    tensors: &[TensorInfo],
    p: &[f32],
    g: &mut [f32],
    ln: Wb,
    drop: Option<Mask>,
    x: &[f32],
    s: &Sub,
    dy: &[f32],
    dx: &mut [f32],
    dh: &mut [f32],
    f_back: impl FnOnce(&[f32], &[f32], &mut [f32], &mut [f32]),
) {
    let (w, _) = wb(tensors, p, ln);
    let h = branch_input(norm, x, s);
    match norm {
        Norm::Pre => {
            dev.zero(dh);
            match drop {
                Some(m) => {
                    // dx holds the masked dbranch until the branch has read it
                    dev.copy(dx, dy);
                    dev.dropout(dx, m);
                    f_back(h, dx, dh, g);
                }
                None => f_back(h, dy, dh, g),
            }
            dev.copy(dx, dy);
            let (dw, db) = wb_mut(tensors, g, ln);
            dev.layernorm_backward(dx, dw, db, dh, x, w, &s.mean, &s.rstd, true);
        }
        Norm::Post => {
            let (dw, db) = wb_mut(tensors, g, ln);
            dev.layernorm_backward(dh, dw, db, dy, &s.sum, w, &s.mean, &s.rstd, false);
            dev.copy(dx, dh);
            if let Some(m) = drop {
                dev.dropout(dh, m);
            }
            f_back(h, dh, dx, g);
        }
    }
}
