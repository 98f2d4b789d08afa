//! `--dtype` for train, bench, generate and eval: parsed and resolved against this CPU, one
//! `error:` line when it cannot run, a notice when bf16 runs emulated.

use clap::Args;
use lmforge_model::{DtypeArg, Precision};

/// The `--dtype` flag (flattened into a subcommand's arguments).
#[derive(Args, Debug, Clone)]
pub struct DtypeFlag {
    /// Precision of the Linear products: auto (bf16 where the CPU's native bf16 products
    /// outpace f32 — AMX, or AVX-512 BF16 on AMD — else fp32), fp32, bf16 (the fastest bf16
    /// kernel; emulated where native is missing or slower: same numbers), bf16-native,
    /// bf16-emulated. Weights and checkpoints are fp32 in every case.
    #[arg(long, value_name = "DTYPE", default_value = "auto")]
    pub dtype: String,
}

impl DtypeFlag {
    /// The precision to run in, printing the emulation notice to stderr when it applies.
    pub fn resolve(&self) -> anyhow::Result<Precision> {
        let arg: DtypeArg = self
            .dtype
            .parse()
            .map_err(|e| anyhow::anyhow!("--dtype: {e}"))?;
        let p = Precision::resolve(arg).map_err(|e| anyhow::anyhow!("--dtype: {e}"))?;
        if let Some(n) = p.notice(arg) {
            eprintln!("{n}");
        }
        Ok(p)
    }
}
