//! Where a training step's time goes, phase by phase (zero_grad, forward, backward, clip,
//! AdamW), averaged over `STEPS` steps after 5 warm-up steps, on random-ish tokens.
//! `cargo run --release -p lmforge-model --example step_phases -- bench-s [threads]`
//! Environment: `B` batch (default: the preset's benchmark batch), `STEPS` (100),
//! `SHARDS` batch shards (default automatic; 1 = every op over the whole batch), and the
//! preset's shape overridden by `N_LAYER`, `N_EMBD`, `N_HEAD`, `BLOCK_SIZE`, `VOCAB_SIZE`
//! (o200k_base's head: `N_LAYER=4 N_EMBD=256 N_HEAD=4 BLOCK_SIZE=256 VOCAB_SIZE=200019 B=8
//! STEPS=4 … bench-m`).
use lmforge_model::{AdamW, AdamWConfig, Gpt, ModelConfig};
use std::time::Instant;

fn env(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn main() {
    let preset = std::env::args().nth(1).unwrap_or_else(|| "bench-s".into());
    let threads = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .ok();
    let mut cfg = match ModelConfig::preset(&preset) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // shape overrides, as `bench train`'s flags: N_LAYER, N_EMBD, N_HEAD, BLOCK_SIZE, VOCAB_SIZE
    cfg.override_shape(|key| env(&key.to_uppercase()));
    let b = env("B").unwrap_or(lmforge_model::config::preset_batch_size(&preset));
    let steps = env("STEPS").unwrap_or(100).max(1);
    let t = cfg.block_size;
    let v = cfg.vocab_size;
    let mut m = Gpt::new(cfg, 1).expect("preset config is valid");
    if let Some(n) = env("SHARDS") {
        m.set_batch_shards(n);
    }
    let mut opt = AdamW::new(&m, AdamWConfig::default());
    let idx: Vec<u32> = (0..b * t).map(|i| (i * 7 % v) as u32).collect();
    let tg: Vec<i32> = (0..b * t).map(|i| (i * 11 % v) as i32).collect();
    let mut ms = [0f64; 5];
    for s in 0..steps + 5 {
        let t0 = Instant::now();
        m.zero_grad();
        let t1 = Instant::now();
        m.forward(&idx, Some(&tg), b, t).expect("forward");
        let t2 = Instant::now();
        m.backward().expect("backward");
        let t3 = Instant::now();
        m.clip_grad_norm(1.0);
        let t4 = Instant::now();
        opt.step(&mut m, 1e-3).expect("step");
        let t5 = Instant::now();
        if s >= 5 {
            for (acc, (a, z)) in
                ms.iter_mut()
                    .zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)])
            {
                *acc += (z - a).as_secs_f64() * 1e3 / steps as f64;
            }
        }
    }
    println!(
        "ms/step: zero_grad {:.3}  forward {:.3}  backward {:.3}  clip {:.3}  adamw {:.3}  total {:.3}",
        ms[0],
        ms[1],
        ms[2],
        ms[3],
        ms[4],
        ms.iter().sum::<f64>()
    );
}
