//! Reading a text file as a stream of UTF-8 chunks of bounded size.
//!
//! [`TextChunks`] reads about `chunk_bytes` at a time and cuts after the last `\n` in its
//! buffer, or, in a line longer than the buffer, before the last character that is whole.
//! Concatenated, the chunks equal the whole file decoded at once (a leading BOM dropped;
//! lossy mode replaces exactly the bytes whole-file `String::from_utf8_lossy` replaces),
//! and strict mode reports the first invalid byte's offset in the file. Memory is about
//! `2 × chunk_bytes` whatever the file size.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::gutenberg::{GutenbergBody, GutenbergScan};
use crate::{CorpusError, Result};

/// Default chunk size: big enough that per-chunk overhead vanishes, small enough that a
/// few chunks per core stay far below any memory budget.
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;

/// Smallest chunk: a buffer of at least 8 bytes always holds a character's lead byte in
/// its last 4 bytes past position 0, so a cut before it never yields an empty chunk.
const MIN_CHUNK_BYTES: usize = 8;

const BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

/// Iterator over the decoded text of one file, chunk by chunk (see the module docs).
pub struct TextChunks {
    path: PathBuf,
    file: Option<File>,
    lossy: bool,
    chunk_bytes: usize,
    /// Bytes read but not yet handed out (a partial line or character).
    pending: Vec<u8>,
    /// File offset of `pending[0]`.
    offset: u64,
    /// The BOM check has not been done yet.
    at_start: bool,
    eof: bool,
    bytes_read: u64,
    hasher: Option<Sha256>,
}

impl TextChunks {
    /// Opens `path` for chunked reading; errors name the file.
    pub fn open(path: &Path, lossy: bool, chunk_bytes: usize) -> Result<TextChunks> {
        let file = File::open(path).map_err(|e| open_error(path, e))?;
        Ok(TextChunks {
            path: path.to_path_buf(),
            file: Some(file),
            lossy,
            chunk_bytes: chunk_bytes.max(MIN_CHUNK_BYTES),
            pending: Vec::new(),
            offset: 0,
            at_start: true,
            eof: false,
            bytes_read: 0,
            hasher: None,
        })
    }

    /// Also computes the sha256 of the raw bytes; read it with [`TextChunks::sha256`].
    pub fn hashing(mut self) -> TextChunks {
        self.hasher = Some(Sha256::new());
        self
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Raw bytes read so far (the file size once the iterator is exhausted).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Hex sha256 of the raw bytes read so far (`None` unless [`TextChunks::hashing`]).
    pub fn sha256(&self) -> Option<String> {
        self.hasher
            .as_ref()
            .map(|h| hex::encode(h.clone().finalize()))
    }

    /// Reads until `pending` holds at least `chunk_bytes` or the file ends.
    fn fill(&mut self) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            self.eof = true;
            return Ok(());
        };
        while self.pending.len() < self.chunk_bytes {
            let start = self.pending.len();
            self.pending.resize(start + self.chunk_bytes, 0);
            let n = loop {
                match file.read(&mut self.pending[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(CorpusError::Unreadable {
                            path: self.path.clone(),
                            source,
                        })
                    }
                }
            };
            self.pending.truncate(start + n);
            if let Some(h) = self.hasher.as_mut() {
                h.update(&self.pending[start..]);
            }
            self.bytes_read += n as u64;
            if n == 0 {
                self.eof = true;
                self.file = None;
                break;
            }
        }
        Ok(())
    }

    /// Where to cut `pending`: after the last newline, else before the last lead byte of a
    /// character, else (at the end of the file, or a run of stray continuation bytes) all.
    fn cut_point(&self) -> usize {
        let buf = &self.pending;
        if self.eof {
            return buf.len();
        }
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            return i + 1;
        }
        let tail_start = buf.len().saturating_sub(4);
        (tail_start..buf.len())
            .rev()
            .find(|&i| buf[i] & 0xC0 != 0x80)
            .unwrap_or(buf.len())
    }

    fn next_chunk(&mut self) -> Result<Option<String>> {
        self.fill()?;
        if self.at_start {
            self.at_start = false;
            if self.pending.starts_with(BOM) {
                self.pending.drain(..BOM.len());
                self.offset += BOM.len() as u64;
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let cut = self.cut_point();
        // Hand out `pending[..cut]` without copying it; keep the short rest.
        let rest = self.pending.split_off(cut);
        let bytes = std::mem::replace(&mut self.pending, rest);
        let start = self.offset;
        self.offset += cut as u64;
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Some(s)),
            Err(e) if self.lossy => Ok(Some(String::from_utf8_lossy(e.as_bytes()).into_owned())),
            Err(e) => Err(CorpusError::NotUtf8 {
                path: self.path.clone(),
                offset: (start + e.utf8_error().valid_up_to() as u64) as usize,
            }),
        }
    }
}

impl Iterator for TextChunks {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        match self.next_chunk() {
            Ok(Some(s)) => Some(Ok(s)),
            Ok(None) => None,
            Err(e) => {
                // Stop after an error: the rest of the file is not read.
                self.file = None;
                self.eof = true;
                self.pending.clear();
                Some(Err(e))
            }
        }
    }
}

/// One source document streamed chunk by chunk: [`TextChunks`] plus, when asked, Project
/// Gutenberg stripping (a first pass over the file finds the body; see
/// [`crate::gutenberg`]). Chunks may be empty where the licence text was dropped.
pub struct DocChunks {
    chunks: TextChunks,
    body: Option<GutenbergBody>,
    /// WikiText cleaning ([`DocChunks::clean_lines`]); `None` once its last line is out.
    cleaner: Option<crate::LineCleaner>,
}

impl DocChunks {
    /// Opens `path`, to be read `chunk_bytes` at a time; `hash` also computes the raw
    /// bytes' sha256.
    pub fn open(
        path: &Path,
        lossy: bool,
        strip_gutenberg: bool,
        hash: bool,
        chunk_bytes: usize,
    ) -> Result<DocChunks> {
        let body = if strip_gutenberg {
            let mut scan = GutenbergScan::new();
            for chunk in TextChunks::open(path, lossy, chunk_bytes)? {
                scan.feed(&chunk?);
            }
            scan.finish().map(GutenbergBody::new)
        } else {
            None
        };
        let chunks = TextChunks::open(path, lossy, chunk_bytes)?;
        Ok(DocChunks {
            chunks: if hash { chunks.hashing() } else { chunks },
            body,
            cleaner: None,
        })
    }

    /// When `clean`, strips every line and drops empty ones ([`crate::LineCleaner`]), as the
    /// LLM-from-scratch seed cleans WikiText.
    pub fn clean_lines(mut self, clean: bool) -> DocChunks {
        self.cleaner = clean.then(crate::LineCleaner::default);
        self
    }

    /// Raw bytes read so far (see [`TextChunks::bytes_read`]).
    pub fn bytes_read(&self) -> u64 {
        self.chunks.bytes_read()
    }

    /// Hex sha256 of the raw bytes read so far, when hashing was asked for.
    pub fn sha256(&self) -> Option<String> {
        self.chunks.sha256()
    }
}

impl Iterator for DocChunks {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        let Some(chunk) = self.chunks.next() else {
            // the cleaner's last line, once
            return self.cleaner.take().map(|mut c| Ok(c.finish()));
        };
        let text = match (chunk, self.body.as_mut()) {
            (Ok(text), Some(body)) => Ok(body.filter(&text)),
            (other, _) => other,
        };
        Some(match (text, self.cleaner.as_mut()) {
            (Ok(text), Some(c)) => Ok(c.feed(&text)),
            (other, _) => other,
        })
    }
}

fn open_error(path: &Path, source: std::io::Error) -> CorpusError {
    if source.kind() == std::io::ErrorKind::NotFound {
        CorpusError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        CorpusError::Unreadable {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::decode_utf8;

    /// Every chunk of `path` read `chunk` bytes at a time, or the error's message.
    fn chunks(path: &Path, lossy: bool, chunk: usize) -> std::result::Result<Vec<String>, String> {
        TextChunks::open(path, lossy, chunk)
            .map_err(|e| e.to_string())?
            .map(|c| c.map_err(|e| e.to_string()))
            .collect()
    }

    /// The whole-file reference: `std::fs::read` and one decode.
    fn whole(path: &Path, lossy: bool) -> std::result::Result<String, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        decode_utf8(path, bytes, lossy).map_err(|e| e.to_string())
    }

    fn samples() -> Vec<(&'static str, Vec<u8>)> {
        let long_line = "ünïcødé €uro 𝄞 clef ".repeat(40);
        vec![
            ("lines", b"first line\nsecond\n\nfourth\n".to_vec()),
            ("no_newline", long_line.clone().into_bytes()),
            ("no_final_newline", format!("a\n{long_line}").into_bytes()),
            ("crlf", b"one\r\ntwo\r\n\r\nthree\r\n".to_vec()),
            (
                "multibyte_lines",
                format!("{long_line}\n{long_line}\n").into_bytes(),
            ),
            ("bom", b"\xEF\xBB\xBFbom then text\nmore\n".to_vec()),
            ("only_bom", b"\xEF\xBB\xBF".to_vec()),
            ("short_bom_prefix", b"\xEF\xBB".to_vec()),
            ("empty", Vec::new()),
            ("bad_middle", b"good line\nbad \xFF byte\nafter\n".to_vec()),
            ("bad_after_bom", b"\xEF\xBB\xBFab\xC3(cd".to_vec()),
            ("truncated_at_end", b"text then a cut \xE2\x82".to_vec()),
            ("truncated_before_newline", b"abc\xE2\x82\ndef\n".to_vec()),
            (
                "truncated_before_lead",
                b"abcdefgh\xE2\x82\xE2\x82\xACxyz".to_vec(),
            ),
            (
                "stray_continuations",
                b"abcdefgh\x80\x80\x80\x80\x80ij\n".to_vec(),
            ),
            ("overlong", b"abc\xC0\xAFdef\xF4\x90\x80\x80gh".to_vec()),
        ]
    }

    #[test]
    fn chunked_reading_equals_whole_file_reading() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in samples() {
            let path = dir.path().join(format!("{name}.txt"));
            std::fs::write(&path, &bytes).unwrap();
            for lossy in [false, true] {
                let want = whole(&path, lossy);
                // 1..=13 cut inside lines and inside every multi-byte character; the
                // file's length cuts at its end; 1 MiB reads it whole.
                let sizes = (1..=13).chain([bytes.len(), bytes.len() + 1, DEFAULT_CHUNK_BYTES]);
                for size in sizes {
                    let got = chunks(&path, lossy, size).map(|c| c.concat());
                    assert_eq!(got, want, "{name} lossy={lossy} chunk={size}");
                }
            }
        }
    }

    #[test]
    fn chunks_are_bounded_and_cut_after_newlines_when_they_can() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.txt");
        let text = "a line of text that is long enough\n".repeat(200);
        std::fs::write(&path, &text).unwrap();
        let got = chunks(&path, false, 100).unwrap();
        assert!(got.len() > 50);
        for c in &got {
            assert!(c.len() <= 200, "{}", c.len());
            assert!(c.ends_with('\n'));
        }
    }

    #[test]
    fn errors_name_the_file_and_the_offset_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.txt");
        let mut bytes = "ok\n".repeat(5000).into_bytes();
        bytes.extend_from_slice(b"x\xFFy\n");
        std::fs::write(&path, &bytes).unwrap();
        for size in [8, 100, 4096, 1 << 20] {
            let err = chunks(&path, false, size).unwrap_err();
            assert!(err.contains("late.txt"), "{err}");
            assert!(err.contains("byte offset 15001"), "{err}");
        }
        let bom = dir.path().join("bom.txt");
        std::fs::write(&bom, b"\xEF\xBB\xBFab\xFF").unwrap();
        assert!(chunks(&bom, false, 8)
            .unwrap_err()
            .contains("byte offset 5"));
    }

    #[test]
    fn hash_and_size_cover_the_raw_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.txt");
        let bytes = b"\xEF\xBB\xBFhash me\n".repeat(100);
        std::fs::write(&path, &bytes).unwrap();
        let mut r = TextChunks::open(&path, false, 16).unwrap().hashing();
        for c in r.by_ref() {
            c.unwrap();
        }
        assert_eq!(r.bytes_read(), bytes.len() as u64);
        assert_eq!(
            r.sha256().unwrap(),
            hex::encode(Sha256::digest(&bytes)),
            "sha256 of the raw file"
        );
    }
}
