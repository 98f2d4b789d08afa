//! Which of lmforge's architecture switches (issue 14) an export target can express.
//!
//! Exported exactly: a missing q/k/v bias (`qkv_bias = false`) is a zero `c_attn` bias in
//! GPT-2, GPT-NeoX and GGUF alike, and a q/k/v bias without the others is those others at
//! zero; ReLU is `activation_function: "relu"` (GPT-2) / `hidden_act: "relu"` (NeoX).
//! Refused, one line each, because no Hugging Face GPT-2/NeoX or llama.cpp `gpt2`/`gptneox`
//! graph computes them: post-LN blocks, a bias on the output layer (`lm_head` is a bias-free
//! Linear in both), sinusoidal positions together with RoPE, and ReLU in GGUF (llama.cpp's
//! GPT-2 graph hard-codes GELU).

use lmforge_model::{Activation, ModelConfig, Norm, PosEncoding};

use super::error::{ExportError, Result};

/// Refuses `cfg` when `format` (`"hf"` or `"gguf"`) cannot compute the same function.
pub(crate) fn check_expressible(cfg: &ModelConfig, format: &'static str) -> Result<()> {
    let target = match format {
        "gguf" => "llama.cpp's gpt2/gptneox graphs",
        _ => "Hugging Face GPT2LMHeadModel and GPTNeoXForCausalLM",
    };
    let refuse = |what: &str| {
        Err(ExportError::unsupported(
            format,
            format!("{what}, which {target} cannot express (keep the lmforge checkpoint for this model)"),
        ))
    };
    if cfg.norm == Norm::Post {
        return refuse("the model has post-LN blocks (norm = post)");
    }
    if cfg.head_bias {
        return refuse("the output layer has a bias (head_bias = true)");
    }
    if cfg.pos_encoding == PosEncoding::SinusoidalRope {
        return refuse(
            "the model adds sinusoidal positions and rotates q/k (pos_encoding = sinusoidal+rope)",
        );
    }
    if format == "gguf" && cfg.activation == Activation::Relu {
        return refuse("the MLP uses ReLU (activation = relu)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_inexpressible_switch_is_named() {
        let base = ModelConfig::new(10, 1, 2, 8, 4);
        let mut post = base.clone();
        post.norm = Norm::Post;
        let mut head = base.clone();
        (head.tie_embeddings, head.head_bias) = (false, true);
        let mut both = base.clone();
        both.pos_encoding = PosEncoding::SinusoidalRope;
        for (cfg, want) in [
            (post, "norm = post"),
            (head, "head_bias = true"),
            (both, "pos_encoding = sinusoidal+rope"),
        ] {
            for format in ["hf", "gguf"] {
                let e = check_expressible(&cfg, format).unwrap_err().to_string();
                assert!(
                    e.starts_with(&format!("cannot export to {format}: ")),
                    "{e}"
                );
                assert!(e.contains(want) && !e.contains('\n'), "{e}");
            }
        }
        let mut relu = base.clone();
        relu.activation = Activation::Relu;
        relu.qkv_bias = Some(false);
        assert!(check_expressible(&relu, "hf").is_ok());
        let e = check_expressible(&relu, "gguf").unwrap_err().to_string();
        assert!(e.contains("activation = relu"), "{e}");
        assert!(check_expressible(&base, "gguf").is_ok());
    }
}
