//! Resolving what the user named — files, folders, glob patterns — into a stable,
//! sorted list of text files.
//!
//! Order: sources keep the order they were given in; a folder or glob expands to its
//! files sorted by path; a file named twice is read once (first occurrence wins).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::{CorpusError, Result};

/// Include/exclude glob filters applied to files found inside folders and globs
/// (matched against the path relative to the folder, and against the file name).
#[derive(Debug, Default, Clone)]
pub struct SourceFilter {
    /// Keep only files matching one of these globs (empty: keep every text file).
    pub include: Vec<String>,
    /// Drop files matching any of these globs, even when `include` matched them.
    pub exclude: Vec<String>,
}

impl SourceFilter {
    fn build(patterns: &[String]) -> Result<Option<GlobSet>> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(Glob::new(p).map_err(|e| CorpusError::BadPattern {
                pattern: p.clone(),
                reason: e.kind().to_string(),
            })?);
        }
        b.build().map(Some).map_err(|e| CorpusError::BadPattern {
            pattern: patterns.join(","),
            reason: e.to_string(),
        })
    }
}

struct CompiledFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl CompiledFilter {
    fn accepts(&self, rel: &Path) -> bool {
        let name = rel.file_name().map(Path::new).unwrap_or(rel);
        let hit = |set: &GlobSet| set.is_match(rel) || set.is_match(name);
        self.include.as_ref().is_none_or(hit) && !self.exclude.as_ref().is_some_and(hit)
    }
}

/// True when `spec` looks like a glob pattern rather than a path.
pub fn is_glob(spec: &str) -> bool {
    spec.contains(['*', '?', '['])
}

/// Resolves source specs (files, folders, globs) into text files. Errors name the spec:
/// a missing path, a glob that matches nothing, a folder without text files.
pub fn resolve_sources(specs: &[String], filter: &SourceFilter) -> Result<Vec<PathBuf>> {
    let compiled = CompiledFilter {
        include: SourceFilter::build(&filter.include)?,
        exclude: SourceFilter::build(&filter.exclude)?,
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for spec in specs {
        let found = resolve_one(spec, &compiled)?;
        for p in found {
            if seen.insert(p.clone()) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

fn resolve_one(spec: &str, filter: &CompiledFilter) -> Result<Vec<PathBuf>> {
    let path = Path::new(spec);
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if path.is_dir() {
        let files = walk_text_files(path, filter)?;
        if files.is_empty() {
            let hint = if filter.include.is_some() || filter.exclude.is_some() {
                " matching the --include/--exclude filters".to_string()
            } else {
                " (binary files and hidden files are skipped)".to_string()
            };
            return Err(CorpusError::NoTextFiles {
                path: path.to_path_buf(),
                hint,
            });
        }
        return Ok(files);
    }
    if is_glob(spec) {
        let entries = glob::glob(spec).map_err(|e| CorpusError::BadPattern {
            pattern: spec.to_string(),
            reason: e.msg.to_string(),
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let p = entry.map_err(|e| CorpusError::Unreadable {
                path: e.path().to_path_buf(),
                source: std::io::Error::other(e.error().to_string()),
            })?;
            if p.is_file() && filter.accepts(&p) {
                files.push(p);
            } else if p.is_dir() {
                files.extend(walk_text_files(&p, filter)?);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(CorpusError::NoMatch {
                pattern: spec.to_string(),
            });
        }
        return Ok(files);
    }
    Err(CorpusError::NotFound {
        path: path.to_path_buf(),
    })
}

/// All text files below `dir`, sorted by path. Hidden entries are skipped; a file counts
/// as text when its first 8 KiB contain no NUL byte.
fn walk_text_files(dir: &Path, filter: &CompiledFilter) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| CorpusError::Unreadable {
            path: e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.to_path_buf()),
            source: std::io::Error::other(e.to_string()),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        if filter.accepts(rel) && looks_like_text(entry.path())? {
            files.push(entry.path().to_path_buf());
        }
    }
    files.sort();
    Ok(files)
}

fn looks_like_text(path: &Path) -> Result<bool> {
    let mut head = [0u8; 8192];
    let mut f = std::fs::File::open(path).map_err(|source| CorpusError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let n = f
        .read(&mut head)
        .map_err(|source| CorpusError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(!head[..n].contains(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path, content: &[u8]) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn folders_globs_and_files_resolve_in_stable_order() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        touch(&root.join("shards/wiki_books_test_10.txt"), b"c");
        touch(&root.join("shards/wiki_books_test_2.txt"), b"b");
        touch(&root.join("shards/wiki_books_test_1.txt"), b"a");
        touch(&root.join("shards/other.txt"), b"x");
        touch(&root.join("shards/sub/deep.txt"), b"y");
        touch(&root.join("shards/.hidden.txt"), b"h");
        touch(&root.join("shards/blob.bin"), b"\0\x01");
        let s = |p: &str| root.join(p).to_string_lossy().into_owned();

        let glob = resolve_sources(
            &[s("shards/wiki_books_test_*.txt")],
            &SourceFilter::default(),
        )
        .unwrap();
        let names: Vec<_> = glob
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "wiki_books_test_1.txt",
                "wiki_books_test_10.txt",
                "wiki_books_test_2.txt"
            ]
        );

        let folder = resolve_sources(&[s("shards")], &SourceFilter::default()).unwrap();
        let rel: Vec<_> = folder
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            rel,
            [
                "shards/other.txt",
                "shards/sub/deep.txt",
                "shards/wiki_books_test_1.txt",
                "shards/wiki_books_test_10.txt",
                "shards/wiki_books_test_2.txt"
            ]
        );

        // A file named twice is kept once, in first position.
        let both = resolve_sources(
            &[s("shards/other.txt"), s("shards")],
            &SourceFilter::default(),
        )
        .unwrap();
        assert_eq!(both.len(), 5);
        assert!(both[0].ends_with("other.txt"));

        let filtered = resolve_sources(
            &[s("shards")],
            &SourceFilter {
                include: vec!["wiki_*".into()],
                exclude: vec!["*_10.txt".into()],
            },
        )
        .unwrap();
        assert_eq!(filtered.len(), 2);
    }

    #[test]
    fn bad_specs_are_named() {
        let d = tempfile::tempdir().unwrap();
        let pat = d
            .path()
            .join("nothing_*.txt")
            .to_string_lossy()
            .into_owned();
        let e = resolve_sources(std::slice::from_ref(&pat), &SourceFilter::default()).unwrap_err();
        assert_eq!(e.to_string(), format!("pattern '{pat}' matches no files"));

        let missing = d.path().join("missing.txt").to_string_lossy().into_owned();
        let e = resolve_sources(&[missing], &SourceFilter::default()).unwrap_err();
        assert!(e
            .to_string()
            .contains("missing.txt: no such file or folder"));

        std::fs::create_dir(d.path().join("empty")).unwrap();
        let e = resolve_sources(
            &[d.path().join("empty").to_string_lossy().into_owned()],
            &SourceFilter::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("folder contains no text files"),
            "{e}"
        );
    }
}
