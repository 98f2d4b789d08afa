//! The model behind the server and the scheduler that shares it.
//!
//! The engine decodes one sequence per forward pass (its KV-cached session has no batch
//! dimension), so concurrency is a bounded worker pool: `workers` generations run at once,
//! each on a blocking thread with its own [`lmforge_model::InferenceSession`] over the one
//! shared model (weights are read-only, so replicas would only cost memory). Up to `queue`
//! more requests wait for a worker; past that a request is refused with 503 and
//! `Retry-After`. A generation sends its text over a bounded channel; when the client goes
//! away the receiver is dropped, the next send fails and the worker stops after that token,
//! so a disconnect frees its slot at once.
//!
//! An encoder–decoder checkpoint ([`ServedModel::EncoderDecoder`]) takes each prompt as the
//! source text: the worker encodes it once and decodes the target with
//! [`Seq2SeqCheckpoint::decode_ids_streaming`] (greedy at temperature 0, else sampling),
//! streaming the target text through the same [`TextStream`] (stop strings) as GPT.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lmforge_generate::seq2seq::Decoding;
use lmforge_generate::seq2seq_ckpt::Seq2SeqCheckpoint;
use lmforge_generate::stream::TextStream;
use lmforge_generate::{
    generate::encode_prompt, generate_steps, Checkpoint, GenerateOptions, SamplingConfig,
    StopReason,
};
use tokio::sync::{mpsc, Semaphore};

use crate::error::ApiError;
use crate::request::{CompletionRequest, Limits};

/// How many requests run and wait at once.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Generations decoding at the same time.
    pub workers: usize,
    /// Requests waiting for a worker before new ones get 503.
    pub queue: usize,
}

/// The kinds of checkpoint the server serves.
pub enum ServedModel {
    /// A decoder-only GPT: the prompt is continued. (Both kinds are boxed: the structs
    /// are about 1–2 KB and differ in size.)
    Gpt(Box<Checkpoint>),
    /// An encoder–decoder: the prompt is the source, the completion its target.
    EncoderDecoder(Box<Seq2SeqCheckpoint>),
}

impl From<Checkpoint> for ServedModel {
    fn from(c: Checkpoint) -> Self {
        ServedModel::Gpt(Box::new(c))
    }
}

impl From<Seq2SeqCheckpoint> for ServedModel {
    fn from(c: Seq2SeqCheckpoint) -> Self {
        ServedModel::EncoderDecoder(Box::new(c))
    }
}

impl ServedModel {
    /// `gpt` or `encoder-decoder` (what `/v1/models` reports as `arch`).
    pub fn arch(&self) -> &'static str {
        match self {
            ServedModel::Gpt(_) => "gpt",
            ServedModel::EncoderDecoder(_) => "encoder-decoder",
        }
    }
}

/// The served checkpoint and its scheduler.
pub struct Engine {
    model: ServedModel,
    /// The name `/v1/models` lists and responses carry.
    pub model_id: String,
    /// What one request may ask for.
    pub limits: Limits,
    pool: PoolSize,
    slots: Arc<Semaphore>,
    /// Requests admitted and not finished (running + waiting).
    admitted: AtomicUsize,
}

/// An admitted request's place (running or queued); dropping it gives the place back.
pub struct Ticket {
    engine: Arc<Engine>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.engine.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One log-probability entry of a generated token (OpenAI's legacy `logprobs` fields).
#[derive(Debug, Clone)]
pub struct TokenLogprob {
    /// The token's text.
    pub token: String,
    /// `ln p` of the token.
    pub logprob: f32,
    /// The most likely tokens at that position with their `ln p`.
    pub top: Vec<(String, f32)>,
}

/// What a running generation reports, in order, per choice.
#[derive(Debug)]
pub enum Event {
    /// Text that became final (and the log-probabilities of the tokens that made it).
    Text {
        /// index of the choice (`prompt index × n + sample index`)
        choice: usize,
        /// the new text
        text: String,
        /// per token, when the request asked for `logprobs`
        logprobs: Vec<TokenLogprob>,
    },
    /// The choice ended.
    Finish {
        /// index of the choice
        choice: usize,
        /// OpenAI's `finish_reason`: `stop` or `length`
        reason: &'static str,
        /// tokens in the prompt
        prompt_tokens: usize,
        /// tokens generated
        completion_tokens: usize,
    },
}

impl Engine {
    /// An engine serving `ckpt` under `model_id`.
    pub fn new(
        model: impl Into<ServedModel>,
        model_id: String,
        limits: Limits,
        pool: PoolSize,
    ) -> Arc<Self> {
        Arc::new(Engine {
            model: model.into(),
            model_id,
            limits,
            slots: Arc::new(Semaphore::new(pool.workers.max(1))),
            pool,
            admitted: AtomicUsize::new(0),
        })
    }

    /// The loaded checkpoint (model config, tokenizers).
    pub fn model(&self) -> &ServedModel {
        &self.model
    }

    /// Workers and queue length.
    pub fn pool(&self) -> PoolSize {
        self.pool
    }

    /// Requests running or waiting now.
    pub fn in_flight(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }

    /// Checks each prompt encodes within the limits (and that the model can answer what
    /// `req` asks: encoder–decoder checkpoints give no `logprobs`); returns the prompts'
    /// token counts.
    pub fn check_prompts(&self, req: &CompletionRequest) -> Result<Vec<usize>, ApiError> {
        if matches!(self.model, ServedModel::EncoderDecoder(_)) && req.logprobs > 0 {
            return Err(ApiError::invalid(
                Some("logprobs"),
                "unsupported_value",
                "logprobs is not available for an encoder-decoder model; leave it out",
            ));
        }
        req.prompts
            .iter()
            .map(|p| {
                let bad = |e: lmforge_generate::GenerateError| {
                    ApiError::invalid(Some("prompt"), "invalid_prompt", e.to_string())
                };
                let ids = match &self.model {
                    // usize::MAX: measure the full length here; the limit decides.
                    ServedModel::Gpt(c) => encode_prompt(&c.tokenizer, p, usize::MAX).map_err(bad)?.0,
                    ServedModel::EncoderDecoder(s) => source_ids(s, p).map_err(bad)?,
                };
                if ids.len() > self.limits.max_prompt_tokens {
                    return Err(ApiError::invalid(
                        Some("prompt"),
                        "context_length_exceeded",
                        format!(
                            "the prompt has {} tokens; this server allows at most {} (the model's block size unless --max-prompt-tokens says otherwise)",
                            ids.len(),
                            self.limits.max_prompt_tokens
                        ),
                    ));
                }
                Ok(ids.len())
            })
            .collect()
    }

    /// Takes a place (running or queued), or refuses with 503 when all are taken.
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, ApiError> {
        let capacity = self.pool.workers.max(1) + self.pool.queue;
        let taken = self.admitted.fetch_add(1, Ordering::SeqCst);
        let ticket = Ticket {
            engine: self.clone(),
        };
        if taken >= capacity {
            return Err(ApiError::busy(1));
        }
        Ok(ticket)
    }

    /// Runs `req` when a worker is free; its events arrive on the returned channel, which
    /// closes when every choice has finished (or an error came).
    pub fn start(
        self: &Arc<Self>,
        req: CompletionRequest,
        ticket: Ticket,
    ) -> mpsc::Receiver<Result<Event, ApiError>> {
        let (tx, rx) = mpsc::channel(64);
        let engine = self.clone();
        tokio::spawn(async move {
            let Ok(permit) = engine.slots.clone().acquire_owned().await else {
                return;
            };
            if tx.is_closed() {
                return; // the client left while queued
            }
            let _ = tokio::task::spawn_blocking(move || {
                let _held = (permit, ticket);
                if let Err(e) = engine.run(&req, &tx) {
                    let _ = tx.blocking_send(Err(e));
                }
            })
            .await;
        });
        rx
    }

    /// Generates every choice of `req` in turn, sending events; stops when the receiver
    /// is gone.
    fn run(
        &self,
        req: &CompletionRequest,
        tx: &mpsc::Sender<Result<Event, ApiError>>,
    ) -> Result<(), ApiError> {
        let seed = req.seed.unwrap_or_else(fresh_seed);
        for (p, prompt) in req.prompts.iter().enumerate() {
            for j in 0..req.n {
                let choice = p * req.n + j;
                if req.echo && !prompt.is_empty() {
                    let echo = Event::Text {
                        choice,
                        text: prompt.clone(),
                        logprobs: Vec::new(),
                    };
                    if tx.blocking_send(Ok(echo)).is_err() {
                        return Ok(());
                    }
                }
                let seed = seed.wrapping_add(j as u64);
                let more = match &self.model {
                    ServedModel::Gpt(c) => self.gpt_choice(c, req, prompt, choice, seed, tx)?,
                    ServedModel::EncoderDecoder(c) => {
                        seq2seq_choice(c, req, prompt, choice, seed, tx)?
                    }
                };
                if !more {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// One GPT choice: continues `prompt`, sending its text; false when the client left.
    fn gpt_choice(
        &self,
        c: &Checkpoint,
        req: &CompletionRequest,
        prompt: &str,
        choice: usize,
        seed: u64,
        tx: &mpsc::Sender<Result<Event, ApiError>>,
    ) -> Result<bool, ApiError> {
        let tok = &c.tokenizer;
        let opts = GenerateOptions {
            max_new_tokens: req.max_tokens,
            sampling: SamplingConfig {
                temperature: req.temperature,
                top_k: req.top_k,
                top_p: req.top_p,
                seed,
            },
            stop: req.stop.clone(),
            exact_context: false,
            ignore_eos: false,
        };
        let mut pending = Vec::new();
        let mut gone = false;
        let out = generate_steps(&c.model, tok, prompt, &opts, req.logprobs, &mut |step| {
            if req.logprobs > 0 && !step.top.is_empty() {
                pending.push(TokenLogprob {
                    token: token_text(tok, step.id),
                    logprob: step.logprob,
                    top: step
                        .top
                        .iter()
                        .map(|&(id, lp)| (token_text(tok, id), lp))
                        .collect(),
                });
            }
            if step.text.is_empty() {
                return ControlFlow::Continue(());
            }
            let ev = Event::Text {
                choice,
                text: step.text.to_string(),
                logprobs: std::mem::take(&mut pending),
            };
            match tx.blocking_send(Ok(ev)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => {
                    gone = true;
                    ControlFlow::Break(())
                }
            }
        })
        .map_err(|e| ApiError::internal(format!("generation failed: {e}")))?;
        if gone || out.stop_reason == StopReason::Cancelled {
            return Ok(false);
        }
        if !pending.is_empty() {
            let ev = Event::Text {
                choice,
                text: String::new(),
                logprobs: pending,
            };
            if tx.blocking_send(Ok(ev)).is_err() {
                return Ok(false);
            }
        }
        let finish = Event::Finish {
            choice,
            reason: if out.stop_reason == StopReason::MaxTokens {
                "length"
            } else {
                "stop"
            },
            prompt_tokens: out.prompt_tokens,
            completion_tokens: out.ids.len(),
        };
        if tx.blocking_send(Ok(finish)).is_err() {
            return Ok(false);
        }
        Ok(true)
    }
}

/// Source ids of `prompt` for an encoder–decoder model (cut to `src_block_size`).
fn source_ids(
    c: &Seq2SeqCheckpoint,
    prompt: &str,
) -> Result<Vec<u32>, lmforge_generate::GenerateError> {
    Ok(c.encode_source(prompt)?.0)
}

/// One encoder–decoder choice: translates `prompt` (the source), streaming the target
/// text as tokens are decoded; false when the client left.
fn seq2seq_choice(
    c: &Seq2SeqCheckpoint,
    req: &CompletionRequest,
    prompt: &str,
    choice: usize,
    seed: u64,
    tx: &mpsc::Sender<Result<Event, ApiError>>,
) -> Result<bool, ApiError> {
    let failed =
        |e: lmforge_generate::GenerateError| ApiError::internal(format!("generation failed: {e}"));
    let src = source_ids(c, prompt)
        .map_err(|e| ApiError::invalid(Some("prompt"), "invalid_prompt", e.to_string()))?;
    let decoding = if req.temperature == 0.0 {
        Decoding::Greedy
    } else {
        Decoding::Sample(SamplingConfig {
            temperature: req.temperature,
            top_k: req.top_k,
            top_p: req.top_p,
            seed,
        })
    };
    // decode clamps to tgt_block_size (the decoder's positions), `<eos>` included.
    let opts = c.options(decoding, req.max_tokens);
    let specials = c.pairs.tgt.specials;
    let mut text = TextStream::new(&c.tgt_tokenizer, req.stop.clone());
    let send = |t: String| {
        let ev = Event::Text {
            choice,
            text: t,
            logprobs: Vec::new(),
        };
        tx.blocking_send(Ok(ev)).is_ok()
    };
    let (mut gone, mut error) = (false, None);
    let hyp = c
        .decode_ids_streaming(&src, &opts, &mut |id, _logits| {
            if specials.is_special(id) {
                return ControlFlow::Continue(()); // <eos> ends the decode by itself
            }
            let chunk = match text.push(id) {
                Ok(t) => t,
                Err(e) => {
                    error = Some(e);
                    return ControlFlow::Break(());
                }
            };
            if !chunk.is_empty() && !send(chunk) {
                gone = true;
                return ControlFlow::Break(());
            }
            if text.stopped {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .map_err(failed)?;
    if gone {
        return Ok(false);
    }
    if let Some(e) = error {
        return Err(failed(e));
    }
    let rest = text.finish().map_err(failed)?;
    if !rest.is_empty() && !send(rest) {
        return Ok(false);
    }
    let finish = Event::Finish {
        choice,
        reason: if hyp.finished || text.stopped {
            "stop"
        } else {
            "length"
        },
        prompt_tokens: src.len(),
        completion_tokens: hyp.tokens.len(),
    };
    Ok(tx.blocking_send(Ok(finish)).is_ok())
}

/// A token's text for log-probability lists (bytes of a partial character become U+FFFD).
fn token_text(tok: &lmforge_tokenizer::Tokenizer, id: u32) -> String {
    tok.decode_bytes(&[id])
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A seed for requests that bring none: different per request.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
