//! The dashboard in headless Chromium (`lmforge-testbrowser`, over the DevTools protocol):
//! the page lists the runs with their samples and checkpoints, and its charts hold every
//! point of every run (the page writes its point counts into the DOM). A record appended
//! while the page is open reaches it through the event stream. The screenshot goes to
//! `target/browser/dashboard.png`.
//!
//! Without Chromium the test says so and passes, unless `LMFORGE_REQUIRE_BROWSER` is set
//! (CI sets it after installing Chromium).

mod common;

use std::time::Duration;

use common::*;
use lmforge_testbrowser::{chromium_or_skip, Browser};

#[test]
fn the_dashboard_shows_runs_and_charts_with_points_in_a_browser() {
    let Some(bin) = chromium_or_skip() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    write_run(d.path(), "alpha", &[0, 10, 20, 30], 1.0);
    write_run(d.path(), "beta", &[0, 10, 20], 1.3);
    let url = start(d.path());
    let mut b = Browser::launch(&bin, 1280, 1500);
    b.navigate(&url);
    // 5 series; alpha 4 records, beta 3
    let total = "document.getElementById('points')?.dataset.points ?? 'none'";
    b.wait_for(total, Duration::from_secs(60), |v| v == "35");
    // appended while the page is open: reaches the charts only through the event stream
    append(
        &d.path().join("alpha/metrics.jsonl"),
        &line(&record(40, 1.0)),
    );
    b.wait_for(total, Duration::from_secs(60), |v| v == "40");

    let dom = b.dom();
    for needle in [
        "data-run=\"alpha\"",
        "data-run=\"beta\"",
        "ROMEO: sample of alpha at step",
        "checkpoints: last",
        "n_layer = 2",
    ] {
        assert!(dom.contains(needle), "{needle} not in the page:\n{dom}");
    }
    assert_eq!(points(&dom, "data-series=\"val_loss\""), Some(8), "{dom}");
    assert_eq!(points(&dom, "id=\"points\""), Some(5 * 8), "{dom}");
    assert!(dom.contains("sample of alpha at step 30"));
    assert_eq!(dom.matches("class=\"uplot").count(), 5, "five charts drawn");
    b.screenshot("dashboard.png");
}

/// The `data-points` of the element whose opening tag holds `marker`.
fn points(dom: &str, marker: &str) -> Option<usize> {
    let at = dom.find(marker)?;
    let tag_start = dom[..at].rfind('<')?;
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>')?];
    let v = tag.split("data-points=\"").nth(1)?;
    v[..v.find('"')?].parse().ok()
}
