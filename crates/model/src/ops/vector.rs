//! Whole-buffer vector ops of the training step: zero, scale, accumulate, sum of squares.
//! Shapes: any flat buffer. Each splits into fixed chunks, so results do not depend on the
//! thread count.

use rayon::prelude::*;

/// Floats per parallel task.
pub const CHUNK: usize = 1 << 14;

/// `x = 0`.
pub fn zero(x: &mut [f32]) {
    x.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0));
}

/// `x *= s`.
pub fn scale(x: &mut [f32], s: f32) {
    x.par_chunks_mut(CHUNK)
        .for_each(|c| c.iter_mut().for_each(|v| *v *= s));
}

/// `acc += x`.
pub fn accumulate(acc: &mut [f32], x: &[f32]) {
    acc.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(a, x)| a.iter_mut().zip(x).for_each(|(a, x)| *a += x));
}

/// Rows of `acc` per [`accumulate_transposed`] task: 32 rows of a 256-wide gradient are 32 KiB
/// (stays in L1 while its columns are filled from contiguous runs of `x`).
const TBLOCK: usize = 32;

/// `acc [R,C] += xᵀ` for `x [C,R]` (`cols` = C): a staged transposed gradient added into the
/// weight's. Blocks of 32 rows of `acc` per task; each element gets exactly one add,
/// so the result does not depend on the thread count.
pub fn accumulate_transposed(acc: &mut [f32], x: &[f32], cols: usize) {
    let rows = acc.len() / cols.max(1);
    assert_eq!(
        x.len(),
        rows * cols,
        "accumulate_transposed: shapes do not fit"
    );
    acc.par_chunks_mut(TBLOCK * cols)
        .enumerate()
        .for_each(|(bi, a)| {
            let (r0, nr) = (bi * TBLOCK, a.len() / cols);
            for j in 0..cols {
                for (i, v) in x[j * rows + r0..j * rows + r0 + nr].iter().enumerate() {
                    a[i * cols + j] += v;
                }
            }
        });
}

/// `Σ x²` in f64: one partial per [`CHUNK`] floats (in `partials`, resized once), summed in
/// order, so the result is the same for any thread count.
pub fn sum_squares(x: &[f32], partials: &mut Vec<f64>) -> f64 {
    partials.resize(x.len().div_ceil(CHUNK), 0.0);
    partials
        .par_iter_mut()
        .zip(x.par_chunks(CHUNK))
        .for_each(|(p, g)| *p = sum_squares_f64(g));
    partials.iter().sum()
}

crate::simd_fn! {
    /// `Σ x²` in f64 with 8 fixed partial sums (so it vectorises instead of waiting on one
    /// chain of dependent adds; the order is fixed, so the result is deterministic).
    fn sum_squares_f64(g: &[f32]) -> f64 {
        let mut acc = [0.0f64; 8];
        let chunks = g.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..8 {
                acc[l] += c[l] as f64 * c[l] as f64;
            }
        }
        let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for &x in rest {
            s += x as f64 * x as f64;
        }
        s
    }
}
