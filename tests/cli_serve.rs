//! `lmforge serve` bad input: one `error:` line naming the problem, exit code 1, no panic.

mod common;
use common::{assert_one_line_error, lmforge};

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = lmforge(&["serve", "--port", &port]);
    assert_one_line_error(
        &out,
        &format!("--port {port}: 127.0.0.1:{port} is already in use"),
    );
}

#[test]
fn a_checkpoint_that_cannot_be_served_is_refused_as_generate_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let serve = lmforge(&["serve", "--checkpoint", d, "--port", "0"]);
    let generate = lmforge(&["generate", "--checkpoint", d]);
    assert_one_line_error(&serve, "config.json is missing");
    assert_eq!(
        String::from_utf8_lossy(&serve.stderr),
        String::from_utf8_lossy(&generate.stderr),
        "serve and generate say the same"
    );
    assert_one_line_error(
        &lmforge(&["serve", "--checkpoint", "/no/such/ckpt"]),
        "/no/such/ckpt",
    );
    // An encoder–decoder checkpoint is refused by name, before loading.
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"arch": "seq2seq", "n_encoder_layer": 2}"#,
    )
    .unwrap();
    assert_one_line_error(
        &lmforge(&["serve", "--checkpoint", d]),
        "encoder–decoder checkpoint",
    );
}

#[test]
fn a_non_loopback_host_needs_a_key_or_no_auth() {
    let out = lmforge(&["serve", "--host", "0.0.0.0", "--port", "0"]);
    assert_one_line_error(
        &out,
        "--host 0.0.0.0 is reachable from other machines: pass --api-key KEY",
    );
    assert_one_line_error(
        &lmforge(&["serve", "--workers", "0"]),
        "--workers must be at least 1",
    );
}
