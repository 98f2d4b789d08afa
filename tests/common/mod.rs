//! What the CLI tests share: running the `lmforge` binary and checking a one-line refusal.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `lmforge` binary built for these tests.
pub fn lmforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmforge"))
        .args(args)
        .output()
        .expect("run lmforge")
}

/// Runs `lmforge` in `cwd` (for runs that write `runs/` or `data/` relative to it).
pub fn lmforge_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmforge"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run lmforge")
}

/// The one `error: ...` line of a refused command (exit code 1, nothing else on stderr, no
/// panic); fails the test otherwise.
pub fn one_error_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_string()
}

/// [`one_error_line`], and it contains `needle`.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let line = one_error_line(out);
    assert!(line.contains(needle), "expected {needle:?} in: {line}");
}
