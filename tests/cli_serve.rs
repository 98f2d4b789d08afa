//! `lmforge serve` through the binary: bad input is one `error:` line naming the problem
//! (exit code 1, no panic); an encoder–decoder checkpoint served over HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lmforge_data::pairs::PairsMeta;
use lmforge_model::seq2seq::{io, Seq2seq, Seq2seqConfig};
use serde_json::{json, Value};

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

/// Char-level pair data through the CLI and a random encoder–decoder checkpoint on it
/// (src block 4, tgt block 8): decoding is deterministic whatever the weights.
fn seq2seq_checkpoint(dir: &Path) -> PathBuf {
    let tsv = "ab ba\tba ab\nba\tba\naab b\tb aab\nb a b\tb a b\nab\tab\nbb aa\taa bb\n";
    std::fs::write(dir.join("p.tsv"), tsv).unwrap();
    let data = dir.join("data");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let prepared = lmforge(&[
        "prepare",
        "--pairs-tsv",
        &p(&dir.join("p.tsv")),
        "--out",
        &p(&data),
        "--src-block-size",
        "4",
        "--tgt-block-size",
        "8",
        "--val-fraction",
        "0.2",
    ]);
    assert!(
        prepared.status.success(),
        "{}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    let meta = PairsMeta::read(&data.join("pairs.json")).unwrap();
    let cfg = Seq2seqConfig::new(meta.src.vocab_size, meta.tgt.vocab_size, 1, 2, 16, 4, 8);
    let ckpt = dir.join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    io::save_model_dir(&Seq2seq::new(cfg, 3).unwrap(), &ckpt).unwrap();
    for f in [&meta.src.tokenizer.file, &meta.tgt.tokenizer.file] {
        std::fs::copy(data.join(f), ckpt.join(f)).unwrap();
    }
    std::fs::copy(data.join("pairs.json"), ckpt.join("pairs.json")).unwrap();
    ckpt
}

/// `lmforge serve` on a free port; returns the child and `host:port`.
fn spawn_server(ckpt: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lmforge"))
        .args([
            "serve",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--port",
            "0",
            "--workers",
            "2",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lmforge serve");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr)
}

/// One HTTP/1.1 request; returns (status, body with any chunked encoding removed).
fn http(addr: &str, method: &str, path: &str, body: &Value) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (status, rest.to_string());
    }
    let (mut out, mut rest) = (String::new(), rest);
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return (status, out);
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
}

fn complete(addr: &str, req: Value) -> Value {
    let (status, body) = http(addr, "POST", "/v1/completions", &req);
    assert_eq!(status, 200, "{req}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Choice texts and finish reasons of a streamed completion, by index.
fn streamed(addr: &str, req: Value, choices: usize) -> Vec<(String, String)> {
    let (status, body) = http(addr, "POST", "/v1/completions", &req);
    assert_eq!(status, 200, "{body}");
    let mut out = vec![(String::new(), String::new()); choices];
    for data in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        for c in chunk["choices"].as_array().unwrap() {
            let i = c["index"].as_u64().unwrap() as usize;
            out[i].0.push_str(c["text"].as_str().unwrap());
            if let Some(r) = c["finish_reason"].as_str() {
                out[i].1 = r.to_string();
            }
        }
    }
    out
}

fn translate(ckpt: &Path, source: &str) -> String {
    let out = lmforge(&[
        "generate",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--source",
        source,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.strip_suffix('\n').unwrap().to_string()
}

#[test]
fn an_encoder_decoder_checkpoint_is_served_with_the_prompt_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = seq2seq_checkpoint(dir.path());
    // "ab ba" has 5 characters: cut to the 4 of src_block_size, as generate cuts it.
    let sources = ["ba", "ab ba"];
    let expected: Vec<String> = sources.iter().map(|s| translate(&ckpt, s)).collect();
    assert!(
        expected[1].chars().count() >= 2,
        "the random model writes something to stop in: {expected:?}"
    );
    let (mut child, addr) = spawn_server(&ckpt);

    let (status, models) = http(&addr, "GET", "/v1/models", &Value::Null);
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(
        models["data"][0]["lmforge"]["arch"], "encoder-decoder",
        "{models}"
    );
    assert_eq!(
        models["data"][0]["lmforge"]["config"]["tgt_block_size"], 8,
        "{models}"
    );

    // Greedy (temperature 0) equals `generate --source`, per prompt; usage counts sources.
    let r = complete(
        &addr,
        json!({"prompt": sources, "temperature": 0, "max_tokens": 100}),
    );
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(r["choices"][i]["text"], want.as_str(), "{r}");
    }
    assert_eq!(r["usage"]["prompt_tokens"], 2 + 4, "{r}");
    let tokens = r["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(
        tokens <= 2 * 8,
        "max_tokens is capped by tgt_block_size: {r}"
    );

    // echo puts the source in front.
    let r = complete(
        &addr,
        json!({"prompt": "ba", "temperature": 0, "echo": true}),
    );
    assert_eq!(r["choices"][0]["text"], format!("ba{}", expected[0]), "{r}");

    // One token at most: stopped by length unless the model ended at once.
    let r = complete(
        &addr,
        json!({"prompt": "ba", "temperature": 0, "max_tokens": 1}),
    );
    let one = r["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(one <= 1, "{r}");
    if r["choices"][0]["finish_reason"] == "length" {
        assert_eq!(one, 1, "{r}");
    }

    // A stop string cuts the text before it.
    let chars: Vec<char> = expected[1].chars().collect();
    if chars.len() >= 2 {
        let stop = chars[1].to_string();
        let cut = &expected[1][..expected[1].find(&stop).unwrap()];
        let r = complete(
            &addr,
            json!({"prompt": "ab ba", "temperature": 0, "stop": stop}),
        );
        assert_eq!(r["choices"][0]["text"], cut, "{r}");
        assert_eq!(r["choices"][0]["finish_reason"], "stop", "{r}");
    }

    // Sampling with a seed: streamed choices equal the non-streamed ones.
    let req = json!({"prompt": "ab b", "temperature": 1.5, "seed": 11, "n": 3, "max_tokens": 8});
    let whole = complete(&addr, req.clone());
    let mut stream_req = req.clone();
    stream_req["stream"] = json!(true);
    let parts = streamed(&addr, stream_req, 3);
    for (i, (text, reason)) in parts.iter().enumerate() {
        assert_eq!(whole["choices"][i]["text"], text.as_str(), "{whole}");
        assert_eq!(
            whole["choices"][i]["finish_reason"],
            reason.as_str(),
            "{whole}"
        );
    }

    // Bad requests are still 400s naming the field.
    for (bad, param) in [
        (json!({"prompt": "ba", "logprobs": 1}), "logprobs"),
        (json!({"prompt": ""}), "prompt"),
        (json!({"prompt": "ba", "temperature": -1}), "temperature"),
        (json!({"prompt": "ba", "max_tokens": 0}), "max_tokens"),
    ] {
        let (status, body) = http(&addr, "POST", "/v1/completions", &bad);
        assert_eq!(status, 400, "{bad}: {body}");
        let e: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(e["error"]["param"], param, "{bad}: {body}");
    }
    child.kill().unwrap();
    let _ = child.wait();

    // Without pairs.json (its special ids) the checkpoint is refused in one line.
    std::fs::remove_file(ckpt.join("pairs.json")).unwrap();
    let out = lmforge(&[
        "serve",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--port",
        "0",
    ]);
    assert_one_line_error(&out, "pairs.json");
}
