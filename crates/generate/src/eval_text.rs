//! What `lmforge eval` scores: the checkpoint's own validation split, a prepared data folder's
//! `val.bin`, or text files tokenized here (documents joined by the end-of-text token, as in
//! prepared data).

use std::path::{Path, PathBuf};

use lmforge_checkpoint::Checkpoint;
use lmforge_corpus::{resolve_sources, DocChunks, SourceFilter, DEFAULT_CHUNK_BYTES};
use lmforge_data::DataDir;
use lmforge_tokenizer::StreamEncoder;

use crate::{GenerateError, Result};

/// Tokens to evaluate, their text's UTF-8 length, and what they are (for the report).
#[derive(Debug, Clone)]
pub struct EvalText {
    /// The token stream.
    pub tokens: Vec<u32>,
    /// UTF-8 bytes of the text the tokens encode (for bits per byte).
    pub bytes: usize,
    /// `DIR/val.bin` or `N file(s)`.
    pub what: String,
}

/// The text `sources` names for `ckpt`: none → the checkpoint's validation split; one
/// prepared data folder → its `val.bin`; else files, folders and globs.
pub fn eval_text(ckpt: &Checkpoint, sources: &[String]) -> Result<EvalText> {
    match sources {
        [] => {
            let dir = ckpt.data_dir().ok_or_else(|| {
                GenerateError::InvalidOption(format!(
                    "{}: the checkpoint records no data folder that still exists; name the text to evaluate",
                    ckpt.dir.display()
                ))
            })?;
            val_split(ckpt, &dir)
        }
        [one] if Path::new(one).join("meta.json").is_file() => val_split(ckpt, Path::new(one)),
        // A pair-data folder: DataDir::open names it (not its files read as text).
        [one] if lmforge_data::pairs::PairDataDir::is_pair_dir(Path::new(one)) => {
            val_split(ckpt, Path::new(one))
        }
        _ => documents(ckpt, sources),
    }
}

fn val_split(ckpt: &Checkpoint, dir: &Path) -> Result<EvalText> {
    let data = DataDir::open_expecting(dir, &ckpt.tokenizer.fingerprint())?;
    let tokens = data.val.to_vec();
    let bytes = ckpt.tokenizer.decode_bytes(&tokens)?.len();
    Ok(EvalText {
        tokens,
        bytes,
        what: format!("{}/val.bin", PathBuf::from(dir).display()),
    })
}

/// Tokenizes the named files, streamed chunk by chunk (memory holds the tokens, not the
/// text); documents are joined by the end-of-text token.
fn documents(ckpt: &Checkpoint, sources: &[String]) -> Result<EvalText> {
    let paths = resolve_sources(sources, &SourceFilter::default())?;
    let tok = &ckpt.tokenizer;
    let mut enc = StreamEncoder::new(tok);
    let mut tokens = Vec::new();
    let mut bytes = 0;
    for (doc, path) in paths.iter().enumerate() {
        if let (Some(eos), false) = (tok.eos_id(), tokens.is_empty()) {
            tokens.push(eos);
        }
        let mut out = |_: usize, ids: Vec<u32>| -> Result<()> {
            tokens.extend(ids);
            Ok(())
        };
        for chunk in DocChunks::open(path, false, false, false, DEFAULT_CHUNK_BYTES)? {
            let chunk = chunk?;
            bytes += chunk.len();
            enc.push(doc, &chunk, &mut out)?;
        }
        enc.end_doc(doc, &mut out)?;
        // Flushed per document: whether the next one gets a separator depends on this one.
        enc.flush(&mut out)?;
    }
    Ok(EvalText {
        tokens,
        bytes,
        what: format!("{} file(s)", paths.len()),
    })
}
