//! Rotary position embedding, Hugging Face Llama "rotate_half" layout, on q and k per head.
//!
//! For head size `hs`, `h = hs/2`, `inv_freq[i] = θ^(-2i/hs)`, angle `a = pos·inv_freq[i]`:
//! Forward:  `out[i] = x[i]·cos a − x[i+h]·sin a`, `out[i+h] = x[i+h]·cos a + x[i]·sin a`.
//! Backward: the transpose (rotation by `−a`) applied to the gradient.
//! Applied in place to the q and k thirds of `qkv [B·T, 3C]` (v untouched).

use rayon::prelude::*;

/// `cos`/`sin` of the rotation angles for positions `0..rows`, `[rows, hs/2]` each.
#[derive(Clone, Debug)]
pub struct RopeTable {
    /// hs/2
    pub half: usize,
    /// base of the frequencies
    pub theta: f32,
    /// `cos [rows, hs/2]`
    pub cos: Vec<f32>,
    /// `sin [rows, hs/2]`
    pub sin: Vec<f32>,
}

impl RopeTable {
    /// the table for positions `0..rows` of heads of size `hs`
    pub fn new(rows: usize, hs: usize, theta: f32) -> Self {
        let half = hs / 2;
        let mut t = RopeTable {
            half,
            theta,
            cos: vec![0.0; rows * half],
            sin: vec![0.0; rows * half],
        };
        for p in 0..rows {
            let (c, s) = (
                &mut t.cos[p * half..(p + 1) * half],
                &mut t.sin[p * half..(p + 1) * half],
            );
            angles(p, hs, theta, c, s);
        }
        t
    }

    /// Rows covered by the table.
    pub fn rows(&self) -> usize {
        self.cos.len() / self.half.max(1)
    }
}

/// cos/sin for one absolute position (computed in f64), for positions past the table.
pub fn angles(pos: usize, hs: usize, theta: f32, cos: &mut [f32], sin: &mut [f32]) {
    for i in 0..hs / 2 {
        let inv = (theta as f64).powf(-((2 * i) as f64) / hs as f64);
        let a = pos as f64 * inv;
        cos[i] = a.cos() as f32;
        sin[i] = a.sin() as f32;
    }
}

/// Rotate one head vector `x [hs]` by `sign·a`.
#[inline]
pub fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32], sign: f32) {
    let h = cos.len();
    let (a, b) = x.split_at_mut(h);
    for i in 0..h {
        let (x0, x1, s) = (a[i], b[i], sign * sin[i]);
        a[i] = x0 * cos[i] - x1 * s;
        b[i] = x1 * cos[i] + x0 * s;
    }
}

/// Rotate q and k of every row of `qkv [N,3C]` by `sign ×` the angles of table row `n % t`
/// (`cos, sin [T, hs/2]`).
pub fn apply(
    qkv: &mut [f32],
    cos: &[f32],
    sin: &[f32],
    t: usize,
    c: usize,
    n_head: usize,
    sign: f32,
) {
    apply_cols(qkv, cos, sin, t, 3 * c, 2 * c, c / n_head, sign)
}

/// Rotate the first `width` columns (whole heads of size `hs`) of every row of `x [N,stride]`
/// by `sign ×` the angles of table row `n % t`: [`apply`]'s q and k of `qkv [N,3C]`
/// (`stride = 3C, width = 2C`), the encoder–decoder's cross-attention q `[N,C]`
/// (`stride = width = C`) and k of `kv [N,2C]` (`stride = 2C, width = C`).
#[allow(clippy::too_many_arguments)]
pub fn apply_cols(
    x: &mut [f32],
    cos: &[f32],
    sin: &[f32],
    t: usize,
    stride: usize,
    width: usize,
    hs: usize,
    sign: f32,
) {
    let h = hs / 2;
    x.par_chunks_mut(stride).enumerate().for_each(|(n, row)| {
        let pos = n % t;
        let (cos, sin) = (&cos[pos * h..pos * h + h], &sin[pos * h..pos * h + h]);
        for head in row[..width].chunks_mut(hs) {
            rotate(head, cos, sin, sign);
        }
    });
}

/// Rotate q and k of every row (row `n` is position `n % t`) in place.
pub fn forward(qkv: &mut [f32], table: &RopeTable, t: usize, c: usize, n_head: usize) {
    apply(qkv, &table.cos, &table.sin, t, c, n_head, 1.0)
}

/// Map gradients w.r.t. rotated q, k back to the unrotated ones, in place.
pub fn backward(dqkv: &mut [f32], table: &RopeTable, t: usize, c: usize, n_head: usize) {
    apply(dqkv, &table.cos, &table.sin, t, c, n_head, -1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    #[test]
    fn gradient_and_convention() {
        let (b, t, c, nh) = (2, 5, 8, 2);
        let table = RopeTable::new(t, c / nh, 10000.0);
        let x = randn(b * t * 3 * c, 1, 1.0);
        let g = randn(b * t * 3 * c, 2, 1.0);
        let mut d = g.clone();
        backward(&mut d, &table, t, c, nh);
        check_grad(
            "qkv",
            &x,
            &d,
            |x| {
                let mut y = x.to_vec();
                forward(&mut y, &table, t, c, nh);
                weighted_sum(&y, &g)
            },
            1e-2,
            1e-3,
        );
        // convention check at position 3, head dim 4 (half 2), i = 1: inv_freq = 1e4^(-1/2)
        let mut y = x.clone();
        forward(&mut y, &table, t, c, nh);
        let a = 3.0f64 * 10000f64.powf(-0.5);
        let row = 3 * 3 * c; // batch 0, position 3
        let want = x[row + 1] as f64 * a.cos() - x[row + 3] as f64 * a.sin();
        assert!((y[row + 1] as f64 - want).abs() < 1e-6);
        // v untouched
        assert_eq!(y[row + 2 * c..row + 3 * c], x[row + 2 * c..row + 3 * c]);
    }
}
