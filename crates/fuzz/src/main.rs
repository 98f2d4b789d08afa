//! `lmforge-fuzz <target|all> [--secs N] [--execs N] [--seed S] [--replay CASE]`: fuzzes
//! lmforge's file loaders and prints executions, executions per second and findings.

use std::time::Duration;

use anyhow::{bail, Context};
use lmforge_fuzz::engine::{self, dump, Problem, RunOptions, Verdict};
use lmforge_fuzz::{targets, TARGETS};

const USAGE: &str = "usage: lmforge-fuzz <target|all|list> [--secs N] [--execs N] [--seed S] \
[--slow-ms N] [--replay CASE_SEED]";

struct Args {
    which: String,
    opts: RunOptions,
    replay: Option<u64>,
}

fn parse_u64(flag: &str, v: Option<String>) -> anyhow::Result<u64> {
    let v = v.with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.with_context(|| format!("{flag}: '{v}' is not a number"))
}

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let which = it.next().context(USAGE)?;
    let mut opts = RunOptions {
        max_time: Some(Duration::from_secs(60)),
        ..RunOptions::default()
    };
    let mut replay = None;
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--secs" => {
                opts.max_time = Some(Duration::from_secs(parse_u64(&flag, it.next())?));
            }
            "--execs" => {
                opts.max_execs = Some(parse_u64(&flag, it.next())?);
                opts.max_time = None;
            }
            "--seed" => opts.seed = parse_u64(&flag, it.next())?,
            "--slow-ms" => opts.slow = Duration::from_millis(parse_u64(&flag, it.next())?),
            "--replay" => replay = Some(parse_u64(&flag, it.next())?),
            other => bail!("unknown option '{other}'\n{USAGE}"),
        }
    }
    Ok(Args {
        which,
        opts,
        replay,
    })
}

fn print_finding(target: &str, f: &engine::Finding) {
    let what = match &f.problem {
        Problem::Panic(msg) => format!("PANIC: {msg}"),
        Problem::Slow(d) => format!("SLOW: {:.0} ms", d.as_secs_f64() * 1e3),
    };
    println!(
        "  finding in {target}, case {:#018x}: {what}\n  replay: lmforge-fuzz {target} --replay {:#018x}\n  input: {}",
        f.case_seed,
        f.case_seed,
        dump(&f.input)
    );
}

fn replay(name: &str, case: u64) -> anyhow::Result<bool> {
    let target = targets::find(name).with_context(|| format!("unknown target '{name}'"))?;
    let (input, outcome, took) = engine::replay(target, case)?;
    let path = format!("{name}-{case:016x}.bin");
    std::fs::write(&path, &input).with_context(|| format!("cannot write {path}"))?;
    println!("input ({path}): {}", dump(&input));
    println!("took {:.1} ms", took.as_secs_f64() * 1e3);
    match outcome {
        Ok(Verdict::Accepted) => println!("accepted"),
        Ok(Verdict::Refused(why)) => println!("refused: {why}"),
        Err(panic) => {
            println!("PANIC: {panic}");
            return Ok(false);
        }
    }
    Ok(true)
}

fn run() -> anyhow::Result<bool> {
    let args = parse_args()?;
    if args.which == "list" {
        for t in &TARGETS {
            println!("{:<22} {}", t.name, t.about);
        }
        return Ok(true);
    }
    if let Some(case) = args.replay {
        return replay(&args.which, case);
    }
    let chosen: Vec<_> = match args.which.as_str() {
        "all" => TARGETS.iter().collect(),
        name => vec![targets::find(name)
            .with_context(|| format!("unknown target '{name}' (try `lmforge-fuzz list`)"))?],
    };
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8}",
        "target", "execs", "execs/s", "accepted", "refused", "slowest", "peak MB", "findings"
    );
    let mut clean = true;
    for target in chosen {
        let report = engine::run(target, &args.opts, &mut |f| print_finding(target.name, f))?;
        println!(
            "{:<22} {:>9} {:>9.0} {:>9} {:>8} {:>7.1}ms {:>8.1} {:>8}",
            report.target,
            report.execs,
            report.execs_per_sec(),
            report.accepted,
            report.refused,
            report.slowest.as_secs_f64() * 1e3,
            report.peak_bytes as f64 / (1 << 20) as f64,
            report.findings.len()
        );
        clean &= report.findings.is_empty();
    }
    Ok(clean)
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
