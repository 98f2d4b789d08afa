//! Greedy-decoding exact match of an encoder–decoder checkpoint on a pair-data folder's val
//! pairs (the word-reversal demo's figure):
//!
//! ```text
//! cargo run --release -p lmforge-train --example seq2seq_exact_match -- CHECKPOINT_DIR DATA_DIR [MAX_PAIRS]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use lmforge_data::pairs::PairDataDir;
use lmforge_model::seq2seq::io::load_model_dir;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(ckpt), Some(data)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: seq2seq_exact_match CHECKPOINT_DIR DATA_DIR [MAX_PAIRS]");
    };
    let max: usize = match args.get(2) {
        Some(n) => n.parse()?,
        None => usize::MAX,
    };
    let model = load_model_dir(&PathBuf::from(ckpt))?;
    let data = PairDataDir::open(&PathBuf::from(data))?;
    let (src_sp, tgt_sp) = (data.meta.src.specials, data.meta.tgt.specials);
    let _ = src_sp;
    let sb = model.config().src_block_size;
    let n = data.val.len().min(max);
    let started = Instant::now();
    let mut exact = 0;
    for i in 0..n {
        let (src, tgt) = data.val.pair(i);
        let src = &src[..src.len().min(sb)];
        let got = model.greedy(src, tgt_sp.bos, tgt_sp.eos, tgt.len() + 5)?;
        exact += usize::from(got == tgt);
    }
    println!(
        "exact match (greedy): {exact}/{n} = {:.1}% of held-out pairs ({:.1}s)",
        100.0 * exact as f64 / n.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
