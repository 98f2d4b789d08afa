//! Regression tests for corrupted token files and data folders (lmforge-fuzz): size
//! claims are checked against the real file before anything is allocated.

mod common;

use lmforge_data::tokfile::{Header, HEADER_LEN, VERSION};
use lmforge_data::{DataDir, DataError, Dtype, TokenFile};

fn header_with_count(dtype: Dtype, count: u64) -> [u8; HEADER_LEN] {
    Header {
        version: VERSION,
        dtype,
        count,
        fingerprint: "0123456789abcdef".into(),
    }
    .to_bytes()
}

/// A header claiming 2^60 tokens (or counts whose byte size overflows u64) over a few
/// real bytes is refused as a length mismatch, not mapped, allocated or wrapped.
#[test]
fn huge_token_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.bin");
    for dtype in [Dtype::U16, Dtype::U32] {
        for count in [
            1u64 << 60,
            1 << 62,
            u64::MAX,
            u64::MAX / 2 + 1,
            u64::MAX - 31,
        ] {
            let mut bytes = header_with_count(dtype, count).to_vec();
            bytes.extend_from_slice(&[7u8; 64]);
            std::fs::write(&path, &bytes).unwrap();
            let e = TokenFile::open(&path).expect_err("huge count accepted");
            assert!(
                matches!(e, DataError::BadLength { count: c, actual: 128, .. } if c == count),
                "{dtype:?} {count}: {e}"
            );
        }
    }
}

fn prepared(dir: &std::path::Path) -> std::path::PathBuf {
    let src = common::write(dir, "a.txt", &common::text(1));
    let out = dir.join("data");
    lmforge_data::prepare(&common::opts(&out, &[&src])).unwrap();
    out
}

/// `meta.json` may only name a tokenizer file inside the folder.
#[test]
fn meta_tokenizer_file_outside_the_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = prepared(dir.path());
    let meta_path = out.join("meta.json");
    let meta = std::fs::read_to_string(&meta_path).unwrap();
    assert!(DataDir::open(&out).unwrap().tokenizer().is_ok());
    for bad in ["/dev/zero", "../a.txt", "sub/tokenizer.json", "", "."] {
        let v = meta.replace("\"tokenizer.json\"", &format!("{bad:?}"));
        assert_ne!(v, meta);
        std::fs::write(&meta_path, v).unwrap();
        let e = DataDir::open(&out).expect_err(bad).to_string();
        assert!(
            e.contains("meta.json") && e.contains("tokenizer.file"),
            "{bad}: {e}"
        );
    }
}
