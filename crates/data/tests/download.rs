//! WikiText download against a local HTTP server serving a zip built here.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{opts, tokens};
use lmforge_data::prepare::WikiTextOptions;
use lmforge_data::{prepare, DataDir, DataError};
use sha2::Digest;

/// A zip laid out like wikitext-2-v1.zip: `wikitext-2/wiki.{train,valid,test}.tokens`.
fn wikitext_zip() -> Vec<u8> {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wikitext-2");
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.add_directory("wikitext-2/", o).unwrap();
    for s in ["train", "valid", "test"] {
        z.start_file(format!("wikitext-2/wiki.{s}.tokens"), o)
            .unwrap();
        z.write_all(&std::fs::read(fixture.join(format!("wiki.{s}.tokens"))).unwrap())
            .unwrap();
    }
    z.finish().unwrap();
    buf.into_inner()
}

/// Serves `body` to at most `max_requests` requests, then stops; gives up after 20 s.
fn serve(body: Vec<u8>, max_requests: usize) -> (String, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut served = 0;
        while served < max_requests && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut req = Vec::new();
                    let mut b = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                    }
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/zip\r\nConnection: close\r\n\r\n", body.len());
                    let _ = s.write_all(head.as_bytes());
                    let _ = s.write_all(&body);
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        served
    });
    (format!("http://127.0.0.1:{port}/wikitext-2-v1.zip"), handle)
}

#[test]
fn downloads_verifies_unzips_and_prepares() {
    let zip = wikitext_zip();
    let sha = hex::encode(sha2::Sha256::digest(&zip));
    let (url, server) = serve(zip, 1);
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let out = d.path().join("o");
    let mut o = opts(&out, &[]);
    o.wikitext = Some(WikiTextOptions {
        dir: cache.clone(),
        download: true,
        url: Some(url),
        sha256: Some(sha),
        clean: false,
    });
    let r = prepare(&o).unwrap();
    assert_eq!(server.join().unwrap(), 1);
    assert!(cache.join("wikitext-2-v1.zip").is_file());
    assert!(cache.join("wikitext-2/wiki.train.tokens").is_file());
    let dir = DataDir::open(&out).unwrap();
    assert_eq!(
        dir.test.as_ref().unwrap().len(),
        r.meta.test_tokens.unwrap()
    );
    let tok = dir.tokenizer().unwrap();
    let valid = std::fs::read_to_string(cache.join("wikitext-2/wiki.valid.tokens")).unwrap();
    assert_eq!(tokens(&out.join("val.bin")), tok.encode(&valid).unwrap());

    // Second run: files are there, no network needed (the server is gone).
    let r2 = prepare(&o).unwrap();
    assert_eq!(r2.meta.train_tokens, r.meta.train_tokens);
}

#[test]
fn wrong_checksum_leaves_nothing_behind() {
    let (url, server) = serve(wikitext_zip(), 1);
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let mut o = opts(&d.path().join("o"), &[]);
    o.wikitext = Some(WikiTextOptions {
        dir: cache.clone(),
        download: true,
        url: Some(url),
        sha256: Some("00".repeat(32)),
        clean: false,
    });
    let e = prepare(&o).unwrap_err();
    assert!(matches!(e, DataError::Checksum { .. }), "{e}");
    server.join().unwrap();
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        0,
        "no archive or .part left"
    );
}

#[test]
fn offline_error_says_which_file_to_place_where() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let mut o = opts(&d.path().join("o"), &[]);
    o.wikitext = Some(WikiTextOptions {
        dir: cache.clone(),
        download: true,
        url: Some(format!("http://127.0.0.1:{port}/wikitext-2-v1.zip")),
        sha256: None,
        clean: false,
    });
    let e = prepare(&o).unwrap_err().to_string();
    assert!(!e.contains('\n'));
    assert!(
        e.contains("cannot download")
            && e.contains(&cache.join("wikitext-2-v1.zip").display().to_string()),
        "{e}"
    );

    // Without --download, the missing files are named.
    o.wikitext.as_mut().unwrap().download = false;
    let e = prepare(&o).unwrap_err().to_string();
    assert!(
        e.contains("wiki.train.tokens") && e.contains("--download"),
        "{e}"
    );
}
