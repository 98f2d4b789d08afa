//! Import a Hugging Face GPT-2 folder or a nanoGPT / PyTorch checkpoint.
//!
//! [`load`] turns a *source* into an lmforge [`Gpt`] and its [`Tokenizer`]; `lmforge import`
//! writes that as a checkpoint folder ([`write_checkpoint`]) and `lmforge train --init-from`
//! starts fine-tuning from it. Sources ([`Source::parse`]):
//!
//! - `hf:DIR`, or a folder whose `config.json` is a Hugging Face one: a GPT-2 folder
//!   ([`hf`]); its tokenizer is `tiktoken:gpt2` (GPT-2's ids) when the vocabulary is
//!   GPT-2's, else the folder's `tokenizer.json`;
//! - `*.pt`, `*.pth`, `*.bin`, `*.ckpt`: a `torch.save` file read without Python
//!   ([`torch`], [`pickle`]) — nanoGPT's `ckpt.pt` or a bare state_dict ([`nanogpt`]);
//! - `*.safetensors`: a bare state_dict;
//! - any other folder: an lmforge checkpoint or run folder.
//!
//! Tensor names may carry `_orig_mod.` (torch.compile), lack `transformer.` (the original
//! GPT-2 upload), and come with `attn.bias` mask buffers; the projection layout (`Conv1D`
//! or `nn.Linear`) is read off `c_attn`'s shape. fp16, bf16 and f64 weights become f32.

pub mod error;
pub mod hf;
pub mod nanogpt;
pub mod pickle;
pub mod store;
pub mod torch;
pub mod weights;

use std::path::{Path, PathBuf};

use lmforge_checkpoint::{save_checkpoint, Checkpoint, CheckpointParts};
use lmforge_model::{Gpt, ModelConfig, PosEncoding};
use lmforge_tokenizer::Tokenizer;

pub use error::{ImportError, Result};
use weights::{build_model, detect_layout};

/// GPT-2's vocabulary (50,257 ids) and nanoGPT's padded one for it.
const GPT2_VOCABS: [usize; 2] = [50257, 50304];

/// What to import, as the user names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A Hugging Face GPT-2 folder.
    HfFolder(PathBuf),
    /// A `torch.save` file (nanoGPT `ckpt.pt` or a state_dict).
    Torch(PathBuf),
    /// A bare safetensors state_dict.
    Safetensors(PathBuf),
    /// An lmforge checkpoint or run folder.
    Lmforge(PathBuf),
}

impl Source {
    /// Recognises `spec` (see the module docs); an unknown kind is an error listing the
    /// accepted ones.
    pub fn parse(spec: &str) -> Result<Source> {
        if let Some(dir) = spec.strip_prefix("hf:") {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                return Err(ImportError::bad(
                    &dir,
                    "not a folder (hf:DIR names a Hugging Face GPT-2 folder)",
                ));
            }
            return Ok(Source::HfFolder(dir));
        }
        let path = PathBuf::from(spec);
        if path.is_dir() {
            return Ok(match hf::is_hf_folder(&path) {
                true => Source::HfFolder(path),
                false => Source::Lmforge(path),
            });
        }
        if !path.exists() {
            return Err(ImportError::bad(&path, "no such file or folder"));
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "pt" | "pth" | "bin" | "ckpt" => Ok(Source::Torch(path)),
            "safetensors" => Ok(Source::Safetensors(path)),
            _ => Err(ImportError::bad(
                &path,
                "unknown source format: expected hf:DIR, a Hugging Face GPT-2 folder, an lmforge checkpoint or run folder, or a .pt/.pth/.bin/.ckpt/.safetensors file",
            )),
        }
    }

    /// The file or folder.
    pub fn path(&self) -> &Path {
        match self {
            Source::HfFolder(p)
            | Source::Torch(p)
            | Source::Safetensors(p)
            | Source::Lmforge(p) => p,
        }
    }
}

/// Choices a source cannot make itself.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Tokenizer spec (`tiktoken:gpt2`, a file, ...) instead of the source's default.
    pub tokenizer: Option<String>,
    /// Head count for a bare state_dict (shapes do not record it).
    pub n_head: Option<usize>,
}

/// An imported model with its tokenizer.
pub struct Imported {
    /// The model, weights loaded.
    pub model: Gpt,
    /// The tokenizer its ids belong to.
    pub tokenizer: Tokenizer,
    /// What was imported, for messages (`Hugging Face GPT-2 folder models/gpt2`).
    pub description: String,
}

/// Imports `source` (see the module docs).
pub fn load(source: &Source, opts: &ImportOptions) -> Result<Imported> {
    let path = source.path();
    if let Source::Lmforge(dir) = source {
        let ck = Checkpoint::load(dir)?;
        let tokenizer = match &opts.tokenizer {
            Some(spec) => checked_tokenizer(Tokenizer::load(spec)?, ck.model.config(), path)?,
            None => ck.tokenizer,
        };
        return Ok(Imported {
            model: ck.model,
            tokenizer,
            description: format!("lmforge checkpoint {}", ck.dir.display()),
        });
    }
    let (mut cfg, mut store, what) = match source {
        Source::HfFolder(dir) => (
            hf::read_config(dir)?,
            hf::open_weights(dir)?,
            "Hugging Face GPT-2 folder",
        ),
        Source::Torch(p) => {
            let (c, s) = nanogpt::open_torch(p, opts.n_head)?;
            (c, s, "PyTorch checkpoint")
        }
        Source::Safetensors(p) => {
            let (c, s) = nanogpt::open_safetensors(p, opts.n_head)?;
            (c, s, "safetensors state_dict")
        }
        Source::Lmforge(_) => unreachable!("handled above"),
    };
    let layout = detect_layout(&store, path)?;
    // GPT-2's biases are kept even when all zero (HF's fresh init, or an lmforge
    // `bias = false` export): the same function, and fine-tuning can still train them.
    cfg.pos_encoding = PosEncoding::Learned;
    let tokenizer = default_tokenizer(source, &cfg, opts)?;
    let model = build_model(cfg, &mut store, layout, path)?;
    Ok(Imported {
        model,
        tokenizer,
        description: format!("{what} {}", path.display()),
    })
}

/// `--tokenizer`, else GPT-2's for a GPT-2 vocabulary, else a Hugging Face folder's
/// `tokenizer.json`; checked to fit the model's vocabulary.
fn default_tokenizer(
    source: &Source,
    cfg: &ModelConfig,
    opts: &ImportOptions,
) -> Result<Tokenizer> {
    let path = source.path();
    let tok = match (&opts.tokenizer, source) {
        (Some(spec), _) => Tokenizer::load(spec)?,
        (None, _) if GPT2_VOCABS.contains(&cfg.vocab_size) => Tokenizer::load("tiktoken:gpt2")?,
        (None, Source::HfFolder(dir)) if dir.join("tokenizer.json").is_file() => {
            Tokenizer::load(&dir.join("tokenizer.json").to_string_lossy())?
        }
        (None, _) => {
            return Err(ImportError::bad(
                path,
                format!(
                    "vocab_size {} is not GPT-2's 50257 and the source carries no tokenizer: pass --tokenizer SPEC (a tokenizer file or built-in)",
                    cfg.vocab_size
                ),
            ))
        }
    };
    checked_tokenizer(tok, cfg, path)
}

fn checked_tokenizer(tok: Tokenizer, cfg: &ModelConfig, path: &Path) -> Result<Tokenizer> {
    if tok.vocab_size() > cfg.vocab_size {
        return Err(ImportError::bad(
            path,
            format!(
                "the tokenizer ({}) has {} ids but the model only {}: pass a --tokenizer that fits",
                tok.kind(),
                tok.vocab_size(),
                cfg.vocab_size
            ),
        ));
    }
    Ok(tok)
}

impl Imported {
    /// Shortens the context to `block_size` (nanoGPT's `crop_block_size`): the learned
    /// position table keeps its first rows, everything else is unchanged. Longer than the
    /// source is refused.
    pub fn crop_block_size(&mut self, block_size: usize) -> Result<()> {
        let cfg = self.model.config().clone();
        if block_size == cfg.block_size {
            return Ok(());
        }
        if block_size > cfg.block_size || block_size == 0 {
            return Err(ImportError::Model(lmforge_model::Error::Config {
                field: "block_size",
                msg: format!(
                    "{block_size} must be between 1 and the source's {} (a position table cannot grow)",
                    cfg.block_size
                ),
            }));
        }
        let mut new_cfg = cfg.clone();
        new_cfg.block_size = block_size;
        let mut cropped = Gpt::zeroed(new_cfg, 0)?;
        for ((name, _, dst), (_, _, src)) in cropped
            .named_parameters_mut()
            .zip(self.model.named_parameters())
        {
            let n = dst.len();
            debug_assert!(name != "transformer.wpe.weight" || n == block_size * cfg.n_embd);
            dst.copy_from_slice(&src[..n]);
        }
        self.model = cropped;
        Ok(())
    }
}

/// Writes `imported` as an inference-only lmforge checkpoint folder `out` (config.json,
/// model.safetensors, the tokenizer), atomically: a failure leaves no folder behind. An
/// existing `out` is refused.
pub fn write_checkpoint(imported: &Imported, out: &Path) -> Result<PathBuf> {
    if out.exists() {
        return Err(ImportError::bad(
            out,
            "already exists: choose another --out or remove it first",
        ));
    }
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ImportError::bad(out, "--out must name a folder"))?;
    let root = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parts = CheckpointParts {
        model: &imported.model,
        tokenizer: &imported.tokenizer,
        resume: None,
    };
    Ok(save_checkpoint(root, name, &parts)?)
}
