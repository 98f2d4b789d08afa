//! AdamW's update over flat buffers, exactly as `torch.optim.AdamW` (decoupled weight decay,
//! bias correction), on the CPU.
//!
//! Per element, in torch's order: `p *= 1 - lr·wd` (decayed segments only);
//! `m.lerp_(g, 1-β1)`; `v = v·β2 + (1-β2)·g²`; `p -= step_size · m / (√v/√bc2 + eps)`.
//! `p, g, m, v [P]` share the parameter layout; the host computes the scalars
//! ([`AdamWStep`]) and cuts the buffer into segments of at most [`CHUNK`] floats
//! ([`segments`]), one parallel task each.

use crate::backend::{AdamWStep, Segment};
use crate::ops::sendptr::SendPtr;
use rayon::prelude::*;
use std::ops::Range;

/// Most floats per parallel task.
pub const CHUNK: usize = 1 << 14;

/// The work items for tensors at `ranges` (with whether each decays): every range cut into
/// pieces of at most [`CHUNK`].
pub fn segments(ranges: impl Iterator<Item = (Range<usize>, bool)>) -> Vec<Segment> {
    let mut out = Vec::new();
    for (r, decays) in ranges {
        for s in r.clone().step_by(CHUNK) {
            out.push((s..(s + CHUNK).min(r.end), decays));
        }
    }
    out
}

crate::simd_fn! {
    fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: [f32; 7]) {
        let [decay, one_m_b1, b2, one_m_b2, step_size, bc2_sqrt, eps] = k;
        // equal lengths up front: no bounds checks in the loop, so it vectorises
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let gi = g[i];
            let mi = m[i] + one_m_b1 * (gi - m[i]);
            let vi = v[i] * b2 + one_m_b2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * decay - step_size * (mi / (vi.sqrt() / bc2_sqrt + eps));
        }
    }
}

/// One AdamW step over the `segments` (disjoint, inside all four buffers).
pub fn step(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    segments: &[Segment],
    s: AdamWStep,
) {
    let n = p.len();
    assert!(
        g.len() == n && m.len() == n && v.len() == n,
        "AdamW buffers differ in length"
    );
    assert!(
        segments.iter().all(|(r, _)| r.end <= n),
        "AdamW segment out of range"
    );
    let (pp, mp, vp) = (
        SendPtr(p.as_mut_ptr()),
        SendPtr(m.as_mut_ptr()),
        SendPtr(v.as_mut_ptr()),
    );
    segments.par_iter().for_each(|(r, decays)| {
        let (pp, mp, vp) = (pp, mp, vp);
        let decay = if *decays {
            1.0 - s.lr * s.weight_decay
        } else {
            1.0
        };
        let k = [
            decay,
            1.0 - s.beta1,
            s.beta2,
            1.0 - s.beta2,
            s.step_size,
            s.bc2_sqrt,
            s.eps,
        ];
        // SAFETY: the segments are disjoint ranges inside the four equally long buffers
        // (checked above).
        let (p, m, v) = unsafe {
            (
                std::slice::from_raw_parts_mut(pp.0.add(r.start), r.len()),
                std::slice::from_raw_parts_mut(mp.0.add(r.start), r.len()),
                std::slice::from_raw_parts_mut(vp.0.add(r.start), r.len()),
            )
        };
        update(p, &g[r.clone()], m, v, k);
    });
}
