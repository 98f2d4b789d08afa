//! Encoding documents that arrive chunk by chunk: text is cut into segments at safe points
//! ([`crate::segment`]), segments are gathered into batches of about [`BATCH_BYTES`] and
//! encoded on all cores, and their ids are handed out in document order. Memory is one
//! batch (plus, for tokenizers that cannot be cut, one document), whatever the corpus size.

use rayon::prelude::*;

use crate::parallel::CHUNK_BYTES;
use crate::segment::{CutRule, Segmenter};
use crate::{Tokenizer, TokenizerError};

/// Text encoded together in one parallel step.
pub const BATCH_BYTES: usize = 16 << 20;

/// Streams documents through a tokenizer; see the module docs.
pub struct StreamEncoder<'t> {
    tok: &'t Tokenizer,
    segmenter: Segmenter,
    /// Segments waiting to be encoded, with the document each belongs to.
    batch: Vec<(usize, String)>,
    batch_bytes: usize,
    batch_limit: usize,
}

impl<'t> StreamEncoder<'t> {
    /// An encoder with `tok`'s cut rule and the usual segment and batch sizes.
    pub fn new(tok: &'t Tokenizer) -> StreamEncoder<'t> {
        Self::with_sizes(tok, CHUNK_BYTES, BATCH_BYTES)
    }

    /// An encoder cutting segments of about `segment_bytes`, encoding `batch_bytes` at a time
    /// (the ids do not depend on either; tests use tiny sizes).
    pub fn with_sizes(
        tok: &'t Tokenizer,
        segment_bytes: usize,
        batch_bytes: usize,
    ) -> StreamEncoder<'t> {
        StreamEncoder {
            tok,
            segmenter: Segmenter::new(CutRule::for_encoding(tok), segment_bytes),
            batch: Vec::new(),
            batch_bytes: 0,
            batch_limit: batch_bytes,
        }
    }

    /// Adds the next piece of document `doc`'s text. When a batch fills up it is encoded
    /// and `out(doc, ids)` is called for each of its segments, in order.
    pub fn push<E: From<TokenizerError>>(
        &mut self,
        doc: usize,
        text: &str,
        out: &mut impl FnMut(usize, Vec<u32>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.segmenter.push(text) {
            Some(segment) => self.add(doc, segment, out),
            None => Ok(()),
        }
    }

    /// Document `doc` ended: its buffered text becomes its last segment.
    pub fn end_doc<E: From<TokenizerError>>(
        &mut self,
        doc: usize,
        out: &mut impl FnMut(usize, Vec<u32>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.segmenter.finish() {
            Some(segment) => self.add(doc, segment, out),
            None => Ok(()),
        }
    }

    fn add<E: From<TokenizerError>>(
        &mut self,
        doc: usize,
        segment: String,
        out: &mut impl FnMut(usize, Vec<u32>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.batch_bytes += segment.len();
        self.batch.push((doc, segment));
        if self.batch_bytes >= self.batch_limit {
            self.flush(out)?;
        }
        Ok(())
    }

    /// Encodes every waiting segment (call once after the last [`StreamEncoder::end_doc`]).
    pub fn flush<E: From<TokenizerError>>(
        &mut self,
        out: &mut impl FnMut(usize, Vec<u32>) -> Result<(), E>,
    ) -> Result<(), E> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let ids: Vec<Vec<u32>> = batch
            .par_iter()
            .map(|(_, text)| self.tok.encode_parallel(text))
            .collect::<Result<_, TokenizerError>>()?;
        for ((doc, _), ids) in batch.iter().zip(ids) {
            out(*doc, ids)?;
        }
        Ok(())
    }
}
