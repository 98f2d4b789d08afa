//! The fused classifier's chunk size, measured: full training passes (forward with targets,
//! backward) of one model shape at several `Gpt::set_classifier_chunk` values, in interleaved
//! rounds: each chunk's best and median round, the median of its same-round time ratios to
//! the first chunk listed, and the model's planned memory.
//!
//! `cargo run --release -p lmforge-model --example classifier_bench -- [--n-layer 4]
//!  [--n-embd 256] [--n-head 4] [--block-size 256] [--vocab-size 200019] [--batch 8]
//!  [--chunks 0,32,64,128,256,2048] [--rounds 3] [--threads N]`
//! (defaults: the o200k_base shape; chunk 0 = automatic, b·t = unchunked)
use lmforge_model::{Gpt, ModelConfig};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let num = |name: &str, default: &str| -> usize {
        flag(name, default).parse().unwrap_or_else(|_| {
            eprintln!("error: {name} takes a whole number");
            std::process::exit(2)
        })
    };
    if let Some(t) = args.iter().position(|a| a == "--threads") {
        let n = args.get(t + 1).and_then(|s| s.parse().ok()).unwrap_or(0);
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .ok();
    }
    let mut cfg = ModelConfig::new(
        num("--vocab-size", "200019"),
        num("--n-layer", "4"),
        num("--n-head", "4"),
        num("--n-embd", "256"),
        num("--block-size", "256"),
    );
    cfg.dropout = 0.0;
    let (b, t) = (num("--batch", "8"), cfg.block_size);
    let chunks: Vec<usize> = flag("--chunks", "0,32,64,128,256,2048")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds = num("--rounds", "3");
    let mut model = match Gpt::new(cfg.clone(), 1) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    };
    let v = cfg.vocab_size;
    let idx: Vec<u32> = (0..b * t).map(|i| ((i * 7919) % v) as u32).collect();
    let tg: Vec<i32> = (0..b * t).map(|i| ((i * 104_729 + 1) % v) as i32).collect();
    // seconds per round, per chunk size
    let mut times = vec![Vec::with_capacity(rounds); chunks.len()];
    let mut losses = vec![0.0f32; chunks.len()];
    for _ in 0..rounds {
        for (k, &chunk) in chunks.iter().enumerate() {
            model.set_classifier_chunk(chunk);
            model.zero_grad();
            let t0 = Instant::now();
            let loss = model.forward(&idx, Some(&tg), b, t).expect("forward");
            model.backward().expect("backward");
            times[k].push(t0.elapsed().as_secs_f64());
            losses[k] = loss.unwrap_or(f32::NAN);
        }
    }
    println!(
        "{} layers × {}, block {t}, batch {b}, vocab {v}, {} threads; {rounds} interleaved rounds",
        cfg.n_layer,
        cfg.n_embd,
        rayon::current_num_threads()
    );
    // Same-round ratios against the first chunk size: the host's slow and fast spells hit
    // both sides of a pair alike, so their median is steadier than any one side's times.
    println!("| chunk rows | best ms fwd+bwd | median ms | tok/s (best) | median time ratio to the first | loss |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (k, &chunk) in chunks.iter().enumerate() {
        let rows = lmforge_model::classifier::chunk_rows(chunk, b * t, v);
        let best = times[k].iter().copied().fold(f64::MAX, f64::min);
        let ratios: Vec<f64> = times[k].iter().zip(&times[0]).map(|(a, z)| a / z).collect();
        println!(
            "| {chunk} ({rows}) | {:.1} | {:.1} | {:.0} | {:.3} | {:.5} |",
            best * 1e3,
            median(&times[k]) * 1e3,
            (b * t) as f64 / best,
            median(&ratios),
            losses[k]
        );
    }
    println!(
        "model buffers after all chunks: {:.0} MiB",
        model.memory_bytes() as f64 / (1 << 20) as f64
    );
}

fn median(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}
