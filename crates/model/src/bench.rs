//! Training throughput benchmark (`lmforge bench train` and `examples/bench_train.rs`).
//!
//! MFU follows nanoGPT's `estimate_mfu`: FLOPs per token `6·N + 12·L·H·hs·T` with `N` the
//! parameter count without the position table, divided by a *measured* fp32 matmul peak on
//! this machine (2048³ through our matmul kernel and thread pool) rather than a datasheet.
//! A bf16 run is measured against the bf16 product's peak (`matmul_peak_gflops`, `mfu`) and
//! against the f32 one (`fp32_matmul_peak_gflops`, `mfu_vs_fp32_peak`).

use crate::config::ModelConfig;
use crate::dtype::Precision;
use crate::error::Result;
use crate::model::Gpt;
use crate::ops::matmul::{matmul, matmul_bf16, Mat, MatMut, Par};
use crate::optim::{AdamW, AdamWConfig};
use crate::rng::Rng;
use std::time::Instant;

/// Result of [`bench_train`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// layers
    pub n_layer: usize,
    /// attention heads
    pub n_head: usize,
    /// embedding width
    pub n_embd: usize,
    /// sequence length of each batch row
    pub block_size: usize,
    /// vocabulary size
    pub vocab_size: usize,
    /// sequences per step
    pub batch: usize,
    /// rayon threads
    pub threads: usize,
    /// timed steps
    pub steps: usize,
    /// untimed steps before them
    pub warmup: usize,
    /// parameters (tied head once)
    pub num_params: usize,
    /// From the median step time (robust to other load on a shared machine; this is also
    /// what `tools/bench_train.py` reports for PyTorch).
    pub tokens_per_s: f64,
    /// median step time
    pub ms_per_step: f64,
    /// mean step time
    pub mean_ms_per_step: f64,
    /// fastest step
    pub min_ms_per_step: f64,
    /// nanoGPT's estimate, per token (forward + backward).
    pub flops_per_token: f64,
    /// model FLOPs per second at the median step (6·params·tokens + attention)
    pub achieved_gflops: f64,
    /// measured matmul peak of this machine (2048³) in the run's precision
    pub matmul_peak_gflops: f64,
    /// achieved / peak
    pub mfu: f64,
    /// precision of the Linear products (`fp32`, `bf16`)
    pub dtype: String,
    /// the run's precision in words (which bf16 kernel)
    pub dtype_detail: String,
    /// measured fp32 matmul peak (2048³; equals `matmul_peak_gflops` in an fp32 run)
    pub fp32_matmul_peak_gflops: f64,
    /// achieved / fp32 peak
    pub mfu_vs_fp32_peak: f64,
    /// CPU time of the whole process (all threads) per timed step, mean, in ms: on a machine
    /// shared with other work, `--threads 1` runs compare by this rather than by wall time
    /// (0 where `/proc/self/task/*/schedstat` is unavailable).
    pub cpu_ms_per_step: f64,
    /// Peak RSS during model set-up and training (VmHWM, reset after the matmul probe).
    pub peak_rss_mb: f64,
    /// loss of the first step
    pub first_loss: f32,
    /// loss of the last step
    pub last_loss: f32,
    /// the matmul kernel used
    pub matmul_kernel: String,
}

/// Best-of-4 GFLOP/s of one `n×n×n` fp32 product on the current rayon pool.
pub fn matmul_gflops(n: usize) -> f64 {
    matmul_gflops_in(Precision::Fp32, n)
}

/// Best-of-4 GFLOP/s of one `n×n×n` product in precision `prec` on the current rayon pool
/// (bf16: operand casts included, as the model pays them).
pub fn matmul_gflops_in(prec: Precision, n: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b = a.clone();
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::MAX;
    for _ in 0..4 {
        let t = Instant::now();
        let (av, bv) = (Mat::row_major(&a, n, n), Mat::row_major(&b, n, n));
        let cv = MatMut::row_major(&mut c, n, n);
        match prec {
            Precision::Fp32 => matmul(cv, av, bv, false, Par::Pool),
            Precision::Bf16(k) => matmul_bf16(k, cv, av, bv, false, Par::Pool),
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Peak resident set size of this process in MiB (`VmHWM` from /proc/self/status), or 0
/// where unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time this process's threads have run, in seconds (the sum of the first field of
/// `/proc/self/task/*/schedstat`, nanoseconds), or 0 where unavailable.
pub fn process_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 * 1e-9
}

/// nanoGPT's FLOPs per token for one forward+backward at sequence length `block_size`.
pub fn flops_per_token(model: &Gpt) -> f64 {
    let c = model.config();
    let n = model.num_params_non_embedding() as f64;
    6.0 * n + 12.0 * (c.n_layer * c.n_head * c.head_size() * c.block_size) as f64
}

/// Time `steps` full training steps (zero_grad, forward, backward, clip 1.0, AdamW) on
/// random tokens of shape `[batch, block_size]`, after `warmup` untimed steps, in fp32.
pub fn bench_train(
    config: &ModelConfig,
    batch: usize,
    steps: usize,
    warmup: usize,
) -> Result<BenchReport> {
    bench_train_in(Precision::Fp32, config, batch, steps, warmup)
}

/// [`bench_train`] with the Linear products in precision `prec`.
pub fn bench_train_in(
    prec: Precision,
    config: &ModelConfig,
    batch: usize,
    steps: usize,
    warmup: usize,
) -> Result<BenchReport> {
    let fp32_peak = matmul_gflops(2048);
    let peak = match prec {
        Precision::Fp32 => fp32_peak,
        Precision::Bf16(_) => matmul_gflops_in(prec, 2048),
    };
    // Reset the high-water mark so peak RSS reflects training, not the 48 MB matmul probe
    // (Linux: writing 5 to clear_refs resets VmHWM; harmless where unsupported).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut model = Gpt::new(config.clone(), 1337)?;
    model.set_precision(prec);
    let mut opt = AdamW::new(&model, AdamWConfig::default());
    let t = config.block_size;
    let mut rng = Rng::new(42);
    let v = config.vocab_size as u64;
    let idx: Vec<u32> = (0..batch * t)
        .map(|_| (rng.next_u64() % v) as u32)
        .collect();
    let targets: Vec<i32> = (0..batch * t)
        .map(|_| (rng.next_u64() % v) as i32)
        .collect();
    let step = |model: &mut Gpt, opt: &mut AdamW| -> Result<f32> {
        model.zero_grad();
        let loss = model
            .forward(&idx, Some(&targets), batch, t)?
            .unwrap_or(f32::NAN);
        model.backward()?;
        model.clip_grad_norm(1.0);
        opt.step(model, 1e-3)?;
        Ok(loss)
    };
    let mut first_loss = f32::NAN;
    for i in 0..warmup {
        let l = step(&mut model, &mut opt)?;
        if i == 0 {
            first_loss = l;
        }
    }
    let mut times = Vec::with_capacity(steps.max(1));
    let mut last_loss = f32::NAN;
    let cpu0 = process_cpu_seconds();
    for i in 0..steps.max(1) {
        let t0 = Instant::now();
        last_loss = step(&mut model, &mut opt)?;
        times.push(t0.elapsed().as_secs_f64());
        if warmup == 0 && i == 0 {
            first_loss = last_loss;
        }
    }
    let cpu_ms_per_step = (process_cpu_seconds() - cpu0) * 1e3 / times.len() as f64;
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    let secs = if times.len() % 2 == 1 {
        times[mid]
    } else {
        0.5 * (times[mid - 1] + times[mid])
    };
    let tokens = (batch * t) as f64;
    let fpt = flops_per_token(&model);
    let achieved = fpt * tokens / secs / 1e9;
    Ok(BenchReport {
        n_layer: config.n_layer,
        n_head: config.n_head,
        n_embd: config.n_embd,
        block_size: t,
        vocab_size: config.vocab_size,
        batch,
        threads: rayon::current_num_threads(),
        steps: steps.max(1),
        warmup,
        num_params: model.num_params(),
        tokens_per_s: tokens / secs,
        ms_per_step: secs * 1e3,
        mean_ms_per_step: mean * 1e3,
        min_ms_per_step: times[0] * 1e3,
        flops_per_token: fpt,
        achieved_gflops: achieved,
        matmul_peak_gflops: peak,
        mfu: achieved / peak,
        dtype: prec.dtype().into(),
        dtype_detail: prec.describe().into(),
        fp32_matmul_peak_gflops: fp32_peak,
        mfu_vs_fp32_peak: achieved / fp32_peak,
        cpu_ms_per_step,
        peak_rss_mb: peak_rss_mb(),
        first_loss,
        last_loss,
        matmul_kernel: format!("{:?}", crate::ops::matmul::kernel()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_bench_reports_sane_numbers() {
        let cfg = ModelConfig::preset("tiny").unwrap();
        let r = bench_train(&cfg, 2, 2, 1).unwrap();
        assert!(r.tokens_per_s > 0.0 && r.ms_per_step > 0.0 && r.matmul_peak_gflops > 0.0);
        assert!(r.mfu > 0.0 && r.mfu < 2.0, "{r:?}");
        assert!(r.first_loss.is_finite() && r.last_loss.is_finite());
        // nanoGPT formula by hand: N excludes wpe
        let m = Gpt::new(cfg.clone(), 0).unwrap();
        let n = (m.num_params() - cfg.block_size * cfg.n_embd) as f64;
        assert_eq!(flops_per_token(&m), 6.0 * n + 12.0 * (2 * 2 * 8 * 8) as f64);
        if cfg!(target_os = "linux") {
            assert!(r.peak_rss_mb > 1.0);
        }
        assert_eq!(r.dtype, "fp32");
        assert_eq!(r.matmul_peak_gflops, r.fp32_matmul_peak_gflops);
    }

    #[test]
    fn bf16_bench_reports_its_dtype_and_both_peaks() {
        let cfg = ModelConfig::preset("tiny").unwrap();
        let prec = Precision::Bf16(crate::ops::matmul::Bf16Kernel::Emulated);
        let r = bench_train_in(prec, &cfg, 2, 2, 1).unwrap();
        assert_eq!(r.dtype, "bf16");
        assert!(r.dtype_detail.contains("emulated"), "{}", r.dtype_detail);
        assert!(r.matmul_peak_gflops > 0.0 && r.fp32_matmul_peak_gflops > 0.0);
        let ratio = r.mfu_vs_fp32_peak / r.mfu;
        assert!((ratio - r.matmul_peak_gflops / r.fp32_matmul_peak_gflops).abs() < 1e-9);
        assert!(r.first_loss.is_finite() && r.last_loss.is_finite());
    }
}
