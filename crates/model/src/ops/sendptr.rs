//! [`SendPtr`]: a raw `f32` pointer that rayon tasks may share, for ops whose tasks write
//! disjoint regions of one buffer (attention heads, embedding columns, optimizer chunks).

/// A raw pointer that may cross threads; users guarantee disjoint access.
#[derive(Clone, Copy)]
pub struct SendPtr(pub *mut f32);

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    #[inline]
    pub fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: only used to hand disjoint regions of one buffer to rayon tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}
