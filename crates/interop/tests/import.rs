//! Imports every fixture `tools/make_interop_fixtures.py` wrote (random GPT-2 models in the
//! layouts people have) and checks the logits against PyTorch's on the same batch.

use std::path::{Path, PathBuf};

use lmforge_checkpoint::Checkpoint;
use lmforge_interop::import::{self, ImportOptions, Imported, Source};
use lmforge_model::{Activation, Gpt};
use lmforge_tokenizer::{train, TrainKind};
use safetensors::SafeTensors;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A small tokenizer (fewer ids than the fixtures' 64) saved to `dir`.
fn small_tokenizer(dir: &Path) -> String {
    let tok = train(TrainKind::Char, None, &["abcdefghij klmnop\nqrstuvwxyz"]).unwrap();
    let path = dir.join("tokenizer.json");
    tok.save(&path).unwrap();
    path.display().to_string()
}

/// The fixed batch and the reference logits of fixture `name`.
fn reference(name: &str) -> (Vec<u32>, Vec<f32>, usize, usize) {
    let bytes = std::fs::read(fixtures().join("logits.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let idx = st.tensor("idx").unwrap();
    let (b, t) = (idx.shape()[0], idx.shape()[1]);
    let ids = idx
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    let logits = st
        .tensor(&format!("{name}.logits"))
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (ids, logits, b, t)
}

fn max_diff(model: &mut Gpt, name: &str) -> f32 {
    let (idx, want, b, t) = reference(name);
    model.set_training(false);
    model.forward(&idx, None, b, t).unwrap();
    let got = model.logits();
    assert_eq!(got.len(), want.len(), "{name}: logits size");
    got.iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn import(spec: &str, opts: &ImportOptions) -> Imported {
    import::load(&Source::parse(spec).unwrap(), opts).unwrap()
}

fn opts(tok: &str) -> ImportOptions {
    ImportOptions {
        tokenizer: Some(tok.to_string()),
        n_head: None,
    }
}

#[test]
fn every_fixture_imports_with_pytorchs_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = small_tokenizer(tmp.path());
    let f = fixtures();
    let cases = [
        (
            "hf_tied_gelu_new",
            format!("hf:{}", f.join("hf_tied_gelu_new").display()),
            Activation::GeluTanh,
            true,
        ),
        (
            "hf_untied_gelu_bin",
            f.join("hf_untied_gelu_bin").display().to_string(),
            Activation::Gelu,
            false,
        ),
        (
            "hf_noprefix_sharded",
            f.join("hf_noprefix_sharded").display().to_string(),
            Activation::GeluTanh,
            true,
        ),
        (
            "hf_bf16_bin",
            f.join("hf_bf16_bin").display().to_string(),
            Activation::GeluTanh,
            true,
        ),
        (
            "hf_fp16",
            f.join("hf_fp16").display().to_string(),
            Activation::GeluTanh,
            true,
        ),
        (
            "nanogpt",
            f.join("nanogpt/ckpt.pt").display().to_string(),
            Activation::Gelu,
            true,
        ),
    ];
    for (name, spec, act, tied) in cases {
        let mut im = import(&spec, &opts(&tok));
        let cfg = im.model.config().clone();
        assert_eq!(cfg.activation, act, "{name}");
        assert_eq!(cfg.tie_embeddings, tied, "{name}");
        assert_eq!(
            (
                cfg.vocab_size,
                cfg.n_layer,
                cfg.n_head,
                cfg.n_embd,
                cfg.block_size
            ),
            (64, 2, 2, 24, 16),
            "{name}"
        );
        let d = max_diff(&mut im.model, name);
        assert!(d < 1e-4, "{name}: logits differ by {d}");
    }
}

#[test]
fn untied_fixture_has_n_inner_2c() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = small_tokenizer(tmp.path());
    let im = import(
        &fixtures().join("hf_untied_gelu_bin").display().to_string(),
        &opts(&tok),
    );
    assert_eq!(im.model.config().mlp_ratio, 2);
    assert!(im.model.param("lm_head.weight").is_some());
}

#[test]
fn a_bare_pth_state_dict_needs_only_the_head_count() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = small_tokenizer(tmp.path());
    let pth = fixtures().join("nanogpt/plain.pth").display().to_string();
    // n_embd 24 is not a multiple of 64: the head count must be given.
    let e = import::load(&Source::parse(&pth).unwrap(), &opts(&tok))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--n-head"), "{e}");
    let mut o = opts(&tok);
    o.n_head = Some(2);
    let mut im = import(&pth, &o);
    assert!(
        im.model.config().tie_embeddings,
        "lm_head shares wte's storage: tied"
    );
    let d = max_diff(&mut im.model, "nanogpt");
    assert!(d < 1e-4, "plain.pth: logits differ by {d}");
}

#[test]
fn strided_and_offset_views_read_like_contiguous_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = small_tokenizer(tmp.path());
    let mut o = opts(&tok);
    o.n_head = Some(2);
    let views = import(
        &fixtures().join("nanogpt/views.pth").display().to_string(),
        &o,
    );
    let plain = import(
        &fixtures().join("nanogpt/plain.pth").display().to_string(),
        &o,
    );
    // same weights, stored as transposed views and slices of one shared storage
    assert_eq!(views.model.params(), plain.model.params());
}

#[test]
fn imported_checkpoint_loads_and_reimports_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = small_tokenizer(tmp.path());
    let im = import(
        &fixtures().join("nanogpt/ckpt.pt").display().to_string(),
        &opts(&tok),
    );
    let out = tmp.path().join("imported");
    import::write_checkpoint(&im, &out).unwrap();
    let ck = Checkpoint::load(&out).unwrap();
    assert_eq!(ck.model.params(), im.model.params());
    assert_eq!(ck.model.config(), im.model.config());
    // an lmforge checkpoint is a source too
    let again = import(&out.display().to_string(), &ImportOptions::default());
    assert_eq!(again.model.params(), im.model.params());
    assert_eq!(again.tokenizer.fingerprint(), im.tokenizer.fingerprint());
    // never over an existing folder
    let e = import::write_checkpoint(&im, &out)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("already exists"), "{e}");
}

#[test]
fn cropping_the_context_keeps_the_first_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = small_tokenizer(tmp.path());
    let mut im = import(
        &fixtures().join("nanogpt/ckpt.pt").display().to_string(),
        &opts(&tok),
    );
    let wpe = im.model.param("transformer.wpe.weight").unwrap().to_vec();
    let wte = im.model.param("transformer.wte.weight").unwrap().to_vec();
    im.crop_block_size(8).unwrap();
    assert_eq!(im.model.config().block_size, 8);
    assert_eq!(
        im.model.param("transformer.wpe.weight").unwrap(),
        &wpe[..8 * 24]
    );
    assert_eq!(im.model.param("transformer.wte.weight").unwrap(), &wte[..]);
    assert!(im.crop_block_size(9).is_err());
}

#[test]
fn gpt2_vocabulary_defaults_to_the_gpt2_tokenizer_and_others_must_say() {
    let f = fixtures().join("hf_fp16").display().to_string();
    let e = import::load(&Source::parse(&f).unwrap(), &ImportOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--tokenizer") && e.contains("50257"), "{e}");
    // a tokenizer larger than the model's vocabulary is refused
    let e = import::load(&Source::parse(&f).unwrap(), &opts("tiktoken:gpt2"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("50257") && e.contains("64"), "{e}");
}
