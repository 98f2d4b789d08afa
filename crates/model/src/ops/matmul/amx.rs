//! The AMX bf16 product (Intel Sapphire Rapids and later): `tdpbf16ps` multiplies a 16×32 bf16
//! tile of A by a 32×16 bf16 tile of B into a 16×16 f32 tile — 16,384 FLOPs per instruction,
//! where an AVX-512 `vdpbf16ps` does 64. This is where PyTorch's bf16 speed on such CPUs comes
//! from (oneDNN); the AVX-512 BF16 dot kernel is no faster than f32 FMA there.
//!
//! Layout: A is packed per 16-row block into 1 KiB tiles `[16 rows][32 k]` (k-blocks
//! consecutive), B per 16-column block into 1 KiB tiles in AMX's pair layout
//! `[16 k-pairs][16 cols][2]`; both zero-padded, so edge tiles need no special case. A 2×2
//! block of C tiles (32×32) accumulates over all of k in tile registers `tmm0–3` (A in
//! `tmm4–5`, B in `tmm6–7`), starting from C itself when accumulating (`tileloadd` with C's
//! row stride) and stored straight back (`tilestored`); only blocks that cross C's edge go
//! through a staging buffer. The tile configuration is loaded once per task, not per block.
//! Packing is vectorised (AVX-512, which every AMX CPU has); an operand whose contiguous
//! dimension runs across blocks (`dYᵀ` and `X` in `dW = dYᵀ·X`, `W` in `dX = dY·W`) is packed
//! a k-tile at a time so that whole rows are read in order. Row blocks split over rayon
//! tasks; no task splits `k`, so results do not depend on the thread count.
//!
//! Tile instructions have no stable Rust intrinsics, so the kernel is inline assembly; Linux
//! hands a process AMX state only after `arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)`, asked
//! once in [`available`].

use super::bf16::bf16_bits;
use super::{Mat, MatMut};
use crate::ops::sendptr::SendPtr;
use rayon::prelude::*;

/// Tile edge: 16 rows, 16 f32 columns, 32 bf16 values of k.
const T: usize = 16;
/// k values per tile.
const TK: usize = 32;
/// bf16 values per packed tile (1 KiB).
const TILE: usize = T * TK;

/// Whether this CPU has AMX-TILE and AMX-BF16 and the OS granted this process tile state
/// (checked and requested once).
pub fn available() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            // leaf 7 is asked only where the CPU reports it (max leaf ≥ 7)
            if std::arch::x86_64::__cpuid(0).eax < 7 {
                return false;
            }
            let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
            let (amx_bf16, amx_tile) = (edx & (1 << 22) != 0, edx & (1 << 24) != 0);
            amx_bf16
                && amx_tile
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && request_tile_permission()
        })
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: true when the kernel grants it.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_permission() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain syscall with two integer arguments; it only changes this process's
    // permitted XSAVE features. rcx and r11 are clobbered by `syscall`.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

/// The 64-byte tile configuration `ldtilecfg` reads: palette 1, eight 16-row × 64-byte tiles.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// Element `(i, j)` of `m` without the bounds check of [`Mat::get`].
///
/// # Safety
/// `i < m.rows()`, `j < m.cols()`.
#[inline(always)]
unsafe fn at(m: &Mat<'_>, i: usize, j: usize) -> f32 {
    // SAFETY: in the view (the caller's contract), which is readable by construction.
    unsafe { *m.as_ptr().add(i * m.row_stride() + j * m.col_stride()) }
}

/// `len` contiguous floats of `m` from element `(i, j)` along its unit-stride dimension.
///
/// # Safety
/// The `len` elements from `(i, j)` along the dimension of stride 1 lie inside the view.
#[inline(always)]
unsafe fn run<'a>(m: &Mat<'a>, i: usize, j: usize, len: usize) -> &'a [f32] {
    // SAFETY: the caller's contract; the view is readable for `'a`.
    unsafe {
        let p = m.as_ptr().add(i * m.row_stride() + j * m.col_stride());
        std::slice::from_raw_parts(p, len)
    }
}

/// `dst[i] = bf16(src[i])`: a plain loop LLVM vectorises.
#[inline(always)]
fn cast_run(dst: &mut [u16], src: &[f32]) {
    dst.iter_mut()
        .zip(src)
        .for_each(|(d, &s)| *d = bf16_bits(s));
}

/// Fills `dst` with `blocks` panels of `panel` values each, `fill(block, panel)` per panel,
/// over the pool when `threads > 1`.
fn pack_panels(
    dst: &mut Vec<u16>,
    blocks: usize,
    panel: usize,
    threads: usize,
    fill: impl Fn(usize, &mut [u16]) + Sync,
) {
    dst.clear();
    dst.resize(blocks * panel, 0);
    if threads > 1 {
        dst.par_chunks_mut(panel)
            .enumerate()
            .for_each(|(b, p)| fill(b, p));
    } else {
        dst.chunks_mut(panel)
            .enumerate()
            .for_each(|(b, p)| fill(b, p));
    }
}

/// Packs `a [m,k]` as `mblocks` row blocks (an even count; blocks past `m` are zero) of `kb`
/// tiles `[16][32]`, reading along whichever of `a`'s dimensions is contiguous: a block at a
/// time when rows are contiguous, a k-tile at a time (whole contiguous columns) otherwise.
fn pack_a(dst: &mut Vec<u16>, a: Mat<'_>, mblocks: usize, kb: usize, threads: usize) {
    if a.row_stride() == 1 && a.col_stride() != 1 {
        return pack_by_k_tiles(dst, mblocks, kb, threads, |kt, tiles| {
            // SAFETY: AVX-512F/BW come with AMX ([`available`] checks them); `tiles` holds
            // `mblocks ≥ ⌈m/16⌉` blocks of `kb` tiles.
            unsafe { fill_a_columns(tiles, a, kt, kb) }
        });
    }
    pack_panels(dst, mblocks, kb * TILE, threads, |blk, panel| {
        // SAFETY: AVX-512F/BW come with AMX ([`available`] checks them).
        unsafe { fill_a(panel, a, blk) }
    });
}

/// Columns (of A) or rows (of B) cast per pass of the k-tile packers: a stack buffer.
const RUN: usize = 64;

/// A packing buffer shared by the tasks of [`pack_by_k_tiles`], each writing only the tiles
/// of its own k-tile.
#[derive(Clone, Copy)]
struct Tiles(*mut u16);
// SAFETY: tasks write disjoint tiles (see `pack_by_k_tiles`).
unsafe impl Send for Tiles {}
// SAFETY: as above.
unsafe impl Sync for Tiles {}

impl Tiles {
    /// The `len` values from offset `at` of tile `kt` of block `blk`.
    ///
    /// # Safety
    /// The tile lies in the buffer, `at + len ≤ TILE`, and only this task writes it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, blk: usize, kt: usize, kb: usize, at: usize, len: usize) -> &mut [u16] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add((blk * kb + kt) * TILE + at), len) }
    }
}

/// Zeroes `dst` to `blocks` panels of `kb` tiles and runs `fill(kt, tiles)` for every
/// k-tile, over the pool when `threads > 1`: for operands whose contiguous dimension runs
/// across blocks, so each task reads whole rows in order instead of short strided runs.
fn pack_by_k_tiles(
    dst: &mut Vec<u16>,
    blocks: usize,
    kb: usize,
    threads: usize,
    fill: impl Fn(usize, Tiles) + Sync,
) {
    dst.clear();
    dst.resize(blocks * kb * TILE, 0);
    let tiles = Tiles(dst.as_mut_ptr());
    if threads > 1 {
        (0..kb).into_par_iter().for_each(|kt| fill(kt, tiles));
    } else {
        (0..kb).for_each(|kt| fill(kt, tiles));
    }
}

/// k-tile `kt` of every row block of A for an A whose columns are contiguous
/// (`row_stride == 1`, e.g. `dYᵀ` in `dW = dYᵀ·X`): each column is cast in runs of [`RUN`]
/// rows and its values go 32 apart into the tiles' rows.
///
/// # Safety
/// The CPU has AVX-512F/BW; `tiles` holds `⌈m/16⌉` or more blocks of `kb` tiles; only this
/// task writes k-tile `kt`.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bw"))]
unsafe fn fill_a_columns(tiles: Tiles, a: Mat<'_>, kt: usize, kb: usize) {
    let (m, k) = (a.rows(), a.cols());
    let mut buf = [0u16; RUN];
    for p in kt * TK..k.min(kt * TK + TK) {
        for i0 in (0..m).step_by(RUN) {
            let len = RUN.min(m - i0);
            // SAFETY: rows `i0..i0 + len ≤ m` of column `p < k`.
            cast_run(&mut buf[..len], unsafe { run(&a, i0, p, len) });
            for (t, vals) in buf[..len].chunks(T).enumerate() {
                // SAFETY: block `(i0 + 16t)/16 < ⌈m/16⌉`; rows `r < 16` at column `p % 32`.
                let tile = unsafe { tiles.slice((i0 + t * T) / T, kt, kb, 0, TILE) };
                for (r, &v) in vals.iter().enumerate() {
                    tile[r * TK + p % TK] = v;
                }
            }
        }
    }
}

/// One row block of [`pack_a`] (`panel` zeroed, `kb` tiles) for an A with contiguous rows
/// (or no unit stride at all). Compiled for AVX-512, so the contiguous casts run 16 floats
/// per instruction.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bw"))]
unsafe fn fill_a(panel: &mut [u16], a: Mat<'_>, blk: usize) {
    let (m, k) = (a.rows(), a.cols());
    let (i0, rows) = (blk * T, T.min(m.saturating_sub(blk * T)));
    if a.col_stride() == 1 {
        // rows of A are contiguous: each row's k-run of a tile is 32 consecutive floats
        for r in 0..rows {
            // SAFETY: row `i0 + r < m`, columns `0..k`.
            let row = unsafe { run(&a, i0 + r, 0, k) };
            for (kt, src) in row.chunks(TK).enumerate() {
                let at = kt * TILE + r * TK;
                cast_run(&mut panel[at..at + src.len()], src);
            }
        }
    } else {
        for r in 0..rows {
            for p in 0..k {
                // SAFETY: `i0 + r < m` and `p < k`.
                let v = unsafe { at(&a, i0 + r, p) };
                panel[(p / TK) * TILE + r * TK + p % TK] = bf16_bits(v);
            }
        }
    }
}

/// Packs `b [k,n]` as `nblocks` column blocks (an even count) of `kb` tiles in pair layout
/// `[16 pairs][16 cols][2]`, reading along whichever dimension is contiguous: a k-tile at a
/// time (whole rows) when rows are contiguous, a block at a time otherwise.
fn pack_b(dst: &mut Vec<u16>, b: Mat<'_>, nblocks: usize, kb: usize, threads: usize) {
    if b.col_stride() == 1 {
        return pack_by_k_tiles(dst, nblocks, kb, threads, |kt, tiles| {
            // SAFETY: AVX-512F/BW come with AMX ([`available`] checks them); `tiles` holds
            // `nblocks ≥ ⌈n/16⌉` blocks of `kb` tiles.
            unsafe { fill_b_rows(tiles, b, kt, kb) }
        });
    }
    pack_panels(dst, nblocks, kb * TILE, threads, |blk, panel| {
        // SAFETY: AVX-512F/BW come with AMX ([`available`] checks them).
        unsafe { fill_b(panel, b, blk) }
    });
}

/// k-tile `kt` of every column block of B for a B whose rows are contiguous (`col_stride ==
/// 1`: `W` in `dX = dY·W`, `X` in `dW = dYᵀ·X`): rows `p` and `p + 1` are cast in runs of
/// [`RUN`] columns and interleaved into the tiles' pair rows.
///
/// # Safety
/// The CPU has AVX-512F/BW; `tiles` holds `⌈n/16⌉` or more blocks of `kb` tiles; only this
/// task writes k-tile `kt`.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bw"))]
unsafe fn fill_b_rows(tiles: Tiles, b: Mat<'_>, kt: usize, kb: usize) {
    let (k, n) = (b.rows(), b.cols());
    let (mut even, mut odd) = ([0u16; RUN], [0u16; RUN]);
    for p in (kt * TK..k.min(kt * TK + TK)).step_by(2) {
        for j0 in (0..n).step_by(RUN) {
            let len = RUN.min(n - j0);
            // SAFETY: row `p < k` (and `p + 1` when `< k`), columns `j0..j0 + len ≤ n`.
            cast_run(&mut even[..len], unsafe { run(&b, p, j0, len) });
            if p + 1 < k {
                cast_run(&mut odd[..len], unsafe { run(&b, p + 1, j0, len) });
            } else {
                odd.fill(0);
            }
            let pairs = even[..len].chunks(T).zip(odd[..len].chunks(T));
            for (t, (e, o)) in pairs.enumerate() {
                // SAFETY: block `(j0 + 16t)/16 < ⌈n/16⌉`; pair row `(p % 32)/2` holds 32
                // values, of which these columns fill the first `2·e.len()`.
                let out = unsafe {
                    tiles.slice((j0 + t * T) / T, kt, kb, (p % TK) / 2 * 2 * T, 2 * e.len())
                };
                for (pair, (&e, &o)) in out.chunks_exact_mut(2).zip(e.iter().zip(o)) {
                    pair[0] = e;
                    pair[1] = o;
                }
            }
        }
    }
}

/// Offset of `B(p, c)` in a column block's panel (pair layout).
#[inline(always)]
fn pair_index(p: usize, c: usize) -> usize {
    let w = p % TK;
    (p / TK) * TILE + (w / 2) * 2 * T + c * 2 + w % 2
}

/// One column block of [`pack_b`] (`panel` zeroed, `kb` tiles) for a B with contiguous
/// columns (or no unit stride at all), compiled for AVX-512.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bw"))]
unsafe fn fill_b(panel: &mut [u16], b: Mat<'_>, blk: usize) {
    let (k, n) = (b.rows(), b.cols());
    let (j0, cols) = (blk * T, T.min(n.saturating_sub(blk * T)));
    if b.row_stride() == 1 {
        // columns are contiguous: a column's 32 k-values are 16 (even, odd) pairs already in
        // order; they go 32 apart
        let mut col = [0u16; TK];
        for c in 0..cols {
            // SAFETY: column `j0 + c < n`, rows `0..k`.
            let column = unsafe { run(&b, 0, j0 + c, k) };
            for (kt, src) in column.chunks(TK).enumerate() {
                cast_run(&mut col[..src.len()], src);
                col[src.len()..].fill(0);
                let at = kt * TILE + c * 2;
                for (q, pair) in col.chunks_exact(2).enumerate() {
                    panel[at + q * 2 * T..at + q * 2 * T + 2].copy_from_slice(pair);
                }
            }
        }
    } else {
        for p in 0..k {
            for c in 0..cols {
                // SAFETY: `p < k` and `j0 + c < n`.
                let v = unsafe { at(&b, p, j0 + c) };
                panel[pair_index(p, c)] = bf16_bits(v);
            }
        }
    }
}

/// Loads the tile configuration ([`CONFIG`]) on this thread; [`release_tiles`] ends it.
///
/// # Safety
/// [`available`] is true.
#[cfg(target_arch = "x86_64")]
unsafe fn configure_tiles() {
    // SAFETY: AMX is available; `CONFIG` is a valid 64-byte palette-1 configuration.
    unsafe {
        std::arch::asm!(
            "ldtilecfg [{cfg}]",
            cfg = in(reg) &CONFIG as *const TileConfig,
            options(nostack, readonly),
        );
    }
}

/// Releases this thread's tile state (after [`configure_tiles`]).
///
/// # Safety
/// [`available`] is true.
#[cfg(target_arch = "x86_64")]
unsafe fn release_tiles() {
    // SAFETY: AMX is available; `tilerelease` only resets tile state.
    unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) }
}

/// A 32×32 block of C from A-panels (a0, a1) and B-panels (b0, b1) over `kb` k-tiles: the
/// four 16×16 f32 tiles at `c`, `c + 16`, `c + 16·ld`, `c + 16·ld + 16` (row stride `ld`
/// floats) start from C when `load`, from zero otherwise, and are stored back to C — no
/// staging buffer, C is read and written by the tile unit itself.
///
/// # Safety
/// [`configure_tiles`] ran on this thread; each panel holds `kb ≥ 1` packed tiles; the 32×32
/// floats at `c` with row stride `ld` are this caller's to read and write.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_2x2(
    a0: *const u16,
    a1: *const u16,
    b0: *const u16,
    b1: *const u16,
    kb: usize,
    c: *mut f32,
    ld: usize,
    load: bool,
) {
    let stride: usize = 64;
    let ld_bytes = ld * 4;
    let c1 = c.wrapping_add(T * ld);
    // SAFETY: the caller's contract; the loop reads `kb` 1 KiB tiles from each panel and
    // reads/writes the four C tiles.
    unsafe {
        std::arch::asm!(
            "test {load}, {load}",
            "jz 3f",
            "tileloadd tmm0, [{c0} + {ld}*1]",
            "tileloadd tmm1, [{c0} + {ld}*1 + 64]",
            "tileloadd tmm2, [{c1} + {ld}*1]",
            "tileloadd tmm3, [{c1} + {ld}*1 + 64]",
            "jmp 2f",
            "3:",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a0} + {s}*1]",
            "tileloadd tmm5, [{a1} + {s}*1]",
            "tileloadd tmm6, [{b0} + {s}*1]",
            "tileloadd tmm7, [{b1} + {s}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 1024",
            "add {a1}, 1024",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {kb}",
            "jnz 2b",
            "tilestored [{c0} + {ld}*1], tmm0",
            "tilestored [{c0} + {ld}*1 + 64], tmm1",
            "tilestored [{c1} + {ld}*1], tmm2",
            "tilestored [{c1} + {ld}*1 + 64], tmm3",
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b1 => _,
            kb = inout(reg) kb => _,
            c0 = in(reg) c,
            c1 = in(reg) c1,
            ld = in(reg) ld_bytes,
            s = in(reg) stride,
            load = in(reg) load as usize,
            options(nostack),
        );
    }
}

/// Per-thread packing scratch.
#[derive(Default)]
pub(super) struct Packs {
    a: Vec<u16>,
    b: Vec<u16>,
}

/// `C (+)= bf16(A)·bf16(B)` on AMX, on up to `threads` threads (`k > 0`; [`available`]).
pub(super) fn product(
    packs: &mut Packs,
    mut c: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    threads: usize,
) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    let kb = k.div_ceil(TK);
    let (mb, nb) = (m.div_ceil(2 * T) * 2, n.div_ceil(2 * T) * 2);
    pack_a(&mut packs.a, a, mb, kb, threads);
    pack_b(&mut packs.b, b, nb, kb, threads);
    let (pa, pb) = (&packs.a, &packs.b);
    let rs = c.row_stride();
    let cp = SendPtr(c.as_mut_ptr());
    let row_pair = |ip: usize| {
        // an edge block (past C's last row or column) goes through this buffer
        let mut edge = [0.0f32; 4 * T * T];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AMX is available (the caller's contract).
        unsafe {
            configure_tiles()
        };
        for jp in 0..nb / 2 {
            let panel = |v: &[u16], blk: usize| v[blk * kb * TILE..].as_ptr();
            let (i0, j0) = (2 * ip * T, 2 * jp * T);
            let inside = i0 + 2 * T <= m && j0 + 2 * T <= n;
            let (dst, ld, load) = if inside {
                // SAFETY: the 32×32 block at (i0, j0) lies inside C; row pairs are disjoint
                // between tasks.
                (unsafe { cp.get().add(i0 * rs + j0) }, rs, accumulate)
            } else {
                (edge.as_mut_ptr(), 2 * T, false)
            };
            #[cfg(target_arch = "x86_64")]
            // SAFETY: tiles are configured; the panels hold `kb` tiles; `dst` is a 32×32 block
            // with row stride `ld` that only this task touches (C's or `edge`).
            unsafe {
                block_2x2(
                    panel(pa, 2 * ip),
                    panel(pa, 2 * ip + 1),
                    panel(pb, 2 * jp),
                    panel(pb, 2 * jp + 1),
                    kb,
                    dst,
                    ld,
                    load,
                );
            }
            if !inside {
                for r in 0..(2 * T).min(m - i0) {
                    let cols = (2 * T).min(n - j0);
                    // SAFETY: row `i0 + r < m` and columns `j0..j0 + cols ≤ n` of C; row
                    // pairs are disjoint between tasks.
                    let row = unsafe {
                        std::slice::from_raw_parts_mut(cp.get().add((i0 + r) * rs + j0), cols)
                    };
                    let src = &edge[r * 2 * T..r * 2 * T + cols];
                    if accumulate {
                        row.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    } else {
                        row.copy_from_slice(src);
                    }
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        unsafe {
            release_tiles()
        };
    };
    if threads > 1 && mb / 2 > 1 {
        (0..mb / 2).into_par_iter().for_each(row_pair);
    } else {
        (0..mb / 2).for_each(row_pair);
    }
}
