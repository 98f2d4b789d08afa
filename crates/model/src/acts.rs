//! The activation plan of one batch shard (llm.c's ActivationTensors) and the KV cache.
//!
//! Shape legend: `L` layers kept, `N` rows of the shard (= b·t), `T` its sequence length,
//! `C` = n_embd, `H4` = the MLP width (4C), `nh` heads. Every buffer is a backend buffer
//! planned once per (rows, block) capacity and reused, so a training step allocates nothing.
//!
//! A training or evaluation pass keeps every layer's activations for backward (`L` =
//! n_layer). A decoding pass keeps one layer (`L` = 1): layer `l` reads its input from the
//! slot layer `l-1` wrote and overwrites it, so inference needs `1/n_layer` of the memory.

use crate::backend::Backend;
use crate::config::ModelConfig;
use std::ops::Range;

/// What a pass is for: which buffers it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// every layer's activations plus the backward scratch
    Training,
    /// one layer slot, no backward scratch (KV-cached decoding)
    Decoding,
}

/// Activations of one shard. Names follow nanoGPT's modules.
pub(crate) struct Acts<B: Backend> {
    cap_n: usize,
    cap_t: usize,
    cap_workers: usize,
    /// layer slots kept: n_layer (training) or 1 (decoding)
    layers: usize,
    /// token ids of the shard `[N]` (host: ids cross the seam as host data)
    pub idx: Vec<u32>,
    /// `transformer.drop(wte(idx) + wpe)` `[N,C]`
    pub encoded: B::Buf,
    /// `ln_1(x)` `[L,N,C]`, with its per-row mean and 1/std `[L,N]`
    pub ln_1: B::Buf,
    pub ln_1_mean: B::Buf,
    pub ln_1_rstd: B::Buf,
    /// `c_attn(ln_1)` after RoPE `[L,N,3C]` (q, k, v thirds)
    pub qkv: B::Buf,
    /// attention output before `c_proj` `[L,N,C]`
    pub atty: B::Buf,
    /// per-row log-sum-exp of the attention scores `[L,B,nh,T]`
    pub lse: B::Buf,
    /// `x + attn(ln_1(x))` `[L,N,C]` (holds the bare `c_proj` output until the next
    /// LayerNorm adds the residual and bias in place)
    pub res_attn: B::Buf,
    /// `ln_2(res_attn)` `[L,N,C]`, with mean and 1/std `[L,N]`
    pub ln_2: B::Buf,
    pub ln_2_mean: B::Buf,
    pub ln_2_rstd: B::Buf,
    /// `c_fc` output `[L,N,H4]`; in training passes overwritten by `gelu'(c_fc output)`
    /// (the only thing backward needs from it)
    pub fc: B::Buf,
    /// `gelu(c_fc)` `[L,N,H4]`
    pub fc_gelu: B::Buf,
    /// block output `[L,N,C]` (bare `mlp.c_proj` output until the next LayerNorm completes it)
    pub res_mlp: B::Buf,
    /// `ln_f(x)` `[N,C]`, with mean and 1/std `[N]`
    pub ln_f: B::Buf,
    pub ln_f_mean: B::Buf,
    pub ln_f_rstd: B::Buf,
    /// gradient of the residual stream `[N,C]`
    pub dres: B::Buf,
    /// gradient at a LayerNorm output `[N,C]`
    pub dln: B::Buf,
    /// gradient of `qkv` `[N,3C]`
    pub dqkv: B::Buf,
    /// gradient of `atty` `[N,C]`
    pub datty: B::Buf,
    /// gradient of `c_fc`'s output `[N,H4]`
    pub dfc: B::Buf,
    /// a branch output through dropout, or its masked gradient `[N,C]`
    pub tmp: B::Buf,
    /// attention workspace (the backend's [`Backend::attention_workspace`])
    pub attn_work: B::Buf,
}

impl<B: Backend> Acts<B> {
    /// An empty plan (buffers are sized by [`Acts::plan`]).
    pub(crate) fn new(dev: &B) -> Self {
        let z = || dev.alloc(0);
        Acts {
            cap_n: 0,
            cap_t: 0,
            cap_workers: 0,
            layers: 0,
            idx: Vec::new(),
            encoded: z(),
            ln_1: z(),
            ln_1_mean: z(),
            ln_1_rstd: z(),
            qkv: z(),
            atty: z(),
            lse: z(),
            res_attn: z(),
            ln_2: z(),
            ln_2_mean: z(),
            ln_2_rstd: z(),
            fc: z(),
            fc_gelu: z(),
            res_mlp: z(),
            ln_f: z(),
            ln_f_mean: z(),
            ln_f_rstd: z(),
            dres: z(),
            dln: z(),
            dqkv: z(),
            datty: z(),
            dfc: z(),
            tmp: z(),
            attn_work: z(),
        }
    }

    /// Size the buffers for `n` rows of sequences up to `t` (only grows: no allocation in the
    /// step loop). `workers` = threads that may run attention tasks of this shard.
    pub(crate) fn plan(
        &mut self,
        dev: &B,
        cfg: &ModelConfig,
        n: usize,
        t: usize,
        workers: usize,
        plan: Plan,
    ) {
        let layers = match plan {
            Plan::Training => cfg.n_layer,
            Plan::Decoding => 1,
        };
        if n <= self.cap_n
            && t <= self.cap_t
            && workers <= self.cap_workers
            && layers == self.layers
        {
            return;
        }
        let (c, h, nh) = (cfg.n_embd, cfg.hidden(), cfg.n_head);
        let (n, t, workers) = (
            n.max(self.cap_n),
            t.max(self.cap_t),
            workers.max(self.cap_workers).max(1),
        );
        let l = layers;
        let back = if plan == Plan::Training { 1 } else { 0 };
        let z = |len: usize| dev.alloc(len);
        *self = Acts {
            cap_n: n,
            cap_t: t,
            cap_workers: workers,
            layers,
            idx: vec![0; n],
            encoded: z(n * c),
            ln_1: z(l * n * c),
            ln_1_mean: z(l * n),
            ln_1_rstd: z(l * n),
            qkv: z(l * n * 3 * c),
            atty: z(l * n * c),
            lse: z(l * n * nh),
            res_attn: z(l * n * c),
            ln_2: z(l * n * c),
            ln_2_mean: z(l * n),
            ln_2_rstd: z(l * n),
            fc: z(l * n * h),
            fc_gelu: z(l * n * h),
            res_mlp: z(l * n * c),
            ln_f: z(n * c),
            ln_f_mean: z(n),
            ln_f_rstd: z(n),
            dres: z(back * n * c),
            dln: z(back * n * c),
            dqkv: z(back * n * 3 * c),
            datty: z(back * n * c),
            dfc: z(back * n * h),
            tmp: z(back * n * c),
            attn_work: z(dev.attention_workspace(t, workers)),
        };
    }

    /// The slot of layer `l` in the stacked `[L, ...]` buffers (always 0 when decoding).
    pub(crate) fn slot(&self, l: usize) -> usize {
        if self.layers == 1 {
            0
        } else {
            l
        }
    }

    /// Bytes held by the planned buffers.
    pub(crate) fn bytes(&self) -> usize {
        let floats: usize = [
            &self.encoded,
            &self.ln_1,
            &self.ln_1_mean,
            &self.ln_1_rstd,
            &self.qkv,
            &self.atty,
            &self.lse,
            &self.res_attn,
            &self.ln_2,
            &self.ln_2_mean,
            &self.ln_2_rstd,
            &self.fc,
            &self.fc_gelu,
            &self.res_mlp,
            &self.ln_f,
            &self.ln_f_mean,
            &self.ln_f_rstd,
            &self.dres,
            &self.dln,
            &self.dqkv,
            &self.datty,
            &self.dfc,
            &self.tmp,
            &self.attn_work,
        ]
        .iter()
        .map(|b| B::len(b))
        .sum();
        4 * floats + 4 * self.idx.len()
    }
}

/// Keys and values of the tokens seen so far, per layer `[L, block_size, C]` each (keys
/// already rotated when RoPE is used).
pub(crate) struct KvCache<B: Backend> {
    pub k: B::Buf,
    pub v: B::Buf,
    /// floats per layer (`block_size · C`)
    pub layer_len: usize,
}

impl<B: Backend> KvCache<B> {
    pub(crate) fn new(dev: &B, cfg: &ModelConfig) -> Self {
        let layer_len = cfg.block_size * cfg.n_embd;
        KvCache {
            k: dev.alloc(cfg.n_layer * layer_len),
            v: dev.alloc(cfg.n_layer * layer_len),
            layer_len,
        }
    }

    /// Layer `l`'s region of `k` and `v`.
    pub(crate) fn layer(&self, l: usize) -> Range<usize> {
        l * self.layer_len..(l + 1) * self.layer_len
    }
}
