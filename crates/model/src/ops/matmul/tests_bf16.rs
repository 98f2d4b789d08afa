//! The bf16 kernels (emulated everywhere, native where the CPU has AVX-512 BF16, each selected
//! explicitly): against an f64 product of the bf16-rounded operands (tight: only the f32
//! summation order differs) and against the f32 product within bf16 tolerance, on random
//! shapes in every layout, into a padded `C`, overwriting and accumulating.

use super::tests::{for_each_layout, naive, values};
use super::*;
use crate::rng::Rng;

/// The bf16 kernels this CPU can run.
pub(super) fn bf16_kernels() -> Vec<Bf16Kernel> {
    let mut k = vec![Bf16Kernel::Emulated];
    if bf16_native_available() {
        k.push(Bf16Kernel::Native);
    }
    if bf16_amx_available() {
        k.push(Bf16Kernel::Amx);
    }
    k
}

/// A copy of the view `m` (row-major) with every element rounded to bf16.
fn rounded(m: Mat) -> Vec<f32> {
    (0..m.rows())
        .flat_map(|i| (0..m.cols()).map(move |j| round_bf16(m.get(i, j))))
        .collect()
}

fn check_bf16_kernels(a: Mat, b: Mat) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    let (ra, rb) = (rounded(a), rounded(b));
    let exact = naive(Mat::row_major(&ra, m, k), Mat::row_major(&rb, k, n));
    let fp32 = naive(a, b);
    // |A|·|B|: the scale a bf16 rounding error of the operands is relative to
    let abs_a: Vec<f32> = (0..m * k).map(|i| a.get(i / k, i % k).abs()).collect();
    let abs_b: Vec<f32> = (0..k * n).map(|i| b.get(i / n, i % n).abs()).collect();
    let scale = naive(Mat::row_major(&abs_a, m, k), Mat::row_major(&abs_b, k, n));
    let tol = 1e-4 * (k as f32).sqrt().max(1.0);
    let c_rs = n + 3;
    for kern in bf16_kernels() {
        for par in [Par::Pool, Par::Single] {
            let mut c = vec![7.0; m * c_rs];
            for (accumulate, times) in [(false, 1.0), (true, 2.0)] {
                matmul_bf16(kern, MatMut::new(&mut c, m, n, c_rs), a, b, accumulate, par);
                for i in 0..m {
                    for j in 0..n {
                        let (got, ij) = (c[i * c_rs + j], i * n + j);
                        let what =
                            format!("{kern:?} {par:?} [{m}x{n}x{k}] acc={accumulate} ({i},{j})");
                        let want = times * exact[ij];
                        assert!((got - want).abs() < tol, "{what}: {got} vs bf16 {want}");
                        // bf16 keeps 8 significant bits: 2·2⁻⁹ relative per product, at most
                        let f = times * fp32[ij];
                        let bound = 1e-2 * times * scale[ij] + tol;
                        assert!(
                            (got - f).abs() <= bound,
                            "{what}: {got} vs fp32 {f} (±{bound})"
                        );
                    }
                    assert!(c[i * c_rs + n..(i + 1) * c_rs].iter().all(|&x| x == 7.0));
                }
            }
        }
    }
}

#[test]
fn bf16_kernels_match_the_rounded_product_on_random_shapes() {
    let mut rng = Rng::new(11);
    let mut dim = |max: usize| 1 + (rng.next_u64() % max as u64) as usize;
    let mut shapes = vec![(1, 1, 1), (37, 29, 53), (3, 70, 2), (65, 1, 9), (33, 47, 1)];
    for _ in 0..8 {
        shapes.push((dim(80), dim(80), dim(150)));
    }
    for (m, n, k) in shapes {
        for_each_layout(m, n, k, check_bf16_kernels);
    }
}

#[test]
fn bf16_kernels_match_when_split_over_threads() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .expect("a 4-thread pool");
    pool.install(|| for_each_layout(131, 67, 71, check_bf16_kernels));
    // operands past one cast task (64 Ki floats): views with gaps gathered on several threads
    pool.install(|| for_each_layout(300, 40, 300, check_bf16_kernels));
}

#[test]
fn bf16_rounding_is_nearest_even_and_keeps_specials() {
    // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even one (1)
    assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
    // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶: to the even one
    assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
    assert_eq!(round_bf16(1.0 + 1.5 / 256.0), 1.0 + 1.0 / 128.0);
    assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
    assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
    assert_eq!(round_bf16(-0.0).to_bits(), (-0.0f32).to_bits());
    assert!(round_bf16(f32::NAN).is_nan());
    for x in values(1000, 7919, 997).iter().map(|v| v * 1e3) {
        assert_eq!(bf16_bits(x), gemmkit::bf16::from_f32(x).to_bits(), "{x}");
    }
}

#[test]
fn bf16_empty_inner_dimension_zeroes_or_keeps_c() {
    let empty: [f32; 0] = [];
    for kern in bf16_kernels() {
        let mut c = vec![3.0; 6];
        let (a, b) = (Mat::row_major(&empty, 2, 0), Mat::row_major(&empty, 0, 3));
        matmul_bf16(kern, MatMut::row_major(&mut c, 2, 3), a, b, true, Par::Pool);
        assert_eq!(c, [3.0; 6], "{kern:?}");
        matmul_bf16(
            kern,
            MatMut::row_major(&mut c, 2, 3),
            a,
            b,
            false,
            Par::Pool,
        );
        assert_eq!(c, [0.0; 6], "{kern:?}");
    }
}

#[test]
fn bf16_kernels_read_views_with_no_unit_stride() {
    // every other column of a wider buffer: neither stride is 1 (the packers' generic path)
    for (m, n, k) in [(37, 29, 53), (16, 32, 64), (1, 17, 3)] {
        let big_a = values(m * 2 * k, 3, 17);
        let big_b = values(k * 2 * n, 9, 19);
        let a = Mat::new(&big_a, m, k, 2 * k, 2);
        let b = Mat::new(&big_b, k, n, 2 * n, 2);
        check_bf16_kernels(a, b);
        check_bf16_kernels(Mat::new(&big_a, k, m, 2 * m, 2).t(), b);
    }
}

#[test]
fn amx_result_does_not_depend_on_where_c_lies() {
    if !bf16_amx_available() {
        return;
    }
    // C blocks are computed in C itself when its tile rows are cache lines (64-byte aligned
    // start, row stride a multiple of 16 floats), else through an aligned buffer: same bits
    let (m, n, k, rs) = (70, 70, 100, 96);
    let (a, b, init) = (
        values(m * k, 5, 97),
        values(k * n, 6, 89),
        values(m * n, 7, 83),
    );
    let (a, b) = (Mat::row_major(&a, m, k), Mat::row_major(&b, k, n));
    let mut buf = vec![0.0f32; m * rs + 32];
    let aligned = (64 - buf.as_ptr() as usize % 64) % 64 / 4;
    let mut results = Vec::new();
    for (offset, stride) in [(aligned, rs), (aligned + 1, rs), (aligned, rs - 1)] {
        for accumulate in [false, true] {
            let c = &mut buf[offset..offset + m * stride];
            for i in 0..m * n {
                c[i / n * stride + i % n] = init[i];
            }
            let kern = Bf16Kernel::Amx;
            matmul_bf16(
                kern,
                MatMut::new(c, m, n, stride),
                a,
                b,
                accumulate,
                Par::Pool,
            );
            let got: Vec<u32> = (0..m * n)
                .map(|i| c[i / n * stride + i % n].to_bits())
                .collect();
            results.push(((offset, stride, accumulate), got));
        }
    }
    for (case, got) in &results[2..] {
        let want = &results[usize::from(case.2)].1;
        assert!(got == want, "C at {case:?} differs from the aligned C");
    }
}
