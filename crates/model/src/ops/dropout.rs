//! Inverted dropout with counter-based masks: element `i` of stream `s` is kept iff
//! `hash(seed, s, i) ≥ p·2^32`. The mask is a pure function of its coordinates, so it needs
//! no storage (backward regenerates it) and does not depend on thread scheduling.
//!
//! Forward:  `y = x·keep/(1-p)`;  Backward: `dx = dy·keep/(1-p)`. Shapes: any, elementwise.

use crate::rng::mix64;
use rayon::prelude::*;

/// Identifies one dropout site in one step.
#[derive(Clone, Copy, Debug)]
pub struct Mask {
    /// the pass's dropout seed
    pub seed: u64,
    /// the site within the pass
    pub stream: u64,
    /// drop probability
    pub p: f32,
    /// Added to every element index: where this buffer starts inside the whole site (a batch
    /// shard's rows), so a mask does not depend on how the batch was split.
    pub offset: u64,
}

impl Mask {
    /// Whether element `i` survives.
    #[inline]
    pub fn keep(&self, i: u64) -> bool {
        let h = mix64(
            self.seed
                ^ mix64(self.stream.wrapping_add(0x9E37_79B9_7F4A_7C15))
                ^ i.wrapping_add(self.offset)
                    .wrapping_mul(0xD6E8_FEB8_6659_FD93),
        );
        ((h >> 32) as f64) >= self.p as f64 * 4_294_967_296.0
    }
    /// Multiplier for element `i`: `0` or `1/(1-p)`.
    #[inline]
    pub fn factor(&self, i: u64) -> f32 {
        if self.keep(i) {
            1.0 / (1.0 - self.p)
        } else {
            0.0
        }
    }
}

/// In-place `x ← x·mask` (forward and backward are the same operation).
pub fn apply(x: &mut [f32], mask: Mask) {
    x.par_chunks_mut(4096).enumerate().for_each(|(ci, c)| {
        for (j, v) in c.iter_mut().enumerate() {
            *v *= mask.factor((ci * 4096 + j) as u64);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    #[test]
    fn rate_scale_determinism_and_gradient() {
        let m = Mask {
            seed: 3,
            stream: 7,
            p: 0.25,
            offset: 0,
        };
        let n = 100_000;
        let kept = (0..n).filter(|&i| m.keep(i)).count() as f64 / n as f64;
        assert!((kept - 0.75).abs() < 0.01, "{kept}");
        let mut x = vec![1.0f32; 1000];
        apply(&mut x, m);
        let mut y = vec![1.0f32; 1000];
        apply(&mut y, m);
        assert_eq!(x, y);
        assert!(x.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        // a buffer starting at `offset` inside the site sees the site's mask from there on
        let mut tail = vec![1.0f32; 600];
        apply(&mut tail, Mask { offset: 400, ..m });
        assert_eq!(&tail[..], &x[400..]);
        let other = Mask { stream: 8, ..m };
        assert!((0..1000).any(|i| m.keep(i) != other.keep(i)));
        // linear op: gradient equals the mask itself
        let x0 = randn(300, 1, 1.0);
        let g = randn(300, 2, 1.0);
        let mut d = g.clone();
        apply(&mut d, m);
        check_grad(
            "x",
            &x0,
            &d,
            |x| {
                let mut y = x.to_vec();
                apply(&mut y, m);
                weighted_sum(&y, &g)
            },
            1e-2,
            1e-3,
        );
    }
}
