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

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// The served checkpoint and its scheduler.
pub struct Engine {
    ckpt: Checkpoint,
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
    pub fn new(ckpt: Checkpoint, model_id: String, limits: Limits, pool: PoolSize) -> Arc<Self> {
        Arc::new(Engine {
            ckpt,
            model_id,
            limits,
            slots: Arc::new(Semaphore::new(pool.workers.max(1))),
            pool,
            admitted: AtomicUsize::new(0),
        })
    }

    /// The loaded checkpoint (model config, tokenizer).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.ckpt
    }

    /// Workers and queue length.
    pub fn pool(&self) -> PoolSize {
        self.pool
    }

    /// Requests running or waiting now.
    pub fn in_flight(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }

    /// Checks each prompt encodes within the limits; returns their token counts.
    pub fn check_prompts(&self, req: &CompletionRequest) -> Result<Vec<usize>, ApiError> {
        let tok = &self.ckpt.tokenizer;
        req.prompts
            .iter()
            .map(|p| {
                // usize::MAX: measure the full length here; the limit decides.
                let (ids, _) = encode_prompt(tok, p, usize::MAX)
                    .map_err(|e| ApiError::invalid(Some("prompt"), "invalid_prompt", e.to_string()))?;
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
        let tok = &self.ckpt.tokenizer;
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
                let opts = GenerateOptions {
                    max_new_tokens: req.max_tokens,
                    sampling: SamplingConfig {
                        temperature: req.temperature,
                        top_k: req.top_k,
                        top_p: req.top_p,
                        seed: seed.wrapping_add(j as u64),
                    },
                    stop: req.stop.clone(),
                    exact_context: false,
                    ignore_eos: false,
                };
                let mut pending = Vec::new();
                let mut gone = false;
                let out = generate_steps(
                    &self.ckpt.model,
                    tok,
                    prompt,
                    &opts,
                    req.logprobs,
                    &mut |step| {
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
                    },
                )
                .map_err(|e| ApiError::internal(format!("generation failed: {e}")))?;
                if gone || out.stop_reason == StopReason::Cancelled {
                    return Ok(());
                }
                if !pending.is_empty() {
                    let ev = Event::Text {
                        choice,
                        text: String::new(),
                        logprobs: pending,
                    };
                    if tx.blocking_send(Ok(ev)).is_err() {
                        return Ok(());
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
                    return Ok(());
                }
            }
        }
        Ok(())
    }
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
