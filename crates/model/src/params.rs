//! Parameter layout: every parameter tensor is a named, shaped range of one flat `f32`
//! buffer (llm.c's ParameterTensors). Gradients and AdamW moments use the same layout.
//! Names and shapes are nanoGPT's `state_dict` ones; the order is nanoGPT's
//! `named_parameters()` order.

use crate::config::{ModelConfig, PosEncoding};
use std::ops::Range;

/// One parameter tensor's place in the flat buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// nanoGPT's state_dict name
    pub name: String,
    /// its shape
    pub shape: Vec<usize>,
    /// first float in the flat buffer
    pub offset: usize,
    /// floats
    pub len: usize,
}

impl TensorInfo {
    /// its floats in the flat buffer
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
    /// nanoGPT decays parameters with ≥ 2 dims (weights, embeddings), not biases/LayerNorm.
    pub fn decays(&self) -> bool {
        self.shape.len() >= 2
    }
}

/// A weight and its optional bias (indices into [`ParamLayout::tensors`]).
#[derive(Clone, Copy, Debug)]
pub struct Wb {
    /// the weight
    pub w: usize,
    /// the bias (`bias = false` models have none)
    pub b: Option<usize>,
}

/// One block's parameters.
#[derive(Clone, Debug)]
pub struct BlockParams {
    /// LayerNorm before attention
    pub ln_1: Wb,
    /// fused q, k, v projection `[3C, C]`
    pub c_attn: Wb,
    /// attention output projection `[C, C]`
    pub attn_proj: Wb,
    /// LayerNorm before the MLP
    pub ln_2: Wb,
    /// MLP up-projection `[4C, C]`
    pub c_fc: Wb,
    /// MLP down-projection `[C, 4C]`
    pub mlp_proj: Wb,
}

/// The full layout.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    /// every tensor in nanoGPT's order
    pub tensors: Vec<TensorInfo>,
    /// floats in the flat buffers
    pub total: usize,
    /// token embedding (also the head when tied)
    pub wte: usize,
    /// learned positions (learned models only)
    pub wpe: Option<usize>,
    /// per block
    pub blocks: Vec<BlockParams>,
    /// final LayerNorm
    pub ln_f: Wb,
    /// `lm_head.weight` when untied; the tied head reads `wte`.
    pub lm_head: Option<usize>,
    /// `lm_head.bias [V]` (untied heads with `head_bias` only)
    pub lm_head_bias: Option<usize>,
}

struct Builder {
    tensors: Vec<TensorInfo>,
    total: usize,
    bias: bool,
}

impl Builder {
    fn add(&mut self, name: String, shape: Vec<usize>) -> usize {
        let len = shape.iter().product();
        self.tensors.push(TensorInfo {
            name,
            shape,
            offset: self.total,
            len,
        });
        self.total += len;
        self.tensors.len() - 1
    }
    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Wb {
        self.linear_with(name, out, inp, self.bias)
    }
    /// A Linear whose bias does not follow the model's `bias` (`c_attn`, `lm_head`).
    fn linear_with(&mut self, name: &str, out: usize, inp: usize, bias: bool) -> Wb {
        let w = self.add(format!("{name}.weight"), vec![out, inp]);
        let b = bias.then(|| self.add(format!("{name}.bias"), vec![out]));
        Wb { w, b }
    }
    fn layernorm(&mut self, name: &str, c: usize) -> Wb {
        let w = self.add(format!("{name}.weight"), vec![c]);
        let b = self.bias.then(|| self.add(format!("{name}.bias"), vec![c]));
        Wb { w, b }
    }
}

impl ParamLayout {
    /// the layout of `cfg`'s parameters
    pub fn new(cfg: &ModelConfig) -> Self {
        let (c, v, h) = (cfg.n_embd, cfg.vocab_size, cfg.hidden());
        let mut bld = Builder {
            tensors: Vec::new(),
            total: 0,
            bias: cfg.bias,
        };
        let wte = bld.add("transformer.wte.weight".into(), vec![v, c]);
        let wpe = (cfg.pos_encoding == PosEncoding::Learned)
            .then(|| bld.add("transformer.wpe.weight".into(), vec![cfg.block_size, c]));
        let blocks = (0..cfg.n_layer)
            .map(|i| {
                let p = format!("transformer.h.{i}");
                BlockParams {
                    ln_1: bld.layernorm(&format!("{p}.ln_1"), c),
                    c_attn: bld.linear_with(
                        &format!("{p}.attn.c_attn"),
                        3 * c,
                        c,
                        cfg.qkv_has_bias(),
                    ),
                    attn_proj: bld.linear(&format!("{p}.attn.c_proj"), c, c),
                    ln_2: bld.layernorm(&format!("{p}.ln_2"), c),
                    c_fc: bld.linear(&format!("{p}.mlp.c_fc"), h, c),
                    mlp_proj: bld.linear(&format!("{p}.mlp.c_proj"), c, h),
                }
            })
            .collect();
        let ln_f = bld.layernorm("transformer.ln_f", c);
        let head = (!cfg.tie_embeddings).then(|| bld.linear_with("lm_head", v, c, cfg.head_bias));
        ParamLayout {
            tensors: bld.tensors,
            total: bld.total,
            wte,
            wpe,
            blocks,
            ln_f,
            lm_head: head.map(|h| h.w),
            lm_head_bias: head.and_then(|h| h.b),
        }
    }

    /// Range of tensor `i` in the flat buffers.
    pub fn r(&self, i: usize) -> Range<usize> {
        self.tensors[i].range()
    }

    /// Index of the tensor called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// The lm_head weight tensor (wte when tied).
    pub fn head(&self) -> usize {
        self.lm_head.unwrap_or(self.wte)
    }
}

/// `(&buf[w], Option<&buf[b]>)`.
pub fn wb<'a>(l: &ParamLayout, buf: &'a [f32], x: Wb) -> (&'a [f32], Option<&'a [f32]>) {
    (&buf[l.r(x.w)], x.b.map(|b| &buf[l.r(b)]))
}

/// Mutable `(w, b)` views of a weight and its bias (the bias follows the weight in the layout).
pub fn wb_mut<'a>(
    l: &ParamLayout,
    buf: &'a mut [f32],
    x: Wb,
) -> (&'a mut [f32], Option<&'a mut [f32]>) {
    let rw = l.r(x.w);
    match x.b {
        Some(b) => {
            let rb = l.r(b);
            debug_assert!(rb.start >= rw.end);
            let (head, tail) = buf.split_at_mut(rb.start);
            (&mut head[rw], Some(&mut tail[..rb.len()]))
        }
        None => (&mut buf[rw], None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_shapes_and_counts() {
        let cfg = ModelConfig::preset("gpt2-124m").unwrap();
        let l = ParamLayout::new(&cfg);
        // nanoGPT: 124M with wpe, tied head counted once (vocab 50304)
        assert_eq!(l.total, 124_475_904);
        assert_eq!(l.tensors[0].name, "transformer.wte.weight");
        assert_eq!(l.tensors[1].shape, vec![1024, 768]);
        let i = l.find("transformer.h.11.mlp.c_proj.weight").unwrap();
        assert_eq!(l.tensors[i].shape, vec![768, 3072]);
        assert!(l.lm_head.is_none());
        let mut c2 = ModelConfig::preset("tiny").unwrap();
        c2.bias = false;
        c2.tie_embeddings = false;
        c2.pos_encoding = PosEncoding::Rope;
        let l2 = ParamLayout::new(&c2);
        assert!(l2.tensors.iter().all(|t| !t.name.ends_with(".bias")));
        assert!(l2.find("transformer.wpe.weight").is_none());
        assert_eq!(l2.tensors.last().unwrap().name, "lm_head.weight");
        let offs: usize = l2.tensors.iter().map(|t| t.len).sum();
        assert_eq!(offs, l2.total);
    }
}
