//! Checkpoint files: `model.safetensors` (nanoGPT `state_dict` names and layouts, tied head
//! stored once), `config.json`, and `optimizer.safetensors` (AdamW moments + step).
//! Every file is written atomically (`lmforge_files`: temp file, fsync, rename, fsync of the
//! folder; mode 0644), so readers never see half a file.
//! Loading validates every tensor: missing, wrong shape or wrong dtype is an error naming it.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::optim::{AdamW, AdamWConfig};
use crate::params::TensorInfo;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// File names inside a checkpoint folder.
pub const MODEL_FILE: &str = "model.safetensors";
/// the model config's file name in a checkpoint folder
pub const CONFIG_FILE: &str = "config.json";
/// the AdamW state's file name in a checkpoint folder
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

pub(crate) fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Write `(name, shape, bytes, dtype)` tensors atomically.
pub(crate) fn write_tensors(
    path: &Path,
    tensors: Vec<(String, Vec<usize>, Vec<u8>, Dtype)>,
) -> Result<()> {
    let st_err = |e: safetensors::SafeTensorError| Error::Safetensors {
        file: path.to_path_buf(),
        msg: e.to_string(),
    };
    let views = tensors
        .iter()
        .map(|(n, s, b, d)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(st_err)?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let tmp = tmp_path(path);
    let written = safetensors::serialize_to_file(views, Some(meta), &tmp)
        .map_err(st_err)
        .and_then(|()| {
            lmforge_files::replace_with_synced(&tmp, path).map_err(|e| Error::io(path, e))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

pub(crate) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| Error::Safetensors {
        file: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Copy the f32 tensor `name` of shape `shape` into `dst`, with errors naming the tensor.
pub fn read_f32_into(
    st: &SafeTensors<'_>,
    file: &Path,
    name: &str,
    shape: &[usize],
    dst: &mut [f32],
) -> Result<()> {
    let t = st.tensor(name).map_err(|_| Error::MissingTensor {
        file: file.to_path_buf(),
        name: name.to_string(),
    })?;
    if t.dtype() != Dtype::F32 {
        return Err(Error::TensorDtype {
            file: file.to_path_buf(),
            name: name.to_string(),
            got: format!("{:?}", t.dtype()),
            want: "F32",
        });
    }
    if t.shape() != shape {
        return Err(Error::TensorShape {
            file: file.to_path_buf(),
            name: name.to_string(),
            got: t.shape().to_vec(),
            want: shape.to_vec(),
        });
    }
    for (d, b) in dst.iter_mut().zip(t.data().chunks_exact(4)) {
        *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(())
}

/// Save the parameters as `model.safetensors`-style file at `path`.
pub fn save_params(model: &Gpt, path: &Path) -> Result<()> {
    let ts = model
        .named_parameters()
        .map(|(n, s, v)| (n.to_string(), s.to_vec(), f32_bytes(v), Dtype::F32))
        .collect();
    write_tensors(path, ts)
}

/// Load parameters saved by [`save_params`] (or by nanoGPT: extra tensors such as
/// `attn.bias` buffers are ignored).
pub fn load_params(model: &mut Gpt, path: &Path) -> Result<()> {
    let bytes = read_file(path)?;
    let st = parse(path, &bytes)?;
    for (name, shape, dst) in model.named_parameters_mut() {
        read_f32_into(&st, path, name, shape, dst)?;
    }
    Ok(())
}

/// Write `config.json`.
pub fn save_config(cfg: &ModelConfig, path: &Path) -> Result<()> {
    let s = serde_json::to_string_pretty(cfg).map_err(|e| Error::Json {
        file: path.to_path_buf(),
        source: e,
    })?;
    lmforge_files::write_atomic(path, s.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Read and validate `config.json`.
pub fn load_config(path: &Path) -> Result<ModelConfig> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let cfg: ModelConfig = serde_json::from_str(&s).map_err(|e| Error::Json {
        file: path.to_path_buf(),
        source: e,
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// Write `config.json` and `model.safetensors` into the existing folder `dir`.
pub fn save_model_dir(model: &Gpt, dir: &Path) -> Result<()> {
    save_config(model.config(), &dir.join(CONFIG_FILE))?;
    save_params(model, &dir.join(MODEL_FILE))
}

/// Build a model from a folder holding `config.json` and `model.safetensors`.
pub fn load_model_dir(dir: &Path) -> Result<Gpt> {
    let cfg = load_config(&dir.join(CONFIG_FILE))?;
    let model_file = dir.join(MODEL_FILE);
    check_weights_fit_file(&cfg, &model_file)?;
    let mut m = Gpt::zeroed(cfg, 0)?;
    load_params(&mut m, &model_file)?;
    Ok(m)
}

/// Refuses a config whose f32 weights cannot all be in `model_file`, before any buffer is
/// allocated: a corrupt `config.json` (say `n_embd` 2^30) is an error naming both files,
/// not an allocation of terabytes.
fn check_weights_fit_file(cfg: &ModelConfig, model_file: &Path) -> Result<()> {
    check_f32_weights_fit(cfg.param_count(), model_file)
}

/// Refuses `model_file` when it is too short for `weights` f32 values (`None`: a count that
/// overflowed), the check [`load_model_dir`] runs before allocating (the encoder–decoder's
/// loader too).
pub(crate) fn check_f32_weights_fit(weights: Option<usize>, model_file: &Path) -> Result<()> {
    let file_len = std::fs::metadata(model_file)
        .map_err(|e| Error::io(model_file, e))?
        .len();
    let need = weights.map(|n| n as u64 * 4);
    if need.is_some_and(|bytes| bytes <= file_len) {
        return Ok(());
    }
    Err(Error::Safetensors {
        file: model_file.to_path_buf(),
        msg: format!(
            "holds {file_len} bytes, too few for the {} f32 weights {CONFIG_FILE} describes; the two files do not belong together",
            weights.map_or("(overflowing)".into(), |n| n.to_string())
        ),
    })
}

/// Save AdamW state: `exp_avg.<param>`, `exp_avg_sq.<param>` (F32) and `step` (I64 `[]`).
pub fn save_optimizer(opt: &AdamW, model: &Gpt, path: &Path) -> Result<()> {
    let mut ts: Vec<(String, Vec<usize>, Vec<u8>, Dtype)> = opt
        .named_state(model)
        .map(|(n, s, v)| (n, s.to_vec(), f32_bytes(&v), Dtype::F32))
        .collect();
    ts.push(step_tensor(opt.step));
    write_tensors(path, ts)
}

/// The optimizer file's `step` tensor (I64, shape `[]`).
pub(crate) fn step_tensor(step: u64) -> (String, Vec<usize>, Vec<u8>, Dtype) {
    let bytes = (step as i64).to_le_bytes().to_vec();
    ("step".into(), vec![], bytes, Dtype::I64)
}

/// Load AdamW state written by [`save_optimizer`] for `model`, with hyper-parameters `config`.
pub fn load_optimizer(model: &Gpt, config: AdamWConfig, path: &Path) -> Result<AdamW> {
    let mut opt = AdamW::new(model, config);
    read_optimizer_into(&mut opt, &model.layout().tensors, path)?;
    Ok(opt)
}

/// Reads an optimizer file (`exp_avg.<name>`, `exp_avg_sq.<name>` of each of `tensors`, and
/// `step`) into `opt`, whose moments are laid out as `tensors` (the GPT's and the
/// encoder–decoder's files alike).
pub(crate) fn read_optimizer_into(
    opt: &mut AdamW,
    tensors: &[TensorInfo],
    path: &Path,
) -> Result<()> {
    let bytes = read_file(path)?;
    let st = parse(path, &bytes)?;
    for t in tensors {
        let (m, v) = (&mut opt.m[t.range()], &mut opt.v[t.range()]);
        read_f32_into(&st, path, &format!("exp_avg.{}", t.name), &t.shape, m)?;
        read_f32_into(&st, path, &format!("exp_avg_sq.{}", t.name), &t.shape, v)?;
    }
    let step = st.tensor("step").map_err(|_| Error::MissingTensor {
        file: path.to_path_buf(),
        name: "step".into(),
    })?;
    if step.dtype() != Dtype::I64 || step.data().len() != 8 {
        return Err(Error::TensorDtype {
            file: path.to_path_buf(),
            name: "step".into(),
            got: format!("{:?}", step.dtype()),
            want: "I64 scalar",
        });
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(step.data());
    opt.step = i64::from_le_bytes(b).max(0) as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PosEncoding;

    #[test]
    fn round_trips_and_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ModelConfig::preset("tiny").unwrap();
        cfg.tie_embeddings = false;
        let m = Gpt::new(cfg.clone(), 4).unwrap();
        save_model_dir(&m, dir.path()).unwrap();
        assert!(!dir.path().join("model.safetensors.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("model.safetensors"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "model.safetensors readable by others");
        }
        let m2 = load_model_dir(dir.path()).unwrap();
        assert_eq!(m2.config(), m.config());
        assert_eq!(m2.params(), m.params());

        // wrong shape: a model with a different block size
        let mut other = cfg.clone();
        other.block_size = 4;
        let mut m3 = Gpt::zeroed(other, 0).unwrap();
        let e = load_params(&mut m3, &dir.path().join(MODEL_FILE))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("transformer.wpe.weight") && e.contains("shape"),
            "{e}"
        );
        // missing tensor: rope model has no wpe, learned model wants one
        let mut rc = cfg.clone();
        rc.pos_encoding = PosEncoding::Rope;
        let rope = Gpt::new(rc, 1).unwrap();
        let p = dir.path().join("rope.safetensors");
        save_params(&rope, &p).unwrap();
        let mut m4 = Gpt::zeroed(cfg.clone(), 0).unwrap();
        let e = load_params(&mut m4, &p).unwrap_err().to_string();
        assert!(
            e.contains("missing") && e.contains("transformer.wpe.weight"),
            "{e}"
        );
        // wrong dtype
        let p = dir.path().join("f64.safetensors");
        let ts = m
            .named_parameters()
            .map(|(n, s, v)| {
                (
                    n.to_string(),
                    s.to_vec(),
                    v.iter().flat_map(|x| (*x as f64).to_le_bytes()).collect(),
                    Dtype::F64,
                )
            })
            .collect();
        write_tensors(&p, ts).unwrap();
        let e = load_params(&mut m4, &p).unwrap_err().to_string();
        assert!(
            e.contains("dtype") && e.contains("transformer.wte.weight"),
            "{e}"
        );
        // not a safetensors file / absent file
        std::fs::write(dir.path().join("junk"), b"hello").unwrap();
        assert!(load_params(&mut m4, &dir.path().join("junk")).is_err());
        assert!(load_params(&mut m4, &dir.path().join("absent"))
            .unwrap_err()
            .to_string()
            .contains("absent"));

        // optimizer state
        let mut opt = AdamW::new(&m, AdamWConfig::default());
        opt.step = 7;
        opt.m[3] = 0.25;
        opt.v[5] = 0.5;
        let op = dir.path().join(OPTIMIZER_FILE);
        save_optimizer(&opt, &m, &op).unwrap();
        let o2 = load_optimizer(&m, AdamWConfig::default(), &op).unwrap();
        assert_eq!((o2.step, o2.m[3], o2.v[5]), (7, 0.25, 0.5));
        assert_eq!(o2.m, opt.m);
    }
}
