//! `lmforge dashboard` and `lmforge train --dashboard` from the command line: start-up
//! mistakes are one `error:` line, and a run started with `--dashboard` logs samples,
//! TensorBoard events and the page's address.

mod common;
use common::{lmforge, one_error_line};

#[test]
fn dashboard_start_up_mistakes_are_one_error_line() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("runs");
    let e = one_error_line(&lmforge(&["dashboard", missing.to_str().unwrap()]));
    assert!(e.contains("runs folder does not exist"), "{e}");
    let dir = d.path().to_str().unwrap();
    let e = one_error_line(&lmforge(&["dashboard", dir, "--host", "0.0.0.0"]));
    assert!(e.contains("--api-key"), "{e}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let e = one_error_line(&lmforge(&["dashboard", dir, "--port", &port]));
    assert!(e.contains(&format!("port {port} is in use")), "{e}");
    let e = one_error_line(&lmforge(&[
        "train",
        "--max-iters",
        "3",
        "--dashboard",
        "http",
    ]));
    assert!(e.contains("--dashboard") && e.contains("not a port"), "{e}");
}

#[test]
fn train_with_dashboard_logs_samples_and_tensorboard_events() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("runs/tiny");
    let out = lmforge(&[
        "train",
        "--quiet",
        "--preset",
        "tiny",
        "--n-embd",
        "16",
        "--block-size",
        "16",
        "--batch-size",
        "2",
        "--max-iters",
        "4",
        "--eval-interval",
        "2",
        "--eval-iters",
        "1",
        "--sample-tokens",
        "8",
        "--dashboard",
        "0",
        "--out",
        run.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("dashboard: http://127.0.0.1:"), "{err}");
    let samples = lmforge_train::metrics::read_samples(&run.join("samples.jsonl")).unwrap();
    assert_eq!(
        samples.iter().map(|s| s.step).collect::<Vec<_>>(),
        [0, 2, 4]
    );
    let tb = lmforge_train::tb::event_files(&run.join("tb")).unwrap();
    assert_eq!(tb.len(), 1);
    let events = lmforge_train::tb::read_events(&tb[0]).unwrap();
    assert_eq!(events.iter().filter(|e| e.has_tag("loss/val")).count(), 3);
}
