//! The operands of a product: [`Mat`] (read) and [`MatMut`] (written), strided views that carry
//! their own shape, so a product is `matmul(c, a, b, accumulate, par)` and the shapes are
//! checked once, in the dispatch.
//!
//! Element `(i, j)` of a view lives at `i·row_stride + j·col_stride` from its start, so a
//! transpose is free ([`Mat::t`] swaps the strides). A view made from a slice is checked to lie
//! inside it; one made from a raw pointer ([`Mat::from_raw`], [`MatMut::from_raw`]) is the
//! caller's promise — the attention kernel uses those to write strided head blocks of one
//! buffer from several threads.

use std::marker::PhantomData;

/// A strided read-only `[rows, cols]` matrix view (a shared borrow of its floats).
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    ptr: *const f32,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    _data: PhantomData<&'a [f32]>,
}

// SAFETY: a `Mat` only reads through its pointer, like the `&'a [f32]` it stands for.
unsafe impl Send for Mat<'_> {}
// SAFETY: as above.
unsafe impl Sync for Mat<'_> {}

impl<'a> Mat<'a> {
    /// `[rows, cols]` with row stride `rs` and column stride `cs` (in elements) at the start of
    /// `data`. Panics if the view reaches past the end of `data` (a shape bug in the caller).
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        assert_fits(data.len(), rows, cols, rs, cs, "A/B");
        Mat {
            ptr: data.as_ptr(),
            rows,
            cols,
            rs,
            cs,
            _data: PhantomData,
        }
    }

    /// Row-major `[rows, cols]` at the start of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// A view at a raw pointer.
    ///
    /// # Safety
    /// Every element `(i, j)`, `i < rows`, `j < cols`, at `ptr + i·rs + j·cs` must be readable
    /// and not written by anyone for as long as the view (lifetime `'a`) is used.
    pub unsafe fn from_raw(
        ptr: *const f32,
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Self {
        Mat {
            ptr,
            rows,
            cols,
            rs,
            cs,
            _data: PhantomData,
        }
    }

    /// The transpose `[cols, rows]` (same floats, strides swapped).
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Elements from one row to the next.
    pub fn row_stride(&self) -> usize {
        self.rs
    }
    /// Elements from one column to the next.
    pub fn col_stride(&self) -> usize {
        self.cs
    }
    /// The address of element `(0, 0)` (for kernels that take raw pointers).
    pub fn as_ptr(&self) -> *const f32 {
        self.ptr
    }

    /// The view's floats as one slice when they are contiguous (row-major `rs = cols, cs = 1`
    /// or column-major `rs = 1, cs = rows`): a copy with the same strides is then a copy of
    /// the view (the bf16 kernels cast it in one pass). `None` for views with gaps.
    pub fn dense(&self) -> Option<&'a [f32]> {
        let (r, c) = (self.rows, self.cols);
        let contiguous = r <= 1 && (c <= 1 || self.cs == 1)
            || c <= 1 && self.rs == 1
            || self.cs == 1 && self.rs == c
            || self.rs == 1 && self.cs == r;
        // SAFETY: the view's `r·c` elements are readable for `'a` (the constructors'
        // contract), and when contiguous they are exactly the `r·c` floats from `ptr`.
        contiguous.then(|| unsafe { std::slice::from_raw_parts(self.ptr, r * c) })
    }

    /// Row `i` as a slice, where the view's rows are contiguous (`col_stride == 1` or one
    /// column); `None` otherwise. Panics outside the view.
    pub fn row(&self, i: usize) -> Option<&'a [f32]> {
        assert!(i < self.rows, "Mat::row({i}) outside {self:?}");
        // SAFETY: row `i` of the view is readable (constructors' contract); with unit column
        // stride (or one column) its `cols` elements are the floats from `ptr + i·rs`.
        (self.cs == 1 || self.cols <= 1)
            .then(|| unsafe { std::slice::from_raw_parts(self.ptr.add(i * self.rs), self.cols) })
    }

    /// Element `(i, j)`; panics outside the view.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        assert!(
            i < self.rows && j < self.cols,
            "Mat::get({i}, {j}) outside {self:?}"
        );
        // SAFETY: in the view (checked above), which is readable by construction.
        unsafe { *self.ptr.add(i * self.rs + j * self.cs) }
    }

    /// Rows `0..r` and `r..rows` as two views (`r ≤ rows`).
    pub fn split_at_row(self, r: usize) -> (Self, Self) {
        assert!(r <= self.rows, "split at row {r} of {}", self.rows);
        let top = Mat { rows: r, ..self };
        // wrapping: with no rows left the pointer may sit past the end; it is never read.
        let ptr = self.ptr.wrapping_add(r * self.rs);
        let rest = Mat {
            ptr,
            rows: self.rows - r,
            ..self
        };
        (top, rest)
    }
}

/// A written `[rows, cols]` matrix view with a row stride and unit column stride (an exclusive
/// borrow of its floats). Rows never overlap, so disjoint row ranges may go to different
/// threads ([`MatMut::split_at_row`]).
#[derive(Debug)]
pub struct MatMut<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    rs: usize,
    _data: PhantomData<&'a mut [f32]>,
}

// SAFETY: a `MatMut` is the only access to its floats, like the `&'a mut [f32]` it stands for;
// no `&self` method writes.
unsafe impl Send for MatMut<'_> {}
// SAFETY: as above.
unsafe impl Sync for MatMut<'_> {}

impl<'a> MatMut<'a> {
    /// `[rows, cols]` with row stride `rs ≥ cols` at the start of `data`. Panics if the view
    /// reaches past the end of `data` or rows overlap (shape bugs in the caller).
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, rs: usize) -> Self {
        assert_fits(data.len(), rows, cols, rs, 1, "C");
        assert!(
            rows <= 1 || rs >= cols,
            "matmul: C rows overlap (rs={rs} < cols={cols})"
        );
        MatMut {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            rs,
            _data: PhantomData,
        }
    }

    /// Row-major `[rows, cols]` at the start of `data`.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols)
    }

    /// A view at a raw pointer.
    ///
    /// # Safety
    /// Every element `(i, j)`, `i < rows`, `j < cols`, at `ptr + i·rs + j` must be writable,
    /// rows must not overlap (`rs ≥ cols` when `rows > 1`), and nobody else may read or write
    /// those elements for as long as the view (lifetime `'a`) is used.
    pub unsafe fn from_raw(ptr: *mut f32, rows: usize, cols: usize, rs: usize) -> Self {
        MatMut {
            ptr,
            rows,
            cols,
            rs,
            _data: PhantomData,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Elements from one row to the next.
    pub fn row_stride(&self) -> usize {
        self.rs
    }
    /// The address of element `(0, 0)` (for kernels that take raw pointers).
    pub fn as_mut_ptr(&mut self) -> *mut f32 {
        self.ptr
    }

    /// Row `i` (`cols` floats); panics outside the view.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "MatMut::row_mut({i}) outside {self:?}");
        // SAFETY: row i is inside the view and borrowed exclusively through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.rs), self.cols) }
    }

    /// Rows `0..r` and `r..rows` as two views (`r ≤ rows`); they never overlap.
    pub fn split_at_row(self, r: usize) -> (Self, Self) {
        assert!(r <= self.rows, "split at row {r} of {}", self.rows);
        // wrapping: with no rows left the pointer may sit past the end; it is never written.
        let rest_ptr = self.ptr.wrapping_add(r * self.rs);
        let rest = MatMut {
            ptr: rest_ptr,
            rows: self.rows - r,
            cols: self.cols,
            rs: self.rs,
            _data: PhantomData,
        };
        (MatMut { rows: r, ..self }, rest)
    }
}

/// Panics unless every element of the `[rows, cols]` view with strides `rs`, `cs` lies below
/// `len`.
fn assert_fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize, what: &str) {
    if rows > 0 && cols > 0 {
        let last = (rows - 1)
            .checked_mul(rs)
            .zip((cols - 1).checked_mul(cs))
            .and_then(|(r, c)| r.checked_add(c));
        assert!(
            last.is_some_and(|last| last < len),
            "matmul: {what} view [{rows},{cols}] rs={rs} cs={cs} exceeds len {len}"
        );
    }
}
