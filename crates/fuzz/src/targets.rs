//! One target per file a user can hand lmforge. Seeds are real files: the repository's
//! fixtures and files written by the crates' own save functions. Each harness writes the
//! mutated bytes where the loader looks, runs the loader, and exercises what it returns
//! (encode/decode a tokenizer, read tokens, derive the model config) so a loader that
//! accepts a broken file and leaves the panic for later is caught too.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lmforge_data::{DataDir, Dtype, PrepareOptions, TokenFile, TokenWriter, TokenizerChoice};
use lmforge_interop::import::{self, pickle, torch, ImportOptions, Source};
use lmforge_model::io::{self, CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE};
use lmforge_model::{AdamW, AdamWConfig, Gpt, ModelConfig, PosEncoding};
use lmforge_tokenizer::{Tokenizer, TrainKind};
use lmforge_train::TrainConfig;

use crate::engine::{Harness, Target, Verdict};
use crate::structured::Format;

/// Text the seeds are trained on and every loaded tokenizer encodes.
const SAMPLE: &str = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n\
All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\
Ünïcödé — 東京 🙂 tabs\tand  spaces, digits 12345.\n";

/// Every target, in the order `all` runs them.
pub static TARGETS: [Target; 11] = [
    Target {
        name: "tokenizer-lmforge",
        about: "lmforge tokenizer JSON: char, word, tiktoken (Tokenizer::load_file)",
        format: Format::Json,
        setup: tokenizer_lmforge,
    },
    Target {
        name: "tokenizer-hf",
        about: "Hugging Face tokenizer.json: byte-level BPE and unigram (Tokenizer::load_file)",
        format: Format::Json,
        setup: tokenizer_hf,
    },
    Target {
        name: "sentencepiece",
        about: "SentencePiece .model, unigram and BPE (Tokenizer::load_file)",
        format: Format::Binary,
        setup: sentencepiece,
    },
    Target {
        name: "tokfile",
        about: "LMFTOK token file, u16 and u32 (TokenFile::open, then read every token)",
        format: Format::Binary,
        setup: tokfile,
    },
    Target {
        name: "data-meta",
        about: "meta.json of a prepared data folder (DataDir::open + its tokenizer)",
        format: Format::Json,
        setup: data_meta,
    },
    Target {
        name: "model-config",
        about: "model config.json beside a real model.safetensors (io::load_model_dir)",
        format: Format::Json,
        setup: model_config,
    },
    Target {
        name: "model-safetensors",
        about: "model.safetensors beside a real config.json (io::load_model_dir)",
        format: Format::Binary,
        setup: model_safetensors,
    },
    Target {
        name: "optimizer-safetensors",
        about: "optimizer.safetensors for a real model (io::load_optimizer)",
        format: Format::Binary,
        setup: optimizer_safetensors,
    },
    Target {
        name: "train-toml",
        about: "TOML run config (TrainConfig::load, then the model config it implies)",
        format: Format::Toml,
        setup: train_toml,
    },
    Target {
        name: "torch-pickle",
        about: "data.pkl of a torch.save file (the non-executing unpickler, then its state_dict)",
        format: Format::Binary,
        setup: torch_pickle,
    },
    Target {
        name: "torch-checkpoint",
        about: "a whole nanoGPT ckpt.pt / .pth zip (import::load: pickle, storages, weights)",
        format: Format::Binary,
        setup: torch_checkpoint,
    },
];

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn verdict<T, E: std::fmt::Display>(r: Result<T, E>) -> Verdict {
    match r {
        Ok(_) => Verdict::Accepted,
        Err(e) => Verdict::Refused(e.to_string()),
    }
}

/// A harness that writes each input to `file` and runs `load` on the path.
fn file_harness(
    seeds: Vec<Vec<u8>>,
    file: PathBuf,
    mut load: impl FnMut(&Path) -> Result<(), String> + 'static,
) -> Harness {
    Harness {
        must_load: seeds.len(),
        seeds,
        exec: Box::new(move |input| {
            if let Err(e) = std::fs::write(&file, input) {
                return Verdict::Refused(format!("harness could not write the input: {e}"));
            }
            verdict(load(&file))
        }),
    }
}

/// Loads a tokenizer file and uses it: encode, decode, specials, token texts, fingerprint.
fn load_and_use_tokenizer(path: &Path) -> Result<(), String> {
    let t = Tokenizer::load_file(path).map_err(|e| e.to_string())?;
    let ids = t.encode(SAMPLE).map_err(|e| e.to_string())?;
    t.decode(&ids).map_err(|e| e.to_string())?;
    let n = t.vocab_size().min(300) as u32;
    let all: Vec<u32> = (0..n).collect();
    t.decode(&all).map_err(|e| e.to_string())?;
    for id in [0, 1, n.saturating_sub(1), n, u32::MAX] {
        let _ = t.token_text(id);
    }
    let _ = (t.special_tokens(), t.fingerprint(), t.kind(), t.eos_id());
    Ok(())
}

fn trained(kind: TrainKind, vocab: Option<usize>) -> anyhow::Result<Vec<u8>> {
    Ok(lmforge_tokenizer::train(kind, vocab, &[SAMPLE.repeat(4)])?.to_bytes()?)
}

fn tokenizer_lmforge(dir: &Path) -> anyhow::Result<Harness> {
    let seeds = vec![
        trained(TrainKind::Char, None)?,
        trained(TrainKind::Word, Some(40))?,
        Tokenizer::load("tiktoken:gpt2")?.to_bytes()?,
        include_bytes!("../../../models/shakespeare-char/tokenizer.json").to_vec(),
    ];
    Ok(file_harness(
        seeds,
        dir.join("tokenizer.json"),
        load_and_use_tokenizer,
    ))
}

fn tokenizer_hf(dir: &Path) -> anyhow::Result<Harness> {
    let seeds = vec![
        trained(TrainKind::Bpe, Some(300))?,
        trained(TrainKind::Unigram, Some(60))?,
    ];
    Ok(file_harness(
        seeds,
        dir.join("tokenizer.json"),
        load_and_use_tokenizer,
    ))
}

fn sentencepiece(dir: &Path) -> anyhow::Result<Harness> {
    let seeds = vec![
        include_bytes!("../../tokenizer/tests/fixtures/sp_bpe.model").to_vec(),
        include_bytes!("../../tokenizer/tests/fixtures/sp_unigram.model").to_vec(),
    ];
    Ok(file_harness(
        seeds,
        dir.join("tokenizer.model"),
        load_and_use_tokenizer,
    ))
}

/// A token file written by [`TokenWriter`].
fn token_file(path: &Path, dtype: Dtype, ids: &[u32]) -> anyhow::Result<Vec<u8>> {
    let mut w = TokenWriter::create(path, dtype, "0123456789abcdef")?;
    w.push(ids)?;
    w.finish()?;
    Ok(std::fs::read(path)?)
}

fn tokfile(dir: &Path) -> anyhow::Result<Harness> {
    let ids: Vec<u32> = (0..700).map(|i| (i * 7919) % 65_536).collect();
    let wide: Vec<u32> = (0..200).map(|i| i * 1_000_003).collect();
    let seeds = vec![
        token_file(&dir.join("a.bin"), Dtype::U16, &ids)?,
        token_file(&dir.join("b.bin"), Dtype::U32, &wide)?,
        token_file(&dir.join("c.bin"), Dtype::U16, &[])?,
    ];
    Ok(file_harness(seeds, dir.join("train.bin"), |path| {
        let f = TokenFile::open(path).map_err(|e| e.to_string())?;
        let tokens = f.to_vec();
        if tokens.len() as u64 != f.len() {
            panic!(
                "to_vec gave {} tokens, header says {}",
                tokens.len(),
                f.len()
            );
        }
        if f.len() >= 2 {
            let n = (f.len() - 1).min(16) as usize;
            let (mut x, mut y) = (vec![0u32; n], vec![0i32; n]);
            f.read_xy(f.len() - 1 - n as u64, &mut x, &mut y);
        }
        Ok(())
    }))
}

fn data_meta(dir: &Path) -> anyhow::Result<Harness> {
    let text = dir.join("text.txt");
    std::fs::write(&text, SAMPLE.repeat(8))?;
    let out = dir.join("data");
    let mut opts = PrepareOptions::new(&out);
    opts.sources = vec![text.to_string_lossy().into_owned()];
    opts.tokenizer = TokenizerChoice::parse("char", None);
    opts.block_size = 8;
    opts.quiet = true;
    lmforge_data::prepare(&opts)?;
    let meta = out.join("meta.json");
    let seeds = vec![std::fs::read(&meta).context("prepare wrote no meta.json")?];
    Ok(file_harness(seeds, meta, move |_| {
        let d = DataDir::open(&out).map_err(|e| e.to_string())?;
        d.tokenizer().map_err(|e| e.to_string())?;
        let _ = (d.vocab_size(), d.fingerprint(), d.tokenizer_path());
        Ok(())
    }))
}

/// The small models the model targets load: untied with biases and learned positions, and
/// RoPE without biases (so both layouts' tensor lists are seeds).
fn tiny_models() -> anyhow::Result<Vec<Gpt>> {
    let mut a = ModelConfig::preset("tiny")?;
    a.tie_embeddings = false;
    let mut b = ModelConfig::preset("tiny")?;
    b.bias = false;
    b.pos_encoding = PosEncoding::Rope;
    Ok(vec![Gpt::new(a, 1)?, Gpt::new(b, 2)?])
}

fn model_config(dir: &Path) -> anyhow::Result<Harness> {
    let models = tiny_models()?;
    let mut seeds = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let d = dir.join(format!("seed{i}"));
        std::fs::create_dir_all(&d)?;
        io::save_model_dir(m, &d)?;
        seeds.push(std::fs::read(d.join(CONFIG_FILE))?);
    }
    seeds.push(include_bytes!("../../../models/shakespeare-char/config.json").to_vec());
    // The weights stay those of the first seed: a mutated config must be refused or match.
    io::save_model_dir(&models[0], dir)?;
    let folder = dir.to_path_buf();
    let mut h = file_harness(seeds, dir.join(CONFIG_FILE), move |_| {
        io::load_model_dir(&folder)
            .map(drop)
            .map_err(|e| e.to_string())
    });
    // Only the first seed matches the weights; the others are refused by design.
    h.must_load = 1;
    Ok(h)
}

fn model_safetensors(dir: &Path) -> anyhow::Result<Harness> {
    let models = tiny_models()?;
    let mut seeds = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let p = dir.join(format!("seed{i}.safetensors"));
        io::save_params(m, &p)?;
        seeds.push(std::fs::read(&p)?);
    }
    io::save_model_dir(&models[0], dir)?;
    let folder = dir.to_path_buf();
    let mut h = file_harness(seeds, dir.join(MODEL_FILE), move |_| {
        io::load_model_dir(&folder)
            .map(drop)
            .map_err(|e| e.to_string())
    });
    // The second seed is the other layout's weights, refused by the first one's config.
    h.must_load = 1;
    Ok(h)
}

fn optimizer_safetensors(dir: &Path) -> anyhow::Result<Harness> {
    let model = tiny_models()?.swap_remove(0);
    let mut opt = AdamW::new(&model, AdamWConfig::default());
    opt.step = 42;
    let path = dir.join(OPTIMIZER_FILE);
    io::save_optimizer(&opt, &model, &path)?;
    let seeds = vec![std::fs::read(&path)?];
    Ok(file_harness(seeds, path, move |p| {
        io::load_optimizer(&model, AdamWConfig::default(), p)
            .map(drop)
            .map_err(|e| e.to_string())
    }))
}

fn train_toml(dir: &Path) -> anyhow::Result<Harness> {
    let rope = TrainConfig {
        pos_encoding: "rope".into(),
        n_embd: Some(64),
        block_size: Some(128),
        max_epochs: Some(2.0),
        patience: Some(3),
        ..TrainConfig::default()
    };
    let seeds = vec![
        include_bytes!("../../../examples/baby.toml").to_vec(),
        TrainConfig::default().to_toml()?.into_bytes(),
        rope.to_toml()?.into_bytes(),
    ];
    Ok(file_harness(seeds, dir.join("run.toml"), |path| {
        let cfg = TrainConfig::load(path).map_err(|e| e.to_string())?;
        cfg.model_config(65).map_err(|e| e.to_string())?;
        cfg.to_toml().map_err(|e| e.to_string())?;
        cfg.incompatible_changes(&TrainConfig::default())
            .map_err(|e| e.to_string())?;
        Ok(())
    }))
}

/// The interop fixtures (tools/make_interop_fixtures.py): a nanoGPT `ckpt.pt` and a bare
/// `.pth` state_dict.
const TORCH_FILES: [&[u8]; 2] = [
    include_bytes!("../../interop/tests/fixtures/nanogpt/ckpt.pt"),
    include_bytes!("../../interop/tests/fixtures/nanogpt/plain.pth"),
];

/// The `data.pkl` record of a torch zip.
fn data_pkl(zip_bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))?;
    let name = (0..zip.len())
        .filter_map(|i| zip.name_for_index(i).map(str::to_string))
        .find(|n| n.ends_with("/data.pkl"))
        .context("no data.pkl in the fixture")?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(&name)?, &mut out)?;
    Ok(out)
}

fn torch_pickle(_dir: &Path) -> anyhow::Result<Harness> {
    let seeds = TORCH_FILES
        .iter()
        .map(|z| data_pkl(z))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Harness {
        must_load: seeds.len(),
        seeds,
        exec: Box::new(|input| {
            verdict(pickle::read(input).map(|v| {
                let sd = v.get("model").unwrap_or(&v);
                torch::state_dict_entries(sd).map(|e| e.len())
            }))
        }),
    })
}

fn torch_checkpoint(dir: &Path) -> anyhow::Result<Harness> {
    // 60 characters + 4 specials: the fixtures' 64 ids
    let tok = lmforge_tokenizer::train(
        TrainKind::Char,
        None,
        &["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567"],
    )?;
    let tok_path = dir.join("tokenizer.json");
    tok.save(&tok_path)?;
    let opts = ImportOptions {
        tokenizer: Some(tok_path.display().to_string()),
        n_head: Some(2),
    };
    let seeds = TORCH_FILES.iter().map(|z| z.to_vec()).collect();
    Ok(file_harness(seeds, dir.join("ckpt.pt"), move |path| {
        let mut im =
            import::load(&Source::Torch(path.to_path_buf()), &opts).map_err(|e| e.to_string())?;
        let t = im.model.config().block_size.min(4);
        im.model
            .forward(&vec![1; t], None, 1, t)
            .map_err(|e| e.to_string())?;
        Ok(())
    }))
}
