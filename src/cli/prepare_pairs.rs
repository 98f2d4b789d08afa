//! `lmforge prepare --pairs SRC TGT | --pairs-tsv FILE | --stream-pairs SRC_LEN TGT_LEN`:
//! sequence-to-sequence pair data for an encoder–decoder model.

use lmforge_data::pairs::{prepare_pairs, PairInput, PairPrepareOptions};
use lmforge_data::TokenizerChoice;

use super::prepare::PrepareArgs;

/// Runs the pair preparation and prints its summary.
pub fn run(a: PrepareArgs) -> anyhow::Result<()> {
    let input = if let [src, tgt] = a.pairs.as_slice() {
        PairInput::Files {
            src: src.clone(),
            tgt: tgt.clone(),
        }
    } else if let Some(path) = a.pairs_tsv {
        PairInput::Tsv(path)
    } else if let [src_len, tgt_len] = a.stream_pairs.as_slice() {
        PairInput::Stream {
            sources: a.sources,
            src_len: *src_len,
            tgt_len: *tgt_len,
        }
    } else {
        anyhow::bail!("--pairs takes two files (SRC_FILE TGT_FILE) and --stream-pairs two lengths (SRC_LEN TGT_LEN)");
    };
    let opts = PairPrepareOptions {
        input,
        tokenizer: TokenizerChoice::parse(&a.tokenizer, a.vocab_size),
        tgt_tokenizer: a
            .tgt_tokenizer
            .map(|t| TokenizerChoice::parse(&t, a.tgt_vocab_size)),
        out: a.out,
        val_fraction: a.val_fraction,
        src_block_size: a.src_block_size.unwrap_or(a.block_size),
        tgt_block_size: a.tgt_block_size.unwrap_or(a.block_size),
        lossy: a.lossy,
    };
    let report = prepare_pairs(&opts)?;
    eprintln!("{}", report.summary());
    Ok(())
}
