//! The training corpus as a stream of segments: files read chunk by chunk
//! ([`DocChunks`]), cut by a [`CutRule`] so that counting segments equals counting whole
//! files, with a progress bar over the bytes read. Reading errors stop the stream and are
//! returned by [`Segments::finish`].

use std::path::PathBuf;

use lmforge_corpus::{CorpusError, DocChunks, Progress, DEFAULT_CHUNK_BYTES};

use crate::parallel::CHUNK_BYTES;
use crate::segment::{CutRule, Segmenter};
use crate::stream::BATCH_BYTES;
use crate::Result;

/// How training reads its sources.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Replace invalid UTF-8 with U+FFFD instead of failing.
    pub lossy: bool,
    /// Strip Project Gutenberg licence headers and footers.
    pub strip_gutenberg: bool,
    /// No progress output.
    pub quiet: bool,
    /// Bytes read from a file at a time.
    pub chunk_bytes: usize,
    /// Target size of the segments counted in parallel.
    pub segment_bytes: usize,
    /// How a `word` tokenizer splits (other kinds ignore it).
    pub word: crate::word::WordOptions,
    /// Strip every line and drop empty ones first (WikiText cleaning).
    pub clean_lines: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            lossy: false,
            strip_gutenberg: false,
            quiet: true,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            segment_bytes: CHUNK_BYTES,
            word: crate::word::WordOptions::default(),
            clean_lines: false,
        }
    }
}

/// Iterator over the segments of every file, in order (see the module docs).
pub struct Segments {
    paths: Vec<PathBuf>,
    /// The next file to open.
    next_path: usize,
    opts: StreamOptions,
    reader: Option<DocChunks>,
    segmenter: Segmenter,
    progress: Progress,
    error: Option<CorpusError>,
    text_bytes: u64,
}

impl Segments {
    /// Segments of `paths` cut by `rule`.
    pub fn new(paths: &[PathBuf], rule: CutRule, opts: &StreamOptions) -> Segments {
        let total = paths
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        Segments {
            paths: paths.to_vec(),
            next_path: 0,
            opts: opts.clone(),
            reader: None,
            segmenter: Segmenter::new(rule, opts.segment_bytes),
            progress: Progress::new("tokenizer training", total, opts.quiet),
            error: None,
            text_bytes: 0,
        }
    }

    /// The next segments, about [`BATCH_BYTES`] of them (`None` at the end).
    pub fn next_batch(&mut self) -> Option<Vec<String>> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while bytes < BATCH_BYTES {
            match self.next() {
                Some(s) => {
                    bytes += s.len();
                    batch.push(s);
                }
                None => break,
            }
        }
        (!batch.is_empty()).then_some(batch)
    }

    /// Ends the stream: the first reading error, or the bytes of text read.
    pub fn finish(&mut self) -> Result<u64> {
        match self.error.take() {
            Some(e) => {
                self.progress.abandon();
                Err(e.into())
            }
            None => {
                self.progress.finish();
                Ok(self.text_bytes)
            }
        }
    }

    /// The next chunk of the current file, opening the next file when one ends;
    /// `Ok(None)` at the end of a file.
    fn next_chunk(&mut self) -> std::result::Result<Option<String>, CorpusError> {
        let reader = match self.reader.as_mut() {
            Some(r) => r,
            None => {
                let Some(path) = self.paths.get(self.next_path) else {
                    return Ok(None);
                };
                self.next_path += 1;
                let o = &self.opts;
                let opened =
                    DocChunks::open(path, o.lossy, o.strip_gutenberg, false, o.chunk_bytes)?
                        .clean_lines(o.clean_lines);
                self.reader.insert(opened)
            }
        };
        let before = reader.bytes_read();
        let chunk = reader.next().transpose()?;
        self.progress.inc(reader.bytes_read() - before);
        if chunk.is_none() {
            self.reader = None;
        }
        Ok(chunk)
    }
}

impl Iterator for Segments {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        while self.error.is_none() {
            let at_end = self.reader.is_none() && self.next_path == self.paths.len();
            if at_end {
                return self.segmenter.finish();
            }
            match self.next_chunk() {
                Ok(Some(chunk)) => {
                    self.text_bytes += chunk.len() as u64;
                    if let Some(s) = self.segmenter.push(&chunk) {
                        return Some(s);
                    }
                }
                // A file ended: its rest is a segment of its own (documents are not joined).
                Ok(None) => {
                    if let Some(s) = self.segmenter.finish() {
                        return Some(s);
                    }
                }
                Err(e) => self.error = Some(e),
            }
        }
        None
    }
}
