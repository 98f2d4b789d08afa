//! Linear weights made ready for bf16 products once per optimizer step instead of once per use.
//!
//! A weight `W [oc, c]` is the `B` operand of two products: `Wᵀ` in the forward `x·Wᵀ` and `W`
//! in the backward `dX = dY·W` — and of one per classifier chunk, per batch shard and per
//! micro-batch. [`PreparedWeight`] holds what each kernel would otherwise make from `W` at
//! every use: the AMX tile panels of `Wᵀ` and of `W` (two layouts), the bf16 copy the native
//! kernel reads at either stride, or the bf16-rounded f32 copy of the emulated kernel. The
//! numbers are the same as casting per use (same rounding of the same values); whoever keeps
//! a `PreparedWeight` must prepare it again after `W` changes (the CPU backend's cache does
//! that by an epoch the model advances on every parameter write).

use super::amx_pack::{pack, pair_blocks, Panels, Side, TK};
use super::bf16::{bf16_bits, round_bf16, Bf16Kernel};
use super::{prepare, Mat, MatMut, Par};
use gemmkit::bf16;

/// `W [oc, c]` prepared for one bf16 kernel (see the module docs).
#[derive(Debug, Default)]
pub struct PreparedWeight {
    kern: Option<Bf16Kernel>,
    oc: usize,
    c: usize,
    /// AMX: tile panels of `Wᵀ` (forward) and of `W` (backward `dY·W`)
    panels_t: Panels,
    panels: Panels,
    /// native: `W` in bf16, row-major
    copy_bf16: Vec<bf16>,
    /// emulated: `W` rounded to bf16 values, row-major
    copy_f32: Vec<f32>,
}

impl PreparedWeight {
    /// Prepares `w [oc, c]` (row-major) for `kern`, reusing this value's buffers.
    pub fn prepare(&mut self, kern: Bf16Kernel, w: &[f32], oc: usize, c: usize) {
        assert_eq!(
            w.len(),
            oc * c,
            "PreparedWeight: {} floats for [{oc},{c}]",
            w.len()
        );
        let threads = rayon::current_num_threads();
        match kern {
            Bf16Kernel::Amx => {
                let (wt, wm) = (Mat::row_major(w, oc, c).t(), Mat::row_major(w, oc, c));
                // B = Wᵀ [c, oc]: oc columns in block pairs, c/32 k-tiles; B = W the reverse
                pack(
                    &mut self.panels_t,
                    Side::B,
                    wt,
                    pair_blocks(oc),
                    c.div_ceil(TK),
                    threads,
                );
                pack(
                    &mut self.panels,
                    Side::B,
                    wm,
                    pair_blocks(c),
                    oc.div_ceil(TK),
                    threads,
                );
            }
            Bf16Kernel::Native => {
                self.copy_bf16.clear();
                self.copy_bf16
                    .extend(w.iter().map(|&x| bf16::from_bits(bf16_bits(x))));
            }
            Bf16Kernel::Emulated => {
                self.copy_f32.clear();
                self.copy_f32.extend(w.iter().map(|&x| round_bf16(x)));
            }
        }
        (self.kern, self.oc, self.c) = (Some(kern), oc, c);
    }

    /// The kernel this weight was prepared for (`None` before the first [`prepare`](Self::prepare)).
    pub fn kernel(&self) -> Option<Bf16Kernel> {
        self.kern
    }
}

/// `C (+)= bf16(A)·B` where `B` is `Wᵀ` (`transposed`) or `W` of the prepared `w`, on the
/// kernel it was prepared for; shapes as [`super::matmul`]. `w_f32` is the weight the
/// preparation was made from (its shape checks the product).
pub fn matmul_bf16_prepared(
    mut c: MatMut<'_>,
    a: Mat<'_>,
    w: &PreparedWeight,
    w_f32: &[f32],
    transposed: bool,
    accumulate: bool,
    par: Par,
) {
    let kern = w.kern.expect("matmul_bf16_prepared: weight not prepared");
    let wm = Mat::row_major(w_f32, w.oc, w.c);
    let b = if transposed { wm.t() } else { wm };
    if let Some(threads) = prepare(&mut c, a, b, accumulate, par) {
        let prepared = match kern {
            Bf16Kernel::Amx if transposed => Prepared::Panels(&w.panels_t),
            Bf16Kernel::Amx => Prepared::Panels(&w.panels),
            Bf16Kernel::Native => Prepared::Bf16(&w.copy_bf16),
            Bf16Kernel::Emulated => Prepared::Rounded(&w.copy_f32),
        };
        super::bf16::product(kern, c, a, b, Some(prepared), accumulate, threads);
    }
}

/// A prepared `B` as a kernel reads it.
#[derive(Clone, Copy)]
pub(super) enum Prepared<'a> {
    /// AMX tile panels of `B` (pair layout, blocks of 16 columns in pairs).
    Panels(&'a Panels),
    /// `B`'s floats in bf16, at `B`'s strides.
    Bf16(&'a [bf16]),
    /// `B`'s floats rounded to bf16 values, at `B`'s strides.
    Rounded(&'a [f32]),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::matmul::matmul_bf16;
    use crate::ops::matmul::tests::values;
    use crate::ops::matmul::tests_bf16::bf16_kernels;

    /// The prepared weight gives bit for bit what casting `W` at each use gives, for both
    /// products, every kernel this CPU has, odd shapes, overwriting and accumulating.
    #[test]
    fn prepared_weights_equal_casting_per_use() {
        let kerns = bf16_kernels();
        for (n, oc, c) in [(1, 1, 1), (37, 29, 53), (64, 96, 32), (5, 70, 33)] {
            let w = values(oc * c, 13, 29);
            let x = values(n * c, 7, 31);
            let dy = values(n * oc, 5, 23);
            for &kern in &kerns {
                let mut p = PreparedWeight::default();
                // prepared twice: the second preparation reuses the buffers of the first
                p.prepare(kern, &values(oc * c, 3, 11), oc, c);
                p.prepare(kern, &w, oc, c);
                for accumulate in [false, true] {
                    for par in [Par::Pool, Par::Single] {
                        let (mut want, mut got) = (vec![0.5; n * oc], vec![0.5; n * oc]);
                        let (xm, wm) = (Mat::row_major(&x, n, c), Mat::row_major(&w, oc, c));
                        matmul_bf16(
                            kern,
                            MatMut::row_major(&mut want, n, oc),
                            xm,
                            wm.t(),
                            accumulate,
                            par,
                        );
                        let out = MatMut::row_major(&mut got, n, oc);
                        matmul_bf16_prepared(out, xm, &p, &w, true, accumulate, par);
                        assert_eq!(got, want, "{kern:?} x·Wᵀ [{n},{oc},{c}]");

                        let (mut want, mut got) = (vec![0.5; n * c], vec![0.5; n * c]);
                        let dym = Mat::row_major(&dy, n, oc);
                        let out = MatMut::row_major(&mut want, n, c);
                        matmul_bf16(kern, out, dym, wm, accumulate, par);
                        let out = MatMut::row_major(&mut got, n, c);
                        matmul_bf16_prepared(out, dym, &p, &w, false, accumulate, par);
                        assert_eq!(got, want, "{kern:?} dY·W [{n},{oc},{c}]");
                    }
                }
            }
        }
    }
}
