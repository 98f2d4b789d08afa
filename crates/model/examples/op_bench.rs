//! Time the non-matmul-dominated ops on a preset's shapes (per training step, all layers).
//! `cargo run --release -p lmforge-model --example op_bench -- bench-s [threads]`
use lmforge_model::ops::attention::{self, Dims};
use lmforge_model::ops::{gelu, layernorm};
use lmforge_model::{Activation, DtypeArg, ModelConfig, Precision};
use std::time::Instant;

fn time(label: &str, reps: usize, mut f: impl FnMut()) {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    println!(
        "{label:28} {:8.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
}

fn main() {
    let preset = std::env::args().nth(1).unwrap_or_else(|| "bench-s".into());
    let threads = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .ok();
    let cfg = ModelConfig::preset(&preset).expect("preset");
    let b = if preset == "bench-m" { 8 } else { 12 };
    let (t, c, nh, l) = (cfg.block_size, cfg.n_embd, cfg.n_head, cfg.n_layer);
    let n = b * t;
    let d = Dims { b, t, c, nh };
    let qkv: Vec<f32> = (0..n * 3 * c)
        .map(|i| ((i % 97) as f32 - 48.0) * 0.01)
        .collect();
    let mut out = vec![0.0; n * c];
    let mut lse = vec![0.0; n * nh];
    let mut dqkv = vec![0.0; n * 3 * c];
    let mut scratch = vec![0.0; threads * attention::scratch_per_worker(t)];
    let dout = out.clone();
    // attention's products in DTYPE (fp32 unless DTYPE=bf16|auto|…)
    let dtype: DtypeArg = std::env::var("DTYPE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DtypeArg::Fp32);
    let prec = Precision::resolve(dtype).unwrap_or(Precision::Fp32);
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    rayon::join(
        || {
            time("attention fwd ×L", reps, || {
                for _ in 0..l {
                    attention::forward(&mut out, &mut lse, &qkv, &mut scratch, d, None, prec)
                }
            });
            time("attention bwd ×L", reps, || {
                for _ in 0..l {
                    attention::backward(
                        &mut dqkv,
                        &dout,
                        &out,
                        &lse,
                        &qkv,
                        &mut scratch,
                        d,
                        None,
                        prec,
                    )
                }
            });
            let h = cfg.hidden();
            let x: Vec<f32> = (0..n * h)
                .map(|i| ((i % 89) as f32 - 44.0) * 0.05)
                .collect();
            let mut y = vec![0.0; n * h];
            let mut xd = x.clone();
            time("gelu fwd+deriv ×L", reps, || {
                for _ in 0..l {
                    xd.copy_from_slice(&x);
                    gelu::forward_keep_derivative(&mut y, &mut xd, None, Activation::Gelu)
                }
            });
            let w = vec![1.0; c];
            let xs = &x[..n * c];
            let (mut o, mut m, mut r) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
            time("layernorm fwd ×2L+1", reps, || {
                for _ in 0..2 * l + 1 {
                    layernorm::forward(&mut o, &mut m, &mut r, xs, &w, Some(&w))
                }
            });
            let (mut dx, mut dw, mut db) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
            time("layernorm bwd ×2L+1", reps, || {
                for _ in 0..2 * l + 1 {
                    layernorm::backward(&mut dx, &mut dw, Some(&mut db), xs, xs, &w, &m, &r, true)
                }
            });
        },
        || (),
    );
}
