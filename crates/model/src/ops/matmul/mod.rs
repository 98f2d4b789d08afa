//! Strided single-precision matrix multiply: the one primitive that dominates training time.
//!
//! `C[m,n] (+)= A[m,k] · B[k,n]` through [`matmul`]`(c, a, b, accumulate, par)`, every operand a
//! strided view ([`Mat`], [`MatMut`]), so transposes are free: `Wᵀ` of a row-major `W[out,in]`
//! is `Mat::row_major(w, out, in).t()`.
//!
//! Kernels, one file each (measured on our shapes by `examples/matmul_bench.rs`, numbers in the
//! README); [`set_kernel`] picks one process-wide:
//! - [`Kernel::Gemm`] (`gemm.rs`, the default): the `gemm` crate, rayon inside.
//! - [`Kernel::GemmSplit`] (`gemm_split.rs`): `gemm` single-threaded, rows split by us.
//! - [`Kernel::MatrixMultiply`] (`matrixmultiply.rs`): the `matrixmultiply` crate, rows split by us.
//! - `Kernel::OpenBlas` (`openblas.rs`, cargo feature `openblas`): `cblas_sgemm`, rows split by us.
//! - [`Kernel::Reference`] (`reference.rs`): plain loops, allocation-free (tests, `no_alloc`).
//!
//! Threading: [`Par::Pool`] spreads one product over the rayon pool; [`Par::Single`] is for
//! calls made from inside an already parallel loop (attention per batch×head), so the two
//! levels never nest. No kernel splits the reduction dimension `k` across threads, so results
//! are bitwise reproducible for a fixed thread count.

mod amx;
mod amx_pack;
mod bf16;
mod gemm;
mod gemm_split;
mod matrixmultiply;
#[cfg(feature = "openblas")]
mod openblas;
mod operand;
mod prepared;
mod reference;
mod rows;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bf16;

pub use bf16::{
    amx_available as bf16_amx_available, bf16_bits, native_available as bf16_native_available,
    native_outpaces_f32 as bf16_native_outpaces_f32, round_bf16, Bf16Kernel,
};
pub use operand::{Mat, MatMut};
pub use prepared::{matmul_bf16_prepared, PreparedWeight};
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

/// `C = A·B`, or `C += A·B` when `accumulate`, with the kernel in use. Panics on mismatched
/// shapes (`A: [m,k]`, `B: [k,n]`, `C: [m,n]`).
pub fn matmul(c: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool, par: Par) {
    matmul_with(kernel(), c, a, b, accumulate, par)
}

/// [`matmul`] with an explicit kernel (benchmarks and tests compare kernels side by side).
pub fn matmul_with(
    kern: Kernel,
    mut c: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    par: Par,
) {
    if let Some(threads) = prepare(&mut c, a, b, accumulate, par) {
        match kern {
            Kernel::Gemm => gemm::product(c, a, b, accumulate, threads),
            Kernel::GemmSplit => gemm_split::product(c, a, b, accumulate, threads),
            Kernel::MatrixMultiply => matrixmultiply::product(c, a, b, accumulate, threads),
            #[cfg(feature = "openblas")]
            Kernel::OpenBlas => openblas::product(c, a, b, accumulate, threads),
            Kernel::Reference => reference::product(c, a, b, accumulate),
        }
    }
}

/// `C (+)= bf16(A)·bf16(B)` with f32 accumulation (see [`Bf16Kernel`]); shapes as [`matmul`].
/// Panics if `kern` is [`Bf16Kernel::Native`] on a CPU without it ([`bf16_native_available`]).
pub fn matmul_bf16(
    kern: Bf16Kernel,
    mut c: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    par: Par,
) {
    if let Some(threads) = prepare(&mut c, a, b, accumulate, par) {
        bf16::product(kern, c, a, b, None, accumulate, threads);
    }
}

/// Checks the shapes and handles the empty cases; `Some(threads)` when a kernel has to run.
fn prepare(
    c: &mut MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    par: Par,
) -> Option<usize> {
    assert!(
        a.rows() == c.rows() && b.cols() == c.cols() && a.cols() == b.rows(),
        "matmul: shapes [{},{}]·[{},{}] → [{},{}] do not fit",
        a.rows(),
        a.cols(),
        b.rows(),
        b.cols(),
        c.rows(),
        c.cols()
    );
    if c.rows() == 0 || c.cols() == 0 {
        return None;
    }
    if a.cols() == 0 {
        if !accumulate {
            (0..c.rows()).for_each(|i| c.row_mut(i).fill(0.0));
        }
        return None;
    }
    Some(match par {
        Par::Pool if !ON_THIS_THREAD.get() => rayon::current_num_threads(),
        _ => 1,
    })
}
