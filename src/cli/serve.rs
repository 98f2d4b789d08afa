//! `lmforge serve`: the OpenAI-compatible HTTP server and playground over one checkpoint.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;
use lmforge_generate::seq2seq_ckpt::{is_seq2seq_checkpoint, Seq2SeqCheckpoint};
use lmforge_generate::Checkpoint;
use lmforge_serve::{Engine, HttpOptions, Limits, PoolSize, ServedModel};

/// `lmforge serve --checkpoint DIR [--host 127.0.0.1] [--port 8080]`
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Checkpoint folder (or a run folder: its checkpoints/best is used).
    #[arg(long, value_name = "DIR", default_value = super::generate::SAMPLE_MODEL)]
    pub checkpoint: PathBuf,
    /// Address to listen on. Anything but a loopback address needs --api-key or --no-auth.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on /v1/* (compared in constant time).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Serve a non-loopback address without a key (anyone who reaches it can generate).
    #[arg(long, conflicts_with = "api_key")]
    pub no_auth: bool,
    /// Name the model is listed under in /v1/models (default: the checkpoint's folder name).
    #[arg(long)]
    pub model_name: Option<String>,
    /// Generations decoding at once (default: the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Requests that may wait for a worker; more get 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 4096)]
    pub max_tokens: usize,
    /// Longest prompt in tokens (default: the model's block size); longer ones get 400.
    #[arg(long)]
    pub max_prompt_tokens: Option<usize>,
    /// Most choices per request (`n` × prompts).
    #[arg(long, default_value_t = 16)]
    pub max_choices: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Seconds until a response must start (a non-streamed completion must be done by then).
    #[arg(long, default_value_t = 600)]
    pub request_timeout: u64,
    /// Seconds a client has to send a request's headers; also the longest a kept-alive
    /// connection may sit idle before it is closed.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    #[command(flatten)]
    pub dtype: super::dtype::DtypeFlag,
}

/// Runs `lmforge serve`.
pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    lmforge_serve::check_auth(a.host, a.api_key.as_deref(), a.no_auth)?;
    anyhow::ensure!(a.workers != Some(0), "--workers must be at least 1");
    let dir = super::generate::resolve_default_checkpoint(&a.checkpoint);
    let precision = a.dtype.resolve()?;
    // An encoder–decoder checkpoint takes each prompt as its source text. (A folder that
    // is neither fails in Checkpoint::load, with the message `generate` gives.)
    let (dir, block, note, model): (PathBuf, usize, String, ServedModel) =
        if is_seq2seq_checkpoint(&dir).unwrap_or(false) {
            let mut c = Seq2SeqCheckpoint::load(&dir)?;
            c.model.backend_mut().set_precision(precision);
            let block = c.model.config().src_block_size;
            let note = format!(
                "encoder-decoder: the prompt is the source; {}",
                precision.describe()
            );
            (c.dir.clone(), block, note, c.into())
        } else {
            let mut c = Checkpoint::load(&dir)?;
            c.model.set_precision(precision);
            let block = c.model.config().block_size;
            let note = precision.describe().to_string();
            (c.dir.clone(), block, note, c.into())
        };
    let model_id = a.model_name.clone().unwrap_or_else(|| model_name(&dir));
    let limits = Limits {
        max_tokens: a.max_tokens,
        max_prompt_tokens: a.max_prompt_tokens.unwrap_or(block),
        max_choices: a.max_choices,
    };
    let workers = a
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = PoolSize {
        workers,
        queue: a.queue,
    };
    let http = HttpOptions {
        api_key: a.api_key.clone(),
        max_body_bytes: a.max_body_bytes,
        request_timeout: std::time::Duration::from_secs(a.request_timeout),
        header_timeout: std::time::Duration::from_secs(a.header_timeout),
        ..HttpOptions::default()
    };
    let engine = Engine::new(model, model_id, limits, pool);
    lmforge_serve::serve_blocking(a.host, a.port, engine, &http, &note)?;
    Ok(())
}

/// `runs/x/checkpoints/best` → `x-best`; `models/shakespeare-char` → `shakespeare-char`.
fn model_name(dir: &std::path::Path) -> String {
    let name = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let leaf = name(dir).unwrap_or_else(|| "model".into());
    let run = dir
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "checkpoints"))
        .and_then(|p| p.parent())
        .and_then(name);
    match run {
        Some(run) => format!("{run}-{leaf}"),
        None => leaf,
    }
}
