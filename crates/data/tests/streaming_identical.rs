//! Streamed `prepare` writes exactly the token files whole-file `prepare` wrote: the bundled
//! corpus prepared with every cuttable tokenizer kind hashes to what lmforge 0.1.0 (before
//! streaming, commit d842a90) wrote for the same command, e.g.
//! `lmforge prepare -q -t bpe --vocab-size 2000 --out DIR corpus/shakespeare`.

use lmforge_data::{prepare, PrepareOptions, TokenizerChoice};
use sha2::{Digest, Sha256};

/// (tokenizer, vocab size, sha256 of train.bin, sha256 of val.bin) from the old binary.
const BEFORE_STREAMING: &[(&str, Option<usize>, &str, &str)] = &[
    (
        "char",
        None,
        "1dad25e1fbc2c80a5a4025572d4e665aaf27d348aa2600a5b3d76b24c22cdbd5",
        "51ac04320ab5f6ad9f63ead2a64e8e2c394d601b5faff9c10df14a89320b4c14",
    ),
    (
        "word",
        Some(2000),
        "d2a374678db06a399f5447547aaf60ede8a4d6873c26219fa55fcb20288699b7",
        "2683e253ec8128b4ef46e579becb729e2c74e43021941edf1099204efc3bbc25",
    ),
    (
        "bpe",
        Some(2000),
        "6b294ee49ff3ecbdab322a09f98e95598a66148ce9229342cc9e8fcd8bee9839",
        "b018dc5240b146b19e7028629a2348d3ab091d9ad2ab93a04ef349447dce14c1",
    ),
    (
        "tiktoken:gpt2",
        None,
        "80180d8acf33ca2cdda243ada1fa12b81f7043af8eb27b9832dafd29702489d8",
        "eb6419503de814a16d19f4c195f6625333818b0814ecde96c8b601d6e546dbf4",
    ),
    (
        "tiktoken:o200k_base",
        None,
        "1fd39aec4d1d2c26650ff41835a3c677da69bd05cc9763ea53804776019ec102",
        "e638d1780273e87d3ad32723698ebd2c7a76b7f08cfa72baef285d8e98eacf1b",
    ),
];

fn sha256_file(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn bundled_corpus_token_files_are_bit_identical_to_whole_file_prepare() {
    let dir = tempfile::tempdir().unwrap();
    for &(spec, vocab, train_sha, val_sha) in BEFORE_STREAMING {
        let out = dir.path().join(spec.replace(':', "_"));
        let mut opts = PrepareOptions::new(&out);
        opts.tokenizer = TokenizerChoice::parse(spec, vocab);
        opts.quiet = true;
        prepare(&opts).unwrap();
        assert_eq!(
            sha256_file(&out.join("train.bin")),
            train_sha,
            "{spec} train.bin"
        );
        assert_eq!(sha256_file(&out.join("val.bin")), val_sha, "{spec} val.bin");
    }
}
