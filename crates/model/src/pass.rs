//! One forward and backward pass of the GPT over a *shard* of a batch: `b` sequences of
//! length `t` starting at sequence `b0` of the whole batch (llm.c's `gpt2_forward` /
//! `gpt2_backward`, one op after another, shapes in the comments).
//!
//! [`Gpt`](crate::Gpt) splits a batch into shards and runs them side by side (see
//! `model.rs`); with one shard this is the plain full-batch pass. Dropout masks are indexed
//! by position in the *whole* batch, so sharding never changes which units are dropped.

use crate::config::{ModelConfig, PosEncoding};
use crate::device::active as dev;
use crate::params::{wb, wb_mut, ParamLayout};
use dev::attention::Dims;
use dev::dropout::Mask;
use dev::rope::RopeTable;

/// Activations of one shard, planned once per (rows, block) capacity and reused (llm.c's
/// ActivationTensors). Per-layer tensors are stacked `[L, ...]`; names follow nanoGPT.
/// `N` = the shard's `b·t` rows.
#[derive(Default)]
pub(crate) struct Acts {
    cap_n: usize,
    cap_t: usize,
    cap_workers: usize,
    idx: Vec<u32>,
    /// `transformer.drop(wte(idx) + wpe)` `[N,C]`
    encoded: Vec<f32>,
    ln_1: Vec<f32>,
    ln_1_mean: Vec<f32>,
    ln_1_rstd: Vec<f32>,
    /// `c_attn` output after RoPE `[L,N,3C]`
    qkv: Vec<f32>,
    /// attention output before `c_proj` `[L,N,C]`
    atty: Vec<f32>,
    /// per-row logsumexp `[L,B,H,T]`
    lse: Vec<f32>,
    /// `x + attn(ln_1(x))` `[L,N,C]`
    res_attn: Vec<f32>,
    ln_2: Vec<f32>,
    ln_2_mean: Vec<f32>,
    ln_2_rstd: Vec<f32>,
    /// `c_fc` output `[L,N,4C]`; in training passes overwritten by `gelu'(c_fc output)`
    /// (the only thing backward needs from it)
    fc: Vec<f32>,
    /// `gelu(c_fc)` `[L,N,4C]`
    fc_gelu: Vec<f32>,
    /// block output `[L,N,C]`
    res_mlp: Vec<f32>,
    ln_f: Vec<f32>,
    ln_f_mean: Vec<f32>,
    ln_f_rstd: Vec<f32>,
    // backward scratch
    dres: Vec<f32>,
    dln: Vec<f32>,
    dqkv: Vec<f32>,
    datty: Vec<f32>,
    dfc: Vec<f32>,
    tmp: Vec<f32>,
    attn_scratch: Vec<f32>,
}

impl Acts {
    /// Size the buffers for `n` rows of sequences up to `t` (only grows: no allocation in the
    /// step loop). `workers` = threads that may run attention tasks of this shard.
    pub(crate) fn plan(&mut self, cfg: &ModelConfig, n: usize, t: usize, workers: usize) {
        if n <= self.cap_n && t <= self.cap_t && workers <= self.cap_workers {
            return;
        }
        let (l, c, h, nh) = (cfg.n_layer, cfg.n_embd, cfg.hidden(), cfg.n_head);
        let (n, t, workers) = (
            n.max(self.cap_n),
            t.max(self.cap_t),
            workers.max(self.cap_workers).max(1),
        );
        let z = |len: usize| vec![0.0f32; len];
        *self = Acts {
            cap_n: n,
            cap_t: t,
            cap_workers: workers,
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
            dres: z(n * c),
            dln: z(n * c),
            dqkv: z(n * 3 * c),
            datty: z(n * c),
            dfc: z(n * h),
            tmp: z(n * c),
            attn_scratch: z(workers * dev::attention::scratch_per_worker(t)),
        };
    }

    /// Bytes held by the planned buffers.
    pub(crate) fn bytes(&self) -> usize {
        let floats = [
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
            &self.attn_scratch,
        ]
        .iter()
        .map(|v| v.len())
        .sum::<usize>();
        4 * floats + 4 * self.idx.len()
    }
}

/// What a pass reads and never writes: the configuration, parameters and position tables.
pub(crate) struct Net<'a> {
    pub cfg: &'a ModelConfig,
    pub lay: &'a ParamLayout,
    pub p: &'a [f32],
    pub sin_table: &'a [f32],
    pub rope: Option<&'a RopeTable>,
}

/// Which rows of the batch a shard holds, and the pass's dropout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shard {
    /// sequences in this shard
    pub b: usize,
    pub t: usize,
    /// index of its first sequence in the whole batch
    pub b0: usize,
    /// `(seed, p)` of this pass's dropout, None without dropout
    pub drop: Option<(u64, f32)>,
}

// dropout sites within one pass
const SITE_EMB: u64 = 0;
fn site(layer: usize, k: u64) -> u64 {
    1 + layer as u64 * 3 + k
}

impl Shard {
    /// The mask of an elementwise site over `[b, t, width]` rows of this shard.
    fn mask(&self, site: u64, width: usize) -> Option<Mask> {
        self.drop.map(|(seed, p)| Mask {
            seed,
            stream: site,
            p,
            offset: (self.b0 * self.t * width) as u64,
        })
    }

    /// The attention-probability mask (elements `[b, H, t, t]`) of this shard.
    fn attn_mask(&self, site: u64, nh: usize) -> Option<Mask> {
        self.drop.map(|(seed, p)| Mask {
            seed,
            stream: site,
            p,
            offset: (self.b0 * nh * self.t * self.t) as u64,
        })
    }
}

/// Forward of one shard: `idx [b, t]` → `logits [b, t, V]`. `for_backward` keeps what
/// [`backward`] needs (GELU's derivative in place of its input).
pub(crate) fn forward(
    net: &Net,
    a: &mut Acts,
    sh: Shard,
    idx: &[u32],
    logits: &mut [f32],
    for_backward: bool,
) {
    let (cfg, lay, p) = (net.cfg, net.lay, net.p);
    let (b, t) = (sh.b, sh.t);
    let (n, c, h, v, nh) = (b * t, cfg.n_embd, cfg.hidden(), cfg.vocab_size, cfg.n_head);
    let dims = Dims { b, t, c, nh };
    a.idx[..n].copy_from_slice(idx);

    let pos: Option<&[f32]> = match cfg.pos_encoding {
        PosEncoding::Learned => lay.wpe.map(|i| &p[lay.r(i)]),
        PosEncoding::Sinusoidal => Some(net.sin_table),
        PosEncoding::Rope => None,
    };
    dev::embedding::forward(&mut a.encoded[..n * c], idx, &p[lay.r(lay.wte)], pos, t, c);
    if let Some(m) = sh.mask(SITE_EMB, c) {
        dev::dropout::apply(&mut a.encoded[..n * c], m);
    }

    // A branch's output projection without dropout is written bare; its residual and bias are
    // added by the LayerNorm that reads the sum next (ln_2, the next block's ln_1, or ln_f).
    // `pending` is that bias, when the add is still owed.
    let nc = n * c;
    let mut pending: Option<Option<&[f32]>> = None;
    for (l, bp) in lay.blocks.iter().enumerate() {
        let nh4 = n * h;
        let (w, bb) = wb(lay, p, bp.ln_1);
        let (ln_1, mean, rstd) = (
            &mut a.ln_1[l * nc..(l + 1) * nc],
            &mut a.ln_1_mean[l * n..(l + 1) * n],
            &mut a.ln_1_rstd[l * n..(l + 1) * n],
        );
        match pending.take() {
            Some(proj_bias) => dev::layernorm::forward_residual(
                ln_1,
                mean,
                rstd,
                &mut a.res_mlp[(l - 1) * nc..l * nc],
                &a.res_attn[(l - 1) * nc..l * nc],
                proj_bias,
                w,
                bb,
            ),
            None => {
                let x = if l == 0 {
                    &a.encoded[..nc]
                } else {
                    &a.res_mlp[(l - 1) * nc..l * nc]
                };
                dev::layernorm::forward(ln_1, mean, rstd, x, w, bb)
            }
        }
        let x: &[f32] = if l == 0 {
            &a.encoded[..nc]
        } else {
            &a.res_mlp[(l - 1) * nc..l * nc]
        };
        let ln_1 = &a.ln_1[l * nc..(l + 1) * nc];
        let qkv = &mut a.qkv[l * 3 * nc..(l + 1) * 3 * nc];
        let (w, bb) = wb(lay, p, bp.c_attn);
        dev::linear::forward(qkv, ln_1, w, bb, None, c);
        if let Some(rt) = net.rope {
            dev::rope::forward(qkv, rt, t, c, nh);
        }
        let atty = &mut a.atty[l * nc..(l + 1) * nc];
        let lse = &mut a.lse[l * n * nh..(l + 1) * n * nh];
        let am = sh.attn_mask(site(l, 0), nh);
        dev::attention::forward(atty, lse, qkv, &mut a.attn_scratch, dims, am);
        let res_attn = &mut a.res_attn[l * nc..(l + 1) * nc];
        let (w, bb) = wb(lay, p, bp.attn_proj);
        match sh.mask(site(l, 1), c) {
            None => {
                dev::linear::forward(res_attn, atty, w, None, None, c);
                pending = Some(bb);
            }
            Some(m) => {
                dev::linear::forward(&mut a.tmp[..nc], atty, w, bb, None, c);
                dev::dropout::apply(&mut a.tmp[..nc], m);
                dev::residual::forward(res_attn, x, &a.tmp[..nc]);
            }
        }
        let (w, bb) = wb(lay, p, bp.ln_2);
        let (ln_2, mean, rstd) = (
            &mut a.ln_2[l * nc..(l + 1) * nc],
            &mut a.ln_2_mean[l * n..(l + 1) * n],
            &mut a.ln_2_rstd[l * n..(l + 1) * n],
        );
        match pending.take() {
            Some(proj_bias) => {
                dev::layernorm::forward_residual(ln_2, mean, rstd, res_attn, x, proj_bias, w, bb)
            }
            None => dev::layernorm::forward(ln_2, mean, rstd, res_attn, w, bb),
        }
        let (ln_2, res_attn) = (
            &a.ln_2[l * nc..(l + 1) * nc],
            &a.res_attn[l * nc..(l + 1) * nc],
        );
        // c_fc's bias is added inside the GELU pass (one pass over `fc` fewer)
        let fc = &mut a.fc[l * nh4..(l + 1) * nh4];
        let (w, bb) = wb(lay, p, bp.c_fc);
        dev::linear::forward(fc, ln_2, w, None, None, c);
        let fc_gelu = &mut a.fc_gelu[l * nh4..(l + 1) * nh4];
        if for_backward {
            dev::gelu::forward_keep_derivative(fc_gelu, fc, bb, cfg.activation);
        } else {
            dev::gelu::forward(fc_gelu, fc, bb, cfg.activation);
        }
        let res_mlp = &mut a.res_mlp[l * nc..(l + 1) * nc];
        let (w, bb) = wb(lay, p, bp.mlp_proj);
        match sh.mask(site(l, 2), c) {
            None => {
                dev::linear::forward(res_mlp, fc_gelu, w, None, None, h);
                pending = Some(bb);
            }
            Some(m) => {
                dev::linear::forward(&mut a.tmp[..nc], fc_gelu, w, bb, None, h);
                dev::dropout::apply(&mut a.tmp[..nc], m);
                dev::residual::forward(res_mlp, res_attn, &a.tmp[..nc]);
            }
        }
    }
    let l = cfg.n_layer;
    let (w, bb) = wb(lay, p, lay.ln_f);
    let (ln_f, mean, rstd) = (
        &mut a.ln_f[..nc],
        &mut a.ln_f_mean[..n],
        &mut a.ln_f_rstd[..n],
    );
    match pending.take() {
        Some(proj_bias) => dev::layernorm::forward_residual(
            ln_f,
            mean,
            rstd,
            &mut a.res_mlp[(l - 1) * nc..l * nc],
            &a.res_attn[(l - 1) * nc..l * nc],
            proj_bias,
            w,
            bb,
        ),
        None => dev::layernorm::forward(ln_f, mean, rstd, &a.res_mlp[(l - 1) * nc..l * nc], w, bb),
    }
    dev::linear::forward(
        &mut logits[..n * v],
        &a.ln_f[..nc],
        &p[lay.r(lay.head())],
        None,
        None,
        c,
    );
}

/// The gradient reaching a branch's output projection: `dres` itself, or, when the branch
/// output went through dropout, `dres` masked into `tmp`.
fn through_dropout<'a>(dres: &'a [f32], tmp: &'a mut [f32], mask: Option<Mask>) -> &'a [f32] {
    match mask {
        None => dres,
        Some(m) => {
            tmp.copy_from_slice(dres);
            dev::dropout::apply(tmp, m);
            tmp
        }
    }
}

/// Backward of one shard after its [`forward`] (a training one): accumulates
/// `d loss / d params` into `g` from `dlogits [b, t, V]`.
pub(crate) fn backward(net: &Net, a: &mut Acts, g: &mut [f32], sh: Shard, dlogits: &[f32]) {
    let (cfg, lay, p) = (net.cfg, net.lay, net.p);
    let (b, t) = (sh.b, sh.t);
    let (n, c, h, v, nh) = (b * t, cfg.n_embd, cfg.hidden(), cfg.vocab_size, cfg.n_head);
    let dims = Dims { b, t, c, nh };
    let nc = n * c;

    // lm_head and ln_f
    let head = lay.head();
    dev::linear::backward(
        Some(&mut a.dln[..nc]),
        &mut g[lay.r(head)],
        None,
        &dlogits[..n * v],
        &a.ln_f[..nc],
        &p[lay.r(head)],
        c,
        false,
    );
    let l_last = cfg.n_layer;
    let x = &a.res_mlp[(l_last - 1) * nc..l_last * nc];
    let (gw, gb) = wb_mut(lay, g, lay.ln_f);
    dev::layernorm::backward(
        &mut a.dres[..nc],
        gw,
        gb,
        &a.dln[..nc],
        x,
        &p[lay.r(lay.ln_f.w)],
        &a.ln_f_mean[..n],
        &a.ln_f_rstd[..n],
        false,
    );

    for (l, bp) in lay.blocks.iter().enumerate().rev() {
        let nh4 = n * h;
        let x: &[f32] = if l == 0 {
            &a.encoded[..nc]
        } else {
            &a.res_mlp[(l - 1) * nc..l * nc]
        };
        let res_attn = &a.res_attn[l * nc..(l + 1) * nc];
        // MLP branch: res_mlp = res_attn + drop(c_proj(gelu(c_fc(ln_2(res_attn)))))
        let dproj = through_dropout(&a.dres[..nc], &mut a.tmp[..nc], sh.mask(site(l, 2), c));
        let (gw, gb) = wb_mut(lay, g, bp.mlp_proj);
        let fc_gelu = &a.fc_gelu[l * nh4..(l + 1) * nh4];
        dev::linear::backward(
            Some(&mut a.dfc[..nh4]),
            gw,
            gb,
            dproj,
            fc_gelu,
            &p[lay.r(bp.mlp_proj.w)],
            h,
            false,
        );
        dev::gelu::backward_from_derivative(&mut a.dfc[..nh4], &a.fc[l * nh4..(l + 1) * nh4]);
        let (gw, gb) = wb_mut(lay, g, bp.c_fc);
        let ln_2 = &a.ln_2[l * nc..(l + 1) * nc];
        dev::linear::backward(
            Some(&mut a.dln[..nc]),
            gw,
            gb,
            &a.dfc[..nh4],
            ln_2,
            &p[lay.r(bp.c_fc.w)],
            c,
            false,
        );
        let (gw, gb) = wb_mut(lay, g, bp.ln_2);
        let (lm, lr) = (
            &a.ln_2_mean[l * n..(l + 1) * n],
            &a.ln_2_rstd[l * n..(l + 1) * n],
        );
        dev::layernorm::backward(
            &mut a.dres[..nc],
            gw,
            gb,
            &a.dln[..nc],
            res_attn,
            &p[lay.r(bp.ln_2.w)],
            lm,
            lr,
            true,
        );

        // attention branch: res_attn = x + drop(c_proj(attn(ln_1(x))))
        let dproj = through_dropout(&a.dres[..nc], &mut a.tmp[..nc], sh.mask(site(l, 1), c));
        let (gw, gb) = wb_mut(lay, g, bp.attn_proj);
        let atty = &a.atty[l * nc..(l + 1) * nc];
        dev::linear::backward(
            Some(&mut a.datty[..nc]),
            gw,
            gb,
            dproj,
            atty,
            &p[lay.r(bp.attn_proj.w)],
            c,
            false,
        );
        let qkv = &a.qkv[l * 3 * nc..(l + 1) * 3 * nc];
        let lse = &a.lse[l * n * nh..(l + 1) * n * nh];
        dev::attention::backward(
            &mut a.dqkv[..3 * nc],
            &a.datty[..nc],
            atty,
            lse,
            qkv,
            &mut a.attn_scratch,
            dims,
            sh.attn_mask(site(l, 0), nh),
        );
        if let Some(rt) = net.rope {
            dev::rope::backward(&mut a.dqkv[..3 * nc], rt, t, c, nh);
        }
        let (gw, gb) = wb_mut(lay, g, bp.c_attn);
        let ln_1 = &a.ln_1[l * nc..(l + 1) * nc];
        dev::linear::backward(
            Some(&mut a.dln[..nc]),
            gw,
            gb,
            &a.dqkv[..3 * nc],
            ln_1,
            &p[lay.r(bp.c_attn.w)],
            c,
            false,
        );
        let (gw, gb) = wb_mut(lay, g, bp.ln_1);
        let (lm, lr) = (
            &a.ln_1_mean[l * n..(l + 1) * n],
            &a.ln_1_rstd[l * n..(l + 1) * n],
        );
        dev::layernorm::backward(
            &mut a.dres[..nc],
            gw,
            gb,
            &a.dln[..nc],
            x,
            &p[lay.r(bp.ln_1.w)],
            lm,
            lr,
            true,
        );
    }

    if let Some(m) = sh.mask(SITE_EMB, c) {
        dev::dropout::apply(&mut a.dres[..nc], m);
    }
    let wte = lay.r(lay.wte);
    match lay.wpe {
        Some(wpe) => {
            let wpe = lay.r(wpe);
            debug_assert!(wte.end <= wpe.start);
            let (head, tail) = g.split_at_mut(wpe.start);
            dev::embedding::backward(
                &mut head[wte],
                Some(&mut tail[..wpe.len()]),
                &a.dres[..nc],
                &a.idx[..n],
                t,
                c,
            );
        }
        None => dev::embedding::backward(&mut g[wte], None, &a.dres[..nc], &a.idx[..n], t, c),
    }
}
