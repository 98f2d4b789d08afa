//! [`SendPtr`]: a raw pointer (`f32` by default) that rayon tasks may share, for ops whose tasks write
//! disjoint regions of one buffer (attention heads, embedding columns, optimizer chunks).

/// A raw pointer that may cross threads; users guarantee disjoint access.
pub struct SendPtr<T = f32>(pub *mut T);

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    #[inline]
    pub fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: only used to hand disjoint regions of one buffer to rayon tasks.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}
