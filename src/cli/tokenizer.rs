//! `lmforge tokenizer ...`: train, encode, decode, info, bench.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use lmforge_corpus::{bundled_corpus_dir, SourceFilter, TextChunks, DEFAULT_CHUNK_BYTES};
use lmforge_tokenizer::{bench, train_from_sources, StreamEncoder, Tokenizer, TrainKind};

/// Tokenizer jobs. T (a tokenizer) is a file written by `tokenizer train`, a Hugging Face
/// tokenizer.json, a SentencePiece .model, a data/checkpoint folder holding one, or a
/// built-in name: tiktoken:gpt2, tiktoken:r50k_base, tiktoken:p50k_base,
/// tiktoken:cl100k_base, tiktoken:o200k_base.
#[derive(Subcommand, Debug)]
pub enum TokenizerCommand {
    /// Train a tokenizer on a corpus and save it to one file.
    Train(TrainArgs),
    /// Encode text to token ids.
    Encode(EncodeArgs),
    /// Decode token ids to text.
    Decode(DecodeArgs),
    /// Show a tokenizer's kind, vocabulary size, special tokens and fingerprint.
    Info(InfoArgs),
    /// Measure encode throughput (MB/s) per kind and BPE training time on a corpus.
    Bench(BenchArgs),
}

/// `tokenizer train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Kind to train: char, word, bpe (byte-level BPE, saved as HF tokenizer.json) or
    /// unigram (SentencePiece-style, HF tokenizer.json).
    #[arg(long)]
    pub kind: String,
    /// Vocabulary size including the 4 special tokens (default: 8192; char keeps every
    /// character unless given).
    #[arg(long, value_name = "N")]
    pub vocab_size: Option<usize>,
    /// Output file (written atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Glob filter on files found in folders (repeatable), e.g. --include '*.txt'.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Glob filter excluding files found in folders (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Replace invalid UTF-8 bytes with U+FFFD instead of failing.
    #[arg(long)]
    pub lossy: bool,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Corpus files, folders or glob patterns (default: the bundled Shakespeare corpus).
    #[arg(value_name = "CORPUS")]
    pub corpus: Vec<String>,
}

/// Output format for ids.
#[derive(ValueEnum, Clone, Copy, Debug, Default)]
pub enum IdFormat {
    /// One JSON array.
    #[default]
    Json,
    /// One id per line.
    Lines,
}

/// `tokenizer encode`.
#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// Tokenizer file, folder or built-in name (see `lmforge tokenizer --help`).
    #[arg(long, short = 't', value_name = "T")]
    pub tokenizer: String,
    /// Read the text from this file instead of the TEXT argument.
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = IdFormat::Json)]
    pub format: IdFormat,
    /// Text to encode.
    #[arg(value_name = "TEXT", required_unless_present = "file")]
    pub text: Option<String>,
}

/// `tokenizer decode`.
#[derive(Args, Debug)]
pub struct DecodeArgs {
    /// Tokenizer file, folder or built-in name.
    #[arg(long, short = 't', value_name = "T")]
    pub tokenizer: String,
    /// Ids as a JSON array ("[1, 2, 3]") or separated by commas/whitespace; "-" reads stdin.
    #[arg(value_name = "IDS")]
    pub ids: String,
}

/// `tokenizer info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Tokenizer file, folder or built-in name.
    #[arg(value_name = "T")]
    pub tokenizer: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `tokenizer bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Corpus folder (default: the bundled corpus).
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,
    /// BPE vocabulary size to train (also the word vocabulary).
    #[arg(long, default_value_t = 8192)]
    pub bpe_vocab_size: usize,
    /// A SentencePiece .model to include (default: the test fixture, when present).
    #[arg(long, value_name = "FILE")]
    pub sentencepiece: Option<PathBuf>,
    /// Timed runs per kind (best is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs a tokenizer subcommand.
pub fn run(cmd: TokenizerCommand) -> anyhow::Result<()> {
    match cmd {
        TokenizerCommand::Train(a) => train(a),
        TokenizerCommand::Encode(a) => encode(a),
        TokenizerCommand::Decode(a) => decode(a),
        TokenizerCommand::Info(a) => info(a),
        TokenizerCommand::Bench(a) => bench_cmd(a),
    }
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    let kind: TrainKind = a.kind.parse()?;
    let filter = SourceFilter {
        include: a.include,
        exclude: a.exclude,
    };
    let t0 = std::time::Instant::now();
    let tok = train_from_sources(kind, a.vocab_size, &a.corpus, &filter, a.lossy, a.quiet)?;
    tok.save(&a.out)?;
    eprintln!(
        "trained {} tokenizer: vocab {} in {:.1}s, fingerprint {} → {}",
        tok.kind(),
        tok.vocab_size(),
        t0.elapsed().as_secs_f64(),
        tok.fingerprint(),
        a.out.display()
    );
    Ok(())
}

fn encode(a: EncodeArgs) -> anyhow::Result<()> {
    let tok = Tokenizer::load(&a.tokenizer)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut ids = IdWriter {
        out: &mut out,
        format: a.format,
        first: true,
    };
    ids.open()?;
    match (&a.file, a.text) {
        // A file streams through in bounded memory, ids written as they come.
        (Some(f), _) => {
            let mut enc = StreamEncoder::new(&tok);
            let mut put = |_: usize, chunk: Vec<u32>| ids.write(&chunk);
            for text in TextChunks::open(f, false, DEFAULT_CHUNK_BYTES)? {
                enc.push(0, &text?, &mut put)?;
            }
            enc.end_doc(0, &mut put)?;
            enc.flush(&mut put)?;
        }
        (None, Some(t)) => ids.write(&tok.encode_parallel(&t)?)?,
        (None, None) => bail!("give TEXT or --file FILE"),
    }
    ids.close()?;
    out.flush()?;
    Ok(())
}

/// Writes ids as they are produced: one JSON array (as `serde_json` prints a `Vec<u32>`)
/// or one id per line.
struct IdWriter<'w, W: Write> {
    out: &'w mut W,
    format: IdFormat,
    first: bool,
}

impl<W: Write> IdWriter<'_, W> {
    fn open(&mut self) -> anyhow::Result<()> {
        if let IdFormat::Json = self.format {
            write!(self.out, "[")?;
        }
        Ok(())
    }

    fn write(&mut self, ids: &[u32]) -> Result<(), lmforge_tokenizer::TokenizerError> {
        let io = |e: std::io::Error| {
            lmforge_tokenizer::TokenizerError::Invalid(format!("writing ids: {e}"))
        };
        for id in ids {
            match self.format {
                IdFormat::Json if self.first => write!(self.out, "{id}").map_err(io)?,
                IdFormat::Json => write!(self.out, ",{id}").map_err(io)?,
                IdFormat::Lines => writeln!(self.out, "{id}").map_err(io)?,
            }
            self.first = false;
        }
        Ok(())
    }

    fn close(&mut self) -> anyhow::Result<()> {
        if let IdFormat::Json = self.format {
            writeln!(self.out, "]")?;
        }
        Ok(())
    }
}

fn decode(a: DecodeArgs) -> anyhow::Result<()> {
    let tok = Tokenizer::load(&a.tokenizer)?;
    let raw = if a.ids == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading ids from stdin")?
    } else {
        a.ids
    };
    let ids = lmforge_tokenizer::parse_ids(&raw)?;
    let text = tok.decode(&ids)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

fn info(a: InfoArgs) -> anyhow::Result<()> {
    let tok = Tokenizer::load(&a.tokenizer)?;
    let sp = tok.special_tokens();
    let specials: Vec<(String, u32)> = [
        ("pad", sp.pad),
        ("unk", sp.unk),
        ("bos", sp.bos),
        ("eos", sp.eos),
    ]
    .into_iter()
    .filter_map(|(role, id)| {
        id.map(|id| {
            (
                format!("{role}={}", tok.token_text(id).unwrap_or_default()),
                id,
            )
        })
    })
    .collect();
    if a.json {
        let v = serde_json::json!({
            "kind": tok.kind(),
            "vocab_size": tok.vocab_size(),
            "special_tokens": sp,
            "fingerprint": tok.fingerprint(),
        });
        println!("{v}");
    } else {
        println!("kind:        {}", tok.kind());
        println!("vocab size:  {}", tok.vocab_size());
        let list: Vec<String> = specials
            .iter()
            .map(|(name, id)| format!("{name} ({id})"))
            .collect();
        println!(
            "specials:    {}",
            if list.is_empty() {
                "none".into()
            } else {
                list.join(", ")
            }
        );
        println!("fingerprint: {}", tok.fingerprint());
    }
    Ok(())
}

fn bench_cmd(a: BenchArgs) -> anyhow::Result<()> {
    let corpus = match a.corpus {
        Some(c) => c,
        None => bundled_corpus_dir()?,
    };
    let sp = a.sentencepiece.or_else(|| {
        let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("crates/tokenizer/tests/fixtures/sp_unigram.model");
        fixture.is_file().then_some(fixture)
    });
    let report = bench::run_bench(&corpus, a.bpe_vocab_size, sp, a.runs)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "corpus: {:.2} MB, threads: {}",
            report.corpus_bytes as f64 / 1e6,
            report.threads
        );
        println!("{:<24} {:>10}", "tokenizer", "encode MB/s");
        for (k, v) in &report.encode_mb_per_s {
            println!("{k:<24} {v:>10.1}");
        }
        println!(
            "bpe training (vocab {}): {:.2} s",
            report.bpe_vocab_size, report.bpe_train_s
        );
    }
    Ok(())
}
