//! The encoder–decoder's parameter layout: named, shaped ranges of one flat buffer (the
//! gradients and AdamW moments share it). Names are those of the `torch.nn` module in
//! `tools/torch_seq2seq_reference.py` (its `state_dict` names; a tied output layer and a shared
//! source embedding are stored once, as `decoder.embed.weight`).

use super::config::{Norm, Seq2seqConfig};
use crate::config::PosEncoding;
use crate::params::{Builder, TensorInfo, Wb};
use std::ops::Range;

/// One encoder block: self-attention and MLP sublayers.
#[derive(Clone, Debug)]
pub struct EncoderBlock {
    /// LayerNorm of the self-attention sublayer
    pub ln_1: Wb,
    /// fused q, k, v projection `[3C, C]`
    pub c_attn: Wb,
    /// self-attention output projection `[C, C]`
    pub attn_proj: Wb,
    /// LayerNorm of the MLP sublayer
    pub ln_2: Wb,
    /// MLP up-projection `[hidden, C]`
    pub c_fc: Wb,
    /// MLP down-projection `[C, hidden]`
    pub mlp_proj: Wb,
}

/// One decoder block: masked self-attention, cross-attention and MLP sublayers.
#[derive(Clone, Debug)]
pub struct DecoderBlock {
    /// the self-attention and MLP parts, as in the encoder (`ln_2` is the MLP's LayerNorm)
    pub base: EncoderBlock,
    /// LayerNorm of the cross-attention sublayer
    pub ln_x: Wb,
    /// cross-attention query projection `[C, C]` (of the decoder stream)
    pub q_proj: Wb,
    /// cross-attention fused key/value projection `[2C, C]` (of the encoder output)
    pub kv_proj: Wb,
    /// cross-attention output projection `[C, C]`
    pub cross_proj: Wb,
}

/// Every tensor of the model and where the pieces are.
#[derive(Clone, Debug)]
pub struct Seq2seqLayout {
    /// every tensor in the reference module's `named_parameters()` order
    pub tensors: Vec<TensorInfo>,
    /// floats in the flat buffers
    pub total: usize,
    /// source embedding `[Vs, C]` (`None` when shared: the encoder reads `tgt_embed`)
    pub src_embed: Option<usize>,
    /// learned source positions `[src_block_size, C]`
    pub src_pos: Option<usize>,
    /// encoder blocks
    pub encoder: Vec<EncoderBlock>,
    /// final encoder LayerNorm (pre-LN only)
    pub enc_ln_f: Option<Wb>,
    /// target embedding `[Vt, C]` (also the output layer when tied)
    pub tgt_embed: usize,
    /// learned target positions `[tgt_block_size, C]`
    pub tgt_pos: Option<usize>,
    /// decoder blocks
    pub decoder: Vec<DecoderBlock>,
    /// final decoder LayerNorm (pre-LN only)
    pub dec_ln_f: Option<Wb>,
    /// `lm_head.weight [Vt, C]` when untied
    pub lm_head: Option<usize>,
}

fn encoder_block(b: &mut Builder, p: &str, c: usize, h: usize) -> EncoderBlock {
    EncoderBlock {
        ln_1: b.layernorm(&format!("{p}.ln_1"), c),
        c_attn: b.linear(&format!("{p}.self_attn.c_attn"), 3 * c, c),
        attn_proj: b.linear(&format!("{p}.self_attn.c_proj"), c, c),
        ln_2: b.layernorm(&format!("{p}.ln_2"), c),
        c_fc: b.linear(&format!("{p}.mlp.c_fc"), h, c),
        mlp_proj: b.linear(&format!("{p}.mlp.c_proj"), c, h),
    }
}

fn decoder_block(b: &mut Builder, p: &str, c: usize, h: usize) -> DecoderBlock {
    // registration order = the torch module's: ln_1, self_attn, ln_x, cross_attn, ln_2, mlp
    let ln_1 = b.layernorm(&format!("{p}.ln_1"), c);
    let c_attn = b.linear(&format!("{p}.self_attn.c_attn"), 3 * c, c);
    let attn_proj = b.linear(&format!("{p}.self_attn.c_proj"), c, c);
    let ln_x = b.layernorm(&format!("{p}.ln_x"), c);
    let q_proj = b.linear(&format!("{p}.cross_attn.q_proj"), c, c);
    let kv_proj = b.linear(&format!("{p}.cross_attn.kv_proj"), 2 * c, c);
    let cross_proj = b.linear(&format!("{p}.cross_attn.c_proj"), c, c);
    let ln_2 = b.layernorm(&format!("{p}.ln_2"), c);
    let c_fc = b.linear(&format!("{p}.mlp.c_fc"), h, c);
    let mlp_proj = b.linear(&format!("{p}.mlp.c_proj"), c, h);
    DecoderBlock {
        base: EncoderBlock {
            ln_1,
            c_attn,
            attn_proj,
            ln_2,
            c_fc,
            mlp_proj,
        },
        ln_x,
        q_proj,
        kv_proj,
        cross_proj,
    }
}

impl Seq2seqLayout {
    /// The layout of `cfg`'s parameters.
    pub fn new(cfg: &Seq2seqConfig) -> Self {
        let (c, h) = (cfg.n_embd, cfg.hidden());
        let learned = cfg.pos_encoding == PosEncoding::Learned;
        let pre = cfg.norm == Norm::Pre;
        let mut b = Builder {
            tensors: Vec::new(),
            total: 0,
            bias: cfg.bias,
        };
        let src_embed = (!cfg.share_embeddings)
            .then(|| b.add("encoder.embed.weight".into(), vec![cfg.src_vocab_size, c]));
        let src_pos =
            learned.then(|| b.add("encoder.pos.weight".into(), vec![cfg.src_block_size, c]));
        let encoder = (0..cfg.n_encoder_layer)
            .map(|i| encoder_block(&mut b, &format!("encoder.layers.{i}"), c, h))
            .collect();
        let enc_ln_f = pre.then(|| b.layernorm("encoder.ln_f", c));
        let tgt_embed = b.add("decoder.embed.weight".into(), vec![cfg.tgt_vocab_size, c]);
        let tgt_pos =
            learned.then(|| b.add("decoder.pos.weight".into(), vec![cfg.tgt_block_size, c]));
        let decoder = (0..cfg.n_decoder_layer)
            .map(|i| decoder_block(&mut b, &format!("decoder.layers.{i}"), c, h))
            .collect();
        let dec_ln_f = pre.then(|| b.layernorm("decoder.ln_f", c));
        let lm_head = (!cfg.tie_embeddings)
            .then(|| b.add("lm_head.weight".into(), vec![cfg.tgt_vocab_size, c]));
        Seq2seqLayout {
            tensors: b.tensors,
            total: b.total,
            src_embed,
            src_pos,
            encoder,
            enc_ln_f,
            tgt_embed,
            tgt_pos,
            decoder,
            dec_ln_f,
            lm_head,
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

    /// The embedding the encoder reads.
    pub fn src_table(&self) -> usize {
        self.src_embed.unwrap_or(self.tgt_embed)
    }

    /// The output layer's weight (the target embedding when tied).
    pub fn head(&self) -> usize {
        self.lm_head.unwrap_or(self.tgt_embed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_counts() {
        let mut cfg = Seq2seqConfig::new(10, 12, 2, 2, 8, 6, 7);
        let l = Seq2seqLayout::new(&cfg);
        assert_eq!(l.tensors[0].name, "encoder.embed.weight");
        assert_eq!(l.tensors[l.tgt_embed].shape, vec![12, 8]);
        let kv = l
            .find("decoder.layers.1.cross_attn.kv_proj.weight")
            .unwrap();
        assert_eq!(l.tensors[kv].shape, vec![16, 8]);
        assert!(l.enc_ln_f.is_some() && l.lm_head.is_none());
        let sum: usize = l.tensors.iter().map(|t| t.len).sum();
        assert_eq!(sum, l.total);
        cfg.norm = Norm::Post;
        cfg.tie_embeddings = false;
        cfg.bias = false;
        cfg.src_vocab_size = 12;
        cfg.share_embeddings = true;
        let l = Seq2seqLayout::new(&cfg);
        assert!(l.find("encoder.ln_f.weight").is_none() && l.src_embed.is_none());
        assert_eq!(l.src_table(), l.tgt_embed);
        assert_eq!(l.tensors.last().unwrap().name, "lm_head.weight");
        assert!(l.tensors.iter().all(|t| !t.name.ends_with(".bias")));
    }
}
