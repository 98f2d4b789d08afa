//! `lmforge bench train`: training throughput of the compute engine on a preset shape.

use clap::{Args, Subcommand};
use lmforge_model::config::preset_batch_size as default_batch;
use lmforge_model::{bench::bench_train_in, ModelConfig};

/// Benchmarks (measurements, not tests).
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time full training steps (forward, backward, clip, AdamW) on random tokens.
    Train(BenchTrainArgs),
}

/// `lmforge bench train --preset P`
#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    /// Model shape: bench-s (4 layers, 128 wide, block 64, batch 12) or bench-m (6 layers,
    /// 384 wide, block 256, batch 8), or any model preset.
    #[arg(long, default_value = "bench-s")]
    pub preset: String,
    /// Batch size (default: the preset's — 12 for tiny, baby, bench-s; 8 for bench-m,
    /// shakespeare-char, gpt2-124m).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Print one JSON object (tokens_per_s, ms_per_step, mfu, peak_rss_mb, ...).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dtype: super::dtype::DtypeFlag,
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Train(a) => {
            let cfg = ModelConfig::preset(&a.preset)?;
            let batch = a.batch.unwrap_or_else(|| default_batch(&a.preset));
            let prec = a.dtype.resolve()?;
            let r = bench_train_in(prec, &cfg, batch, a.steps, a.warmup)?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}: {} params, batch {batch}, block {}, {} threads, dtype {}\n{:.0} tokens/s, {:.1} ms/step, MFU {:.1}% of measured {} matmul peak {:.1} GFLOP/s ({:.1}% of fp32 peak {:.1}), peak RSS {:.0} MB",
                    a.preset,
                    r.num_params,
                    r.block_size,
                    r.threads,
                    r.dtype_detail,
                    r.tokens_per_s,
                    r.ms_per_step,
                    100.0 * r.mfu,
                    r.dtype,
                    r.matmul_peak_gflops,
                    100.0 * r.mfu_vs_fp32_peak,
                    r.fp32_matmul_peak_gflops,
                    r.peak_rss_mb
                );
            }
            Ok(())
        }
    }
}
