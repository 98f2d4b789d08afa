//! The GPT model: parameters, the activation plan, forward and backward.
//!
//! nanoGPT's architecture: token embedding (+ learned/sinusoidal positions, and/or RoPE inside
//! attention), `n_layer` pre-LayerNorm blocks `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`
//! (or post-LN `x = ln_1(x + attn(x)); x = ln_2(x + mlp(x))`, `norm = post`), final `ln_f`,
//! `lm_head` (tied to `wte` by default; untied it may have a bias), mean cross-entropy over
//! targets ≠ -1.

use crate::acts::{Acts, Plan};
use crate::backend::cpu::Cpu;
use crate::backend::Backend;
use crate::classifier::{self, HeadBufs};
use crate::config::{ModelConfig, PosEncoding};
use crate::error::{Error, Result};
use crate::ops::crossentropy::IGNORE;
use crate::ops::embedding::sinusoidal_table;
use crate::ops::rope::RopeTable;
use crate::params::{ParamLayout, TensorInfo};
use crate::pass::{self, HeadGrads, Mode, Net, Positions, Shard};
use crate::rng::{mix64, Rng};

/// What the last forward left for backward.
#[derive(Clone, Copy, Debug, Default)]
struct Pass {
    b: usize,
    t: usize,
    /// sequences per batch shard (the last shard may hold fewer) and the number of shards
    shard_b: usize,
    shards: usize,
    /// what the head computes
    head: Head,
    /// the classifier staged gradients and the loss was finite: backward may run
    backward_ready: bool,
    /// the factor currently folded into the staged head gradients (the loss gradient)
    grad_scale: f32,
    /// rows per classifier chunk in this pass
    chunk: usize,
    /// dropout seed of this pass (None: no dropout)
    drop_seed: Option<u64>,
}

/// What a forward's head computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Head {
    /// full logits `[N, V]` (no targets)
    #[default]
    Logits,
    /// the fused classifier's loss only (evaluation)
    Loss,
    /// loss and the staged gradients a backward starts from (training)
    LossAndGrads,
}

/// The targets of a forward that computes a loss.
struct LossOf<'a> {
    targets: &'a [i32],
    /// valid targets in the whole batch
    n_valid: usize,
    /// stage the head's gradients for backward
    grads: bool,
}

/// Fixed position tables in backend memory.
pub(crate) struct PosTables<B: Backend> {
    /// sinusoidal positions `[block_size, C]` (`sinusoidal` and `sinusoidal+rope`)
    pub sin: Option<B::Buf>,
    /// RoPE `cos, sin [block_size, hs/2]` (`rope` and `sinusoidal+rope`)
    pub rope: Option<(B::Buf, B::Buf)>,
}

/// A GPT language model with its gradients and activation memory, on backend `B`
/// (the CPU unless said otherwise).
pub struct Gpt<B: Backend = Cpu> {
    pub(crate) dev: B,
    config: ModelConfig,
    layout: ParamLayout,
    /// all parameters `[P]`, flat, layout order
    pub(crate) params: B::Buf,
    /// their gradients `[P]`
    pub(crate) grads: B::Buf,
    /// activations, one set per batch shard (see [`Gpt::set_batch_shards`])
    shards: Vec<Acts<B>>,
    /// gradients `[P]` of shards 1.. (shard 0 accumulates straight into `grads`)
    shard_grads: Vec<B::Buf>,
    /// shards requested (0 = automatic)
    batch_shards: usize,
    /// the fused classifier's buffers, one set per batch shard
    heads: Vec<HeadBufs<B>>,
    /// rows per classifier chunk requested (0 = automatic)
    chunk_rows: usize,
    /// `[N, V]` logits of a forward without targets (empty until one runs); each shard
    /// writes its own rows. Training and evaluation never allocate it.
    logits: B::Buf,
    pass: Pass,
    pub(crate) tables: PosTables<B>,
    training: bool,
    seed: u64,
    passes: u64,
}

impl Gpt<Cpu> {
    /// A model on the CPU with nanoGPT's initialisation, deterministic in `seed` (see
    /// [`Gpt::new_on`]).
    pub fn new(config: ModelConfig, seed: u64) -> Result<Self> {
        Gpt::new_on(Cpu::new(), config, seed)
    }

    /// A CPU model with all parameters zero (to be filled by a checkpoint load).
    pub fn zeroed(config: ModelConfig, seed: u64) -> Result<Self> {
        Gpt::zeroed_on(Cpu::new(), config, seed)
    }

    /// What the Linear products run in (see [`crate::dtype`]).
    pub fn precision(&self) -> crate::dtype::Precision {
        self.dev.precision()
    }

    /// Switch the Linear products to `p` (f32 parameters either way, so this may change
    /// between steps; a checkpoint is the same in every precision). Panics on native bf16
    /// where the CPU has none (resolve it with [`Precision::resolve`](crate::Precision::resolve)).
    pub fn set_precision(&mut self, p: crate::dtype::Precision) {
        self.dev.set_precision(p);
    }

    /// Keep each Linear weight's bf16 preparation (cast/packed tiles) from its first use
    /// after a parameter update until the next (on by default; it costs about the f32
    /// parameters' size again while a bf16 precision runs). Off: prepared at every use.
    /// Results are the same bits either way.
    pub fn keep_prepared_weights(&mut self, on: bool) {
        self.dev.keep_prepared_weights(on);
    }

    /// `(name, shape, values)` for every parameter, in nanoGPT's order.
    pub fn named_parameters(&self) -> impl Iterator<Item = (&str, &[usize], &[f32])> {
        named(&self.layout.tensors, &self.params)
    }

    /// Mutable counterpart of [`named_parameters`](Self::named_parameters).
    pub fn named_parameters_mut(&mut self) -> impl Iterator<Item = (&str, &[usize], &mut [f32])> {
        self.dev.weights_changed();
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
    /// Mutable counterpart of [`params`](Self::params).
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.dev.weights_changed();
        &mut self.params
    }
    /// All gradients as one flat buffer (layout order).
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }
    /// Mutable counterpart of [`grads`](Self::grads).
    pub fn grads_mut(&mut self) -> &mut [f32] {
        &mut self.grads
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

    /// Logits `[b, t, vocab]` of the last forward *without targets*; empty after a forward
    /// with targets or a [`loss`](Gpt::loss) (those never materialise the logits).
    pub fn logits(&self) -> &[f32] {
        &self.logits[..self.logits_len()]
    }
}

impl<B: Backend> Gpt<B> {
    /// A model on `dev` with nanoGPT's initialisation, deterministic in `seed`: N(0, 0.02)
    /// for Linear weights and embeddings, N(0, 0.02/√(2·n_layer)) for the residual
    /// projections (`attn.c_proj.weight`, `mlp.c_proj.weight`), zero biases, LayerNorm weight
    /// 1, bias 0. The values are drawn on the host, so every backend starts from the same bits.
    pub fn new_on(dev: B, config: ModelConfig, seed: u64) -> Result<Self> {
        let mut m = Self::zeroed_on(dev, config, seed)?;
        let mut host = vec![0.0f32; m.layout.total];
        let mut rng = Rng::new(seed);
        let proj_std = 0.02 / (2.0 * m.config.n_layer as f64).sqrt();
        for t in &m.layout.tensors {
            let p = &mut host[t.range()];
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
        m.upload_params(&host)?;
        Ok(m)
    }

    /// A model on `dev` with all parameters zero (to be filled by a checkpoint load).
    pub fn zeroed_on(mut dev: B, config: ModelConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        // every parameter write below goes through a method that calls `weights_changed`
        dev.keep_prepared_weights(true);
        let layout = ParamLayout::new(&config);
        let total = layout.total;
        let upload = |host: Vec<f32>| {
            let mut buf = dev.alloc(host.len());
            dev.upload(B::dst(&mut buf, 0..host.len()), &host);
            buf
        };
        let (bs, c) = (config.block_size, config.n_embd);
        let tables = PosTables {
            sin: (config.pos_encoding.adds_sinusoidal()).then(|| upload(sinusoidal_table(bs, c))),
            rope: (config.pos_encoding.rotates()).then(|| {
                let t = RopeTable::new(bs, config.head_size(), config.rope_theta);
                (upload(t.cos), upload(t.sin))
            }),
        };
        Ok(Gpt {
            params: dev.alloc(total),
            grads: dev.alloc(total),
            shards: Vec::new(),
            shard_grads: Vec::new(),
            batch_shards: 0,
            heads: Vec::new(),
            chunk_rows: 0,
            logits: dev.alloc(0),
            pass: Pass::default(),
            tables,
            training: true,
            seed,
            passes: 0,
            config,
            layout,
            dev,
        })
    }

    /// The backend this model runs on.
    pub fn backend(&self) -> &B {
        &self.dev
    }

    /// The model configuration.
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

    /// Whether dropout is on.
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

    /// All parameters, copied to the host (layout order).
    pub fn params_to_host(&self) -> Vec<f32> {
        self.dev.host(&self.params).into_owned()
    }

    /// All gradients, copied to the host (layout order).
    pub fn grads_to_host(&self) -> Vec<f32> {
        self.dev.host(&self.grads).into_owned()
    }

    /// [`Gpt::logits`], copied to the host.
    pub fn logits_to_host(&self) -> Vec<f32> {
        let n = self.logits_len();
        let mut out = vec![0.0; n];
        self.dev.download(B::src(&self.logits, 0..n), &mut out);
        out
    }

    /// Floats of logits the last forward left (0 unless it had no targets).
    fn logits_len(&self) -> usize {
        match self.pass.head {
            Head::Logits => self.pass.b * self.pass.t * self.config.vocab_size,
            Head::Loss | Head::LossAndGrads => 0,
        }
    }

    /// Replace every parameter with `host` (layout order).
    pub fn upload_params(&mut self, host: &[f32]) -> Result<()> {
        if host.len() != self.layout.total {
            return Err(Error::Shape(format!(
                "{} parameter values for a model of {}",
                host.len(),
                self.layout.total
            )));
        }
        self.dev.weights_changed();
        self.dev
            .upload(B::dst(&mut self.params, 0..host.len()), host);
        Ok(())
    }

    /// Set all gradients to zero.
    pub fn zero_grad(&mut self) {
        let (dev, g) = (&self.dev, &mut self.grads);
        B::enter(|| dev.zero(B::dst(g, 0..B::len(g))));
    }

    /// Global L2 norm of the gradients (f64 partial sums over fixed chunks, summed in order).
    pub fn grad_norm(&mut self) -> f32 {
        let (dev, g) = (&self.dev, &self.grads);
        B::enter(|| dev.sum_squares(B::src(g, 0..B::len(g))).sqrt() as f32)
    }

    /// `torch.nn.utils.clip_grad_norm_`: scales gradients by `max_norm/(norm + 1e-6)` when
    /// that is below 1; returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> f32 {
        let norm = self.grad_norm();
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            let (dev, g) = (&self.dev, &mut self.grads);
            B::enter(|| dev.scale(B::dst(g, 0..B::len(g)), coef));
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
            let bad = |x: i32| x != IGNORE && (x < 0 || x as usize >= v);
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
    /// first. Automatic: one shard per thread (the backend's [`Backend::max_shards`]) while
    /// those buffers stay within [`SHARD_GRAD_BUDGET`] bytes, else one shard (every op parallel
    /// over the whole batch). Results differ from one shard only by float summation order.
    pub fn set_batch_shards(&mut self, n: usize) {
        self.batch_shards = n;
    }

    /// Shards for a batch of `b` sequences (at most one per thread and per sequence).
    fn shard_count(&self, b: usize) -> usize {
        let threads = self.dev.max_shards().max(1);
        let want = match self.batch_shards {
            0 => {
                let extra = 4 * self.layout.total * (threads - 1);
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

    /// Rows per chunk of the fused classifier (0 = automatic, the default: the rows split
    /// evenly into as few chunks as fit [`classifier::CHUNK_BYTES`] of logits each, at least
    /// [`classifier::MIN_CHUNK_ROWS`] rows; see [`classifier::chunk_rows`]).
    /// Any value gives the same loss and gradients up to float summation order; a chunk of
    /// all `b·t` rows is the unchunked computation.
    pub fn set_classifier_chunk(&mut self, rows: usize) {
        self.chunk_rows = rows;
    }

    /// Size the buffers for `shards` shards of `shard_b` sequences of length `t` (only grows;
    /// no allocation afterwards).
    fn plan(&mut self, b: usize, t: usize, shard_b: usize, shards: usize, head: Head) {
        let (dev, cfg) = (&self.dev, &self.config);
        let workers = if shards > 1 {
            1
        } else {
            rayon::current_num_threads()
        };
        while self.shards.len() < shards {
            self.shards.push(Acts::new(dev));
            self.heads.push(HeadBufs::new(dev));
        }
        for a in &mut self.shards[..shards] {
            a.plan(dev, cfg, shard_b * t, t, workers, Plan::Training);
        }
        while self.shard_grads.len() < shards - 1 {
            self.shard_grads.push(dev.alloc(self.layout.total));
        }
        let (n, c, v) = (b * t, cfg.n_embd, cfg.vocab_size);
        match head {
            Head::Logits => {
                if B::len(&self.logits) < n * v {
                    self.logits = dev.alloc(n * v);
                }
            }
            Head::Loss | Head::LossAndGrads => {
                let grads = head == Head::LossAndGrads;
                for h in &mut self.heads[..shards] {
                    let bias = self.layout.lm_head_bias.is_some();
                    h.plan(dev, shard_b * t, c, v, self.pass.chunk, grads, bias);
                }
            }
        }
    }

    /// Bytes held by parameters, gradients, planned activations and classifier buffers.
    pub fn memory_bytes(&self) -> usize {
        let floats = B::len(&self.params)
            + B::len(&self.grads)
            + self.shard_grads.iter().map(B::len).sum::<usize>()
            + B::len(&self.logits);
        4 * floats
            + self.shards.iter().map(Acts::bytes).sum::<usize>()
            + self.heads.iter().map(HeadBufs::bytes).sum::<usize>()
    }

    /// Run the model on `idx [b, t]`. With `targets [b, t]` (−1 = ignored) returns the mean
    /// cross-entropy loss and prepares [`backward`](Self::backward) (the fused classifier
    /// stages the head's gradients; the `[b·t, V]` logits are never materialised). Without
    /// targets returns `None` and leaves the logits in [`logits`](Gpt::logits) (`[b·t, V]`
    /// floats: meant for small inputs; generation uses [`Gpt::session`]'s last-row logits).
    /// A NaN/Inf loss is an error.
    pub fn forward(
        &mut self,
        idx: &[u32],
        targets: Option<&[i32]>,
        b: usize,
        t: usize,
    ) -> Result<Option<f32>> {
        match targets {
            Some(tg) => self.run(idx, Some(tg), b, t, Head::LossAndGrads).map(Some),
            None => self.run(idx, None, b, t, Head::Logits).map(|_| None),
        }
    }

    /// The mean cross-entropy loss of `idx [b, t]` against `targets [b, t]` (−1 = ignored),
    /// for evaluation: like [`forward`](Self::forward) with targets, but prepares no backward
    /// and stages no gradients (one head product per row instead of three). Dropout follows
    /// [`set_training`](Self::set_training). A NaN/Inf loss is an error.
    pub fn loss(&mut self, idx: &[u32], targets: &[i32], b: usize, t: usize) -> Result<f32> {
        self.run(idx, Some(targets), b, t, Head::Loss)
    }

    /// The forward of [`forward`](Self::forward) and [`loss`](Self::loss); returns the mean
    /// loss (0 without targets).
    fn run(
        &mut self,
        idx: &[u32],
        targets: Option<&[i32]>,
        b: usize,
        t: usize,
        head: Head,
    ) -> Result<f32> {
        self.check_inputs(idx, targets, b, t)?;
        let shards = self.shard_count(b);
        let shard_b = b.div_ceil(shards);
        let shards = b.div_ceil(shard_b);
        let chunk = classifier::chunk_rows(self.chunk_rows, shard_b * t, self.config.vocab_size);
        self.passes += 1;
        let drop = (self.training && self.config.dropout > 0.0)
            .then(|| (mix64(self.seed ^ mix64(self.passes)), self.config.dropout));
        self.pass = Pass {
            b,
            t,
            shard_b,
            shards,
            head,
            backward_ready: false,
            grad_scale: 1.0,
            chunk,
            drop_seed: drop.map(|d| d.0),
        };
        self.plan(b, t, shard_b, shards, head);
        let Some(tg) = targets else {
            B::enter(|| self.forward_shards(idx, None, drop));
            return Ok(0.0);
        };
        // the mean runs over every valid target of the batch, whichever shard holds it
        let count = tg.iter().filter(|&&x| x != IGNORE).count();
        let loss_of = Some(LossOf {
            targets: tg,
            n_valid: count,
            grads: head == Head::LossAndGrads,
        });
        let total = B::enter(|| self.forward_shards(idx, loss_of, drop));
        let loss = (total / count as f64) as f32;
        if !loss.is_finite() {
            return Err(Error::NonFiniteLoss(loss));
        }
        self.pass.backward_ready = head == Head::LossAndGrads;
        Ok(loss)
    }

    /// The shards' forward passes, each ending in its logits (`loss_of` None) or the fused
    /// classifier; returns the summed loss of the batch's rows (0 without targets).
    fn forward_shards(
        &mut self,
        idx: &[u32],
        loss_of: Option<LossOf>,
        drop: Option<(u64, f32)>,
    ) -> f64 {
        let Pass {
            b,
            t,
            shard_b,
            shards,
            chunk,
            ..
        } = self.pass;
        // field by field (not a `&self` method): the shard buffers are borrowed mutably below
        let net = Net {
            dev: &self.dev,
            cfg: &self.config,
            lay: &self.layout,
            p: &self.params,
        };
        let pos = positions(&self.config, &self.layout, &self.params, &self.tables);
        let (n, c, v) = (b * t, self.config.n_embd, self.config.vocab_size);
        let rows = shard_b * t;
        let for_backward = loss_of.as_ref().is_some_and(|l| l.grads);
        let run = |job: ForwardJob<B>| {
            let sh = Shard {
                b: job.rows / t,
                t,
                b0: job.i * shard_b,
                drop,
            };
            let r = job.i * rows..job.i * rows + job.rows;
            let mode = Mode::Full { for_backward };
            pass::forward(&net, job.acts, sh, &idx[r.clone()], pos, mode, job.logits);
            let Some(l) = &loss_of else {
                return 0.0;
            };
            let inputs = classifier::Inputs {
                x: &job.acts.ln_f,
                w: net.w(net.lay.head()),
                b: net.lay.lm_head_bias.map(|i| net.w(i)),
                targets: &l.targets[r],
                n_valid: l.n_valid,
                c,
                v,
                chunk,
            };
            classifier::run(net.dev, job.head, &inputs, l.grads)
        };
        // each shard's rows of the batch-wide logits (forwards without targets only)
        let mut rest = loss_of
            .is_none()
            .then(|| B::dst(&mut self.logits, 0..n * v));
        let mut bufs = self.shards[..shards]
            .iter_mut()
            .zip(self.heads[..shards].iter_mut())
            .enumerate();
        let jobs = std::iter::from_fn(move || {
            let (i, (acts, head)) = bufs.next()?;
            let m = (n - i * rows).min(rows);
            let logits = rest.take().map(|all| {
                let (mine, others) = B::split_at(all, m * v);
                rest = Some(others);
                mine
            });
            Some(ForwardJob {
                i,
                rows: m,
                acts,
                head,
                logits,
            })
        });
        run_shards(&self.dev, jobs, shards, run)
    }

    /// Accumulate `d loss / d params` into the gradients (call [`zero_grad`](Self::zero_grad)
    /// first unless accumulating over micro-batches).
    pub fn backward(&mut self) -> Result<()> {
        self.backward_scaled(1.0)
    }

    /// [`backward`](Self::backward) for `scale · loss` (e.g. `1/grad_accum_steps`).
    pub fn backward_scaled(&mut self, scale: f32) -> Result<()> {
        if !self.pass.backward_ready {
            return Err(Error::NoForward);
        }
        if scale != self.pass.grad_scale {
            let f = scale / self.pass.grad_scale;
            let (nc, vc) = (
                self.pass.shard_b * self.pass.t * self.config.n_embd,
                self.config.vocab_size * self.config.n_embd,
            );
            let (dev, heads) = (&self.dev, &mut self.heads[..self.pass.shards]);
            let v = self
                .layout
                .lm_head_bias
                .map_or(0, |_| self.config.vocab_size);
            B::enter(|| {
                for h in heads {
                    dev.scale(B::dst(&mut h.dx, 0..nc), f);
                    dev.scale(B::dst(&mut h.dw, 0..vc), f);
                    dev.scale(B::dst(&mut h.db, 0..v), f);
                }
            });
            self.pass.grad_scale = scale;
        }
        B::enter(|| self.backward_shards());
        Ok(())
    }

    /// The shards' backward passes, then their gradients summed into the model's in order.
    fn backward_shards(&mut self) {
        let Pass {
            t, shard_b, shards, ..
        } = self.pass;
        let (n, c, v) = (self.pass.b * t, self.config.n_embd, self.config.vocab_size);
        // field by field (not a `&self` method): the shard buffers are borrowed mutably below
        let net = Net {
            dev: &self.dev,
            cfg: &self.config,
            lay: &self.layout,
            p: &self.params,
        };
        let pos = positions(&self.config, &self.layout, &self.params, &self.tables);
        let drop = self.pass.drop_seed.map(|s| (s, self.config.dropout));
        let rows = shard_b * t;
        let heads = &self.heads;
        let run = |job: BackwardJob<B>| {
            let m = (n - job.i * rows).min(rows);
            let sh = Shard {
                b: m / t,
                t,
                b0: job.i * shard_b,
                drop,
            };
            if job.i > 0 {
                // shard gradients start from zero; shard 0 accumulates into the model's
                net.dev.zero(B::dst(job.grads, 0..B::len(job.grads)));
            }
            let h = &heads[job.i];
            let head = HeadGrads {
                dx: B::src(&h.dx, 0..m * c),
                dw: B::src(&h.dw, 0..v * c),
                dw_transposed: h.dw_transposed,
                db: net.lay.lm_head_bias.map(|_| B::src(&h.db, 0..v)),
            };
            pass::backward(&net, job.acts, job.grads, sh, pos, head);
            0.0 // nothing to sum: each shard's result is its gradient buffer
        };
        let grads = std::iter::once(&mut self.grads).chain(self.shard_grads.iter_mut());
        let jobs = self.shards[..shards]
            .iter_mut()
            .zip(grads)
            .enumerate()
            .map(|(i, (acts, grads))| BackwardJob { i, acts, grads });
        run_shards(&self.dev, jobs, shards, run);
        // sum the shards' gradients into the model's, always in shard order
        let len = self.layout.total;
        for sg in &self.shard_grads[..shards - 1] {
            self.dev
                .accumulate(B::dst(&mut self.grads, 0..len), B::src(sg, 0..len));
        }
    }
}

impl<B: Backend> std::fmt::Debug for Gpt<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpt")
            .field("backend", &self.dev.name())
            .field("config", &self.config)
            .field("num_params", &self.num_params())
            .field("training", &self.training)
            .finish_non_exhaustive()
    }
}

/// Position tables for passes over whole sequences (row `n` is position `n % t`).
pub(crate) fn positions<'a, B: Backend>(
    cfg: &ModelConfig,
    lay: &ParamLayout,
    params: &'a B::Buf,
    tables: &'a PosTables<B>,
) -> Positions<'a, B> {
    let whole = |b: &'a B::Buf| B::src(b, 0..B::len(b));
    let table = match cfg.pos_encoding {
        PosEncoding::Learned => lay.wpe.map(|i| B::src(params, lay.r(i))),
        PosEncoding::Sinusoidal | PosEncoding::SinusoidalRope => tables.sin.as_ref().map(whole),
        PosEncoding::Rope => None,
    };
    let rope = tables.rope.as_ref().map(|(c, s)| (whole(c), whole(s)));
    Positions { table, rope }
}

/// One shard's part of a forward: its activations, classifier buffers and (forwards without
/// targets) its rows of the batch-wide logits.
struct ForwardJob<'a, B: Backend> {
    i: usize,
    /// rows (b·t) in this shard
    rows: usize,
    acts: &'a mut Acts<B>,
    head: &'a mut HeadBufs<B>,
    logits: Option<B::Dst<'a>>,
}

/// One shard's part of a backward: its activations and its gradient buffer.
struct BackwardJob<'a, B: Backend> {
    i: usize,
    acts: &'a mut Acts<B>,
    grads: &'a mut B::Buf,
}

/// Run one job per shard and sum what they return (a loss) in shard order: inline for a single shard
/// (its ops then use the whole pool), else side by side on the pool with every op kept on its
/// shard's thread.
fn run_shards<B: Backend, J: Send>(
    dev: &B,
    jobs: impl Iterator<Item = J> + Send,
    shards: usize,
    run: impl Fn(J) -> f64 + Sync,
) -> f64 {
    /// One `rayon::join` per shard: this thread takes the first job, another may steal the
    /// rest (stack-allocated jobs, so no heap allocation inside a step).
    fn fork<B: Backend, J: Send>(
        dev: &B,
        mut jobs: impl Iterator<Item = J> + Send,
        run: &(impl Fn(J) -> f64 + Sync),
    ) -> f64 {
        match jobs.next() {
            Some(job) => {
                let (first, rest) =
                    rayon::join(|| dev.on_this_thread(|| run(job)), || fork(dev, jobs, run));
                first + rest
            }
            None => 0.0,
        }
    }
    if shards == 1 {
        jobs.map(run).fold(0.0, |acc, r| acc + r)
    } else {
        fork(dev, jobs, &run)
    }
}

/// Bytes of extra gradient buffers that automatic batch sharding may hold
/// ([`Gpt::set_batch_shards`]).
pub const SHARD_GRAD_BUDGET: usize = 64 << 20;

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
