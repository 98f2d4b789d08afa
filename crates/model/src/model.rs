//! The GPT model: parameters, the activation plan, forward and backward.
//!
//! nanoGPT's architecture: token embedding (+ learned/sinusoidal positions, or RoPE inside
//! attention), `n_layer` pre-LayerNorm blocks `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`,
//! final `ln_f`, `lm_head` (tied to `wte` by default), mean cross-entropy over targets ≠ -1.

use crate::config::{ModelConfig, PosEncoding};
use crate::device::active as dev;
use crate::error::{Error, Result};
use crate::params::{ParamLayout, TensorInfo};
use crate::pass::{self, Acts, Net, Shard};
use crate::rng::{mix64, Rng};
use dev::rope::RopeTable;
use rayon::prelude::*;

/// What the last forward left for backward.
#[derive(Clone, Copy, Debug, Default)]
struct Pass {
    b: usize,
    t: usize,
    /// sequences per batch shard (the last shard may hold fewer) and the number of shards
    shard_b: usize,
    shards: usize,
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
    /// activations, one set per batch shard (see [`Gpt::set_batch_shards`])
    shards: Vec<Acts>,
    /// gradients of shards 1.. (shard 0 accumulates straight into `grads`)
    shard_grads: Vec<Vec<f32>>,
    /// shards requested (0 = automatic)
    batch_shards: usize,
    /// `[N, V]` for the whole batch; each shard writes its own rows
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    /// `[N]` per-position loss
    row_loss: Vec<f32>,
    pass: Pass,
    sin_table: Vec<f32>,
    rope: Option<RopeTable>,
    training: bool,
    seed: u64,
    passes: u64,
    norm_partials: Vec<f64>,
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
            shards: Vec::new(),
            shard_grads: Vec::new(),
            batch_shards: 0,
            logits: Vec::new(),
            dlogits: Vec::new(),
            row_loss: Vec::new(),
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
        &self.logits[..self.pass.b * self.pass.t * self.config.vocab_size]
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

    /// Ask for `n` batch shards (0 = automatic, the default). Each shard runs whole forward and
    /// backward passes on its own thread with single-threaded ops, so the per-op fork/join of
    /// a small model disappears; the price is one extra gradient buffer per shard beyond the
    /// first. Automatic: one shard per thread while those buffers stay within
    /// [`SHARD_GRAD_BUDGET`] bytes, else one shard (every op parallel over the whole batch).
    /// Results differ from one shard only by float summation order.
    pub fn set_batch_shards(&mut self, n: usize) {
        self.batch_shards = n;
    }

    /// Shards for a batch of `b` sequences (at most one per thread and per sequence).
    fn shard_count(&self, b: usize) -> usize {
        let threads = rayon::current_num_threads().max(1);
        let want = match self.batch_shards {
            0 => {
                let extra = 4 * self.params.len() * (threads - 1);
                if extra <= SHARD_GRAD_BUDGET {
                    threads
                } else {
                    1
                }
            }
            n => n,
        };
        want.clamp(1, b.max(1))
    }

    /// Size the buffers for `shards` shards of `shard_b` sequences of length `t` (only grows;
    /// no allocation afterwards).
    fn plan(&mut self, b: usize, t: usize, shard_b: usize, shards: usize) {
        let cfg = &self.config;
        let workers = if shards > 1 {
            1
        } else {
            rayon::current_num_threads()
        };
        if self.shards.len() < shards {
            self.shards.resize_with(shards, Acts::default);
        }
        for a in &mut self.shards[..shards] {
            a.plan(cfg, shard_b * t, t, workers);
        }
        if self.shard_grads.len() < shards - 1 {
            let p = self.params.len();
            self.shard_grads.resize_with(shards - 1, || vec![0.0; p]);
        }
        let (n, v) = (b * t, cfg.vocab_size);
        for (buf, len) in [
            (&mut self.logits, n * v),
            (&mut self.dlogits, n * v),
            (&mut self.row_loss, n),
        ] {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
        }
    }

    /// Bytes held by parameters, gradients and planned activations.
    pub fn memory_bytes(&self) -> usize {
        let floats = self.params.len()
            + self.grads.len()
            + self.shard_grads.iter().map(Vec::len).sum::<usize>()
            + self.logits.len()
            + self.dlogits.len()
            + self.row_loss.len();
        4 * floats + self.shards.iter().map(Acts::bytes).sum::<usize>()
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
        let shards = self.shard_count(b);
        let shard_b = b.div_ceil(shards);
        let shards = b.div_ceil(shard_b);
        self.plan(b, t, shard_b, shards);
        self.passes += 1;
        let drop = (self.training && self.config.dropout > 0.0)
            .then(|| (mix64(self.seed ^ mix64(self.passes)), self.config.dropout));
        self.pass = Pass {
            b,
            t,
            shard_b,
            shards,
            has_targets: false,
            dlogits_scale: 1.0,
            drop_seed: drop.map(|d| d.0),
        };
        // field by field (not a `&self` method): the shard buffers are borrowed mutably below
        let net = Net {
            cfg: &self.config,
            lay: &self.layout,
            p: &self.params,
            sin_table: &self.sin_table,
            rope: self.rope.as_ref(),
        };
        let (n, v) = (b * t, self.config.vocab_size);
        // the mean runs over every valid target of the batch, whichever shard holds it
        let n_valid = targets.map(|tg| {
            tg.iter()
                .filter(|&&x| x != dev::crossentropy::IGNORE)
                .count()
        });
        let rows = shard_b * t;
        let run = |job: ForwardJob| {
            let sh = Shard {
                b: job.logits.len() / (t * v),
                t,
                b0: job.i * shard_b,
                drop,
            };
            let r = job.i * rows..job.i * rows + sh.b * t;
            pass::forward(
                &net,
                job.acts,
                sh,
                &idx[r.clone()],
                job.logits,
                targets.is_some(),
            );
            if let (Some(tg), Some(count)) = (targets, n_valid) {
                dev::crossentropy::forward_backward_part(
                    job.dlogits,
                    job.row_loss,
                    job.logits,
                    &tg[r],
                    v,
                    count,
                );
            }
        };
        let jobs = self.shards[..shards]
            .iter_mut()
            .zip(self.logits[..n * v].chunks_mut(rows * v))
            .zip(self.dlogits[..n * v].chunks_mut(rows * v))
            .zip(self.row_loss[..n].chunks_mut(rows))
            .enumerate()
            .map(|(i, (((acts, logits), dlogits), row_loss))| ForwardJob {
                i,
                acts,
                logits,
                dlogits,
                row_loss,
            });
        run_shards(jobs, shards, run);
        let (Some(_), Some(count)) = (targets, n_valid) else {
            return Ok(None);
        };
        let total: f64 = self.row_loss[..n].iter().map(|&x| x as f64).sum();
        let loss = (total / count as f64) as f32;
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
        if !self.pass.has_targets {
            return Err(Error::NoForward);
        }
        let Pass {
            b,
            t,
            shard_b,
            shards,
            ..
        } = self.pass;
        let (n, v) = (b * t, self.config.vocab_size);
        if scale != self.pass.dlogits_scale {
            let f = scale / self.pass.dlogits_scale;
            self.dlogits[..n * v]
                .par_chunks_mut(8192)
                .for_each(|d| d.iter_mut().for_each(|x| *x *= f));
            self.pass.dlogits_scale = scale;
        }
        // field by field (not a `&self` method): the shard buffers are borrowed mutably below
        let net = Net {
            cfg: &self.config,
            lay: &self.layout,
            p: &self.params,
            sin_table: &self.sin_table,
            rope: self.rope.as_ref(),
        };
        let drop = self.pass.drop_seed.map(|s| (s, self.config.dropout));
        let rows = shard_b * t;
        let run = |job: BackwardJob| {
            let sh = Shard {
                b: job.dlogits.len() / (t * v),
                t,
                b0: job.i * shard_b,
                drop,
            };
            if job.i > 0 {
                // shard gradients start from zero; shard 0 accumulates into the model's
                job.grads.fill(0.0);
            }
            pass::backward(&net, job.acts, job.grads, sh, job.dlogits);
        };
        let grads = std::iter::once(&mut self.grads[..])
            .chain(self.shard_grads.iter_mut().map(|g| &mut g[..]));
        let jobs = self.shards[..shards]
            .iter_mut()
            .zip(grads)
            .zip(self.dlogits[..n * v].chunks(rows * v))
            .enumerate()
            .map(|(i, ((acts, grads), dlogits))| BackwardJob {
                i,
                acts,
                grads,
                dlogits,
            });
        run_shards(jobs, shards, run);
        if shards > 1 {
            // sum the shards' gradients into the model's, always in shard order
            let extra = &self.shard_grads[..shards - 1];
            self.grads
                .par_chunks_mut(1 << 14)
                .enumerate()
                .for_each(|(ci, g)| {
                    let r = ci << 14..(ci << 14) + g.len();
                    for sg in extra {
                        for (g, s) in g.iter_mut().zip(&sg[r.clone()]) {
                            *g += s;
                        }
                    }
                });
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

/// One shard's part of a forward: its activations and its rows of the batch-wide outputs.
struct ForwardJob<'a> {
    i: usize,
    acts: &'a mut Acts,
    logits: &'a mut [f32],
    dlogits: &'a mut [f32],
    row_loss: &'a mut [f32],
}

/// One shard's part of a backward: its activations, its gradient buffer and its `dlogits`.
struct BackwardJob<'a> {
    i: usize,
    acts: &'a mut Acts,
    grads: &'a mut [f32],
    dlogits: &'a [f32],
}

/// Run one job per shard: inline for a single shard (its ops then use the whole pool), else
/// side by side on the pool with every product kept on its shard's thread.
fn run_shards<J: Send>(
    jobs: impl Iterator<Item = J> + Send,
    shards: usize,
    run: impl Fn(J) + Sync,
) {
    /// One `rayon::join` per shard: this thread takes the first job, another may steal the
    /// rest (stack-allocated jobs, so no heap allocation inside a step).
    fn fork<J: Send>(mut jobs: impl Iterator<Item = J> + Send, run: &(impl Fn(J) + Sync)) {
        if let Some(job) = jobs.next() {
            rayon::join(
                || dev::linear::on_this_thread(|| run(job)),
                || fork(jobs, run),
            );
        }
    }
    if shards == 1 {
        jobs.for_each(run);
    } else {
        fork(jobs, &run);
    }
}

/// Bytes of extra gradient buffers that automatic batch sharding may hold
/// ([`Gpt::set_batch_shards`]).
pub const SHARD_GRAD_BUDGET: usize = 64 << 20;

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
