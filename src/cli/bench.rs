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

/// `lmforge bench train --preset P [shape overrides]`
#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    /// Model shape: bench-s (4 layers, 128 wide, block 64, batch 12) or bench-m (6 layers,
    /// 384 wide, block 256, batch 8), or any model preset; the flags below override its fields.
    #[arg(long, default_value = "bench-s")]
    pub preset: String,
    /// Batch size (default: the preset's — 12 for tiny, baby, bench-s; 8 for bench-m,
    /// shakespeare-char, gpt2-124m).
    #[arg(long)]
    pub batch: Option<usize>,
    #[command(flatten)]
    pub shape: ShapeArgs,
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

/// A custom shape: each flag replaces the preset's field (e.g. the seeds' real shapes:
/// `--n-layer 4 --n-embd 256 --n-head 4 --block-size 256 --vocab-size 200019 --batch 8`).
#[derive(Args, Debug, Default)]
pub struct ShapeArgs {
    /// Layers.
    #[arg(long)]
    pub n_layer: Option<usize>,
    /// Embedding width (a multiple of --n-head).
    #[arg(long)]
    pub n_embd: Option<usize>,
    /// Attention heads.
    #[arg(long)]
    pub n_head: Option<usize>,
    /// Sequence length of each batch row.
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Vocabulary size (o200k_base: 200019; GPT-2: 50257).
    #[arg(long)]
    pub vocab_size: Option<usize>,
}

impl ShapeArgs {
    /// The override for one of [`ModelConfig::SHAPE_KEYS`].
    fn get(&self, key: &str) -> Option<usize> {
        match key {
            "n_layer" => self.n_layer,
            "n_embd" => self.n_embd,
            "n_head" => self.n_head,
            "block_size" => self.block_size,
            "vocab_size" => self.vocab_size,
            _ => None,
        }
    }

    /// Whether any field is overridden.
    fn any(&self) -> bool {
        ModelConfig::SHAPE_KEYS
            .iter()
            .any(|key| self.get(key).is_some())
    }

    /// `cfg` with the overrides applied and checked; an error names the flag.
    fn apply(&self, mut cfg: ModelConfig) -> anyhow::Result<ModelConfig> {
        cfg.override_shape(|key| self.get(key));
        match cfg.validate() {
            Ok(()) => Ok(cfg),
            Err(lmforge_model::Error::Config { field, msg }) => anyhow::bail!(
                "--{}: {msg} (bench train shape flags: --n-layer --n-embd --n-head --block-size --vocab-size)",
                field.replace('_', "-")
            ),
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Train(a) => {
            let cfg = a.shape.apply(ModelConfig::preset(&a.preset)?)?;
            let batch = a.batch.unwrap_or_else(|| default_batch(&a.preset));
            if batch == 0 {
                anyhow::bail!("--batch must be at least 1");
            }
            let name = if a.shape.any() {
                format!(
                    "{} reshaped ({} layers, {} wide, {} heads, vocab {})",
                    a.preset, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.vocab_size
                )
            } else {
                a.preset.clone()
            };
            let prec = a.dtype.resolve()?;
            let r = bench_train_in(prec, &cfg, batch, a.steps, a.warmup)?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}: {} params, batch {batch}, block {}, {} threads, dtype {}\n{:.0} tokens/s, {:.1} ms/step, MFU {:.1}% of measured {} matmul peak {:.1} GFLOP/s ({:.1}% of fp32 peak {:.1}), peak RSS {:.0} MB",
                    name,
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
