//! The playground in headless Chromium (Debian's `chromium`; `.ci/setup-chromium` installs
//! it): the page loads from a running server, streams a completion, and the streamed text
//! in the page equals the server's non-streamed text for the same settings. Screenshots go
//! to `target/browser/`.
//!
//! Chromium is driven over its DevTools protocol (`--remote-debugging-port`, a websocket):
//! `--dump-dom` snapshots the page at its load event, before a stream has arrived.
//!
//! Without Chromium the test says so and passes, unless `LMFORGE_REQUIRE_BROWSER` is set
//! (CI sets it after installing Chromium).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// Headless Chromium driven over the DevTools protocol (a websocket to one page).
struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn launch(bin: &PathBuf) -> Browser {
        let mut child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
            ])
            .args([
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1200,760",
                "about:blank",
            ])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start chromium");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let endpoint = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.split("DevTools listening on ").nth(1).map(str::to_string))
            .expect("chromium prints its DevTools address");
        std::thread::spawn(move || lines.for_each(drop)); // keep its stderr drained
                                                          // ws://127.0.0.1:PORT/devtools/browser/… → the page's own endpoint from /json/list.
        let host = endpoint
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let list: Value = ureq::get(&format!("http://{host}/json/list"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        let page = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (ws, _) = tungstenite::connect(page).expect("connect to the page");
        Browser {
            child,
            ws,
            next_id: 0,
        }
    }

    /// Sends one command and waits for its answer (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).unwrap();
        loop {
            let Message::Text(t) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, js: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }
}

#[test]
fn the_playground_streams_a_completion_in_a_browser() {
    let Some(bin) = chromium() else {
        assert!(
            std::env::var_os("LMFORGE_REQUIRE_BROWSER").is_none(),
            "chromium is not installed: run .ci/setup-chromium"
        );
        eprintln!("skipped: no chromium on PATH (install it with .ci/setup-chromium)");
        return;
    };
    let s = common::start(2, 4);
    // The page's settings: these plus its defaults (top_p 1, top_k 200).
    let (seed, max_tokens, temperature) = (5, 120, 0.8);
    let page = s.url(&format!(
        "/?prompt=ROMEO%3A&seed={seed}&max_tokens={max_tokens}&temperature={temperature}&autorun=1"
    ));
    let (status, want) = s.complete(&json!({"prompt": "ROMEO:", "seed": seed, "max_tokens": max_tokens, "temperature": temperature, "top_p": 1, "top_k": 200}));
    assert_eq!(status, 200);
    let want = want["choices"][0]["text"].as_str().unwrap().to_string();
    assert!(!want.is_empty());

    let mut b = Browser::launch(&bin);
    b.call("Page.navigate", json!({"url": page}));
    let started = Instant::now();
    let mut states = Vec::new();
    loop {
        let state = b.eval("document.body ? (document.body.dataset.state || 'idle') : 'loading'");
        let state = state.as_str().unwrap_or("").to_string();
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        if state == "done" || state == "error" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stream did not finish: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        states.last().map(String::as_str),
        Some("done"),
        "{states:?}"
    );
    let shown = b.eval("document.getElementById('generated').textContent");
    assert_eq!(
        shown.as_str(),
        Some(want.as_str()),
        "the streamed text in the page"
    );
    let model = b.eval("document.getElementById('model').textContent");
    let model = model.as_str().unwrap_or("");
    assert!(
        model.contains("\"block_size\": 64") && model.contains("\"kind\": \"char\""),
        "model info shown: {model}"
    );
    let stats = b.eval("document.getElementById('stats').textContent");
    assert!(
        stats
            .as_str()
            .unwrap_or("")
            .contains(&format!("{} tokens in", want.chars().count())),
        "usage shown: {stats}"
    );

    let shot = b.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot ({} bytes)",
        png.len()
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("playground.png"), png).unwrap();
}
