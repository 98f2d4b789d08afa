//! Compute precision: what `--dtype` asks for ([`DtypeArg`]) and what runs ([`Precision`]).
//!
//! bf16 is mixed precision as torch autocast does it: parameters, gradients, AdamW moments,
//! checkpoints, LayerNorm, softmax and its statistics, GELU, cross-entropy and the residual
//! stream stay f32; the matrix products — the Linear layers' (forward `x·Wᵀ`, backward `dY·W`
//! and `dYᵀ·X`, the tied/untied `lm_head` included) and the causal self-attention's (`Q·Kᵀ`,
//! `P·V` and their gradients) — round their operands to bf16 and accumulate in f32
//! ([`crate::ops::matmul::matmul_bf16`]). Their outputs stay f32 (torch rounds them to bf16).
//! A Linear weight is rounded once per optimizer step (see [`crate::ops::matmul::PreparedWeight`]).
//! Native bf16 means AMX tiles where the CPU and OS allow them, else AVX-512 BF16 dot
//! products; emulated runs anywhere with the same operand rounding.

use crate::ops::matmul::{bf16_amx_available, bf16_native_available, Bf16Kernel};
use std::fmt;
use std::str::FromStr;

/// The values `--dtype` accepts (a config's `dtype` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DtypeArg {
    /// bf16 where the CPU has native bf16 dot products, fp32 otherwise.
    #[default]
    Auto,
    /// Everything in f32.
    Fp32,
    /// bf16 products: native where the CPU has them, emulated (slower) otherwise.
    Bf16,
    /// bf16 products on the native kernel; an error on a CPU without it.
    Bf16Native,
    /// bf16 products on the portable emulated kernel (same numbers anywhere).
    Bf16Emulated,
}

/// The accepted spellings, for error messages and `--help`.
pub const DTYPE_VALUES: &str = "auto, fp32, bf16, bf16-native, bf16-emulated";

impl FromStr for DtypeArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => DtypeArg::Auto,
            "fp32" | "f32" | "float32" => DtypeArg::Fp32,
            "bf16" | "bfloat16" => DtypeArg::Bf16,
            "bf16-native" => DtypeArg::Bf16Native,
            "bf16-emulated" => DtypeArg::Bf16Emulated,
            _ => {
                return Err(format!(
                    "unknown dtype {s:?} (expected one of: {DTYPE_VALUES})"
                ))
            }
        })
    }
}

impl fmt::Display for DtypeArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DtypeArg::Auto => "auto",
            DtypeArg::Fp32 => "fp32",
            DtypeArg::Bf16 => "bf16",
            DtypeArg::Bf16Native => "bf16-native",
            DtypeArg::Bf16Emulated => "bf16-emulated",
        })
    }
}

/// What the Linear products run in (a setting of the [`Cpu`](crate::Cpu) backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 operands and accumulation.
    #[default]
    Fp32,
    /// bf16 operands, f32 accumulation, on the given kernel.
    Bf16(Bf16Kernel),
}

impl Precision {
    /// The precision `arg` means on this CPU; `Err` with a one-line reason when it cannot run
    /// here (`bf16-native` without AVX-512 BF16).
    pub fn resolve(arg: DtypeArg) -> Result<Precision, String> {
        // the fastest native kernel: AMX tiles, else AVX-512 BF16 dot products
        let native = if bf16_amx_available() {
            Some(Bf16Kernel::Amx)
        } else {
            bf16_native_available().then_some(Bf16Kernel::Native)
        };
        Ok(match (arg, native) {
            (DtypeArg::Fp32, _) => Precision::Fp32,
            (DtypeArg::Auto | DtypeArg::Bf16 | DtypeArg::Bf16Native, Some(k)) => Precision::Bf16(k),
            (DtypeArg::Auto, None) => Precision::Fp32,
            (DtypeArg::Bf16 | DtypeArg::Bf16Emulated, _) => Precision::Bf16(Bf16Kernel::Emulated),
            (DtypeArg::Bf16Native, None) => {
                return Err(
                    "dtype bf16-native: this CPU has no native bf16 dot products (AVX-512 BF16); \
                     use --dtype bf16 (emulated, slower) or --dtype fp32"
                        .into(),
                )
            }
        })
    }

    /// `"fp32"` or `"bf16"` (what `metrics.jsonl` and `config.toml` record).
    pub fn dtype(&self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16(_) => "bf16",
        }
    }

    /// A one-line description for a run's first lines.
    pub fn describe(&self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16(Bf16Kernel::Amx) => {
                "bf16 mixed precision (native AMX tile products, f32 weights)"
            }
            Precision::Bf16(Bf16Kernel::Native) => {
                "bf16 mixed precision (native AVX-512 BF16 products, f32 weights)"
            }
            Precision::Bf16(Bf16Kernel::Emulated) => {
                "bf16 mixed precision (emulated: bf16-rounded operands on the f32 kernel, f32 weights)"
            }
        }
    }

    /// The one-line notice to print when bf16 was asked for but runs emulated because this
    /// CPU lacks native bf16 (`None` otherwise).
    pub fn notice(&self, arg: DtypeArg) -> Option<&'static str> {
        (arg == DtypeArg::Bf16 && *self == Precision::Bf16(Bf16Kernel::Emulated)).then_some(
            "note: this CPU has no native bf16 dot products (AVX-512 BF16): bf16 runs emulated, \
             clearly slower than fp32, with the same numbers",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_value_and_names_the_choices_on_a_bad_one() {
        for v in DTYPE_VALUES.split(", ") {
            let d: DtypeArg = v.parse().unwrap();
            assert_eq!(d.to_string(), v);
        }
        let e = "fp16".parse::<DtypeArg>().unwrap_err();
        assert!(e.contains("\"fp16\"") && e.contains(DTYPE_VALUES), "{e}");
    }

    #[test]
    fn resolves_by_cpu_features() {
        let native = bf16_native_available();
        assert_eq!(Precision::resolve(DtypeArg::Fp32), Ok(Precision::Fp32));
        assert_eq!(
            Precision::resolve(DtypeArg::Bf16Emulated),
            Ok(Precision::Bf16(Bf16Kernel::Emulated))
        );
        let bf16 = Precision::resolve(DtypeArg::Bf16).unwrap();
        let auto = Precision::resolve(DtypeArg::Auto).unwrap();
        if native {
            let best = if crate::ops::matmul::bf16_amx_available() {
                Bf16Kernel::Amx
            } else {
                Bf16Kernel::Native
            };
            assert_eq!(bf16, Precision::Bf16(best));
            assert_eq!(auto, bf16);
            assert!(Precision::resolve(DtypeArg::Bf16Native).is_ok());
        } else {
            assert_eq!(bf16, Precision::Bf16(Bf16Kernel::Emulated));
            assert_eq!(auto, Precision::Fp32);
            assert!(bf16.notice(DtypeArg::Bf16).is_some());
            let e = Precision::resolve(DtypeArg::Bf16Native).unwrap_err();
            assert!(e.contains("--dtype bf16"), "{e}");
        }
    }
}
