//! An lmforge checkpoint as a GGUF file llama.cpp loads: architecture `gpt2` (learned or
//! sinusoidal positions, the table written as `position_embd`) or `gptneox` (RoPE), the
//! hyper-parameters its loader requires, the tokenizer as `tokenizer.ggml.*` (byte-level
//! BPE only: tokens, token types, merges, the pre-tokenizer's name, special ids), and the
//! weights under llama.cpp's names. Matrices are written in the chosen dtype, vectors
//! (norms, biases) in F32 as llama.cpp's own converter does.

use lmforge_model::{Activation, ModelConfig, PosEncoding};
use lmforge_tokenizer::hf::HfKind;
use lmforge_tokenizer::Tokenizer;
use serde_json::Value as Json;

use super::error::{ExportError, Result};
use super::gguf::{GgmlType, GgufWriter, Value};
use super::hf_model::{qkv_rows_to_neox, LAYER_NORM_EPS};
use super::hf_tokenizer::unused_token;
use super::tensors::{encode, Source, Tensor, WeightDtype};
use super::tiktoken_vocab::llama_cpp_pre;

/// llama.cpp token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const UNUSED: i32 = 5;

/// llama.cpp's name of the pre-tokenizer, or why the tokenizer cannot go into GGUF.
pub fn gguf_pre_tokenizer(tok: &Tokenizer) -> Result<&'static str> {
    let refuse = |why: String| {
        Err(ExportError::unsupported(
            "gguf",
            format!("{why}; GGUF export supports byte-level BPE tokenizers only (lmforge's bpe kind, tiktoken:*); export with --format hf instead"),
        ))
    };
    match tok {
        Tokenizer::Tiktoken(t) => llama_cpp_pre(t.name()).map_or_else(
            || {
                refuse(format!(
                    "tiktoken:{} has no llama.cpp pre-tokenizer",
                    t.name()
                ))
            },
            Ok,
        ),
        Tokenizer::Hf(t) if t.kind == HfKind::Bpe => {
            let json: Json =
                serde_json::from_str(&t.json).map_err(|e| ExportError::Tokenizer(e.to_string()))?;
            let pre = &json["pre_tokenizer"];
            let gpt2_split = pre["type"] == "ByteLevel" && pre["use_regex"] == true;
            if json["normalizer"].is_null() && gpt2_split {
                Ok("gpt-2")
            } else {
                refuse("this BPE tokenizer is not GPT-2-style byte-level (normaliser or pre-tokenizer differ), so llama.cpp would split text differently".into())
            }
        }
        other => refuse(format!("the checkpoint's tokenizer is {}", other.kind())),
    }
}

/// The tokenizer as GGUF metadata, from its Hugging Face form `hf` (byte-level strings).
fn tokenizer_metadata(
    w: &mut GgufWriter,
    tok: &Tokenizer,
    hf: &tokenizers::Tokenizer,
    pre: &str,
) -> Result<()> {
    let n = tok.vocab_size();
    let specials: Vec<u32> = hf
        .get_added_tokens_decoder()
        .iter()
        .filter(|(_, t)| t.special)
        .map(|(&id, _)| id)
        .collect();
    let mut tokens = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    for id in 0..n as u32 {
        let t = hf.id_to_token(id).unwrap_or_else(|| unused_token(id));
        types.push(match t == unused_token(id) {
            true => UNUSED,
            false if specials.contains(&id) => CONTROL,
            false => NORMAL,
        });
        tokens.push(t);
    }
    let json: Json = serde_json::from_str(
        &hf.to_string(false)
            .map_err(|e| ExportError::Tokenizer(e.to_string()))?,
    )
    .map_err(|e| ExportError::Tokenizer(e.to_string()))?;
    let merges = json["model"]["merges"]
        .as_array()
        .map(|m| m.iter().filter_map(merge_text).collect())
        .unwrap_or_default();
    w.kv("tokenizer.ggml.model", Value::Str("gpt2".into()));
    w.kv("tokenizer.ggml.pre", Value::Str(pre.into()));
    w.kv("tokenizer.ggml.tokens", Value::Strs(tokens));
    w.kv("tokenizer.ggml.token_type", Value::I32s(types));
    w.kv("tokenizer.ggml.merges", Value::Strs(merges));
    let s = tok.special_tokens();
    // Without a bos of its own (tiktoken), GPT-2's convention: bos = eos = <|endoftext|>.
    for (key, id) in [
        ("bos", s.bos.or(s.eos)),
        ("eos", s.eos),
        ("unknown", s.unk),
        ("padding", s.pad),
    ] {
        if let Some(id) = id {
            w.kv(&format!("tokenizer.ggml.{key}_token_id"), Value::U32(id));
        }
    }
    w.kv("tokenizer.ggml.add_bos_token", Value::Bool(false));
    w.kv("tokenizer.ggml.add_eos_token", Value::Bool(false));
    Ok(())
}

/// A merge as llama.cpp stores it (`"left right"`), from either `tokenizer.json` form.
fn merge_text(m: &Json) -> Option<String> {
    match m {
        Json::String(s) => Some(s.clone()),
        Json::Array(p) => Some(format!("{} {}", p.first()?.as_str()?, p.get(1)?.as_str()?)),
        _ => None,
    }
}

/// The GGUF architecture name for `cfg`.
pub fn gguf_arch(cfg: &ModelConfig) -> &'static str {
    match cfg.pos_encoding {
        PosEncoding::Rope => "gptneox",
        _ => "gpt2",
    }
}

/// Hyper-parameters under `{arch}.*`.
fn model_metadata(w: &mut GgufWriter, cfg: &ModelConfig, name: &str, dtype: WeightDtype) {
    let arch = gguf_arch(cfg);
    w.kv("general.architecture", Value::Str(arch.into()));
    w.kv("general.name", Value::Str(name.into()));
    let file_type = match dtype {
        WeightDtype::F32 => 0,
        WeightDtype::F16 => 1,
        WeightDtype::Bf16 => 32,
    };
    w.kv("general.file_type", Value::U32(file_type));
    w.kv(
        "general.alignment",
        Value::U32(super::gguf::ALIGNMENT as u32),
    );
    let k = |s: &str| format!("{arch}.{s}");
    w.kv(&k("context_length"), Value::U32(cfg.block_size as u32));
    w.kv(&k("embedding_length"), Value::U32(cfg.n_embd as u32));
    w.kv(&k("feed_forward_length"), Value::U32(cfg.hidden() as u32));
    w.kv(&k("block_count"), Value::U32(cfg.n_layer as u32));
    w.kv(&k("attention.head_count"), Value::U32(cfg.n_head as u32));
    w.kv(
        &k("attention.layer_norm_epsilon"),
        Value::F32(LAYER_NORM_EPS as f32),
    );
    if cfg.pos_encoding == PosEncoding::Rope {
        w.kv(
            &k("rope.dimension_count"),
            Value::U32(cfg.head_size() as u32),
        );
        w.kv(&k("rope.freq_base"), Value::F32(cfg.rope_theta));
        w.kv(&k("use_parallel_residual"), Value::Bool(false));
    }
}

/// The weights under llama.cpp's names, in nn.Linear layout (ggml's `{in, out}`).
pub(crate) fn gguf_tensors(src: &Source) -> Result<Vec<Tensor>> {
    let cfg = src.model.config();
    let (c, h, v) = (cfg.n_embd, cfg.hidden(), src.vocab);
    let rope = cfg.pos_encoding == PosEncoding::Rope;
    let mut out = vec![Tensor::new(
        "token_embd.weight",
        vec![v, c],
        src.token_embedding()?,
    )];
    if let Some(table) = src.position_table()? {
        out.push(Tensor::new(
            "position_embd.weight",
            vec![cfg.block_size, c],
            table,
        ));
    }
    for i in 0..cfg.n_layer {
        for (ours, theirs, rows, cols) in [
            ("ln_1", "attn_norm", 0, c),
            ("attn.c_attn", "attn_qkv", 3 * c, c),
            ("attn.c_proj", "attn_output", c, c),
            ("ln_2", "ffn_norm", 0, c),
            ("mlp.c_fc", "ffn_up", h, c),
            ("mlp.c_proj", "ffn_down", c, h),
        ] {
            let (p, q) = (
                format!("transformer.h.{i}.{ours}"),
                format!("blk.{i}.{theirs}"),
            );
            let regroup = rope && ours == "attn.c_attn";
            let mut w = src.get(&format!("{p}.weight"))?.to_vec();
            let n = if rows == 0 { cols } else { rows };
            let mut b = src.or_zeros(&format!("{p}.bias"), n)?;
            if regroup {
                w = qkv_rows_to_neox(&w, cfg.n_head, cfg.head_size(), cols);
                b = qkv_rows_to_neox(&b, cfg.n_head, cfg.head_size(), 1);
            }
            let shape = if rows == 0 {
                vec![cols]
            } else {
                vec![rows, cols]
            };
            out.push(Tensor::new(format!("{q}.weight"), shape, w));
            out.push(Tensor::new(format!("{q}.bias"), vec![n], b));
        }
    }
    out.push(Tensor::new(
        "output_norm.weight",
        vec![c],
        src.get("transformer.ln_f.weight")?.to_vec(),
    ));
    out.push(Tensor::new(
        "output_norm.bias",
        vec![c],
        src.or_zeros("transformer.ln_f.bias", c)?,
    ));
    // gpt2 reuses token_embd when `output` is absent; gptneox requires it.
    if rope || !cfg.tie_embeddings {
        out.push(Tensor::new("output.weight", vec![v, c], src.head()?));
    }
    Ok(out)
}

/// The whole GGUF file for the model behind `src` with tokenizer `tok` (whose Hugging Face
/// form is `hf`), and the warnings to show.
pub(crate) fn build(
    src: &Source,
    tok: &Tokenizer,
    hf: &tokenizers::Tokenizer,
    name: &str,
    dtype: WeightDtype,
) -> Result<(GgufWriter, Vec<String>)> {
    let pre = gguf_pre_tokenizer(tok)?;
    let cfg = src.model.config();
    let mut w = GgufWriter::new();
    model_metadata(&mut w, cfg, name, dtype);
    tokenizer_metadata(&mut w, tok, hf, pre)?;
    for t in gguf_tensors(src)? {
        let (ty, dt) = match (t.shape.len(), dtype) {
            (1, _) | (_, WeightDtype::F32) => (GgmlType::F32, WeightDtype::F32),
            (_, WeightDtype::F16) => (GgmlType::F16, WeightDtype::F16),
            (_, WeightDtype::Bf16) => (GgmlType::Bf16, WeightDtype::Bf16),
        };
        let bytes = encode(&t, dt)?;
        w.tensor(&t.name, &t.shape, ty, bytes);
    }
    let mut warnings = Vec::new();
    if cfg.activation == Activation::Gelu {
        warnings.push(format!(
            "llama.cpp's {} graph uses the tanh GELU, but this model was trained with exact GELU: llama.cpp's logits will differ slightly from lmforge's",
            gguf_arch(cfg)
        ));
    }
    Ok((w, warnings))
}
