//! Strided single-precision matrix multiply: the one primitive that dominates training time.
//!
//! `C[m,n] (+)= A[m,k] · B[k,n]`, every operand a strided view (`rs` = row stride, `cs` = column
//! stride, in elements), so transposes are free: `Wᵀ` of a row-major `W[out,in]` is the view
//! `rs = 1, cs = in`.
//!
//! Kernels (measured on our shapes by `examples/matmul_bench.rs`, numbers in the README):
//! - [`Kernel::Gemm`]: the `gemm` crate (runtime AVX2/AVX-512 dispatch, rayon inside).
//! - [`Kernel::MatrixMultiply`]: the `matrixmultiply` crate, rows split over rayon by us.
//!
//! Threading: [`Par::Pool`] spreads one product over the rayon pool; [`Par::Single`] is for
//! calls made from inside an already parallel loop (attention per batch×head), so the two
//! levels never nest. Neither kernel splits the reduction dimension `k` across threads, so
//! results are bitwise reproducible for a fixed thread count.

use std::sync::atomic::{AtomicU8, Ordering};

/// Which matmul implementation to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The `gemm` crate.
    Gemm,
    /// The `matrixmultiply` crate.
    MatrixMultiply,
    /// The `gemm` crate single-threaded per task, rows split over rayon by us.
    GemmSplit,
    /// Plain loops: slow, allocation-free, the reference the others are tested against.
    Reference,
    /// OpenBLAS `cblas_sgemm` (cargo feature `openblas`; Debian `libopenblas-dev`), run
    /// single-threaded per call with rows split over rayon by us.
    #[cfg(feature = "openblas")]
    OpenBlas,
}

static KERNEL: AtomicU8 = AtomicU8::new(0);

/// Select the process-wide matmul kernel (benchmarks use this to compare candidates).
pub fn set_kernel(k: Kernel) {
    KERNEL.store(
        match k {
            Kernel::Gemm => 1,
            Kernel::MatrixMultiply => 2,
            Kernel::GemmSplit => 3,
            Kernel::Reference => 4,
            #[cfg(feature = "openblas")]
            Kernel::OpenBlas => 5,
        },
        Ordering::Relaxed,
    );
}

/// The kernel in use (the default is the fastest measured on our shapes).
pub fn kernel() -> Kernel {
    match KERNEL.load(Ordering::Relaxed) {
        1 => Kernel::Gemm,
        2 => Kernel::MatrixMultiply,
        3 => Kernel::GemmSplit,
        4 => Kernel::Reference,
        #[cfg(feature = "openblas")]
        5 => Kernel::OpenBlas,
        _ => DEFAULT_KERNEL,
    }
}

/// Default kernel: see the README's matmul table for the measurement behind this choice.
pub const DEFAULT_KERNEL: Kernel = Kernel::Gemm;

/// How one product may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Par {
    /// Use the current rayon pool.
    Pool,
    /// Stay on the calling thread.
    Single,
}

thread_local! {
    /// Set inside [`on_this_thread`]: `Par::Pool` products stay on the calling thread.
    static ON_THIS_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with every product it makes *on this thread* single-threaded, `Par::Pool` included
/// (a batch shard already has a thread of its own; splitting its products again would only
/// add fork/join costs). Restored on return, also by a panic.
pub fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ON_THIS_THREAD.set(self.0);
        }
    }
    let _restore = Restore(ON_THIS_THREAD.replace(true));
    f()
}

/// A strided read-only matrix view.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// Row-major `[rows, cols]` at the start of `data`.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        View {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major `[rows, cols]` matrix, i.e. a `[cols, rows]` view.
    pub fn rows_t(data: &'a [f32], cols: usize) -> Self {
        View {
            data,
            rs: 1,
            cs: cols,
        }
    }
}

fn check(len: usize, r: usize, c: usize, rs: usize, cs: usize, what: &str) {
    if r > 0 && c > 0 {
        let last = (r - 1) * rs + (c - 1) * cs;
        assert!(
            last < len,
            "matmul: {what} view [{r},{c}] rs={rs} cs={cs} exceeds len {len}"
        );
    }
}

/// `C = A·B` (or `C += A·B` when `accumulate`), `A: [m,k]`, `B: [k,n]`, `C: [m,n]` with row
/// stride `c_rs` and unit column stride.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: View<'_>,
    b: View<'_>,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    par: Par,
) {
    matmul_with(kernel(), m, n, k, a, b, c, c_rs, accumulate, par)
}

/// [`matmul`] with an explicit kernel (benchmarks and tests compare kernels side by side).
#[allow(clippy::too_many_arguments)]
pub fn matmul_with(
    kern: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: View<'_>,
    b: View<'_>,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    par: Par,
) {
    check(a.data.len(), m, k, a.rs, a.cs, "A");
    check(b.data.len(), k, n, b.rs, b.cs, "B");
    check(c.len(), m, n, c_rs, 1, "C");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * c_rs..i * c_rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: every index touched is inside the slices (checked above); `c` is borrowed
    // mutably for the duration of the call, so no other reference aliases it.
    unsafe {
        matmul_raw_with(
            kern,
            m,
            n,
            k,
            a.data.as_ptr(),
            a.rs,
            a.cs,
            b.data.as_ptr(),
            b.rs,
            b.cs,
            c.as_mut_ptr(),
            c_rs,
            accumulate,
            par,
        )
    }
}

/// Raw-pointer form for callers that write disjoint strided tiles of one buffer from several
/// threads (attention heads).
///
/// # Safety
/// All views must be in bounds and `c` must not be read or written by anyone else meanwhile.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_raw(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    b_cs: usize,
    c: *mut f32,
    c_rs: usize,
    accumulate: bool,
    par: Par,
) {
    matmul_raw_with(
        kernel(),
        m,
        n,
        k,
        a,
        a_rs,
        a_cs,
        b,
        b_rs,
        b_cs,
        c,
        c_rs,
        accumulate,
        par,
    )
}

/// # Safety
/// As [`matmul_raw`].
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_raw_with(
    kern: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    b_cs: usize,
    c: *mut f32,
    c_rs: usize,
    accumulate: bool,
    par: Par,
) {
    let threads = match par {
        Par::Pool if !ON_THIS_THREAD.get() => rayon::current_num_threads(),
        _ => 1,
    };
    match kern {
        Kernel::Reference => {
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0f32;
                    for p in 0..k {
                        s += *a.add(i * a_rs + p * a_cs) * *b.add(p * b_rs + j * b_cs);
                    }
                    let d = c.add(i * c_rs + j);
                    *d = if accumulate { *d + s } else { s };
                }
            }
        }
        Kernel::Gemm => {
            let p = if threads > 1 && m * n * k >= 32 * 32 * 32 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            };
            gemm::gemm(
                m,
                n,
                k,
                c,
                1,
                c_rs as isize,
                accumulate,
                a,
                a_cs as isize,
                a_rs as isize,
                b,
                b_cs as isize,
                b_rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                p,
            );
        }
        #[cfg(feature = "openblas")]
        Kernel::OpenBlas => {
            let chunks = if threads > 1 && m >= 16 * threads && m * n * k >= 64 * 64 * 64 {
                threads
            } else {
                1
            };
            let (ap, bp, cp) = (SendPtr(a as *mut f32), SendPtr(b as *mut f32), SendPtr(c));
            let run = move |r0: usize, r1: usize| {
                // SAFETY: disjoint row ranges of C; A/B in bounds as for the caller.
                unsafe {
                    blas::sgemm(
                        r1 - r0,
                        n,
                        k,
                        ap.get().add(r0 * a_rs),
                        a_rs,
                        a_cs,
                        bp.get(),
                        b_rs,
                        b_cs,
                        cp.get().add(r0 * c_rs),
                        c_rs,
                        accumulate,
                    )
                }
            };
            for_row_chunks(m, chunks, run);
        }
        Kernel::GemmSplit => {
            let chunks = if threads > 1 && m >= 16 * threads && m * n * k >= 64 * 64 * 64 {
                threads
            } else {
                1
            };
            let (ap, bp, cp) = (SendPtr(a as *mut f32), SendPtr(b as *mut f32), SendPtr(c));
            let run = move |r0: usize, r1: usize| {
                let (ap, bp, cp) = (ap, bp, cp);
                // SAFETY: row ranges are disjoint, so the C tiles are too.
                unsafe {
                    gemm::gemm(
                        r1 - r0,
                        n,
                        k,
                        cp.0.add(r0 * c_rs),
                        1,
                        c_rs as isize,
                        accumulate,
                        ap.0.add(r0 * a_rs),
                        a_cs as isize,
                        a_rs as isize,
                        bp.0,
                        b_cs as isize,
                        b_rs as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            };
            for_row_chunks(m, chunks, run);
        }
        Kernel::MatrixMultiply => {
            let beta = if accumulate { 1.0 } else { 0.0 };
            let chunks = if threads > 1 && m >= 16 * threads {
                threads
            } else {
                1
            };
            if chunks == 1 {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a,
                    a_rs as isize,
                    a_cs as isize,
                    b,
                    b_rs as isize,
                    b_cs as isize,
                    beta,
                    c,
                    c_rs as isize,
                    1,
                );
            } else {
                let (ap, bp, cp) = (SendPtr(a as *mut f32), SendPtr(b as *mut f32), SendPtr(c));
                let per = m.div_ceil(chunks);
                rayon::scope(|s| {
                    for t in 0..chunks {
                        let r0 = t * per;
                        let r1 = (r0 + per).min(m);
                        if r0 >= r1 {
                            continue;
                        }
                        s.spawn(move |_| {
                            let (ap, bp, cp) = (ap, bp, cp);
                            // SAFETY: row ranges are disjoint, so the C tiles are too.
                            unsafe {
                                matrixmultiply::sgemm(
                                    r1 - r0,
                                    k,
                                    n,
                                    1.0,
                                    ap.0.add(r0 * a_rs),
                                    a_rs as isize,
                                    a_cs as isize,
                                    bp.0,
                                    b_rs as isize,
                                    b_cs as isize,
                                    beta,
                                    cp.0.add(r0 * c_rs),
                                    c_rs as isize,
                                    1,
                                )
                            }
                        });
                    }
                });
            }
        }
    }
}

#[cfg(feature = "openblas")]
mod blas {
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

    static SINGLE: std::sync::Once = std::sync::Once::new();

    /// `C (+)= A·B` with row-major C; each of A, B must have a unit row or column stride.
    ///
    /// # Safety
    /// Views in bounds, C not aliased.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn sgemm(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        a_rs: usize,
        a_cs: usize,
        b: *const f32,
        b_rs: usize,
        b_cs: usize,
        c: *mut f32,
        c_rs: usize,
        accumulate: bool,
    ) {
        // rayon owns the threads: OpenBLAS runs on the calling thread only
        SINGLE.call_once(|| unsafe { openblas_set_num_threads(1) });
        let (ta, lda) = if a_cs == 1 {
            (NO_TRANS, a_rs)
        } else {
            (TRANS, a_cs)
        };
        let (tb, ldb) = if b_cs == 1 {
            (NO_TRANS, b_rs)
        } else {
            (TRANS, b_cs)
        };
        assert!(
            (a_cs == 1 || a_rs == 1) && (b_cs == 1 || b_rs == 1),
            "openblas needs a unit stride"
        );
        let beta = if accumulate { 1.0 } else { 0.0 };
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                ta,
                tb,
                m as i32,
                n as i32,
                k as i32,
                1.0,
                a,
                lda.max(1) as i32,
                b,
                ldb.max(1) as i32,
                beta,
                c,
                c_rs.max(1) as i32,
            )
        }
    }
}

/// A raw pointer that may cross threads; users guarantee disjoint access.
#[derive(Clone, Copy)]
pub struct SendPtr(pub *mut f32);
impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    #[inline]
    pub fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: only used to hand disjoint regions of one buffer to rayon tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// Runs `run(r0, r1)` on `chunks` disjoint row ranges covering `0..m` (in parallel when
/// there is more than one): each task owns its rows of C.
fn for_row_chunks<F: Fn(usize, usize) + Sync>(m: usize, chunks: usize, run: F) {
    if chunks <= 1 {
        run(0, m);
        return;
    }
    let per = m.div_ceil(chunks);
    let run = &run;
    rayon::scope(|s| {
        for t in 0..chunks {
            let (r0, r1) = (t * per, ((t + 1) * per).min(m));
            if r0 < r1 {
                s.spawn(move |_| run(r0, r1));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: View, b: View) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    s += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn kernels_match_naive_with_transposes_and_accumulate() {
        let (m, n, k) = (37, 29, 53);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
            .collect();
        for kern in [
            #[cfg(feature = "openblas")]
            Kernel::OpenBlas,
            Kernel::Gemm,
            Kernel::MatrixMultiply,
            Kernel::GemmSplit,
            Kernel::Reference,
        ] {
            for par in [Par::Pool, Par::Single] {
                // A row-major, B given as a transposed [n,k] buffer.
                let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
                let want = naive(m, n, k, View::rows(&a, k), View::rows(&b, n));
                let mut c = vec![1.0; m * n];
                let (av, btv) = (View::rows(&a, k), View::rows_t(&bt, k));
                matmul_with(kern, m, n, k, av, btv, &mut c, n, false, par);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-4, "{kern:?} {x} vs {y}");
                }
                let (av, bv) = (View::rows(&a, k), View::rows(&b, n));
                matmul_with(kern, m, n, k, av, bv, &mut c, n, true, par);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 1e-4);
                }
            }
        }
    }
}
