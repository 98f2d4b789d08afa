//! `Kernel::OpenBlas` (cargo feature `openblas`; Debian `libopenblas-dev`): the system
//! OpenBLAS `cblas_sgemm`, kept single-threaded per call (rayon owns the threads) with the rows
//! of `C` split over the pool by us — a candidate measured by `examples/matmul_bench.rs`.
//! Each of `A`, `B` needs a unit row or column stride (CBLAS takes a transpose flag and a
//! leading dimension, not two strides).

use super::rows::{chunk_count, for_row_chunks};
use super::{Mat, MatMut};

/// Products smaller than this (`m·n·k`) stay on the calling thread.
const MIN_PARALLEL_VOLUME: usize = 64 * 64 * 64;

const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;
const TRANS: i32 = 112;

#[link(name = "openblas")]
extern "C" {
    fn cblas_sgemm(
        layout: i32,
        ta: i32,
        tb: i32,
        m: i32,
        n: i32,
        k: i32,
        alpha: f32,
        a: *const f32,
        lda: i32,
        b: *const f32,
        ldb: i32,
        beta: f32,
        c: *mut f32,
        ldc: i32,
    );
    fn openblas_set_num_threads(n: i32);
}

static SINGLE_THREADED: std::sync::Once = std::sync::Once::new();

/// `C (+)= A·B` on up to `threads` threads (shapes checked by the dispatch, `k > 0`).
pub(super) fn product(c: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool, threads: usize) {
    let (m, n, k) = (c.rows(), c.cols(), a.cols());
    let chunks = chunk_count(threads, m, n, k, MIN_PARALLEL_VOLUME);
    for_row_chunks(c, a, chunks, |c, a| sgemm(c, a, b, accumulate));
}

/// The CBLAS transpose flag and leading dimension of a view with a unit row or column stride.
fn layout(x: &Mat<'_>) -> (i32, usize) {
    if x.col_stride() == 1 {
        (NO_TRANS, x.row_stride())
    } else {
        (TRANS, x.col_stride())
    }
}

/// One single-threaded `cblas_sgemm` call.
fn sgemm(mut c: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    // SAFETY: sets a global OpenBLAS setting once, before the first product.
    SINGLE_THREADED.call_once(|| unsafe { openblas_set_num_threads(1) });
    assert!(
        (a.col_stride() == 1 || a.row_stride() == 1)
            && (b.col_stride() == 1 || b.row_stride() == 1),
        "openblas needs a unit stride"
    );
    let ((ta, lda), (tb, ldb)) = (layout(&a), layout(&b));
    let beta = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: the views are in bounds and `c` is exclusive (the `Mat`/`MatMut` invariants);
    // `C` is row-major with unit column stride.
    unsafe {
        cblas_sgemm(
            ROW_MAJOR,
            ta,
            tb,
            c.rows() as i32,
            c.cols() as i32,
            a.cols() as i32,
            1.0,
            a.as_ptr(),
            lda.max(1) as i32,
            b.as_ptr(),
            ldb.max(1) as i32,
            beta,
            c.as_mut_ptr(),
            c.row_stride().max(1) as i32,
        )
    }
}
