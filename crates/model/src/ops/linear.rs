//! Linear layer in PyTorch's layout: `W [OC, C]`, `y = x·Wᵀ + b`.
//!
//! Forward:  `out[N,OC] = x[N,C]·Wᵀ + b`.
//! Backward: `dx[N,C] (+)= dout·W`, `dW[OC,C] += doutᵀ·x`, `db[OC] += Σ_n dout[n,:]`.
//!
//! Each of the three products runs in the given [`Precision`] (bf16: operands rounded to
//! bf16, f32 accumulation and output); the bias and its gradient are always f32. Under bf16
//! the weight may come prepared ([`Weight::Prepared`]: cast/packed once per optimizer step
//! instead of at each of its uses); the numbers are the same.

use crate::dtype::Precision;
use crate::ops::matmul::{
    matmul, matmul_bf16, matmul_bf16_prepared, Mat, MatMut, Par, PreparedWeight,
};

/// Keep this thread's products single-threaded (see [`crate::ops::matmul::on_this_thread`]).
pub use crate::ops::matmul::on_this_thread;
use rayon::prelude::*;

/// `C (+)= A·B` in precision `prec`, over the pool.
fn product(prec: Precision, c: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    match prec {
        Precision::Fp32 => matmul(c, a, b, accumulate, Par::Pool),
        Precision::Bf16(k) => matmul_bf16(k, c, a, b, accumulate, Par::Pool),
    }
}

/// How the products read `W [OC, C]`.
#[derive(Clone, Copy)]
pub enum Weight<'a> {
    /// The f32 weight, cast per use in the given precision.
    Plain(Precision),
    /// Its bf16 preparation (same numbers as casting per use on that kernel).
    Prepared(&'a PreparedWeight),
}

impl Weight<'_> {
    /// The precision of the products (the prepared weight's kernel).
    fn precision(self) -> Precision {
        match self {
            Weight::Plain(p) => p,
            Weight::Prepared(w) => w.kernel().map_or(Precision::Fp32, Precision::Bf16),
        }
    }

    /// `C (+)= A·Wᵀ` (`transposed`) or `A·W`, over the pool.
    fn times(self, c: MatMut<'_>, a: Mat<'_>, w: &[f32], transposed: bool, accumulate: bool) {
        match self {
            Weight::Prepared(p) => {
                matmul_bf16_prepared(c, a, p, w, transposed, accumulate, Par::Pool)
            }
            Weight::Plain(prec) => {
                // x·Wᵀ: A = x [N, C], W [OC, C]; dY·W: A = dY [N, OC], W [OC, C]
                let (k, other) = (a.cols(), w.len() / a.cols().max(1));
                let b = if transposed {
                    Mat::row_major(w, other, k).t()
                } else {
                    Mat::row_major(w, k, other)
                };
                product(prec, c, a, b, accumulate)
            }
        }
    }
}

/// `out = x·Wᵀ + b` (`b` optional: it seeds the output, the product accumulates onto it).
pub fn forward(out: &mut [f32], x: &[f32], w: &[f32], b: Option<&[f32]>, c: usize) {
    forward_with(Weight::Plain(Precision::Fp32), out, x, w, b, c);
}

/// [`forward`] reading `w` as `weight` says (plain in a precision, or prepared).
pub fn forward_with(
    weight: Weight<'_>,
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    c: usize,
) {
    let oc = w.len() / c;
    let n = x.len() / c;
    let seeded = b.is_some();
    if let Some(b) = b {
        out[..n * oc]
            .par_chunks_mut(oc)
            .for_each(|o| o.copy_from_slice(b));
    }
    let x = Mat::row_major(x, n, c);
    weight.times(MatMut::row_major(out, n, oc), x, w, true, seeded);
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
    let f32 = Weight::Plain(Precision::Fp32);
    let layout = GradLayout::AsWeight;
    backward_with(f32, layout, dx, dw, db, dout, x, w, c, accumulate_dx);
}

/// How a weight gradient is laid out: as the weight, `[OC,C]`, or transposed, `[C,OC]`.
///
/// Why transposed exists: for a very tall weight — a vocabulary head, `[200,019, 256]` — the
/// fp32 `gemm` kernel computes `dWᵀ = xᵀ·dout` (a wide output) ~1.7× faster than `dW =
/// doutᵀ·x` (a tall one); the fused classifier stages its gradient that way where the
/// backend says so ([`Backend::head_grad_transposed`](crate::backend::Backend::head_grad_transposed)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradLayout {
    /// `[OC,C]`, as the weight
    AsWeight,
    /// `[C,OC]`
    Transposed,
}

impl GradLayout {
    /// [`Transposed`](Self::Transposed) when `transposed`, else [`AsWeight`](Self::AsWeight).
    pub fn transposed_if(transposed: bool) -> Self {
        if transposed {
            Self::Transposed
        } else {
            Self::AsWeight
        }
    }
}

/// [`backward`] reading `w` as `weight` says (`dW = doutᵀ·x` in its precision), with `dw`
/// laid out as `layout` says.
#[allow(clippy::too_many_arguments)]
pub fn backward_with(
    weight: Weight<'_>,
    layout: GradLayout,
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
        let dout = Mat::row_major(dout, n, oc);
        weight.times(MatMut::row_major(dx, n, c), dout, w, false, accumulate_dx);
    }
    let (g, xm) = (Mat::row_major(dout, n, oc), Mat::row_major(x, n, c));
    let prec = weight.precision();
    match layout {
        // dW [OC,C] += doutᵀ·x
        GradLayout::AsWeight => product(prec, MatMut::row_major(dw, oc, c), g.t(), xm, true),
        // dWᵀ [C,OC] += xᵀ·dout
        GradLayout::Transposed => product(prec, MatMut::row_major(dw, c, oc), xm.t(), g, true),
    }
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
