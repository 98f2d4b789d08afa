//! Export an lmforge checkpoint to Hugging Face `transformers` or GGUF (llama.cpp).
//!
//! [`export`] loads the checkpoint, checks that the target format can represent the model
//! and its tokenizer, builds every file in memory, then writes them into a temporary
//! folder (GGUF: a temporary file) beside `--out` and renames it into place: an error at
//! any step leaves no output behind.
//!
//! - [`hf_model`]: `GPT2LMHeadModel` / `GPTNeoXForCausalLM` weights and `config.json`.
//! - [`hf_tokenizer`]: `tokenizer.json` + `tokenizer_config.json` for every exact kind.
//! - [`tiktoken_vocab`]: tiktoken ranks → byte-level vocabulary and merges.
//! - [`gguf`]: the GGUF container (writer and reader); [`gguf_model`]: what goes in it.
//! - [`tensors`]: reading weights for export, `--dtype` conversion.

pub mod error;
pub mod gguf;
pub mod gguf_model;
pub mod hf_model;
pub mod hf_tokenizer;
mod switches;
pub mod tensors;
pub mod tiktoken_vocab;
mod write;

use std::path::{Path, PathBuf};

use lmforge_checkpoint::Checkpoint;
use safetensors::tensor::TensorView;

pub use error::{ExportError, Result};
pub use hf_model::HfArch;
pub use tensors::{Tensor, WeightDtype};

use tensors::Source;

/// Target of `lmforge export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A Hugging Face `transformers` folder.
    Hf,
    /// A GGUF file for llama.cpp.
    Gguf,
}

impl ExportFormat {
    /// Parses `hf` (also `huggingface`, `transformers`) or `gguf`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "hf" | "huggingface" | "transformers" => Ok(ExportFormat::Hf),
            "gguf" | "llama.cpp" => Ok(ExportFormat::Gguf),
            other => Err(ExportError::Usage {
                flag: "--format",
                reason: format!("unknown format '{other}' (expected hf or gguf)"),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ExportFormat::Hf => "hf",
            ExportFormat::Gguf => "gguf",
        }
    }
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// hf or gguf.
    pub format: ExportFormat,
    /// Element type of the weights (`--dtype`).
    pub dtype: WeightDtype,
    /// Replace an existing `--out` (otherwise an existing non-empty output is refused).
    pub force: bool,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The folder (hf) or file (gguf) written.
    pub out: PathBuf,
    /// File names written (inside `out` for hf).
    pub files: Vec<String>,
    /// The target architecture (`GPT2LMHeadModel`, `GPTNeoXForCausalLM`, `gpt2`, `gptneox`).
    pub arch: String,
    /// Rows of the exported vocabulary (the tokenizer's size).
    pub vocab_size: usize,
    /// Things the user should know (exact GELU in llama.cpp, ...).
    pub warnings: Vec<String>,
}

/// Exports the checkpoint folder (or run folder) `checkpoint` to `out`.
pub fn export(checkpoint: &Path, out: &Path, opts: &ExportOptions) -> Result<ExportReport> {
    write::check_out(out, opts.force)?;
    let ckpt = Checkpoint::load(checkpoint)?;
    switches::check_expressible(ckpt.model.config(), opts.format.name())?;
    let src = Source {
        model: &ckpt.model,
        vocab: ckpt.tokenizer.vocab_size(),
    };
    let hf_tok = hf_tokenizer::to_hf_tokenizer(&ckpt.tokenizer).map_err(|e| match e {
        ExportError::Tokenizer(why) => ExportError::unsupported(opts.format.name(), why),
        other => other,
    })?;
    match opts.format {
        ExportFormat::Hf => export_hf(&ckpt, &src, &hf_tok, out, opts),
        ExportFormat::Gguf => {
            let name = ckpt
                .dir
                .file_name()
                .map_or("lmforge".into(), |n| n.to_string_lossy().into_owned());
            let (w, warnings) =
                gguf_model::build(&src, &ckpt.tokenizer, &hf_tok, &name, opts.dtype)?;
            write::file(out, opts.force, |f| w.write(f))?;
            Ok(ExportReport {
                out: out.to_path_buf(),
                files: vec![out
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned())],
                arch: gguf_model::gguf_arch(ckpt.model.config()).into(),
                vocab_size: src.vocab,
                warnings,
            })
        }
    }
}

/// The files of a Hugging Face folder, then the folder written atomically.
fn export_hf(
    ckpt: &Checkpoint,
    src: &Source,
    hf_tok: &tokenizers::Tokenizer,
    out: &Path,
    opts: &ExportOptions,
) -> Result<ExportReport> {
    let cfg = ckpt.model.config();
    let arch = HfArch::for_config(cfg);
    let tensors = match arch {
        HfArch::Gpt2 => hf_model::gpt2_tensors(src)?,
        HfArch::GptNeoX => hf_model::neox_tensors(src)?,
    };
    let specials = ckpt.tokenizer.special_tokens();
    let config = hf_model::config_json(cfg, arch, src.vocab, &specials, opts.dtype);
    let tok_json = hf_tok
        .to_string(false)
        .map_err(|e| ExportError::Tokenizer(e.to_string()))?;
    let tok_config = hf_tokenizer::tokenizer_config(hf_tok, &ckpt.tokenizer, cfg.block_size);
    let pretty = |v: &serde_json::Value| serde_json::to_vec_pretty(v).unwrap_or_default();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("config.json", pretty(&config)),
        (
            "generation_config.json",
            pretty(&hf_model::generation_config_json(&specials)),
        ),
        (
            "model.safetensors",
            safetensors_bytes(&tensors, opts.dtype)?,
        ),
        ("tokenizer.json", tok_json.into_bytes()),
        ("tokenizer_config.json", pretty(&tok_config)),
    ];
    write::folder(out, opts.force, &files)?;
    Ok(ExportReport {
        out: out.to_path_buf(),
        files: files.iter().map(|(n, _)| n.to_string()).collect(),
        arch: match arch {
            HfArch::Gpt2 => "GPT2LMHeadModel".into(),
            HfArch::GptNeoX => "GPTNeoXForCausalLM".into(),
        },
        vocab_size: src.vocab,
        warnings: Vec::new(),
    })
}

/// `model.safetensors` bytes (`format: pt` metadata, as `transformers` expects).
pub fn safetensors_bytes(tensors: &[Tensor], dtype: WeightDtype) -> Result<Vec<u8>> {
    let data = tensors
        .iter()
        .map(|t| tensors::encode(t, dtype))
        .collect::<Result<Vec<_>>>()?;
    let st_err = |e: safetensors::SafeTensorError| ExportError::Io {
        path: "model.safetensors".into(),
        reason: e.to_string(),
    };
    let views = tensors
        .iter()
        .zip(&data)
        .map(|(t, d)| {
            TensorView::new(dtype.safetensors(), t.shape.clone(), d).map(|v| (t.name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(st_err)?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(meta)).map_err(st_err)
}
