//! Every kernel against an f64 triple loop: odd sizes, transposed and strided views, a padded
//! `C`, accumulate, both `Par` modes, and a 4-thread pool so the row-split paths run.

use super::*;

fn kernels() -> Vec<Kernel> {
    vec![
        #[cfg(feature = "openblas")]
        Kernel::OpenBlas,
        Kernel::Gemm,
        Kernel::MatrixMultiply,
        Kernel::GemmSplit,
        Kernel::Reference,
    ]
}

/// `A·B` summed in f64, row-major `[m,n]`.
pub(super) fn naive(a: Mat, b: Mat) -> Vec<f32> {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|p| a.get(i, p) as f64 * b.get(p, j) as f64)
                .sum();
            c[i * n + j] = s as f32;
        }
    }
    c
}

/// Deterministic values in [-1, 1].
pub(super) fn values(len: usize, mul: usize, modulus: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * mul % modulus) as f32 / (modulus - 1) as f32) * 2.0 - 1.0)
        .collect()
}

/// Runs `C = A·B` then `C += A·B` with every kernel and `Par` mode into a `C` with row stride
/// `n + 3` and checks both results and that the padding columns are untouched.
fn check_all_kernels(a: Mat, b: Mat) {
    let (m, n) = (a.rows(), b.cols());
    let want = naive(a, b);
    let tol = 1e-4 * (a.cols() as f32).sqrt().max(1.0);
    let c_rs = n + 3;
    for kern in kernels() {
        for par in [Par::Pool, Par::Single] {
            let mut c = vec![7.0; m * c_rs];
            for (accumulate, scale) in [(false, 1.0), (true, 2.0)] {
                matmul_with(kern, MatMut::new(&mut c, m, n, c_rs), a, b, accumulate, par);
                for i in 0..m {
                    for j in 0..n {
                        let (got, w) = (c[i * c_rs + j], scale * want[i * n + j]);
                        assert!(
                            (got - w).abs() < tol,
                            "{kern:?} {par:?} [{m}x{n}x{}] acc={accumulate} ({i},{j}): {got} vs {w}",
                            a.cols()
                        );
                    }
                    assert!(c[i * c_rs + n..(i + 1) * c_rs].iter().all(|&x| x == 7.0));
                }
            }
        }
    }
}

/// [`check_all_kernels`] on every layout of [`for_each_layout`].
fn check_layouts(m: usize, n: usize, k: usize) {
    for_each_layout(m, n, k, check_all_kernels);
}

/// A `[m,k]` · B `[k,n]` in four layouts: both row-major, B as the transpose of a `[n,k]`
/// buffer, A as the transpose of a `[k,m]` buffer, and both as blocks of larger buffers.
pub(super) fn for_each_layout(m: usize, n: usize, k: usize, check_all_kernels: impl Fn(Mat, Mat)) {
    let a = values(m * k, 7, 13);
    let b = values(k * n, 5, 11);
    let (av, bv) = (Mat::row_major(&a, m, k), Mat::row_major(&b, k, n));
    check_all_kernels(av, bv);

    let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
    check_all_kernels(av, Mat::row_major(&bt, n, k).t());

    let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
    check_all_kernels(Mat::row_major(&at, k, m).t(), bv);

    // Blocks of larger buffers (row strides beyond the width, as attention's head columns):
    // A `[m,k]` at column 1 of a `[m, 2k+1]` buffer, Bᵀ a `[n,k]` block of a `[n, k+5]` one.
    let big_a = values(m * (2 * k + 1), 3, 17);
    let big_bt = values(n * (k + 5), 9, 19);
    let a_block = Mat::new(&big_a[1..], m, k, 2 * k + 1, 1);
    let b_block = Mat::new(&big_bt[2..], n, k, k + 5, 1).t();
    check_all_kernels(a_block, b_block);
}

#[test]
fn kernels_match_naive_on_odd_sizes() {
    for (m, n, k) in [(1, 1, 1), (37, 29, 53), (3, 70, 2), (65, 1, 9)] {
        check_layouts(m, n, k);
    }
}

#[test]
fn kernels_match_naive_when_rows_are_split_over_threads() {
    // 4 threads, m ≥ 16·4 and m·n·k ≥ 64³: every kernel takes its parallel path.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .expect("a 4-thread pool");
    pool.install(|| check_layouts(131, 67, 71));
}

#[test]
fn empty_inner_dimension_zeroes_or_keeps_c() {
    let empty: [f32; 0] = [];
    for kern in kernels() {
        let mut c = vec![3.0; 6];
        let (a, b) = (Mat::row_major(&empty, 2, 0), Mat::row_major(&empty, 0, 3));
        matmul_with(kern, MatMut::row_major(&mut c, 2, 3), a, b, true, Par::Pool);
        assert_eq!(c, [3.0; 6], "{kern:?}");
        matmul_with(
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
fn on_this_thread_keeps_results() {
    let (m, n, k) = (96, 80, 72);
    let (a, b) = (values(m * k, 7, 13), values(k * n, 5, 11));
    let (av, bv) = (Mat::row_major(&a, m, k), Mat::row_major(&b, k, n));
    let want = naive(av, bv);
    let mut c = vec![0.0; m * n];
    on_this_thread(|| matmul(MatMut::row_major(&mut c, m, n), av, bv, false, Par::Pool));
    assert!(c.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-3));
}

#[test]
#[should_panic(expected = "exceeds len")]
fn view_past_the_end_of_its_slice_panics() {
    let data = [0.0; 11];
    Mat::row_major(&data, 3, 4);
}

#[test]
#[should_panic(expected = "rows overlap")]
fn overlapping_output_rows_panic() {
    let mut data = [0.0; 12];
    MatMut::new(&mut data, 3, 4, 2);
}

#[test]
#[should_panic(expected = "do not fit")]
fn mismatched_shapes_panic() {
    let (a, b, mut c) = ([0.0; 6], [0.0; 6], [0.0; 4]);
    let (av, bv) = (Mat::row_major(&a, 2, 3), Mat::row_major(&b, 2, 3));
    matmul(MatMut::row_major(&mut c, 2, 2), av, bv, false, Par::Single);
}

#[test]
fn split_views_cover_the_rows_once() {
    let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let (top, rest) = Mat::row_major(&data, 4, 3).split_at_row(1);
    assert_eq!((top.rows(), rest.rows()), (1, 3));
    assert_eq!(
        (top.get(0, 2), rest.get(0, 0), rest.get(2, 2)),
        (2.0, 3.0, 11.0)
    );
    let mut out = vec![0.0; 12];
    let (mut c_top, mut c_rest) = MatMut::row_major(&mut out, 4, 3).split_at_row(3);
    c_top.row_mut(2).fill(1.0);
    c_rest.row_mut(0).fill(2.0);
    assert_eq!(&out[6..], &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
}
