//! Scalar maths written so that LLVM vectorises loops over them (no libm calls, no
//! branches), plus the [`simd_fn!`](crate::simd_fn) macro that compiles a loop twice —
//! baseline and AVX2+FMA — and picks at run time. Both versions perform the same operations in
//! the same order (Rust never contracts `a*b+c` into an FMA or reassociates a sum by itself,
//! and an explicit `mul_add` is a fused multiply-add in both: an instruction in one, libm's
//! exact `fmaf` in the other), so they give the same bits; [`set_simd_cap`] caps the tier, and
//! `tests/simd_tiers.rs` runs each and compares. Most of these loops are bound by memory, not
//! vector width (an AVX-512 copy of them all measured no faster), so only functions declared
//! `simd_fn! { avx512 fn … }` get a third, AVX-512 copy: the classifier's softmax row, which
//! runs over a vocabulary-long row already in L2.

use std::sync::atomic::{AtomicU8, Ordering};

/// The widest code [`simd_fn!`](crate::simd_fn) functions may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdCap {
    /// the baseline x86-64 (or other target) build
    Baseline = 0,
    /// AVX2 + FMA, 8 floats per vector
    Avx2 = 1,
    /// AVX-512F (with AVX2 + FMA), 16 floats per vector — for `simd_fn! { avx512 fn … }` only
    Avx512 = 2,
}

static SIMD_CAP: AtomicU8 = AtomicU8::new(SimdCap::Avx512 as u8);

/// Caps the tier [`simd_fn!`](crate::simd_fn) functions pick, process-wide (default: the
/// widest the CPU has). For tests and benchmarks.
pub fn set_simd_cap(cap: SimdCap) {
    SIMD_CAP.store(cap as u8, Ordering::Relaxed);
}

/// Whether the tier `cap` is allowed and the CPU has it.
#[doc(hidden)]
#[inline]
pub fn simd_allows(cap: SimdCap) -> bool {
    if SIMD_CAP.load(Ordering::Relaxed) < cap as u8 {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        match cap {
            SimdCap::Baseline => true,
            SimdCap::Avx2 => avx2,
            SimdCap::Avx512 => avx2 && std::is_x86_feature_detected!("avx512f"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        cap == SimdCap::Baseline
    }
}

/// Define `fn name(args) [-> ret] { body }` that runs an AVX2+FMA-compiled copy of `body` when
/// the CPU has it (and [`set_simd_cap`] allows), else the baseline copy. Written
/// `simd_fn! { avx512 fn … }`, it also gets an AVX-512F copy, tried first.
#[macro_export]
#[doc(hidden)]
macro_rules! simd_fn {
    ($(#[$m:meta])* avx512 $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $crate::simd_fn!(@tiers [avx512] $(#[$m])* $vis fn $name($($arg: $ty),*) $(-> $ret)? $body);
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $crate::simd_fn!(@tiers [] $(#[$m])* $vis fn $name($($arg: $ty),*) $(-> $ret)? $body);
    };
    (@tiers [$($wide:ident)?] $(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn inner($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::ops::math::{simd_allows, SimdCap};
                $crate::simd_fn!(@avx512 [$($wide)?] ($($arg: $ty),*) $(-> $ret)?);
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn fast($($arg: $ty),*) $(-> $ret)? { inner($($arg),*) }
                if simd_allows(SimdCap::Avx2) {
                    // SAFETY: the CPU supports the features `fast` was compiled for.
                    return unsafe { fast($($arg),*) };
                }
            }
            inner($($arg),*)
        }
    };
    (@avx512 [] ($($arg:ident : $ty:ty),*) $(-> $ret:ty)?) => {};
    (@avx512 [avx512] ($($arg:ident : $ty:ty),*) $(-> $ret:ty)?) => {
        #[target_feature(enable = "avx512f,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn wide($($arg: $ty),*) $(-> $ret)? { inner($($arg),*) }
        if simd_allows(SimdCap::Avx512) {
            // SAFETY: the CPU supports the features `wide` was compiled for.
            return unsafe { wide($($arg),*) };
        }
    };
}

const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer

/// `e^x`, Cephes-style polynomial, ≈1 ulp on [-87, 88]; clamps outside (so `exp(-inf)` ≈
/// 1e-38, callers that need exact zeros mask explicitly).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    // t = MAGIC + round(x·log2 e): its low mantissa bits hold the integer, so both the float
    // n and its integer value come without a (non-vectorising) float→int conversion.
    let t = x.mul_add(std::f32::consts::LOG2_E, MAGIC);
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = n.mul_add(-0.693_359_4, x);
    let r = n.mul_add(2.121_944_4e-4, r);
    let r2 = r * r;
    let p = 1.987_569_1e-4f32.mul_add(r, 1.398_2e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 1.666_666_5e-1);
    let p = p.mul_add(r, 0.5);
    let p = p.mul_add(r2, r) + 1.0;
    let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    p * scale
}

/// `erf(x)` (Abramowitz–Stegun 7.1.26, |error| ≤ 1.5e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    erf_with_exp(x, exp(-x * x))
}

/// [`erf`] given `e = e^{-x²}` already computed by the caller.
#[inline(always)]
pub fn erf_with_exp(x: f32, e: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / 0.327_591_1f32.mul_add(a, 1.0);
    let poly = 1.061_405_4f32.mul_add(t, -1.453_152);
    let poly = poly.mul_add(t, 1.421_413_8);
    let poly = poly.mul_add(t, -0.284_496_74);
    let poly = poly.mul_add(t, 0.254_829_6);
    let y = (-(poly * t)).mul_add(e, 1.0);
    y.copysign(x)
}

/// `tanh(x)` via `1 - 2/(e^{2x}+1)` (|error| ≲ 1e-7).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// Dot product with 8 fixed partial sums (vectorises; order fixed, so deterministic).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Maximum with 8 lanes (vectorises; `-inf` for an empty slice).
#[inline(always)]
pub fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let c = a.chunks_exact(8);
    let r = c.remainder();
    for x in c {
        for l in 0..8 {
            acc[l] = if x[l] > acc[l] { x[l] } else { acc[l] };
        }
    }
    let mut m = acc
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for &x in r {
        m = if x > m { x } else { m };
    }
    m
}

/// `a[i] ← e^(a[i]·scale − shift)`, returning the sum (8 fixed partial sums, as [`sum`]).
/// Two loops, not one: the element-wise exp then vectorises at the full vector width, and
/// the second pass reads a row that is still in cache.
#[inline(always)]
pub fn exp_sum(a: &mut [f32], scale: f32, shift: f32) -> f32 {
    for x in a.iter_mut() {
        *x = exp(*x * scale - shift);
    }
    sum(a)
}

/// Independent partial results of the long-row reductions ([`max_long`], [`exp_sum_long`]):
/// four 16-float vectors, so a vocabulary-long row is not bound by the latency of one
/// `max`/`add` chain (8 lanes left it at ~2.5 cycles a float, in L2).
pub const LONG_LANES: usize = 64;

/// Maximum over [`LONG_LANES`] lanes (`-inf` for an empty slice); the same value as [`max`].
#[inline(always)]
pub fn max_long(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LONG_LANES];
    let c = a.chunks_exact(LONG_LANES);
    let r = c.remainder();
    for x in c {
        for l in 0..LONG_LANES {
            acc[l] = if x[l] > acc[l] { x[l] } else { acc[l] };
        }
    }
    let m = fold_lanes(acc, |a, b| if b > a { b } else { a });
    r.iter().fold(m, |m, &x| if x > m { x } else { m })
}

/// Folds the [`LONG_LANES`] partial results pairwise (lane `l` with `l + w/2`, halving `w`),
/// a fixed order whose first steps are whole-vector operations: a short row (a character
/// vocabulary of 65) then costs a few instructions here, not a 64-long dependency chain.
#[inline(always)]
fn fold_lanes(mut acc: [f32; LONG_LANES], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut w = LONG_LANES;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] = f(acc[l], acc[l + w]);
        }
    }
    acc[0]
}

/// `a[i] ← e^(a[i] − shift)`, returning the sum: one pass, [`LONG_LANES`] fixed partial sums
/// folded pairwise, then the remainder added in order.
#[inline(always)]
pub fn exp_sum_long(a: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0.0f32; LONG_LANES];
    let mut c = a.chunks_exact_mut(LONG_LANES);
    for x in &mut c {
        for l in 0..LONG_LANES {
            x[l] = exp(x[l] - shift);
            acc[l] += x[l];
        }
    }
    let mut s = fold_lanes(acc, |a, b| a + b);
    for x in c.into_remainder() {
        *x = exp(*x - shift);
        s += *x;
    }
    s
}

/// `a[i] ← a[i]·s`.
#[inline(always)]
pub fn scale(a: &mut [f32], s: f32) {
    for x in a {
        *x *= s;
    }
}

/// Sum with 8 fixed partial sums.
#[inline(always)]
pub fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let c = a.chunks_exact(8);
    let r = c.remainder();
    for x in c {
        for l in 0..8 {
            acc[l] += x[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for x in r {
        s += x;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_erf_tanh_match_std() {
        let mut worst = [0.0f64; 3];
        for i in -40000..40000 {
            let x = i as f32 * 0.002;
            let e = (x as f64).exp();
            worst[0] = worst[0].max(((exp(x) as f64 - e) / e).abs());
            worst[2] = worst[2].max((tanh(x) as f64 - (x as f64).tanh()).abs());
        }
        for i in -3000..=3000 {
            let x = i as f64 * 0.001;
            worst[1] = worst[1].max((erf(x as f32) as f64 - erf64(x)).abs());
        }
        assert!(worst[0] < 4e-7, "exp rel err {}", worst[0]);
        assert!(worst[1] < 6e-7, "erf abs err {}", worst[1]);
        assert!(worst[2] < 4e-7, "tanh abs err {}", worst[2]);
        assert!(exp(-1000.0) < 1e-37);
        // erfc(3) ≈ 2.2e-5, so beyond 3 erf is within 3e-5 of ±1.
        for x in [3.5f32, 4.0, 6.0, 50.0] {
            assert!((erf(x) - 1.0).abs() < 3e-5 && (erf(-x) + 1.0).abs() < 3e-5);
        }
    }

    /// erf by its Taylor series (accurate to ~1e-12 in f64 for |x| ≤ 3).
    fn erf64(x: f64) -> f64 {
        let mut term = x;
        let mut s = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            s += term / (2 * n + 1) as f64;
        }
        s * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn dot_and_sum() {
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        assert_eq!(sum(&a), 666.0);
        assert_eq!(dot(&a, &a), (0..37).map(|i| (i * i) as f32).sum::<f32>());
        assert_eq!(max(&a), 36.0);
        assert_eq!(max(&a[..3]), 2.0);
        let mut b = vec![0.0f32; 11];
        assert_eq!(exp_sum(&mut b, 1.0, 0.0), 11.0);
    }

    #[test]
    fn long_row_reductions() {
        // lengths below, at and past the lane count, with remainders
        for n in [0, 1, 63, 64, 65, 200, 1000] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.1)
                .collect();
            assert_eq!(max_long(&a), max(&a), "max, {n} floats");
            let mut e = a.clone();
            let s = exp_sum_long(&mut e, 1.5);
            let mut want = 0.0f64;
            for (x, y) in a.iter().zip(&e) {
                assert_eq!(*y, exp(x - 1.5));
                want += *y as f64;
            }
            assert!(
                ((s as f64) - want).abs() <= 1e-5 * want.max(1.0),
                "sum, {n} floats"
            );
        }
    }
}
