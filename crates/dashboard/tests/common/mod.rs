//! Shared by the dashboard tests: a runs folder with tiny runs, a dashboard on a free
//! port, and a few lines of HTTP over a plain socket.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use lmforge_dashboard::{Dashboard, DashboardOptions};
use lmforge_train::metrics::{EvalRecord, SampleRecord};

/// A record of a run whose loss falls with the step.
pub fn record(step: usize, scale: f32) -> EvalRecord {
    EvalRecord {
        step,
        train_loss: scale * 4.0 / (1.0 + step as f32 / 10.0),
        val_loss: scale * 4.2 / (1.0 + step as f32 / 12.0),
        lr: 1e-3 * (1.0 + step as f32) / 50.0,
        grad_norm: 2.0 / (1.0 + step as f32 / 20.0),
        tokens_per_s: 1000.0 + step as f64,
        elapsed_s: step as f64,
        dtype: "fp32".into(),
    }
}

pub fn line(r: &impl serde::Serialize) -> String {
    serde_json::to_string(r).unwrap() + "\n"
}

/// `root/name`: config.toml, `steps` metrics records, a sample per record, `last/`.
pub fn write_run(root: &Path, name: &str, steps: &[usize], scale: f32) {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("checkpoints/last")).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!("name = \"{name}\"\nn_layer = 2\n"),
    )
    .unwrap();
    let metrics: String = steps.iter().map(|&s| line(&record(s, scale))).collect();
    std::fs::write(dir.join("metrics.jsonl"), metrics).unwrap();
    let samples: String = steps
        .iter()
        .map(|&s| {
            line(&SampleRecord {
                step: s,
                text: format!("ROMEO: sample of {name} at step {s}"),
            })
        })
        .collect();
    std::fs::write(dir.join("samples.jsonl"), samples).unwrap();
}

pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A dashboard of `root` on a free loopback port (background thread); its URL.
pub fn start(root: &Path) -> String {
    start_with(root, Duration::from_secs(600))
}

/// [`start`] with event streams that end after `lifetime`.
pub fn start_with(root: &Path, lifetime: Duration) -> String {
    let opts = DashboardOptions {
        poll: Duration::from_millis(50),
        stream_lifetime: lifetime,
        ..DashboardOptions::new(root.to_path_buf(), 0)
    };
    Dashboard::bind(opts).unwrap().spawn().unwrap()
}

/// `host:port` of a URL `http://host:port/...`.
pub fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// A GET with extra header lines; the status code and body.
pub fn get(addr: &str, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// An open `/api/events` stream.
pub struct Events {
    stream: TcpStream,
    pub seen: String,
}

impl Events {
    pub fn open(addr: &str) -> Events {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Events {
            stream,
            seen: String::new(),
        }
    }

    /// Reads until `seen` contains `needle` (panics after 10 s).
    pub fn wait_for(&mut self, needle: &str) {
        let end = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            assert!(Instant::now() < end, "no {needle:?} in:\n{}", self.seen);
            if let Ok(n) = self.stream.read(&mut buf) {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    }

    /// Reads for `ms` milliseconds.
    pub fn drain(&mut self, ms: u64) {
        let end = Instant::now() + Duration::from_millis(ms);
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.stream.read(&mut buf) {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    }
}
