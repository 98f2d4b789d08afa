//! The fuzz loop: make a case from a seed and a case number, run the loader on it under a
//! panic guard, a time budget and the allocation cap, and collect findings.
//!
//! Cases are independent: case `i` of a run with seed `s` is fully determined by
//! [`case_seed`]`(target, s, i)`, so any finding replays with `--replay <case seed>`.
//! The first cases of a run are the unmutated seeds (they must load: a check that the
//! harness itself is sound).

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use fastrand::Rng;

use crate::alloc_guard;
use crate::mutate::mutate_bytes;
use crate::structured::{mutate_structured, Format};

/// What the loader said about one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Loaded (and, where the target does so, used) without error.
    Accepted,
    /// Refused with an error (the expected outcome for most mutated inputs).
    Refused(String),
}

/// Runs the loader on one input.
pub type Exec = Box<dyn FnMut(&[u8]) -> Verdict>;

/// A loader under test, ready to run inputs: fixture files are in place.
pub struct Harness {
    /// Real files the mutations start from.
    pub seeds: Vec<Vec<u8>>,
    /// How many of the first seeds must load (a check that the harness is sound).
    pub must_load: usize,
    /// Writes the input where the loader looks and runs the loader.
    pub exec: Exec,
}

/// One fuzz target: a file a user can hand to lmforge, and its loader.
pub struct Target {
    /// Command-line name.
    pub name: &'static str,
    /// What is fuzzed, in words.
    pub about: &'static str,
    /// Structure used for structure-aware mutations.
    pub format: Format,
    /// Builds the harness in `dir` (a fresh temporary folder).
    pub setup: fn(&Path) -> anyhow::Result<Harness>,
}

/// How long and how hard to fuzz.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run seed; with the case number it fixes every input.
    pub seed: u64,
    /// Stop after this many executions.
    pub max_execs: Option<u64>,
    /// Stop after this much time.
    pub max_time: Option<Duration>,
    /// An execution slower than this is reported as a `slow` finding.
    pub slow: Duration,
    /// An execution slower than this is a hang: the watchdog prints the case and exits.
    pub hang: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: 0x006c_6d66_6f72_6765,
            max_execs: None,
            max_time: Some(Duration::from_secs(10)),
            slow: Duration::from_secs(1),
            hang: Duration::from_secs(60),
        }
    }
}

/// What went wrong with one input.
#[derive(Debug, Clone)]
pub enum Problem {
    /// The loader panicked (message with location).
    Panic(String),
    /// The loader took longer than [`RunOptions::slow`].
    Slow(Duration),
}

/// One bad input, replayable from its case seed.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Pass to `--replay` to rebuild the input.
    pub case_seed: u64,
    /// What happened.
    pub problem: Problem,
    /// The input.
    pub input: Vec<u8>,
}

/// Totals of one target's run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Target name.
    pub target: &'static str,
    /// Inputs run.
    pub execs: u64,
    /// Inputs the loader accepted.
    pub accepted: u64,
    /// Inputs the loader refused with an error.
    pub refused: u64,
    /// Wall time of the loop.
    pub elapsed: Duration,
    /// Slowest single execution.
    pub slowest: Duration,
    /// Most bytes live at once during the loop (whole process).
    pub peak_bytes: usize,
    /// Panics and slow inputs.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Executions per second.
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The seed of case `index` in a run of `target` with run seed `run_seed`.
pub fn case_seed(target: &str, run_seed: u64, index: u64) -> u64 {
    let name_hash = target.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    splitmix64(run_seed ^ name_hash ^ splitmix64(index))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Builds the input of one case: a seed picked by the case's RNG and 1–8 stacked
/// mutations (structure-aware about half the time for text formats).
pub fn make_input(format: Format, seeds: &[Vec<u8>], case_seed: u64) -> Vec<u8> {
    let mut rng = Rng::with_seed(case_seed);
    let pick = rng.usize(..seeds.len());
    let other = &seeds[rng.usize(..seeds.len())];
    let mut data = seeds[pick].clone();
    let rounds = 1 + rng.usize(..8).min(rng.usize(..8));
    for _ in 0..rounds {
        if !(rng.bool() && mutate_structured(&mut rng, format, &mut data)) {
            mutate_bytes(&mut rng, &mut data, other);
        }
    }
    data
}

thread_local! {
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_PANIC: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Installs (once) a panic hook that records, instead of printing, panics raised inside
/// [`run_guarded`] on this thread; other panics go to the previous hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(|g| g.get()) {
                LAST_PANIC.with(|p| *p.borrow_mut() = info.to_string());
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `exec` on `input`; a panic becomes `Err(message)`.
pub fn run_guarded(
    exec: &mut dyn FnMut(&[u8]) -> Verdict,
    input: &[u8],
) -> Result<Verdict, String> {
    install_panic_hook();
    GUARDED.with(|g| g.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| exec(input)));
    GUARDED.with(|g| g.set(false));
    result.map_err(|_| LAST_PANIC.with(|p| std::mem::take(&mut *p.borrow_mut())))
}

/// Watches the running case from another thread; a case running past the hang limit is
/// reported (with its replay command) and the process exits with status 3.
struct Watchdog {
    started_ms: Arc<AtomicU64>,
    case: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    origin: Instant,
}

impl Watchdog {
    fn start(target: &'static str, hang: Duration) -> Watchdog {
        let started_ms = Arc::new(AtomicU64::new(u64::MAX));
        let case = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let origin = Instant::now();
        let (s, c, st) = (started_ms.clone(), case.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let since = s.load(Ordering::Relaxed);
                let now = origin.elapsed().as_millis() as u64;
                if since != u64::MAX && now.saturating_sub(since) > hang.as_millis() as u64 {
                    let case = c.load(Ordering::Relaxed);
                    eprintln!(
                        "\nlmforge-fuzz: HANG: target {target} case {case:#018x} ran over {hang:?}.\n\
                         Replay: lmforge-fuzz {target} --replay {case:#018x}"
                    );
                    std::process::exit(3);
                }
            }
        });
        Watchdog {
            started_ms,
            case,
            stop,
            thread: Some(thread),
            origin,
        }
    }

    fn begin(&self, case: u64) {
        self.case.store(case, Ordering::Relaxed);
        let now = self.origin.elapsed().as_millis() as u64;
        self.started_ms.store(now, Ordering::Relaxed);
    }

    fn end(&self) {
        self.started_ms.store(u64::MAX, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fuzzes `target` until `opts` says stop; `on_finding` sees each finding as it happens.
pub fn run(
    target: &'static Target,
    opts: &RunOptions,
    on_finding: &mut dyn FnMut(&Finding),
) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let mut harness = (target.setup)(dir.path())?;
    anyhow::ensure!(!harness.seeds.is_empty(), "{}: no seeds", target.name);
    let watchdog = Watchdog::start(target.name, opts.hang);
    let mut report = Report {
        target: target.name,
        execs: 0,
        accepted: 0,
        refused: 0,
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
        peak_bytes: 0,
        findings: Vec::new(),
    };
    alloc_guard::take_peak();
    let start = Instant::now();
    loop {
        let i = report.execs;
        if opts.max_execs.is_some_and(|n| i >= n)
            || opts.max_time.is_some_and(|t| start.elapsed() >= t)
        {
            break;
        }
        let seed = case_seed(target.name, opts.seed, i);
        let input = match harness.seeds.get(i as usize) {
            Some(original) => original.clone(),
            None => make_input(target.format, &harness.seeds, seed),
        };
        alloc_guard::set_current(&target.name, seed);
        watchdog.begin(seed);
        let t0 = Instant::now();
        let outcome = run_guarded(&mut *harness.exec, &input);
        let took = t0.elapsed();
        watchdog.end();
        report.execs += 1;
        report.slowest = report.slowest.max(took);
        let problem = match outcome {
            Ok(Verdict::Accepted) => {
                report.accepted += 1;
                None
            }
            Ok(Verdict::Refused(why)) => {
                report.refused += 1;
                anyhow::ensure!(
                    i as usize >= harness.must_load,
                    "{}: seed {i} is refused, so the harness is broken: {why}",
                    target.name
                );
                None
            }
            Err(msg) => Some(Problem::Panic(msg)),
        };
        let problem = problem.or((took > opts.slow).then_some(Problem::Slow(took)));
        if let Some(problem) = problem {
            let f = Finding {
                case_seed: seed,
                problem,
                input,
            };
            on_finding(&f);
            report.findings.push(f);
        }
    }
    report.elapsed = start.elapsed();
    report.peak_bytes = alloc_guard::take_peak();
    Ok(report)
}

/// Rebuilds and runs one case; returns the input and what happened.
pub fn replay(
    target: &'static Target,
    run_seed_case: u64,
) -> anyhow::Result<(Vec<u8>, Result<Verdict, String>, Duration)> {
    let dir = tempfile::tempdir()?;
    let mut harness = (target.setup)(dir.path())?;
    let input = make_input(target.format, &harness.seeds, run_seed_case);
    alloc_guard::set_current(&target.name, run_seed_case);
    let t0 = Instant::now();
    let outcome = run_guarded(&mut *harness.exec, &input);
    Ok((input, outcome, t0.elapsed()))
}

/// A readable dump of an input: escaped text when it is mostly printable UTF-8, else hex
/// of the first 512 bytes.
pub fn dump(input: &[u8]) -> String {
    const SHOW: usize = 2048;
    let printable = input
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    if printable * 10 >= input.len() * 9 {
        let text = String::from_utf8_lossy(&input[..input.len().min(SHOW)]);
        let more = if input.len() > SHOW { " …" } else { "" };
        return format!("{} bytes, text: {text:?}{more}", input.len());
    }
    let hex: Vec<String> = input[..input.len().min(512)]
        .chunks(32)
        .enumerate()
        .map(|(row, c)| {
            let bytes: String = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("  {:06x}: {bytes}", row * 32)
        })
        .collect();
    format!("{} bytes, hex:\n{}", input.len(), hex.join("\n"))
}
