//! GELU, exact (erf) and tanh-approximated.
//!
//! Forward:  `y = 0.5·x·(1 + erf(x/√2))`, or `0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))`.
//! Backward: `dx = dy·gelu'(x)` (in place over `dy`). Shapes: any, elementwise.

use crate::config::Activation;
use crate::ops::math::{erf_with_exp, exp, tanh};
use rayon::prelude::*;

const CHUNK: usize = 8192;
const INV_SQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const K: f32 = 0.044_715;

crate::simd_fn! {
    fn fwd_chunk(y: &mut [f32], x: &[f32], tanh_approx: bool) {
        if tanh_approx {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + K * x * x * x)));
            }
        } else {
            for (y, &x) in y.iter_mut().zip(x) {
                // same expression as the training path, so eval and train agree bit for bit
                *y = x * (0.5 * (1.0 + erf_with_exp(x * INV_SQRT2, exp(-0.5 * x * x))));
            }
        }
    }
}

crate::simd_fn! {
    fn bwd_chunk(d: &mut [f32], x: &[f32], tanh_approx: bool) {
        if tanh_approx {
            for (d, &x) in d.iter_mut().zip(x) {
                let th = tanh(SQRT_2_OVER_PI * (x + K * x * x * x));
                let du = SQRT_2_OVER_PI * (1.0 + 3.0 * K * x * x);
                *d *= 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
            }
        } else {
            for (d, &x) in d.iter_mut().zip(x) {
                let e = exp(-0.5 * x * x);
                let cdf = 0.5 * (1.0 + erf_with_exp(x * INV_SQRT2, e));
                *d *= cdf + x * INV_SQRT_2PI * e;
            }
        }
    }
}

crate::simd_fn! {
    fn fwd_grad_chunk(y: &mut [f32], xd: &mut [f32], tanh_approx: bool) {
        if tanh_approx {
            for (y, xd) in y.iter_mut().zip(xd.iter_mut()) {
                let x = *xd;
                let th = tanh(SQRT_2_OVER_PI * (x + K * x * x * x));
                let du = SQRT_2_OVER_PI * (1.0 + 3.0 * K * x * x);
                *y = 0.5 * x * (1.0 + th);
                *xd = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
            }
        } else {
            for (y, xd) in y.iter_mut().zip(xd.iter_mut()) {
                let x = *xd;
                // erf(x/√2) and the normal pdf share e^{-x²/2}: one exp per element
                let e = exp(-0.5 * x * x);
                let cdf = 0.5 * (1.0 + erf_with_exp(x * INV_SQRT2, e));
                *y = x * cdf;
                *xd = cdf + x * INV_SQRT_2PI * e;
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

/// Training forward: `y = gelu(x)` and, in place, `x ← gelu'(x)` — one pass shares the
/// erf/tanh between value and derivative, so backward is a plain product
/// ([`backward_from_derivative`]).
pub fn forward_keep_derivative(y: &mut [f32], x: &mut [f32], act: Activation) {
    let t = act == Activation::GeluTanh;
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks_mut(CHUNK))
        .for_each(|(y, x)| fwd_grad_chunk(y, x, t));
}

/// `d ← d·g` where `g = gelu'(x)` was kept by [`forward_keep_derivative`].
pub fn backward_from_derivative(d: &mut [f32], g: &[f32]) {
    d.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .for_each(|(d, g)| mul_chunk(d, g));
}

/// `y = gelu(x)`.
pub fn forward(y: &mut [f32], x: &[f32], act: Activation) {
    let t = act == Activation::GeluTanh;
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| fwd_chunk(y, x, t));
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
                forward(&mut y, x, act);
                weighted_sum(&y, &g)
            };
            check_grad("x", &x, &d, f, 1e-2, 1e-3);
            // the fused training path gives the same value and gradient
            let (mut y1, mut y2, mut xd) = (vec![0.0; 200], vec![0.0; 200], x.clone());
            forward(&mut y1, &x, act);
            forward_keep_derivative(&mut y2, &mut xd, act);
            assert_eq!(y1, y2);
            let mut d2 = g.clone();
            backward_from_derivative(&mut d2, &xd);
            for (a, b) in d.iter().zip(&d2) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "{a} vs {b}");
            }
        }
        // torch.nn.functional.gelu(torch.tensor([1.0, -0.5])) = [0.8413447, -0.1542687]
        let mut y = [0.0; 2];
        forward(&mut y, &[1.0, -0.5], Activation::Gelu);
        assert!(
            (y[0] - 0.841_344_7).abs() < 1e-6 && (y[1] + 0.154_268_7).abs() < 1e-6,
            "{y:?}"
        );
        // approximate="tanh": [0.8411920, -0.1542859]
        forward(&mut y, &[1.0, -0.5], Activation::GeluTanh);
        assert!(
            (y[0] - 0.841_192).abs() < 1e-6 && (y[1] + 0.154_285_9).abs() < 1e-6,
            "{y:?}"
        );
    }
}
