//! `prepare --pairs SRC TGT`, `--pairs-tsv FILE`, `--stream-pairs SRC_LEN TGT_LEN`: text →
//! tokenizers → pair-data folder (see the [module docs](super)).
//!
//! Pair corpora are read whole (a line-aligned file pair must be checked line by line
//! against its partner anyway); the last `val_fraction` of the pairs is the val split.
//! Sources longer than `src_block_size` and targets longer than `tgt_block_size - 1` are
//! cut and counted (the summary and `pairs.json` report how many).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lmforge_corpus::{read_text, resolve_sources, SourceFilter};
use lmforge_tokenizer::{write_atomic, Tokenizer};

use super::dir::{PairsMeta, SideMeta, PAIRS_META_VERSION};
use super::{PairWriter, Specials};
use crate::meta::TokenizerMeta;
use crate::prepare::TokenizerChoice;
use crate::{DataError, Dtype, Result};

/// Where the pairs come from.
#[derive(Debug, Clone)]
pub enum PairInput {
    /// Two line-aligned files: line `i` of `tgt` is the target of line `i` of `src`.
    Files {
        /// Source-side file.
        src: PathBuf,
        /// Target-side file.
        tgt: PathBuf,
    },
    /// One file of `source<TAB>target` lines.
    Tsv(PathBuf),
    /// One token stream (files, folders, globs; empty: the bundled corpus) cut into
    /// consecutive (`src_len` tokens → following `tgt_len` tokens) pairs.
    Stream {
        /// The text sources.
        sources: Vec<String>,
        /// Source tokens per pair.
        src_len: usize,
        /// Target tokens per pair.
        tgt_len: usize,
    },
}

/// Everything [`prepare_pairs`] needs.
#[derive(Debug, Clone)]
pub struct PairPrepareOptions {
    /// The pairs.
    pub input: PairInput,
    /// The tokenizer of both sides, or of the source side when `tgt_tokenizer` is set.
    pub tokenizer: TokenizerChoice,
    /// A separate target tokenizer (two vocabularies).
    pub tgt_tokenizer: Option<TokenizerChoice>,
    /// Output folder (created if missing).
    pub out: PathBuf,
    /// Fraction of the pairs (the last ones) that goes to val, in (0, 1).
    pub val_fraction: f64,
    /// Longest source kept, in tokens.
    pub src_block_size: usize,
    /// Longest decoder sequence: targets keep `tgt_block_size - 1` tokens.
    pub tgt_block_size: usize,
    /// Replace invalid UTF-8 with U+FFFD instead of failing.
    pub lossy: bool,
}

/// What [`prepare_pairs`] wrote.
#[derive(Debug, Clone)]
pub struct PairPrepareReport {
    /// The folder written.
    pub out: PathBuf,
    /// Its `pairs.json`.
    pub meta: PairsMeta,
}

impl PairPrepareReport {
    /// A few summary lines for the CLI.
    pub fn summary(&self) -> String {
        let m = &self.meta;
        let side = |name: &str, s: &SideMeta| {
            format!(
                "{name}: tokenizer {} ({} ids + <pad> {} <bos> {} <eos> {}), {} train + {} val tokens, {} pairs cut to {} tokens",
                s.tokenizer.kind, s.tokenizer.vocab_size, s.specials.pad, s.specials.bos,
                s.specials.eos, s.tokens[0], s.tokens[1], s.truncated, s.block_size
            )
        };
        format!(
            "wrote {} ({}): {} train pairs, {} val pairs\n  {}\n  {}",
            self.out.display(),
            m.mode,
            m.train_pairs,
            m.val_pairs,
            side("source", &m.src),
            side("target", &m.tgt)
        )
    }
}

/// Prepares a pair-data folder. Errors are one line (unaligned files name both line
/// counts; an empty side names the file and line) and leave no half-written file.
pub fn prepare_pairs(opts: &PairPrepareOptions) -> Result<PairPrepareReport> {
    check_options(opts)?;
    let (src_tok, tgt_tok, pairs, mode, sources) = match &opts.input {
        PairInput::Stream {
            sources,
            src_len,
            tgt_len,
        } => stream_pairs(opts, sources, *src_len, *tgt_len)?,
        input => {
            let (src_text, tgt_text, mode, sources) = read_pair_lines(input, opts.lossy)?;
            let (src_tok, tgt_tok) = tokenizers(opts, &src_text, &tgt_text)?;
            let src_ids = src_tok.encode_batch(&src_text)?;
            let tgt_ids = tgt_tok.encode_batch(&tgt_text)?;
            let pairs = src_ids.into_iter().zip(tgt_ids).collect();
            (src_tok, tgt_tok, pairs, mode, sources)
        }
    };
    let n = pairs.len();
    let n_train = ((n as f64 * (1.0 - opts.val_fraction)) as usize).min(n - 1);
    if n < 2 || n_train == 0 {
        return Err(DataError::InvalidOption(format!(
            "{n} pairs cannot make a train and a val split (need at least 2; lower --val-fraction or add pairs)"
        )));
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| DataError::io(&opts.out, e))?;
    let shared = opts.tgt_tokenizer.is_none();
    let (s_spec, t_spec) = (
        Specials::after(src_tok.vocab_size()),
        Specials::after(tgt_tok.vocab_size()),
    );
    let (s_fp, t_fp) = (src_tok.fingerprint(), tgt_tok.fingerprint());
    let s_side = (Dtype::for_vocab(s_spec.vocab_size()), s_fp.as_str());
    let t_side = (Dtype::for_vocab(t_spec.vocab_size()), t_fp.as_str());
    let (s_keep, t_keep) = (opts.src_block_size, opts.tgt_block_size - 1);
    let mut cut = [0u64; 2];
    let mut tokens = [[0u64; 2]; 2];
    for (split, (name, range)) in [("train", 0..n_train), ("val", n_train..n)]
        .into_iter()
        .enumerate()
    {
        let mut w = PairWriter::create(&opts.out, name, s_side, t_side)?;
        for (s, t) in &pairs[range] {
            cut[0] += (s.len() > s_keep) as u64;
            cut[1] += (t.len() > t_keep) as u64;
            let (s, t) = (&s[..s.len().min(s_keep)], &t[..t.len().min(t_keep)]);
            tokens[0][split] += s.len() as u64;
            tokens[1][split] += t.len() as u64;
            w.push(s, t)?;
        }
        w.finish()?;
    }
    let save = |tok: &Tokenizer, prefix: &str| -> Result<TokenizerMeta> {
        let file = format!("{prefix}{}", tok.file_name());
        tok.save(&opts.out.join(&file))?;
        Ok(TokenizerMeta {
            kind: tok.kind(),
            fingerprint: tok.fingerprint(),
            vocab_size: tok.vocab_size(),
            file,
            separator: None,
        })
    };
    let (s_meta, t_meta) = if shared {
        let m = save(&src_tok, "")?;
        (m.clone(), m)
    } else {
        (save(&src_tok, "src-")?, save(&tgt_tok, "tgt-")?)
    };
    let side = |tokenizer, specials: Specials, block_size, i: usize| SideMeta {
        tokenizer,
        specials,
        vocab_size: specials.vocab_size(),
        block_size,
        truncated: cut[i],
        tokens: tokens[i],
    };
    let meta = PairsMeta {
        lmforge_pairs: PAIRS_META_VERSION,
        lmforge_version: env!("CARGO_PKG_VERSION").to_string(),
        mode,
        shared_tokenizer: shared,
        src: side(s_meta, s_spec, opts.src_block_size, 0),
        tgt: side(t_meta, t_spec, opts.tgt_block_size, 1),
        train_pairs: n_train as u64,
        val_pairs: (n - n_train) as u64,
        split: format!("last {} of the pairs", opts.val_fraction),
        sources,
    };
    write_atomic(&opts.out.join("pairs.json"), &meta.to_bytes()?)?;
    Ok(PairPrepareReport {
        out: opts.out.clone(),
        meta,
    })
}

fn check_options(opts: &PairPrepareOptions) -> Result<()> {
    if !(opts.val_fraction > 0.0 && opts.val_fraction < 1.0) {
        return Err(DataError::InvalidOption(format!(
            "--val-fraction must be between 0 and 1 (exclusive), got {}",
            opts.val_fraction
        )));
    }
    if opts.src_block_size == 0 || opts.tgt_block_size < 2 {
        return Err(DataError::InvalidOption(format!(
            "--src-block-size must be at least 1 (got {}) and --tgt-block-size at least 2 (got {}: <bos>/<eos> plus one token)",
            opts.src_block_size, opts.tgt_block_size
        )));
    }
    if let PairInput::Stream {
        src_len, tgt_len, ..
    } = opts.input
    {
        if src_len == 0 || tgt_len == 0 {
            return Err(DataError::InvalidOption(format!(
                "--stream-pairs SRC_LEN TGT_LEN must both be at least 1 (got {src_len} {tgt_len})"
            )));
        }
    }
    Ok(())
}

type Lines = (Vec<String>, Vec<String>, String, Vec<String>);

/// Reads the two sides of a line-aligned file pair or a TSV file, refusing unaligned
/// files and empty sides.
fn read_pair_lines(input: &PairInput, lossy: bool) -> Result<Lines> {
    match input {
        PairInput::Files { src, tgt } => {
            let s = read_text(src, lossy)?;
            let t = read_text(tgt, lossy)?;
            let (s, t): (Vec<&str>, Vec<&str>) = (lines(&s), lines(&t));
            if s.len() != t.len() {
                return Err(DataError::UnalignedPairs {
                    src: src.clone(),
                    src_lines: s.len() as u64,
                    tgt: tgt.clone(),
                    tgt_lines: t.len() as u64,
                });
            }
            check_sides(src, &s, "source")?;
            check_sides(tgt, &t, "target")?;
            let names = vec![src.display().to_string(), tgt.display().to_string()];
            Ok((owned(&s), owned(&t), "pairs".into(), names))
        }
        PairInput::Tsv(path) => {
            let text = read_text(path, lossy)?;
            let (mut s, mut t) = (Vec::new(), Vec::new());
            for (i, line) in lines(&text).into_iter().enumerate() {
                let Some((a, b)) = line.split_once('\t') else {
                    return Err(bad_pair(
                        path,
                        i,
                        "no tab: each line must be source<TAB>target",
                    ));
                };
                s.push(a);
                t.push(b);
            }
            check_sides(path, &s, "source")?;
            check_sides(path, &t, "target")?;
            let names = vec![path.display().to_string()];
            Ok((owned(&s), owned(&t), "pairs-tsv".into(), names))
        }
        PairInput::Stream { .. } => Err(DataError::InvalidOption(
            "stream pairs are not line pairs".into(),
        )),
    }
}

/// Lines without their `\n` / `\r\n`; a final newline does not make an extra line.
fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn bad_pair(path: &Path, i: usize, reason: &str) -> DataError {
    DataError::BadPair {
        path: path.to_path_buf(),
        line: i as u64 + 1,
        reason: reason.to_string(),
    }
}

fn check_sides(path: &Path, side: &[&str], what: &str) -> Result<()> {
    if side.is_empty() {
        return Err(DataError::Empty {
            what: path.display().to_string(),
        });
    }
    match side.iter().position(|l| l.trim().is_empty()) {
        Some(i) => Err(bad_pair(
            path,
            i,
            &format!("empty {what} side; every pair needs text on both sides (remove the line or fill it)"),
        )),
        None => Ok(()),
    }
}

/// Loads or trains the tokenizers: one on both sides' text, or one per side.
fn tokenizers(
    opts: &PairPrepareOptions,
    src: &[String],
    tgt: &[String],
) -> Result<(Arc<Tokenizer>, Arc<Tokenizer>)> {
    match &opts.tgt_tokenizer {
        None => {
            let both: Vec<&str> = src.iter().chain(tgt).map(|s| s.as_str()).collect();
            let tok = make_tokenizer(&opts.tokenizer, &both)?;
            Ok((tok.clone(), tok))
        }
        Some(tgt_choice) => {
            let s: Vec<&str> = src.iter().map(|s| s.as_str()).collect();
            let t: Vec<&str> = tgt.iter().map(|s| s.as_str()).collect();
            Ok((
                make_tokenizer(&opts.tokenizer, &s)?,
                make_tokenizer(tgt_choice, &t)?,
            ))
        }
    }
}

fn make_tokenizer(choice: &TokenizerChoice, texts: &[&str]) -> Result<Arc<Tokenizer>> {
    Ok(match choice {
        TokenizerChoice::Train { kind, vocab_size } => {
            Arc::new(lmforge_tokenizer::train(*kind, *vocab_size, texts)?)
        }
        TokenizerChoice::Load(spec) => Arc::new(Tokenizer::load(spec)?),
        TokenizerChoice::Given(t) => t.clone(),
    })
}

type Made = (
    Arc<Tokenizer>,
    Arc<Tokenizer>,
    Vec<(Vec<u32>, Vec<u32>)>,
    String,
    Vec<String>,
);

/// `--stream-pairs`: the sources' token stream (documents joined by the tokenizer's
/// end-of-text id when it has one) cut into consecutive (`src_len` → `tgt_len`) pairs.
fn stream_pairs(
    opts: &PairPrepareOptions,
    sources: &[String],
    src_len: usize,
    tgt_len: usize,
) -> Result<Made> {
    if opts.tgt_tokenizer.is_some() {
        return Err(DataError::InvalidOption(
            "--stream-pairs cuts one token stream, so it takes one tokenizer (drop --tgt-tokenizer)".into(),
        ));
    }
    let specs = if sources.is_empty() {
        vec![lmforge_corpus::bundled_corpus_dir()?
            .to_string_lossy()
            .into_owned()]
    } else {
        sources.to_vec()
    };
    let paths = resolve_sources(&specs, &SourceFilter::default())?;
    let texts = paths
        .iter()
        .map(|p| read_text(p, opts.lossy))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    let tok = make_tokenizer(&opts.tokenizer, &refs)?;
    let mut stream = Vec::new();
    for text in &texts {
        stream.extend(tok.encode(text)?);
        stream.extend(tok.eos_id());
    }
    let pairs: Vec<_> = stream
        .chunks_exact(src_len + tgt_len)
        .map(|w| (w[..src_len].to_vec(), w[src_len..].to_vec()))
        .collect();
    if pairs.is_empty() {
        return Err(DataError::InvalidOption(format!(
            "the sources hold {} tokens, fewer than one pair of {src_len} + {tgt_len}; lower --stream-pairs or add text",
            stream.len()
        )));
    }
    Ok((tok.clone(), tok, pairs, "stream-pairs".into(), specs))
}

/// The tokenizer copy must be a plain file name inside the folder.
pub(super) fn check_file_name(meta_path: &Path, name: &str) -> Result<()> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(_)), None) => Ok(()),
        _ => Err(DataError::BadMeta {
            path: meta_path.to_path_buf(),
            reason: format!("tokenizer file {name:?} is not a file name inside the folder"),
        }),
    }
}
