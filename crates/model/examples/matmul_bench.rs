//! Measure the candidate matmul kernels on our training shapes.
//! `cargo run --release -p lmforge-model --example matmul_bench [threads]`
use lmforge_model::ops::matmul::{matmul_with, Kernel, Mat, MatMut, Par};
use std::time::Instant;

fn bench(kern: Kernel, m: usize, n: usize, k: usize, a_t: bool, b_t: bool) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.01).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.01).collect();
    let mut c = vec![0.0f32; m * n];
    let av = if a_t {
        Mat::row_major(&a, k, m).t()
    } else {
        Mat::row_major(&a, m, k)
    };
    let bv = if b_t {
        Mat::row_major(&b, n, k).t()
    } else {
        Mat::row_major(&b, k, n)
    };
    let flops = 2.0 * (m * n * k) as f64;
    let reps = ((1e10 / flops) as usize).clamp(2, 200);
    matmul_with(
        kern,
        MatMut::row_major(&mut c, m, n),
        av,
        bv,
        false,
        Par::Pool,
    );
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..reps {
            matmul_with(
                kern,
                MatMut::row_major(&mut c, m, n),
                av,
                bv,
                false,
                Par::Pool,
            );
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    flops / best / 1e9
}

fn main() {
    if let Some(t) = std::env::args().nth(1).and_then(|s| s.parse().ok()) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .ok();
    }
    println!("threads = {}", rayon::current_num_threads());
    // (label, m, n, k, A transposed, B transposed)
    let shapes = [
        ("2048^3", 2048, 2048, 2048, false, false),
        ("M qkv fwd x·Wᵀ 2048x1152x384", 2048, 1152, 384, false, true),
        ("M fc fwd 2048x1536x384", 2048, 1536, 384, false, true),
        ("M proj fwd 2048x384x1536", 2048, 384, 1536, false, true),
        ("M dinp dY·W 2048x384x1152", 2048, 384, 1152, false, false),
        ("M dW dYᵀ·X 1152x384x2048", 1152, 384, 2048, true, false),
        ("M dW fc dYᵀ·X 1536x384x2048", 1536, 384, 2048, true, false),
        ("M lm_head 2048x65x384", 2048, 65, 384, false, true),
        ("S qkv fwd 768x384x128", 768, 384, 128, false, true),
        ("S fc fwd 768x512x128", 768, 512, 128, false, true),
        ("S dW 384x128x768", 384, 128, 768, true, false),
        ("S dinp 768x128x512", 768, 128, 512, false, false),
    ];
    for (label, m, n, k, at, bt) in shapes {
        let g = bench(Kernel::Gemm, m, n, k, at, bt);
        let mm = bench(Kernel::MatrixMultiply, m, n, k, at, bt);
        let gs = bench(Kernel::GemmSplit, m, n, k, at, bt);
        #[cfg(feature = "openblas")]
        let ob = format!(
            "  openblas {:7.1}",
            bench(Kernel::OpenBlas, m, n, k, at, bt)
        );
        #[cfg(not(feature = "openblas"))]
        let ob = String::new();
        println!(
            "{label:34} gemm {g:7.1}  matrixmultiply {mm:7.1}  gemm-split {gs:7.1}{ob} GFLOP/s"
        );
    }
}
