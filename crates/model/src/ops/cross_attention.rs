//! Multi-head attention of `Tq` query rows over `Tk` key rows with a key padding mask and no
//! causal mask: the encoder–decoder's cross-attention (queries from the decoder, keys and
//! values from the encoder output) and the encoder's padded self-attention (q, k, v thirds of
//! one fused `qkv`).
//!
//! Shapes: `q [B,Tq]` rows of `qs` floats (head `h` at columns `h·hs..(h+1)·hs`),
//! `k, v [B,Tk]` rows of `kvs` floats (same head columns), `key_pad [B,Tk]` (`true` = padding,
//! torch's `key_padding_mask`), `out [B,Tq,C]`, `lse [B,H,Tq]` (per-row log-sum-exp of the
//! scaled scores over the kept keys, kept for backward).
//!
//! Forward per (batch, head): `S = Q·Kᵀ/√hs`, padded keys dropped from the softmax,
//! `P = softmax(S)`, `O = P·V`.
//! Backward recomputes `P = exp(S − lse)` (0 at padded keys), then with `D_i = dO_i·O_i`:
//! `dV = Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = P∘(dP − D)/√hs`, `dQ = dS·K`, `dK = dSᵀ·Q`.
//! Dropout on the probabilities (a counter [`Mask`] over `[B,H,Tq,Tk]`, no storage):
//! `O = drop(P)·V`, `dV = drop(P)ᵀ·dO`, `dP = drop'(dO·Vᵀ)`; `D_i = dO_i·O_i` still equals
//! `Σ_j P_ij·dP_ij`.
//! A query row whose keys are all padding attends to nothing: its output and gradients are 0
//! (torch gives NaN there; the model never builds such a row from a non-empty source).
//! Each worker needs `2·Tq·Tk` floats of scratch ([`scratch_per_worker`]); parallelism is over
//! (batch, head) pairs, split statically, so the bits do not depend on the worker count.

use crate::ops::dropout::Mask;
use crate::ops::math::{dot, exp};
use crate::ops::matmul::{matmul, Mat, MatMut, Par};
use crate::ops::sendptr::SendPtr;
use rayon::prelude::*;

/// Geometry of one cross-attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossDims {
    /// sequences
    pub b: usize,
    /// query rows per sequence
    pub tq: usize,
    /// key rows per sequence
    pub tk: usize,
    /// channels C (all heads)
    pub c: usize,
    /// heads
    pub nh: usize,
    /// floats per query row (`C` for a separate q, `3C` for a fused qkv)
    pub qs: usize,
    /// floats per key/value row (`2C` for a fused kv, `3C` for a fused qkv)
    pub kvs: usize,
}

impl CrossDims {
    fn hs(&self) -> usize {
        self.c / self.nh
    }
    /// Query rows `B·Tq`.
    pub fn q_rows(&self) -> usize {
        self.b * self.tq
    }
    /// Key rows `B·Tk`.
    pub fn k_rows(&self) -> usize {
        self.b * self.tk
    }
    /// Floats a strided buffer of `rows` rows of `stride` needs for columns `0..C` at `off`.
    fn need(rows: usize, stride: usize, c: usize) -> usize {
        if rows == 0 {
            0
        } else {
            (rows - 1) * stride + c
        }
    }
}

/// Scratch floats one worker needs: the score block and its gradient.
pub fn scratch_per_worker(d: CrossDims) -> usize {
    2 * d.tq * d.tk
}

/// Run `f(task, scratch)` for every (batch, head) task, split statically over the workers
/// `scratch` has room for.
fn for_each_task(d: CrossDims, scratch: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    let per = scratch_per_worker(d).max(1);
    let tasks = d.b * d.nh;
    assert!(scratch.len() >= per, "cross-attention scratch too small");
    let workers = (scratch.len() / per).clamp(1, tasks.max(1));
    scratch[..workers * per]
        .par_chunks_mut(per)
        .enumerate()
        .for_each(|(w, s)| {
            for task in tasks * w / workers..tasks * (w + 1) / workers {
                f(task, s);
            }
        });
}

/// The padding flags `[Tk]` of sequence `bi`'s keys (None: no padding mask).
#[inline]
fn pad_row(key_pad: Option<&[bool]>, bi: usize, tk: usize) -> Option<&[bool]> {
    key_pad.map(|m| &m[bi * tk..(bi + 1) * tk])
}

crate::simd_fn! {
    /// Softmax of one score row in place over the kept keys (`pad[j]` false; all without a
    /// mask), scaled by `scale`, 0 at padded ones; returns the row's log-sum-exp (`+∞` when
    /// every key is padding: the row is all zeros). Compiled for AVX2+FMA where the CPU has
    /// them (the exp polynomial's `mul_add`s are otherwise calls to a software fma).
    fn softmax_row(row: &mut [f32], pad: Option<&[bool]>, scale: f32) -> f32 {
        let keep = |j: usize| pad.is_none_or(|m| !m[j]);
        let mut mx = f32::NEG_INFINITY;
        for (j, &s) in row.iter().enumerate() {
            if keep(j) {
                mx = mx.max(s * scale);
            }
        }
        if mx == f32::NEG_INFINITY {
            row.fill(0.0);
            return f32::INFINITY;
        }
        let mut sum = 0.0f32;
        for (j, s) in row.iter_mut().enumerate() {
            *s = if keep(j) {
                exp(s.mul_add(scale, -mx))
            } else {
                0.0
            };
            sum += *s;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|p| *p *= inv);
        mx + sum.ln()
    }
}

crate::simd_fn! {
    /// Backward's recomputed probabilities of one row: `row ← exp(row·scale − lse)` at the
    /// kept keys, 0 at padded ones and everywhere when `lse` is `+∞` (no kept key).
    fn probs_row(row: &mut [f32], pad: Option<&[bool]>, scale: f32, lse: f32) {
        let all_padded = !lse.is_finite();
        for (j, x) in row.iter_mut().enumerate() {
            let keep = !all_padded && pad.is_none_or(|m| !m[j]);
            *x = if keep { exp(x.mul_add(scale, -lse)) } else { 0.0 };
        }
    }
}

crate::simd_fn! {
    /// `ds ← p·(ds − delta)·scale` (one row of the scores' gradient).
    fn dscore_row(ds: &mut [f32], p: &[f32], delta: f32, scale: f32) {
        for (g, &pj) in ds.iter_mut().zip(p) {
            *g = pj * (*g - delta) * scale;
        }
    }
}

/// `row ← row·mask` for the probabilities of one query row whose first element has index
/// `start` in `[B,H,Tq,Tk]`.
fn drop_row(row: &mut [f32], mk: Mask, start: usize) {
    for (j, x) in row.iter_mut().enumerate() {
        *x *= mk.factor((start + j) as u64);
    }
}

/// Rows of one head: `rows` rows of `hs` columns starting at `data[0]`, `stride` apart.
fn head(data: &[f32], rows: usize, hs: usize, stride: usize) -> Mat<'_> {
    Mat::new(data, rows, hs, stride, 1)
}

/// Forward: fills `out` and `lse` (see the module docs for shapes).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    out: &mut [f32],
    lse: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    key_pad: Option<&[bool]>,
    scratch: &mut [f32],
    d: CrossDims,
    drop: Option<Mask>,
) {
    let (tq, tk, c, nh, hs) = (d.tq, d.tk, d.c, d.nh, d.hs());
    assert!(q.len() >= CrossDims::need(d.q_rows(), d.qs, c));
    assert!(k.len() >= CrossDims::need(d.k_rows(), d.kvs, c));
    assert!(v.len() >= CrossDims::need(d.k_rows(), d.kvs, c));
    assert!(out.len() >= d.q_rows() * c && lse.len() >= d.b * nh * tq);
    assert!(key_pad.is_none_or(|m| m.len() >= d.k_rows()));
    let scale = 1.0 / (hs as f32).sqrt();
    let (op, lp) = (SendPtr(out.as_mut_ptr()), SendPtr(lse.as_mut_ptr()));
    for_each_task(d, scratch, |task, s| {
        let (bi, h) = (task / nh, task % nh);
        let qh = head(&q[bi * tq * d.qs + h * hs..], tq, hs, d.qs);
        let kh = head(&k[bi * tk * d.kvs + h * hs..], tk, hs, d.kvs);
        let vh = head(&v[bi * tk * d.kvs + h * hs..], tk, hs, d.kvs);
        let p = &mut s[..tq * tk];
        // S = Q·Kᵀ  [tq, tk]
        matmul(MatMut::row_major(p, tq, tk), qh, kh.t(), false, Par::Single);
        let pad = pad_row(key_pad, bi, tk);
        for i in 0..tq {
            let l = softmax_row(&mut p[i * tk..(i + 1) * tk], pad, scale);
            // SAFETY: this task alone writes lse[task·tq..(task+1)·tq] (asserted in bounds).
            unsafe { *lp.get().add(task * tq + i) = l };
            if let Some(mk) = drop {
                drop_row(&mut p[i * tk..(i + 1) * tk], mk, (task * tq + i) * tk);
            }
        }
        // O = P·V  [tq, hs] into the (bi, h) columns of out
        // SAFETY: rows bi·tq.. of out, columns h·hs..(h+1)·hs: this task's alone, in bounds.
        let o = unsafe { MatMut::from_raw(op.get().add(bi * tq * c + h * hs), tq, hs, c) };
        matmul(o, Mat::row_major(p, tq, tk), vh, false, Par::Single);
    });
}

/// Where backward writes the key and value gradients.
pub enum KvGrad<'a> {
    /// A separate `dkv [B·Tk, kvs]`: `dk` at columns `0..C`, `dv` at `C..2C` (cross-attention's
    /// fused kv projection).
    Separate(&'a mut [f32]),
    /// In the rows of `dq` itself, `dk` at columns `C..2C`, `dv` at `2C..3C` (a fused qkv;
    /// then `Tq = Tk` and `qs = kvs`).
    InQ,
}

/// Backward: overwrites `dq` (the query columns of each row) and the key/value gradients
/// (see [`KvGrad`]) from `dout [B,Tq,C]`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dq: &mut [f32],
    dkv: KvGrad<'_>,
    dout: &[f32],
    out: &[f32],
    lse: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    key_pad: Option<&[bool]>,
    scratch: &mut [f32],
    d: CrossDims,
    drop: Option<Mask>,
) {
    let (tq, tk, c, nh, hs) = (d.tq, d.tk, d.c, d.nh, d.hs());
    assert!(dq.len() >= CrossDims::need(d.q_rows(), d.qs, c));
    assert!(dout.len() >= d.q_rows() * c && out.len() >= d.q_rows() * c);
    assert!(lse.len() >= d.b * nh * tq);
    assert!(q.len() >= CrossDims::need(d.q_rows(), d.qs, c));
    assert!(k.len() >= CrossDims::need(d.k_rows(), d.kvs, c));
    assert!(v.len() >= CrossDims::need(d.k_rows(), d.kvs, c));
    assert!(key_pad.is_none_or(|m| m.len() >= d.k_rows()));
    let dqp = SendPtr(dq.as_mut_ptr());
    // dk and dv: their first float, and the row stride
    let (dkp, dvp) = match dkv {
        KvGrad::Separate(buf) => {
            assert!(buf.len() >= CrossDims::need(d.k_rows(), d.kvs, 2 * c));
            (SendPtr(buf.as_mut_ptr()), SendPtr(buf[c..].as_mut_ptr()))
        }
        KvGrad::InQ => {
            assert!(tq == tk && d.qs == d.kvs && d.qs >= 3 * c);
            // SAFETY: the dq rows hold 3C columns (asserted), so C and 2C are in bounds.
            unsafe { (SendPtr(dqp.get().add(c)), SendPtr(dqp.get().add(2 * c))) }
        }
    };
    let scale = 1.0 / (hs as f32).sqrt();
    for_each_task(d, scratch, |task, s| {
        let (bi, h) = (task / nh, task % nh);
        let (p, ds) = s.split_at_mut(tq * tk);
        let ds = &mut ds[..tq * tk];
        let qh = head(&q[bi * tq * d.qs + h * hs..], tq, hs, d.qs);
        let kh = head(&k[bi * tk * d.kvs + h * hs..], tk, hs, d.kvs);
        let vh = head(&v[bi * tk * d.kvs + h * hs..], tk, hs, d.kvs);
        let doh = head(&dout[bi * tq * c + h * hs..], tq, hs, c);
        // P = exp(S·scale − lse), 0 at padded keys (and on rows with no kept key: lse = ∞)
        matmul(MatMut::row_major(p, tq, tk), qh, kh.t(), false, Par::Single);
        let pad = pad_row(key_pad, bi, tk);
        for i in 0..tq {
            probs_row(&mut p[i * tk..(i + 1) * tk], pad, scale, lse[task * tq + i]);
        }
        // SAFETY (the three views): rows of sequence bi, columns of head h of dq/dk/dv are
        // written by this task alone, and lie inside the buffers asserted above.
        let (dqh, dkh, dvh) = unsafe {
            let dq0 = dqp.get().add(bi * tq * d.qs + h * hs);
            let dk0 = dkp.get().add(bi * tk * d.kvs + h * hs);
            let dv0 = dvp.get().add(bi * tk * d.kvs + h * hs);
            (
                MatMut::from_raw(dq0, tq, hs, d.qs),
                MatMut::from_raw(dk0, tk, hs, d.kvs),
                MatMut::from_raw(dv0, tk, hs, d.kvs),
            )
        };
        // dV = drop(P)ᵀ·dO  [tk, hs] (ds holds drop(P) for the moment)
        let pd: &[f32] = match drop {
            Some(mk) => {
                ds.copy_from_slice(p);
                for i in 0..tq {
                    drop_row(&mut ds[i * tk..(i + 1) * tk], mk, (task * tq + i) * tk);
                }
                ds
            }
            None => p,
        };
        matmul(dvh, Mat::row_major(pd, tq, tk).t(), doh, false, Par::Single);
        // dP = dO·Vᵀ  [tq, tk], then dS = P∘(dP − D)·scale
        matmul(
            MatMut::row_major(ds, tq, tk),
            doh,
            vh.t(),
            false,
            Par::Single,
        );
        for i in 0..tq {
            let row = (bi * tq + i) * c + h * hs;
            let delta = dot(&dout[row..row + hs], &out[row..row + hs]);
            let (dsr, pr) = (&mut ds[i * tk..(i + 1) * tk], &p[i * tk..(i + 1) * tk]);
            if let Some(mk) = drop {
                drop_row(dsr, mk, (task * tq + i) * tk);
            }
            dscore_row(dsr, pr, delta, scale);
        }
        // dQ = dS·K ; dK = dSᵀ·Q
        let dsm = Mat::row_major(ds, tq, tk);
        matmul(dqh, dsm, kh, false, Par::Single);
        matmul(dkh, dsm.t(), qh, false, Par::Single);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    /// Direct f64 attention with the key padding mask.
    fn naive(q: &[f32], k: &[f32], v: &[f32], pad: Option<&[bool]>, d: CrossDims) -> Vec<f32> {
        let (hs, c) = (d.hs(), d.c);
        let mut out = vec![0.0; d.q_rows() * c];
        for b in 0..d.b {
            for h in 0..d.nh {
                for i in 0..d.tq {
                    let qi = &q[(b * d.tq + i) * d.qs + h * hs..][..hs];
                    let keys: Vec<usize> = (0..d.tk)
                        .filter(|&j| pad.is_none_or(|m| !m[b * d.tk + j]))
                        .collect();
                    let sc: Vec<f64> = keys
                        .iter()
                        .map(|&j| {
                            let kj = &k[(b * d.tk + j) * d.kvs + h * hs..][..hs];
                            let s: f64 =
                                qi.iter().zip(kj).map(|(a, b)| *a as f64 * *b as f64).sum();
                            s / (hs as f64).sqrt()
                        })
                        .collect();
                    let mx = sc.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = sc.iter().map(|s| (s - mx).exp()).sum();
                    for (&j, s) in keys.iter().zip(&sc) {
                        let p = (s - mx).exp() / z;
                        for e in 0..hs {
                            let vj = v[(b * d.tk + j) * d.kvs + h * hs + e] as f64;
                            out[(b * d.tq + i) * c + h * hs + e] += (p * vj) as f32;
                        }
                    }
                }
            }
        }
        out
    }

    fn run(
        q: &[f32],
        kv: &[f32],
        pad: Option<&[bool]>,
        d: CrossDims,
        w: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        run_drop(q, kv, pad, d, w, None)
    }

    fn run_drop(
        q: &[f32],
        kv: &[f32],
        pad: Option<&[bool]>,
        d: CrossDims,
        w: usize,
        drop: Option<Mask>,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut out = vec![0.0; d.q_rows() * d.c];
        let mut lse = vec![0.0; d.b * d.nh * d.tq];
        let mut s = vec![0.0; w * scratch_per_worker(d)];
        forward(&mut out, &mut lse, q, kv, &kv[d.c..], pad, &mut s, d, drop);
        (out, lse)
    }

    #[test]
    fn probability_dropout_gradients_match_fd() {
        let d = CrossDims {
            b: 2,
            tq: 3,
            tk: 5,
            c: 8,
            nh: 2,
            qs: 8,
            kvs: 16,
        };
        let pad = [
            false, true, false, false, true, false, false, false, false, false,
        ];
        let drop = Some(Mask {
            seed: 5,
            stream: 3,
            p: 0.3,
            offset: 0,
        });
        let q = randn(d.q_rows() * d.qs, 1, 1.0);
        let kv = randn(d.k_rows() * d.kvs, 2, 1.0);
        let (out, lse) = run_drop(&q, &kv, Some(&pad), d, 3, drop);
        let plain = run(&q, &kv, Some(&pad), d, 3).0;
        assert!(out.iter().zip(&plain).any(|(a, b)| (a - b).abs() > 1e-3));
        let g = randn(d.q_rows() * d.c, 3, 1.0);
        let (mut dq, mut dkv) = (vec![7.0; q.len()], vec![7.0; kv.len()]);
        let mut s = vec![0.0; 2 * scratch_per_worker(d)];
        let kvg = KvGrad::Separate(&mut dkv);
        let pad = Some(&pad[..]);
        backward(
            &mut dq,
            kvg,
            &g,
            &out,
            &lse,
            &q,
            &kv,
            &kv[d.c..],
            pad,
            &mut s,
            d,
            drop,
        );
        let f_q = |x: &[f32]| weighted_sum(&run_drop(x, &kv, pad, d, 1, drop).0, &g);
        check_grad("q", &q, &dq, f_q, 1e-2, 2e-3);
        let f_kv = |x: &[f32]| weighted_sum(&run_drop(&q, x, pad, d, 1, drop).0, &g);
        check_grad("kv", &kv, &dkv, f_kv, 1e-2, 2e-3);
    }

    #[test]
    fn cross_forward_matches_naive_and_gradients_match_fd() {
        // tq ≠ tk; sequence 0 has two padded keys (not at the end: the mask is general),
        // sequence 1 none.
        let d = CrossDims {
            b: 2,
            tq: 3,
            tk: 5,
            c: 8,
            nh: 2,
            qs: 8,
            kvs: 16,
        };
        let pad = [
            false, true, false, false, true, false, false, false, false, false,
        ];
        let q = randn(d.q_rows() * d.qs, 1, 1.0);
        let kv = randn(d.k_rows() * d.kvs, 2, 1.0);
        let (out, lse) = run(&q, &kv, Some(&pad), d, 3);
        let want = naive(&q, &kv, &kv[d.c..], Some(&pad), d);
        for (a, b) in out.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let g = randn(d.q_rows() * d.c, 3, 1.0);
        let (mut dq, mut dkv) = (vec![7.0; q.len()], vec![7.0; kv.len()]);
        let mut s = vec![0.0; 2 * scratch_per_worker(d)];
        let kvg = KvGrad::Separate(&mut dkv);
        backward(
            &mut dq,
            kvg,
            &g,
            &out,
            &lse,
            &q,
            &kv,
            &kv[d.c..],
            Some(&pad),
            &mut s,
            d,
            None,
        );
        let f_q = |x: &[f32]| weighted_sum(&run(x, &kv, Some(&pad), d, 1).0, &g);
        check_grad("q", &q, &dq, f_q, 1e-2, 2e-3);
        let f_kv = |x: &[f32]| weighted_sum(&run(&q, x, Some(&pad), d, 1).0, &g);
        check_grad("kv", &kv, &dkv, f_kv, 1e-2, 2e-3);
        // padded keys get no gradient at all
        for j in [1, 4] {
            assert!(dkv[j * d.kvs..(j + 1) * d.kvs].iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn fused_qkv_self_attention_with_padding() {
        // the encoder's use: q, k, v thirds of one qkv, keys padded at the end of sequence 1
        let d = CrossDims {
            b: 2,
            tq: 4,
            tk: 4,
            c: 6,
            nh: 3,
            qs: 18,
            kvs: 18,
        };
        let pad = [false, false, false, false, false, false, true, true];
        let qkv = randn(d.q_rows() * 18, 4, 1.0);
        let fwd = |x: &[f32]| {
            let mut out = vec![0.0; d.q_rows() * d.c];
            let mut lse = vec![0.0; d.b * d.nh * d.tq];
            let mut s = vec![0.0; scratch_per_worker(d)];
            forward(
                &mut out,
                &mut lse,
                x,
                &x[6..],
                &x[12..],
                Some(&pad),
                &mut s,
                d,
                None,
            );
            (out, lse)
        };
        let (out, lse) = fwd(&qkv);
        let want = naive(&qkv, &qkv[6..], &qkv[12..], Some(&pad), d);
        for (a, b) in out.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let g = randn(d.q_rows() * d.c, 5, 1.0);
        let mut dqkv = vec![7.0; qkv.len()];
        let mut s = vec![0.0; 4 * scratch_per_worker(d)];
        let (k, v) = (&qkv[6..], &qkv[12..]);
        backward(
            &mut dqkv,
            KvGrad::InQ,
            &g,
            &out,
            &lse,
            &qkv,
            k,
            v,
            Some(&pad),
            &mut s,
            d,
            None,
        );
        let f = |x: &[f32]| weighted_sum(&fwd(x).0, &g);
        check_grad("qkv", &qkv, &dqkv, f, 1e-2, 2e-3);
    }

    #[test]
    fn all_padded_row_is_zero_and_workers_do_not_change_bits() {
        let d = CrossDims {
            b: 2,
            tq: 2,
            tk: 3,
            c: 4,
            nh: 2,
            qs: 4,
            kvs: 8,
        };
        let pad = [true, true, true, false, false, true];
        let q = randn(d.q_rows() * d.qs, 6, 1.0);
        let kv = randn(d.k_rows() * d.kvs, 7, 1.0);
        let (out, lse) = run(&q, &kv, Some(&pad), d, 1);
        assert!(out[..d.tq * d.c].iter().all(|&x| x == 0.0));
        assert!(out[d.tq * d.c..].iter().all(|&x| x != 0.0));
        assert_eq!((out.clone(), lse.clone()), run(&q, &kv, Some(&pad), d, 4));
        let g = randn(d.q_rows() * d.c, 8, 1.0);
        let (mut dq, mut dkv) = (vec![1.0; q.len()], vec![1.0; kv.len()]);
        let mut s = vec![0.0; scratch_per_worker(d)];
        let kvg = KvGrad::Separate(&mut dkv);
        backward(
            &mut dq,
            kvg,
            &g,
            &out,
            &lse,
            &q,
            &kv,
            &kv[4..],
            Some(&pad),
            &mut s,
            d,
            None,
        );
        assert!(dq[..d.tq * d.qs].iter().all(|&x| x == 0.0));
        assert!(dkv.iter().all(|x| x.is_finite()));
    }
}
