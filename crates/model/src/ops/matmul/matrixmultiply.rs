//! [`Kernel::MatrixMultiply`](super::Kernel::MatrixMultiply): the `matrixmultiply` crate
//! (single-threaded per call), with the rows of `C` split over the rayon pool by us — a
//! candidate measured by `examples/matmul_bench.rs`.

use super::rows::{chunk_count, for_row_chunks};
use super::{Mat, MatMut};

/// `C (+)= A·B` on up to `threads` threads (shapes checked by the dispatch, `k > 0`).
pub(super) fn product(c: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool, threads: usize) {
    let (m, n, k) = (c.rows(), c.cols(), a.cols());
    let beta = if accumulate { 1.0 } else { 0.0 };
    let chunks = chunk_count(threads, m, n, k, 0);
    for_row_chunks(c, a, chunks, |mut c, a| {
        // SAFETY: the views are in bounds and `c` is exclusive (the `Mat`/`MatMut`
        // invariants); `C` is row-major with unit column stride.
        unsafe {
            ::matrixmultiply::sgemm(
                c.rows(),
                k,
                n,
                1.0,
                a.as_ptr(),
                a.row_stride() as isize,
                a.col_stride() as isize,
                b.as_ptr(),
                b.row_stride() as isize,
                b.col_stride() as isize,
                beta,
                c.as_mut_ptr(),
                c.row_stride() as isize,
                1,
            )
        }
    });
}
