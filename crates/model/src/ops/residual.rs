//! Residual add: `out = a + b` (all `[N,C]`). Backward is the identity into both branches,
//! so the model simply lets one gradient buffer flow through (no op needed).
//! Without dropout the add is fused into the LayerNorm that reads the sum
//! ([`layernorm::forward_residual`](crate::ops::layernorm::forward_residual)); this op serves
//! a branch whose output went through dropout.

use rayon::prelude::*;

/// `out = a + b`.
pub fn forward(out: &mut [f32], a: &[f32], b: &[f32]) {
    out.par_chunks_mut(8192)
        .zip(a.par_chunks(8192).zip(b.par_chunks(8192)))
        .for_each(|(o, (a, b))| {
            for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
                *o = a + b;
            }
        });
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds() {
        let mut o = [0.0; 3];
        super::forward(&mut o, &[1.0, 2.0, 3.0], &[0.5, -2.0, 1.0]);
        assert_eq!(o, [1.5, 0.0, 4.0]);
    }
}
