//! The element-wise ops' SIMD tiers (baseline, AVX2+FMA, AVX-512 where a function has it)
//! give the same bits: three training steps with dropout, GELU, LayerNorm, attention, the
//! fused classifier and AdamW, once per tier the CPU has, compared bit for bit. Its own test
//! binary: the tier cap is process-wide.

use lmforge_model::ops::math::{set_simd_cap, simd_allows, SimdCap};
use lmforge_model::{AdamW, AdamWConfig, Gpt, ModelConfig, PosEncoding};

/// Losses and final parameters of three steps with every element-wise op capped at `cap`.
fn train(cap: SimdCap) -> (Vec<u32>, Vec<u32>) {
    set_simd_cap(cap);
    // widths that leave remainders past every vector width (300 = 18·16 + 12; 72 = 4·16 + 8)
    let mut cfg = ModelConfig::new(300, 2, 3, 72, 24);
    (cfg.pos_encoding, cfg.dropout) = (PosEncoding::Rope, 0.1);
    let mut m = Gpt::new(cfg, 3).expect("model");
    m.set_classifier_chunk(7);
    let (b, t) = (3, 24);
    let idx: Vec<u32> = (0..b * t).map(|i| ((i * 37 + 5) % 300) as u32).collect();
    let tg: Vec<i32> = (0..b * t).map(|i| ((i * 11 + 2) % 300) as i32).collect();
    let mut opt = AdamW::new(&m, AdamWConfig::default());
    let mut losses = Vec::new();
    for _ in 0..3 {
        m.zero_grad();
        let loss = m.forward(&idx, Some(&tg), b, t).expect("forward");
        losses.push(loss.expect("a loss").to_bits());
        m.backward().expect("backward");
        m.clip_grad_norm(1.0);
        opt.step(&mut m, 1e-2).expect("step");
    }
    let params = m.params().iter().map(|p| p.to_bits()).collect();
    set_simd_cap(SimdCap::Avx512);
    (losses, params)
}

#[test]
fn every_simd_tier_gives_the_same_bits() {
    let want = train(SimdCap::Baseline);
    let mut ran = vec!["baseline"];
    for (cap, name) in [(SimdCap::Avx2, "avx2+fma"), (SimdCap::Avx512, "avx512")] {
        if !simd_allows(cap) {
            continue;
        }
        let got = train(cap);
        assert!(got.0 == want.0, "{name}: losses differ from the baseline's");
        assert!(
            got.1 == want.1,
            "{name}: parameters differ from the baseline's"
        );
        ran.push(name);
    }
    println!("tiers compared: {ran:?}");
}
