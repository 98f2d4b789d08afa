//! One forward and backward pass of the GPT over a *shard* of a batch: `b` sequences of
//! length `t` starting at sequence `b0` of the whole batch (llm.c's `gpt2_forward` /
//! `gpt2_backward`, one op after another, shapes in the comments), on any [`Backend`].
//!
//! The same per-layer code serves training, evaluation and KV-cached decoding
//! ([`Mode::Decode`]): decoding stores each layer's keys and values in the cache and
//! attends over it, keeps one layer slot of activations, and runs the head on the last
//! row only.
//!
//! [`Gpt`](crate::Gpt) splits a batch into shards and runs them side by side (see
//! `model.rs`); with one shard this is the plain full-batch pass. Dropout masks are indexed
//! by position in the *whole* batch, so sharding never changes which units are dropped.
//!
//! Blocks are pre-LN (GPT-2) or post-LN (the original Transformer), `cfg.norm`; both keep
//! the final `ln_f` before the head.
//!
//! Shape legend: `N` = b·t rows, `C` = n_embd, `H4` = MLP width, `V` = vocabulary, `nh` heads.

use crate::acts::{Acts, KvCache};
use crate::backend::{Backend, Dims, Mask};
use crate::config::{ModelConfig, Norm};
use crate::params::{ParamLayout, Wb};

/// What a pass reads and never writes: the configuration, parameters and backend.
pub(crate) struct Net<'a, B: Backend> {
    pub dev: &'a B,
    pub cfg: &'a ModelConfig,
    pub lay: &'a ParamLayout,
    /// all parameters, flat, in the layout's order
    pub p: &'a B::Buf,
}

impl<'a, B: Backend> Net<'a, B> {
    /// Parameter tensor `i`.
    pub(crate) fn w(&self, i: usize) -> B::Src<'a> {
        B::src(self.p, self.lay.r(i))
    }
    /// A weight and its optional bias.
    fn wb(&self, x: Wb) -> (B::Src<'a>, Option<B::Src<'a>>) {
        (self.w(x.w), x.b.map(|b| self.w(b)))
    }
}

/// The gradient regions of a weight and its optional bias (the bias follows the weight).
fn grad_wb<'g, B: Backend>(
    lay: &ParamLayout,
    g: &'g mut B::Buf,
    x: Wb,
) -> (B::Dst<'g>, Option<B::Dst<'g>>) {
    match x.b {
        Some(b) => {
            let (w, b) = B::dst_pair(g, lay.r(x.w), lay.r(b));
            (w, Some(b))
        }
        None => (B::dst(g, lay.r(x.w)), None),
    }
}

/// Position information for the rows of a pass: row `n` uses table row `n % t`.
pub(crate) struct Positions<'a, B: Backend> {
    /// additive position rows `[≥t, C]` (learned `wpe` or the sinusoidal table), or None
    pub table: Option<B::Src<'a>>,
    /// RoPE `cos, sin [≥t, hs/2]`, or None
    pub rope: Option<(B::Src<'a>, B::Src<'a>)>,
}

impl<B: Backend> Clone for Positions<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for Positions<'_, B> {}

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

/// What a forward pass is for.
pub(crate) enum Mode<'c, B: Backend> {
    /// Whole sequences. `for_backward` keeps what [`backward`] needs (GELU's derivative in
    /// place of its input); logits for every row when asked for (otherwise the pass ends at
    /// `ln_f` and the fused classifier takes over, see `classifier.rs`).
    Full { for_backward: bool },
    /// One sequence of new rows after `past` cached positions (`b = 1`): keys and values go
    /// to the cache, attention reads it, logits for the last row only.
    Decode {
        cache: &'c mut KvCache<B>,
        past: usize,
    },
}

/// Forward of one shard: `idx [b, t]` → `ln_f` output `a.ln_f [b·t, C]` and, when `logits`
/// is given, the head's output there (`[b·t, V]`, or `[1, V]` when decoding).
pub(crate) fn forward<B: Backend>(
    net: &Net<B>,
    a: &mut Acts<B>,
    sh: Shard,
    idx: &[u32],
    pos: Positions<B>,
    mut mode: Mode<B>,
    logits: Option<B::Dst<'_>>,
) {
    let (dev, cfg) = (net.dev, net.cfg);
    let (n, c) = (sh.b * sh.t, cfg.n_embd);
    let nc = n * c;
    a.idx[..n].copy_from_slice(idx);
    // x = drop(wte(idx) + wpe)  [N,C]
    let wte = net.w(net.lay.wte);
    dev.embedding_forward(B::dst(&mut a.encoded, 0..nc), idx, wte, pos.table, sh.t, c);
    if let Some(m) = sh.mask(SITE_EMB, c) {
        dev.dropout(B::dst(&mut a.encoded, 0..nc), m);
    }
    // A branch's output projection without dropout is written bare; its residual and bias are
    // added by the LayerNorm that reads the sum next (ln_2, the next block's ln_1, or ln_f).
    // `pending` is that bias, when the add is still owed.
    let mut pending: Option<Option<B::Src<'_>>> = None;
    for l in 0..cfg.n_layer {
        pending = block_forward(net, a, sh, l, pending, pos, &mut mode);
    }
    // x = ln_f(x)  [N,C]
    let s = a.slot(cfg.n_layer - 1);
    let (w, b) = net.wb(net.lay.ln_f);
    let (ln_f, mean, rstd) = (
        B::dst(&mut a.ln_f, 0..nc),
        B::dst(&mut a.ln_f_mean, 0..n),
        B::dst(&mut a.ln_f_rstd, 0..n),
    );
    match pending {
        Some(proj_bias) => dev.layernorm_forward_residual(
            ln_f,
            mean,
            rstd,
            B::dst(&mut a.res_mlp, s * nc..(s + 1) * nc),
            B::src(&a.res_attn, s * nc..(s + 1) * nc),
            proj_bias,
            w,
            b,
        ),
        None => {
            // the last block's output: the residual stream (pre-LN) or its ln_2 (post-LN)
            let x = match cfg.norm {
                Norm::Pre => B::src(&a.res_mlp, s * nc..(s + 1) * nc),
                Norm::Post => B::src(&a.ln_2, s * nc..(s + 1) * nc),
            };
            dev.layernorm_forward(ln_f, mean, rstd, x, w, b)
        }
    }
    // logits = lm_head(x)  [N,V] (decoding: the last row only)
    let Some(logits) = logits else {
        return;
    };
    let rows = match mode {
        Mode::Full { .. } => 0..n,
        Mode::Decode { .. } => n - 1..n,
    };
    let x = B::src(&a.ln_f, rows.start * c..rows.end * c);
    let head_bias = net.lay.lm_head_bias.map(|i| net.w(i));
    dev.linear_forward(logits, x, net.w(net.lay.head()), head_bias, c);
}

/// Block `l`, pre- or post-LN (`cfg.norm`). Pre-LN takes and returns the owed projection
/// bias (see [`forward`]); post-LN completes its residual adds inside the block.
fn block_forward<'p, B: Backend>(
    net: &Net<'p, B>,
    a: &mut Acts<B>,
    sh: Shard,
    l: usize,
    pending: Option<Option<B::Src<'p>>>,
    pos: Positions<B>,
    mode: &mut Mode<B>,
) -> Option<Option<B::Src<'p>>> {
    match net.cfg.norm {
        Norm::Pre => pre_block_forward(net, a, sh, l, pending, pos, mode),
        Norm::Post => {
            post_block_forward(net, a, sh, l, pos, mode);
            None
        }
    }
}

/// Which activation buffer a branch reads its input rows from.
#[derive(Clone, Copy)]
enum Rows {
    /// the embeddings `[N,C]` (not stacked per layer)
    Encoded,
    /// `ln_1` `[L,N,C]`
    Ln1,
    /// `ln_2` `[L,N,C]`
    Ln2,
}

/// `qkv = rope(c_attn(x))` `[N,3C]`, `atty = softmax(q·kᵀ/√hs, causal)·v` `[N,C]` for
/// block `l`, with `x` the rows `xr` of `from` (pre-LN: `ln_1`; post-LN: the block input).
#[allow(clippy::too_many_arguments)]
fn attention_forward<B: Backend>(
    net: &Net<B>,
    a: &mut Acts<B>,
    sh: Shard,
    l: usize,
    (from, xr): (Rows, std::ops::Range<usize>),
    pos: Positions<B>,
    mode: &mut Mode<B>,
) {
    let (dev, cfg, bp) = (net.dev, net.cfg, &net.lay.blocks[l]);
    let (b, t, c, nh) = (sh.b, sh.t, cfg.n_embd, cfg.n_head);
    let (n, s) = (b * t, a.slot(l));
    let nc = n * c;
    let qkv_r = s * 3 * nc..(s + 1) * 3 * nc;
    let x = match from {
        Rows::Encoded => B::src(&a.encoded, xr),
        Rows::Ln1 => B::src(&a.ln_1, xr),
        Rows::Ln2 => B::src(&a.ln_2, xr),
    };
    let (w, bb) = net.wb(bp.c_attn);
    dev.linear_forward(B::dst(&mut a.qkv, qkv_r.clone()), x, w, bb, c);
    if let Some((cos, sin)) = pos.rope {
        dev.rope(B::dst(&mut a.qkv, qkv_r.clone()), cos, sin, t, c, nh, false);
    }
    let dims = Dims { b, t, c, nh };
    let (atty, lse) = (
        B::dst(&mut a.atty, s * nc..(s + 1) * nc),
        B::dst(&mut a.lse, s * n * nh..(s + 1) * n * nh),
    );
    let qkv = B::src(&a.qkv, qkv_r);
    let work_len = B::len(&a.attn_work);
    let work = B::dst(&mut a.attn_work, 0..work_len);
    match mode {
        Mode::Full { .. } => {
            let am = sh.attn_mask(site(l, 0), nh);
            dev.attention_forward(atty, lse, qkv, work, dims, am)
        }
        Mode::Decode { cache, past } => {
            let r = cache.layer(l);
            let (k, v) = (B::dst(&mut cache.k, r.clone()), B::dst(&mut cache.v, r));
            dev.attention_decode(atty, lse, qkv, k, v, work, *past, dims)
        }
    }
}

/// `fc_gelu = act(c_fc(x))` `[N,H4]` for block `l`, `x` = slot `l` of `from` (pre-LN:
/// `ln_2`; post-LN: `ln_1`); c_fc's bias is added inside the activation pass, and a
/// training forward keeps the activation's derivative in place of `fc`.
fn mlp_hidden_forward<B: Backend>(
    net: &Net<B>,
    a: &mut Acts<B>,
    sh: Shard,
    l: usize,
    from: Rows,
    mode: &Mode<B>,
) {
    let (dev, cfg, bp) = (net.dev, net.cfg, &net.lay.blocks[l]);
    let (n, c, s) = (sh.b * sh.t, cfg.n_embd, a.slot(l));
    let (cur, fc_r) = (
        s * n * c..(s + 1) * n * c,
        s * n * cfg.hidden()..(s + 1) * n * cfg.hidden(),
    );
    let (w, bb) = net.wb(bp.c_fc);
    let x = match from {
        Rows::Encoded => B::src(&a.encoded, 0..n * c),
        Rows::Ln1 => B::src(&a.ln_1, cur),
        Rows::Ln2 => B::src(&a.ln_2, cur),
    };
    dev.linear_forward(B::dst(&mut a.fc, fc_r.clone()), x, w, None, c);
    let fc_gelu = B::dst(&mut a.fc_gelu, fc_r.clone());
    match mode {
        Mode::Full { for_backward: true } => {
            let fc = B::dst(&mut a.fc, fc_r);
            dev.gelu_forward_keep_derivative(fc_gelu, fc, bb, cfg.activation)
        }
        _ => dev.gelu_forward(fc_gelu, B::src(&a.fc, fc_r), bb, cfg.activation),
    }
}

/// Pre-LN block `l`: `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`, reading the block input
/// from slot `l-1` of `res_mlp` (or `encoded`). Takes and returns the owed projection bias.
fn pre_block_forward<'p, B: Backend>(
    net: &Net<'p, B>,
    a: &mut Acts<B>,
    sh: Shard,
    l: usize,
    mut pending: Option<Option<B::Src<'p>>>,
    pos: Positions<B>,
    mode: &mut Mode<B>,
) -> Option<Option<B::Src<'p>>> {
    let (dev, cfg, bp) = (net.dev, net.cfg, &net.lay.blocks[l]);
    let (n, c, h) = (sh.b * sh.t, cfg.n_embd, cfg.hidden());
    let (nc, nh4) = (n * c, n * h);
    let (s, sp) = (a.slot(l), a.slot(l.saturating_sub(1)));
    let cur = s * nc..(s + 1) * nc;
    let prev = sp * nc..(sp + 1) * nc;

    // ln_1 over the block input x (completing the previous block's MLP branch when owed)
    let (w, bb) = net.wb(bp.ln_1);
    let (ln_1, mean, rstd) = (
        B::dst(&mut a.ln_1, cur.clone()),
        B::dst(&mut a.ln_1_mean, s * n..(s + 1) * n),
        B::dst(&mut a.ln_1_rstd, s * n..(s + 1) * n),
    );
    match pending.take() {
        Some(proj_bias) => dev.layernorm_forward_residual(
            ln_1,
            mean,
            rstd,
            B::dst(&mut a.res_mlp, prev.clone()),
            B::src(&a.res_attn, prev.clone()),
            proj_bias,
            w,
            bb,
        ),
        None => {
            let x = match l {
                0 => B::src(&a.encoded, 0..nc),
                _ => B::src(&a.res_mlp, prev.clone()),
            };
            dev.layernorm_forward(ln_1, mean, rstd, x, w, bb)
        }
    }

    // atty = attn(ln_1)  [N,C]
    attention_forward(net, a, sh, l, (Rows::Ln1, cur.clone()), pos, mode);

    // res_attn = x + drop(c_proj(atty))  [N,C]
    let x = match l {
        0 => B::src(&a.encoded, 0..nc),
        _ => B::src(&a.res_mlp, prev),
    };
    let (w, bb) = net.wb(bp.attn_proj);
    let atty = B::src(&a.atty, cur.clone());
    match sh.mask(site(l, 1), c) {
        None => {
            dev.linear_forward(B::dst(&mut a.res_attn, cur.clone()), atty, w, None, c);
            pending = Some(bb);
        }
        Some(m) => {
            dev.linear_forward(B::dst(&mut a.tmp, 0..nc), atty, w, bb, c);
            dev.dropout(B::dst(&mut a.tmp, 0..nc), m);
            let res_attn = B::dst(&mut a.res_attn, cur.clone());
            dev.residual(res_attn, x, B::src(&a.tmp, 0..nc));
        }
    }

    // ln_2 over res_attn (completing the attention branch when owed)
    let (w, bb) = net.wb(bp.ln_2);
    let (ln_2, mean, rstd) = (
        B::dst(&mut a.ln_2, cur.clone()),
        B::dst(&mut a.ln_2_mean, s * n..(s + 1) * n),
        B::dst(&mut a.ln_2_rstd, s * n..(s + 1) * n),
    );
    match pending.take() {
        Some(proj_bias) => {
            let res_attn = B::dst(&mut a.res_attn, cur.clone());
            dev.layernorm_forward_residual(ln_2, mean, rstd, res_attn, x, proj_bias, w, bb)
        }
        None => {
            let res_attn = B::src(&a.res_attn, cur.clone());
            dev.layernorm_forward(ln_2, mean, rstd, res_attn, w, bb)
        }
    }

    // fc_gelu = act(c_fc(ln_2))  [N,H4]
    mlp_hidden_forward(net, a, sh, l, Rows::Ln2, mode);

    // res_mlp = res_attn + drop(c_proj(fc_gelu))  [N,C]
    let (w, bb) = net.wb(bp.mlp_proj);
    let fc_gelu = B::src(&a.fc_gelu, s * nh4..(s + 1) * nh4);
    match sh.mask(site(l, 2), c) {
        None => {
            dev.linear_forward(B::dst(&mut a.res_mlp, cur), fc_gelu, w, None, h);
            pending = Some(bb);
        }
        Some(m) => {
            dev.linear_forward(B::dst(&mut a.tmp, 0..nc), fc_gelu, w, bb, h);
            dev.dropout(B::dst(&mut a.tmp, 0..nc), m);
            let res_attn = B::src(&a.res_attn, cur.clone());
            dev.residual(B::dst(&mut a.res_mlp, cur), res_attn, B::src(&a.tmp, 0..nc));
        }
    }
    pending
}

/// Post-LN block `l` (the original Transformer's): `y = ln_1(x + attn(x))`,
/// `out = ln_2(y + mlp(y))`. The block input `x` is slot `l-1` of `ln_2` (or `encoded`),
/// the sums go to `res_attn` and `res_mlp` (what the LayerNorms' backward reads), `y` to
/// `ln_1` and the output to `ln_2`. Every residual add is finished here (fused into the
/// LayerNorm that follows it when the branch has no dropout).
fn post_block_forward<B: Backend>(
    net: &Net<B>,
    a: &mut Acts<B>,
    sh: Shard,
    l: usize,
    pos: Positions<B>,
    mode: &mut Mode<B>,
) {
    let (dev, cfg, bp) = (net.dev, net.cfg, &net.lay.blocks[l]);
    let (n, c, h) = (sh.b * sh.t, cfg.n_embd, cfg.hidden());
    let (nc, nh4) = (n * c, n * h);
    let (s, sp) = (a.slot(l), a.slot(l.saturating_sub(1)));
    let (cur, stats) = (s * nc..(s + 1) * nc, s * n..(s + 1) * n);
    let input = match l {
        0 => (Rows::Encoded, 0..nc),
        _ => (Rows::Ln2, sp * nc..(sp + 1) * nc),
    };

    // atty = attn(x)  [N,C]
    attention_forward(net, a, sh, l, input.clone(), pos, mode);

    // res_attn = x + drop(c_proj(atty)); ln_1 = LN(res_attn)  [N,C]
    let x = match input.0 {
        Rows::Encoded => B::src(&a.encoded, input.1),
        _ => B::src(&a.ln_2, input.1),
    };
    let (w, bb) = net.wb(bp.attn_proj);
    let (lw, lb) = net.wb(bp.ln_1);
    let atty = B::src(&a.atty, cur.clone());
    let (ln_1, mean, rstd) = (
        B::dst(&mut a.ln_1, cur.clone()),
        B::dst(&mut a.ln_1_mean, stats.clone()),
        B::dst(&mut a.ln_1_rstd, stats.clone()),
    );
    match sh.mask(site(l, 1), c) {
        None => {
            dev.linear_forward(B::dst(&mut a.res_attn, cur.clone()), atty, w, None, c);
            let res_attn = B::dst(&mut a.res_attn, cur.clone());
            dev.layernorm_forward_residual(ln_1, mean, rstd, res_attn, x, bb, lw, lb);
        }
        Some(m) => {
            dev.linear_forward(B::dst(&mut a.tmp, 0..nc), atty, w, bb, c);
            dev.dropout(B::dst(&mut a.tmp, 0..nc), m);
            dev.residual(
                B::dst(&mut a.res_attn, cur.clone()),
                x,
                B::src(&a.tmp, 0..nc),
            );
            let res_attn = B::src(&a.res_attn, cur.clone());
            dev.layernorm_forward(ln_1, mean, rstd, res_attn, lw, lb);
        }
    }

    // fc_gelu = act(c_fc(ln_1))  [N,H4]
    mlp_hidden_forward(net, a, sh, l, Rows::Ln1, mode);

    // res_mlp = ln_1 + drop(c_proj(fc_gelu)); ln_2 = LN(res_mlp)  [N,C]
    let (w, bb) = net.wb(bp.mlp_proj);
    let (lw, lb) = net.wb(bp.ln_2);
    let fc_gelu = B::src(&a.fc_gelu, s * nh4..(s + 1) * nh4);
    let y = B::src(&a.ln_1, cur.clone());
    let (ln_2, mean, rstd) = (
        B::dst(&mut a.ln_2, cur.clone()),
        B::dst(&mut a.ln_2_mean, stats.clone()),
        B::dst(&mut a.ln_2_rstd, stats),
    );
    match sh.mask(site(l, 2), c) {
        None => {
            dev.linear_forward(B::dst(&mut a.res_mlp, cur.clone()), fc_gelu, w, None, h);
            let res_mlp = B::dst(&mut a.res_mlp, cur);
            dev.layernorm_forward_residual(ln_2, mean, rstd, res_mlp, y, bb, lw, lb);
        }
        Some(m) => {
            dev.linear_forward(B::dst(&mut a.tmp, 0..nc), fc_gelu, w, bb, h);
            dev.dropout(B::dst(&mut a.tmp, 0..nc), m);
            dev.residual(
                B::dst(&mut a.res_mlp, cur.clone()),
                y,
                B::src(&a.tmp, 0..nc),
            );
            let res_mlp = B::src(&a.res_mlp, cur);
            dev.layernorm_forward(ln_2, mean, rstd, res_mlp, lw, lb);
        }
    }
}

/// The gradient reaching a branch's output projection: `dres` itself, or, when the branch
/// output went through dropout, `dres` masked into `tmp`.
fn through_dropout<'a, B: Backend>(
    dev: &B,
    dres: &'a B::Buf,
    tmp: &'a mut B::Buf,
    nc: usize,
    mask: Option<Mask>,
) -> B::Src<'a> {
    match mask {
        None => B::src(dres, 0..nc),
        Some(m) => {
            dev.copy(B::dst(tmp, 0..nc), B::src(dres, 0..nc));
            dev.dropout(B::dst(tmp, 0..nc), m);
            B::src(tmp, 0..nc)
        }
    }
}

/// The head's gradients the fused classifier staged during the forward (`classifier.rs`).
pub(crate) struct HeadGrads<'a, B: Backend> {
    /// `d loss / d ln_f(x)` `[b·t, C]`
    pub dx: B::Src<'a>,
    /// `d loss / d lm_head.weight` `[V, C]`, or `[C, V]` when `dw_transposed`
    pub dw: B::Src<'a>,
    pub dw_transposed: bool,
    /// `d loss / d lm_head.bias` `[V]` (`head_bias` models only)
    pub db: Option<B::Src<'a>>,
}

/// The last block's rows in the stacked `[L, N, C]` buffers of a training pass.
fn last_rows(cfg: &ModelConfig, nc: usize) -> std::ops::Range<usize> {
    (cfg.n_layer - 1) * nc..cfg.n_layer * nc
}

/// Backward of one shard after its [`forward`] (a training one): accumulates
/// `d loss / d params` into `g`, starting from the head's staged gradients.
pub(crate) fn backward<B: Backend>(
    net: &Net<B>,
    a: &mut Acts<B>,
    g: &mut B::Buf,
    sh: Shard,
    pos: Positions<B>,
    head: HeadGrads<'_, B>,
) {
    let (dev, cfg, lay) = (net.dev, net.cfg, net.lay);
    let (n, c) = (sh.b * sh.t, cfg.n_embd);
    let nc = n * c;

    // lm_head: dW += staged dW (tied: into wte's gradient)
    let g_head = B::dst(g, lay.r(lay.head()));
    if head.dw_transposed {
        dev.accumulate_transposed(g_head, head.dw, c);
    } else {
        dev.accumulate(g_head, head.dw);
    }
    if let (Some(i), Some(db)) = (lay.lm_head_bias, head.db) {
        dev.accumulate(B::dst(g, lay.r(i)), db);
    }
    // ln_f: dres = ln_f'(dx)
    let last = last_rows(cfg, nc);
    let x = match cfg.norm {
        Norm::Pre => B::src(&a.res_mlp, last),
        Norm::Post => B::src(&a.ln_2, last),
    };
    let (gw, gb) = grad_wb::<B>(lay, g, lay.ln_f);
    let (mean, rstd) = (B::src(&a.ln_f_mean, 0..n), B::src(&a.ln_f_rstd, 0..n));
    let dres = B::dst(&mut a.dres, 0..nc);
    dev.layernorm_backward(
        dres,
        gw,
        gb,
        head.dx,
        x,
        net.w(lay.ln_f.w),
        mean,
        rstd,
        false,
    );

    for l in (0..cfg.n_layer).rev() {
        block_backward(net, a, g, sh, l, pos);
    }

    // x = drop(wte(idx) + wpe)
    if let Some(m) = sh.mask(SITE_EMB, c) {
        dev.dropout(B::dst(&mut a.dres, 0..nc), m);
    }
    let dres = B::src(&a.dres, 0..nc);
    match lay.wpe {
        Some(wpe) => {
            let (dwte, dwpe) = B::dst_pair(g, lay.r(lay.wte), lay.r(wpe));
            dev.embedding_backward(dwte, Some(dwpe), dres, &a.idx[..n], sh.t, c)
        }
        None => {
            let dwte = B::dst(g, lay.r(lay.wte));
            dev.embedding_backward(dwte, None, dres, &a.idx[..n], sh.t, c)
        }
    }
}

/// Backward of block `l`: `dres` holds d loss / d (block output) on entry and
/// d loss / d (block input) on exit.
fn block_backward<B: Backend>(
    net: &Net<B>,
    a: &mut Acts<B>,
    g: &mut B::Buf,
    sh: Shard,
    l: usize,
    pos: Positions<B>,
) {
    match net.cfg.norm {
        Norm::Pre => pre_block_backward(net, a, g, sh, l, pos),
        Norm::Post => post_block_backward(net, a, g, sh, l, pos),
    }
}

/// The MLP branch's backward, `d/d x` of `c_proj(act(c_fc(x)))` given its output gradient in
/// `dres` (through the branch's dropout): pre-LN (`x` = `ln_2`) writes it to `dln`; post-LN
/// (`x` = `ln_1`) adds it to `dres`, which holds the residual path's gradient.
fn mlp_backward<B: Backend>(net: &Net<B>, a: &mut Acts<B>, g: &mut B::Buf, sh: Shard, l: usize) {
    let (dev, cfg, lay, bp) = (net.dev, net.cfg, net.lay, &net.lay.blocks[l]);
    let (n, c, h) = (sh.b * sh.t, cfg.n_embd, cfg.hidden());
    let (nc, nh4) = (n * c, n * h);
    let cur = l * nc..(l + 1) * nc;
    let dproj = through_dropout(dev, &a.dres, &mut a.tmp, nc, sh.mask(site(l, 2), c));
    let (gw, gb) = grad_wb::<B>(lay, g, bp.mlp_proj);
    let fc_r = l * nh4..(l + 1) * nh4;
    let fc_gelu = B::src(&a.fc_gelu, fc_r.clone());
    let dfc = B::dst(&mut a.dfc, 0..nh4);
    let w = net.w(bp.mlp_proj.w);
    dev.linear_backward(Some(dfc), gw, gb, dproj, fc_gelu, w, h, false);
    dev.gelu_backward(B::dst(&mut a.dfc, 0..nh4), B::src(&a.fc, fc_r));
    let (gw, gb) = grad_wb::<B>(lay, g, bp.c_fc);
    let (dfc, w) = (B::src(&a.dfc, 0..nh4), net.w(bp.c_fc.w));
    match cfg.norm {
        Norm::Pre => {
            let (dln, ln_2) = (B::dst(&mut a.dln, 0..nc), B::src(&a.ln_2, cur));
            dev.linear_backward(Some(dln), gw, gb, dfc, ln_2, w, c, false)
        }
        Norm::Post => {
            let (dres, ln_1) = (B::dst(&mut a.dres, 0..nc), B::src(&a.ln_1, cur));
            dev.linear_backward(Some(dres), gw, gb, dfc, ln_1, w, c, true)
        }
    }
}

/// The attention branch's backward, `d/d x` of `c_proj(attn(c_attn(x)))` given its output
/// gradient in `dres` (through the branch's dropout): pre-LN (`x` = `ln_1`) writes it to
/// `dln`; post-LN (`x` = the block input) adds it to `dres`.
fn attention_backward<B: Backend>(
    net: &Net<B>,
    a: &mut Acts<B>,
    g: &mut B::Buf,
    sh: Shard,
    l: usize,
    pos: Positions<B>,
) {
    let (dev, cfg, lay, bp) = (net.dev, net.cfg, net.lay, &net.lay.blocks[l]);
    let (b, t) = (sh.b, sh.t);
    let (n, c, nh) = (b * t, cfg.n_embd, cfg.n_head);
    let nc = n * c;
    let cur = l * nc..(l + 1) * nc;
    let dproj = through_dropout(dev, &a.dres, &mut a.tmp, nc, sh.mask(site(l, 1), c));
    let (gw, gb) = grad_wb::<B>(lay, g, bp.attn_proj);
    let atty = B::src(&a.atty, cur.clone());
    let datty = B::dst(&mut a.datty, 0..nc);
    let w = net.w(bp.attn_proj.w);
    dev.linear_backward(Some(datty), gw, gb, dproj, atty, w, c, false);
    let qkv = B::src(&a.qkv, l * 3 * nc..(l + 1) * 3 * nc);
    let lse = B::src(&a.lse, l * n * nh..(l + 1) * n * nh);
    let dqkv = B::dst(&mut a.dqkv, 0..3 * nc);
    let work_len = B::len(&a.attn_work);
    let work = B::dst(&mut a.attn_work, 0..work_len);
    let (datty, dims) = (B::src(&a.datty, 0..nc), Dims { b, t, c, nh });
    let am = sh.attn_mask(site(l, 0), nh);
    dev.attention_backward(dqkv, datty, atty, lse, qkv, work, dims, am);
    if let Some((cos, sin)) = pos.rope {
        dev.rope(B::dst(&mut a.dqkv, 0..3 * nc), cos, sin, t, c, nh, true);
    }
    let (gw, gb) = grad_wb::<B>(lay, g, bp.c_attn);
    let (dqkv, w) = (B::src(&a.dqkv, 0..3 * nc), net.w(bp.c_attn.w));
    match (cfg.norm, l) {
        (Norm::Pre, _) => {
            let (dln, ln_1) = (B::dst(&mut a.dln, 0..nc), B::src(&a.ln_1, cur));
            dev.linear_backward(Some(dln), gw, gb, dqkv, ln_1, w, c, false)
        }
        (Norm::Post, 0) => {
            let (dres, x) = (B::dst(&mut a.dres, 0..nc), B::src(&a.encoded, 0..nc));
            dev.linear_backward(Some(dres), gw, gb, dqkv, x, w, c, true)
        }
        (Norm::Post, _) => {
            let x = B::src(&a.ln_2, (l - 1) * nc..l * nc);
            let dres = B::dst(&mut a.dres, 0..nc);
            dev.linear_backward(Some(dres), gw, gb, dqkv, x, w, c, true)
        }
    }
}

/// Pre-LN block backward: each branch's gradient reaches its LayerNorm in `dln`, whose
/// backward adds it to the residual path's gradient in `dres`.
fn pre_block_backward<B: Backend>(
    net: &Net<B>,
    a: &mut Acts<B>,
    g: &mut B::Buf,
    sh: Shard,
    l: usize,
    pos: Positions<B>,
) {
    let (dev, cfg, lay, bp) = (net.dev, net.cfg, net.lay, &net.lay.blocks[l]);
    let (n, c) = (sh.b * sh.t, cfg.n_embd);
    let nc = n * c;
    let cur = l * nc..(l + 1) * nc;
    let stats = l * n..(l + 1) * n;

    // MLP branch: res_mlp = res_attn + drop(c_proj(act(c_fc(ln_2(res_attn)))))
    mlp_backward(net, a, g, sh, l);
    let (gw, gb) = grad_wb::<B>(lay, g, bp.ln_2);
    let (mean, rstd) = (
        B::src(&a.ln_2_mean, stats.clone()),
        B::src(&a.ln_2_rstd, stats.clone()),
    );
    let res_attn = B::src(&a.res_attn, cur);
    let (dres, dln) = (B::dst(&mut a.dres, 0..nc), B::src(&a.dln, 0..nc));
    let w = net.w(bp.ln_2.w);
    dev.layernorm_backward(dres, gw, gb, dln, res_attn, w, mean, rstd, true);

    // attention branch: res_attn = x + drop(c_proj(attn(ln_1(x))))
    attention_backward(net, a, g, sh, l, pos);
    let x = match l {
        0 => B::src(&a.encoded, 0..nc),
        _ => B::src(&a.res_mlp, (l - 1) * nc..l * nc),
    };
    let (gw, gb) = grad_wb::<B>(lay, g, bp.ln_1);
    let (mean, rstd) = (
        B::src(&a.ln_1_mean, stats.clone()),
        B::src(&a.ln_1_rstd, stats),
    );
    let (dres, dln) = (B::dst(&mut a.dres, 0..nc), B::src(&a.dln, 0..nc));
    dev.layernorm_backward(dres, gw, gb, dln, x, net.w(bp.ln_1.w), mean, rstd, true);
}

/// Post-LN block backward: each LayerNorm's backward turns `dres` (d out) into d (its input
/// sum) in `dln`, copied back to `dres` as the residual path's gradient, to which the
/// branch's backward then adds its own.
fn post_block_backward<B: Backend>(
    net: &Net<B>,
    a: &mut Acts<B>,
    g: &mut B::Buf,
    sh: Shard,
    l: usize,
    pos: Positions<B>,
) {
    let (dev, cfg, lay, bp) = (net.dev, net.cfg, net.lay, &net.lay.blocks[l]);
    let (n, c) = (sh.b * sh.t, cfg.n_embd);
    let nc = n * c;
    let cur = l * nc..(l + 1) * nc;
    let stats = l * n..(l + 1) * n;

    // out = ln_2(res_mlp): d res_mlp = ln_2'(d out)
    let (gw, gb) = grad_wb::<B>(lay, g, bp.ln_2);
    let (mean, rstd) = (
        B::src(&a.ln_2_mean, stats.clone()),
        B::src(&a.ln_2_rstd, stats.clone()),
    );
    let res_mlp = B::src(&a.res_mlp, cur.clone());
    let (dln, dres) = (B::dst(&mut a.dln, 0..nc), B::src(&a.dres, 0..nc));
    let w = net.w(bp.ln_2.w);
    dev.layernorm_backward(dln, gw, gb, dres, res_mlp, w, mean, rstd, false);
    dev.copy(B::dst(&mut a.dres, 0..nc), B::src(&a.dln, 0..nc));
    // res_mlp = y + drop(c_proj(act(c_fc(y)))): d y = d res_mlp + mlp'(d res_mlp)
    mlp_backward(net, a, g, sh, l);

    // y = ln_1(res_attn): d res_attn = ln_1'(d y)
    let (gw, gb) = grad_wb::<B>(lay, g, bp.ln_1);
    let (mean, rstd) = (
        B::src(&a.ln_1_mean, stats.clone()),
        B::src(&a.ln_1_rstd, stats),
    );
    let res_attn = B::src(&a.res_attn, cur);
    let (dln, dres) = (B::dst(&mut a.dln, 0..nc), B::src(&a.dres, 0..nc));
    let w = net.w(bp.ln_1.w);
    dev.layernorm_backward(dln, gw, gb, dres, res_attn, w, mean, rstd, false);
    dev.copy(B::dst(&mut a.dres, 0..nc), B::src(&a.dln, 0..nc));
    // res_attn = x + drop(c_proj(attn(x))): d x = d res_attn + attn'(d res_attn)
    attention_backward(net, a, g, sh, l, pos);
}
