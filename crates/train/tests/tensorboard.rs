//! TensorBoard events and per-evaluation samples of a real (tiny) run: the same series as
//! `metrics.jsonl`, and a run resumed twice holds every step once.

use std::path::Path;
use std::sync::Arc;

use lmforge_train::metrics::{read_records, read_samples};
use lmforge_train::tb::{event_files, proto::Event, read_events, CONFIG_TAG, SAMPLE_TAG};
use lmforge_train::{train, EvalSampler, RunOptions, TrainConfig};

fn tiny_config(dir: &Path) -> TrainConfig {
    let corpus = lmforge_corpus::bundled_corpus_dir().unwrap();
    let mut args = vec![
        "--data".to_string(),
        corpus.join("macbeth_gut.txt").display().to_string(),
    ];
    let flags = "--preset tiny --n-embd 32 --block-size 32 --batch-size 4 --max-iters 40 \
                 --eval-interval 10 --eval-iters 2 --warmup-iters 5 --learning-rate 3e-3 \
                 --sample-tokens 0";
    args.extend(flags.split(' ').filter(|s| !s.is_empty()).map(String::from));
    args.extend(["--out".into(), dir.display().to_string()]);
    TrainConfig::resolve(None, &args).unwrap()
}

/// A stand-in sampler whose text depends on the weights (so each evaluation's differs).
fn sampler() -> EvalSampler {
    EvalSampler(Arc::new(|model, _tok| {
        let w: f32 = model.params()[..64].iter().sum();
        Ok(format!("weights sum {w:.6}"))
    }))
}

fn opts(resume: Option<&Path>, stop_after: Option<usize>) -> RunOptions {
    RunOptions {
        resume: resume.map(Path::to_path_buf),
        stop_after,
        quiet: true,
        sampler: Some(sampler()),
        ..RunOptions::default()
    }
}

/// Copies the files of `from` into `to` (created); returns `to`.
fn copy_files(from: &Path, to: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    to.to_path_buf()
}

/// `(step, value)` of every event tagged `tag` across the run's event files.
fn series(run: &Path, tag: &str) -> Vec<(i64, Option<f32>, Option<String>)> {
    let files = event_files(&run.join("tb")).unwrap();
    let events: Vec<Event> = files.iter().flat_map(|f| read_events(f).unwrap()).collect();
    events
        .iter()
        .flat_map(|e| {
            let values = e.summary.iter().flat_map(|s| s.value.iter());
            values
                .filter(|v| v.tag == tag)
                .map(|v| (e.step, v.simple_value, v.text_value()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn events_match_metrics_and_a_twice_resumed_run_has_each_step_once() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path();
    let cfg = tiny_config(run);
    train(&cfg, &opts(None, Some(17))).unwrap();
    let saved = TrainConfig::load(&run.join("config.toml")).unwrap();
    // stops right after the evaluation at 20: that one is kept, not redone
    train(&saved, &opts(Some(run), Some(3))).unwrap();
    let last = run.join("checkpoints/last");
    let at_20 = copy_files(&last, &d.path().join("last-at-20"));
    // goes on to 30, then "crashes" while saving last/: its metrics, sample and events
    // of step 30 are written, last/ is still the one of step 20
    train(&saved, &opts(Some(run), Some(10))).unwrap();
    copy_files(&at_20, &last);
    let r = train(&saved, &opts(Some(run), None)).unwrap();
    assert_eq!(r.steps, 40);

    let recs = read_records(&run.join("metrics.jsonl")).unwrap();
    let steps: Vec<usize> = recs.iter().map(|r| r.step).collect();
    assert_eq!(steps, [0, 10, 20, 30, 40]);
    let want = |f: fn(&lmforge_train::metrics::EvalRecord) -> f32| {
        recs.iter()
            .map(|r| (r.step as i64, Some(f(r)), None))
            .collect::<Vec<_>>()
    };
    assert_eq!(series(run, "loss/train"), want(|r| r.train_loss));
    assert_eq!(series(run, "loss/val"), want(|r| r.val_loss));
    assert_eq!(series(run, "lr"), want(|r| r.lr));
    assert_eq!(series(run, "grad_norm"), want(|r| r.grad_norm));
    assert_eq!(series(run, "tokens_per_s"), want(|r| r.tokens_per_s as f32));

    let samples = read_samples(&run.join("samples.jsonl")).unwrap();
    assert_eq!(
        samples.iter().map(|s| s.step).collect::<Vec<_>>(),
        [0, 10, 20, 30, 40]
    );
    assert_ne!(samples[0].text, samples[4].text);
    let tb_samples: Vec<(i64, Option<f32>, Option<String>)> = samples
        .iter()
        .map(|s| (s.step as i64, None, Some(s.text.clone())))
        .collect();
    assert_eq!(series(run, SAMPLE_TAG), tb_samples);

    // the config at each start: 0, the resume at 17 and the ones at 20 (the second replaced
    // the first; the start at 30 was undone)
    let configs = series(run, CONFIG_TAG);
    let config_steps: Vec<i64> = configs.iter().map(|c| c.0).collect();
    assert_eq!(config_steps, [0, 17, 20]);
    assert!(configs[0].2.as_deref().unwrap().contains("n_embd = 32"));
    assert_eq!(event_files(&run.join("tb")).unwrap().len(), 1);
}
