//! bf16 mixed-precision products: `C (+)= bf16(A)·bf16(B)` with f32 accumulation into an f32
//! `C` — torch autocast's matmul, except that `C` stays f32 (torch rounds a product's output
//! to bf16; we keep it f32 because every consumer here — bias, GELU, LayerNorm, the residual
//! stream, the f32 gradients — wants f32 anyway, and it is one rounding fewer).
//!
//! Three kernels with the same rounding of the operands (round-to-nearest-even to bf16):
//! - [`Bf16Kernel::Amx`]: Intel AMX tiles (`tdpbf16ps`, `amx.rs`), where [`amx_available`].
//! - [`Bf16Kernel::Native`]: the operands are cast to bf16 and multiplied by the `gemmkit`
//!   crate's AVX-512 BF16 dot kernel (`vdpbf16ps`: two bf16 products per f32 lane per
//!   instruction), f32 output. Only where [`native_available`] (checked at run time).
//! - [`Bf16Kernel::Emulated`]: the operands are rounded to bf16 *values* kept in f32 and
//!   multiplied by the f32 kernel in use. Portable, slower than f32 (the rounding pass on
//!   top), and the same numbers up to f32 summation order — so a bf16 run reproduces
//!   anywhere.
//!
//! Casts go into per-thread scratch buffers that grow to the largest operand and stay, so
//! a steady-state step does not allocate for them.

use super::prepared::Prepared;
use super::{kernel, matmul_with, Mat, MatMut};
use gemmkit::bf16;
use rayon::prelude::*;
use std::cell::RefCell;

/// Which bf16 product to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// AMX tile products (Sapphire Rapids and later); needs [`amx_available`].
    Amx,
    /// AVX-512 BF16 dot products (`gemmkit`); needs [`native_available`].
    Native,
    /// bf16-rounded operands through the f32 kernel: any CPU.
    Emulated,
}

/// Whether this CPU has native bf16 dot products (AVX-512F + AVX-512 BF16), detected once.
pub fn native_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU's AVX-512 BF16 dot products outpace its f32 FMAs, so that bf16 products
/// on them are worth their casts: AMD's (Zen 4/5: `vdpbf16ps`, two products per lane, at the
/// FMA's rate — PyTorch's bf16 `mm` 409 against 175 GFLOP/s fp32 on a 2-core Zen 4, `gemmkit`
/// 288–401 against `gemm` f32 192–210). Intel cores run it at half the FMA rate: on a Xeon
/// with AMX switched off (model 207) PyTorch's bf16 `mm` made 146–166 against 281–331 GFLOP/s
/// fp32, `gemmkit` 131–155 against `gemm` f32 204–288 — there bf16 is faster as bf16-rounded
/// operands on the f32 kernel ([`Bf16Kernel::Emulated`], the same numbers), and fp32 faster
/// still. Measurements in `docs/performance.md`.
pub fn native_outpaces_f32() -> bool {
    native_available() && cpu_is_amd()
}

/// Whether the CPU's vendor string is AMD's.
fn cpu_is_amd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let id = std::arch::x86_64::__cpuid(0);
        let vendor = [id.ebx, id.edx, id.ecx].map(u32::to_le_bytes).concat();
        vendor == b"AuthenticAMD"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AMX-BF16 tiles and the OS lets this process use them.
pub fn amx_available() -> bool {
    super::amx::available()
}

/// `x` rounded to the nearest bf16 (ties to even), as bits. NaN stays a (quiet) NaN, ±∞ stay,
/// values past the largest bf16 round to ±∞ — `half::bf16::from_f32` exactly.
#[inline]
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        ((b >> 16) as u16) | 0x0040
    } else {
        (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
    }
}

/// `x` rounded to the nearest bf16 value (ties to even), kept as an f32.
#[inline]
pub fn round_bf16(x: f32) -> f32 {
    f32::from_bits((bf16_bits(x) as u32) << 16)
}

/// Floats per parallel task of a cast (large enough that a fork costs little beside it).
const CAST_CHUNK: usize = 1 << 16;
/// Products smaller than this (`m·n·k`) stay on the calling thread.
const MIN_PARALLEL_VOLUME: usize = 32 * 32 * 32;

/// Per-thread scratch: the cast operands (views with gaps gathered dense), the `gemmkit`
/// packing workspace and the AMX packs.
#[derive(Default)]
struct Scratch {
    a: Vec<bf16>,
    b: Vec<bf16>,
    fa: Vec<f32>,
    fb: Vec<f32>,
    ws: gemmkit::Workspace,
    amx: super::amx::Packs,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Run `f` with this thread's scratch (a fresh one if it is in use further up this thread's
/// stack, which rayon's work stealing inside a parallel product can cause).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// `C = bf16(A)·bf16(B)`, or `C +=` when `accumulate`, f32 accumulation, on up to `threads`
/// threads; `B` cast from `b` here, or `prepared` beforehand (see [`super::prepared`]; `b`
/// then gives its shape and strides). Shapes are checked by the caller
/// ([`super::matmul_bf16`]); `k > 0`.
pub(super) fn product(
    kern: Bf16Kernel,
    c: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    prepared: Option<Prepared<'_>>,
    accumulate: bool,
    threads: usize,
) {
    with_scratch(|s| match kern {
        Bf16Kernel::Amx if amx_available() => {
            let panels = match prepared {
                Some(Prepared::Panels(p)) => Some(p),
                _ => None,
            };
            super::amx::product(&mut s.amx, c, a, b, panels, accumulate, threads)
        }
        Bf16Kernel::Amx => panic!("AMX bf16 kernel requested on a CPU or OS without AMX"),
        Bf16Kernel::Native if native_available() => {
            native(s, c, a, b, prepared, accumulate, threads)
        }
        Bf16Kernel::Native => panic!("bf16 native kernel requested on a CPU without AVX-512 BF16"),
        Bf16Kernel::Emulated => emulated(s, c, a, b, prepared, accumulate, threads),
    })
}

/// `dst = f(m)` elementwise into a reused buffer, and the strides `dst` holds `m` at: `m`'s own
/// where it is contiguous, else row-major (column-major for a transposed view whose columns
/// are contiguous) — the gather and the cast in one pass. Split over threads when large.
fn cast_view<T: Copy + Default + Send>(
    dst: &mut Vec<T>,
    m: Mat<'_>,
    threads: usize,
    f: impl Fn(f32) -> T + Sync,
) -> (usize, usize) {
    if let Some(d) = m.dense() {
        cast_into(dst, d, threads, f);
        return (m.row_stride(), m.col_stride());
    }
    // lanes: the view's rows, or its columns where those are the contiguous runs
    let lanes_are_cols = m.row_stride() == 1;
    let lanes = if lanes_are_cols { m.t() } else { m };
    let (n, len) = (lanes.rows(), lanes.cols());
    dst.resize(n * len, T::default());
    let cast_lanes = |(first, out): (usize, &mut [T])| {
        for (l, o) in out.chunks_mut(len.max(1)).enumerate() {
            let i = first + l;
            match lanes.row(i) {
                Some(src) => o.iter_mut().zip(src).for_each(|(o, &x)| *o = f(x)),
                None => o
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, o)| *o = f(lanes.get(i, j))),
            }
        }
    };
    let per_task = (CAST_CHUNK / len.max(1)).max(1);
    if threads > 1 && n * len > CAST_CHUNK {
        dst.par_chunks_mut(per_task * len)
            .enumerate()
            .for_each(|(t, out)| cast_lanes((t * per_task, out)));
    } else {
        cast_lanes((0, dst.as_mut_slice()));
    }
    // `len` floats per lane: the view's row length, or its column height
    if lanes_are_cols {
        (1, len)
    } else {
        (len, 1)
    }
}

/// `dst[i] = f(src[i])` into a reused buffer, split over threads when large.
fn cast_into<T: Copy + Default + Send>(
    dst: &mut Vec<T>,
    src: &[f32],
    threads: usize,
    f: impl Fn(f32) -> T + Sync,
) {
    dst.resize(src.len(), T::default());
    let cast = |(d, s): (&mut [T], &[f32])| d.iter_mut().zip(s).for_each(|(d, &s)| *d = f(s));
    if threads > 1 && src.len() > CAST_CHUNK {
        dst.par_chunks_mut(CAST_CHUNK)
            .zip(src.par_chunks(CAST_CHUNK))
            .for_each(cast);
    } else {
        cast((dst.as_mut_slice(), src));
    }
}

/// The emulated kernel: bf16-rounded copies of the operands through the f32 kernel in use.
fn emulated(
    s: &mut Scratch,
    c: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    prepared: Option<Prepared<'_>>,
    accumulate: bool,
    threads: usize,
) {
    let (rsa, csa) = cast_view(&mut s.fa, a, threads, round_bf16);
    let a = Mat::new(&s.fa, a.rows(), a.cols(), rsa, csa);
    let b = match prepared {
        Some(Prepared::Rounded(copy)) => {
            Mat::new(copy, b.rows(), b.cols(), b.row_stride(), b.col_stride())
        }
        _ => {
            let (rsb, csb) = cast_view(&mut s.fb, b, threads, round_bf16);
            Mat::new(&s.fb, b.rows(), b.cols(), rsb, csb)
        }
    };
    let par = if threads > 1 {
        super::Par::Pool
    } else {
        super::Par::Single
    };
    matmul_with(kernel(), c, a, b, accumulate, par);
}

/// The native kernel: bf16 copies of the operands through `gemmkit`'s AVX-512 BF16 driver with
/// an f32 output (its `Bf16DotGemmF32` family).
fn native(
    s: &mut Scratch,
    mut c: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    prepared: Option<Prepared<'_>>,
    accumulate: bool,
    threads: usize,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let to_bf16 = |x| bf16::from_bits(bf16_bits(x));
    let (rsa, csa) = cast_view(&mut s.a, a, threads, to_bf16);
    let (bb, rsb, csb): (&[bf16], _, _) = match prepared {
        Some(Prepared::Bf16(copy)) => (copy, b.row_stride(), b.col_stride()),
        _ => {
            let (rsb, csb) = cast_view(&mut s.b, b, threads, to_bf16);
            (&s.b, rsb, csb)
        }
    };
    let par = if threads > 1 && m * n * k >= MIN_PARALLEL_VOLUME {
        gemmkit::Parallelism::Rayon(threads)
    } else {
        gemmkit::Parallelism::Serial
    };
    let beta = if accumulate { 1.0 } else { 0.0 };
    let rsc = c.row_stride() as isize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512F + BF16 (checked by `product`); `s.a`/`s.b` hold the whole
    // views at their strides; `c` is an exclusive `[m, n]` view with row stride `rsc` and does
    // not alias the scratch copies; `m, n, k > 0` (the dispatch returns early otherwise) and
    // `alpha = 1`. The driver wants a column-major C, so it computes `Cᵀ = Bᵀ·Aᵀ`.
    unsafe {
        gemmkit::driver::run::<gemmkit::kernel::Bf16DotGemmF32, gemmkit::simd::Avx512Bf16, 2, 12>(
            gemmkit::simd::Avx512Bf16,
            n,
            k,
            m,
            1.0,
            bb.as_ptr(),
            csb as isize,
            rsb as isize,
            s.a.as_ptr(),
            csa as isize,
            rsa as isize,
            beta,
            c.as_mut_ptr(),
            1,
            rsc,
            par,
            &mut s.ws,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("native bf16 is x86-64 only ({m}x{k}x{n}, {beta}, {rsc}, {par:?})");
}
