//! `lmforge generate` for encoder–decoder checkpoints: `--source TEXT` or `--source-file F`
//! (line by line, to `--output` or stdout), greedy by default, `--beams K` or `--sample`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use lmforge_generate::seq2seq::Decoding;
use lmforge_generate::seq2seq_ckpt::{is_seq2seq_checkpoint, Seq2SeqCheckpoint};
use lmforge_generate::SamplingConfig;

use super::generate::GenerateArgs;

/// Decides which generator runs, refusing the flags of the other kind: `--source` with a GPT
/// checkpoint, or a `--prompt` with an encoder–decoder one.
pub fn is_for_seq2seq(a: &GenerateArgs, dir: &Path) -> anyhow::Result<bool> {
    let has_source = a.source.is_some() || a.source_file.is_some();
    // An unreadable folder is reported by the GPT loader's own checks.
    let seq2seq = is_seq2seq_checkpoint(dir).unwrap_or(false);
    if seq2seq && (!a.prompt.is_empty() || a.prompt_file.is_some()) {
        anyhow::bail!(
            "{} is an encoder-decoder checkpoint: give the text to translate with --source TEXT or --source-file FILE, not --prompt",
            dir.display()
        );
    }
    if !seq2seq && (has_source || a.beams.is_some() || a.sample) {
        anyhow::bail!(
            "{} is not an encoder-decoder checkpoint: --source, --source-file, --beams and --sample are for sequence-to-sequence models; continue text with --prompt",
            dir.display()
        );
    }
    if seq2seq && !has_source {
        anyhow::bail!(
            "{} is an encoder-decoder checkpoint: give --source TEXT or --source-file FILE",
            dir.display()
        );
    }
    Ok(seq2seq)
}

fn decoding(a: &GenerateArgs) -> anyhow::Result<Decoding> {
    Ok(match (a.beams, a.sample) {
        (Some(beams), _) => Decoding::Beam {
            beams,
            length_penalty: a.length_penalty,
        },
        (None, true) => {
            let cfg = SamplingConfig {
                temperature: a.temperature,
                top_k: (a.top_k > 0).then_some(a.top_k),
                top_p: a.top_p,
                seed: a.seed,
            };
            cfg.validate()?;
            Decoding::Sample(cfg)
        }
        (None, false) => Decoding::Greedy,
    })
}

/// Runs generation for an encoder–decoder checkpoint.
pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    let decoding = decoding(&a)?;
    let precision = a.dtype.resolve()?;
    if let Some(p) = &a.output {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        anyhow::ensure!(
            dir.is_none_or(|d| d.is_dir()),
            "--output {}: cannot write: no such folder",
            p.display()
        );
    }
    let lines: Vec<String> = match (&a.source, &a.source_file) {
        (Some(text), _) => vec![text.clone()],
        (None, Some(f)) => lmforge_corpus::read_text(f, false)?
            .lines()
            .map(str::to_string)
            .collect(),
        (None, None) => anyhow::bail!("give --source TEXT or --source-file FILE"),
    };
    let mut ckpt = Seq2SeqCheckpoint::load(&a.checkpoint)?;
    ckpt.model.backend_mut().set_precision(precision);
    let opts = ckpt.options(decoding, a.max_new_tokens);
    if a.source.is_some() {
        // A single source: check it before printing anything (an empty one is an error).
        ckpt.encode_source(&lines[0])?;
    }
    let mut stdout = std::io::stdout().lock();
    let mut saved = String::new();
    let mut said_dtype = false;
    for (i, line) in lines.iter().enumerate() {
        let out = if a.source_file.is_some() && line.trim().is_empty() {
            String::new() // keep the output aligned with the input
        } else {
            let (text, warnings) = ckpt.translate(line, &opts)?;
            if !said_dtype {
                // after the first translation: bad options are one error line, nothing before
                eprintln!("dtype: {}", precision.describe());
                said_dtype = true;
            }
            for w in warnings {
                match &a.source_file {
                    Some(f) => eprintln!("warning: {}:{}: {w}", f.display(), i + 1),
                    None => eprintln!("warning: {w}"),
                }
            }
            text
        };
        if a.output.is_some() {
            saved.push_str(&out);
            saved.push('\n');
        } else {
            writeln!(stdout, "{out}").context("writing to stdout")?;
        }
    }
    if let Some(p) = &a.output {
        lmforge_files::write_atomic(p, saved.as_bytes())
            .with_context(|| format!("--output {}: cannot write", p.display()))?;
        eprintln!("translated {} lines → {}", lines.len(), p.display());
    }
    Ok(())
}
