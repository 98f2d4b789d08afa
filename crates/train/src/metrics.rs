//! Run metrics: one JSON line per evaluation in `metrics.jsonl`, the sample generated at
//! each evaluation in `samples.jsonl`, and `loss.png` (train and val loss against step)
//! redrawn after every evaluation.

use std::io::Write;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// One evaluation's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// optimizer steps taken
    pub step: usize,
    /// Mean loss over the fixed train eval batches.
    pub train_loss: f32,
    /// Mean loss over the val eval batches (NaN, written `null`, without a val split).
    #[serde(deserialize_with = "nan_if_null")]
    pub val_loss: f32,
    /// learning rate of the step
    pub lr: f32,
    /// Global gradient norm (before clipping) of the last step.
    pub grad_norm: f32,
    /// training throughput since the last record
    pub tokens_per_s: f64,
    /// seconds since the run (or its resume) started
    pub elapsed_s: f64,
    /// precision of the steps up to this record (`fp32`, `bf16`; empty in older files)
    #[serde(default)]
    pub dtype: String,
}

/// The text sample generated at one evaluation (a line of `samples.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// optimizer steps taken
    pub step: usize,
    /// the prompt followed by the generated text
    pub text: String,
}

/// Reads a loss written as `null` (serde_json's NaN) back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f32, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
}

/// Appends a record to `metrics.jsonl`.
pub fn append_record(path: &Path, rec: &EvalRecord) -> Result<()> {
    append_line(path, rec)
}

/// Appends a record to `samples.jsonl`.
pub fn append_sample(path: &Path, rec: &SampleRecord) -> Result<()> {
    append_line(path, rec)
}

fn append_line(path: &Path, rec: &impl Serialize) -> Result<()> {
    let line = serde_json::to_string(rec).map_err(|e| TrainError::io(path, e))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TrainError::io(path, format!("cannot write metrics: {e}")))?;
    writeln!(f, "{line}").map_err(|e| TrainError::io(path, format!("cannot write metrics: {e}")))
}

/// Reads `metrics.jsonl` (missing file: no records).
pub fn read_records(path: &Path) -> Result<Vec<EvalRecord>> {
    read_lines(path)
}

/// Reads `samples.jsonl` (missing file: no records).
pub fn read_samples(path: &Path) -> Result<Vec<SampleRecord>> {
    read_lines(path)
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| TrainError::io(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// Rewrites `metrics.jsonl` with only the records `keep` accepts (used when resuming).
pub fn retain_records(path: &Path, keep: impl Fn(&EvalRecord) -> bool) -> Result<Vec<EvalRecord>> {
    retain_lines(path, keep)
}

/// Rewrites `samples.jsonl` with only the records `keep` accepts (used when resuming).
pub fn retain_samples(path: &Path, keep: impl Fn(&SampleRecord) -> bool) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    retain_lines(path, keep).map(|_| ())
}

fn retain_lines<T: Serialize + serde::de::DeserializeOwned>(
    path: &Path,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<T>> {
    let kept: Vec<T> = read_lines(path)?.into_iter().filter(|r| keep(r)).collect();
    let mut text = String::new();
    for r in &kept {
        text.push_str(&serde_json::to_string(r).map_err(|e| TrainError::io(path, e))?);
        text.push('\n');
    }
    lmforge_files::write_atomic(path, text.as_bytes()).map_err(|e| TrainError::io(path, e))?;
    Ok(kept)
}

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bundled font is valid; a failure would only mean text-less plots.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws train/val loss against step into `path` (PNG), replacing it atomically.
pub fn plot_losses(
    records: &[EvalRecord],
    path: &Path,
    log_scale: bool,
    title: &str,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    register_font();
    let tmp = path.with_extension("tmp.png");
    draw(records, &tmp, log_scale, title)
        .map_err(|e| TrainError::io(path, format!("cannot draw the loss plot: {e}")))?;
    lmforge_files::replace_with_synced(&tmp, path).map_err(|e| TrainError::io(path, e))
}

fn draw(
    records: &[EvalRecord],
    path: &Path,
    log_scale: bool,
    title: &str,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    // The x axis is an integer range, so its tick labels are whole steps.
    let max_step = records.iter().map(|r| r.step).max().unwrap_or(1).max(1) as u64;
    let losses = records
        .iter()
        .flat_map(|r| [r.train_loss, r.val_loss])
        .filter(|v| v.is_finite());
    let (lo, hi) = losses.fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = (lo.max(1e-3) as f64 * 0.95, hi as f64 * 1.05);
    let series = |f: fn(&EvalRecord) -> f32| {
        records
            .iter()
            .map(move |r| (r.step as u64, f(r) as f64))
            .filter(|(_, v)| v.is_finite())
            .collect::<Vec<_>>()
    };
    let train = series(|r| r.train_loss);
    let val = series(|r| r.val_loss);
    macro_rules! plot_into {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("step")
                .y_desc("loss")
                .draw()?;
            chart
                .draw_series(LineSeries::new(train, BLUE.stroke_width(2)))?
                .label("train")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
            chart
                .draw_series(LineSeries::new(val, RED.stroke_width(2)))?
                .label("val")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60);
    if log_scale {
        plot_into!(builder.build_cartesian_2d(0u64..max_step, (lo..hi).log_scale())?);
    } else {
        plot_into!(builder.build_cartesian_2d(0u64..max_step, lo..hi)?);
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_plot_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("metrics.jsonl");
        for step in [0, 10, 20] {
            let r = EvalRecord {
                step,
                train_loss: 4.0 - step as f32 / 10.0,
                val_loss: 4.1 - step as f32 / 12.0,
                lr: 1e-3,
                grad_norm: 1.0,
                tokens_per_s: 1e4,
                elapsed_s: step as f64,
                dtype: "bf16".into(),
            };
            append_record(&m, &r).unwrap();
        }
        let recs = read_records(&m).unwrap();
        assert_eq!(recs.len(), 3);
        let kept = retain_records(&m, |r| r.step < 20).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(read_records(&m).unwrap(), kept);
        // without a val split the val loss is NaN: written null, read back as NaN
        let no_val = EvalRecord {
            val_loss: f32::NAN,
            ..recs[0].clone()
        };
        let m2 = dir.path().join("no-val.jsonl");
        append_record(&m2, &no_val).unwrap();
        assert!(std::fs::read_to_string(&m2)
            .unwrap()
            .contains("\"val_loss\":null"));
        assert!(read_records(&m2).unwrap()[0].val_loss.is_nan());
        let png = dir.path().join("loss.png");
        for log in [false, true] {
            plot_losses(&recs, &png, log, "test").unwrap();
            let bytes = std::fs::read(&png).unwrap();
            assert_eq!(&bytes[1..4], b"PNG");
        }
    }
}
