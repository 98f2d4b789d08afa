//! Splitting one product over threads by rows of `C` (and of `A`): each task owns its rows of
//! `C` and reads all of `B`, and no task splits the reduction dimension `k`. Used by the
//! kernels that run single-threaded per call (`gemm_split`, `matrixmultiply`, `openblas`).

use super::{Mat, MatMut};

/// How many row ranges to split `C[m,n]` (inner dimension `k`) into on `threads` threads:
/// all of them when each gets at least 16 rows and `m·n·k ≥ min_volume`, else one.
pub(super) fn chunk_count(
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    min_volume: usize,
) -> usize {
    if threads > 1 && m >= 16 * threads && m * n * k >= min_volume {
        threads
    } else {
        1
    }
}

/// Runs `run(c_rows, a_rows)` on `chunks` disjoint row ranges of `c` and `a` of `⌈m/chunks⌉`
/// rows each (the last shorter), one rayon task per range; on the calling thread when
/// `chunks ≤ 1`.
pub(super) fn for_row_chunks<F>(c: MatMut<'_>, a: Mat<'_>, chunks: usize, run: F)
where
    F: Fn(MatMut<'_>, Mat<'_>) + Sync,
{
    if chunks <= 1 {
        run(c, a);
        return;
    }
    let per = c.rows().div_ceil(chunks);
    let run = &run;
    rayon::scope(|s| {
        let (mut c, mut a) = (c, a);
        while c.rows() > 0 {
            let take = per.min(c.rows());
            let (c_rows, c_rest) = c.split_at_row(take);
            let (a_rows, a_rest) = a.split_at_row(take);
            s.spawn(move |_| run(c_rows, a_rows));
            (c, a) = (c_rest, a_rest);
        }
    });
}
