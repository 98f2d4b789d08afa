//! `lmforge serve` driven over HTTP on a free local port, with the shipped sample model.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{rss_kb, start, start_on, start_with, streamed_text};
use lmforge_serve::PoolSize;
use serde_json::{json, Value};

fn text(v: &Value, i: usize) -> &str {
    v["choices"][i]["text"].as_str().unwrap()
}

#[test]
fn streamed_text_equals_the_non_streamed_text_for_the_same_seed() {
    let s = start(2, 8);
    let body = json!({"prompt": ["ROMEO:", "JULIET:"], "max_tokens": 40, "seed": 7, "n": 2, "temperature": 0.9, "top_k": 40});
    let (status, full) = s.complete(&body);
    assert_eq!(status, 200, "{full}");
    assert_eq!(full["object"], "text_completion");
    let choices = full["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4, "2 prompts × n = 2");
    let (chunks, done) = s.stream(&body);
    assert!(done, "the stream ends with data: [DONE]");
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(
            streamed_text(&chunks, i as u64),
            text(&full, i),
            "choice {i}"
        );
        assert_eq!(choice["index"], i);
        // A char model: one token per character, and no end-of-text in 40 tokens here.
        let reason = choice["finish_reason"].as_str().unwrap();
        if reason == "length" {
            assert_eq!(text(&full, i).chars().count(), 40);
        }
    }
    // The stream ends each choice with its finish_reason.
    let finished: Vec<&Value> = chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().unwrap())
        .filter(|c| !c["finish_reason"].is_null())
        .collect();
    assert_eq!(finished.len(), 4);
    // usage: each prompt counted once (ROMEO: 6 + JULIET: 7 characters), every generated token.
    let completion: usize = (0..4).map(|i| text(&full, i).chars().count()).sum();
    assert_eq!(full["usage"]["prompt_tokens"], 13);
    assert_eq!(full["usage"]["completion_tokens"], completion);
    assert_eq!(full["usage"]["total_tokens"], 13 + completion);
    // n > 1: choice j samples with seed + j, so it equals a single request with that seed.
    let (_, second) = s.complete(
        &json!({"prompt": "ROMEO:", "max_tokens": 40, "seed": 8, "temperature": 0.9, "top_k": 40}),
    );
    assert_eq!(text(&second, 0), text(&full, 1));
    assert_ne!(
        text(&full, 0),
        text(&full, 1),
        "two samples of one prompt differ"
    );
}

#[test]
fn stream_options_include_usage_adds_a_last_chunk() {
    let s = start(1, 4);
    let (chunks, done) = s.stream(&json!({"prompt": "KING:", "max_tokens": 12, "seed": 1, "stream_options": {"include_usage": true}}));
    assert!(done);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"].as_array().unwrap().len(), 0);
    assert_eq!(last["usage"]["prompt_tokens"], 5);
    assert_eq!(
        last["usage"]["completion_tokens"],
        streamed_text(&chunks, 0).chars().count()
    );
}

#[test]
fn stop_strings_end_the_text_before_them() {
    let s = start(1, 4);
    let greedy = json!({"prompt": "ROMEO:", "max_tokens": 60, "temperature": 0});
    let (_, long) = s.complete(&greedy);
    let long = text(&long, 0).to_string();
    // A stop string from the middle of the greedy text: the text stops just before its
    // first occurrence, and the streamed text says the same.
    let stop: String = long.chars().skip(20).take(3).collect();
    let cut = long.find(&stop).unwrap();
    let mut body = greedy.clone();
    body["stop"] = json!(["\u{1}never", stop]);
    let (status, short) = s.complete(&body);
    assert_eq!(status, 200);
    assert_eq!(text(&short, 0), &long[..cut]);
    assert_eq!(short["choices"][0]["finish_reason"], "stop");
    let (chunks, _) = s.stream(&body);
    assert_eq!(streamed_text(&chunks, 0), &long[..cut]);
}

#[test]
fn echo_and_logprobs() {
    let s = start(1, 4);
    let (status, v) = s.complete(&json!({"prompt": "ROMEO:", "max_tokens": 10, "temperature": 0, "echo": true, "logprobs": 3}));
    assert_eq!(status, 200, "{v}");
    let t = text(&v, 0);
    assert!(t.starts_with("ROMEO:"), "{t}");
    let lp = &v["choices"][0]["logprobs"];
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tokens.concat(),
        &t["ROMEO:".len()..],
        "the tokens spell the generated text"
    );
    assert_eq!(lp["text_offset"][0], 6, "offsets count the echoed prompt");
    for (i, top) in lp["top_logprobs"].as_array().unwrap().iter().enumerate() {
        let top = top.as_object().unwrap();
        assert!(top.len() <= 3 && !top.is_empty());
        // Greedy: the chosen token is the most likely one.
        let best = top
            .values()
            .map(|v| v.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!((lp["token_logprobs"][i].as_f64().unwrap() - best).abs() < 1e-6);
        assert!(best < 0.0);
    }
}

#[test]
fn every_bad_request_gets_openai_error_json() {
    let s = start(1, 4);
    let too_long = "a".repeat(65); // block size 64
    for (body, status, param) in [
        ("{\"prompt\": \"a\"".to_string(), 400, None),
        ("not json".into(), 400, None),
        (
            json!({"prompt": "a", "temperature": -0.1}).to_string(),
            400,
            Some("temperature"),
        ),
        (
            json!({"prompt": "a", "temperature": "warm"}).to_string(),
            400,
            Some("temperature"),
        ),
        (
            json!({"prompt": "a", "top_p": 0}).to_string(),
            400,
            Some("top_p"),
        ),
        (
            json!({"prompt": "a", "top_p": 1.01}).to_string(),
            400,
            Some("top_p"),
        ),
        (
            json!({"prompt": "a", "max_tokens": "many"}).to_string(),
            400,
            Some("max_tokens"),
        ),
        (
            json!({"prompt": "a", "max_tokens": (1u64 << 20) + 1}).to_string(),
            400,
            Some("max_tokens"),
        ),
        (json!({"prompt": "a", "n": 0}).to_string(), 400, Some("n")),
        (
            json!({"prompt": "a", "stream": "yes"}).to_string(),
            400,
            Some("stream"),
        ),
        (json!({"prompt": too_long}).to_string(), 400, Some("prompt")),
        (json!({"prompt": "日本"}).to_string(), 400, Some("prompt")),
        (
            format!("{{\"prompt\": \"{}\"}}", "a".repeat(70_000)),
            413,
            None,
        ),
    ] {
        let (got, _, text) = s.post_raw("/v1/completions", &body, None);
        assert_eq!(got, status, "{body:.80}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        let e = &v["error"];
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{text}"
        );
        assert!(
            e["type"].is_string() && e.get("code").is_some() && e.get("param").is_some(),
            "{text}"
        );
        assert_eq!(e["param"].as_str(), param, "{body:.80}: {text}");
    }
    let (status, v) = s.get("/v1/nothing", None);
    assert_eq!(status, 404);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/nothing"));
    // The server still answers after all that.
    let (status, _) = s.get("/health", None);
    assert_eq!(status, 200);
}

#[test]
fn sixteen_concurrent_streaming_clients_all_complete_with_bounded_memory() {
    let s = start(4, 16);
    let body = |i: u64| json!({"prompt": "ROMEO:", "max_tokens": 48, "seed": i});
    let run_round = |s: &common::Server| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|i| scope.spawn(move || s.stream(&body(i))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    };
    let first = run_round(&s);
    let after_first = rss_kb();
    for _ in 0..3 {
        let again = run_round(&s);
        for (i, ((a, done_a), (b, done_b))) in first.iter().zip(&again).enumerate() {
            assert!(*done_a && *done_b, "client {i} finished with [DONE]");
            assert_eq!(
                streamed_text(a, 0),
                streamed_text(b, 0),
                "client {i}: same seed, same text"
            );
            assert!(!streamed_text(a, 0).is_empty());
        }
    }
    // Memory does not grow with the number of requests served (no per-request leak).
    let grown_mb = rss_kb().saturating_sub(after_first) / 1024;
    assert!(
        grown_mb < 64,
        "RSS grew {grown_mb} MB over 48 more requests"
    );
    assert_eq!(s.engine.in_flight(), 0);
}

/// Sends a streaming request over a raw socket and reads until the first chunk arrives.
fn open_stream(addr: std::net::SocketAddr, max_tokens: usize) -> TcpStream {
    let mut sock = TcpStream::connect(addr).unwrap();
    let body = json!({"prompt": "ROMEO:", "max_tokens": max_tokens, "stream": true, "seed": 3})
        .to_string();
    write!(sock, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("data: {") {
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the stream early");
        seen.extend_from_slice(&buf[..n]);
    }
    sock
}

#[test]
fn a_full_queue_gets_503_and_a_client_that_leaves_frees_its_slot_at_once() {
    let s = start(1, 0);
    // One worker, no queue: a long generation holds the only slot.
    let sock = open_stream(s.addr, 1 << 20);
    assert_eq!(s.engine.in_flight(), 1);
    let (status, retry, text) = s.post_raw(
        "/v1/completions",
        &json!({"prompt": "a", "max_tokens": 2}).to_string(),
        None,
    );
    assert_eq!(status, 503, "{text}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"]["code"],
        "server_busy"
    );
    // The client leaves; its generation (a million tokens) stops at the next token.
    let left = Instant::now();
    drop(sock);
    while s.engine.in_flight() > 0 {
        assert!(
            left.elapsed() < Duration::from_secs(5),
            "the slot is still held"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, v) = s.complete(&json!({"prompt": "a", "max_tokens": 2}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(s.engine.in_flight(), 0);
}

#[test]
fn a_non_loopback_address_needs_a_key_and_the_key_is_checked() {
    let host: std::net::IpAddr = "0.0.0.0".parse().unwrap();
    let e = lmforge_serve::check_auth(host, None, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--api-key") && e.contains("--no-auth") && e.contains("0.0.0.0"),
        "{e}"
    );
    assert!(lmforge_serve::check_auth(host, Some("k"), false).is_ok());
    assert!(lmforge_serve::check_auth(host, None, true).is_ok());
    assert!(lmforge_serve::check_auth("127.0.0.1".parse().unwrap(), None, false).is_ok());
    assert!(lmforge_serve::check_auth("::1".parse().unwrap(), None, false).is_ok());

    let s = start_on(
        "0.0.0.0",
        PoolSize {
            workers: 1,
            queue: 2,
        },
        64,
        Some("s3cret"),
    );
    let body = json!({"prompt": "a", "max_tokens": 3}).to_string();
    for key in [None, Some("wrong"), Some("s3cre"), Some("s3crett")] {
        let (status, _, text) = s.post_raw("/v1/completions", &body, key);
        assert_eq!(status, 401, "{key:?}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["type"], "authentication_error");
    }
    assert_eq!(s.get("/v1/models", None).0, 401);
    let (status, _, text) = s.post_raw("/v1/completions", &body, Some("s3cret"));
    assert_eq!(status, 200, "{text}");
    let (status, models) = s.get("/v1/models", Some("s3cret"));
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "sample");
    assert_eq!(models["data"][0]["lmforge"]["tokenizer"]["kind"], "char");
    assert_eq!(models["data"][0]["lmforge"]["config"]["block_size"], 64);
    // The page and the health check carry no secrets and stay open.
    assert_eq!(s.get("/health", None).0, 200);
    let (status, page) = s.get("/", None);
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("lmforge playground"));
}

/// Reads until the server closes the connection; the time it took, or `None` if it stayed
/// open past `limit`.
fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn silent_trickling_and_idle_clients_are_disconnected_after_the_header_timeout() {
    let timeout = Duration::from_millis(700);
    let server = start_with(
        "127.0.0.1",
        PoolSize {
            workers: 1,
            queue: 4,
        },
        64,
        None,
        timeout,
    );
    let limit = Duration::from_secs(10);
    // Connects and sends nothing.
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let waited = time_until_closed(&mut silent, limit).expect("a silent client is dropped");
    assert!(waited >= timeout / 2, "dropped too early: {waited:?}");
    // Sends half a request line and stops.
    let mut trickle = TcpStream::connect(server.addr).unwrap();
    trickle.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
    time_until_closed(&mut trickle, limit).expect("a half-sent header is dropped");
    // Completes one request on a kept-alive connection, then idles.
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    time_until_closed(&mut idle, limit).expect("an idle kept-alive connection is dropped");
    // The server still answers.
    let mut fresh = TcpStream::connect(server.addr).unwrap();
    fresh
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    fresh.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
