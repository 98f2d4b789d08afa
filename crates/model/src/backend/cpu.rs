//! The CPU backend: host buffers ([`AlignedBuf`]: `f32`s starting on a cache line) and the
//! hand-written kernels of [`crate::ops`] (AVX2/FMA dispatched at run time, rayon for
//! threads). It is the reference every other backend is tested against
//! ([`conformance`](super::conformance)).
//!
//! Threads: ops split their work over the global rayon pool; inside a batch shard's pass
//! ([`Backend::on_this_thread`]) every product stays on the calling thread, so a small model
//! runs one whole pass per thread instead of forking and joining at every op.

pub use super::aligned::AlignedBuf;
use super::weight_cache::WeightCache;
use super::{AdamWStep, Backend, CrossDims, Dims, Mask, Segment};
use crate::config::Activation;
use crate::dtype::Precision;
use crate::ops;
use crate::ops::linear::{GradLayout, Weight};
use crate::ops::matmul::{
    self as matmul, bf16_amx_available, bf16_native_available, Bf16Kernel, Kernel,
};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Mutex;

/// The CPU backend (see the module docs).
#[derive(Debug, Default)]
pub struct Cpu {
    /// per-chunk partial sums of [`Backend::sum_squares`], kept so a step allocates nothing
    norm_partials: Mutex<Vec<f64>>,
    /// what the Linear products run in (everything else is f32)
    precision: Precision,
    /// bf16 preparations of the Linear weights, kept until the parameters change
    weights: WeightCache,
}

impl Cpu {
    /// The CPU backend on the global rayon pool, in f32.
    pub fn new() -> Self {
        Cpu::default()
    }

    /// The CPU backend with its Linear products in `precision` (bf16: see [`crate::dtype`]).
    /// Panics if `precision` is native bf16 on a CPU without it (resolve it with
    /// [`Precision::resolve`]).
    pub fn with_precision(precision: Precision) -> Self {
        let mut cpu = Cpu::new();
        cpu.set_precision(precision);
        cpu
    }

    /// What the Linear products run in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Change what the Linear products run in (parameters are f32 either way, so a model
    /// may switch between steps). Panics as [`Cpu::with_precision`].
    pub fn set_precision(&mut self, precision: Precision) {
        assert!(
            precision != Precision::Bf16(Bf16Kernel::Native) || bf16_native_available(),
            "native bf16 requested on a CPU without AVX-512 BF16"
        );
        assert!(
            precision != Precision::Bf16(Bf16Kernel::Amx) || bf16_amx_available(),
            "AMX bf16 requested on a CPU or OS without AMX"
        );
        self.precision = precision;
    }
}

impl Cpu {
    /// Run `f` with how the Linear products read `w [OC, c]`: prepared once per parameter
    /// update under bf16 when keeping is on ([`Backend::keep_prepared_weights`]), else plain.
    fn with_weight<R>(&self, w: &[f32], c: usize, f: impl FnOnce(Weight<'_>) -> R) -> R {
        match self.precision {
            Precision::Bf16(kern) => self.weights.with(kern, w, c, |prepared| match prepared {
                Some(p) => f(Weight::Prepared(p)),
                None => f(Weight::Plain(self.precision)),
            }),
            Precision::Fp32 => f(Weight::Plain(Precision::Fp32)),
        }
    }
}

impl Backend for Cpu {
    type Buf = AlignedBuf;
    type Src<'a> = &'a [f32];
    type Dst<'a> = &'a mut [f32];

    fn name(&self) -> String {
        match self.precision {
            Precision::Fp32 => "cpu".into(),
            Precision::Bf16(_) => "cpu (bf16)".into(),
        }
    }

    fn alloc(&self, len: usize) -> AlignedBuf {
        AlignedBuf::zeros(len)
    }
    fn len(buf: &AlignedBuf) -> usize {
        buf.len()
    }
    fn src(buf: &AlignedBuf, r: Range<usize>) -> &[f32] {
        &buf[r]
    }
    fn dst(buf: &mut AlignedBuf, r: Range<usize>) -> &mut [f32] {
        &mut buf[r]
    }
    fn dst_pair(
        buf: &mut AlignedBuf,
        a: Range<usize>,
        b: Range<usize>,
    ) -> (&mut [f32], &mut [f32]) {
        assert!(
            a.end <= b.start,
            "dst_pair: regions overlap or are out of order"
        );
        let (head, tail) = buf.split_at_mut(b.start);
        (&mut head[a], &mut tail[..b.len()])
    }
    fn reborrow<'b>(d: &'b mut &mut [f32]) -> &'b mut [f32] {
        d
    }
    fn as_src<'b>(d: &'b &mut [f32]) -> &'b [f32] {
        d
    }
    // (the where clause makes `'a` early-bound, as the trait's GAT projection is)
    fn split_at<'a>(d: &'a mut [f32], at: usize) -> (&'a mut [f32], &'a mut [f32])
    where
        'a: 'a,
    {
        d.split_at_mut(at)
    }
    fn upload(&self, dst: &mut [f32], src: &[f32]) {
        dst.copy_from_slice(src);
    }
    fn download(&self, src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn host<'a>(&self, buf: &'a AlignedBuf) -> Cow<'a, [f32]> {
        Cow::Borrowed(&buf[..])
    }
    fn copy(&self, dst: &mut [f32], src: &[f32]) {
        dst.copy_from_slice(src);
    }

    fn copy_within(&self, buf: &mut AlignedBuf, src: Range<usize>, to: usize) {
        buf.copy_within(src, to);
    }

    fn zero(&self, x: &mut [f32]) {
        ops::vector::zero(x);
    }
    fn scale(&self, x: &mut [f32], s: f32) {
        ops::vector::scale(x, s);
    }
    fn accumulate(&self, acc: &mut [f32], x: &[f32]) {
        ops::vector::accumulate(acc, x);
    }
    fn sum_squares(&self, x: &[f32]) -> f64 {
        let mut partials = self
            .norm_partials
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ops::vector::sum_squares(x, &mut partials)
    }
    fn residual(&self, out: &mut [f32], a: &[f32], b: &[f32]) {
        ops::residual::forward(out, a, b);
    }
    fn dropout(&self, x: &mut [f32], mask: Mask) {
        ops::dropout::apply(x, mask);
    }

    fn embedding_forward(
        &self,
        out: &mut [f32],
        idx: &[u32],
        wte: &[f32],
        pos: Option<&[f32]>,
        t: usize,
        c: usize,
    ) {
        ops::embedding::forward(out, idx, wte, pos, t, c);
    }
    fn embedding_backward(
        &self,
        dwte: &mut [f32],
        dwpe: Option<&mut [f32]>,
        dout: &[f32],
        idx: &[u32],
        t: usize,
        c: usize,
    ) {
        ops::embedding::backward(dwte, dwpe, dout, idx, t, c);
    }

    fn layernorm_forward(
        &self,
        out: &mut [f32],
        mean: &mut [f32],
        rstd: &mut [f32],
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
    ) {
        ops::layernorm::forward(out, mean, rstd, x, w, b);
    }
    fn layernorm_forward_residual(
        &self,
        out: &mut [f32],
        mean: &mut [f32],
        rstd: &mut [f32],
        x: &mut [f32],
        residual: &[f32],
        proj_bias: Option<&[f32]>,
        w: &[f32],
        b: Option<&[f32]>,
    ) {
        ops::layernorm::forward_residual(out, mean, rstd, x, residual, proj_bias, w, b);
    }
    fn layernorm_backward(
        &self,
        dx: &mut [f32],
        dw: &mut [f32],
        db: Option<&mut [f32]>,
        dout: &[f32],
        x: &[f32],
        w: &[f32],
        mean: &[f32],
        rstd: &[f32],
        accumulate: bool,
    ) {
        ops::layernorm::backward(dx, dw, db, dout, x, w, mean, rstd, accumulate);
    }

    fn linear_forward(&self, out: &mut [f32], x: &[f32], w: &[f32], b: Option<&[f32]>, c: usize) {
        self.with_weight(w, c, |weight| {
            ops::linear::forward_with(weight, out, x, w, b, c)
        });
    }
    fn linear_backward_with(
        &self,
        layout: GradLayout,
        dx: Option<&mut [f32]>,
        dw: &mut [f32],
        db: Option<&mut [f32]>,
        dout: &[f32],
        x: &[f32],
        w: &[f32],
        c: usize,
        accumulate_dx: bool,
    ) {
        self.with_weight(w, c, |weight| {
            ops::linear::backward_with(weight, layout, dx, dw, db, dout, x, w, c, accumulate_dx)
        });
    }
    fn accumulate_transposed(&self, acc: &mut [f32], x: &[f32], cols: usize) {
        ops::vector::accumulate_transposed(acc, x, cols);
    }
    fn head_grad_transposed(&self, c: usize, v: usize) -> bool {
        // fp32 `gemm` writes a tall `[V,C]` product at ~160 GFLOP/s and its wide transpose at
        // ~290 (o200k_base × 256); AMX and the other kernels are faster as the weight is
        // (docs/performance.md, "Real vocabularies in fp32")
        self.precision == Precision::Fp32
            && matches!(matmul::kernel(), Kernel::Gemm | Kernel::GemmSplit)
            && v >= 8 * c
    }

    fn gelu_forward(&self, y: &mut [f32], x: &[f32], bias: Option<&[f32]>, act: Activation) {
        match act {
            Activation::Relu => ops::relu::forward(y, x, bias),
            _ => ops::gelu::forward(y, x, bias, act),
        }
    }
    fn gelu_forward_keep_derivative(
        &self,
        y: &mut [f32],
        x: &mut [f32],
        bias: Option<&[f32]>,
        act: Activation,
    ) {
        match act {
            Activation::Relu => ops::relu::forward_keep_derivative(y, x, bias),
            _ => ops::gelu::forward_keep_derivative(y, x, bias, act),
        }
    }
    fn gelu_backward(&self, d: &mut [f32], g: &[f32]) {
        ops::gelu::backward_from_derivative(d, g);
    }

    fn rope(
        &self,
        qkv: &mut [f32],
        cos: &[f32],
        sin: &[f32],
        t: usize,
        c: usize,
        nh: usize,
        inverse: bool,
    ) {
        ops::rope::apply(qkv, cos, sin, t, c, nh, if inverse { -1.0 } else { 1.0 });
    }

    fn attention_workspace(&self, t: usize, workers: usize) -> usize {
        workers.max(1) * ops::attention::scratch_per_worker(t)
    }
    fn attention_forward(
        &self,
        out: &mut [f32],
        lse: &mut [f32],
        qkv: &[f32],
        work: &mut [f32],
        d: Dims,
        drop: Option<Mask>,
    ) {
        ops::attention::forward(out, lse, qkv, work, d, drop, self.precision);
    }
    fn attention_backward(
        &self,
        dqkv: &mut [f32],
        dout: &[f32],
        out: &[f32],
        lse: &[f32],
        qkv: &[f32],
        work: &mut [f32],
        d: Dims,
        drop: Option<Mask>,
    ) {
        ops::attention::backward(dqkv, dout, out, lse, qkv, work, d, drop, self.precision);
    }
    fn attention_decode(
        &self,
        out: &mut [f32],
        lse: &mut [f32],
        qkv: &[f32],
        k: &mut [f32],
        v: &mut [f32],
        work: &mut [f32],
        past: usize,
        d: Dims,
    ) {
        ops::attention::decode(out, lse, qkv, k, v, work, past, d, self.precision);
    }

    fn cross_attention_workspace(&self, d: CrossDims, workers: usize) -> usize {
        workers.max(1) * ops::cross_attention::scratch_per_worker(d)
    }
    fn cross_attention_forward(
        &self,
        out: &mut [f32],
        lse: &mut [f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        key_pad: Option<&[bool]>,
        work: &mut [f32],
        d: CrossDims,
        drop: Option<Mask>,
    ) {
        ops::cross_attention::forward(out, lse, q, k, v, key_pad, work, d, drop);
    }
    fn cross_attention_backward(
        &self,
        dq: &mut [f32],
        dkv: Option<&mut [f32]>,
        dout: &[f32],
        out: &[f32],
        lse: &[f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        key_pad: Option<&[bool]>,
        work: &mut [f32],
        d: CrossDims,
        drop: Option<Mask>,
    ) {
        use ops::cross_attention::KvGrad;
        let dkv = dkv.map_or(KvGrad::InQ, KvGrad::Separate);
        ops::cross_attention::backward(dq, dkv, dout, out, lse, q, k, v, key_pad, work, d, drop);
    }

    fn cross_entropy(
        &self,
        logits: &mut [f32],
        row_loss: &mut [f32],
        targets: &[i32],
        v: usize,
        n_valid: usize,
    ) -> f64 {
        ops::crossentropy::forward_backward_part(logits, row_loss, targets, v, n_valid)
    }

    fn adamw(
        &self,
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        segments: &[Segment],
        s: AdamWStep,
    ) {
        ops::adamw::step(p, g, m, v, segments, s);
    }

    fn keep_prepared_weights(&mut self, on: bool) {
        self.weights.set_on(on);
    }
    fn weights_changed(&self) {
        self.weights.invalidate();
    }

    fn max_shards(&self) -> usize {
        rayon::current_num_threads().max(1)
    }
    fn on_this_thread<R>(&self, f: impl FnOnce() -> R) -> R {
        ops::matmul::on_this_thread(f)
    }
    fn enter<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        // Called from outside the pool, every parallel loop would hand its work across threads
        // and put the caller to sleep (two context switches per op, hundreds per step);
        // entering the pool once per model call avoids that.
        if rayon::current_thread_index().is_some() {
            f()
        } else {
            rayon::join(f, || ()).0
        }
    }
}
