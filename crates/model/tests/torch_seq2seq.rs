//! Proof of the encoder–decoder against PyTorch: fixtures written by
//! `tools/torch_seq2seq_reference.py` (the same model from `torch.nn` pieces, fp32) hold the
//! initial parameters, a padded batch of pairs, the logits, the loss, every gradient, and the
//! parameters after three AdamW steps (zero_grad, forward, backward, clip_grad_norm_, step).
//! We load the same parameters, replay the same steps, and compare within 1e-4.

use lmforge_model::io::read_f32_into;
use lmforge_model::seq2seq::{Seq2seq, Seq2seqBatch, Seq2seqConfig};
use lmforge_model::{AdamW, AdamWConfig};
use safetensors::tensor::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

const TOL: f32 = 1e-4;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_f32(st: &SafeTensors, file: &Path, name: &str) -> Vec<f32> {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("{}: missing {name}", file.display()));
    let shape = t.shape().to_vec();
    let mut v = vec![0.0; shape.iter().product::<usize>().max(1)];
    read_f32_into(st, file, name, &shape, &mut v).unwrap();
    v
}

fn read_ids(st: &SafeTensors, name: &str) -> Vec<u32> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::I64, "{name}");
    t.data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
        .collect()
}

/// max |got − want| / max(1, |want|), asserted ≤ [`TOL`]; returns it for the summary.
fn assert_close(what: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (e, i) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .enumerate()
        .fold(
            (0.0f32, 0),
            |acc, (i, e)| if e > acc.0 { (e, i) } else { acc },
        );
    assert!(
        e <= TOL,
        "{what}: max error {e:e} at {i} (got {}, want {})",
        got[i],
        want[i]
    );
    e
}

fn load(cfg: &Seq2seqConfig, st: &SafeTensors, file: &Path, prefix: &str) -> Seq2seq {
    let mut m = Seq2seq::zeroed(cfg.clone()).unwrap();
    let tensors = m.layout().tensors.clone();
    for t in &tensors {
        let v = read_f32(st, file, &format!("{prefix}{}", t.name));
        m.params_mut()[t.range()].copy_from_slice(&v);
    }
    m
}

fn check_variant(variant: &str) {
    let dir = fixture_dir();
    let jpath = dir.join(format!("{variant}.json"));
    let spath = dir.join(format!("{variant}.safetensors"));
    let text = std::fs::read_to_string(&jpath).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tools/torch_seq2seq_reference.py)",
            jpath.display()
        )
    });
    let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cfg: Seq2seqConfig = serde_json::from_value(meta["config"].clone()).unwrap();
    let dim = |k: &str| meta["batch"][k].as_u64().unwrap() as usize;
    let (b, s, t, pad) = (dim("b"), dim("s"), dim("t"), dim("pad_id") as u32);
    let ad = &meta["adamw"];
    let f = |k: &str| ad[k].as_f64().unwrap() as f32;
    let opt_cfg = AdamWConfig {
        beta1: f("beta1"),
        beta2: f("beta2"),
        eps: f("eps"),
        weight_decay: f("weight_decay"),
    };
    let (lr, clip) = (f("lr"), meta["grad_clip"].as_f64().unwrap() as f32);
    let bytes = std::fs::read(&spath).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (src, tgt_in, tgt_out) = (
        read_ids(&st, "input.src"),
        read_ids(&st, "input.tgt_in"),
        read_ids(&st, "input.tgt_out"),
    );
    // PyTorch ignores the padding id in the targets; we ignore -1
    let tgt_out: Vec<i32> = tgt_out
        .iter()
        .map(|&x| if x == pad { -1 } else { x as i32 })
        .collect();
    assert!(
        src.contains(&pad) && tgt_out.contains(&-1),
        "{variant}: the batch must be padded"
    );
    let batch = Seq2seqBatch {
        batch: b,
        src_len: s,
        tgt_len: t,
        src: &src,
        tgt_in: &tgt_in,
        tgt_out: &tgt_out,
        src_pad_id: pad,
    };

    let mut m = load(&cfg, &st, &spath, "");
    let e_logits = assert_close(
        &format!("{variant} logits"),
        m.logits(&batch).unwrap(),
        &read_f32(&st, &spath, "expected.logits"),
    );
    m.zero_grad();
    let loss = m.forward(&batch).unwrap();
    let e_loss = assert_close(
        &format!("{variant} loss"),
        &[loss],
        &read_f32(&st, &spath, "expected.loss"),
    );
    m.backward().unwrap();
    let names: Vec<String> = m.layout().tensors.iter().map(|t| t.name.clone()).collect();
    let mut e_grad = 0.0f32;
    for name in &names {
        let want = read_f32(&st, &spath, &format!("grad.{name}"));
        e_grad = e_grad.max(assert_close(
            &format!("{variant} grad.{name}"),
            m.grad(name).unwrap(),
            &want,
        ));
    }

    let mut m = load(&cfg, &st, &spath, "");
    let mut opt = AdamW::for_tensors(m.backend(), &m.layout().tensors.clone(), opt_cfg);
    let mut e_step = 0.0f32;
    for step in 1..=3 {
        m.zero_grad();
        m.forward(&batch).unwrap();
        m.backward().unwrap();
        let norm = m.clip_grad_norm(clip);
        let want_norm = read_f32(&st, &spath, &format!("grad_norm.step{step}"));
        assert_close(
            &format!("{variant} grad_norm.step{step}"),
            &[norm],
            &want_norm,
        );
        let dev = lmforge_model::Cpu::new();
        let (p, g) = m.params_and_grads();
        opt.step_flat(&dev, p, g, lr).unwrap();
        for name in &names {
            let want = read_f32(&st, &spath, &format!("step{step}.{name}"));
            e_step = e_step.max(assert_close(
                &format!("{variant} step{step}.{name}"),
                m.param(name).unwrap(),
                &want,
            ));
        }
    }
    eprintln!(
        "{variant}: max error logits {e_logits:.1e}, loss {e_loss:.1e}, grads {e_grad:.1e}, \
         params after 3 steps {e_step:.1e}"
    );
}

#[test]
fn pre_ln_learned_tied_matches_pytorch() {
    check_variant("s2s_pre");
}

#[test]
fn post_ln_sinusoidal_untied_matches_pytorch() {
    check_variant("s2s_post");
}

#[test]
fn shared_embeddings_no_bias_matches_pytorch() {
    check_variant("s2s_shared");
}

#[test]
fn post_ln_relu_learned_matches_pytorch() {
    check_variant("s2s_post_relu");
}

#[test]
fn post_ln_relu_sinusoidal_rope_matches_pytorch() {
    check_variant("s2s_rope");
}
