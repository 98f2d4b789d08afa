//! Headless Chromium (Debian's `chromium`; `.ci/setup-chromium` installs it) driven over its
//! DevTools protocol (`--remote-debugging-port`, a websocket to one page), for the browser
//! tests of the serve playground and the training dashboard.
//!
//! A test waits for a state the page writes into its DOM ([`Browser::wait_for`]) rather than
//! on Chromium's `--virtual-time-budget`: a page with an open event stream holds virtual time
//! still, and `--screenshot` under a budget sometimes never returned.
//!
//! Without Chromium a test says so and passes ([`chromium_or_skip`]), unless
//! `LMFORGE_REQUIRE_BROWSER` is set (CI sets it after installing Chromium).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// `chromium` on `PATH`, if there is one.
pub fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// `chromium` on `PATH`; `None` after saying the test is skipped — or a panic where
/// `LMFORGE_REQUIRE_BROWSER` is set.
pub fn chromium_or_skip() -> Option<PathBuf> {
    let bin = chromium();
    if bin.is_none() {
        assert!(
            std::env::var_os("LMFORGE_REQUIRE_BROWSER").is_none(),
            "chromium is not installed: run .ci/setup-chromium"
        );
        eprintln!("skipped: no chromium on PATH (install it with .ci/setup-chromium)");
    }
    bin
}

/// Headless Chromium driven over the DevTools protocol (a websocket to one page).
pub struct Browser {
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
    /// Starts `bin` headless on `about:blank` with a `width`×`height` window.
    pub fn launch(bin: &Path, width: u32, height: u32) -> Browser {
        let mut child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start chromium");
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let endpoint = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.split("DevTools listening on ").nth(1).map(str::to_string))
            .expect("chromium prints its DevTools address");
        std::thread::spawn(move || lines.for_each(drop)); // keep its stderr drained
        let page = page_endpoint(&endpoint);
        let (ws, _) = tungstenite::connect(page).expect("connect to the page");
        Browser {
            child,
            ws,
            next_id: 0,
        }
    }

    /// Sends one command and waits for its answer (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).expect("send to chromium");
        loop {
            let Message::Text(t) = self.ws.read().expect("read from chromium") else {
                continue;
            };
            let v: Value = serde_json::from_str(t.as_str()).expect("chromium sends JSON");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Loads `url` (returns once the navigation has started).
    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// The value of the JavaScript expression `js` in the page.
    pub fn eval(&mut self, js: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }

    /// Evaluates `js` every 20 ms until `done` accepts its value, and returns that value;
    /// panics with every distinct value seen when `limit` passes first.
    pub fn wait_for(&mut self, js: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        let mut seen: Vec<Value> = Vec::new();
        loop {
            let v = self.eval(js);
            if done(&v) {
                return v;
            }
            if seen.last() != Some(&v) {
                seen.push(v);
            }
            assert!(
                started.elapsed() < limit,
                "`{js}` not done within {limit:?}; values seen: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The page's HTML as it is now.
    pub fn dom(&mut self) -> String {
        let v = self.eval("document.documentElement.outerHTML");
        v.as_str().unwrap_or_default().to_string()
    }

    /// A PNG of the window, checked to be a real picture, also written to
    /// `target/browser/NAME` for a person to look at.
    pub fn screenshot(&mut self, name: &str) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "a real screenshot ({} bytes)",
            png.len()
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser");
        std::fs::create_dir_all(&dir).expect("create target/browser");
        std::fs::write(dir.join(name), &png).expect("write the screenshot");
        png
    }
}

/// The websocket of the browser's page target, from `ws://HOST:PORT/devtools/browser/…`
/// (the browser's endpoint) and the target list at `http://HOST:PORT/json/list`.
fn page_endpoint(browser_endpoint: &str) -> String {
    let host = browser_endpoint
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default();
    let list: Value = ureq::get(&format!("http://{host}/json/list"))
        .call()
        .expect("chromium's target list")
        .body_mut()
        .read_json()
        .expect("chromium's target list is JSON");
    list.as_array()
        .and_then(|l| l.iter().find(|t| t["type"] == "page"))
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .expect("a page target")
        .to_string()
}
