//! GELU, exact (erf) and tanh-approximated.
//!
//! Forward:  `y = 0.5·x·(1 + erf(x/√2))`, or `0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))`.
//! Backward: `dx = dy·gelu'(x)` (in place over `dy`). Shapes: any, elementwise; the forward
//! entry points optionally add a per-row bias `[H]` to `x [N, H]` first (the preceding linear
//! layer's bias, fused here to save that layer a pass over its output).

use crate::config::Activation;
use crate::ops::math::{erf_with_exp, exp, tanh};
use rayon::prelude::*;

const CHUNK: usize = 8192;
const INV_SQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const K: f32 = 0.044_715;

/// `(gelu(x), gelu'(x))`, exact: erf(x/√2) and the normal pdf share one `e^{-x²/2}`.
#[inline(always)]
fn erf_value_and_grad(x: f32) -> (f32, f32) {
    let e = exp(-0.5 * x * x);
    let cdf = erf_with_exp(x * INV_SQRT2, e).mul_add(0.5, 0.5);
    (x * cdf, (x * INV_SQRT_2PI).mul_add(e, cdf))
}

/// `(gelu(x), gelu'(x))`, tanh approximation.
#[inline(always)]
fn tanh_value_and_grad(x: f32) -> (f32, f32) {
    let th = tanh(SQRT_2_OVER_PI * (x + K * x * x * x));
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * K * x * x);
    (
        0.5 * x * (1.0 + th),
        0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du,
    )
}

/// `y = f(x + bias).0` row by row (`bias` empty = no bias). Every entry point goes through
/// `f`, so evaluation and training compute the same bits.
#[inline(always)]
fn value_rows(y: &mut [f32], x: &[f32], bias: &[f32], f: impl Fn(f32) -> (f32, f32)) {
    if bias.is_empty() {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = f(x).0;
        }
    } else {
        for (y, x) in y.chunks_mut(bias.len()).zip(x.chunks(bias.len())) {
            for ((y, &x), &b) in y.iter_mut().zip(x).zip(bias) {
                *y = f(x + b).0;
            }
        }
    }
}

/// `y = f(x + bias).0` and, in place, `x ← f(x + bias).1`.
#[inline(always)]
fn value_grad_rows(y: &mut [f32], x: &mut [f32], bias: &[f32], f: impl Fn(f32) -> (f32, f32)) {
    if bias.is_empty() {
        for (y, x) in y.iter_mut().zip(x.iter_mut()) {
            (*y, *x) = f(*x);
        }
    } else {
        for (y, x) in y.chunks_mut(bias.len()).zip(x.chunks_mut(bias.len())) {
            for ((y, x), &b) in y.iter_mut().zip(x.iter_mut()).zip(bias) {
                (*y, *x) = f(*x + b);
            }
        }
    }
}

crate::simd_fn! {
    fn fwd_chunk(y: &mut [f32], x: &[f32], bias: &[f32], tanh_approx: bool) {
        if tanh_approx {
            value_rows(y, x, bias, tanh_value_and_grad);
        } else {
            value_rows(y, x, bias, erf_value_and_grad);
        }
    }
}

crate::simd_fn! {
    fn fwd_grad_chunk(y: &mut [f32], xd: &mut [f32], bias: &[f32], tanh_approx: bool) {
        if tanh_approx {
            value_grad_rows(y, xd, bias, tanh_value_and_grad);
        } else {
            value_grad_rows(y, xd, bias, erf_value_and_grad);
        }
    }
}

crate::simd_fn! {
    fn bwd_chunk(d: &mut [f32], x: &[f32], tanh_approx: bool) {
        if tanh_approx {
            for (d, &x) in d.iter_mut().zip(x) {
                *d *= tanh_value_and_grad(x).1;
            }
        } else {
            for (d, &x) in d.iter_mut().zip(x) {
                *d *= erf_value_and_grad(x).1;
            }
        }
    }
}

crate::simd_fn! {
    fn mul_chunk(d: &mut [f32], g: &[f32]) {
        for (d, g) in d.iter_mut().zip(g) {
            *d *= g;
        }
    }
}

/// Elements per parallel task: whole rows of `bias` when there is one.
fn task_len(bias: &[f32]) -> usize {
    match bias.len() {
        0 => CHUNK,
        w => w * (CHUNK / w).max(1),
    }
}

/// Training forward: `y = gelu(x + bias)` and, in place, `x ← gelu'(x + bias)` — one pass
/// shares the erf/tanh between value and derivative, so backward is a plain product
/// ([`backward_from_derivative`]). `bias [H]` is added per row of `x [N, H]`: it is the fused
/// bias of the linear layer that produced `x`.
/// `act` is a GELU flavour (ReLU has its own op, [`super::relu`]).
pub fn forward_keep_derivative(
    y: &mut [f32],
    x: &mut [f32],
    bias: Option<&[f32]>,
    act: Activation,
) {
    let t = act == Activation::GeluTanh;
    let bias = bias.unwrap_or(&[]);
    let len = task_len(bias);
    y.par_chunks_mut(len)
        .zip(x.par_chunks_mut(len))
        .for_each(|(y, x)| fwd_grad_chunk(y, x, bias, t));
}

/// `d ← d·g` where `g = gelu'(x)` was kept by [`forward_keep_derivative`].
pub fn backward_from_derivative(d: &mut [f32], g: &[f32]) {
    d.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .for_each(|(d, g)| mul_chunk(d, g));
}

/// `y = gelu(x + bias)` (`bias [H]` per row of `x [N, H]`, optional; `act` a GELU flavour).
pub fn forward(y: &mut [f32], x: &[f32], bias: Option<&[f32]>, act: Activation) {
    let t = act == Activation::GeluTanh;
    let bias = bias.unwrap_or(&[]);
    let len = task_len(bias);
    y.par_chunks_mut(len)
        .zip(x.par_chunks(len))
        .for_each(|(y, x)| fwd_chunk(y, x, bias, t));
}

/// `d ← d·gelu'(x)`.
pub fn backward(d: &mut [f32], x: &[f32], act: Activation) {
    let t = act == Activation::GeluTanh;
    d.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(d, x)| bwd_chunk(d, x, t));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    #[test]
    fn gradients_match_finite_differences_and_reference_values() {
        for act in [Activation::Gelu, Activation::GeluTanh] {
            let x = randn(200, 1, 2.5);
            let g = randn(200, 2, 1.0);
            let mut d = g.clone();
            backward(&mut d, &x, act);
            let f = |x: &[f32]| {
                let mut y = vec![0.0; x.len()];
                forward(&mut y, x, None, act);
                weighted_sum(&y, &g)
            };
            check_grad("x", &x, &d, f, 1e-2, 1e-3);
            // the fused training path gives the same value and gradient
            let (mut y1, mut y2, mut xd) = (vec![0.0; 200], vec![0.0; 200], x.clone());
            forward(&mut y1, &x, None, act);
            forward_keep_derivative(&mut y2, &mut xd, None, act);
            assert_eq!(y1, y2);
            let mut d2 = g.clone();
            backward_from_derivative(&mut d2, &xd);
            for (a, b) in d.iter().zip(&d2) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "{a} vs {b}");
            }
        }
        // the fused row bias is the same as adding it first
        for act in [Activation::Gelu, Activation::GeluTanh] {
            let (rows, h) = (5, 7);
            let x = randn(rows * h, 3, 2.0);
            let bias = randn(h, 4, 1.0);
            let xb: Vec<f32> = x.iter().enumerate().map(|(i, v)| v + bias[i % h]).collect();
            let (mut want, mut got) = (vec![0.0; rows * h], vec![0.0; rows * h]);
            forward(&mut want, &xb, None, act);
            forward(&mut got, &x, Some(&bias), act);
            assert_eq!(want, got);
            let (mut d_want, mut d_got) = (xb.clone(), x.clone());
            forward_keep_derivative(&mut got, &mut d_got, Some(&bias), act);
            forward_keep_derivative(&mut want, &mut d_want, None, act);
            assert_eq!((want, d_want), (got, d_got));
        }
        // torch.nn.functional.gelu(torch.tensor([1.0, -0.5])) = [0.8413447, -0.1542687]
        let mut y = [0.0; 2];
        forward(&mut y, &[1.0, -0.5], None, Activation::Gelu);
        assert!(
            (y[0] - 0.841_344_7).abs() < 1e-6 && (y[1] + 0.154_268_7).abs() < 1e-6,
            "{y:?}"
        );
        // approximate="tanh": [0.8411920, -0.1542859]
        forward(&mut y, &[1.0, -0.5], None, Activation::GeluTanh);
        assert!(
            (y[0] - 0.841_192).abs() < 1e-6 && (y[1] + 0.154_285_9).abs() < 1e-6,
            "{y:?}"
        );
    }
}
