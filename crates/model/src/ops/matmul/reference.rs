//! [`Kernel::Reference`](super::Kernel::Reference): plain triple loop on the calling thread.
//! Slow, but it allocates nothing, so `tests/no_alloc.rs` selects it to count our own
//! allocations, and the unit tests check the fast kernels against it.

use super::{Mat, MatMut};

/// `C (+)= A·B`, each `C[i,j]` summed over `p` in order (shapes checked by the dispatch).
pub(super) fn product(mut c: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    for i in 0..c.rows() {
        let row = c.row_mut(i);
        for (j, out) in row.iter_mut().enumerate() {
            let mut s = 0.0f32;
            for p in 0..a.cols() {
                s += a.get(i, p) * b.get(p, j);
            }
            *out = if accumulate { *out + s } else { s };
        }
    }
}
