//! A server over the shipped sample model on a free local port, and a small HTTP client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use lmforge_generate::Checkpoint;
use lmforge_serve::{Engine, HttpOptions, Limits, PoolSize};
use serde_json::Value;

/// The character-level model shipped with the repository (block size 64).
pub fn sample_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/shakespeare-char")
}

/// A running server: its address and engine (to look at the slots).
pub struct Server {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
}

/// Starts a server on `host:0` in a background thread with its own runtime.
pub fn start_on(host: &str, pool: PoolSize, max_tokens: usize, api_key: Option<&str>) -> Server {
    start_with(
        host,
        pool,
        max_tokens,
        api_key,
        HttpOptions::default().header_timeout,
    )
}

/// [`start_on`] with a chosen time for a request's headers (and keep-alive idling).
pub fn start_with(
    host: &str,
    pool: PoolSize,
    max_tokens: usize,
    api_key: Option<&str>,
    header_timeout: std::time::Duration,
) -> Server {
    let ckpt = Checkpoint::load(&sample_model()).expect("the sample model loads");
    let limits = Limits {
        max_tokens,
        max_prompt_tokens: ckpt.model.config().block_size,
        max_choices: 16,
    };
    let engine = Engine::new(ckpt, "sample".into(), limits, pool);
    let http = HttpOptions {
        api_key: api_key.map(str::to_string),
        max_body_bytes: 64 << 10,
        header_timeout,
        ..HttpOptions::default()
    };
    let app = lmforge_serve::router(engine.clone(), &http);
    let host = host.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = lmforge_serve::bind(host, 0).await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            lmforge_serve::run(listener, app, header_timeout, std::future::pending())
                .await
                .unwrap();
        });
    });
    let mut addr = rx.recv().unwrap();
    if addr.ip().is_unspecified() {
        addr.set_ip("127.0.0.1".parse().unwrap());
    }
    Server { addr, engine }
}

/// A loopback server with `workers` workers and a queue of `queue`.
pub fn start(workers: usize, queue: usize) -> Server {
    start_on("127.0.0.1", PoolSize { workers, queue }, 1 << 20, None)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` (raw text) to `path`; returns (status, headers' Retry-After, body).
    pub fn post_raw(
        &self,
        path: &str,
        body: &str,
        key: Option<&str>,
    ) -> (u16, Option<String>, String) {
        let mut req = agent()
            .post(&self.url(path))
            .header("Content-Type", "application/json");
        if let Some(k) = key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        let mut res = req.send(body).expect("the server answers");
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (
            res.status().as_u16(),
            retry,
            res.body_mut().read_to_string().unwrap(),
        )
    }

    /// POSTs JSON to /v1/completions and parses the JSON answer.
    pub fn complete(&self, body: &Value) -> (u16, Value) {
        let (status, _, text) = self.post_raw("/v1/completions", &body.to_string(), None);
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
        )
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut req = agent().get(&self.url(path));
        if let Some(k) = key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        let mut res = req.call().expect("the server answers");
        let text = res.body_mut().read_to_string().unwrap();
        (
            res.status().as_u16(),
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A streamed completion: the parsed chunks, and whether `data: [DONE]` ended it.
    pub fn stream(&self, body: &Value) -> (Vec<Value>, bool) {
        let mut body = body.clone();
        body["stream"] = Value::Bool(true);
        let res = agent()
            .post(&self.url("/v1/completions"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .expect("the server answers");
        assert_eq!(res.status().as_u16(), 200);
        let content_type = res
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let reader = BufReader::new(res.into_body().into_reader());
        let mut chunks = Vec::new();
        let mut done = false;
        for line in reader.lines() {
            let line = line.unwrap();
            let Some(data) = line.strip_prefix("data: ") else {
                assert!(line.is_empty(), "unexpected line {line:?}");
                continue;
            };
            assert!(!done, "data after [DONE]");
            if data == "[DONE]" {
                done = true;
            } else {
                chunks.push(serde_json::from_str(data).unwrap());
            }
        }
        (chunks, done)
    }
}

/// Joins the streamed text of choice `index`.
pub fn streamed_text(chunks: &[Value], index: u64) -> String {
    chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().unwrap().iter())
        .filter(|c| c["index"] == index)
        .map(|c| c["text"].as_str().unwrap())
        .collect()
}

/// Resident memory of this process in kB (Linux).
pub fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
