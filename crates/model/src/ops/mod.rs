//! The CPU backend's kernels ([`Cpu`](crate::backend::cpu::Cpu) calls them). Each file holds
//! one op's forward and backward side by side, its shapes in the module docs, and its
//! finite-difference gradient test.

pub mod adamw;
pub mod attention;
pub mod colsum;
pub mod crossentropy;
pub mod dropout;
pub mod embedding;
pub mod gelu;
pub mod layernorm;
pub mod linear;
pub mod math;
pub mod matmul;
pub mod relu;
pub mod residual;
pub mod rope;
pub mod sendptr;
#[cfg(test)]
pub(crate) mod testutil;
pub mod vector;
