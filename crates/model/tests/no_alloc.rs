//! "No allocation inside a training step": after the first step for a shape, a training step
//! (zero_grad, forward, backward, clip, AdamW) performs no heap allocation in our code.
//! Counted with a global allocator wrapper, on one thread, with the allocation-free reference
//! matmul kernel — the production kernels (`gemm`, `matrixmultiply`) malloc their packing
//! workspace on every call, which is theirs, not ours (see the README).

use lmforge_model::ops::matmul::{set_kernel, Kernel};
use lmforge_model::{Activation, AdamW, AdamWConfig, Gpt, ModelConfig, Norm, PosEncoding};
use std::sync::atomic::Ordering;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::ALLOCS;

/// Allocations during steady-state training steps of the tiny model (dropout on) on a pool of
/// `threads`, with `shards` batch shards (0 = automatic) and batch `b`; the first step, which
/// plans the buffers, is not counted. `then_smaller` adds a pass at half the batch;
/// `switched` turns on issue 14's switches (post-LN, ReLU, sinusoidal+RoPE, no q/k/v bias,
/// untied head with a bias).
fn allocations(
    threads: usize,
    shards: usize,
    b: usize,
    then_smaller: bool,
    switched: bool,
) -> usize {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut cfg = ModelConfig::preset("tiny").unwrap();
        cfg.dropout = 0.1;
        if switched {
            (cfg.norm, cfg.activation) = (Norm::Post, Activation::Relu);
            (cfg.pos_encoding, cfg.qkv_bias) = (PosEncoding::SinusoidalRope, Some(false));
            (cfg.tie_embeddings, cfg.head_bias) = (false, true);
        }
        let mut m = Gpt::new(cfg, 1).unwrap();
        m.set_batch_shards(shards);
        let mut opt = AdamW::new(&m, AdamWConfig::default());
        let t = 8;
        let idx = vec![3u32; b * t];
        let tg = vec![1i32; b * t];
        let mut step = |m: &mut Gpt| {
            m.zero_grad();
            m.forward(&idx, Some(&tg), b, t).unwrap();
            m.backward().unwrap();
            m.clip_grad_norm(1.0);
            opt.step(m, 1e-3).unwrap();
        };
        step(&mut m);
        let before = ALLOCS.load(Ordering::Relaxed);
        step(&mut m);
        step(&mut m);
        if then_smaller {
            // a smaller shape reuses the planned buffers too
            let h = b / 2 * t;
            m.forward(&idx[..h], Some(&tg[..h]), b / 2, t).unwrap();
            m.backward().unwrap();
        }
        ALLOCS.load(Ordering::Relaxed) - before
    })
}

#[test]
fn training_step_does_not_allocate_after_the_first() {
    set_kernel(Kernel::Reference);
    let n = allocations(1, 0, 2, true, false);
    assert_eq!(n, 0, "{n} allocations in steady-state training steps");
    // batch shards side by side on two threads: none either
    let n = allocations(2, 2, 4, false, false);
    assert_eq!(
        n, 0,
        "{n} allocations in steady-state sharded training steps"
    );
    for shards in [1, 2] {
        let n = allocations(2, shards, 4, true, true);
        assert_eq!(n, 0, "{n} allocations with the issue-14 switches");
    }
}
