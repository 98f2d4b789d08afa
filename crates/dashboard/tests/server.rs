//! The dashboard over HTTP: the runs listed with everything the page shows, the event
//! stream following metrics as they are appended (lines cut mid-write wait, broken lines
//! are skipped with a warning), auth, and the start-up errors.

mod common;

use common::*;
use lmforge_dashboard::{Dashboard, DashboardOptions};

#[test]
fn runs_are_listed_with_config_metrics_samples_and_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    write_run(d.path(), "alpha", &[0, 10, 20], 1.0);
    write_run(d.path(), "beta", &[0, 10], 1.2);
    std::fs::create_dir(d.path().join("not-a-run")).unwrap();
    let addr = authority(&start(d.path()));
    let (status, body) = get(&addr, "/api/runs", "");
    assert_eq!(status, 200, "{body}");
    let msgs: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let of = |kind: &str, run: &str| {
        msgs.iter()
            .find(|m| m["type"] == kind && m["run"] == run)
            .unwrap_or_else(|| panic!("no {kind} of {run} in {body}"))
            .clone()
    };
    assert!(of("run", "alpha")["config"]
        .as_str()
        .unwrap()
        .contains("n_layer = 2"));
    let steps: Vec<u64> = of("metrics", "alpha")["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [0, 10, 20]);
    assert_eq!(
        of("metrics", "beta")["records"].as_array().unwrap().len(),
        2
    );
    let samples = of("samples", "alpha");
    assert_eq!(
        samples["samples"][2]["text"],
        "ROMEO: sample of alpha at step 20"
    );
    assert_eq!(
        of("checkpoints", "alpha")["names"],
        serde_json::json!(["last"])
    );
    assert!(!body.contains("not-a-run"));
    // the page and its assets
    let (status, page) = get(&addr, "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("lmforge dashboard") && page.contains("uplot.js"));
    let (status, js) = get(&addr, "/uplot.js", "");
    assert_eq!(status, 200);
    assert!(js.contains("uPlot"));
}

#[test]
fn the_event_stream_follows_metrics_as_they_are_written() {
    let d = tempfile::tempdir().unwrap();
    write_run(d.path(), "alpha", &[0, 10], 1.0);
    let addr = authority(&start(d.path()));
    let mut ev = Events::open(&addr);
    ev.wait_for("event: metrics");
    ev.wait_for("\"step\":10");
    let metrics = d.path().join("alpha/metrics.jsonl");
    // a line caught mid-write: nothing until its end arrives, then it comes whole
    let l20 = line(&record(20, 1.0));
    let (head, tail) = l20.split_at(20);
    append(&metrics, head);
    ev.drain(300);
    assert!(!ev.seen.contains("\"step\":20"), "{}", ev.seen);
    append(&metrics, tail);
    ev.wait_for("\"step\":20");
    // a broken line (a writer died mid-line) is skipped with a warning; following goes on
    append(&metrics, "{\"step\":25,\"train_lo");
    append(&metrics, &line(&record(30, 1.0)));
    append(&metrics, &line(&record(40, 1.0)));
    ev.wait_for("event: warning");
    ev.wait_for("\"step\":40");
    assert!(ev.seen.contains("skipped line 4"), "{}", ev.seen);
    assert!(!ev.seen.contains("\"step\":25"));
    assert!(
        !ev.seen.contains("\"step\":30"),
        "glued to the broken line, so skipped too"
    );
    // a new run, a new checkpoint and a new sample show up on the same stream
    write_run(d.path(), "gamma", &[0], 1.0);
    ev.wait_for("\"run\":\"gamma\"");
    std::fs::create_dir(d.path().join("alpha/checkpoints/best")).unwrap();
    ev.wait_for("[\"best\",\"last\"]");
}

#[test]
fn an_event_stream_ends_after_its_lifetime() {
    let d = tempfile::tempdir().unwrap();
    write_run(d.path(), "alpha", &[0], 1.0);
    let addr = authority(&start_with(d.path(), std::time::Duration::from_millis(300)));
    let mut ev = Events::open(&addr);
    ev.wait_for("retry: 1000");
    ev.wait_for("event: metrics");
    // the chunked body's last chunk: the server closed the stream
    ev.wait_for("\r\n0\r\n\r\n");
}

#[test]
fn a_key_is_required_when_one_is_set() {
    let d = tempfile::tempdir().unwrap();
    write_run(d.path(), "alpha", &[0], 1.0);
    let opts = DashboardOptions {
        api_key: Some("s3cret".into()),
        ..DashboardOptions::new(d.path().to_path_buf(), 0)
    };
    let url = Dashboard::bind(opts).unwrap().spawn().unwrap();
    assert!(url.ends_with("/?key=s3cret"), "{url}");
    let addr = authority(&url);
    assert_eq!(get(&addr, "/api/runs", "").0, 401);
    assert_eq!(get(&addr, "/", "Authorization: Bearer wrong\r\n").0, 401);
    assert_eq!(
        get(&addr, "/api/runs", "Authorization: Bearer s3cret\r\n").0,
        200
    );
    assert_eq!(get(&addr, "/api/runs?key=s3cret", "").0, 200);
}

#[test]
fn start_up_mistakes_are_one_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("no-such-runs");
    let e = Dashboard::bind(DashboardOptions::new(missing, 0))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no-such-runs") && e.contains("does not exist"),
        "{e}"
    );

    let open_to_all = DashboardOptions {
        host: "0.0.0.0".into(),
        ..DashboardOptions::new(d.path().to_path_buf(), 0)
    };
    let e = Dashboard::bind(open_to_all.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--api-key") && e.contains("--no-auth"), "{e}");
    let no_auth = DashboardOptions {
        no_auth: true,
        ..open_to_all
    };
    assert!(Dashboard::bind(no_auth).is_ok());

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = Dashboard::bind(DashboardOptions::new(d.path().to_path_buf(), port))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&format!("port {port} is in use")), "{e}");
}
