//! `lmforge eval` for encoder–decoder checkpoints on pair data: teacher-forced target-token
//! loss and perplexity, then exact match and corpus BLEU (sacreBLEU defaults) of decoded
//! outputs.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use lmforge_data::pairs::PairDataDir;
use lmforge_generate::seq2seq::Decoding;
use lmforge_generate::seq2seq_ckpt::{evaluate_pairs, Seq2SeqCheckpoint};

use super::eval::EvalArgs;

/// The pair-data folder to score: the one named, else the one the checkpoint was trained
/// on (its `state.json`'s `data_dir`, or its run's `last/`).
fn data_folder(a: &EvalArgs, ckpt_dir: &Path) -> anyhow::Result<PathBuf> {
    match a.sources.as_slice() {
        [one] => return Ok(PathBuf::from(one)),
        [] => {}
        _ => anyhow::bail!(
            "an encoder-decoder checkpoint is evaluated on one pair-data folder (from `lmforge prepare --pairs`), got {} sources",
            a.sources.len()
        ),
    }
    let recorded = [ckpt_dir.to_path_buf(), ckpt_dir.join("../last")]
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("state.json")).ok())
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .find_map(|v| v.get("data_dir")?.as_str().map(PathBuf::from));
    match recorded {
        Some(d) if d.is_dir() => Ok(d),
        _ => anyhow::bail!(
            "{}: no recorded pair-data folder; name one: lmforge eval --checkpoint DIR PAIR_DATA_DIR",
            ckpt_dir.display()
        ),
    }
}

/// Runs `lmforge eval` on an encoder–decoder checkpoint.
pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let precision = a.dtype.resolve()?;
    let mut ckpt = Seq2SeqCheckpoint::load(&a.checkpoint)?;
    ckpt.model.backend_mut().set_precision(precision);
    let dir = data_folder(&a, &ckpt.dir)?;
    let data = PairDataDir::open(&dir)?;
    for (side, data_fp, ckpt_fp) in [
        (
            "source",
            &data.meta.src.tokenizer.fingerprint,
            &ckpt.pairs.src.tokenizer.fingerprint,
        ),
        (
            "target",
            &data.meta.tgt.tokenizer.fingerprint,
            &ckpt.pairs.tgt.tokenizer.fingerprint,
        ),
    ] {
        anyhow::ensure!(
            data_fp == ckpt_fp,
            "{}: the {side} side was prepared with tokenizer {data_fp} but the checkpoint uses {ckpt_fp}; prepare the pairs with the checkpoint's tokenizer",
            dir.display()
        );
    }
    let set = if a.split == "train" {
        &data.train
    } else {
        &data.val
    };
    let decoding = match a.beams {
        Some(beams) => Decoding::Beam {
            beams,
            length_penalty: 1.0,
        },
        None => Decoding::Greedy,
    };
    eprintln!("dtype: {}", precision.describe());
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "eval {bar:30} {pos}/{len} pairs (loss, then decoding) [{eta}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let r = evaluate_pairs(
        &mut ckpt,
        set,
        a.batch,
        a.decode.unwrap_or(usize::MAX),
        decoding,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("dtype".into(), precision.dtype().into());
        }
        println!("{v}");
    } else {
        println!(
            "evaluated {} ({} split): {} pairs, {} target tokens",
            dir.display(),
            a.split,
            r.pairs,
            r.target_tokens
        );
        println!("dtype:          {}", precision.dtype());
        println!("loss:           {:.4} nats/token", r.loss);
        println!("perplexity:     {:.3}", r.perplexity);
        if r.decoded > 0 {
            println!("decoded:        {} pairs ({decoding:?})", r.decoded);
            println!("exact match:    {:.2}%", 100.0 * r.exact_match);
            println!("{}", r.bleu_line);
        }
    }
    Ok(())
}
