//! The seeds' sampling modes: stride-1 epochs, per-document windows, full evaluation.

use std::collections::HashSet;
use std::sync::Arc;

use lmforge_data::{BatchSampler, Dtype, EvalBatches, Sampling, TokenFile, TokenWriter};

/// A token file whose token at position i is i (values reveal positions).
fn counting_file(dir: &std::path::Path, n: u32) -> Arc<TokenFile> {
    let p = dir.join("t.bin");
    let mut w = TokenWriter::create(&p, Dtype::U32, "fp").unwrap();
    w.push(&(0..n).collect::<Vec<_>>()).unwrap();
    w.finish().unwrap();
    Arc::new(TokenFile::open(&p).unwrap())
}

#[test]
fn stride1_visits_every_offset_once_per_epoch_and_resumes_exactly() {
    let d = tempfile::tempdir().unwrap();
    let (n, b, t) = (103u32, 5, 8);
    let f = counting_file(d.path(), n);
    let mut s = BatchSampler::new(f.clone(), b, t, Sampling::Stride1 { seed: 7 }).unwrap();
    let windows = (n as usize - t) as u64;
    assert_eq!(s.windows_per_epoch(), windows);
    let (mut x, mut y) = (vec![0u32; b * t], vec![0i32; b * t]);
    let mut starts = Vec::new();
    // 19 batches of 5 = 95 windows: all of epoch 0 and the first 0 of epoch 1
    while (starts.len() as u64) < windows {
        s.next_batch(&mut x, &mut y).unwrap();
        for r in 0..b {
            assert_eq!(y[r * t], x[r * t] as i32 + 1);
            starts.push(x[r * t] as u64);
        }
    }
    let epoch0: HashSet<u64> = starts[..windows as usize].iter().copied().collect();
    assert_eq!(epoch0.len() as u64, windows, "each offset once");
    assert!(epoch0.iter().all(|&s| s < windows));
    let in_order: Vec<u64> = (0..windows).collect();
    assert_ne!(&starts[..windows as usize], &in_order[..], "shuffled");
    assert_eq!(s.epoch(), 1);
    // resume from the saved state: the same next batches
    let mut resumed = BatchSampler::resume(f.clone(), s.state().clone()).unwrap();
    let (mut x2, mut y2) = (x.clone(), y.clone());
    for _ in 0..30 {
        s.next_batch(&mut x, &mut y).unwrap();
        resumed.next_batch(&mut x2, &mut y2).unwrap();
        assert_eq!(x, x2);
    }
    // the next epoch has another order
    let mut e1 = BatchSampler::new(f, 1, t, Sampling::Stride1 { seed: 7 }).unwrap();
    let (mut x1, mut y1) = (vec![0u32; t], vec![0i32; t]);
    let mut orders = [Vec::new(), Vec::new()];
    for order in orders.iter_mut() {
        for _ in 0..windows {
            e1.next_batch(&mut x1, &mut y1).unwrap();
            order.push(x1[0]);
        }
    }
    assert_ne!(orders[0], orders[1]);
}

#[test]
fn per_document_rows_take_a_window_inside_each_document_in_turn() {
    let d = tempfile::tempdir().unwrap();
    let f = counting_file(d.path(), 1000);
    let docs = vec![(0, 300), (301, 400), (702, 298)];
    let t = 16;
    let s = BatchSampler::new(f.clone(), 3, t, Sampling::PerDocument { seed: 3 }).unwrap();
    let mut x = vec![0u32; 3 * t];
    let mut y = vec![0i32; 3 * t];
    // without documents: an error, not a panic
    let mut bare = BatchSampler::new(f.clone(), 3, t, Sampling::PerDocument { seed: 3 }).unwrap();
    assert!(bare.next_batch(&mut x, &mut y).is_err());
    let mut s = s.with_documents(docs.clone()).unwrap();
    assert_eq!(s.windows_per_epoch(), 3);
    for _ in 0..20 {
        s.next_batch(&mut x, &mut y).unwrap();
        // one window from each document per epoch (batch = number of documents here)
        let mut seen: Vec<usize> = (0..3)
            .map(|r| {
                let start = x[r * t] as u64;
                docs.iter()
                    .position(|&(s0, n)| start >= s0 && start + t as u64 <= s0 + n)
                    .expect("window inside one document")
            })
            .collect();
        seen.sort();
        assert_eq!(seen, [0, 1, 2]);
    }
    assert_eq!(s.epoch(), 20);
    let past_end = BatchSampler::new(f, 1, t, Sampling::PerDocument { seed: 3 })
        .unwrap()
        .with_documents(vec![(990, 20)]);
    assert!(past_end.is_err());
}

#[test]
fn full_evaluation_scores_every_target_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    for n in [41u32, 49, 50] {
        let f = counting_file(d.path(), n);
        let (b, t) = (2, 8);
        let e = EvalBatches::full(f, b, t).unwrap();
        let (mut x, mut y) = (vec![0u32; b * t], vec![0i32; b * t]);
        let mut scored = Vec::new();
        for i in 0..e.len() {
            e.fill(i, &mut x, &mut y).unwrap();
            let kept: Vec<i32> = y.iter().copied().filter(|&v| v >= 0).collect();
            assert_eq!(kept.len(), e.scored(i));
            scored.extend(kept);
        }
        scored.sort();
        let all: Vec<i32> = (1..n as i32).collect();
        assert_eq!(scored, all, "n = {n}");
    }
}
