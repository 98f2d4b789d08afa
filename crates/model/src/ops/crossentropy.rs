//! Fused softmax + cross-entropy: loss and `dlogits` in one pass over the logits, in place.
//!
//! Forward+backward: logits `[N,V]`, targets `[N]` (`-1` = ignored), with `n` = number of
//! non-ignored rows:
//!   `loss = (1/n)·Σ_rows (logsumexp(l) - l[target])`
//!   `dlogits[r,:] = (softmax(l[r,:]) - onehot(target))/n` (zero rows for ignored targets).
//! `dlogits` overwrites the logits (the fused classifier keeps one `[rows, V]` chunk buffer).
//! Targets must already be validated (`-1` or `< V`).

use crate::ops::math::{exp_sum_long, max_long, scale};
use rayon::prelude::*;

/// The ignore index (PyTorch's default is -100; nanoGPT passes -1).
pub const IGNORE: i32 = -1;

crate::simd_fn! {
    /// One row's loss; its logits become `dlogits`. AVX-512 where the CPU has it: after the
    /// first pass brings the row (800 KB at 200,019 ids) into L2, the exp is the bound.
    avx512 fn row(l: &mut [f32], target: i32, inv_n: f32) -> f32 {
        if target == IGNORE {
            l.fill(0.0);
            return 0.0;
        }
        let mx = max_long(l);
        let at_target = l[target as usize];
        let s = exp_sum_long(l, mx);
        scale(l, inv_n / s);
        l[target as usize] -= inv_n;
        mx + s.ln() - at_target
    }
}

/// Returns the mean loss over non-ignored rows (NaN when all are ignored, like PyTorch);
/// overwrites `logits` with `dlogits` and writes per-row losses (0 for ignored rows).
pub fn forward_backward(
    logits: &mut [f32],
    row_loss: &mut [f32],
    targets: &[i32],
    v: usize,
) -> f32 {
    let n = targets.iter().filter(|&&t| t != IGNORE).count();
    (forward_backward_part(logits, row_loss, targets, v, n) / n as f64) as f32
}

/// [`forward_backward`] for some rows of a batch whose mean runs over `n_valid` targets in
/// all: fills `row_loss` and, in place of the logits, `dlogits` (scaled by `1/n_valid`) for
/// these rows (`logits [targets.len(), V]`) and returns their summed loss.
pub fn forward_backward_part(
    logits: &mut [f32],
    row_loss: &mut [f32],
    targets: &[i32],
    v: usize,
    n_valid: usize,
) -> f64 {
    let inv_n = 1.0 / n_valid as f32;
    let rows = targets.len();
    logits[..rows * v]
        .par_chunks_mut(v)
        .zip(targets.par_iter().zip(row_loss[..rows].par_iter_mut()))
        .for_each(|(l, (&t, rl))| *rl = row(l, t, inv_n));
    row_loss[..rows].iter().map(|&x| x as f64).sum()
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
        let mut dl = logits.clone();
        let mut rl = vec![0.0; n];
        let loss = forward_backward(&mut dl, &mut rl, &targets, v);
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
            let (mut d, mut r) = (x.to_vec(), vec![0.0; n]);
            forward_backward(&mut d, &mut r, &targets, v) as f64
        };
        check_grad("logits", &logits, &dl, f, 1e-2, 2e-3);
        let mut l = logits.clone();
        let all_ignored = forward_backward(&mut l, &mut rl, &[IGNORE; 4], v);
        assert!(all_ignored.is_nan());
    }
}
