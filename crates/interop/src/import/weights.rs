//! From a [`Store`] of named tensors to an lmforge [`Gpt`]: the shape-derived parts of the
//! config, the layout (GPT-2 `Conv1D` or nanoGPT `nn.Linear`), and the copy itself with
//! every tensor's shape checked and named.

use std::collections::HashSet;
use std::path::Path;

use lmforge_model::{Gpt, ModelConfig};

use super::error::{ImportError, Result};
use super::store::Store;
use crate::gpt2::{is_conv1d_weight, transpose};

/// How the four projection weights are laid out in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// GPT-2's `Conv1D`: `[in, out]` (Hugging Face, OpenAI).
    Conv1D,
    /// nanoGPT's `nn.Linear`: `[out, in]` (lmforge's own layout).
    Linear,
}

const WTE: &str = "transformer.wte.weight";
const WPE: &str = "transformer.wpe.weight";
const C_ATTN: &str = "transformer.h.0.attn.c_attn.weight";
const C_FC: &str = "transformer.h.0.mlp.c_fc.weight";
const HEAD: &str = "lm_head.weight";

/// Tensors a GPT-2 checkpoint may hold that are not parameters: the causal-mask buffers.
fn is_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")
}

fn shape_of<'a>(store: &'a Store, src: &Path, name: &str) -> Result<&'a [usize]> {
    store.shape(name).ok_or_else(|| {
        ImportError::bad(
            src,
            format!("tensor {name} is missing: not a GPT-2 / nanoGPT checkpoint"),
        )
    })
}

/// The layout of the projections, told apart by `c_attn`'s shape (`[C, 3C]` or `[3C, C]`).
pub fn detect_layout(store: &Store, src: &Path) -> Result<Layout> {
    let c = shape_of(store, src, WTE)?.get(1).copied().unwrap_or(0);
    match shape_of(store, src, C_ATTN)? {
        [a, b] if *a == c && *b == 3 * c => Ok(Layout::Conv1D),
        [a, b] if *a == 3 * c && *b == c => Ok(Layout::Linear),
        other => Err(ImportError::bad(
            src,
            format!("tensor {C_ATTN} has shape {other:?}; with n_embd = {c} it must be [{c}, {}] or [{}, {c}]", 3 * c, 3 * c),
        )),
    }
}

/// A config read off the tensor shapes of a bare state_dict (no config file): vocabulary
/// and width from `wte`, context from `wpe`, layers from the `h.N` names, MLP width from
/// `c_fc`, biases from their presence, a tied head when `lm_head` is absent or shares
/// `wte`'s storage. The head count cannot be seen in shapes: `n_head`, else `n_embd / 64`
/// (GPT-2's head size).
pub fn infer_config(store: &Store, src: &Path, n_head: Option<usize>) -> Result<ModelConfig> {
    let bad = |msg: String| ImportError::bad(src, msg);
    let [vocab, c] = *shape_of(store, src, WTE)? else {
        return Err(bad(format!("tensor {WTE} is not 2-D")));
    };
    let block = match store.shape(WPE) {
        Some([t, _]) => *t,
        _ => {
            return Err(bad(format!(
                "tensor {WPE} is missing or not 2-D (positions must be a learned table)"
            )))
        }
    };
    let n_layer = store
        .names()
        .filter_map(|n| {
            n.strip_prefix("transformer.h.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |m| m + 1);
    let hidden = match (detect_layout(store, src)?, shape_of(store, src, C_FC)?) {
        (Layout::Conv1D, [_, h]) | (Layout::Linear, [h, _]) => *h,
        _ => return Err(bad(format!("tensor {C_FC} is not 2-D"))),
    };
    if c == 0 || hidden % c != 0 {
        return Err(bad(format!(
            "the MLP width {hidden} is not a multiple of n_embd = {c}"
        )));
    }
    let n_head = match n_head {
        Some(h) => h,
        None if c % 64 == 0 => c / 64,
        None => {
            return Err(bad(format!(
                "a bare state_dict does not record the head count and n_embd = {c} is not a multiple of GPT-2's head size 64: pass --n-head"
            )))
        }
    };
    let mut cfg = ModelConfig::new(vocab, n_layer, n_head, c, block);
    cfg.mlp_ratio = hidden / c;
    cfg.bias = store.shape("transformer.h.0.attn.c_attn.bias").is_some();
    cfg.tie_embeddings = store.shape(HEAD).is_none() || store.same_storage(HEAD, WTE);
    Ok(cfg)
}

/// Builds the model of `cfg` and copies every parameter from `store`, transposing the
/// `Conv1D` weights when `layout` says so. Missing tensors, wrong shapes and tensors no
/// GPT-2 of this config has are errors naming the tensor.
pub fn build_model(cfg: ModelConfig, store: &mut Store, layout: Layout, src: &Path) -> Result<Gpt> {
    cfg.validate()?;
    let mut model = Gpt::zeroed(cfg.clone(), 0)?;
    let mut used: HashSet<String> = HashSet::new();
    for (name, shape, dst) in model.named_parameters_mut() {
        let transposed = layout == Layout::Conv1D && is_conv1d_weight(name);
        let want: Vec<usize> = match (transposed, shape) {
            (true, [o, i]) => vec![*i, *o],
            _ => shape.to_vec(),
        };
        let got = shape_of(store, src, name)?;
        if got != want.as_slice() {
            let file = store.file_of(name).unwrap_or_else(|| src.to_path_buf());
            return Err(ImportError::bad(
                &file,
                format!(
                    "tensor {name} has shape {got:?}, expected {want:?} for n_layer {}, n_head {}, n_embd {}, vocab_size {}, block_size {}",
                    cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.vocab_size, cfg.block_size
                ),
            ));
        }
        let data = store.read_f32(name)?;
        let data = match transposed {
            true => transpose(&data, want[0], want[1]),
            false => data,
        };
        if data.len() != dst.len() {
            return Err(ImportError::bad(
                src,
                format!(
                    "tensor {name} holds {} values, expected {}",
                    data.len(),
                    dst.len()
                ),
            ));
        }
        dst.copy_from_slice(&data);
        used.insert(name.to_string());
    }
    let tied_head = cfg.tie_embeddings.then_some(HEAD);
    let mut extra: Vec<&str> = store
        .names()
        .filter(|n| !used.contains(*n) && !is_buffer(n) && Some(*n) != tied_head)
        .collect();
    extra.sort_unstable();
    if let Some(first) = extra.first() {
        return Err(ImportError::bad(
            src,
            format!(
                "tensor {first} is not part of a GPT-2 with this config ({} unexpected tensor(s); bias = {}, tied head = {})",
                extra.len(),
                cfg.bias,
                cfg.tie_embeddings
            ),
        ));
    }
    Ok(model)
}
