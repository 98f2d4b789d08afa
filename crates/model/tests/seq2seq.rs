//! The encoder–decoder beyond the PyTorch fixtures: whole-model gradients by finite
//! differences, padding that changes nothing for the real tokens, the cached decoder against
//! the training forward (one beam and several with reordering), learning, and bad input.

use lmforge_model::seq2seq::{Norm, Seq2seq, Seq2seqBatch, Seq2seqConfig};
use lmforge_model::{Activation, PosEncoding};

fn cfg(norm: Norm, pos: PosEncoding, tie: bool) -> Seq2seqConfig {
    let mut c = Seq2seqConfig::new(11, 13, 2, 2, 8, 6, 7);
    c.norm = norm;
    c.pos_encoding = pos;
    c.tie_embeddings = tie;
    c.activation = Activation::GeluTanh;
    c
}

/// A model whose weights are 4× the init (attention far from uniform).
fn model(c: Seq2seqConfig, seed: u64) -> Seq2seq {
    let mut m = Seq2seq::new(c, seed).unwrap();
    let tensors = m.layout().tensors.clone();
    for t in tensors.iter().filter(|t| !t.name.contains(".ln_")) {
        m.params_mut()[t.range()].iter_mut().for_each(|x| *x *= 4.0);
    }
    m
}

struct Pairs {
    b: usize,
    s: usize,
    t: usize,
    src: Vec<u32>,
    tgt_in: Vec<u32>,
    tgt_out: Vec<i32>,
}

impl Pairs {
    fn batch(&self) -> Seq2seqBatch<'_> {
        Seq2seqBatch {
            batch: self.b,
            src_len: self.s,
            tgt_len: self.t,
            src: &self.src,
            tgt_in: &self.tgt_in,
            tgt_out: &self.tgt_out,
            src_pad_id: 0,
        }
    }
}

/// Pad `pairs` (source, target) to one batch: `<bos>` = 1, `<eos>` = 2, pad = 0.
fn pad(pairs: &[(Vec<u32>, Vec<u32>)]) -> Pairs {
    let s = pairs.iter().map(|p| p.0.len()).max().unwrap();
    let t = pairs.iter().map(|p| p.1.len() + 1).max().unwrap();
    let mut out = Pairs {
        b: pairs.len(),
        s,
        t,
        src: vec![],
        tgt_in: vec![],
        tgt_out: vec![],
    };
    for (src, tgt) in pairs {
        out.src
            .extend(src.iter().copied().chain(std::iter::repeat(0)).take(s));
        let tin = std::iter::once(1).chain(tgt.iter().copied());
        out.tgt_in.extend(tin.chain(std::iter::repeat(0)).take(t));
        let tout = tgt.iter().map(|&x| x as i32).chain(std::iter::once(2));
        out.tgt_out
            .extend(tout.chain(std::iter::repeat(-1)).take(t));
    }
    out
}

fn sample_pairs() -> Vec<(Vec<u32>, Vec<u32>)> {
    vec![
        (vec![3, 4, 5, 6, 7, 8], vec![8, 7, 6, 5, 4, 3]),
        (vec![9, 10, 3], vec![3, 10]),
        (vec![5, 5, 4, 3], vec![12, 11, 4]),
    ]
}

#[test]
fn whole_model_gradients_match_finite_differences() {
    for (norm, pos, tie) in [
        (Norm::Pre, PosEncoding::Learned, true),
        (Norm::Post, PosEncoding::Sinusoidal, false),
        (Norm::Post, PosEncoding::Rope, false),
        (Norm::Pre, PosEncoding::SinusoidalRope, true),
    ] {
        let mut m = model(cfg(norm, pos, tie), 7);
        let p = pad(&sample_pairs());
        m.zero_grad();
        m.forward(&p.batch()).unwrap();
        m.backward().unwrap();
        let grads = m.grads().to_vec();
        let n = m.num_params();
        let eps = 1e-2f32;
        let mut checked = 0;
        for i in (0..n).step_by(n / 97 + 1) {
            let orig = m.params()[i];
            m.params_mut()[i] = orig + eps;
            let fp = m.loss(&p.batch()).unwrap() as f64;
            m.params_mut()[i] = orig - eps;
            let fm = m.loss(&p.batch()).unwrap() as f64;
            m.params_mut()[i] = orig;
            let fd = (fp - fm) / (2.0 * eps as f64);
            let an = grads[i] as f64;
            assert!(
                (fd - an).abs() <= 5e-3 * (1.0 + fd.abs().max(an.abs())),
                "{norm:?} {pos:?} param {i}: fd {fd} vs {an}"
            );
            checked += 1;
        }
        assert!(checked > 90);
    }
}

#[test]
fn padding_changes_nothing_for_real_tokens() {
    let mut m = model(cfg(Norm::Post, PosEncoding::Learned, true), 3);
    let pairs = sample_pairs();
    let batch = pad(&pairs);
    let all = m.logits(&batch.batch()).unwrap().to_vec();
    let v = 13;
    for (i, pair) in pairs.iter().enumerate() {
        let one = pad(std::slice::from_ref(pair));
        let alone = m.logits(&one.batch()).unwrap().to_vec();
        for r in 0..one.t {
            let (a, b) = (
                &alone[r * v..(r + 1) * v],
                &all[(i * batch.t + r) * v..][..v],
            );
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-5, "pair {i} row {r}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn cached_decoder_matches_the_training_forward() {
    for (norm, pe) in [
        (Norm::Pre, PosEncoding::Learned),
        (Norm::Post, PosEncoding::Sinusoidal),
        (Norm::Post, PosEncoding::Rope),
        (Norm::Pre, PosEncoding::SinusoidalRope),
    ] {
        let mut m = model(cfg(norm, pe, false), 5);
        let src = vec![3u32, 9, 4, 7, 10];
        // three histories; after 3 steps beam 0 continues beam 2, beam 1 beam 0, beam 2 beam 2
        let hist: [Vec<u32>; 3] = [vec![1, 4, 5, 6], vec![1, 7, 8, 3], vec![1, 12, 3, 3]];
        let full = |m: &mut Seq2seq, h: &[u32]| {
            let p = pad(&[(src.clone(), h[1..].to_vec())]);
            m.logits(&p.batch()).unwrap().to_vec()
        };
        let want: Vec<Vec<f32>> = hist.iter().map(|h| full(&mut m, h)).collect();
        let parents = [2usize, 0, 2];
        let tail = [11u32, 5, 9];
        let after: Vec<Vec<f32>> = (0..3)
            .map(|i| {
                let mut h = hist[parents[i]][..3].to_vec();
                h.push(tail[i]);
                full(&mut m, &h)
            })
            .collect();
        let v = 13;
        let mut d = m.decoder();
        d.encode(&src).unwrap();
        d.start(3);
        for pos in 0..4 {
            let toks: Vec<u32> = if pos < 3 {
                hist.iter().map(|h| h[pos]).collect()
            } else {
                tail.to_vec()
            };
            if pos == 3 {
                d.reorder(&parents).unwrap();
            }
            let got = d.step(&toks).unwrap().to_vec();
            for beam in 0..3 {
                let w = if pos < 3 { &want[beam] } else { &after[beam] };
                let (g, w) = (&got[beam * v..(beam + 1) * v], &w[pos * v..(pos + 1) * v]);
                for (x, y) in g.iter().zip(w) {
                    assert!(
                        (x - y).abs() < 1e-5,
                        "{norm:?} {pe:?}: pos {pos} beam {beam}: {x} vs {y}"
                    );
                }
            }
        }
        assert_eq!(d.position(), 4);
    }
}

#[test]
fn learns_to_reverse() {
    let mut c = Seq2seqConfig::new(8, 8, 1, 2, 32, 4, 5);
    c.share_embeddings = true;
    let mut m = Seq2seq::new(c, 1).unwrap();
    let mut opt = lmforge_model::AdamW::for_tensors(
        m.backend(),
        &m.layout().tensors.clone(),
        Default::default(),
    );
    let dev = lmforge_model::Cpu::new();
    let mut rng = lmforge_model::rng::Rng::new(9);
    let mut first = 0.0;
    let mut last = 0.0;
    for step in 0..300 {
        let pairs: Vec<_> = (0..8)
            .map(|_| {
                let n = 1 + (rng.next_u64() % 4) as usize;
                let s: Vec<u32> = (0..n).map(|_| 3 + (rng.next_u64() % 5) as u32).collect();
                let t: Vec<u32> = s.iter().rev().copied().collect();
                (s, t)
            })
            .collect();
        let p = pad(&pairs);
        m.zero_grad();
        let loss = m.forward(&p.batch()).unwrap();
        m.backward().unwrap();
        m.clip_grad_norm(1.0);
        let (pp, g) = m.params_and_grads();
        opt.step_flat(&dev, pp, g, 3e-3).unwrap();
        if step == 0 {
            first = loss;
        }
        if step >= 280 {
            last += loss / 20.0;
        }
    }
    assert!(
        last < first * 0.45,
        "loss {first} -> mean of the last 20 steps {last}"
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut m = model(cfg(Norm::Pre, PosEncoding::Learned, true), 1);
    let p = pad(&sample_pairs());
    let mut b = p.batch();
    b.src_len = 5; // not what the data holds
    assert!(m.forward(&b).unwrap_err().to_string().contains("ids"));
    let long = pad(&[(vec![3; 7], vec![4])]);
    assert!(m
        .forward(&long.batch())
        .unwrap_err()
        .to_string()
        .contains("src_block_size"));
    let bad_id = pad(&[(vec![3, 11], vec![4])]);
    assert!(m
        .forward(&bad_id.batch())
        .unwrap_err()
        .to_string()
        .contains("vocab"));
    let all_pad = pad(&[(vec![0, 0], vec![4])]);
    assert!(m
        .forward(&all_pad.batch())
        .unwrap_err()
        .to_string()
        .contains("padding"));
    assert!(m.backward().is_err());
    let mut d = m.decoder();
    assert!(d.step(&[1]).is_err());
    assert!(d.encode(&[]).is_err());
    assert!(d.encode(&[3; 7]).is_err());
    d.encode(&[3, 4]).unwrap();
    d.start(2);
    assert!(d.step(&[1]).is_err());
    assert!(d.step(&[1, 13]).is_err());
    assert!(d.reorder(&[0, 2]).is_err());
    for _ in 0..7 {
        d.step(&[1, 1]).unwrap();
    }
    assert!(d
        .step(&[1, 1])
        .unwrap_err()
        .to_string()
        .contains("tgt_block_size"));
}

#[test]
fn backward_scaled_accumulates_like_one_backward() {
    let mut m = model(cfg(Norm::Pre, PosEncoding::Learned, true), 2);
    let p = pad(&sample_pairs());
    m.zero_grad();
    m.forward(&p.batch()).unwrap();
    m.backward().unwrap();
    let once = m.grads().to_vec();
    m.zero_grad();
    for _ in 0..2 {
        m.forward(&p.batch()).unwrap();
        m.backward_scaled(0.5).unwrap();
    }
    for (a, b) in m.grads().iter().zip(&once) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // a loss() in between stages nothing: backward after it is an error
    m.loss(&p.batch()).unwrap();
    assert!(m.backward().is_err());
}

#[test]
fn dropout_is_seeded_off_in_eval_and_its_gradients_match_finite_differences() {
    let mut c = cfg(Norm::Pre, PosEncoding::Learned, false);
    let plain = model(c.clone(), 7);
    c.dropout = 0.2;
    let p = pad(&sample_pairs());
    let mut m = model(c.clone(), 7);
    m.params_mut().copy_from_slice(plain.params());
    let mut plain = plain;
    let want = plain.loss(&p.batch()).unwrap();
    // training: masks change the loss, and each pass draws new ones
    let (l1, l2) = (m.loss(&p.batch()).unwrap(), m.loss(&p.batch()).unwrap());
    assert!(
        (l1 - want).abs() > 1e-4,
        "dropout changed nothing: {l1} vs {want}"
    );
    assert_ne!(l1, l2, "two passes drew the same masks");
    // same seed, same pass → same numbers
    let mut twin = model(c.clone(), 7);
    twin.params_mut().copy_from_slice(plain.params());
    assert_eq!(twin.loss(&p.batch()).unwrap(), l1);
    // evaluation: exactly the model without dropout
    m.set_training(false);
    assert_eq!(m.loss(&p.batch()).unwrap(), want);
    for norm in [Norm::Pre, Norm::Post] {
        c.norm = norm;
        let mut m = model(c.clone(), 11);
        m.set_dropout_passes(0);
        m.zero_grad();
        m.forward(&p.batch()).unwrap();
        m.backward().unwrap();
        let grads = m.grads().to_vec();
        let n = m.num_params();
        let eps = 1e-2f32;
        let loss_at = |m: &mut Seq2seq| {
            m.set_dropout_passes(0); // the same masks as the analytic pass
            m.loss(&p.batch()).unwrap() as f64
        };
        // a sample of every tensor, plus the embedding rows of tokens in the batch (their
        // gradients pass through the embedding dropout)
        let mut idx: Vec<usize> = (0..n).step_by(n / 61 + 1).collect();
        for t in m
            .layout()
            .tensors
            .iter()
            .filter(|t| t.name.ends_with("embed.weight"))
        {
            idx.extend(t.range().start + 3 * 8..t.range().start + 5 * 8);
        }
        for i in idx {
            let orig = m.params()[i];
            m.params_mut()[i] = orig + eps;
            let fp = loss_at(&mut m);
            m.params_mut()[i] = orig - eps;
            let fm = loss_at(&mut m);
            m.params_mut()[i] = orig;
            let fd = (fp - fm) / (2.0 * eps as f64);
            let an = grads[i] as f64;
            assert!(
                (fd - an).abs() <= 5e-3 * (1.0 + fd.abs().max(an.abs())),
                "{norm:?} dropout param {i}: fd {fd} vs {an}"
            );
        }
    }
}

#[test]
fn cached_decoder_ignores_dropout() {
    let mut c = cfg(Norm::Post, PosEncoding::Rope, true);
    c.dropout = 0.3;
    let mut m = model(c, 5);
    let src = vec![3u32, 9, 4, 7, 10];
    let p = pad(&[(src.clone(), vec![4, 5])]);
    m.set_training(false);
    let want = m.logits(&p.batch()).unwrap()[..13].to_vec();
    m.set_training(true);
    let mut d = m.decoder();
    d.encode(&src).unwrap();
    d.start(1);
    let got = d.step(&[1]).unwrap();
    for (x, y) in got.iter().zip(&want) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}
