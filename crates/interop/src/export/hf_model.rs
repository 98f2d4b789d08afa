//! The weights and `config.json` of a Hugging Face `transformers` model.
//!
//! - Learned or sinusoidal positions → `GPT2LMHeadModel`: nanoGPT's names (they are GPT-2's),
//!   the four `Conv1D` weights transposed to `[in, out]` ([`crate::gpt2`]), the sinusoidal
//!   table written as `wpe`, zero biases when the model has none, `lm_head` only when untied.
//! - RoPE → `GPTNeoXForCausalLM` with `use_parallel_residual: false` (nanoGPT's sequential
//!   residual), `rotary_pct: 1.0` (our rotary covers the whole head, rotate-half layout like
//!   NeoX), and the fused qkv rows regrouped per head: ours are `[q (C); k (C); v (C)]`,
//!   NeoX views its `[3C, C]` weight as `[n_head, 3, hs, C]`.

use lmforge_model::{Activation, ModelConfig, PosEncoding};
use lmforge_tokenizer::SpecialTokens;
use serde_json::{json, Value};

use super::error::Result;
use super::tensors::{Source, Tensor, WeightDtype};
use crate::gpt2::{is_conv1d_weight, transpose};

/// LayerNorm epsilon of every lmforge model (`ops::layernorm`).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// The HF architecture an lmforge model maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfArch {
    /// `GPT2LMHeadModel` (learned or sinusoidal positions).
    Gpt2,
    /// `GPTNeoXForCausalLM` (RoPE).
    GptNeoX,
}

impl HfArch {
    /// The architecture for `cfg`'s position encoding.
    pub fn for_config(cfg: &ModelConfig) -> Self {
        match cfg.pos_encoding {
            PosEncoding::Rope => HfArch::GptNeoX,
            _ => HfArch::Gpt2,
        }
    }
}

/// `transformers`' name for the MLP activation: `gelu` is exact, `gelu_new` the tanh form.
fn hf_activation(a: Activation) -> &'static str {
    match a {
        Activation::Gelu => "gelu",
        Activation::GeluTanh => "gelu_new",
        Activation::Relu => "relu",
    }
}

/// The `GPT2LMHeadModel` state dict of the model behind `src`.
pub(crate) fn gpt2_tensors(src: &Source) -> Result<Vec<Tensor>> {
    let cfg = src.model.config();
    let (c, h) = (cfg.n_embd, cfg.hidden());
    let mut out = vec![Tensor::new(
        "transformer.wte.weight",
        vec![src.vocab, c],
        src.token_embedding()?,
    )];
    if let Some(table) = src.position_table()? {
        out.push(Tensor::new(
            "transformer.wpe.weight",
            vec![cfg.block_size, c],
            table,
        ));
    }
    for i in 0..cfg.n_layer {
        let p = format!("transformer.h.{i}");
        for (part, rows, cols) in [
            ("ln_1", 0, c),
            ("attn.c_attn", 3 * c, c),
            ("attn.c_proj", c, c),
            ("ln_2", 0, c),
            ("mlp.c_fc", h, c),
            ("mlp.c_proj", c, h),
        ] {
            let w = format!("{p}.{part}.weight");
            let (shape, data) = match rows {
                0 => (vec![cols], src.get(&w)?.to_vec()),
                _ if is_conv1d_weight(&w) => {
                    (vec![cols, rows], transpose(src.get(&w)?, rows, cols))
                }
                _ => (vec![rows, cols], src.get(&w)?.to_vec()),
            };
            out.push(Tensor::new(w, shape, data));
            let b = format!("{p}.{part}.bias");
            let n = if rows == 0 { cols } else { rows };
            out.push(Tensor::new(b.clone(), vec![n], src.or_zeros(&b, n)?));
        }
    }
    out.push(Tensor::new(
        "transformer.ln_f.weight",
        vec![c],
        src.get("transformer.ln_f.weight")?.to_vec(),
    ));
    out.push(Tensor::new(
        "transformer.ln_f.bias",
        vec![c],
        src.or_zeros("transformer.ln_f.bias", c)?,
    ));
    if !cfg.tie_embeddings {
        out.push(Tensor::new(
            "lm_head.weight",
            vec![src.vocab, c],
            src.head()?,
        ));
    }
    Ok(out)
}

/// Regroups fused qkv rows from `[q; k; v]` (each `[n_head, hs]` rows) to NeoX's
/// `[n_head, (q, k, v), hs]`. `row_len` is the number of values per row (C for the
/// weight, 1 for the bias).
pub fn qkv_rows_to_neox(data: &[f32], n_head: usize, hs: usize, row_len: usize) -> Vec<f32> {
    let c = n_head * hs;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..n_head {
        for j in 0..3 {
            let start = (j * c + h * hs) * row_len;
            out.extend_from_slice(&data[start..start + hs * row_len]);
        }
    }
    out
}

/// The `GPTNeoXForCausalLM` state dict of the (RoPE) model behind `src`.
pub(crate) fn neox_tensors(src: &Source) -> Result<Vec<Tensor>> {
    let cfg = src.model.config();
    let (c, h, nh, hs) = (cfg.n_embd, cfg.hidden(), cfg.n_head, cfg.head_size());
    let mut out = vec![Tensor::new(
        "gpt_neox.embed_in.weight",
        vec![src.vocab, c],
        src.token_embedding()?,
    )];
    for i in 0..cfg.n_layer {
        let (ours, theirs) = (format!("transformer.h.{i}"), format!("gpt_neox.layers.{i}"));
        for (part, name, rows, cols) in [
            ("ln_1", "input_layernorm", 0, c),
            ("attn.c_attn", "attention.query_key_value", 3 * c, c),
            ("attn.c_proj", "attention.dense", c, c),
            ("ln_2", "post_attention_layernorm", 0, c),
            ("mlp.c_fc", "mlp.dense_h_to_4h", h, c),
            ("mlp.c_proj", "mlp.dense_4h_to_h", c, h),
        ] {
            let qkv = part == "attn.c_attn";
            let w = src.get(&format!("{ours}.{part}.weight"))?;
            let (shape, w) = match rows {
                0 => (vec![cols], w.to_vec()),
                _ if qkv => (vec![rows, cols], qkv_rows_to_neox(w, nh, hs, cols)),
                _ => (vec![rows, cols], w.to_vec()),
            };
            out.push(Tensor::new(format!("{theirs}.{name}.weight"), shape, w));
            let n = if rows == 0 { cols } else { rows };
            let mut b = src.or_zeros(&format!("{ours}.{part}.bias"), n)?;
            if qkv {
                b = qkv_rows_to_neox(&b, nh, hs, 1);
            }
            out.push(Tensor::new(format!("{theirs}.{name}.bias"), vec![n], b));
        }
    }
    out.push(Tensor::new(
        "gpt_neox.final_layer_norm.weight",
        vec![c],
        src.get("transformer.ln_f.weight")?.to_vec(),
    ));
    out.push(Tensor::new(
        "gpt_neox.final_layer_norm.bias",
        vec![c],
        src.or_zeros("transformer.ln_f.bias", c)?,
    ));
    // Written even when tied: `transformers` then ties it to the same values.
    out.push(Tensor::new(
        "embed_out.weight",
        vec![src.vocab, c],
        src.head()?,
    ));
    Ok(out)
}

/// `config.json` for `arch`, with the vocabulary cropped to `vocab`.
pub(crate) fn config_json(
    cfg: &ModelConfig,
    arch: HfArch,
    vocab: usize,
    specials: &SpecialTokens,
    dtype: WeightDtype,
) -> Value {
    let mut v = match arch {
        HfArch::Gpt2 => json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": vocab,
            "n_positions": cfg.block_size,
            "n_ctx": cfg.block_size,
            "n_embd": cfg.n_embd,
            "n_layer": cfg.n_layer,
            "n_head": cfg.n_head,
            "n_inner": cfg.hidden(),
            "activation_function": hf_activation(cfg.activation),
            "resid_pdrop": cfg.dropout,
            "embd_pdrop": cfg.dropout,
            "attn_pdrop": cfg.dropout,
            "layer_norm_epsilon": LAYER_NORM_EPS,
            "scale_attn_weights": true,
            "scale_attn_by_inverse_layer_idx": false,
            "reorder_and_upcast_attn": false,
            "add_cross_attention": false,
        }),
        HfArch::GptNeoX => json!({
            "architectures": ["GPTNeoXForCausalLM"],
            "model_type": "gpt_neox",
            "vocab_size": vocab,
            "hidden_size": cfg.n_embd,
            "num_hidden_layers": cfg.n_layer,
            "num_attention_heads": cfg.n_head,
            "intermediate_size": cfg.hidden(),
            "hidden_act": hf_activation(cfg.activation),
            "max_position_embeddings": cfg.block_size,
            "layer_norm_eps": LAYER_NORM_EPS,
            "use_parallel_residual": false,
            "attention_bias": true,
            "attention_dropout": cfg.dropout,
            "hidden_dropout": cfg.dropout,
            // transformers < 5 reads these two, 5 and later `rope_parameters`.
            "rotary_pct": 1.0,
            "rotary_emb_base": cfg.rope_theta,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": cfg.rope_theta,
                "partial_rotary_factor": 1.0,
            },
        }),
    };
    let obj = v.as_object_mut().expect("json! object literal");
    obj.insert("tie_word_embeddings".into(), cfg.tie_embeddings.into());
    obj.insert("bos_token_id".into(), json!(specials.bos));
    obj.insert("eos_token_id".into(), json!(specials.eos));
    obj.insert("pad_token_id".into(), json!(specials.pad));
    obj.insert("torch_dtype".into(), dtype.torch_name().into());
    obj.insert("use_cache".into(), true.into());
    // The exact lmforge config (position encoding, bias, padded vocabulary), so an import
    // of this folder can rebuild the original model rather than its HF equivalent.
    obj.insert("lmforge_model_config".into(), json!(cfg));
    v
}

/// `generation_config.json`: the special ids `generate()` uses.
pub(crate) fn generation_config_json(specials: &SpecialTokens) -> Value {
    json!({
        "bos_token_id": specials.bos,
        "eos_token_id": specials.eos,
        "pad_token_id": specials.pad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neox_qkv_rows_are_grouped_per_head() {
        // 2 heads of size 1, rows q0 q1 k0 k1 v0 v1 (one value per row) → q0 k0 v0 q1 k1 v1.
        let rows = [10.0, 11.0, 20.0, 21.0, 30.0, 31.0];
        assert_eq!(
            qkv_rows_to_neox(&rows, 2, 1, 1),
            vec![10.0, 20.0, 30.0, 11.0, 21.0, 31.0]
        );
        // Row length 2 moves whole rows.
        let w: Vec<f32> = (0..12).map(|x| x as f32).collect();
        assert_eq!(
            qkv_rows_to_neox(&w, 2, 1, 2),
            vec![0., 1., 4., 5., 8., 9., 2., 3., 6., 7., 10., 11.]
        );
    }
}
