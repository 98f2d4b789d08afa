//! Prints lmforge's logits for a token sequence as JSON, for `tools/check_export.py` to
//! compare with an exported model run by `transformers`.
//!
//! `cargo run -p lmforge-interop --example dump_logits -- CHECKPOINT IDS_JSON OUT_JSON`
//! IDS_JSON: a JSON array of token ids (at most the block size). OUT_JSON gets
//! `[[f32; vocab]; T]`, the vocabulary cropped to the tokenizer's size like the export.

use std::path::Path;

use lmforge_checkpoint::Checkpoint;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ckpt, ids, out] = args.as_slice() else {
        return Err("usage: dump_logits CHECKPOINT IDS_JSON OUT_JSON".into());
    };
    let mut ckpt = Checkpoint::load(Path::new(ckpt))?;
    let ids: Vec<u32> = serde_json::from_str(&std::fs::read_to_string(ids)?)?;
    let v = ckpt.model.config().vocab_size;
    let keep = ckpt.tokenizer.vocab_size();
    ckpt.model.set_training(false);
    ckpt.model.forward(&ids, None, 1, ids.len())?;
    let rows: Vec<&[f32]> = ckpt.model.logits().chunks(v).map(|r| &r[..keep]).collect();
    std::fs::write(out, serde_json::to_string(&rows)?)?;
    Ok(())
}
