//! [`Kernel::GemmSplit`](super::Kernel::GemmSplit): the `gemm` crate single-threaded per call,
//! with the rows of `C` split over the rayon pool by us ([`for_row_chunks`]) instead of by
//! `gemm` — a candidate measured against [`Kernel::Gemm`](super::Kernel::Gemm) by
//! `examples/matmul_bench.rs`.

use super::rows::{chunk_count, for_row_chunks};
use super::{Mat, MatMut};

/// Products smaller than this (`m·n·k`) stay on the calling thread.
const MIN_PARALLEL_VOLUME: usize = 64 * 64 * 64;

/// `C (+)= A·B` on up to `threads` threads (shapes checked by the dispatch, `k > 0`).
pub(super) fn product(c: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool, threads: usize) {
    let (m, n, k) = (c.rows(), c.cols(), a.cols());
    let chunks = chunk_count(threads, m, n, k, MIN_PARALLEL_VOLUME);
    for_row_chunks(c, a, chunks, |c, a| {
        super::gemm::call(c, a, b, accumulate, ::gemm::Parallelism::None)
    });
}
