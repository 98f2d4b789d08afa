//! Packing f32 operands into AMX bf16 tiles (the layouts `amx.rs` multiplies).
//!
//! - A `[m,k]`: per 16-row block, `kb` tiles `[16 rows][32 k]` (a row's 32 k-values contiguous).
//! - B `[k,n]`: per 16-column block, `kb` tiles in pair layout `[16 k-pairs][16 cols][2]`.
//!
//! Blocks are laid out one after another, a block's `kb` tiles consecutive; values past `m`,
//! `n` or `k` are zero. Every tile is written whole (padding included), so the buffer is never
//! cleared first. Rounding is bf16 round-to-nearest-even with NaN kept quiet, bit for bit
//! [`bf16_bits`].
//!
//! On x86-64 with AVX-512 (which every AMX CPU has) a tile is made from 16-float vector loads:
//! two rows `p, p+1` of an operand become one vector of 16 `(even, odd)` pairs by integer
//! rounding, a shift and a mask, and where a tile needs the other orientation a 16×16 transpose
//! of 32-bit pairs (four rounds of shuffles) turns them around in registers. The scalar
//! [`tile_scalar`] is the fallback for views with no unit stride and the reference the
//! vector packers are tested against.

use super::bf16::bf16_bits;
use super::Mat;
use crate::ops::sendptr::SendPtr;
use rayon::prelude::*;

/// Tile edge: 16 rows, 16 f32 columns, 32 bf16 values of k.
pub(super) const T: usize = 16;
/// k values per tile.
pub(super) const TK: usize = 32;
/// bf16 values per packed tile (1 KiB).
pub(super) const TILE: usize = T * TK;

/// One packed tile (1 KiB), aligned to 64 bytes so each of its 16 rows is one cache line:
/// `tileloadd` of rows that straddle two lines ran ~4× slower (docs/performance.md).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(super) struct Tile([u16; TILE]);

/// Packed panels: tiles one after another, each 64-byte aligned.
#[derive(Debug, Default)]
pub(super) struct Panels(Vec<Tile>);

impl Panels {
    /// Grows to at least `tiles` tiles (never shrinks; new tiles are zero).
    fn grow(&mut self, tiles: usize) {
        if self.0.len() < tiles {
            self.0.resize(tiles, Tile([0; TILE]));
        }
    }

    /// The tiles' values, `TILE` per tile.
    pub(super) fn values(&self) -> &[u16] {
        // SAFETY: `Tile` is `repr(C)` over `[u16; TILE]` with no padding (1 KiB is a multiple
        // of its 64-byte alignment), so the tiles are `len·TILE` contiguous `u16`s.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u16>(), self.0.len() * TILE) }
    }

    /// [`values`](Self::values), writable.
    fn values_mut(&mut self) -> &mut [u16] {
        // SAFETY: as in `values`, and `&mut self` makes the view exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u16>(), self.0.len() * TILE)
        }
    }
}

/// Blocks of 16 for `n` rows or columns, rounded up to a pair (the tile kernel computes 32×32
/// blocks of C).
pub(super) fn pair_blocks(n: usize) -> usize {
    n.div_ceil(2 * T) * 2
}

/// Which operand a tile belongs to (they differ in layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// `[16 rows][32 k]`.
    A,
    /// `[16 k-pairs][16 cols][2]`.
    B,
}

/// Packs `x` (A `[m,k]` or B `[k,n]`) into `blocks` blocks of `kb` tiles, on up to `threads`
/// threads. The tile order of the work follows the operand's contiguous dimension, so each task
/// reads whole runs of memory in order.
pub(super) fn pack(
    dst: &mut Panels,
    side: Side,
    x: Mat<'_>,
    blocks: usize,
    kb: usize,
    threads: usize,
) {
    dst.grow(blocks * kb);
    let out = SendPtr(dst.values_mut().as_mut_ptr());
    // `true`: one task per k-tile (across blocks); `false`: one task per block (across k)
    let by_k_tile = match side {
        Side::A => x.col_stride() != 1 && x.row_stride() == 1,
        Side::B => x.col_stride() == 1,
    };
    let tile = |blk: usize, kt: usize| {
        // SAFETY: tile `(blk, kt)` lies in `dst` (grown to `blocks·kb` tiles) and only this
        // call writes it.
        let t = unsafe { &mut *(out.get().add((blk * kb + kt) * TILE) as *mut [u16; TILE]) };
        pack_tile(side, x, blk, kt, t);
    };
    let (outer, inner) = if by_k_tile {
        (kb, blocks)
    } else {
        (blocks, kb)
    };
    let task = |o: usize| {
        for i in 0..inner {
            if by_k_tile {
                tile(i, o)
            } else {
                tile(o, i)
            }
        }
    };
    if threads > 1 && outer > 1 {
        (0..outer).into_par_iter().for_each(task);
    } else {
        (0..outer).for_each(task);
    }
}

/// Tile `(blk, kt)` of `x` on the fastest packer this CPU has.
fn pack_tile(side: Side, x: Mat<'_>, blk: usize, kt: usize, out: &mut [u16; TILE]) {
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: AVX-512F/BW are present (checked just above).
        let done = unsafe { simd::tile(side, x, blk, kt, out) };
        if done {
            return;
        }
    }
    tile_scalar(side, x, blk, kt, out);
}

/// Tile `(blk, kt)` of `x`, one element at a time (any strides).
pub(super) fn tile_scalar(side: Side, x: Mat<'_>, blk: usize, kt: usize, out: &mut [u16; TILE]) {
    for (at, v) in out.iter_mut().enumerate() {
        // (row, col) of `x` that slot `at` holds
        let (i, j) = match side {
            Side::A => (blk * T + at / TK, kt * TK + at % TK),
            Side::B => (
                kt * TK + (at / (2 * T)) * 2 + at % 2,
                blk * T + (at % (2 * T)) / 2,
            ),
        };
        *v = if i < x.rows() && j < x.cols() {
            bf16_bits(x.get(i, j))
        } else {
            0
        };
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! The AVX-512 tile packers.

    use super::{Mat, Side, T, TILE, TK};
    use std::arch::x86_64::*;

    /// Whether AVX-512F and AVX-512BW are present.
    pub(super) fn available() -> bool {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
        })
    }

    /// Tile `(blk, kt)` of `x` when one of its strides is 1 (`false`: nothing written).
    ///
    /// # Safety
    /// The CPU has AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn tile(
        side: Side,
        x: Mat<'_>,
        blk: usize,
        kt: usize,
        out: &mut [u16; TILE],
    ) -> bool {
        let (along_k, across_k) = match side {
            Side::A => (x.col_stride() == 1, x.row_stride() == 1),
            Side::B => (x.row_stride() == 1, x.col_stride() == 1),
        };
        let o = out.as_mut_ptr();
        // SAFETY: every load below is masked to the view (see `Runs`); `out` is 1 KiB.
        unsafe {
            match (side, along_k, across_k) {
                // a row of A holds its k-values contiguously: a tile row is two loads
                (Side::A, true, _) => a_rows(Runs::along(x, false, blk, kt), o),
                // A's columns are contiguous (`dYᵀ`): pairs of columns, then a transpose
                (Side::A, false, true) => {
                    store_transposed(pairs(Runs::across(x, false, blk, kt)), o)
                }
                // B's rows are contiguous: pairs of rows are the tile's pair rows already
                (Side::B, _, true) => store_rows(pairs(Runs::across(x, true, blk, kt)), o),
                // B's columns are contiguous (`Wᵀ`): a column's k-run is its pairs, transposed
                (Side::B, true, false) => b_columns(Runs::along(x, true, blk, kt), o),
                _ => return false,
            }
        }
        true
    }

    /// The 16-float runs a tile reads: `lines` lines (rows or columns of the view) starting at
    /// `first`, each read from offset `start` along its contiguous dimension, `len` values
    /// valid per line (the rest zero), `valid` lines present (the rest zero).
    struct Runs {
        base: *const f32,
        /// floats between consecutive lines
        line_stride: usize,
        valid: usize,
        len: usize,
    }

    impl Runs {
        /// Lines that run along k: A's rows `blk·16..` (`b == false`) or B's columns (`b`),
        /// each read from k-offset `kt·32` (32 values: two loads).
        fn along(x: Mat<'_>, b: bool, blk: usize, kt: usize) -> Runs {
            let (lines, k, stride) = if b {
                (x.cols(), x.rows(), x.col_stride())
            } else {
                (x.rows(), x.cols(), x.row_stride())
            };
            Runs::new(x, lines, stride, blk * T, k, kt * TK, b)
        }

        /// Lines that run across k: the k-lines `kt·32..` (A's columns or B's rows), each read
        /// from offset `blk·16` of its 16 values.
        fn across(x: Mat<'_>, b: bool, blk: usize, kt: usize) -> Runs {
            let (lines, width, stride) = if b {
                (x.rows(), x.cols(), x.row_stride())
            } else {
                (x.cols(), x.rows(), x.col_stride())
            };
            Runs::new(x, lines, stride, kt * TK, width, blk * T, !b)
        }

        #[allow(clippy::too_many_arguments)]
        fn new(
            x: Mat<'_>,
            lines: usize,
            line_stride: usize,
            first: usize,
            width: usize,
            start: usize,
            lines_are_cols: bool,
        ) -> Runs {
            let valid = lines.saturating_sub(first);
            let len = width.saturating_sub(start);
            let (i, j) = if lines_are_cols {
                (start, first)
            } else {
                (first, start)
            };
            // a pointer into the view only when something is read through it
            let base = if valid > 0 && len > 0 {
                x.as_ptr()
                    .wrapping_add(i * x.row_stride() + j * x.col_stride())
            } else {
                std::ptr::null()
            };
            Runs {
                base,
                line_stride,
                valid,
                len,
            }
        }

        /// Values `16·part..16·part + 16` of line `l` (zero past the view).
        ///
        /// # Safety
        /// AVX-512F; the view holds `len` values from `base` along every `valid` line.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw")]
        unsafe fn load(&self, l: usize, part: usize) -> __m512 {
            let from = part * T;
            if l >= self.valid || from >= self.len {
                return _mm512_setzero_ps();
            }
            let n = (self.len - from).min(T);
            let mask: __mmask16 = if n == T { 0xffff } else { (1u16 << n) - 1 };
            // SAFETY: the caller's contract; masked-off lanes are not read.
            unsafe { _mm512_maskz_loadu_ps(mask, self.base.add(l * self.line_stride + from)) }
        }
    }

    /// `v`'s bits rounded so that the upper 16 of each lane are its bf16 (nearest even; NaN
    /// quieted), as [`bf16_bits`](super::bf16_bits).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn rounded(v: __m512) -> __m512i {
        let b = _mm512_castps_si512(v);
        let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
        let r = _mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(b, _mm512_set1_epi32(0x0040_0000)))
    }

    /// 16 `(bf16(even[i]), bf16(odd[i]))` pairs, one per 32-bit lane (even in the low half).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn pair(even: __m512, odd: __m512) -> __m512i {
        let lo = _mm512_srli_epi32::<16>(rounded(even));
        let hi = _mm512_and_si512(rounded(odd), _mm512_set1_epi32(0xffff_0000u32 as i32));
        _mm512_or_si512(lo, hi)
    }

    /// 16 bf16 of `v`, in order.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn narrow(v: __m512) -> __m256i {
        _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(rounded(v)))
    }

    /// The 16 pair vectors of a k-tile: lines `2q, 2q+1` of `r`, values 0..16.
    ///
    /// # Safety
    /// As [`Runs::load`].
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn pairs(r: Runs) -> [__m512i; T] {
        // SAFETY: the caller's contract.
        std::array::from_fn(|q| unsafe { pair(r.load(2 * q, 0), r.load(2 * q + 1, 0)) })
    }

    /// A's tile from its 16 rows (lines of 32 k-values): row `i` = its values, rounded.
    ///
    /// # Safety
    /// As [`Runs::load`]; `out` holds a tile.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn a_rows(r: Runs, out: *mut u16) {
        for i in 0..T {
            // SAFETY: the caller's contract; row `i` of the tile is 32 u16 at `out + 32i`.
            unsafe {
                let (lo, hi) = (narrow(r.load(i, 0)), narrow(r.load(i, 1)));
                let row = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
                _mm512_storeu_si512(out.add(i * TK) as *mut __m512i, row);
            }
        }
    }

    /// B's tile from its 16 columns (lines of 32 k-values): column `c`'s 32 values are its 16
    /// k-pairs in order; transposed, pair row `q` holds pair `q` of every column.
    ///
    /// # Safety
    /// As [`Runs::load`]; `out` holds a tile.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn b_columns(r: Runs, out: *mut u16) {
        let cols: [__m512i; T] = std::array::from_fn(|c| {
            // SAFETY: the caller's contract.
            let (lo, hi) = unsafe { (narrow(r.load(c, 0)), narrow(r.load(c, 1))) };
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
        });
        // SAFETY: `out` holds a tile (the caller's contract).
        unsafe { store_transposed(cols, out) }
    }

    /// Stores vector `r` as the tile's 64-byte row `r`.
    ///
    /// # Safety
    /// `out` holds a tile.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn store_rows(rows: [__m512i; T], out: *mut u16) {
        for (i, v) in rows.iter().enumerate() {
            // SAFETY: row `i` is 64 bytes at `out + 32i` (u16s).
            unsafe { _mm512_storeu_si512(out.add(i * TK) as *mut __m512i, *v) };
        }
    }

    /// Stores the transpose of the 16×16 matrix of 32-bit lanes `cols` (vector `q` = column
    /// `q`) as the tile's 16 rows.
    ///
    /// # Safety
    /// `out` holds a tile.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn store_transposed(cols: [__m512i; T], out: *mut u16) {
        // SAFETY: as `store_rows`.
        unsafe { store_rows(transpose(cols), out) }
    }

    /// The transpose of a 16×16 matrix of 32-bit lanes (vector `i` = row `i`): interleave
    /// 32-bit lanes of row pairs, then 64-bit lanes, then 128-bit quarters twice.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn transpose(r: [__m512i; T]) -> [__m512i; T] {
        let t: [__m512i; T] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_epi32(a, b)
            } else {
                _mm512_unpackhi_epi32(a, b)
            }
        });
        // rows 4g + {0,1,2,3} from t[4g + {0,2}] and t[4g + {1,3}]
        let u: [__m512i; T] = std::array::from_fn(|i| {
            let g = i & !3;
            let (a, b) = (t[g + (i & 2) / 2], t[g + 2 + (i & 2) / 2]);
            if i % 2 == 0 {
                _mm512_unpacklo_epi64(a, b)
            } else {
                _mm512_unpackhi_epi64(a, b)
            }
        });
        let v: [__m512i; T] = std::array::from_fn(|i| {
            let g = i & 8;
            let (a, b) = (u[g + i % 4], u[g + 4 + i % 4]);
            if i & 4 == 0 {
                _mm512_shuffle_i32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_i32x4::<0xdd>(a, b)
            }
        });
        std::array::from_fn(|i| {
            let (a, b) = (v[i % 8], v[8 + i % 8]);
            if i < 8 {
                _mm512_shuffle_i32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_i32x4::<0xdd>(a, b)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::matmul::tests::values;

    /// Views of `data` in every stride pattern the packers distinguish.
    fn views(data: &[f32], rows: usize, cols: usize) -> Vec<Mat<'_>> {
        vec![
            Mat::new(data, rows, cols, cols + 3, 1),
            Mat::new(data, rows, cols, 1, rows + 5),
            Mat::new(data, rows, cols, 2 * cols + 1, 2),
        ]
    }

    #[test]
    fn vector_packers_equal_the_scalar_one_bit_for_bit() {
        for (rows, cols) in [(1, 1), (16, 32), (33, 70), (47, 19), (5, 97), (64, 64)] {
            let mut data = values(3 * rows * cols + 200, 17, 31);
            // specials: NaN (signalling and quiet), ±inf, denormals, ties, -0
            let specials = [
                f32::from_bits(0x7f80_0001),
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::from_bits(1),
                f32::from_bits(0x0040_8000),
                1.0 + 1.0 / 256.0,
                -0.0,
            ];
            for (d, s) in data.iter_mut().step_by(7).zip(specials.iter().cycle()) {
                *d = *s;
            }
            for x in views(&data, rows, cols) {
                for side in [Side::A, Side::B] {
                    let (kdim, wide) = match side {
                        Side::A => (cols, rows),
                        Side::B => (rows, cols),
                    };
                    let (blocks, kb) = (wide.div_ceil(T) + 1, kdim.div_ceil(TK));
                    for threads in [1, 2] {
                        let mut panels = Panels::default();
                        panels.grow(blocks * kb + 1);
                        panels.values_mut().fill(0xdead);
                        pack(&mut panels, side, x, blocks, kb, threads);
                        let got = panels.values();
                        assert_eq!(got.as_ptr() as usize % 64, 0, "tiles 64-byte aligned");
                        for blk in 0..blocks {
                            for kt in 0..kb {
                                let mut want = [0u16; TILE];
                                tile_scalar(side, x, blk, kt, &mut want);
                                let at = (blk * kb + kt) * TILE;
                                assert_eq!(
                                    &got[at..at + TILE],
                                    &want[..],
                                    "{side:?} {rows}x{cols} strides ({}, {}) tile ({blk}, {kt})",
                                    x.row_stride(),
                                    x.col_stride()
                                );
                            }
                        }
                        assert!(got[blocks * kb * TILE..].iter().all(|&v| v == 0xdead));
                    }
                }
            }
        }
    }

    #[test]
    fn scalar_tile_layouts() {
        // A `[16 rows][32 k]`; B `[16 pairs][16 cols][2]`
        let data: Vec<f32> = (0..64 * 64).map(|i| i as f32).collect();
        let x = Mat::row_major(&data, 64, 64);
        let mut t = [0u16; TILE];
        tile_scalar(Side::A, x, 1, 1, &mut t);
        assert_eq!(t[3 * TK + 5], bf16_bits(x.get(16 + 3, 32 + 5)));
        tile_scalar(Side::B, x, 1, 1, &mut t);
        // k-pair 3, column 5, odd half: B(32 + 7, 16 + 5)
        assert_eq!(t[3 * 2 * T + 5 * 2 + 1], bf16_bits(x.get(32 + 7, 16 + 5)));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn transpose_turns_rows_into_columns() {
        if !simd::available() {
            return;
        }
        use std::arch::x86_64::*;
        let m: Vec<i32> = (0..256).collect();
        // SAFETY: AVX-512F is present (checked above); loads/stores of 16 i32 within `m`/`out`.
        unsafe {
            let rows: [__m512i; T] =
                std::array::from_fn(|i| _mm512_loadu_si512(m[16 * i..].as_ptr() as *const _));
            let t = simd::transpose(rows);
            let mut out = vec![0i32; 256];
            for (i, v) in t.iter().enumerate() {
                _mm512_storeu_si512(out[16 * i..].as_mut_ptr() as *mut _, *v);
            }
            for i in 0..16 {
                for j in 0..16 {
                    assert_eq!(out[16 * i + j], m[16 * j + i], "({i}, {j})");
                }
            }
        }
    }
}
