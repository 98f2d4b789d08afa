//! Loader and samplers: shapes, shift-by-one, reproducibility, resume, sequential epochs.

use std::sync::Arc;

use lmforge_data::{
    BatchSampler, Dtype, EvalBatches, SamplerState, Sampling, TokenFile, TokenWriter,
};

/// A token file whose token at position i is i mod 60 000 (so values reveal positions).
fn counting_file(dir: &std::path::Path, n: u32, dtype: Dtype) -> Arc<TokenFile> {
    let p = dir.join("t.bin");
    let mut w = TokenWriter::create(&p, dtype, "fp").unwrap();
    w.push(&(0..n).map(|i| i % 60_000).collect::<Vec<_>>())
        .unwrap();
    w.finish().unwrap();
    Arc::new(TokenFile::open(&p).unwrap())
}

#[test]
fn random_batches_have_shape_and_shifted_targets() {
    let d = tempfile::tempdir().unwrap();
    for dtype in [Dtype::U16, Dtype::U32] {
        let f = counting_file(d.path(), 1000, dtype);
        let (b, t) = (4, 16);
        let mut s = BatchSampler::new(f.clone(), b, t, Sampling::Random { seed: 1 }).unwrap();
        let (mut x, mut y) = (vec![0u32; b * t], vec![0i32; b * t]);
        for _ in 0..50 {
            s.next_batch(&mut x, &mut y).unwrap();
            for r in 0..b {
                let row = &x[r * t..(r + 1) * t];
                assert!(
                    (row[0] as usize) + t < 1000,
                    "window must fit with its target"
                );
                for i in 0..t {
                    assert_eq!(row[i], row[0] + i as u32);
                    assert_eq!(y[r * t + i], row[i] as i32 + 1);
                }
            }
        }
        // Wrong buffer sizes are an error, not a panic.
        assert!(s.next_batch(&mut x[..3], &mut y).is_err());
    }
}

#[test]
fn same_seed_same_batches_and_resume_from_saved_state() {
    let d = tempfile::tempdir().unwrap();
    let f = counting_file(d.path(), 5000, Dtype::U16);
    let (b, t) = (3, 8);
    let draw = |s: &mut BatchSampler, n: usize| {
        let (mut x, mut y) = (vec![0u32; b * t], vec![0i32; b * t]);
        (0..n)
            .map(|_| {
                s.next_batch(&mut x, &mut y).unwrap();
                x.clone()
            })
            .collect::<Vec<_>>()
    };
    let mut a = BatchSampler::new(f.clone(), b, t, Sampling::Random { seed: 42 }).unwrap();
    let mut c = BatchSampler::new(f.clone(), b, t, Sampling::Random { seed: 42 }).unwrap();
    let mut other = BatchSampler::new(f.clone(), b, t, Sampling::Random { seed: 43 }).unwrap();
    let first = draw(&mut a, 10);
    assert_eq!(first, draw(&mut c, 10));
    assert_ne!(first, draw(&mut other, 10));

    // Save after 10 batches (through JSON, as the trainer's state.json), continue both.
    let saved = serde_json::to_string(a.state()).unwrap();
    let cont = draw(&mut a, 10);
    let state: SamplerState = serde_json::from_str(&saved).unwrap();
    let mut resumed = BatchSampler::resume(f.clone(), state.clone()).unwrap();
    assert_eq!(draw(&mut resumed, 10), cont);
    assert_eq!(resumed.state().batches, 20);

    // A state for another shape or another file is refused.
    let mut wrong = state.clone();
    wrong.tokens = 4999;
    assert!(BatchSampler::resume(f.clone(), wrong).is_err());
}

#[test]
fn sequential_epochs_cover_the_data_once_each() {
    let d = tempfile::tempdir().unwrap();
    let n = 1001u32;
    let f = counting_file(d.path(), n, Dtype::U16);
    let (b, t) = (2, 10);
    let mut s = BatchSampler::new(f.clone(), b, t, Sampling::Sequential).unwrap();
    assert_eq!(s.windows_per_epoch(), 100);
    let (mut x, mut y) = (vec![0u32; b * t], vec![0i32; b * t]);
    let mut seen = vec![0u32; n as usize];
    for _ in 0..50 {
        assert_eq!(s.epoch(), 0);
        s.next_batch(&mut x, &mut y).unwrap();
        for (i, &tok) in x.iter().enumerate() {
            seen[tok as usize] += 1;
            assert_eq!(y[i], tok as i32 + 1);
        }
    }
    assert_eq!(s.epoch(), 1);
    assert!(
        seen[..1000].iter().all(|&c| c == 1),
        "every token once per epoch"
    );
    // The next epoch starts again at the beginning, and state resumes mid-epoch.
    s.next_batch(&mut x, &mut y).unwrap();
    assert_eq!(x[0], 0);
    let mut r = BatchSampler::resume(f.clone(), s.state().clone()).unwrap();
    let (mut x2, mut y2) = (vec![0u32; b * t], vec![0i32; b * t]);
    s.next_batch(&mut x, &mut y).unwrap();
    r.next_batch(&mut x2, &mut y2).unwrap();
    assert_eq!(x, x2);
    assert_eq!(x[0], 20, "second batch of epoch 2 starts at window 2");
}

#[test]
fn eval_batches_are_fixed_by_seed() {
    let d = tempfile::tempdir().unwrap();
    let f = counting_file(d.path(), 3000, Dtype::U32);
    let e1 = EvalBatches::new(f.clone(), 5, 4, 8, 7).unwrap();
    let e2 = EvalBatches::new(f.clone(), 5, 4, 8, 7).unwrap();
    assert_eq!(e1.len(), 5);
    let (mut x1, mut y1, mut x2, mut y2) = (
        vec![0u32; 32],
        vec![0i32; 32],
        vec![0u32; 32],
        vec![0i32; 32],
    );
    for i in 0..5 {
        e1.fill(i, &mut x1, &mut y1).unwrap();
        e2.fill(i, &mut x2, &mut y2).unwrap();
        assert_eq!((&x1, &y1), (&x2, &y2));
        // Fills are repeatable, not a stream.
        e1.fill(i, &mut x2, &mut y2).unwrap();
        assert_eq!(x1, x2);
    }
    assert!(e1.fill(5, &mut x1, &mut y1).is_err());
}

#[test]
fn file_shorter_than_a_window_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = counting_file(d.path(), 8, Dtype::U16);
    let e = BatchSampler::new(f, 1, 8, Sampling::Sequential)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has 8 tokens") && e.contains("at least 9"),
        "{e}"
    );
}
