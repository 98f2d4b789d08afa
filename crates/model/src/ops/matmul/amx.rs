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
//! row stride) and stored straight back (`tilestored`) where C's tile rows are whole cache
//! lines; otherwise, and for blocks that cross C's edge, through an aligned staging buffer.
//! Panels are 64-byte aligned too: a `tileloadd` whose rows straddle cache lines ran ~4×
//! slower. The tile configuration is loaded once per task, not per block.
//! Packing is in `amx_pack.rs` (AVX-512 vector packers, which every AMX CPU can run). Row
//! blocks split over rayon tasks; no task splits `k`, so results do not depend on the thread count.
//!
//! Tile instructions have no stable Rust intrinsics, so the kernel is inline assembly; Linux
//! hands a process AMX state only after `arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)`, asked
//! once in [`available`].

use super::amx_pack::{pack, pair_blocks, Panels, Side, T, TILE, TK};
use super::{Mat, MatMut};
use crate::ops::sendptr::SendPtr;
use rayon::prelude::*;

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
            "tileloadd tmm6, [{b0} + {s}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b1} + {s}*1]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {s}*1]",
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

/// A 32×32 f32 block of C, 64-byte aligned (each tile row one cache line).
#[repr(C, align(64))]
struct Stage([f32; 4 * T * T]);

/// How one 32×32 block of C is computed.
#[derive(Clone, Copy)]
enum Block {
    /// in C itself (C's tile rows are cache-line aligned)
    Direct,
    /// in [`Stage`], C copied in (when accumulating) and out unchanged
    Staged,
    /// in [`Stage`] from zero, then added to (or written into) the part of C there is
    Edge,
}

/// Per-thread packing scratch.
#[derive(Default)]
pub(super) struct Packs {
    a: Panels,
    b: Panels,
}

/// `C (+)= bf16(A)·bf16(B)` on AMX, on up to `threads` threads (`k > 0`; [`available`]).
/// `b_panels`: `B` already packed (`⌈n/32⌉·2` blocks of `⌈k/32⌉` tiles), else it is packed
/// from `b` here.
pub(super) fn product(
    packs: &mut Packs,
    mut c: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    b_panels: Option<&Panels>,
    accumulate: bool,
    threads: usize,
) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    let kb = k.div_ceil(TK);
    let (mb, nb) = (pair_blocks(m), pair_blocks(n));
    pack(&mut packs.a, Side::A, a, mb, kb, threads);
    let pb: &[u16] = match b_panels {
        Some(p) => {
            let p = p.values();
            assert!(p.len() >= nb * kb * TILE, "prepared B panels too short");
            p
        }
        None => {
            pack(&mut packs.b, Side::B, b, nb, kb, threads);
            packs.b.values()
        }
    };
    let pa = packs.a.values();
    let rs = c.row_stride();
    let cp = SendPtr(c.as_mut_ptr());
    // C's tile rows are whole cache lines only when C starts on one and its row stride is a
    // multiple of 16 floats; otherwise blocks go through an aligned buffer (same values: C
    // is copied in and out unchanged, so the result does not depend on C's address)
    let c_aligned = (c.as_mut_ptr() as usize).is_multiple_of(64) && rs.is_multiple_of(T);
    let row_pair = |ip: usize| {
        let mut stage = Stage([0.0; 4 * T * T]);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AMX is available (the caller's contract).
        unsafe {
            configure_tiles()
        };
        for jp in 0..nb / 2 {
            let panel = |v: &[u16], blk: usize| v[blk * kb * TILE..].as_ptr();
            let (i0, j0) = (2 * ip * T, 2 * jp * T);
            let (rows, cols) = ((2 * T).min(m - i0), (2 * T).min(n - j0));
            // row `r` of the block in C
            let c_row = |r: usize| {
                // SAFETY: row `i0 + r < m` and columns `j0..j0 + cols ≤ n` of C; row pairs are
                // disjoint between tasks.
                unsafe { std::slice::from_raw_parts_mut(cp.get().add((i0 + r) * rs + j0), cols) }
            };
            let block = if rows < 2 * T || cols < 2 * T {
                Block::Edge
            } else if c_aligned {
                Block::Direct
            } else {
                Block::Staged
            };
            let (dst, ld, load) = match block {
                // SAFETY: the 32×32 block at (i0, j0) lies inside C.
                Block::Direct => (unsafe { cp.get().add(i0 * rs + j0) }, rs, accumulate),
                Block::Staged => {
                    if accumulate {
                        for r in 0..rows {
                            stage.0[r * 2 * T..(r + 1) * 2 * T].copy_from_slice(c_row(r));
                        }
                    }
                    (stage.0.as_mut_ptr(), 2 * T, accumulate)
                }
                Block::Edge => (stage.0.as_mut_ptr(), 2 * T, false),
            };
            #[cfg(target_arch = "x86_64")]
            // SAFETY: tiles are configured; the panels hold `kb` tiles; `dst` is a 32×32 block
            // with row stride `ld` that only this task touches (C's or `stage`).
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
            for r in 0..rows {
                let src = &stage.0[r * 2 * T..r * 2 * T + cols];
                match block {
                    Block::Direct => break,
                    Block::Staged => c_row(r).copy_from_slice(src),
                    // an edge block was computed from zero: added to C (or written)
                    Block::Edge if accumulate => {
                        c_row(r).iter_mut().zip(src).for_each(|(d, s)| *d += s)
                    }
                    Block::Edge => c_row(r).copy_from_slice(src),
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
