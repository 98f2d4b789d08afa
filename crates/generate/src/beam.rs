//! Beam search over a [`Seq2SeqStep`] model.
//!
//! The usual formulation (fairseq / Hugging Face): `K` rows; each step scores every
//! (row, token) extension by its summed log-probability, keeps the best `2K` candidates in
//! order, finalises those ending in `<eos>` that rank among the first `K`, and continues the
//! best `K` others (the model's caches follow through [`Seq2SeqStep::reorder`]). Finished
//! hypotheses are ranked by the length-normalised score
//!
//! `score(y) = log P(y) / |y|^α`, `|y|` = generated tokens with `<eos>`
//!
//! (fairseq's `--lenpen`, Hugging Face's `length_penalty`; α = 1 by default, α = 0 ranks by
//! raw probability, which favours short outputs). The search stops when `K` hypotheses have
//! finished and no live row can still beat the worst of the best `K`: a live row's score can
//! only fall, so its best reachable value is `log P / L^α` at the longest length `L`
//! (an exact bound, not Hugging Face's heuristic). Rows still live at `max_new_tokens`
//! compete unfinished. With `K` at least the number of possible sequences the search is
//! exhaustive; the tests check it against brute force.

use crate::seq2seq::{log_softmax, Hypothesis, Seq2SeqOptions, Seq2SeqStep};
use crate::{GenerateError, Result};

/// A candidate extension: (summed log-prob, row, token).
type Cand = (f64, usize, u32);

/// Beam search; see the module docs. The model must already hold the encoded source.
pub fn beam_search<M: Seq2SeqStep + ?Sized>(
    model: &mut M,
    opts: &Seq2SeqOptions,
    beams: usize,
    alpha: f64,
) -> Result<Hypothesis> {
    if beams == 0 {
        return Err(GenerateError::InvalidOption(
            "--beams must be at least 1".into(),
        ));
    }
    if !(alpha >= 0.0 && alpha.is_finite()) {
        return Err(GenerateError::InvalidOption(format!(
            "--length-penalty must be ≥ 0 (got {alpha})"
        )));
    }
    let (k, v) = (beams, model.vocab_size());
    let steps = opts.max_new_tokens.min(model.max_steps());
    let norm = |logp: f64, len: usize| logp / (len.max(1) as f64).powf(alpha);
    model.start(k)?;
    // Only row 0 is live at first: every row starts as the same `<bos>`.
    let mut scores = vec![f64::NEG_INFINITY; k];
    scores[0] = 0.0;
    let mut seqs: Vec<Vec<u32>> = vec![Vec::new(); k];
    let mut last = vec![opts.bos; k];
    let mut finished: Vec<(f64, Hypothesis)> = Vec::new();
    let mut logp = vec![0.0f64; v];
    let mut cands: Vec<Cand> = Vec::with_capacity(k * v);
    for t in 0..steps {
        let logits = model.step(&last)?;
        if logits.len() != k * v {
            return Err(GenerateError::InvalidOption(format!(
                "model returned {} logits for {k} beams × vocabulary {v}",
                logits.len()
            )));
        }
        cands.clear();
        for (row, &s) in scores.iter().enumerate() {
            if s == f64::NEG_INFINITY {
                continue;
            }
            log_softmax(&logits[row * v..(row + 1) * v], &mut logp);
            cands.extend(
                logp.iter()
                    .enumerate()
                    .map(|(tok, &lp)| (s + lp, row, tok as u32)),
            );
        }
        top_in_order(&mut cands, 2 * k);
        let (mut parents, mut next_scores, mut next_seqs) = (Vec::new(), Vec::new(), Vec::new());
        for (rank, &(total, row, tok)) in cands.iter().enumerate() {
            if tok == opts.eos {
                if rank < k {
                    let h = Hypothesis {
                        tokens: seqs[row].clone(),
                        log_prob: total,
                        finished: true,
                    };
                    finished.push((norm(total, t + 1), h));
                }
                continue;
            }
            let mut s = seqs[row].clone();
            s.push(tok);
            parents.push(row);
            next_scores.push(total);
            next_seqs.push(s);
            if parents.len() == k {
                break;
            }
        }
        if parents.is_empty() {
            break; // every candidate ended
        }
        // Tiny vocabularies can leave fewer than K live rows: pad with dead copies of the
        // first (the model still steps K rows; their scores keep them out).
        while parents.len() < k {
            parents.push(parents[0]);
            next_scores.push(f64::NEG_INFINITY);
            next_seqs.push(next_seqs[0].clone());
        }
        (scores, seqs) = (next_scores, next_seqs);
        if search_is_over(&mut finished, &scores, k, |s| norm(s, steps)) || t + 1 == steps {
            break;
        }
        for (l, s) in last.iter_mut().zip(&seqs) {
            *l = s.last().copied().unwrap_or(opts.bos);
        }
        model.reorder(&parents)?;
    }
    for (s, tokens) in scores.iter().zip(seqs) {
        if *s > f64::NEG_INFINITY {
            let len = tokens.len();
            let h = Hypothesis {
                tokens,
                log_prob: *s,
                finished: false,
            };
            finished.push((norm(*s, len), h));
        }
    }
    best(finished)
}

/// Keeps the `n` best candidates, best first (ties: lower row, then lower token id).
fn top_in_order(cands: &mut Vec<Cand>, n: usize) {
    let order = |a: &Cand, b: &Cand| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2));
    if cands.len() > n {
        cands.select_nth_unstable_by(n - 1, order);
        cands.truncate(n);
    }
    cands.sort_unstable_by(order);
}

/// True when `k` hypotheses have finished and no live row's best reachable score
/// (`bound(log P)`) beats the worst of the best `k`.
fn search_is_over(
    finished: &mut [(f64, Hypothesis)],
    scores: &[f64],
    k: usize,
    bound: impl Fn(f64) -> f64,
) -> bool {
    if finished.len() < k {
        return false;
    }
    finished.sort_by(|a, b| b.0.total_cmp(&a.0));
    let worst_kept = finished[k - 1].0;
    let best_live = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    best_live == f64::NEG_INFINITY || bound(best_live) <= worst_kept
}

/// The best-scoring hypothesis (the first among equals).
fn best(hyps: Vec<(f64, Hypothesis)>) -> Result<Hypothesis> {
    let mut best: Option<(f64, Hypothesis)> = None;
    for (s, h) in hyps {
        if best.as_ref().is_none_or(|(b, _)| s > *b) {
            best = Some((s, h));
        }
    }
    best.map(|(_, h)| h)
        .ok_or_else(|| GenerateError::InvalidOption("beam search produced no hypothesis".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq2seq::{decode, log_softmax_at, Decoding};

    /// A toy decoder whose logits are a function of each row's whole prefix, so a wrong
    /// `reorder` (or a wrong `last`) changes the results.
    struct Toy<F: Fn(&[u32]) -> Vec<f32>> {
        v: usize,
        max: usize,
        f: F,
        rows: Vec<Vec<u32>>,
        out: Vec<f32>,
        bos: u32,
    }

    impl<F: Fn(&[u32]) -> Vec<f32>> Toy<F> {
        fn new(v: usize, max: usize, f: F) -> Self {
            Toy {
                v,
                max,
                f,
                rows: Vec::new(),
                out: Vec::new(),
                bos: 99,
            }
        }
    }

    impl<F: Fn(&[u32]) -> Vec<f32>> Seq2SeqStep for Toy<F> {
        fn vocab_size(&self) -> usize {
            self.v
        }
        fn max_steps(&self) -> usize {
            self.max
        }
        fn encode(&mut self, _src: &[u32]) -> Result<()> {
            Ok(())
        }
        fn start(&mut self, rows: usize) -> Result<()> {
            self.rows = vec![Vec::new(); rows];
            Ok(())
        }
        fn step(&mut self, last: &[u32]) -> Result<&[f32]> {
            assert_eq!(last.len(), self.rows.len());
            self.out.clear();
            for (row, &l) in self.rows.iter_mut().zip(last) {
                if l != self.bos {
                    row.push(l);
                } else {
                    assert!(row.is_empty(), "<bos> fed twice");
                }
                self.out.extend((self.f)(row));
            }
            Ok(&self.out)
        }
        fn reorder(&mut self, parents: &[usize]) -> Result<()> {
            self.rows = parents.iter().map(|&p| self.rows[p].clone()).collect();
            Ok(())
        }
    }

    const EOS: u32 = 2;

    fn opts(decoding: Decoding, max_new_tokens: usize) -> Seq2SeqOptions {
        Seq2SeqOptions {
            decoding,
            max_new_tokens,
            bos: 99,
            eos: EOS,
        }
    }

    fn ln(p: &[f32]) -> Vec<f32> {
        p.iter().map(|x| x.ln()).collect()
    }

    /// a = 0, b = 1, <eos> = 2. "a" is likelier first (0.6), but everything after it is
    /// flat, while "b" is almost surely followed by <eos>: P(b <eos>) = 0.396 beats every
    /// continuation of "a" (≤ 0.6 · 0.34 = 0.204).
    fn trap(prefix: &[u32]) -> Vec<f32> {
        match prefix {
            [] => ln(&[0.6, 0.4, 1e-6]),
            [1, ..] => ln(&[0.005, 0.005, 0.99]),
            _ => ln(&[0.34, 0.33, 0.33]),
        }
    }

    #[test]
    fn beam_finds_the_sequence_greedy_misses() {
        let mut m = Toy::new(3, 8, trap);
        let g = decode(&mut m, &[], &opts(Decoding::Greedy, 8)).unwrap();
        assert_eq!(g.tokens[0], 0, "greedy takes the likelier first token");
        for alpha in [0.0, 1.0] {
            let b = decode(
                &mut m,
                &[],
                &opts(
                    Decoding::Beam {
                        beams: 2,
                        length_penalty: alpha,
                    },
                    8,
                ),
            )
            .unwrap();
            assert_eq!(
                (b.tokens.clone(), b.finished),
                (vec![1], true),
                "α = {alpha}"
            );
            assert!((b.log_prob - (0.4f64 * 0.99).ln()).abs() < 1e-5);
            assert!(b.log_prob > g.log_prob);
        }
        // One beam is greedy.
        let b1 = decode(
            &mut m,
            &[],
            &opts(
                Decoding::Beam {
                    beams: 1,
                    length_penalty: 0.0,
                },
                8,
            ),
        )
        .unwrap();
        assert_eq!(b1.tokens, g.tokens);
    }

    #[test]
    fn streaming_decode_reports_every_token_and_stops_on_break() {
        use crate::sampling::SamplingConfig;
        use std::ops::ControlFlow;
        let cfg = SamplingConfig {
            temperature: 0.8,
            top_k: None,
            top_p: None,
            seed: 7,
        };
        for decoding in [Decoding::Greedy, Decoding::Sample(cfg)] {
            let mut m = Toy::new(5, 12, random(5));
            let whole = decode(&mut m, &[], &opts(decoding, 12)).unwrap();
            let mut seen = Vec::new();
            let streamed = crate::seq2seq::decode_streaming(
                &mut m,
                &[],
                &opts(decoding, 12),
                &mut |id, logits| {
                    assert_eq!(logits.len(), 5);
                    seen.push(id);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
            assert_eq!(streamed, whole, "{decoding:?}");
            let mut expect = whole.tokens.clone();
            if whole.finished {
                expect.push(EOS);
            }
            assert_eq!(
                seen, expect,
                "{decoding:?}: the callback sees each token, <eos> too"
            );
            // Breaking after the first token keeps just that token.
            let cut =
                crate::seq2seq::decode_streaming(&mut m, &[], &opts(decoding, 12), &mut |_, _| {
                    ControlFlow::Break(())
                })
                .unwrap();
            assert!(!cut.finished);
            assert_eq!(cut.tokens.len(), (expect[0] != EOS) as usize);
        }
        let beam = Decoding::Beam {
            beams: 2,
            length_penalty: 1.0,
        };
        let mut m = Toy::new(5, 12, random(5));
        assert!(
            crate::seq2seq::decode_streaming(&mut m, &[], &opts(beam, 12), &mut |_, _| {
                ControlFlow::Continue(())
            })
            .is_err()
        );
    }

    /// Pseudo-random logits determined by the prefix (v tokens, token 2 is <eos>).
    fn random(v: usize) -> impl Fn(&[u32]) -> Vec<f32> {
        move |prefix: &[u32]| {
            let mut h = prefix.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &t| {
                (h ^ (t as u64 + 7)).wrapping_mul(0x100_0000_01b3)
            });
            (0..v)
                .map(|_| {
                    h = h
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((h >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
                })
                .collect()
        }
    }

    /// Best `log P / |y|^α` over every sequence of at most `steps` tokens (ending in <eos>,
    /// or `steps` non-<eos> tokens).
    fn brute_force(
        f: &dyn Fn(&[u32]) -> Vec<f32>,
        v: usize,
        steps: usize,
        alpha: f64,
    ) -> (f64, Vec<u32>) {
        let norm = |lp: f64, len: usize| lp / (len as f64).powf(alpha);
        let mut best = (f64::NEG_INFINITY, Vec::new());
        let mut stack = vec![(Vec::<u32>::new(), 0.0f64)];
        while let Some((prefix, lp)) = stack.pop() {
            let logits = f(&prefix);
            for tok in 0..v as u32 {
                let l = lp + log_softmax_at(&logits, tok as usize);
                let len = prefix.len() + 1;
                if tok == EOS {
                    if norm(l, len) > best.0 {
                        best = (norm(l, len), prefix.clone());
                    }
                } else if len == steps {
                    let mut p = prefix.clone();
                    p.push(tok);
                    if norm(l, len) > best.0 {
                        best = (norm(l, len), p);
                    }
                } else {
                    let mut p = prefix.clone();
                    p.push(tok);
                    stack.push((p, l));
                }
            }
        }
        best
    }

    #[test]
    fn wide_beam_equals_brute_force_and_narrow_beams_never_beat_it() {
        let (v, steps) = (4, 4);
        for seed_shift in 0..6u32 {
            let f = {
                let r = random(v);
                move |p: &[u32]| {
                    let mut q = vec![seed_shift + 10];
                    q.extend_from_slice(p);
                    r(&q)
                }
            };
            for alpha in [0.0, 0.6, 1.0] {
                let (want, seq) = brute_force(&f, v, steps, alpha);
                let norm = |h: &Hypothesis| {
                    let len = h.tokens.len() + h.finished as usize;
                    h.log_prob / (len as f64).powf(alpha)
                };
                // 3 non-<eos> tokens: at most 27 live rows, 108 candidates, all within rank K.
                let mut m = Toy::new(v, 16, &f);
                let o = opts(
                    Decoding::Beam {
                        beams: 128,
                        length_penalty: alpha,
                    },
                    steps,
                );
                let h = decode(&mut m, &[], &o).unwrap();
                assert!(
                    (norm(&h) - want).abs() < 1e-9,
                    "α {alpha}: {h:?} vs {seq:?} {want}"
                );
                assert_eq!(h.tokens, seq);
                for beams in [1, 2, 3] {
                    let o = opts(
                        Decoding::Beam {
                            beams,
                            length_penalty: alpha,
                        },
                        steps,
                    );
                    let h = decode(&mut m, &[], &o).unwrap();
                    assert!(norm(&h) <= want + 1e-12);
                    // The search's running score is the sequence's own log P, recomputed
                    // here from scratch: wrong parents would mix up rows' prefixes.
                    let mut lp = 0.0;
                    for k in 0..h.tokens.len() {
                        lp += log_softmax_at(&f(&h.tokens[..k]), h.tokens[k] as usize);
                    }
                    if h.finished {
                        lp += log_softmax_at(&f(&h.tokens), EOS as usize);
                    }
                    assert!(
                        (h.log_prob - lp).abs() < 1e-9,
                        "beams {beams}: {h:?} vs {lp}"
                    );
                }
            }
        }
    }

    #[test]
    fn stops_at_max_new_tokens_and_refuses_bad_options() {
        // <eos> never likely: every strategy stops at the limit, unfinished.
        let f = |_: &[u32]| ln(&[0.5, 0.5 - 1e-3, 1e-3]);
        let mut m = Toy::new(3, 100, f);
        for d in [
            Decoding::Greedy,
            Decoding::Beam {
                beams: 3,
                length_penalty: 1.0,
            },
            Decoding::Sample(crate::SamplingConfig {
                temperature: 1.0,
                top_k: Some(2),
                top_p: None,
                seed: 3,
            }),
        ] {
            let h = decode(&mut m, &[], &opts(d, 5)).unwrap();
            assert_eq!((h.tokens.len(), h.finished), (5, false), "{d:?}");
        }
        // The model's own limit wins over a larger --max-new-tokens.
        let mut m = Toy::new(3, 4, f);
        let h = decode(&mut m, &[], &opts(Decoding::Greedy, 50)).unwrap();
        assert_eq!(h.tokens.len(), 4);
        assert!(decode(
            &mut m,
            &[],
            &opts(
                Decoding::Beam {
                    beams: 0,
                    length_penalty: 1.0
                },
                5
            )
        )
        .is_err());
        assert!(decode(
            &mut m,
            &[],
            &opts(
                Decoding::Beam {
                    beams: 2,
                    length_penalty: -1.0
                },
                5
            )
        )
        .is_err());
        assert!(decode(&mut m, &[], &opts(Decoding::Greedy, 0)).is_err());
    }
}
