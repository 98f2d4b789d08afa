//! The token file format (`train.bin`, `val.bin`, `test.bin`) and its streaming writer and
//! memory-mapped reader.
//!
//! Layout, all little-endian, a fixed 64-byte header then the tokens:
//!
//! | bytes | field |
//! |---|---|
//! | 0..6 | magic `LMFTOK` |
//! | 6..8 | format version (u16, currently 1) |
//! | 8..12 | dtype: bytes per token (u32: 2 = u16, 4 = u32) |
//! | 12..16 | header length in bytes (u32, 64) |
//! | 16..24 | token count (u64) |
//! | 24..56 | tokenizer fingerprint (ASCII, NUL-padded) |
//! | 56..64 | reserved (zero) |
//!
//! The header is 64 bytes so tokens start 4-byte aligned inside a page-aligned mapping, and
//! the count is checked against the file size so a truncated copy is refused. u16 halves
//! the file (and the page cache it needs) whenever the vocabulary fits in 65 536 ids, as
//! nanoGPT does; larger vocabularies (o200k_base) use u32.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::{DataError, Result};

/// File magic.
pub const MAGIC: &[u8; 6] = b"LMFTOK";
/// Current format version.
pub const VERSION: u16 = 1;
/// Header size in bytes; tokens start here.
pub const HEADER_LEN: usize = 64;
const FINGERPRINT_LEN: usize = 32;

/// Width of one stored token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// Two bytes per token: vocabularies of up to 65,536 ids.
    U16,
    /// Four bytes per token.
    U32,
}

impl Dtype {
    /// The narrowest dtype that holds every id of a vocabulary of `vocab_size` ids.
    pub fn for_vocab(vocab_size: usize) -> Dtype {
        if vocab_size <= 1 << 16 {
            Dtype::U16
        } else {
            Dtype::U32
        }
    }

    /// Bytes per token.
    pub fn width(self) -> usize {
        match self {
            Dtype::U16 => 2,
            Dtype::U32 => 4,
        }
    }

    fn from_code(code: u32) -> Option<Dtype> {
        match code {
            2 => Some(Dtype::U16),
            4 => Some(Dtype::U32),
            _ => None,
        }
    }

    fn max_id(self) -> u32 {
        match self {
            Dtype::U16 => u16::MAX as u32,
            Dtype::U32 => u32::MAX,
        }
    }
}

/// A parsed token file header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version of the file.
    pub version: u16,
    /// Width of the stored tokens.
    pub dtype: Dtype,
    /// Number of tokens after the header.
    pub count: u64,
    /// Fingerprint of the tokenizer that produced the tokens.
    pub fingerprint: String,
}

impl Header {
    /// Serialises the header into its 64 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..6].copy_from_slice(MAGIC);
        b[6..8].copy_from_slice(&self.version.to_le_bytes());
        b[8..12].copy_from_slice(&(self.dtype.width() as u32).to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.count.to_le_bytes());
        let fp = self.fingerprint.as_bytes();
        let n = fp.len().min(FINGERPRINT_LEN);
        b[24..24 + n].copy_from_slice(&fp[..n]);
        b
    }

    /// Parses and validates a header read from `path` (used in messages).
    pub fn parse(path: &Path, b: &[u8]) -> Result<Header> {
        if b.len() < HEADER_LEN || &b[0..6] != MAGIC {
            return Err(DataError::BadMagic {
                path: path.to_path_buf(),
            });
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let version = u16::from_le_bytes([b[6], b[7]]);
        if version != VERSION {
            return Err(DataError::BadVersion {
                path: path.to_path_buf(),
                found: version,
                supported: VERSION,
            });
        }
        let code = u32_at(8);
        let dtype = Dtype::from_code(code).ok_or(DataError::BadDtype {
            path: path.to_path_buf(),
            code,
        })?;
        let mut count = [0u8; 8];
        count.copy_from_slice(&b[16..24]);
        let fp = &b[24..24 + FINGERPRINT_LEN];
        let end = fp.iter().position(|&c| c == 0).unwrap_or(FINGERPRINT_LEN);
        Ok(Header {
            version,
            dtype,
            count: u64::from_le_bytes(count),
            fingerprint: String::from_utf8_lossy(&fp[..end]).into_owned(),
        })
    }
}

/// Streams tokens into a temp file next to `path`; [`TokenWriter::finish`] writes the
/// header and renames it into place. Dropped unfinished, the temp file is removed, so a
/// half-written file never appears under the final name.
pub struct TokenWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    dtype: Dtype,
    fingerprint: String,
    count: u64,
    scratch: Vec<u8>,
}

impl TokenWriter {
    /// Starts writing the token file `path`.
    pub fn create(path: &Path, dtype: Dtype, fingerprint: &str) -> Result<TokenWriter> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let mut w = TokenWriter {
            path: path.to_path_buf(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            dtype,
            fingerprint: fingerprint.to_string(),
            count: 0,
            scratch: Vec::new(),
        };
        let header = w.header().to_bytes();
        w.write_raw(&header)?;
        Ok(w)
    }

    fn header(&self) -> Header {
        Header {
            version: VERSION,
            dtype: self.dtype,
            count: self.count,
            fingerprint: self.fingerprint.clone(),
        }
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let tmp = &self.tmp;
        match self.out.as_mut() {
            Some(out) => out.write_all(bytes).map_err(|e| DataError::io(tmp, e)),
            None => Err(DataError::io(
                tmp,
                std::io::Error::other("writer already finished"),
            )),
        }
    }

    /// Tokens written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The dtype tokens are stored as.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Appends tokens. Errors if an id does not fit the dtype (a tokenizer/dtype mix-up).
    pub fn push(&mut self, ids: &[u32]) -> Result<()> {
        let max = self.dtype.max_id();
        if let Some(pos) = ids.iter().position(|&id| id > max) {
            return Err(DataError::IdTooLarge {
                path: self.path.clone(),
                id: ids[pos],
                position: self.count + pos as u64,
            });
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        match self.dtype {
            Dtype::U16 => scratch.extend(ids.iter().flat_map(|&id| (id as u16).to_le_bytes())),
            Dtype::U32 => scratch.extend(ids.iter().flat_map(|&id| id.to_le_bytes())),
        }
        let r = self.write_raw(&scratch);
        self.scratch = scratch;
        r?;
        self.count += ids.len() as u64;
        Ok(())
    }

    /// Moves every token after the first `keep` into `other` (same dtype), leaving this
    /// writer with `keep` tokens. Copies in 1 MiB pieces, so memory stays bounded: this is
    /// how the nanoGPT-style "last fraction is val" split is made without knowing the total
    /// token count in advance (see [`crate::split`]).
    pub fn split_off_tail(&mut self, keep: u64, other: &mut TokenWriter) -> Result<()> {
        if keep > self.count {
            return Err(DataError::InvalidOption(format!(
                "cannot keep {keep} of {} tokens",
                self.count
            )));
        }
        if other.dtype != self.dtype {
            return Err(DataError::InvalidOption(
                "split target has another dtype".into(),
            ));
        }
        let tmp = self.tmp.clone();
        let ioerr = |e| DataError::io(&tmp, e);
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| ioerr(std::io::Error::other("writer already finished")))?;
        out.flush().map_err(ioerr)?;
        let width = self.dtype.width() as u64;
        let cut = HEADER_LEN as u64 + keep * width;
        let mut reader = File::open(&self.tmp).map_err(ioerr)?;
        reader.seek(SeekFrom::Start(cut)).map_err(ioerr)?;
        let mut remaining = (self.count - keep) * width;
        let mut buf = vec![0u8; 1 << 20];
        while remaining > 0 {
            let n = (buf.len() as u64).min(remaining) as usize;
            reader.read_exact(&mut buf[..n]).map_err(ioerr)?;
            other.write_raw(&buf[..n])?;
            remaining -= n as u64;
        }
        other.count += self.count - keep;
        let file = out.get_mut();
        file.set_len(cut).map_err(ioerr)?;
        file.seek(SeekFrom::Start(cut)).map_err(ioerr)?;
        self.count = keep;
        Ok(())
    }

    /// Writes the header, syncs and renames the file into place; returns the token count.
    pub fn finish(mut self) -> Result<u64> {
        let header = self.header().to_bytes();
        let tmp = self.tmp.clone();
        let ioerr = |e| DataError::io(&tmp, e);
        let out = self
            .out
            .take()
            .ok_or_else(|| ioerr(std::io::Error::other("writer already finished")))?;
        let mut file = out.into_inner().map_err(|e| ioerr(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(ioerr)?;
        file.write_all(&header).map_err(ioerr)?;
        drop(file);
        if let Err(e) = lmforge_files::replace_with_synced(&self.tmp, &self.path) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(DataError::io(&self.path, e));
        }
        Ok(self.count)
    }
}

impl Drop for TokenWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A memory-mapped token file: the OS pages tokens in as windows are read, so files larger
/// than RAM work and several processes share one copy in the page cache.
pub struct TokenFile {
    path: PathBuf,
    header: Header,
    map: Mmap,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish()
    }
}

impl TokenFile {
    /// Opens and validates `path`: magic, version, dtype, and token count against file size.
    pub fn open(path: &Path) -> Result<TokenFile> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let actual = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        if actual < HEADER_LEN as u64 {
            let mut head = Vec::new();
            (&file)
                .read_to_end(&mut head)
                .map_err(|e| DataError::io(path, e))?;
            // Magic first: a foreign short file is "not a token file", ours is "truncated".
            Header::parse(path, &head)?;
        }
        // SAFETY: the mapping is read-only; lmforge never modifies a finished token file in
        // place (it writes a new file and renames it), so the mapped bytes do not change
        // under us unless another program truncates the file, which the OS reports as SIGBUS
        // (the same contract as numpy.memmap in nanoGPT).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
        let header = Header::parse(path, &map)?;
        // Checked: a header claiming 2^63 tokens must be refused, not wrapped into a match.
        let expected = header
            .count
            .checked_mul(header.dtype.width() as u64)
            .and_then(|b| b.checked_add(HEADER_LEN as u64))
            .unwrap_or(u64::MAX);
        if expected != actual {
            return Err(DataError::BadLength {
                path: path.to_path_buf(),
                count: header.count,
                expected,
                actual,
            });
        }
        Ok(TokenFile {
            path: path.to_path_buf(),
            header,
            map,
        })
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Number of tokens.
    pub fn len(&self) -> u64 {
        self.header.count
    }

    /// True when the file holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.header.count == 0
    }

    /// Width of the stored tokens.
    pub fn dtype(&self) -> Dtype {
        self.header.dtype
    }

    /// The tokenizer fingerprint recorded in the header.
    pub fn fingerprint(&self) -> &str {
        &self.header.fingerprint
    }

    fn bytes(&self, start: u64, n: usize) -> &[u8] {
        let w = self.header.dtype.width();
        let from = HEADER_LEN + start as usize * w;
        &self.map[from..from + n * w]
    }

    /// Copies tokens `start..start + out.len()` into `out`. Panics if out of range (a
    /// caller bug: the samplers only ask for windows inside the file).
    pub fn read_into(&self, start: u64, out: &mut [u32]) {
        let b = self.bytes(start, out.len());
        match self.header.dtype {
            Dtype::U16 => {
                for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                    *o = u16::from_le_bytes([c[0], c[1]]) as u32;
                }
            }
            Dtype::U32 => {
                for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                    *o = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
        }
    }

    /// Writes the window starting at `start` as an input row `x` (tokens
    /// `start..start+x.len()`) and its target row `y` (the same shifted by one).
    pub fn read_xy(&self, start: u64, x: &mut [u32], y: &mut [i32]) {
        let n = x.len();
        debug_assert_eq!(n, y.len());
        let b = self.bytes(start, n + 1);
        match self.header.dtype {
            Dtype::U16 => {
                let t = |i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as u32;
                for i in 0..n {
                    x[i] = t(i);
                    y[i] = t(i + 1) as i32;
                }
            }
            Dtype::U32 => {
                let t = |i: usize| {
                    u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
                };
                for i in 0..n {
                    x[i] = t(i);
                    y[i] = t(i + 1) as i32;
                }
            }
        }
    }

    /// All tokens as a vector (for tests and small files).
    pub fn to_vec(&self) -> Vec<u32> {
        let mut v = vec![0u32; self.header.count as usize];
        self.read_into(0, &mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = Header {
            version: VERSION,
            dtype: Dtype::U32,
            count: 123_456_789_012,
            fingerprint: "0123456789abcdef".into(),
        };
        assert_eq!(Header::parse(Path::new("x"), &h.to_bytes()).unwrap(), h);
    }

    #[test]
    fn dtype_switches_at_65536() {
        assert_eq!(Dtype::for_vocab(65), Dtype::U16);
        assert_eq!(Dtype::for_vocab(65_536), Dtype::U16);
        assert_eq!(Dtype::for_vocab(65_537), Dtype::U32);
        assert_eq!(Dtype::for_vocab(200_019), Dtype::U32);
    }

    #[test]
    fn write_split_read() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.bin"), d.path().join("b.bin"));
        let mut w = TokenWriter::create(&a, Dtype::U16, "fp").unwrap();
        let mut v = TokenWriter::create(&b, Dtype::U16, "fp").unwrap();
        w.push(&(0..10_000).collect::<Vec<u32>>()).unwrap();
        w.split_off_tail(9_000, &mut v).unwrap();
        w.push(&[7]).unwrap();
        assert_eq!(w.finish().unwrap(), 9_001);
        assert_eq!(v.finish().unwrap(), 1_000);
        let fa = TokenFile::open(&a).unwrap();
        let va = fa.to_vec();
        assert_eq!(va.len(), 9_001);
        assert_eq!(va[8_999], 8_999);
        assert_eq!(va[9_000], 7);
        assert_eq!(
            TokenFile::open(&b).unwrap().to_vec(),
            (9_000..10_000).collect::<Vec<u32>>()
        );
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn u16_rejects_large_ids_and_unfinished_writer_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.bin");
        let mut w = TokenWriter::create(&p, Dtype::U16, "fp").unwrap();
        assert!(matches!(
            w.push(&[1, 70_000]),
            Err(DataError::IdTooLarge {
                id: 70_000,
                position: 1,
                ..
            })
        ));
        drop(w);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
