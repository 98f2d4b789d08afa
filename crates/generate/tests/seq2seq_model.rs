//! Decoding and evaluation through a real (randomly initialised) encoder–decoder checkpoint:
//! beam search over the cached decoder against brute force over the full teacher-forced
//! forward, batch-size-independent loss, and the source checks.

use std::path::{Path, PathBuf};

use lmforge_data::pairs::{prepare_pairs, PairDataDir, PairInput, PairPrepareOptions};
use lmforge_data::TokenizerChoice;
use lmforge_generate::seq2seq::{log_softmax_at, Decoding, Seq2SeqStep};
use lmforge_generate::seq2seq_ckpt::{evaluate_pairs, ModelStep, Seq2SeqCheckpoint};
use lmforge_model::seq2seq::{io, Seq2seq, Seq2seqBatch, Seq2seqConfig};
use lmforge_tokenizer::TrainKind;

/// A pair folder of word reversals and a random model saved as a checkpoint beside it.
fn checkpoint(dir: &Path) -> (PathBuf, PathBuf) {
    let src: Vec<&str> = vec!["ab ba", "ba", "aab", "b a b", "ab", "bb aa", "a", "ba ab"];
    let tgt: Vec<String> = src
        .iter()
        .map(|l| l.split(' ').rev().collect::<Vec<_>>().join(" "))
        .collect();
    std::fs::write(dir.join("s.txt"), src.join("\n")).unwrap();
    std::fs::write(dir.join("t.txt"), tgt.join("\n")).unwrap();
    let data = dir.join("data");
    let meta = prepare_pairs(&PairPrepareOptions {
        input: PairInput::Files {
            src: dir.join("s.txt"),
            tgt: dir.join("t.txt"),
        },
        tokenizer: TokenizerChoice::Train {
            kind: TrainKind::Char,
            vocab_size: None,
        },
        tgt_tokenizer: None,
        out: data.clone(),
        val_fraction: 0.5,
        src_block_size: 8,
        tgt_block_size: 6,
        lossy: false,
    })
    .unwrap()
    .meta;
    let cfg = Seq2seqConfig::new(meta.src.vocab_size, meta.tgt.vocab_size, 1, 2, 16, 8, 6);
    let mut model = Seq2seq::new(cfg, 7).unwrap();
    // Fresh weights (std 0.02) barely let the output depend on the input; larger ones make
    // every earlier token matter, so a decoder that mixed up its beams' caches would fail.
    for p in model.params_mut() {
        *p *= 12.0;
    }
    let ckpt = dir.join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    io::save_model_dir(&model, &ckpt).unwrap();
    for f in ["pairs.json", meta.src.tokenizer.file.as_str()] {
        std::fs::copy(data.join(f), ckpt.join(f)).unwrap();
    }
    (ckpt, data)
}

/// Next-token log-probabilities after `<bos> + prefix`, from the full (uncached) forward.
fn full_forward_logp(m: &mut Seq2seq, src: &[u32], bos: u32, prefix: &[u32]) -> Vec<f64> {
    let mut tgt_in = vec![bos];
    tgt_in.extend_from_slice(prefix);
    let t = tgt_in.len();
    let tgt_out = vec![0i32; t];
    let v = m.config().tgt_vocab_size;
    let logits = m
        .logits(&Seq2seqBatch {
            batch: 1,
            src_len: src.len(),
            tgt_len: t,
            src,
            tgt_in: &tgt_in,
            tgt_out: &tgt_out,
            src_pad_id: 0,
        })
        .unwrap();
    let row = &logits[(t - 1) * v..t * v];
    (0..v).map(|i| log_softmax_at(row, i)).collect()
}

#[test]
fn wide_beam_over_the_cached_decoder_equals_brute_force_over_the_full_forward() {
    let d = tempfile::tempdir().unwrap();
    let (ckpt_dir, _) = checkpoint(d.path());
    let mut ckpt = Seq2SeqCheckpoint::load(&ckpt_dir).unwrap();
    let (src, _) = ckpt.encode_source("ab ba").unwrap();
    let sp = ckpt.pairs.tgt.specials;
    let v = ckpt.model.config().tgt_vocab_size;
    let steps = 3;
    // α = 2 favours full-length outputs, so the third token's logits (after a reorder) count.
    for alpha in [0.0, 2.0] {
        let norm = |lp: f64, len: usize| lp / (len as f64).powf(alpha);
        // Brute force: every sequence of ≤ 3 tokens ending in <eos>, or 3 non-<eos> tokens.
        let mut best = (f64::NEG_INFINITY, Vec::new(), 0.0);
        let mut stack = vec![(Vec::<u32>::new(), 0.0)];
        while let Some((prefix, lp)) = stack.pop() {
            let logp = full_forward_logp(&mut ckpt.model, &src, sp.bos, &prefix);
            for tok in 0..v as u32 {
                let l = lp + logp[tok as usize];
                let mut p = prefix.clone();
                if tok == sp.eos || prefix.len() + 1 == steps {
                    if tok != sp.eos {
                        p.push(tok);
                    }
                    if norm(l, prefix.len() + 1) > best.0 {
                        best = (norm(l, prefix.len() + 1), p, l);
                    }
                } else {
                    p.push(tok);
                    stack.push((p, l));
                }
            }
        }
        let beams = v * v * v + 1;
        let opts = ckpt.options(
            Decoding::Beam {
                beams,
                length_penalty: alpha,
            },
            steps,
        );
        let h = ckpt.decode_ids(&src, &opts).unwrap();
        assert_eq!(h.tokens, best.1, "α {alpha}");
        assert!(
            (h.log_prob - best.2).abs() < 1e-4,
            "α {alpha}: {h:?} vs {best:?}"
        );
        if alpha > 0.0 {
            assert_eq!(
                h.tokens.len(),
                steps,
                "α = 2 should pick a full-length output"
            );
        }
    }
    // Greedy through the cache picks the full forward's argmax at every step.
    let g = ckpt
        .decode_ids(&src, &ckpt.options(Decoding::Greedy, 5))
        .unwrap();
    for k in 0..g.tokens.len() {
        let logp = full_forward_logp(&mut ckpt.model, &src, sp.bos, &g.tokens[..k]);
        let argmax = (0..v).max_by(|&a, &b| logp[a].total_cmp(&logp[b])).unwrap();
        assert_eq!(g.tokens[k] as usize, argmax, "step {k}");
    }
}

#[test]
fn pair_loss_does_not_depend_on_batching_and_reports_are_consistent() {
    let d = tempfile::tempdir().unwrap();
    let (ckpt_dir, data) = checkpoint(d.path());
    let mut ckpt = Seq2SeqCheckpoint::load(&ckpt_dir).unwrap();
    let data = PairDataDir::open(&data).unwrap();
    let mut none = |_: usize, _: usize| {};
    let one = evaluate_pairs(&mut ckpt, &data.train, 1, 0, Decoding::Greedy, &mut none).unwrap();
    let all = evaluate_pairs(&mut ckpt, &data.train, 3, 2, Decoding::Greedy, &mut none).unwrap();
    assert!(
        (one.loss - all.loss).abs() < 1e-5,
        "{} vs {}",
        one.loss,
        all.loss
    );
    assert!((all.perplexity - all.loss.exp()).abs() < 1e-9);
    // Target positions: every target's characters plus one <eos> each.
    let want: usize = (0..data.train.len())
        .map(|i| data.train.tgt_len(i) + 1)
        .sum();
    assert_eq!(all.target_tokens, want);
    assert_eq!((one.decoded, all.decoded), (0, 2));
    assert!(all.bleu_line.starts_with("BLEU = "));
}

#[test]
fn sources_are_checked_and_cut_with_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let (ckpt_dir, _) = checkpoint(d.path());
    let ckpt = Seq2SeqCheckpoint::load(&ckpt_dir).unwrap();
    let (ids, w) = ckpt.encode_source("ab ab ab ab").unwrap();
    assert_eq!(ids.len(), 8);
    assert!(w.unwrap().contains("11 tokens; only the first 8"));
    assert!(ckpt.encode_source("").is_err());
    let opts = ckpt.options(
        Decoding::Beam {
            beams: 3,
            length_penalty: 1.0,
        },
        5,
    );
    let (text, warnings) = ckpt.translate("ab", &opts).unwrap();
    assert!(warnings.is_empty());
    let (src, _) = ckpt.encode_source("ab").unwrap();
    let h = ckpt.decode_ids(&src, &opts).unwrap();
    assert!(h.tokens.len() <= 5);
    assert_eq!(text, ckpt.target_text(&h.tokens).unwrap());
}

#[test]
fn reorder_moves_each_rows_cache_with_it() {
    let d = tempfile::tempdir().unwrap();
    let (ckpt_dir, _) = checkpoint(d.path());
    let mut ckpt = Seq2SeqCheckpoint::load(&ckpt_dir).unwrap();
    let (src, _) = ckpt.encode_source("ab ba").unwrap();
    let bos = ckpt.pairs.tgt.specials.bos;
    let v = ckpt.model.config().tgt_vocab_size;
    // Rows 0, 1, 2 read tokens 3, 4, 5; then row r continues old row parents[r] with 6.
    let parents = [2usize, 0, 2];
    let logits = {
        let mut step = ModelStep::new(&ckpt.model);
        step.encode(&src).unwrap();
        step.start(3).unwrap();
        step.step(&[bos; 3]).unwrap();
        step.step(&[3, 4, 5]).unwrap();
        step.reorder(&parents).unwrap();
        step.step(&[6, 6, 6]).unwrap().to_vec()
    };
    for (r, &p) in parents.iter().enumerate() {
        let want = full_forward_logp(&mut ckpt.model, &src, bos, &[3 + p as u32, 6]);
        let got: Vec<f64> = (0..v)
            .map(|i| log_softmax_at(&logits[r * v..(r + 1) * v], i))
            .collect();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-4, "row {r} (parent {p}): {a} vs {b}");
        }
    }
}
