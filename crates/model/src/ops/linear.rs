//! Linear layer in PyTorch's layout: `W [OC, C]`, `y = x·Wᵀ + b`.
//!
//! Forward:  `out[N,OC] = x[N,C]·Wᵀ + b (+ residual[N,OC])` — the optional residual is the fused
//!           `x + proj(·)` of a transformer block: it seeds the output, the matmul accumulates.
//! Backward: `dx[N,C] (+)= dout·W`, `dW[OC,C] += doutᵀ·x`, `db[OC] += Σ_n dout[n,:]`.

use crate::ops::matmul::{matmul, Mat, MatMut, Par};

/// Keep this thread's products single-threaded (see [`crate::ops::matmul::on_this_thread`]).
pub use crate::ops::matmul::on_this_thread;
use rayon::prelude::*;

/// `out = x·Wᵀ + b + residual` with `b` and `residual` optional.
pub fn forward(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    residual: Option<&[f32]>,
    c: usize,
) {
    let oc = w.len() / c;
    let n = x.len() / c;
    let seeded = b.is_some() || residual.is_some();
    if seeded {
        out[..n * oc]
            .par_chunks_mut(oc)
            .enumerate()
            .for_each(|(row, o)| match (b, residual) {
                (Some(b), Some(r)) => {
                    for ((o, b), r) in o.iter_mut().zip(b).zip(&r[row * oc..row * oc + oc]) {
                        *o = r + b;
                    }
                }
                (Some(b), None) => o.copy_from_slice(b),
                (None, Some(r)) => o.copy_from_slice(&r[row * oc..row * oc + oc]),
                (None, None) => {}
            });
    }
    let (x, w_t) = (Mat::row_major(x, n, c), Mat::row_major(w, oc, c).t());
    matmul(MatMut::row_major(out, n, oc), x, w_t, seeded, Par::Pool);
}

/// Gradients of [`forward`]. `dx` is overwritten unless `accumulate_dx`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dout: &[f32],
    x: &[f32],
    w: &[f32],
    c: usize,
    accumulate_dx: bool,
) {
    let oc = w.len() / c;
    let n = x.len() / c;
    if let Some(dx) = dx {
        let (dout, w) = (Mat::row_major(dout, n, oc), Mat::row_major(w, oc, c));
        matmul(
            MatMut::row_major(dx, n, c),
            dout,
            w,
            accumulate_dx,
            Par::Pool,
        );
    }
    let (dout_t, x) = (Mat::row_major(dout, n, oc).t(), Mat::row_major(x, n, c));
    matmul(MatMut::row_major(dw, oc, c), dout_t, x, true, Par::Pool);
    if let Some(db) = db {
        bias_grad(db, dout);
    }
}

/// `db[j] += Σ_n dout[n,j]` (deterministic for any thread count, see [`colsum`](crate::ops::colsum)).
pub fn bias_grad(db: &mut [f32], dout: &[f32]) {
    crate::ops::colsum::add_column_sums(db, dout);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    #[test]
    fn gradients_match_finite_differences() {
        let (n, c, oc) = (6, 7, 5);
        let x = randn(n * c, 1, 1.0);
        let w = randn(oc * c, 2, 1.0);
        let b = randn(oc, 3, 1.0);
        let r = randn(n * oc, 4, 1.0);
        let g = randn(n * oc, 5, 1.0);
        let f = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut o = vec![0.0; n * oc];
            forward(&mut o, x, w, Some(b), Some(&r), c);
            weighted_sum(&o, &g)
        };
        let (mut dx, mut dw, mut db) = (vec![0.0; n * c], vec![0.0; oc * c], vec![0.0; oc]);
        backward(Some(&mut dx), &mut dw, Some(&mut db), &g, &x, &w, c, false);
        check_grad("x", &x, &dx, |v| f(v, &w, &b), 1e-2, 1e-3);
        check_grad("w", &w, &dw, |v| f(&x, v, &b), 1e-2, 1e-3);
        check_grad("b", &b, &db, |v| f(&x, &w, v), 1e-2, 1e-3);
        // plain (no bias, no residual) forward equals the explicit product
        let mut o = vec![9.0; n * oc];
        forward(&mut o, &x, &w, None, None, c);
        let want: f32 = (0..c).map(|k| x[c + k] * w[2 * c + k]).sum();
        assert!((o[oc + 2] - want).abs() < 1e-5);
    }
}
