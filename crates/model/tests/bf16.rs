//! bf16 mixed precision on a whole model: loss and gradients near fp32 (both kernels, each
//! selected explicitly), bit-for-bit determinism per dtype and thread count, and switching
//! precision on the same f32 weights (what resuming a checkpoint in another dtype does).

#[path = "common/bf16_kernels.rs"]
mod bf16_kernels;
use bf16_kernels::kernels;
use lmforge_model::{
    Activation, AdamW, AdamWConfig, Gpt, ModelConfig, Norm, PosEncoding, Precision,
};

fn config(tie: bool) -> ModelConfig {
    let mut c = ModelConfig::new(37, 2, 4, 64, 16);
    c.tie_embeddings = tie;
    c
}

/// Issue 14's switches: post-LN, ReLU, sinusoidal+RoPE, no q/k/v bias, untied head with a bias.
fn switched() -> ModelConfig {
    let mut c = config(false);
    (c.norm, c.activation, c.pos_encoding) =
        (Norm::Post, Activation::Relu, PosEncoding::SinusoidalRope);
    (c.qkv_bias, c.head_bias) = (Some(false), true);
    c
}

fn batch(b: usize, t: usize, v: usize) -> (Vec<u32>, Vec<i32>) {
    let idx = (0..b * t).map(|i| ((i * 7 + 3) % v) as u32).collect();
    let tg = (0..b * t).map(|i| ((i * 5 + 1) % v) as i32).collect();
    (idx, tg)
}

/// Loss and the flat gradient of one forward/backward in `prec`.
fn loss_and_grads(cfg: &ModelConfig, prec: Precision) -> (f32, Vec<f32>) {
    let mut m = Gpt::new(cfg.clone(), 7).unwrap();
    m.set_precision(prec);
    let (b, t) = (3, cfg.block_size);
    let (idx, tg) = batch(b, t, cfg.vocab_size);
    m.zero_grad();
    let loss = m.forward(&idx, Some(&tg), b, t).unwrap().unwrap();
    m.backward().unwrap();
    (loss, m.grads().to_vec())
}

#[test]
fn bf16_loss_and_gradients_are_within_bf16_tolerance_of_fp32() {
    for cfg in [config(true), config(false), switched()] {
        let tie = cfg.tie_embeddings;
        let (l32, g32) = loss_and_grads(&cfg, Precision::Fp32);
        let norm32 = g32.iter().map(|g| (*g as f64).powi(2)).sum::<f64>().sqrt();
        for k in kernels() {
            let (l16, g16) = loss_and_grads(&cfg, Precision::Bf16(k));
            assert!(
                (l16 - l32).abs() < 1e-2 * l32.abs(),
                "{k:?}: loss {l16} vs {l32}"
            );
            assert_ne!(l16.to_bits(), l32.to_bits(), "{k:?}: bf16 ran as fp32?");
            let diff = g16
                .iter()
                .zip(&g32)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                diff < 2e-2 * norm32,
                "{k:?} tie={tie}: |Δg| {diff} vs |g| {norm32}"
            );
        }
    }
}

/// Parameters after 3 AdamW steps in `prec` on a pool of `threads`.
fn params_after_steps(prec: Precision, threads: usize) -> Vec<u32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let cfg = config(true);
        let mut m = Gpt::new(cfg.clone(), 3).unwrap();
        m.set_precision(prec);
        let mut opt = AdamW::new(&m, AdamWConfig::default());
        let (idx, tg) = batch(4, cfg.block_size, cfg.vocab_size);
        for _ in 0..3 {
            m.zero_grad();
            m.forward(&idx, Some(&tg), 4, cfg.block_size).unwrap();
            m.backward().unwrap();
            m.clip_grad_norm(1.0);
            opt.step(&mut m, 1e-3).unwrap();
        }
        m.params().iter().map(|p| p.to_bits()).collect()
    })
}

#[test]
fn bf16_training_is_deterministic_per_dtype_and_thread_count() {
    for threads in [1, 2] {
        let fp32 = params_after_steps(Precision::Fp32, threads);
        for k in kernels() {
            let a = params_after_steps(Precision::Bf16(k), threads);
            let b = params_after_steps(Precision::Bf16(k), threads);
            assert!(a == b, "{k:?} on {threads} threads is not reproducible");
            assert!(a != fp32, "{k:?}: same bits as fp32");
        }
    }
}

#[test]
fn a_model_switches_precision_between_steps_on_the_same_f32_weights() {
    let cfg = config(true);
    let (b, t) = (2, cfg.block_size);
    let (idx, tg) = batch(b, t, cfg.vocab_size);
    let mut m = Gpt::new(cfg.clone(), 5).unwrap();
    let fp32_loss = m.forward(&idx, Some(&tg), b, t).unwrap().unwrap();
    let before = m.params().to_vec();
    let k = *kernels().last().unwrap();
    m.set_precision(Precision::Bf16(k));
    assert_eq!(m.precision(), Precision::Bf16(k));
    let bf16_loss = m.forward(&idx, Some(&tg), b, t).unwrap().unwrap();
    assert!((bf16_loss - fp32_loss).abs() < 1e-2 * fp32_loss);
    assert_eq!(
        m.params(),
        &before[..],
        "a forward never touches the f32 weights"
    );
    m.set_precision(Precision::Fp32);
    let again = m.forward(&idx, Some(&tg), b, t).unwrap().unwrap();
    assert_eq!(
        again.to_bits(),
        fp32_loss.to_bits(),
        "back in fp32: the same loss"
    );
}

/// Weights prepared once per parameter update (the default) give the same bits as preparing
/// them at every use: across optimizer steps, batch shards, classifier chunks, gradient
/// accumulation and a direct parameter write between steps (which must not leave a stale
/// preparation behind).
#[test]
fn kept_weight_preparations_equal_preparing_per_use() {
    for cfg in [config(true), switched()] {
        for k in kernels() {
            let run = |keep: bool| {
                let mut m = Gpt::new(cfg.clone(), 5).unwrap();
                m.set_precision(Precision::Bf16(k));
                m.keep_prepared_weights(keep);
                m.set_batch_shards(2);
                m.set_classifier_chunk(5);
                let mut opt = AdamW::new(&m, AdamWConfig::default());
                let (b, t) = (4, cfg.block_size);
                let (idx, tg) = batch(b, t, cfg.vocab_size);
                let mut losses = Vec::new();
                for step in 0..3 {
                    m.zero_grad();
                    for micro in 0..2 {
                        let n = b * t / 2;
                        let (i, g) = (&idx[micro * n..][..n], &tg[micro * n..][..n]);
                        losses.push(m.forward(i, Some(g), b / 2, t).unwrap().unwrap());
                        m.backward().unwrap();
                    }
                    opt.step(&mut m, 1e-2).unwrap();
                    if step == 1 {
                        m.params_mut().iter_mut().for_each(|p| *p *= 0.5);
                    }
                }
                (losses, m.params().to_vec())
            };
            let (kept, per_use) = (run(true), run(false));
            assert_eq!(kept.0, per_use.0, "{k:?}: losses");
            assert!(kept.1 == per_use.1, "{k:?}: parameters differ");
            assert_ne!(kept.0[0], kept.0[5], "{k:?}: training changed nothing?");
        }
    }
}
