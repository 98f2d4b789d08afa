//! `cargo run --release -p lmforge-model --example bench_train -- PRESET [--batch B]
//!  [--threads N] [--steps S] [--warmup W] [--kernel gemm|matrixmultiply] [--dtype D] [--json]
//!  [--n-layer L] [--n-embd C] [--n-head H] [--block-size T] [--vocab-size V]
//!  [--norm pre|post] [--activation gelu|gelu_tanh|relu] [--pos-encoding P]`
//! (the shape flags override the preset's fields, as `lmforge bench train`'s do; the last
//! three take `config.json`'s spellings)
use lmforge_model::bench::bench_train_in;
use lmforge_model::dtype::{DtypeArg, Precision};
use lmforge_model::ops::matmul::{set_kernel, Kernel};
use lmforge_model::ModelConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let preset = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "bench-s".into());
    let mut cfg = match ModelConfig::preset(&preset) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    cfg.override_shape(|key| {
        flag(&format!("--{}", key.replace('_', "-"))).and_then(|s| s.parse().ok())
    });
    // the architecture switches, parsed as config.json spells them
    let switch = |name: &str, json_key: &str, cfg: &mut ModelConfig| {
        if let Some(v) = flag(name) {
            let mut j = serde_json::to_value(&*cfg).unwrap_or_default();
            j[json_key] = serde_json::Value::String(v.clone());
            match serde_json::from_value(j) {
                Ok(c) => *cfg = c,
                Err(e) => {
                    eprintln!("{name} {v}: {e}");
                    std::process::exit(2);
                }
            }
        }
    };
    switch("--norm", "norm", &mut cfg);
    switch("--activation", "activation", &mut cfg);
    switch("--pos-encoding", "pos_encoding", &mut cfg);
    let default_batch = lmforge_model::config::preset_batch_size(&preset);
    let batch = flag("--batch")
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_batch);
    let steps = flag("--steps").and_then(|s| s.parse().ok()).unwrap_or(20);
    let warmup = flag("--warmup").and_then(|s| s.parse().ok()).unwrap_or(3);
    if let Some(t) = flag("--threads").and_then(|s| s.parse().ok()) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .ok();
    }
    match flag("--kernel").as_deref() {
        Some("matrixmultiply") => set_kernel(Kernel::MatrixMultiply),
        Some("gemm") => set_kernel(Kernel::Gemm),
        Some("gemm-split") => set_kernel(Kernel::GemmSplit),
        #[cfg(feature = "openblas")]
        Some("openblas") => set_kernel(Kernel::OpenBlas),
        _ => {}
    }
    let prec = match flag("--dtype")
        .unwrap_or_else(|| "fp32".into())
        .parse::<DtypeArg>()
        .and_then(Precision::resolve)
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: --dtype: {e}");
            std::process::exit(2);
        }
    };
    match bench_train_in(prec, &cfg, batch, steps, warmup) {
        Ok(r) if args.iter().any(|a| a == "--json") => println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()),
        Ok(r) => println!(
            "{preset}: batch {} × block {} on {} threads: {:.0} tok/s, {:.1} ms/step (median; mean {:.1}, min {:.1}; CPU {:.1} ms/step), {:.1} GFLOP/s, MFU {:.1}% \
             of measured matmul peak {:.1} GFLOP/s ({}), peak RSS {:.0} MiB, loss {:.3} -> {:.3}",
            r.batch, r.block_size, r.threads, r.tokens_per_s, r.ms_per_step, r.mean_ms_per_step, r.min_ms_per_step, r.cpu_ms_per_step, r.achieved_gflops, 100.0 * r.mfu,
            r.matmul_peak_gflops, r.matmul_kernel, r.peak_rss_mb, r.first_loss, r.last_loss
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
