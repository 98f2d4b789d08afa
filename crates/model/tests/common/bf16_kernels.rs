//! The bf16 kernels a test can select on this CPU (shared by the bf16 test binaries).

use lmforge_model::ops::matmul::{bf16_amx_available, bf16_native_available, Bf16Kernel};

/// The emulated kernel (any CPU), then AVX-512 BF16 and AMX where this CPU has them.
pub fn kernels() -> Vec<Bf16Kernel> {
    let mut k = vec![Bf16Kernel::Emulated];
    if bf16_native_available() {
        k.push(Bf16Kernel::Native);
    }
    if bf16_amx_available() {
        k.push(Bf16Kernel::Amx);
    }
    k
}
