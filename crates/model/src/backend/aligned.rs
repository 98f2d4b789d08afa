//! [`AlignedBuf`], the CPU backend's buffer: `f32`s whose first element starts a cache line.
//!
//! Why: the AMX kernel stores its 16×16 f32 tiles straight into C when C's rows start on
//! 64-byte boundaries, and otherwise goes through a staging block and copies (`amx.rs`).
//! A `Vec<f32>` is only as aligned as `malloc` makes it (16 bytes; a large block sits 16
//! bytes past a page boundary), so most activations missed the direct path (measurements in
//! `docs/performance.md`). The floats live in a `Vec` of 64-byte lines, so the alignment
//! comes from the element type and `Vec` frees the memory with the layout it was made with.

use std::ops::{Deref, DerefMut};

/// Floats per 64-byte line.
const LINE: usize = 16;

/// One cache line of floats.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C, align(64))]
struct Line([f32; LINE]);

/// A fixed-length `f32` buffer whose data starts on a 64-byte boundary; it derefs to
/// `[f32]` (length as given, not rounded up to whole lines).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        // `vec![Line::default(); n]` writes every line; a zeroed allocation leaves pages
        // untouched (so unused capacity, e.g. a KV cache, costs no resident memory)
        Self {
            lines: zeroed_lines(len.div_ceil(LINE)),
            len,
        }
    }

    /// A copy of `src`.
    pub fn from_slice(src: &[f32]) -> Self {
        let mut buf = Self::zeros(src.len());
        buf.copy_from_slice(src);
        buf
    }
}

/// `n` zeroed lines from one zeroed allocation.
fn zeroed_lines(n: usize) -> Vec<Line> {
    if n == 0 {
        return Vec::new();
    }
    let layout = match std::alloc::Layout::array::<Line>(n) {
        Ok(l) => l,
        Err(_) => panic!("buffer of {n} cache lines overflows the address space"),
    };
    // SAFETY: `layout` has non-zero size. All-zero bytes are a valid `Line` (zero floats),
    // and the pointer comes from the global allocator with exactly the layout `Vec<Line>`
    // uses for capacity `n`, so the Vec may own and free it.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<Line>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(p, n, n)
    }
}

impl Deref for AlignedBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` over `[f32; 16]` with no padding (64 bytes), so the
        // lines are `16 · lines.len() ≥ len` contiguous initialised floats.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
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
            assert_eq!(&c[..], &b[..]);
            assert_eq!(&AlignedBuf::from_slice(&b)[..], &b[..]);
        }
    }
}
