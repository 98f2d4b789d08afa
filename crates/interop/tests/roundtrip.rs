//! lmforge checkpoint → `export --format hf` → `import` gives the same weights bit for bit
//! (and so the same logits), for every GPT-2-expressible config.

use std::path::Path;

use lmforge_checkpoint::{save_checkpoint, CheckpointParts};
use lmforge_interop::export::{export, ExportFormat, ExportOptions, WeightDtype};
use lmforge_interop::import::{self, ImportOptions, Source};
use lmforge_model::{Activation, Gpt, ModelConfig, Norm, PosEncoding};
use lmforge_tokenizer::{train, TrainKind};

fn round_trip(dir: &Path, cfg: ModelConfig, tag: &str) {
    let tok = train(TrainKind::Char, None, &["abcdefghij klmnop\nqrstuvwxyz"]).unwrap();
    let mut model = Gpt::new(cfg.clone(), 7).unwrap();
    // non-trivial biases and LayerNorms (init gives zeros and ones)
    for (i, p) in model.params_mut().iter_mut().enumerate() {
        *p += ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.1;
    }
    let parts = CheckpointParts {
        model: &model,
        tokenizer: &tok,
        resume: None,
    };
    let ck = save_checkpoint(dir, &format!("{tag}-ck"), &parts).unwrap();
    let hf = dir.join(format!("{tag}-hf"));
    let opts = ExportOptions {
        format: ExportFormat::Hf,
        dtype: WeightDtype::F32,
        force: false,
    };
    export(&ck, &hf, &opts).unwrap();
    let back = import::load(
        &Source::parse(&hf.display().to_string()).unwrap(),
        &ImportOptions::default(),
    )
    .unwrap();
    let b = back.model.config();
    assert_eq!(
        (b.n_layer, b.n_head, b.n_embd, b.block_size, b.mlp_ratio),
        (
            cfg.n_layer,
            cfg.n_head,
            cfg.n_embd,
            cfg.block_size,
            cfg.mlp_ratio
        ),
        "{tag}"
    );
    assert_eq!(b.activation, cfg.activation, "{tag}");
    assert_eq!(b.tie_embeddings, cfg.tie_embeddings, "{tag}");
    assert_eq!(
        back.tokenizer.encode("abc xyz").unwrap(),
        tok.encode("abc xyz").unwrap(),
        "{tag}"
    );
    // weights: bit-identical (the vocabulary is the tokenizer's after export's crop)
    let v = tok.vocab_size();
    for (name, _, src) in model.named_parameters() {
        match back.model.param(name) {
            Some(got) if name == "transformer.wte.weight" || name == "lm_head.weight" => {
                assert_eq!(got, &src[..v * cfg.n_embd], "{tag}: {name}")
            }
            Some(got) => assert_eq!(got, src, "{tag}: {name}"),
            None => panic!("{tag}: {name} missing after the round trip"),
        }
    }
    // logits on the ids both vocabularies share
    let idx: Vec<u32> = (0..8).map(|i| (i * 5 % v) as u32).collect();
    let mut m2 = back.model;
    model.forward(&idx, None, 1, 8).unwrap();
    m2.forward(&idx, None, 1, 8).unwrap();
    let (a, c) = (model.logits(), m2.logits());
    let mut max = 0f32;
    for t in 0..8 {
        for j in 0..v {
            max = max.max((a[t * cfg.vocab_size + j] - c[t * v + j]).abs());
        }
    }
    println!("{tag}: max logit diff {max:e}");
    assert!(max < 1e-4, "{tag}: {max}");
}

#[test]
fn export_then_import_is_bit_identical() {
    let d = tempfile::tempdir().unwrap();
    let base = ModelConfig::new(40, 2, 2, 16, 8);
    round_trip(d.path(), base.clone(), "tied-gelu");
    let mut c = base.clone();
    c.tie_embeddings = false;
    c.activation = Activation::GeluTanh;
    c.mlp_ratio = 2;
    round_trip(d.path(), c, "untied-tanh-ratio2");
    let mut c = base.clone();
    c.pos_encoding = PosEncoding::Sinusoidal;
    round_trip(d.path(), c, "sinusoidal");
    let mut c = base.clone();
    c.bias = false;
    round_trip(d.path(), c, "nobias");
    // ReLU and no q/k/v bias (exported as a zero c_attn bias): the same function
    let mut c = base.clone();
    (c.activation, c.qkv_bias) = (Activation::Relu, Some(false));
    round_trip(d.path(), c, "relu-no-qkv-bias");
    // a q/k/v bias only (the other biases exported as zeros)
    let mut c = base;
    (c.bias, c.qkv_bias) = (false, Some(true));
    round_trip(d.path(), c, "qkv-bias-only");
}

#[test]
fn switches_gpt2_cannot_express_are_refused_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    let tok = train(TrainKind::Char, None, &["abcdefghij klmnop\nqrstuvwxyz"]).unwrap();
    let base = ModelConfig::new(40, 1, 2, 16, 8);
    let mut post = base.clone();
    post.norm = Norm::Post;
    let mut head = base.clone();
    (head.tie_embeddings, head.head_bias) = (false, true);
    let mut both = base.clone();
    both.pos_encoding = PosEncoding::SinusoidalRope;
    let mut relu = base;
    relu.activation = Activation::Relu;
    let cases = [
        (post, ExportFormat::Hf, "norm = post"),
        (head, ExportFormat::Gguf, "head_bias = true"),
        (both, ExportFormat::Hf, "sinusoidal+rope"),
        (relu, ExportFormat::Gguf, "activation = relu"),
    ];
    for (i, (cfg, format, want)) in cases.into_iter().enumerate() {
        let model = Gpt::new(cfg, 1).unwrap();
        let parts = CheckpointParts {
            model: &model,
            tokenizer: &tok,
            resume: None,
        };
        let ck = save_checkpoint(d.path(), &format!("ck{i}"), &parts).unwrap();
        let out = d.path().join(format!("out{i}"));
        let opts = ExportOptions {
            format,
            dtype: WeightDtype::F32,
            force: false,
        };
        let e = export(&ck, &out, &opts).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot export to ") && e.contains(want),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert!(!out.exists(), "{e}: nothing may be written");
    }
}
