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
//! products; emulated runs anywhere with the same operand rounding, and is what `bf16` picks
//! where the dot products are slower than the f32 FMAs ([`Precision::resolve`]).

use crate::ops::matmul::{
    bf16_amx_available, bf16_native_available, bf16_native_outpaces_f32, Bf16Kernel,
};
use std::fmt;
use std::str::FromStr;

/// The values `--dtype` accepts (a config's `dtype` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DtypeArg {
    /// bf16 where the CPU's native bf16 products outpace its f32 ones (AMX tiles; AVX-512 BF16
    /// on AMD), fp32 otherwise.
    #[default]
    Auto,
    /// Everything in f32.
    Fp32,
    /// bf16 products on the fastest kernel: native where it outpaces f32, emulated otherwise.
    Bf16,
    /// bf16 products on a native kernel (AMX, else AVX-512 BF16), even where slower; an error
    /// on a CPU without one.
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
    ///
    /// `bf16` takes the fastest kernel: AMX tiles, else AVX-512 BF16 dot products where they
    /// outpace the f32 FMAs ([`bf16_native_outpaces_f32`]), else the emulated kernel — on an
    /// Intel core without AMX its f32 FMAs do bf16-rounded products faster than its dot
    /// products do. `auto` is bf16 where that kernel is a native one, fp32 where bf16 would
    /// only be emulated.
    pub fn resolve(arg: DtypeArg) -> Result<Precision, String> {
        let fast_native = if bf16_amx_available() {
            Some(Bf16Kernel::Amx)
        } else {
            bf16_native_outpaces_f32().then_some(Bf16Kernel::Native)
        };
        Ok(match (arg, fast_native) {
            (DtypeArg::Fp32, _) | (DtypeArg::Auto, None) => Precision::Fp32,
            (DtypeArg::Auto | DtypeArg::Bf16, Some(k)) => Precision::Bf16(k),
            (DtypeArg::Bf16 | DtypeArg::Bf16Emulated, _) => Precision::Bf16(Bf16Kernel::Emulated),
            (DtypeArg::Bf16Native, Some(k)) => Precision::Bf16(k),
            (DtypeArg::Bf16Native, None) if bf16_native_available() => {
                Precision::Bf16(Bf16Kernel::Native)
            }
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

    /// The one-line notice to print when bf16 was asked for but runs emulated (`None`
    /// otherwise): because this CPU lacks native bf16, or because its native bf16 is slower.
    pub fn notice(&self, arg: DtypeArg) -> Option<&'static str> {
        if arg != DtypeArg::Bf16 || *self != Precision::Bf16(Bf16Kernel::Emulated) {
            return None;
        }
        Some(if bf16_native_available() {
            "note: this CPU's AVX-512 BF16 dot products run at half its f32 FMA rate (no AMX): \
             bf16 runs as bf16-rounded operands on the f32 kernel (same numbers, faster; \
             fp32 is faster still); --dtype bf16-native forces the dot products"
        } else {
            "note: this CPU has no native bf16 dot products (AVX-512 BF16): bf16 runs emulated, \
             clearly slower than fp32, with the same numbers"
        })
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
        let (amx, native, fast) = (
            bf16_amx_available(),
            bf16_native_available(),
            bf16_native_outpaces_f32(),
        );
        let resolve = Precision::resolve;
        assert_eq!(resolve(DtypeArg::Fp32), Ok(Precision::Fp32));
        let emulated = Precision::Bf16(Bf16Kernel::Emulated);
        assert_eq!(resolve(DtypeArg::Bf16Emulated), Ok(emulated));
        // the fastest bf16 kernel, and auto is bf16 only where that kernel is native
        let best = if amx {
            Precision::Bf16(Bf16Kernel::Amx)
        } else if fast {
            Precision::Bf16(Bf16Kernel::Native)
        } else {
            emulated
        };
        assert_eq!(resolve(DtypeArg::Bf16), Ok(best));
        let auto = if best == emulated {
            Precision::Fp32
        } else {
            best
        };
        assert_eq!(resolve(DtypeArg::Auto), Ok(auto));
        // bf16-native: a native kernel even where slower, else a one-line error
        match resolve(DtypeArg::Bf16Native) {
            Ok(p) => assert!(
                native && (p == best || p == Precision::Bf16(Bf16Kernel::Native)),
                "{p:?}"
            ),
            Err(e) => assert!(!native && e.contains("--dtype bf16"), "{e}"),
        }
        // the notice says why bf16 runs emulated, and only then
        let notice = best.notice(DtypeArg::Bf16);
        assert_eq!(notice.is_some(), best == emulated);
        if let Some(n) = notice {
            let why = if native {
                "half its f32 FMA rate"
            } else {
                "no native bf16"
            };
            assert!(n.contains(why) && !n.contains('\n'), "{n}");
        }
        assert_eq!(best.notice(DtypeArg::Bf16Emulated), None);
    }
}
