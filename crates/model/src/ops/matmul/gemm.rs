//! [`Kernel::Gemm`](super::Kernel::Gemm), the default: one call into the `gemm` crate (runtime
//! AVX2/AVX-512 dispatch), which splits large products over the rayon pool itself.

use super::{Mat, MatMut};

/// Products smaller than this (`m·n·k`) stay on the calling thread.
const MIN_PARALLEL_VOLUME: usize = 32 * 32 * 32;

/// `C (+)= A·B` on up to `threads` threads (shapes checked by the dispatch, `k > 0`).
pub(super) fn product(c: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool, threads: usize) {
    let parallelism = if threads > 1 && c.rows() * c.cols() * a.cols() >= MIN_PARALLEL_VOLUME {
        ::gemm::Parallelism::Rayon(threads)
    } else {
        ::gemm::Parallelism::None
    };
    call(c, a, b, accumulate, parallelism);
}

/// One `gemm::gemm` call (also the per-task call of `gemm_split`).
pub(super) fn call(
    mut c: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    parallelism: ::gemm::Parallelism,
) {
    // SAFETY: the views are in bounds and `c` is exclusive (the `Mat`/`MatMut` invariants);
    // `C` is row-major with unit column stride.
    unsafe {
        ::gemm::gemm(
            c.rows(),
            c.cols(),
            a.cols(),
            c.as_mut_ptr(),
            1,
            c.row_stride() as isize,
            accumulate,
            a.as_ptr(),
            a.col_stride() as isize,
            a.row_stride() as isize,
            b.as_ptr(),
            b.col_stride() as isize,
            b.row_stride() as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}
