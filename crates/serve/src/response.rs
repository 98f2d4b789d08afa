//! OpenAI's `text_completion` JSON: the whole response, or the chunks of a stream.

use serde_json::{json, Value};

use crate::engine::{Event, TokenLogprob};

/// Identity shared by a response and all its chunks.
#[derive(Debug, Clone)]
pub struct Header {
    /// `cmpl-…`
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model's name.
    pub model: String,
}

impl Header {
    /// A fresh id at the current time.
    pub fn new(model: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Header {
            id: format!("cmpl-{created:x}{n:06x}"),
            created,
            model: model.to_string(),
        }
    }

    fn object(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}

/// Token and completion counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Prompt tokens, each prompt counted once.
    pub prompt_tokens: usize,
    /// Generated tokens over all choices.
    pub completion_tokens: usize,
}

impl Usage {
    /// OpenAI's `usage` object.
    pub fn json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

/// The legacy `logprobs` object; `offset` is where the first token starts in the choice's text.
pub fn logprobs_json(entries: &[TokenLogprob], mut offset: usize) -> Value {
    let mut text_offset = Vec::with_capacity(entries.len());
    for e in entries {
        text_offset.push(offset);
        offset += e.token.len();
    }
    json!({
        "tokens": entries.iter().map(|e| e.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": entries.iter().map(|e| e.logprob).collect::<Vec<_>>(),
        "top_logprobs": entries.iter().map(|e| e.top.iter().map(|(t, lp)| (t.clone(), json!(lp))).collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
        "text_offset": text_offset,
    })
}

/// Builds the non-streamed response from all of a request's events.
#[derive(Debug)]
pub struct Collector {
    texts: Vec<String>,
    logprobs: Vec<Vec<TokenLogprob>>,
    finish: Vec<Option<&'static str>>,
    usage: Usage,
    want_logprobs: bool,
}

impl Collector {
    /// For `choices` choices of `prompt_tokens` (per prompt, each used `n` times).
    pub fn new(choices: usize, want_logprobs: bool) -> Self {
        Collector {
            texts: vec![String::new(); choices],
            logprobs: (0..choices).map(|_| Vec::new()).collect(),
            finish: vec![None; choices],
            usage: Usage::default(),
            want_logprobs,
        }
    }

    /// Adds one event.
    pub fn add(&mut self, ev: Event, n: usize) {
        match ev {
            Event::Text {
                choice,
                text,
                logprobs,
            } => {
                if let Some(t) = self.texts.get_mut(choice) {
                    t.push_str(&text);
                    self.logprobs[choice].extend(logprobs);
                }
            }
            Event::Finish {
                choice,
                reason,
                prompt_tokens,
                completion_tokens,
            } => {
                if let Some(f) = self.finish.get_mut(choice) {
                    *f = Some(reason);
                }
                if choice % n.max(1) == 0 {
                    self.usage.prompt_tokens += prompt_tokens;
                }
                self.usage.completion_tokens += completion_tokens;
            }
        }
    }

    /// The response body.
    pub fn finish(self, header: &Header, echo_lens: &[usize]) -> Value {
        let choices: Vec<Value> = (0..self.texts.len())
            .map(|i| {
                let lp = self.want_logprobs.then(|| logprobs_json(&self.logprobs[i], echo_lens.get(i).copied().unwrap_or(0)));
                json!({"index": i, "text": self.texts[i], "logprobs": lp, "finish_reason": self.finish[i]})
            })
            .collect();
        let mut body = header.object(Value::Array(choices));
        body["usage"] = self.usage.json();
        body
    }
}

/// One stream chunk carrying new text of choice `index`.
pub fn text_chunk(header: &Header, index: usize, text: &str, logprobs: Option<Value>) -> Value {
    header.object(
        json!([{"index": index, "text": text, "logprobs": logprobs, "finish_reason": null}]),
    )
}

/// The chunk that ends choice `index`.
pub fn finish_chunk(header: &Header, index: usize, reason: &str) -> Value {
    header.object(json!([{"index": index, "text": "", "logprobs": null, "finish_reason": reason}]))
}

/// The last chunk when `stream_options.include_usage` is set: no choices, the usage.
pub fn usage_chunk(header: &Header, usage: &Usage) -> Value {
    let mut v = header.object(json!([]));
    v["usage"] = usage.json();
    v
}
