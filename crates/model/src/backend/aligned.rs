//! [`AlignedBuf`], the CPU backend's buffer: `f32`s whose first element starts a cache line.
//!
//! Why: the AMX kernel stores its 16×16 f32 tiles straight into C when C's rows start on
//! 64-byte boundaries, and otherwise goes through a staging block and copies (`amx.rs`).
//! A `Vec<f32>` is only as aligned as `malloc` makes it (16 bytes; a large block sits 16
//! bytes past a page boundary), so most activations missed the direct path (measurements in
//! `docs/performance.md`).
//!
//! How: one zeroed allocation at the allocator's natural alignment, 64 bytes longer than
//! the floats, which start at its first cache line. Asking the allocator for 64-byte
//! alignment instead would make it write the zeros itself (`std`'s `System` only uses
//! `calloc` up to 16), touching every page at once — and a model's gradient buffer, which
//! generation never touches, would then cost resident memory.

use std::alloc::Layout;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Bytes per cache line.
const LINE: usize = 64;
/// The alignment asked of the allocator (`calloc`'s, so zeroing stays lazy).
const ALLOC_ALIGN: usize = 16;

/// A fixed-length `f32` buffer whose data starts on a 64-byte boundary; it derefs to `[f32]`.
pub struct AlignedBuf {
    /// the allocation, made with `layout`; a dangling, 64-aligned pointer when `layout` is
    /// `None` (no floats)
    base: NonNull<u8>,
    /// bytes from `base` to the first float (< 64)
    offset: usize,
    len: usize,
    layout: Option<Layout>,
}

// SAFETY: the buffer owns its memory exclusively, like a `Box<[f32]>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads, through `&[f32]`.
unsafe impl Sync for AlignedBuf {}

/// A 64-aligned, non-null address for empty buffers.
#[repr(C, align(64))]
struct Line([u8; LINE]);

impl AlignedBuf {
    /// `len` zeros. Panics if `len` floats do not fit the address space; aborts (as `Vec`
    /// does) if the allocator has no memory.
    pub fn zeros(len: usize) -> Self {
        if len == 0 {
            return Self {
                base: NonNull::<Line>::dangling().cast(),
                offset: 0,
                len,
                layout: None,
            };
        }
        let layout = len
            .checked_mul(size_of::<f32>())
            .and_then(|b| b.checked_add(LINE))
            .and_then(|b| Layout::from_size_align(b, ALLOC_ALIGN).ok());
        let Some(layout) = layout else {
            panic!("a buffer of {len} floats does not fit in memory");
        };
        // SAFETY: `layout` has a non-zero size.
        let Some(base) = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }) else {
            std::alloc::handle_alloc_error(layout)
        };
        let offset = base.as_ptr().align_offset(LINE);
        Self {
            base,
            offset,
            len,
            layout: Some(layout),
        }
    }

    /// A copy of `src`.
    pub fn from_slice(src: &[f32]) -> Self {
        let mut buf = Self::zeros(src.len());
        buf.copy_from_slice(src);
        buf
    }

    fn data(&self) -> *mut f32 {
        // SAFETY: `offset < 64` lies inside the allocation (64 bytes longer than the floats),
        // or is 0 on the dangling pointer of an empty buffer.
        unsafe { self.base.as_ptr().add(self.offset).cast() }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: `base` came from `alloc_zeroed(layout)` and is freed once, here.
            unsafe { std::alloc::dealloc(self.base.as_ptr(), layout) }
        }
    }
}

impl Deref for AlignedBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `data()` is 64-aligned (so 4-aligned) and non-null, followed by `len`
        // zero-initialised or written floats inside the allocation (none when empty).
        unsafe { std::slice::from_raw_parts(self.data(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.data(), self.len) }
    }
}

impl Clone for AlignedBuf {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl Default for AlignedBuf {
    fn default() -> Self {
        Self::zeros(0)
    }
}

impl PartialEq for AlignedBuf {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_and_keeps_its_length() {
        for len in [0, 1, 15, 16, 17, 1000, 100_003] {
            let mut b = AlignedBuf::zeros(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0.0));
            assert_eq!(b.as_ptr() as usize % 64, 0, "len {len}");
            b.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32);
            let c = b.clone();
            assert_eq!(c.as_ptr() as usize % 64, 0);
            assert_eq!(c, b);
            assert_eq!(&AlignedBuf::from_slice(&b)[..], &b[..]);
            let moved = std::thread::spawn(move || b.iter().sum::<f32>()).join();
            assert!(moved.is_ok());
        }
    }

    #[test]
    fn untouched_pages_of_a_large_buffer_stay_unmapped() {
        // 1 GiB of zeros: calloc maps it lazily, so resident memory must not jump by it (it
        // would if the zeros were written, as an over-aligned allocation does). The margin
        // leaves room for other tests allocating in this process meanwhile.
        let rss = || -> Option<u64> {
            let s = std::fs::read_to_string("/proc/self/statm").ok()?;
            let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
            Some(pages * 4096)
        };
        let Some(before) = rss() else {
            return; // no /proc (not Linux): nothing to measure
        };
        let b = AlignedBuf::zeros(256 << 20);
        let after = rss().unwrap_or(before);
        assert!(
            after < before + (256 << 20),
            "RSS grew {} MiB for an untouched 1 GiB buffer",
            (after - before) >> 20
        );
        assert_eq!(b[b.len() - 1], 0.0);
    }
}
