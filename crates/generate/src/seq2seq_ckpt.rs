//! Encoder–decoder checkpoints for generation and evaluation: the model, the pair data's
//! `pairs.json` (special ids) and the source/target tokenizers saved beside it, plus
//! translation of text and evaluation on pair data (loss, perplexity, exact match, BLEU).

use std::path::{Path, PathBuf};

use lmforge_checkpoint::find::resolve_checkpoint_dir;
use lmforge_data::pairs::{BatchShape, PadTo, PairBatch, PairBatches, PairSet, PairsMeta};
use lmforge_model::seq2seq::{io as s2s_io, Arch, CachedDecoder, Seq2seq, Seq2seqBatch};
use lmforge_tokenizer::Tokenizer;
use serde::Serialize;

use crate::bleu::{corpus_bleu, Bleu};
use crate::seq2seq::{decode, Hypothesis, Seq2SeqOptions, Seq2SeqStep};
use crate::{GenerateError, Result};

/// An encoder–decoder checkpoint, ready to translate.
pub struct Seq2SeqCheckpoint {
    /// The checkpoint folder.
    pub dir: PathBuf,
    /// The model.
    pub model: Seq2seq,
    /// The pair data's description (special ids, tokenizer files).
    pub pairs: PairsMeta,
    /// Source-side tokenizer.
    pub src_tokenizer: Tokenizer,
    /// Target-side tokenizer.
    pub tgt_tokenizer: Tokenizer,
}

/// True when `dir` (a checkpoint or run folder) holds an encoder–decoder model.
pub fn is_seq2seq_checkpoint(dir: &Path) -> Result<bool> {
    let dir = resolve_checkpoint_dir(dir)?;
    Ok(s2s_io::checkpoint_arch(&dir)? == Arch::EncoderDecoder)
}

impl Seq2SeqCheckpoint {
    /// Loads `dir` (a run folder works too: its best, else last, checkpoint).
    pub fn load(dir: &Path) -> Result<Seq2SeqCheckpoint> {
        let dir = resolve_checkpoint_dir(dir)?;
        let model = s2s_io::load_model_dir(&dir)?;
        let meta_path = dir.join("pairs.json");
        if !meta_path.is_file() {
            return Err(GenerateError::InvalidOption(format!(
                "{}: encoder-decoder checkpoint without pairs.json (its special ids and tokenizers); train it with `lmforge train` on pair data",
                dir.display()
            )));
        }
        let pairs = PairsMeta::read(&meta_path)?;
        let src_tokenizer = Tokenizer::load_file(&dir.join(&pairs.src.tokenizer.file))?;
        let tgt_tokenizer = Tokenizer::load_file(&dir.join(&pairs.tgt.tokenizer.file))?;
        let cfg = model.config();
        for (side, need, have) in [
            ("source", pairs.src.vocab_size, cfg.src_vocab_size),
            ("target", pairs.tgt.vocab_size, cfg.tgt_vocab_size),
        ] {
            if need > have {
                return Err(GenerateError::InvalidOption(format!(
                    "{}: the {side} side needs {need} ids (tokenizer + <pad>/<bos>/<eos>) but the model has {have}",
                    dir.display()
                )));
            }
        }
        Ok(Seq2SeqCheckpoint {
            dir,
            model,
            pairs,
            src_tokenizer,
            tgt_tokenizer,
        })
    }

    /// Source ids of `text`, cut to `src_block_size` (then a warning says by how much).
    /// An empty source is an error.
    pub fn encode_source(&self, text: &str) -> Result<(Vec<u32>, Option<String>)> {
        let mut ids = self
            .src_tokenizer
            .encode(text.trim_end_matches(['\n', '\r']))?;
        if ids.is_empty() {
            return Err(GenerateError::Prompt(
                "the source is empty; give --source TEXT or a --source-file without empty lines"
                    .into(),
            ));
        }
        let max = self.model.config().src_block_size;
        let warning = (ids.len() > max).then(|| {
            format!(
                "the source has {} tokens; only the first {max} (src_block_size) are used",
                ids.len()
            )
        });
        ids.truncate(max);
        Ok((ids, warning))
    }

    /// Decodes `src` (ids) with `opts`' strategy; the specials come from `pairs.json`.
    pub fn decode_ids(&self, src: &[u32], opts: &Seq2SeqOptions) -> Result<Hypothesis> {
        let mut step = ModelStep::new(&self.model);
        decode(&mut step, src, opts)
    }

    /// [`Self::decode_ids`] for greedy or sampling, calling `on_token(id, logits)` as each
    /// token is decoded (see [`crate::seq2seq::decode_streaming`]).
    pub fn decode_ids_streaming(
        &self,
        src: &[u32],
        opts: &Seq2SeqOptions,
        on_token: &mut dyn FnMut(u32, &[f32]) -> std::ops::ControlFlow<()>,
    ) -> Result<Hypothesis> {
        let mut step = ModelStep::new(&self.model);
        crate::seq2seq::decode_streaming(&mut step, src, opts, on_token)
    }

    /// `opts` with this checkpoint's `<bos>`/`<eos>`.
    pub fn options(
        &self,
        decoding: crate::seq2seq::Decoding,
        max_new_tokens: usize,
    ) -> Seq2SeqOptions {
        Seq2SeqOptions {
            decoding,
            max_new_tokens,
            bos: self.pairs.tgt.specials.bos,
            eos: self.pairs.tgt.specials.eos,
        }
    }

    /// Target text of generated ids (special ids dropped).
    pub fn target_text(&self, ids: &[u32]) -> Result<String> {
        let sp = self.pairs.tgt.specials;
        let keep: Vec<u32> = ids.iter().copied().filter(|&i| !sp.is_special(i)).collect();
        Ok(self.tgt_tokenizer.decode(&keep)?)
    }

    /// Translates one line of text: (target text, warnings).
    pub fn translate(&self, text: &str, opts: &Seq2SeqOptions) -> Result<(String, Vec<String>)> {
        let (ids, warning) = self.encode_source(text)?;
        let hyp = self.decode_ids(&ids, opts)?;
        Ok((
            self.target_text(&hyp.tokens)?,
            warning.into_iter().collect(),
        ))
    }
}

/// [`CachedDecoder`] as a [`Seq2SeqStep`].
pub struct ModelStep<'m> {
    dec: CachedDecoder<'m>,
    vocab: usize,
    max_steps: usize,
}

impl<'m> ModelStep<'m> {
    /// A step model over `model`.
    pub fn new(model: &'m Seq2seq) -> ModelStep<'m> {
        let cfg = model.config();
        ModelStep {
            vocab: cfg.tgt_vocab_size,
            max_steps: cfg.tgt_block_size,
            dec: model.decoder(),
        }
    }
}

impl Seq2SeqStep for ModelStep<'_> {
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
    fn encode(&mut self, src: &[u32]) -> Result<()> {
        Ok(self.dec.encode(src)?)
    }
    fn start(&mut self, rows: usize) -> Result<()> {
        self.dec.start(rows);
        Ok(())
    }
    fn step(&mut self, last: &[u32]) -> Result<&[f32]> {
        Ok(self.dec.step(last)?)
    }
    fn reorder(&mut self, parents: &[usize]) -> Result<()> {
        Ok(self.dec.reorder(parents)?)
    }
}

/// What [`evaluate_pairs`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct PairEvalReport {
    /// Pairs scored by the loss (all of the split).
    pub pairs: usize,
    /// Target positions scored (tokens + `<eos>`, padding excluded).
    pub target_tokens: usize,
    /// Mean cross-entropy per target token (nats), teacher-forced.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Pairs decoded for exact match and BLEU (the first `decode_pairs` of the split).
    pub decoded: usize,
    /// Share of decoded pairs whose output ids equal the reference target's ids.
    pub exact_match: f64,
    /// Corpus BLEU (sacreBLEU defaults) of the decoded outputs against the references.
    pub bleu: f64,
    /// sacreBLEU's summary line.
    pub bleu_line: String,
}

/// Evaluates `set` (pairs prepared with this checkpoint's tokenizers): teacher-forced loss
/// over every pair in batches of `batch`, then decodes the first `decode_pairs` sources with
/// `decoding` for exact match and BLEU. `progress(done, total)` is called as pairs finish.
pub fn evaluate_pairs(
    ckpt: &mut Seq2SeqCheckpoint,
    set: &PairSet,
    batch: usize,
    decode_pairs: usize,
    decoding: crate::seq2seq::Decoding,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PairEvalReport> {
    let cfg = ckpt.model.config().clone();
    let shape = BatchShape {
        batch,
        src_block: cfg.src_block_size,
        tgt_block: cfg.tgt_block_size,
        pad_to: PadTo::Longest,
        src: ckpt.pairs.src.specials,
        tgt: ckpt.pairs.tgt.specials,
    };
    let walk = PairBatches::new(set.clone(), shape)?;
    let decode_pairs = decode_pairs.min(set.len());
    let total = set.len() + decode_pairs;
    let (mut sum, mut tokens) = (0.0f64, 0usize);
    let mut b = PairBatch::default();
    for i in 0..walk.len() {
        walk.fill(i, &mut b)?;
        let loss = ckpt.model.loss(&Seq2seqBatch {
            batch: b.batch,
            src_len: b.src_len,
            tgt_len: b.tgt_len,
            src: &b.src,
            tgt_in: &b.tgt_in,
            tgt_out: &b.tgt_out,
            src_pad_id: b.src_pad_id,
        })?;
        sum += loss as f64 * b.target_tokens() as f64;
        tokens += b.target_tokens();
        progress(walk.rows(i).end, total);
    }
    let opts = ckpt.options(decoding, cfg.tgt_block_size);
    let (mut hyps, mut refs, mut hits) = (Vec::new(), Vec::new(), 0usize);
    for i in 0..decode_pairs {
        let (mut src, mut tgt) = set.pair(i);
        src.truncate(cfg.src_block_size);
        tgt.truncate(cfg.tgt_block_size - 1);
        let h = ckpt.decode_ids(&src, &opts)?;
        hits += (h.tokens == tgt) as usize;
        hyps.push(ckpt.target_text(&h.tokens)?);
        refs.push(ckpt.target_text(&tgt)?);
        progress(set.len() + i + 1, total);
    }
    let bleu: Bleu = corpus_bleu(&hyps, &refs);
    let loss = sum / tokens.max(1) as f64;
    Ok(PairEvalReport {
        pairs: set.len(),
        target_tokens: tokens,
        loss,
        perplexity: loss.exp(),
        decoded: decode_pairs,
        exact_match: if decode_pairs == 0 {
            0.0
        } else {
            hits as f64 / decode_pairs as f64
        },
        bleu: bleu.score,
        bleu_line: bleu.to_string(),
    })
}
