//! TensorBoard event files: `RUN_DIR/tb/events.out.tfevents.<secs>.lmforge.<pid>`, one
//! [`proto::Event`] per record ([`record`]'s TFRecord framing), so that
//! `tensorboard --logdir runs` shows a run's scalars (the series of `metrics.jsonl`), the
//! sample generated at each evaluation and the run's config (Text tab).
//!
//! No maintained crate writes this format (`tensorboard-rs` was last released in 2021 on
//! rust-protobuf 2), and it is small: a masked CRC32C framing around `prost` messages.
//!
//! Resume mirrors `metrics.jsonl`: opening the writer rewrites the folder's event files
//! keeping only the events of the steps the resumed run keeps, then appends to the newest
//! file, so no step appears twice.

pub mod proto;
pub mod record;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::{Result, TrainError};
use proto::{Event, Summary, SummaryValue};

/// `RUN_DIR/tb`: the run's TensorBoard event files.
pub const TB_DIR: &str = "tb";
/// Tag of the run's config (text).
pub const CONFIG_TAG: &str = "config";
/// Tag of the sample generated at an evaluation (text).
pub const SAMPLE_TAG: &str = "sample";
/// Tags of the scalar series, as in `metrics.jsonl`.
pub const SCALAR_TAGS: [&str; 5] = ["loss/train", "loss/val", "lr", "grad_norm", "tokens_per_s"];
/// The prefix TensorBoard looks for.
pub const EVENT_FILE_PREFIX: &str = "events.out.tfevents.";
/// The first record of every event file names the format version.
const FILE_VERSION: &str = "brain.Event:2";

/// Appends events to a run's newest event file, each one written through at once (so a
/// `tensorboard` watching the folder sees it, and a crash loses at most the record being
/// written, which readers skip).
#[derive(Debug)]
pub struct TbWriter {
    path: PathBuf,
    file: File,
}

impl TbWriter {
    /// Opens `run_dir/tb` for writing. Events of earlier invocations that `keep` rejects
    /// are dropped first (a resumed run redoes those steps); the file-version record always
    /// stays.
    pub fn open(run_dir: &Path, keep: impl Fn(&Event) -> bool) -> Result<TbWriter> {
        let dir = run_dir.join(TB_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| TrainError::io(&dir, format!("cannot create: {e}")))?;
        let existing = event_files(&dir)?;
        for path in &existing {
            retain_events(path, &keep)?;
        }
        let (path, fresh) = match existing.last() {
            Some(p) => (p.clone(), false),
            None => (dir.join(new_file_name()), true),
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, format!("cannot write: {e}")))?;
        let mut w = TbWriter { path, file };
        if fresh {
            w.write(&Event {
                wall_time: now(),
                step: 0,
                file_version: Some(FILE_VERSION.into()),
                summary: None,
            })?;
        }
        Ok(w)
    }

    /// The event file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Scalars `(tag, value)` at `step`, in one event.
    pub fn scalars(&mut self, step: usize, values: &[(&str, f32)]) -> Result<()> {
        let value = values
            .iter()
            .map(|(tag, v)| SummaryValue::scalar(tag, *v))
            .collect();
        self.write_summary(step, Summary { value })
    }

    /// A text (markdown in TensorBoard's Text tab) under `tag` at `step`.
    pub fn text(&mut self, step: usize, tag: &str, text: &str) -> Result<()> {
        let value = vec![SummaryValue::text(tag, text)];
        self.write_summary(step, Summary { value })
    }

    fn write_summary(&mut self, step: usize, summary: Summary) -> Result<()> {
        self.write(&Event {
            wall_time: now(),
            step: step as i64,
            file_version: None,
            summary: Some(summary),
        })
    }

    fn write(&mut self, event: &Event) -> Result<()> {
        let mut buf = Vec::with_capacity(event.encoded_len() + 16);
        record::write_record(&mut buf, &event.encode_to_vec())
            .and_then(|()| self.file.write_all(&buf))
            .map_err(|e| TrainError::io(&self.path, format!("cannot write: {e}")))
    }
}

/// The event files in `dir`, oldest name first (TensorBoard's reading order).
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(TrainError::io(dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(EVENT_FILE_PREFIX) && !n.ends_with(".tmp"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The events of an event file (a record cut short at the end is left out).
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    decode_all(path, &bytes).map(|(events, _)| events)
}

/// The events of `bytes`, and whether the records spanned all of it.
fn decode_all(path: &Path, bytes: &[u8]) -> Result<(Vec<Event>, bool)> {
    let (payloads, used) = record::read_records(bytes);
    let events = payloads
        .into_iter()
        .map(|p| Event::decode(p).map_err(|e| TrainError::io(path, format!("bad event: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok((events, used == bytes.len()))
}

/// Rewrites `path` (atomically) with only the events `keep` accepts, when any are dropped.
fn retain_events(path: &Path, keep: &impl Fn(&Event) -> bool) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let (events, whole) = decode_all(path, &bytes)?;
    let n = events.len();
    let kept: Vec<Event> = events
        .into_iter()
        .filter(|e| e.file_version.is_some() || keep(e))
        .collect();
    if whole && kept.len() == n {
        return Ok(());
    }
    let mut out = Vec::new();
    for e in &kept {
        record::write_record(&mut out, &e.encode_to_vec()).map_err(|e| TrainError::io(path, e))?;
    }
    lmforge_files::write_atomic(path, &out).map_err(|e| TrainError::io(path, e))
}

fn new_file_name() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{EVENT_FILE_PREFIX}{secs:010}.lmforge.{}",
        std::process::id()
    )
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalars_by_step(path: &Path, tag: &str) -> Vec<(i64, f32)> {
        read_events(path)
            .unwrap()
            .iter()
            .filter_map(|e| {
                let v = e.summary.as_ref()?.value.iter().find(|v| v.tag == tag)?;
                Some((e.step, v.simple_value?))
            })
            .collect()
    }

    #[test]
    fn scalars_and_texts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TbWriter::open(dir.path(), |_: &Event| true).unwrap();
        w.text(0, "config", "n_layer = 2").unwrap();
        w.scalars(0, &[("loss/train", 4.5), ("lr", 1e-3)]).unwrap();
        w.scalars(10, &[("loss/train", 3.25), ("lr", 5e-4)])
            .unwrap();
        let path = w.path().to_path_buf();
        drop(w);
        let events = read_events(&path).unwrap();
        assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
        let text = events[1].summary.as_ref().unwrap().value[0].text_value();
        assert_eq!(text.as_deref(), Some("n_layer = 2"));
        assert_eq!(
            scalars_by_step(&path, "loss/train"),
            vec![(0, 4.5), (10, 3.25)]
        );
        assert_eq!(scalars_by_step(&path, "lr"), vec![(0, 1e-3), (10, 5e-4)]);
    }

    #[test]
    fn reopening_drops_rejected_steps_and_a_cut_tail_then_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TbWriter::open(dir.path(), |_: &Event| true).unwrap();
        for step in [0, 10, 20] {
            w.scalars(step, &[("loss/train", step as f32)]).unwrap();
        }
        let path = w.path().to_path_buf();
        drop(w);
        // a writer that died mid-record
        let mut bytes = std::fs::read(&path).unwrap();
        let full = bytes.len();
        bytes.extend_from_slice(&[7, 0, 0, 0, 0, 0]);
        std::fs::write(&path, &bytes).unwrap();
        let mut w = TbWriter::open(dir.path(), |e: &Event| e.step < 20).unwrap();
        assert_eq!(w.path(), path, "appends to the existing file");
        w.scalars(20, &[("loss/train", 99.0)]).unwrap();
        w.scalars(30, &[("loss/train", 30.0)]).unwrap();
        drop(w);
        assert_eq!(
            scalars_by_step(&path, "loss/train"),
            vec![(0, 0.0), (10, 10.0), (20, 99.0), (30, 30.0)]
        );
        assert!(std::fs::read(&path).unwrap().len() > full);
        assert_eq!(event_files(&dir.path().join(TB_DIR)).unwrap().len(), 1);
    }
}
