//! Training-step speed of the encoder–decoder: forward + loss, backward, clip_grad_norm_(1.0),
//! AdamW, on random full-length pairs (no padding), after warmup. Prints one JSON line;
//! `tools/bench_seq2seq.py` runs it interleaved with the PyTorch reference model.
//!
//! ```text
//! cargo run --release -p lmforge-model --example bench_seq2seq -- \
//!     [--layers 6] [--n-embd 512] [--n-head 8] [--src-len 64] [--tgt-len 64] [--batch 16] \
//!     [--vocab 8000] [--steps 10] [--warmup 2] [--threads N] [--dtype fp32|bf16|…]
//! ```
//!
//! `--dtype` takes `lmforge train`'s values (default `fp32`); the JSON's `impl` is
//! `lmforge fp32` or `lmforge bf16`, its `dtype_detail` the kernel that ran.

use std::time::Instant;

use lmforge_model::rng::Rng;
use lmforge_model::seq2seq::{Seq2seq, Seq2seqBatch, Seq2seqConfig};
use lmforge_model::{AdamW, AdamWConfig, Cpu, DtypeArg, Precision};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap_or(default))
}

/// The precision `--dtype` asks for (`fp32` when not given), or the one-line reason it cannot
/// run here.
fn precision(args: &[String]) -> Result<Precision, String> {
    let value = args
        .iter()
        .position(|a| a == "--dtype")
        .and_then(|i| args.get(i + 1))
        .map_or("fp32", String::as_str);
    let arg: DtypeArg = value.parse().map_err(|e| format!("--dtype: {e}"))?;
    Precision::resolve(arg).map_err(|e| format!("--dtype: {e}"))
}

fn main() -> Result<(), lmforge_model::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let prec = match precision(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let (layers, c, nh) = (
        arg(&args, "--layers", 6),
        arg(&args, "--n-embd", 512),
        arg(&args, "--n-head", 8),
    );
    let (s, t, b, v) = (
        arg(&args, "--src-len", 64),
        arg(&args, "--tgt-len", 64),
        arg(&args, "--batch", 16),
        arg(&args, "--vocab", 8000),
    );
    let (steps, warmup) = (arg(&args, "--steps", 10), arg(&args, "--warmup", 2));
    let threads = arg(&args, "--threads", 0);
    if threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
    let cfg = Seq2seqConfig::new(v, v, layers, nh, c, s, t);
    let mut m = Seq2seq::new(cfg, 1)?;
    m.backend_mut().set_precision(prec);
    let dev = Cpu::new();
    let mut opt = AdamW::for_tensors(&dev, &m.layout().tensors.clone(), AdamWConfig::default());
    let mut rng = Rng::new(3);
    let mut ids =
        |n: usize| -> Vec<u32> { (0..n).map(|_| (rng.next_u64() % v as u64) as u32).collect() };
    let (src, tgt_in) = (ids(b * s), ids(b * t));
    let tgt_out: Vec<i32> = ids(b * t).into_iter().map(|x| x as i32).collect();
    let batch = Seq2seqBatch {
        batch: b,
        src_len: s,
        tgt_len: t,
        src: &src,
        tgt_in: &tgt_in,
        tgt_out: &tgt_out,
        src_pad_id: u32::MAX,
    };
    let mut times = Vec::new();
    let mut loss = 0.0;
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        m.zero_grad();
        loss = m.forward(&batch)?;
        m.backward()?;
        m.clip_grad_norm(1.0);
        let (p, g) = m.params_and_grads();
        opt.step_flat(&dev, p, g, 1e-4)?;
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{{\"impl\": \"lmforge {}\", \"dtype_detail\": \"{}\", \"params\": {}, \"tokens_per_s\": {:.1}, \"ms_per_step\": {:.2}, \"loss\": {loss:.4}, \"threads\": {}}}",
        prec.dtype(),
        prec.describe(),
        m.num_params(),
        (b * t) as f64 / median,
        median * 1e3,
        rayon::current_num_threads()
    );
    Ok(())
}
