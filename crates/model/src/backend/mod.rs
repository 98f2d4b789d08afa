//! The device seam: a [`Backend`] owns a kind of memory and every op the model runs on it.
//!
//! The model ([`Gpt`](crate::Gpt), its per-shard pass, [`AdamW`](crate::AdamW) and the
//! KV-cached [`InferenceSession`](crate::InferenceSession)) holds its parameters, gradients,
//! moments and activations as [`Backend::Buf`]s and reaches them only through this trait, the
//! way candle's `BackendStorage` or llm.c's `.cuh` files do. Code above the seam never sees a
//! host slice or a device pointer; it names regions of buffers with [`Backend::src`] /
//! [`Backend::dst`] and hands them to ops.
//!
//! What crosses the seam as host data: token ids and targets (`&[u32]`, `&[i32]`: a device
//! backend stages them), dropout [`Mask`]s (a seed and coordinates, no storage), shapes, and
//! the few scalars a step returns (the summed loss, the sum of squares of the gradients).
//!
//! [`cpu::Cpu`] is the reference backend: the hand-written kernels of [`crate::ops`]. Any
//! other backend (bf16, CUDA) must pass [`conformance`] against it.
//!
//! Shape legend: `N` rows (= B·T), `C` channels, `OC` output channels, `H` heads,
//! `hs = C/H`, `V` vocabulary. Every buffer is row-major `f32`.

mod aligned;
pub mod conformance;
pub mod cpu;
mod weight_cache;

use crate::config::Activation;
pub use crate::ops::attention::Dims;
pub use crate::ops::cross_attention::CrossDims;
pub use crate::ops::dropout::Mask;
pub use crate::ops::linear::GradLayout;
use std::borrow::Cow;
use std::ops::Range;

/// One AdamW update's scalars, computed on the host exactly as torch does
/// (see [`AdamW`](crate::AdamW)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// `lr` (the decay factor of a decayed tensor is `1 - lr·weight_decay`)
    pub lr: f32,
    /// decoupled weight decay
    pub weight_decay: f32,
    /// β1
    pub beta1: f32,
    /// β2
    pub beta2: f32,
    /// added to √v̂
    pub eps: f32,
    /// `lr / (1 - β1^t)`
    pub step_size: f32,
    /// `√(1 - β2^t)`
    pub bc2_sqrt: f32,
}

/// A region of the flat parameter buffer and whether AdamW decays it (tensors with ≥ 2 dims).
pub type Segment = (Range<usize>, bool);

/// A device: its buffer type and the op set of the GPT (forward, backward, optimizer,
/// reductions, KV-cached decoding). All ops are synchronous from the caller's point of view
/// (a result read on the host is ready); a device backend may queue work in between.
pub trait Backend: Send + Sync + Sized + 'static {
    /// An owned, zero-initialised buffer of `f32` in this backend's memory.
    type Buf: Send + Sync;
    /// A read-only region of a [`Backend::Buf`].
    type Src<'a>: Copy + Send + Sync;
    /// A writable region of a [`Backend::Buf`].
    type Dst<'a>: Send;

    /// A short name for logs (`"cpu"`, `"cuda:0"`).
    fn name(&self) -> String;

    // ---- memory ----------------------------------------------------------------------

    /// A zeroed buffer of `len` floats.
    fn alloc(&self, len: usize) -> Self::Buf;
    /// Floats in `buf`.
    fn len(buf: &Self::Buf) -> usize;
    /// The read-only region `r` of `buf`.
    fn src(buf: &Self::Buf, r: Range<usize>) -> Self::Src<'_>;
    /// The writable region `r` of `buf`.
    fn dst(buf: &mut Self::Buf, r: Range<usize>) -> Self::Dst<'_>;
    /// Two disjoint writable regions of one buffer (`a.end <= b.start`).
    fn dst_pair(
        buf: &mut Self::Buf,
        a: Range<usize>,
        b: Range<usize>,
    ) -> (Self::Dst<'_>, Self::Dst<'_>);
    /// The writable region `d` again, for a shorter borrow (so `d` can be used afterwards).
    fn reborrow<'b>(d: &'b mut Self::Dst<'_>) -> Self::Dst<'b>;
    /// A read-only view of the writable region `d`.
    fn as_src<'b>(d: &'b Self::Dst<'_>) -> Self::Src<'b>;
    /// `d` cut into its first `at` floats and the rest.
    fn split_at<'a>(d: Self::Dst<'a>, at: usize) -> (Self::Dst<'a>, Self::Dst<'a>);
    /// Host → device: `dst` and `src` have the same length.
    fn upload(&self, dst: Self::Dst<'_>, src: &[f32]);
    /// Device → host.
    fn download(&self, src: Self::Src<'_>, dst: &mut [f32]);
    /// The whole buffer on the host (borrowed where the memory already is host memory).
    fn host<'a>(&self, buf: &'a Self::Buf) -> Cow<'a, [f32]> {
        let mut out = vec![0.0; Self::len(buf)];
        self.download(Self::src(buf, 0..Self::len(buf)), &mut out);
        Cow::Owned(out)
    }
    /// `dst = src` (same length).
    fn copy(&self, dst: Self::Dst<'_>, src: Self::Src<'_>);
    /// Within one buffer: `buf[to..to + src.len()] = buf[src]` (the regions may overlap).
    fn copy_within(&self, buf: &mut Self::Buf, src: Range<usize>, to: usize);

    // ---- elementwise and reductions ----------------------------------------------------

    /// `x = 0`.
    fn zero(&self, x: Self::Dst<'_>);
    /// `x *= s`.
    fn scale(&self, x: Self::Dst<'_>, s: f32);
    /// `acc += x` (the sum of batch shards' gradients, called in shard order).
    fn accumulate(&self, acc: Self::Dst<'_>, x: Self::Src<'_>);
    /// `Σ x²` in f64, in an order that does not depend on thread scheduling.
    fn sum_squares(&self, x: Self::Src<'_>) -> f64;
    /// `out = a + b` (the residual add of a branch that went through dropout).
    fn residual(&self, out: Self::Dst<'_>, a: Self::Src<'_>, b: Self::Src<'_>);
    /// Inverted dropout in place, `x ← x·mask` (forward and backward are the same op).
    fn dropout(&self, x: Self::Dst<'_>, mask: Mask);

    // ---- embedding `out [N,C]`, `wte [V,C]`, `pos [≥T,C]` --------------------------------

    /// `out[n] = wte[idx[n]] + pos[n % t]` (no `pos`: RoPE models). Ids are already `< V`.
    fn embedding_forward(
        &self,
        out: Self::Dst<'_>,
        idx: &[u32],
        wte: Self::Src<'_>,
        pos: Option<Self::Src<'_>>,
        t: usize,
        c: usize,
    );
    /// `dwte[idx[n]] += dout[n]`, `dwpe[n % t] += dout[n]` (learned positions only).
    fn embedding_backward(
        &self,
        dwte: Self::Dst<'_>,
        dwpe: Option<Self::Dst<'_>>,
        dout: Self::Src<'_>,
        idx: &[u32],
        t: usize,
        c: usize,
    );

    // ---- LayerNorm `x, out [N,C]`, `w, b [C]`, `mean, rstd [N]` --------------------------

    /// `out = (x - mean)·rstd·w + b`, keeping `mean` and `rstd` for backward.
    #[allow(clippy::too_many_arguments)]
    fn layernorm_forward(
        &self,
        out: Self::Dst<'_>,
        mean: Self::Dst<'_>,
        rstd: Self::Dst<'_>,
        x: Self::Src<'_>,
        w: Self::Src<'_>,
        b: Option<Self::Src<'_>>,
    );
    /// The fused residual (llm.c): first `x += residual + proj_bias` in place (completing a
    /// branch whose projection was written bare), then [`Backend::layernorm_forward`] of it.
    #[allow(clippy::too_many_arguments)]
    fn layernorm_forward_residual(
        &self,
        out: Self::Dst<'_>,
        mean: Self::Dst<'_>,
        rstd: Self::Dst<'_>,
        x: Self::Dst<'_>,
        residual: Self::Src<'_>,
        proj_bias: Option<Self::Src<'_>>,
        w: Self::Src<'_>,
        b: Option<Self::Src<'_>>,
    );
    /// `dx (+)= rstd·(g - mean(g) - x̂·mean(g·x̂))` with `g = dout·w`; `dw += Σ dout·x̂`,
    /// `db += Σ dout`. `dx` is overwritten unless `accumulate`.
    #[allow(clippy::too_many_arguments)]
    fn layernorm_backward(
        &self,
        dx: Self::Dst<'_>,
        dw: Self::Dst<'_>,
        db: Option<Self::Dst<'_>>,
        dout: Self::Src<'_>,
        x: Self::Src<'_>,
        w: Self::Src<'_>,
        mean: Self::Src<'_>,
        rstd: Self::Src<'_>,
        accumulate: bool,
    );

    // ---- Linear `x [N,C]`, `w [OC,C]` (PyTorch layout), `b [OC]`, `out [N,OC]` ------------

    /// `out = x·Wᵀ + b`.
    fn linear_forward(
        &self,
        out: Self::Dst<'_>,
        x: Self::Src<'_>,
        w: Self::Src<'_>,
        b: Option<Self::Src<'_>>,
        c: usize,
    );
    /// `dx (+)= dout·W` (overwritten unless `accumulate_dx`), `dW += doutᵀ·x`, `db += Σ dout`:
    /// [`linear_backward_with`](Self::linear_backward_with) in the weight's layout.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &self,
        dx: Option<Self::Dst<'_>>,
        dw: Self::Dst<'_>,
        db: Option<Self::Dst<'_>>,
        dout: Self::Src<'_>,
        x: Self::Src<'_>,
        w: Self::Src<'_>,
        c: usize,
        accumulate_dx: bool,
    ) {
        let layout = GradLayout::AsWeight;
        self.linear_backward_with(layout, dx, dw, db, dout, x, w, c, accumulate_dx)
    }

    /// `dx (+)= dout·W` (overwritten unless `accumulate_dx`), `db += Σ dout`, and the weight
    /// gradient added in `layout`: `dW [OC,C] += doutᵀ·x`, or `dWᵀ [C,OC] += xᵀ·dout` (see
    /// [`head_grad_transposed`](Self::head_grad_transposed)).
    #[allow(clippy::too_many_arguments)]
    fn linear_backward_with(
        &self,
        layout: GradLayout,
        dx: Option<Self::Dst<'_>>,
        dw: Self::Dst<'_>,
        db: Option<Self::Dst<'_>>,
        dout: Self::Src<'_>,
        x: Self::Src<'_>,
        w: Self::Src<'_>,
        c: usize,
        accumulate_dx: bool,
    );
    /// `acc [R,C] += xᵀ` for `x [C,R]` (`cols` = C): a transposed staged gradient added in.
    fn accumulate_transposed(&self, acc: Self::Dst<'_>, x: Self::Src<'_>, cols: usize);
    /// Whether the fused classifier should stage the head's weight gradient `[V,C]` transposed
    /// ([`GradLayout::Transposed`]) because this backend computes it
    /// faster that way; added into the model's gradient once per step with
    /// [`accumulate_transposed`](Self::accumulate_transposed). Default: no.
    fn head_grad_transposed(&self, _c: usize, _v: usize) -> bool {
        false
    }

    // ---- the MLP activation `x, y [N,H]`, `bias [H]` (the fused bias of the Linear before it)
    // Named after GELU, the default; `act` also selects ReLU (same entry points: value,
    // value with the derivative kept in place, and the product with that derivative).

    /// `y = act(x + bias)` (`act`: GELU, its tanh approximation, or ReLU).
    fn gelu_forward(
        &self,
        y: Self::Dst<'_>,
        x: Self::Src<'_>,
        bias: Option<Self::Src<'_>>,
        act: Activation,
    );
    /// `y = act(x + bias)` and, in place, `x ← act'(x + bias)` (all backward needs).
    fn gelu_forward_keep_derivative(
        &self,
        y: Self::Dst<'_>,
        x: Self::Dst<'_>,
        bias: Option<Self::Src<'_>>,
        act: Activation,
    );
    /// `d ← d·g` with `g` kept by [`Backend::gelu_forward_keep_derivative`].
    fn gelu_backward(&self, d: Self::Dst<'_>, g: Self::Src<'_>);

    // ---- RoPE on the q and k thirds of `qkv [N,3C]`; `cos, sin [T, hs/2]` ----------------

    /// Rotate row `n` by the angles of table row `n % t` (`inverse`: by minus them, which is
    /// the backward).
    #[allow(clippy::too_many_arguments)]
    fn rope(
        &self,
        qkv: Self::Dst<'_>,
        cos: Self::Src<'_>,
        sin: Self::Src<'_>,
        t: usize,
        c: usize,
        nh: usize,
        inverse: bool,
    );

    // ---- causal attention `qkv [B,T,3C]`, `out [B,T,C]`, `lse [B,H,T]` -------------------

    /// Workspace floats [`Backend::attention_forward`]/`backward` need for sequences of `t`
    /// with up to `workers` tasks running at once.
    fn attention_workspace(&self, t: usize, workers: usize) -> usize;
    /// Softmax(QKᵀ/√hs, causal)·V per head, keeping the row log-sum-exp for backward.
    fn attention_forward(
        &self,
        out: Self::Dst<'_>,
        lse: Self::Dst<'_>,
        qkv: Self::Src<'_>,
        work: Self::Dst<'_>,
        d: Dims,
        drop: Option<Mask>,
    );
    /// Writes `dqkv` (all three thirds) from `dout`.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        &self,
        dqkv: Self::Dst<'_>,
        dout: Self::Src<'_>,
        out: Self::Src<'_>,
        lse: Self::Src<'_>,
        qkv: Self::Src<'_>,
        work: Self::Dst<'_>,
        d: Dims,
        drop: Option<Mask>,
    );
    /// Decoding with a KV cache: stores the keys and values of the `m` new rows of
    /// `qkv [m,3C]` at cache slots `past..past+m` of `k, v [≥past+m, C]`, then attends each
    /// new row `r` over slots `0..=past+r`; `out [m,C]`. `lse [H,m]` and `work` are scratch.
    #[allow(clippy::too_many_arguments)]
    fn attention_decode(
        &self,
        out: Self::Dst<'_>,
        lse: Self::Dst<'_>,
        qkv: Self::Src<'_>,
        k: Self::Dst<'_>,
        v: Self::Dst<'_>,
        work: Self::Dst<'_>,
        past: usize,
        d: Dims,
    );

    // ---- cross-attention `q [B·Tq, qs]`, `k, v [B·Tk, kvs]`, `key_pad [B,Tk]` (host) --------

    /// Workspace floats [`Backend::cross_attention_forward`]/`backward` need with up to
    /// `workers` tasks running at once.
    fn cross_attention_workspace(&self, d: CrossDims, workers: usize) -> usize;
    /// Softmax(QKᵀ/√hs)·V per head over the keys not marked in `key_pad` (no causal mask),
    /// keeping the row log-sum-exp `lse [B,H,Tq]`; `out [B·Tq, C]` (see
    /// [`crate::ops::cross_attention`]).
    #[allow(clippy::too_many_arguments)]
    fn cross_attention_forward(
        &self,
        out: Self::Dst<'_>,
        lse: Self::Dst<'_>,
        q: Self::Src<'_>,
        k: Self::Src<'_>,
        v: Self::Src<'_>,
        key_pad: Option<&[bool]>,
        work: Self::Dst<'_>,
        d: CrossDims,
        drop: Option<Mask>,
    );
    /// Overwrites the query columns of `dq` and the key/value gradients: into `dkv`
    /// (`dk` at columns `0..C`, `dv` at `C..2C` of rows of `kvs`) or, with `dkv = None`, into
    /// columns `C..3C` of `dq`'s own rows (a fused qkv).
    #[allow(clippy::too_many_arguments)]
    fn cross_attention_backward(
        &self,
        dq: Self::Dst<'_>,
        dkv: Option<Self::Dst<'_>>,
        dout: Self::Src<'_>,
        out: Self::Src<'_>,
        lse: Self::Src<'_>,
        q: Self::Src<'_>,
        k: Self::Src<'_>,
        v: Self::Src<'_>,
        key_pad: Option<&[bool]>,
        work: Self::Dst<'_>,
        d: CrossDims,
        drop: Option<Mask>,
    );

    // ---- loss `logits [N,V]` (dlogits in place), `row_loss [N]` ---------------------------

    /// Softmax + cross-entropy fused, in place: `row_loss[n] = logsumexp(l) − l[target]`,
    /// then `logits ← dlogits = (softmax(l) − onehot)/n_valid` (zero rows for target −1);
    /// returns `Σ row_loss` over these rows (`N = targets.len()`).
    fn cross_entropy(
        &self,
        logits: Self::Dst<'_>,
        row_loss: Self::Dst<'_>,
        targets: &[i32],
        v: usize,
        n_valid: usize,
    ) -> f64;

    // ---- optimizer ----------------------------------------------------------------------

    /// torch's AdamW over the flat buffers (decoupled decay on the `segments` that decay).
    fn adamw(
        &self,
        p: Self::Dst<'_>,
        g: Self::Src<'_>,
        m: Self::Dst<'_>,
        v: Self::Dst<'_>,
        segments: &[Segment],
        s: AdamWStep,
    );

    // ---- prepared weights -------------------------------------------------------------------

    /// Keep what a Linear product prepares from its weight (bf16 casts and packs) between
    /// products, until [`weights_changed`](Self::weights_changed): once per optimizer step
    /// instead of once per use. Only an owner that calls `weights_changed` on every write to
    /// its parameters may turn this on (a model does; conformance checks do not).
    fn keep_prepared_weights(&mut self, _on: bool) {}
    /// The parameters were (or are about to be) written: preparations kept so far are stale.
    fn weights_changed(&self) {}

    // ---- threads --------------------------------------------------------------------------

    /// Batch shards this backend can run side by side (CPU: one per thread; a GPU: 1).
    fn max_shards(&self) -> usize {
        1
    }
    /// Run `f` with this thread's ops kept on this thread (a CPU batch shard's pass).
    fn on_this_thread<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
    /// Run `f` where this backend's parallel ops are cheapest to start (CPU: inside the pool).
    fn enter<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        f()
    }
}
