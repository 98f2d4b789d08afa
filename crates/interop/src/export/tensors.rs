//! The weights an export writes: read from the model by nanoGPT name, the padded vocabulary
//! cropped to the tokenizer's size, absent biases filled with zeros, and encoded as
//! fp32, bf16 or fp16 bytes.

use lmforge_model::ops::embedding::sinusoidal_table;
use lmforge_model::{Gpt, PosEncoding};

use super::error::{ExportError, Result};

/// Element type of the exported weights (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightDtype {
    /// 32-bit floats: the exact weights.
    #[default]
    F32,
    /// bfloat16 (round to nearest even): fp32's range, 8 bits of mantissa.
    Bf16,
    /// IEEE half: 11 bits of mantissa, values beyond ±65504 refused.
    F16,
}

impl WeightDtype {
    /// Parses `fp32`, `bf16` or `fp16` (also `f32`, `float32`, `f16`, `float16`, `bfloat16`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Ok(WeightDtype::F32),
            "bf16" | "bfloat16" => Ok(WeightDtype::Bf16),
            "fp16" | "f16" | "float16" | "half" => Ok(WeightDtype::F16),
            other => Err(ExportError::Usage {
                flag: "--dtype",
                reason: format!("unknown dtype '{other}' (expected fp32, bf16 or fp16)"),
            }),
        }
    }

    /// The name PyTorch gives it (`config.json`'s `torch_dtype`).
    pub fn torch_name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "float32",
            WeightDtype::Bf16 => "bfloat16",
            WeightDtype::F16 => "float16",
        }
    }

    /// The safetensors element type.
    pub(crate) fn safetensors(self) -> safetensors::Dtype {
        match self {
            WeightDtype::F32 => safetensors::Dtype::F32,
            WeightDtype::Bf16 => safetensors::Dtype::BF16,
            WeightDtype::F16 => safetensors::Dtype::F16,
        }
    }
}

/// One tensor to write: row-major `shape`, f32 values (converted when written).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Name in the target format.
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor; `data.len()` must equal the product of `shape`.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor {
            name: name.into(),
            shape,
            data,
        }
    }
}

/// Little-endian bytes of `t` in `dtype`. fp16 refuses values it would turn into ±inf,
/// naming the tensor (bf16 has fp32's range).
pub fn encode(t: &Tensor, dtype: WeightDtype) -> Result<Vec<u8>> {
    Ok(match dtype {
        WeightDtype::F32 => t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        WeightDtype::Bf16 => t
            .data
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        WeightDtype::F16 => {
            if let Some(v) = t.data.iter().find(|v| v.abs() > f32::from(half::f16::MAX)) {
                return Err(ExportError::Usage {
                    flag: "--dtype",
                    reason: format!(
                        "tensor {} holds {v}, beyond fp16's range (±65504); export with --dtype bf16 or fp32",
                        t.name
                    ),
                });
            }
            t.data
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect()
        }
    })
}

/// Read access to a model's weights for export: nanoGPT names, the vocabulary cropped to
/// `vocab` rows (the tokenizer's size; training pads it, e.g. 50257 → 50304).
pub(crate) struct Source<'a> {
    pub model: &'a Gpt,
    /// Rows of the exported embedding and head: the tokenizer's vocabulary size.
    pub vocab: usize,
}

impl<'a> Source<'a> {
    /// The parameter `name` (nanoGPT naming).
    pub fn get(&self, name: &str) -> Result<&'a [f32]> {
        self.model.param(name).ok_or_else(|| ExportError::Io {
            path: "model.safetensors".into(),
            reason: format!("the model has no tensor {name}"),
        })
    }

    /// The bias `name`, or `len` zeros when the model has none (`bias = false`, or
    /// `qkv_bias = false` for `c_attn`: no bias computes the same function as a zero one).
    pub fn or_zeros(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        match self.model.layout().find(name) {
            Some(_) => Ok(self.get(name)?.to_vec()),
            None => Ok(vec![0.0; len]),
        }
    }

    /// Embedding width C.
    pub fn n_embd(&self) -> usize {
        self.model.config().n_embd
    }

    /// `transformer.wte.weight` cropped to `[vocab, C]`.
    pub fn token_embedding(&self) -> Result<Vec<f32>> {
        Ok(self.get("transformer.wte.weight")?[..self.vocab * self.n_embd()].to_vec())
    }

    /// The output head `[vocab, C]`: `lm_head.weight`, or `wte` when tied.
    pub fn head(&self) -> Result<Vec<f32>> {
        match self.model.config().tie_embeddings {
            true => self.token_embedding(),
            false => Ok(self.get("lm_head.weight")?[..self.vocab * self.n_embd()].to_vec()),
        }
    }

    /// The position table `[block_size, C]` added to the embeddings: the learned `wpe`, or
    /// the fixed sinusoidal table the model computes (the same values); `None` for RoPE.
    pub fn position_table(&self) -> Result<Option<Vec<f32>>> {
        let cfg = self.model.config();
        Ok(match cfg.pos_encoding {
            PosEncoding::Learned => Some(self.get("transformer.wpe.weight")?.to_vec()),
            PosEncoding::Sinusoidal | PosEncoding::SinusoidalRope => {
                Some(sinusoidal_table(cfg.block_size, cfg.n_embd))
            }
            PosEncoding::Rope => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_parse_and_encode_to_their_widths() {
        assert_eq!(WeightDtype::parse("BF16").unwrap(), WeightDtype::Bf16);
        assert!(WeightDtype::parse("int8")
            .unwrap_err()
            .to_string()
            .contains("--dtype"));
        let t = Tensor::new("w", vec![3], vec![1.0, -2.5, 0.1]);
        assert_eq!(encode(&t, WeightDtype::F32).unwrap().len(), 12);
        let b = encode(&t, WeightDtype::Bf16).unwrap();
        assert_eq!(b.len(), 6);
        // bf16 keeps the top 16 bits of 1.0f32 (0x3f80_0000).
        assert_eq!(&b[..2], &[0x80, 0x3f]);
        let h = encode(&t, WeightDtype::F16).unwrap();
        // fp16 1.0 = 0x3c00, -2.5 = 0xc100.
        assert_eq!(&h[..4], &[0x00, 0x3c, 0x00, 0xc1]);
    }

    #[test]
    fn fp16_refuses_values_out_of_range_naming_the_tensor() {
        let t = Tensor::new("transformer.wte.weight", vec![2], vec![1.0, 70000.0]);
        let e = encode(&t, WeightDtype::F16).unwrap_err().to_string();
        assert!(
            e.contains("transformer.wte.weight") && e.contains("bf16"),
            "{e}"
        );
        assert!(encode(&t, WeightDtype::Bf16).is_ok());
    }
}
