//! Fetching a dataset archive over HTTPS into a cache folder: streamed to a temporary file
//! with a progress bar, sha256-verified, renamed into place (`lmforge_files`), then unzipped.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{DataError, Result};
use lmforge_corpus::Progress;

/// The file name an URL's last path segment gives (query and fragment dropped).
pub fn file_name_of(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    match path.rsplit('/').next() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "download".to_string(),
    }
}

/// Downloads `url` to `dest` (atomically, through `lmforge_files::write_atomic_with`). When `sha256` is
/// given, a mismatch is an error and nothing is left under `dest`. Returns the sha256.
pub fn download(url: &str, dest: &Path, sha256: Option<&str>, quiet: bool) -> Result<String> {
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
        place: dest.to_path_buf(),
    };
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build();
    let agent: ureq::Agent = config.into();
    let response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut body = response.into_body().into_reader();
    lmforge_files::write_atomic_with(dest, |out| {
        let mut hasher = Sha256::new();
        let mut progress = Progress::new(&format!("download {}", file_name_of(url)), total, quiet);
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        loop {
            let n = body.read(&mut buf).map_err(|e| fail(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| DataError::io(dest, e))?;
            got += n as u64;
            progress.inc(n as u64);
        }
        progress.finish();
        if total > 0 && got != total {
            return Err(fail(format!("connection closed after {got} of {total} bytes")).into());
        }
        let found = hex::encode(hasher.finalize());
        if let Some(expected) = sha256 {
            if !found.eq_ignore_ascii_case(expected) {
                return Err(DataError::Checksum {
                    path: dest.to_path_buf(),
                    found,
                    expected: expected.to_string(),
                }
                .into());
            }
        }
        Ok(found)
    })
    .map_err(|e| match e {
        Failed::Data(e) => e,
        Failed::Io(e) => DataError::io(dest, e),
    })
}

/// An error of a download step, or of the atomic write around it.
enum Failed {
    Data(DataError),
    Io(std::io::Error),
}

impl From<DataError> for Failed {
    fn from(e: DataError) -> Self {
        Failed::Data(e)
    }
}

impl From<std::io::Error> for Failed {
    fn from(e: std::io::Error) -> Self {
        Failed::Io(e)
    }
}

/// sha256 of a file (hex), streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// Unzips `archive` into `dir`. Entries whose names would escape `dir` are refused; each
/// file is written under a temp name and renamed, so an interrupted unzip never leaves a
/// truncated file under a real name.
pub fn unzip(archive: &Path, dir: &Path) -> Result<()> {
    let bad = |reason: String| DataError::Unzip {
        path: archive.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        let rel = entry.enclosed_name().ok_or_else(|| {
            bad(format!(
                "entry '{}' points outside the folder",
                entry.name()
            ))
        })?;
        let target = dir.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| DataError::io(&target, e))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        }
        lmforge_files::write_atomic_with(&target, |out| std::io::copy(&mut entry, out))
            .map_err(|e| bad(format!("{}: {e}", target.display())))?;
    }
    Ok(())
}

/// Makes sure `cache` holds the unzipped archive of `url`: downloads it (unless the
/// archive is already there), verifies it, and unzips it. Returns the archive's sha256.
pub fn fetch_archive(url: &str, cache: &Path, sha256: Option<&str>, quiet: bool) -> Result<String> {
    let archive = cache.join(file_name_of(url));
    let hash = if archive.is_file() {
        let found = sha256_file(&archive)?;
        if let Some(expected) = sha256 {
            if !found.eq_ignore_ascii_case(expected) {
                return Err(DataError::Checksum {
                    path: archive,
                    found,
                    expected: expected.to_string(),
                });
            }
        }
        found
    } else {
        download(url, &archive, sha256, quiet)?
    };
    unzip(&archive, cache)?;
    Ok(hash)
}
