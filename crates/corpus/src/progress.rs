//! Progress reporting for long jobs: an indicatif bar with MB/s on a terminal, plain lines
//! (every ~10%) when stderr is a file or pipe, nothing when quiet.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// A byte-count progress report (see the module docs).
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    label: String,
    total: u64,
    done: u64,
    next_line: u64,
    start: Instant,
}

impl Progress {
    /// A report labelled `label` for `total_bytes` (0: unknown total); `quiet` shows nothing.
    pub fn new(label: &str, total_bytes: u64, quiet: bool) -> Progress {
        let terminal = !quiet && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let pb = ProgressBar::new(total_bytes);
            let style = ProgressStyle::with_template("{msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            pb.set_style(style);
            pb.set_message(label.to_string());
            pb
        });
        Progress {
            bar,
            plain: !quiet && !terminal,
            label: label.to_string(),
            total: total_bytes,
            done: 0,
            next_line: total_bytes / 10,
            start: Instant::now(),
        }
    }

    /// Counts `bytes` more as done.
    pub fn inc(&mut self, bytes: u64) {
        self.done += bytes;
        if let Some(b) = &self.bar {
            b.inc(bytes);
        } else if self.plain && self.done >= self.next_line && self.done < self.total {
            self.next_line = self.done + (self.total / 10).max(1);
            self.line();
        }
    }

    fn line(&self) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let pct = if self.total == 0 {
            100.0
        } else {
            100.0 * self.done as f64 / self.total as f64
        };
        eprintln!(
            "{}: {:.1}/{:.1} MB ({pct:.0}%), {:.1} MB/s",
            self.label,
            self.done as f64 / 1e6,
            self.total as f64 / 1e6,
            self.done as f64 / 1e6 / secs
        );
    }

    /// Clears the bar and prints the final line with the average MB/s.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if self.plain || self.bar.is_some() {
            self.line();
        }
    }

    /// Clears the bar without a final line (the job failed; its error is what to show).
    pub fn abandon(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
