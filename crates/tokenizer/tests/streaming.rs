//! Streamed reading equals whole-file reading: the ids of a file encoded chunk by chunk, and
//! a tokenizer trained chunk by chunk, are exactly those of the whole text, for chunk and
//! segment sizes that cut inside lines, inside multi-byte characters and at file ends; and
//! the hand-counted BPE training equals Hugging Face's own `Tokenizer::train`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lmforge_corpus::{bundled_corpus_dir, read_text, resolve_sources, SourceFilter, TextChunks};
use lmforge_tokenizer::hf::HfTokenizer;
use lmforge_tokenizer::metaspace_words::{count_metaspace, to_sentences};
use lmforge_tokenizer::train_stream::Segments;
use lmforge_tokenizer::{
    train, train_from_paths, StreamEncoder, StreamOptions, Tokenizer, TrainKind,
};

/// Files that stress the reader: CRLF, no newline at all, an empty file, multi-byte
/// characters everywhere, a BOM, lines that start with letters after `x\n` (cut points).
fn tricky_files(dir: &Path) -> Vec<PathBuf> {
    let files: [(&str, String); 6] = [
        (
            "a_crlf.txt",
            "First line\r\nSecond line\r\n\r\nThird\r\n".repeat(30),
        ),
        (
            "b_no_newline.txt",
            "one long line without a break ünïcødé €uro 𝄞 ".repeat(40),
        ),
        ("c_empty.txt", String::new()),
        (
            "d_multibyte.txt",
            "日本語のテキスト\nÉtude — “quoted” 👍🏽\n  indented\nx\nYes\n".repeat(30),
        ),
        (
            "e_bom.txt",
            format!("\u{feff}{}", "Bom first\nthen lines\n".repeat(20)),
        ),
        (
            "f_no_final_newline.txt",
            "end\nwithout\nnewline".to_string(),
        ),
    ];
    files
        .iter()
        .map(|(name, text)| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect()
}

/// The first few bundled works plus the tricky files.
fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let bundled = bundled_corpus_dir().unwrap().to_string_lossy().into_owned();
    let mut paths = resolve_sources(&[bundled], &SourceFilter::default()).unwrap();
    paths.truncate(2);
    paths.extend(tricky_files(dir));
    paths
}

/// Encodes `path` read `chunk` bytes at a time, cut into segments of about `segment` bytes.
fn encode_streamed(tok: &Tokenizer, path: &Path, chunk: usize, segment: usize) -> Vec<u32> {
    let mut enc = StreamEncoder::with_sizes(tok, segment, 3 * segment);
    let mut ids = Vec::new();
    let mut out = |_: usize, part: Vec<u32>| -> lmforge_tokenizer::Result<()> {
        ids.extend(part);
        Ok(())
    };
    for text in TextChunks::open(path, false, chunk).unwrap() {
        enc.push(0, &text.unwrap(), &mut out).unwrap();
    }
    enc.end_doc(0, &mut out).unwrap();
    enc.flush(&mut out).unwrap();
    ids
}

fn tokenizers(texts: &[String]) -> Vec<Tokenizer> {
    vec![
        train(TrainKind::Char, None, texts).unwrap(),
        train(TrainKind::Word, Some(500), texts).unwrap(),
        train(TrainKind::Bpe, Some(400), texts).unwrap(),
        train(TrainKind::Unigram, Some(200), &texts[2..]).unwrap(),
        Tokenizer::load("tiktoken:o200k_base").unwrap(),
        Tokenizer::load("tiktoken:gpt2").unwrap(),
    ]
}

#[test]
fn streamed_encoding_equals_whole_file_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let paths = corpus_files(dir.path());
    let texts: Vec<String> = paths.iter().map(|p| read_text(p, false).unwrap()).collect();
    for tok in tokenizers(&texts) {
        for (path, text) in paths.iter().zip(&texts) {
            let whole = tok.encode(text).unwrap();
            // Chunks of 5..13 bytes cut inside lines and characters; the file's length
            // cuts at its end; segments of 40 bytes force many cuts.
            for (chunk, segment) in [
                (5, 40),
                (13, 7),
                (text.len().max(8), 100),
                (1 << 20, 1 << 18),
            ] {
                assert_eq!(
                    encode_streamed(&tok, path, chunk, segment),
                    whole,
                    "{} {} chunk {chunk} segment {segment}",
                    tok.kind(),
                    path.display()
                );
            }
        }
    }
}

#[test]
fn streamed_training_equals_whole_text_training() {
    let dir = tempfile::tempdir().unwrap();
    let paths = corpus_files(dir.path());
    let texts: Vec<String> = paths.iter().map(|p| read_text(p, false).unwrap()).collect();
    for (kind, vocab, paths, texts) in [
        (TrainKind::Char, None, &paths[..], &texts[..]),
        (TrainKind::Char, Some(40), &paths[..], &texts[..]),
        (TrainKind::Word, Some(700), &paths[..], &texts[..]),
        (TrainKind::Bpe, Some(500), &paths[..], &texts[..]),
    ] {
        let whole = train(kind, vocab, texts).unwrap().to_bytes().unwrap();
        for (chunk_bytes, segment_bytes) in [(7, 30), (64, 1000), (1 << 20, 1 << 18)] {
            let opts = StreamOptions {
                chunk_bytes,
                segment_bytes,
                ..StreamOptions::default()
            };
            let streamed = train_from_paths(kind, vocab, paths, &opts).unwrap();
            assert!(
                streamed.to_bytes().unwrap() == whole,
                "{kind:?} {vocab:?} chunk {chunk_bytes} segment {segment_bytes}"
            );
        }
    }
}

/// HF's unigram trainer is not deterministic (two runs on the same counts differ), so for
/// `unigram` the streamed part is checked where it matters: the Metaspace word counts of
/// the streamed segments equal those of the whole texts.
#[test]
fn streamed_unigram_counts_equal_whole_text_counts() {
    let dir = tempfile::tempdir().unwrap();
    let paths = corpus_files(dir.path());
    let sentences = |texts: &mut dyn Iterator<Item = String>| {
        let texts: Vec<String> = texts.collect();
        let mut counts = HashMap::new();
        for t in &texts {
            count_metaspace(t, &mut counts);
        }
        to_sentences(
            counts
                .into_iter()
                .map(|(w, n)| (w.to_string(), n))
                .collect(),
        )
    };
    let whole = sentences(&mut paths.iter().map(|p| read_text(p, false).unwrap()));
    for (chunk_bytes, segment_bytes) in [(7, 30), (64, 1000), (1 << 20, 1 << 18)] {
        let opts = StreamOptions {
            chunk_bytes,
            segment_bytes,
            ..StreamOptions::default()
        };
        let mut segments = Segments::new(&paths, TrainKind::Unigram.cut_rule(), &opts);
        let streamed = sentences(&mut segments.by_ref());
        segments.finish().unwrap();
        assert!(
            streamed == whole,
            "chunk {chunk_bytes} segment {segment_bytes}"
        );
    }
}

/// HF's own training path on whole texts, configured as `HfTokenizer::train_bpe` is.
fn hf_reference_bpe(texts: &[String], vocab: usize) -> String {
    use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
    use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
    use tokenizers::models::TrainerWrapper;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::AddedToken;
    let specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect();
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tok = tokenizers::Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    tok.train(&mut trainer, texts.iter()).unwrap();
    tok.to_string(false).unwrap()
}

#[test]
fn counted_bpe_training_equals_hf_training() {
    let dir = tempfile::tempdir().unwrap();
    let paths = corpus_files(dir.path());
    let texts: Vec<String> = paths.iter().map(|p| read_text(p, false).unwrap()).collect();
    for vocab in [300, 1500] {
        let ours = HfTokenizer::train_bpe(&texts, vocab).unwrap();
        assert!(
            ours.json == hf_reference_bpe(&texts, vocab),
            "vocab {vocab}"
        );
    }
}
