//! The HTTP routes: `/v1/models`, `/v1/completions`, `/health` and the playground at `/`,
//! with the API-key check, body limit and timeouts around them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::engine::{Engine, Event, ServedModel};
use crate::error::ApiError;
use crate::request::CompletionRequest;
use crate::response::{
    finish_chunk, logprobs_json, text_chunk, usage_chunk, Collector, Header, Usage,
};

/// The playground page (plain HTML and JavaScript, embedded in the binary).
const PLAYGROUND: &str = include_str!("playground.html");

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// When set, `/v1/*` requires `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Largest request body in bytes (413 past it).
    pub max_body_bytes: usize,
    /// Time to receive a request body.
    pub body_timeout: Duration,
    /// Time to send a request's headers, and the longest a kept-alive connection may idle.
    pub header_timeout: Duration,
    /// Time until a response starts (a non-streamed completion must finish within it).
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            api_key: None,
            max_body_bytes: 1 << 20,
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(600),
        }
    }
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    api_key: Option<Arc<[u8]>>,
}

/// The server's routes over `engine`.
pub fn router(engine: Arc<Engine>, http: &HttpOptions) -> Router {
    let state = AppState {
        engine,
        api_key: http.api_key.as_ref().map(|k| Arc::from(k.as_bytes())),
    };
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/", get(|| async { Html(PLAYGROUND) }))
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(http.body_timeout))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            http.request_timeout,
        ))
}

/// Checks `Authorization: Bearer KEY` in constant time when the server has a key.
async fn require_key(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(key)) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

async fn not_found(req: Request) -> ApiError {
    ApiError::with_status(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {} {} (this server has GET /v1/models, POST /v1/completions, GET /health, GET /)", req.method(), req.uri().path()),
    )
}

async fn health(State(s): State<AppState>) -> Json<Value> {
    let pool = s.engine.pool();
    Json(
        json!({"status": "ok", "model": s.engine.model_id, "in_flight": s.engine.in_flight(), "workers": pool.workers, "queue": pool.queue}),
    )
}

/// OpenAI's model list, plus an `lmforge` object (config, tokenizer, limits) the
/// playground shows.
async fn models(State(s): State<AppState>) -> Json<Value> {
    let e = &s.engine;
    let (checkpoint, config, tokenizer) = match e.model() {
        ServedModel::Gpt(c) => {
            let tok = &c.tokenizer;
            (
                &c.dir,
                json!(c.model.config()),
                json!({"kind": tok.kind(), "vocab_size": tok.vocab_size(), "eos_id": tok.eos_id()}),
            )
        }
        ServedModel::EncoderDecoder(c) => {
            let side = |t: &lmforge_tokenizer::Tokenizer| json!({"kind": t.kind(), "vocab_size": t.vocab_size()});
            (
                &c.dir,
                json!(c.model.config()),
                json!({"source": side(&c.src_tokenizer), "target": side(&c.tgt_tokenizer), "eos_id": c.pairs.tgt.specials.eos}),
            )
        }
    };
    Json(json!({"object": "list", "data": [{
        "id": e.model_id,
        "object": "model",
        "created": 0,
        "owned_by": "lmforge",
        "lmforge": {
            "arch": e.model().arch(),
            "checkpoint": checkpoint.display().to_string(),
            "config": config,
            "tokenizer": tokenizer,
            "limits": {"max_tokens": e.limits.max_tokens, "max_prompt_tokens": e.limits.max_prompt_tokens, "max_choices": e.limits.max_choices},
            "workers": e.pool().workers,
            "queue": e.pool().queue,
        },
    }]}))
}

async fn completions(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "invalid_body"
        };
        ApiError::with_status(
            e.status(),
            code,
            format!("cannot read the request body: {}", e.body_text()),
        )
    })?;
    let req = CompletionRequest::parse(&body, &s.engine.limits)?;
    s.engine.check_prompts(&req)?;
    let ticket = s.engine.admit()?;
    let header = Header::new(&s.engine.model_id);
    let echo_lens: Vec<usize> = (0..req.prompts.len() * req.n)
        .map(|i| {
            if req.echo {
                req.prompts[i / req.n].len()
            } else {
                0
            }
        })
        .collect();
    let rx = s.engine.start(req.clone(), ticket);
    if req.stream {
        return Ok(Sse::new(sse_stream(rx, header, req, echo_lens.len())).into_response());
    }
    let mut rx = rx;
    let mut collector = Collector::new(req.prompts.len() * req.n, req.logprobs > 0);
    while let Some(ev) = rx.recv().await {
        collector.add(ev?, req.n);
    }
    Ok(Json(collector.finish(&header, &echo_lens)).into_response())
}

/// A stream's progress: the events still to come and the chunks ready to send.
struct StreamState {
    rx: mpsc::Receiver<Result<Event, ApiError>>,
    header: Header,
    req: CompletionRequest,
    /// per choice: bytes of text sent so far (logprob text offsets)
    offsets: Vec<usize>,
    usage: Usage,
    ready: VecDeque<String>,
    done: bool,
}

impl StreamState {
    /// Turns the next event into chunks; sets `done` after the last.
    async fn pull(&mut self) {
        match self.rx.recv().await {
            Some(Ok(Event::Text {
                choice,
                text,
                logprobs,
            })) => {
                let offset = self.offsets.get(choice).copied().unwrap_or(0);
                let lp = (self.req.logprobs > 0).then(|| logprobs_json(&logprobs, offset));
                if let Some(o) = self.offsets.get_mut(choice) {
                    *o += text.len();
                }
                self.ready
                    .push_back(text_chunk(&self.header, choice, &text, lp).to_string());
            }
            Some(Ok(Event::Finish {
                choice,
                reason,
                prompt_tokens,
                completion_tokens,
            })) => {
                if choice % self.req.n.max(1) == 0 {
                    self.usage.prompt_tokens += prompt_tokens;
                }
                self.usage.completion_tokens += completion_tokens;
                self.ready
                    .push_back(finish_chunk(&self.header, choice, reason).to_string());
            }
            Some(Err(e)) => {
                self.ready.push_back(e.body().to_string());
                self.done = true;
            }
            None => {
                if self.req.include_usage {
                    self.ready
                        .push_back(usage_chunk(&self.header, &self.usage).to_string());
                }
                self.ready.push_back("[DONE]".into());
                self.done = true;
            }
        }
    }
}

/// Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`. Dropping the
/// stream (the client left) drops the receiver, which stops the generation.
fn sse_stream(
    rx: mpsc::Receiver<Result<Event, ApiError>>,
    header: Header,
    req: CompletionRequest,
    choices: usize,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let offsets = vec![0; choices];
    let state = StreamState {
        rx,
        header,
        req,
        offsets,
        usage: Usage::default(),
        ready: VecDeque::new(),
        done: false,
    };
    stream::unfold(state, |mut st| async move {
        while st.ready.is_empty() && !st.done {
            st.pull().await;
        }
        let data = st.ready.pop_front()?;
        Some((Ok(SseEvent::default().data(data)), st))
    })
}
