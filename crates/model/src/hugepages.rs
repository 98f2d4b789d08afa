//! [`HugePageAlloc`]: the system allocator, asking Linux for transparent huge pages on large
//! allocations.
//!
//! Training streams activations, packed operands and parameters far larger than the TLB
//! covers with 4 KiB pages, and in a virtual machine every TLB miss is a two-level page walk.
//! Most Linux systems ship transparent huge pages in `madvise` mode (only regions that ask get
//! them), so a binary that wants them installs this as its global allocator:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: lmforge_model::hugepages::HugePageAlloc = lmforge_model::hugepages::HugePageAlloc;
//! # fn main() {}
//! ```
//!
//! Every call goes to [`System`]; allocations of [`THRESHOLD`] bytes or more then get
//! `madvise(MADV_HUGEPAGE)` on the 2 MiB-aligned part of their range. Advice only: where the
//! kernel refuses it (or on other systems) nothing changes. Measured in
//! `docs/performance.md` ("Huge pages").

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are advised (smaller ones hold no whole huge page).
pub const THRESHOLD: usize = 4 << 20;

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct HugePageAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments and returns its
// result unchanged; `advise` only gives advice on memory the call just returned.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        p
    }
}

/// `madvise(MADV_HUGEPAGE)` on the 2 MiB-aligned pages inside `[p, p + size)`.
fn advise(p: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if !p.is_null() && size >= THRESHOLD {
        const HUGE: usize = 2 << 20;
        let start = (p as usize).next_multiple_of(HUGE);
        let end = (p as usize + size) / HUGE * HUGE;
        if end > start {
            // SAFETY: `[start, end)` lies inside the allocation just made (page-aligned, as
            // madvise requires); MADV_HUGEPAGE changes no contents. The result is advice only.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, size);
}
