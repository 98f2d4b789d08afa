//! The conformance suite every [`Backend`] must pass.
//!
//! Each op of the trait runs on the backend under test and is compared with a plain scalar
//! reference written in this module: naive loops, `f64` arithmetic, no tiling, no SIMD, no
//! threads (llm.c's pattern: the fast kernel is checked against an obviously correct one).
//! The references do not call [`crate::ops`], so running the suite on [`Cpu`](super::cpu::Cpu)
//! is a real test of the optimised CPU kernels, and a later backend (bf16, CUDA) runs the
//! very same checks.
//!
//! What is checked, per op group (one `pub fn` each, so a failure names its group):
//! - every output of every op, side outputs included (LayerNorm `mean`/`rstd`, attention
//!   `lse`, the fused residual's in-place `x`, GELU's kept derivative, cross-entropy's
//!   `row_loss` and returned sum, the decode KV cache), with optional biases absent and
//!   present and the overwrite/accumulate flags both ways (accumulating outputs start from
//!   non-zero contents, overwritten ones from garbage);
//! - on several shapes with odd sizes (`C` = 3, 5, 17, 40; `N` = 1, 7, 70; `T` up to 70, more
//!   than one attention query block; 1–4 heads; `V` = 11, 257), with dropout masks where the
//!   op takes one (the reference uses [`Mask::factor`]);
//! - every op with a backward also against central finite differences of the backend's own
//!   forward (inputs perturbed on the host, uploaded, run, downloaded; `f64` objective
//!   `Σ out·g` for a random `g`);
//! - KV-cached decoding fed one row at a time, and as a prefill chunk followed by chunks and
//!   single rows, against the rows of the causal attention reference;
//! - AdamW against torch's formula (decayed and undecayed segments, and elements outside every
//!   segment left alone), the reductions and elementwise ops, overlapping `copy_within`, and
//!   the memory ops (`alloc` zeroes, region views, `dst_pair`, `split_at`).
//!
//! Every tensor lives in a larger buffer at an odd offset, surrounded by guard values: an op
//! that reads outside its input region sees huge numbers, and one that writes outside its
//! output region is caught when the guards are read back.
//!
//! A backend crate uses it from a test:
//! ```no_run
//! use lmforge_model::backend::conformance::{run, Tolerance};
//! let report = run(&lmforge_model::Cpu::new(), Tolerance::fp32())?;
//! println!("{report}");
//! # Ok::<(), String>(())
//! ```
//! [`Tolerance`] holds the bounds: [`Tolerance::fp32`] (the default, `1e-5` relative and
//! absolute for direct comparisons; finite differences with step `1e-2` within `2e-3`, as the
//! op tests use) is what an `f32` backend must meet; a reduced-precision backend passes its
//! own, looser one. A comparison allows `abs + rel·max(|reference|, magnitude)` where the
//! magnitude of a sum is the sum of its terms' magnitudes (the scale its rounding error has).

use super::{AdamWStep, Backend, Dims, GradLayout, Mask, Segment};
use crate::config::Activation;
use crate::rng::Rng;
use std::fmt;

/// Error bounds of one backend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative bound of a direct comparison with the reference.
    pub rel: f64,
    /// Absolute bound of a direct comparison with the reference.
    pub abs: f64,
    /// Central-difference step for gradient checks.
    pub fd_eps: f32,
    /// Bound of a gradient check, relative to `1 + max(|fd|, |analytic|)`.
    pub fd_tol: f64,
}

impl Tolerance {
    /// The bounds an `f32` backend must meet.
    pub fn fp32() -> Self {
        Tolerance {
            rel: 1e-5,
            abs: 1e-5,
            fd_eps: 1e-2,
            fd_tol: 2e-3,
        }
    }
}

impl Tolerance {
    /// The bounds a backend with bf16 products must meet: bf16 keeps 8 significant bits, so
    /// a product is within ~1e-2 of its f32 value relative to its magnitude; gradient checks
    /// take steps large enough that rounding `x ± eps` to bf16 barely changes them.
    pub fn bf16() -> Self {
        Tolerance {
            rel: 1e-2,
            abs: 1e-2,
            fd_eps: 2.5e-1,
            fd_tol: 5e-2,
        }
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance::fp32()
    }
}

/// The worst comparison of a run: which op, case and tensor, and its error as a fraction of
/// what was allowed (below 1 passes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Worst {
    /// `op case: tensor`
    pub at: String,
    /// error / allowed error
    pub ratio: f64,
}

/// What a passing run checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Tensors (or scalars) compared with a reference or with finite differences.
    pub checks: usize,
    /// Individual values compared.
    pub values: usize,
    /// The comparison closest to its bound.
    pub worst: Worst,
}

impl Report {
    fn merge(&mut self, other: Report) {
        self.checks += other.checks;
        self.values += other.values;
        if other.worst.ratio > self.worst.ratio {
            self.worst = other.worst;
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} checks, {} values; worst {:.3} of the bound at {}",
            self.checks, self.values, self.worst.ratio, self.worst.at
        )
    }
}

/// One op group's check (every `pub fn` of this module but [`run`] is one).
pub type Group<B> = fn(&B, Tolerance) -> Result<Report, String>;

/// Run every group; the first failure comes back as `Err` naming the op, case (shape and
/// flags), tensor, index, value, reference and bound.
pub fn run<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let groups: [Group<B>; 11] = [
        memory,
        vector,
        embedding,
        layernorm,
        linear,
        gelu,
        rope,
        attention,
        attention_decode,
        cross_entropy,
        adamw,
    ];
    let mut report = Report::default();
    for g in groups {
        report.merge(g(dev, tol)?);
    }
    Ok(report)
}

// ---- plumbing -------------------------------------------------------------------------------

/// Floats of guard before and after every tensor (odd, so regions start unaligned).
const PAD: usize = 3;
/// What the guards hold: huge, so a read outside a region shows in the result.
const GUARD: f32 = 1.0e30;

/// One tensor in a backend buffer, between guards.
struct Region<B: Backend> {
    buf: B::Buf,
    len: usize,
}

impl<B: Backend> Region<B> {
    fn new(dev: &B, data: &[f32]) -> Self {
        let mut host = vec![GUARD; data.len() + 2 * PAD];
        host[PAD..PAD + data.len()].copy_from_slice(data);
        let mut buf = dev.alloc(host.len());
        dev.upload(B::dst(&mut buf, 0..host.len()), &host);
        Region {
            buf,
            len: data.len(),
        }
    }
    fn src(&self) -> B::Src<'_> {
        B::src(&self.buf, PAD..PAD + self.len)
    }
    fn dst(&mut self) -> B::Dst<'_> {
        B::dst(&mut self.buf, PAD..PAD + self.len)
    }
    /// The tensor on the host, and whether both guards are intact.
    fn read(&self, dev: &B) -> (Vec<f32>, bool) {
        let all = dev.host(&self.buf);
        let intact = all[..PAD]
            .iter()
            .chain(&all[PAD + self.len..])
            .all(|g| g.to_bits() == GUARD.to_bits());
        (all[PAD..PAD + self.len].to_vec(), intact)
    }
}

/// `n` values `~ N(shift, scale²)`, deterministic in `seed`.
fn randn(n: usize, seed: u64, scale: f32, shift: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.normal() as f32 * scale + shift).collect()
}

fn to64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// `Σ a·b` in f64.
fn weighted_sum(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// One group's checks against `tol`, collecting the [`Report`].
struct Checker<'d, B> {
    dev: &'d B,
    tol: Tolerance,
    op: &'static str,
    case: String,
    report: Report,
}

impl<'d, B: Backend> Checker<'d, B> {
    fn new(dev: &'d B, tol: Tolerance) -> Self {
        Checker {
            dev,
            tol,
            op: "",
            case: String::new(),
            report: Report::default(),
        }
    }
    /// Name the op and case the next checks belong to.
    fn at(&mut self, op: &'static str, case: String) {
        self.op = op;
        self.case = case;
    }
    fn up(&self, data: &[f32]) -> Region<B> {
        Region::new(self.dev, data)
    }
    /// Download `r`, failing if the op wrote outside it.
    fn read(&self, r: &Region<B>, what: &str) -> Result<Vec<f32>, String> {
        let (v, intact) = r.read(self.dev);
        if !intact {
            return Err(format!(
                "{} {}: wrote outside its `{what}` region (guard overwritten)",
                self.op, self.case
            ));
        }
        Ok(v)
    }
    /// Download `r` and compare it with `want` (see [`Checker::close`]).
    fn expect(
        &mut self,
        r: &Region<B>,
        what: &str,
        want: &[f64],
        mag: Option<&[f64]>,
    ) -> Result<(), String> {
        let got = self.read(r, what)?;
        self.close(what, &got, want, mag)
    }
    /// `|got − want| ≤ abs + rel·max(|want|, mag)` elementwise.
    fn close(
        &mut self,
        what: &str,
        got: &[f32],
        want: &[f64],
        mag: Option<&[f64]>,
    ) -> Result<(), String> {
        if got.len() != want.len() {
            return Err(format!(
                "{} {}: `{what}` has {} values, the reference {}",
                self.op,
                self.case,
                got.len(),
                want.len()
            ));
        }
        let mut worst = 0.0f64;
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let m = mag.map_or(0.0, |m| m[i]).max(w.abs());
            let allowed = self.tol.abs + self.tol.rel * m;
            let err = (g as f64 - w).abs();
            if err.is_nan() || err > allowed {
                return Err(format!(
                    "{} {}: `{what}`[{i}] = {g}, reference {w} (|error| {err:.3e} > allowed {allowed:.3e})",
                    self.op, self.case
                ));
            }
            worst = worst.max(err / allowed);
        }
        self.record(what, got.len(), worst);
        Ok(())
    }
    /// Compare a scalar (relative to `mag`).
    fn close_scalar(&mut self, what: &str, got: f64, want: f64, mag: f64) -> Result<(), String> {
        let allowed = self.tol.abs + self.tol.rel * mag.max(want.abs());
        let err = (got - want).abs();
        if err.is_nan() || err > allowed {
            return Err(format!(
                "{} {}: `{what}` = {got}, reference {want} (|error| {err:.3e} > allowed {allowed:.3e})",
                self.op, self.case
            ));
        }
        self.record(what, 1, err / allowed);
        Ok(())
    }
    /// Bitwise equality (moves and copies must not change values).
    fn exact(&mut self, what: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
        if let Some(i) = (0..want.len().max(got.len()))
            .find(|&i| got.get(i).map(|g| g.to_bits()) != want.get(i).map(|w| w.to_bits()))
        {
            return Err(format!(
                "{} {}: `{what}`[{i}] = {:?}, expected exactly {:?}",
                self.op,
                self.case,
                got.get(i),
                want.get(i)
            ));
        }
        self.record(what, got.len(), 0.0);
        Ok(())
    }
    /// `analytic` against central differences of `f` around `x` on up to 64 coordinates
    /// spread over the tensor.
    fn grad(
        &mut self,
        what: &str,
        x: &[f32],
        analytic: &[f32],
        mut f: impl FnMut(&[f32]) -> Result<f64, String>,
    ) -> Result<(), String> {
        let (eps, tol) = (self.tol.fd_eps, self.tol.fd_tol);
        let mut xp = x.to_vec();
        let mut worst = 0.0f64;
        let mut n = 0;
        for i in (0..x.len()).step_by((x.len() / 64).max(1)) {
            let orig = xp[i];
            xp[i] = orig + eps;
            let fp = f(&xp)?;
            xp[i] = orig - eps;
            let fm = f(&xp)?;
            xp[i] = orig;
            // the step actually taken (x ± eps rounds in f32)
            let h = (orig + eps) as f64 - (orig - eps) as f64;
            let fd = (fp - fm) / h;
            let an = analytic[i] as f64;
            let allowed = tol * (1.0 + fd.abs().max(an.abs()));
            let err = (fd - an).abs();
            if err.is_nan() || err > allowed {
                return Err(format!(
                    "{} {}: gradient `{what}`[{i}] = {an}, finite difference {fd} (|error| {err:.3e} > allowed {allowed:.3e})",
                    self.op, self.case
                ));
            }
            worst = worst.max(err / allowed);
            n += 1;
        }
        self.record(&format!("d{what} (finite differences)"), n, worst);
        Ok(())
    }
    fn record(&mut self, what: &str, values: usize, ratio: f64) {
        self.report.checks += 1;
        self.report.values += values;
        if ratio >= self.report.worst.ratio {
            self.report.worst = Worst {
                at: format!("{} {}: {what}", self.op, self.case),
                ratio,
            };
        }
    }
    fn done(self) -> Result<Report, String> {
        Ok(self.report)
    }
}

// ---- memory and elementwise -----------------------------------------------------------------

/// `alloc` zeroes; regions, `dst_pair`, `split_at`, `reborrow`, `as_src` address the right
/// floats; `upload`/`download`/`copy` move values unchanged; `copy_within` handles overlap.
pub fn memory<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    let data = randn(40, 1, 1.0, 0.0);
    ck.at("alloc", "len=37".into());
    let buf = dev.alloc(37);
    if B::len(&buf) != 37 {
        return Err(format!("alloc len=37: len() says {}", B::len(&buf)));
    }
    ck.exact("buffer", &dev.host(&buf), &[0.0; 37])?;

    ck.at("upload/download", "region 5..12 of 20".into());
    let mut buf = dev.alloc(20);
    dev.upload(B::dst(&mut buf, 5..12), &data[..7]);
    let mut out = vec![0.0; 4];
    dev.download(B::src(&buf, 6..10), &mut out);
    ck.exact("downloaded 6..10", &out, &data[1..5])?;
    let mut want = vec![0.0; 20];
    want[5..12].copy_from_slice(&data[..7]);
    ck.exact("buffer", &dev.host(&buf), &want)?;

    ck.at("dst_pair/split_at", "regions 2..7, 9..15 of 20".into());
    let mut buf = dev.alloc(20);
    let mut back = vec![0.0; 4];
    {
        let (a, b) = B::dst_pair(&mut buf, 2..7, 9..15);
        dev.upload(a, &data[..5]);
        let (b0, mut b1) = B::split_at(b, 2);
        dev.upload(b0, &data[5..7]);
        dev.upload(B::reborrow(&mut b1), &data[7..11]);
        dev.download(B::as_src(&b1), &mut back);
    }
    ck.exact("as_src of the second part", &back, &data[7..11])?;
    let mut want = vec![0.0; 20];
    want[2..7].copy_from_slice(&data[..5]);
    want[9..15].copy_from_slice(&data[5..11]);
    ck.exact("buffer", &dev.host(&buf), &want)?;

    ck.at("copy", "17 floats".into());
    let src = ck.up(&data[..17]);
    let mut dst = ck.up(&[7.0; 17]);
    dev.copy(dst.dst(), src.src());
    let got = ck.read(&dst, "dst")?;
    ck.exact("dst", &got, &data[..17])?;

    for (from, to) in [(3..20, 10), (15..40, 2), (0..40, 0), (7..8, 30)] {
        ck.at("copy_within", format!("{from:?} -> {to} of 40"));
        let mut buf = dev.alloc(40);
        dev.upload(B::dst(&mut buf, 0..40), &data);
        dev.copy_within(&mut buf, from.clone(), to);
        let moved = data[from.clone()].to_vec();
        let mut want = data.clone();
        want[to..to + moved.len()].copy_from_slice(&moved);
        ck.exact("buffer", &dev.host(&buf), &want)?;
    }
    ck.done()
}

/// `zero`, `scale`, `accumulate`, `sum_squares`, `residual`, `dropout` (lengths crossing any
/// chunking a backend may use), and `accumulate_transposed`.
pub fn vector<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    for len in [1, 5, 40_003] {
        let x = randn(len, 2, 1.5, 0.0);
        let y = randn(len, 3, 1.0, 0.5);
        let case = format!("len={len}");

        ck.at("zero", case.clone());
        let mut r = ck.up(&x);
        dev.zero(r.dst());
        let got = ck.read(&r, "x")?;
        ck.exact("x", &got, &vec![0.0; len])?;

        ck.at("scale", case.clone());
        let mut r = ck.up(&x);
        dev.scale(r.dst(), 0.37);
        let want: Vec<f64> = x.iter().map(|&v| v as f64 * 0.37f32 as f64).collect();
        ck.expect(&r, "x", &want, None)?;

        ck.at("accumulate", case.clone());
        let mut acc = ck.up(&x);
        let yr = ck.up(&y);
        dev.accumulate(acc.dst(), yr.src());
        let want: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| a as f64 + b as f64)
            .collect();
        let mag: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| a.abs() as f64 + b.abs() as f64)
            .collect();
        ck.expect(&acc, "acc", &want, Some(&mag))?;

        ck.at("residual", case.clone());
        let mut out = ck.up(&vec![-3.0; len]);
        let xr = ck.up(&x);
        dev.residual(out.dst(), xr.src(), yr.src());
        ck.expect(&out, "out", &want, Some(&mag))?;

        ck.at("sum_squares", case.clone());
        let want: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        ck.close_scalar("sum", dev.sum_squares(xr.src()), want, want)?;

        let mask = Mask {
            seed: 11,
            stream: 4,
            p: 0.25,
            offset: 7,
        };
        ck.at("dropout", format!("{case} p=0.25 offset=7"));
        let mut r = ck.up(&x);
        dev.dropout(r.dst(), mask);
        let want: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| v as f64 * mask.factor(i as u64) as f64)
            .collect();
        ck.expect(&r, "x", &want, None)?;
    }
    // `acc [R,C] += xᵀ`, shapes past any block size a backend may use
    for (rows, cols) in [(1, 1), (3, 70), (67, 5), (130, 33)] {
        ck.at("accumulate_transposed", format!("rows={rows} cols={cols}"));
        let (a, x) = (
            randn(rows * cols, 4, 1.0, 0.0),
            randn(rows * cols, 5, 1.0, 0.0),
        );
        let (mut acc, xr) = (ck.up(&a), ck.up(&x));
        dev.accumulate_transposed(acc.dst(), xr.src(), cols);
        let at = |r: usize, c: usize| (a[r * cols + c], x[c * rows + r]);
        let (want, mag): (Vec<f64>, Vec<f64>) = (0..rows * cols)
            .map(|i| at(i / cols, i % cols))
            .map(|(a, x)| (a as f64 + x as f64, a.abs() as f64 + x.abs() as f64))
            .unzip();
        ck.expect(&acc, "acc", &want, Some(&mag))?;
    }
    ck.done()
}

// ---- embedding ------------------------------------------------------------------------------

/// Token ids for `n` rows over `v` entries, with repeats.
fn token_ids(n: usize, v: usize, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| (r.next_u64() % v.min(5 + n / 2) as u64) as u32)
        .collect()
}

/// `(out, magnitude)` of `out[n] = wte[idx[n]] + pos[n % t]`.
fn embedding_ref(
    idx: &[u32],
    wte: &[f32],
    pos: Option<&[f32]>,
    t: usize,
    c: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut out, mut mag) = (vec![0.0; idx.len() * c], vec![0.0; idx.len() * c]);
    for (n, &id) in idx.iter().enumerate() {
        for i in 0..c {
            let e = wte[id as usize * c + i] as f64;
            let p = pos.map_or(0.0, |p| p[(n % t) * c + i] as f64);
            out[n * c + i] = e + p;
            mag[n * c + i] = e.abs() + p.abs();
        }
    }
    (out, mag)
}

/// `(value, magnitude)` of `acc[row(n)] += dout[n]` for every row `n`.
fn scatter_add_ref(
    acc: &[f32],
    dout: &[f32],
    row: impl Fn(usize) -> usize,
    c: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut sum = to64(acc);
    let mut mag: Vec<f64> = acc.iter().map(|v| v.abs() as f64).collect();
    for n in 0..dout.len() / c {
        for i in 0..c {
            sum[row(n) * c + i] += dout[n * c + i] as f64;
            mag[row(n) * c + i] += dout[n * c + i].abs() as f64;
        }
    }
    (sum, mag)
}

/// Embedding forward (learned/fixed positions or none) and backward (accumulating into
/// non-zero gradients), and finite differences of `wte` and `pos`.
pub fn embedding<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    for (b, t, c, v) in [
        (1, 1, 3, 11),
        (2, 7, 5, 11),
        (3, 9, 17, 257),
        (2, 33, 40, 11),
    ] {
        let n = b * t;
        let idx = token_ids(n, v, 5);
        let wte = randn(v * c, 6, 1.0, 0.0);
        let pos = randn((t + 2) * c, 7, 1.0, 0.0);
        let dout = randn(n * c, 8, 1.0, 0.0);
        for learned in [true, false] {
            let case = format!(
                "b={b} t={t} c={c} v={v} pos={}",
                if learned { "Some" } else { "None" }
            );
            ck.at("embedding_forward", case.clone());
            let (wte_r, pos_r) = (ck.up(&wte), ck.up(&pos));
            let mut out = ck.up(&vec![9.0; n * c]);
            let pos_src = learned.then(|| pos_r.src());
            dev.embedding_forward(out.dst(), &idx, wte_r.src(), pos_src, t, c);
            let (want, mag) = embedding_ref(&idx, &wte, learned.then_some(&pos[..]), t, c);
            ck.expect(&out, "out", &want, Some(&mag))?;

            ck.at("embedding_backward", case.clone());
            let (dwte0, dwpe0) = (randn(v * c, 9, 1.0, 0.0), randn((t + 2) * c, 10, 1.0, 0.0));
            let (mut dwte, mut dwpe) = (ck.up(&dwte0), ck.up(&dwpe0));
            let dout_r = ck.up(&dout);
            let dwpe_dst = if learned { Some(dwpe.dst()) } else { None };
            dev.embedding_backward(dwte.dst(), dwpe_dst, dout_r.src(), &idx, t, c);
            let (want, mag) = scatter_add_ref(&dwte0, &dout, |n| idx[n] as usize, c);
            ck.expect(&dwte, "dwte", &want, Some(&mag))?;
            let (want, mag) = if learned {
                scatter_add_ref(&dwpe0, &dout, |n| n % t, c)
            } else {
                (to64(&dwpe0), to64(&dwpe0))
            };
            ck.expect(&dwpe, "dwpe", &want, Some(&mag))?;
        }
    }
    // finite differences: the gradients from zero against the forward
    let (b, t, c, v) = (2, 5, 6, 11);
    ck.at(
        "embedding_backward",
        format!("b={b} t={t} c={c} v={v} pos=Some"),
    );
    let idx = token_ids(b * t, v, 11);
    let (wte, pos, g) = (
        randn(v * c, 12, 1.0, 0.0),
        randn(t * c, 13, 1.0, 0.0),
        randn(b * t * c, 14, 1.0, 0.0),
    );
    let forward = |wte: &[f32], pos: &[f32]| -> Result<f64, String> {
        let (w, p) = (Region::<B>::new(dev, wte), Region::<B>::new(dev, pos));
        let mut out = Region::<B>::new(dev, &vec![0.0; b * t * c]);
        dev.embedding_forward(out.dst(), &idx, w.src(), Some(p.src()), t, c);
        Ok(weighted_sum(&out.read(dev).0, &g))
    };
    let (mut dwte, mut dwpe, gr) = (
        ck.up(&vec![0.0; v * c]),
        ck.up(&vec![0.0; t * c]),
        ck.up(&g),
    );
    dev.embedding_backward(dwte.dst(), Some(dwpe.dst()), gr.src(), &idx, t, c);
    let (dwte, dwpe) = (ck.read(&dwte, "dwte")?, ck.read(&dwpe, "dwpe")?);
    ck.grad("wte", &wte, &dwte, |x| forward(x, &pos))?;
    ck.grad("pos", &pos, &dwpe, |x| forward(&wte, x))?;
    ck.done()
}

// ---- LayerNorm ------------------------------------------------------------------------------

/// PyTorch's LayerNorm epsilon.
const LN_EPS: f64 = 1e-5;

/// LayerNorm of the rows of `x [N,C]` in f64: `(out, mean, rstd)`.
fn layernorm_ref(
    x: &[f64],
    w: &[f32],
    b: Option<&[f32]>,
    c: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = x.len() / c;
    let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
    for r in 0..n {
        let row = &x[r * c..(r + 1) * c];
        let m = row.iter().sum::<f64>() / c as f64;
        let var = row.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / c as f64;
        let s = 1.0 / (var + LN_EPS).sqrt();
        for i in 0..c {
            out[r * c + i] = (row[i] - m) * s * w[i] as f64 + b.map_or(0.0, |b| b[i] as f64);
        }
        (mean[r], rstd[r]) = (m, s);
    }
    (out, mean, rstd)
}

/// LayerNorm gradients in f64, each with its magnitude (the sum of its terms' magnitudes);
/// `dw`, `db` without their initial contents.
struct LayerNormGrads {
    dx: Vec<f64>,
    dx_mag: Vec<f64>,
    dw: Vec<f64>,
    dw_mag: Vec<f64>,
    db: Vec<f64>,
    db_mag: Vec<f64>,
}

/// LayerNorm backward from the kept `mean`, `rstd`: with `x̂ = (x − mean)·rstd`,
/// `g = dout·w`: `dx = rstd·(g − mean(g) − x̂·mean(g·x̂))`, `dw = Σ dout·x̂`, `db = Σ dout`.
fn layernorm_backward_ref(
    dout: &[f32],
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
) -> LayerNormGrads {
    let c = w.len();
    let n = x.len() / c;
    let mut r = LayerNormGrads {
        dx: vec![0.0; n * c],
        dx_mag: vec![0.0; n * c],
        dw: vec![0.0; c],
        dw_mag: vec![0.0; c],
        db: vec![0.0; c],
        db_mag: vec![0.0; c],
    };
    for row in 0..n {
        let (m, s) = (mean[row] as f64, rstd[row] as f64);
        let d = |i: usize| dout[row * c + i] as f64;
        let xh: Vec<f64> = (0..c).map(|i| (x[row * c + i] as f64 - m) * s).collect();
        let g: Vec<f64> = (0..c).map(|i| d(i) * w[i] as f64).collect();
        let mg = g.iter().sum::<f64>() / c as f64;
        let mgx = g.iter().zip(&xh).map(|(g, x)| g * x).sum::<f64>() / c as f64;
        let mag_g = g.iter().map(|g| g.abs()).sum::<f64>() / c as f64;
        let mag_gx = g.iter().zip(&xh).map(|(g, x)| (g * x).abs()).sum::<f64>() / c as f64;
        for i in 0..c {
            r.dx[row * c + i] = s * (g[i] - mg - xh[i] * mgx);
            r.dx_mag[row * c + i] = s * (g[i].abs() + mag_g + xh[i].abs() * mag_gx);
            r.dw[i] += d(i) * xh[i];
            r.dw_mag[i] += (d(i) * xh[i]).abs();
            r.db[i] += d(i);
            r.db_mag[i] += d(i).abs();
        }
    }
    r
}

/// `init + delta` and its magnitude `|init| + Σ|terms|` (given as `delta_mag`).
fn plus(init: &[f32], delta: &[f64], delta_mag: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let v = init.iter().zip(delta).map(|(&a, d)| a as f64 + d).collect();
    let m = init
        .iter()
        .zip(delta_mag)
        .map(|(&a, d)| a.abs() as f64 + d)
        .collect();
    (v, m)
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// One LayerNorm input: `x [N,C]`, `w`, `b [C]`, whether the bias is used.
struct LayerNormCase<'a> {
    x: &'a [f32],
    w: &'a [f32],
    b: &'a [f32],
    with_bias: bool,
}

impl LayerNormCase<'_> {
    fn bias(&self) -> Option<&[f32]> {
        self.with_bias.then_some(self.b)
    }
}

/// LayerNorm forward (bias or not), the fused residual forward (projection bias or not, the
/// in-place `x` checked), backward (overwrite and accumulate), and finite differences.
pub fn layernorm<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    for (n, c) in [(1, 3), (7, 5), (7, 17), (70, 40)] {
        let x = randn(n * c, 20, 2.0, 0.5);
        let (w, b) = (randn(c, 21, 1.0, 1.0), randn(c, 22, 1.0, 0.0));
        for with_bias in [true, false] {
            let case = format!("n={n} c={c} bias={with_bias}");
            let lc = LayerNormCase {
                x: &x,
                w: &w,
                b: &b,
                with_bias,
            };
            ck.at("layernorm_forward", case.clone());
            layernorm_forward_case(&mut ck, &lc)?;
            ck.at("layernorm_forward_residual", case.clone());
            layernorm_residual_case(&mut ck, &lc)?;
            for accumulate in [false, true] {
                ck.at(
                    "layernorm_backward",
                    format!("{case} accumulate={accumulate}"),
                );
                layernorm_backward_case(&mut ck, &lc, accumulate)?;
            }
        }
    }
    layernorm_fd(&mut ck)?;
    ck.done()
}

/// `out`, `mean`, `rstd` of [`Backend::layernorm_forward`].
fn layernorm_forward_case<B: Backend>(
    ck: &mut Checker<'_, B>,
    lc: &LayerNormCase<'_>,
) -> Result<(), String> {
    let (c, n) = (lc.w.len(), lc.x.len() / lc.w.len());
    let (want, wmean, wrstd) = layernorm_ref(&to64(lc.x), lc.w, lc.bias(), c);
    let (xr, wr, br) = (ck.up(lc.x), ck.up(lc.w), ck.up(lc.b));
    let (mut out, mut mean, mut rstd) = (
        ck.up(&vec![4.0; n * c]),
        ck.up(&vec![4.0; n]),
        ck.up(&vec![4.0; n]),
    );
    let b_src = lc.with_bias.then(|| br.src());
    ck.dev
        .layernorm_forward(out.dst(), mean.dst(), rstd.dst(), xr.src(), wr.src(), b_src);
    ck.expect(&out, "out", &want, None)?;
    ck.expect(&mean, "mean", &wmean, None)?;
    ck.expect(&rstd, "rstd", &wrstd, None)
}

/// The in-place `x ← x + residual + proj_bias` and the LayerNorm of it.
fn layernorm_residual_case<B: Backend>(
    ck: &mut Checker<'_, B>,
    lc: &LayerNormCase<'_>,
) -> Result<(), String> {
    let (c, n) = (lc.w.len(), lc.x.len() / lc.w.len());
    let (res, pb) = (randn(n * c, 24, 1.5, 0.3), randn(c, 25, 1.0, 0.0));
    let (res_r, pb_r, wr, br) = (ck.up(&res), ck.up(&pb), ck.up(lc.w), ck.up(lc.b));
    let mut xs = ck.up(lc.x);
    let (mut out, mut mean, mut rstd) = (
        ck.up(&vec![4.0; n * c]),
        ck.up(&vec![4.0; n]),
        ck.up(&vec![4.0; n]),
    );
    let pb_src = lc.with_bias.then(|| pb_r.src());
    let b_src = lc.with_bias.then(|| br.src());
    ck.dev.layernorm_forward_residual(
        out.dst(),
        mean.dst(),
        rstd.dst(),
        xs.dst(),
        res_r.src(),
        pb_src,
        wr.src(),
        b_src,
    );
    let bias = |k: usize| if lc.with_bias { pb[k % c] as f64 } else { 0.0 };
    let terms = |k: usize| [lc.x[k] as f64, res[k] as f64, bias(k)];
    let sum: Vec<f64> = (0..n * c).map(|k| terms(k).iter().sum()).collect();
    let mag: Vec<f64> = (0..n * c)
        .map(|k| terms(k).iter().map(|t| t.abs()).sum())
        .collect();
    ck.expect(&xs, "x (residual stream, in place)", &sum, Some(&mag))?;
    let (want, wmean, wrstd) = layernorm_ref(&sum, lc.w, lc.bias(), c);
    ck.expect(&out, "out", &want, None)?;
    ck.expect(&mean, "mean", &wmean, None)?;
    ck.expect(&rstd, "rstd", &wrstd, None)
}

/// `dx` (overwritten, or accumulated onto non-zero contents), `dw`, `db` (accumulated).
fn layernorm_backward_case<B: Backend>(
    ck: &mut Checker<'_, B>,
    lc: &LayerNormCase<'_>,
    accumulate: bool,
) -> Result<(), String> {
    let (c, n) = (lc.w.len(), lc.x.len() / lc.w.len());
    let (_, mean, rstd) = layernorm_ref(&to64(lc.x), lc.w, lc.bias(), c);
    let (mean, rstd) = (f32s(&mean), f32s(&rstd));
    let dout = randn(n * c, 26, 1.0, 0.0);
    let dx0 = match accumulate {
        true => randn(n * c, 27, 1.0, 0.0),
        false => vec![f32::NAN; n * c],
    };
    let (dw0, db0) = (randn(c, 28, 1.0, 0.0), randn(c, 29, 1.0, 0.0));
    let (mut dx, mut dw, mut db) = (ck.up(&dx0), ck.up(&dw0), ck.up(&db0));
    let (dout_r, mean_r, rstd_r) = (ck.up(&dout), ck.up(&mean), ck.up(&rstd));
    let (xr, wr) = (ck.up(lc.x), ck.up(lc.w));
    let db_dst = lc.with_bias.then(|| db.dst());
    ck.dev.layernorm_backward(
        dx.dst(),
        dw.dst(),
        db_dst,
        dout_r.src(),
        xr.src(),
        wr.src(),
        mean_r.src(),
        rstd_r.src(),
        accumulate,
    );
    let want = layernorm_backward_ref(&dout, lc.x, lc.w, &mean, &rstd);
    let (wdx, mdx) = match accumulate {
        true => plus(&dx0, &want.dx, &want.dx_mag),
        false => (want.dx, want.dx_mag),
    };
    ck.expect(&dx, "dx", &wdx, Some(&mdx))?;
    let (wdw, mdw) = plus(&dw0, &want.dw, &want.dw_mag);
    ck.expect(&dw, "dw", &wdw, Some(&mdw))?;
    let (wdb, mdb) = match lc.with_bias {
        true => plus(&db0, &want.db, &want.db_mag),
        false => (to64(&db0), to64(&db0)),
    };
    ck.expect(&db, "db", &wdb, Some(&mdb))
}

fn layernorm_fd<B: Backend>(ck: &mut Checker<'_, B>) -> Result<(), String> {
    let dev = ck.dev;
    let (n, c) = (5, 7);
    ck.at("layernorm_backward", format!("n={n} c={c} bias=true"));
    let (x, w, b, g) = (
        randn(n * c, 30, 1.0, 0.2),
        randn(c, 31, 0.5, 1.0),
        randn(c, 32, 1.0, 0.0),
        randn(n * c, 33, 1.0, 0.0),
    );
    let forward = |x: &[f32], w: &[f32], b: &[f32]| -> (Region<B>, Region<B>, Region<B>) {
        let (xr, wr, br) = (
            Region::<B>::new(dev, x),
            Region::<B>::new(dev, w),
            Region::<B>::new(dev, b),
        );
        let (mut out, mut mean, mut rstd) = (
            Region::<B>::new(dev, &vec![0.0; n * c]),
            Region::<B>::new(dev, &vec![0.0; n]),
            Region::<B>::new(dev, &vec![0.0; n]),
        );
        dev.layernorm_forward(
            out.dst(),
            mean.dst(),
            rstd.dst(),
            xr.src(),
            wr.src(),
            Some(br.src()),
        );
        (out, mean, rstd)
    };
    let objective =
        |x: &[f32], w: &[f32], b: &[f32]| Ok(weighted_sum(&forward(x, w, b).0.read(dev).0, &g));
    let (_, mean, rstd) = forward(&x, &w, &b);
    let (xr, wr, gr) = (ck.up(&x), ck.up(&w), ck.up(&g));
    let (mut dx, mut dw, mut db) = (
        ck.up(&vec![0.0; n * c]),
        ck.up(&vec![0.0; c]),
        ck.up(&vec![0.0; c]),
    );
    dev.layernorm_backward(
        dx.dst(),
        dw.dst(),
        Some(db.dst()),
        gr.src(),
        xr.src(),
        wr.src(),
        mean.src(),
        rstd.src(),
        false,
    );
    let (dx, dw, db) = (
        ck.read(&dx, "dx")?,
        ck.read(&dw, "dw")?,
        ck.read(&db, "db")?,
    );
    ck.grad("x", &x, &dx, |v| objective(v, &w, &b))?;
    ck.grad("w", &w, &dw, |v| objective(&x, v, &b))?;
    ck.grad("b", &b, &db, |v| objective(&x, &w, v))
}

// ---- Linear ---------------------------------------------------------------------------------

/// `(value, magnitude)` of `out[r][o] = init[r][o] + Σ_k a(r, k)·b(k, o)` for `r < rows`,
/// `o < cols`, `k < inner` (`init` empty: zero).
fn product_ref(
    rows: usize,
    cols: usize,
    inner: usize,
    a: impl Fn(usize, usize) -> f32,
    b: impl Fn(usize, usize) -> f32,
    init: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let (mut out, mut mag) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
    for r in 0..rows {
        for o in 0..cols {
            let (mut s, mut m) = init
                .get(r * cols + o)
                .map_or((0.0, 0.0), |&v| (v as f64, v.abs() as f64));
            for k in 0..inner {
                let t = a(r, k) as f64 * b(k, o) as f64;
                s += t;
                m += t.abs();
            }
            out[r * cols + o] = s;
            mag[r * cols + o] = m;
        }
    }
    (out, mag)
}

/// `[rows, cols]` of `bias` repeated per row.
fn rows_of(bias: &[f32], rows: usize) -> Vec<f32> {
    bias.iter()
        .copied()
        .cycle()
        .take(rows * bias.len())
        .collect()
}

/// Linear forward (bias or not) and backward (`dx` absent, overwritten or accumulated; `dW`
/// — as the weight or transposed — and `db` accumulated), on shapes past any tile size, and
/// finite differences.
pub fn linear<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    for (n, c, oc) in [(1, 3, 5), (7, 17, 11), (33, 40, 67), (70, 5, 130)] {
        let (x, w, b) = (
            randn(n * c, 40, 1.0, 0.0),
            randn(oc * c, 41, 0.5, 0.0),
            randn(oc, 42, 1.0, 0.0),
        );
        let (xr, wr, br) = (ck.up(&x), ck.up(&w), ck.up(&b));
        for with_bias in [true, false] {
            ck.at(
                "linear_forward",
                format!("n={n} c={c} oc={oc} bias={with_bias}"),
            );
            let mut out = ck.up(&vec![f32::NAN; n * oc]);
            dev.linear_forward(
                out.dst(),
                xr.src(),
                wr.src(),
                with_bias.then(|| br.src()),
                c,
            );
            let init = if with_bias { rows_of(&b, n) } else { vec![] };
            let (want, mag) =
                product_ref(n, oc, c, |r, k| x[r * c + k], |k, o| w[o * c + k], &init);
            ck.expect(&out, "out", &want, Some(&mag))?;
        }
        let dout = randn(n * oc, 43, 1.0, 0.0);
        let dout_r = ck.up(&dout);
        // (transposed dW, bias, dx: None = absent, Some(accumulate))
        for (transposed, with_bias, dx_mode) in [
            (false, true, Some(false)),
            (false, false, Some(true)),
            (false, true, None),
            (true, true, Some(false)),
            (true, false, None),
        ] {
            // `_t`: the transposed layout (`GradLayout::Transposed`)
            let op = if transposed {
                "linear_backward_t"
            } else {
                "linear_backward"
            };
            ck.at(
                op,
                format!("n={n} c={c} oc={oc} bias={with_bias} dx={dx_mode:?}"),
            );
            let dx0 = match dx_mode {
                Some(true) => randn(n * c, 44, 1.0, 0.0),
                _ => vec![f32::NAN; n * c],
            };
            let (dw0, db0) = (randn(oc * c, 45, 1.0, 0.0), randn(oc, 46, 1.0, 0.0));
            let (mut dx, mut dw, mut db) = (ck.up(&dx0), ck.up(&dw0), ck.up(&db0));
            let dx_dst = dx_mode.map(|_| dx.dst());
            let db_dst = with_bias.then(|| db.dst());
            let (g, xs, ws, acc) = (dout_r.src(), xr.src(), wr.src(), dx_mode == Some(true));
            let layout = GradLayout::transposed_if(transposed);
            dev.linear_backward_with(layout, dx_dst, dw.dst(), db_dst, g, xs, ws, c, acc);
            let dx_init = if dx_mode == Some(true) { &dx0[..] } else { &[] };
            let (want, mag) = product_ref(
                n,
                c,
                oc,
                |r, k| dout[r * oc + k],
                |k, i| w[k * c + i],
                dx_init,
            );
            match dx_mode {
                Some(_) => ck.expect(&dx, "dx", &want, Some(&mag))?,
                None => {
                    let got = ck.read(&dx, "dx")?;
                    ck.exact("dx (absent, untouched)", &got, &dx0)?
                }
            }
            let (want, mag) = if transposed {
                // dWᵀ [C,OC] += xᵀ·dout, onto dw0 read as [C,OC]
                product_ref(c, oc, n, |i, r| x[r * c + i], |r, o| dout[r * oc + o], &dw0)
            } else {
                product_ref(oc, c, n, |o, r| dout[r * oc + o], |r, i| x[r * c + i], &dw0)
            };
            ck.expect(&dw, "dw", &want, Some(&mag))?;
            let (want, mag) = if with_bias {
                product_ref(1, oc, n, |_, _| 1.0, |r, o| dout[r * oc + o], &db0)
            } else {
                (to64(&db0), to64(&db0))
            };
            ck.expect(&db, "db", &want, Some(&mag))?;
        }
    }
    linear_fd(&mut ck)?;
    ck.done()
}

fn linear_fd<B: Backend>(ck: &mut Checker<'_, B>) -> Result<(), String> {
    let dev = ck.dev;
    let (n, c, oc) = (5, 6, 7);
    ck.at("linear_backward", format!("n={n} c={c} oc={oc} bias=true"));
    let (x, w, b, g) = (
        randn(n * c, 47, 1.0, 0.0),
        randn(oc * c, 48, 1.0, 0.0),
        randn(oc, 49, 1.0, 0.0),
        randn(n * oc, 50, 1.0, 0.0),
    );
    let objective = |x: &[f32], w: &[f32], b: &[f32]| {
        let (xr, wr, br) = (
            Region::<B>::new(dev, x),
            Region::<B>::new(dev, w),
            Region::<B>::new(dev, b),
        );
        let mut out = Region::<B>::new(dev, &vec![0.0; n * oc]);
        dev.linear_forward(out.dst(), xr.src(), wr.src(), Some(br.src()), c);
        Ok(weighted_sum(&out.read(dev).0, &g))
    };
    let (xr, wr, gr) = (ck.up(&x), ck.up(&w), ck.up(&g));
    let (mut dx, mut dw, mut db) = (
        ck.up(&vec![0.0; n * c]),
        ck.up(&vec![0.0; oc * c]),
        ck.up(&vec![0.0; oc]),
    );
    dev.linear_backward(
        Some(dx.dst()),
        dw.dst(),
        Some(db.dst()),
        gr.src(),
        xr.src(),
        wr.src(),
        c,
        false,
    );
    let (dx, dw, db) = (
        ck.read(&dx, "dx")?,
        ck.read(&dw, "dw")?,
        ck.read(&db, "db")?,
    );
    ck.grad("x", &x, &dx, |v| objective(v, &w, &b))?;
    ck.grad("w", &w, &dw, |v| objective(&x, v, &b))?;
    ck.grad("b", &b, &db, |v| objective(&x, &w, v))?;
    // the transposed layout: dWᵀ [C,OC], read back as [OC,C]
    ck.at(
        "linear_backward_t",
        format!("n={n} c={c} oc={oc} bias=false"),
    );
    let mut dwt = ck.up(&vec![0.0; oc * c]);
    dev.linear_backward_with(
        GradLayout::Transposed,
        None,
        dwt.dst(),
        None,
        gr.src(),
        xr.src(),
        wr.src(),
        c,
        false,
    );
    let dwt = ck.read(&dwt, "dwt")?;
    let dw: Vec<f32> = (0..oc * c).map(|i| dwt[(i % c) * oc + i / c]).collect();
    ck.grad("w", &w, &dw, |v| objective(&x, v, &b))
}

// ---- GELU -----------------------------------------------------------------------------------

/// `erf` in f64 to ~1e-15: the Maclaurin series below 3, the continued fraction of `erfc`
/// above (std has no `erf`).
fn erf(z: f64) -> f64 {
    let a = z.abs();
    let r = if a < 3.0 {
        // erf a = 2/√π · Σ (−1)ⁿ a^(2n+1) / (n!·(2n+1))
        // (at a = 3 the terms fall below 1e-17 of the sum by n = 60)
        let (mut term, mut sum) = (a, a);
        for n in 1..=100 {
            let n = n as f64;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc a = e^{−a²}/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …))))
        let mut f = a;
        for k in (1..=80).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    };
    if z < 0.0 {
        -r
    } else {
        r
    }
}

/// `(act(x), act'(x))` in f64 (ReLU's derivative at 0 is torch's 0).
fn gelu_ref(x: f64, act: Activation) -> (f64, f64) {
    match act {
        Activation::Gelu => {
            let cdf = 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            (x * cdf, cdf + x * pdf)
        }
        Activation::GeluTanh => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            let u = k * (x + 0.044715 * x * x * x);
            let th = u.tanh();
            let du = k * (1.0 + 3.0 * 0.044715 * x * x);
            (
                0.5 * x * (1.0 + th),
                0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du,
            )
        }
        Activation::Relu if x > 0.0 => (x, 1.0),
        Activation::Relu => (0.0, 0.0),
    }
}

/// The MLP activation (GELU exact and tanh, ReLU) forward, forward keeping the derivative
/// in place, backward; bias or not; inputs reaching the tails; finite differences.
pub fn gelu<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    for (n, h) in [(1, 1), (7, 3), (7, 17), (7, 1201)] {
        let x = randn(n * h, 60, 3.0, 0.0);
        let bias = randn(h, 61, 1.0, 0.0);
        let (xr, br) = (ck.up(&x), ck.up(&bias));
        for act in [Activation::Gelu, Activation::GeluTanh, Activation::Relu] {
            for with_bias in [true, false] {
                let case = format!("n={n} h={h} {act:?} bias={with_bias}");
                let pre = |k: usize| x[k] as f64 + if with_bias { bias[k % h] as f64 } else { 0.0 };
                let (want_y, want_g): (Vec<f64>, Vec<f64>) =
                    (0..n * h).map(|k| gelu_ref(pre(k), act)).unzip();
                let b_src = || with_bias.then(|| br.src());

                ck.at("gelu_forward", case.clone());
                let mut y = ck.up(&vec![f32::NAN; n * h]);
                dev.gelu_forward(y.dst(), xr.src(), b_src(), act);
                ck.expect(&y, "y", &want_y, None)?;

                ck.at("gelu_forward_keep_derivative", case.clone());
                let mut y = ck.up(&vec![f32::NAN; n * h]);
                let mut xd = ck.up(&x);
                dev.gelu_forward_keep_derivative(y.dst(), xd.dst(), b_src(), act);
                ck.expect(&y, "y", &want_y, None)?;
                ck.expect(&xd, "x (derivative, in place)", &want_g, None)?;

                ck.at("gelu_backward", case);
                let d = randn(n * h, 62, 1.0, 0.0);
                let g = ck.read(&xd, "x")?;
                let mut dr = ck.up(&d);
                dev.gelu_backward(dr.dst(), xd.src());
                let want: Vec<f64> = d
                    .iter()
                    .zip(&g)
                    .map(|(&d, &g)| d as f64 * g as f64)
                    .collect();
                ck.expect(&dr, "d", &want, None)?;
            }
        }
    }
    for act in [Activation::Gelu, Activation::GeluTanh, Activation::Relu] {
        let (n, h) = (4, 9);
        ck.at("gelu_backward", format!("n={n} h={h} {act:?} bias=true"));
        let (x, bias, g) = (
            randn(n * h, 63, 2.0, 0.0),
            randn(h, 64, 1.0, 0.0),
            randn(n * h, 65, 1.0, 0.0),
        );
        let objective = |x: &[f32], b: &[f32]| {
            let (xr, br) = (Region::<B>::new(dev, x), Region::<B>::new(dev, b));
            let mut y = Region::<B>::new(dev, &vec![0.0; n * h]);
            dev.gelu_forward(y.dst(), xr.src(), Some(br.src()), act);
            Ok(weighted_sum(&y.read(dev).0, &g))
        };
        let (mut y, mut xd, br) = (ck.up(&vec![0.0; n * h]), ck.up(&x), ck.up(&bias));
        dev.gelu_forward_keep_derivative(y.dst(), xd.dst(), Some(br.src()), act);
        let mut d = ck.up(&g);
        dev.gelu_backward(d.dst(), xd.src());
        let dx = ck.read(&d, "d")?;
        let db: Vec<f32> = (0..h)
            .map(|j| (0..n).map(|r| dx[r * h + j] as f64).sum::<f64>() as f32)
            .collect();
        ck.grad("x", &x, &dx, |v| objective(v, &bias))?;
        ck.grad("bias (Σ of dx over rows)", &bias, &db, |v| {
            objective(&x, v)
        })?;
    }
    ck.done()
}

// ---- RoPE -----------------------------------------------------------------------------------

/// `cos, sin [t, hs/2]` of the standard angles `pos·10000^(−2i/hs)`.
fn rope_tables(t: usize, hs: usize) -> (Vec<f32>, Vec<f32>) {
    let half = hs / 2;
    let (mut cos, mut sin) = (vec![0.0; t * half], vec![0.0; t * half]);
    for p in 0..t {
        for i in 0..half {
            let a = p as f64 * 10000f64.powf(-((2 * i) as f64) / hs as f64);
            cos[p * half + i] = a.cos() as f32;
            sin[p * half + i] = a.sin() as f32;
        }
    }
    (cos, sin)
}

/// Rotate-half RoPE of the q and k thirds of `qkv [N,3C]` by `sign ×` the table angles.
fn rope_ref(
    qkv: &[f32],
    cos: &[f32],
    sin: &[f32],
    t: usize,
    c: usize,
    nh: usize,
    sign: f64,
) -> Vec<f64> {
    let (hs, mut out) = (c / nh, to64(qkv));
    let half = hs / 2;
    for n in 0..qkv.len() / (3 * c) {
        let p = n % t;
        for head in 0..2 * nh {
            let base = n * 3 * c + head * hs;
            for i in 0..half {
                let (co, si) = (cos[p * half + i] as f64, sign * sin[p * half + i] as f64);
                let (x0, x1) = (qkv[base + i] as f64, qkv[base + half + i] as f64);
                out[base + i] = x0 * co - x1 * si;
                out[base + half + i] = x1 * co + x0 * si;
            }
        }
    }
    out
}

/// RoPE forward and inverse on q and k (v untouched), and finite differences (the inverse is
/// the backward).
pub fn rope<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    for (b, t, c, nh) in [
        (1, 1, 2, 1),
        (2, 3, 4, 2),
        (1, 9, 6, 1),
        (2, 7, 12, 3),
        (1, 33, 40, 4),
    ] {
        let (cos, sin) = rope_tables(t, c / nh);
        let (cr, sr) = (ck.up(&cos), ck.up(&sin));
        let qkv = randn(b * t * 3 * c, 70, 1.0, 0.0);
        for inverse in [false, true] {
            ck.at(
                "rope",
                format!("b={b} t={t} c={c} nh={nh} inverse={inverse}"),
            );
            let mut r = ck.up(&qkv);
            dev.rope(r.dst(), cr.src(), sr.src(), t, c, nh, inverse);
            let want = rope_ref(&qkv, &cos, &sin, t, c, nh, if inverse { -1.0 } else { 1.0 });
            ck.expect(&r, "qkv", &want, None)?;
        }
    }
    let (b, t, c, nh) = (2, 5, 8, 2);
    ck.at(
        "rope",
        format!("b={b} t={t} c={c} nh={nh} inverse=true (as backward)"),
    );
    let (cos, sin) = rope_tables(t, c / nh);
    let (cr, sr) = (ck.up(&cos), ck.up(&sin));
    let (x, g) = (
        randn(b * t * 3 * c, 71, 1.0, 0.0),
        randn(b * t * 3 * c, 72, 1.0, 0.0),
    );
    let mut dx = ck.up(&g);
    dev.rope(dx.dst(), cr.src(), sr.src(), t, c, nh, true);
    let dx = ck.read(&dx, "qkv")?;
    ck.grad("qkv", &x, &dx, |v| {
        let mut r = Region::<B>::new(dev, v);
        dev.rope(r.dst(), cr.src(), sr.src(), t, c, nh, false);
        Ok(weighted_sum(&r.read(dev).0, &g))
    })?;
    ck.done()
}

// ---- attention ------------------------------------------------------------------------------

/// Causal attention in f64, straight from the definition, with its pieces kept for backward.
struct AttentionRef {
    /// `[B,T,C]`
    out: Vec<f64>,
    /// `Σ_j p·drop·|v|`: the scale of `out`'s rounding
    out_mag: Vec<f64>,
    /// `[B,H,T]`
    lse: Vec<f64>,
    /// `[B,H,T,T]` softmax probabilities (before dropout)
    p: Vec<f64>,
}

/// `q`, `k` or `v` (`third` 0, 1, 2) of head `h` of row `(b, i)`, element `e`.
fn qkv_at(qkv: &[f32], d: Dims, third: usize, b: usize, i: usize, h: usize, e: usize) -> f64 {
    let hs = d.c / d.nh;
    qkv[(b * d.t + i) * 3 * d.c + third * d.c + h * hs + e] as f64
}

/// Dropout factor of probability `(b, h, i, j)`.
fn attn_drop(drop: Option<Mask>, d: Dims, b: usize, h: usize, i: usize, j: usize) -> f64 {
    drop.map_or(1.0, |m| {
        m.factor((((b * d.nh + h) * d.t + i) * d.t + j) as u64) as f64
    })
}

fn attention_ref(qkv: &[f32], d: Dims, drop: Option<Mask>) -> AttentionRef {
    let (t, c, nh, hs) = (d.t, d.c, d.nh, d.c / d.nh);
    let scale = 1.0 / (hs as f64).sqrt();
    let mut r = AttentionRef {
        out: vec![0.0; d.b * t * c],
        out_mag: vec![0.0; d.b * t * c],
        lse: vec![0.0; d.b * nh * t],
        p: vec![0.0; d.b * nh * t * t],
    };
    for b in 0..d.b {
        for h in 0..nh {
            for i in 0..t {
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..hs)
                            .map(|e| qkv_at(qkv, d, 0, b, i, h, e) * qkv_at(qkv, d, 1, b, j, h, e))
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = mx + s.iter().map(|s| (s - mx).exp()).sum::<f64>().ln();
                r.lse[(b * nh + h) * t + i] = lse;
                for (j, s) in s.iter().enumerate() {
                    let p = (s - lse).exp();
                    r.p[((b * nh + h) * t + i) * t + j] = p;
                    let pd = p * attn_drop(drop, d, b, h, i, j);
                    for e in 0..hs {
                        let v = qkv_at(qkv, d, 2, b, j, h, e);
                        r.out[(b * t + i) * c + h * hs + e] += pd * v;
                        r.out_mag[(b * t + i) * c + h * hs + e] += (pd * v).abs();
                    }
                }
            }
        }
    }
    r
}

/// `(dqkv, magnitude)` of attention in f64: with `pd = p·drop`,
/// `dv_j = Σ_i pd_ij·dout_i`, `dp_ij = drop·(dout_i·v_j)`, `ds_ij = p_ij·(dp_ij − Σ_j p·dp)`,
/// `dq_i = scale·Σ_j ds_ij·k_j`, `dk_j = scale·Σ_i ds_ij·q_i`.
fn attention_backward_ref(
    qkv: &[f32],
    dout: &[f32],
    d: Dims,
    drop: Option<Mask>,
    fwd: &AttentionRef,
) -> (Vec<f64>, Vec<f64>) {
    let (t, c, nh, hs) = (d.t, d.c, d.nh, d.c / d.nh);
    let scale = 1.0 / (hs as f64).sqrt();
    let (mut g, mut mag) = (vec![0.0; d.b * t * 3 * c], vec![0.0; d.b * t * 3 * c]);
    let at = |third: usize, b: usize, i: usize, h: usize, e: usize| {
        (b * t + i) * 3 * c + third * c + h * hs + e
    };
    for b in 0..d.b {
        for h in 0..nh {
            for i in 0..t {
                let dout_i: Vec<f64> = (0..hs)
                    .map(|e| dout[(b * t + i) * c + h * hs + e] as f64)
                    .collect();
                let p = |j: usize| fwd.p[((b * nh + h) * t + i) * t + j];
                let dp: Vec<f64> = (0..=i)
                    .map(|j| {
                        attn_drop(drop, d, b, h, i, j)
                            * (0..hs)
                                .map(|e| dout_i[e] * qkv_at(qkv, d, 2, b, j, h, e))
                                .sum::<f64>()
                    })
                    .collect();
                let delta: f64 = (0..=i).map(|j| p(j) * dp[j]).sum();
                for j in 0..=i {
                    let pd = p(j) * attn_drop(drop, d, b, h, i, j);
                    let ds = p(j) * (dp[j] - delta) * scale;
                    for e in 0..hs {
                        g[at(2, b, j, h, e)] += pd * dout_i[e];
                        mag[at(2, b, j, h, e)] += (pd * dout_i[e]).abs();
                        let (q, k) = (qkv_at(qkv, d, 0, b, i, h, e), qkv_at(qkv, d, 1, b, j, h, e));
                        g[at(0, b, i, h, e)] += ds * k;
                        mag[at(0, b, i, h, e)] += (ds * k).abs();
                        g[at(1, b, j, h, e)] += ds * q;
                        mag[at(1, b, j, h, e)] += (ds * q).abs();
                    }
                }
            }
        }
    }
    (g, mag)
}

/// The attention shapes: odd head sizes, one and several heads, `T` past one query block;
/// with and without dropout (a non-zero mask offset included).
fn attention_cases() -> Vec<(Dims, Option<Mask>)> {
    let drop = |p: f32, offset: u64| {
        Some(Mask {
            seed: 5,
            stream: 9,
            p,
            offset,
        })
    };
    let dims = |b, t, c, nh| Dims { b, t, c, nh };
    vec![
        (dims(1, 1, 3, 1), None),
        (dims(2, 3, 5, 1), drop(0.3, 0)),
        (dims(1, 9, 15, 3), None),
        (dims(2, 33, 8, 2), drop(0.2, 3)),
        (dims(1, 70, 40, 4), None),
        (dims(1, 70, 12, 2), drop(0.1, 0)),
    ]
}

/// Attention forward (`out`, `lse`) and backward (`dqkv`, overwritten) against the f64
/// reference, with one and three workers' workspace; finite differences.
pub fn attention<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    for (k, (d, drop)) in attention_cases().into_iter().enumerate() {
        let workers = 1 + 2 * (k % 2);
        let case = format!(
            "b={} t={} c={} nh={} drop={:?} workers={workers}",
            d.b,
            d.t,
            d.c,
            d.nh,
            drop.map(|m| m.p)
        );
        let (n, c) = (d.b * d.t, d.c);
        let qkv = randn(n * 3 * c, 80 + k as u64, 1.0, 0.0);
        let want = attention_ref(&qkv, d, drop);
        ck.at("attention_forward", case.clone());
        let qkv_r = ck.up(&qkv);
        let (mut out, mut lse) = (
            ck.up(&vec![f32::NAN; n * c]),
            ck.up(&vec![f32::NAN; d.b * d.nh * d.t]),
        );
        let mut work = ck.up(&vec![f32::NAN; dev.attention_workspace(d.t, workers)]);
        dev.attention_forward(out.dst(), lse.dst(), qkv_r.src(), work.dst(), d, drop);
        ck.expect(&out, "out", &want.out, Some(&want.out_mag))?;
        ck.expect(&lse, "lse", &want.lse, None)?;

        ck.at("attention_backward", case);
        let dout = randn(n * c, 90 + k as u64, 1.0, 0.0);
        let dout_r = ck.up(&dout);
        let mut dqkv = ck.up(&vec![f32::NAN; n * 3 * c]);
        dev.attention_backward(
            dqkv.dst(),
            dout_r.src(),
            out.src(),
            lse.src(),
            qkv_r.src(),
            work.dst(),
            d,
            drop,
        );
        let (wg, mg) = attention_backward_ref(&qkv, &dout, d, drop, &want);
        ck.expect(&dqkv, "dqkv", &wg, Some(&mg))?;
    }
    for (d, drop) in [attention_cases()[2], attention_cases()[3]] {
        ck.at(
            "attention_backward",
            format!(
                "b={} t={} c={} nh={} drop={:?}",
                d.b,
                d.t,
                d.c,
                d.nh,
                drop.map(|m| m.p)
            ),
        );
        let (n, c) = (d.b * d.t, d.c);
        let (qkv, g) = (randn(n * 3 * c, 100, 1.0, 0.0), randn(n * c, 101, 1.0, 0.0));
        let ws = dev.attention_workspace(d.t, 1);
        let forward = |qkv: &[f32]| {
            let qkv_r = Region::<B>::new(dev, qkv);
            let (mut out, mut lse) = (
                Region::<B>::new(dev, &vec![0.0; n * c]),
                Region::<B>::new(dev, &vec![0.0; d.b * d.nh * d.t]),
            );
            let mut work = Region::<B>::new(dev, &vec![0.0; ws]);
            dev.attention_forward(out.dst(), lse.dst(), qkv_r.src(), work.dst(), d, drop);
            (qkv_r, out, lse, work)
        };
        let (qkv_r, out, lse, mut work) = forward(&qkv);
        let (g_r, mut dqkv) = (ck.up(&g), ck.up(&vec![0.0; n * 3 * c]));
        dev.attention_backward(
            dqkv.dst(),
            g_r.src(),
            out.src(),
            lse.src(),
            qkv_r.src(),
            work.dst(),
            d,
            drop,
        );
        let dqkv = ck.read(&dqkv, "dqkv")?;
        ck.grad("qkv", &qkv, &dqkv, |x| {
            Ok(weighted_sum(&forward(x).1.read(dev).0, &g))
        })?;
    }
    ck.done()
}

/// KV-cached decoding: rows fed one at a time, and a prefill chunk followed by a chunk and
/// single rows, must give the causal attention's rows and fill the cache with the keys and
/// values.
pub fn attention_decode<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    for (t, c, nh) in [(9, 15, 3), (70, 8, 2), (4, 5, 1)] {
        let d = Dims { b: 1, t, c, nh };
        let qkv = randn(t * 3 * c, 110, 1.0, 0.0);
        let want = attention_ref(&qkv, d, None);
        let ones = vec![1; t];
        let chunked = [&[5, 1, 3][..], &vec![1; t.saturating_sub(9)][..]].concat();
        let whole = [t];
        for schedule in [&ones[..], &chunked[..], &whole[..]] {
            if schedule.iter().sum::<usize>() != t {
                continue;
            }
            ck.at(
                "attention_decode",
                format!(
                    "t={t} c={c} nh={nh} chunks={:?}",
                    &schedule[..schedule.len().min(4)]
                ),
            );
            let (mut k, mut v) = (ck.up(&vec![f32::NAN; t * c]), ck.up(&vec![f32::NAN; t * c]));
            let mut work = ck.up(&vec![0.0; dev.attention_workspace(t, 1)]);
            let mut past = 0;
            for &m in schedule {
                let rows = ck.up(&qkv[past * 3 * c..(past + m) * 3 * c]);
                let (mut out, mut lse) = (ck.up(&vec![f32::NAN; m * c]), ck.up(&vec![0.0; nh * m]));
                let dm = Dims { b: 1, t: m, c, nh };
                dev.attention_decode(
                    out.dst(),
                    lse.dst(),
                    rows.src(),
                    k.dst(),
                    v.dst(),
                    work.dst(),
                    past,
                    dm,
                );
                let r = past * c..(past + m) * c;
                ck.expect(
                    &out,
                    &format!("out rows {past}..{}", past + m),
                    &want.out[r.clone()],
                    Some(&want.out_mag[r]),
                )?;
                past += m;
            }
            let third = |j: usize| -> Vec<f32> {
                (0..t)
                    .flat_map(|i| qkv[i * 3 * c + j * c..i * 3 * c + (j + 1) * c].to_vec())
                    .collect()
            };
            let (gk, gv) = (ck.read(&k, "k cache")?, ck.read(&v, "v cache")?);
            ck.exact("k cache", &gk, &third(1))?;
            ck.exact("v cache", &gv, &third(2))?;
        }
    }
    ck.done()
}

// ---- cross-entropy --------------------------------------------------------------------------

/// Targets in `0..v` with every third row ignored (`-1`) once there are several rows.
fn targets(n: usize, v: usize, seed: u64) -> Vec<i32> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| {
            if n > 1 && i % 3 == 1 {
                -1
            } else {
                (r.next_u64() % v as u64) as i32
            }
        })
        .collect()
}

/// `(row_loss, dlogits)` in f64: `logsumexp(l) − l[target]` and `(softmax(l) − onehot)/n_valid`,
/// zero for ignored rows.
fn cross_entropy_ref(
    logits: &[f32],
    targets: &[i32],
    v: usize,
    n_valid: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut loss, mut dl) = (vec![0.0; targets.len()], vec![0.0; logits.len()]);
    for (r, &tg) in targets.iter().enumerate() {
        if tg < 0 {
            continue;
        }
        let l = to64(&logits[r * v..(r + 1) * v]);
        let mx = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + l.iter().map(|x| (x - mx).exp()).sum::<f64>().ln();
        loss[r] = lse - l[tg as usize];
        for j in 0..v {
            let onehot = if j == tg as usize { 1.0 } else { 0.0 };
            dl[r * v + j] = ((l[j] - lse).exp() - onehot) / n_valid as f64;
        }
    }
    (loss, dl)
}

/// Fused softmax + cross-entropy in place: `row_loss`, `dlogits` over the logits (zero rows
/// for ignored targets, scaled by a batch-wide `n_valid`) and the returned sum; finite
/// differences.
pub fn cross_entropy<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    for (n, v) in [(1, 11), (7, 11), (7, 257), (70, 33)] {
        let logits = randn(n * v, 120, 4.0, 0.0);
        let tg = targets(n, v, 121);
        let n_valid = tg.iter().filter(|&&t| t >= 0).count() + 3;
        ck.at("cross_entropy", format!("n={n} v={v} n_valid={n_valid}"));
        let (mut dl, mut loss) = (ck.up(&logits), ck.up(&vec![f32::NAN; n]));
        let sum = dev.cross_entropy(dl.dst(), loss.dst(), &tg, v, n_valid);
        let (wloss, wdl) = cross_entropy_ref(&logits, &tg, v, n_valid);
        ck.expect(&loss, "row_loss", &wloss, None)?;
        ck.expect(&dl, "dlogits", &wdl, None)?;
        let total: f64 = wloss.iter().sum();
        ck.close_scalar(
            "returned sum",
            sum,
            total,
            wloss.iter().map(|l| l.abs()).sum(),
        )?;
    }
    let (n, v) = (5, 11);
    ck.at("cross_entropy", format!("n={n} v={v} (as backward)"));
    let (logits, tg) = (randn(n * v, 122, 2.0, 0.0), targets(n, v, 123));
    let n_valid = tg.iter().filter(|&&t| t >= 0).count();
    let mean_loss = |l: &[f32]| -> Result<(Vec<f32>, f64), String> {
        let (mut dl, mut loss) = (
            Region::<B>::new(dev, l),
            Region::<B>::new(dev, &vec![0.0; n]),
        );
        let sum = dev.cross_entropy(dl.dst(), loss.dst(), &tg, v, n_valid);
        Ok((dl.read(dev).0, sum / n_valid as f64))
    };
    let dl = mean_loss(&logits)?.0;
    ck.grad("logits", &logits, &dl, |l| Ok(mean_loss(l)?.1))?;
    ck.done()
}

// ---- AdamW ----------------------------------------------------------------------------------

/// AdamW against torch's per-element formula in f64, decayed and undecayed segments, and
/// elements outside every segment left untouched.
pub fn adamw<B: Backend>(dev: &B, tol: Tolerance) -> Result<Report, String> {
    let mut ck = Checker::new(dev, tol);
    let len = 40_000;
    let segments: Vec<Segment> = vec![
        (0..300, true),
        (300..301, false),
        (310..20_000, true),
        (20_000..39_999, false),
    ];
    let (lr, wd, b1, b2, eps, t) = (1e-2f32, 0.1f32, 0.9f32, 0.95f32, 1e-8f32, 3);
    let s = AdamWStep {
        lr,
        weight_decay: wd,
        beta1: b1,
        beta2: b2,
        eps,
        step_size: lr / (1.0 - b1.powi(t)),
        bc2_sqrt: (1.0 - b2.powi(t)).sqrt(),
    };
    ck.at("adamw", format!("len={len} segments={}", segments.len()));
    let (p0, g) = (randn(len, 130, 1.0, 0.0), randn(len, 131, 0.1, 0.0));
    let m0 = randn(len, 132, 0.05, 0.0);
    let v0: Vec<f32> = randn(len, 133, 0.01, 0.0).iter().map(|x| x * x).collect();
    let (mut p, gr, mut m, mut v) = (ck.up(&p0), ck.up(&g), ck.up(&m0), ck.up(&v0));
    dev.adamw(p.dst(), gr.src(), m.dst(), v.dst(), &segments, s);
    let (mut wp, mut wm, mut wv) = (to64(&p0), to64(&m0), to64(&v0));
    for (r, decays) in &segments {
        for i in r.clone() {
            let gi = g[i] as f64;
            if *decays {
                wp[i] *= 1.0 - lr as f64 * wd as f64;
            }
            wm[i] = b1 as f64 * wm[i] + (1.0 - b1 as f64) * gi;
            wv[i] = b2 as f64 * wv[i] + (1.0 - b2 as f64) * gi * gi;
            let denom = wv[i].sqrt() / s.bc2_sqrt as f64 + eps as f64;
            wp[i] -= s.step_size as f64 * wm[i] / denom;
        }
    }
    ck.expect(&p, "p", &wp, None)?;
    ck.expect(&m, "m", &wm, None)?;
    ck.expect(&v, "v", &wv, None)?;
    let got = ck.read(&p, "p")?;
    let outside: Vec<usize> = (0..len)
        .filter(|i| !segments.iter().any(|(r, _)| r.contains(i)))
        .collect();
    let pick = |x: &[f32]| outside.iter().map(|&i| x[i]).collect::<Vec<_>>();
    ck.exact("p outside the segments", &pick(&got), &pick(&p0))?;
    ck.done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    #[test]
    fn a_write_outside_a_region_is_caught() {
        let dev = Cpu::new();
        let mut r = Region::<Cpu>::new(&dev, &[1.0, 2.0]);
        assert!(r.read(&dev).1);
        r.buf[PAD + 2] = 0.0;
        let ck = Checker::new(&dev, Tolerance::fp32());
        assert!(ck
            .read(&r, "x")
            .unwrap_err()
            .contains("outside its `x` region"));
    }

    #[test]
    fn erf_matches_known_values_on_both_branches() {
        for (z, want) in [
            (0.0, 0.0),
            (-0.5, -0.520_499_877_813_046_5),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (-2.9999, -0.999_977_895_573_517_8),
            (3.0, 0.999_977_909_503_001_4),
            (3.5, 0.999_999_256_901_627_6),
        ] {
            assert!(
                (erf(z) - want).abs() < 1e-14,
                "erf({z}) = {} want {want}",
                erf(z)
            );
        }
    }
}
