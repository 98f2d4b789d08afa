//! Progress display: an indicatif bar (step/total, loss, lr, tokens/s, ETA) on a terminal,
//! plain log lines every `log_interval` steps otherwise (CI, redirected output).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Reports training progress.
pub struct Progress {
    bar: Option<ProgressBar>,
    log_interval: usize,
    quiet: bool,
}

impl Progress {
    /// a progress display for steps `start..total` (a bar on a terminal, a log line every `log_interval` steps otherwise, nothing when `quiet`)
    pub fn new(total: usize, start: usize, log_interval: usize, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_position(start as u64);
            bar
        });
        Progress {
            bar,
            log_interval: log_interval.max(1),
            quiet,
        }
    }

    /// After an optimizer step.
    pub fn step(&self, step: usize, total: usize, loss: f32, lr: f32, tokens_per_s: f64) {
        let msg = format!("loss {loss:.4} lr {lr:.2e} {tokens_per_s:.0} tok/s");
        match &self.bar {
            Some(bar) => {
                bar.set_position(step as u64);
                bar.set_message(msg);
            }
            None if !self.quiet && (step.is_multiple_of(self.log_interval) || step == total) => {
                eprintln!("step {step}/{total}: {msg}")
            }
            None => {}
        }
    }

    /// A line that must not be overwritten by the bar (evaluations, checkpoints).
    pub fn println(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// close the bar
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
