//! ReLU, `y = max(x, 0)` (`nn.ReLU()`, the original Transformer's feed-forward).
//!
//! Forward:  `y = max(x + bias, 0)`. Backward: `dx = dy·[x + bias > 0]` (in place over `dy`).
//! Shapes: any, elementwise; the forward entry points optionally add a per-row bias `[H]` to
//! `x [N, H]` first (the preceding linear layer's bias, fused here as in [`super::gelu`]).
//! The same entry points as GELU's, so the MLP runs either through one code path:
//! [`forward_keep_derivative`] leaves the derivative (0 or 1) in place of the input and
//! [`backward_from_derivative`] is GELU's plain product. torch's derivative at exactly 0 is
//! 0 (`threshold_backward`), and so is this one.

use rayon::prelude::*;

const CHUNK: usize = 8192;

/// `(relu(x), relu'(x))`, with torch's `relu'(0) = 0`.
#[inline(always)]
fn value_and_grad(x: f32) -> (f32, f32) {
    if x > 0.0 {
        (x, 1.0)
    } else {
        (0.0, 0.0)
    }
}

/// Elements per parallel task: whole rows of `bias` when there is one.
fn task_len(bias: &[f32]) -> usize {
    match bias.len() {
        0 => CHUNK,
        w => w * (CHUNK / w).max(1),
    }
}

crate::simd_fn! {
    fn fwd_chunk(y: &mut [f32], x: &[f32], bias: &[f32]) {
        if bias.is_empty() {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = value_and_grad(x).0;
            }
        } else {
            for (y, x) in y.chunks_mut(bias.len()).zip(x.chunks(bias.len())) {
                for ((y, &x), &b) in y.iter_mut().zip(x).zip(bias) {
                    *y = value_and_grad(x + b).0;
                }
            }
        }
    }
}

crate::simd_fn! {
    fn fwd_grad_chunk(y: &mut [f32], xd: &mut [f32], bias: &[f32]) {
        if bias.is_empty() {
            for (y, x) in y.iter_mut().zip(xd.iter_mut()) {
                (*y, *x) = value_and_grad(*x);
            }
        } else {
            for (y, x) in y.chunks_mut(bias.len()).zip(xd.chunks_mut(bias.len())) {
                for ((y, x), &b) in y.iter_mut().zip(x.iter_mut()).zip(bias) {
                    (*y, *x) = value_and_grad(*x + b);
                }
            }
        }
    }
}

crate::simd_fn! {
    fn bwd_chunk(d: &mut [f32], x: &[f32]) {
        for (d, &x) in d.iter_mut().zip(x) {
            *d *= value_and_grad(x).1;
        }
    }
}

/// `y = relu(x + bias)` (`bias [H]` per row of `x [N, H]`, optional).
pub fn forward(y: &mut [f32], x: &[f32], bias: Option<&[f32]>) {
    let bias = bias.unwrap_or(&[]);
    let len = task_len(bias);
    y.par_chunks_mut(len)
        .zip(x.par_chunks(len))
        .for_each(|(y, x)| fwd_chunk(y, x, bias));
}

/// Training forward: `y = relu(x + bias)` and, in place, `x ← relu'(x + bias)` (0 or 1), so
/// backward is [`backward_from_derivative`], GELU's plain product.
pub fn forward_keep_derivative(y: &mut [f32], x: &mut [f32], bias: Option<&[f32]>) {
    let bias = bias.unwrap_or(&[]);
    let len = task_len(bias);
    y.par_chunks_mut(len)
        .zip(x.par_chunks_mut(len))
        .for_each(|(y, x)| fwd_grad_chunk(y, x, bias));
}

/// `d ← d·g` where `g = relu'(x)` was kept by [`forward_keep_derivative`].
pub fn backward_from_derivative(d: &mut [f32], g: &[f32]) {
    super::gelu::backward_from_derivative(d, g);
}

/// `d ← d·relu'(x)`.
pub fn backward(d: &mut [f32], x: &[f32]) {
    d.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(d, x)| bwd_chunk(d, x));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    #[test]
    fn gradients_match_finite_differences() {
        // keep every input at least 0.05 from the kink, where a central difference of
        // step 1e-2 is exact
        let x: Vec<f32> = randn(300, 5, 2.0)
            .into_iter()
            .map(|v| if v.abs() < 0.05 { v + 0.1 } else { v })
            .collect();
        let g = randn(300, 6, 1.0);
        let mut d = g.clone();
        backward(&mut d, &x);
        let f = |x: &[f32]| {
            let mut y = vec![0.0; x.len()];
            forward(&mut y, x, None);
            weighted_sum(&y, &g)
        };
        check_grad("x", &x, &d, f, 1e-2, 1e-4);
        // the fused training path gives the same value and gradient
        let (mut y1, mut y2, mut xd) = (vec![0.0; 300], vec![0.0; 300], x.clone());
        forward(&mut y1, &x, None);
        forward_keep_derivative(&mut y2, &mut xd, None);
        assert_eq!(y1, y2);
        let mut d2 = g.clone();
        backward_from_derivative(&mut d2, &xd);
        assert_eq!(d, d2);
        // both signs were exercised
        assert!(d.iter().filter(|v| **v == 0.0).count() > 50);
        assert!(d.iter().zip(&g).filter(|(a, b)| a == b).count() > 50);
    }

    #[test]
    fn fused_bias_and_reference_values() {
        let (rows, h) = (5, 7);
        let x = randn(rows * h, 7, 2.0);
        let bias = randn(h, 8, 1.0);
        let xb: Vec<f32> = x.iter().enumerate().map(|(i, v)| v + bias[i % h]).collect();
        let (mut want, mut got) = (vec![0.0; rows * h], vec![0.0; rows * h]);
        forward(&mut want, &xb, None);
        forward(&mut got, &x, Some(&bias));
        assert_eq!(want, got);
        let (mut d_want, mut d_got) = (xb.clone(), x.clone());
        forward_keep_derivative(&mut got, &mut d_got, Some(&bias));
        forward_keep_derivative(&mut want, &mut d_want, None);
        assert_eq!((want, d_want), (got, d_got));
        // torch.relu(torch.tensor([1.5, -0.5, 0.0])) = [1.5, 0, 0]; its gradient [1, 0, 0]
        let (mut y, mut xd) = ([9.0; 3], [1.5, -0.5, 0.0]);
        forward_keep_derivative(&mut y, &mut xd, None);
        assert_eq!((y, xd), ([1.5, 0.0, 0.0], [1.0, 0.0, 0.0]));
    }
}
