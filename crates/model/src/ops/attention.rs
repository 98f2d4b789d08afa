//! Causal multi-head self-attention, memory-efficient (flash-style, per query block).
//!
//! Shapes: `qkv [B,T,3C]` (q, k, v thirds; head `h` at columns `h·hs..(h+1)·hs` of each),
//! `out [B,T,C]`, `lse [B,H,T]` = per-row log-sum-exp of the scaled scores, kept for backward.
//!
//! Forward, per (batch, head) and per block of [`query_block`] rows `i0..i1` (keys `0..i1`):
//!   `S = Q·Kᵀ/√hs` (masked `j > i`), `E = e^{S − max}`, `lse = logsumexp(S)`,
//!   `O = (drop(E)·V) / ΣE` (normalising the output rows, `hs` wide, instead of `E`).
//! Backward recomputes `P = exp(S − lse)` block by block, then with `D_i = dO_i·O_i`:
//!   `dV += drop(P)ᵀ·dO`, `dP = drop'(dO·Vᵀ)`, `dS = P∘(dP − D)/√hs`, `dQ = dS·K`, `dK += dSᵀ·Q`.
//! Only `lse` (`B·H·T` floats) is stored — never a `[B,H,T,T]` tensor; each worker thread needs
//! `2·query_block(T)·T` floats of scratch. The block products go through the matmul kernel on one
//! thread each; parallelism is over (batch, head) pairs, split statically over workers.
//!
//! Dropout on the probabilities uses [`Mask`] with element index `((b·H+h)·T+i)·T+j`.

use crate::dtype::Precision;
use crate::ops::dropout::Mask;
use crate::ops::math::{dot, exp, exp_sum, max};
use crate::ops::matmul::{matmul, matmul_bf16, Mat, MatMut, Par};
use crate::ops::sendptr::SendPtr;
use rayon::prelude::*;

/// Most query rows per block.
pub const QBLOCK: usize = 64;

/// Query rows per block for sequences of length `t`: up to [`QBLOCK`], but at least two blocks
/// (rounded to whole AVX2 vectors) so that the first block skips the keys the causal mask hides
/// (measured: 32 beats 64 at T = 64; 64 beats 32 at T = 256).
pub fn query_block(t: usize) -> usize {
    t.div_ceil(2).next_multiple_of(8).clamp(8, QBLOCK)
}

/// Attention geometry.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    /// sequences
    pub b: usize,
    /// sequence length
    pub t: usize,
    /// channels C (all heads)
    pub c: usize,
    /// heads
    pub nh: usize,
}

impl Dims {
    fn hs(&self) -> usize {
        self.c / self.nh
    }
}

/// Scratch floats one worker needs for sequences of length `t`: two score blocks.
pub fn scratch_per_worker(t: usize) -> usize {
    2 * query_block(t).min(t) * t
}

/// Run `f(task, scratch)` for every (batch, head) task, tasks split statically over the workers
/// that `scratch` has room for.
fn for_each_task(d: Dims, scratch: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    let per = scratch_per_worker(d.t);
    let tasks = d.b * d.nh;
    let workers = (scratch.len() / per).clamp(1, tasks.max(1));
    assert!(scratch.len() >= per, "attention scratch too small");
    scratch[..workers * per]
        .par_chunks_mut(per)
        .enumerate()
        .for_each(|(w, s)| {
            for task in tasks * w / workers..tasks * (w + 1) / workers {
                f(task, s);
            }
        });
}

/// `row[j] ← f(row[j])` for `j < valid` and `0` after (the causal mask), with `f` applied
/// 8 lanes at a time: whole chunks below `valid`, the chunk holding `valid` masked lane by
/// lane, nothing above it. `acc` receives each kept value per lane (for sums).
#[inline(always)]
fn masked_map(row: &mut [f32], valid: usize, acc: &mut [f32; 8], f: impl Fn(f32) -> f32) {
    let full = valid / 8 * 8;
    let (head, rest) = row.split_at_mut(full);
    for c in head.chunks_exact_mut(8) {
        for l in 0..8 {
            c[l] = f(c[l]);
            acc[l] += c[l];
        }
    }
    let (edge, zeros) = rest.split_at_mut(rest.len().min(8));
    for (l, x) in edge.iter_mut().enumerate() {
        *x = if full + l < valid { f(*x) } else { 0.0 };
        acc[l] += *x;
    }
    zeros.fill(0.0);
}

crate::simd_fn! {
    /// Unnormalised softmax of one score row in place: `row[j] ← e^{row[j]·scale − max}` for
    /// `j < valid`, 0 after (the causal mask). Returns `(logsumexp, 1/Σ)`: the caller scales
    /// the row's *output* by `1/Σ`, which is shorter than the row.
    fn softmax_row(row: &mut [f32], valid: usize, scale: f32) -> (f32, f32) {
        let mx = max(&row[..valid]) * scale;
        let mut s8 = [0.0f32; 8];
        masked_map(row, valid, &mut s8, |x| exp(x.mul_add(scale, -mx)));
        let s = ((s8[0] + s8[4]) + (s8[1] + s8[5])) + ((s8[2] + s8[6]) + (s8[3] + s8[7]));
        (mx + s.ln(), 1.0 / s)
    }
}

crate::simd_fn! {
    /// `row ← exp(row·scale − lse)` over `0..valid`, zeros after.
    fn probs_row(row: &mut [f32], valid: usize, scale: f32, lse: f32) {
        masked_map(row, valid, &mut [0.0; 8], |x| exp(x.mul_add(scale, -lse)));
    }
}

crate::simd_fn! {
    /// `ds ← p·(ds − delta)·scale`.
    fn dscore_row(ds: &mut [f32], p: &[f32], delta: f32, scale: f32) {
        for (d, &p) in ds.iter_mut().zip(p) {
            *d = p * (*d - delta) * scale;
        }
    }
}

/// Rows `r0..r0 + rows` of one head's `hs` columns in a buffer of `stride`-float rows, `data`
/// starting at the head's first column (a q, k or v third of `qkv`, or a head of `dout`).
fn head_rows(data: &[f32], r0: usize, rows: usize, hs: usize, stride: usize) -> Mat<'_> {
    Mat::new(&data[r0 * stride..], rows, hs, stride, 1)
}

/// The written counterpart of [`head_rows`], at a raw pointer into a buffer that other tasks
/// write in other heads' columns.
///
/// # Safety
/// As [`MatMut::from_raw`]: the rows in bounds and written by this task alone meanwhile.
unsafe fn head_rows_mut<'a>(
    ptr: *mut f32,
    r0: usize,
    rows: usize,
    hs: usize,
    stride: usize,
) -> MatMut<'a> {
    // SAFETY: the caller's contract.
    unsafe { MatMut::from_raw(ptr.add(r0 * stride), rows, hs, stride) }
}

/// `C (+)= A·B` for one block on the calling thread, in `prec`: under bf16 mixed precision
/// the operands (Q, K, V, P, dO, dS) are rounded to bf16 with f32 accumulation, as torch
/// autocast runs attention's products; softmax and its statistics stay f32.
fn product(prec: Precision, c: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    match prec {
        Precision::Fp32 => matmul(c, a, b, accumulate, Par::Single),
        Precision::Bf16(kern) => matmul_bf16(kern, c, a, b, accumulate, Par::Single),
    }
}

/// Forward: fills `out` and `lse`; the block products in `prec`.
pub fn forward(
    out: &mut [f32],
    lse: &mut [f32],
    qkv: &[f32],
    scratch: &mut [f32],
    d: Dims,
    drop: Option<Mask>,
    prec: Precision,
) {
    let (t, c, nh, hs) = (d.t, d.c, d.nh, d.hs());
    assert!(qkv.len() >= d.b * t * 3 * c && out.len() >= d.b * t * c && lse.len() >= d.b * nh * t);
    let scale = 1.0 / (hs as f32).sqrt();
    let qb = query_block(t);
    let (op, lp) = (SendPtr(out.as_mut_ptr()), SendPtr(lse.as_mut_ptr()));
    for_each_task(d, scratch, |task, sb| {
        let (op, lp) = (op, lp);
        let (bi, h) = (task / nh, task % nh);
        let q = &qkv[bi * t * 3 * c + h * hs..];
        let (k, v) = (&q[c..], &q[2 * c..]);
        // SAFETY (whole closure): all offsets stay inside the buffers asserted above; this task
        // alone writes out rows of (bi, h) columns h·hs.. and lse[task·t..].
        unsafe {
            let o = op.0.add(bi * t * c + h * hs);
            for i0 in (0..t).step_by(qb) {
                let (m, nk) = ((t - i0).min(qb), (i0 + qb).min(t));
                let sb = &mut sb[..m * nk];
                // S = Q·Kᵀ  [m, nk]
                let qi = head_rows(q, i0, m, hs, 3 * c);
                let k_t = head_rows(k, 0, nk, hs, 3 * c).t();
                product(prec, MatMut::row_major(sb, m, nk), qi, k_t, false);
                let mut inv = [0.0f32; QBLOCK];
                for r in 0..m {
                    let i = i0 + r;
                    let row = &mut sb[r * nk..(r + 1) * nk];
                    let (l, inv_sum) = softmax_row(row, i + 1, scale);
                    *lp.0.add(task * t + i) = l;
                    inv[r] = inv_sum;
                    if let Some(mk) = drop {
                        let base = ((task * t + i) * t) as u64;
                        for (j, p) in row[..=i].iter_mut().enumerate() {
                            *p *= mk.factor(base + j as u64);
                        }
                    }
                }
                // O = E·V  [m, hs], then the rows × 1/Σ (E was left unnormalised)
                let (e, v_rows) = (Mat::row_major(sb, m, nk), head_rows(v, 0, nk, hs, 3 * c));
                product(prec, head_rows_mut(o, i0, m, hs, c), e, v_rows, false);
                for (r, &f) in inv[..m].iter().enumerate() {
                    let row = std::slice::from_raw_parts_mut(o.add((i0 + r) * c), hs);
                    row.iter_mut().for_each(|x| *x *= f);
                }
            }
        }
    });
}

/// Backward: writes `dqkv` (q, k, v thirds fully overwritten for all heads).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dqkv: &mut [f32],
    dout: &[f32],
    out: &[f32],
    lse: &[f32],
    qkv: &[f32],
    scratch: &mut [f32],
    d: Dims,
    drop: Option<Mask>,
    prec: Precision,
) {
    let (t, c, nh, hs) = (d.t, d.c, d.nh, d.hs());
    let n = d.b * t;
    assert!(
        qkv.len() >= n * 3 * c
            && dqkv.len() >= n * 3 * c
            && dout.len() >= n * c
            && out.len() >= n * c
    );
    assert!(lse.len() >= d.b * nh * t);
    let scale = 1.0 / (hs as f32).sqrt();
    let qb = query_block(t);
    let dp = SendPtr(dqkv.as_mut_ptr());
    for_each_task(d, scratch, |task, s| {
        let (bi, h) = (task / nh, task % nh);
        let blk = qb.min(t) * t;
        let (s0, rest) = s.split_at_mut(blk);
        let s1 = &mut rest[..blk];
        let q = &qkv[bi * t * 3 * c + h * hs..];
        let (k, v) = (&q[c..], &q[2 * c..]);
        let dout_head = &dout[bi * t * c + h * hs..];
        // SAFETY (whole closure): offsets stay inside the asserted buffers; this task alone
        // writes the (bi, h) head columns of dqkv.
        unsafe {
            let dq = dp.get().add(bi * t * 3 * c + h * hs);
            let (dk, dv) = (dq.add(c), dq.add(2 * c));
            for r in 0..t {
                std::slice::from_raw_parts_mut(dk.add(r * 3 * c), hs).fill(0.0);
                std::slice::from_raw_parts_mut(dv.add(r * 3 * c), hs).fill(0.0);
            }
            for i0 in (0..t).step_by(qb) {
                let (m, nk) = ((t - i0).min(qb), (i0 + qb).min(t));
                let (p, ds) = (&mut s0[..m * nk], &mut s1[..m * nk]);
                let qi = head_rows(q, i0, m, hs, 3 * c);
                let (k_rows, v_rows) = (
                    head_rows(k, 0, nk, hs, 3 * c),
                    head_rows(v, 0, nk, hs, 3 * c),
                );
                // P = exp(Q·Kᵀ·scale − lse)
                product(prec, MatMut::row_major(p, m, nk), qi, k_rows.t(), false);
                for r in 0..m {
                    let i = i0 + r;
                    probs_row(
                        &mut p[r * nk..(r + 1) * nk],
                        i + 1,
                        scale,
                        lse[task * t + i],
                    );
                }
                let do_blk = head_rows(dout_head, i0, m, hs, c);
                // dV += drop(P)ᵀ·dO (ds used as temporary for the dropped probabilities)
                let pd: &[f32] = match drop {
                    Some(mk) => {
                        ds.copy_from_slice(p);
                        for r in 0..m {
                            let base = ((task * t + i0 + r) * t) as u64;
                            for (j, x) in ds[r * nk..r * nk + i0 + r + 1].iter_mut().enumerate() {
                                *x *= mk.factor(base + j as u64);
                            }
                        }
                        ds
                    }
                    None => p,
                };
                let pd_t = Mat::row_major(pd, m, nk).t();
                product(
                    prec,
                    head_rows_mut(dv, 0, nk, hs, 3 * c),
                    pd_t,
                    do_blk,
                    true,
                );
                // dP = dO·Vᵀ
                product(
                    prec,
                    MatMut::row_major(ds, m, nk),
                    do_blk,
                    v_rows.t(),
                    false,
                );
                for r in 0..m {
                    let i = i0 + r;
                    let row = (bi * t + i) * c + h * hs;
                    let delta = dot(&dout[row..row + hs], &out[row..row + hs]);
                    let dsr = &mut ds[r * nk..(r + 1) * nk];
                    if let Some(mk) = drop {
                        let base = ((task * t + i) * t) as u64;
                        for (j, x) in dsr[..=i].iter_mut().enumerate() {
                            *x *= mk.factor(base + j as u64);
                        }
                    }
                    dscore_row(dsr, &p[r * nk..(r + 1) * nk], delta, scale);
                }
                // dQ = dS·K ; dK += dSᵀ·Q
                let ds_rows = Mat::row_major(ds, m, nk);
                product(
                    prec,
                    head_rows_mut(dq, i0, m, hs, 3 * c),
                    ds_rows,
                    k_rows,
                    false,
                );
                product(
                    prec,
                    head_rows_mut(dk, 0, nk, hs, 3 * c),
                    ds_rows.t(),
                    qi,
                    true,
                );
            }
        }
    });
}

/// Decoding with a KV cache, for one sequence (`d.b == 1`, `d.t == m` new rows): stores the
/// keys and values of `qkv [m,3C]` at slots `past..past+m` of `k, v [≥past+m, C]`, then
/// `out[r] = softmax(q_r·K[..=past+r]ᵀ/√hs)·V[..=past+r]` per head. A prefill from an empty
/// cache is the training forward's causal attention (tiled, parallel over heads, filling
/// `lse [H,m]`); later rows attend one by one with a score row in `scratch`
/// (≥ `past + m` floats).
#[allow(clippy::too_many_arguments)]
pub fn decode(
    out: &mut [f32],
    lse: &mut [f32],
    qkv: &[f32],
    k: &mut [f32],
    v: &mut [f32],
    scratch: &mut [f32],
    past: usize,
    d: Dims,
    prec: Precision,
) {
    let (m, c, nh, hs) = (d.t, d.c, d.nh, d.hs());
    debug_assert_eq!(d.b, 1);
    for r in 0..m {
        let (row, slot) = (&qkv[r * 3 * c..(r + 1) * 3 * c], (past + r) * c);
        k[slot..slot + c].copy_from_slice(&row[c..2 * c]);
        v[slot..slot + c].copy_from_slice(&row[2 * c..]);
    }
    if past == 0 && m > 1 {
        forward(out, lse, qkv, scratch, d, None, prec);
        return;
    }
    let scale = 1.0 / (hs as f32).sqrt();
    for r in 0..m {
        let n_keys = past + r + 1;
        for h in 0..nh {
            let q = &qkv[r * 3 * c + h * hs..r * 3 * c + (h + 1) * hs];
            let o = &mut out[r * c + h * hs..r * c + (h + 1) * hs];
            let sc = &mut scratch[..n_keys];
            decode_head(o, q, &k[h * hs..], &v[h * hs..], sc, c, scale);
        }
    }
}

crate::simd_fn! {
    /// One decoded row of one head: `o = softmax(q·Kᵀ·scale)·V` over the `sc.len()` cached
    /// keys, `k` and `v` starting at the head's first column with rows `c` floats apart;
    /// `sc` holds the score row. Compiled for AVX2+FMA where the CPU has them (the exp
    /// polynomial's `mul_add`s are otherwise calls to a software fma).
    fn decode_head(o: &mut [f32], q: &[f32], k: &[f32], v: &[f32], sc: &mut [f32], c: usize, scale: f32) {
        let hs = q.len();
        for (j, s) in sc.iter_mut().enumerate() {
            *s = dot(q, &k[j * c..j * c + hs]) * scale;
        }
        let mx = max(sc);
        let sum = exp_sum(sc, 1.0, mx);
        o.fill(0.0);
        for (j, s) in sc.iter().enumerate() {
            let pj = s / sum;
            for (o, vv) in o.iter_mut().zip(&v[j * c..j * c + hs]) {
                *o += pj * vv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    /// Direct f64 attention with the same dropout mask.
    fn naive(qkv: &[f32], d: Dims, drop: Option<Mask>) -> Vec<f32> {
        let (t, c, nh, hs) = (d.t, d.c, d.nh, d.hs());
        let mut out = vec![0.0; d.b * t * c];
        for b in 0..d.b {
            for h in 0..nh {
                for i in 0..t {
                    let qi = &qkv[(b * t + i) * 3 * c + h * hs..][..hs];
                    let sc: Vec<f64> = (0..=i)
                        .map(|j| {
                            let kj = &qkv[(b * t + j) * 3 * c + c + h * hs..][..hs];
                            qi.iter()
                                .zip(kj)
                                .map(|(a, b)| (*a as f64) * (*b as f64))
                                .sum::<f64>()
                                / (hs as f64).sqrt()
                        })
                        .collect();
                    let mx = sc.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = sc.iter().map(|s| (s - mx).exp()).sum();
                    for (j, s) in sc.iter().enumerate() {
                        let mut p = (s - mx).exp() / z;
                        if let Some(mk) = drop {
                            p *= mk.factor((((b * nh + h) * t + i) * t + j) as u64) as f64;
                        }
                        for e in 0..hs {
                            out[(b * t + i) * c + h * hs + e] +=
                                (p * qkv[(b * t + j) * 3 * c + 2 * c + h * hs + e] as f64) as f32;
                        }
                    }
                }
            }
        }
        out
    }

    fn run(qkv: &[f32], d: Dims, drop: Option<Mask>, workers: usize) -> (Vec<f32>, Vec<f32>) {
        let mut out = vec![0.0; d.b * d.t * d.c];
        let mut lse = vec![0.0; d.b * d.nh * d.t];
        let mut s = vec![0.0; workers * scratch_per_worker(d.t)];
        forward(&mut out, &mut lse, qkv, &mut s, d, drop, Precision::Fp32);
        (out, lse)
    }

    #[test]
    fn forward_matches_naive_and_gradients_match_fd() {
        // t = 70: two query blocks (40 + 30 rows), the second seeing keys the first does not
        for (d, drop) in [
            (
                Dims {
                    b: 2,
                    t: 70,
                    c: 8,
                    nh: 2,
                },
                None,
            ),
            (
                Dims {
                    b: 1,
                    t: 5,
                    c: 6,
                    nh: 3,
                },
                Some(Mask {
                    seed: 1,
                    stream: 2,
                    p: 0.3,
                    offset: 0,
                }),
            ),
        ] {
            let n = d.b * d.t;
            let qkv = randn(n * 3 * d.c, 1, 1.0);
            let (out, lse) = run(&qkv, d, drop, 3);
            let want = naive(&qkv, d, drop);
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
            let g = randn(n * d.c, 2, 1.0);
            let mut dqkv = vec![7.0; n * 3 * d.c];
            let mut s = vec![0.0; 2 * scratch_per_worker(d.t)];
            backward(
                &mut dqkv,
                &g,
                &out,
                &lse,
                &qkv,
                &mut s,
                d,
                drop,
                Precision::Fp32,
            );
            check_grad(
                "qkv",
                &qkv,
                &dqkv,
                |x| weighted_sum(&run(x, d, drop, 1).0, &g),
                1e-2,
                2e-3,
            );
        }
    }

    #[test]
    fn worker_count_does_not_change_bits() {
        let d = Dims {
            b: 3,
            t: 9,
            c: 8,
            nh: 2,
        };
        let qkv = randn(d.b * d.t * 3 * d.c, 5, 1.0);
        assert_eq!(run(&qkv, d, None, 1), run(&qkv, d, None, 4));
    }
}
