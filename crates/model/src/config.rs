//! Model hyper-parameters: [`ModelConfig`], presets and validation.
//!
//! Serialised with serde in snake_case; this is the `config.json` written beside
//! `model.safetensors`. Missing optional fields take the nanoGPT defaults.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// How positions enter the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PosEncoding {
    /// A learned table `transformer.wpe.weight [block_size, C]` added to token embeddings.
    #[default]
    Learned,
    /// Fixed Vaswani sin/cos table added to token embeddings (no parameter).
    Sinusoidal,
    /// Rotary embeddings on q and k (Hugging Face Llama "rotate_half" layout); no wpe.
    Rope,
    /// Both: the fixed sin/cos table added to the token embeddings *and* RoPE on q and k
    /// (the "GPT and Transformer Models" seed). Serialised as `"sinusoidal+rope"`.
    #[serde(rename = "sinusoidal+rope")]
    SinusoidalRope,
}

impl PosEncoding {
    /// A sin/cos table is added to the token embeddings (`sinusoidal`, `sinusoidal+rope`).
    pub fn adds_sinusoidal(self) -> bool {
        matches!(self, PosEncoding::Sinusoidal | PosEncoding::SinusoidalRope)
    }

    /// q and k are rotated (`rope`, `sinusoidal+rope`).
    pub fn rotates(self) -> bool {
        matches!(self, PosEncoding::Rope | PosEncoding::SinusoidalRope)
    }

    /// The setting's spelling in config files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PosEncoding::Learned => "learned",
            PosEncoding::Sinusoidal => "sinusoidal",
            PosEncoding::Rope => "rope",
            PosEncoding::SinusoidalRope => "sinusoidal+rope",
        }
    }
}

/// Where each block's LayerNorms sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// GPT-2 / nanoGPT: `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`.
    #[default]
    Pre,
    /// The original Transformer / GPT-1: `x = ln_1(x + attn(x)); x = ln_2(x + mlp(x))`.
    /// `ln_f` stays before the head (see `docs/architecture.md`, "Model switches").
    Post,
}

impl Norm {
    /// The setting's spelling in config files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Norm::Pre => "pre",
            Norm::Post => "post",
        }
    }
}

/// MLP non-linearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU `0.5·x·(1 + erf(x/√2))` (nanoGPT's `nn.GELU()`).
    #[default]
    Gelu,
    /// Tanh approximation (`nn.GELU(approximate="tanh")`, GPT-2's original).
    GeluTanh,
    /// `max(x, 0)` (`nn.ReLU()`, the original Transformer's feed-forward).
    Relu,
}

impl Activation {
    /// The setting's spelling in config files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Relu => "relu",
        }
    }
}

fn d_true() -> bool {
    true
}
fn d_ratio() -> usize {
    4
}
fn d_theta() -> f32 {
    10000.0
}

/// GPT hyper-parameters (nanoGPT's `GPTConfig` plus the positional/activation choices).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// tokens in the vocabulary (rows of `wte`)
    pub vocab_size: usize,
    /// transformer blocks
    pub n_layer: usize,
    /// attention heads (divides `n_embd`)
    pub n_head: usize,
    /// embedding width C
    pub n_embd: usize,
    /// longest sequence (context length)
    pub block_size: usize,
    /// Biases in Linear layers and LayerNorms.
    #[serde(default = "d_true")]
    pub bias: bool,
    /// A bias on the fused q/k/v projection (`c_attn.bias`); `None` follows `bias`. The
    /// attention output projection's bias (`c_proj.bias`) always follows `bias`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qkv_bias: Option<bool>,
    /// A bias on the untied output layer (`lm_head.bias [V]`); needs `tie_embeddings = false`.
    #[serde(default)]
    pub head_bias: bool,
    /// Pre-LN (GPT-2) or post-LN (original Transformer) blocks.
    #[serde(default)]
    pub norm: Norm,
    /// Dropout probability (embedding, attention probabilities, residual branches).
    #[serde(default)]
    pub dropout: f32,
    /// `lm_head.weight` shares storage with `transformer.wte.weight`.
    #[serde(default = "d_true")]
    pub tie_embeddings: bool,
    #[serde(default)]
    /// how positions enter the model
    pub pos_encoding: PosEncoding,
    #[serde(default)]
    /// the MLP's GELU flavour
    pub activation: Activation,
    /// MLP hidden width = `mlp_ratio · n_embd`.
    #[serde(default = "d_ratio")]
    pub mlp_ratio: usize,
    /// RoPE base.
    #[serde(default = "d_theta")]
    pub rope_theta: f32,
}

/// Largest accepted `block_size`: attention keeps `block_size²` scores per head, so no run
/// can use more, and the position tables are sized by it before any weight is read.
pub const MAX_BLOCK_SIZE: usize = 1 << 20;

/// Names accepted by [`ModelConfig::preset`].
pub const PRESETS: &[&str] = &[
    "tiny",
    "baby",
    "shakespeare-char",
    "gpt2-124m",
    "bench-s",
    "bench-m",
];

impl ModelConfig {
    /// A config with nanoGPT defaults for everything but the sizes.
    pub fn new(
        vocab_size: usize,
        n_layer: usize,
        n_head: usize,
        n_embd: usize,
        block_size: usize,
    ) -> Self {
        ModelConfig {
            vocab_size,
            n_layer,
            n_head,
            n_embd,
            block_size,
            bias: true,
            qkv_bias: None,
            head_bias: false,
            norm: Norm::Pre,
            dropout: 0.0,
            tie_embeddings: true,
            pos_encoding: PosEncoding::Learned,
            activation: Activation::Gelu,
            mlp_ratio: 4,
            rope_theta: 10000.0,
        }
    }

    /// The size fields a benchmark may override, by their `config.json` names.
    pub const SHAPE_KEYS: [&'static str; 5] =
        ["n_layer", "n_embd", "n_head", "block_size", "vocab_size"];

    /// Replaces each size field for which `value(key)` gives a number (keys as in
    /// [`Self::SHAPE_KEYS`]); call [`Self::validate`] after.
    pub fn override_shape(&mut self, mut value: impl FnMut(&str) -> Option<usize>) {
        let fields = [
            &mut self.n_layer,
            &mut self.n_embd,
            &mut self.n_head,
            &mut self.block_size,
            &mut self.vocab_size,
        ];
        for (key, field) in Self::SHAPE_KEYS.into_iter().zip(fields) {
            if let Some(v) = value(key) {
                *field = v;
            }
        }
    }

    /// Named presets: `tiny` (tests), `baby`, `shakespeare-char`, `gpt2-124m`, `bench-s`, `bench-m`.
    pub fn preset(name: &str) -> Result<Self> {
        Ok(match name {
            "tiny" => Self::new(23, 2, 2, 16, 8),
            "baby" | "bench-s" => Self::new(65, 4, 4, 128, 64),
            "shakespeare-char" | "bench-m" => Self::new(65, 6, 6, 384, 256),
            "gpt2-124m" => Self::new(50304, 12, 12, 768, 1024),
            _ => return Err(Error::UnknownPreset(name.to_string(), PRESETS.join(", "))),
        })
    }

    /// Head size `n_embd / n_head`.
    pub fn head_size(&self) -> usize {
        self.n_embd / self.n_head.max(1)
    }

    /// Whether `c_attn` has a bias: `qkv_bias` when set, else `bias`.
    pub fn qkv_has_bias(&self) -> bool {
        self.qkv_bias.unwrap_or(self.bias)
    }

    /// MLP hidden width.
    pub fn hidden(&self) -> usize {
        self.mlp_ratio * self.n_embd
    }

    /// Number of parameters ([`crate::params::ParamLayout`]'s total, tied head counted
    /// once), or `None` when it overflows `usize`. Closed form, so a config claiming 2^60
    /// layers is sized without building its layout.
    pub fn param_count(&self) -> Option<usize> {
        let (c, v, b) = (self.n_embd, self.vocab_size, usize::from(self.bias));
        let qb = usize::from(self.qkv_has_bias());
        let h = self.mlp_ratio.checked_mul(c)?;
        let c2 = c.checked_mul(c)?;
        // ln_1, ln_2: c (+c); c_attn: 3c·c (+3c with qkv bias); attn c_proj: c·c (+c);
        // c_fc: h·c (+h); mlp c_proj: c·h (+c).
        let per_layer = [
            c.checked_mul(2 + 2 * b)?,
            c2.checked_mul(4)?,
            c.checked_mul(3 * qb + b)?,
            h.checked_mul(c)?.checked_mul(2)?,
            h.checked_mul(b)?,
            c.checked_mul(b)?,
        ]
        .into_iter()
        .try_fold(0usize, usize::checked_add)?;
        let wte = v.checked_mul(c)?;
        let wpe = match self.pos_encoding {
            PosEncoding::Learned => self.block_size.checked_mul(c)?,
            _ => 0,
        };
        let head = if self.tie_embeddings { 0 } else { wte };
        let head_bias = if self.head_bias { v } else { 0 };
        let ln_f = c.checked_mul(1 + b)?;
        [
            wte,
            wpe,
            self.n_layer.checked_mul(per_layer)?,
            ln_f,
            head,
            head_bias,
        ]
        .into_iter()
        .try_fold(0usize, usize::checked_add)
    }

    /// Check every field; the error names the offending one.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, msg: String| Err(Error::Config { field, msg });
        if self.vocab_size == 0 {
            return bad("vocab_size", "must be at least 1".into());
        }
        if self.vocab_size > u32::MAX as usize {
            return bad("vocab_size", "must fit in u32".into());
        }
        if self.n_layer == 0 {
            return bad("n_layer", "must be at least 1".into());
        }
        if self.n_head == 0 {
            return bad("n_head", "must be at least 1".into());
        }
        if self.n_embd == 0 {
            return bad("n_embd", "must be at least 1".into());
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(
                "n_embd",
                format!(
                    "{} is not divisible by n_head = {}",
                    self.n_embd, self.n_head
                ),
            );
        }
        if self.block_size == 0 {
            return bad("block_size", "must be at least 1".into());
        }
        if self.block_size > MAX_BLOCK_SIZE {
            return bad(
                "block_size",
                format!("{} is above the maximum {MAX_BLOCK_SIZE}", self.block_size),
            );
        }
        if self.mlp_ratio == 0 {
            return bad("mlp_ratio", "must be at least 1".into());
        }
        // Every buffer is sized from these; refuse sizes whose byte count overflows.
        let addressable = |floats: Option<usize>| {
            floats
                .and_then(|n| n.checked_mul(std::mem::size_of::<f32>()))
                .is_some_and(|bytes| bytes <= isize::MAX as usize)
        };
        if !addressable(self.param_count())
            || !addressable(self.block_size.checked_mul(self.n_embd))
        {
            return bad(
                "n_embd",
                format!(
                    "the model is too large to address (vocab_size {}, n_layer {}, n_embd {}, mlp_ratio {}, block_size {})",
                    self.vocab_size, self.n_layer, self.n_embd, self.mlp_ratio, self.block_size
                ),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", format!("{} is not in [0, 1)", self.dropout));
        }
        if self.head_bias && self.tie_embeddings {
            return bad(
                "head_bias",
                "an output-layer bias needs an untied head: set tie_embeddings = false".into(),
            );
        }
        if self.pos_encoding.rotates() {
            if !self.head_size().is_multiple_of(2) {
                return bad(
                    "n_head",
                    format!(
                        "RoPE (pos_encoding = {}) needs an even head size, got n_embd/n_head = \
                         {}/{} = {}: pick n_head so the quotient is even",
                        self.pos_encoding.name(),
                        self.n_embd,
                        self.n_head,
                        self.head_size()
                    ),
                );
            }
            if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
                return bad(
                    "rope_theta",
                    format!("{} must be a finite number > 1", self.rope_theta),
                );
            }
        }
        if self.pos_encoding.adds_sinusoidal() && !self.n_embd.is_multiple_of(2) {
            return bad(
                "n_embd",
                format!(
                    "sinusoidal positions need an even n_embd, got {}",
                    self.n_embd
                ),
            );
        }
        Ok(())
    }
}

/// The batch size a preset is benchmarked and tuned with: 8 for the 6-layer-and-up shapes
/// (`shakespeare-char`, `bench-m`, `gpt2-124m`), 12 for the small ones (`tiny`, `baby`,
/// `bench-s`) — nanoGPT's configs. `lmforge bench train` uses it when `--batch` is not given.
pub fn preset_batch_size(preset: &str) -> usize {
    match preset {
        "shakespeare-char" | "bench-m" | "gpt2-124m" => 8,
        _ => 12,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_shape_sets_only_the_given_fields() {
        let mut m = ModelConfig::preset("bench-m").unwrap();
        let mut asked = Vec::new();
        m.override_shape(|key| {
            asked.push(key.to_string());
            match key {
                "block_size" => Some(96),
                "vocab_size" => Some(50257),
                _ => None,
            }
        });
        assert_eq!(asked, ModelConfig::SHAPE_KEYS);
        assert_eq!(
            (m.n_layer, m.n_head, m.n_embd, m.block_size, m.vocab_size),
            (6, 6, 384, 96, 50257)
        );
    }

    #[test]
    fn presets_validate_and_have_documented_sizes() {
        for p in PRESETS {
            ModelConfig::preset(p).unwrap().validate().unwrap();
        }
        let m = ModelConfig::preset("bench-m").unwrap();
        assert_eq!(
            (m.n_layer, m.n_head, m.n_embd, m.block_size, m.vocab_size),
            (6, 6, 384, 256, 65)
        );
        let g = ModelConfig::preset("gpt2-124m").unwrap();
        assert_eq!(
            (g.n_layer, g.n_embd, g.block_size, g.vocab_size),
            (12, 768, 1024, 50304)
        );
        assert!(ModelConfig::preset("nope").is_err());
    }

    #[test]
    fn validate_names_the_field() {
        let mut c = ModelConfig::preset("tiny").unwrap();
        c.n_head = 3;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("n_embd") && e.contains("n_head"), "{e}");
        let mut c = ModelConfig::preset("tiny").unwrap();
        c.block_size = 0;
        assert!(c.validate().unwrap_err().to_string().contains("block_size"));
        let mut c = ModelConfig::new(10, 1, 2, 6, 4);
        c.pos_encoding = PosEncoding::Rope; // head size 3
        assert!(c.validate().unwrap_err().to_string().contains("RoPE"));
        let c = ModelConfig::new(0, 1, 1, 4, 4);
        assert!(c.validate().unwrap_err().to_string().contains("vocab_size"));
    }

    #[test]
    fn param_count_matches_the_layout() {
        for p in PRESETS {
            for (bias, tie, pos) in [
                (true, true, PosEncoding::Learned),
                (false, false, PosEncoding::Rope),
                (true, false, PosEncoding::Sinusoidal),
            ] {
                let mut c = ModelConfig::preset(p).unwrap();
                (c.bias, c.tie_embeddings, c.pos_encoding, c.mlp_ratio) = (bias, tie, pos, 3);
                let layout = crate::params::ParamLayout::new(&c);
                assert_eq!(
                    c.param_count(),
                    Some(layout.total),
                    "{p} {bias} {tie} {pos:?}"
                );
            }
        }
    }

    #[test]
    fn huge_sizes_are_refused_not_overflowed() {
        let mut c = ModelConfig::new(1 << 31, 1, 1, 1 << 34, 4);
        assert_eq!(c.param_count(), None);
        assert!(c.validate().unwrap_err().to_string().contains("too large"));
        c = ModelConfig::new(10, 1 << 60, 1, 4, 4);
        assert!(c.validate().unwrap_err().to_string().contains("too large"));
        c = ModelConfig::new(10, 1, 1, 1 << 31, 4);
        assert!(c.validate().unwrap_err().to_string().contains("too large"));
        c = ModelConfig::new(10, 1, 1, 4, MAX_BLOCK_SIZE + 1);
        assert!(c.validate().unwrap_err().to_string().contains("block_size"));
        c = ModelConfig::new(10, 1, 1, 4, 1 << 40);
        c.pos_encoding = PosEncoding::Rope;
        assert!(c.validate().unwrap_err().to_string().contains("block_size"));
    }

    #[test]
    fn json_round_trip_and_defaults() {
        let mut c = ModelConfig::preset("tiny").unwrap();
        c.pos_encoding = PosEncoding::Rope;
        c.activation = Activation::GeluTanh;
        let s = serde_json::to_string(&c).unwrap();
        assert!(s.contains("\"rope\"") && s.contains("\"gelu_tanh\""), "{s}");
        assert_eq!(serde_json::from_str::<ModelConfig>(&s).unwrap(), c);
        let min = r#"{"vocab_size":5,"n_layer":1,"n_head":1,"n_embd":4,"block_size":3}"#;
        let d: ModelConfig = serde_json::from_str(min).unwrap();
        assert_eq!(d, ModelConfig::new(5, 1, 1, 4, 3));
        assert_eq!((d.norm, d.qkv_bias, d.head_bias), (Norm::Pre, None, false));
        assert!(d.qkv_has_bias());
    }

    #[test]
    fn new_switches_serialise_as_documented() {
        let mut c = ModelConfig::preset("tiny").unwrap();
        (c.norm, c.activation, c.pos_encoding) =
            (Norm::Post, Activation::Relu, PosEncoding::SinusoidalRope);
        (c.qkv_bias, c.head_bias, c.tie_embeddings) = (Some(false), true, false);
        let s = serde_json::to_string(&c).unwrap();
        for want in [
            r#""norm":"post""#,
            r#""activation":"relu""#,
            r#""pos_encoding":"sinusoidal+rope""#,
            r#""qkv_bias":false"#,
            r#""head_bias":true"#,
        ] {
            assert!(s.contains(want), "{want} missing from {s}");
        }
        assert_eq!(serde_json::from_str::<ModelConfig>(&s).unwrap(), c);
        assert!(!c.qkv_has_bias() && c.bias);
        // unset qkv_bias is not written (old readers see the config they know)
        let plain = serde_json::to_string(&ModelConfig::preset("tiny").unwrap()).unwrap();
        assert!(!plain.contains("qkv_bias"), "{plain}");
        for (p, name) in [
            (PosEncoding::Learned, "learned"),
            (PosEncoding::Sinusoidal, "sinusoidal"),
            (PosEncoding::Rope, "rope"),
            (PosEncoding::SinusoidalRope, "sinusoidal+rope"),
        ] {
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{name}\""));
            assert_eq!(p.name(), name);
        }
    }

    #[test]
    fn head_bias_needs_an_untied_head_and_both_encodings_need_even_sizes() {
        let mut c = ModelConfig::preset("tiny").unwrap();
        c.head_bias = true;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("head_bias") && e.contains("tie_embeddings"),
            "{e}"
        );
        let mut c = ModelConfig::new(10, 1, 2, 6, 4); // head size 3
        c.pos_encoding = PosEncoding::SinusoidalRope;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("RoPE") && e.contains("sinusoidal+rope"), "{e}");
        let mut c = ModelConfig::new(10, 1, 1, 5, 4); // odd width
        c.pos_encoding = PosEncoding::Sinusoidal;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("even n_embd"));
    }
}
