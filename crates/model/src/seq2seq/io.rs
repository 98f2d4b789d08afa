//! Encoder–decoder checkpoints: the same files as the GPT's (`config.json` with
//! `"arch": "encoder-decoder"`, `model.safetensors` in the reference module's `state_dict`
//! names, `optimizer.safetensors` with `exp_avg.<name>`, `exp_avg_sq.<name>`, `step`), written
//! atomically; loading checks every tensor's name, shape and dtype.

use super::config::{Arch, Seq2seqConfig};
use super::model::Seq2seq;
use crate::error::{Error, Result};
use crate::io::{
    check_f32_weights_fit, f32_bytes, parse, read_f32_into, read_file, read_optimizer_into,
    step_tensor, write_tensors, CONFIG_FILE, MODEL_FILE,
};
use crate::optim::{AdamW, AdamWConfig};
use safetensors::tensor::Dtype;
use std::path::Path;

/// Which model kind the checkpoint folder `dir` holds (its `config.json`'s `arch`).
pub fn checkpoint_arch(dir: &Path) -> Result<Arch> {
    let path = dir.join(CONFIG_FILE);
    let s = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&s).map_err(|e| Error::Json {
        file: path.clone(),
        source: e,
    })?;
    Arch::of_config_json(&v)
}

/// Read and validate an encoder–decoder `config.json`.
pub fn load_config(path: &Path) -> Result<Seq2seqConfig> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&s).map_err(|e| Error::Json {
        file: path.to_path_buf(),
        source: e,
    })?;
    if Arch::of_config_json(&v)? != Arch::EncoderDecoder {
        return Err(Error::Config {
            field: "arch",
            msg: format!("{} describes a GPT, not an encoder-decoder", path.display()),
        });
    }
    let cfg: Seq2seqConfig = serde_json::from_value(v).map_err(|e| Error::Json {
        file: path.to_path_buf(),
        source: e,
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// Write `config.json` and `model.safetensors` into the existing folder `dir`.
pub fn save_model_dir(model: &Seq2seq, dir: &Path) -> Result<()> {
    let path = dir.join(CONFIG_FILE);
    let s = serde_json::to_string_pretty(model.config()).map_err(|e| Error::Json {
        file: path.clone(),
        source: e,
    })?;
    lmforge_files::write_atomic(&path, s.as_bytes()).map_err(|e| Error::io(&path, e))?;
    let p = model.params();
    let ts = model
        .layout()
        .tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.shape.clone(),
                f32_bytes(&p[t.range()]),
                Dtype::F32,
            )
        })
        .collect();
    write_tensors(&dir.join(MODEL_FILE), ts)
}

/// Build the model saved in `dir` by [`save_model_dir`].
pub fn load_model_dir(dir: &Path) -> Result<Seq2seq> {
    let cfg = load_config(&dir.join(CONFIG_FILE))?;
    let file = dir.join(MODEL_FILE);
    let weights = super::params::Seq2seqLayout::new(&cfg).total;
    check_f32_weights_fit(Some(weights), &file)?;
    let bytes = read_file(&file)?;
    let st = parse(&file, &bytes)?;
    let mut m = Seq2seq::zeroed(cfg)?;
    let tensors = m.layout().tensors.clone();
    for t in &tensors {
        read_f32_into(
            &st,
            &file,
            &t.name,
            &t.shape,
            &mut m.params_mut()[t.range()],
        )?;
    }
    Ok(m)
}

/// Save AdamW state for `model` (same names as the GPT's optimizer file).
pub fn save_optimizer(opt: &AdamW, model: &Seq2seq, path: &Path) -> Result<()> {
    let mut ts = Vec::new();
    for t in &model.layout().tensors {
        for (moment, x) in [("exp_avg", &opt.m), ("exp_avg_sq", &opt.v)] {
            let name = format!("{moment}.{}", t.name);
            ts.push((name, t.shape.clone(), f32_bytes(&x[t.range()]), Dtype::F32));
        }
    }
    ts.push(step_tensor(opt.step));
    write_tensors(path, ts)
}

/// Load AdamW state written by [`save_optimizer`] for `model`.
pub fn load_optimizer(model: &Seq2seq, config: AdamWConfig, path: &Path) -> Result<AdamW> {
    let tensors = &model.layout().tensors;
    let mut opt = AdamW::for_tensors(model.backend(), tensors, config);
    read_optimizer_into(&mut opt, tensors, path)?;
    Ok(opt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq2seq::config::Norm;

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Seq2seqConfig::new(9, 10, 1, 2, 8, 5, 6);
        cfg.norm = Norm::Post;
        cfg.tie_embeddings = false;
        let m = Seq2seq::new(cfg.clone(), 3).unwrap();
        save_model_dir(&m, dir.path()).unwrap();
        assert_eq!(checkpoint_arch(dir.path()).unwrap(), Arch::EncoderDecoder);
        let back = load_model_dir(dir.path()).unwrap();
        assert_eq!(back.config(), &cfg);
        assert_eq!(back.params(), m.params());
        let mut opt = AdamW::for_tensors(m.backend(), &m.layout().tensors, AdamWConfig::default());
        opt.step = 7;
        opt.m[3] = 0.5;
        let op = dir.path().join("optimizer.safetensors");
        save_optimizer(&opt, &m, &op).unwrap();
        let o2 = load_optimizer(&m, AdamWConfig::default(), &op).unwrap();
        assert_eq!((o2.step, o2.m[3]), (7, 0.5));
        // a GPT config is refused with the reason
        let gpt = crate::ModelConfig::preset("tiny").unwrap();
        crate::io::save_config(&gpt, &dir.path().join(CONFIG_FILE)).unwrap();
        assert_eq!(checkpoint_arch(dir.path()).unwrap(), Arch::Gpt);
        let err = load_model_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("describes a GPT"), "{err}");
        // a truncated weights file
        save_model_dir(&m, dir.path()).unwrap();
        let f = dir.path().join(MODEL_FILE);
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
        assert!(load_model_dir(dir.path())
            .unwrap_err()
            .to_string()
            .contains("too few"));
    }
}
