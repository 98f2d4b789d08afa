//! Fused softmax + cross-entropy: loss and `dlogits` in one pass over the logits.
//!
//! Forward+backward: logits `[N,V]`, targets `[N]` (`-1` = ignored), with `n` = number of
//! non-ignored rows:
//!   `loss = (1/n)·Σ_rows (logsumexp(l) - l[target])`
//!   `dlogits[r,:] = (softmax(l[r,:]) - onehot(target))/n` (zero rows for ignored targets).
//! Targets must already be validated (`-1` or `< V`).

use crate::ops::math::exp;
use rayon::prelude::*;

/// The ignore index (PyTorch's default is -100; nanoGPT passes -1).
pub const IGNORE: i32 = -1;

crate::simd_fn! {
    fn row(dl: &mut [f32], l: &[f32], target: i32, inv_n: f32) -> f32 {
        if target == IGNORE {
            dl.fill(0.0);
            return 0.0;
        }
        let mut mx = f32::NEG_INFINITY;
        for &v in l {
            mx = mx.max(v);
        }
        let mut acc = [0.0f32; 8];
        let n8 = l.len() / 8 * 8;
        for i in (0..n8).step_by(8) {
            for k in 0..8 {
                let e = exp(l[i + k] - mx);
                dl[i + k] = e;
                acc[k] += e;
            }
        }
        let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for i in n8..l.len() {
            let e = exp(l[i] - mx);
            dl[i] = e;
            s += e;
        }
        let scale = inv_n / s;
        for d in dl.iter_mut() {
            *d *= scale;
        }
        let t = target as usize;
        dl[t] -= inv_n;
        mx + s.ln() - l[t]
    }
}

/// Returns the mean loss over non-ignored rows (NaN when all are ignored, like PyTorch);
/// writes `dlogits` and per-row losses (0 for ignored rows).
pub fn forward_backward(
    dlogits: &mut [f32],
    row_loss: &mut [f32],
    logits: &[f32],
    targets: &[i32],
    v: usize,
) -> f32 {
    let n = targets.iter().filter(|&&t| t != IGNORE).count();
    (forward_backward_part(dlogits, row_loss, logits, targets, v, n) / n as f64) as f32
}

/// [`forward_backward`] for some rows of a batch whose mean runs over `n_valid` targets in
/// all: fills `row_loss` and `dlogits` (scaled by `1/n_valid`) for these rows and returns
/// their summed loss.
pub fn forward_backward_part(
    dlogits: &mut [f32],
    row_loss: &mut [f32],
    logits: &[f32],
    targets: &[i32],
    v: usize,
    n_valid: usize,
) -> f64 {
    let inv_n = 1.0 / n_valid as f32;
    dlogits
        .par_chunks_mut(v)
        .zip(logits.par_chunks(v))
        .zip(targets.par_iter().zip(row_loss.par_iter_mut()))
        .for_each(|((dl, l), (&t, rl))| *rl = row(dl, l, t, inv_n));
    row_loss[..targets.len()].iter().map(|&x| x as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    #[test]
    fn loss_and_gradient() {
        let (n, v) = (4, 11);
        let logits = randn(n * v, 1, 3.0);
        let targets = [3, IGNORE, 0, 10];
        let mut dl = vec![0.0; n * v];
        let mut rl = vec![0.0; n];
        let loss = forward_backward(&mut dl, &mut rl, &logits, &targets, v);
        // direct f64 reference
        let mut want = 0.0f64;
        for (r, &t) in targets.iter().enumerate() {
            if t < 0 {
                continue;
            }
            let row = &logits[r * v..r * v + v];
            let lse = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
            want += lse - row[t as usize] as f64;
        }
        want /= 3.0;
        assert!((loss as f64 - want).abs() < 1e-5, "{loss} vs {want}");
        assert!(dl[v..2 * v].iter().all(|&x| x == 0.0));
        let f = |x: &[f32]| {
            let (mut d, mut r) = (vec![0.0; n * v], vec![0.0; n]);
            forward_backward(&mut d, &mut r, x, &targets, v) as f64
        };
        check_grad("logits", &logits, &dl, f, 1e-2, 2e-3);
        let all_ignored = forward_backward(&mut dl, &mut rl, &logits, &[IGNORE; 4], v);
        assert!(all_ignored.is_nan());
    }
}
