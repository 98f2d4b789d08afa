//! `lmforge generate`: sample text from a checkpoint with a KV cache, streaming to stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lmforge_generate::{Checkpoint, GenerateOptions, SamplingConfig};

/// `lmforge generate --checkpoint DIR [--prompt TEXT] ...`
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Checkpoint folder (or a run folder: its checkpoints/best is used). The model config
    /// and tokenizer come from it.
    #[arg(long, value_name = "DIR", default_value = "models/shakespeare-char")]
    pub checkpoint: PathBuf,
    /// Text to continue. Empty (the default) starts from the end-of-text token that
    /// separates documents in the training data (or a newline if the tokenizer has none).
    #[arg(long, default_value = "", conflicts_with = "prompt_file")]
    pub prompt: String,
    /// Read the prompt from a file.
    #[arg(long, value_name = "FILE")]
    pub prompt_file: Option<PathBuf>,
    /// Tokens to generate per sample (also --num-tokens; 10,000 and more stream fine, with
    /// --output FILE to keep them).
    #[arg(long, alias = "num-tokens", default_value_t = 500)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = SamplingConfig::default().temperature, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep only the K most likely tokens (0 = no limit).
    #[arg(long, default_value_t = SamplingConfig::default().top_k.unwrap_or(0))]
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches P, in (0, 1].
    #[arg(long, allow_negative_numbers = true)]
    pub top_p: Option<f32>,
    /// Random seed (same seed, same text).
    #[arg(long, default_value_t = SamplingConfig::default().seed)]
    pub seed: u64,
    /// Number of samples, separated by a line of dashes.
    #[arg(long, default_value_t = 1)]
    pub num_samples: usize,
    /// Never end at the end-of-text token: write exactly --max-new-tokens tokens (JaneLM's
    /// 10,000) unless a --stop string comes first.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Also write the samples to this file.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Stop when this string is generated (repeatable); it is not printed.
    #[arg(long, value_name = "STRING")]
    pub stop: Vec<String>,
    /// Learned-position models past their block size: re-read the whole last block for
    /// every new token, as nanoGPT does (slow). By default the context shifts by half a block
    /// and generation continues from the KV cache.
    #[arg(long)]
    pub exact_context: bool,
    /// Print timing as one JSON line on stderr at the end (tokens/s, ms to first token).
    #[arg(long)]
    pub json_stats: bool,
    #[command(flatten)]
    pub dtype: super::dtype::DtypeFlag,
    /// Encoder–decoder checkpoints: the source text to translate.
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["prompt", "prompt_file", "source_file"])]
    pub source: Option<String>,
    /// Encoder–decoder checkpoints: translate this file line by line (to --output or stdout).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt", "prompt_file"])]
    pub source_file: Option<PathBuf>,
    /// Encoder–decoder checkpoints: beam search with K beams (default: greedy).
    #[arg(long, value_name = "K")]
    pub beams: Option<usize>,
    /// Beam search's length penalty α: hypotheses rank by log P / length^α (0 = raw log P).
    #[arg(long, value_name = "A", default_value_t = 1.0, requires = "beams")]
    pub length_penalty: f64,
    /// Encoder–decoder checkpoints: sample with --temperature/--top-k/--top-p instead of
    /// decoding greedily.
    #[arg(long, conflicts_with = "beams")]
    pub sample: bool,
}

/// The shipped sample model is found from any folder: `models/shakespeare-char` relative to
/// the current folder, else in the checkout the binary was built from.
pub(crate) fn resolve_default_checkpoint(p: &std::path::Path) -> PathBuf {
    if !p.exists() && p == std::path::Path::new(SAMPLE_MODEL) {
        let built_from = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(SAMPLE_MODEL);
        if built_from.is_dir() {
            return built_from;
        }
    }
    p.to_path_buf()
}

/// The small model shipped with the repository (trained by `lmforge train` with the defaults).
pub const SAMPLE_MODEL: &str = "models/shakespeare-char";

/// Runs `lmforge generate`.
pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    if super::generate_seq2seq::is_for_seq2seq(&a, &resolve_default_checkpoint(&a.checkpoint))? {
        return super::generate_seq2seq::run(a);
    }
    let sampling = SamplingConfig {
        temperature: a.temperature,
        top_k: (a.top_k > 0).then_some(a.top_k),
        top_p: a.top_p,
        seed: a.seed,
    };
    sampling.validate()?;
    let precision = a.dtype.resolve()?;
    let prompt = match &a.prompt_file {
        Some(f) => lmforge_corpus::read_text(f, false)?,
        None => a.prompt.clone(),
    };
    if let Some(p) = &a.output {
        // Written atomically at the end; a folder that is not there fails before generating.
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        anyhow::ensure!(
            dir.is_none_or(|d| d.is_dir()),
            "--output {}: cannot write: no such folder",
            p.display()
        );
    }
    let mut saved = String::new();
    let mut ckpt = Checkpoint::load(&resolve_default_checkpoint(&a.checkpoint))?;
    ckpt.model.set_precision(precision);
    // Check the prompt before printing anything.
    lmforge_generate::generate::encode_prompt(
        &ckpt.tokenizer,
        &prompt,
        ckpt.model.config().block_size,
    )?;
    eprintln!("dtype: {}", precision.describe());
    let mut stdout = std::io::stdout().lock();
    let mut stats = Vec::new();
    for i in 0..a.num_samples {
        if i > 0 {
            writeln!(stdout, "\n---------------")?;
        }
        let opts = GenerateOptions {
            max_new_tokens: a.max_new_tokens,
            sampling: SamplingConfig {
                seed: a.seed.wrapping_add(i as u64),
                ..sampling
            },
            stop: a.stop.clone(),
            exact_context: a.exact_context,
            ignore_eos: a.ignore_eos,
        };
        write!(stdout, "{prompt}")?;
        let mut write_err = None;
        let model = &ckpt.model;
        let out =
            lmforge_generate::generate(model, &ckpt.tokenizer, &prompt, &opts, &mut |text| {
                if let Err(e) = stdout
                    .write_all(text.as_bytes())
                    .and_then(|_| stdout.flush())
                {
                    write_err.get_or_insert(e);
                }
            })?;
        if let Some(e) = write_err {
            return Err(e).context("writing to stdout");
        }
        writeln!(stdout)?;
        for w in &out.warnings {
            eprintln!("warning: {w}");
        }
        if a.output.is_some() {
            if i > 0 {
                saved.push_str("---------------\n");
            }
            saved.push_str(&format!("{prompt}{}\n", out.text));
        }
        stats.push(out);
    }
    if let Some(p) = &a.output {
        lmforge_files::write_atomic(p, saved.as_bytes())
            .with_context(|| format!("--output {}: cannot write", p.display()))?;
    }
    if a.json_stats {
        let n: usize = stats.iter().map(|s| s.ids.len()).sum();
        let tps = stats.iter().map(|s| s.tokens_per_s).sum::<f64>() / stats.len().max(1) as f64;
        let first = stats.first().map(|s| s.ms_to_first_token).unwrap_or(0.0);
        eprintln!(
            "{}",
            serde_json::json!({"tokens": n, "tokens_per_s": tps, "ms_to_first_token": first, "stop_reason": stats.last().map(|s| s.stop_reason), "dtype": precision.dtype()})
        );
    }
    Ok(())
}
