//! The backend conformance suite on the CPU backend (global pool, one thread, two threads),
//! and proof that the suite rejects a backend with one wrong op, naming it.

use lmforge_model::backend::conformance::{self, Tolerance};
use lmforge_model::ops::matmul::{bf16_amx_available, bf16_native_available, Bf16Kernel};
use lmforge_model::{Cpu, Precision};

#[test]
fn cpu_backend_conforms() {
    let report = conformance::run(&Cpu::new(), Tolerance::fp32()).unwrap_or_else(|e| panic!("{e}"));
    println!("cpu: {report}");
    assert!(report.checks > 100 && report.worst.ratio < 1.0, "{report}");
}

#[test]
fn cpu_backend_conforms_on_one_and_two_threads() {
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool");
        let report = pool.install(|| conformance::run(&Cpu::new(), Tolerance::fp32()));
        if let Err(e) = report {
            panic!("{threads} threads: {e}");
        }
    }
}

/// The bf16 backends: emulated everywhere, AVX-512 BF16 and AMX where the CPU has them (each
/// selected explicitly), on one and two threads, within bf16 tolerance.
#[test]
fn cpu_bf16_backends_conform() {
    let mut kernels = vec![Bf16Kernel::Emulated];
    if bf16_native_available() {
        kernels.push(Bf16Kernel::Native);
    }
    if bf16_amx_available() {
        kernels.push(Bf16Kernel::Amx);
    }
    for kern in kernels {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a rayon pool");
            let cpu = Cpu::with_precision(Precision::Bf16(kern));
            let report = pool.install(|| conformance::run(&cpu, Tolerance::bf16()));
            match report {
                Ok(r) => println!("{kern:?}, {threads} threads: {r}"),
                Err(e) => panic!("{kern:?}, {threads} threads: {e}"),
            }
        }
    }
}

/// The bf16 backend is not f32: the f32 bounds catch its rounding (so the suite would notice
/// a bf16 backend that silently ran f32, and the bf16 bounds are not vacuous).
#[test]
fn cpu_bf16_backend_fails_the_fp32_bounds() {
    let cpu = Cpu::with_precision(Precision::Bf16(Bf16Kernel::Emulated));
    let e = conformance::run(&cpu, Tolerance::fp32()).expect_err("bf16 within f32 bounds");
    assert!(e.contains("linear"), "{e}");
}

/// One deliberate bug of [`Faulty`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// `dW` overwritten instead of accumulated
    LinearBackwardOverwritesDw,
    /// the transposed `dW` written as the weight is laid out
    LinearBackwardTAsWeight,
    /// the transposed gradient added without transposing it
    AccumulateTransposedPlain,
    /// the last output value off by 1e-4 (only for sequences past one query block)
    AttentionForwardLastValue,
    /// the fused residual normalises the sum but leaves `x` as it was
    ResidualNotInPlace,
    /// the tanh approximation computed as exact GELU
    GeluIgnoresTanh,
    /// every segment decayed
    AdamwDecaysEverything,
    /// the returned loss sum off by 1e-4 relative
    CrossEntropySum,
    /// decoding a row attends over the new rows only (ignores the cache)
    DecodeIgnoresCache,
    /// the dropout mask's offset ignored
    DropoutIgnoresOffset,
}

/// The CPU backend with one [`Fault`].
struct Faulty {
    cpu: Cpu,
    fault: Fault,
}

impl Faulty {
    fn has(&self, f: Fault) -> bool {
        self.fault == f
    }
}

use lmforge_model::backend::{AdamWStep, Backend, CrossDims, Dims, GradLayout, Mask, Segment};
use lmforge_model::Activation;
use std::ops::Range;

impl Backend for Faulty {
    type Buf = <Cpu as Backend>::Buf;
    type Src<'a> = &'a [f32];
    type Dst<'a> = &'a mut [f32];

    fn name(&self) -> String {
        format!("cpu with {:?}", self.fault)
    }
    fn alloc(&self, len: usize) -> Self::Buf {
        self.cpu.alloc(len)
    }
    fn len(buf: &Self::Buf) -> usize {
        Cpu::len(buf)
    }
    fn src(buf: &Self::Buf, r: Range<usize>) -> &[f32] {
        Cpu::src(buf, r)
    }
    fn dst(buf: &mut Self::Buf, r: Range<usize>) -> &mut [f32] {
        Cpu::dst(buf, r)
    }
    fn dst_pair(buf: &mut Self::Buf, a: Range<usize>, b: Range<usize>) -> (&mut [f32], &mut [f32]) {
        Cpu::dst_pair(buf, a, b)
    }
    fn reborrow<'b>(d: &'b mut &mut [f32]) -> &'b mut [f32] {
        d
    }
    fn as_src<'b>(d: &'b &mut [f32]) -> &'b [f32] {
        d
    }
    fn split_at<'a>(d: &'a mut [f32], at: usize) -> (&'a mut [f32], &'a mut [f32])
    where
        'a: 'a,
    {
        d.split_at_mut(at)
    }
    fn upload(&self, dst: &mut [f32], src: &[f32]) {
        self.cpu.upload(dst, src)
    }
    fn download(&self, src: &[f32], dst: &mut [f32]) {
        self.cpu.download(src, dst)
    }
    fn copy(&self, dst: &mut [f32], src: &[f32]) {
        self.cpu.copy(dst, src)
    }
    fn copy_within(&self, buf: &mut Self::Buf, src: Range<usize>, to: usize) {
        self.cpu.copy_within(buf, src, to)
    }
    fn zero(&self, x: &mut [f32]) {
        self.cpu.zero(x)
    }
    fn scale(&self, x: &mut [f32], s: f32) {
        self.cpu.scale(x, s)
    }
    fn accumulate(&self, acc: &mut [f32], x: &[f32]) {
        self.cpu.accumulate(acc, x)
    }
    fn accumulate_transposed(&self, acc: &mut [f32], x: &[f32], cols: usize) {
        if self.has(Fault::AccumulateTransposedPlain) {
            return self.cpu.accumulate(acc, x);
        }
        self.cpu.accumulate_transposed(acc, x, cols)
    }
    fn sum_squares(&self, x: &[f32]) -> f64 {
        self.cpu.sum_squares(x)
    }
    fn residual(&self, out: &mut [f32], a: &[f32], b: &[f32]) {
        self.cpu.residual(out, a, b)
    }
    fn dropout(&self, x: &mut [f32], mask: Mask) {
        let offset = if self.has(Fault::DropoutIgnoresOffset) {
            0
        } else {
            mask.offset
        };
        self.cpu.dropout(x, Mask { offset, ..mask })
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
        self.cpu.embedding_forward(out, idx, wte, pos, t, c)
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
        self.cpu.embedding_backward(dwte, dwpe, dout, idx, t, c)
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
        self.cpu.layernorm_forward(out, mean, rstd, x, w, b)
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
        if self.has(Fault::ResidualNotInPlace) {
            let mut copy = x.to_vec();
            return self
                .cpu
                .layernorm_forward_residual(out, mean, rstd, &mut copy, residual, proj_bias, w, b);
        }
        self.cpu
            .layernorm_forward_residual(out, mean, rstd, x, residual, proj_bias, w, b)
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
        self.cpu
            .layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, accumulate)
    }
    fn linear_forward(&self, out: &mut [f32], x: &[f32], w: &[f32], b: Option<&[f32]>, c: usize) {
        self.cpu.linear_forward(out, x, w, b, c)
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
        let layout = match layout {
            GradLayout::AsWeight if self.has(Fault::LinearBackwardOverwritesDw) => {
                dw.fill(0.0);
                layout
            }
            // a transposed gradient written in the weight's layout
            GradLayout::Transposed if self.has(Fault::LinearBackwardTAsWeight) => {
                GradLayout::AsWeight
            }
            _ => layout,
        };
        self.cpu
            .linear_backward_with(layout, dx, dw, db, dout, x, w, c, accumulate_dx)
    }
    fn gelu_forward(&self, y: &mut [f32], x: &[f32], bias: Option<&[f32]>, act: Activation) {
        let act = if self.has(Fault::GeluIgnoresTanh) {
            Activation::Gelu
        } else {
            act
        };
        self.cpu.gelu_forward(y, x, bias, act)
    }
    fn gelu_forward_keep_derivative(
        &self,
        y: &mut [f32],
        x: &mut [f32],
        bias: Option<&[f32]>,
        act: Activation,
    ) {
        self.cpu.gelu_forward_keep_derivative(y, x, bias, act)
    }
    fn gelu_backward(&self, d: &mut [f32], g: &[f32]) {
        self.cpu.gelu_backward(d, g)
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
        self.cpu.rope(qkv, cos, sin, t, c, nh, inverse)
    }
    fn attention_workspace(&self, t: usize, workers: usize) -> usize {
        self.cpu.attention_workspace(t, workers)
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
        self.cpu.attention_forward(out, lse, qkv, work, d, drop);
        if self.has(Fault::AttentionForwardLastValue) && d.t > 64 {
            if let Some(last) = out.last_mut() {
                *last += 1e-4;
            }
        }
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
        self.cpu
            .attention_backward(dqkv, dout, out, lse, qkv, work, d, drop)
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
        if self.has(Fault::DecodeIgnoresCache) {
            let (k, v) = (&mut k[past * d.c..], &mut v[past * d.c..]);
            return self.cpu.attention_decode(out, lse, qkv, k, v, work, 0, d);
        }
        self.cpu
            .attention_decode(out, lse, qkv, k, v, work, past, d)
    }
    fn cross_attention_workspace(&self, d: CrossDims, workers: usize) -> usize {
        self.cpu.cross_attention_workspace(d, workers)
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
        self.cpu
            .cross_attention_forward(out, lse, q, k, v, key_pad, work, d, drop)
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
        self.cpu
            .cross_attention_backward(dq, dkv, dout, out, lse, q, k, v, key_pad, work, d, drop)
    }
    fn cross_entropy(
        &self,
        logits: &mut [f32],
        row_loss: &mut [f32],
        targets: &[i32],
        v: usize,
        n_valid: usize,
    ) -> f64 {
        let sum = self
            .cpu
            .cross_entropy(logits, row_loss, targets, v, n_valid);
        if self.has(Fault::CrossEntropySum) {
            sum * (1.0 + 1e-4)
        } else {
            sum
        }
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
        if self.has(Fault::AdamwDecaysEverything) {
            let all: Vec<Segment> = segments.iter().map(|(r, _)| (r.clone(), true)).collect();
            return self.cpu.adamw(p, g, m, v, &all, s);
        }
        self.cpu.adamw(p, g, m, v, segments, s)
    }
}

#[test]
fn a_backend_with_one_wrong_op_is_rejected_naming_the_op() {
    for (fault, op) in [
        (Fault::LinearBackwardOverwritesDw, "linear_backward"),
        (Fault::LinearBackwardTAsWeight, "linear_backward_t"),
        (Fault::AccumulateTransposedPlain, "accumulate_transposed"),
        (Fault::AttentionForwardLastValue, "attention_forward"),
        (Fault::ResidualNotInPlace, "layernorm_forward_residual"),
        (Fault::GeluIgnoresTanh, "gelu_forward"),
        (Fault::AdamwDecaysEverything, "adamw"),
        (Fault::CrossEntropySum, "cross_entropy"),
        (Fault::DecodeIgnoresCache, "attention_decode"),
        (Fault::DropoutIgnoresOffset, "dropout"),
    ] {
        let dev = Faulty {
            cpu: Cpu::new(),
            fault,
        };
        match conformance::run(&dev, Tolerance::fp32()) {
            Ok(report) => panic!("{fault:?} passed: {report}"),
            Err(e) => {
                println!("{fault:?}: {e}");
                assert!(
                    e.starts_with(&format!("{op} ")),
                    "{fault:?} not named as {op}: {e}"
                );
            }
        }
    }
}
