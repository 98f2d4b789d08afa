//! A short deterministic fuzz pass over every loader (fixed run seed and case count), so a
//! regression that makes a mutated file panic, hang or over-allocate fails `cargo test`.
//! The long runs are `cargo run --release -p lmforge-fuzz -- all --secs 180`.

use std::time::Duration;

use lmforge_fuzz::engine::{self, dump, RunOptions};
use lmforge_fuzz::TARGETS;

/// Cases per target: a few hundred keeps the whole pass well under 20 s in a debug build.
const EXECS: u64 = 300;

fn smoke(name: &str) {
    let target = lmforge_fuzz::targets::find(name).expect("target exists");
    let opts = RunOptions {
        seed: 20_261_129,
        max_execs: Some(EXECS),
        max_time: None,
        // Debug builds on a shared 2-core machine: only a real blow-up counts as slow.
        slow: Duration::from_secs(5),
        hang: Duration::from_secs(60),
    };
    let report = engine::run(target, &opts, &mut |_| {}).expect("harness builds");
    assert_eq!(report.execs, EXECS);
    // The mutations must reach past the first check: some inputs load, most are refused.
    assert!(report.refused > 0, "{name}: no input was refused");
    assert!(report.accepted > 0, "{name}: not even the seeds loaded");
    if let Some(f) = report.findings.first() {
        panic!(
            "{name}: {} finding(s); first: case {:#018x}: {:?}\ninput: {}",
            report.findings.len(),
            f.case_seed,
            f.problem,
            dump(&f.input)
        );
    }
}

#[test]
fn every_target_has_a_smoke_test() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    let this_file = include_str!("smoke.rs");
    for n in names {
        assert!(
            this_file.contains(&format!("smoke(\"{n}\")")),
            "{n} is not smoke-tested"
        );
    }
}

#[test]
fn tokenizer_lmforge() {
    smoke("tokenizer-lmforge");
}

#[test]
fn tokenizer_hf() {
    smoke("tokenizer-hf");
}

#[test]
fn sentencepiece() {
    smoke("sentencepiece");
}

#[test]
fn tokfile() {
    smoke("tokfile");
}

#[test]
fn data_meta() {
    smoke("data-meta");
}

#[test]
fn model_config() {
    smoke("model-config");
}

#[test]
fn model_safetensors() {
    smoke("model-safetensors");
}

#[test]
fn optimizer_safetensors() {
    smoke("optimizer-safetensors");
}

#[test]
fn train_toml() {
    smoke("train-toml");
}

#[test]
fn torch_pickle() {
    smoke("torch-pickle");
}

#[test]
fn torch_checkpoint() {
    smoke("torch-checkpoint");
}

#[test]
fn replay_rebuilds_the_same_input() {
    let target = lmforge_fuzz::targets::find("tokfile").unwrap();
    let (a, _, _) = engine::replay(target, 0x1234).unwrap();
    let (b, _, _) = engine::replay(target, 0x1234).unwrap();
    assert_eq!(a, b);
}
