//! The AMX bf16 product (Intel Sapphire Rapids and later): `tdpbf16ps` multiplies a 16×32 bf16
//! tile of A by a 32×16 bf16 tile of B into a 16×16 f32 tile — 16,384 FLOPs per instruction,
//! where an AVX-512 `vdpbf16ps` does 64. This is where PyTorch's bf16 speed on such CPUs comes
//! from (oneDNN); the AVX-512 BF16 dot kernel is no faster than f32 FMA there.
//!
//! Layout: A is packed per 16-row block into 1 KiB tiles `[16 rows][32 k]` (k-blocks
//! consecutive), B per 16-column block into 1 KiB tiles in AMX's pair layout
//! `[16 k-pairs][16 cols][2]`; both zero-padded, so edge tiles need no special case. A 2×2
//! block of C tiles (32×32) accumulates over all of k in tile registers `tmm0–3` (A in
//! `tmm4–5`, B in `tmm6–7`), then is added into C. Row blocks split over rayon tasks; no task
//! splits `k`, so results do not depend on the thread count.
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
            amx_bf16 && amx_tile && request_tile_permission()
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
/// tiles `[16][32]`, reading along whichever of `a`'s dimensions is contiguous.
fn pack_a(dst: &mut Vec<u16>, a: Mat<'_>, mblocks: usize, kb: usize, threads: usize) {
    let (m, k) = (a.rows(), a.cols());
    pack_panels(dst, mblocks, kb * TILE, threads, |blk, panel| {
        let rows = T.min(m.saturating_sub(blk * T));
        let put = |panel: &mut [u16], r: usize, p: usize| {
            // SAFETY: `blk·16 + r < m` and `p < k`.
            let v = unsafe { at(&a, blk * T + r, p) };
            panel[(p / TK) * TILE + r * TK + p % TK] = bf16_bits(v);
        };
        if a.col_stride() == 1 {
            (0..rows).for_each(|r| (0..k).for_each(|p| put(panel, r, p)));
        } else {
            (0..k).for_each(|p| (0..rows).for_each(|r| put(panel, r, p)));
        }
    });
}

/// Packs `b [k,n]` as `nblocks` column blocks (an even count) of `kb` tiles in pair layout
/// `[16 pairs][16 cols][2]`, reading along whichever dimension is contiguous.
fn pack_b(dst: &mut Vec<u16>, b: Mat<'_>, nblocks: usize, kb: usize, threads: usize) {
    let (k, n) = (b.rows(), b.cols());
    pack_panels(dst, nblocks, kb * TILE, threads, |blk, panel| {
        let cols = T.min(n.saturating_sub(blk * T));
        let put = |panel: &mut [u16], p: usize, c: usize| {
            // SAFETY: `p < k` and `blk·16 + c < n`.
            let v = unsafe { at(&b, p, blk * T + c) };
            let w = p % TK;
            panel[(p / TK) * TILE + (w / 2) * 2 * T + c * 2 + w % 2] = bf16_bits(v);
        };
        if b.col_stride() == 1 {
            (0..k).for_each(|p| (0..cols).for_each(|c| put(panel, p, c)));
        } else {
            (0..cols).for_each(|c| (0..k).for_each(|p| put(panel, p, c)));
        }
    });
}

/// `out[4][16][16] = A-panels (a0, a1) · B-panels (b0, b1)` over `kb` k-tiles, the 2×2 C
/// tiles in the order (a0,b0), (a0,b1), (a1,b0), (a1,b1).
///
/// # Safety
/// [`available`] is true; each panel holds `kb` packed tiles; `out` has 1024 floats.
#[cfg(target_arch = "x86_64")]
unsafe fn block_2x2(
    a0: *const u16,
    a1: *const u16,
    b0: *const u16,
    b1: *const u16,
    kb: usize,
    out: *mut f32,
) {
    let stride: usize = 64;
    // SAFETY: the caller's contract; the loop reads `kb` 1 KiB tiles from each panel and
    // writes four 1 KiB f32 tiles to `out`; tile state is configured here and released.
    unsafe {
        std::arch::asm!(
            "ldtilecfg [{cfg}]",
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
            "tilestored [{o} + {s}*1], tmm0",
            "add {o}, 1024",
            "tilestored [{o} + {s}*1], tmm1",
            "add {o}, 1024",
            "tilestored [{o} + {s}*1], tmm2",
            "add {o}, 1024",
            "tilestored [{o} + {s}*1], tmm3",
            "tilerelease",
            cfg = in(reg) &CONFIG as *const TileConfig,
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b1 => _,
            kb = inout(reg) kb => _,
            o = inout(reg) out => _,
            s = in(reg) stride,
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
        let mut out = [0.0f32; 4 * T * T];
        for jp in 0..nb / 2 {
            let panel = |v: &[u16], blk: usize| v[blk * kb * TILE..].as_ptr();
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AMX is available (the caller's contract); the panels hold `kb` tiles.
            unsafe {
                block_2x2(
                    panel(pa, 2 * ip),
                    panel(pa, 2 * ip + 1),
                    panel(pb, 2 * jp),
                    panel(pb, 2 * jp + 1),
                    kb,
                    out.as_mut_ptr(),
                );
            }
            for (t, tile) in out.chunks(T * T).enumerate() {
                let (i0, j0) = ((2 * ip + t / 2) * T, (2 * jp + t % 2) * T);
                for r in 0..T.min(m.saturating_sub(i0)) {
                    let cols = T.min(n.saturating_sub(j0));
                    // SAFETY: row `i0 + r < m` and columns `j0..j0 + cols ≤ n` of C; row
                    // pairs are disjoint between tasks.
                    let row = unsafe {
                        std::slice::from_raw_parts_mut(cp.get().add((i0 + r) * rs + j0), cols)
                    };
                    let src = &tile[r * T..r * T + cols];
                    if accumulate {
                        row.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    } else {
                        row.copy_from_slice(src);
                    }
                }
            }
        }
    };
    if threads > 1 && mb / 2 > 1 {
        (0..mb / 2).into_par_iter().for_each(row_pair);
    } else {
        (0..mb / 2).for_each(row_pair);
    }
}
