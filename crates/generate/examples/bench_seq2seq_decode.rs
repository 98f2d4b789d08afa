//! Decoding speed of an encoder–decoder (random weights): greedy vs beam search, interleaved
//! in one run so the ratio is meaningful on a busy machine, plus the search's own cost on a
//! free step model (what beam search adds beyond the model).
//!
//! `cargo run --release -p lmforge-generate --example bench_seq2seq_decode -- [LAYERS] [WIDTH] [VOCAB] [BEAMS] [ROUNDS]`
//! (defaults: 2 layers per stack, width 256, vocabulary 8000, 4 beams, 3 rounds).

use std::time::Instant;

use lmforge_generate::seq2seq::{decode, Decoding, Seq2SeqOptions, Seq2SeqStep};
use lmforge_generate::seq2seq_ckpt::ModelStep;
use lmforge_model::seq2seq::{Seq2seq, Seq2seqConfig};

/// A step model that costs nothing: constant logits that never favour `<eos>`.
struct Free {
    v: usize,
    logits: Vec<f32>,
}

impl Seq2SeqStep for Free {
    fn vocab_size(&self) -> usize {
        self.v
    }
    fn max_steps(&self) -> usize {
        usize::MAX
    }
    fn encode(&mut self, _: &[u32]) -> lmforge_generate::Result<()> {
        Ok(())
    }
    fn start(&mut self, rows: usize) -> lmforge_generate::Result<()> {
        self.logits = (0..rows * self.v)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0)
            .collect();
        for r in 0..rows {
            self.logits[r * self.v + 2] = -10.0;
        }
        Ok(())
    }
    fn step(&mut self, _: &[u32]) -> lmforge_generate::Result<&[f32]> {
        Ok(&self.logits)
    }
    fn reorder(&mut self, _: &[usize]) -> lmforge_generate::Result<()> {
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: usize| -> usize {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (layers, width, vocab, beams, rounds) =
        (arg(1, 2), arg(2, 256), arg(3, 8000), arg(4, 4), arg(5, 3));
    let (sb, tb) = (64, 64);
    let cfg = Seq2seqConfig::new(vocab, vocab, layers, width / 64, width, sb, tb);
    let model = Seq2seq::new(cfg, 1)?;
    let src: Vec<u32> = (0..32).map(|i| (i * 37 % vocab) as u32).collect();
    // <eos> = 2 is never produced by a random model in 48 steps often enough to matter; the
    // token counts below are what was generated.
    let opts = |decoding| Seq2SeqOptions {
        decoding,
        max_new_tokens: 48,
        bos: 1,
        eos: 2,
    };
    let strategies = [
        ("greedy", Decoding::Greedy),
        (
            "beam",
            Decoding::Beam {
                beams,
                length_penalty: 1.0,
            },
        ),
    ];
    let mut secs = [0.0f64; 2];
    let mut steps = [0usize; 2];
    for _ in 0..rounds {
        for (k, (_, d)) in strategies.iter().enumerate() {
            let mut step = ModelStep::new(&model);
            let t = Instant::now();
            let h = decode(&mut step, &src, &opts(*d))?;
            secs[k] += t.elapsed().as_secs_f64();
            steps[k] += h.tokens.len() + h.finished as usize;
        }
    }
    println!("model: {layers}+{layers} layers, width {width}, vocab {vocab}, source 32 tokens, {rounds} rounds interleaved");
    for (k, (name, _)) in strategies.iter().enumerate() {
        println!(
            "{name:>8}: {:.1} output tokens/s ({} tokens in {:.3} s)",
            steps[k] as f64 / secs[k],
            steps[k],
            secs[k]
        );
    }
    println!(
        "beam {beams} time per output token / greedy: {:.2}x",
        (secs[1] / steps[1] as f64) / (secs[0] / steps[0] as f64)
    );
    let mut free = Free {
        v: vocab,
        logits: Vec::new(),
    };
    let t = Instant::now();
    let h = decode(
        &mut free,
        &src,
        &opts(Decoding::Beam {
            beams,
            length_penalty: 1.0,
        }),
    )?;
    let search = t.elapsed().as_secs_f64() / h.tokens.len().max(1) as f64;
    println!("beam {beams} search alone (free model): {:.1} µs per output token ({:.1}% of a model beam step)",
        search * 1e6, 100.0 * search / (secs[1] / steps[1] as f64));
    Ok(())
}
