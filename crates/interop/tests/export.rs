//! `lmforge export` end to end on tiny models: the files, names, shapes, transposes and
//! config fields of each Hugging Face variant, GGUF read back, tokenizer.json giving our ids
//! for every kind, and every bad input leaving no output behind.

use std::path::{Path, PathBuf};

use lmforge_checkpoint::{save_checkpoint, CheckpointParts};
use lmforge_interop::export::gguf::{self, GgmlType, Value};
use lmforge_interop::export::hf_tokenizer::to_hf_tokenizer;
use lmforge_interop::export::{export, ExportFormat, ExportOptions, WeightDtype};
use lmforge_interop::gpt2::transpose;
use lmforge_model::ops::embedding::sinusoidal_table;
use lmforge_model::{Activation, Gpt, ModelConfig, PosEncoding};
use lmforge_tokenizer::{train, Tokenizer, TrainKind};
use safetensors::SafeTensors;
use serde_json::Value as Json;

fn corpus() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../corpus/shakespeare/comedy_of_errors_gut.txt");
    let text = std::fs::read_to_string(p).unwrap();
    text.chars().skip(2000).take(20_000).collect()
}

/// Text the tokenizers did not see, with the awkward cases: unknown characters and words,
/// whitespace runs (tabs, triple spaces, CRLF), digits, contractions, non-Latin scripts.
fn probe_text() -> String {
    let tail: String = {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/shakespeare/hamlet_gut.txt");
        std::fs::read_to_string(p)
            .unwrap()
            .chars()
            .skip(30_000)
            .take(3000)
            .collect()
    };
    format!(
        "{tail}\nI'LL don't we've 12345 3.14159\t\ttabs   three  spaces\r\nCRLF\u{a0}nbsp \
         caf\u{e9} na\u{ef}ve \u{65e5}\u{672c}\u{8a9e} \u{1f600} x_y__z <eos> <|endoftext|>\n\n\n end  "
    )
}

/// Fills every parameter with distinct, non-trivial values (biases included: a zero bias
/// hides transposition and bias bugs).
fn randomize(model: &mut Gpt) {
    for (i, p) in model.params_mut().iter_mut().enumerate() {
        *p = ((i as f32 * 0.7311).sin() * 0.5) + 0.01 * (i % 7) as f32;
    }
}

fn save(root: &Path, cfg: ModelConfig, tok: &Tokenizer) -> PathBuf {
    let mut model = Gpt::new(cfg, 7).unwrap();
    randomize(&mut model);
    let parts = CheckpointParts {
        model: &model,
        tokenizer: tok,
        resume: None,
    };
    save_checkpoint(root, "ckpt", &parts).unwrap()
}

fn char_tok() -> Tokenizer {
    train(TrainKind::Char, None, &[corpus()]).unwrap()
}

fn bpe_tok() -> Tokenizer {
    train(TrainKind::Bpe, Some(400), &[corpus()]).unwrap()
}

/// A tiny config whose vocabulary is padded beyond the tokenizer (as training pads it).
fn tiny(tok: &Tokenizer) -> ModelConfig {
    ModelConfig::new(tok.vocab_size() + 5, 2, 2, 8, 8)
}

fn opts(format: ExportFormat, dtype: WeightDtype) -> ExportOptions {
    ExportOptions {
        format,
        dtype,
        force: false,
    }
}

fn read_json(p: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f32s(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap_or_else(|_| panic!("{name} missing"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

#[test]
fn hf_gpt2_export_has_gpt2_names_transposes_and_config_for_every_variant() {
    let tok = char_tok();
    let nv = tok.vocab_size();
    for pos in [PosEncoding::Learned, PosEncoding::Sinusoidal] {
        for tie in [true, false] {
            for bias in [true, false] {
                let dir = tempfile::tempdir().unwrap();
                let mut cfg = tiny(&tok);
                (cfg.pos_encoding, cfg.tie_embeddings, cfg.bias) = (pos, tie, bias);
                cfg.activation = if bias {
                    Activation::Gelu
                } else {
                    Activation::GeluTanh
                };
                cfg.mlp_ratio = if tie { 4 } else { 2 };
                let what = format!("{pos:?} tie={tie} bias={bias}");
                let ckpt = save(dir.path(), cfg.clone(), &tok);
                let model = lmforge_model::io::load_model_dir(&ckpt).unwrap();
                let out = dir.path().join("hf");
                let r = export(&ckpt, &out, &opts(ExportFormat::Hf, WeightDtype::F32)).unwrap();
                assert_eq!(r.arch, "GPT2LMHeadModel");
                let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
                let st = SafeTensors::deserialize(&bytes).unwrap();
                let (c, h) = (cfg.n_embd, cfg.hidden());
                // wte cropped to the tokenizer.
                let (shape, wte) = f32s(&st, "transformer.wte.weight");
                assert_eq!(shape, vec![nv, c], "{what}");
                assert_eq!(
                    wte,
                    model.param("transformer.wte.weight").unwrap()[..nv * c]
                );
                // positions: learned table or the sinusoidal one the model adds.
                let (shape, wpe) = f32s(&st, "transformer.wpe.weight");
                assert_eq!(shape, vec![cfg.block_size, c]);
                match pos {
                    PosEncoding::Learned => {
                        assert_eq!(wpe, model.param("transformer.wpe.weight").unwrap())
                    }
                    _ => assert_eq!(wpe, sinusoidal_table(cfg.block_size, c)),
                }
                // Conv1D weights transposed to [in, out].
                for (name, rows, cols) in [
                    ("attn.c_attn", 3 * c, c),
                    ("attn.c_proj", c, c),
                    ("mlp.c_fc", h, c),
                    ("mlp.c_proj", c, h),
                ] {
                    let n = format!("transformer.h.1.{name}.weight");
                    let (shape, w) = f32s(&st, &n);
                    assert_eq!(shape, vec![cols, rows], "{what} {n}");
                    assert_eq!(w, transpose(model.param(&n).unwrap(), rows, cols), "{n}");
                    let b = format!("transformer.h.1.{name}.bias");
                    let (shape, bv) = f32s(&st, &b);
                    assert_eq!(shape, vec![rows]);
                    match bias {
                        true => assert_eq!(bv, model.param(&b).unwrap()),
                        false => assert!(bv.iter().all(|&x| x == 0.0), "{what} {b}"),
                    }
                }
                let (_, lnb) = f32s(&st, "transformer.ln_f.bias");
                assert_eq!(lnb.iter().all(|&x| x == 0.0), !bias, "{what}");
                assert_eq!(st.names().contains(&"lm_head.weight"), !tie, "{what}");
                if !tie {
                    let (shape, head) = f32s(&st, "lm_head.weight");
                    assert_eq!(shape, vec![nv, c]);
                    assert_eq!(head, model.param("lm_head.weight").unwrap()[..nv * c]);
                }
                // 2 layers × 12 + wte, wpe, ln_f ×2 (+ lm_head)
                assert_eq!(st.len(), 2 * 12 + 4 + usize::from(!tie), "{what}");
                let config = read_json(&out.join("config.json"));
                assert_eq!(config["model_type"], "gpt2");
                assert_eq!(config["vocab_size"], nv);
                assert_eq!(config["n_positions"], cfg.block_size);
                assert_eq!(config["n_ctx"], cfg.block_size);
                assert_eq!(config["n_inner"], h);
                assert_eq!(config["tie_word_embeddings"], tie);
                let act = if bias { "gelu" } else { "gelu_new" };
                assert_eq!(config["activation_function"], act);
                assert_eq!(config["eos_token_id"], 3);
                assert_eq!(config["pad_token_id"], 0);
                let back: ModelConfig =
                    serde_json::from_value(config["lmforge_model_config"].clone()).unwrap();
                assert_eq!(back, cfg, "{what}");
                let gen = read_json(&out.join("generation_config.json"));
                assert_eq!(gen["eos_token_id"], 3);
                let tc = read_json(&out.join("tokenizer_config.json"));
                assert_eq!(tc["tokenizer_class"], "PreTrainedTokenizerFast");
                assert_eq!(tc["eos_token"], "<eos>");
                assert_eq!(tc["model_max_length"], cfg.block_size);
                assert_eq!(tc["clean_up_tokenization_spaces"], false);
            }
        }
    }
}

#[test]
fn hf_rope_export_is_neox_with_qkv_rows_grouped_per_head() {
    let tok = char_tok();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny(&tok);
    cfg.pos_encoding = PosEncoding::Rope;
    cfg.rope_theta = 500.0;
    let ckpt = save(dir.path(), cfg.clone(), &tok);
    let model = lmforge_model::io::load_model_dir(&ckpt).unwrap();
    let out = dir.path().join("neox");
    let r = export(&ckpt, &out, &opts(ExportFormat::Hf, WeightDtype::F32)).unwrap();
    assert_eq!(r.arch, "GPTNeoXForCausalLM");
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (c, hs) = (cfg.n_embd, cfg.head_size());
    let ours = model.param("transformer.h.0.attn.c_attn.weight").unwrap();
    let (shape, qkv) = f32s(&st, "gpt_neox.layers.0.attention.query_key_value.weight");
    assert_eq!(shape, vec![3 * c, c]);
    // NeoX row (head h, part j, r) = our row j·C + h·hs + r.
    for h in 0..cfg.n_head {
        for j in 0..3 {
            for r in 0..hs {
                let theirs = (h * 3 + j) * hs + r;
                let mine = j * c + h * hs + r;
                assert_eq!(
                    qkv[theirs * c..(theirs + 1) * c],
                    ours[mine * c..(mine + 1) * c]
                );
            }
        }
    }
    let (_, dense) = f32s(&st, "gpt_neox.layers.1.attention.dense.weight");
    assert_eq!(
        dense,
        model.param("transformer.h.1.attn.c_proj.weight").unwrap()
    );
    let (shape, _) = f32s(&st, "gpt_neox.layers.1.mlp.dense_h_to_4h.weight");
    assert_eq!(shape, vec![cfg.hidden(), c]);
    assert!(st.names().contains(&"embed_out.weight"));
    assert!(!st.names().iter().any(|n| n.contains("wpe")));
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["model_type"], "gpt_neox");
    assert_eq!(config["use_parallel_residual"], false);
    assert_eq!(config["rotary_pct"], 1.0);
    assert_eq!(config["rotary_emb_base"], 500.0);
    assert_eq!(config["rope_parameters"]["rope_theta"], 500.0);
    assert_eq!(config["intermediate_size"], cfg.hidden());
    assert_eq!(config["hidden_act"], "gelu");
}

#[test]
fn dtypes_are_written_as_asked() {
    let tok = char_tok();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = save(dir.path(), tiny(&tok), &tok);
    for (dtype, st_dtype, torch) in [
        (WeightDtype::Bf16, safetensors::Dtype::BF16, "bfloat16"),
        (WeightDtype::F16, safetensors::Dtype::F16, "float16"),
    ] {
        let out = dir.path().join(torch);
        export(&ckpt, &out, &opts(ExportFormat::Hf, dtype)).unwrap();
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert!(st.tensors().iter().all(|(_, t)| t.dtype() == st_dtype));
        assert_eq!(read_json(&out.join("config.json"))["torch_dtype"], torch);
    }
}

fn gguf_strings(f: &gguf::GgufFile, key: &str) -> Vec<String> {
    match f.get(key) {
        Some(Value::Strs(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn gguf_export_has_llama_cpp_metadata_tensors_and_our_vocabulary() {
    let tok = bpe_tok();
    let nv = tok.vocab_size();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny(&tok);
    cfg.tie_embeddings = false;
    let ckpt = save(dir.path(), cfg.clone(), &tok);
    let model = lmforge_model::io::load_model_dir(&ckpt).unwrap();
    let out = dir.path().join("model.gguf");
    let r = export(&ckpt, &out, &opts(ExportFormat::Gguf, WeightDtype::F16)).unwrap();
    assert_eq!(r.arch, "gpt2");
    assert!(
        r.warnings.iter().any(|w| w.contains("tanh GELU")),
        "{:?}",
        r.warnings
    );
    let bytes = std::fs::read(&out).unwrap();
    let f = gguf::read(&bytes).unwrap();
    assert_eq!(
        f.get("general.architecture"),
        Some(&Value::Str("gpt2".into()))
    );
    for (key, want) in [
        ("gpt2.context_length", cfg.block_size),
        ("gpt2.embedding_length", cfg.n_embd),
        ("gpt2.feed_forward_length", cfg.hidden()),
        ("gpt2.block_count", cfg.n_layer),
        ("gpt2.attention.head_count", cfg.n_head),
        ("tokenizer.ggml.eos_token_id", 3),
        ("general.file_type", 1),
    ] {
        assert_eq!(f.get(key), Some(&Value::U32(want as u32)), "{key}");
    }
    assert_eq!(
        f.get("gpt2.attention.layer_norm_epsilon"),
        Some(&Value::F32(1e-5))
    );
    assert_eq!(
        f.get("tokenizer.ggml.model"),
        Some(&Value::Str("gpt2".into()))
    );
    assert_eq!(
        f.get("tokenizer.ggml.pre"),
        Some(&Value::Str("gpt-2".into()))
    );
    let tokens = gguf_strings(&f, "tokenizer.ggml.tokens");
    assert_eq!(tokens.len(), nv);
    for (id, t) in tokens.iter().enumerate() {
        assert_eq!(Some(t.clone()), tok.token_text(id as u32), "id {id}");
    }
    let Some(Value::I32s(types)) = f.get("tokenizer.ggml.token_type") else {
        panic!("token_type")
    };
    assert_eq!(types[..5], [3, 3, 3, 3, 1]);
    let merges = gguf_strings(&f, "tokenizer.ggml.merges");
    assert!(!merges.is_empty() && merges.iter().all(|m| m.split(' ').count() == 2));
    let info = |n: &str| {
        f.tensors
            .iter()
            .find(|t| t.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let c = cfg.n_embd as u64;
    assert_eq!(info("token_embd.weight").dims, vec![c, nv as u64]);
    assert_eq!(info("token_embd.weight").ty, GgmlType::F16);
    assert_eq!(
        info("position_embd.weight").dims,
        vec![c, cfg.block_size as u64]
    );
    assert_eq!(info("blk.1.attn_qkv.weight").dims, vec![c, 3 * c]);
    assert_eq!(
        info("blk.1.ffn_down.weight").dims,
        vec![cfg.hidden() as u64, c]
    );
    assert_eq!(info("blk.0.attn_norm.bias").ty, GgmlType::F32);
    assert_eq!(info("output.weight").dims, vec![c, nv as u64]);
    assert_eq!(f.tensors.len(), 2 + 2 * 12 + 2 + 1);
    // Vectors stay F32 and hold our values.
    let ln = info("blk.1.ffn_norm.weight");
    let got: Vec<f32> = f
        .tensor_bytes(&bytes, ln)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(got, model.param("transformer.h.1.ln_2.weight").unwrap());
}

#[test]
fn gguf_rope_model_with_tiktoken_is_gptneox() {
    let tok = Tokenizer::load("tiktoken:cl100k_base").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ModelConfig::new(tok.vocab_size(), 1, 2, 4, 8);
    cfg.pos_encoding = PosEncoding::Rope;
    cfg.activation = Activation::GeluTanh;
    let ckpt = save(dir.path(), cfg.clone(), &tok);
    let out = dir.path().join("neox.gguf");
    let r = export(&ckpt, &out, &opts(ExportFormat::Gguf, WeightDtype::F32)).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let bytes = std::fs::read(&out).unwrap();
    let f = gguf::read(&bytes).unwrap();
    assert_eq!(
        f.get("general.architecture"),
        Some(&Value::Str("gptneox".into()))
    );
    assert_eq!(f.get("gptneox.rope.dimension_count"), Some(&Value::U32(2)));
    assert_eq!(
        f.get("gptneox.use_parallel_residual"),
        Some(&Value::Bool(false))
    );
    assert_eq!(
        f.get("tokenizer.ggml.pre"),
        Some(&Value::Str("llama-bpe".into()))
    );
    let tokens = gguf_strings(&f, "tokenizer.ggml.tokens");
    assert_eq!(tokens.len(), 100277);
    assert_eq!(tokens[100257], "<|endoftext|>");
    assert_eq!(tokens[100256], "[PAD100256]"); // a gap in cl100k's ids
    assert!(f.tensors.iter().any(|t| t.name == "output.weight"));
    assert!(!f.tensors.iter().any(|t| t.name == "position_embd.weight"));
}

/// Our ids and the exported tokenizer.json's ids (read back by the `tokenizers` crate,
/// as `transformers` reads it) on text the tokenizer never saw.
fn assert_same_ids(tok: &Tokenizer, text: &str) {
    let hf = to_hf_tokenizer(tok).unwrap();
    let json = hf.to_string(false).unwrap();
    let back: tokenizers::Tokenizer = json.parse().unwrap();
    // Special-token text is plain text for lmforge; keep it out of the comparison.
    for part in text.split("<eos>").flat_map(|p| p.split("<|endoftext|>")) {
        let ours = tok.encode(part).unwrap();
        let theirs = back.encode(part, false).unwrap().get_ids().to_vec();
        assert_eq!(theirs, ours, "{} on {part:?}", tok.kind());
        let decoded = back.decode(&ours, false).unwrap();
        assert_eq!(decoded, tok.decode(&ours).unwrap(), "{} decode", tok.kind());
    }
}

#[test]
fn tokenizer_json_gives_our_ids_for_trained_kinds() {
    let text = probe_text();
    for (kind, size) in [
        (TrainKind::Char, None),
        (TrainKind::Word, Some(300)),
        (TrainKind::Bpe, Some(500)),
        (TrainKind::Unigram, Some(300)),
    ] {
        assert_same_ids(&train(kind, size, &[corpus()]).unwrap(), &text);
    }
}

#[test]
fn word_tokenizer_whitespace_runs_match_exactly() {
    // "  " is in the vocabulary, "   " is not: ours falls back to single characters.
    let tok = train(TrainKind::Word, Some(40), &["a  b  c  d\n\ne a b\tc"]).unwrap();
    for text in ["a   b", "  a", "a  ", "\n\n\n", " \n\n", "a\t\tb", "zz  q"] {
        assert_same_ids(&tok, text);
    }
}

#[test]
fn tokenizer_json_gives_tiktoken_ids() {
    let text = probe_text();
    for name in ["gpt2", "p50k_base", "cl100k_base", "o200k_base"] {
        let tok = Tokenizer::load(&format!("tiktoken:{name}")).unwrap();
        assert_same_ids(&tok, &text);
    }
}

fn sentencepiece_tok() -> Tokenizer {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tokenizer/tests/fixtures/sp_unigram.model");
    Tokenizer::load(&p.to_string_lossy()).unwrap()
}

/// The error's text, and that nothing was written next to `out`.
fn refused(ckpt: &Path, out: &Path, o: ExportOptions) -> String {
    let before = listing(out.parent().unwrap());
    let e = export(ckpt, out, &o).unwrap_err().to_string();
    assert!(!out.exists(), "{} was written: {e}", out.display());
    assert_eq!(
        listing(out.parent().unwrap()),
        before,
        "leftovers after: {e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn bad_inputs_give_one_line_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let tok = char_tok();
    let ckpt = save(dir.path(), tiny(&tok), &tok);
    let out = dir.path().join("out");
    let hf = || opts(ExportFormat::Hf, WeightDtype::F32);

    let e = refused(
        &ckpt,
        &dir.path().join("x.gguf"),
        opts(ExportFormat::Gguf, WeightDtype::F32),
    );
    assert!(
        e.contains("gguf") && e.contains("byte-level BPE") && e.contains("char"),
        "{e}"
    );

    let e = refused(&dir.path().join("nope"), &out, hf());
    assert!(e.contains("nope"), "{e}");

    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::copy(ckpt.join("config.json"), broken.join("config.json")).unwrap();
    let e = refused(&broken, &out, hf());
    assert!(e.contains("model.safetensors"), "{e}");

    let sp_dir = tempfile::tempdir().unwrap();
    let sp = sentencepiece_tok();
    let sp_ckpt = save(sp_dir.path(), tiny(&sp), &sp);
    let e = refused(&sp_ckpt, &sp_dir.path().join("out"), hf());
    assert!(
        e.contains("sentencepiece") && e.contains("cannot export to hf"),
        "{e}"
    );

    // fp16 cannot hold a weight of 1e6: refused naming the tensor, after building started.
    let big_dir = tempfile::tempdir().unwrap();
    let mut model = Gpt::new(tiny(&tok), 1).unwrap();
    randomize(&mut model);
    model.params_mut()[0] = 1e6;
    let parts = CheckpointParts {
        model: &model,
        tokenizer: &tok,
        resume: None,
    };
    let big = save_checkpoint(big_dir.path(), "ckpt", &parts).unwrap();
    let e = refused(
        &big,
        &big_dir.path().join("out"),
        opts(ExportFormat::Hf, WeightDtype::F16),
    );
    assert!(
        e.contains("transformer.wte.weight") && e.contains("fp16"),
        "{e}"
    );

    assert!(ExportFormat::parse("onnx")
        .unwrap_err()
        .to_string()
        .contains("--format"));
    assert!(WeightDtype::parse("int4")
        .unwrap_err()
        .to_string()
        .contains("--dtype"));
}

#[test]
fn existing_output_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let tok = char_tok();
    let ckpt = save(dir.path(), tiny(&tok), &tok);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let e = export(&ckpt, &out, &opts(ExportFormat::Hf, WeightDtype::F32)).unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
    let mut o = opts(ExportFormat::Hf, WeightDtype::F32);
    o.force = true;
    export(&ckpt, &out, &o).unwrap();
    assert!(!out.join("keep.txt").exists());
    assert!(out.join("model.safetensors").is_file());
    // An empty folder is fine without --force.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    export(&ckpt, &empty, &opts(ExportFormat::Hf, WeightDtype::F32)).unwrap();
    assert_eq!(
        listing(dir.path())
            .iter()
            .filter(|n| n.starts_with('.'))
            .count(),
        0
    );
}
