//! [`Seq2seqConfig`]: the encoder–decoder's hyper-parameters (serde = its `config.json`,
//! which carries `"arch": "encoder-decoder"`; a GPT's `config.json` has no `arch` or
//! `"arch": "gpt"`, see [`Arch::of_config_json`]).

pub use crate::config::Norm;
use crate::config::{Activation, PosEncoding};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which model a `config.json` describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// The decoder-only GPT ([`crate::ModelConfig`]).
    #[default]
    Gpt,
    /// The encoder–decoder Transformer ([`Seq2seqConfig`]).
    EncoderDecoder,
}

impl Arch {
    /// The `arch` field of a parsed `config.json` (absent: a GPT, as every checkpoint written
    /// before the encoder–decoder existed). An unknown value is an error naming it.
    pub fn of_config_json(v: &serde_json::Value) -> Result<Arch> {
        match v.get("arch") {
            None => Ok(Arch::Gpt),
            Some(a) => serde_json::from_value(a.clone()).map_err(|_| Error::Config {
                field: "arch",
                msg: format!("{a} is not one of \"gpt\", \"encoder-decoder\""),
            }),
        }
    }
}

fn d_true() -> bool {
    true
}
fn d_ratio() -> usize {
    4
}
fn d_arch() -> Arch {
    Arch::EncoderDecoder
}

/// The encoder–decoder Transformer's hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq2seqConfig {
    /// always [`Arch::EncoderDecoder`] (written so a loader can tell the model kinds apart)
    #[serde(default = "d_arch")]
    pub arch: Arch,
    /// source vocabulary (rows of `encoder.embed.weight`)
    pub src_vocab_size: usize,
    /// target vocabulary (rows of `decoder.embed.weight` and of the output layer)
    pub tgt_vocab_size: usize,
    /// encoder blocks
    pub n_encoder_layer: usize,
    /// decoder blocks
    pub n_decoder_layer: usize,
    /// attention heads (divides `n_embd`)
    pub n_head: usize,
    /// width C
    pub n_embd: usize,
    /// longest source
    pub src_block_size: usize,
    /// longest decoder input (`<bos>` + target)
    pub tgt_block_size: usize,
    /// LayerNorm placement (the GPT's [`Norm`]; pre-LN adds a final LayerNorm after the
    /// encoder and after the decoder, post-LN has none)
    #[serde(default)]
    pub norm: Norm,
    /// the MLP's non-linearity
    #[serde(default)]
    pub activation: Activation,
    /// dropout probability on the embeddings, the attention probabilities and every residual
    /// branch (training only)
    #[serde(default)]
    pub dropout: f32,
    /// learned or sinusoidal positions added to the embeddings, and/or RoPE on q and k of
    /// every attention (cross-attention: q at decoder positions, k at encoder positions)
    #[serde(default)]
    pub pos_encoding: PosEncoding,
    /// the output layer is the target embedding (`decoder.embed.weight`)
    #[serde(default = "d_true")]
    pub tie_embeddings: bool,
    /// one vocabulary: the encoder reads the target embedding too (needs equal vocab sizes)
    #[serde(default)]
    pub share_embeddings: bool,
    /// biases in Linear layers and LayerNorms
    #[serde(default = "d_true")]
    pub bias: bool,
    /// MLP hidden width = `mlp_ratio · n_embd`
    #[serde(default = "d_ratio")]
    pub mlp_ratio: usize,
}

impl Seq2seqConfig {
    /// A pre-LN, GELU, learned-position, tied-output config with `n_layer` blocks on each side.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        src_vocab_size: usize,
        tgt_vocab_size: usize,
        n_layer: usize,
        n_head: usize,
        n_embd: usize,
        src_block_size: usize,
        tgt_block_size: usize,
    ) -> Self {
        Seq2seqConfig {
            arch: Arch::EncoderDecoder,
            src_vocab_size,
            tgt_vocab_size,
            n_encoder_layer: n_layer,
            n_decoder_layer: n_layer,
            n_head,
            n_embd,
            src_block_size,
            tgt_block_size,
            norm: Norm::Pre,
            activation: Activation::Gelu,
            dropout: 0.0,
            pos_encoding: PosEncoding::Learned,
            tie_embeddings: true,
            share_embeddings: false,
            bias: true,
            mlp_ratio: 4,
        }
    }

    /// Head size `n_embd / n_head`.
    pub fn head_size(&self) -> usize {
        self.n_embd / self.n_head.max(1)
    }

    /// MLP hidden width.
    pub fn hidden(&self) -> usize {
        self.mlp_ratio * self.n_embd
    }

    /// Check every field; the error names the offending one.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, msg: String| Err(Error::Config { field, msg });
        let positive = [
            ("src_vocab_size", self.src_vocab_size),
            ("tgt_vocab_size", self.tgt_vocab_size),
            ("n_encoder_layer", self.n_encoder_layer),
            ("n_decoder_layer", self.n_decoder_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("src_block_size", self.src_block_size),
            ("tgt_block_size", self.tgt_block_size),
            ("mlp_ratio", self.mlp_ratio),
        ];
        for (field, v) in positive {
            if v == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        for (field, v) in [
            ("src_vocab_size", self.src_vocab_size),
            ("tgt_vocab_size", self.tgt_vocab_size),
        ] {
            if v > u32::MAX as usize {
                return bad(field, "must fit in u32".into());
            }
        }
        if self.arch != Arch::EncoderDecoder {
            return bad(
                "arch",
                "an encoder-decoder config needs \"encoder-decoder\"".into(),
            );
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            let msg = format!(
                "{} is not divisible by n_head = {}",
                self.n_embd, self.n_head
            );
            return bad("n_embd", msg);
        }
        let max = crate::config::MAX_BLOCK_SIZE;
        for (field, v) in [
            ("src_block_size", self.src_block_size),
            ("tgt_block_size", self.tgt_block_size),
        ] {
            if v > max {
                return bad(field, format!("{v} is above the maximum {max}"));
            }
        }
        let params = self.hidden().checked_mul(self.n_embd).and_then(|x| {
            x.checked_mul(2 * (self.n_encoder_layer + self.n_decoder_layer))
                .filter(|&n| n <= (isize::MAX as usize) / 64)
        });
        if params.is_none() {
            return bad("n_embd", "the model is too large to address".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            let msg = format!("{} is not a probability in [0, 1)", self.dropout);
            return bad("dropout", msg);
        }
        if self.pos_encoding.rotates() && !self.head_size().is_multiple_of(2) {
            let msg = format!(
                "rope needs an even head size (n_embd / n_head = {})",
                self.head_size()
            );
            return bad("n_head", msg);
        }
        if self.pos_encoding.adds_sinusoidal() && !self.n_embd.is_multiple_of(2) {
            return bad("n_embd", "sinusoidal positions need an even n_embd".into());
        }
        if self.share_embeddings && self.src_vocab_size != self.tgt_vocab_size {
            let msg = format!(
                "share_embeddings needs src_vocab_size ({}) = tgt_vocab_size ({})",
                self.src_vocab_size, self.tgt_vocab_size
            );
            return bad("share_embeddings", msg);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_field_and_validation() {
        let gpt = serde_json::json!({"vocab_size": 5});
        assert_eq!(Arch::of_config_json(&gpt).unwrap(), Arch::Gpt);
        let s2s = serde_json::json!({"arch": "encoder-decoder"});
        assert_eq!(Arch::of_config_json(&s2s).unwrap(), Arch::EncoderDecoder);
        let err = Arch::of_config_json(&serde_json::json!({"arch": "rnn"})).unwrap_err();
        assert!(err.to_string().contains("\"rnn\""), "{err}");
        let cfg = Seq2seqConfig::new(10, 12, 2, 2, 8, 6, 7);
        cfg.validate().unwrap();
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["arch"], "encoder-decoder");
        assert_eq!(json["norm"], "pre");
        let back: Seq2seqConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, cfg);
        let mut c = cfg.clone();
        c.n_embd = 9;
        assert!(c.validate().unwrap_err().to_string().contains("n_embd"));
        let mut c = cfg.clone();
        c.share_embeddings = true;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("share_embeddings"));
        let mut c = cfg;
        c.tgt_block_size = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("tgt_block_size"));
    }
}
