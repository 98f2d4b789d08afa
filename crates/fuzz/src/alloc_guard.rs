//! A global allocator that enforces a memory cap, so "unbounded allocation" is a finding
//! with a replayable case instead of the machine swapping or the OS killing the fuzzer.
//!
//! Every allocation goes to the system allocator; this wrapper counts the live bytes and
//! refuses (aborts, after printing which case was running) any allocation that would take
//! the live total above [`set_cap`]. Aborting is the only option: an allocator must not
//! unwind, and a loader that asks for 2^60 bytes has a bug whether or not it would fail.
//! The case being run is published by the engine through [`set_current`] as plain atomics,
//! because the allocator itself cannot allocate to format a message.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// The capped, counting allocator (installed as `#[global_allocator]` by the crate).
pub struct CappedAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Default cap: 4 GiB live. Loaders under fuzzing hold a few MiB.
static CAP: AtomicUsize = AtomicUsize::new(4 << 30);
static CURRENT_TARGET: AtomicPtr<&'static str> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_CASE: AtomicU64 = AtomicU64::new(0);

/// Sets the most bytes that may be live at once in the whole process.
pub fn set_cap(bytes: usize) {
    CAP.store(bytes, Ordering::Relaxed);
}

/// Bytes live now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Resets the peak to the current live total and returns the previous peak.
pub fn take_peak() -> usize {
    PEAK.swap(live(), Ordering::Relaxed)
}

/// Publishes the running target (a name stored in a `static`) and case seed for the
/// over-cap message.
pub fn set_current(target: &'static &'static str, case_seed: u64) {
    CURRENT_TARGET.store(target as *const &str as *mut &str, Ordering::Relaxed);
    CURRENT_CASE.store(case_seed, Ordering::Relaxed);
}

fn current_target() -> &'static str {
    let ptr = CURRENT_TARGET.load(Ordering::Relaxed);
    // SAFETY: the pointer is null or came from a `&'static &'static str` in `set_current`.
    unsafe { ptr.as_ref() }.copied().unwrap_or("(none)")
}

/// Prints the over-cap report without allocating, then aborts.
fn over_cap(requested: usize) -> ! {
    let mut buf = [0u8; 512];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(
        cur,
        "\nlmforge-fuzz: UNBOUNDED ALLOCATION: target {} case {:#018x} asked for {} bytes with {} live (cap {}).\n\
         Replay: lmforge-fuzz {} --replay {:#018x}\n",
        current_target(),
        CURRENT_CASE.load(Ordering::Relaxed),
        requested,
        live(),
        CAP.load(Ordering::Relaxed),
        current_target(),
        CURRENT_CASE.load(Ordering::Relaxed),
    );
    let n = cur.position() as usize;
    let _ = std::io::stderr().write_all(&buf[..n]);
    std::process::abort()
}

fn reserve(size: usize) {
    let before = LIVE.fetch_add(size, Ordering::Relaxed);
    let now = before.saturating_add(size);
    if now > CAP.load(Ordering::Relaxed) {
        LIVE.fetch_sub(size, Ordering::Relaxed);
        over_cap(size);
    }
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's layout unchanged; the
// counters do not affect the memory handed out.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        reserve(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        reserve(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            reserve(new_size - layout.size());
        }
        let p = System.realloc(ptr, layout, new_size);
        if new_size < layout.size() {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        p
    }
}
