//! Linear layer in PyTorch's layout: `W [OC, C]`, `y = x·Wᵀ + b`.
//!
//! Forward:  `out[N,OC] = x[N,C]·Wᵀ + b`.
//! Backward: `dx[N,C] (+)= dout·W`, `dW[OC,C] += doutᵀ·x`, `db[OC] += Σ_n dout[n,:]`.

use crate::ops::matmul::{matmul, Mat, MatMut, Par};

/// Keep this thread's products single-threaded (see [`crate::ops::matmul::on_this_thread`]).
pub use crate::ops::matmul::on_this_thread;
use rayon::prelude::*;

/// `out = x·Wᵀ + b` (`b` optional: it seeds the output, the product accumulates onto it).
pub fn forward(out: &mut [f32], x: &[f32], w: &[f32], b: Option<&[f32]>, c: usize) {
    let oc = w.len() / c;
    let n = x.len() / c;
    let seeded = b.is_some();
    if let Some(b) = b {
        out[..n * oc]
            .par_chunks_mut(oc)
            .for_each(|o| o.copy_from_slice(b));
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
        let g = randn(n * oc, 5, 1.0);
        let f = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut o = vec![0.0; n * oc];
            forward(&mut o, x, w, Some(b), c);
            weighted_sum(&o, &g)
        };
        let (mut dx, mut dw, mut db) = (vec![0.0; n * c], vec![0.0; oc * c], vec![0.0; oc]);
        backward(Some(&mut dx), &mut dw, Some(&mut db), &g, &x, &w, c, false);
        check_grad("x", &x, &dx, |v| f(v, &w, &b), 1e-2, 1e-3);
        check_grad("w", &w, &dw, |v| f(&x, v, &b), 1e-2, 1e-3);
        check_grad("b", &b, &db, |v| f(&x, &w, v), 1e-2, 1e-3);
        // plain (no bias) forward equals the explicit product
        let mut o = vec![9.0; n * oc];
        forward(&mut o, &x, &w, None, c);
        let want: f32 = (0..c).map(|k| x[c + k] * w[2 * c + k]).sum();
        assert!((o[oc + 2] - want).abs() < 1e-5);
    }
}
