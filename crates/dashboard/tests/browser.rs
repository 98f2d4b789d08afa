//! The dashboard in headless Chromium (Debian's `chromium`; `.ci/setup-chromium` installs
//! it): the page lists the runs with their samples and checkpoints, and its charts hold
//! every point of every run (the page writes its point counts into the DOM). A record
//! appended while the page is open reaches it through the event stream. Screenshots go
//! to `target/browser/`.
//!
//! Without Chromium the test says so and passes, unless `LMFORGE_REQUIRE_BROWSER` is set
//! (CI sets it after installing Chromium).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

fn run_chromium(bin: &Path, args: &[&str]) -> String {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .args(args)
        .stdout(out.reopen().unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run chromium");
    // A page that never settles must fail the test, not hang it.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium failed: {status}");
    std::fs::read_to_string(out.path()).unwrap()
}

/// The `data-points` of the element whose opening tag holds `marker`.
fn points(dom: &str, marker: &str) -> Option<usize> {
    let at = dom.find(marker)?;
    let tag_start = dom[..at].rfind('<')?;
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>')?];
    let v = tag.split("data-points=\"").nth(1)?;
    v[..v.find('"')?].parse().ok()
}

#[test]
fn the_dashboard_shows_runs_and_charts_with_points_in_a_browser() {
    let Some(bin) = chromium() else {
        assert!(
            std::env::var_os("LMFORGE_REQUIRE_BROWSER").is_none(),
            "chromium is not installed: run .ci/setup-chromium"
        );
        eprintln!("skipped: no chromium on PATH (install it with .ci/setup-chromium)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    write_run(d.path(), "alpha", &[0, 10, 20, 30], 1.0);
    write_run(d.path(), "beta", &[0, 10, 20], 1.3);
    // Headless Chromium's virtual time stands still while a request is open: short-lived
    // event streams (the page reconnects) let it run on.
    let url = start_with(d.path(), Duration::from_millis(2500));
    // appended while the page is open: reaches the charts only through the event stream
    let metrics = d.path().join("alpha/metrics.jsonl");
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        append(&metrics, &line(&record(40, 1.0)));
    });

    let dom = run_chromium(&bin, &["--virtual-time-budget=5000", "--dump-dom", &url]);
    late.join().unwrap();
    for needle in [
        "data-run=\"alpha\"",
        "data-run=\"beta\"",
        "ROMEO: sample of alpha at step",
        "checkpoints: last",
        "n_layer = 2",
    ] {
        assert!(dom.contains(needle), "{needle} not in the page:\n{dom}");
    }
    // 5 series; alpha 5 records (one streamed in), beta 3
    assert_eq!(points(&dom, "data-series=\"val_loss\""), Some(8), "{dom}");
    assert_eq!(points(&dom, "id=\"points\""), Some(5 * 8), "{dom}");
    assert!(dom.contains("sample of alpha at step 30"));
    assert_eq!(dom.matches("class=\"uplot").count(), 5, "five charts drawn");

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let size = "--window-size=1280,1500";
    let arg = format!("--screenshot={}", shot.display());
    run_chromium(&bin, &["--virtual-time-budget=3000", size, &arg, &url]);
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot ({} bytes)",
        png.len()
    );
}
