//! The runs under a runs folder and what the page shows of each: config, metrics,
//! samples, checkpoints. [`Watcher`] turns their changes into [`Message`]s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lmforge_train::metrics::{EvalRecord, SampleRecord};
use lmforge_train::run::folder::{CONFIG_FILE, METRICS_FILE, SAMPLES_FILE};
use serde::Serialize;

use crate::follow::LineFollower;

/// The runs in `root`: `root` itself when it is a run folder, else its sub-folders that
/// are (hold `config.toml` or `metrics.jsonl`), by name.
pub fn find_runs(root: &Path) -> Vec<(String, PathBuf)> {
    if is_run(root) {
        let name = root.file_name().map_or_else(
            || root.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        return vec![(name, root.to_path_buf())];
    }
    let mut runs: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| is_run(p))
        .filter_map(|p| Some((p.file_name()?.to_string_lossy().into_owned(), p)))
        .collect();
    runs.sort();
    runs
}

fn is_run(p: &Path) -> bool {
    p.join(CONFIG_FILE).is_file() || p.join(METRICS_FILE).is_file()
}

/// A change the page applies, sent as one server-sent event (`event:` is the variant).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// A run appeared, or its config changed.
    Run {
        /// folder name
        run: String,
        /// `config.toml`
        config: String,
    },
    /// New metrics records (after a reset: all of them).
    Metrics {
        /// folder name
        run: String,
        /// Drop the records shown so far first.
        reset: bool,
        /// in file order
        records: Vec<EvalRecord>,
    },
    /// New samples (after a reset: all of them).
    Samples {
        /// folder name
        run: String,
        /// Drop the samples shown so far first.
        reset: bool,
        /// in file order
        samples: Vec<SampleRecord>,
    },
    /// The run's checkpoint list changed.
    Checkpoints {
        /// folder name
        run: String,
        /// names under `checkpoints/`
        names: Vec<String>,
    },
    /// A run folder disappeared.
    Gone {
        /// folder name
        run: String,
    },
    /// A skipped line or unreadable file.
    Warning {
        /// one line
        message: String,
    },
}

impl Message {
    /// The SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Run { .. } => "run",
            Message::Metrics { .. } => "metrics",
            Message::Samples { .. } => "samples",
            Message::Checkpoints { .. } => "checkpoints",
            Message::Gone { .. } => "gone",
            Message::Warning { .. } => "warning",
        }
    }
}

/// One run as last seen.
struct Seen {
    path: PathBuf,
    /// The `run` message went out (a run is announced even without a config).
    announced: bool,
    config: String,
    checkpoints: Vec<String>,
    metrics: LineFollower,
    samples: LineFollower,
}

/// The state of one client's view of a runs folder: each [`Watcher::poll`] returns what
/// changed since the previous one (the first: everything).
pub struct Watcher {
    root: PathBuf,
    runs: BTreeMap<String, Seen>,
}

impl Watcher {
    /// Watches `root` (nothing is sent before the first poll).
    pub fn new(root: &Path) -> Watcher {
        Watcher {
            root: root.to_path_buf(),
            runs: BTreeMap::new(),
        }
    }

    /// What changed since the last poll.
    pub fn poll(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        let found = find_runs(&self.root);
        let names: Vec<&String> = found.iter().map(|(n, _)| n).collect();
        let gone: Vec<String> = self
            .runs
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect();
        for run in gone {
            self.runs.remove(&run);
            out.push(Message::Gone { run });
        }
        for (name, path) in found {
            let seen = self.runs.entry(name.clone()).or_insert_with(|| Seen {
                metrics: LineFollower::new(&path.join(METRICS_FILE)),
                samples: LineFollower::new(&path.join(SAMPLES_FILE)),
                path,
                announced: false,
                config: String::new(),
                checkpoints: Vec::new(),
            });
            seen.poll(&name, &mut out);
        }
        out
    }
}

impl Seen {
    fn poll(&mut self, run: &str, out: &mut Vec<Message>) {
        let config = std::fs::read_to_string(self.path.join(CONFIG_FILE)).unwrap_or_default();
        if config != self.config || !self.announced {
            self.announced = true;
            self.config = config.clone();
            out.push(Message::Run {
                run: run.into(),
                config,
            });
        }
        let m = self.metrics.poll::<EvalRecord>();
        warn(&m.skipped, out);
        if m.reset || !m.items.is_empty() {
            out.push(Message::Metrics {
                run: run.into(),
                reset: m.reset,
                records: m.items,
            });
        }
        let s = self.samples.poll::<SampleRecord>();
        warn(&s.skipped, out);
        if s.reset || !s.items.is_empty() {
            out.push(Message::Samples {
                run: run.into(),
                reset: s.reset,
                samples: s.items,
            });
        }
        let names = lmforge_checkpoint::list_checkpoints(
            &self.path.join(lmforge_checkpoint::CHECKPOINTS_DIR),
        );
        if names != self.checkpoints {
            self.checkpoints = names.clone();
            out.push(Message::Checkpoints {
                run: run.into(),
                names,
            });
        }
    }
}

fn warn(skipped: &[String], out: &mut Vec<Message>) {
    for message in skipped {
        eprintln!("warning: {message}");
        out.push(Message::Warning {
            message: message.clone(),
        });
    }
}
