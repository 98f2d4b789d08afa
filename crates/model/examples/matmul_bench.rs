//! Measure the candidate matmul kernels on our training shapes.
//! `cargo run --release -p lmforge-model --example matmul_bench [threads] [single|pool] [PREFIX]`
//! (`single`: every product on one thread, as inside a batch shard's pass; `PREFIX`: only the
//! shapes whose label starts with it — `M`, `S` or `V`.)
//! Besides the f32 kernels it measures the bf16 ones (emulated; native where the CPU has
//! AVX-512 BF16) — operand casts included, as the model pays them.
use lmforge_model::ops::matmul::{
    bf16_amx_available, bf16_native_available, matmul_bf16, matmul_with, Bf16Kernel, Kernel, Mat,
    MatMut, Par,
};
use std::time::Instant;

/// One candidate: an f32 kernel or a bf16 one.
#[derive(Clone, Copy)]
enum Cand {
    F32(Kernel),
    Bf16(Bf16Kernel),
}

fn run(cand: Cand, c: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, par: Par) {
    match cand {
        Cand::F32(k) => matmul_with(k, c, a, b, false, par),
        Cand::Bf16(k) => matmul_bf16(k, c, a, b, false, par),
    }
}

#[allow(clippy::too_many_arguments)]
fn bench(kern: Cand, m: usize, n: usize, k: usize, a_t: bool, b_t: bool, par: Par) -> f64 {
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
    run(kern, MatMut::row_major(&mut c, m, n), av, bv, par);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..reps {
            run(kern, MatMut::row_major(&mut c, m, n), av, bv, par);
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
        // the classifier at o200k_base (4×256 wide, one chunk of 335 rows)
        (
            "V head fwd x·Wᵀ 335x200019x256",
            335,
            200_019,
            256,
            false,
            true,
        ),
        (
            "V head dx dl·W 335x256x200019",
            335,
            256,
            200_019,
            false,
            false,
        ),
        (
            "V head dW dlᵀ·x 200019x256x335",
            200_019,
            256,
            335,
            true,
            false,
        ),
        (
            "V head dWᵀ xᵀ·dl 256x200019x335",
            256,
            200_019,
            335,
            true,
            false,
        ),
        (
            "W head fwd x·Wᵀ 2048x200019x256",
            2048,
            200_019,
            256,
            false,
            true,
        ),
        (
            "W head dx dl·W 2048x256x200019",
            2048,
            256,
            200_019,
            false,
            false,
        ),
        (
            "W head dW dlᵀ·x 200019x256x2048",
            200_019,
            256,
            2048,
            true,
            false,
        ),
    ];
    let only = std::env::args().nth(3).unwrap_or_default();
    let par = if std::env::args().nth(2).as_deref() == Some("single") {
        Par::Single
    } else {
        Par::Pool
    };
    println!(
        "products: {par:?}; native bf16: {}",
        bf16_native_available()
    );
    for (label, m, n, k, at, bt) in shapes {
        if !label.starts_with(only.as_str()) {
            continue;
        }
        let f = |c| bench(c, m, n, k, at, bt, par);
        let g = f(Cand::F32(Kernel::Gemm));
        let mm = f(Cand::F32(Kernel::MatrixMultiply));
        let gs = f(Cand::F32(Kernel::GemmSplit));
        #[cfg(feature = "openblas")]
        let ob = format!("  openblas {:7.1}", f(Cand::F32(Kernel::OpenBlas)));
        #[cfg(not(feature = "openblas"))]
        let ob = String::new();
        let emu = f(Cand::Bf16(Bf16Kernel::Emulated));
        let nat = if bf16_native_available() {
            format!("{:7.1}", f(Cand::Bf16(Bf16Kernel::Native)))
        } else {
            "      —".into()
        };
        let amx = if bf16_amx_available() {
            format!("{:7.1}", f(Cand::Bf16(Bf16Kernel::Amx)))
        } else {
            "      —".into()
        };
        println!(
            "{label:34} gemm {g:7.1}  matrixmultiply {mm:7.1}  gemm-split {gs:7.1}{ob}  \
             bf16-emulated {emu:7.1}  bf16-native {nat}  bf16-amx {amx} GFLOP/s"
        );
    }
}
