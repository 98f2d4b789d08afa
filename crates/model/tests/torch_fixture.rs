//! Proof against PyTorch: fixtures written by `tools/torch_reference.py` (nanoGPT's model in
//! PyTorch, fp32) hold initial parameters, a batch, the logits, loss, every gradient, and the
//! parameters after three AdamW steps (zero_grad, forward, backward, clip_grad_norm_, step).
//! We load the same parameters, replay the same steps, and compare.

use lmforge_model::io::read_f32_into;
use lmforge_model::{AdamW, AdamWConfig, Gpt, ModelConfig};
use safetensors::tensor::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

const TOL: f32 = 1e-4;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_f32(st: &SafeTensors, file: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("{}: missing {name}", file.display()));
    let shape = t.shape().to_vec();
    let mut v = vec![0.0; shape.iter().product::<usize>().max(1)];
    read_f32_into(st, file, name, &shape, &mut v).unwrap();
    (shape, v)
}

fn read_i64(st: &SafeTensors, name: &str) -> Vec<i64> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::I64, "{name}");
    t.data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// max |got − want| / max(1, |want|), with the worst index.
fn max_err(got: &[f32], want: &[f32]) -> (f32, usize) {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .enumerate()
        .fold((0.0, 0), |acc, (i, e)| if e > acc.0 { (e, i) } else { acc })
}

/// Asserts agreement within [`TOL`]; returns the error for the summary line.
fn assert_close(what: &str, got: &[f32], want: &[f32]) -> f32 {
    let (e, i) = max_err(got, want);
    assert!(
        e <= TOL,
        "{what}: max error {e:e} at {i} (got {}, want {})",
        got[i],
        want[i]
    );
    e
}

fn check_variant(variant: &str) {
    let dir = fixture_dir();
    let jpath = dir.join(format!("{variant}.json"));
    let spath = dir.join(format!("{variant}.safetensors"));
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&jpath)
            .unwrap_or_else(|e| panic!("{}: {e} (run tools/torch_reference.py)", jpath.display())),
    )
    .unwrap();
    let cfg: ModelConfig = serde_json::from_value(meta["config"].clone()).unwrap();
    let (b, t) = (
        meta["batch"]["b"].as_u64().unwrap() as usize,
        meta["batch"]["t"].as_u64().unwrap() as usize,
    );
    let ad = &meta["adamw"];
    let f = |k: &str| ad[k].as_f64().unwrap() as f32;
    let opt_cfg = AdamWConfig {
        beta1: f("beta1"),
        beta2: f("beta2"),
        eps: f("eps"),
        weight_decay: f("weight_decay"),
    };
    let lr = f("lr");
    let clip = meta["grad_clip"].as_f64().unwrap() as f32;
    let steps = meta["steps"].as_u64().unwrap_or(3) as usize;

    let bytes = std::fs::read(&spath).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut model = Gpt::zeroed(cfg.clone(), 0).unwrap();
    lmforge_model::io::load_params(&mut model, &spath).unwrap();
    let idx: Vec<u32> = read_i64(&st, "input.idx")
        .iter()
        .map(|&x| x as u32)
        .collect();
    let targets: Vec<i32> = read_i64(&st, "input.targets")
        .iter()
        .map(|&x| x as i32)
        .collect();
    assert_eq!(
        targets.iter().filter(|&&x| x == -1).count(),
        1,
        "{variant}: fixture should ignore one target"
    );

    // forward: logits (a forward without targets), then the loss through the fused
    // classifier in chunks of 3 rows (not dividing b·t) and the gradients from it
    model.forward(&idx, None, b, t).unwrap();
    let (lshape, want_logits) = read_f32(&st, &spath, "expected.logits");
    assert_eq!(lshape, vec![b, t, cfg.vocab_size]);
    let e_logits = assert_close(&format!("{variant} logits"), model.logits(), &want_logits);
    model.set_classifier_chunk(3);
    let loss = model.forward(&idx, Some(&targets), b, t).unwrap().unwrap();
    let want_loss = read_f32(&st, &spath, "expected.loss").1[0];
    let e_loss = assert_close(&format!("{variant} loss"), &[loss], &[want_loss]);

    // backward: every gradient
    model.zero_grad();
    model.backward().unwrap();
    let names: Vec<String> = model
        .named_parameters()
        .map(|(n, _, _)| n.to_string())
        .collect();
    let mut e_grad = 0.0f32;
    for name in &names {
        let (_, want) = read_f32(&st, &spath, &format!("grad.{name}"));
        let what = format!("{variant} grad.{name}");
        e_grad = e_grad.max(assert_close(&what, model.grad(name).unwrap(), &want));
    }

    // three optimizer steps, replayed from the initial parameters
    let mut model = Gpt::zeroed(cfg, 0).unwrap();
    lmforge_model::io::load_params(&mut model, &spath).unwrap();
    let mut opt = AdamW::new(&model, opt_cfg);
    let mut e_step = 0.0f32;
    for step in 1..=steps {
        model.zero_grad();
        model.forward(&idx, Some(&targets), b, t).unwrap();
        model.backward().unwrap();
        let norm = model.clip_grad_norm(clip);
        let want_norm = read_f32(&st, &spath, &format!("grad_norm.step{step}")).1[0];
        assert_close(
            &format!("{variant} grad_norm.step{step}"),
            &[norm],
            &[want_norm],
        );
        opt.step(&mut model, lr).unwrap();
        for name in &names {
            let (_, want) = read_f32(&st, &spath, &format!("step{step}.{name}"));
            let what = format!("{variant} step{step}.{name}");
            e_step = e_step.max(assert_close(&what, model.param(name).unwrap(), &want));
        }
    }
    eprintln!(
        "{variant}: max error logits {e_logits:.1e}, loss {e_loss:.1e}, grads {e_grad:.1e}, \
         params after {steps} steps {e_step:.1e}"
    );
}

#[test]
fn learned_bias_matches_pytorch() {
    check_variant("learned_bias");
}

#[test]
fn learned_nobias_matches_pytorch() {
    check_variant("learned_nobias");
}

#[test]
fn rope_matches_pytorch() {
    check_variant("rope");
}

#[test]
fn sinusoidal_matches_pytorch() {
    check_variant("sinusoidal");
}

#[test]
fn post_ln_relu_sinusoidal_rope_without_qkv_bias_matches_pytorch() {
    check_variant("post_relu_sinrope");
}

#[test]
fn post_ln_with_only_a_qkv_bias_matches_pytorch() {
    check_variant("post_learned");
}

#[test]
fn untied_head_with_a_bias_matches_pytorch() {
    check_variant("head_bias");
}
