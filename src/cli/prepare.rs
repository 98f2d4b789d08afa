//! `lmforge prepare`: tokenize a corpus once into memory-mapped token files.

use std::path::PathBuf;

use clap::Args;
use lmforge_corpus::SourceFilter;
use lmforge_data::prepare::WikiTextOptions;
use lmforge_data::{prepare, PrepareOptions, TokenizerChoice, ValSplit};

/// `prepare`: writes OUT/train.bin and OUT/val.bin (u16 tokens when the vocabulary fits,
/// else u32, behind a small header), OUT/meta.json and a copy of the tokenizer.
#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// Tokenizer: char, word, bpe or unigram (train that kind on the training sources), or
    /// a tokenizer file/folder or built-in name such as tiktoken:o200k_base.
    #[arg(long, short = 't', value_name = "T", default_value = "char")]
    pub tokenizer: String,
    /// Vocabulary size when training a tokenizer (default: 8192; char keeps every character).
    #[arg(long, value_name = "N")]
    pub vocab_size: Option<usize>,
    /// Output data folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Fraction of the concatenated token stream (its end) that becomes val.bin.
    #[arg(long, value_name = "F", default_value_t = 0.1, conflicts_with = "val")]
    pub val_fraction: f64,
    /// Make val.bin from these files, folders or globs instead of a fraction.
    #[arg(long, value_name = "SOURCE", num_args = 1..)]
    pub val: Vec<String>,
    /// Every split must hold at least block_size + 1 tokens.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub block_size: usize,
    /// Glob filter on files found in folders and globs (repeatable), e.g. --include '*.txt'.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Glob filter excluding files found in folders and globs (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Strip Project Gutenberg licence headers and footers from every source.
    #[arg(long)]
    pub strip_gutenberg: bool,
    /// Replace invalid UTF-8 bytes with U+FFFD instead of failing.
    #[arg(long)]
    pub lossy: bool,
    /// WikiText-2/-103 folder (wiki.{train,valid,test}.tokens or .raw, itself or in a
    /// sub-folder); its own splits become train.bin, val.bin and test.bin.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["sources", "val"])]
    pub wikitext: Option<PathBuf>,
    /// With --wikitext: download and unzip the archive into DIR when the files are missing.
    #[arg(long, requires = "wikitext")]
    pub download: bool,
    /// Archive URL for --download (default: WikiText-2's public archive).
    #[arg(long, value_name = "URL", requires = "download")]
    pub url: Option<String>,
    /// Expected sha256 of the downloaded archive.
    #[arg(long, value_name = "HEX", requires = "download")]
    pub sha256: Option<String>,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Sequence-to-sequence pairs from two line-aligned files (line i of TGT is the target
    /// of line i of SRC); writes a pair-data folder (see `lmforge_data::pairs`).
    #[arg(long, num_args = 2, value_names = ["SRC_FILE", "TGT_FILE"], conflicts_with_all = ["sources", "val", "wikitext", "pairs_tsv", "stream_pairs"])]
    pub pairs: Vec<PathBuf>,
    /// Sequence-to-sequence pairs from one file of `source<TAB>target` lines.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["sources", "val", "wikitext", "stream_pairs"])]
    pub pairs_tsv: Option<PathBuf>,
    /// Cut the SOURCES' token stream into pairs of SRC_LEN tokens → the following TGT_LEN.
    #[arg(long, num_args = 2, value_names = ["SRC_LEN", "TGT_LEN"], conflicts_with_all = ["val", "wikitext"])]
    pub stream_pairs: Vec<usize>,
    /// Pair data: a separate target-side tokenizer (then --tokenizer is the source side's).
    #[arg(long, value_name = "T")]
    pub tgt_tokenizer: Option<String>,
    /// Vocabulary size when training the --tgt-tokenizer.
    #[arg(long, value_name = "N", requires = "tgt_tokenizer")]
    pub tgt_vocab_size: Option<usize>,
    /// Pair data: longest source kept, in tokens (default: --block-size); longer ones are cut.
    #[arg(long, value_name = "N")]
    pub src_block_size: Option<usize>,
    /// Pair data: longest decoder sequence, `<bos>`/`<eos>` included (default: --block-size).
    #[arg(long, value_name = "N")]
    pub tgt_block_size: Option<usize>,
    /// With --wikitext: strip every line and drop empty ones (the LLM-from-scratch seed's
    /// cleaning).
    #[arg(long, requires = "wikitext")]
    pub wikitext_clean: bool,
    /// --tokenizer word: lowercase the text first.
    #[arg(long)]
    pub word_lowercase: bool,
    /// --tokenizer word: drop whitespace and split on \w+|[^\w\s] (decoding joins with
    /// spaces), as the LLM-from-scratch seed.
    #[arg(long)]
    pub no_word_whitespace: bool,
    /// Corpus files, folders or glob patterns (default: the bundled Shakespeare corpus).
    #[arg(value_name = "SOURCES")]
    pub sources: Vec<String>,
}

/// Runs `prepare` and prints a one-line summary.
pub fn run(a: PrepareArgs) -> anyhow::Result<()> {
    if !a.pairs.is_empty() || a.pairs_tsv.is_some() || !a.stream_pairs.is_empty() {
        return super::prepare_pairs::run(a);
    }
    if a.tgt_tokenizer.is_some() || a.src_block_size.is_some() || a.tgt_block_size.is_some() {
        anyhow::bail!("--tgt-tokenizer, --src-block-size and --tgt-block-size are for pair data: add --pairs SRC TGT, --pairs-tsv FILE or --stream-pairs SRC_LEN TGT_LEN");
    }
    let mut opts = PrepareOptions::new(a.out);
    opts.sources = a.sources;
    opts.filter = SourceFilter {
        include: a.include,
        exclude: a.exclude,
    };
    opts.tokenizer = TokenizerChoice::parse(&a.tokenizer, a.vocab_size);
    opts.split = if a.val.is_empty() {
        ValSplit::Fraction(a.val_fraction)
    } else {
        ValSplit::Sources(a.val)
    };
    opts.wikitext = a.wikitext.map(|dir| WikiTextOptions {
        dir,
        download: a.download,
        url: a.url,
        sha256: a.sha256,
        clean: a.wikitext_clean,
    });
    opts.word = lmforge_tokenizer::WordOptions {
        lowercase: a.word_lowercase,
        keep_whitespace: !a.no_word_whitespace,
    };
    opts.block_size = a.block_size;
    opts.strip_gutenberg = a.strip_gutenberg;
    opts.lossy = a.lossy;
    opts.quiet = a.quiet;
    let r = prepare(&opts)?;
    let m = &r.meta;
    let test = m
        .test_tokens
        .map(|t| format!(", test {t}"))
        .unwrap_or_default();
    eprintln!(
        "prepared {} sources ({:.1} MB) with {} (vocab {}, {:?}): train {} tokens, val {}{test} in {:.1}s ({:.1} MB/s) → {}",
        m.sources.len(),
        r.bytes as f64 / 1e6,
        m.tokenizer.kind,
        m.tokenizer.vocab_size,
        m.dtype,
        m.train_tokens,
        m.val_tokens,
        r.total_seconds,
        r.mb_per_s(),
        r.out.display()
    );
    Ok(())
}
