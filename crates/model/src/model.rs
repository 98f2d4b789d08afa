//! The GPT model: parameters, the activation plan, forward and backward.
//!
//! nanoGPT's architecture: token embedding (+ learned/sinusoidal positions, or RoPE inside
//! attention), `n_layer` pre-LayerNorm blocks `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`,
//! final `ln_f`, `lm_head` (tied to `wte` by default), mean cross-entropy over targets ≠ -1.

use crate::config::{ModelConfig, PosEncoding};
use crate::device::active as dev;
use crate::error::{Error, Result};
use crate::params::{wb, wb_mut, ParamLayout, TensorInfo};
use crate::rng::{mix64, Rng};
use dev::attention::Dims;
use dev::dropout::Mask;
use dev::rope::RopeTable;

/// Activations for one (batch, block) shape, planned once and reused (llm.c's
/// ActivationTensors). Per-layer tensors are stacked `[L, ...]`; names follow nanoGPT.
#[derive(Default)]
struct Acts {
    cap_n: usize,
    cap_t: usize,
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
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    row_loss: Vec<f32>,
    // backward scratch
    dres: Vec<f32>,
    dln: Vec<f32>,
    dqkv: Vec<f32>,
    datty: Vec<f32>,
    dfc: Vec<f32>,
    tmp: Vec<f32>,
    attn_scratch: Vec<f32>,
}

/// What the last forward left for backward.
#[derive(Clone, Copy, Debug, Default)]
struct Pass {
    b: usize,
    t: usize,
    has_targets: bool,
    /// the factor currently folded into `dlogits` (the loss gradient)
    dlogits_scale: f32,
    /// dropout seed of this pass (None: no dropout)
    drop_seed: Option<u64>,
}

/// A GPT language model with its gradients and activation memory.
pub struct Gpt {
    config: ModelConfig,
    layout: ParamLayout,
    params: Vec<f32>,
    grads: Vec<f32>,
    acts: Acts,
    pass: Pass,
    sin_table: Vec<f32>,
    rope: Option<RopeTable>,
    training: bool,
    seed: u64,
    passes: u64,
    norm_partials: Vec<f64>,
}

// dropout sites within one pass
const SITE_EMB: u64 = 0;
fn site(layer: usize, k: u64) -> u64 {
    1 + layer as u64 * 3 + k
}

impl Gpt {
    /// A model with nanoGPT's initialisation, deterministic in `seed`: N(0, 0.02) for
    /// Linear weights and embeddings, N(0, 0.02/√(2·n_layer)) for the residual projections
    /// (`attn.c_proj.weight`, `mlp.c_proj.weight`), zero biases, LayerNorm weight 1, bias 0.
    pub fn new(config: ModelConfig, seed: u64) -> Result<Self> {
        let mut m = Self::zeroed(config, seed)?;
        let mut rng = Rng::new(seed);
        let proj_std = 0.02 / (2.0 * m.config.n_layer as f64).sqrt();
        for t in &m.layout.tensors {
            let p = &mut m.params[t.range()];
            let is_ln = t.name.contains(".ln_") || t.name.starts_with("transformer.ln_f");
            if t.name.ends_with(".bias") {
                p.fill(0.0);
            } else if is_ln {
                p.fill(1.0);
            } else {
                let std = if t.name.ends_with("c_proj.weight") {
                    proj_std
                } else {
                    0.02
                };
                for x in p.iter_mut() {
                    *x = (rng.normal() * std) as f32;
                }
            }
        }
        Ok(m)
    }

    /// A model with all parameters zero (to be filled by a checkpoint load).
    pub fn zeroed(config: ModelConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let layout = ParamLayout::new(&config);
        let total = layout.total;
        let sin_table = if config.pos_encoding == PosEncoding::Sinusoidal {
            dev::embedding::sinusoidal_table(config.block_size, config.n_embd)
        } else {
            Vec::new()
        };
        let rope = (config.pos_encoding == PosEncoding::Rope)
            .then(|| RopeTable::new(config.block_size, config.head_size(), config.rope_theta));
        Ok(Gpt {
            config,
            layout,
            params: vec![0.0; total],
            grads: vec![0.0; total],
            acts: Acts::default(),
            pass: Pass::default(),
            sin_table,
            rope,
            training: true,
            seed,
            passes: 0,
            norm_partials: Vec::new(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The parameter layout (names, shapes, offsets into the flat buffers).
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Total number of parameters (the tied head counted once).
    pub fn num_params(&self) -> usize {
        self.layout.total
    }

    /// nanoGPT's `get_num_params(non_embedding=True)`: total minus the position table.
    pub fn num_params_non_embedding(&self) -> usize {
        self.layout.total - self.layout.wpe.map_or(0, |i| self.layout.tensors[i].len)
    }

    /// Dropout on (`true`, the default, like a fresh `nn.Module`) or off (evaluation).
    pub fn set_training(&mut self, on: bool) {
        self.training = on;
    }

    pub fn training(&self) -> bool {
        self.training
    }

    /// Dropout-mask position: forward passes run so far. Saved in training checkpoints so a
    /// resumed run draws the same masks as an uninterrupted one.
    pub fn dropout_passes(&self) -> u64 {
        self.passes
    }

    /// Restores the dropout-mask position saved by [`Gpt::dropout_passes`].
    pub fn set_dropout_passes(&mut self, passes: u64) {
        self.passes = passes;
    }

    /// `(name, shape, values)` for every parameter, in nanoGPT's order.
    pub fn named_parameters(&self) -> impl Iterator<Item = (&str, &[usize], &[f32])> {
        named(&self.layout.tensors, &self.params)
    }

    /// Mutable counterpart of [`named_parameters`](Self::named_parameters).
    pub fn named_parameters_mut(&mut self) -> impl Iterator<Item = (&str, &[usize], &mut [f32])> {
        named_mut(&self.layout.tensors, &mut self.params)
    }

    /// `(name, shape, gradient)` for every parameter.
    pub fn named_grads(&self) -> impl Iterator<Item = (&str, &[usize], &[f32])> {
        named(&self.layout.tensors, &self.grads)
    }

    /// All parameters as one flat buffer (layout order).
    pub fn params(&self) -> &[f32] {
        &self.params
    }
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }
    /// All gradients as one flat buffer (layout order).
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }
    pub fn grads_mut(&mut self) -> &mut [f32] {
        &mut self.grads
    }
    /// Parameters and gradients together (for optimizers).
    pub fn params_and_grads_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        (&mut self.params, &mut self.grads)
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&[f32]> {
        self.layout
            .find(name)
            .map(|i| &self.params[self.layout.r(i)])
    }
    /// The gradient of the parameter called `name`.
    pub fn grad(&self, name: &str) -> Option<&[f32]> {
        self.layout
            .find(name)
            .map(|i| &self.grads[self.layout.r(i)])
    }

    /// Set all gradients to zero.
    pub fn zero_grad(&mut self) {
        use rayon::prelude::*;
        let g = &mut self.grads;
        on_pool(|| g.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0)));
    }

    /// Logits `[b, t, vocab]` of the last forward.
    pub fn logits(&self) -> &[f32] {
        &self.acts.logits[..self.pass.b * self.pass.t * self.config.vocab_size]
    }

    /// Global L2 norm of the gradients (f64 partial sums over fixed chunks, summed in order).
    pub fn grad_norm(&mut self) -> f32 {
        use rayon::prelude::*;
        const CH: usize = 1 << 14;
        let parts = self.grads.len().div_ceil(CH);
        self.norm_partials.resize(parts, 0.0);
        self.norm_partials
            .par_iter_mut()
            .zip(self.grads.par_chunks(CH))
            .for_each(|(p, g)| *p = sum_squares_f64(g));
        self.norm_partials.iter().sum::<f64>().sqrt() as f32
    }

    /// `torch.nn.utils.clip_grad_norm_`: scales gradients by `max_norm/(norm + 1e-6)` when
    /// that is below 1; returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> f32 {
        on_pool(|| self.clip_impl(max_norm))
    }

    fn clip_impl(&mut self, max_norm: f32) -> f32 {
        use rayon::prelude::*;
        let norm = self.grad_norm();
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            self.grads
                .par_chunks_mut(1 << 14)
                .for_each(|g| g.iter_mut().for_each(|x| *x *= coef));
        }
        norm
    }

    fn check_inputs(&self, idx: &[u32], targets: Option<&[i32]>, b: usize, t: usize) -> Result<()> {
        if b == 0 || t == 0 {
            return Err(Error::Shape(format!(
                "batch {b} and sequence length {t} must be positive"
            )));
        }
        if t > self.config.block_size {
            return Err(Error::Shape(format!(
                "sequence length {t} exceeds block_size {}",
                self.config.block_size
            )));
        }
        if idx.len() != b * t {
            return Err(Error::Shape(format!(
                "idx has {} tokens, expected b·t = {}",
                idx.len(),
                b * t
            )));
        }
        let v = self.config.vocab_size;
        if let Some((pos, &id)) = idx.iter().enumerate().find(|(_, &id)| id as usize >= v) {
            return Err(Error::TokenOutOfRange { id, pos, vocab: v });
        }
        if let Some(tg) = targets {
            if tg.len() != b * t {
                return Err(Error::Shape(format!(
                    "targets has {} entries, expected {}",
                    tg.len(),
                    b * t
                )));
            }
            let bad = |x: i32| x != dev::crossentropy::IGNORE && (x < 0 || x as usize >= v);
            if let Some((pos, &target)) = tg.iter().enumerate().find(|(_, &x)| bad(x)) {
                return Err(Error::TargetOutOfRange {
                    target,
                    pos,
                    vocab: v,
                });
            }
        }
        Ok(())
    }

    /// Size the activation buffers for `b·t` rows (only grows; no allocation afterwards).
    fn plan(&mut self, b: usize, t: usize) {
        let n = b * t;
        let a = &mut self.acts;
        if n <= a.cap_n && t <= a.cap_t {
            return;
        }
        let cfg = &self.config;
        let (l, c, h, v, nh) = (
            cfg.n_layer,
            cfg.n_embd,
            cfg.hidden(),
            cfg.vocab_size,
            cfg.n_head,
        );
        let (n, t) = (n.max(a.cap_n), t.max(a.cap_t));
        let z = |len: usize| vec![0.0f32; len];
        let workers = rayon::current_num_threads().max(1);
        *a = Acts {
            cap_n: n,
            cap_t: t,
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
            logits: z(n * v),
            dlogits: z(n * v),
            row_loss: z(n),
            dres: z(n * c),
            dln: z(n * c),
            dqkv: z(n * 3 * c),
            datty: z(n * c),
            dfc: z(n * h),
            tmp: z(n * c),
            attn_scratch: z(workers * dev::attention::scratch_per_worker(t)),
        };
    }

    /// Bytes held by parameters, gradients and planned activations.
    pub fn memory_bytes(&self) -> usize {
        let a = &self.acts;
        let floats = [
            &a.encoded,
            &a.ln_1,
            &a.ln_1_mean,
            &a.ln_1_rstd,
            &a.qkv,
            &a.atty,
            &a.lse,
            &a.res_attn,
            &a.ln_2,
            &a.ln_2_mean,
            &a.ln_2_rstd,
            &a.fc,
            &a.fc_gelu,
            &a.res_mlp,
            &a.ln_f,
            &a.ln_f_mean,
            &a.ln_f_rstd,
            &a.logits,
            &a.dlogits,
            &a.row_loss,
            &a.dres,
            &a.dln,
            &a.dqkv,
            &a.datty,
            &a.dfc,
            &a.tmp,
            &a.attn_scratch,
        ]
        .iter()
        .map(|v| v.len())
        .sum::<usize>();
        4 * (floats + self.params.len() + self.grads.len())
    }

    /// Run the model on `idx [b, t]`. With `targets [b, t]` (−1 = ignore) returns the mean
    /// cross-entropy loss and prepares [`backward`](Self::backward); logits are available
    /// from [`logits`](Self::logits) either way. A NaN/Inf loss is an error.
    pub fn forward(
        &mut self,
        idx: &[u32],
        targets: Option<&[i32]>,
        b: usize,
        t: usize,
    ) -> Result<Option<f32>> {
        on_pool(|| self.forward_impl(idx, targets, b, t))
    }

    fn forward_impl(
        &mut self,
        idx: &[u32],
        targets: Option<&[i32]>,
        b: usize,
        t: usize,
    ) -> Result<Option<f32>> {
        self.check_inputs(idx, targets, b, t)?;
        self.plan(b, t);
        self.passes += 1;
        let drop_seed = (self.training && self.config.dropout > 0.0)
            .then(|| mix64(self.seed ^ mix64(self.passes)));
        self.pass = Pass {
            b,
            t,
            has_targets: false,
            dlogits_scale: 1.0,
            drop_seed,
        };
        let (cfg, lay, p) = (&self.config, &self.layout, &self.params);
        let (n, c, h, v, nh) = (b * t, cfg.n_embd, cfg.hidden(), cfg.vocab_size, cfg.n_head);
        let dims = Dims { b, t, c, nh };
        let mask = |s| {
            self.pass.drop_seed.map(|seed| Mask {
                seed,
                stream: s,
                p: cfg.dropout,
            })
        };
        let a = &mut self.acts;
        a.idx[..n].copy_from_slice(idx);

        let pos: Option<&[f32]> = match cfg.pos_encoding {
            PosEncoding::Learned => lay.wpe.map(|i| &p[lay.r(i)]),
            PosEncoding::Sinusoidal => Some(&self.sin_table),
            PosEncoding::Rope => None,
        };
        dev::embedding::forward(&mut a.encoded[..n * c], idx, &p[lay.r(lay.wte)], pos, t, c);
        if let Some(m) = mask(SITE_EMB) {
            dev::dropout::apply(&mut a.encoded[..n * c], m);
        }

        // A branch's output projection without dropout is written bare; its residual and bias
        // are added by the LayerNorm that reads the sum next (ln_2, the next block's ln_1, or
        // ln_f). `pending` is that bias, when the add is still owed.
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
            if let Some(rt) = &self.rope {
                dev::rope::forward(qkv, rt, t, c, nh);
            }
            let atty = &mut a.atty[l * nc..(l + 1) * nc];
            let lse = &mut a.lse[l * n * nh..(l + 1) * n * nh];
            dev::attention::forward(atty, lse, qkv, &mut a.attn_scratch, dims, mask(site(l, 0)));
            let res_attn = &mut a.res_attn[l * nc..(l + 1) * nc];
            let (w, bb) = wb(lay, p, bp.attn_proj);
            match mask(site(l, 1)) {
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
                Some(proj_bias) => dev::layernorm::forward_residual(
                    ln_2, mean, rstd, res_attn, x, proj_bias, w, bb,
                ),
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
            if targets.is_some() {
                dev::gelu::forward_keep_derivative(fc_gelu, fc, bb, cfg.activation);
            } else {
                dev::gelu::forward(fc_gelu, fc, bb, cfg.activation);
            }
            let res_mlp = &mut a.res_mlp[l * nc..(l + 1) * nc];
            let (w, bb) = wb(lay, p, bp.mlp_proj);
            match mask(site(l, 2)) {
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
            None => {
                dev::layernorm::forward(ln_f, mean, rstd, &a.res_mlp[(l - 1) * nc..l * nc], w, bb)
            }
        }
        dev::linear::forward(
            &mut a.logits[..n * v],
            &a.ln_f[..nc],
            &p[lay.r(lay.head())],
            None,
            None,
            c,
        );

        let Some(targets) = targets else {
            return Ok(None);
        };
        let loss = dev::crossentropy::forward_backward(
            &mut a.dlogits[..n * v],
            &mut a.row_loss[..n],
            &a.logits[..n * v],
            targets,
            v,
        );
        if !loss.is_finite() {
            return Err(Error::NonFiniteLoss(loss));
        }
        self.pass.has_targets = true;
        Ok(Some(loss))
    }

    /// Accumulate `d loss / d params` into the gradients (call [`zero_grad`](Self::zero_grad)
    /// first unless accumulating over micro-batches).
    pub fn backward(&mut self) -> Result<()> {
        self.backward_scaled(1.0)
    }

    /// [`backward`](Self::backward) for `scale · loss` (e.g. `1/grad_accum_steps`).
    pub fn backward_scaled(&mut self, scale: f32) -> Result<()> {
        on_pool(|| self.backward_impl(scale))
    }

    fn backward_impl(&mut self, scale: f32) -> Result<()> {
        use rayon::prelude::*;
        if !self.pass.has_targets {
            return Err(Error::NoForward);
        }
        let Pass { b, t, .. } = self.pass;
        let (n, c, h, v, nh) = (
            b * t,
            self.config.n_embd,
            self.config.hidden(),
            self.config.vocab_size,
            self.config.n_head,
        );
        if scale != self.pass.dlogits_scale {
            let f = scale / self.pass.dlogits_scale;
            self.acts.dlogits[..n * v]
                .par_chunks_mut(8192)
                .for_each(|d| d.iter_mut().for_each(|x| *x *= f));
            self.pass.dlogits_scale = scale;
        }
        let dims = Dims { b, t, c, nh };
        let nc = n * c;
        let (cfg, lay, p) = (&self.config, &self.layout, &self.params);
        let g = &mut self.grads;
        let a = &mut self.acts;
        let mask = |s| {
            self.pass.drop_seed.map(|seed| Mask {
                seed,
                stream: s,
                p: cfg.dropout,
            })
        };

        // lm_head and ln_f
        let head = lay.head();
        dev::linear::backward(
            Some(&mut a.dln[..nc]),
            &mut g[lay.r(head)],
            None,
            &a.dlogits[..n * v],
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
            let dproj: &[f32] = match mask(site(l, 2)) {
                None => &a.dres[..nc],
                Some(m) => {
                    a.tmp[..nc].copy_from_slice(&a.dres[..nc]);
                    dev::dropout::apply(&mut a.tmp[..nc], m);
                    &a.tmp[..nc]
                }
            };
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
            let dproj: &[f32] = match mask(site(l, 1)) {
                None => &a.dres[..nc],
                Some(m) => {
                    a.tmp[..nc].copy_from_slice(&a.dres[..nc]);
                    dev::dropout::apply(&mut a.tmp[..nc], m);
                    &a.tmp[..nc]
                }
            };
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
                mask(site(l, 0)),
            );
            if let Some(rt) = &self.rope {
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

        if let Some(m) = mask(SITE_EMB) {
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
        Ok(())
    }
}

impl std::fmt::Debug for Gpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpt")
            .field("config", &self.config)
            .field("num_params", &self.num_params())
            .field("training", &self.training)
            .finish_non_exhaustive()
    }
}

crate::simd_fn! {
    /// `Σ x²` in f64 with 8 fixed partial sums (so it vectorises instead of waiting on one
    /// chain of dependent adds; the order is fixed, so the result is deterministic).
    fn sum_squares_f64(g: &[f32]) -> f64 {
        let mut acc = [0.0f64; 8];
        let chunks = g.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..8 {
                acc[l] += c[l] as f64 * c[l] as f64;
            }
        }
        let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for &x in rest {
            s += x as f64 * x as f64;
        }
        s
    }
}

/// Run `f` on a rayon worker thread. Called from outside the pool, every parallel loop would
/// otherwise hand its work across threads and put the caller to sleep (two context switches
/// per op, hundreds per step); entering the pool once per model call avoids that.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::join(f, || ()).0
    }
}

fn named<'a>(
    ts: &'a [TensorInfo],
    buf: &'a [f32],
) -> impl Iterator<Item = (&'a str, &'a [usize], &'a [f32])> {
    ts.iter()
        .map(move |t| (t.name.as_str(), &t.shape[..], &buf[t.range()]))
}

fn named_mut<'a>(
    ts: &'a [TensorInfo],
    buf: &'a mut [f32],
) -> impl Iterator<Item = (&'a str, &'a [usize], &'a mut [f32])> {
    let mut rest = buf;
    ts.iter().map(move |t| {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(t.len);
        rest = tail;
        (t.name.as_str(), &t.shape[..], head)
    })
}
