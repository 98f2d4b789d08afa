//! The playground in headless Chromium (`lmforge-testbrowser`, over the DevTools protocol):
//! the page loads from a running server, streams a completion, and the streamed text in the
//! page equals the server's non-streamed text for the same settings. The screenshot goes to
//! `target/browser/playground.png`.
//!
//! Without Chromium the test says so and passes, unless `LMFORGE_REQUIRE_BROWSER` is set
//! (CI sets it after installing Chromium).

mod common;

use std::time::Duration;

use lmforge_testbrowser::{chromium_or_skip, Browser};
use serde_json::json;

#[test]
fn the_playground_streams_a_completion_in_a_browser() {
    let Some(bin) = chromium_or_skip() else {
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

    let mut b = Browser::launch(&bin, 1200, 760);
    b.navigate(&page);
    let state = "document.body ? (document.body.dataset.state || 'idle') : 'loading'";
    let last = b.wait_for(state, Duration::from_secs(60), |v| {
        v == "done" || v == "error"
    });
    assert_eq!(last, "done", "the stream ended in the page's error state");
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

    b.screenshot("playground.png");
}
