//! The device seam.
//!
//! [`Gpt`](crate::Gpt)'s forward and backward reach every op through [`active`] and nowhere
//! else. Today that is [`cpu`]: the hand-written kernels in [`crate::ops`]. A future `cuda`
//! cargo feature adds a `cuda` module exposing the same function set (same names, same
//! argument order, buffers in device memory via cudarc loaded at run time) and switches
//! `active` to it; the model code does not change. No CUDA code exists yet.

/// The CPU implementation of the op set.
pub mod cpu {
    pub use crate::ops::{
        attention, crossentropy, dropout, embedding, gelu, layernorm, linear, residual, rope,
    };
}

pub use cpu as active;
