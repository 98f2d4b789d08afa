//! Reading a text file as UTF-8, strictly (error names the byte offset) or lossily.

use std::path::{Path, PathBuf};

use crate::stream::{TextChunks, DEFAULT_CHUNK_BYTES};
use crate::{CorpusError, Result};

/// One source file's text.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its whole text (valid UTF-8; lossily decoded if that was asked for).
    pub text: String,
}

/// Reads `path` as UTF-8. Strict mode reports the first invalid byte's offset in the file;
/// `lossy` replaces invalid sequences with U+FFFD instead. Reads through [`TextChunks`], so
/// whole-file and streamed reading cannot disagree.
pub fn read_text(path: &Path, lossy: bool) -> Result<String> {
    let mut text = String::new();
    for chunk in TextChunks::open(path, lossy, DEFAULT_CHUNK_BYTES)? {
        text.push_str(&chunk?);
    }
    Ok(text)
}

/// Turns file bytes into a `String` (see [`read_text`]); a leading UTF-8 BOM is dropped and
/// error offsets count it, as they are offsets in the file.
pub fn decode_utf8(path: &Path, mut bytes: Vec<u8>, lossy: bool) -> Result<String> {
    let mut skipped = 0;
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
        skipped = 3;
    }
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) if lossy => Ok(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        Err(e) => Err(CorpusError::NotUtf8 {
            path: path.to_path_buf(),
            offset: skipped + e.utf8_error().valid_up_to(),
        }),
    }
}

/// Reads every path into a [`Document`], in order.
pub fn read_documents(paths: &[PathBuf], lossy: bool) -> Result<Vec<Document>> {
    paths
        .iter()
        .map(|p| {
            Ok(Document {
                path: p.clone(),
                text: read_text(p, lossy)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_offset_of_first_invalid_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.txt");
        std::fs::write(&p, b"hello \xff world").unwrap();
        let err = read_text(&p, false).unwrap_err().to_string();
        assert!(err.contains("bad.txt"), "{err}");
        assert!(err.contains("byte offset 6"), "{err}");
        assert_eq!(read_text(&p, true).unwrap(), "hello \u{FFFD} world");
    }

    #[test]
    fn missing_file_is_named() {
        let err = read_text(Path::new("/no/such/file.txt"), false).unwrap_err();
        assert!(err.to_string().contains("/no/such/file.txt: no such file"));
    }

    #[test]
    fn bom_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bom.txt");
        std::fs::write(&p, b"\xEF\xBB\xBFabc").unwrap();
        assert_eq!(read_text(&p, false).unwrap(), "abc");
    }
}
