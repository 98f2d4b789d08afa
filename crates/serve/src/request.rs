//! `POST /v1/completions` bodies: parsed field by field from JSON so that every bad value
//! is a 400 naming its field (`param`), checked against the server's [`Limits`].

use serde_json::{Map, Value};

use crate::error::ApiError;

/// What the server allows one request to ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest `max_tokens`.
    pub max_tokens: usize,
    /// Most prompt tokens (longer prompts are refused, not truncated).
    pub max_prompt_tokens: usize,
    /// Most choices per request (`n` × number of prompts).
    pub max_choices: usize,
}

/// A validated completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// One or more prompts (`prompt` as a string or a list of strings).
    pub prompts: Vec<String>,
    /// New tokens per choice (OpenAI's default 16).
    pub max_tokens: usize,
    /// 0 = greedy (OpenAI's default 1).
    pub temperature: f32,
    /// Nucleus sampling, in (0, 1]; `None` = 1.
    pub top_p: Option<f32>,
    /// Extension (llama.cpp, vLLM): keep the k most likely tokens.
    pub top_k: Option<usize>,
    /// Up to 4 stop strings.
    pub stop: Vec<String>,
    /// Sampling seed (choice `i` uses `seed + i`); `None` = a fresh one.
    pub seed: Option<u64>,
    /// Choices per prompt.
    pub n: usize,
    /// Top log-probabilities per token (0 = none, at most 5).
    pub logprobs: usize,
    /// Put the prompt in front of each choice's text.
    pub echo: bool,
    /// Server-sent events instead of one JSON body.
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage counts.
    pub include_usage: bool,
}

impl CompletionRequest {
    /// Parses and checks a request body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid(
                None,
                "invalid_json",
                format!("the request body is not valid JSON: {e}"),
            )
        })?;
        let Value::Object(map) = value else {
            return Err(ApiError::invalid(
                None,
                "invalid_type",
                "the request body must be a JSON object",
            ));
        };
        let req = CompletionRequest {
            prompts: prompts(&map)?,
            max_tokens: uint(&map, "max_tokens")?.unwrap_or(16),
            temperature: float(&map, "temperature")?.unwrap_or(1.0),
            top_p: float(&map, "top_p")?,
            top_k: uint(&map, "top_k")?,
            stop: stops(&map)?,
            seed: map
                .get("seed")
                .filter(|v| !v.is_null())
                .map(|v| {
                    v.as_u64()
                        .or_else(|| v.as_i64().map(|i| i as u64))
                        .ok_or_else(|| wrong_type("seed", "an integer"))
                })
                .transpose()?,
            n: uint(&map, "n")?.unwrap_or(1),
            logprobs: uint(&map, "logprobs")?.unwrap_or(0),
            echo: boolean(&map, "echo")?,
            stream: boolean(&map, "stream")?,
            include_usage: match map.get("stream_options") {
                None | Some(Value::Null) => false,
                Some(Value::Object(o)) => boolean(o, "include_usage")?,
                Some(_) => return Err(wrong_type("stream_options", "an object")),
            },
        };
        req.check(limits)?;
        Ok(req)
    }

    fn check(&self, limits: &Limits) -> Result<(), ApiError> {
        let bad =
            |param: &str, msg: String| Err(ApiError::invalid(Some(param), "invalid_value", msg));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(
                "temperature",
                format!("temperature must be >= 0 (got {})", self.temperature),
            );
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return bad("top_p", format!("top_p must be in (0, 1] (got {p})"));
            }
        }
        if self.top_k == Some(0) {
            return bad("top_k", "top_k must be at least 1".into());
        }
        if self.max_tokens == 0 || self.max_tokens > limits.max_tokens {
            return bad(
                "max_tokens",
                format!(
                    "max_tokens must be in 1..={} on this server (got {})",
                    limits.max_tokens, self.max_tokens
                ),
            );
        }
        if self.n == 0 {
            return bad("n", "n must be at least 1".into());
        }
        if self.n * self.prompts.len() > limits.max_choices {
            return bad(
                "n",
                format!(
                    "n × prompts = {} choices, more than this server's limit of {}",
                    self.n * self.prompts.len(),
                    limits.max_choices
                ),
            );
        }
        if self.logprobs > 5 {
            return bad(
                "logprobs",
                format!("logprobs must be at most 5 (got {})", self.logprobs),
            );
        }
        if self.stop.len() > 4 {
            return bad(
                "stop",
                format!("at most 4 stop strings (got {})", self.stop.len()),
            );
        }
        Ok(())
    }
}

fn wrong_type(param: &str, expected: &str) -> ApiError {
    ApiError::invalid(
        Some(param),
        "invalid_type",
        format!("{param} must be {expected}"),
    )
}

/// `prompt`: a string or a list of strings; absent = the empty prompt (the model starts
/// from its end-of-text token). Token-id prompts are refused: ids are the server's business.
fn prompts(map: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match map.get("prompt") {
        None | Some(Value::Null) => Ok(vec![String::new()]),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(wrong_type(
                    "prompt",
                    "a string or a list of strings (token-id prompts are not supported)",
                )),
            })
            .collect(),
        Some(_) => Err(wrong_type(
            "prompt",
            "a string or a non-empty list of strings",
        )),
    }
}

/// `stop`: null, a string or a list of strings.
fn stops(map: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match map.get("stop") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrong_type("stop", "a string or a list of strings"))
            })
            .collect(),
        Some(_) => Err(wrong_type("stop", "a string or a list of strings")),
    }
}

fn uint(map: &Map<String, Value>, key: &str) -> Result<Option<usize>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(u) => Ok(Some(usize::try_from(u).unwrap_or(usize::MAX))),
            None if v.as_i64().is_some() => Err(ApiError::invalid(
                Some(key),
                "invalid_value",
                format!("{key} must not be negative (got {v})"),
            )),
            None => Err(wrong_type(key, "a non-negative integer")),
        },
    }
}

fn float(map: &Map<String, Value>, key: &str) -> Result<Option<f32>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|f| Some(f as f32))
            .ok_or_else(|| wrong_type(key, "a number")),
    }
}

fn boolean(map: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(wrong_type(key, "true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_tokens: 100,
        max_prompt_tokens: 64,
        max_choices: 8,
    };

    fn parse(s: &str) -> Result<CompletionRequest, ApiError> {
        CompletionRequest::parse(s.as_bytes(), &LIMITS)
    }

    #[test]
    fn defaults_follow_openai() {
        let r = parse(r#"{"model": "x", "prompt": "hi", "user": "ignored"}"#).unwrap();
        assert_eq!(r.prompts, vec!["hi"]);
        assert_eq!(
            (r.max_tokens, r.temperature, r.n, r.logprobs),
            (16, 1.0, 1, 0)
        );
        assert!(!r.stream && !r.echo && r.seed.is_none() && r.stop.is_empty());
        let r = parse(r#"{"prompt": ["a", "b"], "stop": "\n", "n": 2, "stream": true, "stream_options": {"include_usage": true}}"#).unwrap();
        assert_eq!(
            (
                r.prompts.len(),
                r.stop.clone(),
                r.n,
                r.stream,
                r.include_usage
            ),
            (2, vec!["\n".to_string()], 2, true, true)
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        for (body, param) in [
            (
                r#"{"prompt": "a", "temperature": -0.5}"#,
                Some("temperature"),
            ),
            (
                r#"{"prompt": "a", "temperature": "hot"}"#,
                Some("temperature"),
            ),
            (r#"{"prompt": "a", "top_p": 0}"#, Some("top_p")),
            (r#"{"prompt": "a", "top_p": 1.5}"#, Some("top_p")),
            (r#"{"prompt": "a", "top_k": 0}"#, Some("top_k")),
            (r#"{"prompt": "a", "max_tokens": 101}"#, Some("max_tokens")),
            (r#"{"prompt": "a", "max_tokens": -1}"#, Some("max_tokens")),
            (
                r#"{"prompt": "a", "max_tokens": "ten"}"#,
                Some("max_tokens"),
            ),
            (r#"{"prompt": "a", "n": 9}"#, Some("n")),
            (r#"{"prompt": ["a", "b", "c"], "n": 3}"#, Some("n")),
            (r#"{"prompt": "a", "logprobs": 6}"#, Some("logprobs")),
            (
                r#"{"prompt": "a", "stop": ["1", "2", "3", "4", "5"]}"#,
                Some("stop"),
            ),
            (r#"{"prompt": "a", "stop": 3}"#, Some("stop")),
            (r#"{"prompt": "a", "stream": "yes"}"#, Some("stream")),
            (r#"{"prompt": "a", "seed": 1.5}"#, Some("seed")),
            (r#"{"prompt": [1, 2]}"#, Some("prompt")),
            (r#"{"prompt": 7}"#, Some("prompt")),
            (r#"{"prompt": "a""#, None),
            (r#"[1, 2]"#, None),
        ] {
            let e = parse(body).expect_err(body);
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), param, "{body}: {}", e.message);
        }
    }
}
