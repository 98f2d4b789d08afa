//! LayerNorm over the last dimension (eps 1e-5), optional bias.
//!
//! Forward:  `mean, rstd = stats(x[n,:])`, `out[n,:] = (x[n,:] - mean)·rstd·w + b`
//!   x, out `[N,C]`; w, b `[C]`; mean, rstd `[N]` (kept for backward).
//! Backward: with `x̂ = (x-mean)·rstd`, `g = dout·w`:
//!   `dx += rstd·(g - mean(g) - x̂·mean(g·x̂))`, `dw += Σ_n dout·x̂`, `db += Σ_n dout`.

use rayon::prelude::*;

/// added to the variance (torch's default)
pub const EPS: f32 = 1e-5;

crate::simd_fn! {
    fn norm_row(out: &mut [f32], x: &[f32], w: &[f32], b: Option<&[f32]>) -> (f32, f32) {
        let c = x.len() as f32;
        let mean = crate::ops::math::sum(x) / c;
        let mut acc = [0.0f32; 8];
        let ch = x.chunks_exact(8);
        let rem = ch.remainder();
        for v in ch {
            for l in 0..8 {
                let d = v[l] - mean;
                acc[l] += d * d;
            }
        }
        let mut var = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for v in rem {
            var += (v - mean) * (v - mean);
        }
        let rstd = 1.0 / (var / c + EPS).sqrt();
        match b {
            Some(b) => {
                for (((o, &x), &w), &b) in out.iter_mut().zip(x).zip(w).zip(b) {
                    *o = (x - mean) * rstd * w + b;
                }
            }
            None => {
                for ((o, &x), &w) in out.iter_mut().zip(x).zip(w) {
                    *o = (x - mean) * rstd * w;
                }
            }
        }
        (mean, rstd)
    }
}

/// Normalise each of the `N` rows of `x [N,C]` into `out`, recording `mean` and `rstd`.
pub fn forward(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) {
    let c = w.len();
    out.par_chunks_mut(c)
        .zip(x.par_chunks(c))
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .for_each(|((o, x), (m, r))| {
            let (mm, rr) = norm_row(o, x, w, b);
            *m = mm;
            *r = rr;
        });
}

crate::simd_fn! {
    /// `x ← x + (residual + bias)`: the rounding of a projection seeded with `residual + bias`.
    fn add_residual_row(x: &mut [f32], residual: &[f32], bias: &[f32]) {
        if bias.is_empty() {
            for (x, &r) in x.iter_mut().zip(residual) {
                *x += r;
            }
        } else {
            for ((x, &r), &b) in x.iter_mut().zip(residual).zip(bias) {
                *x += r + b;
            }
        }
    }
}

/// The end of a transformer branch fused with the next LayerNorm (llm.c's fused residual):
/// `x ← x + residual + proj_bias` in place (`x` holds the branch's projection output without
/// its bias on entry, the residual stream on exit), then [`forward`] of the sum. Saves the
/// projection a pass that would seed its output with `residual + bias`.
#[allow(clippy::too_many_arguments)]
pub fn forward_residual(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &mut [f32],
    residual: &[f32],
    proj_bias: Option<&[f32]>,
    w: &[f32],
    b: Option<&[f32]>,
) {
    let c = w.len();
    let proj_bias = proj_bias.unwrap_or(&[]);
    out.par_chunks_mut(c)
        .zip(x.par_chunks_mut(c).zip(residual.par_chunks(c)))
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .for_each(|((o, (x, r)), (m, s))| {
            add_residual_row(x, r, proj_bias);
            (*m, *s) = norm_row(o, x, w, b);
        });
}

crate::simd_fn! {
    fn dx_row(dx: &mut [f32], dout: &[f32], x: &[f32], w: &[f32], mean: f32, rstd: f32, accumulate: bool) {
        // equal lengths up front, so the loops below carry no bounds checks and vectorise
        let c = x.len();
        let (dx, dout, w) = (&mut dx[..c], &dout[..c], &w[..c]);
        let (mut ag, mut agx) = ([0.0f32; 8], [0.0f32; 8]);
        let n8 = c / 8 * 8;
        for ((d, x), w) in dout[..n8].chunks_exact(8).zip(x[..n8].chunks_exact(8)).zip(w[..n8].chunks_exact(8)) {
            for l in 0..8 {
                let g = d[l] * w[l];
                ag[l] += g;
                agx[l] += g * (x[l] - mean) * rstd;
            }
        }
        let (mut sg, mut sgx) = (0.0f32, 0.0f32);
        for l in 0..8 {
            sg += ag[l];
            sgx += agx[l];
        }
        for i in n8..c {
            let g = dout[i] * w[i];
            sg += g;
            sgx += g * (x[i] - mean) * rstd;
        }
        let (mg, mgx) = (sg / c as f32, sgx / c as f32);
        let rows = dx.iter_mut().zip(dout).zip(x).zip(w);
        if accumulate {
            for (((dx, &d), &x), &w) in rows {
                let xh = (x - mean) * rstd;
                *dx += rstd * (d * w - mg - xh * mgx);
            }
        } else {
            for (((dx, &d), &x), &w) in rows {
                let xh = (x - mean) * rstd;
                *dx = rstd * (d * w - mg - xh * mgx);
            }
        }
    }
}

/// Backward for all rows: `dx` (+)= (accumulate selects), `dw`/`db` always +=.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dx: &mut [f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dout: &[f32],
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
    accumulate: bool,
) {
    let c = w.len();
    dx.par_chunks_mut(c)
        .zip(dout.par_chunks(c).zip(x.par_chunks(c)))
        .zip(mean.par_iter().zip(rstd.par_iter()))
        .for_each(|((dx, (d, x)), (&m, &r))| dx_row(dx, d, x, w, m, r, accumulate));
    crate::ops::colsum::add_layernorm_param_grads(dw, db, dout, x, mean, rstd);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    #[test]
    fn gradients_match_finite_differences() {
        let (n, c) = (5, 19);
        let x = randn(n * c, 1, 2.0);
        let w = randn(c, 2, 1.0);
        let b = randn(c, 3, 1.0);
        let g = randn(n * c, 4, 1.0);
        let run = |x: &[f32], w: &[f32], b: &[f32]| {
            let (mut o, mut m, mut r) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
            forward(&mut o, &mut m, &mut r, x, w, Some(b));
            (o, m, r)
        };
        let (o, m, r) = run(&x, &w, &b);
        // normalised rows: mean 0, variance ≈ 1 before the affine part
        let (mut dx, mut dw, mut db) = (vec![0.5; n * c], vec![0.0; c], vec![0.0; c]);
        backward(&mut dx, &mut dw, Some(&mut db), &g, &x, &w, &m, &r, false);
        let f = |x: &[f32], w: &[f32], b: &[f32]| weighted_sum(&run(x, w, b).0, &g);
        check_grad("x", &x, &dx, |v| f(v, &w, &b), 1e-2, 2e-3);
        check_grad("w", &w, &dw, |v| f(&x, v, &b), 1e-2, 2e-3);
        check_grad("b", &b, &db, |v| f(&x, &w, v), 1e-2, 2e-3);
        assert!(o.iter().all(|v| v.is_finite()));
        // the fused residual form normalises x + residual + bias and leaves that sum in x
        let (res, pb) = (randn(n * c, 5, 1.0), randn(c, 6, 1.0));
        let sum: Vec<f32> = (0..n * c).map(|i| x[i] + (res[i] + pb[i % c])).collect();
        let (mut o2, mut m2, mut r2, mut x2) =
            (vec![0.0; n * c], vec![0.0; n], vec![0.0; n], x.clone());
        forward_residual(
            &mut o2,
            &mut m2,
            &mut r2,
            &mut x2,
            &res,
            Some(&pb),
            &w,
            Some(&b),
        );
        let (mut o3, mut m3, mut r3) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
        forward(&mut o3, &mut m3, &mut r3, &sum, &w, Some(&b));
        assert_eq!((&x2, &o2, &m2, &r2), (&sum, &o3, &m3, &r3));
        // accumulate mode adds
        let mut dx2 = dx.clone();
        backward(&mut dx2, &mut dw, None, &g, &x, &w, &m, &r, true);
        assert!((dx2[3] - 2.0 * dx[3]).abs() < 1e-5);
    }
}
